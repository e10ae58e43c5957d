//! A worker thread: one mio Poll and a set of TCP connections, each with
//! exactly one request in flight (closed loop), optionally paced by a token
//! bucket (`max_requests_per_second`).
//!
//! A connection's life: `start_when_allowed` takes a token (or queues
//! the connection), `start` opens a TCP connection if it has none and
//! writes the request head; the response is read until its head and
//! `Content-Length` bytes are in, counted, and the next request starts. With
//! `keep_alive = false`, or when the tracker says it closes (or its close
//! came with the response), the connection is closed after the response
//! (after the tracker closed its side, so TIME-WAIT stays there) and the
//! next request opens a new one.
//! Anything going wrong (an error, a reset, an early close, a timeout, a
//! response whose framing can't be trusted) closes the connection; the next
//! request opens a new one and counts as a reconnect.

use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use aquatic_load_test_common::run::{PollWorker, WorkerBase, run_worker};
use mio::event::Event;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::config::Config;
use crate::requests::{Kind, RequestGenerator};
use crate::response::{BodyKind, Framing, Head, HeadParse, classify_body, parse_head};
use crate::stats::{Counts, SharedCounts};
use crate::transport::{Connector, Transport};

/// Largest response accepted; a longer one is invalid (and its connection
/// closed). Announce responses are a few hundred bytes.
const MAX_RESPONSE_LEN: usize = 1 << 20;

/// Initial size of a connection's response buffer (it doubles as needed,
/// up to `MAX_RESPONSE_LEN`, and keeps its size).
const RESPONSE_BUFFER_LEN: usize = 4096;

/// Least free space in the response buffer before a read.
const MIN_READ_SPACE: usize = 1024;

/// After a connection failed before its request was written (refused, say),
/// its next one opens after this long, so a tracker that is down is not
/// hammered with connection attempts.
const CONNECTION_ERROR_DELAY: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug)]
enum Phase {
    /// No request: start one on the next sweep (after a failure to open a
    /// socket, or the first time).
    Idle,
    /// Writing the request (with a new connection: once it is connected;
    /// with TLS: once the handshake is done).
    Sending,
    /// The request is out; reading the response.
    Receiving,
    /// The response is in and the tracker said it closes the connection:
    /// waiting for it to, so that the TIME-WAIT state stays on its side.
    /// (Closing first, at thousands of connections a second, would fill
    /// the load tester's ephemeral ports with TIME-WAIT sockets and make
    /// every connect slow.)
    Closing,
    /// Ready for the next request, but the rate cap does not allow it yet:
    /// in the worker's queue of throttled connections.
    Throttled,
    /// The last connection failed: start the next request at this time.
    Backoff(Instant),
}

/// Why a connection is given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// It failed before its request was written.
    Connection,
    /// It failed or was closed after its request was written, before the
    /// whole response arrived.
    Dropped,
    /// No whole response in time.
    Timeout,
    /// The response could not be understood well enough to reuse the
    /// connection.
    Invalid,
}

struct Connection {
    transport: Option<Transport>,
    phase: Phase,
    /// Whether the next connection opened replaces one given up.
    reconnect: bool,
    /// The tracker has closed its side of the connection (an event said
    /// so): whatever it sent is the last on this connection.
    peer_closed: bool,
    kind: Kind,
    started_at: Instant,
    request: Vec<u8>,
    written: usize,
    response: Vec<u8>,
    filled: usize,
    head: Option<Head>,
}

/// A worker, set up (its connections' buffers allocated, nothing opened
/// yet) but not running. Built on the caller's thread so that setup errors
/// surface before the test starts.
pub struct Worker {
    base: WorkerBase<Counts>,
    connections: Vec<Connection>,
    connector: Connector,
    keep_alive: bool,
    rng: SmallRng,
    generator: RequestGenerator,
}

impl Worker {
    pub fn new(
        config: &Config,
        connector: Connector,
        shared: Arc<SharedCounts>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let now = Instant::now();
        let connections = (0..config.connections_per_worker)
            .map(|_| Connection {
                transport: None,
                phase: Phase::Idle,
                reconnect: false,
                peer_closed: false,
                kind: Kind::Announce,
                started_at: now,
                request: Vec::with_capacity(1024),
                written: 0,
                response: vec![0; RESPONSE_BUFFER_LEN],
                filled: 0,
                head: None,
            })
            .collect();
        Ok(Self {
            base: config.worker_base(shared, stop)?,
            connections,
            connector,
            keep_alive: config.keep_alive,
            rng: SmallRng::from_rng(&mut rand::rng()),
            generator: RequestGenerator::new(config)?,
        })
    }

    /// Run until the stop flag is set. Counts go to the shared totals once
    /// per poll round.
    pub fn run(mut self) -> anyhow::Result<()> {
        let slots = self.connections.len();
        run_worker(&mut self, slots)
    }

    /// Make what progress connection `i` allows: write the rest of its
    /// request, or read its response (and on a whole one, count it and
    /// start the next request).
    fn drive(&mut self, i: usize, now: Instant) {
        let c = &mut self.connections[i];
        let Some(transport) = c.transport.as_mut() else {
            return;
        };
        match c.phase {
            Phase::Sending => match transport.send(&c.request, &mut c.written) {
                Ok(true) => {
                    self.base.counts.requests_sent += 1;
                    c.phase = Phase::Receiving;
                    // Nothing to read yet: the readable event comes with
                    // the response.
                }
                Ok(false) => {}
                Err(_) => self.fail(i, Failure::Connection, now),
            },
            Phase::Receiving => self.receive(i, now),
            Phase::Closing => self.await_close(i, now),
            Phase::Idle | Phase::Throttled | Phase::Backoff(_) => {}
        }
    }

    /// Read connection `i`'s response until it is complete or the socket
    /// would block.
    fn receive(&mut self, i: usize, now: Instant) {
        let c = &mut self.connections[i];
        let Some(transport) = c.transport.as_mut() else {
            return;
        };
        loop {
            if c.response.len() - c.filled < MIN_READ_SPACE {
                if c.response.len() >= MAX_RESPONSE_LEN {
                    return self.fail(i, Failure::Invalid, now);
                }
                let len = (c.response.len() * 2).min(MAX_RESPONSE_LEN);
                c.response.resize(len, 0);
            }
            let read = match transport.recv(&mut c.response[c.filled..]) {
                Ok(n) => n,
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                Err(_) => return self.fail(i, Failure::Dropped, now),
            };
            if read == 0 {
                // The end of the connection: the end of a body without a
                // length, else the response was cut short.
                let end = c.filled;
                return match c.head {
                    Some(head) if head.framing == Framing::UntilClose => {
                        self.complete(i, head, end, now)
                    }
                    _ => self.fail(i, Failure::Dropped, now),
                };
            }
            c.filled += read;
            if c.head.is_none() {
                match parse_head(&c.response[..c.filled]) {
                    HeadParse::Partial => continue,
                    HeadParse::Invalid => return self.fail(i, Failure::Invalid, now),
                    HeadParse::Complete(head) => c.head = Some(head),
                }
            }
            if let Some(head) = c.head
                && let Framing::Length(body_len) = head.framing
            {
                let Some(end) = head
                    .len
                    .checked_add(body_len)
                    .filter(|end| *end <= MAX_RESPONSE_LEN)
                else {
                    return self.fail(i, Failure::Invalid, now);
                };
                if c.filled > end {
                    // Bytes nobody asked for: the framing can't be trusted.
                    return self.fail(i, Failure::Invalid, now);
                }
                if c.filled == end {
                    return self.complete(i, head, end, now);
                }
            }
        }
    }

    /// Count the whole response (`head`, body up to `end`) of connection
    /// `i`, close the connection if it is not to be reused, and start the
    /// next request.
    fn complete(&mut self, i: usize, head: Head, end: usize, now: Instant) {
        let c = &mut self.connections[i];
        let body = c.response.get(head.len..end).unwrap_or_default();
        match (head.status, classify_body(body), c.kind) {
            (_, BodyKind::Failure, _) => self.base.counts.failure += 1,
            (200, BodyKind::Announce, Kind::Announce) => self.base.counts.announce += 1,
            (200, BodyKind::Scrape, Kind::Scrape) => self.base.counts.scrape += 1,
            (200, ..) => self.base.counts.invalid += 1,
            _ => self.base.counts.error_status += 1,
        }
        let tracker_closes =
            head.framing == Framing::UntilClose || !head.keep_alive || c.peer_closed;
        if tracker_closes && self.keep_alive {
            self.base.counts.tracker_closes += 1;
        }
        if head.framing == Framing::UntilClose {
            // Closed already: that ended the body.
            c.transport = None;
        } else if tracker_closes {
            c.phase = Phase::Closing;
            return self.await_close(i, now);
        } else if !self.keep_alive {
            // The tracker would keep it open although asked not to.
            if let Some(mut transport) = c.transport.take() {
                transport.close_notify();
            }
        }
        c.phase = Phase::Idle;
        self.start_when_allowed(i, now);
    }

    /// Read connection `i` until the tracker closes it (bytes after the
    /// response are ignored), then close it and start the next request.
    fn await_close(&mut self, i: usize, now: Instant) {
        let c = &mut self.connections[i];
        if let Some(transport) = c.transport.as_mut() {
            loop {
                match transport.recv(&mut c.response) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                    // E.g. a reset: closed as well.
                    Err(_) => break,
                }
            }
        }
        c.transport = None;
        c.phase = Phase::Idle;
        self.start_when_allowed(i, now);
    }

    /// Give connection `i` up (closing it, which also removes it from the
    /// Poll), count why, and go on with the next request: at once, or after
    /// a delay when it could not even send.
    fn fail(&mut self, i: usize, failure: Failure, now: Instant) {
        let c = &mut self.connections[i];
        c.transport = None;
        c.reconnect = true;
        match failure {
            Failure::Connection => {
                self.base.counts.connection_errors += 1;
                c.phase = Phase::Backoff(now + CONNECTION_ERROR_DELAY);
                return;
            }
            Failure::Dropped => self.base.counts.dropped += 1,
            Failure::Timeout => self.base.counts.timeouts += 1,
            Failure::Invalid => self.base.counts.invalid += 1,
        }
        c.phase = Phase::Idle;
        self.start_when_allowed(i, now);
    }
}

impl PollWorker<Counts> for Worker {
    fn base(&mut self) -> &mut WorkerBase<Counts> {
        &mut self.base
    }

    /// Open a connection if `i` has none, write the next request into its
    /// buffer and send as much of it as the socket takes.
    fn start(&mut self, i: usize, now: Instant) {
        let c = &mut self.connections[i];
        if c.peer_closed && c.transport.take().is_some() {
            // Closed by the tracker while this connection waited for a
            // token (e.g. its idle timeout): don't send into it.
            if self.keep_alive {
                self.base.counts.tracker_closes += 1;
            }
        }
        if c.transport.is_none() {
            let opened = self.connector.open().and_then(|mut transport| {
                self.base
                    .register_connection(transport.socket(), i)
                    .map(|()| transport)
            });
            match opened {
                Ok(transport) => {
                    self.base.counts.connections_opened += 1;
                    c.peer_closed = false;
                    if std::mem::take(&mut c.reconnect) {
                        self.base.counts.reconnects += 1;
                    }
                    c.transport = Some(transport);
                }
                Err(_) => {
                    // E.g. out of ephemeral ports or file descriptors.
                    self.base.counts.connection_errors += 1;
                    c.phase = Phase::Backoff(now + CONNECTION_ERROR_DELAY);
                    return;
                }
            }
        }
        c.kind = self.generator.write_next(&mut self.rng, &mut c.request);
        c.written = 0;
        c.filled = 0;
        c.head = None;
        c.started_at = now;
        c.phase = Phase::Sending;
        self.drive(i, now);
    }

    fn wait_for_token(&mut self, i: usize) {
        self.connections[i].phase = Phase::Throttled;
    }

    fn event(&mut self, event: &Event, now: Instant) {
        let i = event.token().0;
        if let Some(c) = self.connections.get_mut(i) {
            // Some trackers (opentracker) close after every response
            // without saying so; the close usually comes with the
            // response, and then the connection is not reused.
            c.peer_closed |= event.is_read_closed();
            self.drive(i, now);
        }
    }

    /// Time out requests without a whole response in time, and start the
    /// requests of idle connections whose delay is over.
    fn sweep(&mut self, now: Instant) {
        for i in 0..self.connections.len() {
            let c = &self.connections[i];
            let overdue = now.saturating_duration_since(c.started_at) >= self.base.request_timeout;
            match c.phase {
                Phase::Sending if overdue => self.fail(i, Failure::Connection, now),
                Phase::Receiving if overdue => self.fail(i, Failure::Timeout, now),
                Phase::Closing if overdue => {
                    // The response was counted; stop waiting for the close.
                    self.connections[i].transport = None;
                    self.connections[i].phase = Phase::Idle;
                    self.start_when_allowed(i, now);
                }
                Phase::Backoff(until) if now >= until => self.start_when_allowed(i, now),
                Phase::Idle => self.start_when_allowed(i, now),
                _ => {}
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.connections
            .iter()
            .filter(|c| matches!(c.phase, Phase::Receiving))
            .count()
    }
}
