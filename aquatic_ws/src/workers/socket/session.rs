//! One WebSocket connection's tracker state, without its socket: the
//! swarms it announced in (left when it closes), its scrapes in flight and
//! their parts, and its timers (ping when quiet, close when silent or when
//! the upgrade takes too long). Every per-connection limit on these lives
//! here and is tested without sockets; frame, message and write-buffer
//! limits are tungstenite's ([`super::framing`]).

use aquatic_common::{InfoHash, PeerId, SecondsSinceStart};
use aquatic_ws_protocol::{AnnounceEvent, ScrapeStatistics};

/// Scrapes one connection may have waiting for request workers.
pub const MAX_SCRAPES_IN_FLIGHT: usize = 8;
/// Seconds a new connection has to complete its upgrade request (at most
/// `connection_idle_timeout`): slow heads cannot hold connections long.
pub const MAX_HANDSHAKE_SECS: u32 = 15;

/// The connection timers, from the config (seconds).
#[derive(Clone, Copy, Debug)]
pub struct Timers {
    pub ping_interval: u32,
    pub idle_timeout: u32,
}

/// What the periodic sweep does with a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// Quiet for `ping_interval`: send a ping (once until it answers).
    Ping,
    /// Silent for `idle_timeout`, or still in its upgrade after
    /// `MAX_HANDSHAKE_SECS`: close.
    Expire,
}

/// An announce the connection may not make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyTorrents;

struct PendingScrape {
    id: u32,
    parts_left: usize,
    files: Vec<(InfoHash, ScrapeStatistics)>,
}

pub struct Session {
    /// Last message, pong or (during the handshake) connection time.
    last_received: SecondsSinceStart,
    ping_sent: bool,
    /// Swarms this connection announced in, left when it closes.
    torrents: Vec<(InfoHash, PeerId)>,
    /// Sent an announce with offers: on close, every shard drops the
    /// offers it still holds for this connection.
    sent_offers: bool,
    scrapes: Vec<PendingScrape>,
    next_scrape_id: u32,
}

impl Session {
    pub fn new(now: SecondsSinceStart) -> Self {
        Self {
            last_received: now,
            ping_sent: false,
            torrents: Vec::new(),
            sent_offers: false,
            scrapes: Vec::new(),
            next_scrape_id: 0,
        }
    }

    /// Anything came from the client (a message, a pong, or the upgrade
    /// completed).
    pub fn received(&mut self, now: SecondsSinceStart) {
        self.last_received = now;
        self.ping_sent = false;
    }

    pub fn due(&mut self, now: SecondsSinceStart, timers: Timers, upgraded: bool) -> Due {
        let quiet = now.saturating_sub(self.last_received);
        if !upgraded {
            let limit = timers.idle_timeout.min(MAX_HANDSHAKE_SECS);
            return if quiet >= limit {
                Due::Expire
            } else {
                Due::Nothing
            };
        }
        if quiet >= timers.idle_timeout {
            Due::Expire
        } else if quiet >= timers.ping_interval && !self.ping_sent {
            self.ping_sent = true;
            Due::Ping
        } else {
            Due::Nothing
        }
    }

    /// Keep track of the swarms an announce joins or leaves: a peer id
    /// announcing in a new torrent past `max_torrents` is refused.
    pub fn announce(
        &mut self,
        info_hash: InfoHash,
        peer_id: PeerId,
        event: AnnounceEvent,
        with_offers: bool,
        max_torrents: usize,
    ) -> Result<(), TooManyTorrents> {
        let entry = (info_hash, peer_id);
        let known = self.torrents.iter().position(|e| *e == entry);
        match (event, known) {
            (AnnounceEvent::Stopped, Some(i)) => {
                self.torrents.swap_remove(i);
            }
            (AnnounceEvent::Stopped, None) | (_, Some(_)) => {}
            (_, None) => {
                if self.torrents.len() >= max_torrents {
                    return Err(TooManyTorrents);
                }
                self.torrents.push(entry);
            }
        }
        self.sent_offers |= with_offers;
        Ok(())
    }

    /// A scrape split into `parts` goes to the shards: its id, or `None`
    /// with `MAX_SCRAPES_IN_FLIGHT` already waiting.
    pub fn begin_scrape(&mut self, parts: usize) -> Option<u32> {
        if self.scrapes.len() >= MAX_SCRAPES_IN_FLIGHT {
            return None;
        }
        let id = self.next_scrape_id;
        self.next_scrape_id = id.wrapping_add(1);
        self.scrapes.push(PendingScrape {
            id,
            parts_left: parts,
            files: Vec::new(),
        });
        Some(id)
    }

    /// One shard's part of scrape `id`; the whole answer once the last
    /// part is in (`None` before, or for a scrape no longer waited for).
    pub fn add_scrape_part(
        &mut self,
        id: u32,
        files: Vec<(InfoHash, ScrapeStatistics)>,
    ) -> Option<Vec<(InfoHash, ScrapeStatistics)>> {
        let i = self.scrapes.iter().position(|s| s.id == id)?;
        let pending = self.scrapes.get_mut(i)?;
        pending.files.extend(files);
        pending.parts_left = pending.parts_left.saturating_sub(1);
        if pending.parts_left > 0 {
            return None;
        }
        Some(self.scrapes.swap_remove(i).files)
    }

    /// Give up scrape `id` (a shard was overloaded); whether it was still
    /// waited for, so that it fails once, not once per part.
    pub fn forget_scrape(&mut self, id: u32) -> bool {
        let before = self.scrapes.len();
        self.scrapes.retain(|s| s.id != id);
        self.scrapes.len() != before
    }

    /// The peers the connection leaves with, and whether every shard must
    /// hear of the close for the offers it made.
    pub fn leave(self) -> (Vec<(InfoHash, PeerId)>, bool) {
        (self.torrents, self.sent_offers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMERS: Timers = Timers {
        ping_interval: 60,
        idle_timeout: 180,
    };

    fn at(secs: u32) -> SecondsSinceStart {
        SecondsSinceStart(secs)
    }

    #[test]
    fn quiet_connections_are_pinged_once_then_closed() {
        let mut s = Session::new(at(0));
        assert_eq!(s.due(at(59), TIMERS, true), Due::Nothing);
        assert_eq!(s.due(at(60), TIMERS, true), Due::Ping);
        assert_eq!(s.due(at(61), TIMERS, true), Due::Nothing);
        // The pong counts as traffic: pinged again after another quiet spell.
        s.received(at(100));
        assert_eq!(s.due(at(160), TIMERS, true), Due::Ping);
        assert_eq!(s.due(at(279), TIMERS, true), Due::Nothing);
        assert_eq!(s.due(at(280), TIMERS, true), Due::Expire);
    }

    #[test]
    fn an_upgrade_has_fifteen_seconds_at_most() {
        let mut s = Session::new(at(0));
        assert_eq!(s.due(at(14), TIMERS, false), Due::Nothing);
        assert_eq!(s.due(at(15), TIMERS, false), Due::Expire);
        let short = Timers {
            ping_interval: 1,
            idle_timeout: 5,
        };
        assert_eq!(Session::new(at(0)).due(at(5), short, false), Due::Expire);
    }

    #[test]
    fn torrents_are_bounded_and_left_on_close() {
        let mut s = Session::new(at(0));
        let (a, b, c) = (InfoHash([1; 20]), InfoHash([2; 20]), InfoHash([3; 20]));
        let p = PeerId([9; 20]);
        assert_eq!(s.announce(a, p, AnnounceEvent::Started, false, 2), Ok(()));
        // Announcing again in a known swarm costs nothing.
        assert_eq!(s.announce(a, p, AnnounceEvent::Update, false, 2), Ok(()));
        assert_eq!(s.announce(b, p, AnnounceEvent::Started, true, 2), Ok(()));
        assert_eq!(
            s.announce(c, p, AnnounceEvent::Started, false, 2),
            Err(TooManyTorrents)
        );
        // Stopping frees a place.
        assert_eq!(s.announce(a, p, AnnounceEvent::Stopped, false, 2), Ok(()));
        assert_eq!(s.announce(c, p, AnnounceEvent::Started, false, 2), Ok(()));
        let (mut left, sent_offers) = s.leave();
        left.sort();
        assert_eq!(left, vec![(b, p), (c, p)]);
        assert!(sent_offers);
    }

    #[test]
    fn scrapes_in_flight_are_bounded_and_assembled() {
        let mut s = Session::new(at(0));
        let ids: Vec<u32> = (0..MAX_SCRAPES_IN_FLIGHT)
            .map(|_| s.begin_scrape(2).unwrap())
            .collect();
        assert_eq!(s.begin_scrape(1), None);
        let stats = ScrapeStatistics {
            complete: 1,
            incomplete: 2,
            downloaded: 3,
        };
        let first = ids.first().copied().unwrap();
        assert_eq!(
            s.add_scrape_part(first, vec![(InfoHash([1; 20]), stats)]),
            None
        );
        let files = s
            .add_scrape_part(first, vec![(InfoHash([2; 20]), stats)])
            .unwrap();
        assert_eq!(files.len(), 2);
        // Done: a late part finds nothing; a place is free again.
        assert_eq!(s.add_scrape_part(first, Vec::new()), None);
        assert!(s.begin_scrape(1).is_some());
        // An overloaded shard fails a scrape once.
        let second = ids.get(1).copied().unwrap();
        assert!(s.forget_scrape(second));
        assert!(!s.forget_scrape(second));
        assert_eq!(s.add_scrape_part(second, Vec::new()), None);
    }
}
