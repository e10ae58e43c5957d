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

use std::io::{self, ErrorKind, Read, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use aquatic_common::access_list::AccessListCache;
use aquatic_common::listen_queue::waiting_connections;
use aquatic_common::proxy::{client_ip, forwarded_ip};
use aquatic_common::request_loop::Shard;
use aquatic_common::shard_parts::{ShardCommand, serve_commands};
use aquatic_common::source::{SourceCounts, SourceKey};
use aquatic_common::time::secs_u32;
use aquatic_common::tls::SharedTlsConfig;
use aquatic_common::{InfoHash, IpVersion, PeerId, SecondsSinceStart, ServerStartInstant};
use aquatic_ws_protocol::{
    Action, AnnounceEvent, ErrorResponse, InMessage, OutMessage, ScrapeResponse, ScrapeStatistics,
};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use ipnet::IpNet;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use crate::common::{
    CloseReason, ConnectionRef, DropReason, ErrorReason, FAILURE_BINARY, FAILURE_NOT_ALLOWED,
    FAILURE_OVERLOADED, FAILURE_TOO_MANY_SCRAPE_HASHES, FAILURE_TOO_MANY_SCRAPES,
    FAILURE_TOO_MANY_TORRENTS, RequestMessage, ResponseMessage, SocketWorkerStats, SwarmRequest,
    SwarmResponse, add, shard_of,
};
use crate::config::Config;
use crate::swarm::WsShard;

pub const LISTENER_TOKEN: Token = Token(0);
pub const WAKER_TOKEN: Token = Token(1);
const FIRST_CONNECTION_TOKEN: usize = 2;
/// Scrapes one connection may have waiting for request workers.
const MAX_SCRAPES_IN_FLIGHT: usize = 8;
/// Seconds a new connection has to complete its upgrade request (at most
/// `connection_idle_timeout`): slow heads cannot hold connections long.
const MAX_HANDSHAKE_SECS: u32 = 15;
/// tungstenite's read chunk, allocated per connection: small, because an
/// idle connection should cost little (messages larger than it are read in
/// several chunks).
const READ_BUFFER_SIZE: usize = 4096;
/// Messages are buffered up to this before tungstenite writes by itself;
/// everything is flushed at the end of each event loop round anyway.
const WRITE_BUFFER_SIZE: usize = 64 * 1024;
/// Connection-close notices kept for a full request queue, per shard,
/// before they are dropped (the peers then go at `max_peer_age`).
const MAX_RETRIED_CLOSES: usize = 65_536;
/// Messages read from one connection per event-loop round. A client that
/// sends faster than the worker parses would otherwise keep it reading
/// that one connection (edge-triggered: until the socket is drained) while
/// every other client on the worker waits; past this it waits for the next
/// round, after the others.
const MESSAGES_PER_ROUND: usize = 64;

/// A TCP stream, possibly inside TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => {
                s.flush()?;
                // rustls' flush hands plaintext to its record layer; write
                // the records out too.
                while s.conn.wants_write() {
                    s.conn.write_tls(&mut s.sock)?;
                }
                Ok(())
            }
        }
    }
}

/// Before the WebSocket: reading the upgrade request, then writing the
/// HTTP response.
struct Handshake {
    stream: Stream,
    /// The address the connection comes from.
    direct_ip: IpAddr,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
    written: usize,
    /// Set once the head is parsed.
    next: Option<AfterResponse>,
}

enum AfterResponse {
    /// Go on as a WebSocket; bytes read after the head belong to it.
    Upgrade { tail: Vec<u8> },
    /// A plain HTTP answer (health check or error): close.
    Close(CloseReason),
}

enum Phase {
    Handshake(Box<Handshake>),
    Open(Box<WebSocket<Stream>>),
    /// Only while moving from one phase to the other.
    Switching,
}

struct PendingScrape {
    id: u32,
    parts_left: usize,
    files: Vec<(InfoHash, ScrapeStatistics)>,
}

struct Connection {
    phase: Phase,
    generation: u64,
    ip_version: IpVersion,
    /// The client's source in the swarms (its forwarded address behind a
    /// trusted proxy).
    source: SourceKey,
    /// The source this connection counts under in the connection budget
    /// (none for a trusted reverse proxy).
    counted_source: Option<SourceKey>,
    /// Sent an announce with offers: on close, every shard drops the
    /// offers it still holds for this connection.
    sent_offers: bool,
    /// Last message, pong or (during the handshake) connection time.
    last_received: SecondsSinceStart,
    ping_sent: bool,
    /// Swarms this connection announced in, left when it closes.
    torrents: Vec<(InfoHash, PeerId)>,
    scrapes: Vec<PendingScrape>,
    next_scrape_id: u32,
    /// In `SocketWorker::dirty`: has output to flush.
    dirty: bool,
    /// In `SocketWorker::backlog`: more to read next round. Keeps a
    /// connection there once, however many events it gets meanwhile.
    backlogged: bool,
}

pub struct SocketWorkerParts {
    pub config: Arc<Config>,
    pub index: usize,
    pub listener: std::net::TcpListener,
    pub poll: Poll,
    pub tls: Option<SharedTlsConfig>,
    pub trusted_proxies: Vec<IpNet>,
    pub access_list: AccessListCache,
    pub clock: ServerStartInstant,
    pub request_senders: Vec<Sender<Vec<RequestMessage>>>,
    pub response_receiver: Receiver<Vec<ResponseMessage>>,
    pub stats: Arc<SocketWorkerStats>,
    /// With `request_workers = 0`: the shard this worker answers itself,
    /// and the commands (scrape export) for it.
    pub inline_shard: Option<WsShard>,
    pub shard_commands: Option<Receiver<ShardCommand>>,
}

pub struct SocketWorker {
    config: Arc<Config>,
    index: usize,
    listener: TcpListener,
    poll: Poll,
    tls: Option<SharedTlsConfig>,
    trusted_proxies: Vec<IpNet>,
    access_list: AccessListCache,
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
    chunk: Vec<u8>,
    /// A text message being parsed (simd-json parses in place).
    scratch: Vec<u8>,
    inline_shard: Option<WsShard>,
    shard_commands: Option<Receiver<ShardCommand>>,
    inline_answers: Vec<(usize, ResponseMessage)>,
    next_cleaning: SecondsSinceStart,
    /// Open connections per source.
    sources: SourceCounts,
    max_connections_per_source: usize,
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
    pub fn new(parts: SocketWorkerParts) -> anyhow::Result<Self> {
        let mut listener = TcpListener::from_std(parts.listener);
        parts
            .poll
            .registry()
            .register(&mut listener, LISTENER_TOKEN, Interest::READABLE)?;
        let shards = parts.request_senders.len().max(1);
        let network = &parts.config.network;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_SIZE)
            .write_buffer_size(WRITE_BUFFER_SIZE)
            .max_write_buffer_size(network.max_write_buffer_size.max(WRITE_BUFFER_SIZE + 1))
            .max_message_size(Some(network.max_message_size))
            .max_frame_size(Some(network.max_frame_size));
        let next_cleaning = parts
            .clock
            .seconds_elapsed()
            .add_secs(secs_u32(parts.config.cleaning.interval));
        let max_connections_per_source = parts
            .config
            .source_budgets
            .share_of(parts.config.network.max_connections);
        Ok(Self {
            now: parts.clock.seconds_elapsed(),
            ws_config,
            config: parts.config,
            index: parts.index,
            listener,
            poll: parts.poll,
            tls: parts.tls,
            trusted_proxies: parts.trusted_proxies,
            access_list: parts.access_list,
            clock: parts.clock,
            connections: Slab::new(),
            next_generation: 0,
            request_senders: parts.request_senders,
            response_receiver: parts.response_receiver,
            batches: (0..shards).map(|_| Vec::new()).collect(),
            retried_closes: (0..shards).map(|_| Vec::new()).collect(),
            dirty: Vec::new(),
            backlog: Vec::new(),
            stats: parts.stats,
            chunk: vec![0; 16 * 1024],
            scratch: Vec::new(),
            inline_shard: parts.inline_shard,
            shard_commands: parts.shard_commands,
            inline_answers: Vec::new(),
            next_cleaning,
            sources: SourceCounts::default(),
            max_connections_per_source,
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
            if let Err(err) = self.poll.poll(&mut events, Some(wait)) {
                if err.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(anyhow::Error::new(err).context("poll failed"));
            }
            self.now = self.clock.seconds_elapsed();
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
            if self.now >= self.next_cleaning {
                if let Some(shard) = self.inline_shard.as_mut() {
                    shard.clean(self.now);
                    shard.publish();
                }
                self.next_cleaning = self.now.add_secs(secs_u32(self.config.cleaning.interval));
            }
            if let (Some(shard), Some(commands)) = (&self.inline_shard, &self.shard_commands) {
                serve_commands(commands, shard, self.now);
            }
            if self.now > last_sweep {
                self.sweep();
                self.flush_dirty();
                last_sweep = self.now;
            }
        }
    }

    fn accept(&mut self) {
        self.accept_pending = false;
        // Exactly the connections waiting: no accept4 just to see EAGAIN.
        let mut waiting = waiting_connections(&self.listener).unwrap_or(usize::MAX);
        while waiting > 0 {
            waiting -= 1;
            match self.listener.accept() {
                Ok((mut stream, addr)) => {
                    let counters = &self.stats;
                    if self.connections.len() >= self.config.network.max_connections {
                        add(&counters.connections_refused, 1);
                        continue; // dropping the stream closes it
                    }
                    let prefixes = self.config.source_budgets.prefixes();
                    let source = prefixes.of(addr.ip());
                    // A trusted proxy speaks for many clients: its
                    // connections are not budgeted as one source.
                    let counted_source = (!self
                        .trusted_proxies
                        .iter()
                        .any(|net| net.contains(&addr.ip().to_canonical())))
                    .then_some(source);
                    if let Some(source) = counted_source {
                        if !self
                            .sources
                            .try_acquire(source, self.max_connections_per_source)
                        {
                            add(&counters.connections_refused_source, 1);
                            continue;
                        }
                    }
                    let release = |sources: &mut SourceCounts| {
                        if let Some(source) = &counted_source {
                            sources.release(source);
                        }
                    };
                    let entry = self.connections.vacant_entry();
                    let key = entry.key();
                    let token = Token(key + FIRST_CONNECTION_TOKEN);
                    if let Err(err) = self.poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("cannot register connection: {err}");
                        release(&mut self.sources);
                        continue;
                    }
                    let stream = match &self.tls {
                        Some(shared) => match rustls::ServerConnection::new(shared.load_full()) {
                            Ok(tls) => Stream::Tls(Box::new(rustls::StreamOwned::new(tls, stream))),
                            Err(err) => {
                                log::warn!("cannot start TLS connection: {err}");
                                release(&mut self.sources);
                                continue;
                            }
                        },
                        None => Stream::Plain(stream),
                    };
                    self.next_generation += 1;
                    entry.insert(Connection {
                        phase: Phase::Handshake(Box::new(Handshake {
                            stream,
                            direct_ip: addr.ip(),
                            read_buf: Vec::new(),
                            write_buf: Vec::new(),
                            written: 0,
                            next: None,
                        })),
                        generation: self.next_generation,
                        ip_version: if addr.ip().to_canonical().is_ipv4() {
                            IpVersion::V4
                        } else {
                            IpVersion::V6
                        },
                        source,
                        counted_source,
                        sent_offers: false,
                        last_received: self.now,
                        ping_sent: false,
                        torrents: Vec::new(),
                        scrapes: Vec::new(),
                        next_scrape_id: 0,
                        backlogged: false,
                        dirty: false,
                    });
                    add(&counters.connections_accepted, 1);
                    self.count_open();
                    // The upgrade request usually arrives with the
                    // connection: read it now rather than on the next event.
                    if let Outcome::Close(reason) = self.on_event(key) {
                        self.close(key, reason);
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => {
                    // Out of file descriptors or memory: the waiting
                    // connections stay queued; try again next round (at
                    // most every poll timeout), never in a tight loop.
                    log::warn!("accept failed: {err}");
                    self.accept_pending = true;
                    break;
                }
            }
        }
    }

    fn count_open(&self) {
        self.stats
            .connections_open
            .store(self.connections.len(), std::sync::atomic::Ordering::Relaxed);
    }

    fn connection_ref(&self, key: usize, generation: u64) -> ConnectionRef {
        ConnectionRef {
            socket_worker: u32::try_from(self.index).unwrap_or(u32::MAX),
            token: u32::try_from(key).unwrap_or(u32::MAX),
            generation,
        }
    }

    /// Close a connection; its peers leave their swarms.
    fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(connection) = self.connections.try_remove(key) else {
            return;
        };
        if let Some(source) = &connection.counted_source {
            self.sources.release(source);
        }
        self.stats.count_close(reason);
        self.count_open();
        let from = self.connection_ref(key, connection.generation);
        let shards = self.batches.len();
        let mut parts: Vec<Vec<(InfoHash, PeerId)>> = (0..shards).map(|_| Vec::new()).collect();
        for (hash, peer_id) in connection.torrents {
            if let Some(part) = parts.get_mut(shard_of(&hash, shards)) {
                part.push((hash, peer_id));
            }
        }
        for (shard, peers) in parts.into_iter().enumerate() {
            // A shard may hold offers of this connection in torrents it
            // has left since: every shard hears of the close then.
            if peers.is_empty() && !connection.sent_offers {
                continue;
            }
            if let Some(batch) = self.batches.get_mut(shard) {
                batch.push(RequestMessage {
                    from,
                    ip_version: connection.ip_version,
                    source: connection.source,
                    request: SwarmRequest::ConnectionClosed { peers },
                });
            }
        }
        // Dropping the stream closes the socket and removes it from epoll.
    }

    /// Ping connections gone quiet; close those quiet for too long and
    /// handshakes that take too long.
    fn sweep(&mut self) {
        let network = &self.config.network;
        let idle_timeout = network.connection_idle_timeout;
        let handshake_timeout = idle_timeout.min(MAX_HANDSHAKE_SECS);
        let now = self.now;
        let mut expired = Vec::new();
        for (key, connection) in self.connections.iter_mut() {
            let quiet = now.saturating_sub(connection.last_received);
            match &mut connection.phase {
                Phase::Handshake(_) if quiet >= handshake_timeout => expired.push(key),
                Phase::Open(_) if quiet >= idle_timeout => expired.push(key),
                Phase::Open(ws) if quiet >= network.ping_interval && !connection.ping_sent => {
                    connection.ping_sent = true;
                    // A full write buffer shows at the flush.
                    let _ = ws.write(Message::Ping(Default::default()));
                    if !connection.dirty {
                        connection.dirty = true;
                        self.dirty.push(key);
                    }
                }
                _ => {}
            }
        }
        for key in expired {
            self.close(key, CloseReason::IdleTimeout);
        }
    }

    fn on_event(&mut self, key: usize) -> Outcome {
        let Some(connection) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        match connection.phase {
            Phase::Handshake(_) => self.handshake(key),
            Phase::Open(_) => {
                let outcome = self.read_messages(key);
                if let Outcome::Keep = outcome {
                    // Writable again, or pongs queued by reading.
                    self.mark_dirty(key);
                }
                outcome
            }
            Phase::Switching => Outcome::Keep,
        }
    }

    fn mark_dirty(&mut self, key: usize) {
        if let Some(connection) = self.connections.get_mut(key) {
            if !connection.dirty {
                connection.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Read the upgrade request, answer it, and switch to WebSocket.
    fn handshake(&mut self, key: usize) -> Outcome {
        let max_head = self.config.network.max_request_head_size;
        let Some(connection) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        let Phase::Handshake(handshake) = &mut connection.phase else {
            return Outcome::Keep;
        };
        if handshake.next.is_none() {
            loop {
                match handshake.stream.read(&mut self.chunk) {
                    Ok(0) => return Outcome::Close(CloseReason::Client),
                    Ok(n) => {
                        add(&self.stats.bytes_received, n as u64);
                        handshake
                            .read_buf
                            .extend_from_slice(self.chunk.get(..n).unwrap_or_default());
                        if handshake.read_buf.len() > max_head.saturating_mul(2) {
                            break;
                        }
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => return Outcome::Close(CloseReason::Client),
                }
            }
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut request = httparse::Request::new(&mut headers);
            let (response, next) = match request.parse(&handshake.read_buf) {
                Ok(httparse::Status::Partial) if handshake.read_buf.len() <= max_head => {
                    return Outcome::Keep;
                }
                Ok(httparse::Status::Partial) => (
                    http_error(431, "Request Header Fields Too Large"),
                    AfterResponse::Close(CloseReason::OverLimit),
                ),
                Ok(httparse::Status::Complete(len)) if len > max_head => (
                    http_error(431, "Request Header Fields Too Large"),
                    AfterResponse::Close(CloseReason::OverLimit),
                ),
                Ok(httparse::Status::Complete(len)) => {
                    let tail = handshake.read_buf.get(len..).unwrap_or_default().to_vec();
                    match upgrade_response(
                        &request,
                        handshake.direct_ip,
                        &self.config,
                        &self.trusted_proxies,
                    ) {
                        Upgrade::WebSocket(response, ip) => {
                            connection.ip_version = if ip.is_ipv4() {
                                IpVersion::V4
                            } else {
                                IpVersion::V6
                            };
                            connection.source = self.config.source_budgets.prefixes().of(ip);
                            (response, AfterResponse::Upgrade { tail })
                        }
                        Upgrade::Health => {
                            add(&self.stats.health_checks, 1);
                            (
                                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n".to_vec(),
                                AfterResponse::Close(CloseReason::HttpAnswered),
                            )
                        }
                        Upgrade::Refused(response) => {
                            (response, AfterResponse::Close(CloseReason::ProtocolError))
                        }
                    }
                }
                Err(_) => (
                    http_error(400, "Bad Request"),
                    AfterResponse::Close(CloseReason::ProtocolError),
                ),
            };
            handshake.read_buf = Vec::new();
            handshake.write_buf = response;
            handshake.next = Some(next);
        }

        // Write the response.
        while handshake.written < handshake.write_buf.len() {
            let pending = handshake
                .write_buf
                .get(handshake.written..)
                .unwrap_or_default();
            match handshake.stream.write(pending) {
                Ok(0) => return Outcome::Close(CloseReason::Client),
                Ok(n) => handshake.written += n,
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Outcome::Keep,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Outcome::Close(CloseReason::Client),
            }
        }
        match handshake.stream.flush() {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Outcome::Keep,
            Err(_) => return Outcome::Close(CloseReason::Client),
        }
        add(&self.stats.bytes_sent, handshake.write_buf.len() as u64);

        match std::mem::replace(&mut connection.phase, Phase::Switching) {
            Phase::Handshake(handshake) => match handshake.next {
                Some(AfterResponse::Upgrade { tail }) => {
                    connection.phase = Phase::Open(Box::new(WebSocket::from_partially_read(
                        handshake.stream,
                        tail,
                        Role::Server,
                        Some(self.ws_config),
                    )));
                    connection.last_received = self.now;
                    // Messages may have come with the request.
                    self.read_messages(key)
                }
                Some(AfterResponse::Close(reason)) => Outcome::Close(reason),
                None => Outcome::Close(CloseReason::ProtocolError),
            },
            other => {
                connection.phase = other;
                Outcome::Keep
            }
        }
    }

    /// Read and handle the messages available, at most
    /// `MESSAGES_PER_ROUND`; past that the connection goes on the backlog.
    fn read_messages(&mut self, key: usize) -> Outcome {
        for _ in 0..MESSAGES_PER_ROUND {
            let Some(connection) = self.connections.get_mut(key) else {
                return Outcome::Keep;
            };
            let Phase::Open(ws) = &mut connection.phase else {
                return Outcome::Keep;
            };
            let message = match ws.read() {
                Ok(message) => message,
                Err(tungstenite::Error::Io(err)) if err.kind() == ErrorKind::WouldBlock => {
                    return Outcome::Keep;
                }
                Err(tungstenite::Error::Io(err)) if err.kind() == ErrorKind::Interrupted => {
                    continue;
                }
                Err(err) => {
                    if let Some(code) = close_code(&err) {
                        // Best effort: the close frame, then the close.
                        let frame = CloseFrame {
                            code,
                            reason: close_text(code).into(),
                        };
                        let _ = ws.close(Some(frame));
                        let _ = ws.flush();
                    }
                    return Outcome::Close(close_reason(&err));
                }
            };
            connection.last_received = self.now;
            connection.ping_sent = false;
            match message {
                Message::Text(text) => {
                    add(&self.stats.bytes_received, text.len() as u64);
                    self.scratch.clear();
                    self.scratch.extend_from_slice(text.as_bytes());
                    if let Outcome::Close(reason) = self.on_text(key) {
                        return Outcome::Close(reason);
                    }
                }
                Message::Binary(data) => {
                    add(&self.stats.bytes_received, data.len() as u64);
                    let failure = error_message(FAILURE_BINARY, None, None);
                    if let Outcome::Close(reason) = self.send(key, &failure) {
                        return Outcome::Close(reason);
                    }
                }
                // tungstenite queues the pong or the close reply itself;
                // after a close, reading ends with ConnectionClosed.
                Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => {
                    self.mark_dirty(key);
                }
            }
        }
        if let Some(connection) = self.connections.get_mut(key) {
            if !connection.backlogged {
                connection.backlogged = true;
                self.backlog.push((key, connection.generation));
            }
        }
        Outcome::Keep
    }

    /// Handle the text message in `self.scratch`.
    fn on_text(&mut self, key: usize) -> Outcome {
        let message = match InMessage::from_json(&mut self.scratch) {
            Ok(message) => message,
            Err(err) => return self.send(key, &OutMessage::Error(ErrorResponse::from(err))),
        };
        let Some(connection) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        let from = ConnectionRef {
            socket_worker: u32::try_from(self.index).unwrap_or(u32::MAX),
            token: u32::try_from(key).unwrap_or(u32::MAX),
            generation: connection.generation,
        };
        let ip_version = connection.ip_version;
        let source = connection.source;
        let shards = self.batches.len();
        let counters = &self.stats;
        let request = match message {
            InMessage::Announce(request) => {
                add(&counters.requests_announce, 1);
                let hash = request.info_hash;
                if !self.access_list.allows(&hash) {
                    let failure =
                        error_message(FAILURE_NOT_ALLOWED, Some(Action::Announce), Some(hash));
                    return self.send(key, &failure);
                }
                let entry = (hash, request.peer_id);
                let known = connection.torrents.iter().position(|e| *e == entry);
                match (request.event, known) {
                    (AnnounceEvent::Stopped, Some(i)) => {
                        connection.torrents.swap_remove(i);
                    }
                    (AnnounceEvent::Stopped, None) | (_, Some(_)) => {}
                    (_, None) => {
                        if connection.torrents.len()
                            >= self.config.protocol.max_torrents_per_connection
                        {
                            let failure = error_message(
                                FAILURE_TOO_MANY_TORRENTS,
                                Some(Action::Announce),
                                Some(hash),
                            );
                            return self.send(key, &failure);
                        }
                        connection.torrents.push(entry);
                    }
                }
                if !request.offers.is_empty() {
                    connection.sent_offers = true;
                }
                (shard_of(&hash, shards), SwarmRequest::Announce(request))
            }
            InMessage::Answer(request) => {
                add(&counters.requests_answer, 1);
                (
                    shard_of(&request.info_hash, shards),
                    SwarmRequest::Answer(request),
                )
            }
            InMessage::Scrape(mut request) => {
                add(&counters.requests_scrape, 1);
                return self.scrape(key, from, &mut request.info_hashes);
            }
        };
        let (shard, request) = request;
        if let Some(batch) = self.batches.get_mut(shard) {
            batch.push(RequestMessage {
                from,
                ip_version,
                source,
                request,
            });
        }
        Outcome::Keep
    }

    fn scrape(&mut self, key: usize, from: ConnectionRef, hashes: &mut Vec<InfoHash>) -> Outcome {
        if hashes.len() > self.config.protocol.max_scrape_torrents {
            let failure = error_message(FAILURE_TOO_MANY_SCRAPE_HASHES, Some(Action::Scrape), None);
            return self.send(key, &failure);
        }
        hashes.sort_unstable();
        hashes.dedup();
        let shards = self.batches.len();
        let mut parts: Vec<Vec<InfoHash>> = (0..shards).map(|_| Vec::new()).collect();
        for hash in hashes.drain(..) {
            if let Some(part) = parts.get_mut(shard_of(&hash, shards)) {
                part.push(hash);
            }
        }
        let parts_left = parts.iter().filter(|p| !p.is_empty()).count();
        let Some(connection) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        if parts_left == 0 {
            add(&self.stats.responses_scrape, 1);
            let empty = OutMessage::ScrapeResponse(ScrapeResponse::default());
            return self.send(key, &empty);
        }
        if connection.scrapes.len() >= MAX_SCRAPES_IN_FLIGHT {
            let failure = error_message(FAILURE_TOO_MANY_SCRAPES, Some(Action::Scrape), None);
            return self.send(key, &failure);
        }
        let scrape_id = connection.next_scrape_id;
        connection.next_scrape_id = scrape_id.wrapping_add(1);
        connection.scrapes.push(PendingScrape {
            id: scrape_id,
            parts_left,
            files: Vec::new(),
        });
        let ip_version = connection.ip_version;
        let source = connection.source;
        for (shard, info_hashes) in parts.into_iter().enumerate() {
            if info_hashes.is_empty() {
                continue;
            }
            if let Some(batch) = self.batches.get_mut(shard) {
                batch.push(RequestMessage {
                    from,
                    ip_version,
                    source,
                    request: SwarmRequest::Scrape {
                        scrape_id,
                        info_hashes,
                    },
                });
            }
        }
        Outcome::Keep
    }

    /// Write a message to a connection's WebSocket (flushed at the end of
    /// the round), counting it.
    fn send(&mut self, key: usize, message: &OutMessage) -> Outcome {
        let counters = &self.stats;
        match message {
            OutMessage::AnnounceResponse(_) => add(&counters.responses_announce, 1),
            OutMessage::Offer(_) => add(&counters.offers_relayed, 1),
            OutMessage::Answer(_) => add(&counters.answers_relayed, 1),
            OutMessage::ScrapeResponse(_) => {} // counted where complete
            OutMessage::Error(e) => {
                counters.count_error(ErrorReason::of_failure(&e.failure_reason))
            }
        }
        let Some(connection) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        let Phase::Open(ws) = &mut connection.phase else {
            return Outcome::Keep;
        };
        let mut json = Vec::with_capacity(128);
        message.write_json(&mut json);
        add(&counters.bytes_sent, json.len() as u64);
        // The writer produces UTF-8 only; should it ever not, skip it.
        let Ok(text) = String::from_utf8(json) else {
            return Outcome::Keep;
        };
        match ws.write(Message::text(text)) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(err)) if err.kind() == ErrorKind::WouldBlock => {}
            Err(err) => return Outcome::Close(close_reason(&err)),
        }
        if !connection.dirty {
            connection.dirty = true;
            self.dirty.push(key);
        }
        Outcome::Keep
    }

    /// Flush every connection written to in this round.
    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &key in &dirty {
            let Some(connection) = self.connections.get_mut(key) else {
                continue;
            };
            connection.dirty = false;
            let Phase::Open(ws) = &mut connection.phase else {
                continue;
            };
            match ws.flush() {
                Ok(()) => {}
                // The rest goes out at the next writable event.
                Err(tungstenite::Error::Io(err)) if err.kind() == ErrorKind::WouldBlock => {}
                Err(err) => {
                    let reason = close_reason(&err);
                    self.close(key, reason);
                }
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    fn flush_batches(&mut self) {
        if let Some(mut shard) = self.inline_shard.take() {
            // request_workers = 0: this thread owns the only shard, and is
            // the only socket worker.
            while let Some(batch) = self.batches.first_mut().map(std::mem::take) {
                if batch.is_empty() {
                    break;
                }
                for message in batch {
                    let mut answers = std::mem::take(&mut self.inline_answers);
                    shard.handle(self.now, message, &mut answers);
                    for (_, response) in answers.drain(..) {
                        self.handle_response(response);
                    }
                    self.inline_answers = answers;
                }
            }
            shard.publish();
            self.inline_shard = Some(shard);
            return;
        }
        for shard in 0..self.batches.len() {
            let mut batch = self
                .retried_closes
                .get_mut(shard)
                .map(std::mem::take)
                .unwrap_or_default();
            if let Some(new) = self.batches.get_mut(shard) {
                batch.append(new);
            }
            if batch.is_empty() {
                continue;
            }
            let Some(sender) = self.request_senders.get(shard) else {
                continue;
            };
            if let Err(TrySendError::Full(batch) | TrySendError::Disconnected(batch)) =
                sender.try_send(batch)
            {
                self.refuse(shard, batch);
            }
        }
    }

    /// A request worker's queue is full: answer the waiting clients with a
    /// failure reason, keep close notices for the next round.
    fn refuse(&mut self, shard: usize, batch: Vec<RequestMessage>) {
        for message in batch {
            let key = message.from.token as usize;
            let current = self
                .connections
                .get(key)
                .is_some_and(|c| c.generation == message.from.generation);
            match message.request {
                SwarmRequest::ConnectionClosed { .. } => match self.retried_closes.get_mut(shard) {
                    Some(kept) if kept.len() < MAX_RETRIED_CLOSES => kept.push(message),
                    _ => self.stats.count_drop(DropReason::Overloaded, 1),
                },
                SwarmRequest::Answer(_) => self.stats.count_drop(DropReason::Overloaded, 1),
                SwarmRequest::Announce(request) if current => {
                    let failure = error_message(
                        FAILURE_OVERLOADED,
                        Some(Action::Announce),
                        Some(request.info_hash),
                    );
                    if let Outcome::Close(reason) = self.send(key, &failure) {
                        self.close(key, reason);
                    }
                }
                SwarmRequest::Scrape { scrape_id, .. } if current => {
                    let mut was_pending = false;
                    if let Some(c) = self.connections.get_mut(key) {
                        let before = c.scrapes.len();
                        c.scrapes.retain(|s| s.id != scrape_id);
                        was_pending = c.scrapes.len() != before;
                    }
                    // One failure per scrape, not per part.
                    if was_pending {
                        let failure = error_message(FAILURE_OVERLOADED, Some(Action::Scrape), None);
                        if let Outcome::Close(reason) = self.send(key, &failure) {
                            self.close(key, reason);
                        }
                    }
                }
                SwarmRequest::Announce(_) | SwarmRequest::Scrape { .. } => {}
            }
        }
    }

    fn handle_responses(&mut self) {
        while let Ok(batch) = self.response_receiver.try_recv() {
            for message in batch {
                self.handle_response(message);
            }
        }
    }

    fn handle_response(&mut self, message: ResponseMessage) {
        let key = message.to.token as usize;
        let Some(connection) = self
            .connections
            .get_mut(key)
            .filter(|c| c.generation == message.to.generation)
        else {
            // The connection closed (or its slot was reused) meanwhile.
            self.stats.count_drop(DropReason::ConnectionGone, 1);
            return;
        };
        let outcome = match message.response {
            SwarmResponse::Message(out) => self.send(key, &out),
            SwarmResponse::ScrapePart { scrape_id, files } => {
                let Some(i) = connection.scrapes.iter().position(|s| s.id == scrape_id) else {
                    return;
                };
                let Some(pending) = connection.scrapes.get_mut(i) else {
                    return;
                };
                pending.files.extend(files);
                pending.parts_left = pending.parts_left.saturating_sub(1);
                if pending.parts_left > 0 {
                    return;
                }
                let done = connection.scrapes.swap_remove(i);
                add(&self.stats.responses_scrape, 1);
                self.send(
                    key,
                    &OutMessage::ScrapeResponse(ScrapeResponse { files: done.files }),
                )
            }
        };
        if let Outcome::Close(reason) = outcome {
            self.close(key, reason);
        }
    }
}

fn error_message(
    reason: &'static str,
    action: Option<Action>,
    info_hash: Option<InfoHash>,
) -> OutMessage {
    OutMessage::Error(ErrorResponse {
        failure_reason: reason.into(),
        action,
        info_hash,
    })
}

/// The close code a client gets for a read error (RFC 6455, 7.4.1), if the
/// error is the client's fault and the connection can still carry it.
fn close_code(err: &tungstenite::Error) -> Option<CloseCode> {
    use tungstenite::Error;
    use tungstenite::error::ProtocolError;
    match err {
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        Error::Protocol(_) => Some(CloseCode::Protocol),
        Error::Utf8(_) => Some(CloseCode::Invalid),
        Error::Capacity(_) => Some(CloseCode::Size),
        _ => None,
    }
}

fn close_text(code: CloseCode) -> &'static str {
    match code {
        CloseCode::Invalid => "invalid UTF-8",
        CloseCode::Size => "message or frame too large",
        _ => "protocol error",
    }
}

fn close_reason(err: &tungstenite::Error) -> CloseReason {
    use tungstenite::Error;
    use tungstenite::error::ProtocolError;
    match err {
        Error::ConnectionClosed | Error::AlreadyClosed | Error::Io(_) => CloseReason::Client,
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => CloseReason::Client,
        Error::Capacity(_) => CloseReason::OverLimit,
        Error::WriteBufferFull(_) => CloseReason::WriteBufferFull,
        _ => CloseReason::ProtocolError,
    }
}

enum Upgrade {
    /// The 101 response, and the client's address (forwarded by a trusted
    /// proxy, or the connection's own; canonical).
    WebSocket(Vec<u8>, IpAddr),
    Health,
    /// An error response.
    Refused(Vec<u8>),
}

/// Decide what to do with a complete request head from `direct`.
fn upgrade_response(
    request: &httparse::Request,
    direct: IpAddr,
    config: &Config,
    trusted: &[IpNet],
) -> Upgrade {
    let full_path = request.path.unwrap_or("/");
    let path = full_path.split('?').next().unwrap_or(full_path);
    if request.method != Some("GET") {
        return Upgrade::Refused(http_error(405, "Method Not Allowed"));
    }
    if path == "/health" {
        return Upgrade::Health;
    }
    let header = config.network.reverse_proxy_ip_header.as_str();
    let forwarded = if header.is_empty() {
        None
    } else {
        forwarded_ip(request.headers.iter().map(|h| (h.name, h.value)), header)
    };
    let Ok(ip) = client_ip(direct, forwarded, !header.is_empty(), trusted) else {
        return Upgrade::Refused(http_error(400, "Reverse Proxy Header Missing"));
    };
    // tungstenite checks the upgrade headers and derives the accept key.
    let mut builder = tungstenite::http::Request::builder()
        .method("GET")
        .uri(full_path);
    for header in request.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    let Ok(http_request) = builder.body(()) else {
        return Upgrade::Refused(http_error(400, "Bad Request"));
    };
    let Ok(response) = tungstenite::handshake::server::create_response(&http_request) else {
        return Upgrade::Refused(http_error(400, "Bad Request"));
    };
    let mut bytes = Vec::with_capacity(160);
    if tungstenite::handshake::server::write_response(&mut bytes, &response).is_err() {
        return Upgrade::Refused(http_error(400, "Bad Request"));
    }
    Upgrade::WebSocket(bytes, ip.to_canonical())
}

fn http_error(status: u16, phrase: &str) -> Vec<u8> {
    let body = format!("{status} {phrase}\n");
    format!(
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
