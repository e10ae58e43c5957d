//! The token bucket behind `max_requests_per_second`: each worker paces its
//! share of the cap with one, and queues the sockets or connections
//! waiting for a token in a [`Throttle`].

use std::collections::VecDeque;
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

/// A worker's share of the rate cap and its queue of slots (sockets or
/// connections, by index) waiting for a token, longest waiting first.
/// Without a cap every slot starts its request at once.
#[derive(Clone, Debug)]
pub struct Throttle {
    limiter: Option<RateLimiter>,
    /// Slots waiting for a token, in the order they became ready.
    waiting: VecDeque<usize>,
}

impl Throttle {
    /// A worker's share of a cap of `max_requests_per_second` (0: none)
    /// over `workers` workers, for `slots` sockets or connections.
    pub fn for_worker(
        max_requests_per_second: u64,
        workers: usize,
        slots: usize,
        now: Instant,
    ) -> Self {
        Self {
            limiter: RateLimiter::for_worker(max_requests_per_second, workers, now),
            waiting: VecDeque::with_capacity(slots),
        }
    }

    /// Start the bucket over with one token (when the run starts).
    pub fn restart(&mut self, now: Instant) {
        if let Some(limiter) = &mut self.limiter {
            limiter.restart(now);
        }
    }

    /// `timeout`, shortened to wake up for the next token (at 1 ms
    /// granularity) while slots wait.
    pub fn poll_timeout(&self, timeout: Duration) -> Duration {
        match &self.limiter {
            Some(limiter) if !self.waiting.is_empty() => timeout.min(limiter.wait()),
            _ => timeout,
        }
    }

    /// Whether `slot` may start its next request now (taking a token): no
    /// cap, or no slot waits longer and there is a token. If not, `slot`
    /// is queued until [`release`](Self::release) hands it out.
    pub fn admit(&mut self, slot: usize) -> bool {
        if let Some(limiter) = &mut self.limiter
            && (!self.waiting.is_empty() || !limiter.try_take())
        {
            self.waiting.push_back(slot);
            return false;
        }
        true
    }

    /// Add the tokens earned since the last refill.
    pub fn refill(&mut self, now: Instant) {
        if let Some(limiter) = &mut self.limiter {
            limiter.refill(now);
        }
    }

    /// The longest waiting slot, if a token is there for it (taken).
    pub fn release(&mut self) -> Option<usize> {
        if !self.waiting.is_empty() && self.limiter.as_mut().is_some_and(RateLimiter::try_take) {
            self.waiting.pop_front()
        } else {
            None
        }
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

    #[test]
    fn throttle_queues_slots_in_order() {
        let start = Instant::now();
        let mut free = Throttle::for_worker(0, 1, 4, start);
        assert!((0..100).all(|i| free.admit(i)));
        assert_eq!(free.release(), None);
        assert_eq!(
            free.poll_timeout(Duration::from_millis(50)),
            Duration::from_millis(50)
        );

        // 100 a second over 2 workers: 50 each, one token to start with.
        let mut capped = Throttle::for_worker(100, 2, 4, start);
        assert!(capped.admit(0));
        assert!(!capped.admit(1));
        assert!(!capped.admit(2));
        let wait = capped.poll_timeout(Duration::from_millis(50));
        assert!(wait > Duration::from_millis(19) && wait < Duration::from_millis(21));
        capped.refill(start + Duration::from_millis(25));
        assert_eq!(capped.release(), Some(1));
        assert_eq!(capped.release(), None);
        // Slot 2 waits longer than a new one.
        capped.refill(start + Duration::from_millis(50));
        assert!(!capped.admit(3));
        assert_eq!(capped.release(), Some(2));
    }
}
