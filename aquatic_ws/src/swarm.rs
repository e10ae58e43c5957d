//! A request worker's shard: the swarms of its info hashes (one map per
//! address family), the offers it relayed and waits for answers to, and
//! the WebTorrent rules.
//!
//! - An announce is answered with the swarm's counts; each of its offers
//!   (at most `max_offers`, and `numwant`) goes to a different random peer
//!   of the swarm, peers of sources that got none of them first, never
//!   back to the sender; a seeder's offers go to leechers only.
//! - An answer is relayed only to the peer that made the offer, and only
//!   when that offer was relayed to the answering peer on this very
//!   connection: nobody can push answers to peers that sent them nothing.
//!   Answering changes nothing else. An answer to someone else's offer gets
//!   a failure reason; one to an offer no longer pending (answered,
//!   expired, its offerer gone) is dropped and counted.
//! - A peer is a peer id under the source of its connection ([`crate`]'s
//!   `[source_budgets]`), so per-source budgets hold in every swarm. A
//!   peer id belongs to the connection that announced it: another
//!   connection of that source announcing it gets a failure reason until
//!   the first leaves.
//! - Offers waiting for their answer are bounded per shard and per source
//!   ([`crate::offers`]), and leave with their connection.
//! - `stopped`, a closed connection, or `max_peer_age` without an announce
//!   removes the peer; counts are always those of the stored peers.
//!
//! Plain data and the caller's clock: tested without sockets below.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use aquatic_common::family_maps::FamilyMaps;
use aquatic_common::interval::AnnounceInterval;
use aquatic_common::source::SourceKey;
use aquatic_common::torrent_map::{Announce, Limits, SwarmEvent, TorrentMap};
use aquatic_common::{InfoHash, IpVersion, PeerId, SecondsSinceStart, ValidUntil};
use aquatic_ws_protocol::{
    AnnounceEvent, AnnounceRequest, AnnounceResponse, AnswerMessage, AnswerRequest, ErrorResponse,
    OfferMessage, OutMessage, ScrapeStatistics,
};
use rand::rngs::SmallRng;

use crate::common::{
    ConnectionRef, FAILURE_PEER_ID_TAKEN, FAILURE_UNKNOWN_OFFER, ResponseMessage, ShardStats,
    SwarmGauges, SwarmResponse,
};
use crate::offers::{NotRelayed, NotTaken, PendingKey, PendingOffer, PendingOffers};

#[derive(Clone, Copy, Debug)]
pub struct SwarmConfig {
    pub max_offers: usize,
    pub announce_interval: AnnounceInterval,
    pub max_peer_age: u32,
    pub offer_timeout: u32,
    /// This shard's share of `protocol.max_pending_offers`.
    pub max_pending_offers: usize,
    /// One source's share of `max_pending_offers`.
    pub max_pending_offers_per_source: usize,
}

/// A peer in a swarm: its connection's source and its peer id.
type PeerKey = (SourceKey, PeerId);

pub struct WsShard {
    pub config: SwarmConfig,
    /// IPv4 and IPv6 swarms: peers get offers from their own family.
    pub(crate) maps: FamilyMaps<PeerKey, PeerKey, ConnectionRef>,
    pub(crate) pending: PendingOffers,
    rng: SmallRng,
    pub(crate) gauges: Arc<SwarmGauges>,
    pub(crate) stats: Arc<ShardStats>,
    /// Reused: the peers chosen for an announce's offers.
    selected: Vec<(PeerId, ConnectionRef)>,
}

impl WsShard {
    pub fn new(
        config: SwarmConfig,
        limits: Limits,
        rng: SmallRng,
        gauges: Arc<SwarmGauges>,
        stats: Arc<ShardStats>,
    ) -> Self {
        Self {
            config,
            maps: FamilyMaps::new(limits),
            pending: PendingOffers::new(
                config.max_pending_offers,
                config.max_pending_offers_per_source,
            ),
            rng,
            gauges,
            stats,
            selected: Vec::new(),
        }
    }

    pub(crate) fn map(&mut self, ip_version: IpVersion) -> &mut TorrentMap<PeerKey, ConnectionRef> {
        self.maps.of_mut(ip_version)
    }

    pub(crate) fn announce(
        &mut self,
        now: SecondsSinceStart,
        from: ConnectionRef,
        ip_version: IpVersion,
        source: SourceKey,
        request: AnnounceRequest,
        out: &mut Vec<(usize, ResponseMessage)>,
    ) {
        let info_hash = request.info_hash;
        let key = (source, request.peer_id);
        let owner = self
            .map(ip_version)
            .peer(&info_hash, &key)
            .map(|(data, _)| data.extra);
        if owner.is_some_and(|owner| owner != from) {
            push(out, from, failure(FAILURE_PEER_ID_TAKEN, info_hash));
            return;
        }
        let wanted = request
            .numwant
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let max_peers = request.offers.len().min(self.config.max_offers).min(wanted);
        let announce = Announce {
            info_hash,
            key,
            extra: from,
            event: match request.event {
                AnnounceEvent::Started => SwarmEvent::Started,
                AnnounceEvent::Stopped => SwarmEvent::Stopped,
                // WebTorrent announces `completed` when it starts seeding a
                // file it already had: only a peer that was leeching here
                // counts as a download.
                AnnounceEvent::Completed if owner.is_none() => SwarmEvent::None,
                AnnounceEvent::Completed => SwarmEvent::Completed,
                AnnounceEvent::Update => SwarmEvent::None,
            },
            left_is_zero: request.left == Some(0) || request.event == AnnounceEvent::Completed,
            valid_until: ValidUntil::new(now, self.config.max_peer_age),
            max_peers: if request.event == AnnounceEvent::Stopped {
                0
            } else {
                max_peers
            },
            spread_sources: true,
        };
        let mut selected = std::mem::take(&mut self.selected);
        selected.clear();
        let counts = self.maps.of_mut(ip_version).announce(
            &mut self.rng,
            announce,
            &mut selected,
            |((_, peer_id), data)| (*peer_id, data.extra),
        );
        push(
            out,
            from,
            OutMessage::AnnounceResponse(AnnounceResponse {
                info_hash,
                complete: counts.seeders,
                incomplete: counts.leechers,
                interval: self.config.announce_interval.pick(&mut self.rng),
            }),
        );
        let valid_until = ValidUntil::new(now, self.config.offer_timeout);
        for (offer, (answerer, answerer_connection)) in
            request.offers.into_iter().zip(selected.drain(..))
        {
            let key = PendingKey {
                info_hash,
                offer_id: offer.offer_id,
                answerer,
            };
            let offer_data = PendingOffer {
                offerer: request.peer_id,
                offerer_connection: from,
                answerer_connection,
                valid_until,
            };
            if let Err(reason) = self.pending.insert(key, offer_data, source) {
                let counter = match reason {
                    NotRelayed::Full => &self.stats.offers_not_relayed,
                    NotRelayed::SourceShare => &self.stats.offers_not_relayed_source,
                    NotRelayed::Taken => &self.stats.offers_not_relayed_taken,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            push(
                out,
                answerer_connection,
                OutMessage::Offer(OfferMessage {
                    info_hash,
                    peer_id: request.peer_id,
                    offer_id: offer.offer_id,
                    offer: offer.offer,
                }),
            );
        }
        self.selected = selected;
    }

    pub(crate) fn answer(
        &mut self,
        now: SecondsSinceStart,
        from: ConnectionRef,
        request: AnswerRequest,
        out: &mut Vec<(usize, ResponseMessage)>,
    ) {
        let key = PendingKey {
            info_hash: request.info_hash,
            offer_id: request.offer_id,
            answerer: request.peer_id,
        };
        let pending = self.pending.take_if(&key, |p| {
            p.offerer == request.to_peer_id
                && p.answerer_connection == from
                && p.valid_until.is_valid_at(now)
        });
        match pending {
            Ok(pending) => push(
                out,
                pending.offerer_connection,
                OutMessage::Answer(AnswerMessage {
                    info_hash: request.info_hash,
                    peer_id: request.peer_id,
                    offer_id: request.offer_id,
                    answer: request.answer,
                }),
            ),
            // Someone else's offer: refused, so the sender knows.
            Err(NotTaken::Mismatch) => {
                push(out, from, failure(FAILURE_UNKNOWN_OFFER, request.info_hash))
            }
            // Answered already, expired, or its offerer left: the answer
            // has nowhere to go, and the answerer cannot tell these apart
            // from a late answer. Dropped and counted.
            Err(NotTaken::Gone) => {
                self.stats
                    .answers_not_relayed
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn scrape(&self, ip_version: IpVersion, info_hash: &InfoHash) -> ScrapeStatistics {
        let counts = self.maps.of(ip_version).scrape(info_hash);
        ScrapeStatistics {
            complete: counts.seeders,
            incomplete: counts.leechers,
            downloaded: u64::from(counts.downloaded),
        }
    }
}

fn failure(reason: &'static str, info_hash: InfoHash) -> OutMessage {
    OutMessage::Error(ErrorResponse {
        failure_reason: reason.into(),
        action: Some(aquatic_ws_protocol::Action::Announce),
        info_hash: Some(info_hash),
    })
}

fn push(out: &mut Vec<(usize, ResponseMessage)>, to: ConnectionRef, message: OutMessage) {
    out.push((
        to.socket_worker as usize,
        ResponseMessage {
            to,
            response: SwarmResponse::Message(message),
        },
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{RequestMessage, SwarmRequest};
    use aquatic_common::request_loop::{Housekeeping, Shard};
    use aquatic_ws_protocol::{JsonValue, Offer, OfferId};
    use rand::SeedableRng;

    fn shard() -> WsShard {
        shard_with(1000, 1000, Limits::UNLIMITED)
    }

    fn shard_with(max_pending: usize, per_source: usize, limits: Limits) -> WsShard {
        WsShard::new(
            SwarmConfig {
                max_offers: 10,
                announce_interval: AnnounceInterval::new(120, 0),
                max_peer_age: 300,
                offer_timeout: 60,
                max_pending_offers: max_pending,
                max_pending_offers_per_source: per_source,
            },
            limits,
            SmallRng::seed_from_u64(1),
            Arc::default(),
            Arc::default(),
        )
    }

    fn conn(token: u32) -> ConnectionRef {
        ConnectionRef {
            socket_worker: token % 2,
            token,
            generation: u64::from(token) + 1000,
        }
    }

    const HASH: InfoHash = InfoHash([7; 20]);
    const NOW: SecondsSinceStart = SecondsSinceStart(10);

    fn announce(peer: u8, left: Option<u64>, offers: usize) -> AnnounceRequest {
        AnnounceRequest {
            info_hash: HASH,
            peer_id: PeerId([peer; 20]),
            event: AnnounceEvent::Update,
            left,
            numwant: None,
            offers: (0..offers)
                .map(|i| Offer {
                    offer_id: OfferId([i as u8; 20]),
                    offer: JsonValue::from(format!("sdp {peer} {i}")),
                })
                .collect(),
        }
    }

    /// Every connection of these tests is of one source but where a test
    /// says otherwise ([`send_from`]).
    const SOURCE: SourceKey = SourceKey(1);

    fn send(
        shard: &mut WsShard,
        from: ConnectionRef,
        request: SwarmRequest,
    ) -> Vec<ResponseMessage> {
        send_from(shard, from, SOURCE, request)
    }

    fn send_from(
        shard: &mut WsShard,
        from: ConnectionRef,
        source: SourceKey,
        request: SwarmRequest,
    ) -> Vec<ResponseMessage> {
        let mut out = Vec::new();
        shard.handle(
            NOW,
            RequestMessage {
                from,
                ip_version: IpVersion::V4,
                source,
                request,
            },
            &mut out,
        );
        for (worker, message) in &out {
            assert_eq!(*worker, message.to.socket_worker as usize);
        }
        out.into_iter().map(|(_, m)| m).collect()
    }

    fn message(m: &ResponseMessage) -> &OutMessage {
        match &m.response {
            SwarmResponse::Message(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    fn counts(m: &ResponseMessage) -> (usize, usize) {
        match message(m) {
            OutMessage::AnnounceResponse(r) => (r.complete, r.incomplete),
            other => panic!("not an announce response: {other:?}"),
        }
    }

    #[test]
    fn offers_go_to_distinct_other_peers_and_answers_back_to_the_offerer() {
        let mut shard = shard();
        for peer in 1..=4 {
            let out = send(
                &mut shard,
                conn(peer.into()),
                SwarmRequest::Announce(announce(peer, Some(5), 0)),
            );
            assert_eq!(out.len(), 1);
            assert_eq!(counts(&out[0]), (0, peer as usize));
        }
        // Peer 5 sends 10 offers: 4 other peers, so 4 are relayed.
        let out = send(
            &mut shard,
            conn(5),
            SwarmRequest::Announce(announce(5, Some(5), 10)),
        );
        assert_eq!(out[0].to, conn(5));
        assert_eq!(counts(&out[0]), (0, 5));
        let mut recipients: Vec<u32> = out[1..].iter().map(|m| m.to.token).collect();
        recipients.sort();
        assert_eq!(recipients, vec![1, 2, 3, 4]);
        let relayed: Vec<(ConnectionRef, OfferId)> = out[1..]
            .iter()
            .map(|m| match message(m) {
                OutMessage::Offer(o) => {
                    assert_eq!(o.peer_id, PeerId([5; 20]));
                    (m.to, o.offer_id)
                }
                other => panic!("{other:?}"),
            })
            .collect();

        let (to, offer_id) = relayed[0];
        let answerer = PeerId([to.token as u8; 20]);
        let answer = |peer_id: PeerId, to_peer: u8, offer_id: OfferId| {
            SwarmRequest::Answer(AnswerRequest {
                info_hash: HASH,
                peer_id,
                to_peer_id: PeerId([to_peer; 20]),
                offer_id,
                answer: JsonValue::from("answer"),
            })
        };
        // Forged: wrong offerer, another connection using the answerer's
        // id: refused.
        for (from, request) in [
            (to, answer(answerer, 4, offer_id)),
            (conn(9), answer(answerer, 5, offer_id)),
        ] {
            let out = send(&mut shard, from, request);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].to, from);
            assert!(matches!(message(&out[0]), OutMessage::Error(_)), "{out:?}");
        }
        // An offer never sent to this peer: nothing to relay, nothing sent.
        assert!(send(&mut shard, to, answer(answerer, 5, OfferId([99; 20]))).is_empty());
        assert_eq!(shard.stats.answers_not_relayed.load(Ordering::Relaxed), 1);
        // The real answer reaches the offerer, once.
        let out = send(&mut shard, to, answer(answerer, 5, offer_id));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, conn(5));
        assert!(matches!(message(&out[0]), OutMessage::Answer(a) if a.peer_id == answerer));
        // A second answer: the offer is gone, nothing relayed.
        assert!(send(&mut shard, to, answer(answerer, 5, offer_id)).is_empty());
        assert_eq!(shard.stats.answers_not_relayed.load(Ordering::Relaxed), 2);
        // Answering did not change anyone's status.
        let out = send(
            &mut shard,
            conn(1),
            SwarmRequest::Announce(announce(1, Some(5), 0)),
        );
        assert_eq!(counts(&out[0]), (0, 5));
    }

    #[test]
    fn seeders_offer_to_leechers_only_and_numwant_caps_offers() {
        let mut shard = shard();
        send(
            &mut shard,
            conn(1),
            SwarmRequest::Announce(announce(1, Some(0), 0)),
        );
        send(
            &mut shard,
            conn(2),
            SwarmRequest::Announce(announce(2, Some(3), 0)),
        );
        let out = send(
            &mut shard,
            conn(3),
            SwarmRequest::Announce(announce(3, Some(0), 5)),
        );
        assert_eq!(counts(&out[0]), (2, 1));
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].to, conn(2));
        let mut request = announce(4, None, 5);
        request.numwant = Some(1);
        let out = send(&mut shard, conn(4), SwarmRequest::Announce(request));
        assert_eq!(out.len(), 2);
        assert_eq!(counts(&out[0]), (2, 2));
    }

    #[test]
    fn peer_ids_cannot_be_taken_over_and_leave_with_their_connection() {
        let mut shard = shard();
        send(
            &mut shard,
            conn(1),
            SwarmRequest::Announce(announce(1, Some(5), 0)),
        );
        let out = send(
            &mut shard,
            conn(2),
            SwarmRequest::Announce(announce(1, Some(0), 0)),
        );
        assert!(
            matches!(message(&out[0]), OutMessage::Error(e) if e.failure_reason == FAILURE_PEER_ID_TAKEN)
        );
        // Nor removed by another connection's stop or close.
        let mut stop = announce(1, Some(5), 0);
        stop.event = AnnounceEvent::Stopped;
        send(&mut shard, conn(2), SwarmRequest::Announce(stop.clone()));
        send(
            &mut shard,
            conn(2),
            SwarmRequest::ConnectionClosed {
                peers: vec![(HASH, PeerId([1; 20]))],
            },
        );
        assert_eq!(shard.scrape(IpVersion::V4, &HASH).incomplete, 1);
        // Its own connection closing removes it at once.
        send(
            &mut shard,
            conn(1),
            SwarmRequest::ConnectionClosed {
                peers: vec![(HASH, PeerId([1; 20]))],
            },
        );
        assert_eq!(
            shard.scrape(IpVersion::V4, &HASH),
            ScrapeStatistics::default()
        );
        // Then the id is free again; stopped removes it too.
        send(
            &mut shard,
            conn(2),
            SwarmRequest::Announce(announce(1, Some(5), 0)),
        );
        let out = send(&mut shard, conn(2), SwarmRequest::Announce(stop));
        assert_eq!(counts(&out[0]), (0, 0));
    }

    #[test]
    fn completed_counts_and_pending_offers_are_bounded_and_expire() {
        let mut shard = shard_with(2, 2, Limits::UNLIMITED);
        for peer in 1..=3 {
            send(
                &mut shard,
                conn(peer.into()),
                SwarmRequest::Announce(announce(peer, Some(5), 0)),
            );
        }
        let out = send(
            &mut shard,
            conn(4),
            SwarmRequest::Announce(announce(4, Some(5), 3)),
        );
        assert_eq!(out.len(), 1 + 2);
        assert_eq!(shard.stats.offers_not_relayed.load(Ordering::Relaxed), 1);
        shard.clean(NOW.add_secs(61));
        assert!(shard.pending.is_empty());
        let mut done = announce(1, Some(0), 0);
        done.event = AnnounceEvent::Completed;
        send(&mut shard, conn(1), SwarmRequest::Announce(done));
        let stats = shard.scrape(IpVersion::V4, &HASH);
        assert_eq!(
            (stats.complete, stats.incomplete, stats.downloaded),
            (1, 3, 1)
        );
    }

    fn offer_recipients(out: &[ResponseMessage]) -> Vec<u32> {
        let mut to: Vec<u32> = out
            .iter()
            .filter(|m| matches!(message(m), OutMessage::Offer(_)))
            .map(|m| m.to.token)
            .collect();
        to.sort();
        to
    }

    #[test]
    fn one_source_cannot_use_up_the_pending_offers() {
        let (attacker, honest) = (SourceKey(66), SourceKey(7));
        let mut shard = shard_with(1000, 20, Limits::UNLIMITED);
        // Receivers of another source.
        for peer in 1..=5 {
            send_from(
                &mut shard,
                conn(peer.into()),
                honest,
                SwarmRequest::Announce(announce(peer, Some(5), 0)),
            );
        }
        // The attacker's connection offers again and again: 20 relayed.
        for round in 0..10u8 {
            let mut request = announce(50, Some(5), 5);
            for offer in &mut request.offers {
                offer.offer_id.0[19] = round;
            }
            send_from(
                &mut shard,
                conn(50),
                attacker,
                SwarmRequest::Announce(request),
            );
        }
        assert_eq!(shard.pending.of_source(&attacker), 20);
        assert!(
            shard
                .stats
                .offers_not_relayed_source
                .load(Ordering::Relaxed)
                >= 30
        );
        // An honest sender still gets its offers through.
        let out = send_from(
            &mut shard,
            conn(6),
            honest,
            SwarmRequest::Announce(announce(6, Some(5), 3)),
        );
        assert_eq!(offer_recipients(&out).len(), 3);
        // The attacker's connection closes: its offers go at once.
        send_from(
            &mut shard,
            conn(50),
            attacker,
            SwarmRequest::ConnectionClosed {
                peers: vec![(HASH, PeerId([50; 20]))],
            },
        );
        assert_eq!(shard.pending.of_source(&attacker), 0);
        assert_eq!(shard.pending.len(), 3);
    }

    #[test]
    fn offers_reach_every_source_before_any_gets_two() {
        let limits = Limits {
            max_peers_per_torrent_per_source: 64,
            ..Limits::UNLIMITED
        };
        let mut shard = shard_with(100_000, 100_000, limits);
        let attacker = SourceKey(66);
        // One source puts 100 peer ids into the torrent: 64 are stored.
        for peer in 100..200u32 {
            send_from(
                &mut shard,
                conn(peer),
                attacker,
                SwarmRequest::Announce(announce(peer as u8, Some(5), 0)),
            );
        }
        assert_eq!(shard.scrape(IpVersion::V4, &HASH).incomplete, 64);
        // An honest receiver, then an honest sender with 3 offers: one of
        // them reaches the receiver, every time.
        send_from(
            &mut shard,
            conn(1),
            SourceKey(1),
            SwarmRequest::Announce(announce(1, Some(5), 0)),
        );
        for round in 0..20u8 {
            let mut request = announce(2, Some(5), 3);
            for offer in &mut request.offers {
                offer.offer_id.0[19] = round;
            }
            let out = send_from(
                &mut shard,
                conn(2),
                SourceKey(2),
                SwarmRequest::Announce(request),
            );
            let to = offer_recipients(&out);
            assert_eq!(to.len(), 3);
            assert!(to.contains(&1), "round {round}: {to:?}");
        }
    }

    #[test]
    fn a_peer_id_is_a_peer_per_source() {
        let mut shard = shard();
        send_from(
            &mut shard,
            conn(1),
            SourceKey(1),
            SwarmRequest::Announce(announce(1, Some(5), 0)),
        );
        // The same peer id from another source: another peer, which
        // cannot touch the first.
        let out = send_from(
            &mut shard,
            conn(2),
            SourceKey(2),
            SwarmRequest::Announce(announce(1, Some(0), 0)),
        );
        assert_eq!(counts(&out[0]), (1, 1));
        let mut stop = announce(1, Some(5), 0);
        stop.event = AnnounceEvent::Stopped;
        let out = send_from(
            &mut shard,
            conn(2),
            SourceKey(2),
            SwarmRequest::Announce(stop),
        );
        assert_eq!(counts(&out[0]), (0, 1));
    }
}
