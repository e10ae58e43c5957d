//! Talking WebSocket to aquatic_ws in tests at the byte level, where a
//! client library would not send what the test needs (unmasked frames,
//! split messages, floods from several threads): the upgrade, frames
//! written by hand, and the server's frames read back.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};

/// Frame opcodes (RFC 6455 section 5.2).
pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// A connection from `from` (see [`crate::tcp_from`]) upgraded to a
/// WebSocket: the upgrade request sent and the 101 response read.
pub fn raw_upgrade_from(from: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let mut raw = crate::tcp_from(from, addr)?;
    raw.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if raw.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(io::Error::other(
            String::from_utf8_lossy(&head).into_owned(),
        ));
    }
    Ok(raw)
}

/// A client frame, masked as clients must (`masked = false`: the protocol
/// error of an unmasked one).
pub fn frame_with(opcode: u8, fin: bool, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&mask);
        out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A masked client frame.
pub fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    frame_with(opcode, fin, true, payload)
}

/// Read one server frame (unmasked): (opcode, payload).
pub fn read_frame(stream: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head)?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n)?;
            u64::from(u16::from_be_bytes(n))
        }
        127 => {
            let mut n = [0u8; 8];
            stream.read_exact(&mut n)?;
            u64::from_be_bytes(n)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
    stream.read_exact(&mut payload)?;
    Ok((head[0] & 0x0f, payload))
}
