//! A socket worker: owns one SO_REUSEPORT TCP listener and the connections
//! it accepts, in a mio event loop.
//!
//! Per connection: read (through TLS when configured), parse one request at
//! a time with `aquatic_http_protocol`, answer errors itself, send
//! announces and scrape parts to the request workers owning their info
//! hashes, and write their answers back. Pipelined requests wait in the
//! read buffer until the previous answer is written; the buffer holds at
//! most twice `max_request_head_size`, and reading pauses when it is full
//! and resumes as requests are answered, so every complete request of a
//! burst is answered however long the burst. A client that half-closes
//! (sends its request, then FIN) gets its answers, then the close. Every
//! limit (head size, connections, connections per source, idle time)
//! closes only the connection that breaks it.

use std::borrow::Cow;
use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use aquatic_common::access_list::AccessListCache;
use aquatic_common::listen_queue::waiting_connections;
use aquatic_common::proxy::{ProxyHeaderMissing, client_ip};
use aquatic_common::request_loop::Shard;
use aquatic_common::shard_parts::{ShardCommand, serve_commands};
use aquatic_common::source::{SourceCounts, SourceKey};
use aquatic_common::time::secs_u32;
use aquatic_common::{CanonicalSocketAddr, InfoHash, SecondsSinceStart, ServerStartInstant};
use aquatic_http_protocol::{
    ParseOptions, Request, RequestParseError, ScrapeResponse, ScrapeStatistics, parse_request,
    write_failure, write_http_head,
};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use ipnet::IpNet;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::common::{
    ConnectionMeta, ErrorReason, FAILURE_NOT_ALLOWED, FAILURE_OVERLOADED,
    FAILURE_PROXY_HEADER_MISSING, RequestMessage, ResponseMessage, SocketWorkerStats, SwarmRequest,
    SwarmResponse, add, shard_of,
};
use crate::config::Config;
use crate::workers::request::HttpShard;
use aquatic_common::tls::SharedTlsConfig;

pub const LISTENER_TOKEN: Token = Token(0);
pub const WAKER_TOKEN: Token = Token(1);
const FIRST_CONNECTION_TOKEN: usize = 2;
const READ_CHUNK: usize = 16 * 1024;
/// Answers a connection may have unwritten before its pipelined requests
/// wait: a client that never reads cannot make the tracker buffer without
/// bound.
const MAX_UNWRITTEN: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Parsing requests from the read buffer.
    Reading,
    /// A request is with the request workers; further input waits.
    Waiting,
    /// Writing a last answer, then closing.
    Closing,
}

struct PendingScrape {
    parts_left: usize,
    files: Vec<(InfoHash, ScrapeStatistics)>,
}

struct Connection {
    stream: TcpStream,
    tls: Option<rustls::ServerConnection>,
    peer_addr: CanonicalSocketAddr,
    /// The source this connection counts under (none for a trusted
    /// reverse proxy).
    source: Option<SourceKey>,
    /// Reading stopped with the read buffer full: more input may wait in
    /// the socket, read once requests have made room.
    read_paused: bool,
    /// The client closed its side (or TLS close_notify): answer what it
    /// sent, then close.
    read_closed: bool,
    /// Id of the request in flight (unique in this worker): answers to an
    /// abandoned request, or to a closed connection whose slot was reused,
    /// carry another id and are dropped.
    request_id: u64,
    state: State,
    keep_alive: bool,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
    write_pos: usize,
    /// Closed when `now` passes this while not waiting for an answer: no
    /// complete request within the idle timeout (slow or idle clients).
    deadline: SecondsSinceStart,
    scrape: Option<PendingScrape>,
    /// Wants writable events: only while a write is blocked.
    wants_writable: bool,
    /// Registered with the poll. A new connection is registered only at
    /// the end of the event-loop round it was accepted in, and only if it
    /// is still open: one answered and closed within that round (a
    /// connection-close client whose request came with the accept) never
    /// costs an epoll_ctl.
    registered: bool,
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
    /// With `request_workers = 0`: the shard this worker answers itself.
    pub inline_shard: Option<HttpShard>,
    /// With `request_workers = 0`: requests for the inline shard's part of
    /// the state file or scrape export.
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
    next_request_id: u64,
    request_senders: Vec<Sender<Vec<RequestMessage>>>,
    response_receiver: Receiver<Vec<ResponseMessage>>,
    batches: Vec<Vec<RequestMessage>>,
    stats: Arc<SocketWorkerStats>,
    chunk: Vec<u8>,
    body: Vec<u8>,
    inline_shard: Option<HttpShard>,
    shard_commands: Option<Receiver<ShardCommand>>,
    /// Reused for the inline shard's answers.
    inline_answers: Vec<(usize, ResponseMessage)>,
    /// Connections accepted in this round, to register at its end.
    unregistered: Vec<usize>,
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
    Close,
}

impl SocketWorker {
    pub fn new(parts: SocketWorkerParts) -> anyhow::Result<Self> {
        let mut listener = TcpListener::from_std(parts.listener);
        parts
            .poll
            .registry()
            .register(&mut listener, LISTENER_TOKEN, Interest::READABLE)?;
        let shards = parts.request_senders.len().max(1);
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
            config: parts.config,
            index: parts.index,
            listener,
            poll: parts.poll,
            tls: parts.tls,
            trusted_proxies: parts.trusted_proxies,
            access_list: parts.access_list,
            clock: parts.clock,
            connections: Slab::new(),
            next_request_id: 0,
            request_senders: parts.request_senders,
            response_receiver: parts.response_receiver,
            batches: (0..shards).map(|_| Vec::new()).collect(),
            stats: parts.stats,
            chunk: vec![0; READ_CHUNK],
            body: Vec::with_capacity(1024),
            inline_shard: parts.inline_shard,
            shard_commands: parts.shard_commands,
            inline_answers: Vec::new(),
            unregistered: Vec::new(),
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
            if let Err(err) = self.poll.poll(&mut events, Some(timeout)) {
                if err.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(anyhow::Error::new(err).context("poll failed"));
            }
            self.now = self.clock.seconds_elapsed();
            if self.accept_pending {
                self.accept();
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER_TOKEN => self.accept(),
                    WAKER_TOKEN => {}
                    Token(t) => {
                        let key = t.wrapping_sub(FIRST_CONNECTION_TOKEN);
                        let mut outcome = Outcome::Keep;
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            outcome = self.on_readable(key, event.is_read_closed());
                        }
                        if matches!(outcome, Outcome::Keep) && event.is_writable() {
                            outcome = self.flush(key);
                            if matches!(outcome, Outcome::Keep) {
                                // Pipelined requests paused on a full write buffer.
                                outcome = self.process_requests(key);
                            }
                        }
                        if matches!(outcome, Outcome::Close) {
                            self.close(key);
                        }
                    }
                }
            }
            self.flush_batches();
            self.handle_responses();
            // Answers let pipelined requests through: send them now rather
            // than after the next wake-up.
            self.flush_batches();
            self.register_new();
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
                self.close_expired();
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
                Ok((stream, addr)) => {
                    let counters = &self.stats;
                    if self.connections.len() >= self.config.network.max_connections {
                        add(&counters.connections_refused, 1);
                        continue; // dropping the stream closes it
                    }
                    let peer_addr = CanonicalSocketAddr::new(addr);
                    // A trusted proxy speaks for many clients: its
                    // connections are not budgeted as one source.
                    let source = (!self
                        .trusted_proxies
                        .iter()
                        .any(|net| net.contains(&peer_addr.ip())))
                    .then(|| self.config.source_budgets.prefixes().of(peer_addr.ip()));
                    if let Some(source) = source {
                        if !self
                            .sources
                            .try_acquire(source, self.max_connections_per_source)
                        {
                            add(&counters.connections_refused_source, 1);
                            continue;
                        }
                    }
                    let tls = match &self.tls {
                        Some(shared) => match rustls::ServerConnection::new(shared.load_full()) {
                            Ok(tls) => Some(tls),
                            Err(err) => {
                                log::warn!("cannot start TLS connection: {err}");
                                if let Some(source) = &source {
                                    self.sources.release(source);
                                }
                                continue;
                            }
                        },
                        None => None,
                    };
                    let deadline = self.now.add_secs(self.idle_timeout());
                    let key = self.connections.insert(Connection {
                        stream,
                        tls,
                        peer_addr,
                        source,
                        read_paused: false,
                        read_closed: false,
                        request_id: 0,
                        state: State::Reading,
                        keep_alive: true,
                        read_buf: Vec::new(),
                        write_buf: Vec::new(),
                        write_pos: 0,
                        deadline,
                        scrape: None,
                        wants_writable: false,
                        registered: false,
                    });
                    self.unregistered.push(key);
                    add(&counters.connections_accepted, 1);
                    counters
                        .connections_open
                        .store(self.connections.len(), std::sync::atomic::Ordering::Relaxed);
                    // Clients send their request right after connecting: it
                    // is usually here already, so read it now instead of
                    // waking up again for it (the socket is registered at
                    // the end of this round, when edge-triggered epoll
                    // reports data, or a close, that came meanwhile at once).
                    if let Outcome::Close = self.on_readable(key, false) {
                        self.close(key);
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

    /// Register the connections accepted in this round that are still
    /// open, for the events they wait for.
    fn register_new(&mut self) {
        for key in std::mem::take(&mut self.unregistered) {
            let Some(connection) = self.connections.get_mut(key) else {
                continue;
            };
            if connection.registered {
                // Closed, and its slot reused by a later accept: listed twice.
                continue;
            }
            let token = Token(key + FIRST_CONNECTION_TOKEN);
            let interest = interest(connection.wants_writable);
            match self
                .poll
                .registry()
                .register(&mut connection.stream, token, interest)
            {
                Ok(()) => connection.registered = true,
                Err(err) => {
                    log::warn!("cannot register connection: {err}");
                    self.close(key);
                }
            }
        }
    }

    fn idle_timeout(&self) -> u32 {
        u32::try_from(self.config.network.connection_idle_timeout).unwrap_or(u32::MAX)
    }

    fn close(&mut self, key: usize) {
        // Closing the socket removes it from epoll: no deregister call.
        if let Some(connection) = self.connections.try_remove(key) {
            if let Some(source) = &connection.source {
                self.sources.release(source);
            }
        }
        self.stats
            .connections_open
            .store(self.connections.len(), std::sync::atomic::Ordering::Relaxed);
    }

    fn close_expired(&mut self) {
        let now = self.now;
        let expired: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, c)| c.state != State::Waiting && now > c.deadline)
            .map(|(key, _)| key)
            .collect();
        for key in expired {
            self.close(key);
        }
    }

    /// Read what is available (up to the read buffer's bound), then
    /// parse. `peer_closed`: the event says the client closed its side, so
    /// read to the end now (the close will not be signalled again).
    fn on_readable(&mut self, key: usize, peer_closed: bool) -> Outcome {
        if let ReadResult::Failed = self.read_input(key, peer_closed) {
            return Outcome::Close;
        }
        if let Some(connection) = self.connections.get_mut(key) {
            if connection.tls.as_ref().is_some_and(|t| t.wants_write()) {
                if let Outcome::Close = self.flush(key) {
                    return Outcome::Close;
                }
            }
        }
        self.process_requests(key)
    }

    /// Read into the connection's buffer until the socket is drained, the
    /// buffer holds twice `max_request_head_size` (reading pauses) or the
    /// client closed its side.
    fn read_input(&mut self, key: usize, to_the_end: bool) -> ReadResult {
        let limit = self.config.network.max_request_head_size.saturating_mul(2);
        let Some(connection) = self.connections.get_mut(key) else {
            return ReadResult::Open;
        };
        if connection.read_closed {
            return ReadResult::Eof;
        }
        let mut received = 0usize;
        let result = match &mut connection.tls {
            None => read_plain(
                &mut connection.stream,
                &mut connection.read_buf,
                &mut self.chunk,
                limit,
                &mut received,
                to_the_end,
            ),
            Some(tls) => read_tls(
                tls,
                &mut connection.stream,
                &mut connection.read_buf,
                &mut self.chunk,
                limit,
                &mut received,
            ),
        };
        add(&self.stats.bytes_received, received as u64);
        match result {
            ReadResult::Full => connection.read_paused = true,
            ReadResult::Eof => connection.read_closed = true,
            ReadResult::Open | ReadResult::Failed => {}
        }
        result
    }

    /// Parse and dispatch requests while the connection is ready for one;
    /// read on when a paused read has room again; close once a client that
    /// closed its side has all its answers.
    fn process_requests(&mut self, key: usize) -> Outcome {
        loop {
            let Some(connection) = self.connections.get_mut(key) else {
                return Outcome::Keep;
            };
            if connection.state != State::Reading {
                return Outcome::Keep;
            }
            if connection
                .write_buf
                .len()
                .saturating_sub(connection.write_pos)
                > MAX_UNWRITTEN
            {
                // The client pipelines without reading its answers: wait
                // until they are written (the writable event resumes this).
                return Outcome::Keep;
            }
            if !connection.read_buf.is_empty() {
                let options = ParseOptions {
                    max_scrape_torrents: self.config.protocol.max_scrape_torrents,
                    reverse_proxy_header: Some(
                        self.config.network.reverse_proxy_ip_header.as_str(),
                    )
                    .filter(|h| !h.is_empty()),
                };
                let parsed = parse_request(&connection.read_buf, &options);
                let need_more = matches!(parsed, Err(RequestParseError::NeedMoreData));
                let head_len = match &parsed {
                    Ok(parsed) => parsed.consumed,
                    Err(
                        RequestParseError::NotFound { consumed, .. }
                        | RequestParseError::Invalid { consumed, .. },
                    ) => *consumed,
                    Err(RequestParseError::NeedMoreData | RequestParseError::BadRequest) => 0,
                };
                if head_len > self.config.network.max_request_head_size {
                    // A complete head may arrive in one read of up to twice
                    // the limit (the read buffer's bound): still too long.
                    return self.respond_status(key, 431, "Request Header Fields Too Large", false);
                }
                let outcome = match parsed {
                    Ok(parsed) => {
                        drain(&mut connection.read_buf, parsed.consumed);
                        connection.keep_alive = parsed.keep_alive;
                        self.dispatch(key, parsed.request, parsed.forwarded_ip)
                    }
                    Err(RequestParseError::NeedMoreData) => {
                        if connection.read_buf.len() > self.config.network.max_request_head_size {
                            return self.respond_status(
                                key,
                                431,
                                "Request Header Fields Too Large",
                                false,
                            );
                        }
                        Outcome::Keep
                    }
                    Err(RequestParseError::NotFound {
                        consumed,
                        keep_alive,
                    }) => {
                        drain(&mut connection.read_buf, consumed);
                        self.respond_status(key, 404, "Not Found", keep_alive)
                    }
                    Err(RequestParseError::Invalid {
                        reason,
                        consumed,
                        keep_alive,
                    }) => {
                        drain(&mut connection.read_buf, consumed);
                        connection.keep_alive = keep_alive;
                        self.respond_failure(key, &reason)
                    }
                    Err(RequestParseError::BadRequest) => {
                        return self.respond_status(key, 400, "Bad Request", false);
                    }
                };
                match outcome {
                    Outcome::Close => return Outcome::Close,
                    Outcome::Keep if !need_more => continue,
                    Outcome::Keep => {}
                }
            }
            // No complete request buffered.
            let Some(connection) = self.connections.get_mut(key) else {
                return Outcome::Keep;
            };
            if connection.read_paused {
                connection.read_paused = false;
                let before = connection.read_buf.len();
                match self.read_input(key, false) {
                    ReadResult::Failed => return Outcome::Close,
                    ReadResult::Eof => continue,
                    ReadResult::Open | ReadResult::Full => {}
                }
                if self
                    .connections
                    .get(key)
                    .is_some_and(|c| c.read_buf.len() > before)
                {
                    continue;
                }
                return Outcome::Keep;
            }
            if connection.read_closed {
                // Nothing more will come: close once the answers are out
                // (an unfinished request is dropped).
                connection.read_buf.clear();
                connection.state = State::Closing;
                return self.flush(key);
            }
            return Outcome::Keep;
        }
    }

    fn dispatch(&mut self, key: usize, request: Request, forwarded_ip: Option<IpAddr>) -> Outcome {
        let Some(connection) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        let peer_ip = match client_ip(
            connection.peer_addr.ip(),
            forwarded_ip,
            !self.config.network.reverse_proxy_ip_header.is_empty(),
            &self.trusted_proxies,
        ) {
            Ok(ip) => ip,
            Err(ProxyHeaderMissing) => {
                return self.respond_failure(key, FAILURE_PROXY_HEADER_MISSING);
            }
        };
        self.next_request_id = self.next_request_id.wrapping_add(1);
        connection.request_id = self.next_request_id;
        let meta = ConnectionMeta {
            socket_worker: self.index,
            token: key,
            generation: connection.request_id,
            peer_ip,
        };
        let shards = self.batches.len();
        match request {
            Request::Announce(announce) => {
                add(&self.stats.requests_announce, 1);
                if !self.access_list.allows(&announce.info_hash) {
                    return self.respond_failure(key, FAILURE_NOT_ALLOWED);
                }
                connection.state = State::Waiting;
                let shard = shard_of(&announce.info_hash, shards);
                if let Some(batch) = self.batches.get_mut(shard) {
                    batch.push(RequestMessage {
                        request: SwarmRequest::Announce(announce),
                        meta,
                    });
                }
            }
            Request::Scrape(scrape) => {
                add(&self.stats.requests_scrape, 1);
                let mut parts: Vec<Vec<InfoHash>> = (0..shards).map(|_| Vec::new()).collect();
                for hash in scrape.info_hashes {
                    if let Some(part) = parts.get_mut(shard_of(&hash, shards)) {
                        part.push(hash);
                    }
                }
                let parts_left = parts.iter().filter(|p| !p.is_empty()).count();
                if parts_left == 0 {
                    self.body.clear();
                    ScrapeResponse { files: Vec::new() }.write(&mut self.body);
                    return self.answer(key);
                }
                connection.state = State::Waiting;
                connection.scrape = Some(PendingScrape {
                    parts_left,
                    files: Vec::new(),
                });
                for (shard, part) in parts.into_iter().enumerate() {
                    if part.is_empty() {
                        continue;
                    }
                    if let Some(batch) = self.batches.get_mut(shard) {
                        batch.push(RequestMessage {
                            request: SwarmRequest::Scrape(part),
                            meta,
                        });
                    }
                }
            }
        }
        Outcome::Keep
    }

    fn flush_batches(&mut self) {
        if let Some(mut shard) = self.inline_shard.take() {
            // request_workers = 0: this thread owns the only shard. Answers
            // may let pipelined requests queue more, so go round until none
            // are left (each round answers at least one per connection).
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
            let Some(batch) = self.batches.get_mut(shard) else {
                continue;
            };
            if batch.is_empty() {
                continue;
            }
            let batch = std::mem::take(batch);
            let Some(sender) = self.request_senders.get(shard) else {
                continue;
            };
            if let Err(TrySendError::Full(batch) | TrySendError::Disconnected(batch)) =
                sender.try_send(batch)
            {
                // Overloaded: answer each waiting connection right away.
                for message in batch {
                    let key = message.meta.token;
                    if self.is_current(&message.meta) {
                        if let Some(c) = self.connections.get_mut(key) {
                            c.scrape = None;
                            c.state = State::Reading;
                        }
                        if let Outcome::Close = self.respond_failure(key, FAILURE_OVERLOADED) {
                            self.close(key);
                        }
                    }
                }
            }
        }
    }

    fn is_current(&self, meta: &ConnectionMeta) -> bool {
        self.connections
            .get(meta.token)
            .is_some_and(|c| c.request_id == meta.generation && c.state == State::Waiting)
    }

    fn handle_responses(&mut self) {
        while let Ok(batch) = self.response_receiver.try_recv() {
            for message in batch {
                self.handle_response(message);
            }
        }
    }

    fn handle_response(&mut self, message: ResponseMessage) {
        let key = message.meta.token;
        if !self.is_current(&message.meta) {
            // The connection closed (or its slot was reused) meanwhile.
            return;
        }
        let outcome = match message.response {
            SwarmResponse::Announce(response, format) => {
                add(&self.stats.responses_announce, 1);
                self.body.clear();
                response.write(&mut self.body, format);
                self.answer(key)
            }
            SwarmResponse::Scrape(files) => self.add_scrape_part(key, files),
        };
        let outcome = match outcome {
            Outcome::Keep => self.process_requests(key),
            Outcome::Close => Outcome::Close,
        };
        if let Outcome::Close = outcome {
            self.close(key);
        }
    }

    fn add_scrape_part(&mut self, key: usize, files: Vec<(InfoHash, ScrapeStatistics)>) -> Outcome {
        let Some(connection) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        let Some(pending) = connection.scrape.as_mut() else {
            return Outcome::Keep;
        };
        pending.files.extend(files);
        pending.parts_left = pending.parts_left.saturating_sub(1);
        if pending.parts_left > 0 {
            return Outcome::Keep;
        }
        let files = connection
            .scrape
            .take()
            .map(|p| p.files)
            .unwrap_or_default();
        add(&self.stats.responses_scrape, 1);
        self.body.clear();
        ScrapeResponse { files }.write(&mut self.body);
        self.answer(key)
    }

    /// Send `self.body` as a 200 answer, then go on with pipelined input.
    fn answer(&mut self, key: usize) -> Outcome {
        let Some(connection) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        let keep_alive = connection.keep_alive;
        write_http_head(
            &mut connection.write_buf,
            200,
            "OK",
            self.body.len(),
            keep_alive,
        );
        connection.write_buf.extend_from_slice(&self.body);
        self.after_answer(key, keep_alive)
    }

    fn respond_failure(&mut self, key: usize, reason: &str) -> Outcome {
        self.stats.count_error(ErrorReason::of_failure(reason));
        self.body.clear();
        write_failure(&mut self.body, reason);
        self.answer(key)
    }

    fn respond_status(
        &mut self,
        key: usize,
        status: u16,
        phrase: &str,
        keep_alive: bool,
    ) -> Outcome {
        self.stats.count_error(ErrorReason::of_status(status));
        let Some(connection) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        let body: Cow<'_, str> = Cow::Owned(format!("{status} {phrase}\n"));
        write_http_head(
            &mut connection.write_buf,
            status,
            phrase,
            body.len(),
            keep_alive,
        );
        connection.write_buf.extend_from_slice(body.as_bytes());
        self.after_answer(key, keep_alive)
    }

    fn after_answer(&mut self, key: usize, keep_alive: bool) -> Outcome {
        let idle = self.idle_timeout();
        if let Some(connection) = self.connections.get_mut(key) {
            connection.state = if keep_alive {
                State::Reading
            } else {
                State::Closing
            };
            connection.deadline = self.now.add_secs(idle);
        }
        // Pipelined requests already buffered are parsed by the caller.
        self.flush(key)
    }

    /// Write what is pending; close once a last answer is out.
    fn flush(&mut self, key: usize) -> Outcome {
        let Some(connection) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        let before = connection.write_pos;
        let result = match &mut connection.tls {
            None => write_plain(
                &mut connection.stream,
                &connection.write_buf,
                &mut connection.write_pos,
                // Only when all input was consumed: closing a socket with
                // unread input sends a reset and discards what is unsent,
                // so a 400 or 431 to a client still sending goes out now.
                connection.state == State::Closing && connection.read_buf.is_empty(),
            ),
            Some(tls) => {
                let pending = connection
                    .write_buf
                    .get(connection.write_pos..)
                    .unwrap_or(&[]);
                let taken = if pending.is_empty() {
                    Ok(())
                } else {
                    tls.writer().write_all(pending)
                };
                // rustls keeps the plaintext (up to its buffer limit; past
                // it write_all fails and the connection is closed).
                let handed = connection.write_buf.len();
                connection.write_buf.clear();
                connection.write_pos = 0;
                add(&self.stats.bytes_sent, handed.saturating_sub(before) as u64);
                match taken {
                    Ok(()) => write_tls(tls, &mut connection.stream),
                    Err(_) => WriteResult::Failed,
                }
            }
        };
        if connection.tls.is_none() {
            add(
                &self.stats.bytes_sent,
                connection.write_pos.saturating_sub(before) as u64,
            );
        }
        let blocked = matches!(result, WriteResult::Blocked);
        if blocked != connection.wants_writable && connection.registered {
            let token = Token(key + FIRST_CONNECTION_TOKEN);
            if self
                .poll
                .registry()
                .reregister(&mut connection.stream, token, interest(blocked))
                .is_err()
            {
                return Outcome::Close;
            }
        }
        connection.wants_writable = blocked;
        match result {
            WriteResult::Failed => Outcome::Close,
            WriteResult::Blocked => Outcome::Keep,
            WriteResult::Done => {
                connection.write_buf.clear();
                connection.write_pos = 0;
                if connection.state == State::Closing {
                    if let Some(tls) = &mut connection.tls {
                        tls.send_close_notify();
                        let _ = write_tls(tls, &mut connection.stream);
                    }
                    return Outcome::Close;
                }
                Outcome::Keep
            }
        }
    }
}

/// The events a connection waits for: writable ones only while a write
/// waits for room.
fn interest(wants_writable: bool) -> Interest {
    if wants_writable {
        Interest::READABLE | Interest::WRITABLE
    } else {
        Interest::READABLE
    }
}

fn drain(buf: &mut Vec<u8>, n: usize) {
    buf.drain(..n.min(buf.len()));
}

enum ReadResult {
    /// Everything available was read.
    Open,
    /// The buffer reached its bound: more may wait in the socket.
    Full,
    /// The client closed its side (end of stream, or TLS close_notify).
    Eof,
    /// A reset, a TLS error: the connection is done.
    Failed,
}

/// Read up to `limit` bytes into `buf`. Unless `to_the_end`, a short read
/// ends it: with edge-triggered readiness new data brings a new event, so
/// there is no read just to see EAGAIN.
fn read_plain(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
    limit: usize,
    received: &mut usize,
    to_the_end: bool,
) -> ReadResult {
    loop {
        let room = limit.saturating_sub(buf.len()).min(chunk.len());
        let Some(chunk) = chunk.get_mut(..room).filter(|c| !c.is_empty()) else {
            return ReadResult::Full;
        };
        match stream.read(chunk) {
            Ok(0) => return ReadResult::Eof,
            Ok(n) => {
                *received += n;
                buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                if n < room && !to_the_end {
                    return ReadResult::Open;
                }
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => return ReadResult::Open,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return ReadResult::Failed,
        }
    }
}

/// Read through TLS up to `limit` plaintext bytes into `buf`. Plaintext
/// rustls already decrypted is taken first; no more records are read from
/// the socket while the buffer is full (rustls would refuse them).
fn read_tls(
    tls: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
    limit: usize,
    received: &mut usize,
) -> ReadResult {
    loop {
        loop {
            let room = limit.saturating_sub(buf.len()).min(chunk.len());
            let Some(chunk) = chunk.get_mut(..room).filter(|c| !c.is_empty()) else {
                return ReadResult::Full;
            };
            match tls.reader().read(chunk) {
                Ok(0) => return ReadResult::Eof, // close_notify
                Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return ReadResult::Failed,
            }
        }
        match tls.read_tls(stream) {
            Ok(0) => return ReadResult::Eof,
            Ok(n) => *received += n,
            Err(err) if err.kind() == ErrorKind::WouldBlock => return ReadResult::Open,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return ReadResult::Failed,
        }
        if let Err(err) = tls.process_new_packets() {
            log::debug!("TLS error: {err}");
            let _ = write_tls(tls, stream); // the alert, if any
            return ReadResult::Failed;
        }
    }
}

enum WriteResult {
    Done,
    Blocked,
    Failed,
}

/// With `last` (the connection closes once this is written and no input is
/// left), the bytes are sent with MSG_MORE: the kernel holds them until the
/// close, which sends them with the FIN in one segment instead of two, each
/// acknowledged on its own by the client.
fn write_plain(stream: &mut TcpStream, buf: &[u8], pos: &mut usize, last: bool) -> WriteResult {
    let socket = socket2::SockRef::from(&*stream);
    let flags = if last { libc::MSG_MORE } else { 0 };
    while let Some(pending) = buf.get(*pos..).filter(|p| !p.is_empty()) {
        match socket.send_with_flags(pending, flags) {
            Ok(0) => return WriteResult::Failed,
            Ok(n) => *pos += n,
            Err(err) if err.kind() == ErrorKind::WouldBlock => return WriteResult::Blocked,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return WriteResult::Failed,
        }
    }
    WriteResult::Done
}

fn write_tls(tls: &mut rustls::ServerConnection, stream: &mut TcpStream) -> WriteResult {
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(0) => return WriteResult::Failed,
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::WouldBlock => return WriteResult::Blocked,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return WriteResult::Failed,
        }
    }
    WriteResult::Done
}
