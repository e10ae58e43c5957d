//! A swarm of two peers or more: one vector, leechers first, and past
//! `INDEX_ABOVE` peers a hash index of positions: two bytes each while
//! the swarm has fewer than 65,535 peers (nearly every swarm), four past
//! that.

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

/// A position as an index slot holds it; `FREE` (never a position) marks
/// a slot for a moment while two entries swap.
trait Slot: Copy + Eq {
    const FREE: Self;
    /// `pos` as a slot; a position the slot cannot hold becomes `FREE`
    /// (the index is widened before such a position is stored).
    fn at(pos: usize) -> Self;
    fn pos(self) -> usize;
}

impl Slot for u16 {
    const FREE: Self = u16::MAX;
    fn at(pos: usize) -> Self {
        u16::try_from(pos).unwrap_or(Self::FREE)
    }
    fn pos(self) -> usize {
        usize::from(self)
    }
}

impl Slot for u32 {
    const FREE: Self = u32::MAX;
    fn at(pos: usize) -> Self {
        u32::try_from(pos).unwrap_or(Self::FREE)
    }
    fn pos(self) -> usize {
        self as usize
    }
}

/// The most entries an index is built narrow for (a narrow index holds
/// up to 65,535 and is rebuilt wide past that).
const NARROW_BUILD_UP_TO: usize = 60_000;

/// `pos` as a slot of `table`'s width.
fn slot_in<S: Slot>(_table: &HashTable<S>, pos: usize) -> S {
    S::at(pos)
}

/// The positions of a swarm's entries, by hash: three bytes a slot
/// (with hashbrown's control byte) while every position fits in a `u16`
/// below `FREE`, five past that.
enum Positions {
    Narrow(HashTable<u16>),
    Wide(HashTable<u32>),
}

/// One body for both widths: `$t` is the table, of either slot type.
macro_rules! either {
    ($positions:expr, $t:ident => $body:expr) => {
        match $positions {
            Positions::Narrow($t) => $body,
            Positions::Wide($t) => $body,
        }
    };
}

impl Positions {
    /// Room for `len` entries, at positions `0..len`: narrow up to
    /// `NARROW_BUILD_UP_TO` entries, so that a swarm cleaned to just below
    /// the narrow limit does not rebuild wide at its next peer.
    fn with_capacity(len: usize) -> Self {
        if len <= NARROW_BUILD_UP_TO {
            Self::Narrow(HashTable::with_capacity(len))
        } else {
            Self::Wide(HashTable::with_capacity(len))
        }
    }

    /// Whether two-byte slots hold every position of `len` entries.
    fn narrow_holds(len: usize) -> bool {
        len <= usize::from(u16::FREE)
    }

    fn holds(&self, pos: usize) -> bool {
        matches!(self, Self::Wide(_)) || Self::narrow_holds(pos + 1)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        either!(self, t => t.len())
    }

    fn find(&self, hash: u64, mut is: impl FnMut(usize) -> bool) -> Option<usize> {
        either!(self, t => t.find(hash, |s| is(s.pos())).map(|s| s.pos()))
    }

    /// The positions on `hash`'s probe sequence, until `more` says stop.
    fn walk(&self, hash: u64, mut more: impl FnMut(usize) -> bool) {
        either!(self, t => {
            for s in t.iter_hash(hash) {
                if !more(s.pos()) {
                    break;
                }
            }
        })
    }

    fn insert(&mut self, hash: u64, pos: usize, rehash: impl Fn(usize) -> u64) {
        debug_assert!(self.holds(pos), "index too narrow for position {pos}");
        either!(self, t => {
            t.insert_unique(hash, Slot::at(pos), |s| rehash(s.pos()));
        })
    }

    fn remove(&mut self, hash: u64, pos: usize) {
        either!(self, t => {
            let slot = slot_in(t, pos);
            if let Ok(entry) = t.find_entry(hash, |&s| s == slot) {
                entry.remove();
            }
        })
    }

    /// Set the slot holding `from` (`usize::MAX`: the `FREE` one) on
    /// `hash`'s probe sequence to `to` (`usize::MAX`: `FREE`).
    fn replace(&mut self, hash: u64, from: usize, to: usize) {
        either!(self, t => {
            let (from, to) = (slot_in(t, from), slot_in(t, to));
            if let Some(slot) = t.find_mut(hash, |&s| s == from) {
                *slot = to;
            }
        })
    }
}

pub(super) struct Index {
    table: Positions,
    hasher: DefaultHashBuilder,
    by: IndexBy,
}

impl Index {
    fn build<K: PeerKey, V>(entries: &[(K, V)], by: IndexBy) -> Box<Self> {
        let mut index = Box::new(Self {
            table: Positions::with_capacity(entries.len()),
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
    /// by `upsert`), which the caller checked the index `holds`.
    fn insert<K: PeerKey, V>(&mut self, entries: &[(K, V)], pos: usize) {
        let Some((key, _)) = entries.get(pos) else {
            return;
        };
        let hash = self.hash(key);
        let Self { table, hasher, by } = self;
        table.insert(hash, pos, |j| {
            // Every stored position is in range; 0 would only misplace.
            entries
                .get(j)
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
            Some(index) => index.table.find(index.hash(key), |i| {
                self.entries.get(i).is_some_and(|e| e.0 == *key)
            }),
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
                index.table.walk(index.hasher.hash_one(source), |i| {
                    match self.entries.get(i) {
                        Some((key, _)) => counted(key),
                        None => true,
                    }
                });
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
        if let Some(index) = index.as_mut().filter(|index| index.table.holds(pos)) {
            index.insert(entries, pos);
        } else if index.is_some() || entries.len() > INDEX_ABOVE {
            // A new index, or a wider one: 65,535 peers and more.
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
            index.table.remove(hash, last);
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
                index.table.replace(ha, a, usize::MAX);
                index.table.replace(hb, b, a);
                index.table.replace(ha, usize::MAX, b);
            }
        }
        self.entries.swap(a, b);
    }

    /// Bytes per position in the index, if there is one.
    #[cfg(test)]
    pub(super) fn index_width(&self) -> Option<usize> {
        self.index.as_ref().map(|index| match index.table {
            Positions::Narrow(_) => 2,
            Positions::Wide(_) => 4,
        })
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
