//! Helpers shared by the integration tests: JSON text the way JavaScript
//! writes it, and parsing from `&str`.

#![allow(dead_code)] // each test file uses a different subset

use aquatic_ws_protocol::{InMessage, OutMessage, ParseError};

/// A binary string as `JSON.stringify` writes it: `"` and `\` escaped,
/// control characters as `\b \f \n \r \t` or `\u00xx` (lower-case hex),
/// everything else, 0x7F and 0x80..0xFF included, as the character itself
/// (UTF-8 on the wire).
pub fn js_string(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x00..=0x1f => out.push_str(&format!("\\u{b:04x}")),
            _ => out.push(char::from(b)),
        }
    }
    out.push('"');
    out
}

/// Every byte as a `\uXXXX` escape, upper- or lower-case hex.
pub fn escaped_string(bytes: &[u8], upper: bool) -> String {
    let mut out = String::from("\"");
    for &b in bytes {
        if upper {
            out.push_str(&format!("\\u{b:04X}"));
        } else {
            out.push_str(&format!("\\u{b:04x}"));
        }
    }
    out.push('"');
    out
}

pub fn parse_in(text: &str) -> Result<InMessage, ParseError> {
    InMessage::from_json(&mut text.as_bytes().to_vec())
}

pub fn parse_in_bytes(bytes: &[u8]) -> Result<InMessage, ParseError> {
    InMessage::from_json(&mut bytes.to_vec())
}

pub fn parse_out(text: &[u8]) -> Result<OutMessage, String> {
    OutMessage::from_json(&mut text.to_vec())
}

/// The JSON text as a JavaScript client reads it (`JSON.parse`).
pub fn js_parse(bytes: &[u8]) -> serde_json::Value {
    let text = std::str::from_utf8(bytes).expect("a WebSocket text frame must be UTF-8");
    serde_json::from_str(text).expect("the tracker must write valid JSON")
}

/// A JavaScript binary string (as `JSON.parse` gives it) back to bytes:
/// exactly 20 code units, each at most 0xFF.
pub fn js_bytes(value: &serde_json::Value) -> [u8; 20] {
    let text = value.as_str().expect("an id must be a JSON string");
    let units: Vec<u16> = text.encode_utf16().collect();
    assert_eq!(units.len(), 20, "{text:?} is not 20 code units");
    std::array::from_fn(|i| u8::try_from(units[i]).expect("a code unit above 0xFF"))
}

/// An SDP object as simple-peer signals it.
pub fn sdp(kind: &str, session: u64) -> serde_json::Value {
    serde_json::json!({
        "type": kind,
        "sdp": format!(
            "v=0\r\no=- {session} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
             a=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n\
             m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:Xk3v\r\na=ice-pwd:1fGyHjEfzPIVNxKeFQ4cX2Yy\r\na=ice-options:trickle\r\n\
             a=fingerprint:sha-256 5C:2E:8A:11:3F:9B:0D:47:AE:61:C8:F2:55:1A:90:3E:7B:D4:\
             22:6F:08:C1:9E:B3:4D:70:E5:2A:F9:16:83:CC\r\na=setup:actpass\r\na=mid:0\r\n\
             a=sctp-port:5000\r\na=max-message-size:262144\r\n"
        ),
    })
}

/// A serde_json value as the protocol crate's JSON value.
pub fn to_value(value: &serde_json::Value) -> aquatic_ws_protocol::JsonValue {
    let mut text = serde_json::to_vec(value).unwrap();
    simd_json::to_owned_value(&mut text).unwrap()
}
