//! Framing between validators and clients over TCP.
//!
//! A frame is a 4-byte little-endian length followed by the postcard encoding of a [`Frame`];
//! frames above [`MAX_FRAME`] close the connection. A frame that does not decode is *malformed*:
//! the reader skips it (the length prefix keeps the stream in sync) and the node counts it.
//! Consensus frames carry signed messages: the node verifies every signature they carry in one
//! engine batch per tick and drops (and counts) any message with a missing or invalid one.
//!
//! Variants are encoded by their position in [`Frame`]: new ones go at the end. A connection's
//! first frame says what it is: `Hello` opens a validator connection (authenticated by the
//! `Challenge`/`HelloProof` exchange of [`crate::node::handshake`]), `FetchBlocks` a block
//! connection ([`crate::node::sync`]), anything else a client connection.

use crate::node::consensus::{Digest, Height, Message, Signature};
use crate::node::ledger::Transaction;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted (64 MiB).
pub const MAX_FRAME: usize = 64 << 20;

/// Everything sent over a connection.
// Messages are moved, not stored in bulk: boxing the large variant would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Frame {
    /// First frame of a validator-to-validator connection: who is calling. The callee answers
    /// [`Frame::Challenge`] and attributes nothing to the caller before a valid
    /// [`Frame::HelloProof`] ([`crate::node::handshake`]).
    Hello {
        /// The caller's validator index.
        validator: u16,
    },
    /// A signed consensus message.
    Consensus(Message),
    /// Validator to validator: "I hold this many final blocks" (sent to a peer seen voting at
    /// an older height, so that it fetches the rest; see [`crate::node::sync`]).
    Tip(Height),
    /// First and only frame of a block connection: "send me the final blocks from `from` on,
    /// at most `count`". The answer is transfer wire blocks, not frames ([`crate::node::sync`]).
    FetchBlocks {
        /// First height wanted.
        from: Height,
        /// Most blocks wanted.
        count: u64,
    },
    /// Client: transactions to admit. The node considers at most
    /// [`MAX_SUBMIT_TXS`](crate::node::ledger::app::MAX_SUBMIT_TXS) of one frame and refuses
    /// the rest ([`crate::node::ledger::app::LedgerApp::submit`]).
    Submit(Vec<Transaction>),
    /// Client: stream me [`Frame::Committed`] for every final block.
    Subscribe,
    /// A final block's height and transaction ids.
    Committed {
        /// Height.
        height: Height,
        /// Transaction ids in block order.
        txids: Vec<Digest>,
    },
    /// Client: report status (with the block digest at `at`, if given).
    StatusRequest {
        /// A height whose block digest to include.
        at: Option<Height>,
    },
    /// JSON status.
    Status(String),
    /// Callee to caller, the answer to [`Frame::Hello`]: sign this ([`crate::node::handshake`]).
    Challenge {
        /// Fresh random bytes, one challenge per connection.
        nonce: [u8; 32],
    },
    /// Caller to callee, the answer to [`Frame::Challenge`]: the caller's consensus key over
    /// [`crate::node::handshake::signing_bytes`].
    HelloProof {
        /// Ed25519 signature.
        signature: Signature,
    },
    /// Callee to caller, the handshake's last frame: the proof verified, the connection is the
    /// caller's ([`crate::node::handshake`]). A refused caller gets no `Welcome`: its connection
    /// is closed instead.
    Welcome,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Connection error or EOF in the middle of a frame.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// Length above [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// Body does not decode (the stream is still in sync).
    #[error("malformed frame: {0}")]
    Malformed(postcard::Error),
}

/// Encodes a frame with its length prefix.
pub fn encode(f: &Frame) -> Vec<u8> {
    let body = postcard::to_stdvec(f).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Writes one frame.
pub async fn write_frame(w: &mut (impl AsyncWrite + Unpin), f: &Frame) -> std::io::Result<()> {
    w.write_all(&encode(f)).await
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> Result<Option<Frame>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(FrameError::TooLarge(n));
    }
    let mut body = vec![0u8; n];
    r.read_exact(&mut body).await?;
    postcard::from_bytes(&body).map(Some).map_err(FrameError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_malformed_ones_keep_the_stream_in_sync() {
        let mut buf = Vec::new();
        buf.extend(encode(&Frame::Hello { validator: 3 }));
        buf.extend_from_slice(&3u32.to_le_bytes());
        buf.extend_from_slice(&[0xff, 0xff, 0xff]);
        buf.extend(encode(&Frame::Tip(9)));
        buf.extend(encode(&Frame::Challenge { nonce: [4; 32] }));
        buf.extend(encode(&Frame::HelloProof { signature: Signature([5; 64]) }));
        buf.extend_from_slice(&(MAX_FRAME as u32 + 1).to_le_bytes());
        let mut r = buf.as_slice();
        assert!(matches!(read_frame(&mut r).await, Ok(Some(Frame::Hello { validator: 3 }))));
        assert!(matches!(read_frame(&mut r).await, Err(FrameError::Malformed(_))));
        assert!(matches!(read_frame(&mut r).await, Ok(Some(Frame::Tip(9)))));
        assert!(matches!(read_frame(&mut r).await, Ok(Some(Frame::Challenge { nonce: [4, ..] }))));
        assert!(
            matches!(read_frame(&mut r).await, Ok(Some(Frame::HelloProof { signature })) if signature == Signature([5; 64]))
        );
        assert!(matches!(read_frame(&mut r).await, Err(FrameError::TooLarge(_))));
        let mut empty: &[u8] = &[];
        assert!(matches!(read_frame(&mut empty).await, Ok(None)));
    }
}
