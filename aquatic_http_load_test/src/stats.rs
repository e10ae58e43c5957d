//! What the load tester counts, the summary and the progress lines (the
//! counting mechanics are in aquatic_load_test_common).

use std::time::Duration;

use aquatic_load_test_common::per_second;
use aquatic_load_test_common::run::rounded_secs;
use serde::Serialize;

/// Counts of one worker, or totals over all workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Complete responses to announces: status 200 and a bencoded
    /// dictionary with `peers` or `peers6`.
    pub announce: u64,
    /// Complete responses to scrapes: status 200 and a bencoded dictionary
    /// with `files`.
    pub scrape: u64,
    /// Complete responses whose body is a bencoded `failure reason` (any
    /// status).
    pub failure: u64,
    /// Complete responses with a status other than 200 and no failure
    /// reason (404, 431, 503, ...).
    pub error_status: u64,
    /// Requests written completely to the connection.
    pub requests_sent: u64,
    /// Requests sent that got no complete response within the request
    /// timeout (their connection was closed).
    pub timeouts: u64,
    /// Responses that were not understood: a malformed or chunked head, a
    /// body too large, bytes beyond the response, or a status 200 body that
    /// is not a well-formed answer to the request's kind.
    pub invalid: u64,
    /// Requests sent whose connection failed or was closed by the tracker
    /// before the whole response arrived.
    pub dropped: u64,
    /// Connections that failed before their request was written: refused,
    /// reset, timed out while connecting, or a failed TLS handshake.
    pub connection_errors: u64,
    /// TCP connections opened (in close mode about one per request).
    pub connections_opened: u64,
    /// Connections opened anew after an error, a timeout, a dropped or
    /// invalid response (not counting the planned ones: the first of each
    /// connection, one per request with `keep_alive = false`, and those
    /// after a tracker announced it closes, counted in `tracker_closes`).
    pub reconnects: u64,
    /// With `keep_alive = true`: responses after which the tracker closed
    /// the connection, so the next request needed a new one: it said so
    /// (`Connection: close`, or HTTP/1.0 without keep-alive), or its close
    /// arrived with the response (opentracker closes after every response
    /// without saying so; when its close comes only after the next request
    /// went out, that request counts as dropped). Also connections the
    /// tracker closed while they waited for the rate cap.
    pub tracker_closes: u64,
}

aquatic_load_test_common::impl_counts!(Counts {
    announce,
    scrape,
    failure,
    error_status,
    requests_sent,
    timeouts,
    invalid,
    dropped,
    connection_errors,
    connections_opened,
    reconnects,
    tracker_closes,
});

impl Counts {
    /// Responses of every kind (the number a tracker is judged by):
    /// announce, scrape, failure and other status.
    pub fn responses(&self) -> u64 {
        self.announce + self.scrape + self.errors()
    }

    /// Error responses: failure reasons and statuses other than 200.
    pub fn errors(&self) -> u64 {
        self.failure + self.error_status
    }
}

/// Totals shared by all workers; read by the main thread.
pub type SharedCounts = aquatic_load_test_common::SharedCounts<Counts>;

/// What a finished load test measured.
#[derive(Clone, Debug)]
pub struct Summary {
    pub totals: Counts,
    /// From the start of the workers to the stop signal.
    pub elapsed: Duration,
    /// Requests sent and unanswered when the workers stopped. Every request
    /// sent got a response (understood or invalid), timed out, was dropped,
    /// or is one of these.
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

    /// The machine-readable summary.
    pub fn to_json(&self) -> JsonSummary {
        let s = self.seconds();
        let t = &self.totals;
        JsonSummary {
            responses_per_second: self.responses_per_second(),
            announce: per_second(t.announce, s),
            scrape: per_second(t.scrape, s),
            error: per_second(t.errors(), s),
            requests_sent: t.requests_sent,
            timeouts: t.timeouts,
            reconnects: t.reconnects,
            duration_secs: rounded_secs(s),
            announce_responses_total: t.announce,
        }
    }

    /// One human-readable line of totals.
    pub fn totals_line(&self) -> String {
        let t = &self.totals;
        format!(
            "totals over {:.1} s: {} responses (announce {}, scrape {}, failure {}, other status {}), {} requests sent, {} timeouts, {} invalid, {} dropped, {} connections opened, {} reconnects, {} closed by tracker, {} connection errors",
            self.seconds(),
            t.responses(),
            t.announce,
            t.scrape,
            t.failure,
            t.error_status,
            t.requests_sent,
            t.timeouts,
            t.invalid,
            t.dropped,
            t.connections_opened,
            t.reconnects,
            t.tracker_closes,
            t.connection_errors,
        )
    }
}

/// The `--json` line: rates per second (one decimal) by response kind
/// (`error`: failure reasons and other statuses), totals of requests sent,
/// timeouts, reconnects and announce responses over `duration_secs`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JsonSummary {
    pub responses_per_second: f64,
    pub announce: f64,
    pub scrape: f64,
    pub error: f64,
    pub requests_sent: u64,
    pub timeouts: u64,
    pub reconnects: u64,
    pub duration_secs: f64,
    /// Announce responses over the run: with a rate cap, how many announces
    /// (each from a new peer) the tracker took in.
    pub announce_responses_total: u64,
}

impl std::fmt::Display for JsonSummary {
    /// One line of JSON, keys in declaration order.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

/// One progress line: rates by kind over an interval of `seconds`.
pub fn interval_line(elapsed_total: Duration, interval: &Counts, seconds: f64) -> String {
    let rate = |n: u64| per_second(n, seconds).round();
    format!(
        "{:>7.1} s  responses/s: {} (announce {}, scrape {}, error {})  timeouts {}, reconnects {}, invalid {}, connection errors {}",
        elapsed_total.as_secs_f64(),
        rate(interval.responses()),
        rate(interval.announce),
        rate(interval.scrape),
        rate(interval.errors()),
        interval.timeouts,
        interval.reconnects,
        interval.invalid,
        interval.connection_errors,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_rates_and_totals() {
        let summary = Summary {
            totals: Counts {
                announce: 100,
                scrape: 20,
                failure: 6,
                error_status: 4,
                requests_sent: 135,
                timeouts: 3,
                reconnects: 7,
                ..Counts::default()
            },
            elapsed: Duration::from_secs(4),
            in_flight_at_end: 2,
        };
        let text = summary.to_json().to_string();
        assert!(
            text.starts_with("{\"responses_per_second\":32.5,\"announce\":25.0,"),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["scrape"], 5.0);
        assert_eq!(v["error"], 2.5);
        assert_eq!(v["requests_sent"], 135);
        assert_eq!(v["timeouts"], 3);
        assert_eq!(v["reconnects"], 7);
        assert_eq!(v["announce_responses_total"], 100);
        assert_eq!(v["duration_secs"], 4.0);
        assert_eq!(v.as_object().unwrap().len(), 9);
        assert!(summary.totals_line().contains("130 responses"));
        let line = interval_line(Duration::from_secs(2), &summary.totals, 2.0);
        assert!(
            line.contains("responses/s: 65 (announce 50, scrape 10, error 5)"),
            "{line}"
        );
    }
}
