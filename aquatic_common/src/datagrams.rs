//! Batched UDP: many datagrams per system call (`recvmmsg`, `sendmmsg`),
//! each with the local address it was sent to, so that its answer leaves
//! from that same address (`IP_PKTINFO`, `IPV6_PKTINFO`).
//!
//! A host has many addresses (IPv4 and IPv6, several of each, anycast); a
//! socket bound to the wildcard address lets the kernel pick the source of
//! a reply by routing, which need not be the address the client asked, and
//! a client with a connected socket (libtorrent matches replies by
//! endpoint) never sees such a reply. So every datagram's destination is
//! read from its control message and set as the source of its answer: one
//! code path for IPv4, IPv6 and IPv4 clients of a dual-stack IPv6 socket
//! (whose addresses the kernel reports and takes in IPv4-mapped form).
//!
//! Used by aquatic_udp only: its socket workers, and its `create_socket`
//! for [`enable_local_addresses`] (the UDP load tester sends and receives
//! one datagram per call on mio sockets). One of aquatic_common's two
//! modules with `unsafe` (the other is `listen_queue`): the libc calls and
//! the raw control-message buffers they fill. Nothing it returns borrows the
//! kernel's view: buffers are owned here, headers are built afresh for
//! each call from them, and results are copied out. `scripts/valgrind.sh`
//! runs this module's tests under valgrind's memcheck in the test suite.
//! std, mio and socket2 have no batched calls or control messages; nix's
//! `sendmmsg` shares one set of control messages across a batch and reads
//! uninitialised memory to count its results.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::ptr;

/// Datagrams per system call.
pub const BATCH: usize = 64;

/// Room for one IPv6 and one IPv4 packet-info control message, aligned as
/// `cmsghdr` needs.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct ControlBuffer([u8; 128]);

impl Default for ControlBuffer {
    fn default() -> Self {
        Self([0; 128])
    }
}

/// Ask the kernel for each datagram's destination address. `ipv6`: the
/// socket is IPv6 (dual stack or not). An error means replies go out from
/// the address the kernel picks; the caller warns.
pub fn enable_local_addresses(fd: RawFd, ipv6: bool) -> io::Result<()> {
    let on: libc::c_int = 1;
    if ipv6 {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, on)?;
        // For IPv4 clients of a dual-stack socket: some kernels report
        // them only this way. Not fatal on an IPv6-only socket.
        let _ = setsockopt(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, on);
        Ok(())
    } else {
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, on)
    }
}

fn setsockopt(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and its size is passed; the kernel
    // only reads it. An invalid fd is reported as an error.
    let result = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            ptr::from_ref(&value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A datagram received: its bytes, its sender, and the local address it
/// was sent to (IPv4-mapped addresses as IPv4).
#[derive(Debug, PartialEq, Eq)]
pub struct Received<'a> {
    pub payload: &'a [u8],
    pub src: SocketAddr,
    pub local: Option<IpAddr>,
    /// Longer than the slot it was read into: `payload` is its start.
    pub truncated: bool,
}

#[derive(Clone, Copy)]
struct Meta {
    len: usize,
    src: Option<SocketAddr>,
    local: Option<IpAddr>,
    truncated: bool,
}

/// Buffers for up to [`BATCH`] datagrams of up to `slot` bytes each, and
/// the headers that point into them, built once.
pub struct RecvBatch {
    slot: usize,
    bufs: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    controls: Vec<ControlBuffer>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    metas: Vec<Meta>,
}

// SAFETY: the raw pointers in `iovs` and `hdrs` point only into the heap
// buffers of `bufs`, `names`, `controls` and `iovs`, owned by the same
// value and never resized after `new`; moving the value to another thread
// moves their owner with them, and nothing else refers to them.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub fn new(slot: usize) -> Self {
        let slot = slot.max(1);
        let mut batch = Self {
            slot,
            bufs: vec![0; slot * BATCH],
            // SAFETY: all-zero is a valid sockaddr_storage (family 0), and
            // a valid mmsghdr (null pointers, zero lengths).
            names: vec![unsafe { mem::zeroed() }; BATCH],
            controls: vec![ControlBuffer::default(); BATCH],
            iovs: Vec::with_capacity(BATCH),
            hdrs: vec![unsafe { mem::zeroed() }; BATCH],
            metas: Vec::with_capacity(BATCH),
        };
        for buf in batch.bufs.chunks_exact_mut(slot) {
            batch.iovs.push(libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            });
        }
        let Self {
            names,
            controls,
            iovs,
            hdrs,
            ..
        } = &mut batch;
        for (((hdr, name), control), iov) in hdrs
            .iter_mut()
            .zip(names.iter_mut())
            .zip(controls.iter_mut())
            .zip(iovs.iter_mut())
        {
            let h = &mut hdr.msg_hdr;
            h.msg_name = ptr::from_mut(name).cast();
            h.msg_iov = ptr::from_mut(iov);
            h.msg_iovlen = 1;
            h.msg_control = control.0.as_mut_ptr().cast();
        }
        batch
    }

    /// Receive what is waiting, up to [`BATCH`] datagrams: how many
    /// (`WouldBlock` when none). Read them with [`get`](Self::get). With
    /// `wait`, on a blocking socket, wait for the first (up to the socket's
    /// receive timeout, then `WouldBlock`), and take the others that are
    /// there with it (`MSG_WAITFORONE`); otherwise never wait.
    pub fn recv(&mut self, fd: RawFd, wait: bool) -> io::Result<usize> {
        self.metas.clear();
        // The kernel shortens these to what it wrote: give the room again.
        for hdr in &mut self.hdrs {
            hdr.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_hdr.msg_controllen = mem::size_of::<ControlBuffer>() as _;
            hdr.msg_hdr.msg_flags = 0;
        }
        let vlen = self.hdrs.len().min(self.iovs.len()) as libc::c_uint;
        let received = loop {
            // SAFETY: each header points into buffers owned by `self`, all
            // alive and not otherwise borrowed until the call returns (see
            // `new`); the lengths given are theirs. The kernel writes at
            // most that much into each.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    vlen,
                    if wait {
                        libc::MSG_WAITFORONE
                    } else {
                        libc::MSG_DONTWAIT
                    },
                    ptr::null_mut(),
                )
            };
            if n >= 0 {
                break n as usize;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        };
        for (hdr, name) in self.hdrs.iter().zip(&self.names).take(received) {
            let h = &hdr.msg_hdr;
            self.metas.push(Meta {
                len: (hdr.msg_len as usize).min(self.slot),
                src: socket_addr(name, h.msg_namelen),
                // SAFETY: `h` is the header the kernel just filled: its
                // control pointer is our buffer and `msg_controllen` how
                // much of it the kernel wrote.
                local: unsafe { local_address(h) },
                truncated: h.msg_flags & libc::MSG_TRUNC != 0,
            });
        }
        Ok(received)
    }

    /// Datagram `i` of the last [`recv`](Self::recv); `None` past its count
    /// or for a sender address the kernel did not give.
    pub fn get(&self, i: usize) -> Option<Received<'_>> {
        let meta = self.metas.get(i)?;
        let start = i.checked_mul(self.slot)?;
        Some(Received {
            payload: self.bufs.get(start..start + meta.len)?,
            src: meta.src?,
            local: meta.local,
            truncated: meta.truncated,
        })
    }

    pub fn len(&self) -> usize {
        self.metas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }
}

/// The address in a `sockaddr_storage` the kernel filled with `len` bytes.
fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for one.
            let addr: libc::sockaddr_in = unsafe { ptr::read(ptr::from_ref(storage).cast()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
                u16::from_be(addr.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let addr: libc::sockaddr_in6 = unsafe { ptr::read(ptr::from_ref(storage).cast()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(addr.sin6_addr.s6_addr),
                u16::from_be(addr.sin6_port),
                addr.sin6_flowinfo,
                addr.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The destination address in a received header's packet-info control
/// message, IPv4-mapped addresses as IPv4.
///
/// # Safety
/// `h.msg_control` must point to `h.msg_controllen` bytes the kernel wrote
/// (or be null with a length of 0).
#[allow(clippy::unnecessary_cast)] // msg_controllen is usize in glibc, socklen_t in musl
unsafe fn local_address(h: &libc::msghdr) -> Option<IpAddr> {
    if h.msg_control.is_null() || (h.msg_controllen as usize) < mem::size_of::<libc::cmsghdr>() {
        return None;
    }
    let mut found = None;
    // SAFETY (the calls below): CMSG_FIRSTHDR and CMSG_NXTHDR stay within
    // `msg_control .. msg_controllen` and return null at its end; each
    // header they return lies in that range, with `cmsg_len` bytes checked
    // against the data read (read unaligned: control data need not be).
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(h) };
    while !cmsg.is_null() {
        let c = unsafe { &*cmsg };
        let data_len = (c.cmsg_len as usize).saturating_sub(unsafe { libc::CMSG_LEN(0) } as usize);
        let data = unsafe { libc::CMSG_DATA(cmsg) };
        match (c.cmsg_level, c.cmsg_type) {
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
                if data_len >= mem::size_of::<libc::in6_pktinfo>() =>
            {
                let info: libc::in6_pktinfo = unsafe { ptr::read_unaligned(data.cast()) };
                let ip = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                found = Some(ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4));
            }
            (libc::IPPROTO_IP, libc::IP_PKTINFO)
                if data_len >= mem::size_of::<libc::in_pktinfo>() && found.is_none() =>
            {
                let info: libc::in_pktinfo = unsafe { ptr::read_unaligned(data.cast()) };
                found = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    info.ipi_addr.s_addr,
                ))));
            }
            _ => {}
        }
        cmsg = unsafe { libc::CMSG_NXTHDR(h, cmsg) };
    }
    found
}

/// A datagram waiting to be sent, with what the caller wants back about it.
struct Outgoing<T> {
    start: usize,
    len: usize,
    dst: SocketAddr,
    local: Option<IpAddr>,
    tag: T,
}

/// Datagrams to send, in order, each from its local address. Sent by
/// [`send`](Self::send) in calls of up to [`BATCH`].
pub struct SendBatch<T> {
    bytes: Vec<u8>,
    queue: std::collections::VecDeque<Outgoing<T>>,
    /// The socket is IPv6: IPv4 sources go as IPv4-mapped IPv6 packet
    /// info (destinations are already mapped by the caller).
    socket_is_ipv6: bool,
    /// Filled anew (the first datagrams' worth) for each call.
    names: Vec<libc::sockaddr_storage>,
    controls: Vec<ControlBuffer>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovs` and `hdrs` are set before each call
// from buffers of the same value (`bytes`, `names`, `controls`, `iovs`)
// and are not used after it returns; a moved value carries its buffers.
unsafe impl<T: Send> Send for SendBatch<T> {}

/// What one [`SendBatch::send`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SendOutcome {
    /// The socket's buffer is full: the rest waits for writability.
    pub blocked: bool,
}

impl<T> SendBatch<T> {
    pub fn new(socket_is_ipv6: bool) -> Self {
        Self {
            bytes: Vec::with_capacity(BATCH * 1500),
            queue: std::collections::VecDeque::with_capacity(BATCH),
            socket_is_ipv6,
            // SAFETY: all-zero is a valid sockaddr_storage and mmsghdr.
            names: vec![unsafe { mem::zeroed() }; BATCH],
            controls: vec![ControlBuffer::default(); BATCH],
            iovs: vec![
                libc::iovec {
                    iov_base: ptr::null_mut(),
                    iov_len: 0,
                };
                BATCH
            ],
            hdrs: vec![unsafe { mem::zeroed() }; BATCH],
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queue a datagram: `write` appends its bytes. `dst` must suit the
    /// socket (IPv4-mapped for IPv4 clients of an IPv6 socket).
    pub fn push(
        &mut self,
        dst: SocketAddr,
        local: Option<IpAddr>,
        tag: T,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        let start = self.bytes.len();
        write(&mut self.bytes);
        self.queue.push_back(Outgoing {
            start,
            len: self.bytes.len() - start,
            dst,
            local,
            tag,
        });
    }

    /// Send everything queued, [`BATCH`] at a time, until done or the
    /// socket would block. Each datagram sent goes to `sent` (with its
    /// length); one the kernel refuses (an unreachable or invalid address,
    /// say) goes to `failed` and the rest are still sent.
    pub fn send(
        &mut self,
        fd: RawFd,
        mut sent: impl FnMut(T, usize),
        mut failed: impl FnMut(T, io::Error),
    ) -> SendOutcome {
        while !self.queue.is_empty() {
            match self.send_some(fd) {
                Ok(n) => {
                    for item in self.queue.drain(..n) {
                        sent(item.tag, item.len);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.compact();
                    return SendOutcome { blocked: true };
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    // The first datagram was refused; the rest may not be.
                    if let Some(item) = self.queue.pop_front() {
                        failed(item.tag, err);
                    }
                }
            }
        }
        self.bytes.clear();
        SendOutcome::default()
    }

    /// Drop the bytes of datagrams already sent.
    fn compact(&mut self) {
        let Some(first) = self.queue.front().map(|o| o.start) else {
            self.bytes.clear();
            return;
        };
        if first > 0 {
            self.bytes.drain(..first);
            for item in &mut self.queue {
                item.start -= first;
            }
        }
    }

    /// One `sendmmsg` of the first datagrams queued: how many went.
    fn send_some(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut count = 0;
        for ((((item, iov), name), control), hdr) in self
            .queue
            .iter()
            .take(BATCH)
            .zip(self.iovs.iter_mut())
            .zip(self.names.iter_mut())
            .zip(self.controls.iter_mut())
            .zip(self.hdrs.iter_mut())
        {
            // Queued items always lie within `bytes`.
            let Some(payload) = self.bytes.get(item.start..item.start + item.len) else {
                break;
            };
            *iov = libc::iovec {
                // The kernel only reads it (sendmmsg takes no const).
                iov_base: payload.as_ptr().cast_mut().cast(),
                iov_len: payload.len(),
            };
            let h = &mut hdr.msg_hdr;
            h.msg_namelen = write_socket_addr(name, item.dst);
            h.msg_name = ptr::from_mut(name).cast();
            h.msg_iov = ptr::from_mut(iov);
            h.msg_iovlen = 1;
            h.msg_control = ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            if let Some(local) = item.local {
                h.msg_control = control.0.as_mut_ptr().cast();
                h.msg_controllen = control.0.len() as _;
                // SAFETY: `h.msg_control` points to `control`, large and
                // aligned enough for the one message written.
                h.msg_controllen = unsafe { write_source(h, local, self.socket_is_ipv6) } as _;
                if h.msg_controllen == 0 {
                    h.msg_control = ptr::null_mut();
                }
            }
            count += 1;
        }
        // SAFETY: the first `count` headers were just set to point into
        // `iovs`, `names`, `controls` and `bytes`, all alive and unchanged
        // until the call returns; the kernel only reads them (and writes
        // msg_len).
        // Never waits, also on a socket left blocking for its receives.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

/// Write `addr` into `storage`: its length.
fn write_socket_addr(storage: &mut libc::sockaddr_storage, addr: SocketAddr) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large and aligned enough for a
            // sockaddr_in.
            unsafe { ptr::write(ptr::from_mut(storage).cast(), sin) };
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { ptr::write(ptr::from_mut(storage).cast(), sin6) };
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Write the packet-info control message that makes `local` the source
/// address: its length (0 when `local` does not suit the socket).
///
/// # Safety
/// `h.msg_control` must point to `h.msg_controllen` writable bytes, aligned
/// for `cmsghdr`, at least `CMSG_SPACE(sizeof(in6_pktinfo))` of them.
unsafe fn write_source(h: &mut libc::msghdr, local: IpAddr, socket_is_ipv6: bool) -> usize {
    // SAFETY: CMSG_FIRSTHDR of a control buffer at least one header long
    // is its start; the data written fits in CMSG_SPACE of its size,
    // which the caller guarantees.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(h) };
    if cmsg.is_null() {
        return 0;
    }
    let c = unsafe { &mut *cmsg };
    if socket_is_ipv6 {
        let ip = match local {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: ip.octets(),
            },
            ipi6_ifindex: 0,
        };
        c.cmsg_level = libc::IPPROTO_IPV6;
        c.cmsg_type = libc::IPV6_PKTINFO;
        c.cmsg_len = unsafe { libc::CMSG_LEN(mem::size_of::<libc::in6_pktinfo>() as u32) } as _;
        unsafe { ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info) };
        (unsafe { libc::CMSG_SPACE(mem::size_of::<libc::in6_pktinfo>() as u32) }) as usize
    } else {
        let IpAddr::V4(v4) = local else {
            return 0;
        };
        let info = libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(v4).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        c.cmsg_level = libc::IPPROTO_IP;
        c.cmsg_type = libc::IP_PKTINFO;
        c.cmsg_len = unsafe { libc::CMSG_LEN(mem::size_of::<libc::in_pktinfo>() as u32) } as _;
        unsafe { ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info) };
        (unsafe { libc::CMSG_SPACE(mem::size_of::<libc::in_pktinfo>() as u32) }) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    fn wait_recv(batch: &mut RecvBatch, socket: &UdpSocket, want: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = 0;
        while got < want && Instant::now() < deadline {
            match batch.recv(socket.as_raw_fd(), false) {
                Ok(n) => return n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
            got = batch.len();
        }
        batch.len()
    }

    /// A server on 0.0.0.0 asked at 127.0.0.2 answers from 127.0.0.2: a
    /// client connected to that address gets the answer (a connected UDP
    /// socket drops datagrams from any other).
    #[test]
    fn answers_leave_from_the_address_asked_ipv4() {
        let server = UdpSocket::bind("0.0.0.0:0").unwrap();
        server.set_nonblocking(true).unwrap();
        enable_local_addresses(server.as_raw_fd(), false).unwrap();
        let port = server.local_addr().unwrap().port();
        let mut clients = Vec::new();
        for (n, to) in [(1u8, 2u8), (3, 1), (4, 4)] {
            let client = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, n), 0)).unwrap();
            client
                .connect((Ipv4Addr::new(127, 0, 0, to), port))
                .unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            client.send(&[n, to, 9]).unwrap();
            clients.push((client, to));
        }
        let mut batch = RecvBatch::new(64);
        let mut received = 0;
        let mut replies = SendBatch::new(false);
        let deadline = Instant::now() + Duration::from_secs(5);
        while received < 3 && Instant::now() < deadline {
            let n = wait_recv(&mut batch, &server, 3 - received);
            for i in 0..n {
                let d = batch.get(i).unwrap();
                let (n, to) = (d.payload[0], d.payload[1]);
                assert_eq!(d.src.ip(), IpAddr::from([127, 0, 0, n]));
                assert_eq!(d.local, Some(IpAddr::from([127, 0, 0, to])));
                assert!(!d.truncated);
                replies.push(d.src, d.local, i, |out| out.extend_from_slice(&[to; 3]));
            }
            received += n;
        }
        assert_eq!(received, 3);
        let mut sent = 0;
        let outcome = replies.send(
            server.as_raw_fd(),
            |_, len| sent += len,
            |_, e| panic!("{e}"),
        );
        assert_eq!(outcome, SendOutcome::default());
        assert_eq!(sent, 9);
        assert!(replies.is_empty());
        for (client, to) in clients {
            let mut buf = [0u8; 16];
            let n = client
                .recv(&mut buf)
                .expect("an answer from the address asked");
            assert_eq!(&buf[..n], &[to; 3]);
        }
    }

    /// A dual-stack socket: IPv6 clients and IPv4 ones (reported and
    /// answered through IPv4-mapped addresses).
    #[test]
    fn a_dual_stack_socket_reports_and_uses_both_families() {
        let server =
            socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None).unwrap();
        server.set_only_v6(false).unwrap();
        server
            .bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())
            .unwrap();
        server.set_nonblocking(true).unwrap();
        let server: UdpSocket = server.into();
        enable_local_addresses(server.as_raw_fd(), true).unwrap();
        let port = server.local_addr().unwrap().port();
        let v4 = UdpSocket::bind("127.0.0.5:0").unwrap();
        v4.connect(("127.0.0.6", port)).unwrap();
        let v6 = UdpSocket::bind("[::1]:0").unwrap();
        v6.connect(("::1", port)).unwrap();
        for c in [&v4, &v6] {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.send(b"hi").unwrap();
        }
        let mut batch = RecvBatch::new(4);
        let mut replies = SendBatch::new(true);
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.len() < 2 && Instant::now() < deadline {
            let n = wait_recv(&mut batch, &server, 2);
            for i in 0..n {
                let d = batch.get(i).unwrap();
                seen.push(d.local);
                replies.push(d.src, d.local, (), |out| out.extend_from_slice(d.payload));
            }
        }
        seen.sort();
        assert_eq!(
            seen,
            vec![
                Some(IpAddr::from([127, 0, 0, 6])),
                Some(IpAddr::from(Ipv6Addr::LOCALHOST))
            ]
        );
        replies.send(server.as_raw_fd(), |_, _| {}, |_, e| panic!("{e}"));
        for c in [&v4, &v6] {
            let mut buf = [0u8; 8];
            assert_eq!(c.recv(&mut buf).unwrap(), 2);
        }
    }

    #[test]
    fn long_datagrams_are_flagged_and_refused_sends_do_not_stop_the_rest() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        enable_local_addresses(server.as_raw_fd(), false).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        client.send(&[7u8; 100]).unwrap();
        let mut batch = RecvBatch::new(16);
        assert_eq!(wait_recv(&mut batch, &server, 1), 1);
        let d = batch.get(0).unwrap();
        assert!(d.truncated);
        assert_eq!(d.payload, &[7u8; 16]);
        assert!(batch.get(1).is_none());

        // An IPv6 destination on an IPv4 socket is refused by the kernel;
        // the datagrams around it still go.
        let mut sends = SendBatch::new(false);
        let to = client.local_addr().unwrap();
        sends.push(to, None, 1, |out| out.push(1));
        sends.push("[::1]:9".parse().unwrap(), None, 2, |out| out.push(2));
        sends.push(to, Some(IpAddr::from([127, 0, 0, 1])), 3, |out| out.push(3));
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        let outcome = sends.send(server.as_raw_fd(), |t, _| ok.push(t), |t, _| failed.push(t));
        assert!(!outcome.blocked);
        assert_eq!((ok, failed), (vec![1, 3], vec![2]));
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(client.recv(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], 1);
        assert_eq!(client.recv(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], 3);
        // Nothing waiting: WouldBlock, not an error.
        let err = batch.recv(server.as_raw_fd(), false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        // A bad descriptor is an error, not a crash.
        assert!(batch.recv(-1, false).is_err());
    }

    /// More than a batch of datagrams queued: all sent, in calls of
    /// BATCH, and a full socket buffer reported as blocked with the rest
    /// kept.
    #[test]
    fn many_datagrams_go_in_batches_and_wait_when_blocked() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = sink.local_addr().unwrap();
        let mut sends = SendBatch::new(false);
        for i in 0..3 * BATCH + 5 {
            sends.push(to, None, i, |out| {
                out.extend_from_slice(&(i as u32).to_be_bytes())
            });
        }
        let mut sent = Vec::new();
        sends.send(
            server.as_raw_fd(),
            |t, _| sent.push(t),
            |_, e| panic!("{e}"),
        );
        assert_eq!(sent, (0..3 * BATCH + 5).collect::<Vec<_>>());
        sink.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 8];
        let mut got = 0;
        while let Ok(4) = sink.recv(&mut buf) {
            assert_eq!(u32::from_be_bytes(buf[..4].try_into().unwrap()), got);
            got += 1;
        }
        assert_eq!(got as usize, 3 * BATCH + 5);
    }

    /// On a blocking socket with a receive timeout: waits for the first
    /// datagram and takes the ones that came with it; times out empty.
    #[test]
    fn a_waiting_receive_takes_what_came_and_times_out() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new(64);
        let begin = Instant::now();
        let err = batch.recv(server.as_raw_fd(), true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(begin.elapsed() >= Duration::from_millis(90));
        for i in 0..3u8 {
            client.send(&[i]).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(batch.recv(server.as_raw_fd(), true).unwrap(), 3);
        assert_eq!(batch.get(2).unwrap().payload, &[2]);
    }

    /// What stays queued after a blocked send keeps its bytes: the ones
    /// before it are dropped and the offsets follow.
    #[test]
    fn compaction_keeps_what_is_left() {
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut sends = SendBatch::new(false);
        for i in 0..5u8 {
            sends.push(to, None, i, |out| out.extend_from_slice(&[i; 3]));
        }
        sends.queue.drain(..2);
        sends.compact();
        assert_eq!(sends.bytes, [[2u8; 3], [3; 3], [4; 3]].concat());
        let starts: Vec<usize> = sends.queue.iter().map(|o| o.start).collect();
        assert_eq!(starts, vec![0, 3, 6]);
        sends.queue.clear();
        sends.compact();
        assert!(sends.bytes.is_empty());
    }
}
