//! Datagram links: the one thing the datagram protocol needs from a network. A link carries
//! whole frames, may drop, duplicate, reorder or corrupt them, and never splits or merges them.
//!
//! Implementations here: [`UdpLink`] (a connected UDP socket) and [`MemLink`] (an in-process
//! pair with a configurable MTU and impairments, for deterministic tests of loss, corruption,
//! duplication and reordering). The DPDK link (feature `dpdk`) is in `transfer::dpdk`.

use super::frame::FRAME_HEADER;
use std::any::Any;
use std::collections::VecDeque;
use std::io;
use std::net::UdpSocket;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

/// Memory lent to a link with [`Link::send_lent`], handed to it when the send ends
/// ([`Link::retire`]): it owns the lent bytes, and dropping it frees them.
pub type LentMemory = Box<dyn Any + Send>;

/// A frame-carrying link to one peer.
pub trait Link: Send {
    /// Largest frame (header + payload) this link could ever carry; MTU discovery searches at or
    /// below it.
    fn max_frame(&self) -> usize;

    /// Sends one frame made of `parts` gathered in order (the frame header, then the payload).
    /// A frame too large for the path may be dropped silently (as a network would) or refused
    /// with `EMSGSIZE`. The link copies what it sends: it references no byte of `parts` after
    /// this returns (control frames, whose buffers die at once, always go this way).
    fn send(&mut self, parts: &[&[u8]]) -> io::Result<()>;

    /// [`Link::send`] for a block data frame whose payload a zero-copy link may keep
    /// referencing after this returns (DPDK: attached to an mbuf until the driver or the peer is
    /// done with it). Links that copy ([`Link::lends`] false) just send.
    ///
    /// # Safety
    /// Every byte of `parts` must stay allocated and unchanged until [`Link::release`] returns
    /// `Ok`, or until the memory that holds it, handed to [`Link::retire`], is handed back; if
    /// `release` fails (its deadline passed with frames still out), until the end of the process
    /// — the caller then leaks the memory. Memory that `retire` keeps is the link's to free.
    unsafe fn send_lent(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        self.send(parts)
    }

    /// Pushes out frames the link queued: a link may queue what it sends and push it out in
    /// bursts, or when it next receives (DPDK). A side that sends a last frame and then stops
    /// using the link for a while (a receiver's DONE or ABORT) calls this. The default has
    /// nothing queued.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Whether [`Link::send_lent`] may keep references to the memory it is given (so a sender
    /// only lends memory it can keep alive). False for copying links.
    fn lends(&self) -> bool {
        false
    }

    /// Receives one frame into `buf`, waiting at most `timeout`; `Ok(None)` on timeout. Frames
    /// larger than `buf` are dropped.
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>>;

    /// Returns `Ok` once the link no longer references memory handed to [`Link::send_lent`]
    /// since the last [`Link::retire`] (zero-copy links hold it until the NIC or the peer is
    /// done). Copying links return at once. A zero-copy link waits a bounded time: past its
    /// deadline it returns an error (`TimedOut`) and the memory may stay referenced for the rest
    /// of the process (see [`Link::send_lent`]).
    fn release(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Ends a send that lent memory: `memory` owns every byte handed to [`Link::send_lent`]
    /// since the last `retire`. Returns it when the link no longer references any of it, so the
    /// caller may reuse or free it; otherwise returns `None` and keeps it, without waiting for
    /// the peer: the link drops it once no frame references it any more, and leaks it if that
    /// never happens while the link lives. Frames still out (a resend the peer has not read yet)
    /// thus never fail a send, nor hold up the next ones.
    ///
    /// The default waits with [`Link::release`] and returns the memory, or leaks it (logged)
    /// when that fails.
    fn retire(&mut self, memory: LentMemory) -> Option<LentMemory> {
        match self.release() {
            Ok(()) => Some(memory),
            Err(e) => {
                tracing::error!(peer = %self.peer(), error = %e, "the link still references lent memory past its deadline: leaking it");
                std::mem::forget(memory);
                None
            }
        }
    }

    /// A stable name of the peer, the key of the MTU cache.
    fn peer(&self) -> String;

    /// Receives one frame, waiting at most `timeout`, as an [`RxFrame`] that may keep the
    /// link's memory (a DPDK mbuf) until dropped, and may be moved to another thread, so the
    /// receiver can check and place it there without copying it first. The default receives
    /// into a new buffer with [`Link::recv`] and gives back the room the frame does not use (a
    /// kept frame holds its own size, not [`Link::max_frame`]).
    fn recv_frame(&mut self, timeout: Duration) -> io::Result<Option<RxFrame>> {
        let mut buf = vec![0u8; self.max_frame().max(super::session::MIN_FRAME)];
        Ok(self.recv(&mut buf, timeout)?.map(|n| {
            buf.truncate(n);
            buf.shrink_to_fit();
            RxFrame::owned(buf)
        }))
    }
}

/// Frame bytes a link lends out: a header and a payload that may lie apart (DPDK: the first
/// segment of a packet and an attached external buffer). Dropping it gives the memory back.
pub trait LentFrame: Send {
    /// The frame's first [`FRAME_HEADER`] bytes (fewer only for a frame shorter than that).
    fn head(&self) -> &[u8];
    /// The rest of the frame.
    fn payload(&self) -> &[u8];
}

/// One received frame (see [`Link::recv_frame`]).
pub struct RxFrame(Repr);

enum Repr {
    Owned(Vec<u8>),
    Lent(Box<dyn LentFrame>),
}

impl std::fmt::Debug for RxFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RxFrame({} + {} bytes)", self.head().len(), self.payload().len())
    }
}

impl RxFrame {
    /// A frame held in a buffer of its own.
    pub fn owned(bytes: Vec<u8>) -> RxFrame {
        RxFrame(Repr::Owned(bytes))
    }

    /// A frame in memory lent by a link.
    pub fn lent(frame: Box<dyn LentFrame>) -> RxFrame {
        RxFrame(Repr::Lent(frame))
    }

    /// The header bytes ([`FRAME_HEADER`], fewer only for a runt frame).
    pub fn head(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(v) => &v[..v.len().min(FRAME_HEADER)],
            Repr::Lent(l) => l.head(),
        }
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(v) => v.get(FRAME_HEADER..).unwrap_or(&[]),
            Repr::Lent(l) => l.payload(),
        }
    }

    /// The bytes of a frame held in a buffer of its own (tests corrupt them).
    #[cfg(test)]
    pub(crate) fn owned_bytes_mut(&mut self) -> Option<&mut Vec<u8>> {
        match &mut self.0 {
            Repr::Owned(v) => Some(v),
            Repr::Lent(_) => None,
        }
    }

    /// The same frame in a buffer of its own and of its own size, giving lent memory back (for
    /// frames kept a while).
    pub fn into_owned(self) -> RxFrame {
        match self.0 {
            Repr::Owned(mut v) => {
                v.shrink_to_fit();
                RxFrame::owned(v)
            }
            Repr::Lent(l) => {
                let mut v = Vec::with_capacity(l.head().len() + l.payload().len());
                v.extend_from_slice(l.head());
                v.extend_from_slice(l.payload());
                RxFrame::owned(v)
            }
        }
    }
}

/// A connected UDP socket.
#[derive(Debug)]
pub struct UdpLink {
    sock: UdpSocket,
    peer: String,
    buf: Vec<u8>,
    /// Receive room, reused: a received frame is copied out at its own size.
    rbuf: Vec<u8>,
}

impl UdpLink {
    /// Wraps a socket already `connect`ed to its peer.
    pub fn new(sock: UdpSocket) -> io::Result<UdpLink> {
        let peer = sock.peer_addr()?.to_string();
        Ok(UdpLink { sock, peer, buf: Vec::new(), rbuf: Vec::new() })
    }
}

impl Link for UdpLink {
    fn max_frame(&self) -> usize {
        65_507
    }

    fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        self.buf.clear();
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        match self.sock.send(&self.buf) {
            Ok(_) => Ok(()),
            // A full socket buffer is loss, which the protocol repairs.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        self.sock.set_read_timeout(Some(timeout.max(Duration::from_micros(1))))?;
        match self.sock.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Ok(None),
            // ECONNREFUSED: an ICMP for an earlier send; the peer may not be up yet.
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn recv_frame(&mut self, timeout: Duration) -> io::Result<Option<RxFrame>> {
        let mut rbuf = std::mem::take(&mut self.rbuf);
        rbuf.resize(self.max_frame(), 0);
        let r = self.recv(&mut rbuf, timeout);
        let f = r.map(|n| n.map(|n| RxFrame::owned(rbuf[..n].to_vec())));
        self.rbuf = rbuf;
        f
    }

    fn peer(&self) -> String {
        format!("udp:{}", self.peer)
    }
}

/// Impairments a [`MemLink`] applies to frames it sends, counted per link.
#[derive(Debug, Clone, Copy, Default)]
pub struct Impairments {
    /// Path MTU: larger frames are dropped (0: no limit below `max_frame`).
    pub mtu: usize,
    /// Drop every n-th frame (0: never).
    pub drop_every: usize,
    /// Flip a bit in every n-th frame (0: never).
    pub corrupt_every: usize,
    /// Send every n-th frame twice (0: never).
    pub duplicate_every: usize,
    /// Swap every n-th frame with the next one (0: never).
    pub reorder_every: usize,
}

/// One end of an in-process link pair.
#[derive(Debug)]
pub struct MemLink {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    name: String,
    max_frame: usize,
    imp: Impairments,
    sent: usize,
    held: VecDeque<Vec<u8>>,
}

impl MemLink {
    /// A connected pair; `a_to_b` impairs frames sent by the first end, `b_to_a` by the second.
    pub fn pair(max_frame: usize, a_to_b: Impairments, b_to_a: Impairments) -> (MemLink, MemLink) {
        let (ta, rb) = channel();
        let (tb, ra) = channel();
        (
            MemLink { tx: ta, rx: ra, name: "mem:b".into(), max_frame, imp: a_to_b, sent: 0, held: VecDeque::new() },
            MemLink { tx: tb, rx: rb, name: "mem:a".into(), max_frame, imp: b_to_a, sent: 0, held: VecDeque::new() },
        )
    }

    /// Like a network, sending to a peer that is gone succeeds and the frame is lost.
    fn put(&self, f: Vec<u8>) -> io::Result<()> {
        let _ = self.tx.send(f);
        Ok(())
    }
}

fn every(n: usize, k: usize) -> bool {
    n != 0 && k.is_multiple_of(n)
}

impl Link for MemLink {
    fn max_frame(&self) -> usize {
        self.max_frame
    }

    fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let mut f: Vec<u8> = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            f.extend_from_slice(p);
        }
        if f.len() > self.max_frame {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        if self.imp.mtu != 0 && f.len() > self.imp.mtu {
            return Ok(()); // dropped on the path
        }
        self.sent += 1;
        let k = self.sent;
        if every(self.imp.drop_every, k) {
            return Ok(());
        }
        if every(self.imp.corrupt_every, k) {
            let i = f.len() / 2;
            f[i] ^= 0x01;
        }
        if every(self.imp.duplicate_every, k) {
            self.put(f.clone())?;
        }
        if every(self.imp.reorder_every, k) {
            self.held.push_back(f);
            return Ok(());
        }
        self.put(f)?;
        while let Some(h) = self.held.pop_front() {
            self.put(h)?;
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        match self.rx.recv_timeout(timeout) {
            Ok(f) if f.len() <= buf.len() => {
                buf[..f.len()].copy_from_slice(&f);
                Ok(Some(f.len()))
            }
            Ok(_) => Ok(None),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(io::Error::new(io::ErrorKind::BrokenPipe, "peer end dropped")),
        }
    }

    fn recv_frame(&mut self, timeout: Duration) -> io::Result<Option<RxFrame>> {
        match self.rx.recv_timeout(timeout) {
            Ok(f) => Ok(Some(RxFrame::owned(f))),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(io::Error::new(io::ErrorKind::BrokenPipe, "peer end dropped")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // A frame held back to be reordered goes out now.
        while let Some(h) = self.held.pop_front() {
            self.put(h)?;
        }
        Ok(())
    }

    fn release(&mut self) -> io::Result<()> {
        self.flush()
    }

    fn peer(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link that only implements `recv`, with a datagram-sized maximum.
    struct Tiny(MemLink);

    impl Link for Tiny {
        fn max_frame(&self) -> usize {
            65_507
        }
        fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
            self.0.send(parts)
        }
        fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
            self.0.recv(buf, timeout)
        }
        fn peer(&self) -> String {
            self.0.peer()
        }
    }

    #[test]
    fn received_frames_hold_their_own_size() {
        let (mut a, b) = MemLink::pair(1 << 17, Impairments::default(), Impairments::default());
        let mut b = Tiny(b);
        a.send(&[&[1u8; 60]]).unwrap();
        let f = b.recv_frame(Duration::from_secs(1)).unwrap().unwrap();
        let Repr::Owned(v) = &f.0 else { panic!("owned") };
        assert_eq!((v.len(), v.capacity()), (60, 60));

        let (a, b) =
            (std::net::UdpSocket::bind("127.0.0.1:0").unwrap(), std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        let (mut a, mut b) = (UdpLink::new(a).unwrap(), UdpLink::new(b).unwrap());
        a.send(&[&[2u8; 70]]).unwrap();
        let f = b.recv_frame(Duration::from_secs(1)).unwrap().unwrap();
        let Repr::Owned(v) = &f.0 else { panic!("owned") };
        assert_eq!((v.len(), v.capacity()), (70, 70));
    }
}
