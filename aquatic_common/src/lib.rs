//! Types and mechanisms shared by the aquatic tracker daemons.
//!
//! Everything here is protocol-agnostic: the info hash and peer id (from
//! `aquatic_wire`, re-exported), the coarse server clock and `ValidUntil`,
//! canonical socket addresses (IPv4-mapped IPv6 counts as IPv4), access
//! lists, the defences an operator switches on (IP filter, per-source
//! rate limits), response-peer selection, privilege dropping, worker supervision,
//! the daemon skeleton (`daemon`: start-up, wiring and supervision every
//! daemon runs, each supplying only what differs through the `Daemon`
//! trait), the request-worker loop, the statistics log loop, the Prometheus
//! metrics endpoint with `/health` (worker heartbeats) and `/stats.json`,
//! TLS certificate loading, the reverse-proxy trust rule,
//! and the files written from every shard (the state file kept across
//! restarts, the scrape export). Each exists once so that the UDP, HTTP
//! and WebSocket trackers behave alike.
//!
//! Sockets are opened here too: the metrics endpoint's, and the daemons'
//! listening sockets (`bind::tcp_listener` for the TCP daemons,
//! `bind::bind_per_worker` calling each daemon's bind once per socket
//! worker); `datagrams` does aquatic_udp's batched UDP I/O. What the
//! daemons do with their sockets (accepting, reading, protocols) is theirs.
//!
//! Not here: parsing of wire formats (the `*_protocol` crates) and config
//! file loading (`aquatic_cli_helpers`).

// Three modules need `unsafe`: listen_queue (a getsockopt), datagrams
// (recvmmsg/sendmmsg with control messages) and allocator (one call into
// mimalloc); everything else is denied it.
#![deny(unsafe_code)]
pub mod access_list;
pub mod addr;
#[allow(unsafe_code)]
pub mod allocator;
pub mod atomic_file;
pub mod bind;
pub mod clients;
pub mod daemon;
pub mod daemon_config;
#[allow(unsafe_code)]
pub mod datagrams;
pub mod defences;
pub mod family_maps;
pub mod fd_limit;
pub mod health;
pub mod interval;
pub mod ip_filter;
pub mod labelled;
pub mod list_file;
#[allow(unsafe_code)]
pub mod listen_queue;
pub mod metrics;
pub mod metrics_listener;
pub mod peer_selection;
pub mod peer_store;
pub mod privileges;
pub mod proxy;
pub mod rate_limit;
pub mod request_loop;
pub mod scrape_export;
pub mod shard_parts;
pub mod source;
pub mod state;
pub mod statistics;
pub mod status;
pub mod supervision;
pub mod tcp_counters;
pub mod time;
pub mod tls;
pub mod torrent_map;
pub mod validation;

pub use addr::{CanonicalSocketAddr, IpVersion};
pub use aquatic_wire::host;
pub use aquatic_wire::{InfoHash, PeerId};
pub use time::{SecondsSinceStart, ServerStartInstant, ValidUntil};
