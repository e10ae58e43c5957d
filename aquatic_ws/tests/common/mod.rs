//! What aquatic_ws's integration tests share: the binary, and a blocking
//! tungstenite client (connect from a loopback address of its own, send a
//! message, receive the next one, read a failure reason).

#![allow(dead_code)] // each test binary uses a different part

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use aquatic_test_support::tcp_from;
use aquatic_ws_protocol::{InMessage, OutMessage};
use tungstenite::{Message, WebSocket};

pub const BINARY: &str = env!("CARGO_BIN_EXE_aquatic_ws");

pub type Client = WebSocket<TcpStream>;

/// A WebSocket to `addr` from `from` (reads give up after 5 s).
pub fn connect_from(from: IpAddr, addr: SocketAddr) -> Client {
    let stream = tcp_from(from, addr).unwrap();
    tungstenite::client::client(format!("ws://{addr}/announce"), stream)
        .unwrap()
        .0
}

/// A WebSocket from 127.0.0.1.
pub fn connect(addr: SocketAddr) -> Client {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (ws, _) = tungstenite::client::client(format!("ws://{addr}/announce"), stream).unwrap();
    ws
}

pub fn send(ws: &mut Client, message: &InMessage) {
    let text = String::from_utf8(message.to_json()).unwrap();
    ws.send(Message::text(text)).unwrap();
}

/// The next text message (pings and pongs skipped).
pub fn recv(ws: &mut Client) -> OutMessage {
    loop {
        match ws.read().expect("a message within 5 s") {
            Message::Text(text) => {
                let mut bytes = text.as_bytes().to_vec();
                return OutMessage::from_json(&mut bytes)
                    .unwrap_or_else(|e| panic!("{e}: {}", text.as_str()));
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The failure reason of an error message.
pub fn failure(message: &OutMessage) -> Option<String> {
    match message {
        OutMessage::Error(e) => Some(e.failure_reason.to_string()),
        _ => None,
    }
}
