//! How many connections wait in a TCP listener's accept queue.
//!
//! A socket worker woken for its listener (edge-triggered, as mio
//! registers everything) must accept every waiting connection, since
//! epoll only reports the listener again when another one arrives. Asking
//! `accept4` until it fails with EAGAIN costs a whole failed call per
//! wake-up, and a failed `accept4` is nearly as dear as a successful one:
//! the kernel allocates the new socket, its file and descriptor before it
//! finds the queue empty, then frees them. Under connection-close load the
//! wake-ups come one connection at a time, so that was about one wasted
//! `accept4` per connection (see scripts/bench/RESULTS.md, HTTP). `TCP_INFO` on a listener
//! gives the queue's length instead, without allocating or locking; the
//! worker accepts exactly that many. A connection that arrives after the
//! query raises a new event, so none is left behind.
//!
//! One of aquatic_common's two modules with `unsafe` (the other is
//! `datagrams`); its two `unsafe` blocks are `getsockopt` filling a
//! `libc::tcp_info`, a struct of plain integers, and `assume_init` on it.

use std::mem::{MaybeUninit, offset_of, size_of};
use std::os::fd::{AsFd, AsRawFd};

/// `TCP_LISTEN` in `tcpi_state` (include/net/tcp_states.h).
const TCP_LISTEN: u8 = 10;

/// Connections waiting to be accepted on `listener`, or `None` if the
/// kernel does not say (not a listening TCP socket, or an error): the
/// caller then accepts until `WouldBlock`.
pub fn waiting_connections(listener: &impl AsFd) -> Option<usize> {
    let mut info = MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = libc::socklen_t::try_from(size_of::<libc::tcp_info>()).ok()?;
    // SAFETY: `info` is a valid, writable `tcp_info` of `len` bytes, and
    // `len` a valid `socklen_t`; the kernel writes at most `len` bytes to
    // `info` and the length it wrote to `len`. The descriptor is borrowed
    // from `listener`, so it stays open during the call.
    let result = unsafe {
        libc::getsockopt(
            listener.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if result != 0 {
        return None;
    }
    let written = usize::try_from(len).ok()?;
    if written < offset_of!(libc::tcp_info, tcpi_unacked) + size_of::<u32>() {
        return None;
    }
    // SAFETY: zero-initialised, and every field of `tcp_info` is an
    // integer, for which any bytes (the kernel's or the zeros) are valid.
    let info = unsafe { info.assume_init() };
    if info.tcpi_state != TCP_LISTEN {
        return None;
    }
    // On a listener the kernel reports the accept queue's length here.
    usize::try_from(info.tcpi_unacked).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn counts_the_accept_queue() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        assert_eq!(waiting_connections(&listener), Some(0));
        let clients: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(address).unwrap())
            .collect();
        // connect returns once the handshake is done, so all are queued.
        assert_eq!(waiting_connections(&listener), Some(3));
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(waiting_connections(&listener), Some(2));
        drop((accepted, clients));
    }

    #[test]
    fn not_a_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert_eq!(waiting_connections(&client), None);
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(waiting_connections(&udp), None);
    }
}
