//! Block transfer: one [`Transport`] contract, several backends, one wire protocol.
//!
//! Nodes keep blocks (1 KiB – 64 MiB, any size from 0 up to [`MAX_BLOCK_BYTES`] is accepted) in a
//! [`BlockStore`] and serve them to peers over a byte stream (TCP). Every backend moves the same
//! bytes with the same meaning; they differ only in how many copies and system calls it takes.
//!
//! # The contract
//!
//! - **What is sent.** A block is sent as its stored file: a 64-byte [`BlockHeader`] (magic,
//!   version, digest algorithm, [`BlockId`], body length, BLAKE3 digest of the body, header
//!   check) followed by exactly `length` body bytes. See [`wire`] for the layout. Because the
//!   store keeps the header at the start of each block file, zero-copy backends send the header
//!   and the body with one `sendfile`/`splice`/`SEND_ZC` stream.
//! - **When a block becomes visible.** The receiver writes into a private temporary file, checks
//!   the length and the digest, `fsync`s, and only then links it into the store under its final
//!   name (which fails if the name exists: a second copy is a duplicate, never an overwrite),
//!   removes the temporary name and `fsync`s the directory. Any failure (truncated, oversized, tampered,
//!   duplicated or unexpected input, an I/O error) removes the temporary file: nothing partial is
//!   ever left behind or made visible. [`Transport::recv_to_vec`] checks the digest before it
//!   returns the buffer.
//! - **Who owns a buffer.** A send borrows the block (or the caller's slice) for the duration of
//!   the call and returns only when the kernel no longer references the memory: backends that send
//!   zero-copy (`io-uring` with `SEND_ZC`) wait for the kernel's completion notification before
//!   returning. After any send returns, successfully or not, the caller may drop or reuse the
//!   buffer. (One bounded exception: an `io-uring` send to a peer that stopped, whose
//!   notifications are still missing three timeouts in and after a connection reset, returns
//!   `TimedOut` with the kernel still holding its own references to those pages; see `uring`,
//!   "Timeouts". Nothing is freed under the kernel, and the connection is already reset.) Sealed block files are never modified, so serving them concurrently is safe.
//! - **Errors.** Every [`Error`] names the block (when its header was read) and the reason. A
//!   failed receive leaves the connection in an unknown position; the caller drops it. A socket
//!   timeout (`TcpStream::set_write_timeout`/`set_read_timeout`) that runs out fails the call with
//!   an [`Error::Io`] of kind `TimedOut` on every stream backend (a blocking socket's `EAGAIN`
//!   is reported as such).
//! - **Same semantics everywhere.** The contract test suite (`tests/transfer_contract.rs`) runs
//!   every backend present against the same cases; a backend that is absent says why through
//!   detection and is never replaced silently by another when requested explicitly.
//!
//! Stream backends: [`copy`] (read + write through a 1 MiB buffer, the baseline), [`mmap`],
//! [`sendfile`], [`splice`], `uring` (feature `io-uring`). Routing by engine route and block
//! size is in [`route`] ([`crate::Engine::transport`]).
//!
//! The datagram path ([`datagram`]: frames sized by MTU discovery, reassembly, NACK/resend,
//! LZ4 by entropy) carries the same block header and digest rule over any [`datagram::Link`]:
//! UDP, an in-process link, or DPDK kernel bypass (`dpdk`, feature `dpdk`, transmitting straight
//! from the block's memory as external mbuf buffers). It receives into a buffer or, with the
//! same visibility rule as a stream receive, into a store
//! ([`datagram::DatagramReceiver::recv_block_to_store`]), before it confirms the block.

//! # Example
//!
//! ```no_run
//! use parthenon::transfer::{BlockId, BlockStore, Expect, Transport};
//! use std::net::{TcpListener, TcpStream};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = parthenon::Engine::new()?;
//! let transport = engine.transport()?; // routed backend + copy for small blocks
//! println!("{}", transport.report()); // which backend serves which sizes, and why
//!
//! // Serving side: store a block once, send it to a peer.
//! let store = BlockStore::open("/var/lib/node/blocks")?;
//! let block = store.put(BlockId(42), b"block bytes")?;
//! let peer = TcpStream::connect("10.0.0.2:7000")?;
//! transport.send_block(&peer, &block)?;
//!
//! // Receiving side: the block becomes visible only once whole and verified.
//! let listener = TcpListener::bind("0.0.0.0:7000")?;
//! let (conn, _) = listener.accept()?;
//! let inbox = BlockStore::open("/var/lib/node/inbox")?;
//! let got = transport.recv_block(&conn, &inbox, &Expect::block(BlockId(42)))?;
//! assert_eq!(got.len(), 11);
//! # Ok(())
//! # }
//! ```

pub mod copy;
pub mod datagram;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod mmap;
pub mod route;
pub mod sendfile;
pub mod splice;
pub mod store;
#[cfg(feature = "io-uring")]
pub mod uring;
pub mod wire;

mod recv;

pub use route::{TransferPolicy, TransferRouter};
pub use store::{BlockStore, SealedBlock};
pub use wire::{BlockHeader, Digest, HEADER_LEN, MAX_BODY_LEN};

use crate::engine::Backend;
use std::fmt;
use std::net::TcpStream;

/// Largest block body the protocol accepts by default (64 MiB).
pub const MAX_BLOCK_BYTES: u64 = 64 << 20;

/// A block's identity: a 64-bit number chosen by the application (e.g. a height or a sequence
/// number). Displayed as 16 hex digits, the same as its file name in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct BlockId(pub u64);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Receiver-side rules for one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// The block the receiver asked for; any other id is [`Error::UnexpectedBlock`].
    pub id: Option<BlockId>,
    /// Largest body accepted; a header announcing more is [`Error::Oversized`] before any body
    /// byte is read. Values above [`MAX_BODY_LEN`] act as [`MAX_BODY_LEN`].
    pub max_len: u64,
}

impl Default for Expect {
    fn default() -> Self {
        Expect { id: None, max_len: MAX_BLOCK_BYTES }
    }
}

impl Expect {
    /// Expect exactly `id`, at most [`MAX_BLOCK_BYTES`].
    pub fn block(id: BlockId) -> Self {
        Expect { id: Some(id), ..Expect::default() }
    }

    /// The largest body accepted: `max_len`, at most [`MAX_BODY_LEN`].
    pub(crate) fn limit(&self) -> u64 {
        self.max_len.min(MAX_BODY_LEN)
    }
}

/// What one send did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SendReport {
    /// The block.
    pub id: BlockId,
    /// Bytes put on the wire (header + body).
    pub wire_bytes: u64,
    /// The backend that moved them.
    pub backend: Backend,
    /// How it moved them, e.g. "sendfile", "send_zc (registered buffers)".
    pub method: String,
}

/// The transport contract. See the module docs for the semantics every implementation keeps.
pub trait Transport: Send + Sync + fmt::Debug {
    /// The backend this transport is.
    fn backend(&self) -> Backend;

    /// Sends a sealed block (header + body) to `peer`. Returns when the kernel no longer
    /// references the block's memory.
    fn send_block(&self, peer: &TcpStream, block: &SealedBlock) -> Result<SendReport, Error>;

    /// Sends `body` as block `id` from the caller's buffer; the header (with the BLAKE3 digest)
    /// is computed here. The slice is borrowed until the call returns.
    fn send_bytes(&self, peer: &TcpStream, id: BlockId, body: &[u8]) -> Result<SendReport, Error> {
        // Plain writes move the bytes, whatever this transport's block path is: the report says
        // so ([`SendReport::backend`]).
        copy::send_bytes_copy(peer, id, body, Backend::Copy)
    }

    /// How [`Transport::recv_block`] moves a body into the store, for reports.
    fn receive_method(&self) -> &'static str;

    /// Receives one block from `peer` into `store`; it becomes visible only once whole and
    /// verified.
    fn recv_block(&self, peer: &TcpStream, store: &BlockStore, expect: &Expect) -> Result<SealedBlock, Error>;

    /// Receives one block from `peer` into memory; the digest is checked before returning.
    fn recv_to_vec(&self, peer: &TcpStream, expect: &Expect) -> Result<(BlockHeader, Vec<u8>), Error> {
        recv::recv_to_vec(peer, expect)
    }
}

/// Transfer errors. Each names the block when its header was read, and the reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O call failed.
    #[error("{what}{}: {source}", block_suffix(.block))]
    Io {
        /// What was being done, e.g. "sendfile", "fsync temp file".
        what: String,
        /// The block, when known.
        block: Option<BlockId>,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The 64-byte header is not a valid block header.
    #[error("bad block header: {reason}")]
    BadHeader {
        /// Why.
        reason: String,
    },
    /// The stream ended before the header or body was complete.
    #[error("block {block}: truncated: got {got} of {expected} body bytes")]
    Truncated {
        /// The block.
        block: BlockId,
        /// Body bytes announced.
        expected: u64,
        /// Body bytes received before the stream ended.
        got: u64,
    },
    /// The peer closed the stream cleanly before a new header (no block was in flight).
    #[error("connection closed by peer before a block header")]
    Closed,
    /// The stream ended inside a header.
    #[error("truncated header: got {got} of {} bytes", HEADER_LEN)]
    TruncatedHeader {
        /// Header bytes received.
        got: usize,
    },
    /// A header announced a body larger than the receiver accepts.
    #[error("block {block}: oversized: {length} bytes announced, at most {max} accepted")]
    Oversized {
        /// The block.
        block: BlockId,
        /// Announced length.
        length: u64,
        /// The receiver's limit.
        max: u64,
    },
    /// The body's digest does not match the header's.
    #[error("block {block}: digest mismatch (tampered or corrupt): header says {expected}, body hashes to {actual}")]
    Tampered {
        /// The block.
        block: BlockId,
        /// Digest in the header (hex).
        expected: String,
        /// Digest of the received body (hex).
        actual: String,
    },
    /// The block is already in the store (blocks are immutable; a second copy is refused).
    #[error("block {block}: duplicate: already stored at {path}")]
    Duplicate {
        /// The block.
        block: BlockId,
        /// Where the stored copy is.
        path: String,
    },
    /// A different block arrived than the one asked for.
    #[error("block {got}: unexpected (out of order): expected block {expected}")]
    UnexpectedBlock {
        /// The block asked for.
        expected: BlockId,
        /// The block that arrived.
        got: BlockId,
    },
    /// The block is not in the store.
    #[error("block {block}: not found in store {store}")]
    NotFound {
        /// The block.
        block: BlockId,
        /// The store's root.
        store: String,
    },
    /// A stored block file is inconsistent with its header.
    #[error("block {block}: stored file {path} is corrupt: {reason}")]
    CorruptStore {
        /// The block.
        block: BlockId,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A datagram frame broke the protocol (not mere corruption, which is repaired by resending).
    #[error("block {block}: frame {index} rejected: {reason}")]
    FrameRejected {
        /// The block.
        block: BlockId,
        /// The frame index.
        index: u32,
        /// Why.
        reason: String,
    },
    /// Frames stayed missing after every resend request.
    #[error("block {block}: gave up: {missing} of {count} frames still missing after {rounds} resend requests ({corrupt} corrupt frames dropped)")]
    GaveUp {
        /// The block.
        block: BlockId,
        /// Frames missing.
        missing: usize,
        /// Frames in the block.
        count: u32,
        /// Resend requests made.
        rounds: u32,
        /// Frames dropped for a bad checksum.
        corrupt: u64,
    },
    /// The receiving peer refused the block and said why.
    #[error("block {block}: refused by peer: {reason}")]
    RefusedByPeer {
        /// The block.
        block: BlockId,
        /// The peer's reason.
        reason: String,
    },
    /// Nothing (or not enough) arrived in time.
    #[error("{}timed out: {what}", block_prefix(.block))]
    Timeout {
        /// The block, when the wait was for one.
        block: Option<BlockId>,
        /// What was awaited.
        what: String,
    },
    /// The requested backend cannot serve here.
    #[error("transfer backend `{backend}` unavailable: {reason}")]
    Unavailable {
        /// The backend.
        backend: Backend,
        /// Why.
        reason: String,
    },
    /// Engine routing failed.
    #[error(transparent)]
    Engine(#[from] crate::Error),
}

fn block_prefix(b: &Option<BlockId>) -> String {
    match b {
        Some(b) => format!("block {b}: "),
        None => String::new(),
    }
}

fn block_suffix(b: &Option<BlockId>) -> String {
    match b {
        Some(b) => format!(" (block {b})"),
        None => String::new(),
    }
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, block: Option<BlockId>, source: std::io::Error) -> Self {
        Error::Io { what: what.into(), block, source }
    }

    pub(crate) fn errno(what: impl Into<String>, block: Option<BlockId>, e: nix::errno::Errno) -> Self {
        Error::Io { what: what.into(), block, source: std::io::Error::from_raw_os_error(e as i32) }
    }

    /// This error, naming `block` when it names none: for a step that serves a block without
    /// knowing it (an MTU discovery made for its send).
    pub(crate) fn for_block(self, block: BlockId) -> Self {
        match self {
            Error::Io { what, block: None, source } => Error::Io { what, block: Some(block), source },
            Error::Timeout { block: None, what } => Error::Timeout { block: Some(block), what },
            other => other,
        }
    }

    /// The block this error is about, when known.
    pub fn block(&self) -> Option<BlockId> {
        match self {
            Error::Io { block, .. } | Error::Timeout { block, .. } => *block,
            Error::Truncated { block, .. }
            | Error::Oversized { block, .. }
            | Error::Tampered { block, .. }
            | Error::Duplicate { block, .. }
            | Error::NotFound { block, .. }
            | Error::CorruptStore { block, .. }
            | Error::FrameRejected { block, .. }
            | Error::GaveUp { block, .. }
            | Error::RefusedByPeer { block, .. } => Some(*block),
            Error::UnexpectedBlock { got, .. } => Some(*got),
            _ => None,
        }
    }
}

/// A transport for `backend`, if it is built in. Presence on this machine is checked by the
/// engine ([`crate::Engine::transport`]); this constructor only checks the build.
pub fn transport_for(backend: Backend) -> Result<Box<dyn Transport>, Error> {
    match backend {
        Backend::Copy => Ok(Box::new(copy::CopyTransport)),
        Backend::Mmap => Ok(Box::new(mmap::MmapTransport)),
        Backend::Sendfile => Ok(Box::new(sendfile::SendfileTransport)),
        Backend::Splice => Ok(Box::new(splice::SpliceTransport::new())),
        #[cfg(feature = "io-uring")]
        Backend::IoUring => Ok(Box::new(uring::UringTransport::new()?)),
        #[cfg(not(feature = "io-uring"))]
        Backend::IoUring => Err(Error::Unavailable { backend, reason: "built without feature `io-uring`".into() }),
        Backend::Dpdk => Err(Error::Unavailable {
            backend,
            reason: "DPDK is a datagram path, not a stream transport: use transfer::datagram".into(),
        }),
        other => Err(Error::Unavailable { backend: other, reason: format!("`{other}` is not a transfer backend") }),
    }
}
