//! WebTorrent's 20-byte ids (info hash, peer id, offer id) on the wire:
//! JSON strings of exactly 20 characters U+0000..U+00FF, one per byte
//! (JavaScript "binary strings"). Bytes above 0x7F travel as the UTF-8 of
//! their code point, control characters, quotes and backslashes as JSON
//! escapes; the JSON parser has already undone those when we see the text.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serialize, Serializer};

/// Why a string is not a 20-byte id.
pub const INVALID_ID: &str = "must be a string of exactly 20 characters U+0000..U+00FF";

/// The 20 bytes of `text`, or `None` when it has another length or a
/// character above U+00FF.
pub fn decode(text: &str) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    let mut chars = text.chars();
    for byte in out.iter_mut() {
        *byte = u8::try_from(u32::from(chars.next()?)).ok()?;
    }
    chars.next().is_none().then_some(out)
}

/// The id as text, one character per byte.
pub fn encode(bytes: &[u8; 20]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

pub fn serialize<S: Serializer>(bytes: &[u8; 20], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&encode(bytes))
}

/// An id serialized as its text (a field of the JSON written).
pub(crate) struct IdText<'a>(pub(crate) &'a [u8; 20]);

impl Serialize for IdText<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(self.0, serializer)
    }
}

/// For `#[serde(deserialize_with)]` on a `[u8; 20]` field.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 20], D::Error> {
    deserializer.deserialize_str(IdVisitor)
}

struct IdVisitor;

impl Visitor<'_> for IdVisitor {
    type Value = [u8; 20];

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string of 20 characters U+0000..U+00FF")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        decode(v).ok_or_else(|| E::custom(INVALID_ID))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_value_round_trips() {
        for start in 0..=255u8 {
            let bytes: [u8; 20] = std::array::from_fn(|i| start.wrapping_add(i as u8));
            assert_eq!(decode(&encode(&bytes)), Some(bytes));
        }
    }

    #[test]
    fn wrong_lengths_and_wide_characters_are_refused() {
        assert_eq!(decode(""), None);
        assert_eq!(decode(&"a".repeat(19)), None);
        assert_eq!(decode(&"a".repeat(21)), None);
        assert_eq!(decode(&format!("{}\u{100}", "a".repeat(19))), None);
        assert_eq!(decode(&format!("{}\u{1F600}", "a".repeat(19))), None);
        // 20 characters but 40 bytes of UTF-8: fine.
        assert_eq!(decode(&"\u{ff}".repeat(20)), Some([0xff; 20]));
    }
}
