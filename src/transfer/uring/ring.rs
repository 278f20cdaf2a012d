//! One io_uring ring of the transport and the waiting on it: the ring with its fixed-file table
//! (the socket in [`SOCK_SLOT`], a block's file in [`FILE_SLOT`]) and its pool of [`SLOTS`]
//! buffers of [`CHUNK`] bytes, the user data that tells completions apart ([`ud`]), and [`reap`],
//! which waits for a batch under the socket's timeout and gives up on a stopped peer as the
//! parent module's "Timeouts" and "Rings" sections say.

use super::{CHUNK, SLOTS};
use crate::detect::{buffers_refused, human_bytes, memlock_charged, memlock_limit, REGISTERED_BUFFER_BYTES};
use crate::transfer::{BlockId, Error};
use io_uring::{cqueue, opcode, squeue, IoUring};
use std::time::{Duration, Instant};

// What a CQE completes (the low byte of its user data; the slot is above it).
pub(super) const KIND_READ: u64 = 1;
pub(super) const KIND_SEND: u64 = 2;
pub(super) const KIND_RECV: u64 = 3;
pub(super) const KIND_WRITE: u64 = 4;
pub(super) const KIND_CANCEL: u64 = 5;

/// The fixed-file slot of the socket.
pub(super) const SOCK_SLOT: u32 = 0;
/// The fixed-file slot of the file that operations read from or write to.
pub(super) const FILE_SLOT: u32 = 1;

/// An operation's user data: its kind in the low byte, its slot in the next, and above them the
/// generation of the batch it was submitted in ([`Ring::next_gen`]; receives use 0), which tells
/// a late CQE of an earlier batch from one of the batch being reaped.
pub(super) fn ud(gen: u64, slot: usize, kind: u64) -> u64 {
    (gen << 16) | ((slot as u64 & 0xff) << 8) | kind
}

pub(super) fn ud_kind(data: u64) -> u64 {
    data & 0xff
}

pub(super) fn ud_slot(data: u64) -> usize {
    ((data >> 8) & 0xff) as usize
}

pub(super) fn ud_gen(data: u64) -> u64 {
    data >> 16
}

/// A ring with the socket slot registered, and its pool of [`SLOTS`] buffers of [`CHUNK`] bytes,
/// registered with the kernel when `RLIMIT_MEMLOCK` allows.
pub(super) struct Ring {
    // Declared first so it drops (closing the ring and its registrations) before `pool`.
    pub(super) ring: IoUring,
    /// The slots, `SLOTS * CHUNK` bytes of anonymous memory: page-aligned, as `O_DIRECT` writes
    /// need, and untouched slots cost no memory.
    pub(super) pool: memmap2::MmapMut,
    /// Whether `pool` is registered (`READ_FIXED`/`WRITE_FIXED`/`SEND_ZC` with a buffer index).
    pub(super) registered: bool,
    /// Why `pool` is not registered, when it is not.
    pub(super) note: Option<String>,
    /// Set when the ring could not be waited on with operations in flight: such a ring is never
    /// reused or freed (see [`super::UringTransport::with_ring`]).
    pub(super) poisoned: bool,
    /// The socket bound as fixed file 0 (-1 when none).
    pub(super) sock: i32,
    /// The generation of the last batch of send-side operations ([`ud`]).
    pub(super) gen: u64,
}

impl Ring {
    /// A ring, with its pool registered where `RLIMIT_MEMLOCK` allows; when it is not, `note`
    /// says why (the limit below [`REGISTERED_BUFFER_BYTES`], or the registration's error).
    /// Its errors name the step that failed (`io_uring_setup: …`) and keep the OS error's kind;
    /// [`no_ring`] says why for an operator.
    pub(super) fn new() -> std::io::Result<Ring> {
        let ring = IoUring::builder()
            .build((SLOTS * 2 + 2) as u32)
            .map_err(|e| std::io::Error::new(e.kind(), format!("io_uring_setup: {e}")))?;
        // Two empty slots: `IORING_REGISTER_FILES` with -1 entries (sparse entries, Linux 5.5),
        // not `register_files_sparse` (`IORING_RSRC_REGISTER_SPARSE`, Linux 5.19), so that the
        // transport works on every kernel detection finds io_uring on (it needs
        // `IORING_REGISTER_PROBE`, 5.6).
        ring.submitter()
            .register_files(&[-1, -1])
            .map_err(|e| std::io::Error::new(e.kind(), format!("io_uring_register(FILES): {e}")))?;
        let mut pool = memmap2::MmapMut::map_anon(SLOTS * CHUNK)
            .map_err(|e| std::io::Error::new(e.kind(), format!("mmap of the ring's slots: {e}")))?;
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
                        let why = match e.raw_os_error() {
                            Some(errno) => buffers_refused(errno),
                            None => format!("io_uring_register(BUFFERS): {e}"),
                        };
                        note = Some(format!("registered buffers off: {why}"));
                        false
                    }
                }
            }
        };
        Ok(Ring { ring, pool, registered, note, poisoned: false, sock: -1, gen: 0 })
    }

    /// Whether this ring links the sends of a round into one chain. Only where the kernel has
    /// `IORING_FEAT_NATIVE_WORKERS` (5.12): a linked chain keeps the stream's order only if a
    /// short `SEND` with `MSG_WAITALL` fails the link and cancels the rest, which the kernel
    /// does since commit 0031275d119e (5.12; backported to some stable series only, which
    /// nothing can detect); on a 5.6–5.11 kernel without it, the sends after a short one would
    /// go on and scramble the stream. Older kernels send one chunk per wait instead (`send.rs`).
    pub(super) fn links_sends(&self) -> bool {
        self.ring.params().is_feature_native_workers()
    }

    /// The start of slot `i` (`i < SLOTS`).
    pub(super) fn slot_ptr(&mut self, i: usize) -> *mut u8 {
        self.pool[i * CHUNK..].as_mut_ptr()
    }

    /// Slot `i`.
    pub(super) fn slot(&self, i: usize) -> &[u8] {
        &self.pool[i * CHUNK..(i + 1) * CHUNK]
    }

    /// Slot `i`, to write into.
    pub(super) fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.pool[i * CHUNK..(i + 1) * CHUNK]
    }

    /// A fresh generation for the next batch of operations ([`ud`]): never 0, 48 bits.
    pub(super) fn next_gen(&mut self) -> u64 {
        self.gen = (self.gen % ((1 << 48) - 1)) + 1;
        self.gen
    }

    /// Registers the socket `fd` as fixed file [`SOCK_SLOT`] for the duration of one call.
    pub(super) fn bind(&mut self, fd: i32) -> std::io::Result<()> {
        self.ring.submitter().register_files_update(SOCK_SLOT, &[fd])?;
        self.sock = fd;
        Ok(())
    }

    /// Registers the file `fd` (a sealed block read from, a temp file written to) as fixed file
    /// [`FILE_SLOT`] for the duration of one call.
    pub(super) fn bind_file(&mut self, fd: i32) -> std::io::Result<()> {
        self.ring.submitter().register_files_update(FILE_SLOT, &[fd])?;
        Ok(())
    }

    /// Clears both fixed files. An operation that starts later (on a leaked ring) fails with
    /// `EBADF`; one that has started keeps its file until it completes.
    pub(super) fn unbind(&mut self) {
        let _ = self.ring.submitter().register_files_update(SOCK_SLOT, &[-1, -1]);
        self.sock = -1;
    }

    /// The write of `n` bytes at `p`, which lies in slot `slot`, to offset `off` of the file
    /// bound as [`FILE_SLOT`]: `WRITE_FIXED` (plain `WRITE` without registered buffers), flagged
    /// `IOSQE_ASYNC` so that an io-wq worker runs it. The worker resolves the file when it
    /// starts, so the file is named by its slot in the ring's table, never by its descriptor
    /// number, which may belong to another file by then (module docs, "Rings").
    pub(super) fn write_op(&self, slot: usize, p: *const u8, n: u32, off: u64) -> squeue::Entry {
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
    pub(super) fn submit_and_wait_for(&mut self, limit: Option<Duration>) -> std::io::Result<bool> {
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

    pub(super) fn push(&mut self, e: &squeue::Entry) -> std::io::Result<()> {
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
    /// ring to be leaked with its pool ([`super::UringTransport::with_ring`]) rather than freed while
    /// the kernel may still use it.
    pub(super) fn poison(&mut self) {
        self.poisoned = true;
        // A reset that fails leaves nothing else to try: the ring is leaked either way.
        let _ = reset_connection(self.sock);
    }
}

/// Why no ring could be set up, for an operator: `e` is [`Ring::new`]'s error. A ring's own memory is charged to the user's locked memory (`RLIMIT_MEMLOCK`, one
/// budget for all the user's rings, module docs of [`crate::detect`]'s io_uring probe) unless
/// the process is exempt, so `ENOMEM` there names the limit: on 6.18 a ring of this size
/// takes about 8 KiB, so 64 KiB holds some eight rings per user, and a closed ring's charge
/// outlives it for a short while.
pub(super) fn no_ring(e: &std::io::Error) -> String {
    let mut why = e.to_string();
    if e.kind() == std::io::ErrorKind::OutOfMemory {
        if let Some(charged) = memlock_charged() {
            why.push_str(&format!(
                ": each ring's memory is charged to {charged}, which this user's other rings and locked \
                 memory use up"
            ));
        }
    }
    why
}

/// How far [`reap`] has gone in giving up on a peer that stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GivingUp {
    /// Waiting for the operations.
    No,
    /// A timeout passed with nothing completing: every operation was cancelled.
    Cancelled,
    /// Another timeout passed with something still missing: the connection was reset.
    Reset,
}

/// What [`reap`] has seen of one operation.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Seen {
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
/// pool, [`super::UringTransport::with_ring`]) and the call fails with `TimedOut`. So a peer that
/// stopped costs at most three timeouts.
pub(super) fn reap(
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
pub(super) fn unaccounted(id: BlockId, data: u64) -> Error {
    Error::io(
        "io_uring send",
        Some(id),
        std::io::Error::other(format!("completion {data:#x} that no operation in flight accounts for")),
    )
}

/// Asks the kernel to cancel the operations of batch `gen` (kind `kind`, one per slot in
/// `slots`); returns how many cancellation CQEs to wait for. Cancelling an operation that has
/// completed is answered with `ENOENT`, harmlessly.
pub(super) fn cancel(r: &mut Ring, gen: u64, kind: u64, slots: std::ops::Range<usize>) -> std::io::Result<usize> {
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
pub(super) fn reset_connection(fd: i32) -> std::io::Result<()> {
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
