//! `io-uring` (feature `io-uring`): batched submissions on a ring with the socket as a registered
//! file and a pool of registered buffers; zero-copy sends (`IORING_OP_SEND_ZC`); receives whose
//! file writes run beside the receiving thread.
//!
//! # Send
//! - **Registered buffers** (when `RLIMIT_MEMLOCK` allows [`REGISTERED_BUFFER_BYTES`]): the ring
//!   owns a pool of eight 1 MiB buffers registered with the kernel. Each round reads up to eight
//!   1 MiB chunks of the sealed file into the slots (`READ_FIXED`, one `io_uring_enter`, waited
//!   for), then sends them as one linked chain of `SEND_ZC(slot)` (a second `io_uring_enter`):
//!   one copy, page cache → slot, and none from the slot to the socket; the kernel pins nothing
//!   per call because the buffers are registered once.
//! - **Without registered buffers** (memlock too low): `SEND_ZC` straight from the read-only
//!   mapping of the sealed block, eight 1 MiB chunks per submission.
//! - Blocks whose wire size is below [`ZERO_COPY_MIN`] use plain `IORING_OP_SEND` from the
//!   mapping (a zero-copy send costs a second completion and page pinning, which small sends do
//!   not repay); so does a kernel without `SEND_ZC`, and so does a peer on a loopback address,
//!   because the kernel copies zero-copy data looped to a local socket anyway.
//! - **Ownership.** A `SEND_ZC` completes twice: once when the send is queued, once (a
//!   notification CQE) when the kernel has released the pages. A send here returns only after
//!   every notification of every submitted send has arrived, also on error, so the caller owns
//!   its buffer again when the call returns — the same contract as every other backend. The one
//!   exception is a send given up on with notifications still missing ("Timeouts" below). A
//!   notification is awaited when the send's CQE announces it (`F_MORE`). A linked `SEND_ZC`
//!   that its chain's failure cancelled before it ran completes without `F_MORE`, yet the
//!   kernel may still post a notification for it (seen on 6.18; liburing issue #1462): such a
//!   send pinned no page, so nothing waits for it, and every batch of operations carries a
//!   generation in its user data, so that its late notification is never taken for one of a
//!   later batch (a CQE nothing accounts for otherwise is an error, and the ring is leaked).
//!
//! # Receive
//! `RECV` into a slot, BLAKE3 of the slot while it is in cache, then `WRITE_FIXED(slot → temp
//! file)` (the file registered as a fixed file, "Rings") flagged `IOSQE_ASYNC`, which the
//! kernel's io-wq worker runs while the receiving thread
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
//! # Timeouts
//! io_uring's sends and receives wait on the socket's readiness inside the kernel, where the
//! socket's own `SO_SNDTIMEO`/`SO_RCVTIMEO` do not apply. So the transport reads them from the
//! socket (`TcpStream::set_write_timeout`/`set_read_timeout`) and bounds its own waits with them:
//! when no send completes for the write timeout (no receive for the read timeout), everything
//! in flight is cancelled and waited for, and the call fails with `TimedOut`, as a blocking
//! socket call would. The deadline is renewed only by a completion: neither a signal
//! interrupting the wait nor a wait that returns having only submitted (the kernel then drops
//! the wait's `ETIME`) extends it. One operation moves up to [`CHUNK`] bytes, so a peer must
//! move 1 MiB per timeout. A zero-copy send that timed out may still have its pages in the
//! socket's send queue (the peer reads nothing, so they are never acknowledged and never
//! released); if their notifications have not come after another timeout, the connection is
//! reset (`connect(AF_UNSPEC)`, which drops the send queue), so that the call can return with
//! its buffers released: a send that timed out leaves a connection that cannot carry another
//! block anyway. If they are still missing one more timeout after the reset, or the reset
//! fails, the ring is leaked ("Rings") and the call fails with `TimedOut`: a peer that stops
//! holds a send for at most three timeouts. Then, and only then, the kernel may still hold
//! pages of the sent memory after the call returned: it keeps its own references on them (and
//! the leaked ring keeps its pool), so nothing is freed under it, but the bytes of a caller's
//! buffer ([`Transport::send_bytes`]) may still be read, for a connection that has been reset.
//! Kernels before 5.11 (no `IORING_FEAT_EXT_ARG`) wait without a limit.
//!
//! # Rings
//! A transport keeps up to four rings for reuse. Operations name their files only through the
//! ring's table of fixed files: the socket in slot 0, and in slot 1 the sealed block a send reads
//! or the temp file (or its `O_DIRECT` handle) a receive writes, registered for one call. Never
//! by descriptor number: io_uring resolves an operation's file when the operation starts, which
//! for a write handed to io-wq (`IOSQE_ASYNC`) or a linked operation is after the submission,
//! and by then the number may name another file.
//!
//! A ring that could not be waited on while operations were in flight (an `io_uring_enter`
//! failing for a reason other than EINTR, or a send given up on, "Timeouts") is leaked, never
//! reused or freed, since the kernel may still write into its buffers. Its connection is reset
//! first, so that no send still queued reads the caller's memory once the call has returned, and
//! both its fixed files are cleared: an operation that has not started then fails with `EBADF`
//! (a write can never reach whatever file reuses the temp file's descriptor number, such as
//! another receive's temp file), one that has started keeps its file until it completes, and
//! the socket and the file close once the caller closes them and nothing holds them.

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
use std::time::{Duration, Instant};

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

/// The fixed-file slot of the socket.
const SOCK_SLOT: u32 = 0;
/// The fixed-file slot of the file that operations read from or write to.
const FILE_SLOT: u32 = 1;

/// An operation's user data: its kind in the low byte, its slot in the next, and above them the
/// generation of the batch it was submitted in ([`Ring::next_gen`]; receives use 0), which tells
/// a late CQE of an earlier batch from one of the batch being reaped.
fn ud(gen: u64, slot: usize, kind: u64) -> u64 {
    (gen << 16) | ((slot as u64 & 0xff) << 8) | kind
}

fn ud_kind(data: u64) -> u64 {
    data & 0xff
}

fn ud_slot(data: u64) -> usize {
    ((data >> 8) & 0xff) as usize
}

fn ud_gen(data: u64) -> u64 {
    data >> 16
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
    /// The socket bound as fixed file 0 (-1 when none).
    sock: i32,
    /// The generation of the last batch of send-side operations ([`ud`]).
    gen: u64,
}

impl Ring {
    fn new() -> std::io::Result<(Ring, Option<String>)> {
        let ring = IoUring::builder().build((SLOTS * 2 + 2) as u32)?;
        ring.submitter()
            .register_files_sparse(2)
            .map_err(|e| std::io::Error::new(e.kind(), format!("io_uring_register(FILES_SPARSE, Linux 5.19+): {e}")))?;
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
        Ok((Ring { ring, pool, registered, poisoned: false, sock: -1, gen: 0 }, note))
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

    /// A fresh generation for the next batch of operations ([`ud`]): never 0, 48 bits.
    fn next_gen(&mut self) -> u64 {
        self.gen = (self.gen % ((1 << 48) - 1)) + 1;
        self.gen
    }

    /// Registers the socket `fd` as fixed file [`SOCK_SLOT`] for the duration of one call.
    fn bind(&mut self, fd: i32) -> std::io::Result<()> {
        self.ring.submitter().register_files_update(SOCK_SLOT, &[fd])?;
        self.sock = fd;
        Ok(())
    }

    /// Registers the file `fd` (a sealed block read from, a temp file written to) as fixed file
    /// [`FILE_SLOT`] for the duration of one call.
    fn bind_file(&mut self, fd: i32) -> std::io::Result<()> {
        self.ring.submitter().register_files_update(FILE_SLOT, &[fd])?;
        Ok(())
    }

    /// Clears both fixed files. An operation that starts later (on a leaked ring) fails with
    /// `EBADF`; one that has started keeps its file until it completes.
    fn unbind(&mut self) {
        let _ = self.ring.submitter().register_files_update(SOCK_SLOT, &[-1, -1]);
        self.sock = -1;
    }

    /// The write of `n` bytes at `p`, which lies in slot `slot`, to offset `off` of the file
    /// bound as [`FILE_SLOT`]: `WRITE_FIXED` (plain `WRITE` without registered buffers), flagged
    /// `IOSQE_ASYNC` so that an io-wq worker runs it. The worker resolves the file when it
    /// starts, so the file is named by its slot in the ring's table, never by its descriptor
    /// number, which may belong to another file by then (module docs, "Rings").
    fn write_op(&self, slot: usize, p: *const u8, n: u32, off: u64) -> squeue::Entry {
        let file = io_uring::types::Fixed(FILE_SLOT);
        let e = if self.registered {
            opcode::WriteFixed::new(file, p, n, slot as u16).offset(off).build()
        } else {
            opcode::Write::new(file, p, n).offset(off).build()
        };
        e.flags(squeue::Flags::ASYNC)
    }

    /// Submits what is queued and waits for a completion, for at most `limit` (none: without a
    /// limit; so on kernels without `IORING_FEAT_EXT_ARG`). `Ok(true)` when the completion queue
    /// holds a completion; `Ok(false)` when it is still empty: `limit` passed or a signal
    /// interrupted the wait. The queue tells, not the return value: a call that also submits
    /// entries returns how many it submitted, and the kernel drops the wait's `ETIME` or `EINTR`
    /// (liburing issues #393 and #684). Callers keep their own deadline.
    fn submit_and_wait_for(&mut self, limit: Option<Duration>) -> std::io::Result<bool> {
        let waited = match limit.filter(|_| self.ring.params().is_feature_ext_arg()) {
            None => self.ring.submit_and_wait(1),
            Some(limit) => {
                let ts = io_uring::types::Timespec::from(limit);
                let args = io_uring::types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match waited {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
        Ok(!self.ring.completion().is_empty())
    }

    fn push(&mut self, e: &squeue::Entry) -> std::io::Result<()> {
        // SAFETY: every entry pushed here references memory (block mapping, pool slot, caller
        // slice) that outlives the completion of the operation, and names files only by their
        // fixed-file slot: the callers wait for every CQE, notifications included, before
        // releasing any of it. Where they cannot — an `io_uring_enter` failing with operations in
        // flight, or a send whose completions are still missing one timeout after its
        // connection was reset — `poison` resets the connection (a queued `SEND` then fails
        // before it copies), the ring is leaked with its pool and its file slots are cleared (an
        // operation not yet started finds no file), and what the kernel still holds of a
        // caller's pages (zero-copy sends) it holds by its own page references, so nothing is
        // freed under it.
        while unsafe { self.ring.submission().push(e) }.is_err() {
            if let Err(e) = self.ring.submit() {
                // Earlier entries may be in flight and can no longer be waited for here.
                self.poison();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Gives up on operations in flight that can no longer be waited for: resets the bound
    /// connection, after which a queued `SEND` fails (a TCP send on a closed socket returns
    /// `EPIPE` before it copies anything) and a queued `RECV` receives nothing, and marks the
    /// ring to be leaked with its pool ([`UringTransport::with_ring`]) rather than freed while
    /// the kernel may still use it.
    fn poison(&mut self) {
        self.poisoned = true;
        // A reset that fails leaves nothing else to try: the ring is leaked either way.
        let _ = reset_connection(self.sock);
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
    /// Receives that stored their block having written its body with `O_DIRECT`.
    direct_receives: std::sync::atomic::AtomicU64,
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
            direct_receives: Default::default(),
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

    /// How many receives of this transport stored their block having written its body with
    /// `O_DIRECT` (the rest went through the page cache; failed receives are not counted); for
    /// tests and measurements.
    pub fn direct_receives(&self) -> u64 {
        self.direct_receives.load(std::sync::atomic::Ordering::Relaxed)
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
            // could write to. An `io_uring_enter` failing for a reason other than EINTR with
            // operations in flight gets here, and so does a send given up on (`reap`). Its
            // files are unregistered first, so that an operation that has not started fails
            // instead of reaching them, and they are closed once the caller closes them.
            ring.unbind();
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

/// How far [`reap`] has gone in giving up on a peer that stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GivingUp {
    /// Waiting for the operations.
    No,
    /// A timeout passed with nothing completing: every operation was cancelled.
    Cancelled,
    /// Another timeout passed with something still missing: the connection was reset.
    Reset,
}

/// What [`reap`] has seen of one operation.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// Its CQE came.
    done: bool,
    /// That CQE was flagged `F_MORE`: a `SEND_ZC` notification follows.
    more: bool,
    /// Its notification came.
    notified: bool,
}

impl Seen {
    fn pending(&self) -> bool {
        !self.done || (self.more && !self.notified)
    }
}

/// Submits what is queued and reaps CQEs until every operation of batch `gen` (kind `kind`, one
/// per slot in `slots`) has completed, and every `SEND_ZC` notification its CQE announced
/// (`F_MORE`) has come. Calls `on` for each operation's CQE (not for notifications nor for the
/// cancellations below).
///
/// A notification nobody announced is not an error: the kernel posts one for a linked
/// `SEND_ZC` that its chain's failure cancelled before it ran (such a send had pinned no page, so
/// nothing waits for it); it may come after its batch was reaped, and the generation in its
/// user data tells it from one of a later batch. Any other CQE that no operation of the batch
/// accounts for (a second CQE of one operation, an operation of an earlier batch) poisons the
/// ring: what is in flight can no longer be told.
///
/// `limit` (the socket's timeout; see the module docs) bounds the time between completions: the
/// deadline is renewed only when a completion is reaped, never by a signal or an empty wakeup.
/// When it passes, the batch is cancelled and the call will fail with `TimedOut`; if something
/// is still missing one more `limit` later (zero-copy notifications of pages the peer never
/// acknowledged, or an operation the cancellation did not stop), the connection is reset, so
/// that the kernel drops its send queue and releases the pages; if even then something is
/// missing after one more `limit`, or the reset fails, the ring is poisoned (leaked with its
/// pool, [`UringTransport::with_ring`]) and the call fails with `TimedOut`. So a peer that
/// stopped costs at most three timeouts.
fn reap(
    r: &mut Ring,
    gen: u64,
    kind: u64,
    slots: std::ops::Range<usize>,
    id: BlockId,
    limit: Option<Duration>,
    mut on: impl FnMut(u64, i32),
) -> Result<(), Error> {
    let timed_out = || Error::io("io_uring send", Some(id), std::io::ErrorKind::TimedOut.into());
    let mut seen = [Seen::default(); SLOTS];
    let mut cancels = 0usize;
    let mut giving_up = GivingUp::No;
    let mut deadline = limit.map(|l| Instant::now() + l);
    while cancels > 0 || slots.clone().any(|s| seen[s].pending()) {
        let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let completed = r.submit_and_wait_for(wait).map_err(|e| {
            r.poison();
            Error::io("io_uring_enter", Some(id), e)
        })?;
        if completed {
            let cqes: Vec<(u64, i32, u32)> =
                r.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())).collect();
            for (data, res, flags) in cqes {
                let (slot, ours) = (ud_slot(data), ud_gen(data) == gen);
                if cqueue::notif(flags) {
                    if ours && slots.contains(&slot) && ud_kind(data) == kind {
                        seen[slot].notified = true;
                    }
                    continue;
                }
                if ours && ud_kind(data) == KIND_CANCEL {
                    let Some(left) = cancels.checked_sub(1) else {
                        r.poison();
                        return Err(unaccounted(id, data));
                    };
                    cancels = left;
                    continue;
                }
                if !ours || !slots.contains(&slot) || ud_kind(data) != kind || seen[slot].done {
                    r.poison();
                    return Err(unaccounted(id, data));
                }
                seen[slot].done = true;
                seen[slot].more = cqueue::more(flags);
                on(data, res);
            }
            deadline = limit.map(|l| Instant::now() + l);
            continue;
        }
        // Nothing completed: the limit passed, or a signal (or nothing) woke the wait.
        if deadline.is_none_or(|d| Instant::now() < d) {
            continue;
        }
        deadline = limit.map(|l| Instant::now() + l);
        giving_up = match giving_up {
            GivingUp::No => {
                cancels = cancel(r, gen, kind, slots.clone()).map_err(|e| Error::io("io_uring cancel", Some(id), e))?;
                GivingUp::Cancelled
            }
            GivingUp::Cancelled => {
                if reset_connection(r.sock).is_err() {
                    r.poison();
                    return Err(timed_out());
                }
                GivingUp::Reset
            }
            GivingUp::Reset => {
                r.poison();
                return Err(timed_out());
            }
        };
    }
    if giving_up != GivingUp::No {
        return Err(timed_out());
    }
    Ok(())
}

/// The error of a CQE that no operation in flight accounts for.
fn unaccounted(id: BlockId, data: u64) -> Error {
    Error::io(
        "io_uring send",
        Some(id),
        std::io::Error::other(format!("completion {data:#x} that no operation in flight accounts for")),
    )
}

/// Asks the kernel to cancel the operations of batch `gen` (kind `kind`, one per slot in
/// `slots`); returns how many cancellation CQEs to wait for. Cancelling an operation that has
/// completed is answered with `ENOENT`, harmlessly.
fn cancel(r: &mut Ring, gen: u64, kind: u64, slots: std::ops::Range<usize>) -> std::io::Result<usize> {
    let mut n = 0;
    for slot in slots {
        let e = opcode::AsyncCancel::new(ud(gen, slot, kind)).build().user_data(ud(gen, slot, KIND_CANCEL));
        r.push(&e)?;
        n += 1;
    }
    Ok(n)
}

/// Resets the connection on `fd`: `connect` with `AF_UNSPEC` is the kernel's `tcp_disconnect`,
/// which sends a reset and frees the send queue, and with it the pages of zero-copy sends that a
/// peer that reads nothing would otherwise hold for as long as the connection lives. No socket
/// bound (`fd` < 0) is nothing to reset.
fn reset_connection(fd: i32) -> std::io::Result<()> {
    if fd < 0 {
        return Ok(());
    }
    // SAFETY: a zeroed `sockaddr` is a valid value; only its family is read for AF_UNSPEC.
    let mut addr: libc::sockaddr = unsafe { std::mem::zeroed() };
    addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: `addr` is a valid sockaddr of the length passed; `fd` is the caller's socket, which
    // is open (it is bound to the ring for this call). A failure leaves the connection as it is.
    let rc = unsafe { libc::connect(fd, &addr, std::mem::size_of::<libc::sockaddr>() as libc::socklen_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
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
        let limit = peer.write_timeout().ok().flatten();
        let method = self.with_ring(Some(id), |r| {
            r.bind(peer.as_raw_fd()).map_err(|e| Error::io("io_uring register socket", Some(id), e))?;
            if zc && r.registered {
                send_all(r, Source::File { fd: block.file().as_raw_fd(), len: wire }, true, id, limit)
            } else {
                let map = block.map()?;
                send_all(r, Source::Memory(&map), zc, id, limit)
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
        let limit = peer.write_timeout().ok().flatten();
        let method = self.with_ring(Some(id), |r| {
            r.bind(peer.as_raw_fd()).map_err(|e| Error::io("io_uring register socket", Some(id), e))?;
            send_all(r, Source::Memory(&h), false, id, limit)?;
            send_all(r, Source::Memory(body), zc, id, limit)
        })?;
        Ok(SendReport { id, wire_bytes: (HEADER_LEN + body.len()) as u64, backend: Backend::IoUring, method })
    }

    fn recv_block(&self, peer: &TcpStream, store: &BlockStore, expect: &Expect) -> Result<SealedBlock, Error> {
        let mover = recv::UringRecv { transport: self, direct: std::cell::Cell::new(false) };
        let block = recv_into_store(peer, store, expect, &mover)?;
        if mover.direct.get() {
            self.direct_receives.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(block)
    }
}

/// Whether the peer is on this host. The kernel copies `MSG_ZEROCOPY`/`SEND_ZC` data looped to
/// a local socket (deferred copy, kernel `msg_zerocopy.rst`), so zero-copy there only adds
/// page pinning and a notification to the copy.
fn is_loopback(peer: &TcpStream) -> bool {
    peer.peer_addr().map(|a| a.ip().to_canonical().is_loopback()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

    /// A write queued on a ring that is then leaked starts only after the caller has closed its
    /// file and the descriptor number names another file: it must not reach that file, and the
    /// leaked ring must not keep the socket open.
    #[test]
    fn a_leaked_rings_late_write_reaches_no_reused_descriptor() {
        let t = match UringTransport::new() {
            Ok(t) => t,
            Err(e) => {
                assert!(std::env::var_os("CI").is_none(), "CI: io_uring must be usable: {e}");
                println!("skip: {e}");
                return;
            }
        };
        let dir = std::env::temp_dir().join(format!("parthenon-uring-leak-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        // The temp file the write is for; its descriptor number is the one reused below.
        let first = std::fs::File::create(dir.join("first")).unwrap().into_raw_fd();
        let out: Result<(), Error> = t.with_ring(None, |r| {
            r.bind(ours.as_raw_fd()).unwrap();
            r.bind_file(first).unwrap();
            r.slot_mut(1)[..4].copy_from_slice(b"LATE");
            // A RECV that waits for the peer, and hard-linked after it the write, which starts
            // only once the RECV completes, whatever its result.
            let recv = opcode::Recv::new(io_uring::types::Fixed(SOCK_SLOT), r.slot_ptr(0), 1)
                .build()
                .flags(squeue::Flags::IO_HARDLINK)
                .user_data(ud(0, 0, KIND_RECV));
            let write = r.write_op(1, r.slot(1).as_ptr(), 4, 0).user_data(ud(0, 1, KIND_WRITE));
            r.push(&recv).unwrap();
            r.push(&write).unwrap();
            r.ring.submit().unwrap();
            // Leak it as an `io_uring_enter` failure would (without the connection reset, so
            // that the RECV waits until the test lets it complete).
            r.poisoned = true;
            Ok(())
        });
        out.unwrap();
        // The descriptor number now names another file (as another receive's temp file would).
        let second = std::fs::File::create(dir.join("second")).unwrap();
        // SAFETY: dup2 onto `first`, a descriptor this test owns (taken with into_raw_fd):
        // it atomically closes the first file and makes the number name the second.
        assert_eq!(unsafe { libc::dup2(second.as_raw_fd(), first) }, first);
        // SAFETY: `first` is an open descriptor owned by nothing else from here on.
        let reused = unsafe { OwnedFd::from_raw_fd(first) };
        // Let the RECV complete: the write starts now.
        peer.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            second.metadata().unwrap().len(),
            0,
            "a leaked ring's write reached the file that reused its number"
        );
        // The leaked ring holds the socket no more: closing ours reaches the peer.
        drop(ours);
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 1];
        match peer.read(&mut b) {
            Ok(0) => {}
            other => panic!("the leaked ring kept the socket open: {other:?}"),
        }
        drop(reused);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
