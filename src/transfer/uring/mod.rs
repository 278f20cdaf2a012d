//! `io-uring` (feature `io-uring`): batched submissions on a ring with the socket as a registered
//! file and a pool of registered buffers; zero-copy sends (`IORING_OP_SEND_ZC`); receives whose
//! file writes run beside the receiving thread.
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
//! `RECV` into a slot, BLAKE3 of the slot while it is in cache, then `WRITE_FIXED(slot → temp
//! file)` flagged `IOSQE_ASYNC`, which the kernel's io-wq worker runs while the receiving thread
//! takes in the next chunk; up to eight chunks are in flight (`recv.rs`).
//!
//! Bodies of [`DIRECT_MIN`] bytes or more are written with `O_DIRECT` where the store's
//! file system reports direct I/O (`STATX_DIOALIGN`) at an alignment the slots meet: the temp file
//! is allocated up front, file chunks start at multiples of [`CHUNK`] (the first slot carries the
//! header), and only the unaligned end of the last chunk goes through the page cache. The body
//! then goes from the slot to the device once, with no page-cache copy to make now and write
//! back at `fsync`. On tmpfs (no direct I/O) every write goes through the page cache.
//! [`UringTransport::direct_writes`] turns direct writes off.
//!
//! Why not splice into the file, as the first version did: a file's `splice_write` copies the
//! pipe's pages into the page cache (the kernel's `iter_file_splice_write`), and the digest must
//! read every byte in user space anyway, so splicing saved no copy; done one splice at a time
//! it was also serial. `parthenon bench transfer --backend copy --receiver io-uring` measured it
//! at 0.70–0.85× the `copy` receiver at 64 MiB (docs/benchmarks.md, session 8).
//!
//! # Rings
//! A transport keeps up to four rings for reuse. A ring that could not be waited on while
//! operations were in flight (an `io_uring_enter` failing for a reason other than EINTR) is
//! leaked, never reused or freed, since the kernel may still write into its buffers.

mod recv;
mod send;

pub use recv::DIRECT_MIN;

use super::recv::recv_into_store;
use super::wire::{BlockHeader, HEADER_LEN};
use super::{BlockId, BlockStore, Error, Expect, SealedBlock, SendReport, Transport};
use crate::detect::{human_bytes, memlock_limit, REGISTERED_BUFFER_BYTES};
use crate::engine::Backend;
use io_uring::{cqueue, opcode, squeue, IoUring};
use send::{send_all, Source};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Mutex;

/// Size of one registered buffer / one send chunk.
pub const CHUNK: usize = 1 << 20;
/// Chunks per submission round (= registered buffers).
pub const SLOTS: usize = (REGISTERED_BUFFER_BYTES as usize) / CHUNK;
/// Wire sizes at or above this use `SEND_ZC`; below, plain `SEND`.
pub const ZERO_COPY_MIN: u64 = 64 << 10;

// What a CQE completes (the low byte of its user data; the slot is above it).
const KIND_READ: u64 = 1;
const KIND_SEND: u64 = 2;
const KIND_RECV: u64 = 3;
const KIND_WRITE: u64 = 4;
const KIND_CANCEL: u64 = 5;

fn ud(slot: usize, kind: u64) -> u64 {
    ((slot as u64) << 8) | kind
}

/// A ring with the socket slot registered, and its pool of [`SLOTS`] buffers of [`CHUNK`] bytes,
/// registered with the kernel when `RLIMIT_MEMLOCK` allows.
struct Ring {
    // Declared first so it drops (closing the ring and its registrations) before `pool`.
    ring: IoUring,
    /// The slots, `SLOTS * CHUNK` bytes of anonymous memory: page-aligned, as `O_DIRECT` writes
    /// need, and untouched slots cost no memory.
    pool: memmap2::MmapMut,
    /// Whether `pool` is registered (`READ_FIXED`/`WRITE_FIXED`/`SEND_ZC` with a buffer index).
    registered: bool,
    /// Set when the ring could not be waited on with operations in flight: such a ring is never
    /// reused or freed (see [`UringTransport::with_ring`]).
    poisoned: bool,
}

impl Ring {
    fn new() -> std::io::Result<(Ring, Option<String>)> {
        let ring = IoUring::builder().build((SLOTS * 2 + 2) as u32)?;
        ring.submitter().register_files_sparse(1)?;
        let mut pool = memmap2::MmapMut::map_anon(SLOTS * CHUNK)?;
        let mut note = None;
        let registered = match memlock_limit() {
            Some(limit) if limit < REGISTERED_BUFFER_BYTES => {
                note = Some(format!(
                    "registered buffers off: RLIMIT_MEMLOCK {} < {} needed",
                    human_bytes(limit),
                    human_bytes(REGISTERED_BUFFER_BYTES)
                ));
                false
            }
            _ => {
                let iovs: Vec<libc::iovec> = (0..SLOTS)
                    .map(|i| libc::iovec { iov_base: pool[i * CHUNK..].as_mut_ptr().cast(), iov_len: CHUNK })
                    .collect();
                // SAFETY: the buffers live in `pool`, which is stored next to the ring and dropped
                // only after the ring (field order), and is never remapped, so they stay valid
                // while registered.
                match unsafe { ring.submitter().register_buffers(&iovs) } {
                    Ok(()) => true,
                    Err(e) => {
                        note = Some(format!("registered buffers off: io_uring_register(BUFFERS): {e}"));
                        false
                    }
                }
            }
        };
        Ok((Ring { ring, pool, registered, poisoned: false }, note))
    }

    /// The start of slot `i` (`i < SLOTS`).
    fn slot_ptr(&mut self, i: usize) -> *mut u8 {
        self.pool[i * CHUNK..].as_mut_ptr()
    }

    /// Slot `i`.
    fn slot(&self, i: usize) -> &[u8] {
        &self.pool[i * CHUNK..(i + 1) * CHUNK]
    }

    /// Slot `i`, to write into.
    fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.pool[i * CHUNK..(i + 1) * CHUNK]
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
        // slice, file descriptors) that outlives the completion of the operation: the callers
        // wait for every CQE, notifications included, before releasing any of it.
        while unsafe { self.ring.submission().push(e) }.is_err() {
            if let Err(e) = self.ring.submit() {
                // Earlier entries may be in flight and can no longer be waited for here.
                self.poisoned = true;
                return Err(e);
            }
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
    direct_writes: bool,
}

struct RingBox(Ring);

impl std::fmt::Debug for RingBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ring {{ registered_buffers: {} }}", self.0.registered)
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
        Ok(UringTransport {
            rings: Mutex::new(vec![RingBox(ring)]),
            notes,
            send_zc,
            zc_on_loopback: false,
            direct_writes: true,
        })
    }

    /// Use `SEND_ZC` (and the registered-buffer path) for loopback peers too, which the
    /// transport otherwise skips as pointless there. For tests and measurements of those paths.
    pub fn zero_copy_on_loopback(mut self, on: bool) -> Self {
        self.zc_on_loopback = on;
        self
    }

    /// Write received bodies of [`DIRECT_MIN`] bytes or more with `O_DIRECT` where the
    /// store's file system allows it (the default), or always through the page cache. For tests
    /// and measurements of both paths.
    pub fn direct_writes(mut self, on: bool) -> Self {
        self.direct_writes = on;
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
        self.rings.lock().map(|r| r.first().is_some_and(|b| b.0.registered)).unwrap_or(false)
    }

    fn with_ring<T>(&self, id: Option<BlockId>, f: impl FnOnce(&mut Ring) -> Result<T, Error>) -> Result<T, Error> {
        let taken = self.rings.lock().ok().and_then(|mut v| v.pop());
        let mut ring = match taken {
            Some(r) => r.0,
            None => Ring::new().map_err(|e| Error::io("io_uring_setup", id, e))?.0,
        };
        let out = f(&mut ring);
        if ring.poisoned {
            // The kernel may still write into the pool: leak both rather than free memory it
            // could write to. Only an `io_uring_enter` failing for a reason other than EINTR
            // with operations in flight gets here.
            std::mem::forget(ring);
            return out;
        }
        ring.unbind();
        if let Ok(mut v) = self.rings.lock() {
            if v.len() < 4 {
                v.push(RingBox(ring));
            }
        }
        out
    }
}

/// Submits what is queued and reaps CQEs until `outstanding` reaches zero (a `SEND_ZC` CQE
/// flagged `F_MORE` announces its notification, which is awaited too). Calls `on` for every
/// non-notification CQE.
fn reap(r: &mut Ring, mut outstanding: usize, id: BlockId, mut on: impl FnMut(u64, i32)) -> Result<(), Error> {
    while outstanding > 0 {
        match r.ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => {
                r.poisoned = true;
                return Err(Error::io("io_uring_enter", Some(id), e));
            }
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

impl Transport for UringTransport {
    fn receive_method(&self) -> &'static str {
        if self.direct_writes {
            "io_uring RECV into the ring's slots, hashed there, written by io-wq beside the receive \
             (O_DIRECT for bodies of 1 MiB or more where the store's file system offers it)"
        } else {
            "io_uring RECV into the ring's slots, hashed there, written by io-wq beside the receive \
             (page cache)"
        }
    }

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
            if zc && r.registered {
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
        recv_into_store(peer, store, expect, &recv::UringRecv { transport: self })
    }
}

/// Whether the peer is on this host. The kernel copies `MSG_ZEROCOPY`/`SEND_ZC` data looped to
/// a local socket (deferred copy, kernel `msg_zerocopy.rst`), so zero-copy there only adds
/// page pinning and a notification to the copy.
fn is_loopback(peer: &TcpStream) -> bool {
    peer.peer_addr().map(|a| a.ip().is_loopback()).unwrap_or(false)
}
