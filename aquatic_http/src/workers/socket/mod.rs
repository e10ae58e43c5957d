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
//!
//! The parts: `connection` is one connection's HTTP state and limits,
//! without its socket (unit-tested there); `io` its plain or TLS reads
//! and writes; `accept` admits, registers and closes connections. The
//! event loop, dispatch to the shards and their answers are here.

mod accept;
mod connection;
mod io;

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use aquatic_common::access_list::AccessListCache;
use aquatic_common::daemon::{SocketWiring, TcpFront};
use aquatic_common::defences::Defences;
use aquatic_common::health::Heartbeat;
use aquatic_common::proxy::{ProxyHeaderMissing, client_ip};
use aquatic_common::request_loop::InlineShard;
use aquatic_common::source::{ConnectionBudget, SourceKey};
use aquatic_common::tls::SharedTlsConfig;
use aquatic_common::{CanonicalSocketAddr, InfoHash, SecondsSinceStart, ServerStartInstant};
use aquatic_http_protocol::{ParseOptions, Request, ScrapeResponse};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use self::connection::{Connection, Limits, ReadResult, Step};
use self::io::{WriteResult, interest, read_plain, read_tls, write_plain, write_tls};
use crate::common::{
    ConnectionMeta, ErrorReason, FAILURE_ADDRESS_REFUSED, FAILURE_NOT_ALLOWED, FAILURE_OVERLOADED,
    FAILURE_PROXY_HEADER_MISSING, FAILURE_RATE_LIMITED, RequestMessage, ResponseMessage,
    SocketWorkerStats, SwarmRequest, SwarmResponse, add, shard_of,
};
use crate::config::Config;
use crate::workers::request::HttpShard;

pub const LISTENER_TOKEN: Token = Token(0);
pub const WAKER_TOKEN: Token = Token(1);
const FIRST_CONNECTION_TOKEN: usize = 2;
const READ_CHUNK: usize = 16 * 1024;

/// A connection as the worker holds it: its socket (and TLS session), what
/// it counts under, and its protocol state.
struct Client {
    stream: TcpStream,
    tls: Option<rustls::ServerConnection>,
    peer_addr: CanonicalSocketAddr,
    /// The source this connection counts under (none for a trusted
    /// reverse proxy).
    source: Option<SourceKey>,
    /// Wants writable events: only while a write is blocked.
    wants_writable: bool,
    /// Registered with the poll. A new connection is registered only at
    /// the end of the event-loop round it was accepted in, and only if it
    /// is still open: one answered and closed within that round (a
    /// connection-close client whose request came with the accept) never
    /// costs an epoll_ctl.
    registered: bool,
    http: Connection,
}

/// The connection limits in `config`.
fn limits(config: &Config) -> Limits<'_> {
    Limits {
        max_head: config.network.max_request_head_size,
        idle_timeout: config.network.connection_idle_timeout,
        parse: ParseOptions {
            max_scrape_torrents: config.protocol.max_scrape_torrents,
            reverse_proxy_header: Some(config.network.reverse_proxy_ip_header.as_str())
                .filter(|h| !h.is_empty()),
            allowed_hosts: &config.network.allowed_hosts,
        },
    }
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
    connections: Slab<Client>,
    next_request_id: u64,
    request_senders: Vec<Sender<Vec<RequestMessage>>>,
    response_receiver: Receiver<Vec<ResponseMessage>>,
    batches: Vec<Vec<RequestMessage>>,
    stats: Arc<SocketWorkerStats>,
    heartbeat: Arc<Heartbeat>,
    chunk: Vec<u8>,
    body: Vec<u8>,
    /// With `request_workers = 0`: the shard this worker answers itself.
    inline: Option<InlineShard<HttpShard, RequestMessage, ResponseMessage>>,
    /// Connections accepted in this round, to register at its end.
    unregistered: Vec<usize>,
    /// Open connections against max_connections and each source's share.
    budget: ConnectionBudget,
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
    /// The worker `wiring` starts, with the daemon's config.
    pub(crate) fn new(
        config: Arc<Config>,
        front: &TcpFront,
        wiring: SocketWiring<crate::Http>,
    ) -> anyhow::Result<Self> {
        let mut listener = TcpListener::from_std(wiring.socket);
        wiring
            .poll
            .registry()
            .register(&mut listener, LISTENER_TOKEN, Interest::READABLE)?;
        let shards = wiring.request_senders.len().max(1);
        let budget = ConnectionBudget::new(
            config.network.max_connections,
            &config.source_budgets,
            front.trusted_proxies.clone(),
        );
        Ok(Self {
            now: wiring.clock.seconds_elapsed(),
            config,
            index: wiring.index,
            listener,
            poll: wiring.poll,
            tls: front.tls.clone(),
            access_list: wiring.access_list,
            defences: wiring.defences,
            clock: wiring.clock,
            connections: Slab::new(),
            next_request_id: 0,
            request_senders: wiring.request_senders,
            response_receiver: wiring.response_receiver,
            batches: (0..shards).map(|_| Vec::new()).collect(),
            stats: wiring.stats,
            heartbeat: wiring.heartbeat,
            chunk: vec![0; READ_CHUNK],
            body: Vec::with_capacity(1024),
            inline: wiring.inline_shard,
            unregistered: Vec::new(),
            budget,
            accept_pending: false,
        })
    }

    pub fn run(mut self) -> anyhow::Result<()> {
        let mut events = Events::with_capacity(256);
        let timeout = Duration::from_millis(self.config.network.poll_timeout_ms);
        let mut last_sweep = self.now;
        loop {
            let beat = self
                .heartbeat
                .poll(&mut self.poll, &mut events, timeout, &self.clock)?;
            let Some(now) = beat else { continue };
            self.now = now;
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
            if let Some(inline) = self.inline.as_mut() {
                inline.housekeep(self.now);
            }
            if self.now > last_sweep {
                self.close_expired();
                last_sweep = self.now;
            }
        }
    }

    /// Read what is available (up to the read buffer's bound), then
    /// parse. `peer_closed`: the event says the client closed its side, so
    /// read to the end now (the close will not be signalled again).
    fn on_readable(&mut self, key: usize, peer_closed: bool) -> Outcome {
        if let ReadResult::Failed = self.read_input(key, peer_closed) {
            return Outcome::Close;
        }
        if let Some(client) = self.connections.get(key) {
            if client.tls.as_ref().is_some_and(|t| t.wants_write()) {
                if let Outcome::Close = self.flush(key) {
                    return Outcome::Close;
                }
            }
        }
        self.process_requests(key)
    }

    /// Read into the connection's buffer until the socket is drained, the
    /// buffer reaches its bound (reading pauses) or the client closed its
    /// side.
    fn read_input(&mut self, key: usize, to_the_end: bool) -> ReadResult {
        let limit = Connection::read_limit(&limits(&self.config));
        let Some(client) = self.connections.get_mut(key) else {
            return ReadResult::Open;
        };
        let Some(buf) = client.http.read_space() else {
            return ReadResult::Eof;
        };
        let mut received = 0usize;
        let result = match &mut client.tls {
            None => read_plain(
                &mut client.stream,
                buf,
                &mut self.chunk,
                limit,
                &mut received,
                to_the_end,
            ),
            Some(tls) => read_tls(
                tls,
                &mut client.stream,
                buf,
                &mut self.chunk,
                limit,
                &mut received,
            ),
        };
        add(&self.stats.tcp.bytes_received, received as u64);
        client.http.on_read(result);
        result
    }

    /// Dispatch requests while the connection is ready for one; read on
    /// when a paused read has room again; close once a client that closed
    /// its side has all its answers.
    fn process_requests(&mut self, key: usize) -> Outcome {
        loop {
            let Some(client) = self.connections.get_mut(key) else {
                return Outcome::Keep;
            };
            let step = client.http.next(&limits(&self.config), self.now);
            match step {
                Step::Request(request, forwarded_ip) => {
                    if let Outcome::Close = self.dispatch(key, request, forwarded_ip) {
                        return Outcome::Close;
                    }
                }
                Step::Rejected(reason) => {
                    self.stats.count_error(reason);
                    if reason == ErrorReason::WrongHost {
                        self.defences.count_wrong_host();
                    }
                    if let Outcome::Close = self.flush(key) {
                        return Outcome::Close;
                    }
                }
                Step::ReadMore => {
                    let before = client.http.buffered();
                    match self.read_input(key, false) {
                        ReadResult::Failed => return Outcome::Close,
                        ReadResult::Eof => continue,
                        ReadResult::Open | ReadResult::Full => {}
                    }
                    if self
                        .connections
                        .get(key)
                        .is_none_or(|c| c.http.buffered() <= before)
                    {
                        return Outcome::Keep;
                    }
                }
                Step::Finish => return self.flush(key),
                Step::Wait => return Outcome::Keep,
            }
        }
    }

    fn dispatch(&mut self, key: usize, request: Request, forwarded_ip: Option<IpAddr>) -> Outcome {
        let Some(client) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        let peer_ip = match client_ip(
            client.peer_addr.ip(),
            forwarded_ip,
            !self.config.network.reverse_proxy_ip_header.is_empty(),
            self.budget.trusted_proxies(),
        ) {
            Ok(ip) => ip,
            Err(ProxyHeaderMissing) => {
                return self.respond_failure(key, FAILURE_PROXY_HEADER_MISSING);
            }
        };
        // Counted as requests first, then refused: the connection's own
        // address passed the IP filter at accept; it is checked again for
        // each request (a proxy's client, a filter reloaded since the
        // connection was opened), and each request takes a token.
        match &request {
            Request::Announce(announce) => {
                add(&self.stats.requests_announce, 1);
                self.stats.tcp.clients.count(&announce.peer_id);
            }
            Request::Scrape(_) => add(&self.stats.requests_scrape, 1),
        }
        if !self.defences.admits(peer_ip) {
            return self.respond_failure(key, FAILURE_ADDRESS_REFUSED);
        }
        if !self.defences.within_rate(peer_ip) {
            return self.respond_failure(key, FAILURE_RATE_LIMITED);
        }
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let request_id = self.next_request_id;
        let meta = ConnectionMeta {
            socket_worker: self.index,
            token: key,
            request_id,
            peer_ip,
        };
        let shards = self.batches.len();
        match request {
            Request::Announce(announce) => {
                if !self.access_list.allows(&announce.info_hash) {
                    return self.respond_failure(key, FAILURE_NOT_ALLOWED);
                }
                let shard = shard_of(&announce.info_hash, shards);
                let Some(batch) = self.batches.get_mut(shard) else {
                    return self.respond_failure(key, FAILURE_OVERLOADED);
                };
                batch.push(RequestMessage {
                    request: SwarmRequest::Announce(announce),
                    meta,
                });
                client.http.wait_for(request_id);
            }
            Request::Scrape(scrape) => {
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
                // One batch per shard, each part into its own.
                for (part, batch) in parts.into_iter().zip(self.batches.iter_mut()) {
                    if !part.is_empty() {
                        batch.push(RequestMessage {
                            request: SwarmRequest::Scrape(part),
                            meta,
                        });
                    }
                }
                client.http.wait_for_scrape(request_id, parts_left);
            }
        }
        Outcome::Keep
    }

    fn flush_batches(&mut self) {
        if let Some(mut inline) = self.inline.take() {
            // request_workers = 0: this thread owns the only shard.
            let now = self.now;
            inline.drain(self, now, |w| w.batches.first_mut(), Self::handle_response);
            self.inline = Some(inline);
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
                        if let Outcome::Close = self.respond_failure(key, FAILURE_OVERLOADED) {
                            self.close(key);
                        }
                    }
                }
            }
        }
    }

    /// Whether the connection still waits for this answer: not if it was
    /// closed (and its slot perhaps reused) or answered meanwhile.
    fn is_current(&self, meta: &ConnectionMeta) -> bool {
        self.connections
            .get(meta.token)
            .is_some_and(|c| c.http.waits_for(meta.request_id))
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
            return;
        }
        let outcome = match message.response {
            SwarmResponse::Announce(response, format) => {
                add(&self.stats.responses_announce, 1);
                self.body.clear();
                response.write(&mut self.body, format);
                self.answer(key)
            }
            SwarmResponse::Scrape(files) => {
                let complete = self
                    .connections
                    .get_mut(key)
                    .is_some_and(|c| c.http.add_scrape_part(files, &mut self.body));
                if complete {
                    add(&self.stats.responses_scrape, 1);
                    self.answer(key)
                } else {
                    Outcome::Keep
                }
            }
        };
        let outcome = match outcome {
            Outcome::Keep => self.process_requests(key),
            Outcome::Close => Outcome::Close,
        };
        if let Outcome::Close = outcome {
            self.close(key);
        }
    }

    /// Send `self.body` as a 200 answer.
    fn answer(&mut self, key: usize) -> Outcome {
        let Some(client) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        client
            .http
            .answer(&self.body, &limits(&self.config), self.now);
        self.flush(key)
    }

    fn respond_failure(&mut self, key: usize, reason: &str) -> Outcome {
        self.stats.count_error(ErrorReason::of_failure(reason));
        let Some(client) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        client
            .http
            .respond_failure(reason, &limits(&self.config), self.now);
        self.flush(key)
    }

    /// Write what is pending; close once a last answer is out.
    fn flush(&mut self, key: usize) -> Outcome {
        let Some(client) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        let (result, written) = match &mut client.tls {
            None => write_plain(
                &mut client.stream,
                client.http.output(),
                client.http.last_write(),
            ),
            Some(tls) => {
                let pending = client.http.output();
                let taken = if pending.is_empty() {
                    Ok(())
                } else {
                    tls.writer().write_all(pending)
                };
                // rustls keeps the plaintext (up to its buffer limit; past
                // it write_all fails and the connection is closed).
                let handed = pending.len();
                let result = match taken {
                    Ok(()) => write_tls(tls, &mut client.stream),
                    Err(_) => WriteResult::Failed,
                };
                (result, handed)
            }
        };
        client.http.wrote(written);
        add(&self.stats.tcp.bytes_sent, written as u64);
        let blocked = matches!(result, WriteResult::Blocked);
        if blocked != client.wants_writable && client.registered {
            let token = Token(key + FIRST_CONNECTION_TOKEN);
            if self
                .poll
                .registry()
                .reregister(&mut client.stream, token, interest(blocked))
                .is_err()
            {
                return Outcome::Close;
            }
        }
        client.wants_writable = blocked;
        match result {
            WriteResult::Failed => Outcome::Close,
            WriteResult::Blocked => Outcome::Keep,
            WriteResult::Done if client.http.closing() => {
                if let Some(tls) = &mut client.tls {
                    tls.send_close_notify();
                    let _ = write_tls(tls, &mut client.stream);
                }
                Outcome::Close
            }
            WriteResult::Done => Outcome::Keep,
        }
    }
}
