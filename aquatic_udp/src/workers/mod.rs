//! The daemon's threads: socket workers (I/O), request workers (swarm
//! state) and the statistics logger.

pub mod pending_scrapes;
pub mod request;
pub mod socket;
pub mod statistics;
