//! The state file's fixed-size values (peer keys and their extra data)
//! and its errors.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{DaemonKind, FORMAT_VERSION};
use crate::PeerId;

/// A fixed-size value in the state file: a peer key or its extra data.
pub trait StateCodec: Sized {
    const LEN: usize;
    /// Append exactly `LEN` bytes.
    fn encode(&self, out: &mut Vec<u8>);
    /// From exactly `LEN` bytes; `None` if they are not a valid value.
    fn decode(bytes: &[u8]) -> Option<Self>;
}

pub(super) fn array<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.try_into().ok()
}

/// A peer's client is not kept in the state file (the format stays as
/// it was): restored peers count as an unknown client until they announce.
impl StateCodec for crate::clients::ClientKey {
    const LEN: usize = 0;
    fn encode(&self, _: &mut Vec<u8>) {}
    fn decode(bytes: &[u8]) -> Option<Self> {
        bytes.is_empty().then_some(Self::UNKNOWN)
    }
}

impl StateCodec for () {
    const LEN: usize = 0;
    fn encode(&self, _: &mut Vec<u8>) {}
    fn decode(bytes: &[u8]) -> Option<Self> {
        bytes.is_empty().then_some(())
    }
}

impl StateCodec for u16 {
    const LEN: usize = 2;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        array(bytes).map(u16::from_le_bytes)
    }
}

impl StateCodec for Ipv4Addr {
    const LEN: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.octets());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        array::<4>(bytes).map(Ipv4Addr::from)
    }
}

impl StateCodec for Ipv6Addr {
    const LEN: usize = 16;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.octets());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        array::<16>(bytes).map(Ipv6Addr::from)
    }
}

impl StateCodec for PeerId {
    const LEN: usize = 20;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        array(bytes).map(PeerId)
    }
}

impl<A: StateCodec, B: StateCodec> StateCodec for (A, B) {
    const LEN: usize = A::LEN + B::LEN;
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let (a, b) = bytes.split_at(A::LEN);
        Some((A::decode(a)?, B::decode(b)?))
    }
}

/// Why a state file was not loaded.
#[derive(Debug)]
pub enum StateError {
    Io(io::Error),
    TooShort(u64),
    NotAStateFile,
    UnsupportedVersion(u16),
    OtherDaemon {
        written_by: u8,
        expected: DaemonKind,
    },
    ChecksumMismatch,
    Corrupt(&'static str),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Io(err) if err.kind() == io::ErrorKind::NotFound => {
                f.write_str("no such file (normal before the first shutdown)")
            }
            StateError::Io(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                f.write_str("the file is truncated")
            }
            StateError::Io(err) => write!(f, "cannot read it: {err}"),
            StateError::TooShort(len) => write!(f, "the file is truncated ({len} bytes)"),
            StateError::NotAStateFile => f.write_str("not an aquatic state file (bad magic bytes)"),
            StateError::UnsupportedVersion(v) => write!(
                f,
                "format version {v}, this build reads version {FORMAT_VERSION}"
            ),
            StateError::OtherDaemon {
                written_by,
                expected,
            } => write!(
                f,
                "written by {}, not {}",
                DaemonKind::name_of(*written_by),
                DaemonKind::name_of(expected.code())
            ),
            StateError::ChecksumMismatch => f.write_str("checksum mismatch: the file is corrupted"),
            StateError::Corrupt(what) => write!(f, "the file is corrupted: {what}"),
        }
    }
}

impl std::error::Error for StateError {}

impl From<io::Error> for StateError {
    fn from(err: io::Error) -> Self {
        StateError::Io(err)
    }
}
