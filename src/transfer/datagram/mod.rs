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
//!    last. Every frame carries block id, index, count and an XXH3 checksum.
//! 4. **Repair.** A corrupt frame (bad checksum) is dropped. When the receiver hears nothing for
//!    `resend_timeout`, it sends NACKs listing missing ranges; the sender resends them. A sender
//!    that hears nothing resends the descriptor and last frame to prompt NACKs.
//! 5. **Acceptance.** When every frame is in, the receiver decodes, checks the length and the
//!    BLAKE3 digest, and only then returns the block and confirms with DONE. A sender returns
//!    only after DONE, and after the link released its memory (zero-copy TX).
//!
//! # Errors
//! Reordered frames and exact duplicates are normal on a datagram network and are absorbed.
//! Everything else ends the block with an error naming it and the reason, and the receiver
//! tells the sender (ABORT): a conflicting duplicate, an index or count out of range or changing
//! between frames, a payload length that disagrees with the descriptor, a block larger than the
//! receiver accepts ([`Error::Oversized`]), frames of another block interleaved
//! ([`Error::UnexpectedBlock`]), a digest mismatch ([`Error::Tampered`]), frames still missing
//! after `max_rounds` requests ([`Error::GaveUp`], the datagram form of truncation). A receiver
//! returns nothing partial.
//!
//! [`Error::Oversized`]: crate::transfer::Error::Oversized
//! [`Error::UnexpectedBlock`]: crate::transfer::Error::UnexpectedBlock
//! [`Error::Tampered`]: crate::transfer::Error::Tampered
//! [`Error::GaveUp`]: crate::transfer::Error::GaveUp

pub mod compress;
pub mod frame;
pub mod link;
pub mod session;

pub use compress::Compression;
pub use link::{Impairments, Link, MemLink, UdpLink};
pub use session::{DatagramConfig, DatagramReceiver, DatagramReport, DatagramSender, MtuCache};
