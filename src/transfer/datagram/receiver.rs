//! The receiving side of the datagram protocol: reassemble a block from its frames, ask again
//! for what is missing, check the digest, confirm. See [`super`] for the protocol and for what
//! is an error.
//!
//! How a block is received:
//! 1. Until the descriptor (frame 0) arrives, data frames are kept aside (as copies of their
//!    own size, so a link's buffers are not held; one per index; at most [`MAX_PENDING`] frames
//!    and the largest acceptable payload in bytes — see `rx.rs`).
//! 2. The descriptor fixes the payload length and the chunk size; the payload's room is reserved
//!    (fallibly: see "Memory" below) in the caller's vector ([`DatagramReceiver::recv_block_into`] reuses its capacity, so a
//!    receiver of many uncompressed blocks neither faults in fresh pages nor zero-fills per
//!    block). A compressed payload is assembled in the receiver's scratch buffer instead and
//!    decoded into a fresh vector that replaces the caller's.
//! 3. Every new data frame is checked and placed (`place.rs`): by its BLAKE3 chaining value
//!    when the chunk is [`tree::GROUP`] bytes or more (jumbo frames, DPDK), else by the XXH3
//!    check in its header, the payload then being hashed whole once every frame is in (step
//!    4). For payloads of [`PARALLEL_MIN`] bytes or more that work is shared by
//!    [`DatagramConfig::hash_threads`] threads while this one keeps reading the link.
//! 4. When every frame is in, the receiver tells the sender so (PROGRESS of every frame, pushed
//!    out at once: what follows reads nothing from the link, and the sender then waits for DONE
//!    up to its `block_timeout`, [`super::sender`]); the chaining values merge into the
//!    payload's BLAKE3 root ([`super::tree`]), which must equal the digest (for a compressed
//!    payload: the payload is decoded and the body hashed). Only then does the vector get its
//!    length, and DONE goes out. On any error the vector is left empty. While frames are still
//!    coming in and being checked, the receiver reports its progress every `resend_timeout` it
//!    sends no NACK (`rx.rs`).
//! 5. Into a store ([`DatagramReceiver::recv_block_to_store`]): the checked body is written to a
//!    private temp file, synced and published, as a stream backend's receive does, before DONE.
//!    A block the store already holds is refused ([`Error::Duplicate`], and ABORT) as soon as
//!    its first frame names it, before anything is assembled.
//! 6. A failed receive that names a block refuses the send it was receiving (ABORT with the
//!    reason, answering that send's attempt): the send whose frames started it — for frames of
//!    another block interleaved ([`Error::UnexpectedBlock`]), the block being assembled, whose
//!    receive is what ended (the interleaved block's sender is not refused: its frames may start
//!    the next receive). After a refusal, the frames its sender had already queued do not start
//!    the next receive, nor end it: until a receive succeeds, while no block is being received,
//!    frames of the refused block other than its descriptor are dropped, and a descriptor of the
//!    refused send (the same attempt: a copy, or the sender's nudge before it heard the ABORT) is
//!    refused again with the same reason and dropped; while another block is being received,
//!    so are the refused send's own frames (delivered late, behind that block's first frames). A descriptor of another attempt — a new send of
//!    the block — starts a receive as any block's would, except that one that would be refused
//!    at once (a block the store holds, another than the one expected) is refused (ABORT), and
//!    the receive goes on waiting for another block.
//! 7. Once the block is accepted (returned, or published in the store), the receive succeeds: a
//!    DONE that cannot be sent is logged, not an error, since the block is in. The sender, not
//!    confirmed, sends again and is confirmed then (the receiver confirms the last block it
//!    accepted again, also while it [lingers](DatagramReceiver::linger)), or times out; sent
//!    again into the store, the block is a duplicate, which is fine.
//!
//! Duplicates: an exact duplicate is absorbed. A duplicate whose payload fails its check is
//! dropped as corrupt. A duplicate that passes its check but differs from the frame already
//! accepted (or being checked) for that index is a conflicting duplicate: an error.
//!
//! # Memory
//! A receiver holds the whole block in memory, so it accepts at most
//! [`DatagramConfig::max_block_len`] body bytes ([`crate::transfer::MAX_BLOCK_BYTES`] by
//! default), whatever [`Expect::max_len`] allows: its limit is the smaller of the two. Nothing a
//! peer's numbers ask for is allocated before they are checked against it: the frame count of a
//! first frame must fit a block of that limit in frames of the smallest chunk, and allocates
//! nothing until the descriptor (frames kept aside, bounded as step 1 says, are tracked by
//! index); a descriptor's chunk must fit in a frame ([`super::mtu::MAX_CHUNK`]), its lengths
//! within the limit. Then the payload's room is reserved first, the per-frame state after it (a
//! byte per frame, and a 32-byte chaining value per frame of 16 KiB or more: about 1 % of the
//! payload at most), and a compressed payload's decoded body once every frame is in. Each is
//! reserved fallibly: room that cannot be had fails the receive with an [`Error::Io`] of kind
//! `OutOfMemory` naming the block (and ABORT), never an abort of the process. So a frame's
//! numbers alone allocate nothing in proportion to them, and a checked descriptor at most the
//! room of a block of the limit and its per-frame state.

use super::compress;
use super::frame::{Codec, FrameHeader, Kind};
use super::link::Link;
use super::place::Work;
use super::rx::Rx;
use super::session::{control, send_frame, DatagramConfig, MIN_FRAME};
use super::tree;
use crate::transfer::wire::{BlockHeader, Digest};
use crate::transfer::{BlockId, BlockStore, Error, Expect, SealedBlock};
use std::time::Duration;

/// Payloads at least this long are checked and placed on [`DatagramConfig::hash_threads`]
/// threads.
pub const PARALLEL_MIN: usize = tree::PARALLEL_MIN;
/// What a receive does with a checked block before it confirms it (e.g. store it).
type Accept<'a> = dyn FnMut(&BlockHeader, &[u8]) -> Result<(), Error> + 'a;

/// Most frames a receiver keeps before the descriptor arrives (more are dropped, as if lost).
pub const MAX_PENDING: usize = 1 << 16;

/// One send of a block: the block and the sender's number for the send (its attempt,
/// [`super::sender`]), which the receiver's control frames answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Attempt {
    pub(super) block: BlockId,
    pub(super) number: u32,
}

impl Default for Attempt {
    fn default() -> Self {
        Attempt { block: BlockId(0), number: 0 }
    }
}

/// A send the receiver refused, and why (the ABORT's reason).
#[derive(Debug)]
pub(super) struct Refusal {
    pub(super) send: Attempt,
    pub(super) reason: String,
}

/// Receives blocks from a [`Link`]; answers MTU probes while it waits.
#[derive(Debug, Default)]
pub struct DatagramReceiver {
    /// Session settings.
    pub config: DatagramConfig,
    last_done: Option<BlockId>,
    /// The send the last receive refused, until a receive succeeds (see the module docs).
    last_refused: Option<Refusal>,
    /// The send being received, or last received, that control frames answer (`rx.rs`), and
    /// that a failed receive refuses.
    attempt: Attempt,
    /// Room for compressed payloads.
    scratch: Vec<u8>,
    /// Room for bodies received into a store.
    stored: Vec<u8>,
}

impl DatagramReceiver {
    /// A receiver with `config`.
    pub fn new(config: DatagramConfig) -> Self {
        DatagramReceiver {
            config,
            last_done: None,
            last_refused: None,
            attempt: Attempt::default(),
            scratch: Vec::new(),
            stored: Vec::new(),
        }
    }

    /// Serves the peer while no block is being received: answers MTU probes (a peer discovering
    /// before its first block) and confirms the last block again when its DONE was lost. Returns
    /// after `quiet` without any frame, or when the link is gone.
    pub fn linger(&mut self, link: &mut dyn Link, quiet: Duration) -> Result<(), Error> {
        let mut buf = vec![0u8; link.max_frame().max(MIN_FRAME)];
        loop {
            let n = match link.recv(&mut buf, quiet) {
                Ok(Some(n)) => n,
                Ok(None) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(Error::io("receive while lingering", None, e)),
            };
            // The header is checked; a data payload need not be, to confirm a block again.
            if let Ok((h, check, p)) = FrameHeader::parse(&buf[..n]) {
                if h.kind == Kind::Probe && FrameHeader::check_payload(check, p) {
                    let _ = send_frame(link, control(Kind::ProbeAck, h.block, h.attempt, h.index, 0), &[]);
                } else if h.kind == Kind::Data && self.last_done == Some(h.block) {
                    let _ = send_frame(link, control(Kind::Done, h.block, h.attempt, 0, 0), &[]);
                }
            }
        }
    }

    /// Receives one block: reassembles, asks for missing frames, decodes, checks the digest and
    /// confirms. See [`super`] for what is an error.
    pub fn recv_block(&mut self, link: &mut dyn Link, expect: &Expect) -> Result<(BlockHeader, Vec<u8>), Error> {
        let mut body = Vec::new();
        let h = self.recv_block_into(link, expect, &mut body)?;
        Ok((h, body))
    }

    /// Receives one block into `store`: received and checked in memory as by
    /// [`DatagramReceiver::recv_block`], then written to a private temp file, synced and published
    /// before DONE goes out — the same semantics as a stream backend's receive into a store: the
    /// block becomes visible only whole and verified, and a failed receive leaves nothing behind.
    /// A store that refuses the block (full, or [`Error::Duplicate`], found as soon as the first
    /// frame names the block) fails the receive, and the sender is told why (ABORT). The memory
    /// is kept for the next block.
    pub fn recv_block_to_store(
        &mut self,
        link: &mut dyn Link,
        store: &BlockStore,
        expect: &Expect,
    ) -> Result<SealedBlock, Error> {
        let mut body = std::mem::take(&mut self.stored);
        let mut sealed = None;
        let r = self.recv_block_with(link, expect, Some(store), &mut body, &mut |h, b| {
            sealed = Some(store.put_received(h, b)?);
            Ok(())
        });
        self.stored = body;
        let h = r?;
        sealed.ok_or_else(|| Error::NotFound { block: h.id, store: store.root().display().to_string() })
    }

    /// [`DatagramReceiver::recv_block`] into `body`, whose contents are replaced and whose
    /// capacity is reused: a receiver of many blocks passes the same vector each time. On error
    /// `body` is empty.
    pub fn recv_block_into(
        &mut self,
        link: &mut dyn Link,
        expect: &Expect,
        body: &mut Vec<u8>,
    ) -> Result<BlockHeader, Error> {
        self.recv_block_with(link, expect, None, body, &mut |_, _| Ok(()))
    }

    /// [`DatagramReceiver::recv_block_into`], calling `accept` with the checked block before
    /// DONE goes out; its error fails the receive like any other. A block `store` already holds
    /// is refused at its first frame.
    fn recv_block_with(
        &mut self,
        link: &mut dyn Link,
        expect: &Expect,
        store: Option<&BlockStore>,
        body: &mut Vec<u8>,
        accept: &mut Accept<'_>,
    ) -> Result<BlockHeader, Error> {
        body.clear();
        let r = self.recv_inner(link, expect, store, body, accept);
        match &r {
            Ok(_) => self.last_refused = None,
            Err(e) => {
                body.clear();
                // An error that names a block came from a frame, which made its send the one
                // this receive answers (`rx.rs`): refused, as the module docs say.
                if e.block().is_some() {
                    let reason = e.to_string();
                    let a = self.attempt;
                    let _ = send_frame(link, control(Kind::Abort, a.block, a.number, 0, 0), reason.as_bytes());
                    self.last_refused = Some(Refusal { send: a, reason });
                }
            }
        }
        // The DONE or ABORT goes out now, not when the caller next uses the link.
        if let Err(e) = link.flush() {
            tracing::warn!(error = %e, "could not push out the last frames of a receive");
        }
        r
    }

    fn recv_inner(
        &mut self,
        link: &mut dyn Link,
        expect: &Expect,
        store: Option<&BlockStore>,
        body: &mut Vec<u8>,
        accept: &mut Accept<'_>,
    ) -> Result<BlockHeader, Error> {
        let mut rx =
            Rx::new(link, expect, self.config, self.last_done, self.last_refused.as_ref(), store, &mut self.attempt);
        let d = rx.until_descriptor()?;
        // Checked against the receiver's limit; one that does not fit a usize (a 32-bit target)
        // cannot be reserved either.
        let len = usize::try_from(d.payload_len).unwrap_or(usize::MAX);
        let room = if d.codec == Codec::None { &mut *body } else { &mut self.scratch };
        room.clear();
        // The payload's room first, then the per-frame state (module docs, "Memory").
        room.try_reserve_exact(len).map_err(|e| no_memory(d.header.id, "the payload", len, e))?;
        rx.allocate()?;
        advise_huge_pages(&mut room.spare_capacity_mut()[..len]);
        let threads = if len >= PARALLEL_MIN { self.config.hash_threads.max(1) } else { 1 };
        {
            let work = Work::new(&mut room.spare_capacity_mut()[..len], d.chunk as usize);
            rx.assemble_on(&work, threads)?;
        }
        // SAFETY: every frame is `Done`: its job copied exactly its payload to its slot, and the
        // slots of frames 1..count tile [0, len) (lengths checked against the descriptor), so
        // the first `len` bytes of the spare capacity are initialised.
        unsafe { room.set_len(len) };
        let a = rx
            .asm
            .take()
            .ok_or_else(|| Error::Timeout { block: Some(d.header.id), what: "assembly vanished".into() })?;
        // Every frame is in. What follows (the digest, decoding, the store's write and fsync)
        // reads nothing from the link and may take seconds on a loaded machine: tell the sender,
        // which then waits for DONE or ABORT until its block_timeout rather than take the
        // silence for a dead receiver (module docs). Lost, the sender's silence limit applies.
        let told = send_frame(rx.link, control(Kind::Progress, a.id, rx.attempt.number, a.count, a.count), &[])
            .and_then(|()| rx.link.flush());
        if let Err(e) = told {
            tracing::debug!(block = %a.id, error = %e, "could not tell the sender that every frame is in");
        }
        let digest: Digest = match d.codec {
            Codec::None if tree::by_cv(d.chunk as u64) => tree::payload_hash(body, &a.cvs).into(),
            // Frames were checked by XXH3: hash the payload now, in subtrees on the threads.
            Codec::None => {
                let cvs = tree::frame_cvs(body, tree::AFTER_CHUNK, self.config.hash_threads);
                tree::payload_hash(body, &cvs).into()
            }
            Codec::Lz4 => {
                let payload = std::mem::take(&mut self.scratch);
                let raw_len = usize::try_from(d.header.length).unwrap_or(usize::MAX);
                let mut out = Vec::new();
                out.try_reserve_exact(raw_len).map_err(|e| no_memory(a.id, "the decoded body", raw_len, e))?;
                compress::decode_into(&payload, d.codec, raw_len, &mut out).map_err(|r| Error::FrameRejected {
                    block: a.id,
                    index: 0,
                    reason: format!("payload does not decode: {r}"),
                })?;
                *body = out;
                Digest::of(body)
            }
        };
        if digest != d.header.digest {
            return Err(Error::Tampered { block: a.id, expected: d.header.digest.to_hex(), actual: digest.to_hex() });
        }
        accept(&d.header, body)?;
        // Accepted (and published, into a store): from here the receive succeeds (module docs).
        self.last_done = Some(a.id);
        if let Err(e) = send_frame(rx.link, control(Kind::Done, a.id, rx.attempt.number, 0, 0), &[]) {
            tracing::warn!(block = %a.id, error = %e, "block accepted, but its DONE could not be sent; the sender will ask again");
        }
        Ok(d.header)
    }
}

/// The error of a reservation for `block` that failed: `bytes` for `what` (module docs, "Memory").
pub(super) fn no_memory(block: BlockId, what: &str, bytes: usize, e: std::collections::TryReserveError) -> Error {
    Error::io(
        format!("reserve {bytes} bytes for {what}"),
        Some(block),
        std::io::Error::new(std::io::ErrorKind::OutOfMemory, e),
    )
}

/// Asks the kernel to back a payload buffer with transparent huge pages where it can. A new
/// 64 MiB buffer otherwise takes 16 384 page faults as the frames land (the receiver of a fresh
/// vector per block spent most of its time there); with 2 MiB pages it takes 32, and reading the
/// block later misses the TLB less. Memory already backed (a reused buffer) is unaffected.
fn advise_huge_pages(buf: &mut [std::mem::MaybeUninit<u8>]) {
    const HUGE: usize = 2 << 20;
    if buf.len() < 2 * HUGE {
        return;
    }
    let start = buf.as_mut_ptr() as usize;
    let page = 4096;
    let a = start.next_multiple_of(page);
    let b = (start + buf.len()) / page * page;
    if b > a {
        // SAFETY: madvise with MADV_HUGEPAGE only changes how the kernel backs this range of
        // our own allocation (page-aligned, inside `buf`); it never changes its contents or
        // validity, and failure is harmless.
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE) };
    }
}
