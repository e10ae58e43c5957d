//! Connections coming and going: accepting within the connection bounds
//! (and reading the request that came with the connection), registering
//! with the poll at the end of the round, closing, and the idle sweep.

use std::sync::atomic::Ordering;

use aquatic_common::CanonicalSocketAddr;
use aquatic_common::bind;
use aquatic_common::defences::Defences;
use aquatic_common::source::Admission;
use mio::Token;
use mio::net::TcpStream;

use super::connection::Connection;
use super::io::interest;
use super::{Client, FIRST_CONNECTION_TOKEN, Outcome, SocketWorker};
use crate::common::add;
use crate::config::KeepAlive;

impl SocketWorker {
    pub(super) fn accept(&mut self) {
        self.accept_pending = bind::accept_round(self, Self::listener, Self::admit);
    }

    fn listener(&mut self) -> (&mio::net::TcpListener, &mut Defences) {
        (&self.listener, &mut self.defences)
    }

    /// Take an accepted connection in, unless a bound refuses it (dropping
    /// the stream closes it), and read the request that usually came with
    /// it.
    fn admit(&mut self, stream: TcpStream, addr: std::net::SocketAddr) {
        let peer_addr = CanonicalSocketAddr::new(addr);
        let counters = &self.stats;
        let source = match self.budget.admit(self.connections.len(), peer_addr.ip()) {
            Admission::Admitted(counted) => counted,
            Admission::Full => return add(&counters.tcp.refused, 1),
            Admission::SourceShare => return add(&counters.tcp.refused_source, 1),
        };
        let tls = match &self.tls {
            Some(shared) => match rustls::ServerConnection::new(shared.load_full()) {
                Ok(tls) => Some(tls),
                Err(err) => {
                    log::warn!("cannot start TLS connection: {err}");
                    self.budget.release(source);
                    return;
                }
            },
            None => None,
        };
        let key = self.connections.insert(Client {
            stream,
            tls,
            peer_addr,
            source,
            wants_writable: false,
            registered: false,
            http: Connection::new(
                self.now,
                self.config.network.connection_idle_timeout,
                // A trusted proxy pools its connections to us.
                if source.is_none() {
                    KeepAlive::Always
                } else {
                    self.config.network.keep_alive
                },
            ),
        });
        self.unregistered.push(key);
        add(&counters.tcp.accepted, 1);
        counters
            .tcp
            .open
            .store(self.connections.len(), Ordering::Relaxed);
        // Clients send their request right after connecting: it is usually
        // here already, so read it now instead of waking up again for it
        // (the socket is registered at the end of this round, when
        // edge-triggered epoll reports data, or a close, that came
        // meanwhile at once).
        if let Outcome::Close = self.on_readable(key, false) {
            self.close(key);
        }
    }

    /// Register the connections accepted in this round that are still
    /// open, for the events they wait for.
    pub(super) fn register_new(&mut self) {
        for key in std::mem::take(&mut self.unregistered) {
            let Some(client) = self.connections.get_mut(key) else {
                continue;
            };
            if client.registered {
                // Closed, and its slot reused by a later accept: listed twice.
                continue;
            }
            let token = Token(key + FIRST_CONNECTION_TOKEN);
            let interest = interest(client.wants_writable);
            match self
                .poll
                .registry()
                .register(&mut client.stream, token, interest)
            {
                Ok(()) => client.registered = true,
                Err(err) => {
                    log::warn!("cannot register connection: {err}");
                    self.close(key);
                }
            }
        }
    }

    pub(super) fn close(&mut self, key: usize) {
        // Closing the socket removes it from epoll: no deregister call.
        if let Some(client) = self.connections.try_remove(key) {
            self.budget.release(client.source);
        }
        self.stats
            .tcp
            .open
            .store(self.connections.len(), Ordering::Relaxed);
    }

    pub(super) fn close_expired(&mut self) {
        let now = self.now;
        let expired: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, c)| c.http.expired(now))
            .map(|(key, _)| key)
            .collect();
        for key in expired {
            self.close(key);
        }
    }
}
