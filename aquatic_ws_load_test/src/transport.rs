//! One non-blocking connection to the tracker, plain TCP or TLS, as a
//! `Read + Write` stream for tungstenite, and the start of its WebSocket
//! handshake.
//!
//! Every call stops at `WouldBlock`; the worker retries on the socket's
//! next event. A fresh connection is used at once: while the kernel is
//! still connecting, writes fail with `WouldBlock` (Linux returns `EAGAIN`
//! for a socket in SYN-SENT) and the writable event of the established
//! connection resumes them; a refused connection is an error of the first
//! write. With TLS, rustls' `StreamOwned` drives the TLS handshake inside
//! those reads and writes, and returns `WouldBlock` while the socket would
//! block (before it takes new plaintext, everything it had is written out,
//! so it never answers a write with 0 bytes).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::MidHandshake;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::protocol::WebSocketConfig;

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// The socket, to register it with a Poll.
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(socket) => socket,
            Stream::Tls(tls) => &mut tls.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

pub type Handshake = MidHandshake<ClientHandshake<Stream>>;

/// How a worker opens its connections.
#[derive(Clone)]
pub struct Connector {
    server: SocketAddr,
    /// `ws://ADDRESS/` or `wss://ADDRESS/`.
    url: String,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    websocket: WebSocketConfig,
}

impl Connector {
    pub fn new(server: SocketAddr, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        Self {
            server,
            url: format!("{scheme}://{server}/"),
            tls: tls.map(|config| (config, aquatic_load_test_common::tls::server_name(server))),
            websocket: websocket_config(),
        }
    }

    /// Start connecting (non-blocking).
    pub fn open(&self) -> io::Result<Stream> {
        let socket = TcpStream::connect(self.server)?;
        // Requests are single small messages waiting for their replies:
        // don't let Nagle's algorithm hold any back.
        socket.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Stream::Plain(socket)),
            Some((config, name)) => {
                let tls = ClientConnection::new(config.clone(), name.clone())
                    .map_err(io::Error::other)?;
                Ok(Stream::Tls(Box::new(StreamOwned::new(tls, socket))))
            }
        }
    }

    /// The WebSocket handshake on `stream`, not yet started: its first
    /// `handshake()` call writes the upgrade request.
    pub fn handshake(&self, stream: Stream) -> tungstenite::Result<Handshake> {
        let request = self.url.as_str().into_client_request()?;
        ClientHandshake::start(stream, request, Some(self.websocket))
    }
}

/// Buffers sized for many connections: a 16 KiB read buffer (tungstenite's
/// default of 128 KiB is allocated up front for every connection) holds
/// several relayed offers; what a connection has not yet written may grow
/// to 1 MiB (a tracker not reading that much is broken, and the write then
/// fails). Messages from the tracker may be as large as 1 MiB.
fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(64 * 1024)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let plain = Connector::new("127.0.0.1:3000".parse().unwrap(), None);
        assert_eq!(plain.url, "ws://127.0.0.1:3000/");
        let tls = aquatic_load_test_common::tls::client_config(true).unwrap();
        let secure = Connector::new("[::1]:443".parse().unwrap(), Some(tls));
        assert_eq!(secure.url, "wss://[::1]:443/");
        assert!(secure.url.as_str().into_client_request().is_ok());
    }
}
