//! Arbitrary bytes as a UDP tracker request. Parsing must never panic, and a
//! parsed request, written back, must parse to itself: an event above 3
//! becomes `None` (written as 0), an `ip` of 0 is `None` (written as 0), URL
//! data is rewritten in canonical 255-byte options and a scrape keeps at
//! most `MAX_SCRAPE_HASHES` hashes, so every normalisation is a fixed point.

#![no_main]

use aquatic_udp_protocol::Request;
use libfuzzer_sys::fuzz_target;

const MAX_SCRAPE_HASHES: usize = 100;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = Request::parse(data, MAX_SCRAPE_HASHES) else {
        return;
    };
    let mut rewritten = Vec::new();
    request.write(&mut rewritten);
    // Canonical options cost at most one byte more (the end option).
    assert!(rewritten.len() <= data.len() + 1);
    match Request::parse(&rewritten, MAX_SCRAPE_HASHES) {
        Ok(reparsed) => assert_eq!(reparsed, request),
        Err(error) => panic!("rewritten {request:?} does not parse: {error:?}"),
    }
});
