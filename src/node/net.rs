//! Framing between validators and clients over TCP.
//!
//! A frame is a 4-byte little-endian length followed by the postcard encoding of a [`Frame`];
//! frames above the connection's limit close the connection: [`MAX_FRAME`] (64 MiB) once the
//! peer proved a validator's key, [`MAX_CLIENT_FRAME`] (1 MiB) on every other connection (clients,
//! and every connection before its handshake), so that anyone who reaches the port makes the node
//! buffer and decode at most 1 MiB per connection. A frame that does not decode is *malformed*:
//! the reader skips it (the length prefix keeps the stream in sync) and the node counts it.
//!
//! Decoding never allocates much more than the frame's own bytes: a `Submit` frame claiming more
//! than [`MAX_SUBMIT_TXS`] transactions is malformed as soon as its length is read, before any
//! transaction is decoded (an empty transaction is 3 bytes on the wire but 72 in memory, so a
//! 64 MiB frame of them would have decoded to 1.6 GB). Every other vector in a frame has
//! elements of at least 32 bytes on the wire, except view changes' payload lists (an empty payload
//! is 1 byte on the wire, 24 in memory), which arrive only in validators' `Consensus` frames:
//! those are read only from an identified validator at full size, or within the 1 MiB client limit.
//! Consensus frames carry signed messages: the node verifies every signature they carry in one
//! engine batch per tick and drops (and counts) any message with a missing or invalid one.
//!
//! Variants are encoded by their position in [`Frame`]: new ones go at the end. A connection's
//! first frame says what it is: `Hello` opens a validator connection (authenticated by the
//! `Challenge`/`HelloProof` exchange of [`crate::node::handshake`]), `FetchBlocks` a block
//! connection ([`crate::node::sync`]), anything else a client connection.

use crate::node::consensus::{Digest, Height, Message, Signature};
use crate::node::ledger::app::MAX_SUBMIT_TXS;
use crate::node::ledger::Transaction;
use serde::{Deserialize, Deserializer, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted (64 MiB), from a validator that proved its key: a view change with two
/// largest payloads (2 x [`MAX_PAYLOAD_BYTES`](crate::node::ledger::MAX_PAYLOAD_BYTES)) fits.
pub const MAX_FRAME: usize = 64 << 20;

/// Largest frame accepted from a connection that did not prove a validator's key (1 MiB): clients,
/// and every connection before its handshake. Clients send `Submit` frames of at most
/// [`MAX_SUBMIT_TXS`] transactions (1024 one-input transfers are about 140 KiB; the testnet wallet
/// sends those), `Subscribe` and `StatusRequest`; a transaction too large for this limit must be
/// split. It bounds what a stranger makes the node buffer and decode per connection.
pub const MAX_CLIENT_FRAME: usize = 1 << 20;

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
    /// [`MAX_SUBMIT_TXS`] of one frame, carrying at most
    /// [`MAX_SUBMIT_SIGNATURES`](crate::node::ledger::app::MAX_SUBMIT_SIGNATURES) in all, and refuses
    /// the rest ([`crate::node::ledger::app::LedgerApp::submit`]); a frame claiming more does not
    /// decode (module docs).
    Submit(#[serde(deserialize_with = "at_most_submit_txs")] Vec<Transaction>),
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

/// Decodes a `Submit` frame's transactions, refusing a length above [`MAX_SUBMIT_TXS`] before
/// decoding (or allocating for) any of them. Postcard's length hint is the encoded length.
fn at_most_submit_txs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Transaction>, D::Error> {
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<Transaction>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "at most {MAX_SUBMIT_TXS} transactions")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let n = seq.size_hint().unwrap_or(0);
            if n > MAX_SUBMIT_TXS {
                return Err(serde::de::Error::invalid_length(n, &self));
            }
            let mut out = Vec::with_capacity(n);
            while let Some(tx) = seq.next_element()? {
                if out.len() == MAX_SUBMIT_TXS {
                    return Err(serde::de::Error::invalid_length(out.len() + 1, &self));
                }
                out.push(tx);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Bounded)
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Connection error or EOF in the middle of a frame.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// Length above the connection's limit ([`MAX_FRAME`] or [`MAX_CLIENT_FRAME`]).
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

/// Reads one frame of at most [`MAX_FRAME`] bytes; `Ok(None)` at a clean end of stream.
pub async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> Result<Option<Frame>, FrameError> {
    read_frame_within(r, MAX_FRAME).await
}

/// Reads one frame of at most `max` bytes (a longer one is [`FrameError::TooLarge`], its body
/// unread); `Ok(None)` at a clean end of stream.
pub async fn read_frame_within(r: &mut (impl AsyncRead + Unpin), max: usize) -> Result<Option<Frame>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > max {
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

    /// Finding: a `Submit` frame of empty transactions (3 bytes each on the wire, 72 in memory)
    /// decoded in full: 64 MiB became 1.6 GB. The length claim alone now refuses it, before any
    /// transaction is decoded: a frame claiming 10 million is refused at once, and one of
    /// `MAX_SUBMIT_TXS + 1` transactions, every one present, is malformed too (it decoded before).
    #[tokio::test]
    async fn a_submit_frame_claiming_too_many_transactions_is_refused_unread() {
        const EMPTY_TX: [u8; 3] = [0, 0, 0];
        let frame = |claimed: u64, present: usize| {
            let mut body = vec![4u8]; // Frame::Submit
            let mut v = claimed;
            while v >= 0x80 {
                body.push(v as u8 | 0x80);
                v >>= 7;
            }
            body.push(v as u8);
            for _ in 0..present {
                body.extend_from_slice(&EMPTY_TX);
            }
            let mut out = (body.len() as u32).to_le_bytes().to_vec();
            out.extend(body);
            out
        };
        let started = std::time::Instant::now();
        let buf = frame(10_000_000, 1000);
        let mut r = buf.as_slice();
        assert!(matches!(read_frame(&mut r).await, Err(FrameError::Malformed(_))));
        assert!(r.is_empty(), "the stream stays in sync");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // One over the limit, every transaction present: refused too; at the limit: decoded.
        let buf = frame(MAX_SUBMIT_TXS as u64 + 1, MAX_SUBMIT_TXS + 1);
        assert!(matches!(read_frame(&mut buf.as_slice()).await, Err(FrameError::Malformed(_))));
        let buf = frame(MAX_SUBMIT_TXS as u64, MAX_SUBMIT_TXS);
        assert!(
            matches!(read_frame(&mut buf.as_slice()).await, Ok(Some(Frame::Submit(t))) if t.len() == MAX_SUBMIT_TXS)
        );
        // The encoder's output round-trips.
        let buf = encode(&Frame::Submit(Vec::new()));
        assert!(matches!(read_frame(&mut buf.as_slice()).await, Ok(Some(Frame::Submit(t))) if t.is_empty()));
    }

    #[tokio::test]
    async fn client_frames_are_limited_to_a_mebibyte() {
        let big = encode(&Frame::Status("x".repeat(MAX_CLIENT_FRAME)));
        assert!(matches!(read_frame_within(&mut big.as_slice(), MAX_CLIENT_FRAME).await, Err(FrameError::TooLarge(_))));
        assert!(matches!(read_frame(&mut big.as_slice()).await, Ok(Some(Frame::Status(_)))));
    }
}
