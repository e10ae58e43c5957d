//! A connection's socket side: reading into and writing from its
//! [`super::connection::Connection`], in plain TCP or through TLS.

use std::io::{ErrorKind, Read};

use mio::Interest;
use mio::net::TcpStream;

use super::connection::ReadResult;

/// The events a connection waits for: writable ones only while a write
/// waits for room.
pub fn interest(wants_writable: bool) -> Interest {
    if wants_writable {
        Interest::READABLE | Interest::WRITABLE
    } else {
        Interest::READABLE
    }
}

/// Read up to `limit` bytes into `buf`. Unless `to_the_end`, a short read
/// ends it: with edge-triggered readiness new data brings a new event, so
/// there is no read just to see EAGAIN.
pub fn read_plain(
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
pub fn read_tls(
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

pub enum WriteResult {
    Done,
    Blocked,
    Failed,
}

/// Write `buf`; returns how it went and how many bytes were written. With
/// `last` (the connection closes once this is written and no input is
/// left), the bytes are sent with MSG_MORE: the kernel holds them until the
/// close, which sends them with the FIN in one segment instead of two, each
/// acknowledged on its own by the client.
pub fn write_plain(stream: &mut TcpStream, buf: &[u8], last: bool) -> (WriteResult, usize) {
    let socket = socket2::SockRef::from(&*stream);
    let flags = if last { libc::MSG_MORE } else { 0 };
    let mut written = 0;
    while let Some(pending) = buf.get(written..).filter(|p| !p.is_empty()) {
        match socket.send_with_flags(pending, flags) {
            Ok(0) => return (WriteResult::Failed, written),
            Ok(n) => written += n,
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                return (WriteResult::Blocked, written);
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return (WriteResult::Failed, written),
        }
    }
    (WriteResult::Done, written)
}

pub fn write_tls(tls: &mut rustls::ServerConnection, stream: &mut TcpStream) -> WriteResult {
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
