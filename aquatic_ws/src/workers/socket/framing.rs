//! WebSocket framing, by tungstenite: the limits a connection's WebSocket
//! is made with, and what a read error means for the client (the close
//! code it gets, RFC 6455 7.4.1) and for the metrics (the close reason).

use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::common::CloseReason;
use crate::config::NetworkConfig;

/// tungstenite's read chunk, allocated per connection: small, because an
/// idle connection should cost little (messages larger than it are read in
/// several chunks).
const READ_BUFFER_SIZE: usize = 4096;
/// Messages are buffered up to this before tungstenite writes by itself;
/// everything is flushed at the end of each event loop round anyway.
const WRITE_BUFFER_SIZE: usize = 64 * 1024;

/// Frame, message and write-buffer limits from `[network]`.
pub fn ws_config(network: &NetworkConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(WRITE_BUFFER_SIZE)
        .max_write_buffer_size(network.max_write_buffer_size.max(WRITE_BUFFER_SIZE + 1))
        .max_message_size(Some(network.max_message_size))
        .max_frame_size(Some(network.max_frame_size))
}

/// The close code a client gets for a read error, if the error is the
/// client's fault and the connection can still carry it.
pub fn close_code(err: &tungstenite::Error) -> Option<CloseCode> {
    use tungstenite::Error;
    use tungstenite::error::ProtocolError;
    match err {
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        Error::Protocol(_) => Some(CloseCode::Protocol),
        Error::Utf8(_) => Some(CloseCode::Invalid),
        Error::Capacity(_) => Some(CloseCode::Size),
        _ => None,
    }
}

pub fn close_text(code: CloseCode) -> &'static str {
    match code {
        CloseCode::Invalid => "invalid UTF-8",
        CloseCode::Size => "message or frame too large",
        _ => "protocol error",
    }
}

pub fn close_reason(err: &tungstenite::Error) -> CloseReason {
    use tungstenite::Error;
    use tungstenite::error::ProtocolError;
    match err {
        Error::ConnectionClosed | Error::AlreadyClosed | Error::Io(_) => CloseReason::Client,
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => CloseReason::Client,
        Error::Capacity(_) => CloseReason::OverLimit,
        Error::WriteBufferFull(_) => CloseReason::WriteBufferFull,
        _ => CloseReason::ProtocolError,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read, Write};

    use tungstenite::protocol::Role;
    use tungstenite::{Message, WebSocket};

    use super::*;

    /// A socket in memory: reads what the test queued, then would block.
    #[derive(Default)]
    struct Memory {
        input: Vec<u8>,
        read: usize,
        output: Vec<u8>,
    }

    impl Read for Memory {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let rest = self.input.get(self.read..).unwrap_or_default();
            if rest.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.read += n;
            Ok(n)
        }
    }

    impl Write for Memory {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
        aquatic_test_support::ws::frame_with(opcode, true, masked, payload)
    }

    fn network(max_frame: usize, max_message: usize) -> NetworkConfig {
        NetworkConfig {
            max_frame_size: max_frame,
            max_message_size: max_message,
            ..NetworkConfig::default()
        }
    }

    /// What reading `input` as the server gives.
    fn read(input: Vec<u8>, network: &NetworkConfig) -> tungstenite::Result<Message> {
        let memory = Memory {
            input,
            ..Memory::default()
        };
        let mut ws = WebSocket::from_raw_socket(memory, Role::Server, Some(ws_config(network)));
        ws.read()
    }

    #[test]
    fn a_text_message_within_the_limits_is_read() {
        let message = read(frame(0x1, b"{}", true), &network(100, 100)).unwrap();
        assert_eq!(message, Message::text("{}"));
    }

    #[test]
    fn oversized_frames_and_messages_get_1009() {
        let err = read(frame(0x1, &[b'a'; 101], true), &network(100, 1000)).unwrap_err();
        assert_eq!(close_code(&err), Some(CloseCode::Size));
        assert_eq!(close_reason(&err), CloseReason::OverLimit);
        // Two frames within the frame limit, over the message limit.
        let mut input = aquatic_test_support::ws::frame_with(0x1, false, true, &[b'a'; 80]);
        input.extend(frame(0x0, &[b'a'; 80], true));
        let err = read(input, &network(100, 150)).unwrap_err();
        assert_eq!(close_code(&err), Some(CloseCode::Size));
    }

    #[test]
    fn invalid_utf8_gets_1007_and_unmasked_frames_1002() {
        let err = read(frame(0x1, &[0xff, 0xfe], true), &network(100, 100)).unwrap_err();
        assert_eq!(close_code(&err), Some(CloseCode::Invalid));
        assert_eq!(close_reason(&err), CloseReason::ProtocolError);
        let err = read(frame(0x1, b"{}", false), &network(100, 100)).unwrap_err();
        assert_eq!(close_code(&err), Some(CloseCode::Protocol));
    }

    #[test]
    fn a_client_gone_is_not_answered() {
        let err = tungstenite::Error::ConnectionClosed;
        assert_eq!(close_code(&err), None);
        assert_eq!(close_reason(&err), CloseReason::Client);
    }
}
