//! Info hash and peer id: the two 20-byte identifiers of BitTorrent.

use std::fmt;

macro_rules! twenty_byte_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 20]);

        impl $name {
            /// Parse exactly 40 hexadecimal digits (either case).
            pub fn from_hex(s: &str) -> Option<Self> {
                let bytes = s.as_bytes();
                if bytes.len() != 40 {
                    return None;
                }
                let mut out = [0u8; 20];
                for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    // `chunks_exact(2)` yields only pairs.
                    let &[high, low] = pair else { return None };
                    *o = (hex_value(high)? << 4) | hex_value(low)?;
                }
                Some(Self(out))
            }

            /// Lower-case hexadecimal, 40 characters.
            pub fn to_hex(&self) -> String {
                let mut s = String::with_capacity(40);
                for b in self.0 {
                    let [high, low] = hex_digits(b);
                    s.push(char::from(high));
                    s.push(char::from(low));
                }
                s
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

twenty_byte_id!(
    /// SHA-1 of a torrent's info dictionary: the key of a swarm.
    InfoHash
);
twenty_byte_id!(
    /// The 20 bytes a client picks to identify itself.
    PeerId
);

/// The two lower-case hexadecimal digits of `byte`, high nibble first.
pub const fn hex_digits(byte: u8) -> [u8; 2] {
    const fn digit(nibble: u8) -> u8 {
        // `nibble` is at most 15.
        if nibble < 10 {
            b'0' + nibble
        } else {
            b'a' - 10 + nibble
        }
    }
    [digit(byte >> 4), digit(byte & 0xf)]
}

/// The value of one hex digit (either case).
pub fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let hex = "0123456789abcdefABCDEF0123456789abcdef01";
        let hash = InfoHash::from_hex(hex).unwrap();
        assert_eq!(hash.0[0], 0x01);
        assert_eq!(hash.0[19], 0x01);
        assert_eq!(hash.to_hex(), hex.to_ascii_lowercase());
    }

    #[test]
    fn hex_digits_of_every_byte() {
        for b in 0..=u8::MAX {
            assert_eq!(hex_digits(b), *format!("{b:02x}").as_bytes());
        }
    }

    #[test]
    fn hex_rejects_wrong_length_and_digits() {
        assert!(InfoHash::from_hex("00").is_none());
        assert!(InfoHash::from_hex(&"g".repeat(40)).is_none());
        assert!(InfoHash::from_hex(&"0".repeat(41)).is_none());
    }
}
