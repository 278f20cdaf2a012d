//! What the datagram sender ([`super::sender`]) and receiver ([`super::receiver`]) share: their
//! settings, the send report, and how a frame goes out. See [`super`] for the protocol.

use super::compress::Compression;
use super::frame::{Codec, FrameHeader, Kind, FRAME_HEADER};
use super::link::Link;
pub use super::mtu::MtuCache;
pub use super::receiver::DatagramReceiver;
pub use super::sender::DatagramSender;
use crate::transfer::BlockId;
use std::time::Duration;

/// Smallest frame the protocol uses (and the first MTU probe): fits a descriptor and a NACK.
pub const MIN_FRAME: usize = 512;
/// NACK payloads stay within the smallest frame: 58 (start, len) ranges, (512 − 48) / 8. A
/// sender reads at most this many ranges of one NACK.
pub const NACK_RANGES: usize = (MIN_FRAME - FRAME_HEADER) / 8;

/// Timeouts and policies of a datagram session.
#[derive(Debug, Clone, Copy)]
pub struct DatagramConfig {
    /// How long a side waits for the other before asking again (NACK / descriptor resend).
    pub resend_timeout: Duration,
    /// Resend rounds before giving up on a block.
    pub max_rounds: u32,
    /// Compression policy of the sender.
    pub compression: Compression,
    /// How long one MTU probe waits for its answer. A duration too long to add to the clock
    /// (e.g. [`Duration::MAX`]) waits without limit.
    pub probe_timeout: Duration,
    /// How long a receiver waits for the first frame of a block.
    pub idle_timeout: Duration,
    /// The most one block may take, whatever arrives meanwhile: a sender that has no DONE or
    /// ABORT by then, or a receiver that has not assembled the block by then (counted from its
    /// first frame), fails with [`crate::transfer::Error::Timeout`]. Bounds what a peer that
    /// keeps a side busy (NACKing forever, trickling garbage) can hold it for. A duration too
    /// long to add to the clock (e.g. [`Duration::MAX`]) sets no limit.
    pub block_timeout: Duration,
    /// Threads a receiver checks and places data frames on (itself included) for payloads of
    /// [`super::receiver::PARALLEL_MIN`] bytes or more; 1 keeps it on the receiving thread.
    pub hash_threads: usize,
    /// The largest block body a receiver accepts, whatever [`crate::transfer::Expect::max_len`]
    /// says (its limit is the smaller of the two; values above
    /// [`crate::transfer::MAX_BODY_LEN`] act as it): a receiver holds the whole block in memory,
    /// and reserves room for a block of this size on one checked descriptor ([`super::receiver`],
    /// "Memory"). Default [`crate::transfer::MAX_BLOCK_BYTES`]. Senders ignore it.
    pub max_block_len: u64,
}

impl Default for DatagramConfig {
    fn default() -> Self {
        DatagramConfig {
            resend_timeout: Duration::from_millis(20),
            max_rounds: 50,
            compression: Compression::Auto,
            probe_timeout: Duration::from_millis(10),
            idle_timeout: Duration::from_secs(10),
            block_timeout: Duration::from_secs(60),
            hash_threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(4),
            max_block_len: crate::transfer::MAX_BLOCK_BYTES,
        }
    }
}

/// What one datagram send did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DatagramReport {
    /// The block.
    pub id: BlockId,
    /// Frame size used (from MTU discovery).
    pub frame_size: usize,
    /// Frames in the block (descriptor included).
    pub frames: u32,
    /// Frames sent again after NACKs or timeouts.
    pub resent: u64,
    /// Payload codec.
    pub codec: Codec,
    /// Body bytes.
    pub raw_bytes: u64,
    /// Payload bytes after compression.
    pub payload_bytes: u64,
}

/// Sends a control frame or the descriptor, copied ([`Link::send`]): the link keeps no
/// reference to `payload`, which may die at once (an ABORT's reason).
pub(super) fn send_frame(link: &mut dyn Link, h: FrameHeader, payload: &[u8]) -> std::io::Result<()> {
    let head = h.encode(payload);
    link.send(&[&head, payload])
}

/// The header of a control frame without payload, answering send `attempt` of `block`.
pub(super) fn control(kind: Kind, block: BlockId, attempt: u32, index: u32, count: u32) -> FrameHeader {
    FrameHeader { kind, block, index, count, payload_len: 0, attempt }
}
