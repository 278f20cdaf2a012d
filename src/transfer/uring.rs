//! `io-uring` (feature `io-uring`): batched submissions on a ring with the socket as a registered
//! file, zero-copy sends (`IORING_OP_SEND_ZC`) and `IORING_OP_SPLICE` on receive.
//!
//! # Send
//! - **Registered buffers** (when `RLIMIT_MEMLOCK` allows [`REGISTERED_BUFFER_BYTES`]): the ring
//!   owns a pool of eight 1 MiB buffers registered with the kernel. Each round submits, in one
//!   `io_uring_enter`, up to eight linked pairs `READ_FIXED(file → slot)` → `SEND_ZC(slot)`; the
//!   kernel pins nothing per call because the buffers are registered once.
//! - **Without registered buffers** (memlock too low): `SEND_ZC` straight from the read-only
//!   mapping of the sealed block, eight 1 MiB chunks per submission.
//! - Blocks whose wire size is below [`ZERO_COPY_MIN`] use plain `IORING_OP_SEND` from the
//!   mapping (a zero-copy send costs a second completion and page pinning, which small sends do
//!   not repay); so does a kernel without `SEND_ZC`, and so does a peer on a loopback address,
//!   because the kernel copies zero-copy data looped to a local socket anyway.
//! - **Ownership.** A `SEND_ZC` completes twice: once when the send is queued, once (a
//!   notification CQE) when the kernel has released the pages. A send here returns only after
//!   every notification of every submitted send has arrived, also on error, so the caller owns
//!   its buffer again when the call returns — the same contract as every other backend.
//!
//! # Receive
//! `SPLICE(socket → pipe)` then `SPLICE(pipe → temp file)`, both through the ring; the body never
//! enters user space, and the temp file is hashed before it is published.

use super::recv::{self, BodyMover};
use super::splice::Pipe;
use super::store::TempBlock;
use super::wire::{BlockHeader, Digest, HEADER_LEN};
use super::{BlockId, BlockStore, Error, Expect, SealedBlock, SendReport, Transport};
use crate::detect::{human_bytes, memlock_limit, REGISTERED_BUFFER_BYTES};
use crate::engine::Backend;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Mutex;

/// Size of one registered buffer / one send chunk.
pub const CHUNK: usize = 1 << 20;
/// Chunks per submission round (= registered buffers).
pub const SLOTS: usize = (REGISTERED_BUFFER_BYTES as usize) / CHUNK;
/// Wire sizes at or above this use `SEND_ZC`; below, plain `SEND`.
pub const ZERO_COPY_MIN: u64 = 64 << 10;

const KIND_READ: u64 = 1;
const KIND_SEND: u64 = 2;
const KIND_SPLICE: u64 = 3;

fn ud(slot: usize, kind: u64) -> u64 {
    ((slot as u64) << 8) | kind
}

/// A ring with the socket slot registered and, when allowed, the buffer pool.
struct Ring {
    // Declared first so it drops (closing the ring and its registrations) before `pool`.
    ring: IoUring,
    pool: Option<Vec<u8>>,
}

impl Ring {
    fn new() -> std::io::Result<(Ring, Option<String>)> {
        let ring = IoUring::builder().build((SLOTS * 2 + 2) as u32)?;
        ring.submitter().register_files_sparse(1)?;
        let mut note = None;
        let pool = match memlock_limit() {
            Some(limit) if limit < REGISTERED_BUFFER_BYTES => {
                note = Some(format!(
                    "registered buffers off: RLIMIT_MEMLOCK {} < {} needed",
                    human_bytes(limit),
                    human_bytes(REGISTERED_BUFFER_BYTES)
                ));
                None
            }
            _ => {
                let mut pool = vec![0u8; SLOTS * CHUNK];
                let iovs: Vec<libc::iovec> = (0..SLOTS)
                    // SAFETY (pointer arithmetic): each slot lies inside `pool`.
                    .map(|i| libc::iovec { iov_base: pool[i * CHUNK..].as_mut_ptr().cast(), iov_len: CHUNK })
                    .collect();
                // SAFETY: the buffers live in `pool`, which is stored next to the ring and dropped
                // only after the ring (field order), so they stay valid while registered.
                match unsafe { ring.submitter().register_buffers(&iovs) } {
                    Ok(()) => Some(pool),
                    Err(e) => {
                        note = Some(format!("registered buffers off: io_uring_register(BUFFERS): {e}"));
                        None
                    }
                }
            }
        };
        Ok((Ring { ring, pool }, note))
    }

    /// Registers `fd` as fixed file 0 for the duration of one call.
    fn bind(&self, fd: i32) -> std::io::Result<()> {
        self.ring.submitter().register_files_update(0, &[fd]).map(drop)
    }

    fn unbind(&self) {
        let _ = self.ring.submitter().register_files_update(0, &[-1]);
    }

    fn push(&mut self, e: &squeue::Entry) -> std::io::Result<()> {
        // SAFETY: every entry pushed here references memory (block mapping, pool slot, caller
        // slice, pipe and file descriptors) that outlives the completion of the operation: the
        // callers wait for every CQE, notifications included, before releasing any of it.
        while unsafe { self.ring.submission().push(e) }.is_err() {
            self.ring.submit()?;
        }
        Ok(())
    }
}

/// The `io-uring` backend. Keeps a small pool of rings so concurrent sends do not share one.
#[derive(Debug)]
pub struct UringTransport {
    rings: Mutex<Vec<RingBox>>,
    notes: Vec<String>,
    send_zc: bool,
    zc_on_loopback: bool,
}

struct RingBox(Ring);

impl std::fmt::Debug for RingBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ring {{ registered_buffers: {} }}", self.0.pool.is_some())
    }
}

impl UringTransport {
    /// Sets up a first ring (fails with the kernel's reason when io_uring is refused).
    pub fn new() -> Result<UringTransport, Error> {
        let (ring, note) = Ring::new()
            .map_err(|e| Error::Unavailable { backend: Backend::IoUring, reason: format!("io_uring_setup: {e}") })?;
        let mut probe = io_uring::Probe::new();
        let send_zc =
            ring.ring.submitter().register_probe(&mut probe).is_ok() && probe.is_supported(opcode::SendZc::CODE);
        let mut notes: Vec<String> = note.into_iter().collect();
        if !send_zc {
            notes.push("kernel lacks IORING_OP_SEND_ZC: plain SEND".into());
        }
        Ok(UringTransport { rings: Mutex::new(vec![RingBox(ring)]), notes, send_zc, zc_on_loopback: false })
    }

    /// Use `SEND_ZC` (and the registered-buffer path) for loopback peers too, which the
    /// transport otherwise skips as pointless there. For tests and measurements of those paths.
    pub fn zero_copy_on_loopback(mut self, on: bool) -> Self {
        self.zc_on_loopback = on;
        self
    }

    fn skip_zc(&self, peer: &TcpStream) -> bool {
        !self.zc_on_loopback && is_loopback(peer)
    }

    /// What this backend could not use here, and why.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Whether the ring pool has registered buffers.
    pub fn registered_buffers(&self) -> bool {
        self.rings.lock().map(|r| r.first().is_some_and(|b| b.0.pool.is_some())).unwrap_or(false)
    }

    fn with_ring<T>(&self, id: Option<BlockId>, f: impl FnOnce(&mut Ring) -> Result<T, Error>) -> Result<T, Error> {
        let taken = self.rings.lock().ok().and_then(|mut v| v.pop());
        let mut ring = match taken {
            Some(r) => r.0,
            None => Ring::new().map_err(|e| Error::io("io_uring_setup", id, e))?.0,
        };
        let out = f(&mut ring);
        ring.unbind();
        if let Ok(mut v) = self.rings.lock() {
            if v.len() < 4 {
                v.push(RingBox(ring));
            }
        }
        out
    }
}

/// Where a send's bytes come from.
enum Source<'a> {
    /// Bytes already in memory (the block's mapping, or the caller's slice).
    Memory(&'a [u8]),
    /// The sealed file, read into the registered slots first.
    File { fd: i32, len: u64 },
}

/// Submits what is queued and reaps CQEs until `outstanding` reaches zero (a `SEND_ZC` CQE
/// flagged `F_MORE` announces its notification, which is awaited too). Calls `on` for every
/// non-notification CQE.
fn reap(r: &mut Ring, mut outstanding: usize, id: BlockId, mut on: impl FnMut(u64, i32)) -> Result<(), Error> {
    while outstanding > 0 {
        match r.ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(Error::io("io_uring_enter", Some(id), e)),
        }
        let cqes: Vec<(u64, i32, u32)> = r.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())).collect();
        for (data, res, flags) in cqes {
            outstanding -= 1;
            if cqueue::more(flags) {
                outstanding += 1;
            }
            if !cqueue::notif(flags) {
                on(data, res);
            }
        }
    }
    Ok(())
}

/// Sends all of `src` on fixed file 0, in rounds of up to [`SLOTS`] chunks. Within a round the
/// sends form one linked chain, so the stream keeps their order; a short or failed send cancels
/// the rest of the chain, which is resubmitted from the first byte not sent. Every notification
/// is awaited before returning (see the module docs on ownership).
fn send_all(r: &mut Ring, src: Source<'_>, zc: bool, id: BlockId) -> Result<String, Error> {
    let total = match &src {
        Source::Memory(m) => m.len() as u64,
        Source::File { len, .. } => *len,
    };
    let fixed = matches!(src, Source::File { .. });
    let sock = types::Fixed(0);
    let method = match (fixed, zc) {
        (true, _) => "io_uring READ_FIXED + linked SEND_ZC (registered buffers, registered socket)",
        (false, true) => "io_uring linked SEND_ZC from the block mapping (registered socket)",
        (false, false) => "io_uring linked SEND (registered socket)",
    };
    let io_err = |what: &str, e: std::io::Error| Error::io(format!("io_uring {what}"), Some(id), e);
    let mut off = 0u64;
    while off < total {
        let mut round: Vec<(u64, usize)> = Vec::new(); // (file/memory offset, len); slot = index
        while round.len() < SLOTS && off < total {
            let n = ((total - off) as usize).min(CHUNK);
            round.push((off, n));
            off += n as u64;
        }
        // Base pointer of each chunk.
        let mut bases: Vec<*const u8> = Vec::with_capacity(round.len());
        if let Source::File { fd, .. } = src {
            let pool = r.pool.as_mut().ok_or_else(|| Error::Unavailable {
                backend: Backend::IoUring,
                reason: "registered buffers missing".into(),
            })?;
            let ptrs: Vec<*mut u8> = (0..round.len()).map(|slot| pool[slot * CHUNK..].as_mut_ptr()).collect();
            for (slot, &(o, n)) in round.iter().enumerate() {
                let e = opcode::ReadFixed::new(types::Fd(fd), ptrs[slot], n as u32, slot as u16)
                    .offset(o)
                    .build()
                    .user_data(ud(slot, KIND_READ));
                r.push(&e).map_err(|e| io_err("submit", e))?;
            }
            let mut bad = None;
            reap(r, round.len(), id, |data, res| {
                let (_, n) = round[(data >> 8) as usize];
                if res < 0 {
                    bad.get_or_insert(std::io::Error::from_raw_os_error(-res));
                } else if res as usize != n {
                    bad.get_or_insert(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "short read of sealed block",
                    ));
                }
            })?;
            if let Some(e) = bad {
                return Err(io_err("READ_FIXED", e));
            }
            bases.extend(ptrs.into_iter().map(|p| p as *const u8));
        } else if let Source::Memory(m) = src {
            bases.extend(round.iter().map(|&(o, _)| m[o as usize..].as_ptr()));
        }
        // Linked sends, resubmitted from the first unsent byte until the round is out.
        let mut sent = vec![0usize; round.len()];
        let mut first = 0usize;
        while first < round.len() {
            let last = round.len() - 1;
            for slot in first..round.len() {
                let n = round[slot].1 - sent[slot];
                // SAFETY (pointer arithmetic): sent[slot] < chunk length, inside the chunk.
                let p = bases[slot].wrapping_add(sent[slot]);
                let mut e = if zc || fixed {
                    let mut op = opcode::SendZc::new(sock, p, n as u32).flags(libc::MSG_WAITALL);
                    if fixed {
                        op = op.buf_index(Some(slot as u16));
                    }
                    op.build()
                } else {
                    opcode::Send::new(sock, p, n as u32).flags(libc::MSG_WAITALL).build()
                };
                if slot != last {
                    e = e.flags(squeue::Flags::IO_LINK);
                }
                r.push(&e.user_data(ud(slot, KIND_SEND))).map_err(|e| io_err("submit", e))?;
            }
            let mut hard = None;
            reap(r, round.len() - first, id, |data, res| {
                let slot = (data >> 8) as usize;
                if res > 0 {
                    sent[slot] += res as usize;
                } else if res < 0 && res != -libc::ECANCELED {
                    hard.get_or_insert(std::io::Error::from_raw_os_error(-res));
                } else if res == 0 {
                    hard.get_or_insert(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        "peer accepts no more bytes",
                    ));
                }
            })?;
            if let Some(e) = hard {
                return Err(io_err("send", e));
            }
            first = (first..round.len()).find(|&s| sent[s] < round[s].1).unwrap_or(round.len());
        }
    }
    Ok(method.to_string())
}

impl Transport for UringTransport {
    fn backend(&self) -> Backend {
        Backend::IoUring
    }

    fn send_block(&self, peer: &TcpStream, block: &SealedBlock) -> Result<SendReport, Error> {
        let id = block.id();
        let wire = block.wire_len();
        let local = self.skip_zc(peer);
        let zc = self.send_zc && wire >= ZERO_COPY_MIN && !local;
        let method = self.with_ring(Some(id), |r| {
            r.bind(peer.as_raw_fd()).map_err(|e| Error::io("io_uring register socket", Some(id), e))?;
            if zc && r.pool.is_some() {
                send_all(r, Source::File { fd: block.file().as_raw_fd(), len: wire }, true, id)
            } else {
                let map = block.map()?;
                send_all(r, Source::Memory(&map), zc, id)
            }
        })?;
        let method = if local && self.send_zc && wire >= ZERO_COPY_MIN {
            format!("{method}; loopback peer: SEND_ZC skipped (the kernel copies zero-copy sends to local sockets)")
        } else {
            method
        };
        Ok(SendReport { id, wire_bytes: wire, backend: Backend::IoUring, method })
    }

    fn send_bytes(&self, peer: &TcpStream, id: BlockId, body: &[u8]) -> Result<SendReport, Error> {
        let h = BlockHeader::for_body(id, body).encode();
        let zc = self.send_zc && body.len() as u64 >= ZERO_COPY_MIN && !self.skip_zc(peer);
        let method = self.with_ring(Some(id), |r| {
            r.bind(peer.as_raw_fd()).map_err(|e| Error::io("io_uring register socket", Some(id), e))?;
            send_all(r, Source::Memory(&h), false, id)?;
            send_all(r, Source::Memory(body), zc, id)
        })?;
        Ok(SendReport { id, wire_bytes: (HEADER_LEN + body.len()) as u64, backend: Backend::IoUring, method })
    }

    fn recv_block(&self, peer: &TcpStream, store: &BlockStore, expect: &Expect) -> Result<SealedBlock, Error> {
        let pipe = Pipe::new().map_err(|e| Error::errno("pipe", None, e))?;
        let mover = UringSplice { transport: self, pipe };
        recv::recv_into_store(peer, store, expect, &mover)
    }
}

/// Whether the peer is on this host. The kernel copies `MSG_ZEROCOPY`/`SEND_ZC` data looped to
/// a local socket (deferred copy, kernel `msg_zerocopy.rst`), so zero-copy there only adds
/// page pinning and a notification to the copy.
fn is_loopback(peer: &TcpStream) -> bool {
    peer.peer_addr().map(|a| a.ip().is_loopback()).unwrap_or(false)
}

struct UringSplice<'a> {
    transport: &'a UringTransport,
    pipe: Pipe,
}

fn splice_once(r: &mut Ring, e: squeue::Entry) -> std::io::Result<usize> {
    r.push(&e.user_data(ud(0, KIND_SPLICE)))?;
    loop {
        match r.ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
        if let Some(c) = r.ring.completion().next() {
            let res = c.result();
            return if res < 0 { Err(std::io::Error::from_raw_os_error(-res)) } else { Ok(res as usize) };
        }
    }
}

impl BodyMover for UringSplice<'_> {
    fn move_body(&self, peer: &TcpStream, tmp: &TempBlock) -> Result<Option<Digest>, Error> {
        let id = tmp.header.id;
        let len = tmp.header.length;
        let (pr, pw) = (self.pipe.read_fd(), self.pipe.write_fd());
        let file = tmp.file.as_raw_fd();
        self.transport.with_ring(Some(id), |r| {
            r.bind(peer.as_raw_fd()).map_err(|e| Error::io("io_uring register socket", Some(id), e))?;
            let mut got = 0u64;
            while got < len {
                let want = ((len - got) as usize).min(self.pipe.size()) as u32;
                let e = opcode::Splice::new(types::Fixed(0), -1, types::Fd(pw), -1, want)
                    .flags(libc::SPLICE_F_MOVE)
                    .build();
                let n = splice_once(r, e).map_err(|e| Error::io("io_uring splice socket -> pipe", Some(id), e))?;
                if n == 0 {
                    return Err(Error::Truncated { block: id, expected: len, got });
                }
                let mut left = n;
                while left > 0 {
                    let off = (HEADER_LEN as u64 + got + (n - left) as u64) as i64;
                    let e = opcode::Splice::new(types::Fd(pr), -1, types::Fd(file), off, left as u32)
                        .flags(libc::SPLICE_F_MOVE)
                        .build();
                    let m = splice_once(r, e).map_err(|e| Error::io("io_uring splice pipe -> file", Some(id), e))?;
                    if m == 0 {
                        return Err(Error::io(
                            "io_uring splice pipe -> file",
                            Some(id),
                            std::io::ErrorKind::WriteZero.into(),
                        ));
                    }
                    left -= m;
                }
                got += n as u64;
            }
            Ok(None)
        })
    }
}
