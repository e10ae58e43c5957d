pub mod socket;
pub mod statistics;
