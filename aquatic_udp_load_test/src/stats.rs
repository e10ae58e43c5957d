//! Counters: plain ones each worker bumps in its hot loop, and shared atomic
//! totals the workers add them to once per poll round (the mechanics are in
//! aquatic_load_test_common); the summary and progress lines.

use std::time::Duration;

use aquatic_load_test_common::per_second;
use aquatic_load_test_common::run::rounded_secs;
use serde::Serialize;

/// Counts of one worker, or totals over all workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Connect responses with the expected transaction id.
    pub connect: u64,
    /// Announce responses with the expected transaction id.
    pub announce: u64,
    /// Scrape responses with the expected transaction id.
    pub scrape: u64,
    /// Error responses with the expected transaction id.
    pub error: u64,
    /// Requests handed to the kernel.
    pub requests_sent: u64,
    /// Requests that got no answer within the request timeout.
    pub timeouts: u64,
    /// Answers with the expected transaction id but the wrong action or a
    /// malformed body.
    pub invalid: u64,
    /// Packets with another transaction id than the one in flight (late
    /// answers to timed-out requests, or garbage).
    pub stale: u64,
    /// Send or receive errors from the socket (e.g. ICMP port unreachable
    /// while no tracker listens).
    pub socket_errors: u64,
}

aquatic_load_test_common::impl_counts!(Counts {
    connect,
    announce,
    scrape,
    error,
    requests_sent,
    timeouts,
    invalid,
    stale,
    socket_errors,
});

impl Counts {
    /// Responses of every type (the number a tracker is judged by).
    pub fn responses(&self) -> u64 {
        self.connect + self.announce + self.scrape + self.error
    }
}

/// Totals shared by all workers; read by the main thread.
pub type SharedCounts = aquatic_load_test_common::SharedCounts<Counts>;

/// What a finished load test measured.
#[derive(Clone, Debug)]
pub struct Summary {
    pub totals: Counts,
    /// From the first request to the stop signal.
    pub elapsed: Duration,
    /// Requests unanswered when the workers stopped. Every request sent was
    /// answered (validly or not), timed out, or is one of these.
    pub in_flight_at_end: u64,
}

impl Summary {
    fn seconds(&self) -> f64 {
        self.elapsed.as_secs_f64()
    }

    /// All responses per second over the run, rounded to one decimal.
    pub fn responses_per_second(&self) -> f64 {
        per_second(self.totals.responses(), self.seconds())
    }

    /// The machine-readable summary: per-second rates by response type,
    /// totals of requests sent, timeouts and announce responses.
    pub fn to_json(&self) -> JsonSummary {
        let s = self.seconds();
        let t = &self.totals;
        JsonSummary {
            responses_per_second: self.responses_per_second(),
            connect: per_second(t.connect, s),
            announce: per_second(t.announce, s),
            scrape: per_second(t.scrape, s),
            error: per_second(t.error, s),
            requests_sent: t.requests_sent,
            timeouts: t.timeouts,
            announce_responses_total: t.announce,
            duration_secs: rounded_secs(s),
        }
    }

    /// One human-readable line of totals.
    pub fn totals_line(&self) -> String {
        let t = &self.totals;
        format!(
            "totals over {:.1} s: {} responses (connect {}, announce {}, scrape {}, error {}), {} requests sent, {} timeouts, {} invalid, {} stale, {} socket errors",
            self.seconds(),
            t.responses(),
            t.connect,
            t.announce,
            t.scrape,
            t.error,
            t.requests_sent,
            t.timeouts,
            t.invalid,
            t.stale,
            t.socket_errors,
        )
    }
}

/// The `--json` line: rates per second (one decimal) by response type, and
/// totals of requests sent, timeouts and announce responses over
/// `duration_secs`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JsonSummary {
    pub responses_per_second: f64,
    pub connect: f64,
    pub announce: f64,
    pub scrape: f64,
    pub error: f64,
    pub requests_sent: u64,
    pub timeouts: u64,
    /// Announce responses over the run: with a rate cap, how many announces
    /// (each from a new peer) the tracker took in.
    pub announce_responses_total: u64,
    pub duration_secs: f64,
}

impl std::fmt::Display for JsonSummary {
    /// One line of JSON, keys in declaration order.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

/// One progress line: rates by type over an interval of `seconds`.
pub fn interval_line(elapsed_total: Duration, interval: &Counts, seconds: f64) -> String {
    let rate = |n: u64| per_second(n, seconds).round();
    format!(
        "{:>7.1} s  responses/s: {} (connect {}, announce {}, scrape {}, error {})  timeouts {}, invalid {}",
        elapsed_total.as_secs_f64(),
        rate(interval.responses()),
        rate(interval.connect),
        rate(interval.announce),
        rate(interval.scrape),
        rate(interval.error),
        interval.timeouts,
        interval.invalid,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_rates_and_totals() {
        let summary = Summary {
            totals: Counts {
                connect: 10,
                announce: 100,
                scrape: 20,
                error: 0,
                requests_sent: 135,
                timeouts: 3,
                ..Counts::default()
            },
            elapsed: Duration::from_secs(4),
            in_flight_at_end: 2,
        };
        let text = summary.to_json().to_string();
        assert!(
            text.starts_with("{\"responses_per_second\":32.5,\"connect\":2.5,"),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["responses_per_second"], 32.5);
        assert_eq!(v["connect"], 2.5);
        assert_eq!(v["announce"], 25.0);
        assert_eq!(v["scrape"], 5.0);
        assert_eq!(v["error"], 0.0);
        assert_eq!(v["requests_sent"], 135);
        assert_eq!(v["timeouts"], 3);
        assert_eq!(v["announce_responses_total"], 100);
        assert_eq!(v["duration_secs"], 4.0);
        assert_eq!(v.as_object().unwrap().len(), 9);
    }

    #[test]
    fn shared_counts_accumulate() {
        let shared = SharedCounts::default();
        let mut local = Counts {
            announce: 5,
            requests_sent: 6,
            ..Counts::default()
        };
        shared.add_and_reset(&mut local);
        assert_eq!(local, Counts::default());
        local.announce = 1;
        shared.add_and_reset(&mut local);
        let snap = shared.snapshot();
        assert_eq!(snap.announce, 6);
        assert_eq!(snap.requests_sent, 6);
        assert_eq!(snap.responses(), 6);
    }
}
