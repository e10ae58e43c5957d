//! The token bucket behind `max_requests_per_second`: each worker paces its
//! share of the cap with one.

use std::time::{Duration, Instant};

/// A rate-capped worker's token bucket holds at most this long's worth of
/// requests (and at least one): the largest burst it sends at once.
pub const RATE_BURST: Duration = Duration::from_millis(10);

/// Shortest wait [`RateLimiter::wait`] gives: the granularity of a mio
/// poll timeout (whole milliseconds). Never zero, so a worker waiting for a
/// token sleeps instead of spinning.
pub const RATE_MIN_WAIT: Duration = Duration::from_millis(1);

/// Token bucket pacing one worker's requests: `per_second` tokens a second,
/// at most `capacity` of them kept; every request takes one.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    /// Starts with one token.
    pub fn new(per_second: f64, now: Instant) -> Self {
        Self {
            per_second,
            capacity: (per_second * RATE_BURST.as_secs_f64()).max(1.0),
            tokens: 1.0,
            refilled_at: now,
        }
    }

    /// A worker's share of a cap of `max_requests_per_second` over
    /// `workers` workers; `None` when there is no cap (0).
    pub fn for_worker(max_requests_per_second: u64, workers: usize, now: Instant) -> Option<Self> {
        (max_requests_per_second > 0)
            .then(|| Self::new(max_requests_per_second as f64 / workers as f64, now))
    }

    /// Start over with one token at `now` (when the run starts, after
    /// setup).
    pub fn restart(&mut self, now: Instant) {
        *self = Self::new(self.per_second, now);
    }

    /// Add the tokens earned since the last refill.
    pub fn refill(&mut self, now: Instant) {
        if now > self.refilled_at {
            let earned = (now - self.refilled_at).as_secs_f64() * self.per_second;
            self.tokens = (self.tokens + earned).min(self.capacity);
            self.refilled_at = now;
        }
    }

    /// Take a token if there is one.
    pub fn try_take(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long after the last refill the next token is there; at least
    /// [`RATE_MIN_WAIT`].
    pub fn wait(&self) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::try_from_secs_f64(missing / self.per_second)
            .unwrap_or(Duration::MAX)
            .max(RATE_MIN_WAIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_paces_and_bursts_at_most_its_capacity() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // 1000 a second: capacity 10 (10 ms worth), one token at the start.
        let mut l = RateLimiter::new(1000.0, t0);
        assert!(l.try_take());
        assert!(!l.try_take());
        assert_eq!(l.wait(), ms(1));
        l.refill(t0 + ms(5));
        assert_eq!((0..20).filter(|_| l.try_take()).count(), 5);
        // Idle for a second: no more than the capacity at once.
        l.refill(t0 + ms(1005));
        assert_eq!((0..100).filter(|_| l.try_take()).count(), 10);
        // An earlier instant changes nothing.
        l.refill(t0);
        assert!(!l.try_take());
        // Over a simulated second in 1 ms steps: 1000 tokens (+ the last
        // fraction).
        let mut taken = 0;
        for step in 1..=1000 {
            l.refill(t0 + ms(1005 + step));
            while l.try_take() {
                taken += 1;
            }
        }
        assert!((999..=1000).contains(&taken), "{taken}");

        // Slow rates: a capacity of one token, and waits longer than 1 ms.
        let mut slow = RateLimiter::new(2.0, t0);
        assert!(slow.try_take());
        assert_eq!(slow.wait(), ms(500));
        slow.refill(t0 + Duration::from_secs(10));
        assert!(slow.try_take());
        assert!(!slow.try_take());
        // A tiny share still gives a finite wait.
        let tiny = RateLimiter {
            tokens: 0.0,
            ..RateLimiter::new(1e-300, t0)
        };
        assert_eq!(tiny.wait(), Duration::MAX);
    }

    #[test]
    fn share_and_restart() {
        let t0 = Instant::now();
        assert!(RateLimiter::for_worker(0, 2, t0).is_none());
        let mut l = RateLimiter::for_worker(2000, 2, t0).unwrap();
        assert_eq!(l.per_second, 1000.0);
        assert!(l.try_take());
        assert!(!l.try_take());
        let t1 = t0 + Duration::from_secs(5);
        l.restart(t1);
        assert!(l.try_take());
        assert!(!l.try_take());
        assert_eq!(l.refilled_at, t1);
    }
}
