//! The defences an operator switches on, as one socket worker applies
//! them: the IP filter ([`crate::ip_filter`]), the per-source rate limit
//! ([`crate::rate_limit`]) and, for HTTP and WebSocket, the allowed host
//! names (`aquatic_wire::host`); with what each refused, counted for
//! `/metrics` and the status page as `PREFIX_refused_total{reason}`.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ip_filter::IpFilterCache;
use crate::metrics::{Collector, DescriptorEncoder, write_counters};
use crate::rate_limit::RateLimiter;
use crate::statistics::add;

/// What one socket worker's defences refused.
#[derive(Default, Debug)]
pub struct DefenceCounters {
    /// Datagrams dropped (UDP) or connections closed at accept (HTTP, WS)
    /// because the IP filter refuses their address; announces and scrapes
    /// answered with a failure reason on an open connection (forwarded
    /// by a trusted proxy, or the filter reloaded since), and WebSocket
    /// upgrades a trusted proxy forwards answered 403.
    pub ip_filter: AtomicU64,
    /// Announces and scrapes over their source's rate: dropped (UDP) or
    /// answered with a failure reason (HTTP, WS).
    pub rate_limit: AtomicU64,
    /// HTTP requests and WebSocket upgrades for a host name that is not in
    /// `allowed_hosts`: 421.
    pub wrong_host: AtomicU64,
}

/// A socket worker's defences.
pub struct Defences {
    filter: IpFilterCache,
    limiter: Option<RateLimiter>,
    counters: Arc<DefenceCounters>,
}

impl Defences {
    pub fn new(
        filter: IpFilterCache,
        limiter: Option<RateLimiter>,
        counters: Arc<DefenceCounters>,
    ) -> Self {
        Self {
            filter,
            limiter,
            counters,
        }
    }

    /// Whether the IP filter lets `ip` in; a refusal is counted.
    pub fn admits(&mut self, ip: IpAddr) -> bool {
        let admitted = self.filter.passes(&ip);
        if !admitted {
            add(&self.counters.ip_filter, 1);
        }
        admitted
    }

    /// Whether an announce or scrape from `ip` is within its source's
    /// rate (always, with rate limits off); a refusal is counted.
    pub fn within_rate(&mut self, ip: IpAddr) -> bool {
        let Some(limiter) = &mut self.limiter else {
            return true;
        };
        let allowed = limiter.allows(ip);
        if !allowed {
            add(&self.counters.rate_limit, 1);
        }
        allowed
    }

    /// Count a request refused for its `Host`.
    pub fn count_wrong_host(&self) {
        add(&self.counters.wrong_host, 1);
    }
}

/// The failure reason HTTP and WebSocket clients get for a request from
/// an address the IP filter refuses (forwarded by a trusted proxy, or on
/// a connection opened before a reload refused its address).
pub const FAILURE_ADDRESS_REFUSED: &str = "address refused";

/// The failure reason HTTP and WebSocket clients get over their rate.
pub const FAILURE_RATE_LIMITED: &str = "rate limit exceeded, announce less often";

/// Every socket worker's [`DefenceCounters`] as `PREFIX_refused_total`.
pub struct DefenceCollector {
    workers: Vec<Arc<DefenceCounters>>,
    labels: Vec<String>,
}

impl DefenceCollector {
    pub fn new(workers: Vec<Arc<DefenceCounters>>) -> Self {
        let labels = (0..workers.len()).map(|i| i.to_string()).collect();
        Self { workers, labels }
    }
}

impl fmt::Debug for DefenceCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefenceCollector")
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl Collector for DefenceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut samples = Vec::new();
        for (worker, counters) in self.labels.iter().zip(&self.workers) {
            for (reason, counter) in [
                ("ip_filter", &counters.ip_filter),
                ("rate_limit", &counters.rate_limit),
                ("wrong_host", &counters.wrong_host),
            ] {
                samples.push((
                    [("reason", reason), ("worker", worker.as_str())],
                    counter.load(Ordering::Relaxed),
                ));
            }
        }
        write_counters(
            &mut encoder,
            "refused",
            "Refused by a defence the operator switched on: ip_filter (address refused by [ip_filter]: UDP datagram dropped, TCP connection closed at accept, a request on an open connection answered with a failure reason, a proxied WebSocket upgrade answered 403), rate_limit (announce or scrape over its source's [rate_limit]: UDP dropped, HTTP/WebSocket failure reason), wrong_host (HTTP request or WebSocket upgrade for a Host not in allowed_hosts: 421).",
            None,
            samples,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip_filter::{IpFilterConfig, IpFilterMode, IpFilters};
    use crate::metrics::{Registry, render};
    use crate::rate_limit::RateLimitConfig;

    #[test]
    fn refusals_are_counted_and_exported() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "192.0.2.0/24\n").unwrap();
        let filters = IpFilters::load(&IpFilterConfig {
            mode: IpFilterMode::Deny,
            path: file.path().to_owned(),
        })
        .unwrap();
        let counters: Arc<DefenceCounters> = Arc::default();
        let limiter = RateLimitConfig {
            enabled: true,
            per_second: 0.001,
            burst: 2,
            ..RateLimitConfig::default()
        }
        .limiter();
        let mut defences = Defences::new(filters.cache(), limiter, counters.clone());
        assert!(!defences.admits("192.0.2.9".parse().unwrap()));
        assert!(defences.admits("198.51.100.1".parse().unwrap()));
        let ip = "198.51.100.1".parse().unwrap();
        assert_eq!((0..5).filter(|_| defences.within_rate(ip)).count(), 2);
        defences.count_wrong_host();

        let mut registry = Registry::with_prefix("aquatic_test");
        registry.register_collector(Box::new(DefenceCollector::new(vec![counters])));
        let text = render(&registry).unwrap();
        for line in [
            "aquatic_test_refused_total{reason=\"ip_filter\",worker=\"0\"} 1",
            "aquatic_test_refused_total{reason=\"rate_limit\",worker=\"0\"} 3",
            "aquatic_test_refused_total{reason=\"wrong_host\",worker=\"0\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
    }
}
