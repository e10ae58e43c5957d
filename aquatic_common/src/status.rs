//! What the metrics listener says to people and load balancers besides
//! `/metrics`: `GET /health` (200 `ok` while every worker turns its loop,
//! 503 and which worker otherwise: [`crate::health`]), `GET /stats.json`
//! (the daemon, its workers and every metric of `/metrics`, as JSON),
//! `GET /history.json` (the last hour of each metric, [`History`]) and
//! `GET /` (the status page: one self-contained HTML file, `status.html`,
//! that draws those two).
//!
//! `/stats.json` is made from the same registry as `/metrics`, so the two
//! always agree and no figure is counted twice:
//!
//! ```json
//! {"daemon": "aquatic_udp", "version": "0.1.0", "uptime_seconds": 42,
//!  "listen": "udp://0.0.0.0:3000", "socket_workers": 1, "request_workers": 1,
//!  "health": "ok",
//!  "workers": [{"name": "socket-0", "idle_seconds": 0}, ...],
//!  "metrics": {"aquatic_udp_requests_total": {"type": "counter",
//!      "help": "...", "samples": [{"labels": {"type": "announce",
//!      "ip_version": "4", "worker": "0"}, "value": 1234}, ...]}, ...}}
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Number, Value, json};

use crate::health::Heartbeats;
use crate::metrics::{IP_VERSION_LABELS, SwarmGauges, merged_summaries};
use std::sync::Arc;

/// What the daemon's files last did, by file (`access_list`, `ip_filter`,
/// `state`, `scrape_export`): one entry each, replaced by the next event. Kept for
/// the whole process (the daemon has one of each file).
static FILE_EVENTS: Mutex<BTreeMap<&'static str, FileEvent>> = Mutex::new(BTreeMap::new());

#[derive(Clone, Debug, PartialEq)]
struct FileEvent {
    unix_time: u64,
    ok: bool,
    detail: String,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Record what `file` just did (`Ok`: what was read or written; `Err`:
/// why it failed), for the status page and `/stats.json` (`files`).
pub fn record_file_event(file: &'static str, result: Result<String, String>) {
    let (ok, detail) = match result {
        Ok(detail) => (true, detail),
        Err(detail) => (false, detail),
    };
    let event = FileEvent {
        unix_time: unix_now(),
        ok,
        detail,
    };
    FILE_EVENTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(file, event);
}

/// Entries in each list file in use (`access_list`, `ip_filter`), for
/// `/metrics`.
static LIST_SIZES: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

/// Record how many entries the `list` in use has (at load and reload).
pub fn record_list_size(list: &'static str, entries: usize) {
    LIST_SIZES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(list, entries as u64);
}

/// The files' last events and the lists' sizes as Prometheus gauges:
/// `PREFIX_file_ok{file}` (1: the last load, reload or write worked),
/// `PREFIX_file_event_timestamp_seconds{file}` and
/// `PREFIX_list_entries{list}`.
#[derive(Debug, Default)]
pub struct FileCollector;

impl crate::metrics::Collector for FileCollector {
    fn encode(&self, mut encoder: crate::metrics::DescriptorEncoder) -> std::fmt::Result {
        let events: Vec<(&'static str, FileEvent)> = FILE_EVENTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(file, event)| (*file, event.clone()))
            .collect();
        crate::metrics::write_gauges(
            &mut encoder,
            "file_ok",
            "1 if the file's last load, reload or write worked, 0 if it failed (access_list, ip_filter: the old list stays in use; state; scrape_export). Details on the status page.",
            events
                .iter()
                .map(|(file, e)| ([("file", *file)], u64::from(e.ok))),
        )?;
        crate::metrics::write_gauges(
            &mut encoder,
            "file_event_timestamp_seconds",
            "Unix time of the file's last load, reload or write, failed or not.",
            events
                .iter()
                .map(|(file, e)| ([("file", *file)], e.unix_time)),
        )?;
        let sizes: Vec<(&'static str, u64)> = LIST_SIZES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(list, n)| (*list, *n))
            .collect();
        crate::metrics::write_gauges(
            &mut encoder,
            "list_entries",
            "Entries of the list file in use: info hashes (access_list), addresses and ranges (ip_filter).",
            sizes.into_iter().map(|(list, n)| ([("list", list)], n)),
        )
    }
}

fn file_events_json() -> Value {
    let events = FILE_EVENTS.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = Map::new();
    for (file, e) in events.iter() {
        out.insert(
            (*file).to_string(),
            json!({"unix_time": e.unix_time, "ok": e.ok, "detail": e.detail}),
        );
    }
    Value::Object(out)
}

/// Seconds between two samples of [`History`].
pub const HISTORY_INTERVAL_SECS: u32 = 5;
/// Samples kept: one hour.
pub const HISTORY_SAMPLES: usize = 720;

/// The last hour of every metric summed over the workers (one series per
/// family and label set without `worker`), sampled every
/// [`HISTORY_INTERVAL_SECS`] by the metrics thread, for the status page's
/// charts (`/history.json`). Bounded: [`HISTORY_SAMPLES`] samples of at
/// most [`MAX_SERIES`] numbers.
#[derive(Debug, Default)]
pub struct History {
    /// Series keys (`family` and its labels), in the order first seen.
    series: Vec<(String, Map<String, Value>)>,
    index: HashMap<String, usize>,
    /// (uptime seconds, one value per series known then).
    samples: VecDeque<(u32, Vec<f64>)>,
}

/// Most series kept (new label sets beyond it are not charted).
pub const MAX_SERIES: usize = 256;

impl History {
    /// Add a sample of `metrics` (as [`metrics_json`] makes it) taken at
    /// `uptime` seconds.
    pub fn record(&mut self, uptime: u32, metrics: &Value) {
        let mut values: Vec<f64> = vec![f64::NAN; self.series.len()];
        let Some(families) = metrics.as_object() else {
            return;
        };
        for (name, family) in families {
            let Some(samples) = family["samples"].as_array() else {
                continue;
            };
            for sample in samples {
                let mut labels = sample["labels"].as_object().cloned().unwrap_or_default();
                labels.remove("worker");
                let key = format!("{name}{}", Value::Object(labels.clone()));
                let slot = match self.index.get(&key) {
                    Some(&slot) => slot,
                    None if self.series.len() < MAX_SERIES => {
                        self.series.push((name.clone(), labels));
                        self.index.insert(key, self.series.len() - 1);
                        values.push(f64::NAN);
                        self.series.len() - 1
                    }
                    None => continue,
                };
                let value = sample["value"].as_f64().unwrap_or(0.0);
                if let Some(v) = values.get_mut(slot) {
                    *v = if v.is_nan() { value } else { *v + value };
                }
            }
        }
        if self.samples.len() >= HISTORY_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((uptime, values));
    }

    /// `/history.json`: `{"interval_seconds": 5, "uptime_seconds": [...],
    /// "series": [{"name": ..., "labels": {...}, "values": [...]}]}`, a
    /// value `null` where a series had no sample.
    pub fn json(&self) -> String {
        let times: Vec<u32> = self.samples.iter().map(|(t, _)| *t).collect();
        let series: Vec<Value> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, (name, labels))| {
                let values: Vec<Value> = self
                    .samples
                    .iter()
                    .map(|(_, v)| {
                        v.get(i)
                            .copied()
                            .and_then(Number::from_f64)
                            .map_or(Value::Null, Value::Number)
                    })
                    .collect();
                json!({"name": name, "labels": labels, "values": values})
            })
            .collect();
        json!({
            "interval_seconds": HISTORY_INTERVAL_SECS,
            "uptime_seconds": times,
            "series": series,
        })
        .to_string()
    }
}

/// The daemon as `/stats.json` describes it.
#[derive(Clone)]
pub struct Status {
    pub daemon: &'static str,
    pub version: &'static str,
    /// `scheme://address` of the tracker's listener.
    pub listen: String,
    pub socket_workers: usize,
    pub request_workers: usize,
    pub heartbeats: Heartbeats,
    /// The request workers' swarm gauges, for the largest swarms.
    pub swarms: Vec<Arc<SwarmGauges>>,
    /// `[metrics] show_largest_swarms`.
    pub show_largest_swarms: bool,
}

impl Status {
    /// `/health`: the body and whether every worker is turning.
    pub fn health(&self) -> (bool, String) {
        match self.heartbeats.check() {
            Ok(()) => (true, "ok\n".into()),
            Err(stalled) => (false, format!("stalled: {stalled}\n")),
        }
    }

    /// `/stats.json` with `metrics`, the registry in the Prometheus text
    /// format.
    pub fn json(&self, metrics: &str) -> String {
        let workers: Vec<Value> = self
            .heartbeats
            .turns()
            .into_iter()
            .map(|t| json!({"name": t.name, "idle_seconds": t.idle_secs}))
            .collect();
        let health = match self.heartbeats.check() {
            Ok(()) => "ok".to_string(),
            Err(stalled) => format!("stalled: {stalled}"),
        };
        let largest = if self.show_largest_swarms {
            let mut by_ip_version = Map::new();
            for (ip_version, summary) in
                IP_VERSION_LABELS.iter().zip(merged_summaries(&self.swarms))
            {
                let swarms: Vec<Value> = summary
                    .largest
                    .iter()
                    .map(|(info_hash, c)| {
                        json!({"info_hash": info_hash.to_hex(), "seeders": c.seeders,
                               "leechers": c.leechers, "downloaded": c.downloaded})
                    })
                    .collect();
                by_ip_version.insert((*ip_version).to_string(), Value::Array(swarms));
            }
            Value::Object(by_ip_version)
        } else {
            Value::String("hidden".into())
        };
        json!({
            "daemon": self.daemon,
            "version": self.version,
            "uptime_seconds": self.heartbeats.uptime_secs(),
            "listen": self.listen,
            "socket_workers": self.socket_workers,
            "request_workers": self.request_workers,
            "health": health,
            "workers": workers,
            "unix_time": unix_now(),
            "files": file_events_json(),
            "largest_swarms": largest,
            "metrics": metrics_json(metrics),
        })
        .to_string()
    }
}

/// The Prometheus text format (as prometheus-client writes it) as a JSON
/// object: each family by name with its type, help, unit and samples. A
/// line it cannot read is skipped.
pub fn metrics_json(text: &str) -> Value {
    let mut families = Map::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (Some(kind), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            let value = parts.next().unwrap_or("");
            let key = match kind {
                "HELP" => "help",
                "TYPE" => "type",
                "UNIT" => "unit",
                _ => continue,
            };
            let family = families
                .entry(name.to_string())
                .or_insert_with(|| json!({"samples": []}));
            if let Some(object) = family.as_object_mut() {
                object.insert(key.into(), Value::String(unescape(value, false)));
            }
            current = Some(name.to_string());
            continue;
        }
        let Some((name, labels, value)) = sample(line) else {
            continue;
        };
        // A sample belongs to the family announced before it; its name
        // may carry a suffix (`_total`, `_bucket`).
        let family_name = match &current {
            Some(family) if name.starts_with(family.as_str()) => family.clone(),
            _ => name.to_string(),
        };
        let family = families
            .entry(family_name)
            .or_insert_with(|| json!({"samples": []}));
        if let Some(Value::Array(samples)) = family.get_mut("samples") {
            samples.push(json!({"labels": labels, "value": value}));
        }
    }
    Value::Object(families)
}

/// One sample line: its name, labels and value.
fn sample(line: &str) -> Option<(&str, Map<String, Value>, Value)> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut labels = Map::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after_key) = rest.split_once("=\"")?;
            let (raw, after_value) = quoted(after_key)?;
            labels.insert(key.to_string(), Value::String(unescape(raw, true)));
            rest = after_value;
        }
    }
    let number = rest.split_whitespace().next()?;
    Some((name, labels, number_value(number)))
}

/// The text up to the closing unescaped quote, and what follows it.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some((&s[..i], &s[i + 1..])),
            _ => escaped = false,
        }
    }
    None
}

/// `\\`, `\n` (and in label values `\"`) as the characters they stand for.
fn unescape(s: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('"') if quotes => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// An integer where the value is one (counters and most gauges), else a
/// float; `null` for NaN and the infinities, which JSON cannot hold.
fn number_value(text: &str) -> Value {
    if let Ok(n) = text.parse::<u64>() {
        return Value::Number(n.into());
    }
    if let Ok(n) = text.parse::<i64>() {
        return Value::Number(n.into());
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

#[cfg(test)]
impl Status {
    /// `aquatic_test` with one socket worker, turning, and one shard.
    pub(crate) fn for_tests(show_largest_swarms: bool) -> Self {
        let heartbeats = Heartbeats::new(crate::ServerStartInstant::new());
        heartbeats.register("socket-0".into());
        Status {
            daemon: "aquatic_test",
            version: "1.2.3",
            listen: "udp://127.0.0.1:3000".into(),
            socket_workers: 1,
            request_workers: 0,
            heartbeats,
            swarms: vec![Arc::default()],
            show_largest_swarms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_becomes_families_of_samples() {
        let text = "# HELP x_requests_total Requests, by \\\"type\\\".\n\
                    # TYPE x_requests_total counter\n\
                    x_requests_total{type=\"announce\",worker=\"0\"} 5\n\
                    x_requests_total{type=\"a \\\"quoted\\\" one, with } and =\",worker=\"1\"} 2\n\
                    # HELP x_received_bytes_total Bytes.\n\
                    # TYPE x_received_bytes_total counter\n\
                    # UNIT x_received_bytes_total bytes\n\
                    x_received_bytes_total 1234\n\
                    # TYPE x_ratio gauge\n\
                    x_ratio 0.5\n\
                    x_ratio{broken 7\n\
                    # EOF\n";
        let json = metrics_json(text);
        assert_eq!(
            json["x_requests_total"],
            json!({"help": "Requests, by \\\"type\\\".", "type": "counter", "samples": [
                {"labels": {"type": "announce", "worker": "0"}, "value": 5},
                {"labels": {"type": "a \"quoted\" one, with } and =", "worker": "1"}, "value": 2},
            ]})
        );
        assert_eq!(json["x_received_bytes_total"]["unit"], "bytes");
        assert_eq!(json["x_received_bytes_total"]["samples"][0]["value"], 1234);
        assert_eq!(
            json["x_ratio"]["samples"],
            json!([{"labels": {}, "value": 0.5}])
        );
    }

    #[test]
    fn history_sums_over_workers_and_keeps_an_hour() {
        let mut history = History::default();
        let text = "# TYPE r_total counter\n\
                    r_total{type=\"a\",worker=\"0\"} 1\n\
                    r_total{type=\"a\",worker=\"1\"} 2\n\
                    r_total{type=\"b\",worker=\"0\"} 5\n";
        for t in 0..(HISTORY_SAMPLES as u32 + 10) {
            history.record(t * HISTORY_INTERVAL_SECS, &metrics_json(text));
        }
        let json: Value = serde_json::from_str(&history.json()).unwrap();
        let times = json["uptime_seconds"].as_array().unwrap();
        assert_eq!(times.len(), HISTORY_SAMPLES);
        assert_eq!(times[0], 10 * HISTORY_INTERVAL_SECS);
        assert_eq!(
            json["series"][0],
            json!({"name": "r_total", "labels": {"type": "a"},
                   "values": vec![3.0; HISTORY_SAMPLES]})
        );
        assert_eq!(json["series"][1]["labels"], json!({"type": "b"}));
        assert_eq!(json["series"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn file_events_and_list_sizes_are_gauges() {
        record_file_event("test_list", Err("line 3: nonsense".into()));
        record_list_size("test_list", 12);
        let mut registry = crate::metrics::Registry::with_prefix("aquatic_test");
        registry.register_collector(Box::new(FileCollector));
        let text = crate::metrics::render(&registry).unwrap();
        for line in [
            "aquatic_test_file_ok{file=\"test_list\"} 0",
            "aquatic_test_list_entries{list=\"test_list\"} 12",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
        assert!(text.contains("aquatic_test_file_event_timestamp_seconds{file=\"test_list\"} 1"));
    }

    #[test]
    fn stats_json_names_the_daemon_and_its_workers() {
        let status = Status::for_tests(false);
        assert_eq!(status.health(), (true, "ok\n".to_string()));
        let json: Value = serde_json::from_str(&status.json("# TYPE a gauge\na 1\n")).unwrap();
        assert_eq!(json["daemon"], "aquatic_test");
        assert_eq!(json["health"], "ok");
        assert_eq!(json["workers"][0]["name"], "socket-0");
        assert_eq!(json["metrics"]["a"]["samples"][0]["value"], 1);
        assert_eq!(json["largest_swarms"], "hidden");
        record_file_event("state", Err("no such file".into()));
        record_file_event("state", Ok("12 torrents, 30 peers".into()));
        let json: Value = serde_json::from_str(&status.json("")).unwrap();
        assert_eq!(json["files"]["state"]["ok"], true);
        assert_eq!(json["files"]["state"]["detail"], "12 torrents, 30 peers");
        assert!(json["files"]["state"]["unix_time"].as_u64() > Some(1_700_000_000));
    }
}
