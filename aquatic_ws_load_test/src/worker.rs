//! A worker thread: one mio Poll and a set of WebSocket connections, each
//! a peer with exactly one announce or scrape in flight (closed loop),
//! optionally paced by a token bucket (`max_requests_per_second`), and
//! answering every offer relayed to it at once.
//!
//! A connection's life: it opens a TCP connection (and TLS), does the
//! WebSocket handshake (non-blocking: tungstenite's `MidHandshake` is
//! resumed on every event until done), then sends its first request. Each
//! text message from the tracker is parsed with aquatic_ws_protocol's
//! `OutMessage::from_json`: the reply to the request in flight (an announce
//! reply for the same info hash, a scrape reply, or a failure reason)
//! starts the next request; a relayed offer is answered; a relayed answer
//! is checked against the offers this connection made. A request without
//! a reply in time, a WebSocket protocol error, or the tracker closing the
//! connection closes it; a new one (a new peer) is opened at once, or after
//! a short delay when the connection never got a reply (so a tracker
//! refusing connections is not hammered).

use std::io::ErrorKind;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aquatic_load_test_common::run::{PollWorker, WorkerBase, run_worker};
use aquatic_ws_protocol::{Action, ErrorResponse, OutMessage};
use mio::event::Event;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tungstenite::handshake::HandshakeError;
use tungstenite::{Message, WebSocket};

use crate::config::Config;
use crate::messages::{Kind, Peer, RequestGenerator, Sent};
use crate::stats::{Counts, FailureReasons, SharedCounts};
use crate::transport::{Connector, Handshake, Stream};

/// After a connection failed before its handshake was done (refused, say),
/// or was closed before any reply, the next one opens after this long.
const CONNECTION_ERROR_DELAY: Duration = Duration::from_millis(100);

/// Most connections of a worker in their handshakes at once; the others
/// wait (in [`Phase::Closed`]) for the sweep that follows a free slot. So
/// thousands of connections do not all knock at once and overflow the
/// tracker's accept queue (Node's is 511 long): the kernel drops what does
/// not fit, and the client only tries again a second or more later.
const MAX_CONNECTING: usize = 128;

enum Socket {
    None,
    Handshaking(Handshake),
    Open(Box<WebSocket<Stream>>),
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    /// No connection: open one on the next sweep (if fewer than
    /// [`MAX_CONNECTING`] are connecting then).
    Closed,
    /// The last connection failed: open the next one at this time.
    Backoff(Instant),
    /// TCP, TLS and WebSocket handshakes under way since then.
    Connecting(Instant),
    /// Open, no request in flight: between a reply (or the handshake)
    /// and the next request.
    Idle,
    /// Open; the next request waits for the rate cap, in the worker's
    /// queue.
    Throttled,
    /// Open; this request waits for its reply since then.
    Waiting(Sent, Instant),
}

/// Why a connection is given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// It failed before its WebSocket handshake was done.
    Connection,
    /// The tracker closed it (or reset it) once it was open.
    ClosedByTracker,
    /// A request went without a reply for too long.
    Timeout,
    /// A WebSocket protocol error (a bad frame, a message too large).
    Invalid,
}

struct Connection {
    socket: Socket,
    phase: Phase,
    peer: Peer,
    /// Whether the next connection opened replaces one given up.
    reconnect: bool,
    /// Whether this connection got a reply to any request.
    replied: bool,
    /// Replies this connection got.
    replies: u64,
}

/// Everything of a worker but its connections.
struct Context {
    base: WorkerBase<Counts>,
    connector: Connector,
    generator: RequestGenerator,
    rng: SmallRng,
    /// `requests_per_connection`: replies after which a connection is
    /// replaced by a new one (0: never).
    requests_per_connection: u64,
    /// Connections in [`Phase::Connecting`].
    connecting: usize,
    failure_reasons: FailureReasons,
    /// A tracker message being parsed (simd-json works in place).
    json: Vec<u8>,
}

/// A worker, set up (nothing opened yet) but not running. Built on the
/// caller's thread so that setup errors surface before the test starts.
pub struct Worker {
    connections: Vec<Connection>,
    cx: Context,
    reasons: Arc<Mutex<FailureReasons>>,
}

impl Worker {
    pub fn new(
        config: &Config,
        connector: Connector,
        shared: Arc<SharedCounts>,
        reasons: Arc<Mutex<FailureReasons>>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let mut rng = SmallRng::from_rng(&mut rand::rng());
        let connections = (0..config.connections_per_worker)
            .map(|_| Connection {
                socket: Socket::None,
                phase: Phase::Closed,
                peer: Peer::new(&mut rng),
                reconnect: false,
                replied: false,
                replies: 0,
            })
            .collect();
        Ok(Self {
            connections,
            cx: Context {
                base: config.worker_base(shared, stop)?,
                connector,
                generator: RequestGenerator::new(config, &mut rng)?,
                rng,
                requests_per_connection: config.requests_per_connection,
                connecting: 0,
                failure_reasons: FailureReasons::default(),
                json: Vec::with_capacity(16 * 1024),
            },
            reasons,
        })
    }

    /// Run until the stop flag is set. Counts go to the shared totals once
    /// per poll round.
    pub fn run(mut self) -> anyhow::Result<()> {
        let slots = self.connections.len();
        run_worker(&mut self, slots)?;
        // A poisoned lock only means another worker panicked; the run
        // fails anyway then.
        if let Ok(mut reasons) = self.reasons.lock() {
            reasons.merge(&self.cx.failure_reasons);
        }
        Ok(())
    }

    /// Open connection `i` and start its handshake, or leave it closed
    /// for a later sweep when too many are connecting.
    fn open(&mut self, i: usize, now: Instant) {
        let Some(c) = self.connections.get_mut(i) else {
            return;
        };
        let cx = &mut self.cx;
        if cx.connecting >= MAX_CONNECTING {
            c.phase = Phase::Closed;
            return;
        }
        let started = cx.connector.open().and_then(|mut stream| {
            cx.base
                .register_connection(stream.socket(), i)
                .map(|()| stream)
        });
        let handshake = match started {
            Ok(stream) => cx.connector.handshake(stream).ok(),
            // E.g. out of ephemeral ports or file descriptors.
            Err(_) => None,
        };
        match handshake {
            Some(handshake) => {
                c.socket = Socket::Handshaking(handshake);
                c.phase = Phase::Connecting(now);
                cx.connecting += 1;
                c.peer = Peer::new(&mut cx.rng);
                c.replied = false;
                c.replies = 0;
                self.drive(i, now);
            }
            None => {
                cx.base.counts.connection_errors += 1;
                c.reconnect = true;
                c.phase = Phase::Backoff(now + CONNECTION_ERROR_DELAY);
            }
        }
    }

    /// Make what progress connection `i` allows: resume its handshake, or
    /// read the tracker's messages and write what is pending.
    fn drive(&mut self, i: usize, now: Instant) {
        let Some(c) = self.connections.get_mut(i) else {
            return;
        };
        if let Socket::Handshaking(_) = c.socket {
            let Socket::Handshaking(handshake) = std::mem::replace(&mut c.socket, Socket::None)
            else {
                return;
            };
            match handshake.handshake() {
                Ok((websocket, _response)) => {
                    c.socket = Socket::Open(Box::new(websocket));
                    c.phase = Phase::Idle;
                    self.cx.connecting = self.cx.connecting.saturating_sub(1);
                    self.cx.base.counts.connections_opened += 1;
                    if std::mem::take(&mut c.reconnect) {
                        self.cx.base.counts.reconnects += 1;
                    }
                    self.start_when_allowed(i, now);
                }
                Err(HandshakeError::Interrupted(handshake)) => {
                    c.socket = Socket::Handshaking(handshake);
                    return;
                }
                Err(HandshakeError::Failure(_)) => return self.fail(i, Failure::Connection, now),
            }
        }
        self.receive(i, now);
    }

    /// The WebSocket of connection `i`, when it is open.
    fn websocket(&mut self, i: usize) -> Option<&mut WebSocket<Stream>> {
        match self.connections.get_mut(i) {
            Some(Connection {
                socket: Socket::Open(websocket),
                ..
            }) => Some(&mut **websocket),
            _ => None,
        }
    }

    /// Read and handle the tracker's messages on connection `i` until the
    /// socket would block, then write out what is pending (answers,
    /// requests, pongs).
    fn receive(&mut self, i: usize, now: Instant) {
        loop {
            let Some(websocket) = self.websocket(i) else {
                return;
            };
            match websocket.read() {
                Ok(Message::Text(text)) => {
                    self.cx.json.clear();
                    self.cx.json.extend_from_slice(text.as_bytes());
                    self.handle_message(i, now);
                }
                Ok(Message::Binary(_)) => self.cx.base.counts.invalid += 1,
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) => {
                    // Best effort: send the close reply tungstenite queued.
                    let _ = websocket.flush();
                    return self.fail(i, Failure::ClosedByTracker, now);
                }
                Err(tungstenite::Error::Io(err)) if err.kind() == ErrorKind::WouldBlock => break,
                Err(tungstenite::Error::Io(err)) if err.kind() == ErrorKind::Interrupted => {}
                Err(
                    tungstenite::Error::ConnectionClosed
                    | tungstenite::Error::AlreadyClosed
                    | tungstenite::Error::Io(_)
                    | tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                    ),
                ) => return self.fail(i, Failure::ClosedByTracker, now),
                Err(_) => return self.fail(i, Failure::Invalid, now),
            }
        }
        self.flush(i, now);
    }

    /// Write out what connection `i` has pending; `WouldBlock` leaves it
    /// for the next writable event.
    fn flush(&mut self, i: usize, now: Instant) {
        let Some(websocket) = self.websocket(i) else {
            return;
        };
        match websocket.flush() {
            Ok(()) => {}
            Err(tungstenite::Error::Io(err)) if err.kind() == ErrorKind::WouldBlock => {}
            Err(_) => self.fail(i, Failure::ClosedByTracker, now),
        }
    }

    /// Handle the tracker message in `cx.json`, received on connection `i`.
    fn handle_message(&mut self, i: usize, now: Instant) {
        let Some(c) = self.connections.get_mut(i) else {
            return;
        };
        let cx = &mut self.cx;
        let message = match OutMessage::from_json(&mut cx.json) {
            Ok(message) => message,
            Err(_) => {
                cx.base.counts.invalid += 1;
                return;
            }
        };
        let waiting = match c.phase {
            Phase::Waiting(sent, _) => Some(sent),
            _ => None,
        };
        let reply = match message {
            OutMessage::AnnounceResponse(r) => match waiting {
                Some(sent) if sent.kind == Kind::Announce && sent.info_hash == r.info_hash => {
                    cx.base.counts.announce_replies += 1;
                    true
                }
                _ => {
                    cx.base.counts.unexpected += 1;
                    false
                }
            },
            OutMessage::ScrapeResponse(_) => match waiting {
                Some(sent) if sent.kind == Kind::Scrape => {
                    cx.base.counts.scrape_replies += 1;
                    true
                }
                _ => {
                    cx.base.counts.unexpected += 1;
                    false
                }
            },
            OutMessage::Error(error) => {
                cx.failure_reasons.add(&error.failure_reason, 1);
                if waiting.is_some_and(|sent| answers(&error, sent)) {
                    cx.base.counts.failures += 1;
                    true
                } else {
                    cx.base.counts.other_failures += 1;
                    false
                }
            }
            OutMessage::Offer(offer) => {
                cx.base.counts.offers_received += 1;
                if offer.peer_id == c.peer.peer_id {
                    cx.base.counts.own_offers_received += 1;
                }
                let answer = cx.generator.answer(&c.peer, &offer);
                let Socket::Open(websocket) = &mut c.socket else {
                    return;
                };
                // Flushed once the messages read so far are handled.
                match websocket.write(Message::text(answer)) {
                    Ok(()) => cx.base.counts.answers_sent += 1,
                    // Queued, to be written when the socket takes it.
                    Err(tungstenite::Error::Io(err)) if err.kind() == ErrorKind::WouldBlock => {
                        cx.base.counts.answers_sent += 1
                    }
                    Err(_) => {
                        cx.base.counts.offers_unanswered += 1;
                        return self.fail(i, Failure::ClosedByTracker, now);
                    }
                }
                false
            }
            OutMessage::Answer(answer) => {
                if c.peer.made_offer(&answer.offer_id) {
                    cx.base.counts.answers_received += 1;
                } else {
                    cx.base.counts.answers_unknown += 1;
                }
                false
            }
        };
        if reply {
            c.replied = true;
            c.replies += 1;
            c.phase = Phase::Idle;
            if cx.requests_per_connection != 0 && c.replies >= cx.requests_per_connection {
                return self.retire(i, now);
            }
            self.start_when_allowed(i, now);
        }
    }

    /// Close connection `i` after its `requests_per_connection` replies
    /// (a close frame, best effort; the tracker removes its peers) and open
    /// a new one, a new peer, in its place.
    fn retire(&mut self, i: usize, now: Instant) {
        let Some(c) = self.connections.get_mut(i) else {
            return;
        };
        if let Socket::Open(websocket) = &mut c.socket {
            // Best effort: a tracker that is gone or slow to read only
            // misses the close frame and sees the TCP connection end.
            let _ = websocket.close(None);
            let _ = websocket.flush();
        }
        c.socket = Socket::None;
        c.phase = Phase::Closed;
        self.cx.base.counts.retired += 1;
        self.open(i, now);
    }

    /// Write connection `i`'s next request (not flushed).
    fn send_request(&mut self, i: usize, now: Instant) {
        let Some(c) = self.connections.get_mut(i) else {
            return;
        };
        let Socket::Open(websocket) = &mut c.socket else {
            return;
        };
        let cx = &mut self.cx;
        let (sent, text) = cx.generator.next_request(&mut cx.rng, &mut c.peer);
        match websocket.write(Message::text(text)) {
            Ok(()) => {}
            // Queued, to be written when the socket takes it.
            Err(tungstenite::Error::Io(err)) if err.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return self.fail(i, Failure::ClosedByTracker, now),
        }
        match sent.kind {
            Kind::Announce => cx.base.counts.announces_sent += 1,
            Kind::Scrape => cx.base.counts.scrapes_sent += 1,
        }
        cx.base.counts.offers_sent += sent.offers as u64;
        c.phase = Phase::Waiting(sent, now);
    }

    /// Give connection `i` up (closing it, which also removes it from the
    /// Poll), count why, and open a new one: at once, or after a delay when
    /// it never got a reply.
    fn fail(&mut self, i: usize, failure: Failure, now: Instant) {
        let Some(c) = self.connections.get_mut(i) else {
            return;
        };
        let counts = &mut self.cx.base.counts;
        c.socket = Socket::None;
        c.reconnect = true;
        match c.phase {
            Phase::Waiting(..) if failure != Failure::Timeout => counts.dropped += 1,
            Phase::Connecting(_) => self.cx.connecting = self.cx.connecting.saturating_sub(1),
            _ => {}
        }
        match failure {
            Failure::Connection => counts.connection_errors += 1,
            Failure::ClosedByTracker => counts.tracker_closes += 1,
            Failure::Timeout => counts.timeouts += 1,
            Failure::Invalid => counts.invalid += 1,
        }
        if failure == Failure::Connection || !c.replied {
            c.phase = Phase::Backoff(now + CONNECTION_ERROR_DELAY);
        } else {
            c.phase = Phase::Closed;
            self.open(i, now);
        }
    }
}

impl PollWorker<Counts> for Worker {
    fn base(&mut self) -> &mut WorkerBase<Counts> {
        &mut self.cx.base
    }

    /// Send the request of connection `i`, which waited for a token (closed
    /// while it waited: its token goes unused).
    fn start(&mut self, i: usize, now: Instant) {
        if let Some(Phase::Throttled) = self.connections.get(i).map(|c| c.phase) {
            self.send_request(i, now);
            self.flush(i, now);
        }
    }

    fn wait_for_token(&mut self, i: usize) {
        if let Some(c) = self.connections.get_mut(i) {
            c.phase = Phase::Throttled;
        }
    }

    fn event(&mut self, event: &Event, now: Instant) {
        self.drive(event.token().0, now);
    }

    /// Time out requests and handshakes that took too long, and open the
    /// connections whose delay is over.
    fn sweep(&mut self, now: Instant) {
        let timeout = self.cx.base.request_timeout;
        let overdue = |since: Instant| now.saturating_duration_since(since) >= timeout;
        for i in 0..self.connections.len() {
            match self.connections[i].phase {
                Phase::Waiting(_, since) if overdue(since) => self.fail(i, Failure::Timeout, now),
                Phase::Connecting(since) if overdue(since) => {
                    self.fail(i, Failure::Connection, now)
                }
                Phase::Backoff(until) if now >= until => self.open(i, now),
                Phase::Closed => self.open(i, now),
                // Not left there; just in case.
                Phase::Idle => {
                    self.start_when_allowed(i, now);
                    self.flush(i, now);
                }
                _ => {}
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.connections
            .iter()
            .filter(|c| matches!(c.phase, Phase::Waiting(..)))
            .count()
    }

    /// Send connection `i`'s next request now if the rate cap allows it
    /// (and no connection waits longer), else queue it until it does.
    /// Flushed by the caller.
    fn start_when_allowed(&mut self, i: usize, now: Instant) {
        if i >= self.connections.len() {
            return;
        }
        if self.cx.base.throttle.admit(i) {
            self.send_request(i, now);
        } else {
            self.wait_for_token(i);
        }
    }

    /// Open connection `i`: its requests start once it is connected.
    fn begin(&mut self, i: usize, now: Instant) {
        self.open(i, now);
    }
}

/// Whether a failure reason is the reply to the request in flight: a
/// failure about a scrape while a scrape is in flight, about an announce
/// for its info hash, or one that names neither (the request could not be
/// read).
fn answers(error: &ErrorResponse, sent: Sent) -> bool {
    match (error.action, sent.kind) {
        (Some(Action::Scrape), Kind::Scrape) => true,
        (Some(Action::Announce), Kind::Announce) => {
            error.info_hash.is_none_or(|hash| hash == sent.info_hash)
        }
        (None, _) => error.info_hash.is_none_or(|hash| hash == sent.info_hash),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aquatic_common::InfoHash;

    #[test]
    fn failures_are_matched_to_the_request_in_flight() {
        let hash = InfoHash([1; 20]);
        let announce = Sent {
            kind: Kind::Announce,
            info_hash: hash,
            offers: 5,
        };
        let scrape = Sent {
            kind: Kind::Scrape,
            info_hash: InfoHash([0; 20]),
            offers: 0,
        };
        let error = |action, info_hash| ErrorResponse {
            failure_reason: "no".into(),
            action,
            info_hash,
        };
        assert!(answers(
            &error(Some(Action::Announce), Some(hash)),
            announce
        ));
        assert!(answers(&error(Some(Action::Announce), None), announce));
        assert!(answers(&error(None, None), announce));
        assert!(answers(&error(None, None), scrape));
        assert!(answers(&error(Some(Action::Scrape), Some(hash)), scrape));
        let other = Some(InfoHash([2; 20]));
        assert!(!answers(&error(Some(Action::Announce), other), announce));
        assert!(!answers(&error(Some(Action::Scrape), None), announce));
        assert!(!answers(&error(Some(Action::Announce), None), scrape));
    }
}
