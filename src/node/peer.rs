//! A validator's TCP connections: the ones it accepts (validators, clients, block fetchers) and
//! the one it keeps open to each peer.
//!
//! # Inbound
//!
//! The first frame of an accepted connection says what it is:
//!
//! - `FetchBlocks`: an anonymous block connection, handed to the [`BlockServer`] on tokio's
//!   blocking pool in one of the shared slots ([`crate::node::sync`]).
//! - `Hello { validator }`: a validator connection. The handshake of [`crate::node::handshake`]
//!   runs before anything else is read; only when the caller proved it holds `validator`'s key are
//!   the `Consensus` and `Tip` frames that follow attributed to `validator`. A refused handshake
//!   closes the connection and counts in [`NetCounters::refused_hellos`]. If the frame right
//!   after the handshake is `FetchBlocks`, the connection is that validator's block connection,
//!   served in the slot it has of its own.
//! - anything else: a client connection (`Submit`, `Subscribe`, `StatusRequest`). Its
//!   submissions go to the consensus task's submission queue, not with consensus events
//!   ([`crate::node::service`]); while that queue is full the connection reads nothing more.
//!
//! `Consensus` and `Tip` frames on a connection without a completed handshake are dropped and
//! counted ([`NetCounters::unidentified`]); handshake frames after the first frame (a second
//! `Hello` included) close the connection and count as refused. A malformed frame is skipped and
//! counted ([`NetCounters::malformed_frames`]).
//!
//! # Outbound
//!
//! One connection per peer, reopened whenever it fails: connect (again after 100 ms while the
//! peer is unreachable), prove this validator's identity ([`handshake::call`]; after a failure,
//! logged, again after [`HANDSHAKE_RETRY`]), then write the frames consensus queues for that peer.
//! The peer's `connected` flag is true only after the proof was sent; frames queued while it is
//! false are dropped, which consensus tolerates.

use crate::node::consensus::{Digest, ValidatorIndex};
use crate::node::handshake::{self, Verifier};
use crate::node::ledger::Transaction;
use crate::node::net::{read_frame_within, write_frame, Frame, FrameError, MAX_CLIENT_FRAME, MAX_FRAME};
use crate::node::service::{Event, NetCounters};
use crate::node::sync::BlockServer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// How long a validator waits before calling a peer again after a failed handshake.
pub const HANDSHAKE_RETRY: Duration = Duration::from_secs(1);

/// What every accepted connection shares.
pub(crate) struct Inbound {
    /// Events for the consensus task.
    pub tx: mpsc::Sender<Event>,
    /// Client submissions for the consensus task ([`crate::node::service::SUBMIT_QUEUE`]).
    pub submits: mpsc::Sender<Vec<Transaction>>,
    /// Network counters.
    pub counters: Arc<NetCounters>,
    /// Serves block connections.
    pub server: Arc<BlockServer>,
    /// Checks `Hello`s.
    pub verifier: Verifier,
}

/// Who this validator is when it calls a peer.
pub(crate) struct Identity {
    /// Consensus key: signs the handshake proof.
    pub key: ed25519_dalek::SigningKey,
    /// Chain id (genesis id).
    pub chain: Digest,
    /// This validator's index.
    pub me: ValidatorIndex,
}

/// Accepts connections until the process ends.
pub(crate) async fn accept_loop(listener: TcpListener, inbound: Arc<Inbound>) {
    loop {
        let Ok((stream, remote)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, remote, inbound.clone()));
    }
}

/// Counts a refused handshake (at debug level: anyone can cause one).
fn refuse(counters: &NetCounters, remote: SocketAddr, reason: impl std::fmt::Display) {
    counters.refused_hellos.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%remote, %reason, "hello refused");
}

async fn connection(mut stream: TcpStream, remote: SocketAddr, inbound: Arc<Inbound>) {
    let counters = &inbound.counters;
    let mut identified: Option<ValidatorIndex> = None;
    // The frame that says what the connection is: the first, or the first after the handshake.
    let mut first = loop {
        match read_frame_within(&mut stream, MAX_CLIENT_FRAME).await {
            Ok(Some(Frame::Hello { validator })) if identified.is_none() => {
                match inbound.verifier.answer(&mut stream, validator).await {
                    Ok(v) => identified = Some(v),
                    Err(e) => return refuse(counters, remote, e),
                }
            }
            Ok(Some(Frame::FetchBlocks { from, count })) => {
                return serve_blocks(&inbound, stream, from, count, identified);
            }
            Ok(Some(f)) => break Some(f),
            Ok(None) => return,
            Err(FrameError::Malformed(_)) => {
                counters.malformed_frames.fetch_add(1, Ordering::Relaxed);
                break None;
            }
            Err(_) => return,
        }
    };
    // Full-size frames only from a validator that proved its key (crate::node::net).
    let limit = if identified.is_some() { MAX_FRAME } else { MAX_CLIENT_FRAME };
    let (mut rd, mut wr) = stream.into_split();
    let (otx, mut orx) = mpsc::channel::<Frame>(1 << 12);
    tokio::spawn(async move {
        while let Some(f) = orx.recv().await {
            if write_frame(&mut wr, &f).await.is_err() {
                break;
            }
        }
    });
    let mut subscribed = false;
    loop {
        let next = match first.take() {
            Some(f) => Ok(Some(f)),
            None => read_frame_within(&mut rd, limit).await,
        };
        let frame = match next {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(FrameError::Malformed(_)) => {
                counters.malformed_frames.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(_) => return,
        };
        let ev = match frame {
            // A handshake happens once, at the start of a connection.
            Frame::Hello { .. } | Frame::Challenge { .. } | Frame::HelloProof { .. } | Frame::Welcome => {
                return refuse(counters, remote, "handshake frame after the first frame");
            }
            Frame::Consensus(m) => match identified {
                Some(v) => Event::Peer(v, m),
                None => {
                    counters.unidentified.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            },
            Frame::Tip(h) => match identified {
                Some(v) => Event::Tip(v, h),
                None => {
                    counters.unidentified.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            },
            // Only valid as the first frame (handled above).
            Frame::FetchBlocks { .. } => return,
            Frame::Submit(txs) => {
                if inbound.submits.send(txs).await.is_err() {
                    return;
                }
                continue;
            }
            // One subscription per connection: a repeated `Subscribe` changes nothing.
            Frame::Subscribe if subscribed => continue,
            Frame::Subscribe => {
                subscribed = true;
                Event::Subscribe(otx.clone())
            }
            Frame::StatusRequest { at } => {
                let (rtx, rrx) = oneshot::channel();
                if inbound.tx.send(Event::Status(at, rtx)).await.is_err() {
                    return;
                }
                if let Ok(s) = rrx.await {
                    let _ = otx.send(Frame::Status(s)).await;
                }
                continue;
            }
            Frame::Committed { .. } | Frame::Status(_) => continue,
        };
        if inbound.tx.send(ev).await.is_err() {
            return;
        }
    }
}

/// Hands a block connection to the block server on tokio's blocking pool: `caller` is the
/// validator that proved its identity on it, or `None`.
fn serve_blocks(inbound: &Inbound, stream: TcpStream, from: u64, count: u64, caller: Option<ValidatorIndex>) {
    let server = inbound.server.clone();
    match stream.into_std() {
        Ok(std) => {
            tokio::task::spawn_blocking(move || server.serve_counted(std, from, count, caller));
        }
        Err(e) => tracing::warn!(error = %e, "block connection"),
    }
}

/// Keeps a connection to validator `peer` at `addr` and writes what consensus queues for it.
pub(crate) async fn outbound(
    identity: Arc<Identity>,
    peer: ValidatorIndex,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<Arc<Vec<u8>>>,
    connected: Arc<AtomicBool>,
) {
    use tokio::io::AsyncWriteExt;
    let Identity { key, chain, me } = &*identity;
    loop {
        connected.store(false, Ordering::Relaxed);
        let mut s = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                // Drop what queued up while the peer was unreachable.
                while rx.try_recv().is_ok() {}
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        if let Err(e) = handshake::call(&mut s, key, chain, *me, peer).await {
            tracing::warn!(peer, %addr, error = %e, "handshake failed; calling again later");
            tokio::time::sleep(HANDSHAKE_RETRY).await;
            while rx.try_recv().is_ok() {}
            continue;
        }
        connected.store(true, Ordering::Relaxed);
        loop {
            let Some(buf) = rx.recv().await else { return };
            if s.write_all(&buf).await.is_err() {
                break;
            }
        }
    }
}
