//! The daemon's threads: socket workers (connections, TLS, parsing),
//! request workers (swarm state) and the statistics logger.

pub mod request;
pub mod socket;
pub mod statistics;
