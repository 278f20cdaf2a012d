//! `io-uring` (feature `io-uring`): batched submissions on a ring with the socket as a registered
//! file and a pool of registered buffers; zero-copy sends (`IORING_OP_SEND_ZC`); receives whose
//! file writes run beside the receiving thread.
//!
//! # Send
//! - **Registered buffers** (when `RLIMIT_MEMLOCK` allows [`REGISTERED_BUFFER_BYTES`] beside
//!   what the user has locked already, "Without registered buffers" below): the ring
//!   owns a pool of eight 1 MiB buffers registered with the kernel. Each round reads up to eight
//!   1 MiB chunks of the sealed file into the slots (`READ_FIXED`, one `io_uring_enter`, waited
//!   for), then sends them as one linked chain of `SEND_ZC(slot)` (a second `io_uring_enter`;
//!   "Linking" below): one copy, page cache → slot, and none from the slot to the socket; the
//!   kernel pins nothing per call because the buffers are registered once. They are what lets
//!   a process that is not privileged send zero-copy: the kernel charges them to
//!   `RLIMIT_MEMLOCK` once, when they are registered, and sends from them are not charged again.
//! - **Without registered buffers** (memlock too low for the pool, or too low for it beside
//!   what the user has locked already: on 6.18 the ring's own memory counts, so an unprivileged
//!   process under exactly 8 MiB cannot register the pool, and neither can a second ring once a
//!   first holds one): plain `SEND` from the read-only mapping of the sealed block, eight 1 MiB
//!   chunks per linked submission. A `SEND_ZC` from memory that is not registered is charged to
//!   `RLIMIT_MEMLOCK` too, `(len >> PAGE_SHIFT) + 2` pages per send until its notification, and
//!   fails with `ENOMEM` past the limit (on 6.18 under 8 MiB: the eighth 1 MiB send of a
//!   round; under 64 KiB: any send of 64 KiB), unless the process is exempt
//!   ([`crate::detect::memlock_charged`]: `CAP_IPC_LOCK` in the initial user namespace, or no
//!   limit). So only an exempt process uses `SEND_ZC` from memory that is not registered: from
//!   the mapping here, and from the caller's slice in [`Transport::send_bytes`]. Should the
//!   kernel refuse one all the same (`ENOMEM`: the exemption misjudged), the rest of the send
//!   goes by plain `SEND` from the first byte not sent. A send's reported method says which
//!   path it took and why.
//! - **Linking.** The sends of a round are linked only where the kernel has
//!   `IORING_FEAT_NATIVE_WORKERS` (5.12): before that, a short `SEND` with `MSG_WAITALL` may not
//!   fail its link (commit 0031275d119e, not in every 5.6–5.11 kernel), and the sends linked
//!   after it would run on and scramble the stream. There one send is submitted per wait (the
//!   method says "sequential"), and everywhere a chunk that went short while a later one sent
//!   bytes fails the send instead of being resubmitted out of order.
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
//! is allocated ahead of the writes, one round of slots (8 MiB) beyond the bytes received so far
//! and never before a body byte has arrived (so a header that announces 64 MiB and sends nothing
//! takes no disk), file chunks start at multiples of [`CHUNK`] (the first slot carries the
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
//! # Kernels
//! The transport needs Linux 5.6: `IORING_REGISTER_PROBE` (which detection needs too, so an older
//! kernel is reported as refusing io_uring), `IORING_OP_SEND`/`RECV`/`WRITE` and `IOSQE_ASYNC`;
//! its fixed-file table is registered as two empty (-1) entries, which kernels accept since 5.5.
//! Zero-copy sends need 6.0 (`IORING_OP_SEND_ZC`, else plain `SEND`, "Send"), bounded waits 5.11
//! ("Timeouts"), direct writes 6.1 (`STATX_DIOALIGN`, "Receive"), linked sends 5.12
//! (`IORING_FEAT_NATIVE_WORKERS`, "Linking"); each is used only where present.
//!
//! # Rings
//! A transport keeps up to four rings for reuse; a call that finds none idle sets up a new one.
//! A ring's own memory (about 8 KiB on 6.18) is charged to the user's locked memory like
//! registered buffers are ([`crate::detect::memlock_charged`]): one `RLIMIT_MEMLOCK` budget for
//! every ring of the user, so 64 KiB holds some eight rings, and a closed ring's charge outlives
//! it for a short while. A call for which no new ring can be set up (`ENOMEM` there, or any
//! other refusal) is served without one: a block by `sendfile`, a caller's slice by `write`, a
//! receive through a 1 MiB buffer (`read` + `pwrite`); the send's report names that backend and
//! its method says why (naming `RLIMIT_MEMLOCK` where the kernel charged it), and a receive logs
//! it at `warn`. [`UringTransport::new`] needs a first ring and fails without one; under `auto`
//! the engine's transport then goes to the next backend present ([`crate::transfer::route`]).
//!
//! Operations name their files only through the ring's table of fixed files: the socket in
//! slot 0, and in slot 1 the sealed block a send reads
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
mod ring;
mod send;

pub use recv::DIRECT_MIN;

use super::recv::recv_into_store;
use super::wire::{BlockHeader, HEADER_LEN};
use super::{BlockId, BlockStore, Error, Expect, SealedBlock, SendReport, Transport};
use crate::detect::REGISTERED_BUFFER_BYTES;
use crate::engine::Backend;
use io_uring::opcode;
use ring::{no_ring, Ring};
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

/// The `io-uring` backend. Keeps a small pool of rings so concurrent sends do not share one.
#[derive(Debug)]
pub struct UringTransport {
    rings: Mutex<Vec<RingBox>>,
    notes: Vec<String>,
    send_zc: bool,
    /// Why `SEND_ZC` from unregistered memory is charged to `RLIMIT_MEMLOCK` here, if it is.
    charged: Option<String>,
    /// Whether `SEND_ZC` may send from memory that is not registered (default: when not charged).
    memory_zc: bool,
    zc_on_loopback: bool,
    direct_writes: bool,
    /// Send one chunk per wait even where the ring could link them ([`Ring::links_sends`]): the
    /// path of kernels before 5.12, for tests.
    unlinked_sends: bool,
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
    /// Sets up a first ring (fails with the kernel's reason when io_uring is refused, or when no
    /// ring fits in the user's locked memory, naming `RLIMIT_MEMLOCK`).
    pub fn new() -> Result<UringTransport, Error> {
        let ring = Ring::new().map_err(|e| Error::Unavailable { backend: Backend::IoUring, reason: no_ring(&e) })?;
        let mut probe = io_uring::Probe::new();
        let send_zc =
            ring.ring.submitter().register_probe(&mut probe).is_ok() && probe.is_supported(opcode::SendZc::CODE);
        let mut notes: Vec<String> = ring.note.iter().cloned().collect();
        let charged = crate::detect::memlock_charged();
        if !send_zc {
            notes.push("kernel lacks IORING_OP_SEND_ZC: plain SEND".into());
        } else if let Some(c) = &charged {
            let what = if ring.registered { "send_bytes' slices" } else { "the block mapping and send_bytes' slices" };
            notes.push(format!(
                "plain SEND from {what}, not SEND_ZC: the kernel would charge each zero-copy send of \
                 unregistered memory to {c} and refuse it with ENOMEM past the limit"
            ));
        }
        Ok(UringTransport {
            rings: Mutex::new(vec![RingBox(ring)]),
            notes,
            send_zc,
            memory_zc: charged.is_none(),
            charged,
            zc_on_loopback: false,
            direct_writes: true,
            unlinked_sends: false,
            direct_receives: Default::default(),
        })
    }

    /// Use `SEND_ZC` (and the registered-buffer path) for loopback peers too, which the
    /// transport otherwise skips as pointless there. For tests and measurements of those paths.
    pub fn zero_copy_on_loopback(mut self, on: bool) -> Self {
        self.zc_on_loopback = on;
        self
    }

    /// Send with `SEND_ZC` from memory that is not registered with the ring (the block mapping on
    /// a ring without registered buffers, [`Transport::send_bytes`]'s slice) even where the kernel
    /// charges it to `RLIMIT_MEMLOCK` ([`crate::detect::memlock_charged`]; by default only where
    /// it does not). A send the kernel refuses for it (`ENOMEM`) goes on with plain `SEND`. For
    /// tests of that path.
    pub fn zero_copy_from_memory(mut self, on: bool) -> Self {
        self.memory_zc = on;
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

    /// Why a send that would be zero-copy goes from unregistered memory by plain `SEND`, as a
    /// suffix of its method ("" when it does not).
    fn why_no_memory_zc(&self) -> String {
        match (&self.charged, self.memory_zc) {
            (Some(c), false) => format!("; plain SEND, not SEND_ZC, from unregistered memory: charged to {c}"),
            _ => String::new(),
        }
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

    /// How many rings wait in the pool for the next call (a call in progress holds one); for
    /// tests and measurements.
    pub fn idle_rings(&self) -> usize {
        self.rings.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Whether a send on `r` links the sends of a round ([`Ring::links_sends`]).
    fn link(&self, r: &Ring) -> bool {
        !self.unlinked_sends && r.links_sends()
    }

    /// Runs `f` on a ring of the pool, or on a new one when the pool is empty, and puts the ring
    /// back afterwards. When no new ring can be set up (`ENOMEM` once the user's rings fill
    /// `RLIMIT_MEMLOCK`, module docs "Rings"), runs `without` instead, with the reason.
    fn with_ring<T>(
        &self,
        f: impl FnOnce(&mut Ring) -> Result<T, Error>,
        without: impl FnOnce(String) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let taken = self.rings.lock().ok().and_then(|mut v| v.pop());
        let mut ring = match taken {
            Some(r) => r.0,
            None => match Ring::new() {
                Ok(r) => r,
                Err(e) => return without(no_ring(&e)),
            },
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
        let mut fallback = None;
        let method = self.with_ring(
            |r| {
                r.bind(peer.as_raw_fd()).map_err(|e| Error::io("io_uring register socket", Some(id), e))?;
                let link = self.link(r);
                if zc && r.registered {
                    send_all(r, Source::File { fd: block.file().as_raw_fd(), len: wire }, true, link, id, limit)
                } else {
                    let map = block.map()?;
                    let method = send_all(r, Source::Memory(&map), zc && self.memory_zc, link, id, limit)?;
                    match (zc, &r.note) {
                        (true, Some(why)) => Ok(format!("{method}; {why}{}", self.why_no_memory_zc())),
                        _ => Ok(method),
                    }
                }
            },
            |why| {
                tracing::warn!(block = %id, reason = %why, "io_uring: no ring for this send; sending by sendfile");
                let report = super::sendfile::SendfileTransport.send_block(peer, block)?;
                fallback = Some(report.backend);
                Ok(format!("{}, not io_uring: {why}", report.method))
            },
        )?;
        if let Some(backend) = fallback {
            return Ok(SendReport { id, wire_bytes: wire, backend, method });
        }
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
        let mut fallback = None;
        let method = self.with_ring(
            |r| {
                r.bind(peer.as_raw_fd()).map_err(|e| Error::io("io_uring register socket", Some(id), e))?;
                let link = self.link(r);
                send_all(r, Source::Memory(&h), false, link, id, limit)?;
                send_all(r, Source::Memory(body), zc && self.memory_zc, link, id, limit)
            },
            |why| {
                tracing::warn!(block = %id, reason = %why, "io_uring: no ring for this send; sending by write");
                let report = super::copy::send_bytes_copy(peer, id, body, Backend::Copy)?;
                fallback = Some(report.backend);
                Ok(format!("{}, not io_uring: {why}", report.method))
            },
        )?;
        if let Some(backend) = fallback {
            return Ok(SendReport { id, wire_bytes: (HEADER_LEN + body.len()) as u64, backend, method });
        }
        let method = if zc { format!("{method}{}", self.why_no_memory_zc()) } else { method };
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
    use super::ring::{ud, KIND_RECV, KIND_WRITE, SOCK_SLOT};
    use super::*;
    use io_uring::squeue;
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    use std::time::Duration;

    /// A transport, or `None` (the test skips, saying why) where io_uring is refused outside CI.
    fn transport_or_skip() -> Option<UringTransport> {
        match UringTransport::new() {
            Ok(t) => Some(t),
            Err(e) => {
                assert!(std::env::var_os("CI").is_none(), "CI: io_uring must be usable: {e}");
                println!("skip: {e}");
                None
            }
        }
    }

    /// Sends one chunk per wait, as on a kernel before 5.12 (`Ring::links_sends`), deliver the
    /// stream byte-exact and in order, from the registered buffers and from the mapping, and say
    /// so in their method.
    #[test]
    fn unlinked_sends_deliver_byte_exact() {
        use crate::transfer::{copy::CopyTransport, BlockStore, Expect};
        let Some(t) = transport_or_skip() else { return };
        let t = UringTransport { unlinked_sends: true, ..t.zero_copy_on_loopback(true) };
        let dir = std::env::temp_dir().join(format!("parthenon-uring-unlinked-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let src = BlockStore::open(dir.join("src")).unwrap();
        let dst = BlockStore::open(dir.join("dst")).unwrap();
        // Every byte differs from its neighbours' chunks: a chunk out of place would show.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let body: Vec<u8> = (0..(17 << 20) + 4321)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let block = src.put(BlockId(1), &body).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tx = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (rx, _) = listener.accept().unwrap();
        let dst2 = dst.clone();
        let receiver = std::thread::spawn(move || {
            CopyTransport.recv_block(&rx, &dst2, &Expect::block(BlockId(1)))?;
            CopyTransport.recv_to_vec(&rx, &Expect::block(BlockId(2)))
        });
        let r = t.send_block(&tx, &block).unwrap();
        println!("{}", r.method);
        assert!(r.method.contains(" sequential SEND") && r.method.contains("one send per wait"), "{}", r.method);
        let r = t.send_bytes(&tx, BlockId(2), &body[..(3 << 20) + 1]).unwrap();
        assert!(r.method.starts_with("io_uring sequential SEND"), "{}", r.method);
        let (_, got) = receiver.join().unwrap().unwrap();
        assert!(got == body[..(3 << 20) + 1], "send_bytes: bytes differ");
        assert!(dst.get(BlockId(1)).unwrap().read_body().unwrap() == body, "send_block: bytes differ");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A write queued on a ring that is then leaked starts only after the caller has closed its
    /// file and the descriptor number names another file: it must not reach that file, and the
    /// leaked ring must not keep the socket open.
    #[test]
    fn a_leaked_rings_late_write_reaches_no_reused_descriptor() {
        let Some(t) = transport_or_skip() else { return };
        let dir = std::env::temp_dir().join(format!("parthenon-uring-leak-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        // The temp file the write is for; its descriptor number is the one reused below.
        let first = std::fs::File::create(dir.join("first")).unwrap().into_raw_fd();
        let out: Result<(), Error> = t.with_ring(
            |r| {
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
            },
            |why| panic!("the pool holds a ring: {why}"),
        );
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
