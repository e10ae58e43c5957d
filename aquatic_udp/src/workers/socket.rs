//! A socket worker: owns one SO_REUSEPORT UDP socket in a mio event loop.
//!
//! It reads datagrams in batches (`recvmmsg`, with each one's local
//! address), parses every packet, answers connects and errors itself,
//! checks connection ids and the access list, and batches announces and
//! scrape parts to the request worker owning each info hash. Answers come
//! back on its own channel, with a `Waker` to interrupt the poll, and leave
//! in batches (`sendmmsg`), each from the address its request was sent to
//! (`aquatic_common::datagrams`). Nothing but a connect request is
//! answered without a valid connection id.

use std::borrow::Cow;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use aquatic_common::access_list::AccessListCache;
use aquatic_common::clients::ClientKey;
use aquatic_common::daemon::SocketWiring;
use aquatic_common::datagrams::{BATCH, Received, RecvBatch, SendBatch};
use aquatic_common::defences::Defences;
use aquatic_common::health::Heartbeat;
use aquatic_common::request_loop::InlineShard;
use aquatic_common::{CanonicalSocketAddr, IpVersion, SecondsSinceStart, ServerStartInstant};
use aquatic_udp_protocol::{
    ConnectResponse, ErrorResponse, Request, RequestParseError, Response, ScrapeRequest,
    TransactionId,
};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use crate::common::{
    IpCounters, RequestMessage, ResponseMessage, SocketWorkerStats, SwarmRequest, SwarmResponse,
    add, shard_of,
};
use crate::config::Config;
use crate::connection_id::ConnectionValidator;
use crate::swarm::AnnounceQuery;
use crate::workers::pending_scrapes::PendingScrapes;
use crate::workers::request::UdpShard;

pub const SOCKET_TOKEN: Token = Token(0);
pub const WAKER_TOKEN: Token = Token(1);

/// Packets read between flushes of request batches and answers.
const READ_BURST: usize = 256;
/// Consecutive unexpected receive errors tolerated in one readable event.
const MAX_RECV_ERRORS: usize = 16;
/// Smallest receive slot: larger than any request a client sends but the
/// largest scrapes (whose limit sets the slot when it is larger).
const MIN_DATAGRAM: usize = 2048;

/// Room for a request: a scrape of `max_scrape_torrents` hashes fits, and
/// anything real clients send. Longer datagrams are dropped and counted.
fn datagram_slot(max_scrape_torrents: usize) -> usize {
    max_scrape_torrents
        .saturating_mul(20)
        .saturating_add(16)
        .clamp(MIN_DATAGRAM, 65_536)
}

#[derive(Clone, Copy)]
enum ResponseKind {
    Connect,
    Announce,
    Scrape,
    Error,
}

impl ResponseKind {
    fn of(response: &Response) -> Self {
        match response {
            Response::Connect(_) => Self::Connect,
            Response::AnnounceIpv4(_) | Response::AnnounceIpv6(_) => Self::Announce,
            Response::Scrape(_) => Self::Scrape,
            Response::Error(_) => Self::Error,
        }
    }
}

pub struct SocketWorker {
    config: Arc<Config>,
    socket: UdpSocket,
    socket_is_ipv6: bool,
    poll: Poll,
    clock: ServerStartInstant,
    now: SecondsSinceStart,
    validator: ConnectionValidator,
    access_list: AccessListCache,
    defences: Defences,
    index: usize,
    request_senders: Vec<Sender<Vec<RequestMessage>>>,
    response_receiver: Receiver<Vec<ResponseMessage>>,
    stats: Arc<SocketWorkerStats>,
    heartbeat: Arc<Heartbeat>,
    batches: Vec<Vec<RequestMessage>>,
    pending_scrapes: PendingScrapes,
    /// Taken while its datagrams are handled.
    recv: Option<RecvBatch>,
    /// Answers waiting to be sent: up to a batch, or, while the socket is
    /// full, up to `max_pending_sends`.
    sends: SendBatch<(ResponseKind, IpVersion)>,
    /// The last send would have blocked: wait for a writable event.
    send_blocked: bool,
    /// request_workers = 0: nothing but the socket wakes this thread, so
    /// it waits in the receive itself (a blocking socket with the poll
    /// timeout as its receive timeout) rather than in epoll: one system
    /// call fewer per wake-up.
    wait_in_receive: bool,
    /// With `request_workers = 0`: the shard this worker answers itself.
    inline: Option<InlineShard<UdpShard, RequestMessage, ResponseMessage>>,
}

impl SocketWorker {
    /// The worker `wiring` starts, with the daemon's config.
    pub(crate) fn new(
        config: Arc<Config>,
        validator: ConnectionValidator,
        wiring: SocketWiring<crate::Udp>,
    ) -> anyhow::Result<Self> {
        let socket_is_ipv6 = wiring.socket.local_addr()?.is_ipv6();
        let wait_in_receive = wiring.inline_shard.is_some();
        if wait_in_receive {
            // Receives wait (up to the poll timeout); sends never do
            // (aquatic_common::datagrams sends with MSG_DONTWAIT).
            wiring.socket.set_nonblocking(false)?;
            wiring.socket.set_read_timeout(Some(Duration::from_millis(
                config.network.poll_timeout_ms.max(1),
            )))?;
        }
        let mut socket = UdpSocket::from_std(wiring.socket);
        wiring.poll.registry().register(
            &mut socket,
            SOCKET_TOKEN,
            // Writable only while a send is blocked (set_send_blocked).
            Interest::READABLE,
        )?;
        let shards = wiring.request_senders.len().max(1);
        Ok(Self {
            socket,
            socket_is_ipv6,
            poll: wiring.poll,
            now: wiring.clock.seconds_elapsed(),
            clock: wiring.clock,
            validator,
            access_list: wiring.access_list,
            defences: wiring.defences,
            index: wiring.index,
            request_senders: wiring.request_senders,
            response_receiver: wiring.response_receiver,
            stats: wiring.stats,
            heartbeat: wiring.heartbeat,
            batches: (0..shards).map(|_| Vec::new()).collect(),
            pending_scrapes: PendingScrapes::default(),
            recv: Some(RecvBatch::new(datagram_slot(
                config.protocol.max_scrape_torrents,
            ))),
            sends: SendBatch::new(socket_is_ipv6),
            send_blocked: false,
            wait_in_receive,
            inline: wiring.inline_shard,
            config,
        })
    }

    pub fn run(mut self) -> anyhow::Result<()> {
        let mut events = Events::with_capacity(64);
        let timeout = Duration::from_millis(self.config.network.poll_timeout_ms);
        let mut last_cleaning = self.now;
        loop {
            if self.wait_in_receive && !self.send_blocked {
                self.read_requests(true);
                self.now = self.clock.seconds_elapsed();
                self.heartbeat.beat(self.now);
            } else {
                // Waiting for answers from request workers, or for room
                // to send.
                let beat =
                    self.heartbeat
                        .poll(&mut self.poll, &mut events, timeout, &self.clock)?;
                let Some(now) = beat else { continue };
                self.now = now;
                let mut readable = false;
                for event in events.iter() {
                    if event.token() == SOCKET_TOKEN {
                        readable |= event.is_readable();
                        if event.is_writable() {
                            self.set_send_blocked(false);
                        }
                    }
                }
                // Answers first: their clients' next requests may then
                // arrive while this wake-up still reads.
                self.handle_responses();
                self.flush_sends();
                if readable {
                    self.read_requests(false);
                }
            }
            self.handle_responses();
            self.flush_sends();
            if let Some(inline) = self.inline.as_mut() {
                inline.housekeep(self.now);
            }
            if self.now.saturating_sub(last_cleaning) >= 10 {
                let now = self.now;
                self.pending_scrapes.expire(now);
                last_cleaning = now;
            }
        }
    }

    /// Read and handle what is waiting; with `wait`, first wait for it
    /// (up to the receive timeout).
    fn read_requests(&mut self, wait: bool) {
        let Some(mut batch) = self.recv.take() else {
            return;
        };
        let fd = self.socket.as_raw_fd();
        let mut packets = 0usize;
        let mut errors = 0usize;
        let mut wait = wait;
        loop {
            match batch.recv(fd, wait) {
                Ok(n) => {
                    wait = false;
                    for i in 0..n {
                        match batch.get(i) {
                            Some(datagram) => self.handle_packet(datagram),
                            // No sender address: nobody to answer.
                            None => add(&self.stats.get(IpVersion::V4).dropped_malformed, 1),
                        }
                    }
                    packets += n;
                    if packets >= READ_BURST {
                        packets = 0;
                        self.flush_batches();
                        self.handle_responses();
                        self.flush_sends();
                    }
                    if n < BATCH {
                        // Drained: new datagrams bring a new event.
                        break;
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) => {
                    log::debug!("socket worker {}: recvmmsg: {err}", self.index);
                    errors += 1;
                    if errors >= MAX_RECV_ERRORS {
                        break;
                    }
                }
            }
        }
        self.recv = Some(batch);
        self.flush_batches();
    }

    fn handle_packet(&mut self, datagram: Received<'_>) {
        let src = CanonicalSocketAddr::new(datagram.src);
        let local = datagram.local;
        let v = src.ip_version();
        add(
            &self.stats.get(v).bytes_received,
            datagram.payload.len() as u64,
        );
        if !self.defences.admits(src.ip()) {
            return; // refused by the IP filter (counted)
        }
        if datagram.truncated {
            // Longer than any request: not one.
            add(&self.stats.get(v).dropped_malformed, 1);
            return;
        }
        let parsed = Request::parse(datagram.payload, self.config.protocol.max_scrape_torrents);
        match parsed {
            Ok(Request::Connect(request)) => {
                add(&self.stats.get(v).requests_connect, 1);
                let connection_id = self.validator.create(self.now, src.ip());
                self.send(
                    Response::Connect(ConnectResponse {
                        transaction_id: request.transaction_id,
                        connection_id,
                    }),
                    src,
                    local,
                );
            }
            Ok(Request::Announce(request)) => {
                add(&self.stats.get(v).requests_announce, 1);
                if !self
                    .validator
                    .is_valid(self.now, request.connection_id, src.ip())
                {
                    add(&self.stats.get(v).dropped_bad_connection_id, 1);
                    return;
                }
                let client = ClientKey::of(&request.peer_id);
                self.stats.get(v).clients.count_client(client.client());
                if !self.defences.within_rate(src.ip()) {
                    return; // over its source's rate (counted)
                }
                if !self.access_list.allows(&request.info_hash) {
                    self.send_error(request.transaction_id, "info hash not allowed", src, local);
                } else if request.port == 0 {
                    // Nobody can connect to port 0: never hand it to peers.
                    self.send_error(request.transaction_id, "invalid port", src, local);
                } else {
                    let shard = shard_of(&request.info_hash, self.batches.len());
                    let query = AnnounceQuery {
                        transaction_id: request.transaction_id,
                        info_hash: request.info_hash,
                        event: request.event,
                        bytes_left: request.bytes_left,
                        peers_wanted: request.peers_wanted,
                        port: request.port,
                        client,
                    };
                    self.queue(shard, SwarmRequest::Announce(query), src, local);
                }
            }
            Ok(Request::Scrape(request)) => {
                add(&self.stats.get(v).requests_scrape, 1);
                if !self
                    .validator
                    .is_valid(self.now, request.connection_id, src.ip())
                {
                    add(&self.stats.get(v).dropped_bad_connection_id, 1);
                } else if self.defences.within_rate(src.ip()) {
                    self.split_scrape(request, src, local);
                }
            }
            Err(RequestParseError::Sendable {
                connection_id,
                transaction_id,
                message,
            }) => {
                if self.validator.is_valid(self.now, connection_id, src.ip()) {
                    self.send_error(transaction_id, message, src, local);
                } else {
                    add(&self.stats.get(v).dropped_malformed, 1);
                }
            }
            Err(RequestParseError::Unsendable { .. }) => {
                add(&self.stats.get(v).dropped_malformed, 1);
            }
        }
    }

    fn split_scrape(
        &mut self,
        request: ScrapeRequest,
        src: CanonicalSocketAddr,
        local: Option<IpAddr>,
    ) {
        let shards = self.batches.len();
        for (shard, part) in self
            .pending_scrapes
            .split(request, shards, src, local, self.now)
        {
            self.queue(shard, SwarmRequest::Scrape(part), src, local);
        }
    }

    fn queue(
        &mut self,
        shard: usize,
        request: SwarmRequest,
        src: CanonicalSocketAddr,
        local: Option<IpAddr>,
    ) {
        if let Some(batch) = self.batches.get_mut(shard) {
            batch.push(RequestMessage {
                request,
                src,
                local,
                socket_worker: self.index,
            });
        }
    }

    fn flush_batches(&mut self) {
        if let Some(mut inline) = self.inline.take() {
            // request_workers = 0: this thread owns the only shard.
            let batch = self
                .batches
                .first_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            inline.handle(self.now, batch, |response| self.handle_response(response));
            inline.publish();
            self.inline = Some(inline);
            return;
        }
        for (shard, batch) in self.batches.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let capacity = batch.len();
            let batch = std::mem::replace(batch, Vec::with_capacity(capacity));
            let Some(sender) = self.request_senders.get(shard) else {
                continue;
            };
            match sender.try_send(batch) {
                Ok(()) => {}
                Err(TrySendError::Full(batch)) | Err(TrySendError::Disconnected(batch)) => {
                    for message in batch {
                        add(
                            &self.stats.get(message.src.ip_version()).dropped_overload,
                            1,
                        );
                        if let SwarmRequest::Scrape(part) = message.request {
                            // The scrape can no longer be answered whole: do
                            // not keep it waiting for its other parts.
                            self.pending_scrapes.abandon(part.pending_id);
                        }
                    }
                }
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
        match message.response {
            SwarmResponse::AnnounceIpv4(r) => {
                self.send(Response::AnnounceIpv4(r), message.dst, message.local)
            }
            SwarmResponse::AnnounceIpv6(r) => {
                self.send(Response::AnnounceIpv6(r), message.dst, message.local)
            }
            SwarmResponse::Scrape { pending_id, stats } => {
                if let Some((response, dst, local)) =
                    self.pending_scrapes.complete(pending_id, stats)
                {
                    self.send(Response::Scrape(response), dst, local);
                }
            }
        }
    }

    fn send_error(
        &mut self,
        transaction_id: TransactionId,
        message: &'static str,
        dst: CanonicalSocketAddr,
        local: Option<IpAddr>,
    ) {
        self.send(
            Response::Error(ErrorResponse {
                transaction_id,
                message: Cow::Borrowed(message),
            }),
            dst,
            local,
        );
    }

    /// Queue an answer, sent with the next batch (at once when a batch is
    /// full); beyond `max_pending_sends` waiting it is dropped and counted.
    fn send(&mut self, response: Response, dst: CanonicalSocketAddr, local: Option<IpAddr>) {
        let v = dst.ip_version();
        if self.sends.len() >= self.config.network.max_pending_sends.max(BATCH) {
            add(&self.stats.get(v).dropped_send, 1);
            return;
        }
        let kind = ResponseKind::of(&response);
        let addr = dst.for_socket(self.socket_is_ipv6);
        self.sends
            .push(addr, local, (kind, v), |out| response.write(out));
        if self.sends.len() >= BATCH {
            self.flush_sends();
        }
    }

    /// Send the answers waiting, unless the socket was full (a writable
    /// event clears that).
    fn flush_sends(&mut self) {
        if self.send_blocked || self.sends.is_empty() {
            return;
        }
        let stats = &self.stats;
        let index = self.index;
        let outcome = self.sends.send(
            self.socket.as_raw_fd(),
            |(kind, v), bytes| count_sent(stats.get(v), kind, bytes),
            |(_, v), err| {
                log::debug!("socket worker {index}: sendmmsg: {err}");
                add(&stats.get(v).dropped_send, 1);
            },
        );
        self.set_send_blocked(outcome.blocked);
    }

    /// Ask for writable events exactly while a send waits for room (else each
    /// datagram freed reports writability: one more epoll_wait per batch).
    fn set_send_blocked(&mut self, blocked: bool) {
        if blocked == self.send_blocked {
            return;
        }
        let interest = if blocked {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if let Err(err) = self
            .poll
            .registry()
            .reregister(&mut self.socket, SOCKET_TOKEN, interest)
        {
            // The loop still turns on its poll timeout.
            log::warn!("socket worker {}: epoll interest: {err}", self.index);
        }
        self.send_blocked = blocked;
    }
}

fn count_sent(counters: &IpCounters, kind: ResponseKind, bytes: usize) {
    add(&counters.bytes_sent, bytes as u64);
    let counter = match kind {
        ResponseKind::Connect => &counters.responses_connect,
        ResponseKind::Announce => &counters.responses_announce,
        ResponseKind::Scrape => &counters.responses_scrape,
        ResponseKind::Error => &counters.responses_error,
    };
    add(counter, 1);
}
