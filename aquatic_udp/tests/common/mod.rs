//! Test harness: start the real aquatic_udp binary with a generated config
//! on a loopback address (port 0), learn its port from the log, and stop it
//! by PID when dropped. A small client speaks BEP 15 through
//! aquatic_udp_protocol.

#![allow(dead_code)] // each test binary uses a different part

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use aquatic_udp_protocol::*;

pub use aquatic_test_support::Daemon as Tracker;

const BINARY: &str = env!("CARGO_BIN_EXE_aquatic_udp");

/// Start with `extra` (top-level keys first, then any sections but
/// [network]) on `ip`:0.
pub fn start(ip: &str, extra: &str) -> Tracker {
    start_in(tempfile::tempdir().unwrap(), ip, extra, "")
        .unwrap_or_else(|log| panic!("tracker did not start: {log}"))
}

/// As `start`, in `dir`, with extra keys for [network]; the log so far if
/// it never starts listening.
pub fn start_in(
    dir: tempfile::TempDir,
    ip: &str,
    extra: &str,
    network_extra: &str,
) -> Result<Tracker, String> {
    let config = format!(
        "log_level = \"info\"\n{extra}\n[network]\naddress = \"{ip}:0\"\nsocket_recv_buffer_size = 0\n{network_extra}\n"
    );
    Tracker::start(BINARY, dir, &config)
}

pub fn run_to_exit(config: &str) -> (i32, String) {
    aquatic_test_support::run_to_exit(BINARY, config)
}

pub struct Client {
    pub socket: UdpSocket,
    pub tracker: SocketAddr,
    pub connection_id: ConnectionId,
    next_transaction: i32,
    /// The last request sent with `send`, for `recv` to send again.
    last_request: std::cell::RefCell<Vec<u8>>,
}

impl Client {
    pub fn new(tracker: SocketAddr) -> Client {
        let from = if tracker.is_ipv4() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            IpAddr::from(Ipv6Addr::LOCALHOST)
        };
        Client::from(from, tracker)
    }

    /// A client on the local address `from`: another source.
    pub fn from(from: IpAddr, tracker: SocketAddr) -> Client {
        let socket = UdpSocket::bind(SocketAddr::new(from, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(1000)))
            .unwrap();
        Client {
            socket,
            tracker,
            connection_id: ConnectionId(0),
            next_transaction: 1,
            last_request: Default::default(),
        }
    }

    pub fn connected(tracker: SocketAddr) -> Client {
        let mut c = Client::new(tracker);
        c.connect();
        c
    }

    pub fn transaction(&mut self) -> TransactionId {
        self.next_transaction += 1;
        TransactionId(self.next_transaction)
    }

    pub fn send_raw(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.tracker).unwrap();
    }

    pub fn send(&self, request: &Request) {
        let mut buf = Vec::new();
        request.write(&mut buf);
        self.send_raw(&buf);
        *self.last_request.borrow_mut() = buf;
    }

    pub fn recv_raw(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = vec![0u8; 65536];
        match self.socket.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }

    /// The answer to the last `send`. Like a BEP 15 client, it sends the
    /// request once more when no answer comes within 1.5 s: on a loaded
    /// machine the kernel may drop a datagram from a full socket queue
    /// (`RcvbufErrors`), which is not what these tests are about.
    pub fn recv(&self) -> Response {
        let bytes = self
            .recv_raw(Duration::from_millis(1500))
            .or_else(|| {
                self.send_raw(&self.last_request.borrow());
                self.recv_raw(Duration::from_secs(3))
            })
            .expect("no response from tracker (the request sent twice)");
        Response::parse(&bytes, self.tracker.is_ipv6()).unwrap()
    }

    pub fn connect(&mut self) {
        let transaction_id = self.transaction();
        self.send(&Request::Connect(ConnectRequest { transaction_id }));
        match self.recv() {
            Response::Connect(r) => {
                assert_eq!(r.transaction_id, transaction_id);
                self.connection_id = r.connection_id;
            }
            other => panic!("expected connect response, got {other:?}"),
        }
    }

    pub fn announce_request(
        &mut self,
        info_hash: InfoHash,
        port: u16,
        left: i64,
        event: AnnounceEvent,
    ) -> AnnounceRequest {
        AnnounceRequest {
            connection_id: self.connection_id,
            transaction_id: self.transaction(),
            info_hash,
            peer_id: PeerId([port as u8; 20]),
            bytes_downloaded: 0,
            bytes_left: left,
            bytes_uploaded: 0,
            event,
            ip_address: None,
            key: 0,
            peers_wanted: -1,
            port,
            url_data: b"/announce".to_vec(),
        }
    }

    pub fn announce(
        &mut self,
        info_hash: InfoHash,
        port: u16,
        left: i64,
        event: AnnounceEvent,
    ) -> Response {
        let request = self.announce_request(info_hash, port, left, event);
        self.send(&Request::Announce(request.clone()));
        let response = self.recv();
        let tid = match &response {
            Response::AnnounceIpv4(r) => r.transaction_id,
            Response::AnnounceIpv6(r) => r.transaction_id,
            Response::Error(r) => r.transaction_id,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(tid, request.transaction_id);
        response
    }

    pub fn scrape(&mut self, info_hashes: Vec<InfoHash>) -> Response {
        let transaction_id = self.transaction();
        self.send(&Request::Scrape(ScrapeRequest {
            connection_id: self.connection_id,
            transaction_id,
            info_hashes,
        }));
        self.recv()
    }
}

/// (seeders, leechers, peers) of an IPv4 announce response.
pub fn v4(response: Response) -> (i32, i32, Vec<ResponsePeer<Ipv4Addr>>) {
    match response {
        Response::AnnounceIpv4(r) => (r.seeders, r.leechers, r.peers),
        other => panic!("expected IPv4 announce response, got {other:?}"),
    }
}

pub fn scrape_stats(response: Response) -> Vec<(i32, i32, i32)> {
    match response {
        Response::Scrape(r) => r
            .torrent_stats
            .iter()
            .map(|s| (s.seeders, s.completed, s.leechers))
            .collect(),
        other => panic!("expected scrape response, got {other:?}"),
    }
}

pub fn hash(n: u8) -> InfoHash {
    InfoHash([n; 20])
}
