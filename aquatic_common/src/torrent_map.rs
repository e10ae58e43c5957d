//! A shard's torrents and the announce rules every tracker shares.
//!
//! Info hash -> swarm ([`PeerStore`]), spread over `SUBMAPS` hash maps so a
//! growing map rehashes a sixteenth at a time (lower peak memory, no long
//! stall). The rules: `stopped` removes the peer at once and never creates
//! a torrent; a torrent exists only while it has peers (the one left
//! empty by a `stopped`, a closed connection or a refused first peer goes
//! at once, with its download count, as cleaning drops torrents whose
//! peers all expired); `completed` counts a download once per peer that was not
//! already a seeder; a seeder is answered with leechers only; the announcer
//! is never in its own answer; peer counts always match what is stored.
//! Plain data: the caller passes the time, so tests need no clock.
//!
//! Generic over the peer key `K` (UDP: address and port; HTTP: peer id and
//! address; WebSocket: peer id) and extra per-peer data `V`.

use std::hash::Hash;

use hashbrown::HashMap;
use rand::Rng;

use crate::peer_store::PeerStore;
use crate::{InfoHash, SecondsSinceStart, ValidUntil};

const SUBMAPS: usize = 16;

/// What is stored for a peer besides its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerData<V> {
    pub valid_until: ValidUntil,
    pub extra: V,
}

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
}

/// A swarm's counts after an announce, or for a scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SwarmCounts {
    pub seeders: usize,
    pub leechers: usize,
    pub downloaded: u32,
}

/// Memory ceilings. A peer that does not fit is not stored, but its
/// announce is still answered (with the peers that are); a flood of new
/// torrents or peers then costs bounded memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_peers_per_torrent: usize,
    /// Peers over all torrents of this map.
    pub max_peers: usize,
}

impl Limits {
    pub const UNLIMITED: Limits = Limits {
        max_peers_per_torrent: usize::MAX,
        max_peers: usize::MAX,
    };
}

pub struct TorrentMap<K, V> {
    submaps: Vec<HashMap<InfoHash, PeerStore<K, PeerData<V>>>>,
    limits: Limits,
    num_torrents: usize,
    num_seeders: usize,
    num_leechers: usize,
    /// Announces whose peer was not stored because of `limits`.
    refused_peers: u64,
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
            num_torrents: 0,
            num_seeders: 0,
            num_leechers: 0,
            refused_peers: 0,
        }
    }
}

fn submap_of(info_hash: &InfoHash) -> usize {
    // The last byte: daemons choose request workers by the first ones.
    usize::from(info_hash.0[19]) % SUBMAPS
}

fn counts_of<K: Copy + Eq + Hash, V>(store: &PeerStore<K, V>) -> SwarmCounts {
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

impl<K: Copy + Eq + Hash, V> TorrentMap<K, V> {
    /// Apply an announce; append up to `announce.max_peers` peers, made by
    /// `f`, to `out`; return the swarm's counts afterwards.
    pub fn announce<R: Rng, O>(
        &mut self,
        rng: &mut R,
        announce: Announce<K, V>,
        out: &mut Vec<O>,
        f: impl FnMut(&(K, PeerData<V>)) -> O,
    ) -> SwarmCounts {
        let Some(submap) = self.submaps.get_mut(submap_of(&announce.info_hash)) else {
            return SwarmCounts::default();
        };
        if announce.event == SwarmEvent::Stopped {
            // Never create a torrent for a peer that is leaving.
            let Some(store) = submap.get_mut(&announce.info_hash) else {
                return SwarmCounts::default();
            };
            match store.remove(&announce.key) {
                Some((_, true)) => self.num_seeders -= 1,
                Some((_, false)) => self.num_leechers -= 1,
                None => {}
            }
            let counts = counts_of(store);
            if store.is_empty() {
                self.remove_torrent(&announce.info_hash);
            }
            return counts;
        }

        let full = self.num_seeders + self.num_leechers >= self.limits.max_peers;
        if full && !submap.contains_key(&announce.info_hash) {
            // No new torrent for a peer that could not be stored anyway.
            self.refused_peers += 1;
            return SwarmCounts::default();
        }
        let store = submap.entry(announce.info_hash).or_insert_with(|| {
            self.num_torrents += 1;
            PeerStore::default()
        });
        // When the map is full, only peers already stored are refreshed.
        let max_len = if full {
            store.len()
        } else {
            self.limits.max_peers_per_torrent
        };
        let is_seeder = announce.left_is_zero || announce.event == SwarmEvent::Completed;
        let data = PeerData {
            valid_until: announce.valid_until,
            extra: announce.extra,
        };
        let previous = store.upsert(announce.key, data, is_seeder, max_len);
        match previous {
            Ok(previous) => count_status_change(
                &mut self.num_seeders,
                &mut self.num_leechers,
                previous,
                is_seeder,
            ),
            // No room: answer without storing the peer.
            Err(_) => self.refused_peers += 1,
        }
        if announce.event == SwarmEvent::Completed && previous != Ok(Some(true)) {
            store.count_download();
        }
        out.reserve_exact(announce.max_peers.min(store.len()));
        store.select(rng, &announce.key, is_seeder, announce.max_peers, out, f);
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
        let Some(submap) = self.submaps.get_mut(submap_of(&info_hash)) else {
            return false;
        };
        let full = self.num_seeders + self.num_leechers >= self.limits.max_peers;
        let max_len = match submap.get(&info_hash) {
            Some(store) if full => store.len(),
            Some(_) => self.limits.max_peers_per_torrent,
            None if full || self.limits.max_peers_per_torrent == 0 => return false,
            None => self.limits.max_peers_per_torrent,
        };
        let store = submap.entry(info_hash).or_insert_with(|| {
            self.num_torrents += 1;
            PeerStore::default()
        });
        match store.upsert(key, data, is_seeder, max_len) {
            Ok(previous) => {
                count_status_change(
                    &mut self.num_seeders,
                    &mut self.num_leechers,
                    previous,
                    is_seeder,
                );
                true
            }
            Err(_) => false,
        }
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
    pub fn clean(&mut self, now: SecondsSinceStart) {
        let (mut torrents, mut seeders, mut leechers) = (0, 0, 0);
        for submap in &mut self.submaps {
            submap.retain(|_, store| {
                store.retain(|_, data| data.valid_until.is_valid_at(now));
                seeders += store.num_seeders();
                leechers += store.num_leechers();
                !store.is_empty()
            });
            submap.shrink_to_fit();
            torrents += submap.len();
        }
        self.num_torrents = torrents;
        self.num_seeders = seeders;
        self.num_leechers = leechers;
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

    pub fn refused_peers(&self) -> u64 {
        self.refused_peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn announce(hash: u8, key: u32, left_is_zero: bool) -> Announce<u32, ()> {
        Announce {
            info_hash: InfoHash([hash; 20]),
            key,
            extra: (),
            event: SwarmEvent::None,
            left_is_zero,
            valid_until: ValidUntil::new(SecondsSinceStart(0), 100),
            max_peers: 10,
        }
    }

    #[test]
    fn limits_bound_peers_and_torrents_but_answer_everyone() {
        let mut map = TorrentMap::with_limits(Limits {
            max_peers_per_torrent: 3,
            max_peers: 5,
        });
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
        // Cleaning frees room again.
        map.clean(SecondsSinceStart(101));
        assert_eq!(map.num_torrents(), 0);
        map.announce(&mut rng, announce(4, 0, false), &mut out, |(k, _)| *k);
        assert_eq!(map.num_torrents(), 1);
    }

    #[test]
    fn no_torrent_outlives_its_last_peer() {
        let mut map = TorrentMap::with_limits(Limits {
            max_peers_per_torrent: 10,
            max_peers: 10,
        });
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
        let mut map = TorrentMap::with_limits(Limits {
            max_peers_per_torrent: 0,
            max_peers: 10,
        });
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
}
