//! The datagram path: blocks cut into frames that fit the path MTU, reassembled by the receiver,
//! which asks again for what is missing. Written against a small [`Link`] trait so the same
//! protocol runs over an in-process link, UDP, or DPDK (feature `dpdk`, `transfer::dpdk`).
//!
//! # Protocol (see [`frame`] for the bytes)
//! 1. **MTU.** Before the first block to a peer, the sender binary-searches the largest frame
//!    that gets through ([`MtuCache::discover`]: probe frames answered by the receiver, from
//!    [`session::MIN_FRAME`] up to the link's maximum) and caches it per peer.
//! 2. **Compression.** The sender estimates the block's entropy from a sample and compresses
//!    with LZ4 when that is likely to pay ([`compress`]); the descriptor says which codec.
//! 3. **Frames.** Frame 0 is the descriptor (block header with the BLAKE3 digest, payload
//!    length, chunk size, codec); frames 1.. carry the payload, each exactly one chunk but the
//!    last. Every frame carries block id, index, count, the send's *attempt* number, a header
//!    check (XXH3) and a payload check ([`frame`]). The receiver's control frames carry the
//!    attempt they answer, so a sender ignores late answers to an earlier send of the same block
//!    (a DONE excepted: it is true of any send; [`sender`]). Where frames have room for 16 KiB of payload or more, the chunk is the
//!    largest power of two that fits, so each data frame is one subtree of the payload's BLAKE3
//!    tree, and its payload check is that subtree's chaining value, which the receiver computes
//!    once per byte to check the frame *and* to build the block digest. On smaller frames (a
//!    1500-byte MTU: 1452 bytes of payload) the chunk is all the room there is, its check is
//!    XXH3, and the receiver hashes the assembled payload at the end ([`tree`]).
//! 4. **Repair.** A corrupt frame (failed check) is dropped. When the receiver hears nothing
//!    useful (no new frame) for `resend_timeout`, it sends NACKs listing missing ranges; the
//!    sender resends them, each frame at most once per NACK and at most `max_rounds` × frames in
//!    all ([`sender`]). A sender that hears nothing resends the descriptor and last frame to
//!    prompt NACKs, and gives up after `max_rounds` such rounds in a row. A receiver busy with
//!    frames it has (checking a backlog, or once all are in, the digest and the store write)
//!    NACKs nothing, so it reports PROGRESS instead: every `resend_timeout` while frames are
//!    placed, and once every frame is in, after which the sender waits for DONE until its
//!    `block_timeout` rather than give up on silence ([`sender`], "Silence"). Neither side
//!    spends more than `block_timeout` on a block
//!    ([`DatagramConfig::block_timeout`]), give or take one burst of frames — a sender checks
//!    its deadline also every 32 frames it sends in a row, a receiver on every pass of its loop —
//!    and the receiver's last steps once every frame is in (digest, store write), which the peer
//!    cannot prolong. A link's receive returns by its timeout whatever arrives (the DPDK link
//!    also while it drops frames of another EtherType, or too long for the buffer).
//! 5. **Acceptance.** When every frame is in, the receiver merges the chaining values it computed
//!    into the payload's BLAKE3 root (decoding and hashing the body instead for a compressed
//!    payload), checks it against the digest, and only then returns the block (a receive into a
//!    store first writes it: temp file, `fsync`, publish) and confirms with DONE. A sender
//!    returns only after DONE; memory it lent to a zero-copy link is then the link's to free
//!    once no frame references it ([`Link::retire`]). Large payloads are checked and placed on
//!    several threads ([`receiver`]).
//!
//! # Errors
//! Reordered frames and exact duplicates are normal on a datagram network and are absorbed.
//! Everything else ends the block with an error naming it and the reason, and the receiver
//! tells the sender (ABORT): a conflicting duplicate, an index or count out of range or changing
//! between frames, a payload length that disagrees with the descriptor, a block larger than the
//! receiver accepts ([`Error::Oversized`]; a receiver holds blocks in memory, and accepts at most
//! [`DatagramConfig::max_block_len`] whatever its caller allows), room for the block that cannot
//! be reserved ([`Error::Io`], `OutOfMemory`), frames of another block interleaved
//! ([`Error::UnexpectedBlock`]: the receive of the block being assembled ends, and that block's
//! send is the one refused), a digest mismatch ([`Error::Tampered`]), frames still missing
//! after `max_rounds` requests ([`Error::GaveUp`], the datagram form of truncation). A receiver
//! returns nothing partial ([`receiver`] says which send an ABORT refuses, and what becomes of
//! the refused send's later frames).
//!
//! [`Error::Oversized`]: crate::transfer::Error::Oversized
//! [`Error::Io`]: crate::transfer::Error::Io
//! [`Error::UnexpectedBlock`]: crate::transfer::Error::UnexpectedBlock
//! [`Error::Tampered`]: crate::transfer::Error::Tampered
//! [`Error::GaveUp`]: crate::transfer::Error::GaveUp

mod assembly;
pub mod compress;
pub mod frame;
pub mod link;
pub mod mtu;
mod place;
pub mod receiver;
mod rx;
pub mod sender;
pub mod session;
pub mod tree;

pub use compress::Compression;
pub use link::{Impairments, LentFrame, LentMemory, Link, MemLink, RxFrame, UdpLink};
pub use session::{DatagramConfig, DatagramReceiver, DatagramReport, DatagramSender, MtuCache};
