//! The torrents of a load test: info hashes derived from a seed and an index,
//! the skewed choice of which torrent a request is about, and peer ids.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use aquatic_common::{InfoHash, PeerId};
use rand::Rng;
use rand::distr::weighted::WeightedIndex;
use rand_distr::{Distribution, Zipf};

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function: a bijection on u64 that mixes well.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The info hash of torrent `index` under `seed`: 20 bytes of the SplitMix64
/// stream started at `seed`, words `3 * index` to `3 * index + 2`, big-endian.
/// Cheap enough to compute per request; two runs with the same seed use the
/// same torrents, and distinct indices (below 2^64 / 3) give distinct first
/// eight bytes.
pub fn info_hash(seed: u64, index: u64) -> InfoHash {
    let mut bytes = [0u8; 24];
    let first = index.wrapping_mul(3);
    for (j, chunk) in (0u64..).zip(bytes.chunks_exact_mut(8)) {
        let word = mix64(seed.wrapping_add(first.wrapping_add(j + 1).wrapping_mul(GOLDEN_GAMMA)));
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(&bytes[..20]);
    InfoHash(out)
}

/// Write the info hashes of torrents `0..number_of_torrents`, one 40-digit
/// lower-case hex string per line (the format of opentracker's whitelist).
pub fn write_info_hash_file(path: &Path, seed: u64, number_of_torrents: u64) -> anyhow::Result<()> {
    let context = || format!("info hash file {}", path.display());
    let file = File::create(path).with_context(context)?;
    let mut out = BufWriter::new(file);
    for index in 0..number_of_torrents {
        writeln!(out, "{}", info_hash(seed, index)).with_context(context)?;
    }
    out.flush().with_context(context)?;
    Ok(())
}

/// Picks torrent indices: rank k (1-based) with probability proportional to
/// 1 / k^exponent, rank 1 being torrent 0. A couple of `powf`/`exp` per
/// pick, no tables.
#[derive(Clone, Debug)]
pub struct TorrentPicker {
    zipf: Zipf<f64>,
    number_of_torrents: u64,
}

impl TorrentPicker {
    pub fn new(number_of_torrents: u64, exponent: f64) -> anyhow::Result<Self> {
        let zipf = Zipf::new(number_of_torrents as f64, exponent).map_err(|err| {
            anyhow::anyhow!(
                "torrent selection (number_of_torrents {number_of_torrents}, exponent {exponent}): {err}"
            )
        })?;
        Ok(Self {
            zipf,
            number_of_torrents,
        })
    }

    /// A torrent index in `0..number_of_torrents`.
    pub fn pick(&self, rng: &mut impl Rng) -> u64 {
        // The sample is an integral float in 1..=n; `as` saturates.
        let rank = self.zipf.sample(rng) as u64;
        rank.saturating_sub(1).min(self.number_of_torrents - 1)
    }
}

/// What every load tester draws its requests from: their kind (by
/// weight), their torrents (a [`TorrentPicker`] over the info hashes of a
/// seed), the size of a scrape and whether an announcing peer is a seeder.
#[derive(Clone, Debug)]
pub struct RequestMix<K: 'static> {
    kinds: &'static [K],
    weights: WeightedIndex<u32>,
    torrents: TorrentPicker,
    info_hash_seed: u64,
    scrape_max_torrents: usize,
    peer_seeder_probability: f64,
}

impl<K: Copy> RequestMix<K> {
    /// Draw `kinds` by `weights` (one each), torrents from
    /// `number_of_torrents` with `torrent_selection_exponent`; the message
    /// of an error names the config field.
    pub fn new(
        kinds: &'static [K],
        weights: &[u32],
        number_of_torrents: u64,
        torrent_selection_exponent: f64,
        info_hash_seed: u64,
        scrape_max_torrents: usize,
        peer_seeder_probability: f64,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            kinds.len() == weights.len(),
            "requests: {} request kinds but {} weights",
            kinds.len(),
            weights.len()
        );
        let weights = WeightedIndex::new(weights)
            .map_err(|err| anyhow::anyhow!("requests: request weights: {err}"))?;
        Ok(Self {
            kinds,
            weights,
            torrents: TorrentPicker::new(number_of_torrents, torrent_selection_exponent)?,
            info_hash_seed,
            scrape_max_torrents,
            peer_seeder_probability,
        })
    }

    /// The kind of the next request.
    pub fn kind(&self, rng: &mut impl Rng) -> K {
        self.kinds[self.weights.sample(rng)]
    }

    /// A torrent index.
    pub fn torrent(&self, rng: &mut impl Rng) -> u64 {
        self.torrents.pick(rng)
    }

    /// The info hash of torrent `index`.
    pub fn info_hash_of(&self, index: u64) -> InfoHash {
        info_hash(self.info_hash_seed, index)
    }

    /// The info hash of a torrent picked at random.
    pub fn info_hash(&self, rng: &mut impl Rng) -> InfoHash {
        self.info_hash_of(self.torrent(rng))
    }

    /// How many info hashes the next scrape has: 1 to
    /// `scrape_max_torrents`.
    pub fn scrape_len(&self, rng: &mut impl Rng) -> usize {
        rng.random_range(1..=self.scrape_max_torrents)
    }

    /// Whether the next announcing peer is a seeder.
    pub fn seeder(&self, rng: &mut impl Rng) -> bool {
        rng.random_bool(self.peer_seeder_probability)
    }

    /// The seed of the info hashes.
    pub fn info_hash_seed(&self) -> u64 {
        self.info_hash_seed
    }
}

/// Peer ids look like those of a real client: Azureus-style prefix, then
/// random bytes.
pub const PEER_ID_PREFIX: &[u8; 8] = b"-AQ0100-";

/// A fresh peer id: [`PEER_ID_PREFIX`] and 12 random bytes.
pub fn random_peer_id(rng: &mut impl Rng) -> PeerId {
    let mut peer_id = [0u8; 20];
    peer_id[..8].copy_from_slice(PEER_ID_PREFIX);
    rng.fill(&mut peer_id[8..]);
    PeerId(peer_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::collections::HashSet;

    #[test]
    fn info_hashes_are_deterministic_and_distinct() {
        assert_eq!(info_hash(7, 42), info_hash(7, 42));
        assert_ne!(info_hash(7, 42), info_hash(8, 42));
        let hashes: HashSet<InfoHash> = (0..100_000).map(|i| info_hash(0, i)).collect();
        assert_eq!(hashes.len(), 100_000);
        // Pinned so that whitelists written by an older build stay valid.
        assert_eq!(
            info_hash(0, 0).to_hex(),
            "e220a8397b1dcdaf6e789e6aa1b965f406c45d18"
        );
        assert_eq!(
            info_hash(0, 2).to_hex(),
            "2c829abe1f4532e1c584133ac916ab3c3ee57890"
        );
    }

    #[test]
    fn info_hash_file_has_one_hex_hash_per_line() {
        let dir =
            std::env::temp_dir().join(format!("aquatic_load_test_common_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hashes");
        write_info_hash_file(&path, 3, 1000).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1000);
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(InfoHash::from_hex(line), Some(info_hash(3, i as u64)));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn info_hash_file_error_names_the_file() {
        let err = write_info_hash_file(Path::new("/nonexistent/dir/hashes"), 0, 1).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/dir/hashes"));
    }

    #[test]
    fn peer_ids_have_the_prefix_and_differ() {
        let mut rng = SmallRng::seed_from_u64(3);
        let a = random_peer_id(&mut rng);
        let b = random_peer_id(&mut rng);
        assert_eq!(&a.0[..8], PEER_ID_PREFIX);
        assert_ne!(a, b);
    }

    #[test]
    fn picks_are_in_range_and_skewed() {
        let mut rng = SmallRng::seed_from_u64(1);
        let picker = TorrentPicker::new(1000, 1.0).unwrap();
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[picker.pick(&mut rng) as usize] += 1;
        }
        // Rank 1 gets about 1 / H(1000) = 13 %; the tail far less.
        assert!(counts[0] > 10_000, "{}", counts[0]);
        assert!(counts[0] > 50 * counts[999].max(1));
        let single = TorrentPicker::new(1, 1.0).unwrap();
        assert!((0..100).all(|_| single.pick(&mut rng) == 0));
        let uniform = TorrentPicker::new(10, 0.0).unwrap();
        assert!((0..1000).all(|_| uniform.pick(&mut rng) < 10));
    }
}
