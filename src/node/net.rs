//! Framing between validators and clients over TCP.
//!
//! A frame is a 4-byte little-endian length followed by the postcard encoding of a [`Frame`];
//! frames above the connection's limit close the connection: [`MAX_FRAME`] (64 MiB) once the
//! peer proved a validator's key, [`MAX_CLIENT_FRAME`] (1 MiB) on every other connection (clients,
//! and every connection before its handshake), so that anyone who reaches the port makes the node
//! buffer and decode at most 1 MiB per connection. A frame that does not decode is *malformed*:
//! the reader skips it (the length prefix keeps the stream in sync) and the node counts it.
//!
//! Once a frame's length prefix has arrived, its body must arrive within [`frame_deadline`] of
//! its length: [`FRAME_TIMEOUT`] plus the length at [`MIN_FRAME_RATE`] (5 s for a small frame,
//! 69 s for a full 64 MiB one); a body still incomplete then is [`FrameError::Stalled`] and the
//! node closes the connection. This holds on every connection, a validator's included, however
//! long a connection may stay quiet *between* frames. The body is read in pieces of at most
//! [`FRAME_CHUNK`] bytes into a buffer that grows as they arrive (at most doubling, never past
//! the length): a length prefix alone costs no memory, and a half-sent frame at most about twice
//! what was sent, not what its prefix claims.
//!
//! Decoding never allocates much more than the frame's own bytes. Every vector whose elements
//! take much more memory than their smallest encoding is bounded by what a valid frame holds, and
//! a longer one makes the frame malformed without decoding more than the bound's worth of
//! elements: a `Submit` frame's transactions ([`MAX_SUBMIT_TXS`]; an empty transaction is 3
//! bytes on the wire but 72 in memory, so a 64 MiB frame of them would decode to 1.6 GB), a view
//! change's payloads ([`MAX_VIEW_CHANGE_PAYLOADS`]; an empty payload is 1 byte on the wire, 24 in
//! memory), a proposal's justification (a view change is at least 71 bytes on the wire, 264 in
//! memory) and a certificate's votes (both one per validator, [`MAX_VALIDATORS`]). Postcard
//! announces a vector's length when the rest of the frame could hold that many one-byte
//! elements, and the length alone refuses it then, before any element is decoded or allocated
//! for; a longer claim is refused at the first element past the bound (or at the frame's end).
//! Every other vector's elements take at most 1.5 times their smallest encoding in memory
//! (payload and status bytes, transaction ids, a transaction's inputs, outputs and signatures;
//! checked by a unit test), plus the room a growing vector keeps in reserve (at most as much
//! again).
//!
//! [`MAX_VIEW_CHANGE_PAYLOADS`]: crate::node::consensus::MAX_VIEW_CHANGE_PAYLOADS
//! [`MAX_VALIDATORS`]: crate::node::consensus::MAX_VALIDATORS
//!
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

/// Base of a frame's deadline: how long a frame's body may take to arrive after its length
/// prefix, plus its length at [`MIN_FRAME_RATE`] ([`frame_deadline`], module docs).
pub const FRAME_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Slowest rate, in bytes per second, at which a frame's body may arrive once its length prefix
/// has (1 MiB/s; module docs): a peer that sends a large frame more slowly is cut off.
pub const MIN_FRAME_RATE: u64 = 1 << 20;

/// Largest piece of a frame's body read at once; the buffer grows as pieces arrive (module
/// docs).
pub const FRAME_CHUNK: usize = 64 << 10;

/// How long the body of a frame of `len` bytes may take to arrive after its length prefix:
/// [`FRAME_TIMEOUT`] plus `len` at [`MIN_FRAME_RATE`].
pub fn frame_deadline(len: usize) -> std::time::Duration {
    FRAME_TIMEOUT + std::time::Duration::from_millis((len as u64).saturating_mul(1000) / MIN_FRAME_RATE)
}

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
/// decoding (or allocating for) any of them. Postcard's length hint is the encoded length when the
/// rest of the frame could hold that many one-byte elements, and none otherwise: a larger claim is
/// refused at the transaction past the limit, or at the frame's end.
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
    /// The body did not arrive within its deadline ([`frame_deadline`]) after the length prefix.
    #[error("frame of {len} bytes: {got} bytes arrived within {within:?}")]
    Stalled {
        /// The length the prefix announced.
        len: usize,
        /// Bytes of the body that had arrived.
        got: usize,
        /// The deadline.
        within: std::time::Duration,
    },
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
/// unread); `Ok(None)` at a clean end of stream. Waits for the length prefix as long as the
/// caller lets it; the body must then arrive within [`frame_deadline`] ([`FrameError::Stalled`]).
pub async fn read_frame_within(r: &mut (impl AsyncRead + Unpin), max: usize) -> Result<Option<Frame>, FrameError> {
    read_frame_by(r, max, frame_deadline).await
}

/// [`read_frame_within`] with the body's deadline given by `deadline` (of the length).
async fn read_frame_by(
    r: &mut (impl AsyncRead + Unpin),
    max: usize,
    deadline: impl Fn(usize) -> std::time::Duration,
) -> Result<Option<Frame>, FrameError> {
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
    let within = deadline(n);
    let mut body = Vec::new();
    let read = tokio::time::timeout(within, read_body(r, n, &mut body)).await;
    match read {
        Ok(read) => read?,
        Err(_) => return Err(FrameError::Stalled { len: n, got: body.len(), within }),
    }
    postcard::from_bytes(&body).map(Some).map_err(FrameError::Malformed)
}

/// Reads `n` bytes into `body` in pieces of at most [`FRAME_CHUNK`], growing it as they arrive
/// (at most doubling, never past `n`): memory follows what was sent, not what was claimed.
async fn read_body(r: &mut (impl AsyncRead + Unpin), n: usize, body: &mut Vec<u8>) -> std::io::Result<()> {
    while body.len() < n {
        let want = (n - body.len()).min(FRAME_CHUNK);
        if body.capacity() - body.len() < want {
            let target = (body.len() + want).max(body.capacity().saturating_mul(2)).min(n);
            body.reserve_exact(target - body.len());
        }
        if (&mut *r).take(want as u64).read_buf(body).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
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
    /// transaction is decoded: a frame claiming 10 million is refused (at the end of its 1000
    /// transactions: postcard announces no length the frame cannot hold), and one of
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

    /// Finding: once its length prefix had arrived a frame's body had no deadline, so a peer (a
    /// validator's connection included, which has no idle timeout) could send a prefix and part
    /// of a body and stop, holding the connection and its buffer for ever. The body must now
    /// arrive within its deadline: here a stalled one is cut off after it (0.3 s in this test),
    /// and one sent in pieces within it is read whole.
    #[tokio::test]
    async fn a_frame_body_must_arrive_within_its_deadline() {
        use std::time::{Duration, Instant};
        assert_eq!(frame_deadline(0), FRAME_TIMEOUT);
        assert_eq!(frame_deadline(MAX_FRAME), FRAME_TIMEOUT + Duration::from_secs(64));
        let within = |_| Duration::from_millis(300);
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&1000u32.to_le_bytes()).await.unwrap();
        a.write_all(&[0; 10]).await.unwrap();
        let started = Instant::now();
        let stalled = read_frame_by(&mut b, MAX_FRAME, within).await;
        assert!(matches!(stalled, Err(FrameError::Stalled { len: 1000, got: 10, .. })), "{stalled:?}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(30));
        // Within the deadline, in pieces: read whole.
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let frame = encode(&Frame::Status("x".repeat(300)));
        let writer = tokio::spawn(async move {
            for piece in frame.chunks(100) {
                a.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            a
        });
        let slow = |_| Duration::from_secs(30);
        assert!(matches!(read_frame_by(&mut b, MAX_FRAME, slow).await, Ok(Some(Frame::Status(s))) if s.len() == 300));
        drop(writer.await.unwrap());
    }

    /// Finding: a frame's body was read into a buffer of the length its prefix claimed, so a
    /// prefix claiming 64 MiB cost 64 MiB at once, whether or not the bytes ever came. The body
    /// is now read in pieces of at most `FRAME_CHUNK` into a buffer that grows as they arrive:
    /// the reader is never offered room for more than a piece at a time.
    #[tokio::test]
    async fn a_frame_body_is_read_in_pieces_as_it_arrives() {
        /// Serves `data`, recording the most room a read offered.
        struct Recording<'a> {
            data: &'a [u8],
            most: usize,
        }
        impl AsyncRead for Recording<'_> {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.most = self.most.max(buf.remaining());
                let n = buf.remaining().min(self.data.len());
                buf.put_slice(&self.data[..n]);
                self.data = &self.data[n..];
                std::task::Poll::Ready(Ok(()))
            }
        }
        let frame = encode(&Frame::Status("x".repeat(MAX_CLIENT_FRAME - 16)));
        let mut r = Recording { data: &frame, most: 0 };
        assert!(matches!(read_frame(&mut r).await, Ok(Some(Frame::Status(s))) if s.len() == MAX_CLIENT_FRAME - 16));
        assert!(r.most <= FRAME_CHUNK, "a read was offered {} bytes of room", r.most);
        // A prefix claiming 64 MiB followed by a few bytes and the end of the stream.
        let mut claim = (MAX_FRAME as u32).to_le_bytes().to_vec();
        claim.extend_from_slice(&[0; 100]);
        let mut r = Recording { data: &claim, most: 0 };
        assert!(
            matches!(read_frame(&mut r).await, Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof)
        );
        assert!(r.most <= FRAME_CHUNK, "a read was offered {} bytes of room", r.most);
    }

    /// Finding: a view change's payload list was decoded in full before the rules allowed it two
    /// payloads, so an identified validator's 64 MiB `Consensus` frame of empty payloads (1 byte
    /// each on the wire, 24 in memory) decoded to 1.6 GB. A frame claiming a million payloads,
    /// every one present, is now malformed on the claim alone (`SerdeDeCustom`, the bound's
    /// refusal), and the stream stays in sync; one with two payloads decodes.
    #[tokio::test]
    async fn a_view_change_claiming_more_than_two_payloads_is_refused_at_decode() {
        use crate::node::consensus::{Signed, ViewChange, ViewChangeBody, MAX_VIEW_CHANGE_PAYLOADS};
        let body = ViewChangeBody { height: 1, new_view: 2, prepared: None, last_vote: None };
        let vc = |payloads: usize| ViewChange {
            signed: Signed { body: body.clone(), signer: 0, signature: Signature([2; 64]) },
            payloads: vec![vec![]; payloads],
        };
        let frame = |payloads: u64| {
            let mut body = postcard::to_stdvec(&Frame::Consensus(Message::ViewChange(vc(0)))).unwrap();
            body.pop(); // the payload count (0), last
            let mut v = payloads;
            while v >= 0x80 {
                body.push(v as u8 | 0x80);
                v >>= 7;
            }
            body.push(v as u8);
            body.resize(body.len() + payloads as usize, 0); // empty payloads
            let mut out = (body.len() as u32).to_le_bytes().to_vec();
            out.extend(body);
            out
        };
        let mut buf = frame(1_000_000);
        buf.extend(encode(&Frame::Tip(9)));
        let mut r = buf.as_slice();
        let first = read_frame(&mut r).await;
        assert!(matches!(first, Err(FrameError::Malformed(postcard::Error::SerdeDeCustom))), "{first:?}");
        assert!(matches!(read_frame(&mut r).await, Ok(Some(Frame::Tip(9)))), "the stream stays in sync");
        let over = frame(MAX_VIEW_CHANGE_PAYLOADS as u64 + 1);
        assert!(matches!(read_frame(&mut over.as_slice()).await, Err(FrameError::Malformed(_))));
        let two = frame(MAX_VIEW_CHANGE_PAYLOADS as u64);
        assert_eq!(two, encode(&Frame::Consensus(Message::ViewChange(vc(2)))));
        let decoded = read_frame(&mut two.as_slice()).await;
        assert!(
            matches!(decoded, Ok(Some(Frame::Consensus(Message::ViewChange(ref v)))) if *v == vc(2)),
            "{decoded:?}"
        );
    }

    /// The module docs' claim: the elements of every vector a frame may carry unbounded take at
    /// most 1.5 times their smallest encoding in memory (the bounded ones, transactions, view
    /// changes, votes and payload lists, take more).
    #[test]
    fn unbounded_vectors_elements_are_at_most_half_again_their_smallest_encoding() {
        use crate::node::ledger::{Lock, OutPoint, Output};
        fn ratio<T: Serialize>(smallest: T) -> f64 {
            std::mem::size_of::<T>() as f64 / postcard::to_stdvec(&smallest).unwrap().len() as f64
        }
        let smallest_output = Output { value: 0, lock: Lock::Ed25519([0; 32]) };
        let ratios = [
            ("payload byte", ratio(0u8)),
            ("transaction id", ratio(Digest([0; 32]))),
            ("input", ratio(OutPoint { tx: Digest([0; 32]), index: 0 })),
            ("output", ratio(smallest_output)),
            ("signature", ratio(Signature([0; 64]))),
        ];
        for (what, r) in ratios {
            assert!(r <= 1.5, "{what}: {r} times its smallest encoding");
        }
    }

    #[tokio::test]
    async fn client_frames_are_limited_to_a_mebibyte() {
        let big = encode(&Frame::Status("x".repeat(MAX_CLIENT_FRAME)));
        assert!(matches!(read_frame_within(&mut big.as_slice(), MAX_CLIENT_FRAME).await, Err(FrameError::TooLarge(_))));
        assert!(matches!(read_frame(&mut big.as_slice()).await, Ok(Some(Frame::Status(_)))));
    }
}
