//! The metrics listener's HTTP, with bounds: the status page, `/metrics`,
//! `/stats.json`, `/history.json` and `/health` are answered by a few
//! threads of their own, one request per connection, so nothing sent to
//! this port can take more than a fixed amount of memory or threads.
//!
//! - At most [`WORKERS`] connections are served at once; the others wait
//!   in the kernel's accept queue (128), beyond which new ones are refused
//!   by the kernel.
//! - A request head may be [`MAX_HEAD`] bytes (431 beyond) and must arrive
//!   within [`REQUEST_DEADLINE`] of the accept, however slowly it trickles
//!   (the connection is closed otherwise); the answer must be taken within
//!   [`RESPONSE_DEADLINE`].
//! - Every answer closes its connection (`Connection: close`): a scraper or
//!   a browser polling every few seconds needs no more.
//!
//! tiny_http, used before, starts a thread per waiting connection and
//! reads heads of any size (its header limit is an open pull request), so
//! a slow or endless client could grow the tracker's threads and memory.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Connections served at once.
pub const WORKERS: usize = 4;
/// Longest request head, in bytes.
pub const MAX_HEAD: usize = 8192;
/// Time from the accept for the whole request head to arrive.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Time for the client to take the whole answer.
pub const RESPONSE_DEADLINE: Duration = Duration::from_secs(10);

/// An answer: status, `Content-Type` and body.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn plain(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// What answers a request: `(method, path with query)` to a response.
pub type Handler = Arc<dyn Fn(&str, &str) -> Response + Send + Sync>;

/// Bind the listener (no connection is taken before [`spawn_workers`]).
pub fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(address)
}

/// Start [`WORKERS`] threads answering connections on `listener` with
/// `handler`, for the life of the process.
pub fn spawn_workers(listener: &TcpListener, handler: &Handler) -> io::Result<()> {
    for n in 0..WORKERS {
        let listener = listener.try_clone()?;
        let handler = handler.clone();
        thread::Builder::new()
            .name(format!("metrics-http-{n}"))
            .spawn(move || accept_loop(&listener, &handler))?;
    }
    Ok(())
}

fn accept_loop(listener: &TcpListener, handler: &Handler) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(err) = serve_connection(stream, handler) {
                    log::debug!("metrics: connection ended: {err}");
                }
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => {
                // Out of file descriptors, say: wait rather than spin.
                log::warn!("metrics: accept failed: {err}");
                thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Read one request head (bounded in size and time), answer, close.
fn serve_connection(mut stream: TcpStream, handler: &Handler) -> io::Result<()> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let response = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(ErrorKind::TimedOut, "request head too slow"));
        }
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        head.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&head) {
            Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => {
                let method = request.method.unwrap_or("");
                let path = request.path.unwrap_or("/");
                let response = handler(method, path);
                break (response, method == "HEAD");
            }
            Ok(httparse::Status::Partial) if head.len() <= MAX_HEAD => {}
            Ok(_) | Err(httparse::Error::TooManyHeaders) => {
                break (
                    Response::plain(431, "431 Request Header Fields Too Large\n"),
                    false,
                );
            }
            Err(_) => break (Response::plain(400, "400 Bad Request\n"), false),
        }
    };
    let (response, head_only) = response;
    write_response(&mut stream, &response, head_only)
}

fn write_response(stream: &mut TcpStream, response: &Response, head_only: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(&response.body);
    }
    let deadline = Instant::now() + RESPONSE_DEADLINE;
    let mut written = 0;
    while let Some(rest) = out.get(written..).filter(|rest| !rest.is_empty()) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(ErrorKind::TimedOut, "answer not taken"));
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(rest) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    // Let the client read the answer before the close: end our side, then
    // read (briefly, a bounded amount) what it still sends, so that the
    // close does not reset the connection over unread bytes.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut sink = [0u8; 1024];
    for _ in 0..16 {
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> SocketAddr {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let handler: Handler =
            Arc::new(|method, path| Response::plain(200, format!("{method} {path}\n")));
        spawn_workers(&listener, &handler).unwrap();
        address
    }

    fn exchange(address: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(REQUEST_DEADLINE * 4)).unwrap();
        stream.write_all(request).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[test]
    fn answers_and_bounds() {
        let address = start();
        let ok = exchange(address, b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nGET /metrics?x=1\n"), "{ok}");
        let head = exchange(address, b"HEAD / HTTP/1.1\r\n\r\n");
        assert!(head.contains("Content-Length: 7\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        long.extend_from_slice(b"\r\n\r\n");
        assert!(exchange(address, &long).starts_with("HTTP/1.1 431"));
        assert!(exchange(address, b"\x00\x01 nonsense\r\n\r\n").starts_with("HTTP/1.1 400"));
    }

    #[test]
    fn silent_clients_take_only_their_deadline() {
        let address = start();
        // Every worker held by a client that sends nothing...
        let silent: Vec<TcpStream> = (0..WORKERS * 2)
            .map(|_| TcpStream::connect(address).unwrap())
            .collect();
        // ...is let go after the request deadline, and the next is served.
        let begin = Instant::now();
        let ok = exchange(address, b"GET /health HTTP/1.1\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        let took = begin.elapsed();
        assert!(took <= REQUEST_DEADLINE * 3, "{took:?}");
        drop(silent);
    }
}
