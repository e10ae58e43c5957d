//! Compact storage of one swarm's peers.
//!
//! A swarm of one peer (most torrents) keeps it inline, in the torrent
//! map's own bucket: no allocation. Larger swarms keep all peers in one
//! boxed vector, leechers first, then seeders, so the peer counts are the
//! lengths of the two runs and random response peers of either kind are a
//! window of a slice. Small swarms are searched linearly; past
//! `INDEX_ABOVE` peers a hash index of positions is added (two bytes a
//! position below 65,535 peers, four above). Per IPv4 peer (UDP) that is
//! 10 bytes, plus 3 to 7 for the index in large swarms: a fraction of two
//! hash maps' cost. The swarm's completed-download count
//! lives here too.
//!
//! With per-source budgets in torrents ([`IndexBy::Source`]) the index
//! hashes a peer's *source* (its address or prefix, [`crate::source`]),
//! not the whole key: all peers of one source sit on one probe sequence,
//! so counting a source's peers in the swarm (its per-torrent budget) is a
//! walk over exactly those entries and costs no memory beyond the index
//! itself. The budget bounds that walk (at most
//! `source::MAX_PEERS_PER_TORRENT_PER_SOURCE` entries; one entry for
//! nearly every real source). Without that budget ([`IndexBy::Key`], for
//! load tests from one address) the index hashes whole keys.
//!
//! Every move inside the vector goes through `swap`, which keeps the index
//! right; the tests compare every operation against a plain map model.

use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};

use rand::Rng;

use crate::PeerId;
use crate::peer_selection::Choice;
use crate::source::{SourceKey, SourcePrefixes};

mod many;

use many::Many;

/// A peer's key in its swarm: unique there, and naming the source the peer
/// counts under in per-source budgets.
pub trait PeerKey: Copy + Eq + Hash {
    fn source(&self, prefixes: SourcePrefixes) -> SourceKey;
}

/// A peer's address, which names its source.
pub trait PeerAddr: Copy + Eq + Hash {
    fn source(&self, prefixes: SourcePrefixes) -> SourceKey;
}

impl PeerAddr for Ipv4Addr {
    fn source(&self, prefixes: SourcePrefixes) -> SourceKey {
        prefixes.of_v4(*self)
    }
}

impl PeerAddr for Ipv6Addr {
    fn source(&self, prefixes: SourcePrefixes) -> SourceKey {
        prefixes.of_v6(*self)
    }
}

/// UDP and HTTP: the peer's address and announced port.
impl<A: PeerAddr> PeerKey for (A, u16) {
    fn source(&self, prefixes: SourcePrefixes) -> SourceKey {
        self.0.source(prefixes)
    }
}

/// WebSocket: the peer id, under the source of the connection that
/// announced it (already grouped by prefix).
impl PeerKey for (SourceKey, PeerId) {
    fn source(&self, _: SourcePrefixes) -> SourceKey {
        self.0
    }
}

/// What a swarm's index hashes: whole keys, or the keys' sources (so that
/// a source's peers can be counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexBy {
    Key,
    Source(SourcePrefixes),
}

/// The peers of one swarm, keyed by `K` (e.g. IP and port) with data `V`.
pub struct PeerStore<K, V> {
    repr: Repr<K, V>,
}

enum Repr<K, V> {
    /// Only between a torrent's creation and its first peer.
    Empty,
    One {
        entry: (K, V),
        seeder: bool,
        /// Completed downloads reported to this swarm (the scrape's
        /// "downloaded").
        downloaded: u32,
    },
    Many(Box<Many<K, V>>),
}

impl<K, V> Default for PeerStore<K, V> {
    fn default() -> Self {
        Self { repr: Repr::Empty }
    }
}

impl<K: std::fmt::Debug + PeerKey, V: std::fmt::Debug> std::fmt::Debug for PeerStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerStore")
            .field("leechers", &self.leechers())
            .field("seeders", &self.seeders())
            .finish()
    }
}

/// What [`PeerStore::upsert`] did: whether the peer was there before as a
/// seeder (`Some(true)`) or leecher (`Some(false)`) or not at all, and where
/// it is now (for [`PeerStore::select_at`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upserted {
    pub previous: Option<bool>,
    pub position: usize,
}

/// The swarm already holds `MAX_PEERS`: the peer was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwarmFull;

/// Most peers one swarm holds: positions are `u32`.
pub const MAX_PEERS: usize = u32::MAX as usize - 1;

impl<K: PeerKey, V> PeerStore<K, V> {
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Empty => 0,
            Repr::One { .. } => 1,
            Repr::Many(m) => m.entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self.repr, Repr::Empty)
    }

    pub fn downloaded(&self) -> u32 {
        match &self.repr {
            Repr::Empty => 0,
            Repr::One { downloaded, .. } => *downloaded,
            Repr::Many(m) => m.downloaded,
        }
    }

    fn downloaded_mut(&mut self) -> Option<&mut u32> {
        match &mut self.repr {
            Repr::Empty => None,
            Repr::One { downloaded, .. } => Some(downloaded),
            Repr::Many(m) => Some(&mut m.downloaded),
        }
    }

    /// Set the download count (a swarm read back from a state file; a
    /// swarm without peers keeps none).
    pub fn set_downloaded(&mut self, downloaded: u32) {
        if let Some(d) = self.downloaded_mut() {
            *d = downloaded;
        }
    }

    /// Count one completed download (saturating).
    pub fn count_download(&mut self) {
        if let Some(d) = self.downloaded_mut() {
            *d = d.saturating_add(1);
        }
    }

    pub fn num_leechers(&self) -> usize {
        match &self.repr {
            Repr::Empty => 0,
            Repr::One { seeder, .. } => usize::from(!*seeder),
            Repr::Many(m) => m.num_leechers(),
        }
    }

    pub fn num_seeders(&self) -> usize {
        self.len() - self.num_leechers()
    }

    /// Every peer: leechers first, then seeders.
    pub fn entries(&self) -> &[(K, V)] {
        match &self.repr {
            Repr::Empty => &[],
            Repr::One { entry, .. } => std::slice::from_ref(entry),
            Repr::Many(m) => &m.entries,
        }
    }

    pub fn leechers(&self) -> &[(K, V)] {
        self.entries().get(..self.num_leechers()).unwrap_or(&[])
    }

    pub fn seeders(&self) -> &[(K, V)] {
        self.entries().get(self.num_leechers()..).unwrap_or(&[])
    }

    fn position(&self, key: &K) -> Option<usize> {
        match &self.repr {
            Repr::Empty => None,
            Repr::One { entry, .. } => (entry.0 == *key).then_some(0),
            Repr::Many(m) => m.position(key),
        }
    }

    /// The peer's data and whether it is a seeder.
    pub fn get(&self, key: &K) -> Option<(&V, bool)> {
        let pos = self.position(key)?;
        let seeder = pos >= self.num_leechers();
        self.entries().get(pos).map(|e| (&e.1, seeder))
    }

    /// How many of this swarm's peers count under `source`, counted up to
    /// `up_to` at most (the budget being checked: no need to count on).
    pub fn source_count(&self, source: SourceKey, prefixes: SourcePrefixes, up_to: usize) -> usize {
        match &self.repr {
            Repr::Empty => 0,
            Repr::One { entry, .. } => usize::from(entry.0.source(prefixes) == source).min(up_to),
            Repr::Many(m) => m.source_count(source, prefixes, up_to),
        }
    }

    /// Insert a peer or replace its data (made by `value` from the data it
    /// replaces) and status. Returns whether it was
    /// present before as a seeder (`Some(true)`) or leecher (`Some(false)`),
    /// or, for a new peer, `admit`'s refusal (asked only for new peers,
    /// before anything changes; a swarm of `MAX_PEERS` refuses too).
    /// `by` must be the same for every call on one swarm.
    pub fn upsert<E: From<SwarmFull>>(
        &mut self,
        key: K,
        is_seeder: bool,
        by: IndexBy,
        value: impl FnOnce(Option<&V>) -> V,
        admit: impl FnOnce(&Self) -> Result<(), E>,
    ) -> Result<Upserted, E> {
        if let Some(pos) = self.position(&key) {
            return Ok(match &mut self.repr {
                Repr::One { entry, seeder, .. } => {
                    entry.1 = value(Some(&entry.1));
                    let was_seeder = std::mem::replace(seeder, is_seeder);
                    Upserted {
                        previous: Some(was_seeder),
                        position: 0,
                    }
                }
                Repr::Many(m) => m.update(pos, is_seeder, value),
                // A position means a peer.
                Repr::Empty => Upserted {
                    previous: None,
                    position: 0,
                },
            });
        }
        if self.len() >= MAX_PEERS {
            return Err(SwarmFull.into());
        }
        admit(self)?;
        let value = value(None);
        let position = match std::mem::replace(&mut self.repr, Repr::Empty) {
            Repr::Empty => {
                self.repr = Repr::One {
                    entry: (key, value),
                    seeder: is_seeder,
                    downloaded: 0,
                };
                0
            }
            Repr::One {
                entry,
                seeder,
                downloaded,
            } => {
                let mut many = Box::new(Many {
                    entries: Vec::with_capacity(2),
                    num_leechers: 0,
                    downloaded,
                    index: None,
                });
                many.insert(entry.0, entry.1, seeder, by);
                let position = many.insert(key, value, is_seeder, by);
                self.repr = Repr::Many(many);
                position
            }
            Repr::Many(mut many) => {
                let position = many.insert(key, value, is_seeder, by);
                self.repr = Repr::Many(many);
                position
            }
        };
        Ok(Upserted {
            previous: None,
            position,
        })
    }

    /// Back to one inline peer (or none) when the vector holds one.
    fn collapse(&mut self) {
        if let Repr::Many(m) = &mut self.repr {
            if m.entries.len() <= 1 {
                let downloaded = m.downloaded;
                let seeder = m.num_leechers == 0;
                self.repr = match m.entries.pop() {
                    Some(entry) => Repr::One {
                        entry,
                        seeder,
                        downloaded,
                    },
                    None => Repr::Empty,
                };
            }
        }
    }

    /// Remove a peer; its data and whether it was a seeder.
    pub fn remove(&mut self, key: &K) -> Option<(V, bool)> {
        match &mut self.repr {
            Repr::Empty => None,
            Repr::One { entry, .. } if entry.0 != *key => None,
            Repr::One { .. } => match std::mem::replace(&mut self.repr, Repr::Empty) {
                Repr::One { entry, seeder, .. } => Some((entry.1, seeder)),
                _ => None,
            },
            Repr::Many(m) => {
                let removed = m.remove(key);
                self.collapse();
                removed
            }
        }
    }

    /// Keep only the peers for which `keep` holds.
    pub fn retain(&mut self, by: IndexBy, mut keep: impl FnMut(&K, &V) -> bool) {
        match &mut self.repr {
            Repr::Empty => {}
            Repr::One { entry, .. } => {
                if !keep(&entry.0, &entry.1) {
                    self.repr = Repr::Empty;
                }
            }
            Repr::Many(m) => {
                m.retain(by, keep);
                self.collapse();
            }
        }
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
        let position = self.position(key);
        self.select_at(rng, key, position, announcer_is_seeder, max, out, f);
    }

    /// [`select`](Self::select) for an announcer known to be at
    /// `position` (`None`: not stored), as [`upsert`](Self::upsert) said:
    /// no second lookup.
    #[allow(clippy::too_many_arguments)] // each argument is a distinct part of the choice
    pub fn select_at<R: Rng, O>(
        &self,
        rng: &mut R,
        key: &K,
        position: Option<usize>,
        announcer_is_seeder: bool,
        max: usize,
        out: &mut Vec<O>,
        f: impl FnMut(&(K, V)) -> O,
    ) {
        let excluded_in = match position {
            Some(pos) if pos < self.num_leechers() => (1, 0),
            Some(_) => (0, 1),
            None => (0, 0),
        };
        let is_excluded = |e: &(K, V)| e.0 == *key;
        let mut choice = Choice {
            rng,
            is_excluded,
            out,
            f,
        };
        let runs = (self.leechers(), self.seeders());
        choice.select(runs, announcer_is_seeder, excluded_in, max);
    }

    /// Like [`select`](Self::select), but peers of sources not chosen yet
    /// come first: from a random place, the first peer of each new source
    /// among at most `scan` peers, then any others. A source holding many
    /// of the swarm's peers then gets no more of the choice than any other
    /// (WebRTC offers: each one reaches a different client where it can).
    #[allow(clippy::too_many_arguments)] // each argument is a distinct part of the choice
    pub fn select_spread<R: Rng, O>(
        &self,
        rng: &mut R,
        key: &K,
        announcer_is_seeder: bool,
        max: usize,
        scan: usize,
        prefixes: SourcePrefixes,
        out: &mut Vec<O>,
        mut f: impl FnMut(&(K, V)) -> O,
    ) {
        let pool = if announcer_is_seeder {
            self.leechers()
        } else {
            self.entries()
        };
        if pool.is_empty() || max == 0 {
            return;
        }
        let start = rng.random_range(0..pool.len());
        let (head, tail) = pool.split_at_checked(start).unwrap_or((&[], pool));
        let mut sources: Vec<SourceKey> = Vec::with_capacity(max.min(pool.len()));
        let mut taken: Vec<usize> = Vec::with_capacity(max.min(pool.len()));
        let ring = || tail.iter().chain(head).enumerate();
        for (i, entry) in ring().take(scan) {
            if taken.len() == max {
                break;
            }
            let source = entry.0.source(prefixes);
            if entry.0 != *key && !sources.contains(&source) {
                sources.push(source);
                taken.push(i);
                out.push(f(entry));
            }
        }
        for (i, entry) in ring() {
            if taken.len() == max {
                break;
            }
            if entry.0 != *key && !taken.contains(&i) {
                taken.push(i);
                out.push(f(entry));
            }
        }
    }

    #[cfg(test)]
    fn index_width(&self) -> Option<usize> {
        match &self.repr {
            Repr::Many(m) => m.index_width(),
            _ => None,
        }
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        match &self.repr {
            Repr::Empty => {}
            Repr::One { .. } => {}
            Repr::Many(m) => {
                assert!(m.entries.len() >= 2, "a swarm of one is kept inline");
                m.check_invariants();
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

    /// Test keys: four keys to a source (a tenth of them with `ipv4 = 8`),
    /// so sources share index probe sequences as real ones do.
    impl PeerKey for u16 {
        fn source(&self, prefixes: SourcePrefixes) -> SourceKey {
            let per_source = if prefixes.ipv4 == 8 { 40 } else { 4 };
            SourceKey(u64::from(*self / per_source))
        }
    }

    const P: SourcePrefixes = SourcePrefixes { ipv4: 32, ipv6: 64 };

    fn put<V>(
        store: &mut PeerStore<u16, V>,
        k: u16,
        v: V,
        s: bool,
    ) -> Result<Option<bool>, SwarmFull> {
        store
            .upsert(k, s, IndexBy::Source(P), |_| v, |_| Ok(()))
            .map(|u| u.previous)
    }

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

    fn check(
        store: &PeerStore<u16, u32>,
        model: &HashMap<u16, (u32, bool)>,
        prefixes: SourcePrefixes,
    ) {
        store.check_invariants();
        assert_eq!(store.len(), model.len());
        let seeders = model.values().filter(|(_, s)| *s).count();
        assert_eq!(store.num_seeders(), seeders);
        for (k, (v, s)) in model {
            assert_eq!(store.get(k), Some((v, *s)), "key {k}");
        }
        assert!(store.leechers().iter().all(|(k, _)| !model[k].1));
        assert!(store.seeders().iter().all(|(k, _)| model[k].1));
        // Per-source counts are exact, whether scanned or indexed.
        let mut by_source: HashMap<SourceKey, usize> = HashMap::new();
        for k in model.keys() {
            *by_source.entry(k.source(prefixes)).or_default() += 1;
        }
        for (source, n) in by_source {
            assert_eq!(store.source_count(source, prefixes, usize::MAX), n);
            assert_eq!(store.source_count(source, prefixes, 2), n.min(2));
        }
        assert_eq!(
            store.source_count(SourceKey(u64::MAX), prefixes, usize::MAX),
            0
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn matches_map_model(ops in prop::collection::vec(op(120), 1..600), mode in 0..3u8) {
            let prefixes = if mode == 1 { SourcePrefixes { ipv4: 8, ipv6: 64 } } else { P };
            let by = if mode == 2 { IndexBy::Key } else { IndexBy::Source(prefixes) };
            let mut store = PeerStore::default();
            let mut model: HashMap<u16, (u32, bool)> = HashMap::new();
            for op in ops {
                match op {
                    Op::Upsert(k, v, s) => {
                        let before = model.insert(k, (v, s)).map(|(_, s)| s);
                        let after = store.upsert(k, s, by, |_| v, |_| Ok::<(), SwarmFull>(()));
                        prop_assert_eq!(after.map(|u| u.previous), Ok(before));
                        // The position given is the peer's.
                        if let Ok(u) = after {
                            prop_assert_eq!(store.entries().get(u.position).map(|e| e.0), Some(k));
                        }
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(store.remove(&k), model.remove(&k));
                    }
                    Op::Retain(threshold) => {
                        store.retain(by, |_, v| *v < threshold);
                        model.retain(|_, (v, _)| *v < threshold);
                    }
                }
                check(&store, &model, prefixes);
            }
        }
    }

    #[test]
    fn admission_is_asked_for_new_peers_only() {
        let mut store = PeerStore::default();
        for k in 0..3u16 {
            put(&mut store, k, 0u32, false).unwrap();
        }
        let full = |s: &PeerStore<u16, u32>| if s.len() >= 3 { Err(SwarmFull) } else { Ok(()) };
        let by = IndexBy::Source(P);
        assert_eq!(store.upsert(9, false, by, |_| 0, full), Err(SwarmFull));
        assert_eq!(
            store
                .upsert(1, true, by, |old| old.map_or(0, |v| v + 5), full)
                .map(|u| u.previous),
            Ok(Some(false))
        );
        assert_eq!(store.get(&1), Some((&5, true)));
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn the_index_widens_past_65535_peers_and_narrows_when_cleaned() {
        let mut store = PeerStore::default();
        for k in 0..u16::MAX {
            put(&mut store, k, (), k % 3 == 0).unwrap();
        }
        // 65,535 peers: positions 0 to 65,534 fit two-byte slots.
        assert_eq!(store.index_width(), Some(2));
        store.check_invariants();
        put(&mut store, u16::MAX, (), false).unwrap();
        assert_eq!(store.index_width(), Some(4));
        assert_eq!(store.len(), 65_536);
        store.check_invariants();
        // Moves (a leecher turning seeder) and removals keep it right.
        for k in (0..u16::MAX).step_by(7) {
            put(&mut store, k, (), true).unwrap();
        }
        for k in (1..1000u16).step_by(2) {
            assert!(store.remove(&k).is_some());
        }
        store.check_invariants();
        assert_eq!(store.source_count(SourceKey(3), P, usize::MAX), 2);
        store.retain(IndexBy::Source(P), |k, _| k % 2 == 0);
        assert_eq!(store.index_width(), Some(2));
        assert_eq!(store.len(), 32_768);
        store.check_invariants();
    }

    #[test]
    fn a_large_source_is_counted_on_its_own_probe_sequence() {
        let mut store = PeerStore::default();
        // 400 sources of 4 keys each, then one with many more (8: 40 keys
        // to a source).
        for k in 0..1600u16 {
            put(&mut store, k, (), k % 2 == 0).unwrap();
        }
        assert_eq!(store.source_count(SourceKey(7), P, usize::MAX), 4);
        assert_eq!(store.source_count(SourceKey(7), P, 3), 3);
        let wide = SourcePrefixes { ipv4: 8, ipv6: 64 };
        let mut store = PeerStore::default();
        for k in 0..1600u16 {
            put_with(&mut store, k, wide);
        }
        assert_eq!(store.source_count(SourceKey(3), wide, usize::MAX), 40);
        for k in 120..160u16 {
            assert!(store.remove(&k).is_some());
        }
        assert_eq!(store.source_count(SourceKey(3), wide, usize::MAX), 0);
        assert_eq!(store.source_count(SourceKey(4), wide, usize::MAX), 40);
    }

    fn put_with(store: &mut PeerStore<u16, ()>, k: u16, prefixes: SourcePrefixes) {
        store
            .upsert(
                k,
                false,
                IndexBy::Source(prefixes),
                |_| (),
                |_| Ok::<(), SwarmFull>(()),
            )
            .unwrap();
    }

    #[test]
    fn select_never_returns_announcer_and_respects_kinds() {
        let mut rng = SmallRng::seed_from_u64(9);
        let mut store = PeerStore::default();
        for k in 0..100u16 {
            put(&mut store, k, (), k % 4 == 0).unwrap();
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

    #[test]
    fn spread_selection_reaches_every_source_before_repeating_one() {
        let mut rng = SmallRng::seed_from_u64(5);
        let wide = SourcePrefixes { ipv4: 8, ipv6: 64 };
        let mut store = PeerStore::default();
        // Source 0 holds 40 peers (keys 0..40); three lone peers of other
        // sources (keys 40, 80, 120): each announce's 4 choices reach all
        // four sources.
        for k in (0..40u16).chain([40, 80, 120]) {
            put_with(&mut store, k, wide);
        }
        for _ in 0..100 {
            let mut out = Vec::new();
            store.select_spread(&mut rng, &500, false, 4, 1000, wide, &mut out, |e| e.0);
            out.sort();
            assert_eq!(out.len(), 4);
            assert_eq!(&out[1..], &[40, 80, 120], "{out:?}");
            assert!(out[0] < 40);
        }
        // More wanted than sources: the rest from the large source, no
        // peer twice, never the announcer.
        for _ in 0..100 {
            let mut out = Vec::new();
            store.select_spread(&mut rng, &3, false, 10, 1000, wide, &mut out, |e| e.0);
            let mut unique = out.clone();
            unique.sort();
            unique.dedup();
            assert_eq!((out.len(), unique.len()), (10, 10));
            assert!(!out.contains(&3));
            assert!([40, 80, 120].iter().all(|k| out.contains(k)));
        }
        // A seeder's choice: leechers only.
        let mut store = PeerStore::default();
        for k in 0..20u16 {
            store
                .upsert(
                    k,
                    k >= 10,
                    IndexBy::Key,
                    |_| (),
                    |_| Ok::<(), SwarmFull>(()),
                )
                .unwrap();
        }
        let mut out = Vec::new();
        store.select_spread(&mut rng, &15, true, 50, 1000, P, &mut out, |e| e.0);
        out.sort();
        assert_eq!(out, (0..10).collect::<Vec<u16>>());
    }
}
