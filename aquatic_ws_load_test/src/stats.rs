//! What the load tester counts, the checks that the counts add up, the
//! summary and the progress lines (the counting mechanics are in
//! aquatic_load_test_common).

use std::collections::HashMap;
use std::time::Duration;

use aquatic_load_test_common::per_second;
use aquatic_load_test_common::run::rounded_secs;
use serde::Serialize;

/// Counts of one worker, or totals over all workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Announces written to a connection (each with its offers).
    pub announces_sent: u64,
    /// Replies to announces (`complete`, `incomplete`, `interval`, for the
    /// announced info hash).
    pub announce_replies: u64,
    /// Scrapes written to a connection.
    pub scrapes_sent: u64,
    /// Replies to scrapes (`files`).
    pub scrape_replies: u64,
    /// Failure reasons in reply to an announce or scrape.
    pub failures: u64,
    /// Failure reasons that answer no request in flight (such as one about
    /// an answer).
    pub other_failures: u64,
    /// Offers carried by the announces sent.
    pub offers_sent: u64,
    /// Other peers' offers relayed to our connections.
    pub offers_received: u64,
    /// Offers received that came from the receiving peer itself.
    pub own_offers_received: u64,
    /// Answers written, one per offer received.
    pub answers_sent: u64,
    /// Offers received that could not be answered: their connection
    /// failed.
    pub offers_unanswered: u64,
    /// Answers relayed to us for offers the receiving connection made.
    pub answers_received: u64,
    /// Answers relayed to us with an offer id the receiving connection
    /// never sent.
    pub answers_unknown: u64,
    /// Tracker messages that are not understood: not JSON, not a tracker
    /// message, binary, or a WebSocket protocol error (which also closes
    /// the connection).
    pub invalid: u64,
    /// Replies that answer no request in flight: a second reply, or one
    /// for another info hash.
    pub unexpected: u64,
    /// Requests without a reply within the request timeout (their
    /// connection was closed and a new one opened).
    pub timeouts: u64,
    /// Requests in flight when their connection was closed or failed.
    pub dropped: u64,
    /// Connections that failed before their WebSocket handshake was done:
    /// refused, reset, timed out, or a failed TLS or WebSocket handshake.
    pub connection_errors: u64,
    /// WebSocket handshakes completed.
    pub connections_opened: u64,
    /// Connections opened after one was closed or failed (not counting
    /// the first of each connection slot).
    pub reconnects: u64,
    /// Open connections the tracker closed (a close frame, the end of the
    /// TCP connection, or a reset), each then opened anew.
    pub tracker_closes: u64,
    /// Connections closed by us after `requests_per_connection` replies,
    /// each replaced by a new one.
    pub retired: u64,
}

aquatic_load_test_common::impl_counts!(Counts {
    announces_sent,
    announce_replies,
    scrapes_sent,
    scrape_replies,
    failures,
    other_failures,
    offers_sent,
    offers_received,
    own_offers_received,
    answers_sent,
    offers_unanswered,
    answers_received,
    answers_unknown,
    invalid,
    unexpected,
    timeouts,
    dropped,
    connection_errors,
    connections_opened,
    reconnects,
    tracker_closes,
    retired,
});

impl Counts {
    /// Replies to announces and scrapes: the number a tracker is judged
    /// by (failure reasons are not in it).
    pub fn responses(&self) -> u64 {
        self.announce_replies + self.scrape_replies
    }

    pub fn requests_sent(&self) -> u64 {
        self.announces_sent + self.scrapes_sent
    }

    /// Replies and messages that should not be there in a clean run:
    /// failure reasons, replies not understood or not expected, timeouts
    /// and messages dropped (connection errors, closes and reconnects are
    /// counted apart).
    pub fn problems(&self) -> u64 {
        self.failures
            + self.other_failures
            + self.invalid
            + self.unexpected
            + self.timeouts
            + self.dropped
    }
}

/// Totals shared by all workers; read by the main thread.
pub type SharedCounts = aquatic_load_test_common::SharedCounts<Counts>;

/// Most distinct failure reasons a worker keeps (with their counts); any
/// further ones are counted under [`OTHER_REASONS`].
pub const MAX_FAILURE_REASONS: usize = 16;

/// Longest failure reason kept (in characters); longer ones are cut.
const MAX_REASON_CHARS: usize = 200;

/// The bucket of failure reasons beyond [`MAX_FAILURE_REASONS`].
pub const OTHER_REASONS: &str = "(other reasons)";

/// Distinct failure reasons and how often each came, bounded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailureReasons(HashMap<String, u64>);

impl FailureReasons {
    pub fn add(&mut self, reason: &str, count: u64) {
        if let Some(n) = self.0.get_mut(reason) {
            *n += count;
            return;
        }
        let key = if self.0.len() < MAX_FAILURE_REASONS {
            reason.chars().take(MAX_REASON_CHARS).collect()
        } else {
            OTHER_REASONS.to_owned()
        };
        *self.0.entry(key).or_default() += count;
    }

    pub fn merge(&mut self, other: &FailureReasons) {
        for (reason, count) in &other.0 {
            self.add(reason, *count);
        }
    }

    /// Most frequent first.
    pub fn sorted(&self) -> Vec<(&str, u64)> {
        let mut list: Vec<(&str, u64)> = self.0.iter().map(|(r, n)| (r.as_str(), *n)).collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        list
    }
}

/// One relation the counts must satisfy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    /// What holds (or should), with the numbers.
    pub text: String,
}

/// What a finished load test measured.
#[derive(Clone, Debug)]
pub struct Summary {
    pub totals: Counts,
    /// From the start of the workers to the stop signal.
    pub elapsed: Duration,
    /// Requests sent and unanswered when the workers stopped.
    pub in_flight_at_end: u64,
    pub failure_reasons: FailureReasons,
}

impl Summary {
    fn seconds(&self) -> f64 {
        self.elapsed.as_secs_f64()
    }

    /// Announce and scrape replies per second over the run, rounded to one
    /// decimal.
    pub fn responses_per_second(&self) -> f64 {
        per_second(self.totals.responses(), self.seconds())
    }

    /// Whether the counts add up. Against a tracker that only this load
    /// test talks to, every check holds: offers and answers are relayed
    /// only between its own peers.
    pub fn checks(&self) -> Vec<Check> {
        let t = &self.totals;
        let check = |ok: bool, text: String| Check { ok, text };
        let accounted = t.responses() + t.failures + t.timeouts + t.dropped + self.in_flight_at_end;
        vec![
            check(
                accounted == t.requests_sent(),
                format!(
                    "every request answered, failed, timed out, dropped or in flight: {} of {}",
                    accounted,
                    t.requests_sent()
                ),
            ),
            check(
                t.offers_received <= t.offers_sent,
                format!(
                    "offers received <= offers sent: {} <= {}",
                    t.offers_received, t.offers_sent
                ),
            ),
            check(
                t.own_offers_received == 0,
                format!(
                    "no offer relayed back to its sender: {}",
                    t.own_offers_received
                ),
            ),
            check(
                t.answers_sent + t.offers_unanswered == t.offers_received,
                format!(
                    "every offer received answered: {} answered + {} lost with their connection = {} received",
                    t.answers_sent, t.offers_unanswered, t.offers_received
                ),
            ),
            check(
                t.answers_received <= t.answers_sent,
                format!(
                    "answers received <= answers sent: {} <= {}",
                    t.answers_received, t.answers_sent
                ),
            ),
            check(
                t.answers_unknown == 0,
                format!(
                    "every answer received is for an offer its connection made: {} not",
                    t.answers_unknown
                ),
            ),
        ]
    }

    pub fn checks_pass(&self) -> bool {
        self.checks().iter().all(|c| c.ok)
    }

    /// The lines printed before the summary tail: totals, checks, failure
    /// reasons (when there were any).
    pub fn report(&self) -> String {
        let t = &self.totals;
        let s = self.seconds();
        let mut text = format!(
            "totals over {s:.1} s: {} responses (announce {}, scrape {}), {} failure reasons (+{} to no request), \
             {} announces and {} scrapes sent, {} offers sent, {} received ({} own), {} answers sent, {} offers unanswered, \
             {} answers received ({} unknown), {} invalid, {} unexpected, {} timeouts, {} dropped, \
             {} connections opened, {} retired, {} reconnects, {} closed by tracker, {} connection errors, {} in flight at the end\n\
             per second: offers received {}, answers sent {}, answers received {}, failures {}",
            t.responses(),
            t.announce_replies,
            t.scrape_replies,
            t.failures,
            t.other_failures,
            t.announces_sent,
            t.scrapes_sent,
            t.offers_sent,
            t.offers_received,
            t.own_offers_received,
            t.answers_sent,
            t.offers_unanswered,
            t.answers_received,
            t.answers_unknown,
            t.invalid,
            t.unexpected,
            t.timeouts,
            t.dropped,
            t.connections_opened,
            t.retired,
            t.reconnects,
            t.tracker_closes,
            t.connection_errors,
            self.in_flight_at_end,
            per_second(t.offers_received, s),
            per_second(t.answers_sent, s),
            per_second(t.answers_received, s),
            per_second(t.failures + t.other_failures, s),
        );
        for c in self.checks() {
            text.push_str(&format!(
                "\ncheck {}: {}",
                if c.ok { "ok" } else { "FAILED" },
                c.text
            ));
        }
        let reasons = self.failure_reasons.sorted();
        if !reasons.is_empty() {
            let list: Vec<String> = reasons
                .iter()
                .map(|(reason, n)| format!("{reason:?} x{n}"))
                .collect();
            text.push_str(&format!("\nfailure reasons: {}", list.join(", ")));
        }
        text
    }

    /// The machine-readable summary.
    pub fn to_json(&self) -> JsonSummary {
        let s = self.seconds();
        let t = &self.totals;
        JsonSummary {
            responses_per_second: self.responses_per_second(),
            announce: per_second(t.announce_replies, s),
            scrape: per_second(t.scrape_replies, s),
            error: per_second(t.failures + t.other_failures, s),
            offers_received: per_second(t.offers_received, s),
            answers_sent: per_second(t.answers_sent, s),
            answers_received: per_second(t.answers_received, s),
            requests_sent: t.requests_sent(),
            offers_sent: t.offers_sent,
            timeouts: t.timeouts,
            reconnects: t.reconnects,
            tracker_closes: t.tracker_closes,
            duration_secs: rounded_secs(s),
            announce_responses_total: t.announce_replies,
            checks_pass: self.checks_pass(),
        }
    }
}

/// The `--json` line: rates per second (one decimal) by message kind
/// (`error`: failure reasons), totals over `duration_secs`, and whether
/// every check held.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JsonSummary {
    pub responses_per_second: f64,
    pub announce: f64,
    pub scrape: f64,
    pub error: f64,
    pub offers_received: f64,
    pub answers_sent: f64,
    pub answers_received: f64,
    pub requests_sent: u64,
    pub offers_sent: u64,
    pub timeouts: u64,
    pub reconnects: u64,
    pub tracker_closes: u64,
    pub duration_secs: f64,
    /// Announce replies over the run.
    pub announce_responses_total: u64,
    pub checks_pass: bool,
}

impl std::fmt::Display for JsonSummary {
    /// One line of JSON, keys in declaration order.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

/// One progress line: rates over an interval of `seconds`.
pub fn interval_line(elapsed_total: Duration, interval: &Counts, seconds: f64) -> String {
    let rate = |n: u64| per_second(n, seconds).round();
    format!(
        "{:>7.1} s  responses/s: {} (announce {}, scrape {}, failure {})  offers in/s {}, answers out/s {}, answers in/s {}  timeouts {}, reconnects {}, closed by tracker {}, connection errors {}",
        elapsed_total.as_secs_f64(),
        rate(interval.responses()),
        rate(interval.announce_replies),
        rate(interval.scrape_replies),
        rate(interval.failures + interval.other_failures),
        rate(interval.offers_received),
        rate(interval.answers_sent),
        rate(interval.answers_received),
        interval.timeouts,
        interval.reconnects,
        interval.tracker_closes,
        interval.connection_errors,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary {
            totals: Counts {
                announces_sent: 110,
                announce_replies: 100,
                scrapes_sent: 20,
                scrape_replies: 20,
                failures: 6,
                timeouts: 1,
                dropped: 1,
                offers_sent: 550,
                offers_received: 400,
                answers_sent: 398,
                offers_unanswered: 2,
                answers_received: 390,
                reconnects: 2,
                ..Counts::default()
            },
            elapsed: Duration::from_secs(4),
            in_flight_at_end: 2,
            failure_reasons: FailureReasons::default(),
        }
    }

    #[test]
    fn json_has_rates_and_totals() {
        let text = summary().to_json().to_string();
        assert!(
            text.starts_with("{\"responses_per_second\":30.0,\"announce\":25.0,"),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["scrape"], 5.0);
        assert_eq!(v["error"], 1.5);
        assert_eq!(v["offers_received"], 100.0);
        assert_eq!(v["answers_received"], 97.5);
        assert_eq!(v["requests_sent"], 130);
        assert_eq!(v["announce_responses_total"], 100);
        assert_eq!(v["duration_secs"], 4.0);
        assert_eq!(v["checks_pass"], true);
        let line = interval_line(Duration::from_secs(2), &summary().totals, 2.0);
        assert!(
            line.contains("responses/s: 60 (announce 50, scrape 10, failure 3)"),
            "{line}"
        );
    }

    #[test]
    fn checks_catch_counts_that_do_not_add_up() {
        let good = summary();
        assert!(good.checks_pass(), "{}", good.report());
        assert!(!good.report().contains("FAILED"));
        let broken = |edit: fn(&mut Counts)| {
            let mut s = summary();
            edit(&mut s.totals);
            assert!(!s.checks_pass(), "{}", s.report());
            assert!(s.report().contains("check FAILED"));
        };
        broken(|t| t.answers_received = t.answers_sent + 1);
        broken(|t| t.offers_received = t.offers_sent + 1);
        broken(|t| t.answers_sent -= 1);
        broken(|t| t.announces_sent += 1);
        broken(|t| t.answers_unknown = 1);
        broken(|t| t.own_offers_received = 1);
    }

    #[test]
    fn failure_reasons_are_bounded() {
        let mut a = FailureReasons::default();
        for i in 0..MAX_FAILURE_REASONS + 5 {
            a.add(&format!("reason {i}"), 1);
        }
        a.add("reason 0", 2);
        a.add(&"x".repeat(1000), 1);
        let sorted = a.sorted();
        assert_eq!(sorted.len(), MAX_FAILURE_REASONS + 1);
        assert_eq!(sorted[0], (OTHER_REASONS, 6));
        assert_eq!(sorted[1], ("reason 0", 3));
        let mut b = FailureReasons::default();
        b.add(&"y".repeat(1000), 4);
        b.add("reason 0", 1);
        let long = "y".repeat(MAX_REASON_CHARS);
        assert_eq!(b.sorted(), vec![(long.as_str(), 4), ("reason 0", 1)]);
        let mut c = FailureReasons::default();
        c.merge(&b);
        c.merge(&b);
        assert_eq!(c.sorted(), vec![(long.as_str(), 8), ("reason 0", 2)]);
    }
}
