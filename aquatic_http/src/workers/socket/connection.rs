//! One HTTP connection's protocol state, without its socket: bytes in,
//! requests and answers out, driven by the socket worker
//! ([`super::SocketWorker`]) and by time.
//!
//! The worker puts what it reads into [`Connection::read_space`] and tells
//! [`Connection::on_read`] how reading went, asks [`Connection::next`] what
//! to do, dispatches requests and hands their answers to
//! [`Connection::answer`], and writes [`Connection::output`]. Every limit is
//! here, and tested here without sockets:
//!
//! - a request head longer than `max_request_head_size` gets a 431 and the
//!   connection closes once it is written;
//! - pipelined requests wait in the read buffer, one in flight at a time,
//!   answered in order; the buffer holds at most twice the head limit
//!   (reading pauses while it is full and resumes as requests make room);
//! - a client that does not read its answers gets no new ones once
//!   `MAX_UNWRITTEN` bytes wait to be written;
//! - `Connection: close` (or HTTP/1.0) closes after the answer, and so does
//!   a request without `Connection: keep-alive` unless the keep-alive
//!   policy is `always` ([`KeepAlive`]); a client that half-closes gets its
//!   answers, then the close;
//! - no complete request within the idle timeout closes the connection
//!   (never while its request is with the request workers).

use aquatic_common::SecondsSinceStart;
use aquatic_http_protocol::{
    ParseOptions, Request, RequestParseError, ScrapeResponse, ScrapeStatistics, parse_request,
    write_failure, write_http_head,
};
use std::net::IpAddr;

use aquatic_common::InfoHash;

use crate::common::ErrorReason;
use crate::config::KeepAlive;

/// Answers a connection may have unwritten before its pipelined requests
/// wait: a client that never reads cannot make the tracker buffer without
/// bound.
pub const MAX_UNWRITTEN: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Parsing requests from the read buffer.
    Reading,
    /// Request `id` is with the request workers; further input waits.
    Waiting { id: u64 },
    /// Writing a last answer, then closing.
    Closing,
}

/// The connection's limits, from the config.
#[derive(Clone, Copy, Debug)]
pub struct Limits<'a> {
    pub max_head: usize,
    /// Seconds without a complete request before the connection closes.
    pub idle_timeout: u32,
    pub parse: ParseOptions<'a>,
}

/// How the last read went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadResult {
    /// Everything available was read.
    Open,
    /// The buffer reached its bound: more may wait in the socket.
    Full,
    /// The client closed its side (end of stream, or TLS close_notify).
    Eof,
    /// A reset, a TLS error: the connection is done.
    Failed,
}

/// What the worker does next with a connection.
#[derive(Debug)]
pub enum Step {
    /// A request to dispatch: send it to its shard
    /// ([`Connection::wait_for`], [`Connection::wait_for_scrape`]) or
    /// answer it at once.
    Request(Request, Option<IpAddr>),
    /// An error answer was queued (counted under this reason): write it
    /// and ask again.
    Rejected(ErrorReason),
    /// Reading paused with the buffer full and a request still incomplete
    /// there: read (`read_space`, `on_read`) and ask again.
    ReadMore,
    /// The client closed its side and every answer is queued: write them,
    /// then close.
    Finish,
    /// Nothing until more input, an answer, or room to write.
    Wait,
}

struct PendingScrape {
    parts_left: usize,
    files: Vec<(InfoHash, ScrapeStatistics)>,
}

pub struct Connection {
    state: State,
    /// When to stay open after an answer (the config's, or `Always` for
    /// a trusted proxy).
    policy: KeepAlive,
    /// Stay open after the answer being prepared.
    keep_alive: bool,
    read_buf: Vec<u8>,
    /// Reading stopped with the read buffer full: more input may wait in
    /// the socket, read once requests have made room.
    read_paused: bool,
    /// The client closed its side: answer what it sent, then close.
    read_closed: bool,
    write_buf: Vec<u8>,
    write_pos: usize,
    /// Closed when `now` passes this while not waiting for an answer.
    deadline: SecondsSinceStart,
    scrape: Option<PendingScrape>,
}

impl Connection {
    pub fn new(now: SecondsSinceStart, idle_timeout: u32, policy: KeepAlive) -> Self {
        Self {
            state: State::Reading,
            policy,
            keep_alive: true,
            read_buf: Vec::new(),
            read_paused: false,
            read_closed: false,
            write_buf: Vec::new(),
            write_pos: 0,
            deadline: now.add_secs(idle_timeout),
            scrape: None,
        }
    }

    /// The read buffer, to append input to up to `read_limit` bytes in all
    /// (`None` once the client closed its side: read nothing more).
    pub fn read_space(&mut self) -> Option<&mut Vec<u8>> {
        (!self.read_closed).then_some(&mut self.read_buf)
    }

    /// The read buffer's bound: twice the head limit, so a head that
    /// arrives with the start of the next one is still read whole.
    pub fn read_limit(limits: &Limits) -> usize {
        limits.max_head.saturating_mul(2)
    }

    /// Input read and not yet taken by a request.
    pub fn buffered(&self) -> usize {
        self.read_buf.len()
    }

    pub fn on_read(&mut self, result: ReadResult) {
        match result {
            ReadResult::Full => self.read_paused = true,
            ReadResult::Eof => self.read_closed = true,
            ReadResult::Open | ReadResult::Failed => {}
        }
    }

    /// What to do next; call again after each step but `Wait`.
    pub fn next(&mut self, limits: &Limits, now: SecondsSinceStart) -> Step {
        if self.state != State::Reading || self.unwritten() > MAX_UNWRITTEN {
            // Waiting for an answer, closing, or the client pipelines
            // without reading its answers: wait until they are written.
            return Step::Wait;
        }
        if !self.read_buf.is_empty() {
            let parsed = parse_request(&self.read_buf, &limits.parse);
            let head_len = match &parsed {
                Ok(parsed) => parsed.consumed,
                Err(
                    RequestParseError::NotFound { consumed, .. }
                    | RequestParseError::WrongHost { consumed, .. }
                    | RequestParseError::Invalid { consumed, .. },
                ) => *consumed,
                Err(RequestParseError::NeedMoreData | RequestParseError::BadRequest) => 0,
            };
            // A complete head may arrive in one read of up to twice the
            // limit (the read buffer's bound): still too long.
            let too_long = head_len > limits.max_head
                || (matches!(parsed, Err(RequestParseError::NeedMoreData))
                    && self.read_buf.len() > limits.max_head);
            if too_long {
                return self.reject_status(
                    431,
                    "Request Header Fields Too Large",
                    false,
                    limits,
                    now,
                );
            }
            match parsed {
                Ok(parsed) => {
                    drain(&mut self.read_buf, parsed.consumed);
                    self.keep_alive = self
                        .policy
                        .keeps(parsed.keep_alive, parsed.keep_alive_asked);
                    return Step::Request(parsed.request, parsed.forwarded_ip);
                }
                Err(
                    ref error @ (RequestParseError::NotFound {
                        consumed,
                        keep_alive,
                        keep_alive_asked,
                    }
                    | RequestParseError::WrongHost {
                        consumed,
                        keep_alive,
                        keep_alive_asked,
                    }),
                ) => {
                    let (status, phrase) = match error {
                        RequestParseError::WrongHost { .. } => (421, "Misdirected Request"),
                        _ => (404, "Not Found"),
                    };
                    drain(&mut self.read_buf, consumed);
                    let keep_alive = self.policy.keeps(keep_alive, keep_alive_asked);
                    return self.reject_status(status, phrase, keep_alive, limits, now);
                }
                Err(RequestParseError::Invalid {
                    reason,
                    consumed,
                    keep_alive,
                    keep_alive_asked,
                }) => {
                    drain(&mut self.read_buf, consumed);
                    self.keep_alive = self.policy.keeps(keep_alive, keep_alive_asked);
                    self.respond_failure(&reason, limits, now);
                    return Step::Rejected(ErrorReason::of_failure(&reason));
                }
                Err(RequestParseError::BadRequest) => {
                    return self.reject_status(400, "Bad Request", false, limits, now);
                }
                Err(RequestParseError::NeedMoreData) => {}
            }
        }
        // No complete request buffered.
        if self.read_paused {
            self.read_paused = false;
            return Step::ReadMore;
        }
        if self.read_closed {
            // Nothing more will come: close once the answers are out (an
            // unfinished request is dropped).
            self.read_buf.clear();
            self.state = State::Closing;
            return Step::Finish;
        }
        Step::Wait
    }

    /// The request just returned by [`next`](Self::next) went to a shard
    /// as request `id`.
    pub fn wait_for(&mut self, id: u64) {
        self.state = State::Waiting { id };
    }

    /// The scrape just returned went to `parts` shards as request `id`.
    pub fn wait_for_scrape(&mut self, id: u64, parts: usize) {
        self.scrape = Some(PendingScrape {
            parts_left: parts,
            files: Vec::new(),
        });
        self.wait_for(id);
    }

    /// Whether the connection still waits for request `id` (an answer to
    /// anything else is late and dropped).
    pub fn waits_for(&self, id: u64) -> bool {
        self.state == State::Waiting { id }
    }

    /// One shard's part of the scrape in flight; the whole answer's body
    /// once the last part is in.
    pub fn add_scrape_part(
        &mut self,
        files: Vec<(InfoHash, ScrapeStatistics)>,
        body: &mut Vec<u8>,
    ) -> bool {
        let Some(pending) = self.scrape.as_mut() else {
            return false;
        };
        pending.files.extend(files);
        pending.parts_left = pending.parts_left.saturating_sub(1);
        if pending.parts_left > 0 {
            return false;
        }
        let files = self.scrape.take().map(|p| p.files).unwrap_or_default();
        body.clear();
        ScrapeResponse { files }.write(body);
        true
    }

    /// Queue `body` as the 200 answer to the current request.
    pub fn answer(&mut self, body: &[u8], limits: &Limits, now: SecondsSinceStart) {
        write_http_head(&mut self.write_buf, 200, "OK", body.len(), self.keep_alive);
        self.write_buf.extend_from_slice(body);
        self.answered(self.keep_alive, limits, now);
    }

    /// Queue a tracker failure (a bencoded `failure reason`) as the answer
    /// to the current request, which is no longer waited for.
    pub fn respond_failure(&mut self, reason: &str, limits: &Limits, now: SecondsSinceStart) {
        self.scrape = None;
        let mut body = Vec::new();
        write_failure(&mut body, reason);
        self.answer(&body, limits, now);
    }

    fn reject_status(
        &mut self,
        status: u16,
        phrase: &str,
        keep_alive: bool,
        limits: &Limits,
        now: SecondsSinceStart,
    ) -> Step {
        let body = format!("{status} {phrase}\n");
        write_http_head(&mut self.write_buf, status, phrase, body.len(), keep_alive);
        self.write_buf.extend_from_slice(body.as_bytes());
        self.answered(keep_alive, limits, now);
        Step::Rejected(ErrorReason::of_status(status))
    }

    fn answered(&mut self, keep_alive: bool, limits: &Limits, now: SecondsSinceStart) {
        self.state = if keep_alive {
            State::Reading
        } else {
            State::Closing
        };
        self.deadline = now.add_secs(limits.idle_timeout);
    }

    /// What waits to be written.
    pub fn output(&self) -> &[u8] {
        self.write_buf.get(self.write_pos..).unwrap_or(&[])
    }

    /// `n` bytes of [`output`](Self::output) were written.
    pub fn wrote(&mut self, n: usize) {
        self.write_pos = self.write_pos.saturating_add(n).min(self.write_buf.len());
        if self.write_pos == self.write_buf.len() {
            self.write_buf.clear();
            self.write_pos = 0;
        }
    }

    fn unwritten(&self) -> usize {
        self.write_buf.len().saturating_sub(self.write_pos)
    }

    /// The output is the last: the connection closes once it is written.
    pub fn closing(&self) -> bool {
        self.state == State::Closing
    }

    /// The output is the last and no input is left unread, so it may go
    /// with the close (closing with unread input sends a reset and
    /// discards what is unsent).
    pub fn last_write(&self) -> bool {
        self.closing() && self.read_buf.is_empty()
    }

    /// No complete request within the idle timeout, and none in flight.
    pub fn expired(&self, now: SecondsSinceStart) -> bool {
        !matches!(self.state, State::Waiting { .. }) && now > self.deadline
    }
}

fn drain(buf: &mut Vec<u8>, n: usize) {
    buf.drain(..n.min(buf.len()));
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head: 200,
        idle_timeout: 10,
        parse: ParseOptions {
            max_scrape_torrents: 10,
            reverse_proxy_header: None,
            allowed_hosts: &[],
        },
    };
    const NOW: SecondsSinceStart = SecondsSinceStart(100);
    const HASH: &str = "%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01";

    fn announce(close: bool) -> Vec<u8> {
        let connection = if close { "Connection: close\r\n" } else { "" };
        format!(
            "GET /announce?info_hash={HASH}&peer_id=-qB4520-aaaaaaaaaaaa&port=1&uploaded=0&downloaded=0&left=0 HTTP/1.1\r\nHost: t\r\n{connection}\r\n"
        )
        .into_bytes()
    }

    fn feed(c: &mut Connection, bytes: &[u8]) {
        if let Some(buf) = c.read_space() {
            buf.extend_from_slice(bytes);
        }
    }

    fn output(c: &mut Connection) -> String {
        let text = String::from_utf8_lossy(c.output()).into_owned();
        let n = c.output().len();
        c.wrote(n);
        text
    }

    #[test]
    fn pipelined_requests_are_answered_one_at_a_time_in_order() {
        let mut c = Connection::new(NOW, 10, KeepAlive::Always);
        let mut input = announce(false);
        input.extend(announce(false));
        feed(&mut c, &input);
        let Step::Request(Request::Announce(_), None) = c.next(&LIMITS, NOW) else {
            panic!("first request");
        };
        c.wait_for(1);
        // The second waits while the first is with the shard.
        assert!(matches!(c.next(&LIMITS, NOW), Step::Wait));
        assert!(c.waits_for(1) && !c.waits_for(2));
        c.answer(b"first", &LIMITS, NOW);
        assert!(output(&mut c).ends_with("first"));
        assert!(matches!(c.next(&LIMITS, NOW), Step::Request(..)));
        c.wait_for(2);
        c.answer(b"second", &LIMITS, NOW);
        assert!(output(&mut c).ends_with("second"));
        assert!(matches!(c.next(&LIMITS, NOW), Step::Wait));
        assert!(!c.closing());
    }

    #[test]
    fn a_head_over_the_limit_gets_431_and_the_close() {
        let mut c = Connection::new(NOW, 10, KeepAlive::Always);
        feed(&mut c, &[b'a'; 201]);
        assert!(matches!(
            c.next(&LIMITS, NOW),
            Step::Rejected(ErrorReason::HeadTooLarge)
        ));
        assert!(output(&mut c).starts_with("HTTP/1.1 431 "));
        assert!(c.closing());
        // Unread input: the answer must not go with the close (a reset).
        assert!(!c.last_write());
        assert!(matches!(c.next(&LIMITS, NOW), Step::Wait));
        // A complete head read in one go, but longer than the limit.
        let mut c = Connection::new(NOW, 10, KeepAlive::Always);
        let mut long = announce(false);
        long.splice(
            long.len() - 2..long.len() - 2,
            *b"X-Pad: 0123456789012345678901234567890123456789\r\n",
        );
        feed(&mut c, &long);
        assert!(long.len() > 200 && long.len() <= 400);
        assert!(matches!(
            c.next(&LIMITS, NOW),
            Step::Rejected(ErrorReason::HeadTooLarge)
        ));
    }

    #[test]
    fn unread_answers_hold_back_pipelined_requests() {
        let mut c = Connection::new(NOW, 10, KeepAlive::Always);
        let request = announce(false);
        for _ in 0..4 {
            feed(&mut c, &request);
        }
        let body = vec![b'x'; MAX_UNWRITTEN / 2 + 1];
        let mut answered = 0;
        while let Step::Request(..) = c.next(&LIMITS, NOW) {
            c.wait_for(answered);
            c.answer(&body, &LIMITS, NOW);
            answered += 1;
        }
        // Two answers are over the bound: the third waits, unwritten.
        assert_eq!(answered, 2);
        let n = c.output().len();
        c.wrote(n);
        assert!(matches!(c.next(&LIMITS, NOW), Step::Request(..)));
    }

    #[test]
    fn connection_close_closes_after_the_answer() {
        let mut c = Connection::new(NOW, 10, KeepAlive::Always);
        feed(&mut c, &announce(true));
        assert!(matches!(c.next(&LIMITS, NOW), Step::Request(..)));
        c.wait_for(7);
        c.answer(b"done", &LIMITS, NOW);
        assert!(c.closing() && c.last_write());
        assert!(output(&mut c).contains("Connection: close"));
    }

    #[test]
    fn the_keep_alive_policy_decides_after_the_answer() {
        let asked = String::from_utf8(announce(false))
            .unwrap()
            .replace("Host: t\r\n", "Host: t\r\nConnection: keep-alive\r\n")
            .into_bytes();
        let not_found = b"GET /favicon.ico HTTP/1.1\r\n\r\n".to_vec();
        for (policy, input, kept) in [
            (KeepAlive::Always, announce(false), true),
            (KeepAlive::Always, asked.clone(), true),
            (KeepAlive::Always, announce(true), false),
            (KeepAlive::WhenAsked, announce(false), false),
            (KeepAlive::WhenAsked, asked.clone(), true),
            (KeepAlive::WhenAsked, not_found.clone(), false),
            (KeepAlive::Always, not_found, true),
            (KeepAlive::Never, asked, false),
        ] {
            let mut c = Connection::new(NOW, 10, policy);
            feed(&mut c, &input);
            if let Step::Request(..) = c.next(&LIMITS, NOW) {
                c.wait_for(1);
                c.answer(b"done", &LIMITS, NOW);
            }
            let head = output(&mut c);
            assert_eq!(c.closing(), !kept, "{policy:?} {head}");
            assert_eq!(
                head.contains("Connection: close"),
                !kept,
                "{policy:?} {head}"
            );
        }
    }

    #[test]
    fn a_half_close_gets_its_answers_then_the_close() {
        let mut c = Connection::new(NOW, 10, KeepAlive::Always);
        let mut input = announce(false);
        input.extend_from_slice(b"GET /annou"); // unfinished
        feed(&mut c, &input);
        c.on_read(ReadResult::Eof);
        assert!(c.read_space().is_none());
        assert!(matches!(c.next(&LIMITS, NOW), Step::Request(..)));
        c.wait_for(1);
        assert!(matches!(c.next(&LIMITS, NOW), Step::Wait));
        c.answer(b"ok", &LIMITS, NOW);
        assert!(matches!(c.next(&LIMITS, NOW), Step::Finish));
        assert!(c.last_write());
        assert!(output(&mut c).ends_with("ok"));
    }

    #[test]
    fn reading_resumes_when_a_full_buffer_holds_no_complete_request() {
        let mut c = Connection::new(NOW, 10, KeepAlive::Always);
        feed(&mut c, b"GET /announce?info_hash=");
        c.on_read(ReadResult::Full);
        assert!(matches!(c.next(&LIMITS, NOW), Step::ReadMore));
        assert!(matches!(c.next(&LIMITS, NOW), Step::Wait));
    }

    #[test]
    fn errors_are_answered_and_the_connection_goes_on() {
        let mut c = Connection::new(NOW, 10, KeepAlive::Always);
        feed(&mut c, b"GET /nothing HTTP/1.1\r\n\r\n");
        feed(&mut c, b"GET /announce?info_hash=short HTTP/1.1\r\n\r\n");
        assert!(matches!(
            c.next(&LIMITS, NOW),
            Step::Rejected(ErrorReason::NotFound)
        ));
        assert!(output(&mut c).starts_with("HTTP/1.1 404 "));
        assert!(matches!(c.next(&LIMITS, NOW), Step::Rejected(_)));
        assert!(output(&mut c).contains("failure reason"));
        assert!(!c.closing());
        feed(&mut c, b"\x00\x01 not http\r\n\r\n");
        assert!(matches!(
            c.next(&LIMITS, NOW),
            Step::Rejected(ErrorReason::BadRequest)
        ));
        assert!(c.closing());
    }

    #[test]
    fn another_host_gets_421_and_the_connection_goes_on() {
        let allowed = ["tracker.example.org".to_string()];
        let limits = Limits {
            max_head: 400,
            parse: ParseOptions {
                allowed_hosts: &allowed,
                ..LIMITS.parse
            },
            ..LIMITS
        };
        let mut c = Connection::new(NOW, 10, KeepAlive::Always);
        feed(&mut c, &announce(false));
        assert!(matches!(
            c.next(&limits, NOW),
            Step::Rejected(ErrorReason::WrongHost)
        ));
        assert!(output(&mut c).starts_with("HTTP/1.1 421 Misdirected Request"));
        assert!(!c.closing());
        let right = String::from_utf8(announce(false))
            .unwrap()
            .replace("Host: t", "Host: Tracker.example.org:443");
        feed(&mut c, right.as_bytes());
        assert!(matches!(c.next(&limits, NOW), Step::Request(..)));
        // Two Host headers name no host to trust.
        let mut c = Connection::new(NOW, 10, KeepAlive::Always);
        feed(
            &mut c,
            right.replace("\r\n\r\n", "\r\nHost: t\r\n\r\n").as_bytes(),
        );
        let step = c.next(&limits, NOW);
        assert!(
            matches!(step, Step::Rejected(ErrorReason::WrongHost)),
            "{step:?}"
        );
    }

    #[test]
    fn idle_connections_expire_but_not_while_waiting() {
        let mut c = Connection::new(NOW, 10, KeepAlive::Always);
        assert!(!c.expired(SecondsSinceStart(110)));
        assert!(c.expired(SecondsSinceStart(111)));
        feed(&mut c, &announce(false));
        assert!(matches!(c.next(&LIMITS, NOW), Step::Request(..)));
        c.wait_for(1);
        assert!(!c.expired(SecondsSinceStart(1000)));
        // An answer starts the idle time again.
        c.answer(b"x", &LIMITS, SecondsSinceStart(1000));
        assert!(!c.expired(SecondsSinceStart(1010)));
        assert!(c.expired(SecondsSinceStart(1011)));
    }

    #[test]
    fn a_scrape_is_answered_when_its_last_part_is_in() {
        let mut c = Connection::new(NOW, 10, KeepAlive::Always);
        c.wait_for_scrape(3, 2);
        let mut body = Vec::new();
        assert!(!c.add_scrape_part(Vec::new(), &mut body));
        assert!(c.add_scrape_part(Vec::new(), &mut body));
        assert!(body.starts_with(b"d5:files"));
        // A failure (overload) forgets the parts.
        c.wait_for_scrape(4, 2);
        c.respond_failure("overloaded", &LIMITS, NOW);
        assert!(!c.add_scrape_part(Vec::new(), &mut body));
    }
}
