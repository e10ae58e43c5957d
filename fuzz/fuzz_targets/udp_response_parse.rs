//! Arbitrary bytes as a UDP tracker response, read with both address
//! families. Parsing must never panic, and a parsed response, written back,
//! must parse to itself. Trailing bytes that do not form a whole peer or
//! scrape entry are dropped, so the rewrite is a prefix of the input; an
//! error message is read as lossy UTF-8, so its rewrite may differ from the
//! input but is valid UTF-8 and reads back unchanged.

#![no_main]

use aquatic_udp_protocol::Response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for ipv6 in [false, true] {
        let Ok(response) = Response::parse(data, ipv6) else {
            continue;
        };
        let mut rewritten = Vec::new();
        response.write(&mut rewritten);
        if !matches!(response, Response::Error(_)) {
            assert!(data.starts_with(&rewritten));
        }
        match Response::parse(&rewritten, ipv6) {
            Ok(reparsed) => assert_eq!(reparsed, response),
            Err(error) => panic!("rewritten {response:?} does not parse: {error:?}"),
        }
    }
});
