//! Percent-decoding of query values (without allocating) and
//! percent-encoding for the request writer.

use aquatic_wire::hex_value;

/// A `%` not followed by two hexadecimal digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InvalidPercentEncoding;

/// The decoded bytes of one query value.
///
/// `%XX` (either case) becomes the byte `XX`; with `plus_is_space`, `+`
/// becomes a space (form encoding, for text fields; binary ids keep it raw,
/// since a raw `+` byte is a legal part of an unencoded hash). Every other
/// byte stands for itself.
pub(crate) struct Decode<'a> {
    rest: &'a [u8],
    plus_is_space: bool,
}

impl<'a> Decode<'a> {
    pub(crate) fn text(value: &'a [u8]) -> Self {
        Self {
            rest: value,
            plus_is_space: true,
        }
    }

    pub(crate) fn binary(value: &'a [u8]) -> Self {
        Self {
            rest: value,
            plus_is_space: false,
        }
    }
}

impl Iterator for Decode<'_> {
    type Item = Result<u8, InvalidPercentEncoding>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(match first {
            b'%' => match rest {
                [high, low, rest @ ..] => match (hex_value(*high), hex_value(*low)) {
                    (Some(high), Some(low)) => {
                        self.rest = rest;
                        Ok((high << 4) | low)
                    }
                    _ => {
                        self.rest = &[];
                        Err(InvalidPercentEncoding)
                    }
                },
                _ => {
                    self.rest = &[];
                    Err(InvalidPercentEncoding)
                }
            },
            b'+' if self.plus_is_space => Ok(b' '),
            other => Ok(other),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.rest.len().div_ceil(3), Some(self.rest.len()))
    }
}

/// Append `%XX` for every byte (what clients do for info hashes and peer ids).
pub(crate) fn encode_all(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        push_escaped(out, b);
    }
}

/// Append `bytes`, escaping all but RFC 3986 unreserved characters.
pub(crate) fn encode_text(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            push_escaped(out, b);
        }
    }
}

fn push_escaped(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(&[b'%', hex_digit(b >> 4), hex_digit(b & 0xf)]);
}

/// Upper-case hexadecimal digit of the low nibble of `n`.
fn hex_digit(n: u8) -> u8 {
    match n & 0xf {
        n @ 0..=9 => b'0' + n,
        n => b'A' + (n - 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> Result<Vec<u8>, InvalidPercentEncoding> {
        Decode::text(value.as_bytes()).collect()
    }

    #[test]
    fn decodes_either_case_and_plus() {
        assert_eq!(text("a%2fb%2Fc+d"), Ok(b"a/b/c d".to_vec()));
        assert_eq!(
            Decode::binary(b"a+%2B").collect::<Result<Vec<_>, _>>(),
            Ok(b"a++".to_vec())
        );
    }

    #[test]
    fn rejects_short_or_non_hex_escapes() {
        for bad in ["%", "%1", "ab%", "%g0", "%0g", "%%41"] {
            assert_eq!(text(bad), Err(InvalidPercentEncoding), "{bad:?}");
        }
    }

    #[test]
    fn encodes_round_trip() {
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        encode_text(&mut out, &all);
        assert_eq!(
            Decode::text(&out).collect::<Result<Vec<_>, _>>(),
            Ok(all.clone())
        );
        out.clear();
        encode_all(&mut out, &all);
        assert_eq!(out.len(), 3 * 256);
        assert_eq!(Decode::binary(&out).collect::<Result<Vec<_>, _>>(), Ok(all));
    }
}
