//! The scrape export: every `[scrape_export] interval` seconds, every
//! torrent's seeders, leechers and downloaded count in a text file, for
//! operators who publish tracker statistics.
//!
//! Format: a header comment line, then one line per torrent, in no
//! particular order, IPv4 and IPv6 swarms summed:
//!
//! ```text
//! # aquatic_udp scrape export at 1700000000 (Unix time): info_hash seeders leechers downloaded
//! 0123456789abcdef0123456789abcdef01234567 12 3 40
//! ```
//!
//! The file is replaced atomically (mode 0644), so a reader never sees a
//! half-written one. Each shard's owner writes its own lines
//! (`Shard::write_scrape_export`, through [`crate::shard_parts`]), streamed
//! to the file in chunks: memory stays bounded however many torrents.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::InfoHash;
use crate::atomic_file::write_atomically;
use crate::peer_store::PeerKey;
use crate::shard_parts::{PartKind, ShardControl};
use crate::supervision::Supervisor;
use crate::torrent_map::{SwarmCounts, TorrentMap};
use aquatic_wire::hex_digits;

/// `[scrape_export]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrapeExportConfig {
    /// Empty: off.
    pub path: PathBuf,
    /// Seconds between exports.
    pub interval: u64,
}

impl Default for ScrapeExportConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            interval: 300,
        }
    }
}

impl ScrapeExportConfig {
    pub fn path(&self) -> Option<&Path> {
        (!self.path.as_os_str().is_empty()).then_some(self.path.as_path())
    }
}

/// One line: `<40 hex digits> <seeders> <leechers> <downloaded>\n`.
pub fn write_line(
    out: &mut dyn Write,
    info_hash: &InfoHash,
    counts: SwarmCounts,
) -> io::Result<()> {
    let mut hex = [0u8; 40];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(info_hash.0) {
        pair.copy_from_slice(&hex_digits(byte));
    }
    out.write_all(&hex)?;
    writeln!(
        out,
        " {} {} {}",
        counts.seeders, counts.leechers, counts.downloaded
    )
}

/// The lines of a shard's two address families, summed per info hash (a
/// torrent's IPv4 and IPv6 swarms are in the same shard).
pub fn write_torrents<K4, V4, K6, V6>(
    out: &mut dyn Write,
    ipv4: &TorrentMap<K4, V4>,
    ipv6: &TorrentMap<K6, V6>,
) -> io::Result<()>
where
    K4: PeerKey,
    K6: PeerKey,
{
    for (info_hash, _) in ipv4.torrents() {
        let (a, b) = (ipv4.scrape(info_hash), ipv6.scrape(info_hash));
        let sum = SwarmCounts {
            seeders: a.seeders + b.seeders,
            leechers: a.leechers + b.leechers,
            downloaded: a.downloaded.saturating_add(b.downloaded),
        };
        write_line(out, info_hash, sum)?;
    }
    for (info_hash, _) in ipv6.torrents() {
        if !ipv4.contains(info_hash) {
            write_line(out, info_hash, ipv6.scrape(info_hash))?;
        }
    }
    Ok(())
}

/// Write the export once: the header line, then every shard's lines.
pub fn export(path: &Path, daemon: &str, control: &ShardControl) -> anyhow::Result<()> {
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    write_atomically(path, 0o644, |out| {
        writeln!(
            out,
            "# {daemon} scrape export at {unix_now} (Unix time): info_hash seeders leechers downloaded"
        )?;
        control.collect(PartKind::ScrapeExport, out)
    })
}

/// Start the exporter (thread `scrape-export`) when `config.path` is set:
/// an export at once, then one every `config.interval` seconds. A failed
/// export is logged and the previous file stays.
pub fn spawn(
    supervisor: &Supervisor,
    config: &ScrapeExportConfig,
    daemon: &'static str,
    control: ShardControl,
) -> anyhow::Result<()> {
    let Some(path) = config.path() else {
        return Ok(());
    };
    let path = path.to_path_buf();
    let interval = Duration::from_secs(config.interval.max(1));
    supervisor.spawn("scrape-export".into(), move || {
        loop {
            let started = Instant::now();
            let result = match export(&path, daemon, &control) {
                Ok(()) => {
                    let written = format!(
                        "written to {} in {:.2} s",
                        path.display(),
                        started.elapsed().as_secs_f64()
                    );
                    log::debug!("scrape export {written}");
                    Ok(written)
                }
                Err(err) => {
                    log::warn!("scrape export to {} failed: {err:#}", path.display());
                    Err(format!("to {} failed: {err:#}", path.display()))
                }
            };
            crate::status::record_file_event("scrape_export", result);
            std::thread::sleep(interval.saturating_sub(started.elapsed()));
        }
    })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;
    use crate::torrent_map::{Announce, SwarmEvent};
    use crate::{SecondsSinceStart, ValidUntil};

    type Map = TorrentMap<(std::net::Ipv4Addr, u16), ()>;

    fn announce(map: &mut Map, hash: u8, peer: u8, event: SwarmEvent) {
        let mut rng = SmallRng::seed_from_u64(0);
        let announce = Announce {
            info_hash: InfoHash([hash; 20]),
            key: (std::net::Ipv4Addr::new(10, 0, 0, peer), 1),
            extra: (),
            event,
            left_is_zero: event == SwarmEvent::Completed,
            valid_until: ValidUntil::new(SecondsSinceStart(0), 100),
            max_peers: 0,
            spread_sources: false,
        };
        map.announce(&mut rng, announce, &mut Vec::<()>::new(), |_| ());
    }

    #[test]
    fn families_are_summed_per_torrent() {
        let (mut v4, mut v6) = (Map::default(), Map::default());
        announce(&mut v4, 0xab, 1, SwarmEvent::Started);
        announce(&mut v4, 0xab, 2, SwarmEvent::Completed);
        announce(&mut v6, 0xab, 1, SwarmEvent::Started);
        announce(&mut v6, 0x01, 1, SwarmEvent::Completed);
        let mut out = Vec::new();
        write_torrents(&mut out, &v4, &v6).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        assert_eq!(
            lines,
            vec![
                format!("{} 1 0 1", "01".repeat(20)),
                format!("{} 1 2 1", "ab".repeat(20)),
            ]
        );
    }
}
