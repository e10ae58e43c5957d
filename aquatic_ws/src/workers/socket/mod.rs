//! A socket worker: owns one SO_REUSEPORT TCP listener and the connections
//! it accepts, in a mio event loop.
//!
//! Per connection: TLS (rustls) when configured; the HTTP upgrade request
//! read with a bounded buffer and answered with tungstenite's handshake
//! response (or `GET /health` answered 200); then WebSocket framing by
//! tungstenite with frame, message and write-buffer limits. Text messages
//! are parsed with `aquatic_ws_protocol`; announces, answers and scrape
//! parts go to the request workers owning their info hashes, and whatever
//! they send back (replies, relayed offers and answers, for connections of
//! this worker) is written to the right connection if it is still the
//! same one. A closing connection tells the request workers which peers
//! leave (and which offers go). Every limit closes only the connection
//! that breaks it; one source (`[source_budgets]`) may hold only its share
//! of `max_connections`. A protocol error gets a WebSocket close frame
//! with its code (1002, 1007, 1009) before the connection closes.

//!
//! The parts: `upgrade` (the HTTP request before the WebSocket) and
//! `session` (swarms joined, scrapes in flight, timers) hold each
//! connection's limits without sockets; `framing` the WebSocket limits
//! and close codes; `stream` plain or TLS bytes. The event loop is here,
//! with accepting and closing in `accept`, reading and writing messages in
//! `messages`, and the traffic with the request workers in `shards`.

mod accept;
mod framing;
mod messages;
mod session;
mod shards;
mod stream;
mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use aquatic_common::access_list::AccessListCache;
use aquatic_common::daemon::{SocketWiring, TcpFront};
use aquatic_common::defences::Defences;
use aquatic_common::health::Heartbeat;
use aquatic_common::request_loop::InlineShard;
use aquatic_common::source::{ConnectionBudget, SourceKey};
use aquatic_common::tls::SharedTlsConfig;
use aquatic_common::{IpVersion, SecondsSinceStart, ServerStartInstant};
use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::net::IpAddr;
use tungstenite::WebSocket;
use tungstenite::protocol::WebSocketConfig;

use self::session::Session;
use self::stream::Stream;
use self::upgrade::Handshake;
use crate::common::{CloseReason, RequestMessage, ResponseMessage, SocketWorkerStats};
use crate::config::Config;
use crate::swarm::WsShard;

pub const LISTENER_TOKEN: Token = Token(0);
pub const WAKER_TOKEN: Token = Token(1);
const FIRST_CONNECTION_TOKEN: usize = 2;
/// Connection-close notices kept for a full request queue, per shard,
/// before they are dropped (the peers then go at `max_peer_age`).
const MAX_RETRIED_CLOSES: usize = 65_536;
/// Messages read from one connection per event-loop round. A client that
/// sends faster than the worker parses would otherwise keep it reading
/// that one connection (edge-triggered: until the socket is drained) while
/// every other client on the worker waits; past this it waits for the next
/// round, after the others.
const MESSAGES_PER_ROUND: usize = 64;

enum Phase {
    /// Reading the upgrade request, then writing the HTTP answer.
    Handshake(Stream, Box<Handshake>),
    Open(Box<WebSocket<Stream>>),
    /// Only while moving from one phase to the other.
    Switching,
}

struct Connection {
    phase: Phase,
    generation: u64,
    ip_version: IpVersion,
    /// The client's address (forwarded behind a trusted proxy; the
    /// connection's own until the upgrade): what rate limits count.
    client_ip: IpAddr,
    /// The client's source in the swarms (its forwarded address behind a
    /// trusted proxy).
    source: SourceKey,
    /// The source this connection counts under in the connection budget
    /// (none for a trusted reverse proxy).
    counted_source: Option<SourceKey>,
    session: Session,
    /// In `SocketWorker::dirty`: has output to flush.
    dirty: bool,
    /// In `SocketWorker::backlog`: more to read next round. Keeps a
    /// connection there once, however many events it gets meanwhile.
    backlogged: bool,
}

pub struct SocketWorker {
    config: Arc<Config>,
    index: usize,
    listener: TcpListener,
    poll: Poll,
    tls: Option<SharedTlsConfig>,
    access_list: AccessListCache,
    defences: Defences,
    clock: ServerStartInstant,
    now: SecondsSinceStart,
    connections: Slab<Connection>,
    next_generation: u64,
    ws_config: WebSocketConfig,
    request_senders: Vec<Sender<Vec<RequestMessage>>>,
    response_receiver: Receiver<Vec<ResponseMessage>>,
    batches: Vec<Vec<RequestMessage>>,
    /// Connection-close notices that met a full queue, per shard.
    retried_closes: Vec<Vec<RequestMessage>>,
    /// Connections with output to flush at the end of the round.
    dirty: Vec<usize>,
    /// Connections that had more to read when their round's budget was
    /// spent (key, generation): read first in the next round, which then
    /// does not wait for events.
    backlog: Vec<(usize, u64)>,
    stats: Arc<SocketWorkerStats>,
    heartbeat: Arc<Heartbeat>,
    chunk: Vec<u8>,
    /// A text message being parsed (simd-json parses in place).
    scratch: Vec<u8>,
    /// With `request_workers = 0`: the shard this worker answers itself.
    inline: Option<InlineShard<WsShard, RequestMessage, ResponseMessage>>,
    /// Open connections against max_connections and each source's share.
    budget: ConnectionBudget,
    /// An accept failed (out of descriptors, say): try again every round
    /// until the queue is empty, rather than only at the next connection.
    accept_pending: bool,
}

/// What to do with a connection after handling an event.
enum Outcome {
    Keep,
    Close(CloseReason),
}

impl SocketWorker {
    /// The worker `wiring` starts, with the daemon's config.
    pub(crate) fn new(
        config: Arc<Config>,
        front: &TcpFront,
        wiring: SocketWiring<crate::Ws>,
    ) -> anyhow::Result<Self> {
        let mut listener = TcpListener::from_std(wiring.socket);
        wiring
            .poll
            .registry()
            .register(&mut listener, LISTENER_TOKEN, Interest::READABLE)?;
        let shards = wiring.request_senders.len().max(1);
        let ws_config = framing::ws_config(&config.network);
        let budget = ConnectionBudget::new(
            config.network.max_connections,
            &config.source_budgets,
            front.trusted_proxies.clone(),
        );
        Ok(Self {
            now: wiring.clock.seconds_elapsed(),
            ws_config,
            config,
            index: wiring.index,
            listener,
            poll: wiring.poll,
            tls: front.tls.clone(),
            access_list: wiring.access_list,
            defences: wiring.defences,
            clock: wiring.clock,
            connections: Slab::new(),
            next_generation: 0,
            request_senders: wiring.request_senders,
            response_receiver: wiring.response_receiver,
            batches: (0..shards).map(|_| Vec::new()).collect(),
            retried_closes: (0..shards).map(|_| Vec::new()).collect(),
            dirty: Vec::new(),
            backlog: Vec::new(),
            stats: wiring.stats,
            heartbeat: wiring.heartbeat,
            chunk: vec![0; 16 * 1024],
            scratch: Vec::new(),
            inline: wiring.inline_shard,
            budget,
            accept_pending: false,
        })
    }

    pub fn run(mut self) -> anyhow::Result<()> {
        let mut events = Events::with_capacity(256);
        let timeout = Duration::from_millis(self.config.network.poll_timeout_ms);
        let mut last_sweep = self.now;
        loop {
            let wait = if self.backlog.is_empty() {
                timeout
            } else {
                Duration::ZERO
            };
            let beat = self
                .heartbeat
                .poll(&mut self.poll, &mut events, wait, &self.clock)?;
            let Some(now) = beat else { continue };
            self.now = now;
            if self.accept_pending {
                self.accept();
            }
            for (key, generation) in std::mem::take(&mut self.backlog) {
                let current = match self.connections.get_mut(key) {
                    Some(c) if c.generation == generation => {
                        c.backlogged = false;
                        true
                    }
                    _ => false,
                };
                if current {
                    if let Outcome::Close(reason) = self.on_event(key) {
                        self.close(key, reason);
                    }
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER_TOKEN => self.accept(),
                    WAKER_TOKEN => {}
                    Token(t) => {
                        let key = t.wrapping_sub(FIRST_CONNECTION_TOKEN);
                        if let Outcome::Close(reason) = self.on_event(key) {
                            self.close(key, reason);
                        }
                    }
                }
            }
            self.flush_batches();
            self.handle_responses();
            self.flush_dirty();
            if let Some(inline) = self.inline.as_mut() {
                inline.housekeep(self.now);
            }
            if self.now > last_sweep {
                self.sweep();
                self.flush_dirty();
                last_sweep = self.now;
            }
        }
    }
}
