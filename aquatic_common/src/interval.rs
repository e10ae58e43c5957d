//! The announce interval clients are told, with jitter: each answer's
//! interval is `peer_announce_interval` plus a uniform random offset in
//! `-jitter..=+jitter` seconds, so clients that started together (a
//! tracker restart, a network coming back) drift apart instead of
//! announcing in lockstep for ever. The mean stays the configured interval
//! (the load on the tracker is unchanged), and no answer says less than
//! the `min interval` it gives (where that floor cuts into the jitter's
//! low end, the mean is a little higher).

use rand::Rng;

/// `protocol.peer_announce_interval`, `..._jitter` and the floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceInterval {
    pub base: u32,
    pub jitter: u32,
    /// No interval below this (HTTP's `min interval`; 1 elsewhere).
    pub floor: u32,
}

impl AnnounceInterval {
    pub const fn new(base: u32, jitter: u32) -> Self {
        Self {
            base,
            jitter,
            floor: 1,
        }
    }

    /// The interval for one answer.
    pub fn pick<R: Rng>(&self, rng: &mut R) -> u32 {
        let interval = if self.jitter == 0 {
            self.base
        } else {
            let low = self.base.saturating_sub(self.jitter);
            let high = self.base.saturating_add(self.jitter);
            rng.random_range(low..=high)
        };
        interval.max(self.floor).max(1)
    }
}

/// Log a warning when peers may expire before the longest interval they
/// are told is over (`cleaning.max_peer_age` at most interval + jitter):
/// they would drop out of their swarms until their next announce. A
/// warning, not an error: short peer ages are also used on purpose (load
/// tests, floods).
pub fn warn_if_peers_expire_early(max_peer_age: u32, base: u32, jitter: u32) {
    let longest = base.saturating_add(jitter);
    if max_peer_age <= longest {
        log::warn!(
            "cleaning.max_peer_age ({max_peer_age} s) is not above protocol.peer_announce_interval + peer_announce_interval_jitter ({longest} s): peers may be dropped before they announce again"
        );
    }
}

/// `protocol.peer_announce_interval_jitter` must leave every interval
/// above zero.
pub fn jitter_check(base: u32, jitter: u32) -> crate::validation::Check {
    (
        jitter >= base,
        "protocol.peer_announce_interval_jitter must be below protocol.peer_announce_interval",
    )
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn uniform_within_the_bounds_with_the_configured_mean() {
        let interval = AnnounceInterval::new(1800, 120);
        let mut rng = SmallRng::seed_from_u64(1);
        let n = 240_000;
        // 8 bins of 30 s over 1680..=1920 (the last one 31 s wide).
        let mut bins = [0u32; 8];
        let mut sum = 0u64;
        for _ in 0..n {
            let x = interval.pick(&mut rng);
            assert!((1680..=1920).contains(&x), "{x}");
            sum += u64::from(x);
            bins[(((x - 1680) / 30) as usize).min(7)] += 1;
        }
        let mean = sum as f64 / f64::from(n);
        assert!((mean - 1800.0).abs() < 1.0, "{mean}");
        // Each bin near an eighth (30 000): a uniform spread, not lumps.
        for (i, count) in bins.iter().enumerate() {
            let expected = if i == 7 { 31.0 } else { 30.0 } * f64::from(n) / 241.0;
            let off = (f64::from(*count) - expected).abs() / expected;
            assert!(off < 0.03, "bin {i}: {count} vs {expected}");
        }
    }

    #[test]
    fn no_jitter_the_floor_and_never_zero() {
        let mut rng = SmallRng::seed_from_u64(2);
        assert_eq!(AnnounceInterval::new(1800, 0).pick(&mut rng), 1800);
        let floored = AnnounceInterval {
            base: 100,
            jitter: 50,
            floor: 90,
        };
        assert!((0..1000).all(|_| (90..=150).contains(&floored.pick(&mut rng))));
        assert!((0..1000).all(|_| AnnounceInterval::new(1, 0).pick(&mut rng) == 1));
        assert!(jitter_check(120, 120).0);
        assert!(!jitter_check(1800, 120).0);
    }
}
