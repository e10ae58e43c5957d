//! Connections coming and going: accepting within the connection bounds,
//! the periodic sweep (pings, idle and slow-upgrade timeouts), and closing,
//! which tells the request workers which peers leave.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use aquatic_common::bind;
use aquatic_common::defences::Defences;
use aquatic_common::request_loop::shard_of;
use aquatic_common::source::Admission;
use aquatic_common::{InfoHash, IpVersion, PeerId};
use mio::net::TcpStream;
use mio::{Interest, Token};
use tungstenite::Message;

use super::session::{Due, Session, Timers};
use super::stream::Stream;
use super::upgrade::Handshake;
use super::{Connection, FIRST_CONNECTION_TOKEN, Outcome, Phase, SocketWorker};
use crate::common::{CloseReason, ConnectionRef, RequestMessage, SwarmRequest, add};

impl SocketWorker {
    pub(super) fn accept(&mut self) {
        self.accept_pending = bind::accept_round(self, Self::listener, Self::admit);
    }

    fn listener(&mut self) -> (&mio::net::TcpListener, &mut Defences) {
        (&self.listener, &mut self.defences)
    }

    /// Take an accepted connection in, unless a bound refuses it (dropping
    /// the stream closes it), and read the upgrade request that usually
    /// came with it.
    fn admit(&mut self, mut stream: TcpStream, addr: SocketAddr) {
        let counters = &self.stats;
        let counted_source = match self.budget.admit(self.connections.len(), addr.ip()) {
            Admission::Admitted(counted) => counted,
            Admission::Full => return add(&counters.tcp.refused, 1),
            Admission::SourceShare => return add(&counters.tcp.refused_source, 1),
        };
        // The swarms' source: the connection's own address until a trusted
        // proxy's upgrade request names the client.
        let source = self.config.source_budgets.prefixes().of(addr.ip());
        let entry = self.connections.vacant_entry();
        let key = entry.key();
        let token = Token(key + FIRST_CONNECTION_TOKEN);
        if let Err(err) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("cannot register connection: {err}");
            self.budget.release(counted_source);
            return;
        }
        let stream = match &self.tls {
            Some(shared) => match rustls::ServerConnection::new(shared.load_full()) {
                Ok(tls) => Stream::Tls(Box::new(rustls::StreamOwned::new(tls, stream))),
                Err(err) => {
                    log::warn!("cannot start TLS connection: {err}");
                    self.budget.release(counted_source);
                    return;
                }
            },
            None => Stream::Plain(stream),
        };
        self.next_generation += 1;
        entry.insert(Connection {
            phase: Phase::Handshake(stream, Box::new(Handshake::new(addr.ip()))),
            generation: self.next_generation,
            ip_version: IpVersion::of(addr.ip()),
            client_ip: addr.ip().to_canonical(),
            source,
            counted_source,
            session: Session::new(self.now),
            backlogged: false,
            dirty: false,
        });
        add(&counters.tcp.accepted, 1);
        self.count_open();
        // The upgrade request usually arrives with the connection: read it
        // now rather than on the next event.
        if let Outcome::Close(reason) = self.on_event(key) {
            self.close(key, reason);
        }
    }

    fn count_open(&self) {
        self.stats
            .tcp
            .open
            .store(self.connections.len(), Ordering::Relaxed);
    }

    pub(super) fn connection_ref(&self, key: usize, generation: u64) -> ConnectionRef {
        ConnectionRef {
            socket_worker: u32::try_from(self.index).unwrap_or(u32::MAX),
            token: u32::try_from(key).unwrap_or(u32::MAX),
            generation,
        }
    }

    /// Close a connection; its peers leave their swarms.
    pub(super) fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(connection) = self.connections.try_remove(key) else {
            return;
        };
        self.budget.release(connection.counted_source);
        self.stats.count_close(reason);
        self.count_open();
        let from = self.connection_ref(key, connection.generation);
        let shards = self.batches.len();
        let (torrents, sent_offers) = connection.session.leave();
        let mut parts: Vec<Vec<(InfoHash, PeerId)>> = (0..shards).map(|_| Vec::new()).collect();
        for (hash, peer_id) in torrents {
            if let Some(part) = parts.get_mut(shard_of(&hash, shards)) {
                part.push((hash, peer_id));
            }
        }
        for (peers, batch) in parts.into_iter().zip(self.batches.iter_mut()) {
            // A shard may hold offers of this connection in torrents it
            // has left since: every shard hears of the close then.
            if peers.is_empty() && !sent_offers {
                continue;
            }
            batch.push(RequestMessage {
                from,
                ip_version: connection.ip_version,
                source: connection.source,
                request: SwarmRequest::ConnectionClosed { peers },
            });
        }
        // Dropping the stream closes the socket and removes it from epoll.
    }

    /// Ping connections gone quiet; close those quiet for too long and
    /// upgrades that take too long.
    pub(super) fn sweep(&mut self) {
        let timers = Timers {
            ping_interval: self.config.network.ping_interval,
            idle_timeout: self.config.network.connection_idle_timeout,
        };
        let now = self.now;
        let mut expired = Vec::new();
        for (key, connection) in self.connections.iter_mut() {
            let upgraded = matches!(connection.phase, Phase::Open(_));
            match connection.session.due(now, timers, upgraded) {
                Due::Expire => expired.push(key),
                Due::Ping => {
                    if let Phase::Open(ws) = &mut connection.phase {
                        // A full write buffer shows at the flush.
                        let _ = ws.write(Message::Ping(Default::default()));
                    }
                    if !connection.dirty {
                        connection.dirty = true;
                        self.dirty.push(key);
                    }
                }
                Due::Nothing => {}
            }
        }
        for key in expired {
            self.close(key, CloseReason::IdleTimeout);
        }
    }
}
