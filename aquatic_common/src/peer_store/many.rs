//! A swarm of two peers or more: one vector, leechers first, and past
//! `INDEX_ABOVE` peers a hash index of positions.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::{IndexBy, PeerKey, Upserted};
use crate::source::{SourceKey, SourcePrefixes};

/// Swarms larger than this get a hash index.
pub(super) const INDEX_ABOVE: usize = 32;
/// A swarm cleaned down below this loses its index (well below
/// `INDEX_ABOVE`, so a swarm at the edge does not flip back and forth).
pub(super) const INDEX_DROP_BELOW: usize = 16;

fn index_hash<K: PeerKey>(hasher: &DefaultHashBuilder, by: IndexBy, key: &K) -> u64 {
    match by {
        IndexBy::Key => hasher.hash_one(key),
        IndexBy::Source(prefixes) => hasher.hash_one(key.source(prefixes)),
    }
}

pub(super) struct Index {
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
    by: IndexBy,
}

impl Index {
    fn build<K: PeerKey, V>(entries: &[(K, V)], by: IndexBy) -> Box<Self> {
        let mut index = Box::new(Self {
            table: HashTable::with_capacity(entries.len()),
            hasher: DefaultHashBuilder::default(),
            by,
        });
        for i in 0..entries.len() {
            index.insert(entries, i);
        }
        index
    }

    /// Where a key's entry is: the hash of the key, or of its source.
    fn hash<K: PeerKey>(&self, key: &K) -> u64 {
        index_hash(&self.hasher, self.by, key)
    }

    /// Index the entry at `pos` (`entries.len()` is kept below `u32::MAX`
    /// by `upsert`).
    fn insert<K: PeerKey, V>(&mut self, entries: &[(K, V)], pos: usize) {
        let Some((key, _)) = entries.get(pos) else {
            return;
        };
        let hash = self.hash(key);
        let Self { table, hasher, by } = self;
        table.insert_unique(hash, pos as u32, |&j| {
            // Every stored position is in range; 0 would only misplace.
            entries
                .get(j as usize)
                .map_or(0, |(k, _)| index_hash(hasher, *by, k))
        });
    }
}

/// Two peers or more.
pub(super) struct Many<K, V> {
    /// Leechers at `..num_leechers`, seeders after.
    pub(super) entries: Vec<(K, V)>,
    pub(super) num_leechers: u32,
    pub(super) downloaded: u32,
    pub(super) index: Option<Box<Index>>,
}

impl<K: PeerKey, V> Many<K, V> {
    pub(super) fn num_leechers(&self) -> usize {
        self.num_leechers as usize
    }

    pub(super) fn position(&self, key: &K) -> Option<usize> {
        match &self.index {
            Some(index) => index
                .table
                .find(index.hash(key), |&i| {
                    self.entries.get(i as usize).is_some_and(|e| e.0 == *key)
                })
                .map(|&i| i as usize),
            None => self.entries.iter().position(|e| e.0 == *key),
        }
    }

    pub(super) fn source_count(
        &self,
        source: SourceKey,
        prefixes: SourcePrefixes,
        up_to: usize,
    ) -> usize {
        let mut count = 0;
        let mut counted = |key: &K| {
            if key.source(prefixes) == source {
                count += 1;
            }
            count < up_to
        };
        match &self.index {
            // Only the entries on the source's probe sequence (and the odd
            // other one sharing its tag).
            Some(index) if index.by == IndexBy::Source(prefixes) => {
                for &i in index.table.iter_hash(index.hasher.hash_one(source)) {
                    match self.entries.get(i as usize) {
                        Some((key, _)) if !counted(key) => break,
                        _ => {}
                    }
                }
            }
            // Small swarms, or an index of whole keys: every entry.
            _ => {
                for (key, _) in &self.entries {
                    if !counted(key) {
                        break;
                    }
                }
            }
        }
        count
    }

    /// Replace the data of the peer at `pos` and set its status.
    pub(super) fn update(
        &mut self,
        pos: usize,
        is_seeder: bool,
        value: impl FnOnce(Option<&V>) -> V,
    ) -> Upserted {
        let was_seeder = pos >= self.num_leechers();
        if let Some(entry) = self.entries.get_mut(pos) {
            entry.1 = value(Some(&entry.1));
        }
        let position = match (was_seeder, is_seeder) {
            (true, false) => {
                // First seeder's place becomes the last leecher's.
                let to = self.num_leechers();
                self.swap(pos, to);
                self.num_leechers += 1;
                to
            }
            (false, true) => {
                let to = self.num_leechers() - 1;
                self.swap(pos, to);
                self.num_leechers -= 1;
                to
            }
            _ => pos,
        };
        Upserted {
            previous: Some(was_seeder),
            position,
        }
    }

    /// Add a peer known to be absent: its position.
    pub(super) fn insert(&mut self, key: K, value: V, is_seeder: bool, by: IndexBy) -> usize {
        if self.entries.len() == self.entries.capacity() {
            // Double while small (most swarms stay tiny), then grow by
            // half: less unused room in large swarms.
            let len = self.entries.len();
            self.entries
                .reserve_exact(if len < 64 { len.max(1) } else { len / 2 });
        }
        let pos = self.entries.len();
        self.entries.push((key, value));
        let Self { entries, index, .. } = self;
        if let Some(index) = index {
            index.insert(entries, pos);
        } else if entries.len() > INDEX_ABOVE {
            *index = Some(Index::build(entries, by));
        }
        let mut position = pos;
        if !is_seeder {
            position = self.num_leechers();
            self.swap(pos, position);
            self.num_leechers += 1;
        }
        position
    }

    pub(super) fn remove(&mut self, key: &K) -> Option<(V, bool)> {
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
            let hash = index.hash(key);
            if let Ok(entry) = index.table.find_entry(hash, |&i| i as usize == last) {
                entry.remove();
            }
        }
        self.entries.pop().map(|(_, v)| (v, was_seeder))
    }

    pub(super) fn retain(&mut self, by: IndexBy, mut keep: impl FnMut(&K, &V) -> bool) {
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
            Some(Index::build(&self.entries, by))
        };
    }

    /// Swap two entries, keeping the index right. Slots are found by the
    /// position they hold (unique), never by key, so the order of updates
    /// cannot confuse them.
    pub(super) fn swap(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        if let Some(index) = &mut self.index {
            if let (Some(ka), Some(kb)) = (self.entries.get(a), self.entries.get(b)) {
                let (ha, hb) = (index.hash(&ka.0), index.hash(&kb.0));
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
    pub(super) fn check_invariants(&self) {
        assert!(self.num_leechers() <= self.entries.len());
        if let Some(index) = &self.index {
            assert_eq!(index.table.len(), self.entries.len());
            for (i, (k, _)) in self.entries.iter().enumerate() {
                assert_eq!(self.position(k), Some(i));
            }
        }
    }
}
