//! The receive side: a body lands in the ring's slots by `RECV` on the registered socket, is
//! hashed there while it is still in cache, and goes to the temp file by `WRITE_FIXED` (`WRITE`
//! without registered buffers) flagged `IOSQE_ASYNC`, which the kernel runs on its io-wq worker.
//! So the receiving thread takes in and hashes the next chunk while earlier ones are being
//! written: on a store the file write is the largest cost of a receive, and here it runs beside
//! the rest instead of after it. Large bodies are written with `O_DIRECT` where the file system
//! allows it, straight from the slots to the device (layout in the parent module's docs).
//!
//! Invariants:
//! - A slot is either free, the target of the one outstanding `RECV`, or the source of one
//!   outstanding write; it is reused only after its write completed in full.
//! - Nothing is in flight when [`UringRecv::move_body`] returns, also after an error: the ring
//!   goes back to the transport's pool, and its slots and the temp file must not be touched by
//!   the kernel after that. The one exception is a ring that could not be waited on: it is
//!   leaked with its slots, and its fixed files are cleared, so that a write that has not
//!   started fails rather than reach whatever file reuses the temp file's descriptor number
//!   (the writes name the temp file by its fixed-file slot only; parent module docs, "Rings").
//! - Chunks are hashed in stream order, before their write is submitted; a short write is
//!   resubmitted from its first unwritten byte, and a failed or empty one fails the receive.
//! - A `RECV` that does not complete within the socket's read timeout (`SO_RCVTIMEO`, which
//!   io_uring does not apply itself) fails the receive with `TimedOut`; it is then cancelled
//!   like any `RECV` left waiting (parent module docs, "Timeouts"). The timeout is renewed only
//!   when bytes arrive: a `RECV` submitted again after `EINTR`, or after the `EAGAIN` of one
//!   that ran blocking on io-wq and met `SO_RCVTIMEO`, waits only for what is left of it.
//! - With direct writes, the temp file is allocated only ahead of the bytes received
//!   ([`ALLOCATE_AHEAD`] beyond them at most), before the write that needs it is submitted.
//! - A receive for which no ring can be had (parent module docs, "Rings") moves the body through
//!   a 1 MiB buffer instead (the `copy` backend's mover), with nothing in flight on any ring.

use super::ring::{ud, ud_kind, ud_slot, Ring, KIND_CANCEL, KIND_RECV, KIND_WRITE, SOCK_SLOT};
use super::{UringTransport, CHUNK, SLOTS};
use crate::transfer::copy::CopyMover;
use crate::transfer::recv::BodyMover;
use crate::transfer::store::TempBlock;
use crate::transfer::wire::{Digest, HEADER_LEN};
use crate::transfer::Error;
use io_uring::{opcode, types};
use std::fs::File;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// The io_uring body mover of [`UringTransport::recv_block`].
pub(super) struct UringRecv<'a> {
    pub(super) transport: &'a UringTransport,
    /// Set when the body is written with `O_DIRECT` (counted once the block is stored).
    pub(super) direct: std::cell::Cell<bool>,
}

/// Bodies of at least this many bytes are written with `O_DIRECT` where the file system allows.
pub const DIRECT_MIN: u64 = 1 << 20;
/// Alignment of every direct write's file offset, length and buffer: the page size, a multiple
/// of any file system's direct-I/O alignment that [`TempBlock::open_direct`] accepts.
const DIRECT_ALIGN: usize = 4096;

impl BodyMover for UringRecv<'_> {
    fn move_body(&self, peer: &TcpStream, tmp: &TempBlock) -> Result<Option<Digest>, Error> {
        let id = tmp.header.id;
        self.transport.with_ring(
            |r| {
                let direct = if self.transport.direct_writes && tmp.header.length >= DIRECT_MIN {
                    tmp.open_direct(DIRECT_ALIGN as u32)
                } else {
                    None
                };
                tracing::debug!(
                    block = %id,
                    len = tmp.header.length,
                    direct = direct.is_some(),
                    "io_uring receive: {}",
                    if direct.is_some() {
                        "O_DIRECT writes"
                    } else if self.transport.direct_writes && tmp.header.length >= DIRECT_MIN {
                        "page-cache writes (the file system offers no direct I/O at 4 KiB alignment)"
                    } else {
                        "page-cache writes"
                    }
                );
                r.bind(peer.as_raw_fd()).map_err(|e| Error::io("io_uring register socket", Some(id), e))?;
                // The writes' target, by its slot in the ring's table (parent module docs, "Rings").
                let target = direct.as_ref().map_or(tmp.file.as_raw_fd(), |f| f.as_raw_fd());
                r.bind_file(target).map_err(|e| Error::io("io_uring register temp file", Some(id), e))?;
                let mut p = Pipeline::new(r, tmp, direct.is_some(), peer.read_timeout().ok().flatten());
                let digest = p.run(tmp.header.length);
                let drained = p.drain();
                let digest = digest?;
                drained?;
                self.direct.set(direct.is_some());
                Ok(Some(digest))
            },
            |why| {
                tracing::warn!(
                    block = %id,
                    reason = %why,
                    "io_uring: no ring for this receive; receiving by read + write through a 1 MiB buffer"
                );
                CopyMover.move_body(peer, tmp)
            },
        )
    }
}

/// How far ahead of the received bytes a direct receive allocates its temp file: one round of
/// slots. Allocating ahead keeps direct writes from extending the file or allocating blocks as
/// they go (on this machine's ext4, 64 MiB receives went from 1.12–1.21 to 1.36–1.51 GB/s with
/// the whole file allocated up front: docs/benchmarks.md, session 8), and allocating only ahead
/// of what has arrived keeps a header that announces a large body from taking that much disk
/// before the body comes: a peer makes the receiver allocate at most this much beyond the bytes
/// it sent.
const ALLOCATE_AHEAD: u64 = (SLOTS * CHUNK) as u64;

/// Allocates bytes `from..to` of `file` (`fallocate`, which extends its size to `to`). `Ok(false)`
/// when the file system has no `fallocate`: the writes then allocate as they come. Running out
/// of room, or past the file-size limit, is an error.
fn preallocate(file: &File, from: u64, to: u64) -> std::io::Result<bool> {
    // SAFETY: fallocate on a descriptor the caller owns; no memory is passed.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, from as libc::off_t, (to - from) as libc::off_t) } == 0 {
        return Ok(true);
    }
    match std::io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(false),
        e => Err(e),
    }
}

/// One outstanding write: `len` bytes of a slot to `file_off`, `done` of them written so far.
#[derive(Clone, Copy)]
struct Write {
    file_off: u64,
    len: usize,
    done: usize,
}

struct Pipeline<'r> {
    r: &'r mut Ring,
    tmp: &'r TempBlock,
    /// Whether the writes go to the `O_DIRECT` handle (else to the temp file itself; either is
    /// the ring's fixed file [`super::FILE_SLOT`]). Then file chunks start at multiples of
    /// [`CHUNK`]: the first slot carries the header before the body's first bytes, every write
    /// but the last is a whole slot, and the last one's unaligned end goes through the temp
    /// file's own (buffered) handle once every direct write is done.
    direct: bool,
    free: Vec<usize>,
    writes: [Option<Write>; SLOTS],
    /// Writes submitted and not completed.
    writing: usize,
    /// Whether a `RECV` is submitted and not completed (and its user data), and its result once
    /// it is.
    receiving: bool,
    recv_ud: u64,
    received: Option<i32>,
    /// Whether an `ASYNC_CANCEL` of the `RECV` is submitted and not completed.
    cancelling: bool,
    /// The socket's read timeout, and when the current chunk's first `RECV` was submitted or
    /// its last bytes arrived ([`Pipeline::fill`]).
    limit: Option<Duration>,
    recv_since: Instant,
    /// Set once the receive has ended: short writes are no longer resubmitted.
    draining: bool,
    /// The first failure of a write; checked after every wait.
    failed: Option<Error>,
    /// Bytes of the temp file allocated so far (direct writes only, [`ALLOCATE_AHEAD`]), and
    /// whether to allocate more (not once the file system said it has no `fallocate`).
    allocated: u64,
    allocating: bool,
}

impl<'r> Pipeline<'r> {
    fn new(r: &'r mut Ring, tmp: &'r TempBlock, direct: bool, limit: Option<Duration>) -> Self {
        Pipeline {
            r,
            tmp,
            direct,
            free: (0..SLOTS).rev().collect(),
            writes: [None; SLOTS],
            writing: 0,
            receiving: false,
            recv_ud: 0,
            received: None,
            cancelling: false,
            limit,
            recv_since: Instant::now(),
            draining: false,
            failed: None,
            allocated: 0,
            allocating: direct,
        }
    }

    /// Allocates the temp file up to `end` (the end of the bytes received so far, header
    /// included) and [`ALLOCATE_AHEAD`] beyond what was allocated, at most up to `total`, before
    /// a write covering bytes past what is allocated is submitted.
    fn allocate_to(&mut self, end: u64, total: u64) -> Result<(), Error> {
        if !self.allocating || end <= self.allocated {
            return Ok(());
        }
        let to = (self.allocated + ALLOCATE_AHEAD).max(end).min(total);
        match preallocate(&self.tmp.file, self.allocated, to) {
            Ok(true) => self.allocated = to,
            Ok(false) => self.allocating = false,
            Err(e) => return Err(Error::io("allocate temp block", Some(self.tmp.header.id), e)),
        }
        Ok(())
    }

    fn io_err(&self, what: &str, e: std::io::Error) -> Error {
        Error::io(format!("io_uring {what}"), Some(self.tmp.header.id), e)
    }

    /// Receives `len` body bytes, hashing each chunk and queueing its write; returns the digest
    /// once every chunk is received and every write has completed.
    fn run(&mut self, len: u64) -> Result<Digest, Error> {
        let mut hasher = blake3::Hasher::new();
        let mut got = 0u64;
        // The unaligned end of the last direct write: slot, range in the slot, file offset.
        let mut tail: Option<(usize, usize, usize, u64)> = None;
        while got < len {
            let slot = self.free_slot()?;
            let lead = if self.direct && got == 0 {
                self.r.slot_mut(slot)[..HEADER_LEN].copy_from_slice(&self.tmp.header.encode());
                HEADER_LEN
            } else {
                0
            };
            let want = ((len - got) as usize).min(CHUNK - lead);
            let filled = self.fill(slot, lead, want, got, len)?;
            hasher.update(&self.r.slot(slot)[lead..lead + filled]);
            let file_off = HEADER_LEN as u64 + got - lead as u64;
            let mut bytes = lead + filled;
            if self.direct && bytes % DIRECT_ALIGN != 0 {
                let aligned = bytes - bytes % DIRECT_ALIGN;
                tail = Some((slot, aligned, bytes, file_off + aligned as u64));
                bytes = aligned;
            }
            got += filled as u64;
            self.allocate_to(HEADER_LEN as u64 + got, HEADER_LEN as u64 + len)?;
            if bytes > 0 {
                self.writes[slot] = Some(Write { file_off, len: bytes, done: 0 });
                self.submit_write(slot)?;
            }
        }
        self.wait_until(|p| p.writing == 0)?;
        // Only the last chunk can end unaligned, and its slot is not reused after it.
        if let Some((slot, from, to, off)) = tail {
            self.tmp
                .file
                .write_all_at(&self.r.slot(slot)[from..to], off)
                .map_err(|e| Error::io("write temp block", Some(self.tmp.header.id), e))?;
        }
        Ok(hasher.finalize().into())
    }

    /// A free slot, waiting for a write to complete when all are busy.
    fn free_slot(&mut self) -> Result<usize, Error> {
        self.wait_until(|p| !p.free.is_empty())?;
        self.free.pop().ok_or_else(|| self.io_err("slots", std::io::ErrorKind::OutOfMemory.into()))
    }

    /// Receives exactly `want` bytes into `slot` from byte `at` on (several `RECV`s when one
    /// returns short). The read timeout runs from the first `RECV` and is renewed only when
    /// bytes arrive: a `RECV` submitted again after `EINTR` or `EAGAIN` gets what is left of it.
    fn fill(&mut self, slot: usize, at: usize, want: usize, got: u64, len: u64) -> Result<usize, Error> {
        let mut filled = 0;
        self.recv_since = Instant::now();
        while filled < want {
            // SAFETY (pointer arithmetic): at + filled < at + want <= CHUNK, inside the slot.
            let p = self.r.slot_ptr(slot).wrapping_add(at + filled);
            let e = opcode::Recv::new(types::Fixed(SOCK_SLOT), p, (want - filled) as u32)
                .flags(libc::MSG_WAITALL)
                .build()
                .user_data(ud(0, slot, KIND_RECV));
            self.r.push(&e).map_err(|e| self.io_err("submit", e))?;
            self.receiving = true;
            self.recv_ud = ud(0, slot, KIND_RECV);
            self.received = None;
            self.wait_until(|p| !p.receiving)?;
            match self.received.unwrap_or(-libc::EIO) {
                n if n > 0 => {
                    filled += n as usize;
                    self.recv_since = Instant::now();
                }
                0 => {
                    return Err(Error::Truncated { block: self.tmp.header.id, expected: len, got: got + filled as u64 })
                }
                e if e == -libc::EINTR => {}
                // A `RECV` that ran blocking on an io-wq worker ends with `EAGAIN` when the
                // socket's own `SO_RCVTIMEO` passes: submitted again, it waits for what is left
                // of this chunk's time (`wait_once` fails the receive once none is), never a
                // fresh timeout. Without a read timeout, `EAGAIN` is a non-blocking socket's.
                e if e == -libc::EAGAIN => match self.limit {
                    Some(l) if self.recv_since.elapsed() >= l => {
                        return Err(self.io_err("recv", std::io::ErrorKind::TimedOut.into()))
                    }
                    Some(_) => {}
                    None => return Err(self.io_err("recv", std::io::ErrorKind::WouldBlock.into())),
                },
                e => return Err(self.io_err("recv", std::io::Error::from_raw_os_error(-e))),
            }
        }
        Ok(filled)
    }

    /// Queues the rest of `slot`'s write; it is submitted with the next wait.
    fn submit_write(&mut self, slot: usize) -> Result<(), Error> {
        let Some(w) = self.writes[slot] else { return Ok(()) };
        // SAFETY (pointer arithmetic): w.done < w.len <= CHUNK, inside the slot.
        let p = self.r.slot_ptr(slot).wrapping_add(w.done);
        let (n, off) = ((w.len - w.done) as u32, w.file_off + w.done as u64);
        let e = self.r.write_op(slot, p, n, off).user_data(ud(0, slot, KIND_WRITE));
        self.r.push(&e).map_err(|e| self.io_err("submit", e))?;
        self.writing += 1;
        Ok(())
    }

    fn on_write(&mut self, slot: usize, res: i32) {
        self.writing -= 1;
        let Some(w) = self.writes[slot].as_mut() else { return };
        let err = match res {
            n if n > 0 => {
                w.done += n as usize;
                if w.done < w.len {
                    if self.failed.is_none() && !self.draining {
                        if let Err(e) = self.submit_write(slot) {
                            self.failed = Some(e);
                        }
                    }
                    return;
                }
                None
            }
            0 => Some(std::io::Error::from(std::io::ErrorKind::WriteZero)),
            e => Some(std::io::Error::from_raw_os_error(-e)),
        };
        self.writes[slot] = None;
        self.free.push(slot);
        if let Some(e) = err {
            let e = self.io_err("write temp block", e);
            self.failed.get_or_insert(e);
        }
    }

    /// Submits what is queued and handles completions until `done` holds (or a write failed).
    fn wait_until(&mut self, done: impl Fn(&Self) -> bool) -> Result<(), Error> {
        loop {
            if let Some(e) = self.failed.take() {
                return Err(e);
            }
            if done(self) {
                return Ok(());
            }
            self.wait_once()?;
        }
    }

    fn wait_once(&mut self) -> Result<(), Error> {
        // Only a `RECV` waits on the peer; writes and cancellations are waited for in full.
        let limit = match self.limit {
            Some(l) if self.receiving && !self.draining => {
                let left = l.saturating_sub(self.recv_since.elapsed());
                if left.is_zero() {
                    self.failed.get_or_insert(self.io_err("recv", std::io::ErrorKind::TimedOut.into()));
                    return Ok(());
                }
                Some(left)
            }
            _ => None,
        };
        match self.r.submit_and_wait_for(limit) {
            Ok(true) => {}
            // The limit passed, or a signal woke the wait: the next call finds the time left.
            Ok(false) => return Ok(()),
            Err(e) => {
                if self.writing > 0 || self.receiving || self.cancelling {
                    self.r.poison();
                }
                return Err(self.io_err("io_uring_enter", e));
            }
        }
        let cqes: Vec<(u64, i32)> = self.r.ring.completion().map(|c| (c.user_data(), c.result())).collect();
        for (data, res) in cqes {
            let slot = ud_slot(data);
            match ud_kind(data) {
                KIND_RECV => {
                    self.receiving = false;
                    self.received = Some(res);
                }
                KIND_WRITE if slot < SLOTS => self.on_write(slot, res),
                KIND_CANCEL => self.cancelling = false,
                _ => {}
            }
        }
        Ok(())
    }

    /// Waits for everything still in flight, ignoring its results (the receive has already
    /// failed or succeeded). A `RECV` still waiting for bytes (a write failed meanwhile) is
    /// cancelled rather than left to wait for a peer that may send nothing more. Only a ring that
    /// cannot be waited on is an error.
    fn drain(&mut self) -> Result<(), Error> {
        self.draining = true;
        if self.receiving {
            let e = opcode::AsyncCancel::new(self.recv_ud).build().user_data(ud(0, 0, KIND_CANCEL));
            self.r.push(&e).map_err(|e| self.io_err("submit", e))?;
            self.cancelling = true;
        }
        while self.writing > 0 || self.receiving || self.cancelling {
            self.wait_once()?;
        }
        Ok(())
    }
}
