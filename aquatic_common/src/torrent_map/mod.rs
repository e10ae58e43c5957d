//! A shard's torrents and the announce rules every tracker shares.
//!
//! Info hash -> swarm ([`PeerStore`]), spread over `SUBMAPS` hash maps so a
//! growing map rehashes a sixteenth at a time (no long stall), given
//! unequal shares of the torrents so that they do not all double at once:
//! memory grows smoothly with the torrent count instead of in steps of
//! two (see `SUBMAP_BOUNDS`). The rules: `stopped` removes the peer at once and never creates
//! a torrent; a torrent exists only while it has peers (the one left
//! empty by a `stopped`, a closed connection or a refused first peer goes
//! at once, with its download count, as cleaning drops torrents whose
//! peers all expired); `completed` counts a download once for as long as
//! the peer is stored, and only from a peer that was not already a
//! seeder; a seeder is answered with leechers only; the announcer is never
//! in its own answer; peer counts always match what is stored.
//! Plain data: the caller passes the time, so tests need no clock.
//!
//! Ceilings ([`Limits`]) bound memory: peers in the map, peers in one
//! torrent, and within each a share per source ([`crate::source`]), so
//! that one address cannot fill a ceiling that everyone shares. A peer
//! that does not fit is answered but not stored, counted by
//! [`Refusal`].
//!
//! Generic over the peer key `K` (UDP and HTTP: address and port;
//! WebSocket: source and peer id) and extra per-peer data `V`.

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;
use rand::Rng;

use crate::peer_store::{PeerKey, PeerStore};
use crate::source::{SourceCounts, SourceKey};
use crate::{InfoHash, SecondsSinceStart, ValidUntil};

mod limits;
mod peer_data;
mod summary;

use limits::count_refusal;
pub use limits::{Limits, Refusal, RefusalCounts};
pub use peer_data::{MAX_PEER_LIFETIME_SECS, PeerData, TICK_SECS};
pub use summary::{LARGEST_SWARMS, SIZE_BUCKET_LABELS, SIZE_BUCKETS, SwarmSummary};

const SUBMAPS: usize = 16;

/// Submap `i` takes the info hashes whose last byte is in
/// `SUBMAP_BOUNDS[i]..SUBMAP_BOUNDS[i + 1]`: bound `i` is
/// `256 * (2^(i/16) - 1)`, rounded, so the shares grow geometrically from
/// 11/256 to 22/256, one octave. A hash table doubles its buckets when it
/// is 7/8 full, so equal submaps all sit between 7/16 and 7/8 full
/// together and the whole map's size jumps by two at each doubling. With
/// shares spread over an octave, the submaps' doublings are spread evenly
/// over each doubling of the torrent count, and the map as a whole stays
/// about 7/8 * ln 2 = 61 % full at every size: the worst case drops from
/// 44 % full to 61 %.
const SUBMAP_BOUNDS: [u16; SUBMAPS + 1] = [
    0, 11, 23, 36, 48, 62, 76, 91, 106, 122, 139, 156, 175, 194, 214, 234, 256,
];

/// [`SUBMAP_BOUNDS`] as a table from the last byte of an info hash.
// Evaluated at compile time: an index out of bounds fails the build.
#[allow(clippy::indexing_slicing)]
const SUBMAP_OF_BYTE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut submap = 0;
    let mut byte = 0;
    while byte < 256 {
        while byte as u16 >= SUBMAP_BOUNDS[submap + 1] {
            submap += 1;
        }
        table[byte] = submap as u8;
        byte += 1;
    }
    table
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SwarmEvent {
    /// A regular announce (also BEP 21 `paused` and `empty`).
    #[default]
    None,
    Started,
    Completed,
    Stopped,
}

pub struct Announce<K, V> {
    pub info_hash: InfoHash,
    pub key: K,
    pub extra: V,
    pub event: SwarmEvent,
    /// `left == 0`; a `completed` announce counts as a seeder too.
    pub left_is_zero: bool,
    pub valid_until: ValidUntil,
    /// Most peers to put in the answer.
    pub max_peers: usize,
    /// Choose the answer's peers from as many sources as possible
    /// ([`PeerStore::select_spread`]) rather than purely at random.
    pub spread_sources: bool,
}

impl<V> Announce<(), V> {
    /// The same announce, from the peer `key` (for a tracker that builds
    /// an announce before it knows the address family).
    pub fn with_key<K>(self, key: K) -> Announce<K, V> {
        Announce {
            info_hash: self.info_hash,
            key,
            extra: self.extra,
            event: self.event,
            left_is_zero: self.left_is_zero,
            valid_until: self.valid_until,
            max_peers: self.max_peers,
            spread_sources: self.spread_sources,
        }
    }
}

/// A swarm's counts after an announce, or for a scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SwarmCounts {
    pub seeders: usize,
    pub leechers: usize,
    pub downloaded: u32,
}

pub struct TorrentMap<K, V> {
    submaps: Vec<HashMap<InfoHash, PeerStore<K, PeerData<V>>>>,
    limits: Limits,
    /// Peers stored, per source.
    sources: SourceCounts,
    num_torrents: usize,
    num_seeders: usize,
    num_leechers: usize,
    refused: RefusalCounts,
    /// As of the last cleaning, and how many cleanings there were.
    summary: SwarmSummary,
    cleanings: u64,
}

impl<K, V> Default for TorrentMap<K, V> {
    fn default() -> Self {
        Self::with_limits(Limits::UNLIMITED)
    }
}

impl<K, V> TorrentMap<K, V> {
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            submaps: (0..SUBMAPS).map(|_| HashMap::new()).collect(),
            limits,
            sources: SourceCounts::default(),
            num_torrents: 0,
            num_seeders: 0,
            num_leechers: 0,
            refused: [0; Refusal::ALL.len()],
            summary: SwarmSummary::default(),
            cleanings: 0,
        }
    }
}

fn submap_of(info_hash: &InfoHash) -> usize {
    // The last byte: daemons choose request workers by the first ones.
    // Always in bounds (a byte indexes 256 entries); compiled without a check.
    SUBMAP_OF_BYTE
        .get(usize::from(info_hash.0[19]))
        .map_or(0, |&submap| usize::from(submap))
}

fn counts_of<K: PeerKey, V>(store: &PeerStore<K, V>) -> SwarmCounts {
    SwarmCounts {
        seeders: store.num_seeders(),
        leechers: store.num_leechers(),
        downloaded: store.downloaded(),
    }
}

/// Move a peer between the counts: it was a seeder (`Some(true)`), a
/// leecher (`Some(false)`) or absent (`None`) and is now `is_seeder`.
fn count_status_change(
    seeders: &mut usize,
    leechers: &mut usize,
    previous: Option<bool>,
    is_seeder: bool,
) {
    if previous == Some(is_seeder) {
        return;
    }
    match previous {
        Some(true) => *seeders -= 1,
        Some(false) => *leechers -= 1,
        None => {}
    }
    if is_seeder {
        *seeders += 1;
    } else {
        *leechers += 1;
    }
}

/// Whether a new peer of `source` fits in `store` and the map.
fn admit<K: PeerKey, V>(
    store: &PeerStore<K, V>,
    limits: &Limits,
    map_full: bool,
    sources: &SourceCounts,
    source: SourceKey,
) -> Result<(), Refusal> {
    if map_full {
        return Err(Refusal::TrackerFull);
    }
    if store.len() >= limits.max_peers_per_torrent {
        return Err(Refusal::TorrentFull);
    }
    if sources.get(&source) >= limits.max_peers_per_source {
        return Err(Refusal::SourceShare);
    }
    let cap = limits.max_peers_per_torrent_per_source;
    if cap != usize::MAX && store.source_count(source, limits.prefixes, cap) >= cap {
        return Err(Refusal::SourceTorrentShare);
    }
    Ok(())
}

impl<K: PeerKey, V> TorrentMap<K, V> {
    /// Apply an announce; append up to `announce.max_peers` peers, made by
    /// `f`, to `out`; return the swarm's counts afterwards.
    pub fn announce<R: Rng, O>(
        &mut self,
        rng: &mut R,
        announce: Announce<K, V>,
        out: &mut Vec<O>,
        f: impl FnMut(&(K, PeerData<V>)) -> O,
    ) -> SwarmCounts {
        let prefixes = self.limits.prefixes;
        let Some(submap) = self.submaps.get_mut(submap_of(&announce.info_hash)) else {
            return SwarmCounts::default();
        };
        if announce.event == SwarmEvent::Stopped {
            // Never create a torrent for a peer that is leaving.
            let Some(store) = submap.get_mut(&announce.info_hash) else {
                return SwarmCounts::default();
            };
            if let Some((_, was_seeder)) = store.remove(&announce.key) {
                self.sources.release(&announce.key.source(prefixes));
                if was_seeder {
                    self.num_seeders -= 1;
                } else {
                    self.num_leechers -= 1;
                }
            }
            let counts = counts_of(store);
            if store.is_empty() {
                self.remove_torrent(&announce.info_hash);
            }
            return counts;
        }

        let source = announce.key.source(prefixes);
        let full = self.num_seeders + self.num_leechers >= self.limits.max_peers;
        let store = match submap.entry(announce.info_hash) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                // No new torrent for a peer that could not be stored anyway.
                let refusal = if full {
                    Some(Refusal::TrackerFull)
                } else if self.sources.get(&source) >= self.limits.max_peers_per_source {
                    Some(Refusal::SourceShare)
                } else {
                    None
                };
                if let Some(refusal) = refusal {
                    count_refusal(&mut self.refused, refusal);
                    return SwarmCounts::default();
                }
                self.num_torrents += 1;
                entry.insert(PeerStore::default())
            }
        };
        let is_seeder = announce.left_is_zero || announce.event == SwarmEvent::Completed;
        let completed = announce.event == SwarmEvent::Completed;
        let mut count_download = false;
        let new_data = PeerData::new(announce.valid_until, announce.extra);
        let limits = &self.limits;
        let sources = &self.sources;
        let previous = store.upsert(
            announce.key,
            is_seeder,
            limits.index_by(),
            |old| {
                // A download counts once while the peer is stored.
                let was_counted = old.is_some_and(PeerData::download_counted);
                count_download = completed && !was_counted;
                new_data.with_download_counted(was_counted || completed)
            },
            |store| admit(store, limits, full, sources, source),
        );
        let mut position = None;
        match previous {
            Ok(upserted) => {
                let previous = upserted.previous;
                position = Some(upserted.position);
                if previous.is_none() {
                    self.sources.acquire(source);
                }
                if previous == Some(true) {
                    // Already seeding here: not a download of ours.
                    count_download = false;
                }
                count_status_change(
                    &mut self.num_seeders,
                    &mut self.num_leechers,
                    previous,
                    is_seeder,
                );
            }
            // No room: answer without storing the peer (nor counting its
            // download: a source over its share could repeat it at will).
            Err(refusal) => count_refusal(&mut self.refused, refusal),
        }
        if count_download {
            store.count_download();
        }
        out.reserve_exact(announce.max_peers.min(store.len()));
        if announce.spread_sources {
            // Each source holds at most its share of the swarm, so this
            // many peers hold `max_peers` sources if the swarm has them.
            let scan = announce
                .max_peers
                .saturating_mul(self.limits.max_peers_per_torrent_per_source.min(4096))
                .saturating_add(announce.max_peers);
            store.select_spread(
                rng,
                &announce.key,
                is_seeder,
                announce.max_peers,
                scan,
                prefixes,
                out,
                f,
            );
        } else {
            store.select_at(
                rng,
                &announce.key,
                position,
                is_seeder,
                announce.max_peers,
                out,
                f,
            );
        }
        let counts = counts_of(store);
        if store.is_empty() {
            // A new torrent whose first peer found no room.
            self.remove_torrent(&announce.info_hash);
        }
        counts
    }

    /// Drop a torrent that has no peers left. Empty torrents never wait for
    /// cleaning: `max_peers` counts peers, so torrents left empty by
    /// announce-then-stop pairs for random info hashes would otherwise pile
    /// up without bound until the next sweep.
    fn remove_torrent(&mut self, info_hash: &InfoHash) {
        if let Some(submap) = self.submaps.get_mut(submap_of(info_hash)) {
            if submap.remove(info_hash).is_some() {
                self.num_torrents -= 1;
            }
        }
    }

    /// The stored data of a peer, and whether it is a seeder.
    pub fn peer(&self, info_hash: &InfoHash, key: &K) -> Option<(&PeerData<V>, bool)> {
        self.submaps
            .get(submap_of(info_hash))?
            .get(info_hash)?
            .get(key)
    }

    /// Remove a peer if `matches` says so (e.g. only when it belongs to
    /// the connection that closed); true when it was removed. Like a
    /// `stopped` announce, a torrent left empty goes with it.
    pub fn remove_peer_if(
        &mut self,
        info_hash: &InfoHash,
        key: &K,
        matches: impl FnOnce(&PeerData<V>) -> bool,
    ) -> bool {
        let Some(store) = self
            .submaps
            .get_mut(submap_of(info_hash))
            .and_then(|m| m.get_mut(info_hash))
        else {
            return false;
        };
        if !store.get(key).is_some_and(|(data, _)| matches(data)) {
            return false;
        }
        match store.remove(key) {
            Some((_, true)) => self.num_seeders -= 1,
            Some((_, false)) => self.num_leechers -= 1,
            None => return false,
        }
        self.sources.release(&key.source(self.limits.prefixes));
        if store.is_empty() {
            self.remove_torrent(info_hash);
        }
        true
    }

    /// Store a peer read back from a state file, within the limits like
    /// an announce (a peer that does not fit is left out and creates no
    /// torrent) but counting no download. True when it was stored.
    pub fn restore_peer(
        &mut self,
        info_hash: InfoHash,
        key: K,
        data: PeerData<V>,
        is_seeder: bool,
    ) -> bool {
        let prefixes = self.limits.prefixes;
        let source = key.source(prefixes);
        let full = self.num_seeders + self.num_leechers >= self.limits.max_peers;
        let Some(submap) = self.submaps.get_mut(submap_of(&info_hash)) else {
            return false;
        };
        if !submap.contains_key(&info_hash)
            && (full
                || self.limits.max_peers_per_torrent == 0
                || self.sources.get(&source) >= self.limits.max_peers_per_source)
        {
            return false;
        }
        let store = submap.entry(info_hash).or_insert_with(|| {
            self.num_torrents += 1;
            PeerStore::default()
        });
        let limits = &self.limits;
        let sources = &self.sources;
        let stored = store.upsert(
            key,
            is_seeder,
            limits.index_by(),
            |_| data,
            |store| admit(store, limits, full, sources, source),
        );
        let stored = match stored {
            Ok(upserted) => {
                let previous = upserted.previous;
                if previous.is_none() {
                    self.sources.acquire(source);
                }
                count_status_change(
                    &mut self.num_seeders,
                    &mut self.num_leechers,
                    previous,
                    is_seeder,
                );
                true
            }
            Err(_) => false,
        };
        if store.is_empty() {
            self.remove_torrent(&info_hash);
        }
        stored
    }

    /// Set a stored torrent's download count from a state file (the
    /// larger of the two, should the file hold the torrent twice).
    pub fn restore_downloaded(&mut self, info_hash: &InfoHash, downloaded: u32) {
        if let Some(store) = self
            .submaps
            .get_mut(submap_of(info_hash))
            .and_then(|m| m.get_mut(info_hash))
        {
            store.set_downloaded(store.downloaded().max(downloaded));
        }
    }

    /// Every stored torrent, with its peers (stale ones not yet cleaned
    /// included: check their `ValidUntil`) and download count.
    pub fn torrents(&self) -> impl Iterator<Item = (&InfoHash, &PeerStore<K, PeerData<V>>)> {
        self.submaps.iter().flat_map(|submap| submap.iter())
    }

    pub fn contains(&self, info_hash: &InfoHash) -> bool {
        self.submaps
            .get(submap_of(info_hash))
            .is_some_and(|m| m.contains_key(info_hash))
    }

    pub fn scrape(&self, info_hash: &InfoHash) -> SwarmCounts {
        self.submaps
            .get(submap_of(info_hash))
            .and_then(|m| m.get(info_hash))
            .map(counts_of)
            .unwrap_or_default()
    }

    /// Drop peers not seen since their `ValidUntil`, then empty torrents.
    pub fn clean(&mut self, now: SecondsSinceStart)
    where
        V: crate::clients::PeerClient<K>,
    {
        let (mut torrents, mut seeders, mut leechers) = (0, 0, 0);
        let prefixes = self.limits.prefixes;
        let by = self.limits.index_by();
        let sources = &mut self.sources;
        let mut summary = SwarmSummary::default();
        // Peers by client, indexed by the two-byte key: an increment per
        // peer, no hashing (512 KiB for the length of the cleaning).
        let mut by_client = vec![0u64; 1 << 16];
        for submap in &mut self.submaps {
            submap.retain(|info_hash, store| {
                store.retain(by, |key, data| {
                    let keep = data.is_valid_at(now);
                    if keep {
                        let client = data.extra.client(key);
                        if let Some(n) = by_client.get_mut(usize::from(client.0)) {
                            *n += 1;
                        }
                    } else {
                        sources.release(&key.source(prefixes));
                    }
                    keep
                });
                seeders += store.num_seeders();
                leechers += store.num_leechers();
                summary.add(info_hash, counts_of(store));
                !store.is_empty()
            });
            submap.shrink_to_fit();
            torrents += submap.len();
        }
        sources.shrink();
        summary.clients = (0..=u16::MAX)
            .zip(by_client)
            .filter(|(_, n)| *n > 0)
            .map(|(key, n)| (crate::clients::ClientKey(key), n))
            .collect();
        self.num_torrents = torrents;
        self.num_seeders = seeders;
        self.num_leechers = leechers;
        self.summary = summary;
        self.cleanings += 1;
    }

    /// The swarm sizes and largest swarms as of the last cleaning, and
    /// how many cleanings there have been (to publish only what is new).
    pub fn summary(&self) -> (&SwarmSummary, u64) {
        (&self.summary, self.cleanings)
    }

    pub fn num_torrents(&self) -> usize {
        self.num_torrents
    }

    pub fn num_seeders(&self) -> usize {
        self.num_seeders
    }

    pub fn num_leechers(&self) -> usize {
        self.num_leechers
    }

    /// Sources holding at least one peer here.
    pub fn num_sources(&self) -> usize {
        self.sources.sources()
    }

    /// Peers held by `source` here.
    pub fn source_peers(&self, source: &SourceKey) -> usize {
        self.sources.get(source)
    }

    /// Announces whose peer was not stored, by [`Refusal`].
    pub fn refused(&self) -> RefusalCounts {
        self.refused
    }

    /// All announces whose peer was not stored.
    pub fn refused_peers(&self) -> u64 {
        self.refused.iter().sum()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourcePrefixes;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    /// Test keys: the source is the key's hundreds (keys 0..100 are one
    /// source, 100..200 the next, ...).
    impl PeerKey for u32 {
        fn source(&self, _: SourcePrefixes) -> SourceKey {
            SourceKey(u64::from(*self / 100))
        }
    }

    fn announce(hash: u8, key: u32, left_is_zero: bool) -> Announce<u32, ()> {
        Announce {
            info_hash: InfoHash([hash; 20]),
            key,
            extra: (),
            event: SwarmEvent::None,
            left_is_zero,
            valid_until: ValidUntil::new(SecondsSinceStart(0), 100),
            max_peers: 10,
            spread_sources: false,
        }
    }

    fn limits(max_peers_per_torrent: usize, max_peers: usize) -> Limits {
        Limits {
            max_peers_per_torrent,
            max_peers,
            ..Limits::UNLIMITED
        }
    }

    #[test]
    fn submap_shares_span_one_octave() {
        for (i, bound) in SUBMAP_BOUNDS.iter().enumerate() {
            let exact = 256.0 * (2f64.powf(i as f64 / SUBMAPS as f64) - 1.0);
            assert_eq!(f64::from(*bound), exact.round(), "bound {i}");
        }
        let mut shares = [0u32; SUBMAPS];
        for byte in 0..=255u8 {
            let mut hash = [0; 20];
            hash[19] = byte;
            shares[submap_of(&InfoHash(hash))] += 1;
        }
        assert_eq!((shares[0], shares[SUBMAPS - 1]), (11, 22));
        assert!(shares.windows(2).all(|pair| pair[0] <= pair[1] + 1));
    }

    /// The torrent table's size follows the torrent count without the
    /// doubling steps of equal submaps: over a doubling of the torrents,
    /// slots per torrent vary by much less than the 2x of one hash table
    /// (checked to fail with equal shares).
    #[test]
    fn torrent_table_grows_smoothly() {
        let mut map: TorrentMap<u32, ()> = TorrentMap::default();
        let mut rng = SmallRng::seed_from_u64(7);
        let mut out: Vec<u32> = Vec::new();
        let (mut lowest, mut highest) = (f64::MAX, 0f64);
        for n in 1..=16384u32 {
            let mut hash = [0u8; 20];
            rng.fill(&mut hash[..]);
            let mut request = announce(0, n, false);
            request.info_hash = InfoHash(hash);
            map.announce(&mut rng, request, &mut out, |(k, _)| *k);
            if n >= 8192 {
                let slots: usize = map.submaps.iter().map(|submap| submap.capacity()).sum();
                let per_torrent = slots as f64 / map.num_torrents() as f64;
                lowest = lowest.min(per_torrent);
                highest = highest.max(per_torrent);
            }
        }
        assert_eq!(map.num_torrents(), 16384);
        assert!(
            highest / lowest < 1.4,
            "{lowest:.2}..{highest:.2} slots per torrent"
        );
    }

    #[test]
    fn limits_bound_peers_and_torrents_but_answer_everyone() {
        let mut map = TorrentMap::with_limits(limits(3, 5));
        let mut rng = SmallRng::seed_from_u64(0);
        let mut out: Vec<u32> = Vec::new();
        for key in 0..4 {
            out.clear();
            let counts = map.announce(&mut rng, announce(1, key, false), &mut out, |(k, _)| *k);
            assert_eq!(counts.leechers, (key as usize + 1).min(3));
        }
        // The refused fourth peer still got the stored peers.
        assert_eq!(out.len(), 3);
        assert_eq!(map.refused_peers(), 1);
        // Known peers can still change status in a full swarm.
        let counts = map.announce(&mut rng, announce(1, 0, true), &mut out, |(k, _)| *k);
        assert_eq!((counts.seeders, counts.leechers), (1, 2));
        // Total bound: two more torrents fit, then new torrents are refused.
        map.announce(&mut rng, announce(2, 0, false), &mut out, |(k, _)| *k);
        map.announce(&mut rng, announce(3, 0, false), &mut out, |(k, _)| *k);
        assert_eq!(map.num_torrents(), 3);
        let counts = map.announce(&mut rng, announce(4, 0, false), &mut out, |(k, _)| *k);
        assert_eq!(counts, SwarmCounts::default());
        assert_eq!(map.num_torrents(), 3);
        assert_eq!(map.num_seeders() + map.num_leechers(), 5);
        // A new peer in an existing torrent is refused too; a known one refreshes.
        map.announce(&mut rng, announce(2, 7, false), &mut out, |(k, _)| *k);
        assert_eq!(map.scrape(&InfoHash([2; 20])).leechers, 1);
        assert_eq!(map.refused_peers(), 3);
        // Cleaning frees room again (once the peers' 4-second tick ends).
        map.clean(SecondsSinceStart(104));
        assert_eq!(map.num_torrents(), 0);
        map.announce(&mut rng, announce(4, 0, false), &mut out, |(k, _)| *k);
        assert_eq!(map.num_torrents(), 1);
    }

    #[test]
    fn no_torrent_outlives_its_last_peer() {
        let mut map = TorrentMap::with_limits(limits(10, 10));
        let mut rng = SmallRng::seed_from_u64(0);
        let mut out: Vec<u32> = Vec::new();
        // Announce-then-stop pairs for ever new info hashes, far more than
        // max_peers: nothing stays behind.
        for hash in 0..=255u8 {
            map.announce(&mut rng, announce(hash, 1, false), &mut out, |(k, _)| *k);
            let stop = Announce {
                event: SwarmEvent::Stopped,
                ..announce(hash, 1, false)
            };
            let counts = map.announce(&mut rng, stop, &mut out, |(k, _)| *k);
            assert_eq!(counts, SwarmCounts::default());
            assert!(!map.contains(&InfoHash([hash; 20])));
        }
        assert_eq!(map.num_torrents(), 0);
        assert_eq!(map.torrents().count(), 0);
        assert_eq!(map.refused_peers(), 0);

        // The last peer of a torrent removed for its closed connection.
        map.announce(&mut rng, announce(1, 1, false), &mut out, |(k, _)| *k);
        map.announce(&mut rng, announce(1, 2, true), &mut out, |(k, _)| *k);
        assert!(map.remove_peer_if(&InfoHash([1; 20]), &1, |_| true));
        assert_eq!(map.num_torrents(), 1);
        assert!(map.remove_peer_if(&InfoHash([1; 20]), &2, |_| true));
        assert_eq!(map.num_torrents(), 0);
        assert!(!map.contains(&InfoHash([1; 20])));
        // A stop of a peer that is not there leaves the others' torrent.
        map.announce(&mut rng, announce(2, 1, false), &mut out, |(k, _)| *k);
        let stop = Announce {
            event: SwarmEvent::Stopped,
            ..announce(2, 9, false)
        };
        assert_eq!(
            map.announce(&mut rng, stop, &mut out, |(k, _)| *k).leechers,
            1
        );
        assert_eq!(map.num_torrents(), 1);
    }

    #[test]
    fn a_first_peer_without_room_creates_no_torrent() {
        let mut map = TorrentMap::with_limits(limits(0, 10));
        let mut rng = SmallRng::seed_from_u64(0);
        let mut out: Vec<u32> = Vec::new();
        for hash in 0..5 {
            let counts = map.announce(&mut rng, announce(hash, 1, false), &mut out, |(k, _)| *k);
            assert_eq!(counts, SwarmCounts::default());
        }
        assert_eq!(map.num_torrents(), 0);
        assert_eq!(map.torrents().count(), 0);
        assert_eq!(map.refused_peers(), 5);
    }

    #[test]
    fn one_source_cannot_fill_a_ceiling_that_others_share() {
        let mut map = TorrentMap::with_limits(Limits {
            max_peers_per_torrent: 1000,
            max_peers: 100,
            max_peers_per_source: 10,
            max_peers_per_torrent_per_source: 4,
            prefixes: SourcePrefixes::default(),
        });
        let mut rng = SmallRng::seed_from_u64(0);
        let mut out: Vec<u32> = Vec::new();
        // Source 0 (keys 0..100) in one torrent: 4 stored, the rest refused.
        for key in 0..50 {
            map.announce(&mut rng, announce(1, key, false), &mut out, |(k, _)| *k);
        }
        assert_eq!(map.scrape(&InfoHash([1; 20])).leechers, 4);
        assert_eq!(map.refused()[Refusal::SourceTorrentShare as usize], 46);
        // Its known peers still refresh and change status.
        let counts = map.announce(&mut rng, announce(1, 2, true), &mut out, |(k, _)| *k);
        assert_eq!((counts.seeders, counts.leechers), (1, 3));
        // Another source joins that torrent freely.
        for key in 100..104 {
            map.announce(&mut rng, announce(1, key, false), &mut out, |(k, _)| *k);
        }
        assert_eq!(map.scrape(&InfoHash([1; 20])).leechers, 3 + 4);
        // Source 0 across torrents: 10 peers in all, then refused, with no
        // torrent made for it.
        for hash in 2..30 {
            map.announce(&mut rng, announce(hash, 7, false), &mut out, |(k, _)| *k);
        }
        assert_eq!(map.source_peers(&SourceKey(0)), 10);
        assert_eq!(map.num_torrents(), 1 + 6);
        assert_eq!(map.refused()[Refusal::SourceShare as usize], 28 - 6);
        // Source 2 is not touched by it.
        let counts = map.announce(&mut rng, announce(40, 250, false), &mut out, |(k, _)| *k);
        assert_eq!(counts.leechers, 1);
        // Leaving frees the share at once: a stop, and cleaning.
        let stop = Announce {
            event: SwarmEvent::Stopped,
            ..announce(2, 7, false)
        };
        map.announce(&mut rng, stop, &mut out, |(k, _)| *k);
        assert_eq!(map.source_peers(&SourceKey(0)), 9);
        map.announce(&mut rng, announce(60, 7, false), &mut out, |(k, _)| *k);
        assert_eq!(map.source_peers(&SourceKey(0)), 10);
        map.clean(SecondsSinceStart(104));
        assert_eq!(map.num_sources(), 0);
        assert_eq!(map.source_peers(&SourceKey(0)), 0);
        assert_eq!(map.num_torrents(), 0);
    }

    #[test]
    fn per_source_budgets_hold_in_large_swarms() {
        // Past the index threshold the per-torrent count walks the index.
        let mut map = TorrentMap::with_limits(Limits {
            max_peers_per_torrent_per_source: 30,
            ..Limits::UNLIMITED
        });
        let mut rng = SmallRng::seed_from_u64(0);
        let mut out: Vec<u32> = Vec::new();
        for source in 0..20u32 {
            for key in 0..50 {
                map.announce(
                    &mut rng,
                    announce(1, source * 100 + key, false),
                    &mut out,
                    |(k, _)| *k,
                );
            }
        }
        assert_eq!(map.scrape(&InfoHash([1; 20])).leechers, 20 * 30);
        for source in 0..20 {
            assert_eq!(map.source_peers(&SourceKey(source)), 30);
        }
        // Removing one lets exactly one more in.
        assert!(map.remove_peer_if(&InfoHash([1; 20]), &5, |_| true));
        map.announce(&mut rng, announce(1, 99, false), &mut out, |(k, _)| *k);
        map.announce(&mut rng, announce(1, 98, false), &mut out, |(k, _)| *k);
        assert_eq!(map.source_peers(&SourceKey(0)), 30);
        assert!(map.peer(&InfoHash([1; 20]), &99).is_some());
        assert!(map.peer(&InfoHash([1; 20]), &98).is_none());
    }

    #[test]
    fn a_download_counts_once_per_stored_peer() {
        let mut map = TorrentMap::<u32, ()>::default();
        let mut rng = SmallRng::seed_from_u64(0);
        let mut out: Vec<u32> = Vec::new();
        let completed = |key| Announce {
            event: SwarmEvent::Completed,
            ..announce(1, key, true)
        };
        // Leecher, completed, leecher again, completed again: one download.
        for _ in 0..3 {
            map.announce(&mut rng, announce(1, 1, false), &mut out, |(k, _)| *k);
            map.announce(&mut rng, completed(1), &mut out, |(k, _)| *k);
        }
        assert_eq!(map.scrape(&InfoHash([1; 20])).downloaded, 1);
        assert!(
            map.peer(&InfoHash([1; 20]), &1)
                .unwrap()
                .0
                .download_counted()
        );
        // A seeder that says completed downloaded nothing here.
        map.announce(&mut rng, announce(1, 2, true), &mut out, |(k, _)| *k);
        map.announce(&mut rng, completed(2), &mut out, |(k, _)| *k);
        // A peer new with completed counts.
        map.announce(&mut rng, completed(3), &mut out, |(k, _)| *k);
        assert_eq!(map.scrape(&InfoHash([1; 20])).downloaded, 2);
        // A refused peer's completed does not count.
        let mut full = TorrentMap::<u32, ()>::with_limits(limits(1, 10));
        full.announce(&mut rng, announce(1, 1, false), &mut out, |(k, _)| *k);
        for _ in 0..5 {
            full.announce(&mut rng, completed(2), &mut out, |(k, _)| *k);
        }
        assert_eq!(full.scrape(&InfoHash([1; 20])).downloaded, 0);
        assert_eq!(full.refused()[Refusal::TorrentFull as usize], 5);
    }

    #[test]
    fn peer_data_keeps_expiry_and_flag_apart() {
        let now = SecondsSinceStart(7);
        let data = PeerData::new(ValidUntil::new(now, 100), ());
        // Valid until 107, the end of its tick (104 to 107).
        assert!(data.is_valid_at(SecondsSinceStart(107)));
        assert!(!data.is_valid_at(SecondsSinceStart(108)));
        assert_eq!(data.secs_left(now), 100);
        assert_eq!(data.secs_left(SecondsSinceStart(108)), 0);
        assert!(!data.download_counted());
        let counted = data.with_download_counted(true);
        assert!(counted.download_counted());
        assert!(counted.is_valid_at(SecondsSinceStart(107)));
        assert!(!counted.is_valid_at(SecondsSinceStart(108)));
        assert_eq!(counted.with_download_counted(false), data);
        // Around the stamp's wrap, at any time since the start: valid for
        // the whole lifetime, expired after it, for 18 hours.
        for start in [0u32, 131_000, 131_068, u32::MAX / 2, u32::MAX - 200_000] {
            let now = SecondsSinceStart(start);
            for lifetime in [0, 1, 2000, MAX_PEER_LIFETIME_SECS] {
                let data = PeerData::new(ValidUntil::new(now, lifetime), ());
                assert!(data.is_valid_at(now), "{start} {lifetime}");
                assert!(
                    data.is_valid_at(now.add_secs(lifetime)),
                    "{start} {lifetime}"
                );
                for late in [TICK_SECS, 60, 3600, 18 * 3600] {
                    let after = now.add_secs(lifetime + late);
                    assert!(!data.is_valid_at(after), "{start} {lifetime} +{late}");
                }
            }
        }
        // A UDP peer's entry is 10 bytes (address, port, expiry, client);
        // its torrent's bucket 40.
        type UdpEntry = (
            (std::net::Ipv4Addr, u16),
            PeerData<crate::clients::ClientKey>,
        );
        assert_eq!(std::mem::size_of::<UdpEntry>(), 10);
        assert_eq!(
            std::mem::size_of::<(
                InfoHash,
                PeerStore<(std::net::Ipv4Addr, u16), PeerData<crate::clients::ClientKey>>
            )>(),
            40
        );
    }
}
