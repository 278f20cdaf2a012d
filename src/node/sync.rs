//! Catching up: final blocks served to lagging peers through the engine's transfer.
//!
//! # Protocol
//!
//! - A validator learns it is behind from a signed consensus message for a later height
//!   ([`crate::node::consensus::Effect::Ahead`]) or from a peer's [`Frame::Tip`] (sent when that
//!   peer sees our messages for an old height). It then opens a *block connection* to that peer's
//!   listen address, proves who it is with the validators' handshake ([`crate::node::handshake`]),
//!   and sends exactly one frame, [`Frame::FetchBlocks`] `{ from, count }`. Anyone else may send
//!   `FetchBlocks` as the first frame of a connection, without the handshake: final blocks are
//!   public.
//! - The peer answers with the block files of heights `from, from + 1, …`: at most `count` and
//!   [`MAX_FETCH`] of them, only final ones, in order. Each goes as a transfer wire block (the
//!   64-byte [`crate::transfer::BlockHeader`] with the body's length and BLAKE3 digest, then the
//!   body) sent by the engine's [`TransferRouter`] straight from the stored file: the route's
//!   zero-copy backend (`sendfile`, `splice`, io_uring) or `copy`, by size, as
//!   [`TransferRouter::report`] says. Then it closes the connection.
//! - The fetcher receives each block with [`Transport::recv_to_vec`], expecting exactly the next
//!   height (transfer checks the length bound and the digest), decodes the record (height,
//!   payload, commit certificate) and hands it to consensus as a
//!   [`Message::Decided`](crate::node::consensus::Message::Decided). From there it is an ordinary
//!   consensus message: its certificate's signatures go through the node's engine batch and the
//!   core checks the quorum. A peer can therefore waste a fetch, never make us accept a block that
//!   is not final.
//!
//! # Bounds
//!
//! Serving is bounded per request by [`MAX_FETCH`] and runs on tokio's blocking pool so it never
//! stalls consensus. Anonymous block connections share [`MAX_SERVING`] slots; more are refused
//! (closed at once, counted). A socket timeout only bounds each send, so a peer that reads a few
//! bytes now and then can hold an anonymous slot for long — which is why every validator that
//! proved its identity has a slot of its own that anonymous connections cannot take: a lagging
//! validator always reaches the blocks of an honest peer, however many strangers hold the shared
//! slots. A validator runs one fetch at a time, so its new block connection replaces one still
//! being served (which is shut down): a fetch it gave up on cannot keep it out. Both sides time out a stalled socket after
//! [`IO_TIMEOUT`] (every transfer backend honours the socket's timeouts, io_uring included).
//!
//! That timeout bounds each read only, so a fetch also has a deadline for the whole of it,
//! connect and handshake included ([`FETCH_DEADLINE`] by default, `fetch_deadline_ms` in
//! `node.toml`): a peer that sends a byte every few seconds, or blocks consensus refuses at a
//! crawl, holds a fetch until then at most. At the deadline the fetcher shuts the connection
//! down, so the read blocked on it returns and the blocking thread ends, freeing its block
//! buffer (up to [`MAX_BLOCK_BYTES`]); the fetch fails ([`SyncError::Deadline`], counted in
//! [`SyncCounters::fetch_deadlines`]), the blocks that arrived whole before it stay delivered,
//! and the peer is marked as for any failed fetch (below). A fetch whose end is still not
//! reported [`IO_TIMEOUT`] after its deadline is given up for lost: the node may start the next
//! one, and ignores the lost one's result should it come.
//!
//! A node runs one fetch at a time, and judges a fetch by how far it moved the node's height,
//! not by how many blocks arrived (a peer can send well-formed blocks that consensus refuses).
//! A fetch is fruitful when every block it delivered became final here and it delivered what
//! the peer claimed (or a full [`MAX_FETCH`]); after a full one the node asks the same peer
//! again at once while that peer claims more. A fruitless fetch (nothing delivered, a block
//! refused, less than claimed, a failure) drops the peer's claim and marks the peer until one
//! of its fetches is fruitful; a marked peer's new claims start no fetch at once. While the
//! node is behind a height some peer claimed, it tries again after a pause with the unmarked
//! peer that claims the highest height, or, when every such peer is marked, with the one whose
//! fruitless fetch is oldest. So one Byzantine peer can waste one fetch per pause, never keep a
//! lagging validator from its honest peers (see `Node::fetch_done` and `Node::fetch_from_best`
//! in [`crate::node::service`]).
//!
//! Every outcome is counted in [`SyncCounters`] (part of the node's status), including the
//! transfer method that moved the blocks.

use crate::node::consensus::{CommitCert, Height, ValidatorIndex};
use crate::node::handshake::HandshakeError;
use crate::node::net::{encode, Frame};
use crate::transfer::{self, BlockId, BlockStore, Expect, TransferRouter, Transport, MAX_BLOCK_BYTES};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Most blocks one [`Frame::FetchBlocks`] request is answered with.
pub const MAX_FETCH: u64 = 256;

/// A block connection whose peer neither sends nor accepts a byte for this long is dropped.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a catch-up fetch may take by default (`fetch_deadline_ms` in `node.toml`), from its
/// connect to its last block: then its connection is shut down and it fails (module docs). Time
/// for a full answer ([`MAX_FETCH`] blocks) of 1 MiB blocks at about 2 MiB/s; an answer of
/// larger blocks (a payload may reach 24 MiB) can take several fetches: one cut by its deadline
/// after it moved our height keeps its peer's claim, and the next continues from there.
pub const FETCH_DEADLINE: Duration = Duration::from_secs(120);

/// Most anonymous block connections served at once; more are refused (closed at once and
/// counted), so peers that ask for blocks and read slowly cannot take every thread of the
/// runtime's blocking pool, which the node's own catch-up also runs on. Validators that proved
/// their identity are served in slots of their own, beyond these.
pub const MAX_SERVING: u64 = 32;

/// What catching up did, in both directions.
#[derive(Debug, Default, Serialize)]
pub struct SyncCounters {
    /// Fetches started.
    pub fetches: AtomicU64,
    /// Fetches that ended with an error (after delivering what arrived whole).
    pub fetch_errors: AtomicU64,
    /// Fetches cut at their deadline (also counted in `fetch_errors`).
    pub fetch_deadlines: AtomicU64,
    /// Blocks received whole and handed to consensus.
    pub blocks_fetched: AtomicU64,
    /// Wire bytes of those blocks.
    pub bytes_fetched: AtomicU64,
    /// Blocks sent to peers.
    pub blocks_served: AtomicU64,
    /// Wire bytes sent to peers.
    pub bytes_served: AtomicU64,
    /// Block connections that ended with an error.
    pub serve_errors: AtomicU64,
    /// Anonymous block connections being served now.
    pub serving: AtomicU64,
    /// Anonymous block connections refused because [`MAX_SERVING`] were being served.
    pub serves_refused: AtomicU64,
    /// How the last served block moved, e.g. "sendfile" (backend and method).
    pub last_served_via: Mutex<String>,
    /// The last error in either direction, with the peer.
    pub last_error: Mutex<String>,
}

impl SyncCounters {
    pub(crate) fn note_error(&self, what: String) {
        tracing::warn!(error = %what, "block sync");
        if let Ok(mut e) = self.last_error.lock() {
            *e = what;
        }
    }
}

/// What a block server needs: the block files, how far they are final, the transport.
#[derive(Debug)]
pub struct BlockServer {
    /// The node's block files.
    pub blocks: BlockStore,
    /// Number of final blocks (heights below it are served).
    pub final_height: AtomicU64,
    /// The engine's routed transport.
    pub transport: TransferRouter,
    /// Counters for both directions.
    pub counters: SyncCounters,
    /// Each validator's block connection being served now (a serial number of the serve, and a
    /// handle to shut it down when the validator's next one replaces it).
    validators_served: Mutex<BTreeMap<ValidatorIndex, (u64, TcpStream)>>,
    /// Serial numbers of validators' serves.
    serves: AtomicU64,
}

/// Gives a serving slot back when the serve ends, however it ends.
enum Slot<'a> {
    Anonymous(&'a BlockServer),
    /// Validator `.1`'s serve number `.2`.
    Validator(&'a BlockServer, ValidatorIndex, u64),
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        match *self {
            Slot::Anonymous(server) => {
                server.counters.serving.fetch_sub(1, Ordering::AcqRel);
            }
            Slot::Validator(server, v, serial) => {
                let mut served = server.validators_served.lock().unwrap_or_else(|e| e.into_inner());
                // Unless a newer connection of the validator replaced this one.
                if served.get(&v).is_some_and(|(s, _)| *s == serial) {
                    served.remove(&v);
                }
            }
        }
    }
}

impl BlockServer {
    /// A server of the final blocks below `final_height` in `blocks`, sent through `transport`.
    pub fn new(blocks: BlockStore, final_height: Height, transport: TransferRouter) -> Self {
        BlockServer {
            blocks,
            final_height: AtomicU64::new(final_height),
            transport,
            counters: SyncCounters::default(),
            validators_served: Mutex::new(BTreeMap::new()),
            serves: AtomicU64::new(0),
        }
    }

    /// Validators' block connections being served now.
    pub fn validators_serving(&self) -> usize {
        self.validators_served.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A serving slot for `caller` (`None`: anonymous) on `peer`, or `None` when the shared
    /// anonymous slots are taken. A validator always gets its slot: a connection of its own still
    /// being served is shut down (module docs).
    fn slot(&self, caller: Option<ValidatorIndex>, peer: &TcpStream) -> Option<Slot<'_>> {
        let Some(v) = caller else {
            let slot = Slot::Anonymous(self);
            return (self.counters.serving.fetch_add(1, Ordering::AcqRel) < MAX_SERVING).then_some(slot);
        };
        let serial = self.serves.fetch_add(1, Ordering::Relaxed);
        let handle = peer.try_clone().ok()?;
        let replaced = self.validators_served.lock().unwrap_or_else(|e| e.into_inner()).insert(v, (serial, handle));
        if let Some((_, old)) = replaced {
            let _ = old.shutdown(std::net::Shutdown::Both);
        }
        Some(Slot::Validator(self, v, serial))
    }

    /// Answers one [`Frame::FetchBlocks`] on `peer` (blocking; run it off the async runtime).
    /// Returns how many blocks were sent.
    pub fn serve(&self, peer: TcpStream, from: Height, count: u64) -> Result<u64, SyncError> {
        let io = |what: &'static str| move |source| SyncError::Io { what, source };
        peer.set_nonblocking(false).map_err(io("set blocking"))?;
        peer.set_write_timeout(Some(IO_TIMEOUT)).map_err(io("set timeout"))?;
        let end = from.saturating_add(count.min(MAX_FETCH)).min(self.final_height.load(Ordering::Acquire));
        let mut sent = 0;
        for h in from..end {
            let transfer = |source| SyncError::Transfer { height: h, source };
            let block = self.blocks.get(BlockId(h)).map_err(transfer)?;
            let report = self.transport.send_block(&peer, &block).map_err(transfer)?;
            self.counters.blocks_served.fetch_add(1, Ordering::Relaxed);
            self.counters.bytes_served.fetch_add(report.wire_bytes, Ordering::Relaxed);
            if let Ok(mut v) = self.counters.last_served_via.lock() {
                *v = if report.method == report.backend.name() {
                    report.method
                } else {
                    format!("{} ({})", report.backend, report.method)
                };
            }
            sent += 1;
        }
        Ok(sent)
    }

    /// [`BlockServer::serve`] for `caller` (a validator that proved its identity, or `None` for
    /// an anonymous connection), counting a failure instead of returning it. An anonymous
    /// connection is refused (closed) while [`MAX_SERVING`] are being served; a validator's
    /// replaces its own one still being served (module docs).
    pub fn serve_counted(&self, peer: TcpStream, from: Height, count: u64, caller: Option<ValidatorIndex>) {
        let who = match caller {
            Some(v) => format!("validator {v} at {}", peer.peer_addr().map(|a| a.to_string()).unwrap_or_default()),
            None => peer.peer_addr().map(|a| a.to_string()).unwrap_or_default(),
        };
        let Some(_slot) = self.slot(caller, &peer) else {
            self.counters.serves_refused.fetch_add(1, Ordering::Relaxed);
            let why = match caller {
                Some(_) => "its connection could not be duplicated".to_string(),
                None => format!("{MAX_SERVING} anonymous block connections are being served"),
            };
            self.counters.note_error(format!("refused {who}: {why}"));
            return;
        };
        if let Err(e) = self.serve(peer, from, count) {
            self.counters.serve_errors.fetch_add(1, Ordering::Relaxed);
            self.counters.note_error(format!("serving {who} from height {from}: {e}"));
        }
    }

    /// Fetches up to [`MAX_FETCH`] final blocks from height `from` on from the validator at
    /// `addr` (blocking) on an anonymous block connection (for clients that are not validators;
    /// a validator fetches on a connection where it proved its identity, [`BlockServer::fetch_on`]), calling `deliver(height, payload,
    /// cert)` for each as it arrives whole; `deliver` returns false to stop. Returns how many
    /// were delivered.
    pub fn fetch(
        &self,
        addr: SocketAddr,
        from: Height,
        deliver: impl FnMut(Height, Vec<u8>, CommitCert) -> bool,
    ) -> Result<u64, SyncError> {
        match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
            Ok(s) => self.fetch_on(s, addr, from, deliver),
            Err(source) => Err(self.fetch_failed(addr, from, SyncError::Io { what: "connect", source })),
        }
    }

    /// [`BlockServer::fetch`] on `s`, a connection to `addr` already open (and, for a
    /// validator's own slot, past the handshake): sends the request, receives the blocks.
    pub fn fetch_on(
        &self,
        s: TcpStream,
        addr: SocketAddr,
        from: Height,
        mut deliver: impl FnMut(Height, Vec<u8>, CommitCert) -> bool,
    ) -> Result<u64, SyncError> {
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        let result = (|| {
            let io = |what: &'static str| move |source| SyncError::Io { what, source };
            let mut s = s;
            s.set_nonblocking(false).map_err(io("set blocking"))?;
            s.set_read_timeout(Some(IO_TIMEOUT)).map_err(io("set timeout"))?;
            s.set_nodelay(true).map_err(io("set nodelay"))?;
            s.write_all(&encode(&Frame::FetchBlocks { from, count: MAX_FETCH })).map_err(io("send request"))?;
            let mut got = 0;
            loop {
                let h = from + got;
                let expect = Expect { id: Some(BlockId(h)), max_len: MAX_BLOCK_BYTES };
                let (header, body) = match self.transport.recv_to_vec(&s, &expect) {
                    Ok(b) => b,
                    Err(transfer::Error::Closed) => return Ok(got),
                    Err(e) => return Err(SyncError::Transfer { height: h, source: e }),
                };
                let (rh, payload, cert): (Height, Vec<u8>, CommitCert) =
                    postcard::from_bytes(&body).map_err(|e| SyncError::Record { height: h, reason: e.to_string() })?;
                if rh != h {
                    return Err(SyncError::Record { height: h, reason: format!("record says height {rh}") });
                }
                self.counters.blocks_fetched.fetch_add(1, Ordering::Relaxed);
                self.counters.bytes_fetched.fetch_add(header.length + transfer::HEADER_LEN as u64, Ordering::Relaxed);
                got += 1;
                if !deliver(h, payload, cert) || got >= MAX_FETCH {
                    return Ok(got);
                }
            }
        })();
        if let Err(e) = &result {
            self.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
            self.counters.note_error(format!("fetching from {addr} at height {from}: {e}"));
        }
        result
    }

    /// [`BlockServer::fetch_on`] on tokio's blocking pool, cut at `deadline`: if the fetch has not
    /// ended by then, its connection is shut down (so the blocked read returns and the thread and
    /// its block buffer go), the thread is awaited, and the fetch fails with
    /// [`SyncError::Deadline`] (counted), whatever it delivered. A peer that trickles bytes, each
    /// within [`IO_TIMEOUT`], therefore holds a fetch until `deadline` at most.
    pub async fn fetch_until(
        self: std::sync::Arc<Self>,
        s: TcpStream,
        addr: SocketAddr,
        from: Height,
        deadline: tokio::time::Instant,
        deliver: impl FnMut(Height, Vec<u8>, CommitCert) -> bool + Send + 'static,
    ) -> Result<u64, SyncError> {
        let handle = match s.try_clone() {
            Ok(h) => h,
            Err(source) => {
                return Err(self.fetch_failed(addr, from, SyncError::Io { what: "duplicate connection", source }))
            }
        };
        let server = self.clone();
        let mut task = tokio::task::spawn_blocking(move || server.fetch_on(s, addr, from, deliver));
        let joined = |r: Result<Result<u64, SyncError>, tokio::task::JoinError>| {
            r.unwrap_or_else(|e| Err(SyncError::Io { what: "fetch task", source: std::io::Error::other(e) }))
        };
        let Ok(r) = tokio::time::timeout_at(deadline, &mut task).await else {
            let _ = handle.shutdown(std::net::Shutdown::Both);
            let delivered = joined(task.await);
            // fetch_on counted its own error, if it returned one.
            if delivered.is_ok() {
                self.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
            }
            self.counters.fetch_deadlines.fetch_add(1, Ordering::Relaxed);
            let e = SyncError::Deadline;
            self.counters.note_error(format!("fetching from {addr} at height {from}: {e}"));
            return Err(e);
        };
        joined(r)
    }

    /// Counts a fetch from `addr` at `from` that failed before its request went out (connect,
    /// handshake, or its deadline passed first), and returns its error.
    pub fn fetch_failed(&self, addr: SocketAddr, from: Height, e: SyncError) -> SyncError {
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        self.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
        if matches!(e, SyncError::Deadline) {
            self.counters.fetch_deadlines.fetch_add(1, Ordering::Relaxed);
        }
        self.counters.note_error(format!("fetching from {addr} at height {from}: {e}"));
        e
    }
}

/// Why serving or fetching stopped early. Blocks delivered before the error stay delivered.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A socket call failed (connect, request, options).
    #[error("{what}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The block could not be read from the store, or did not move whole and verified.
    #[error("block {height}: {source}")]
    Transfer {
        /// The block's height.
        height: Height,
        /// The transfer error (names the reason: truncated, digest mismatch, unexpected id, …).
        source: transfer::Error,
    },
    /// The fetch did not end by its deadline ([`BlockServer::fetch_until`]); its connection was
    /// shut down.
    #[error("fetch not done by its deadline; connection shut down")]
    Deadline,
    /// The validators' handshake on the block connection failed.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The block arrived whole but its record is not a block of that height.
    #[error("block {height}: bad record: {reason}")]
    Record {
        /// The height expected.
        height: Height,
        /// What is wrong.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::consensus::CommitCert;

    fn server(dir: &std::path::Path, heights: u64) -> BlockServer {
        let blocks = BlockStore::open(dir).unwrap();
        for h in 0..heights {
            let record =
                postcard::to_stdvec(&(h, vec![h as u8; 100 + h as usize], CommitCert { votes: vec![] })).unwrap();
            blocks.put(BlockId(h), &record).unwrap();
        }
        let engine = crate::Engine::new().unwrap();
        BlockServer::new(blocks, heights, engine.transport().unwrap())
    }

    fn listen(srv: std::sync::Arc<BlockServer>) -> SocketAddr {
        listen_as(srv, None)
    }

    /// A block server on a fresh port that serves every connection as `caller`'s.
    fn listen_as(srv: std::sync::Arc<BlockServer>, caller: Option<ValidatorIndex>) -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let s = s.unwrap();
                // The request frame: length prefix + body.
                let mut len = [0u8; 4];
                std::io::Read::read_exact(&mut &s, &mut len).unwrap();
                let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
                std::io::Read::read_exact(&mut &s, &mut body).unwrap();
                let Frame::FetchBlocks { from, count } = postcard::from_bytes(&body).unwrap() else { panic!() };
                srv.serve_counted(s, from, count, caller);
            }
        });
        addr
    }

    #[test]
    fn fetches_final_blocks_in_order_through_transfer() {
        let base = std::env::temp_dir().join(format!("parthenon-sync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let srv = std::sync::Arc::new(server(&base.join("a"), 5));
        let addr = listen(srv.clone());
        let client = server(&base.join("b"), 0);
        let mut got = Vec::new();
        let n = client
            .fetch(addr, 2, |h, p, _| {
                got.push((h, p.len()));
                true
            })
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(got, vec![(2, 102), (3, 103), (4, 104)]);
        assert_eq!(srv.counters.blocks_served.load(Ordering::Relaxed), 3);
        assert!(!srv.counters.last_served_via.lock().unwrap().is_empty());
        // Only final blocks are served: nothing at or above the final height.
        srv.final_height.store(3, Ordering::Release);
        assert_eq!(client.fetch(addr, 3, |_, _, _| true).unwrap(), 0);
        // With MAX_SERVING connections being served, the next is refused (closed, counted), and
        // the slot count comes back once it is. A server thread gives its slot back just after
        // it closes its connection, so wait for the earlier ones first.
        let idle = || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while srv.counters.serving.load(Ordering::Acquire) != 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            srv.counters.serving.load(Ordering::Acquire) == 0
        };
        assert!(idle());
        srv.counters.serving.store(MAX_SERVING, Ordering::Release);
        assert_eq!(client.fetch(addr, 0, |_, _, _| true).unwrap(), 0, "a refused connection delivers nothing");
        assert_eq!(srv.counters.serves_refused.load(Ordering::Relaxed), 1);
        assert_eq!(srv.counters.serving.load(Ordering::Acquire), MAX_SERVING);
        srv.counters.serving.store(0, Ordering::Release);
        assert_eq!(client.fetch(addr, 0, |_, _, _| true).unwrap(), 3);
        assert!(idle(), "every slot is given back");
        let _ = std::fs::remove_dir_all(&base);
    }

    /// Strangers holding every shared slot do not keep a validator from its blocks; each
    /// validator has one slot, which its next connection takes over, and gives it back.
    #[test]
    fn validators_are_served_in_slots_of_their_own() {
        let base = std::env::temp_dir().join(format!("parthenon-sync-slots-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let srv = std::sync::Arc::new(server(&base.join("a"), 3));
        let client = server(&base.join("b"), 0);
        srv.counters.serving.store(MAX_SERVING, Ordering::Release);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (c1, c2) = (TcpStream::connect(l.local_addr().unwrap()).unwrap(), l.accept().unwrap().0);
        assert!(srv.slot(None, &c2).is_none(), "the shared slots are full");
        let first = srv.slot(Some(1), &c2).expect("validator 1's own slot");
        let second = srv.slot(Some(1), &c2).expect("validator 1's next connection replaces the first");
        let mut byte = [0u8; 1];
        assert_eq!(std::io::Read::read(&mut &c1, &mut byte).unwrap(), 0, "the replaced connection is shut down");
        assert!(srv.slot(Some(2), &c2).is_some(), "validator 2 has a slot of its own");
        drop(first);
        assert_eq!(srv.validators_serving(), 1, "the replaced serve ending does not free its successor's slot");
        drop(second);
        assert_eq!(srv.validators_serving(), 0);
        assert_eq!(srv.counters.serving.load(Ordering::Acquire), MAX_SERVING, "a refused stranger gives back nothing");

        let anonymous = listen_as(srv.clone(), None);
        assert_eq!(client.fetch(anonymous, 0, |_, _, _| true).unwrap(), 0, "strangers are refused");
        let validator = listen_as(srv.clone(), Some(1));
        assert_eq!(client.fetch(validator, 0, |_, _, _| true).unwrap(), 3, "validator 1 is served");
        let _ = std::fs::remove_dir_all(&base);
    }

    /// Finding: a fetch had no deadline, only a timeout per read, so a peer that sends a byte
    /// every few seconds held it (its blocking thread and block buffer) for ever. Here the peer
    /// sends the header of a 1 MiB block, then trickles its body a byte every 100 ms: the fetch
    /// fails at its deadline, counted, and its connection is shut down (the peer's writes then
    /// fail), so the blocking thread is gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fetch_that_trickles_ends_at_its_deadline() {
        let base = std::env::temp_dir().join(format!("parthenon-sync-trickle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let client = std::sync::Arc::new(server(&base, 0));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (closed_tx, closed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let started = std::time::Instant::now();
            let header = transfer::BlockHeader { id: BlockId(0), length: 1 << 20, digest: transfer::Digest([0; 32]) };
            let _ = s.write_all(&header.encode());
            // One byte per 100 ms, until the fetcher goes.
            while s.write_all(&[0]).is_ok() {
                std::thread::sleep(Duration::from_millis(100));
                if started.elapsed() > Duration::from_secs(120) {
                    return;
                }
            }
            let _ = closed_tx.send(started.elapsed());
        });
        let s = TcpStream::connect(addr).unwrap();
        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        let delivered = std::sync::Arc::new(AtomicU64::new(0));
        let count = delivered.clone();
        let result = client
            .clone()
            .fetch_until(s, addr, 0, deadline, move |_, _, _| {
                count.fetch_add(1, Ordering::Relaxed);
                true
            })
            .await;
        let took = started.elapsed();
        assert!(matches!(result, Err(SyncError::Deadline)), "{result:?}");
        assert!(took >= Duration::from_millis(500), "ended before its deadline: {took:?}");
        // Generous: the bound is the deadline, not the 10 s socket timeout (nor never).
        assert!(took < Duration::from_secs(8), "ended {took:?} after it started");
        assert_eq!(delivered.load(Ordering::Relaxed), 0);
        assert_eq!(client.counters.fetches.load(Ordering::Relaxed), 1);
        assert_eq!(client.counters.fetch_errors.load(Ordering::Relaxed), 1);
        assert_eq!(client.counters.fetch_deadlines.load(Ordering::Relaxed), 1);
        assert!(client.counters.last_error.lock().unwrap().contains("deadline"));
        // The connection was shut down: the peer's writes fail soon after (the kernel may take
        // a few writes to report the reset).
        let gone = closed.recv_timeout(Duration::from_secs(30));
        assert!(gone.is_ok(), "the peer's writes kept succeeding");
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_block_under_the_wrong_height_is_refused() {
        let base = std::env::temp_dir().join(format!("parthenon-sync-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let srv = server(&base.join("a"), 0);
        // Block file 0 holds a record that claims height 7.
        let record = postcard::to_stdvec(&(7u64, vec![1u8; 10], CommitCert { votes: vec![] })).unwrap();
        srv.blocks.put(BlockId(0), &record).unwrap();
        srv.final_height.store(1, Ordering::Release);
        let addr = listen(std::sync::Arc::new(srv));
        let client = server(&base.join("b"), 0);
        let err = client.fetch(addr, 0, |_, _, _| true).unwrap_err();
        assert!(matches!(err, SyncError::Record { height: 0, .. }), "{err}");
        assert_eq!(client.counters.fetch_errors.load(Ordering::Relaxed), 1);
        let _ = std::fs::remove_dir_all(&base);
    }
}
