//! Write a swarm state file of `PEERS` peers for the state-file benchmark
//! (`scripts/bench/state_file.sh`): what aquatic_udp or aquatic_http would
//! save with that many IPv4 peers, so that its load and save can be timed
//! without first announcing millions of peers.
//!
//! usage: state_file udp|http PEERS FILE
//!
//! Swarm sizes cycle through 1, 1, 1, 2, 3, 5, 8, 13, 20 and 46 peers (10
//! on average; most torrents small, a few larger), every peer a random
//! address and port (distinct within its swarm), a third of them seeders,
//! each with 600 to 1899 seconds left. Deterministic (a fixed seed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufWriter, Write};

use aquatic_common::state::{self, DaemonKind};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const SIZES: [u32; 10] = [1, 1, 1, 2, 3, 5, 8, 13, 20, 46];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, kind, peers, path] = args.as_slice() else {
        anyhow::bail!("usage: state_file udp|http PEERS FILE");
    };
    let (kind, extra_len) = match kind.as_str() {
        "udp" => (DaemonKind::Udp, 0),
        "http" => (DaemonKind::Http, 20),
        other => anyhow::bail!("unknown daemon {other}"),
    };
    let peers: u64 = peers.parse()?;
    let written_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let file = std::fs::File::create(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rng = SmallRng::seed_from_u64(42);
    let len = state::encode(&mut out, kind, written_at, |body| {
        let mut left = peers;
        let mut torrent: u64 = 0;
        let mut record = Vec::with_capacity(64);
        while left > 0 {
            let size = SIZES[(torrent % 10) as usize].min(u32::try_from(left)?);
            record.clear();
            record.push(4u8); // IPv4
            let mut hash = [0u8; 20];
            hash[..8].copy_from_slice(&torrent.to_le_bytes());
            hash[8..].copy_from_slice(&rng.random::<[u8; 12]>());
            record.extend_from_slice(&hash);
            record.extend_from_slice(&rng.random_range(0u32..100).to_le_bytes());
            record.extend_from_slice(&size.to_le_bytes());
            body.write_all(&record)?;
            for n in 0..size {
                record.clear();
                // Distinct within the swarm: the port is the index.
                record.extend_from_slice(
                    &rng.random_range(0x0100_0000u32..0xdf00_0000).to_be_bytes(),
                );
                record.extend_from_slice(&(1024 + n as u16).to_le_bytes());
                record.extend(std::iter::repeat_n(0xab, extra_len));
                let seeder = rng.random_range(0..3) == 0;
                record.push(u8::from(seeder));
                record.extend_from_slice(&rng.random_range(600u32..1900).to_le_bytes());
                body.write_all(&record)?;
            }
            left -= u64::from(size);
            torrent += 1;
        }
        Ok(())
    })?;
    out.flush()?;
    println!("{path}: {peers} peers, {len} bytes");
    Ok(())
}
