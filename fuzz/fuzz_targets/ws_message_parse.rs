//! Arbitrary bytes as a WebTorrent client message. Parsing must never
//! panic; a parsed message, written back as a client writes it, must parse
//! to itself (an unknown event is `Update`, written without `event`; a
//! `null` answer is no answer, so the message stays an announce; numbers
//! are already cut to what `left` and `numwant` keep, so every
//! normalisation is a fixed point). A failure must be writable as a
//! failure reason that a client reads back unchanged.

#![no_main]

use aquatic_ws_protocol::{ErrorResponse, InMessage, OutMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let message = match InMessage::from_json(&mut data.to_vec()) {
        Ok(message) => message,
        Err(error) => {
            let reply = OutMessage::Error(ErrorResponse::from(error));
            let mut json = reply.to_json();
            match OutMessage::from_json(&mut json) {
                Ok(read) => assert_eq!(read, reply),
                Err(e) => panic!("failure reply {reply:?} does not parse: {e}"),
            }
            return;
        }
    };
    let mut rewritten = message.to_json();
    match InMessage::from_json(&mut rewritten) {
        Ok(reparsed) => assert_eq!(reparsed, message),
        Err(error) => panic!("rewritten {message:?} does not parse: {error:?}"),
    }
});
