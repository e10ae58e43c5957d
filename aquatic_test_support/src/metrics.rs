//! Reading a daemon's Prometheus endpoint in tests: find its address in the
//! log, `GET /metrics`, parse the text format into samples, sum them under
//! a label filter, and lint the text with `promtool check metrics` (Debian
//! package `prometheus`, installed by scripts/install-test-deps.sh; the
//! check fails without it).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Daemon;

/// A sample: metric name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, u64);

/// A metric's name, a label filter, and the sum expected over the
/// samples that match it.
pub type Expected = (String, Vec<(&'static str, &'static str)>, u64);

/// The `[metrics]` section of the tests: on, on a free loopback port.
pub const SECTION: &str = "[metrics]\nenabled = true\naddress = \"127.0.0.1:0\"\n";

/// The workers of [`launch_two_by_two`]'s daemon, as `/stats.json` names
/// them.
pub const TWO_BY_TWO_WORKERS: [&str; 4] = ["socket-0", "socket-1", "request-0", "request-1"];

/// Start `binary` with 2 socket and 2 request workers, metrics on, and
/// `sections` (more config sections): the daemon and its metrics address.
pub fn launch_two_by_two(binary: &str, sections: &str) -> (Daemon, SocketAddr) {
    let config = format!("socket_workers = 2\nrequest_workers = 2\n{SECTION}{sections}");
    let daemon = Daemon::launch(binary, &config);
    let address = metrics_address(&daemon);
    (daemon, address)
}

/// The [`Expected`] sums of a metrics test, family by family, each named
/// `PREFIX_family`.
pub struct Expectations {
    prefix: &'static str,
    list: Vec<Expected>,
}

impl Expectations {
    pub fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            list: Vec::new(),
        }
    }

    fn push(mut self, family: &str, filter: Vec<(&'static str, &'static str)>, sum: u64) -> Self {
        self.list
            .push((format!("{}_{family}", self.prefix), filter, sum));
        self
    }

    /// `family` summed over all its series.
    pub fn total(self, family: &str, sum: u64) -> Self {
        self.push(family, Vec::new(), sum)
    }

    /// `family{label="value"}` for each `(value, sum)`.
    pub fn by(self, family: &str, label: &'static str, sums: &[(&'static str, u64)]) -> Self {
        sums.iter().fold(self, |this, &(value, sum)| {
            this.push(family, vec![(label, value)], sum)
        })
    }

    /// The swarm gauges `torrents`, `seeders` and `leechers` (of
    /// `ip_version` where given).
    pub fn swarm(
        self,
        ip_version: Option<&'static str>,
        [torrents, seeders, leechers]: [u64; 3],
    ) -> Self {
        let filter = || ip_version.map(|v| ("ip_version", v)).into_iter().collect();
        self.push("torrents", filter(), torrents)
            .push("seeders", filter(), seeders)
            .push("leechers", filter(), leechers)
    }

    pub fn build(self) -> Vec<Expected> {
        self.list
    }
}

/// The checks every daemon's metrics test ends with, on the daemon of
/// [`launch_two_by_two`] at `address`: every `expected` sum (with `extra`
/// added to each filter) scraped once the numbers settle, the same sums,
/// `daemon`'s name and its workers in `/stats.json`, a `# HELP` line for
/// each family and `promtool check metrics` on the text. The text and
/// samples of the scrape.
pub fn assert_settles_to(
    address: SocketAddr,
    daemon: &str,
    expected: &[Expected],
    extra: &[(&'static str, &'static str)],
) -> (String, Vec<Sample>) {
    let (text, samples) = wait_for_expected(address, expected, extra);
    check_health_and_stats_json(address, daemon, &TWO_BY_TWO_WORKERS, expected, extra);
    assert_help_and_promtool(&text, expected);
    (text, samples)
}

/// The endpoint's address, from the `metrics on ADDR` log line.
pub fn metrics_address(daemon: &Daemon) -> SocketAddr {
    let line = daemon
        .wait_for_log("metrics on ", Duration::from_secs(10))
        .expect("no `metrics on` log line");
    line.split("metrics on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("bad address in {line}"))
}

/// `GET path` on the metrics endpoint: the head and body of the answer.
pub fn get(address: SocketAddr, path: &str) -> (String, String) {
    let response = crate::http::exchange(
        address,
        &format!("GET {path} HTTP/1.1\r\nHost: tracker\r\nConnection: close\r\n\r\n"),
    );
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    (head.to_string(), body.to_string())
}

/// `GET /metrics`: the body of a 200 answer.
pub fn scrape(address: SocketAddr) -> String {
    let (head, body) = get(address, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body
}

/// `/health` answers 200 `ok`, and `/stats.json` names `daemon` and
/// `workers` and holds every `expected` sum (with `extra` added to each
/// filter), as `/metrics` does.
pub fn check_health_and_stats_json(
    address: SocketAddr,
    daemon: &str,
    workers: &[&str],
    expected: &[Expected],
    extra: &[(&str, &str)],
) {
    let (head, body) = get(address, "/health");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "ok\n");
    let (head, body) = get(address, "/stats.json");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["daemon"], daemon, "{body}");
    assert_eq!(json["health"], "ok", "{body}");
    assert!(json["uptime_seconds"].is_u64(), "{body}");
    let names: Vec<&str> = json["workers"]
        .as_array()
        .map(|w| w.iter().filter_map(|w| w["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, workers, "{body}");
    for (name, filter, value) in expected {
        let samples = json["metrics"][name.as_str()]["samples"].as_array();
        let sum: u64 = samples
            .into_iter()
            .flatten()
            .filter(|s| {
                filter
                    .iter()
                    .chain(extra)
                    .all(|(k, v)| s["labels"][*k].as_str() == Some(*v))
            })
            .filter_map(|s| s["value"].as_u64())
            .sum();
        assert_eq!(sum, *value, "{name} {filter:?} in /stats.json:\n{body}");
    }
}

/// Scrape `address` until every `expected` sum matches, with `extra`
/// added to each label filter (counters and gauges settle a little after
/// the traffic); the text and samples of that scrape. Fails after 10 s,
/// listing the sums that did not match.
pub fn wait_for_expected(
    address: SocketAddr,
    expected: &[Expected],
    extra: &[(&'static str, &'static str)],
) -> (String, Vec<Sample>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(address);
        let samples = parse(&text);
        let wrong: Vec<String> = expected
            .iter()
            .filter_map(|(name, labels, value)| {
                let mut filter = labels.clone();
                filter.extend_from_slice(extra);
                let got = sum(&samples, name, &filter);
                (got != *value).then(|| format!("{name} {filter:?}: {got}, expected {value}"))
            })
            .collect();
        if wrong.is_empty() {
            return (text, samples);
        }
        assert!(
            Instant::now() < deadline,
            "metrics never matched:\n{}\n\n{text}",
            wrong.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sample lines `name{k="v",...} value` (label values here hold no commas
/// or escaped quotes).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').expect("label");
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            let value = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
            (name.to_string(), labels, value)
        })
        .collect()
}

/// Sum of the `name` samples whose labels include all of `filter`.
pub fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> u64 {
    samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && filter
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, value)| value)
        .sum()
}

/// `promtool check metrics` on `text`: its lint must find nothing.
pub fn promtool_check(text: &str) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) => panic!(
            "cannot run promtool ({err}): install it with `scripts/install-test-deps.sh` (Debian package prometheus)"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A series of the counter family `family` for each socket worker in
/// `workers`.
pub fn assert_worker_series(text: &str, samples: &[Sample], family: &str, workers: &[&str]) {
    for worker in workers {
        assert!(
            samples.iter().any(|(name, labels, _)| name == family
                && labels.get("worker").map(String::as_str) == Some(*worker)),
            "no worker {worker} series\n{text}"
        );
    }
}

/// The end of every daemon's metrics test: a `# HELP` line for every
/// family in `expected`, and `promtool check metrics` on the text.
pub fn assert_help_and_promtool(text: &str, expected: &[Expected]) {
    for (name, _, _) in expected {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no help for {name}\n{text}"
        );
    }
    promtool_check(text);
}

/// A metrics address already taken is a start-up error of `binary`: exit
/// code 1 and one error line naming `metrics.address`. `network` is more
/// of its `[network]` section.
pub fn taken_address_fails_start(binary: &str, network: &str) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let (code, stderr) = crate::run_to_exit(
        binary,
        &format!(
            "[network]\naddress = \"127.0.0.1:0\"\n{network}[metrics]\nenabled = true\naddress = \"{address}\"\n"
        ),
    );
    assert_eq!(code, 1, "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&format!("metrics.address {address}: cannot bind")),
        "{stderr}"
    );
}

#[cfg(test)]
mod tests {
    use super::Expectations;

    #[test]
    fn expectations_name_each_family_with_the_prefix_and_filter_by_label() {
        let expected = Expectations::new("aquatic_x")
            .total("open_connections", 1)
            .by("requests_total", "type", &[("announce", 4), ("scrape", 2)])
            .swarm(Some("6"), [3, 2, 1])
            .swarm(None, [0, 0, 0])
            .build();
        let row = |name: &str, filter: Vec<(&'static str, &'static str)>, sum| {
            (name.to_string(), filter, sum)
        };
        assert_eq!(
            expected,
            [
                row("aquatic_x_open_connections", vec![], 1),
                row("aquatic_x_requests_total", vec![("type", "announce")], 4),
                row("aquatic_x_requests_total", vec![("type", "scrape")], 2),
                row("aquatic_x_torrents", vec![("ip_version", "6")], 3),
                row("aquatic_x_seeders", vec![("ip_version", "6")], 2),
                row("aquatic_x_leechers", vec![("ip_version", "6")], 1),
                row("aquatic_x_torrents", vec![], 0),
                row("aquatic_x_seeders", vec![], 0),
                row("aquatic_x_leechers", vec![], 0),
            ]
        );
    }
}
