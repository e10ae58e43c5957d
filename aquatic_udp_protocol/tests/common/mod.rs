//! Helpers shared by the integration tests.

use aquatic_udp_protocol::{Request, Response};

/// The bytes `request` writes.
pub fn written_request(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    request.write(&mut out);
    out
}

/// The bytes `response` writes.
pub fn written_response(response: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    response.write(&mut out);
    out
}
