//! Announce (compact and both dictionary forms), scrape and failure
//! responses built from fuzz bytes, written by `aquatic_http_protocol` and
//! read back with an independent bencode implementation (serde_bencode), as
//! a client reads them. Each body must decode to exactly the fields it was
//! written from, and be canonical bencode: byte for byte what
//! serde_bencode writes for the same value (keys sorted, no duplicates).

#![no_main]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aquatic_http_protocol::{
    AnnounceResponse, InfoHash, PeerFormat, PeerId, ResponsePeer, ScrapeResponse,
    ScrapeStatistics, write_failure,
};
use libfuzzer_sys::arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_bencode::value::Value;

/// A count as bencode can carry it (serde_bencode reads an i64).
fn count(u: &mut Unstructured) -> Result<usize> {
    Ok(usize::try_from(u.int_in_range(0..=i64::MAX as u64)?).unwrap_or(0))
}

fn peer<I>(u: &mut Unstructured, ip_address: I) -> Result<ResponsePeer<I>> {
    Ok(ResponsePeer {
        ip_address,
        port: u.arbitrary()?,
        peer_id: PeerId(u.arbitrary()?),
    })
}

fn announce(u: &mut Unstructured) -> Result<AnnounceResponse> {
    let mut peers = Vec::new();
    for _ in 0..u.int_in_range(0..=8)? {
        let ip = Ipv4Addr::from(u.arbitrary::<[u8; 4]>()?);
        peers.push(peer(u, ip)?);
    }
    let mut peers6 = Vec::new();
    for _ in 0..u.int_in_range(0..=8)? {
        let ip = Ipv6Addr::from(u.arbitrary::<[u8; 16]>()?);
        peers6.push(peer(u, ip)?);
    }
    let external_ip = match u.int_in_range(0..=2)? {
        0 => None,
        1 => Some(IpAddr::V4(u.arbitrary::<[u8; 4]>()?.into())),
        _ => Some(IpAddr::V6(u.arbitrary::<[u8; 16]>()?.into())),
    };
    Ok(AnnounceResponse {
        interval: u.arbitrary()?,
        min_interval: u.arbitrary()?,
        complete: count(u)?,
        incomplete: count(u)?,
        peers,
        peers6,
        external_ip,
        warning_message: Option::<String>::arbitrary(u)?,
    })
}

fn int(n: impl TryInto<i64>) -> Value {
    Value::Int(n.try_into().unwrap_or(i64::MIN))
}

fn bytes(b: impl AsRef<[u8]>) -> Value {
    Value::Bytes(b.as_ref().to_vec())
}

fn dict<const N: usize>(entries: [(&str, Value); N]) -> HashMap<Vec<u8>, Value> {
    entries
        .into_iter()
        .map(|(key, value)| (key.as_bytes().to_vec(), value))
        .collect()
}

fn compact<I>(peers: &[ResponsePeer<I>], octets: impl Fn(&I) -> Vec<u8>) -> Value {
    let mut records = Vec::new();
    for p in peers {
        records.extend(octets(&p.ip_address));
        records.extend(p.port.to_be_bytes());
    }
    Value::Bytes(records)
}

fn peer_dict<I>(ip: IpAddr, p: &ResponsePeer<I>, include_peer_id: bool) -> Value {
    let mut entries = HashMap::new();
    entries.insert(b"ip".to_vec(), bytes(ip.to_string()));
    entries.insert(b"port".to_vec(), int(p.port));
    if include_peer_id {
        entries.insert(b"peer id".to_vec(), bytes(p.peer_id.0));
    }
    Value::Dict(entries)
}

/// What a client must read from `response` written in `format`.
fn expected_announce(response: &AnnounceResponse, format: PeerFormat) -> Value {
    let mut entries = dict([
        ("complete", int(response.complete)),
        ("incomplete", int(response.incomplete)),
        ("interval", int(response.interval)),
        ("min interval", int(response.min_interval)),
    ]);
    match response.external_ip {
        Some(IpAddr::V4(ip)) => entries.insert(b"external ip".to_vec(), bytes(ip.octets())),
        Some(IpAddr::V6(ip)) => entries.insert(b"external ip".to_vec(), bytes(ip.octets())),
        None => None,
    };
    if let Some(message) = &response.warning_message {
        entries.insert(b"warning message".to_vec(), bytes(message));
    }
    match format {
        PeerFormat::Compact => {
            entries.insert(
                b"peers".to_vec(),
                compact(&response.peers, |ip| ip.octets().to_vec()),
            );
            if !response.peers6.is_empty() {
                entries.insert(
                    b"peers6".to_vec(),
                    compact(&response.peers6, |ip| ip.octets().to_vec()),
                );
            }
        }
        PeerFormat::Dictionary { include_peer_id } => {
            let v4 = (response.peers.iter())
                .map(|p| peer_dict(IpAddr::V4(p.ip_address), p, include_peer_id));
            let v6 = (response.peers6.iter())
                .map(|p| peer_dict(IpAddr::V6(p.ip_address), p, include_peer_id));
            entries.insert(b"peers".to_vec(), Value::List(v4.chain(v6).collect()));
        }
    }
    Value::Dict(entries)
}

/// What a client must read from `response`: of a repeated hash, the first
/// entry.
fn expected_scrape(response: &ScrapeResponse) -> Value {
    let mut files = HashMap::new();
    for (info_hash, s) in &response.files {
        files.entry(info_hash.0.to_vec()).or_insert_with(|| {
            Value::Dict(dict([
                ("complete", int(s.complete)),
                ("downloaded", int(s.downloaded)),
                ("incomplete", int(s.incomplete)),
            ]))
        });
    }
    Value::Dict(dict([("files", Value::Dict(files))]))
}

fn check(written: &[u8], expected: &Value) {
    let decoded: Value = match serde_bencode::from_bytes(written) {
        Ok(decoded) => decoded,
        Err(err) => panic!("{err}: {:?}", String::from_utf8_lossy(written)),
    };
    assert_eq!(&decoded, expected);
    let canonical = serde_bencode::to_bytes(expected).unwrap_or_default();
    assert_eq!(written, canonical.as_slice(), "not canonical bencode");
}

fn one(u: &mut Unstructured) -> Result<()> {
    let mut out = Vec::new();
    match u.int_in_range(0..=2)? {
        0 => {
            let response = announce(u)?;
            let format = match u.int_in_range(0..=2)? {
                0 => PeerFormat::Compact,
                n => PeerFormat::Dictionary {
                    include_peer_id: n == 1,
                },
            };
            response.write(&mut out, format);
            check(&out, &expected_announce(&response, format));
        }
        1 => {
            let mut files = Vec::new();
            for _ in 0..u.int_in_range(0..=16)? {
                // Often from a small pool, so that hashes repeat.
                let info_hash = if u.arbitrary()? {
                    InfoHash([u.int_in_range(0..=3)?; 20])
                } else {
                    InfoHash(u.arbitrary()?)
                };
                let statistics = ScrapeStatistics {
                    complete: count(u)?,
                    downloaded: count(u)?,
                    incomplete: count(u)?,
                };
                files.push((info_hash, statistics));
            }
            let response = ScrapeResponse { files };
            response.write(&mut out);
            check(&out, &expected_scrape(&response));
        }
        _ => {
            let reason = String::arbitrary(u)?;
            write_failure(&mut out, &reason);
            check(&out, &Value::Dict(dict([("failure reason", bytes(&reason))])));
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    // Several responses per input, until the bytes run out.
    while !u.is_empty() && one(&mut u).is_ok() {}
});
