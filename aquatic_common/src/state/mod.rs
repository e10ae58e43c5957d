//! The state file: every torrent's peers and download count, written on
//! SIGTERM and read at the next start, so a restart does not empty the
//! swarms.
//!
//! Format (all integers little-endian):
//!
//! ```text
//! header   magic "AQUASTAT" (8) | format version u16 | daemon kind u8 | 0 u8
//!          | written at: Unix seconds u64                       = 20 bytes
//! body     torrent records, each:
//!            family u8 (4: IPv4, 6: IPv6) | info hash (20) | downloaded u32
//!            | peer count u32
//!            | peers: key (K::LEN) | extra (V::LEN) | flags u8 (1: seeder,
//!                     2: its completed download was counted)
//!                     | seconds of validity left u32
//!          then the end tag: 0 u8
//! trailer  SipHash-1-3 (keys 0, 0) of header and body, u64
//! ```
//!
//! The daemon kind and format version fix the key and extra types. The
//! peers' validity is kept as seconds left at the dump; at load the
//! wall-clock time since the dump is taken off, so peers that expired while
//! the tracker was down are not brought back.
//!
//! Reading never trusts the file: the checksum is verified in a first pass
//! before anything is decoded, every count is checked against the bytes
//! left before it is used, nothing is allocated by a length from the file,
//! and loaded peers go through the torrent map's limits like announced
//! ones. Any problem is a [`StateError`], never a panic; the daemon then
//! logs it and starts empty ([`load_shards`]).
//!
//! Writing: each shard's owner writes its torrents ([`write_torrents`],
//! through `Shard::write_state` and [`crate::shard_parts`]), and [`save`]
//! frames them and replaces the file atomically.

use std::fs::File;
use std::hash::Hasher;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher13;

use crate::atomic_file::write_atomically;
use crate::peer_store::PeerKey;
use crate::shard_parts::{PartKind, ShardControl};
use crate::torrent_map::{PeerData, TorrentMap};
use crate::{InfoHash, IpVersion, SecondsSinceStart, ValidUntil};

mod codec;

use codec::array;
pub use codec::{StateCodec, StateError};

pub const MAGIC: [u8; 8] = *b"AQUASTAT";
/// 2: HTTP peers keyed by address and port (peer id as extra data), and
/// the download-counted flag.
pub const FORMAT_VERSION: u16 = 2;
const HEADER_LEN: u64 = 20;
const TRAILER_LEN: u64 = 8;
const TAG_END: u8 = 0;
const TAG_IPV4: u8 = 4;
const TAG_IPV6: u8 = 6;
/// Info hash, downloaded, peer count.
const TORRENT_HEAD_LEN: usize = 20 + 4 + 4;
/// Flags and seconds left, after a peer's key and extra data.
const PEER_TAIL_LEN: usize = 1 + 4;
const FLAG_SEEDER: u8 = 1;
/// The peer's completed download was counted (`PeerData::download_counted`).
const FLAG_DOWNLOAD_COUNTED: u8 = 2;

/// `[state]`: where the swarms are kept across a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// Empty: off.
    pub path: PathBuf,
}

impl StateConfig {
    pub fn path(&self) -> Option<&Path> {
        (!self.path.as_os_str().is_empty()).then_some(self.path.as_path())
    }
}

/// Which daemon wrote a file: each keys its peers differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaemonKind {
    Udp,
    Http,
    Ws,
}

impl DaemonKind {
    fn code(self) -> u8 {
        match self {
            DaemonKind::Udp => 1,
            DaemonKind::Http => 2,
            DaemonKind::Ws => 3,
        }
    }

    fn name_of(code: u8) -> &'static str {
        match code {
            1 => "aquatic_udp",
            2 => "aquatic_http",
            3 => "aquatic_ws",
            _ => "an unknown daemon",
        }
    }
}

/// What a load brought back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Torrent records read.
    pub torrents: usize,
    /// Peers stored in the maps.
    pub peers: usize,
    /// Peers whose validity ran out while the tracker was down.
    pub expired: usize,
    /// Peers left out by the limits (`max_peers_per_torrent`, `max_peers`).
    pub refused: usize,
}

/// A torrent record's head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TorrentRecord {
    pub family: IpVersion,
    pub info_hash: InfoHash,
    pub downloaded: u32,
    pub num_peers: u32,
}

/// The body still to read, bounded by the checksummed length.
struct Body<'a> {
    reader: &'a mut dyn Read,
    left: u64,
}

impl Body<'_> {
    fn take(&mut self, buf: &mut [u8]) -> Result<(), StateError> {
        let len = buf.len() as u64;
        if len > self.left {
            return Err(StateError::Corrupt(
                "a record runs past the end of the body",
            ));
        }
        self.reader.read_exact(buf)?;
        self.left -= len;
        Ok(())
    }
}

/// The peers of one torrent record, to read into the daemon's map for the
/// record's address family with [`PeerRecords::restore_into`].
pub struct PeerRecords<'a, 'b> {
    body: &'a mut Body<'b>,
    record: TorrentRecord,
    now: SecondsSinceStart,
    downtime_secs: u32,
    report: &'a mut LoadReport,
    read: bool,
}

impl PeerRecords<'_, '_> {
    /// Store the record's peers in `map` (within its limits), with
    /// `valid_until` = now + seconds left - downtime, and its download
    /// count. Call it once per record.
    pub fn restore_into<K, V>(&mut self, map: &mut TorrentMap<K, V>) -> Result<(), StateError>
    where
        K: StateCodec + PeerKey,
        V: StateCodec,
    {
        if self.read {
            return Err(StateError::Corrupt("a torrent record was read twice"));
        }
        self.read = true;
        let record_len = K::LEN + V::LEN + PEER_TAIL_LEN;
        let needed = u64::from(self.record.num_peers) * record_len as u64;
        if needed > self.body.left {
            return Err(StateError::Corrupt("a peer count larger than the file"));
        }
        let mut buf = vec![0u8; record_len];
        for _ in 0..self.record.num_peers {
            self.body.take(&mut buf)?;
            let (key, rest) = buf.split_at(K::LEN);
            let (extra, tail) = rest.split_at(V::LEN);
            let key = K::decode(key).ok_or(StateError::Corrupt("an invalid peer key"))?;
            let extra = V::decode(extra).ok_or(StateError::Corrupt("invalid peer data"))?;
            let [flags, left @ ..] =
                array::<PEER_TAIL_LEN>(tail).ok_or(StateError::Corrupt("a short peer record"))?;
            if flags & !(FLAG_SEEDER | FLAG_DOWNLOAD_COUNTED) != 0 {
                return Err(StateError::Corrupt("unknown peer flags"));
            }
            let left = u32::from_le_bytes(left).saturating_sub(self.downtime_secs);
            if left == 0 {
                self.report.expired += 1;
                continue;
            }
            let data = PeerData::new(ValidUntil::new(self.now, left), extra)
                .with_download_counted(flags & FLAG_DOWNLOAD_COUNTED != 0);
            let is_seeder = flags & FLAG_SEEDER != 0;
            if map.restore_peer(self.record.info_hash, key, data, is_seeder) {
                self.report.peers += 1;
            } else {
                self.report.refused += 1;
            }
        }
        map.restore_downloaded(&self.record.info_hash, self.record.downloaded);
        Ok(())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Load the state file at `path`; see [`load_from`].
pub fn load(
    path: &Path,
    kind: DaemonKind,
    now: SecondsSinceStart,
    restore: impl FnMut(&TorrentRecord, &mut PeerRecords) -> Result<(), StateError>,
) -> Result<LoadReport, StateError> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    load_from(&mut file, len, kind, now, unix_now(), restore)
}

/// Check a state file of `len` bytes written by `kind` (header and
/// checksum), then call `restore` for each torrent record, which must read
/// its peers with [`PeerRecords::restore_into`]. `now` is the daemon's
/// clock, `unix_now` the wall clock (for the downtime). On an error the
/// maps may hold part of the file: discard them.
pub fn load_from<R: Read + Seek>(
    reader: &mut R,
    len: u64,
    kind: DaemonKind,
    now: SecondsSinceStart,
    unix_now: u64,
    mut restore: impl FnMut(&TorrentRecord, &mut PeerRecords) -> Result<(), StateError>,
) -> Result<LoadReport, StateError> {
    if len < HEADER_LEN + 1 + TRAILER_LEN {
        return Err(StateError::TooShort(len));
    }
    reader.seek(SeekFrom::Start(0))?;
    let mut header = [0u8; HEADER_LEN as usize];
    reader.read_exact(&mut header)?;
    let (magic, rest) = header.split_at(8);
    if magic != MAGIC {
        return Err(StateError::NotAStateFile);
    }
    let [v0, v1, written_by, reserved, written_at @ ..] =
        array::<12>(rest).ok_or(StateError::NotAStateFile)?;
    let version = u16::from_le_bytes([v0, v1]);
    if version != FORMAT_VERSION {
        return Err(StateError::UnsupportedVersion(version));
    }
    if written_by != kind.code() {
        return Err(StateError::OtherDaemon {
            written_by,
            expected: kind,
        });
    }
    if reserved != 0 {
        return Err(StateError::Corrupt("a reserved header byte is set"));
    }
    let written_at = u64::from_le_bytes(written_at);
    let body_len = len - HEADER_LEN - TRAILER_LEN;

    // First pass: nothing is decoded from a file whose checksum is wrong.
    let mut hasher = SipHasher13::new();
    hasher.write(&header);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = body_len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        let chunk = buf.get_mut(..n).unwrap_or_default();
        reader.read_exact(chunk)?;
        hasher.write(chunk);
        left -= n as u64;
    }
    let mut trailer = [0u8; TRAILER_LEN as usize];
    reader.read_exact(&mut trailer)?;
    if u64::from_le_bytes(trailer) != hasher.finish() {
        return Err(StateError::ChecksumMismatch);
    }
    drop(buf);

    reader.seek(SeekFrom::Start(HEADER_LEN))?;
    let mut buffered = BufReader::new(reader);
    let mut body = Body {
        reader: &mut buffered,
        left: body_len,
    };
    let downtime_secs = u32::try_from(unix_now.saturating_sub(written_at)).unwrap_or(u32::MAX);
    let mut report = LoadReport::default();
    loop {
        let mut tag = [0u8; 1];
        body.take(&mut tag)?;
        let family = match tag[0] {
            TAG_END => break,
            TAG_IPV4 => IpVersion::V4,
            TAG_IPV6 => IpVersion::V6,
            _ => return Err(StateError::Corrupt("an unknown record tag")),
        };
        let mut head = [0u8; TORRENT_HEAD_LEN];
        body.take(&mut head)?;
        let (info_hash, counts) = head.split_at(20);
        let [d0, d1, d2, d3, n0, n1, n2, n3] =
            array::<8>(counts).ok_or(StateError::Corrupt("a short torrent record"))?;
        let record = TorrentRecord {
            family,
            info_hash: InfoHash(array(info_hash).ok_or(StateError::Corrupt("a short info hash"))?),
            downloaded: u32::from_le_bytes([d0, d1, d2, d3]),
            num_peers: u32::from_le_bytes([n0, n1, n2, n3]),
        };
        report.torrents += 1;
        let mut peers = PeerRecords {
            body: &mut body,
            record,
            now,
            downtime_secs,
            report: &mut report,
            read: false,
        };
        restore(&record, &mut peers)?;
        if !peers.read {
            return Err(StateError::Corrupt(
                "a torrent record of no known address family",
            ));
        }
    }
    if body.left != 0 {
        return Err(StateError::Corrupt("bytes after the end record"));
    }
    Ok(report)
}

/// Write the records of every torrent in `map` that has peers valid at
/// `now`: those peers, with their seconds left, and the download count.
/// What `Shard::write_state` calls for each of its maps.
pub fn write_torrents<K, V>(
    out: &mut dyn Write,
    family: IpVersion,
    map: &TorrentMap<K, V>,
    now: SecondsSinceStart,
) -> io::Result<()>
where
    K: StateCodec + PeerKey,
    V: StateCodec,
{
    let tag = match family {
        IpVersion::V4 => TAG_IPV4,
        IpVersion::V6 => TAG_IPV6,
    };
    let secs_left = |data: &PeerData<V>| data.secs_left(now);
    let mut record = Vec::with_capacity(64);
    for (info_hash, store) in map.torrents() {
        let live = |peer: &&(K, PeerData<V>)| secs_left(&peer.1) > 0;
        let count = store.leechers().iter().filter(live).count()
            + store.seeders().iter().filter(live).count();
        if count == 0 {
            continue;
        }
        // A swarm holds fewer than u32::MAX peers (`peer_store::MAX_PEERS`).
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        record.clear();
        record.push(tag);
        record.extend_from_slice(&info_hash.0);
        record.extend_from_slice(&store.downloaded().to_le_bytes());
        record.extend_from_slice(&count.to_le_bytes());
        out.write_all(&record)?;
        for (peers, flags) in [(store.leechers(), 0), (store.seeders(), FLAG_SEEDER)] {
            for (key, data) in peers.iter().filter(live) {
                record.clear();
                key.encode(&mut record);
                data.extra.encode(&mut record);
                let counted = if data.download_counted() {
                    FLAG_DOWNLOAD_COUNTED
                } else {
                    0
                };
                record.push(flags | counted);
                record.extend_from_slice(&secs_left(data).to_le_bytes());
                out.write_all(&record)?;
            }
        }
    }
    Ok(())
}

/// Feeds the checksum with everything written through it.
struct HashingWriter<'a> {
    inner: &'a mut dyn Write,
    hasher: SipHasher13,
    len: u64,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let written = buf.get(..n).unwrap_or_default();
        self.hasher.write(written);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Write a whole state file to `out`: header, the records `write_body`
/// writes, end tag and checksum. Its length in bytes.
pub fn encode(
    out: &mut dyn Write,
    kind: DaemonKind,
    written_at: u64,
    write_body: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut hashing = HashingWriter {
        inner: out,
        hasher: SipHasher13::new(),
        len: 0,
    };
    hashing.write_all(&MAGIC)?;
    hashing.write_all(&FORMAT_VERSION.to_le_bytes())?;
    hashing.write_all(&[kind.code(), 0])?;
    hashing.write_all(&written_at.to_le_bytes())?;
    write_body(&mut hashing)?;
    hashing.write_all(&[TAG_END])?;
    let checksum = hashing.hasher.finish();
    let len = hashing.len + TRAILER_LEN;
    out.write_all(&checksum.to_le_bytes())?;
    Ok(len)
}

/// Replace the state file at `path` atomically (mode 0600: it holds the
/// peers' addresses). Its length in bytes.
pub fn save(
    path: &Path,
    kind: DaemonKind,
    write_body: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut len = 0;
    write_atomically(path, 0o600, |out| {
        len = encode(out, kind, unix_now(), write_body)?;
        Ok(())
    })?;
    Ok(len)
}

/// On SIGTERM: when `[state] path` is set, ask every shard for its part
/// and save the file; log the outcome. A failure leaves the old file.
pub fn save_and_log(config: &StateConfig, kind: DaemonKind, control: &ShardControl) {
    let Some(path) = config.path() else {
        return;
    };
    let started = Instant::now();
    match save(path, kind, |out| control.collect(PartKind::State, out)) {
        Ok(len) => log::info!(
            "swarm state saved to {} ({len} bytes, {} shards, {:.2} s)",
            path.display(),
            control.num_shards(),
            started.elapsed().as_secs_f64()
        ),
        Err(err) => log::error!(
            "cannot save the swarm state to {} (the file is left as it was): {err:#}",
            path.display()
        ),
    }
}

/// At start: `num_shards` shards' maps made by `new_maps`, filled from the
/// state file when `[state] path` is set and the file can be read, each
/// torrent in the shard `shard_of` names. A file that cannot be read is
/// logged (warn) and every shard starts empty; the start goes on.
pub fn load_shards<M>(
    config: &StateConfig,
    kind: DaemonKind,
    num_shards: usize,
    now: SecondsSinceStart,
    shard_of: impl Fn(&InfoHash) -> usize,
    new_maps: impl Fn() -> M,
    mut restore: impl FnMut(&mut M, &TorrentRecord, &mut PeerRecords) -> Result<(), StateError>,
) -> Vec<M> {
    let mut shards: Vec<M> = (0..num_shards.max(1)).map(|_| new_maps()).collect();
    let Some(path) = config.path() else {
        return shards;
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            log::warn!(
                "state.path: directory {} does not exist; the swarm state cannot be saved",
                dir.display()
            );
        }
    }
    let started = Instant::now();
    let result = load(path, kind, now, |record, peers| {
        match shards.get_mut(shard_of(&record.info_hash)) {
            Some(maps) => restore(maps, record, peers),
            None => Err(StateError::Corrupt("no shard for a torrent")),
        }
    });
    match result {
        Ok(report) => {
            let loaded = format!(
                "loaded from {}: {} torrents, {} peers ({} expired while down, {} over the limits) in {:.2} s",
                path.display(),
                report.torrents,
                report.peers,
                report.expired,
                report.refused,
                started.elapsed().as_secs_f64()
            );
            log::info!("swarm state {loaded}");
            crate::status::record_file_event("state", Ok(loaded));
        }
        Err(err) => {
            log::warn!(
                "swarm state not loaded from {}: {err}; starting with empty swarms",
                path.display()
            );
            crate::status::record_file_event(
                "state",
                Err(format!("not loaded from {}: {err}", path.display())),
            );
            shards = (0..num_shards.max(1)).map(|_| new_maps()).collect();
        }
    }
    shards
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;
    use crate::PeerId;
    use crate::torrent_map::{Announce, Limits, SwarmEvent};

    type Key = (Ipv4Addr, u16);
    type Map = TorrentMap<Key, PeerId>;
    type Map6 = TorrentMap<(Ipv6Addr, u16), ()>;

    const T0: u64 = 1_700_000_000;

    fn announce(
        map: &mut Map,
        hash: u8,
        peer: u8,
        event: SwarmEvent,
        left_is_zero: bool,
        now: u32,
    ) {
        let mut rng = SmallRng::seed_from_u64(0);
        let announce = Announce {
            info_hash: InfoHash([hash; 20]),
            key: (Ipv4Addr::new(10, 0, 0, peer), 6881 + u16::from(peer)),
            extra: PeerId([peer; 20]),
            event,
            left_is_zero,
            valid_until: ValidUntil::new(SecondsSinceStart(now), 100),
            max_peers: 0,
            spread_sources: false,
        };
        map.announce(&mut rng, announce, &mut Vec::<()>::new(), |_| ());
    }

    /// Two torrents in the IPv4 map (one with a download), one in IPv6.
    fn sample() -> (Map, Map6) {
        let mut v4 = Map::default();
        announce(&mut v4, 1, 1, SwarmEvent::Started, true, 0);
        announce(&mut v4, 1, 2, SwarmEvent::Started, false, 0);
        announce(&mut v4, 1, 3, SwarmEvent::Started, false, 0);
        announce(&mut v4, 1, 3, SwarmEvent::Completed, true, 10);
        announce(&mut v4, 2, 4, SwarmEvent::None, false, 50);
        let mut v6 = Map6::default();
        let mut rng = SmallRng::seed_from_u64(0);
        v6.announce(
            &mut rng,
            Announce {
                info_hash: InfoHash([1; 20]),
                key: (Ipv6Addr::LOCALHOST, 7000),
                extra: (),
                event: SwarmEvent::Started,
                left_is_zero: false,
                valid_until: ValidUntil::new(SecondsSinceStart(0), 100),
                max_peers: 0,
                spread_sources: false,
            },
            &mut Vec::<()>::new(),
            |_| (),
        );
        (v4, v6)
    }

    /// The file of `sample()` dumped at second `now`.
    fn sample_file(now: u32) -> Vec<u8> {
        let (v4, v6) = sample();
        let mut file = Vec::new();
        encode(&mut file, DaemonKind::Http, T0, |out| {
            write_torrents(out, IpVersion::V4, &v4, SecondsSinceStart(now))?;
            write_torrents(out, IpVersion::V6, &v6, SecondsSinceStart(now))?;
            Ok(())
        })
        .unwrap();
        file
    }

    fn load_bytes(
        bytes: &[u8],
        limits: Limits,
        now: u32,
        unix_now: u64,
    ) -> Result<(Map, Map6, LoadReport), StateError> {
        let (mut v4, mut v6) = (Map::with_limits(limits), Map6::with_limits(limits));
        let report = load_from(
            &mut Cursor::new(bytes),
            bytes.len() as u64,
            DaemonKind::Http,
            SecondsSinceStart(now),
            unix_now,
            |record, peers| match record.family {
                IpVersion::V4 => peers.restore_into(&mut v4),
                IpVersion::V6 => peers.restore_into(&mut v6),
            },
        )?;
        Ok((v4, v6, report))
    }

    /// Recompute the checksum of a file edited by a test.
    fn reseal(bytes: &mut [u8]) {
        let body_end = bytes.len() - TRAILER_LEN as usize;
        let mut hasher = SipHasher13::new();
        hasher.write(&bytes[..body_end]);
        bytes[body_end..].copy_from_slice(&hasher.finish().to_le_bytes());
    }

    #[test]
    fn round_trip_keeps_peers_counts_and_validity() {
        let file = sample_file(20);
        let (v4, v6, report) = load_bytes(&file, Limits::UNLIMITED, 5, T0).unwrap();
        assert_eq!(
            report,
            LoadReport {
                torrents: 3,
                peers: 5,
                expired: 0,
                refused: 0
            }
        );
        let (orig4, orig6) = sample();
        for hash in [1, 2] {
            let hash = InfoHash([hash; 20]);
            assert_eq!(v4.scrape(&hash), orig4.scrape(&hash));
        }
        assert_eq!(v4.scrape(&InfoHash([1; 20])).downloaded, 1);
        assert_eq!(
            (v4.num_torrents(), v4.num_seeders(), v4.num_leechers()),
            (2, 2, 2)
        );
        assert_eq!(
            v6.scrape(&InfoHash([1; 20])),
            orig6.scrape(&InfoHash([1; 20]))
        );
        // Peer 3 announced at 10 (valid until 110): 90 s left at the dump
        // (second 20), so valid until 5 + 90 after a load at second 5.
        let key = (Ipv4Addr::new(10, 0, 0, 3), 6884);
        let (data, seeder) = v4.peer(&InfoHash([1; 20]), &key).unwrap();
        assert!(seeder);
        assert_eq!(data.extra, PeerId([3; 20]));
        // (to the peers' expiry tick of 4 s)
        let left = data.secs_left(SecondsSinceStart(5));
        assert!((88..=96).contains(&left), "{left} s left");
        // Its counted download is remembered: a second completed after the
        // restart counts nothing.
        assert!(data.download_counted());
        let other = (Ipv4Addr::new(10, 0, 0, 2), 6883);
        assert!(
            !v4.peer(&InfoHash([1; 20]), &other)
                .unwrap()
                .0
                .download_counted()
        );
    }

    #[test]
    fn downtime_and_expiry_drop_peers() {
        // Dumped at 20: peers 1, 2 have 80 s left, 3 has 90, 4 has 130.
        let file = sample_file(20);
        let (v4, v6, report) = load_bytes(&file, Limits::UNLIMITED, 0, T0 + 85).unwrap();
        assert_eq!((report.peers, report.expired), (2, 3));
        assert_eq!(v4.num_seeders() + v4.num_leechers(), 2);
        assert_eq!(v6.num_torrents(), 0);
        // Peers already stale at the dump are not written.
        let file = sample_file(101);
        let (v4, _, report) = load_bytes(&file, Limits::UNLIMITED, 0, T0).unwrap();
        assert_eq!((report.torrents, report.peers), (2, 2));
        assert_eq!(v4.num_torrents(), 2);
        // A wall clock that went back counts as no downtime.
        let (_, _, report) = load_bytes(&sample_file(20), Limits::UNLIMITED, 0, 0).unwrap();
        assert_eq!(report.peers, 5);
    }

    #[test]
    fn limits_apply_to_loaded_peers() {
        let file = sample_file(0);
        let limits = Limits {
            max_peers_per_torrent: 2,
            max_peers: 3,
            ..Limits::UNLIMITED
        };
        let (v4, v6, report) = load_bytes(&file, limits, 0, T0).unwrap();
        assert_eq!((report.peers, report.refused), (4, 1));
        assert_eq!(v4.num_seeders() + v4.num_leechers(), 3);
        assert_eq!(
            v4.scrape(&InfoHash([1; 20])).seeders + v4.scrape(&InfoHash([1; 20])).leechers,
            2
        );
        assert_eq!(v6.num_leechers(), 1);
        let limits = Limits {
            max_peers_per_torrent: 0,
            max_peers: 10,
            ..Limits::UNLIMITED
        };
        let (v4, _, _) = load_bytes(&file, limits, 0, T0).unwrap();
        assert_eq!(v4.num_torrents(), 0);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let file = sample_file(0);
        for len in 0..file.len() {
            assert!(
                load_bytes(&file[..len], Limits::UNLIMITED, 0, T0).is_err(),
                "truncated to {len}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_an_error() {
        let file = sample_file(0);
        for i in 0..file.len() {
            for bit in 0..8 {
                let mut bad = file.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    load_bytes(&bad, Limits::UNLIMITED, 0, T0).is_err(),
                    "bit {bit} of byte {i}"
                );
            }
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(load_bytes(&longer, Limits::UNLIMITED, 0, T0).is_err());
    }

    #[test]
    fn incompatible_headers_are_named() {
        let file = sample_file(0);
        // Version 1 (before HTTP peers were keyed by address and port) and
        // any later one are refused.
        for version in [1, 3] {
            let mut bad = file.clone();
            bad[8] = version;
            reseal(&mut bad);
            assert!(matches!(
                load_bytes(&bad, Limits::UNLIMITED, 0, T0),
                Err(StateError::UnsupportedVersion(v)) if v == u16::from(version)
            ));
        }
        let mut bad = file.clone();
        bad[10] = DaemonKind::Udp.code();
        reseal(&mut bad);
        let err = load_bytes(&bad, Limits::UNLIMITED, 0, T0).err().unwrap();
        assert_eq!(err.to_string(), "written by aquatic_udp, not aquatic_http");
        let mut bad = file.clone();
        bad[0] = b'X';
        assert!(matches!(
            load_bytes(&bad, Limits::UNLIMITED, 0, T0),
            Err(StateError::NotAStateFile)
        ));
        let err = load(
            Path::new("/nonexistent/state.bin"),
            DaemonKind::Udp,
            SecondsSinceStart(0),
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
    }

    /// Files with a valid checksum but impossible content: crafted, or
    /// written by a buggy build.
    #[test]
    fn corrupt_content_with_valid_checksum_is_an_error() {
        let file = sample_file(0);
        let first_record = HEADER_LEN as usize;
        let first_peer = first_record + 1 + TORRENT_HEAD_LEN;
        let peer_len = Key::LEN + PeerId::LEN + PEER_TAIL_LEN;
        let edits: Vec<(usize, u8, &str)> = vec![
            (first_record, 9, "unknown record tag"),
            // Peer count 0x01000003: far more than the file holds.
            (first_record + 1 + 20 + 4 + 3, 1, "peer count larger"),
            (first_peer + Key::LEN + PeerId::LEN, 4, "unknown peer flags"),
            (10 + 1, 1, "reserved"),
        ];
        for (at, value, expected) in edits {
            let mut bad = file.clone();
            bad[at] = value;
            reseal(&mut bad);
            let err = load_bytes(&bad, Limits::UNLIMITED, 0, T0).err().unwrap();
            assert!(err.to_string().contains(expected), "{err} at {at}");
        }
        // One peer fewer in the count: the next peer reads as a record tag.
        let mut bad = file.clone();
        bad[first_record + 1 + 24] -= 1;
        reseal(&mut bad);
        assert!(load_bytes(&bad, Limits::UNLIMITED, 0, T0).is_err());
        // A peer record cut out (count and length disagree).
        let mut bad = file.clone();
        bad.drain(first_peer..first_peer + peer_len);
        reseal(&mut bad);
        assert!(load_bytes(&bad, Limits::UNLIMITED, 0, T0).is_err());
        // A daemon that does not read a record's peers.
        let err = load_from(
            &mut Cursor::new(&file),
            file.len() as u64,
            DaemonKind::Http,
            SecondsSinceStart(0),
            T0,
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no known address family"), "{err}");
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::Rng;
        let mut rng = SmallRng::seed_from_u64(7);
        let file = sample_file(0);
        for _ in 0..2000 {
            let mut bad = file.clone();
            for _ in 0..rng.random_range(1..8) {
                let i = rng.random_range(HEADER_LEN as usize..bad.len() - 8);
                bad[i] = rng.random();
            }
            reseal(&mut bad);
            let _ = load_bytes(&bad, Limits::UNLIMITED, 0, T0);
        }
    }

    #[test]
    fn save_and_load_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.bin");
        let (v4, _) = sample();
        save(&path, DaemonKind::Http, |out| {
            Ok(write_torrents(
                out,
                IpVersion::V4,
                &v4,
                SecondsSinceStart(0),
            )?)
        })
        .unwrap();
        let shards = load_shards(
            &StateConfig { path: path.clone() },
            DaemonKind::Http,
            2,
            SecondsSinceStart(0),
            |hash| usize::from(hash.0[0] % 2),
            Map::default,
            |map, _, peers| peers.restore_into(map),
        );
        assert_eq!(shards[0].num_torrents(), 1); // hash [2; 20]
        assert_eq!(shards[1].num_torrents(), 1); // hash [1; 20]
        // A corrupted file: every shard starts empty.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 10;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let shards = load_shards(
            &StateConfig { path },
            DaemonKind::Http,
            2,
            SecondsSinceStart(0),
            |hash| usize::from(hash.0[0] % 2),
            Map::default,
            |map, _, peers| peers.restore_into(map),
        );
        assert!(shards.iter().all(|m| m.num_torrents() == 0));
    }
}
