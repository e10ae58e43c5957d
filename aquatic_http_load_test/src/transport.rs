//! One non-blocking TCP connection, plain or TLS, as the worker uses it:
//! push a request's bytes, pull response bytes, both stopping at
//! `WouldBlock`.
//!
//! A freshly opened connection is used at once: while the kernel is still
//! connecting, writes fail with `WouldBlock` (Linux returns `EAGAIN` for a
//! socket in SYN-SENT), and the writable event of the established
//! connection resumes them. A refused connection shows as an error of the
//! first write. That saves the `getsockopt` and `getpeername` calls of an
//! explicit connect check per connection.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::ClientConnection;
use rustls::pki_types::ServerName;

/// How a worker opens its connections.
#[derive(Clone)]
pub struct Connector {
    server: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl Connector {
    pub fn new(server: SocketAddr, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self {
            server,
            tls: tls.map(|config| (config, aquatic_load_test_common::tls::server_name(server))),
        }
    }

    /// Start connecting (non-blocking).
    pub fn open(&self) -> io::Result<Transport> {
        let socket = TcpStream::connect(self.server)?;
        match &self.tls {
            None => Ok(Transport::Plain(socket)),
            Some((config, name)) => {
                // The handshake is several small writes: don't let Nagle's
                // algorithm hold any of them back.
                socket.set_nodelay(true)?;
                let tls = ClientConnection::new(config.clone(), name.clone())
                    .map_err(io::Error::other)?;
                Ok(Transport::Tls(Box::new(TlsTransport { tls, socket })))
            }
        }
    }
}

pub struct TlsTransport {
    tls: ClientConnection,
    socket: TcpStream,
}

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsTransport>),
}

impl Transport {
    /// The socket, to register it with a Poll.
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(socket) => socket,
            Transport::Tls(t) => &mut t.socket,
        }
    }

    /// Write `request[*written..]`, advancing `written`. Returns whether the
    /// whole request is out (with TLS: the handshake is done and every
    /// record handed to the kernel); `Ok(false)`: call again on the next
    /// event.
    pub fn send(&mut self, request: &[u8], written: &mut usize) -> io::Result<bool> {
        match self {
            Transport::Plain(socket) => {
                while let Some(rest) = request.get(*written..).filter(|r| !r.is_empty()) {
                    match socket.write(rest) {
                        Ok(0) => return Err(ErrorKind::WriteZero.into()),
                        Ok(n) => *written += n,
                        Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(false),
                        Err(err) if err.kind() == ErrorKind::Interrupted => {}
                        Err(err) => return Err(err),
                    }
                }
                Ok(true)
            }
            Transport::Tls(t) => {
                if let Some(rest) = request.get(*written..).filter(|r| !r.is_empty()) {
                    // Buffered by rustls (sent once the handshake is done).
                    t.tls.writer().write_all(rest)?;
                    *written = request.len();
                }
                if t.tls.is_handshaking() {
                    t.read_records()?;
                }
                t.write_records()?;
                Ok(!t.tls.is_handshaking() && !t.tls.wants_write())
            }
        }
    }

    /// Read response bytes into `buf`: `Ok(0)` at the end of the
    /// connection, `WouldBlock` when nothing more is there now.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(socket) => loop {
                match socket.read(buf) {
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    result => return result,
                }
            },
            Transport::Tls(t) => loop {
                match t.tls.reader().read(buf) {
                    // Ok(0): close_notify; UnexpectedEof: closed without.
                    Err(err) if err.kind() == ErrorKind::UnexpectedEof => return Ok(0),
                    Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                    result => return result,
                }
                // No plaintext buffered: read records (WouldBlock ends it).
                let eof = t.read_records_once()?;
                t.write_records()?;
                if eof {
                    return Ok(0);
                }
            },
        }
    }

    /// Before a planned close: tell a TLS server (best effort, no waiting).
    pub fn close_notify(&mut self) {
        if let Transport::Tls(t) = self {
            t.tls.send_close_notify();
            let _ = t.write_records();
        }
    }
}

impl TlsTransport {
    /// Hand rustls' pending records to the kernel until it has none left or
    /// the socket would block.
    fn write_records(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.socket) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Read and process records until the socket would block; the end of
    /// the connection during the handshake is an error.
    fn read_records(&mut self) -> io::Result<()> {
        loop {
            match self.read_records_once() {
                Ok(false) => {}
                Ok(true) => return Err(ErrorKind::UnexpectedEof.into()),
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(err) => return Err(err),
            }
        }
    }

    /// One `read_tls` and processing what it read. Returns whether the
    /// connection ended; `WouldBlock` when nothing was there.
    fn read_records_once(&mut self) -> io::Result<bool> {
        let n = loop {
            match self.tls.read_tls(&mut self.socket) {
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                result => break result?,
            }
        };
        self.tls
            .process_new_packets()
            .map_err(|err| io::Error::new(ErrorKind::InvalidData, err))?;
        Ok(n == 0)
    }
}
