//! The coarse server clock: whole seconds since start, kept as `u32`.
//!
//! Workers read the clock once per loop iteration and stamp peers and
//! connections with a `ValidUntil`. All arithmetic saturates, so no client
//! value or clock oddity can overflow it.

use std::time::{Duration, Instant};

/// The instant the server started; every `SecondsSinceStart` counts from it.
#[derive(Clone, Copy, Debug)]
pub struct ServerStartInstant(Instant);

impl ServerStartInstant {
    pub fn new() -> Self {
        Self(Instant::now())
    }

    /// Seconds elapsed since start (saturating at `u32::MAX`, ~136 years).
    pub fn seconds_elapsed(&self) -> SecondsSinceStart {
        let secs = self.0.elapsed().as_secs();
        SecondsSinceStart(u32::try_from(secs).unwrap_or(u32::MAX))
    }

    /// The underlying instant, for timers that need sub-second precision.
    pub fn instant(&self) -> Instant {
        self.0
    }
}

impl Default for ServerStartInstant {
    fn default() -> Self {
        Self::new()
    }
}

/// Whole seconds since `ServerStartInstant`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SecondsSinceStart(pub u32);

impl SecondsSinceStart {
    pub fn add_secs(self, secs: u32) -> Self {
        Self(self.0.saturating_add(secs))
    }

    pub fn saturating_sub(self, other: Self) -> u32 {
        self.0.saturating_sub(other.0)
    }
}

/// The moment after which an entry (peer, pending request) is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValidUntil(SecondsSinceStart);

impl ValidUntil {
    pub fn new(now: SecondsSinceStart, lifetime_secs: u32) -> Self {
        Self(now.add_secs(lifetime_secs))
    }

    pub fn from_secs(secs: SecondsSinceStart) -> Self {
        Self(secs)
    }

    pub fn is_valid_at(&self, now: SecondsSinceStart) -> bool {
        self.0 >= now
    }

    pub fn secs(&self) -> SecondsSinceStart {
        self.0
    }
}

/// Convert a configured duration in seconds to `u32`, saturating.
pub fn secs_u32(secs: u64) -> u32 {
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// Duration helper for loops that tick at a configured interval.
pub fn duration_secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_until_saturates() {
        let v = ValidUntil::new(SecondsSinceStart(u32::MAX - 1), 100);
        assert!(v.is_valid_at(SecondsSinceStart(u32::MAX)));
        let v = ValidUntil::new(SecondsSinceStart(10), 5);
        assert!(v.is_valid_at(SecondsSinceStart(15)));
        assert!(!v.is_valid_at(SecondsSinceStart(16)));
    }
}
