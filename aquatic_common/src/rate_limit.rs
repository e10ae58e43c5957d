//! Per-source rate limits: a token bucket per source address (an IPv4
//! address or an IPv6 /64 by default, as [`crate::source`] groups them)
//! for announces and scrapes.
//!
//! Each socket worker keeps its own buckets in a table of fixed size,
//! `max_sources` slots (rounded up to a power of two) of 16 bytes, made at
//! start: the memory is bounded whatever the number of distinct addresses.
//! A source may sit in one of two slots chosen by a keyed hash (the key is
//! random per process, so nobody can aim at another source's slots). A new
//! source takes whichever of its two slots holds more tokens once refilled:
//! the table forgets first the sources that have been quiet longest or
//! asked least (a full bucket is no different from no bucket), and keeps
//! the ones being limited. A source pushed out starts again with a full
//! bucket: under a flood of millions of distinct addresses, each gets at
//! most its burst, never a reply beyond it from a remembered slot.
//!
//! With several socket workers each keeps its own buckets: a source whose
//! packets or connections the kernel spreads over `n` workers may get up
//! to `n` times the rate (a UDP client from one port always meets the same
//! worker).

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::source::SourcePrefixes;

/// `[rate_limit]`, the same section in every daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Announces and scrapes a second one source may make, on average.
    pub per_second: f32,
    /// Most requests one source may make at once after a quiet time.
    pub burst: u32,
    pub ipv4_prefix_length: u8,
    pub ipv6_prefix_length: u8,
    /// Sources remembered per socket worker.
    pub max_sources: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            per_second: 20.0,
            burst: 2000,
            ipv4_prefix_length: 32,
            ipv6_prefix_length: 64,
            max_sources: 65536,
        }
    }
}

/// Largest burst: tokens are counted in an `f32`, exact to 2^24.
const MAX_BURST: u32 = 1 << 24;

/// Most slots a table may have: 2^24 (256 MiB per socket worker).
const MAX_SLOTS: usize = 1 << 24;

impl RateLimitConfig {
    /// Invalid values, named, for the daemons' `validate`.
    pub fn checks(&self) -> [crate::validation::Check; 6] {
        [
            (
                self.enabled && !(self.per_second.is_finite() && self.per_second > 0.0),
                "rate_limit.per_second must be above 0",
            ),
            (
                self.enabled && self.burst == 0,
                "rate_limit.burst must be at least 1",
            ),
            (
                // Tokens are an f32: above 2^24, taking one changes nothing.
                self.burst > MAX_BURST,
                "rate_limit.burst must be at most 16777216",
            ),
            (
                !(8..=32).contains(&self.ipv4_prefix_length),
                "rate_limit.ipv4_prefix_length must be from 8 to 32",
            ),
            (
                !(16..=64).contains(&self.ipv6_prefix_length),
                "rate_limit.ipv6_prefix_length must be from 16 to 64",
            ),
            (
                self.enabled && !(1..=MAX_SLOTS).contains(&self.max_sources),
                "rate_limit.max_sources must be from 1 to 16777216",
            ),
        ]
    }

    /// A socket worker's limiter, or `None` when rate limits are off.
    pub fn limiter(&self) -> Option<RateLimiter> {
        self.enabled.then(|| RateLimiter::new(self))
    }
}

#[derive(Clone, Copy)]
struct Slot {
    key: u64,
    tokens: f32,
    /// Milliseconds since the limiter was made, when `tokens` was right
    /// (wrapping: a slot left alone for 49 days may be refilled short).
    last_ms: u32,
}

pub struct RateLimiter {
    slots: Box<[Slot]>,
    mask: usize,
    hasher: hashbrown::DefaultHashBuilder,
    per_ms: f32,
    burst: f32,
    prefixes: SourcePrefixes,
    start: Instant,
}

impl RateLimiter {
    pub fn new(config: &RateLimitConfig) -> Self {
        let slots = config.max_sources.clamp(2, MAX_SLOTS).next_power_of_two();
        let burst = config.burst.max(1) as f32;
        Self {
            slots: vec![
                Slot {
                    key: 0,
                    tokens: burst,
                    last_ms: 0,
                };
                slots
            ]
            .into_boxed_slice(),
            mask: slots - 1,
            hasher: Default::default(),
            per_ms: config.per_second / 1000.0,
            burst,
            prefixes: SourcePrefixes {
                ipv4: config.ipv4_prefix_length,
                ipv6: config.ipv6_prefix_length,
            },
            start: Instant::now(),
        }
    }

    /// Bytes the table takes.
    pub fn memory(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    /// Whether a request from `ip` may be answered now (taking a token).
    pub fn allows(&mut self, ip: IpAddr) -> bool {
        let now = u32::try_from(self.start.elapsed().as_millis() % (1 << 32)).unwrap_or(0);
        self.allows_at(ip, now)
    }

    fn allows_at(&mut self, ip: IpAddr, now_ms: u32) -> bool {
        let key = self.prefixes.of(ip).0;
        let hash = self.hasher.hash_one(key);
        let first = hash as usize & self.mask;
        let second = (hash >> 32) as usize & self.mask;
        let (refill, burst) = (self.per_ms, self.burst);
        let tokens_now = |slot: &Slot| {
            let elapsed = now_ms.wrapping_sub(slot.last_ms) as f32;
            (slot.tokens + elapsed * refill).min(burst)
        };
        let [a, b] = [first, second].map(|i| self.slots.get(i).copied());
        let index = match (a, b) {
            (Some(slot), _) if slot.key == key => first,
            (_, Some(slot)) if slot.key == key => second,
            (Some(a), Some(b)) => {
                // A new source: it takes the slot whose source would have
                // more tokens by now (the one that matters least).
                let index = if tokens_now(&a) >= tokens_now(&b) {
                    first
                } else {
                    second
                };
                if let Some(slot) = self.slots.get_mut(index) {
                    *slot = Slot {
                        key,
                        tokens: burst,
                        last_ms: now_ms,
                    };
                }
                index
            }
            _ => return true, // not reached: both indices are masked
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return true;
        };
        slot.tokens = tokens_now(slot);
        slot.last_ms = now_ms;
        if slot.tokens >= 1.0 {
            slot.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f32, burst: u32, max_sources: usize) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            enabled: true,
            per_second,
            burst,
            max_sources,
            ..RateLimitConfig::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_then_the_rate() {
        let mut l = limiter(10.0, 5, 1024);
        let a = ip("192.0.2.1");
        assert_eq!((0..8).filter(|_| l.allows_at(a, 0)).count(), 5);
        // 10 a second: one token every 100 ms.
        assert!(!l.allows_at(a, 99));
        assert!(l.allows_at(a, 101));
        assert!(!l.allows_at(a, 150));
        // 0.5 tokens at 150 ms, 3 by 400 ms.
        assert_eq!((0..20).filter(|_| l.allows_at(a, 410)).count(), 3);
        // A long pause refills the burst, no more.
        assert_eq!((0..20).filter(|_| l.allows_at(a, 60_000)).count(), 5);
    }

    #[test]
    fn sources_are_limited_alone_and_ipv6_by_prefix() {
        let mut l = limiter(1.0, 3, 1024);
        let flood = ip("2001:db8:1:2::1");
        for _ in 0..100 {
            l.allows_at(flood, 10);
        }
        assert!(!l.allows_at(ip("2001:db8:1:2:ffff::9"), 10), "same /64");
        assert!(l.allows_at(ip("2001:db8:1:3::1"), 10), "another /64");
        assert!(l.allows_at(ip("192.0.2.1"), 10));
        assert!(l.allows_at(ip("::ffff:192.0.2.2"), 10));
    }

    #[test]
    fn millions_of_sources_stay_in_the_table_and_a_limited_one_stays_limited() {
        let mut l = limiter(1.0, 10, 4096);
        assert_eq!(l.memory(), 4096 * 16);
        let flood = ip("198.51.100.7");
        for _ in 0..50 {
            l.allows_at(flood, 0);
        }
        assert!(!l.allows_at(flood, 0));
        // A million other sources, each once, at the same moment: the
        // limited source keeps its slot, since a newcomer takes the fuller
        // of its two slots (unless both its slots are the limited
        // source's: about one round in 170 with 4096 slots).
        let mut limited_after = 0;
        for round in 0..10u32 {
            for _ in 0..50 {
                l.allows_at(flood, 0);
            }
            for n in 0..100_000u32 {
                let other = IpAddr::from((0x0a00_0000 + round * 100_000 + n).to_be_bytes());
                assert!(l.allows_at(other, 0), "a newcomer gets its burst");
            }
            if !l.allows_at(flood, 0) {
                limited_after += 1;
            }
        }
        assert!(limited_after >= 8, "{limited_after}");
        assert_eq!(l.memory(), 4096 * 16);
    }

    #[test]
    fn invalid_settings_are_named() {
        let config = RateLimitConfig {
            enabled: true,
            per_second: 0.0,
            ..RateLimitConfig::default()
        };
        let failed: Vec<_> = config
            .checks()
            .iter()
            .filter(|c| c.0)
            .map(|c| c.1)
            .collect();
        assert_eq!(failed, ["rate_limit.per_second must be above 0"]);
        assert!(RateLimitConfig::default().checks().iter().all(|c| !c.0));
    }
}
