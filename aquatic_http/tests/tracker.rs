//! The real aquatic_http binary over loopback sockets: announce and scrape
//! round trips in every peer format, IPv6, pipelining and keep-alive,
//! every malformed request class, limits (head size, slow clients,
//! connection count), TLS with certificate reload, reverse-proxy headers,
//! access lists and clean exit.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use aquatic_test_support::http::{
    announce_path, assert_contains, connect, contains, get, pct, read_response, request, round_trip,
};
use aquatic_test_support::state::{
    assert_export_lists, assert_loaded, loopbacks, not_loaded, scrape_export_section, state_config,
    stop_saving,
};
use aquatic_test_support::{Daemon, list_file, tls};

const BINARY: &str = env!("CARGO_BIN_EXE_aquatic_http");

fn start(ip: &str, extra: &str, network_extra: &str) -> Daemon {
    start_in(tempfile::tempdir().unwrap(), ip, extra, network_extra)
}

fn start_in(dir: tempfile::TempDir, ip: &str, extra: &str, network_extra: &str) -> Daemon {
    let config = format!("{extra}\n[network]\naddress = \"{ip}:0\"\n{network_extra}\n");
    Daemon::launch_in(BINARY, dir, &config)
}

#[test]
fn announce_formats_and_scrape() {
    announce_formats_and_scrape_with("");
}

#[test]
fn inline_shard_mode_announce_scrape_and_pipelining() {
    // request_workers = 0: the socket worker owns the shard.
    announce_formats_and_scrape_with("request_workers = 0\n");
    keep_alive_pipelining_and_connection_close_with("request_workers = 0\n");
}

fn announce_formats_and_scrape_with(extra: &str) {
    let t = start("127.0.0.1", extra, "");
    let (status, body) = request(
        t.addr,
        &announce_path(1, 1, 6881, 0, "&event=started&compact=1"),
    );
    assert_eq!(status, 200);
    assert_contains(&body, b"8:completei1e");
    assert_contains(&body, b"11:external ip4:\x7f\x00\x00\x01");
    assert_contains(&body, b"5:peers0:");

    // Compact: 6-byte record of the first peer.
    let (_, body) = request(t.addr, &announce_path(1, 2, 6882, 5, "&compact=1"));
    assert_contains(&body, b"5:peers6:\x7f\x00\x00\x01\x1a\xe1");
    assert_contains(&body, b"10:incompletei1e");
    // Original BEP 3 format, with and without peer ids.
    let (_, body) = request(t.addr, &announce_path(1, 3, 6883, 5, "&compact=0"));
    assert_contains(&body, b"7:peer id20:");
    assert_contains(&body, b"2:ip9:127.0.0.1");
    let (_, body) = request(
        t.addr,
        &announce_path(1, 3, 6883, 5, "&compact=0&no_peer_id=1"),
    );
    assert!(!contains(&body, b"peer id"));
    assert_contains(&body, b"4:porti688");

    // Completed counts; paused and empty are regular announces; stopped removes.
    request(t.addr, &announce_path(1, 2, 6882, 0, "&event=completed"));
    let (status, _) = request(t.addr, &announce_path(1, 3, 6883, 5, "&event=paused"));
    assert_eq!(status, 200);
    request(
        t.addr,
        &announce_path(1, 3, 6883, 5, "&event=stopped&numwant=0"),
    );
    let (_, body) = request(
        t.addr,
        &format!(
            "/scrape?info_hash={}&info_hash={}",
            pct(&[1; 20]),
            pct(&[9; 20])
        ),
    );
    let mut expected = b"d5:filesd20:".to_vec();
    expected.extend_from_slice(&[1; 20]);
    expected.extend_from_slice(b"d8:completei2e10:downloadedi1e10:incompletei0ee20:");
    expected.extend_from_slice(&[9; 20]);
    expected.extend_from_slice(b"d8:completei0e10:downloadedi0e10:incompletei0eeee");
    assert_eq!(body, expected, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn ipv6_gets_peers6_and_separate_swarm() {
    let t = start("[::1]", "", "");
    request(t.addr, &announce_path(2, 1, 7001, 0, ""));
    let (_, body) = request(t.addr, &announce_path(2, 2, 7002, 5, ""));
    let mut record = b"6:peers618:".to_vec();
    record.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    record.extend_from_slice(&7001u16.to_be_bytes());
    assert_contains(&body, &record);
    assert_contains(&body, b"11:external ip16:");
}

#[test]
fn scrape_split_over_shards() {
    let t = start("127.0.0.1", "socket_workers = 2\nrequest_workers = 3\n", "");
    for h in 0..20u8 {
        for p in 0..(h % 3) {
            request(t.addr, &announce_path(h, p, 1000 + u16::from(p), 0, ""));
        }
    }
    let query: String = (0..20u8)
        .map(|h| format!("info_hash={}&", pct(&[h; 20])))
        .collect();
    let (_, body) = request(t.addr, &format!("/scrape?{query}"));
    for h in 0..20u8 {
        let mut entry = vec![b'2', b'0', b':'];
        entry.extend_from_slice(&[h; 20]);
        entry.extend_from_slice(format!("d8:completei{}e", h % 3).as_bytes());
        assert!(contains(&body, &entry), "hash {h}");
    }
}

#[test]
fn keep_alive_pipelining_and_connection_close() {
    keep_alive_pipelining_and_connection_close_with("request_workers = 2\n");
}

/// GETs of `paths` (each with `headers`) written at once on `s`: the
/// answers come in order, with `statuses`; their bodies.
fn assert_pipelined(
    s: &mut TcpStream,
    paths: &[&str],
    headers: &str,
    statuses: &[u16],
) -> Vec<Vec<u8>> {
    let requests: Vec<u8> = paths.iter().flat_map(|path| get(path, headers)).collect();
    s.write_all(&requests).unwrap();
    let (got, bodies): (Vec<u16>, Vec<Vec<u8>>) =
        paths.iter().map(|_| read_response(s).unwrap()).unzip();
    assert_eq!(got, statuses);
    bodies
}

/// The server has closed `s`: a read gets no byte.
fn assert_closed(s: &mut TcpStream) {
    let mut rest = [0u8; 64];
    assert_eq!(s.read(&mut rest).unwrap_or(0), 0, "not closed");
}

fn keep_alive_pipelining_and_connection_close_with(extra: &str) {
    // HTTP/1.1 without a Connection header: persistent with "always".
    let t = start("127.0.0.1", extra, "keep_alive = \"always\"\n");
    let mut s = connect(t.addr);
    let paths = [
        &announce_path(3, 1, 1, 0, ""),
        &announce_path(4, 1, 1, 0, ""),
        "/nope",
    ];
    let bodies = assert_pipelined(&mut s, &paths, "", &[200, 200, 404]);
    assert_contains(&bodies[0], b"8:completei1e");
    // Connection: close is honoured: the server closes after answering.
    let close = "Connection: close\r\n";
    assert_eq!(
        round_trip(&mut s, &announce_path(3, 2, 2, 0, ""), close).0,
        200
    );
    assert_closed(&mut s);
}

/// The default keep-alive policy: a connection stays open only for a
/// client that asks (`Connection: keep-alive`); a one-shot HTTP/1.1 client
/// that says nothing gets `Connection: close` and the close.
#[test]
fn keep_alive_when_asked_by_default() {
    let t = start("127.0.0.1", "", "");
    let mut s = connect(t.addr);
    assert_eq!(
        round_trip(&mut s, &announce_path(5, 1, 1, 0, ""), "").0,
        200
    );
    assert_closed(&mut s);

    let asked = "Connection: keep-alive\r\n";
    let mut s = connect(t.addr);
    let paths = [
        &announce_path(5, 2, 2, 0, ""),
        &announce_path(5, 3, 3, 0, ""),
        "/nope",
    ];
    let bodies = assert_pipelined(&mut s, &paths, asked, &[200, 200, 404]);
    assert_contains(&bodies[1], b"8:completei3e");
    // Still open: a fourth request on the same connection is answered.
    assert_eq!(
        round_trip(&mut s, &announce_path(5, 4, 4, 0, ""), asked).0,
        200
    );
}

#[test]
fn malformed_requests_get_their_answer() {
    let t = start("127.0.0.1", "", "[protocol]\n");
    let cases: Vec<(&str, u16, &[u8])> = vec![
        (
            "/announce?info_hash=%zz&peer_id=x&port=1",
            200,
            b"failure reason",
        ),
        (
            "/announce?info_hash=abc&peer_id=x&port=1",
            200,
            b"info_hash",
        ),
        (
            "/announce?peer_id=aaaaaaaaaaaaaaaaaaaa&port=1",
            200,
            b"info_hash",
        ),
        (
            "/announce?info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=aaaaaaaaaaaaaaaaaaaa",
            200,
            b"port",
        ),
        (
            "/announce?info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=aaaaaaaaaaaaaaaaaaaa&port=99999",
            200,
            b"port",
        ),
        (
            "/announce?info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=aaaaaaaaaaaaaaaaaaaa&port=1&left=x",
            200,
            b"left",
        ),
        ("/scrape", 200, b"failure reason"),
        ("/other", 404, b"404"),
    ];
    for (path, status, needle) in cases {
        let (got, body) = request(t.addr, path);
        assert_eq!(got, status, "{path}");
        assert!(
            contains(&body, needle),
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    // Not HTTP, a POST with a body, non-UTF-8 in the query: 400 or failure, never a hang.
    for raw in [
        &b"\x00\x01garbage\r\n\r\n"[..],
        b"POST /announce HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        b"GET /announce?info_hash=\xff\xfe HTTP/1.1\r\n\r\n",
    ] {
        let mut s = connect(t.addr);
        s.write_all(raw).unwrap();
        let (status, _) = read_response(&mut s).expect("an answer");
        assert!(status == 400 || status == 200, "{status}");
    }
    // Oversized head: 431 and closed.
    let mut s = connect(t.addr);
    let huge = format!("GET /announce?{} HTTP/1.1\r\n\r\n", "a".repeat(20_000));
    let _ = s.write_all(huge.as_bytes());
    assert_eq!(read_response(&mut s).map(|r| r.0), Some(431));
    // Still serving.
    assert_eq!(request(t.addr, &announce_path(5, 1, 1, 0, "")).0, 200);
}

#[test]
fn slow_client_does_not_block_others_and_is_cut_at_idle_timeout() {
    let t = start("127.0.0.1", "", "connection_idle_timeout = 2\n");
    let mut slow = connect(t.addr);
    let request_bytes = get(&announce_path(6, 1, 1, 0, ""), "");
    let started = Instant::now();
    let mut closed = false;
    for (i, byte) in request_bytes.iter().enumerate().take(40) {
        if slow.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        if i % 5 == 0 {
            let begin = Instant::now();
            assert_eq!(request(t.addr, &announce_path(7, 1, 1, 0, "")).0, 200);
            assert!(begin.elapsed() < Duration::from_secs(1));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The trickling client never completes its head in time and is closed.
    if !closed {
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_closed(&mut slow);
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn connection_limit_closes_only_the_extra_connection() {
    let t = start(
        "127.0.0.1",
        "",
        "max_connections = 2\nkeep_alive = \"always\"\n",
    );
    // Clients of three sources: each may hold a connection of the two.
    let from =
        |n| aquatic_test_support::tcp_from(aquatic_test_support::loopback(n), t.addr).unwrap();
    let mut a = from(1);
    let mut b = from(2);
    a.write_all(&get(&announce_path(8, 1, 1, 0, ""), ""))
        .unwrap();
    b.write_all(&get(&announce_path(8, 2, 1, 0, ""), ""))
        .unwrap();
    assert_eq!(read_response(&mut a).unwrap().0, 200);
    assert_eq!(read_response(&mut b).unwrap().0, 200);
    let mut c = from(3);
    let _ = c.write_all(&get(&announce_path(8, 3, 1, 0, ""), ""));
    assert!(read_response(&mut c).is_none());
    a.write_all(&get(&announce_path(8, 1, 1, 0, ""), ""))
        .unwrap();
    assert_eq!(read_response(&mut a).unwrap().0, 200);
}

#[test]
fn reverse_proxy_header_only_from_trusted_proxies() {
    // A daemon trusting `proxies`, and its answer to an announce whose
    // header names a client.
    let behind = |proxies: &str| {
        let network = format!(
            "reverse_proxy_ip_header = \"X-Forwarded-For\"\ntrusted_proxies = [\"{proxies}\"]\n"
        );
        let t = start("127.0.0.1", "", &network);
        let header = "X-Forwarded-For: 10.1.2.3, 203.0.113.7\r\n";
        let (_, body) = round_trip(&mut connect(t.addr), &announce_path(9, 1, 1, 0, ""), header);
        (t, body)
    };
    let (trusted, body) = behind("127.0.0.0/8");
    assert_contains(&body, b"11:external ip4:\xcb\x00\x71\x07");
    // Trusted proxy without the header: refused rather than mixing clients.
    let (_, body) = request(trusted.addr, &announce_path(9, 2, 1, 0, ""));
    assert_contains(&body, b"failure reason");

    let (_untrusted, body) = behind("10.0.0.0/8");
    assert_contains(&body, b"11:external ip4:\x7f\x00\x00\x01");
}

#[test]
fn access_list_deny_and_sigterm() {
    let (dir, _, extra) = list_file("access_list", "deny", &format!("{}\n", "0a".repeat(20)));
    let mut t = start_in(dir, "127.0.0.1", &extra, "");
    let (_, body) = request(t.addr, &announce_path(10, 1, 1, 0, ""));
    assert_contains(&body, b"not allowed");
    assert_eq!(request(t.addr, &announce_path(11, 1, 1, 0, "")).0, 200);
    t.signal("TERM");
    assert_eq!(t.wait_exit(Duration::from_secs(5)), Some(0));
}

fn tls_client(
    addr: SocketAddr,
    trusted: &tls::Certified,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
    let mut stream = tls::client(connect(addr), trusted);
    stream.flush().map_err(|e| e.to_string())?;
    // Force the handshake to complete now.
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| e.to_string())?;
    }
    Ok(stream)
}

#[test]
fn tls_handshake_and_certificate_reload_keep_connections() {
    let dir = tempfile::tempdir().unwrap();
    let first = tls::write_cert(dir.path(), "cert");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("cert.key");
    let network = format!(
        "keep_alive = \"always\"\ntls_certificate_path = {:?}\ntls_private_key_path = {:?}\n",
        cert.to_str().unwrap(),
        key.to_str().unwrap()
    );
    let t = start_in(tempfile::tempdir().unwrap(), "127.0.0.1", "", &network);
    let mut old = tls_client(t.addr, &first).expect("handshake with first cert");
    let old_peer = announce_path(12, 1, 1, 0, "");
    assert_eq!(round_trip(&mut old, &old_peer, "").0, 200);

    // Replace the files and reload: new connections see the new cert, the
    // old connection keeps working; swarm state is kept.
    let second = tls::write_cert(dir.path(), "cert");
    t.signal("USR1");
    assert!(
        t.wait_for_log("TLS certificate reloaded", Duration::from_secs(5))
            .is_some()
    );
    assert!(tls_client(t.addr, &first).is_err(), "old cert still served");
    let mut new = tls_client(t.addr, &second).expect("handshake with new cert");
    let (_, body) = round_trip(&mut new, &announce_path(12, 2, 2, 5, ""), "");
    assert_contains(&body, b"8:completei1e");
    assert_eq!(round_trip(&mut old, &old_peer, "").0, 200);

    // A broken file at reload keeps the current certificate.
    std::fs::write(&cert, "garbage").unwrap();
    t.signal("USR1");
    assert!(
        t.wait_for_log("reload failed", Duration::from_secs(5))
            .is_some()
    );
    assert!(tls_client(t.addr, &second).is_ok());
    // Plain HTTP on the TLS port gets no answer, and the daemon survives.
    let mut plain = connect(t.addr);
    plain
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    plain.write_all(&get("/announce", "")).unwrap();
    assert!(read_response(&mut plain).is_none());
    assert!(tls_client(t.addr, &second).is_ok());
}

#[test]
fn startup_errors_name_the_problem() {
    let (code, stderr) = aquatic_test_support::run_to_exit(
        BINARY,
        "[network]\ntls_certificate_path = \"/nonexistent/cert.pem\"\ntls_private_key_path = \"/nonexistent/key.pem\"\n",
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("/nonexistent/cert.pem"), "{stderr}");
    let (code, stderr) =
        aquatic_test_support::run_to_exit(BINARY, "[network]\ntrusted_proxies = [\"nope\"]\n");
    assert_eq!(code, 1);
    assert!(stderr.contains("nope"), "{stderr}");
}

// --- swarm state across restarts, scrape export ------------------------------

/// Dual stack on [::]:0 with `extra` and a `[state]` file in `state_dir`.
fn start_with_state(state_dir: &std::path::Path, extra: &str) -> Daemon {
    start("[::]", &state_config(state_dir, extra), "")
}

fn scrape_all(addr: SocketAddr, hashes: &[u8]) -> Vec<u8> {
    let query: String = hashes
        .iter()
        .map(|h| format!("info_hash={}&", pct(&[*h; 20])))
        .collect();
    let (status, body) = request(addr, &format!("/scrape?{query}"));
    assert_eq!(status, 200);
    body
}

#[test]
fn swarms_survive_a_restart() {
    // Sharded over 2 request workers, then 3: torrents go to new shards.
    restart_keeps_swarms("request_workers = 2\n", "request_workers = 3\n");
}

#[test]
fn swarms_survive_a_restart_in_inline_mode() {
    restart_keeps_swarms("request_workers = 0\n", "request_workers = 1\n");
}

fn restart_keeps_swarms(first: &str, second: &str) {
    let state_dir = tempfile::tempdir().unwrap();
    let t = start_with_state(state_dir.path(), first);
    not_loaded(&t);
    let (v4, v6) = loopbacks(t.addr);
    request(v4, &announce_path(1, 1, 1001, 0, "&event=started"));
    request(v4, &announce_path(1, 2, 1002, 5, "&event=started"));
    request(v4, &announce_path(1, 3, 1003, 5, "&event=started"));
    request(v4, &announce_path(1, 3, 1003, 0, "&event=completed"));
    for h in 2..=9u8 {
        request(v4, &announce_path(h, 4, 2000 + u16::from(h), 5, ""));
    }
    request(v4, &announce_path(9, 4, 2009, 5, "&event=stopped"));
    request(v6, &announce_path(1, 5, 3001, 5, "&event=started"));
    let hashes: Vec<u8> = (1..=9).collect();
    let before_v4 = scrape_all(v4, &hashes);
    let before_v6 = scrape_all(v6, &[1]);
    let mut entry = b"20:".to_vec();
    entry.extend_from_slice(&[1; 20]);
    entry.extend_from_slice(b"d8:completei2e10:downloadedi1e10:incompletei1ee");
    assert_contains(&before_v4, &entry);
    stop_saving(t);

    let t = start_with_state(state_dir.path(), second);
    assert_loaded(&t, "9 torrents, 11 peers");
    let (v4, v6) = loopbacks(t.addr);
    assert_eq!(scrape_all(v4, &hashes), before_v4);
    assert_eq!(scrape_all(v6, &[1]), before_v6);
    // A new leecher is sent the peers (ids and ports) stored before.
    let (_, body) = request(v4, &announce_path(1, 6, 1006, 5, "&compact=0"));
    for (peer, port) in [(1u8, 1001u16), (2, 1002), (3, 1003)] {
        let mut id = b"7:peer id20:".to_vec();
        id.extend_from_slice(&[peer; 20]);
        assert_contains(&body, &id);
        assert_contains(&body, format!("4:porti{port}e").as_bytes());
    }
    assert_contains(&body, b"8:completei2e");
    assert_contains(&body, b"10:incompletei2e");
    stop_saving(t);
    let t = start_with_state(state_dir.path(), second);
    assert_loaded(&t, "9 torrents, 12 peers");
}

#[test]
fn corrupted_state_file_starts_empty() {
    let state_dir = tempfile::tempdir().unwrap();
    let path = state_dir.path().join("state.bin");
    std::fs::write(&path, vec![0xffu8; 4096]).unwrap();
    let t = start_with_state(state_dir.path(), "");
    let line = not_loaded(&t);
    assert!(
        line.contains("WARN") && line.contains("not an aquatic state file"),
        "{line}"
    );
    let (v4, _) = loopbacks(t.addr);
    let empty = scrape_all(v4, &[1]);
    assert_contains(&empty, b"d8:completei0e10:downloadedi0e10:incompletei0ee");
    request(v4, &announce_path(1, 1, 1001, 0, ""));
    stop_saving(t);
    // The next start has the swarm again.
    let t = start_with_state(state_dir.path(), "");
    assert_loaded(&t, "1 torrents, 1 peers");
    // A state file of the other daemon is refused by name.
    stop_saving(t);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] = 1; // daemon kind: aquatic_udp
    std::fs::write(&path, &bytes).unwrap();
    let t = start_with_state(state_dir.path(), "");
    let line = not_loaded(&t);
    assert!(line.contains("written by aquatic_udp"), "{line}");
}

#[test]
fn scrape_export_lists_every_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scrape.txt");
    let extra = format!("request_workers = 2\n{}", scrape_export_section(&path));
    let t = start("[::]", &extra, "");
    let (v4, v6) = loopbacks(t.addr);
    request(v4, &announce_path(0xab, 1, 1001, 0, ""));
    request(v4, &announce_path(0xab, 2, 1002, 5, ""));
    request(v4, &announce_path(0xab, 2, 1002, 0, "&event=completed"));
    request(v6, &announce_path(0xab, 3, 1003, 5, ""));
    request(v6, &announce_path(0x02, 3, 1003, 5, ""));
    // IPv4 and IPv6 swarms summed.
    let expected = [
        format!("{} 2 1 1", "ab".repeat(20)),
        format!("{} 0 1 0", "02".repeat(20)),
    ];
    assert_export_lists(&path, "aquatic_http", &expected);
}
