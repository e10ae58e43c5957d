//! Binding one socket per socket worker on the same address
//! (SO_REUSEPORT). With port 0, the first socket's port is reused for the
//! rest, so all workers share it.

use std::net::SocketAddr;

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

/// Bind `count` sockets with `bind`; errors name `network.address`.
pub fn bind_per_worker<S>(
    count: usize,
    address: SocketAddr,
    bind: impl Fn(SocketAddr) -> anyhow::Result<S>,
    local_addr: impl Fn(&S) -> std::io::Result<SocketAddr>,
) -> anyhow::Result<Vec<S>> {
    let mut address = address;
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let socket =
            bind(address).with_context(|| format!("network.address {address}: cannot bind"))?;
        if address.port() == 0 {
            address = local_addr(&socket)?;
        }
        sockets.push(socket);
    }
    Ok(sockets)
}

/// A non-blocking SO_REUSEPORT TCP listener (HTTP and WebSocket trackers).
pub fn tcp_listener(
    address: SocketAddr,
    only_ipv6: bool,
    backlog: u32,
) -> anyhow::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if address.is_ipv6() {
        socket.set_only_v6(only_ipv6)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// An accept failed for want of file descriptors or memory (logged): the
/// rest of the queue stays; try again next round (at most every poll
/// timeout), never in a tight loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptFailed;

/// A TCP socket worker's accept round: take the connections waiting on
/// the listener `parts` names (with its defences), one at a time, each
/// handed to `admit`. True when an accept failed and the round must be
/// tried again later (the queue may still hold connections). `worker` is
/// passed to both, so that they may borrow it mutably in turn.
pub fn accept_round<W>(
    worker: &mut W,
    parts: impl Fn(&mut W) -> (&mio::net::TcpListener, &mut crate::defences::Defences),
    admit: impl Fn(&mut W, mio::net::TcpStream, SocketAddr),
) -> bool {
    let mut waiting = waiting(parts(worker).0);
    loop {
        let (listener, defences) = parts(worker);
        match accept_next(listener, &mut waiting, defences) {
            None => return false,
            Some(Ok((stream, addr))) => admit(worker, stream, addr),
            Some(Err(AcceptFailed)) => return true,
        }
    }
}

/// How many connections wait on `listener`: accept that many, so no
/// accept4 just to see EAGAIN (unknown: until the queue is empty).
pub fn waiting(listener: &mio::net::TcpListener) -> usize {
    crate::listen_queue::waiting_connections(listener).unwrap_or(usize::MAX)
}

/// The next of the `waiting` connections on `listener`, one at a time, so
/// that each is admitted (or refused and closed) before the next takes a
/// file descriptor: `None` once they are taken or the queue is empty.
/// Connections from addresses the IP filter refuses are closed at once
/// (and counted by `defences`).
pub fn accept_next(
    listener: &mio::net::TcpListener,
    waiting: &mut usize,
    defences: &mut crate::defences::Defences,
) -> Option<Result<(mio::net::TcpStream, SocketAddr), AcceptFailed>> {
    while *waiting > 0 {
        *waiting -= 1;
        match listener.accept() {
            Ok((_stream, addr)) if !defences.admits(addr.ip()) => continue,
            Ok(connection) => return Some(Ok(connection)),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                log::warn!("accept failed: {err}");
                return Some(Err(AcceptFailed));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_shared_and_errors_name_the_address() {
        let sockets = bind_per_worker(
            2,
            "127.0.0.1:0".parse().unwrap(),
            |a| Ok(std::net::UdpSocket::bind(a)?),
            |s| s.local_addr(),
        );
        // Without SO_REUSEPORT the second bind of the same port fails, and
        // the error names the (now concrete) address.
        let err = format!("{:#}", sockets.unwrap_err());
        assert!(err.starts_with("network.address 127.0.0.1:"), "{err}");
        assert!(!err.contains("127.0.0.1:0:"), "{err}");
    }
}
