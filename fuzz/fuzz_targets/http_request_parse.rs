//! Arbitrary bytes as an HTTP tracker request head. Parsing must never
//! panic, never claim more bytes than it was given, and a parsed request,
//! written back (without a path prefix), must parse to itself: a scrape is
//! already sorted, deduplicated and cut to `MAX_SCRAPE_TORRENTS`, a key is
//! already lossy UTF-8 within `MAX_KEY_LEN` and an unknown or absent event
//! is `None` (written without `event`), so every normalisation is a fixed
//! point.

#![no_main]

use aquatic_http_protocol::{ParseOptions, RequestParseError, parse_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Every other input also checks the Host header.
    let hosts = [String::from("tracker.example.org")];
    let options = ParseOptions {
        max_scrape_torrents: 16,
        reverse_proxy_header: Some("X-Forwarded-For"),
        allowed_hosts: if data.first().is_some_and(|b| b % 2 == 1) {
            &hosts
        } else {
            &[]
        },
    };
    let parsed = match parse_request(data, &options) {
        Ok(parsed) => parsed,
        Err(
            RequestParseError::NotFound { consumed, .. }
            | RequestParseError::WrongHost { consumed, .. }
            | RequestParseError::Invalid { consumed, .. },
        ) => {
            assert!(consumed <= data.len());
            return;
        }
        Err(RequestParseError::NeedMoreData | RequestParseError::BadRequest) => return,
    };
    assert!(parsed.consumed <= data.len());
    let mut rewritten = Vec::new();
    parsed.request.write(&mut rewritten, "", "tracker.example.org");
    match parse_request(&rewritten, &options) {
        Ok(reparsed) => {
            assert_eq!(reparsed.request, parsed.request);
            assert_eq!(reparsed.consumed, rewritten.len());
            assert!(reparsed.keep_alive);
            assert_eq!(reparsed.forwarded_ip, None);
        }
        Err(error) => panic!("rewritten {:?} does not parse: {error:?}", parsed.request),
    }
});
