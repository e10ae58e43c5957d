//! A worker thread: one mio Poll and a set of connected UDP sockets, each
//! with exactly one request in flight (closed loop), optionally paced by a
//! token bucket (`max_requests_per_second`).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use aquatic_udp_protocol::{
    ACTION_ANNOUNCE, ACTION_CONNECT, ACTION_ERROR, ACTION_SCRAPE, AnnounceEvent, AnnounceRequest,
    ConnectRequest, ConnectionId, InfoHash, Request, ScrapeRequest, TransactionId,
};
use mio::event::Event;
use mio::net::UdpSocket;
use mio::{Interest, Token};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use aquatic_load_test_common::run::{PollWorker, WorkerBase, run_worker};
use aquatic_load_test_common::torrents::{RequestMix, random_peer_id};

use crate::config::Config;
use crate::stats::{Counts, SharedCounts};

/// BEP 15: a client may use a connection id for up to one minute.
const CONNECTION_ID_MAX_AGE: Duration = Duration::from_secs(60);

/// Large enough for any UDP datagram.
const RECV_BUFFER_LEN: usize = 65_536;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Connect,
    Announce,
    Scrape,
}

const KINDS: [Kind; 3] = [Kind::Connect, Kind::Announce, Kind::Scrape];

#[derive(Clone, Copy, Debug)]
struct InFlight {
    transaction_id: TransactionId,
    kind: Kind,
    sent_at: Instant,
    /// Info hashes in a scrape request (its answer has at most this many
    /// entries).
    scrape_hashes: usize,
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Nothing sent yet, or the last send would have blocked (the send
    /// buffer was full, which one request per socket practically never
    /// causes): send on the next sweep. Sockets are not registered for
    /// writability, which would wake the poll after every send.
    Idle,
    AwaitingResponse(InFlight),
    /// The last send failed: try again at this time.
    Backoff(Instant),
    /// Ready to send, but the rate cap does not allow it yet: in the
    /// worker's queue of throttled sockets.
    Throttled,
}

struct SocketState {
    socket: UdpSocket,
    /// Connection id and when to stop using it.
    connection: Option<(ConnectionId, Instant)>,
    phase: Phase,
}

/// Builds requests from the config's weights and torrent distribution.
struct RequestGenerator {
    mix: RequestMix<Kind>,
    peers_wanted: i32,
    number_of_peers: u64,
}

impl RequestGenerator {
    fn new(config: &Config) -> anyhow::Result<Self> {
        let r = &config.requests;
        let weights = [r.weight_connect, r.weight_announce, r.weight_scrape];
        Ok(Self {
            mix: config.request_mix(&KINDS, &weights)?,
            peers_wanted: r.peers_wanted,
            number_of_peers: r.number_of_peers,
        })
    }

    fn kind(&self, rng: &mut SmallRng) -> Kind {
        self.mix.kind(rng)
    }

    fn announce(
        &self,
        rng: &mut SmallRng,
        connection_id: ConnectionId,
        transaction_id: TransactionId,
    ) -> AnnounceRequest {
        // A peer of the population: the same one whenever it is picked.
        let (peer_id, seeder, info_hash, port) = if self.number_of_peers > 0 {
            let k = rng.random_range(0..self.number_of_peers);
            let mut peer_rng =
                SmallRng::seed_from_u64(k ^ self.mix.info_hash_seed().rotate_left(17));
            (
                random_peer_id(&mut peer_rng),
                self.mix.seeder(&mut peer_rng),
                self.mix.info_hash(&mut peer_rng),
                1024 + (k % u64::from(u16::MAX - 1023)) as u16,
            )
        } else {
            (
                random_peer_id(rng),
                self.mix.seeder(rng),
                self.mix.info_hash(rng),
                rng.random_range(1024..=u16::MAX),
            )
        };
        // Mostly regular announces, sometimes started / completed.
        let event = match rng.random_range(0u8..100) {
            0..=84 => AnnounceEvent::None,
            85..=94 => AnnounceEvent::Started,
            _ => AnnounceEvent::Completed,
        };
        AnnounceRequest {
            connection_id,
            transaction_id,
            info_hash,
            peer_id,
            bytes_downloaded: rng.random_range(0..1 << 30),
            bytes_left: if seeder {
                0
            } else {
                rng.random_range(1..1 << 30)
            },
            bytes_uploaded: rng.random_range(0..1 << 30),
            event,
            ip_address: None,
            key: rng.random(),
            peers_wanted: self.peers_wanted,
            port,
            // Empty: no allocation.
            url_data: Vec::new(),
        }
    }

    /// Refill `hashes` with 1 to scrape_max_torrents info hashes.
    fn scrape_hashes(&self, rng: &mut SmallRng, hashes: &mut Vec<InfoHash>) {
        hashes.clear();
        let n = self.mix.scrape_len(rng);
        hashes.extend((0..n).map(|_| self.mix.info_hash(rng)));
    }
}

/// A worker, set up (sockets bound, connected and registered) but not yet
/// running. Built on the caller's thread so that setup errors surface
/// before the test starts.
pub struct Worker {
    base: WorkerBase<Counts>,
    sockets: Vec<SocketState>,
    /// Width of a peer in announce responses: 6 (IPv4) or 18 (IPv6).
    peer_len: usize,
    rng: SmallRng,
    generator: RequestGenerator,
    send_buffer: Vec<u8>,
    recv_buffer: Vec<u8>,
    /// Reused by every scrape request.
    scrape_hashes: Vec<InfoHash>,
}

impl Worker {
    pub fn new(
        config: &Config,
        index: usize,
        shared: Arc<SharedCounts>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let server = config.server_address;
        let base = config.worker_base(shared, stop)?;
        // Unspecified local address of the server's family: the kernel picks
        // the source address that routes to the server (127.0.0.1 / ::1 for
        // a local tracker) and an ephemeral port.
        let local: SocketAddr = if server.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let mut sockets = Vec::with_capacity(config.sockets_per_worker);
        for i in 0..config.sockets_per_worker {
            let mut socket = UdpSocket::bind(local)
                .with_context(|| format!("worker {index}: cannot bind UDP socket to {local}"))?;
            socket.connect(server).with_context(|| {
                format!("worker {index}: cannot connect UDP socket to {server}")
            })?;
            base.poll
                .registry()
                .register(&mut socket, Token(i), Interest::READABLE)
                .with_context(|| format!("worker {index}: cannot register UDP socket"))?;
            sockets.push(SocketState {
                socket,
                connection: None,
                phase: Phase::Idle,
            });
        }
        Ok(Self {
            base,
            sockets,
            peer_len: if server.is_ipv4() { 6 } else { 18 },
            rng: SmallRng::from_rng(&mut rand::rng()),
            generator: RequestGenerator::new(config)?,
            send_buffer: Vec::with_capacity(RECV_BUFFER_LEN),
            recv_buffer: vec![0; RECV_BUFFER_LEN],
            scrape_hashes: Vec::with_capacity(config.requests.scrape_max_torrents),
        })
    }

    /// Run until the stop flag is set. Counts go to the shared totals once
    /// per poll round.
    pub fn run(mut self) -> anyhow::Result<()> {
        let slots = self.sockets.len();
        run_worker(&mut self, slots)
    }

    /// Read socket `i` until the answer to its request in flight has been
    /// handled (and the next request sent) or nothing is left to read.
    ///
    /// Not draining to `WouldBlock` after the answer saves a syscall per
    /// response. It is safe with Linux's edge-triggered epoll for UDP: every
    /// datagram that arrives marks the socket ready again, so the next
    /// answer (or anything queued behind this one) brings a new event. The
    /// sweep reads a socket once more before it counts a timeout, in case
    /// an event ever went missing.
    fn read_socket(&mut self, i: usize, now: Instant) {
        let mut errors = 0;
        loop {
            match self.sockets[i].socket.recv(&mut self.recv_buffer) {
                Ok(len) => {
                    if self.handle_response(i, len, now) {
                        break;
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    // E.g. ECONNREFUSED after an ICMP port unreachable: the
                    // request is lost and will time out.
                    self.base.counts.socket_errors += 1;
                    errors += 1;
                    if errors >= 8 {
                        break;
                    }
                }
            }
        }
    }

    /// Check and count the datagram of `len` bytes in the receive buffer,
    /// then send socket `i`'s next request. Only the parts the load tester
    /// needs are decoded (action, transaction id, connection id), and the
    /// length is checked against the action: nothing is allocated. Returns
    /// whether it was the answer to the request in flight.
    fn handle_response(&mut self, i: usize, len: usize, now: Instant) -> bool {
        let bytes = &self.recv_buffer[..len];
        let state = &mut self.sockets[i];
        let Phase::AwaitingResponse(in_flight) = state.phase else {
            self.base.counts.stale += 1;
            return false;
        };
        let (Some(action), Some(transaction_id)) = (read_i32(bytes, 0), read_i32(bytes, 4)) else {
            self.base.counts.stale += 1;
            return false;
        };
        if TransactionId(transaction_id) != in_flight.transaction_id {
            self.base.counts.stale += 1;
            return false;
        }
        state.phase = Phase::Idle;
        let body = len - 8;
        match (action, in_flight.kind) {
            (ACTION_CONNECT, Kind::Connect) => match read_i64(bytes, 8) {
                Some(id) => {
                    self.base.counts.connect += 1;
                    state.connection = Some((ConnectionId(id), now + CONNECTION_ID_MAX_AGE));
                }
                None => {
                    self.base.counts.invalid += 1;
                }
            },
            (ACTION_ANNOUNCE, Kind::Announce) if body >= 12 && (body - 12) % self.peer_len == 0 => {
                self.base.counts.announce += 1;
            }
            (ACTION_SCRAPE, Kind::Scrape)
                if body % 12 == 0 && body / 12 <= in_flight.scrape_hashes =>
            {
                self.base.counts.scrape += 1;
            }
            (ACTION_ERROR, _) => {
                self.base.counts.error += 1;
                // Most likely the connection id is no longer accepted.
                state.connection = None;
            }
            _ => {
                self.base.counts.invalid += 1;
                state.connection = None;
            }
        }
        self.start_when_allowed(i, now);
        true
    }
}

impl PollWorker<Counts> for Worker {
    fn base(&mut self) -> &mut WorkerBase<Counts> {
        &mut self.base
    }

    /// Build and send socket `i`'s next request: a connect while it has no
    /// valid connection id, otherwise a request of a kind drawn by weight.
    fn start(&mut self, i: usize, now: Instant) {
        let state = &mut self.sockets[i];
        let connection_id = match state.connection {
            Some((id, valid_until)) if now < valid_until => Some(id),
            _ => None,
        };
        let kind = match connection_id {
            Some(_) => self.generator.kind(&mut self.rng),
            None => Kind::Connect,
        };
        let transaction_id = TransactionId(self.rng.random());
        let connection_id = connection_id.unwrap_or_default();

        self.send_buffer.clear();
        let mut scrape_hashes = 0;
        match kind {
            Kind::Connect => {
                Request::Connect(ConnectRequest { transaction_id }).write(&mut self.send_buffer);
            }
            Kind::Announce => {
                let request = self
                    .generator
                    .announce(&mut self.rng, connection_id, transaction_id);
                Request::Announce(request).write(&mut self.send_buffer);
            }
            Kind::Scrape => {
                let mut info_hashes = std::mem::take(&mut self.scrape_hashes);
                self.generator
                    .scrape_hashes(&mut self.rng, &mut info_hashes);
                scrape_hashes = info_hashes.len();
                let request = Request::Scrape(ScrapeRequest {
                    connection_id,
                    transaction_id,
                    info_hashes,
                });
                request.write(&mut self.send_buffer);
                // Hand the vector back for the next scrape.
                if let Request::Scrape(scrape) = request {
                    self.scrape_hashes = scrape.info_hashes;
                }
            }
        }

        state.phase = loop {
            match state.socket.send(&self.send_buffer) {
                Ok(_) => {
                    self.base.counts.requests_sent += 1;
                    break Phase::AwaitingResponse(InFlight {
                        transaction_id,
                        kind,
                        sent_at: now,
                        scrape_hashes,
                    });
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                // Retried on the next sweep.
                Err(err) if err.kind() == ErrorKind::WouldBlock => break Phase::Idle,
                Err(_) => {
                    // E.g. ECONNREFUSED from an earlier ICMP port
                    // unreachable: not sent; try again after the timeout.
                    self.base.counts.socket_errors += 1;
                    break Phase::Backoff(now + self.base.request_timeout);
                }
            }
        };
    }

    fn wait_for_token(&mut self, i: usize) {
        self.sockets[i].phase = Phase::Throttled;
    }

    fn event(&mut self, event: &Event, now: Instant) {
        let i = event.token().0;
        if i < self.sockets.len() {
            self.read_socket(i, now);
        }
    }

    /// Time out unanswered requests and retry failed sends.
    fn sweep(&mut self, now: Instant) {
        for i in 0..self.sockets.len() {
            if let Phase::AwaitingResponse(in_flight) = self.sockets[i].phase
                && now.saturating_duration_since(in_flight.sent_at) >= self.base.request_timeout
            {
                // Last chance for an answer that is there but was not
                // signalled.
                self.read_socket(i, now);
            }
            let state = &mut self.sockets[i];
            let due = match state.phase {
                Phase::AwaitingResponse(in_flight) => {
                    if now.saturating_duration_since(in_flight.sent_at) >= self.base.request_timeout
                    {
                        self.base.counts.timeouts += 1;
                        // The request (or its answer) was lost, or the
                        // tracker dropped it for a connection id it no
                        // longer accepts: connect anew.
                        state.connection = None;
                        true
                    } else {
                        false
                    }
                }
                Phase::Backoff(until) => now >= until,
                Phase::Idle => true,
                Phase::Throttled => false,
            };
            if due {
                self.start_when_allowed(i, now);
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.sockets
            .iter()
            .filter(|s| matches!(s.phase, Phase::AwaitingResponse(_)))
            .count()
    }
}

fn read_i32(bytes: &[u8], at: usize) -> Option<i32> {
    let b = bytes.get(at..at + 4)?;
    Some(i32::from_be_bytes(b.try_into().ok()?))
}

fn read_i64(bytes: &[u8], at: usize) -> Option<i64> {
    let b = bytes.get(at..at + 8)?;
    Some(i64::from_be_bytes(b.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RequestConfig;
    use crate::config::shared_config_tests::config_with;
    use aquatic_load_test_common::testing;
    use aquatic_udp_protocol::RequestParseError;

    /// The generator of the default config with `edit`'s request config.
    fn generator(edit: impl FnOnce(&mut RequestConfig)) -> RequestGenerator {
        RequestGenerator::new(&config_with(edit)).unwrap()
    }

    #[test]
    fn generated_requests_parse_back() {
        let g = generator(|r| (r.number_of_torrents, r.scrape_max_torrents) = (100, 5));
        let mut rng = SmallRng::seed_from_u64(9);
        let torrents = testing::first_info_hashes(100);
        let mut buffer = Vec::new();
        for _ in 0..1000 {
            let request = g.announce(&mut rng, ConnectionId(5), TransactionId(6));
            buffer.clear();
            Request::Announce(request.clone()).write(&mut buffer);
            assert_eq!(buffer.len(), 98);
            let parsed = Request::parse(&buffer, 100);
            assert_eq!(parsed, Ok(Request::Announce(request.clone())));
            assert!(torrents.contains(&request.info_hash));
            assert_eq!(request.peers_wanted, 30);
            assert!(request.port >= 1024);
        }
        let mut hashes = Vec::new();
        for _ in 0..100 {
            g.scrape_hashes(&mut rng, &mut hashes);
            testing::check_scrape(&hashes, 5, &torrents);
        }
        assert!(matches!(
            Request::parse(&[0; 4], 1),
            Err(RequestParseError::Unsendable { .. })
        ));
    }

    #[test]
    fn a_population_of_peers_announces_again_and_again() {
        let g = generator(|r| r.number_of_peers = 3);
        let mut rng = SmallRng::seed_from_u64(3);
        let mut peers = std::collections::HashMap::new();
        for _ in 0..300 {
            let a = g.announce(&mut rng, ConnectionId(1), TransactionId(1));
            let seen = peers
                .entry(a.port)
                .or_insert((a.peer_id, a.info_hash, a.bytes_left == 0));
            // The same port is the same peer: same id, torrent and status.
            assert_eq!(*seen, (a.peer_id, a.info_hash, a.bytes_left == 0));
        }
        assert_eq!(peers.len(), 3);
    }

    #[test]
    fn kinds_follow_weights() {
        let g = generator(|r| (r.weight_connect, r.weight_announce, r.weight_scrape) = (0, 1, 0));
        let mut rng = SmallRng::seed_from_u64(1);
        assert!((0..1000).all(|_| g.kind(&mut rng) == Kind::Announce));
    }

    #[test]
    fn seeder_probability_sets_left() {
        let g = generator(|r| r.peer_seeder_probability = 1.0);
        let mut rng = SmallRng::seed_from_u64(2);
        let a = g.announce(&mut rng, ConnectionId(1), TransactionId(1));
        assert_eq!(a.bytes_left, 0);
        let g = generator(|r| r.peer_seeder_probability = 0.0);
        let a = g.announce(&mut rng, ConnectionId(1), TransactionId(1));
        assert!(a.bytes_left > 0);
    }
}
