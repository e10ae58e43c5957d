//! A shard's pending offers: WebRTC offers relayed to a peer and not yet
//! answered, found by (info hash, offer id, the peer it went to) when the
//! answer comes.
//!
//! Bounded twice: `max_total` for the shard, and `max_per_source` for the
//! source of the connection that made the offers, so one client cannot
//! fill the table and stop signalling for everyone else. A connection's
//! offers are linked in a list of their own, so when it closes they are
//! dropped at once and its source's budget is free again (instead of
//! waiting out `offer_timeout`).
//!
//! The offers live in a slab; a hash table of slab positions finds them by
//! key, and each offer links to the previous and next offer of the same
//! offering connection. Memory: about 150 bytes per pending offer.

use std::hash::BuildHasher;

use aquatic_common::source::{SourceCounts, SourceKey};
use aquatic_common::{InfoHash, PeerId, SecondsSinceStart, ValidUntil};
use aquatic_ws_protocol::OfferId;
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use slab::Slab;

use crate::common::ConnectionRef;

/// An offer relayed and not yet answered, under (info hash, offer id,
/// the peer it went to).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PendingKey {
    pub info_hash: InfoHash,
    pub offer_id: OfferId,
    pub answerer: PeerId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingOffer {
    pub offerer: PeerId,
    pub offerer_connection: ConnectionRef,
    pub answerer_connection: ConnectionRef,
    pub valid_until: ValidUntil,
}

/// Why an offer was not relayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotRelayed {
    /// The shard holds `max_total` offers.
    Full,
    /// The offerer's source holds `max_per_source`.
    SourceShare,
    /// An offer under the same key (info hash, offer id, answerer) is
    /// pending from another connection: it stays, so nobody can cancel or
    /// divert another client's offer by repeating its id.
    Taken,
}

/// Why an answer found no offer to go with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotTaken {
    /// No offer under its key: never made, answered already, expired and
    /// cleaned, or its offerer's connection closed.
    Gone,
    /// An offer under its key, but not for this answerer's connection, or
    /// from another offerer, or expired.
    Mismatch,
}

/// No neighbour in a connection's list.
const NONE: u32 = u32::MAX;

struct Node {
    key: PendingKey,
    offer: PendingOffer,
    source: SourceKey,
    prev: u32,
    next: u32,
}

pub struct PendingOffers {
    nodes: Slab<Node>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// The first offer of each offering connection.
    heads: HashMap<ConnectionRef, u32>,
    sources: SourceCounts,
    max_total: usize,
    max_per_source: usize,
}

/// Most offers one table holds: slab positions are `u32` (one value is
/// the list end).
pub const MAX_OFFERS: usize = NONE as usize;

impl PendingOffers {
    pub fn new(max_total: usize, max_per_source: usize) -> Self {
        Self {
            nodes: Slab::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            heads: HashMap::new(),
            sources: SourceCounts::default(),
            max_total: max_total.min(MAX_OFFERS),
            max_per_source,
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Offers pending from `source`.
    pub fn of_source(&self, source: &SourceKey) -> usize {
        self.sources.get(source)
    }

    fn find(&self, key: &PendingKey) -> Option<u32> {
        let nodes = &self.nodes;
        self.index
            .find(self.hasher.hash_one(key), |&slot| {
                nodes.get(slot as usize).is_some_and(|n| n.key == *key)
            })
            .copied()
    }

    /// Remember an offer relayed for `source`'s connection, replacing one
    /// under the same key; refused when the shard or the source has no
    /// room.
    pub fn insert(
        &mut self,
        key: PendingKey,
        offer: PendingOffer,
        source: SourceKey,
    ) -> Result<(), NotRelayed> {
        if let Some(slot) = self.find(&key) {
            let same_offerer = self
                .nodes
                .get(slot as usize)
                .is_some_and(|node| node.offer.offerer_connection == offer.offerer_connection);
            if !same_offerer {
                return Err(NotRelayed::Taken);
            }
            // The offerer repeats its offer: the new one replaces it.
            self.remove_slot(slot);
        }
        if self.nodes.len() >= self.max_total {
            return Err(NotRelayed::Full);
        }
        if !self.sources.try_acquire(source, self.max_per_source) {
            return Err(NotRelayed::SourceShare);
        }
        let next = self
            .heads
            .get(&offer.offerer_connection)
            .copied()
            .unwrap_or(NONE);
        // Below MAX_OFFERS by the check above.
        let slot = self.nodes.insert(Node {
            key,
            offer,
            source,
            prev: NONE,
            next,
        }) as u32;
        if let Some(old_head) = self.nodes.get_mut(next as usize) {
            old_head.prev = slot;
        }
        self.heads.insert(offer.offerer_connection, slot);
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        self.index.insert_unique(hasher.hash_one(key), slot, |&s| {
            // Every indexed slot is occupied; 0 would only misplace.
            nodes.get(s as usize).map_or(0, |n| hasher.hash_one(n.key))
        });
        Ok(())
    }

    /// The offer under `key`, removed, if `matches` accepts it (the answer
    /// comes from the right connection, in time, for the right offerer).
    pub fn take_if(
        &mut self,
        key: &PendingKey,
        matches: impl FnOnce(&PendingOffer) -> bool,
    ) -> Result<PendingOffer, NotTaken> {
        let slot = self.find(key).ok_or(NotTaken::Gone)?;
        let offer = self
            .nodes
            .get(slot as usize)
            .map(|n| n.offer)
            .ok_or(NotTaken::Gone)?;
        if !matches(&offer) {
            return Err(NotTaken::Mismatch);
        }
        self.remove_slot(slot);
        Ok(offer)
    }

    /// Drop every offer `connection` made: it closed. How many.
    pub fn remove_connection(&mut self, connection: &ConnectionRef) -> usize {
        let mut removed = 0;
        while let Some(&head) = self.heads.get(connection) {
            self.remove_slot(head);
            removed += 1;
        }
        removed
    }

    /// Drop the offers not answered in time.
    pub fn clean(&mut self, now: SecondsSinceStart) {
        let expired: Vec<u32> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.offer.valid_until.is_valid_at(now))
            .map(|(slot, _)| slot as u32)
            .collect();
        for slot in expired {
            self.remove_slot(slot);
        }
        if self.nodes.capacity() > 2 * self.nodes.len().max(1024) {
            self.nodes.shrink_to_fit();
        }
        self.index.shrink_to_fit(|&s| {
            self.nodes
                .get(s as usize)
                .map_or(0, |n| self.hasher.hash_one(n.key))
        });
        self.heads.shrink_to_fit();
        self.sources.shrink();
    }

    fn remove_slot(&mut self, slot: u32) {
        let Some(node) = self.nodes.try_remove(slot as usize) else {
            return;
        };
        if let Ok(entry) = self
            .index
            .find_entry(self.hasher.hash_one(node.key), |&s| s == slot)
        {
            entry.remove();
        }
        self.sources.release(&node.source);
        if let Some(next) = self.nodes.get_mut(node.next as usize) {
            next.prev = node.prev;
        }
        match self.nodes.get_mut(node.prev as usize) {
            Some(prev) => prev.next = node.next,
            // It was its connection's first offer.
            None if node.next == NONE => {
                self.heads.remove(&node.offer.offerer_connection);
            }
            None => {
                self.heads.insert(node.offer.offerer_connection, node.next);
            }
        }
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        assert_eq!(self.index.len(), self.nodes.len());
        let mut listed = 0;
        for (connection, &head) in &self.heads {
            let mut prev = NONE;
            let mut slot = head;
            while slot != NONE {
                let node = &self.nodes[slot as usize];
                assert_eq!(node.prev, prev);
                assert_eq!(node.offer.offerer_connection, *connection);
                assert_eq!(self.find(&node.key), Some(slot));
                listed += 1;
                prev = slot;
                slot = node.next;
            }
        }
        assert_eq!(listed, self.nodes.len());
        let mut by_source = std::collections::HashMap::new();
        for (_, node) in &self.nodes {
            *by_source.entry(node.source).or_insert(0) += 1;
        }
        assert_eq!(by_source.len(), self.sources.sources());
        for (source, n) in by_source {
            assert_eq!(self.sources.get(&source), n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn conn(token: u32) -> ConnectionRef {
        ConnectionRef {
            socket_worker: 0,
            token,
            generation: u64::from(token),
        }
    }

    fn key(offer: u8, answerer: u8) -> PendingKey {
        PendingKey {
            info_hash: InfoHash([1; 20]),
            offer_id: OfferId([offer; 20]),
            answerer: PeerId([answerer; 20]),
        }
    }

    fn offer(from: u32, to: u32, until: u32) -> PendingOffer {
        PendingOffer {
            offerer: PeerId([from as u8; 20]),
            offerer_connection: conn(from),
            answerer_connection: conn(to),
            valid_until: ValidUntil::from_secs(SecondsSinceStart(until)),
        }
    }

    #[test]
    fn budgets_hold_and_a_closed_connection_frees_its_source_at_once() {
        let mut offers = PendingOffers::new(10, 4);
        let (a, b) = (SourceKey(1), SourceKey(2));
        for i in 0..6 {
            let result = offers.insert(key(i, 9), offer(1, 9, 100), a);
            assert_eq!(result.is_ok(), i < 4, "{i}");
        }
        assert_eq!(offers.of_source(&a), 4);
        for i in 0..6 {
            let result = offers.insert(key(i, 8), offer(2, 8, 100), b);
            assert_eq!(
                result,
                if i < 4 {
                    Ok(())
                } else {
                    Err(NotRelayed::SourceShare)
                }
            );
        }
        // The shard's own bound: 10 in all.
        let c = SourceKey(3);
        assert!(offers.insert(key(1, 7), offer(3, 7, 100), c).is_ok());
        assert!(offers.insert(key(2, 7), offer(3, 7, 100), c).is_ok());
        assert_eq!(
            offers.insert(key(3, 7), offer(3, 7, 100), c),
            Err(NotRelayed::Full)
        );
        offers.check_invariants();
        // Connection 1 closes: its four go, source a may offer again.
        assert_eq!(offers.remove_connection(&conn(1)), 4);
        assert_eq!(offers.of_source(&a), 0);
        assert_eq!(offers.len(), 6);
        offers.check_invariants();
        assert!(offers.insert(key(0, 9), offer(4, 9, 100), a).is_ok());
        // Answers: only when the check passes, and only once.
        assert_eq!(
            offers.take_if(&key(0, 8), |o| o.answerer_connection == conn(7)),
            Err(NotTaken::Mismatch)
        );
        assert_eq!(
            offers.take_if(&key(0, 8), |o| o.answerer_connection == conn(8)),
            Ok(offer(2, 8, 100))
        );
        assert_eq!(offers.take_if(&key(0, 8), |_| true), Err(NotTaken::Gone));
        offers.check_invariants();
        // Expiry.
        offers.insert(key(5, 5), offer(5, 5, 10), c).unwrap();
        offers.clean(SecondsSinceStart(101));
        assert!(offers.is_empty());
        assert_eq!(offers.of_source(&b), 0);
        offers.check_invariants();
    }

    #[test]
    fn only_its_own_offerer_replaces_a_pending_offer() {
        let mut offers = PendingOffers::new(10, 10);
        offers
            .insert(key(1, 1), offer(1, 2, 100), SourceKey(1))
            .unwrap();
        // Another connection repeating the id neither replaces nor
        // removes it.
        assert_eq!(
            offers.insert(key(1, 1), offer(3, 2, 100), SourceKey(3)),
            Err(NotRelayed::Taken)
        );
        assert_eq!(offers.len(), 1);
        assert_eq!(offers.of_source(&SourceKey(1)), 1);
        // The offerer itself may repeat it: the new one replaces the old.
        offers
            .insert(key(1, 1), offer(1, 2, 200), SourceKey(1))
            .unwrap();
        assert_eq!(offers.len(), 1);
        assert_eq!(offers.of_source(&SourceKey(1)), 1);
        assert_eq!(offers.remove_connection(&conn(3)), 0);
        assert_eq!(offers.remove_connection(&conn(1)), 1);
        offers.check_invariants();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u8, u32),
        Take(u8, u8),
        Close(u32),
        Clean(u32),
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn lists_index_and_counts_stay_consistent(ops in prop::collection::vec(
            prop_oneof![
                6 => (0..8u8, 0..8u8, 0..6u32).prop_map(|(o, a, c)| Op::Insert(o, a, c)),
                2 => (0..8u8, 0..8u8).prop_map(|(o, a)| Op::Take(o, a)),
                1 => (0..6u32).prop_map(Op::Close),
                1 => (0..200u32).prop_map(Op::Clean),
            ],
            1..300,
        )) {
            let mut offers = PendingOffers::new(40, 12);
            for (now, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Insert(o, a, c) => {
                        let _ = offers.insert(key(o, a), offer(c, 9, now as u32 + 50), SourceKey(u64::from(c % 3)));
                    }
                    Op::Take(o, a) => {
                        let _ = offers.take_if(&key(o, a), |_| true);
                    }
                    Op::Close(c) => {
                        offers.remove_connection(&conn(c));
                    }
                    Op::Clean(t) => offers.clean(SecondsSinceStart(t)),
                }
                offers.check_invariants();
                prop_assert!(offers.len() <= 40);
                for s in 0..3 {
                    prop_assert!(offers.of_source(&SourceKey(s)) <= 12);
                }
            }
        }
    }
}
