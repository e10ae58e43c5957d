//! The daemon's threads: socket workers (connections, WebSocket I/O),
//! request workers (swarms and offers) and the statistics logger.

pub mod request;
pub mod socket;
pub mod statistics;
