//! Hostile HTTP clients against the real aquatic_http binary on 127.0.0.1,
//! all at once: thousands of connections that never send, slowloris
//! clients, heads over the size limit, heads that never end, malformed
//! requests, and a client pipelining without reading its answers.
//! Meanwhile a well-behaved keep-alive client gets every answer within a
//! bound, new connections are answered, and afterwards the daemon is still
//! alive and serving.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use aquatic_test_support::Daemon;
use aquatic_test_support::http::{announce_path, contains, get, pct, read_response};

const BINARY: &str = env!("CARGO_BIN_EXE_aquatic_http");
/// What a well-behaved client's round trip may take while the tracker is
/// under attack (generous: debug builds on a loaded 2-core CI machine).
const LATENCY_BOUND: Duration = Duration::from_secs(1);
/// Round trips of the well-behaved client, one every `PACE` or slower: the
/// attack lasts over 6 s, longer than the idle timeout, so slow and silent
/// connections are cut (and come back) while it is measured.
const ROUND_TRIPS: usize = 200;
const PACE: Duration = Duration::from_millis(30);
/// Connections that never send a byte.
const SILENT: usize = 2000;
const SLOWLORIS: usize = 4;
/// A slowloris sends one byte per `TRICKLE` (a real one: one per second).
const TRICKLE: Duration = Duration::from_millis(200);
/// `network.connection_idle_timeout`, seconds.
const IDLE_TIMEOUT: u64 = 3;
/// `network.max_request_head_size`.
const MAX_HEAD: usize = 2048;
/// Hard end of the attack (and of every loop in it), whatever happens.
const ATTACK_LIMIT: Duration = Duration::from_secs(40);
/// Announces of the hostile clients go to other torrents than the
/// well-behaved client's (`GOOD_HASH`), so its answers stay small.
const GOOD_HASH: u8 = 200;
const HOSTILE_HASH: u8 = 100;

/// Every client here comes from 127.0.0.1: per-source budgets are
/// opened wide (one source may use every slot) so that each attack meets
/// the limit it is about; `fairness.rs` tests the budgets. Connections are
/// kept open as HTTP/1.1 allows: the clients here reuse and pipeline
/// without `Connection: keep-alive`.
fn start() -> Daemon {
    Daemon::launch(
        BINARY,
        &format!(
            "socket_workers = 2\nrequest_workers = 1\n[network]\nkeep_alive = \"always\"\nmax_connections = 4096\nconnection_idle_timeout = {IDLE_TIMEOUT}\nmax_request_head_size = {MAX_HEAD}\n[source_budgets]\nshare_percent = 100\n"
        ),
    )
}

/// Tells the hostile threads to stop: when set, or at the deadline.
#[derive(Clone)]
struct Stop {
    flag: Arc<AtomicBool>,
    deadline: Instant,
}

impl Stop {
    fn new() -> Self {
        Self {
            flag: Arc::new(AtomicBool::new(false)),
            deadline: Instant::now() + ATTACK_LIMIT,
        }
    }

    fn running(&self) -> bool {
        !self.flag.load(Ordering::Relaxed) && Instant::now() < self.deadline
    }

    fn set(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }
}

/// Stops the hostile threads however the test ends (a panic included).
struct StopOnDrop(Stop);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// What a hostile thread saw: counters, or the first thing the daemon did
/// wrong.
type Report = Result<Vec<(&'static str, u64)>, String>;

fn spawn(
    name: &'static str,
    stop: &Stop,
    body: impl FnOnce(Stop) -> Report + Send + 'static,
) -> (&'static str, JoinHandle<Report>) {
    let stop = stop.clone();
    let handle = thread::Builder::new()
        .name(name.into())
        .spawn(move || body(stop))
        .unwrap();
    (name, handle)
}

fn open(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Non-blocking look at a connection: None while open and silent, else
/// the bytes it got (empty: closed by the daemon).
fn peek_closed_or_data(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = [0u8; 512];
    match stream.read(&mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(e) if e.kind() == ErrorKind::WouldBlock => None,
        Err(_) => Some(Vec::new()),
    }
}

/// A response for an error message.
fn describe(response: &Option<(u16, Vec<u8>)>) -> String {
    match response {
        Some((status, body)) => format!("{status} {:?}", String::from_utf8_lossy(body)),
        None => "no answer (closed or timed out)".into(),
    }
}

/// After a final answer: the daemon closes (EOF or reset), rather than
/// leaving the connection open.
fn expect_closed(stream: &mut TcpStream, what: &str) -> Result<(), String> {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!("{what}: {n} more bytes instead of a close")),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Err(format!("{what}: not closed within 5 s"))
        }
        Err(_) => Ok(()),
    }
}

/// (a) Connections that never send: whenever the daemon closes one (idle
/// timeout), another takes its place. The daemon must never write to one.
fn silent(addr: SocketAddr, mut streams: Vec<TcpStream>, stop: Stop) -> Report {
    let mut cut = 0;
    for _ in 0..1000 {
        if !stop.running() {
            break;
        }
        for stream in streams.iter_mut() {
            match peek_closed_or_data(stream) {
                None => {}
                Some(data) if data.is_empty() => {
                    cut += 1;
                    *stream = open(addr)?;
                    stream.set_nonblocking(true).map_err(|e| e.to_string())?;
                }
                Some(data) => {
                    return Err(format!(
                        "a silent connection got {:?}",
                        String::from_utf8_lossy(&data)
                    ));
                }
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(vec![("cut by idle timeout and reopened", cut)])
}

/// (b) A valid request head, one byte per `TRICKLE`: never complete before
/// the idle timeout, so the daemon must close it then, without an answer.
fn slowloris(addr: SocketAddr, peer: u8, stop: Stop) -> Report {
    let head = get(&announce_path(HOSTILE_HASH, peer, 1, 0, ""), "");
    let mut cuts = Vec::new();
    'connections: for _ in 0..100 {
        let mut stream = open(addr)?;
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        let opened = Instant::now();
        for byte in &head {
            if !stop.running() {
                break 'connections;
            }
            // A write to a connection the daemon closed may fail: the read
            // below tells.
            let _ = stream.write(&[*byte]);
            thread::sleep(TRICKLE);
            match peek_closed_or_data(&mut stream) {
                None => {}
                Some(data) if data.is_empty() => {
                    cuts.push(opened.elapsed());
                    continue 'connections;
                }
                Some(data) => {
                    return Err(format!(
                        "a slowloris got {:?}",
                        String::from_utf8_lossy(&data)
                    ));
                }
            }
        }
        return Err(format!(
            "a slowloris sent its whole head in {:?} without being cut",
            opened.elapsed()
        ));
    }
    let low = Duration::from_secs(IDLE_TIMEOUT) - Duration::from_millis(100);
    let high = Duration::from_secs(IDLE_TIMEOUT + 3);
    if let Some(bad) = cuts.iter().find(|d| **d < low || **d > high) {
        return Err(format!("a slowloris was cut after {bad:?}: {cuts:?}"));
    }
    let longest = cuts.iter().max().copied().unwrap_or_default();
    Ok(vec![
        ("cut", cuts.len() as u64),
        ("longest life ms", longest.as_millis() as u64),
    ])
}

/// (c) Heads over `max_request_head_size`: complete ones just over the
/// limit and over twice the limit (the read buffer's bound), and an
/// incomplete one. Each gets 431 and is closed.
fn oversized(addr: SocketAddr, stop: Stop) -> Report {
    let path = announce_path(HOSTILE_HASH, 1, 1, 0, "&pad=");
    let just_over = get(&format!("{path}{}", "a".repeat(MAX_HEAD)), "");
    let far_over = get(&format!("{path}{}", "a".repeat(3 * MAX_HEAD)), "");
    let unfinished = format!("GET {path}{}", "a".repeat(MAX_HEAD + 100)).into_bytes();
    let heads = [just_over, far_over, unfinished];
    let mut answered = 0;
    for i in 0..10_000 {
        if !stop.running() {
            break;
        }
        let head = &heads[i % heads.len()];
        let mut stream = open(addr)?;
        // The daemon may close before reading everything: the answer tells.
        let _ = stream.write_all(head);
        match read_response(&mut stream) {
            Some((431, _)) => answered += 1,
            other => {
                return Err(format!(
                    "a {}-byte head got {}, not 431",
                    head.len(),
                    describe(&other)
                ));
            }
        }
        expect_closed(&mut stream, "after 431")?;
        thread::sleep(Duration::from_millis(5));
    }
    Ok(vec![("431 and closed", answered)])
}

/// (d) A head that never ends: bytes without a blank line, for as long as
/// the connection stays open. The daemon must answer 431 and close after
/// about `max_request_head_size` bytes.
fn endless(addr: SocketAddr, stop: Stop) -> Report {
    let mut answered = 0;
    let chunk = vec![b'a'; 256];
    'connections: for _ in 0..10_000 {
        let mut stream = open(addr)?;
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        let _ = stream.write(b"GET /announce?");
        let mut sent = 0usize;
        let mut got = Vec::new();
        let begun = Instant::now();
        loop {
            if !stop.running() {
                break 'connections;
            }
            if let Ok(n) = stream.write(&chunk) {
                sent += n;
            }
            match peek_closed_or_data(&mut stream) {
                None => {}
                Some(data) if data.is_empty() => break,
                Some(data) => got.extend(data),
            }
            if sent > 1 << 20 || begun.elapsed() > Duration::from_secs(5) {
                return Err(format!(
                    "an endless head still open after {sent} bytes, {:?}",
                    begun.elapsed()
                ));
            }
            thread::sleep(Duration::from_millis(1));
        }
        if !got.starts_with(b"HTTP/1.1 431 ") {
            return Err(format!(
                "an endless head got {:?} after {sent} bytes",
                String::from_utf8_lossy(&got)
            ));
        }
        answered += 1;
    }
    Ok(vec![("431 and closed", answered)])
}

/// (e) Malformed requests, the answers the daemon gives today (see
/// tracker.rs, malformed_requests_get_their_answer): a bencoded failure
/// reason on a connection kept alive, or 400 and a close.
fn malformed(addr: SocketAddr, stop: Stop) -> Report {
    let hash = pct(&[HOSTILE_HASH; 20]);
    let id = pct(&[2; 20]);
    let valid = announce_path(HOSTILE_HASH, 3, 1, 0, "");
    // Announces with a broken query, and the failure reason of each.
    let announces = [
        (
            format!("info_hash=%zz&peer_id={id}&port=1"),
            "invalid percent-encoding in info_hash",
        ),
        (
            format!("info_hash={hash}&peer_id=%f&port=1"),
            "invalid percent-encoding in peer_id",
        ),
        (
            format!("info_hash=abc&peer_id={id}&port=1"),
            "info_hash must be 20 bytes",
        ),
        (
            format!("info_hash={hash}%00&peer_id={id}&port=1"),
            "info_hash must be 20 bytes",
        ),
        (
            format!("info_hash={hash}&peer_id=abc&port=1"),
            "peer_id must be 20 bytes",
        ),
        (format!("peer_id={id}&port=1"), "missing info_hash"),
        (format!("info_hash={hash}&port=1"), "missing peer_id"),
        (format!("info_hash={hash}&peer_id={id}"), "missing port"),
    ];
    let mut kept_alive: Vec<(Vec<u8>, &[u8])> = announces
        .iter()
        .map(|(query, reason)| (get(&format!("/announce?{query}"), ""), reason.as_bytes()))
        .collect();
    kept_alive.push((get("/scrape?info_hash=%zz", ""), b"failure reason"));
    // Not UTF-8 in a header value: allowed (obs-text), a normal answer.
    kept_alive.push((
        [
            b"GET ".as_slice(),
            valid.as_bytes(),
            b" HTTP/1.1\r\nX-Junk: \xff\xfe\r\n\r\n",
        ]
        .concat(),
        b"8:completei",
    ));
    let closing: Vec<Vec<u8>> = vec![
        // Not UTF-8 in the path.
        b"GET /announce?info_hash=\xff\xfe HTTP/1.1\r\n\r\n".to_vec(),
        [
            b"GET ".as_slice(),
            valid.as_bytes(),
            b"&x=\xc3\x28 HTTP/1.1\r\n\r\n",
        ]
        .concat(),
        // Not UTF-8 in a header name.
        [b"GET ", valid.as_bytes(), b" HTTP/1.1\r\nX-\xff: a\r\n\r\n"].concat(),
        b"\x00\x01garbage\r\n\r\n".to_vec(),
        b"POST /announce HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
    ];
    let mut answered = 0;
    for i in 0..10_000 {
        if !stop.running() {
            break;
        }
        let mut stream = open(addr)?;
        for (request, needle) in &kept_alive {
            stream.write_all(request).map_err(|e| e.to_string())?;
            match read_response(&mut stream) {
                Some((200, body)) if contains(&body, needle) => answered += 1,
                other => {
                    return Err(format!(
                        "{:?} got {}",
                        String::from_utf8_lossy(request),
                        describe(&other)
                    ));
                }
            }
        }
        let request = &closing[i % closing.len()];
        stream.write_all(request).map_err(|e| e.to_string())?;
        match read_response(&mut stream) {
            Some((400, _)) => answered += 1,
            other => {
                return Err(format!(
                    "{:?} got {}",
                    String::from_utf8_lossy(request),
                    describe(&other)
                ));
            }
        }
        expect_closed(&mut stream, "after 400")?;
        thread::sleep(Duration::from_millis(5));
    }
    Ok(vec![("answered", answered)])
}

/// (f) Announces pipelined as fast as the daemon takes them, answers never
/// read. When the daemon stops taking them (it bounds what it buffers), a
/// write times out or fails: then on a new connection.
fn pipeliner(addr: SocketAddr, stop: Stop) -> Report {
    let batch: Vec<u8> = (0..10u8)
        .flat_map(|peer| get(&announce_path(HOSTILE_HASH + 1, peer, 1, 0, ""), ""))
        .collect();
    let (mut written, mut connections) = (0u64, 0u64);
    'connections: for _ in 0..10_000 {
        let mut stream = open(addr)?;
        stream
            .set_write_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        connections += 1;
        for _ in 0..10_000 {
            if !stop.running() {
                break 'connections;
            }
            if stream.write_all(&batch).is_err() {
                continue 'connections;
            }
            written += 10;
            thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(vec![
        ("requests written", written),
        ("connections", connections),
    ])
}

/// One announce of the well-behaved client on its keep-alive connection.
fn good_round_trip(stream: &mut TcpStream, request: &[u8]) -> Result<Duration, String> {
    let begun = Instant::now();
    stream.write_all(request).map_err(|e| e.to_string())?;
    match read_response(stream) {
        Some((200, body))
            if contains(&body, b"10:incompletei") && !contains(&body, b"failure reason") =>
        {
            Ok(begun.elapsed())
        }
        other => Err(format!("well-behaved announce got {}", describe(&other))),
    }
}

/// An announce on a new connection.
fn fresh_round_trip(addr: SocketAddr, peer: u8) -> Result<Duration, String> {
    let begun = Instant::now();
    let mut stream = open(addr)?;
    good_round_trip(
        &mut stream,
        &get(&announce_path(GOOD_HASH, peer, 2, 1, ""), ""),
    )
    .map(|_| begun.elapsed())
}

#[test]
fn hostile_clients_do_not_disturb_a_well_behaved_client() {
    let started = Instant::now();
    // This process and the daemon each hold a socket per silent connection.
    let limit = aquatic_test_support::ensure_open_files(SILENT as u64 + 500);
    assert!(
        limit >= SILENT as u64 + 200,
        "RLIMIT_NOFILE {limit} is too low for {SILENT} connections"
    );
    let mut t = start();
    let addr = t.addr;
    let request = get(&announce_path(GOOD_HASH, 1, 1, 1, ""), "");
    let mut good = open(addr).unwrap();
    good_round_trip(&mut good, &request).unwrap();

    let silent_streams: Vec<TcpStream> = (0..SILENT)
        .map(|_| {
            let stream = open(addr).unwrap();
            stream.set_nonblocking(true).unwrap();
            stream
        })
        .collect();
    let stop = Stop::new();
    let _guard = StopOnDrop(stop.clone());
    let mut threads = vec![spawn("silent", &stop, move |s| {
        silent(addr, silent_streams, s)
    })];
    for peer in 0..SLOWLORIS as u8 {
        threads.push(spawn("slowloris", &stop, move |s| slowloris(addr, peer, s)));
    }
    threads.push(spawn("oversized", &stop, move |s| oversized(addr, s)));
    threads.push(spawn("endless", &stop, move |s| endless(addr, s)));
    threads.push(spawn("malformed", &stop, move |s| malformed(addr, s)));
    threads.push(spawn("pipeliner", &stop, move |s| pipeliner(addr, s)));
    thread::sleep(Duration::from_millis(200));

    // The well-behaved client, timed; now and then a new connection too.
    let attack_begun = Instant::now();
    let (mut worst, mut worst_fresh, mut done, mut fresh) = (Duration::ZERO, Duration::ZERO, 0, 0);
    let mut failure = None;
    while done < ROUND_TRIPS && stop.running() {
        match good_round_trip(&mut good, &request) {
            Ok(elapsed) => worst = worst.max(elapsed),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        done += 1;
        if done % 20 == 10 {
            match fresh_round_trip(addr, 2) {
                Ok(elapsed) => worst_fresh = worst_fresh.max(elapsed),
                Err(e) => {
                    failure = Some(format!("new connection: {e}"));
                    break;
                }
            }
            fresh += 1;
        }
        thread::sleep(PACE);
    }
    let attack = attack_begun.elapsed();
    stop.set();
    let reports: Vec<(&str, Report)> = threads
        .into_iter()
        .map(|(name, handle)| {
            let report = handle
                .join()
                .unwrap_or_else(|_| Err("panicked".to_string()));
            (name, report)
        })
        .collect();

    println!(
        "{done} round trips under attack in {attack:?}: slowest {worst:?} (bound {LATENCY_BOUND:?}); \
         {fresh} new connections answered, slowest {worst_fresh:?}"
    );
    for (name, report) in &reports {
        println!("  {name}: {report:?}");
    }
    assert_eq!(failure, None);
    for (name, report) in &reports {
        assert!(report.is_ok(), "{name}: {report:?}");
    }
    assert_eq!(done, ROUND_TRIPS);
    assert!(worst < LATENCY_BOUND, "slowest round trip {worst:?}");
    assert!(fresh >= ROUND_TRIPS / 20);
    // Every hostile client did its thing; the silent ones and the
    // slowloris clients were cut by the idle timeout.
    let count = |name: &str, key: &str| -> u64 {
        reports
            .iter()
            .filter(|(n, _)| *n == name)
            .filter_map(|(_, r)| r.as_ref().ok())
            .map(|r| {
                r.iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| *v)
                    .unwrap_or(0)
            })
            .min()
            .unwrap_or(0)
    };
    assert!(count("silent", "cut by idle timeout and reopened") >= SILENT as u64);
    assert!(count("slowloris", "cut") >= 1);
    assert!(count("oversized", "431 and closed") >= 10);
    assert!(count("endless", "431 and closed") >= 10);
    assert!(count("malformed", "answered") >= 10);
    assert!(count("pipeliner", "requests written") >= 1000);

    // Afterwards: still alive, still answering, old and new connections.
    assert_eq!(
        t.wait_exit(Duration::from_millis(200)),
        None,
        "daemon exited"
    );
    good_round_trip(&mut good, &request).unwrap();
    fresh_round_trip(addr, 3).unwrap();
    println!("whole test: {:?}", started.elapsed());
}
