//! What every aquatic wire format shares, and nothing else: the 20-byte
//! info hash and peer id, reading a client's address from a reverse
//! proxy's header, and matching the `Host` header against the names a
//! tracker answers to. No dependencies, so that the sans-IO protocol crates
//! (and the fuzz targets built on them) stay light: they depend on this
//! crate, not on `aquatic_common` with its sockets, TLS and metrics.

#![deny(unsafe_code)]

pub mod forwarded;
pub mod host;
pub mod ids;

pub use ids::{InfoHash, PeerId, hex_digits, hex_value};
