//! Compact storage of one swarm's peers.
//!
//! All peers sit in one vector, leechers first, then seeders, so the peer
//! counts are the lengths of the two runs and random response peers of
//! either kind are a window of a slice. Small swarms (most torrents) are
//! searched linearly; past `INDEX_ABOVE` peers a hash index of `u32`
//! positions is added. Per IPv4 peer that is 12 bytes, plus about 8 for the
//! index in large swarms: a fraction of two hash maps' cost. The swarm's
//! completed-download count lives here too.
//!
//! Every move inside the vector goes through `swap`, which keeps the index
//! right; the tests compare every operation against a plain map model.

use std::hash::{BuildHasher, Hash};

use hashbrown::{DefaultHashBuilder, HashTable};
use rand::Rng;

use crate::peer_selection::select_response_peers;

/// Swarms larger than this get a hash index.
const INDEX_ABOVE: usize = 32;
/// A swarm cleaned down below this loses its index (well below
/// `INDEX_ABOVE`, so a swarm at the edge does not flip back and forth).
const INDEX_DROP_BELOW: usize = 16;

struct Index {
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Index {
    fn build<K: Hash, V>(entries: &[(K, V)]) -> Box<Self> {
        let hasher = DefaultHashBuilder::default();
        let mut table = HashTable::with_capacity(entries.len());
        for (i, (k, _)) in entries.iter().enumerate() {
            let i = i as u32; // len is kept below u32::MAX by `upsert`
            table.insert_unique(hasher.hash_one(k), i, |&j| {
                // Every stored position is in range; 0 would only misplace.
                entries
                    .get(j as usize)
                    .map_or(0, |(k, _)| hasher.hash_one(k))
            });
        }
        Box::new(Self { table, hasher })
    }
}

/// The peers of one swarm, keyed by `K` (e.g. IP and port) with data `V`.
pub struct PeerStore<K, V> {
    /// Leechers at `..num_leechers`, seeders after.
    entries: Vec<(K, V)>,
    num_leechers: u32,
    /// Completed downloads reported to this swarm (the scrape's
    /// "downloaded"). Kept here because it fills the padding beside
    /// `num_leechers`: one torrent map bucket fewer bytes.
    downloaded: u32,
    index: Option<Box<Index>>,
}

impl<K, V> Default for PeerStore<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            num_leechers: 0,
            downloaded: 0,
            index: None,
        }
    }
}

impl<K: std::fmt::Debug + Copy + Eq + Hash, V: std::fmt::Debug> std::fmt::Debug
    for PeerStore<K, V>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerStore")
            .field("leechers", &self.leechers())
            .field("seeders", &self.seeders())
            .finish()
    }
}

/// The swarm already holds `MAX_PEERS`: the peer was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwarmFull;

/// Most peers one swarm holds: positions are `u32`.
pub const MAX_PEERS: usize = u32::MAX as usize - 1;

impl<K: Copy + Eq + Hash, V> PeerStore<K, V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn downloaded(&self) -> u32 {
        self.downloaded
    }

    /// Set the download count (a swarm read back from a state file).
    pub fn set_downloaded(&mut self, downloaded: u32) {
        self.downloaded = downloaded;
    }

    /// Count one completed download (saturating).
    pub fn count_download(&mut self) {
        self.downloaded = self.downloaded.saturating_add(1);
    }

    pub fn num_leechers(&self) -> usize {
        self.num_leechers as usize
    }

    pub fn num_seeders(&self) -> usize {
        self.entries.len() - self.num_leechers()
    }

    pub fn leechers(&self) -> &[(K, V)] {
        self.entries.get(..self.num_leechers()).unwrap_or(&[])
    }

    pub fn seeders(&self) -> &[(K, V)] {
        self.entries.get(self.num_leechers()..).unwrap_or(&[])
    }

    fn position(&self, key: &K) -> Option<usize> {
        match &self.index {
            Some(index) => index
                .table
                .find(index.hasher.hash_one(key), |&i| {
                    self.entries.get(i as usize).is_some_and(|e| e.0 == *key)
                })
                .map(|&i| i as usize),
            None => self.entries.iter().position(|e| e.0 == *key),
        }
    }

    /// The peer's data and whether it is a seeder.
    pub fn get(&self, key: &K) -> Option<(&V, bool)> {
        let pos = self.position(key)?;
        let seeder = pos >= self.num_leechers();
        self.entries.get(pos).map(|e| (&e.1, seeder))
    }

    /// Insert a peer or replace its data and status. Returns whether it was
    /// present before as a seeder (`Some(true)`) or leecher (`Some(false)`),
    /// or `Err(SwarmFull)` if it was absent and the swarm already holds
    /// `max_len` peers (or `MAX_PEERS`).
    pub fn upsert(
        &mut self,
        key: K,
        value: V,
        is_seeder: bool,
        max_len: usize,
    ) -> Result<Option<bool>, SwarmFull> {
        if let Some(pos) = self.position(&key) {
            let was_seeder = pos >= self.num_leechers();
            if let Some(entry) = self.entries.get_mut(pos) {
                entry.1 = value;
            }
            match (was_seeder, is_seeder) {
                (true, false) => {
                    // First seeder's place becomes the last leecher's.
                    self.swap(pos, self.num_leechers());
                    self.num_leechers += 1;
                }
                (false, true) => {
                    self.swap(pos, self.num_leechers() - 1);
                    self.num_leechers -= 1;
                }
                _ => {}
            }
            return Ok(Some(was_seeder));
        }
        if self.entries.len() >= max_len.min(MAX_PEERS) {
            return Err(SwarmFull);
        }
        if self.entries.len() == self.entries.capacity() {
            // Grow 1, 2, 4, ...: most swarms stay tiny.
            self.entries.reserve_exact(self.entries.len().max(1));
        }
        let pos = self.entries.len();
        self.entries.push((key, value));
        let Self { entries, index, .. } = self;
        if let Some(index) = index {
            let hasher = &index.hasher;
            index
                .table
                .insert_unique(hasher.hash_one(key), pos as u32, |&j| {
                    // Every stored position is in range; 0 would only misplace.
                    entries
                        .get(j as usize)
                        .map_or(0, |(k, _)| hasher.hash_one(k))
                });
        } else if entries.len() > INDEX_ABOVE {
            *index = Some(Index::build(entries));
        }
        if !is_seeder {
            self.swap(pos, self.num_leechers());
            self.num_leechers += 1;
        }
        Ok(None)
    }

    /// Remove a peer; its data and whether it was a seeder.
    pub fn remove(&mut self, key: &K) -> Option<(V, bool)> {
        let mut pos = self.position(key)?;
        let was_seeder = pos >= self.num_leechers();
        if !was_seeder {
            let last_leecher = self.num_leechers() - 1;
            self.swap(pos, last_leecher);
            pos = last_leecher;
            self.num_leechers -= 1;
        }
        let last = self.entries.len() - 1;
        self.swap(pos, last);
        if let Some(index) = &mut self.index {
            if let Ok(entry) = index
                .table
                .find_entry(index.hasher.hash_one(key), |&i| i as usize == last)
            {
                entry.remove();
            }
        }
        self.entries.pop().map(|(_, v)| (v, was_seeder))
    }

    /// Keep only the peers for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let old_leechers = self.num_leechers();
        let mut position = 0;
        let mut leechers = 0;
        self.entries.retain(|(k, v)| {
            let kept = keep(k, v);
            if kept && position < old_leechers {
                leechers += 1;
            }
            position += 1;
            kept
        });
        self.num_leechers = leechers as u32; // at most the old count
        if self.entries.capacity() > self.entries.len() * 2 {
            self.entries.shrink_to_fit();
        }
        let len = self.entries.len();
        self.index = if len < INDEX_DROP_BELOW || (self.index.is_none() && len <= INDEX_ABOVE) {
            None
        } else {
            Some(Index::build(&self.entries))
        };
    }

    /// Append up to `max` random peers for the announcer `key`: never the
    /// announcer, only leechers when it is a seeder.
    pub fn select<R: Rng, O>(
        &self,
        rng: &mut R,
        key: &K,
        announcer_is_seeder: bool,
        max: usize,
        out: &mut Vec<O>,
        f: impl FnMut(&(K, V)) -> O,
    ) {
        let excluded_in = match self.position(key) {
            Some(pos) if pos < self.num_leechers() => (1, 0),
            Some(_) => (0, 1),
            None => (0, 0),
        };
        select_response_peers(
            rng,
            self.leechers(),
            self.seeders(),
            announcer_is_seeder,
            |e| e.0 == *key,
            excluded_in,
            max,
            out,
            f,
        );
    }

    /// Swap two entries, keeping the index right. Slots are found by the
    /// position they hold (unique), never by key, so the order of updates
    /// cannot confuse them.
    fn swap(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        if let Some(index) = &mut self.index {
            if let (Some(ka), Some(kb)) = (self.entries.get(a), self.entries.get(b)) {
                let (ha, hb) = (index.hasher.hash_one(ka.0), index.hasher.hash_one(kb.0));
                let (a32, b32) = (a as u32, b as u32);
                if let Some(slot) = index.table.find_mut(ha, |&i| i == a32) {
                    *slot = u32::MAX;
                }
                if let Some(slot) = index.table.find_mut(hb, |&i| i == b32) {
                    *slot = a32;
                }
                if let Some(slot) = index.table.find_mut(ha, |&i| i == u32::MAX) {
                    *slot = b32;
                }
            }
        }
        self.entries.swap(a, b);
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        assert!(self.num_leechers() <= self.entries.len());
        if let Some(index) = &self.index {
            assert_eq!(index.table.len(), self.entries.len());
            for (i, (k, _)) in self.entries.iter().enumerate() {
                assert_eq!(self.position(k), Some(i));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(u16, u32, bool),
        Remove(u16),
        Retain(u32),
    }

    fn op(keys: u16) -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..keys, any::<u32>(), any::<bool>()).prop_map(|(k, v, s)| Op::Upsert(k, v, s)),
            3 => (0..keys).prop_map(Op::Remove),
            1 => (0..u32::MAX).prop_map(Op::Retain),
        ]
    }

    fn check(store: &PeerStore<u16, u32>, model: &HashMap<u16, (u32, bool)>) {
        store.check_invariants();
        assert_eq!(store.len(), model.len());
        let seeders = model.values().filter(|(_, s)| *s).count();
        assert_eq!(store.num_seeders(), seeders);
        for (k, (v, s)) in model {
            assert_eq!(store.get(k), Some((v, *s)), "key {k}");
        }
        assert!(store.leechers().iter().all(|(k, _)| !model[k].1));
        assert!(store.seeders().iter().all(|(k, _)| model[k].1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn matches_map_model(ops in prop::collection::vec(op(120), 1..600)) {
            let mut store = PeerStore::default();
            let mut model: HashMap<u16, (u32, bool)> = HashMap::new();
            for op in ops {
                match op {
                    Op::Upsert(k, v, s) => {
                        let before = model.insert(k, (v, s)).map(|(_, s)| s);
                        prop_assert_eq!(store.upsert(k, v, s, MAX_PEERS), Ok(before));
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(store.remove(&k), model.remove(&k));
                    }
                    Op::Retain(threshold) => {
                        store.retain(|_, v| *v < threshold);
                        model.retain(|_, (v, _)| *v < threshold);
                    }
                }
                check(&store, &model);
            }
        }
    }

    #[test]
    fn full_swarm_refuses_new_peers_but_updates_known_ones() {
        let mut store = PeerStore::default();
        for k in 0..3u16 {
            store.upsert(k, 0u32, false, 3).unwrap();
        }
        assert_eq!(store.upsert(9, 0, false, 3), Err(SwarmFull));
        assert_eq!(store.upsert(1, 5, true, 3), Ok(Some(false)));
        assert_eq!(store.get(&1), Some((&5, true)));
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn select_never_returns_announcer_and_respects_kinds() {
        let mut rng = SmallRng::seed_from_u64(9);
        let mut store = PeerStore::default();
        for k in 0..100u16 {
            store.upsert(k, (), k % 4 == 0, MAX_PEERS).unwrap();
        }
        for _ in 0..50 {
            let mut out = Vec::new();
            store.select(&mut rng, &0, true, 500, &mut out, |e| e.0);
            assert_eq!(out.len(), 75);
            assert!(out.iter().all(|k| k % 4 != 0));
            let mut out = Vec::new();
            store.select(&mut rng, &1, false, 500, &mut out, |e| e.0);
            assert_eq!(out.len(), 99);
            assert!(!out.contains(&1));
            let mut out = Vec::new();
            store.select(&mut rng, &1, false, 10, &mut out, |e| e.0);
            assert_eq!(out.len(), 10);
            assert!(!out.contains(&1));
        }
    }
}
