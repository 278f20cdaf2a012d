//! A validator's TCP connections: the ones it accepts (validators, clients, block fetchers) and
//! the one it keeps open to each peer.
//!
//! # Inbound
//!
//! Every accepted connection takes a slot, held until both its halves are closed; with no free
//! slot it is closed at once and counted ([`NetCounters::refused_connections`]). Connections
//! from the IP address of a peer validator's configured address take that address's slots first
//! ([`CONNECTIONS_PER_VALIDATOR`] per validator there: its consensus connection, its block
//! connection and reconnections), then a client slot; every other connection takes one of
//! [`MAX_CLIENT_CONNECTIONS`] client slots. So strangers filling the client slots cannot keep a
//! validator from connecting (a TCP source address cannot be forged without the network path; a
//! validator that calls from another address than its configured one competes for client
//! slots). The limits keep a validator's file descriptors well within the limit it raises at
//! start-up ([`raise_fd_limit`]): before that, ~1000 idle connections made its next block file
//! fail to open, and a validator that cannot store a final block stops.
//!
//! A connection that proves a validator's key in the handshake also takes one of that
//! validator's [`CONNECTIONS_PER_VALIDATOR`] permits, wherever it comes from (its address's
//! slots or a client slot). With none free it is closed right after the handshake and counted
//! ([`NetCounters::validator_limit`]); its caller, already welcomed, learns it when its next
//! write fails. So one validator, honest or not, holds at most that many identified connections,
//! the only ones without an idle timeout and allowed full-size frames.
//!
//! A connection that sends no first frame within [`HANDSHAKE_TIMEOUT`] is closed and counted
//! ([`NetCounters::idle_closed`]); one that sends `Hello` but does not complete the handshake in
//! that time is a refused handshake ([`NetCounters::refused_hellos`]). A client connection that
//! has not subscribed is closed when it sends no well-formed frame for [`CLIENT_IDLE_TIMEOUT`]
//! (counted in `idle_closed` too), so a stranger cannot hold a client slot with an idle socket or
//! a trickle of malformed frames; a subscriber waits for notices and is not timed. Only a
//! `Subscribe` the node took makes a subscriber: with [`MAX_SUBSCRIBERS`] subscribed it refuses
//! more, and says so to the connection, which then stays a client like any other (a second
//! `Subscribe` on it changes nothing). Once its length prefix has arrived, every frame's body
//! must arrive within its deadline ([`crate::node::net::frame_deadline`]), on a validator's
//! connection too: one that does not closes the connection, counted
//! ([`NetCounters::stalled_frames`]).
//!
//! Every accepted connection has TCP keepalive ([`KEEPALIVE_IDLE`], then 3 probes 10 s apart), so
//! one whose host died without closing it (a validator's included, which may otherwise stay
//! quiet for ever) ends within about a minute and frees its slot. A failed `accept` (out of file
//! descriptors, say) is logged and retried after [`ACCEPT_BACKOFF`] rather than at once, which
//! spun a core.
//!
//! Frames the node sends a client (commit notices, status answers) wait, encoded, in a queue of
//! at most [`CLIENT_QUEUE`] frames per connection; one the client does not take within
//! [`WRITE_TIMEOUT`] closes the connection ([`NetCounters::write_timeouts`]), which frees the
//! queue. A commit notice is encoded once and shared by every subscriber's queue; one that finds
//! its subscriber's queue full ([`CLIENT_QUEUE`] frames, or
//! [`SUBSCRIBER_BACKLOG`](crate::node::service::SUBSCRIBER_BACKLOG) bytes not yet written) closes
//! that connection at once, freeing its queue ([`NetCounters::lagging_subscribers`]). So a reader
//! slow enough to lag that far, yet fast enough to take each frame within [`WRITE_TIMEOUT`],
//! cannot keep more than that queued for it; before, it was only unsubscribed, and kept its
//! 4096 notices (each its own copy) for as long as it took them. A subscriber has no idle
//! timeout: one that reads nothing is closed once notices fill its queue, or one waits past
//! [`WRITE_TIMEOUT`].
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
//!   submissions and status requests go to the consensus task's client queue, not with
//!   consensus events ([`crate::node::service`]); while that queue is full the connection reads
//!   nothing more.
//!
//! `Consensus` and `Tip` frames on a connection without a completed handshake are dropped and
//! counted ([`NetCounters::unidentified`]); handshake frames after the first frame (a second
//! `Hello` included) close the connection and count as refused. A malformed frame is skipped and
//! counted ([`NetCounters::malformed_frames`]).
//!
//! # Outbound
//!
//! One connection per peer, reopened whenever it fails: connect (given up after
//! [`CONNECT_TIMEOUT`]; again after 100 ms while the peer is unreachable, the frames queued
//! meanwhile dropped), prove this validator's identity ([`handshake::call`]; after a failure,
//! logged, again after [`HANDSHAKE_RETRY`]), then write the frames consensus queues for that peer.
//! The peer's `connected` flag is true only after the proof was sent; frames queued while it is
//! false are dropped, which consensus tolerates.

use crate::node::consensus::{Digest, ValidatorIndex};
use crate::node::handshake::{self, Verifier, HANDSHAKE_TIMEOUT};
use crate::node::net::{encode, read_frame_within, Frame, FrameError, MAX_CLIENT_FRAME, MAX_FRAME};
use crate::node::service::{ClientRequest, Event, NetCounters, MAX_SUBSCRIBERS};
use crate::node::sync::BlockServer;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};

/// How long a validator waits before calling a peer again after a failed handshake.
pub const HANDSHAKE_RETRY: Duration = Duration::from_secs(1);

/// Most inbound connections open at once from addresses that are not a peer validator's
/// (module docs): clients, block fetchers and strangers share these.
pub const MAX_CLIENT_CONNECTIONS: usize = 256;

/// Inbound connections open at once per peer validator configured at an IP address, and
/// identified connections open at once per peer validator index, wherever from (module docs):
/// one consensus connection and one block connection, with room for reconnections whose
/// predecessors are not closed yet.
pub const CONNECTIONS_PER_VALIDATOR: usize = 8;

/// Longest the node waits for a client to take one frame it sends (a commit notice, a status);
/// then it closes the connection, freeing the frames queued for it (module docs).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a client connection that has not subscribed may go without sending a well-formed
/// frame, by default (module docs; `NodeConfig::client_idle_timeout_ms`). A wallet submits far
/// more often; a status poller reconnects.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Silence on an accepted connection after which the kernel starts keepalive probes (module
/// docs).
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// Pause after a failed `accept` before the next one (module docs).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Longest a validator waits for a peer to accept its outbound connection; then it drops what
/// queued for that peer and calls again (module docs).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Most frames queued for one client connection (module docs).
pub const CLIENT_QUEUE: usize = 4096;

/// The frames queued for one client connection, encoded, as its reader and (for a subscriber)
/// the consensus task hold it; the connection's writer takes them (module docs).
#[derive(Clone)]
pub(crate) struct ClientQueue {
    frames: mpsc::Sender<Arc<Vec<u8>>>,
    /// Bytes of the frames queued and not yet written.
    backlog: Arc<AtomicUsize>,
    /// Notified to close the connection: its writer stops, dropping what is queued.
    close: Arc<Notify>,
}

/// What became of a commit notice offered to a subscriber's queue ([`ClientQueue::offer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Queued.
    Queued,
    /// The connection has ended.
    Closed,
    /// The queue was full: the connection is being closed, its queue dropped.
    Lagging,
}

/// The writer's end of a [`ClientQueue`].
struct QueueEnd {
    frames: mpsc::Receiver<Arc<Vec<u8>>>,
    backlog: Arc<AtomicUsize>,
    close: Arc<Notify>,
}

impl ClientQueue {
    fn new() -> (ClientQueue, QueueEnd) {
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let (backlog, close) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
        let end = QueueEnd { frames: rx, backlog: backlog.clone(), close: close.clone() };
        (ClientQueue { frames: tx, backlog, close }, end)
    }

    /// Queues `frame`, waiting for room; false when the connection has ended.
    async fn send(&self, frame: Arc<Vec<u8>>) -> bool {
        let len = frame.len();
        self.backlog.fetch_add(len, Ordering::Relaxed);
        let sent = self.frames.send(frame).await.is_ok();
        if !sent {
            self.backlog.fetch_sub(len, Ordering::Relaxed);
        }
        sent
    }

    /// Queues a commit notice without waiting; when the queue holds [`CLIENT_QUEUE`] frames
    /// already, or frames waiting and with `notice` more than `max_backlog` bytes, tells the
    /// connection to close instead (module docs). A notice larger than `max_backlog` is still
    /// queued for a subscriber that has taken everything else.
    pub(crate) fn offer(&self, notice: &Arc<Vec<u8>>, max_backlog: usize) -> Offer {
        // A writer that ended (a write error, its timeout, the client gone) left its backlog
        // counted: the connection is closed, not lagging.
        if self.frames.is_closed() {
            return Offer::Closed;
        }
        let waiting = self.backlog.load(Ordering::Relaxed);
        if waiting > 0 && waiting.saturating_add(notice.len()) > max_backlog {
            self.close.notify_one();
            return Offer::Lagging;
        }
        // Counted before it is queued: the writer may take it and uncount it at once.
        self.backlog.fetch_add(notice.len(), Ordering::Relaxed);
        let offer = match self.frames.try_send(notice.clone()) {
            Ok(()) => return Offer::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close.notify_one();
                Offer::Lagging
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        };
        self.backlog.fetch_sub(notice.len(), Ordering::Relaxed);
        offer
    }

    /// Whether the connection's writer has ended (its queue dropped).
    pub(crate) fn is_closed(&self) -> bool {
        self.frames.is_closed()
    }
}

/// Inbound connection slots (module docs).
pub(crate) struct Slots {
    clients: Arc<Semaphore>,
    validators: HashMap<IpAddr, Arc<Semaphore>>,
    /// [`CONNECTIONS_PER_VALIDATOR`] per peer validator index, taken by connections that proved
    /// its key, wherever they come from.
    identified: HashMap<ValidatorIndex, Arc<Semaphore>>,
}

impl Slots {
    /// Slots for connections from `peers` (the other validators' indices and configured
    /// addresses) and [`MAX_CLIENT_CONNECTIONS`] for everyone else.
    pub(crate) fn new(peers: impl IntoIterator<Item = (ValidatorIndex, SocketAddr)>) -> Slots {
        let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
        let mut identified = HashMap::new();
        for (v, a) in peers {
            *per_ip.entry(a.ip().to_canonical()).or_default() += CONNECTIONS_PER_VALIDATOR;
            identified.insert(v, Arc::new(Semaphore::new(CONNECTIONS_PER_VALIDATOR)));
        }
        Slots {
            clients: Arc::new(Semaphore::new(MAX_CLIENT_CONNECTIONS)),
            validators: per_ip.into_iter().map(|(ip, n)| (ip, Arc::new(Semaphore::new(n)))).collect(),
            identified,
        }
    }

    /// A slot for a connection from `ip`, if one is free.
    fn admit(&self, ip: IpAddr) -> Option<OwnedSemaphorePermit> {
        self.validators
            .get(&ip.to_canonical())
            .and_then(|s| s.clone().try_acquire_owned().ok())
            .or_else(|| self.clients.clone().try_acquire_owned().ok())
    }

    /// One of validator `v`'s [`CONNECTIONS_PER_VALIDATOR`] permits for a connection that proved
    /// its key, if one is free.
    fn identified(&self, v: ValidatorIndex) -> Option<OwnedSemaphorePermit> {
        self.identified.get(&v).and_then(|s| s.clone().try_acquire_owned().ok())
    }
}

/// What an accepted connection holds until both its halves are closed: its slot, and once its
/// caller proved a validator's key, one of that validator's permits.
struct Held {
    _slot: OwnedSemaphorePermit,
    _validator: Option<OwnedSemaphorePermit>,
}

/// Raises this process's soft limit on open files to its hard limit (module docs); logs what it
/// did or why it could not.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit"),
        },
        Ok((soft, _)) => tracing::debug!(limit = soft, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit"),
    }
}

/// What every accepted connection shares.
pub(crate) struct Inbound {
    /// Events for the consensus task.
    pub tx: mpsc::Sender<Event>,
    /// Client submissions and status requests for the consensus task
    /// ([`crate::node::service::SUBMIT_QUEUE`]).
    pub submits: mpsc::Sender<ClientRequest>,
    /// Network counters.
    pub counters: Arc<NetCounters>,
    /// Serves block connections.
    pub server: Arc<BlockServer>,
    /// Checks `Hello`s.
    pub verifier: Verifier,
    /// Connection slots.
    pub slots: Slots,
    /// How long a client that has not subscribed may stay silent (module docs;
    /// `NodeConfig::client_idle_timeout_ms`, [`CLIENT_IDLE_TIMEOUT`] by default).
    pub client_idle: Duration,
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
        let (stream, remote) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, say: the listener stays ready, so retrying at once
                // would spin.
                tracing::warn!(error = %e, "accept failed; accepting again in {ACCEPT_BACKOFF:?}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(slot) = inbound.slots.admit(remote.ip()) else {
            inbound.counters.refused_connections.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%remote, "connection refused: no free connection slot");
            continue; // dropping the stream closes it
        };
        let _ = stream.set_nodelay(true);
        if let Err(e) = keep_alive(&stream) {
            tracing::debug!(%remote, error = %e, "could not enable TCP keepalive");
        }
        tokio::spawn(connection(stream, remote, inbound.clone(), slot));
    }
}

/// TCP keepalive on an accepted connection (module docs): probes after [`KEEPALIVE_IDLE`] of
/// silence, every 10 s, 3 times, so a peer whose host died (no FIN, no RST) is noticed within
/// about a minute and its slot freed; a quiet live peer's kernel answers the probes.
fn keep_alive(stream: &TcpStream) -> nix::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    setsockopt(stream, sockopt::KeepAlive, &true)?;
    setsockopt(stream, sockopt::TcpKeepIdle, &(KEEPALIVE_IDLE.as_secs() as u32))?;
    setsockopt(stream, sockopt::TcpKeepInterval, &10)?;
    setsockopt(stream, sockopt::TcpKeepCount, &3)
}

/// Counts a refused handshake (at debug level: anyone can cause one).
fn refuse(counters: &NetCounters, remote: SocketAddr, reason: impl std::fmt::Display) {
    counters.refused_hellos.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%remote, %reason, "hello refused");
}

/// Counts a connection closed because a frame's body did not arrive within its deadline
/// ([`crate::node::net::frame_deadline`]).
fn stalled(counters: &NetCounters, remote: SocketAddr, e: &FrameError) {
    counters.stalled_frames.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%remote, error = %e, "closed: a frame did not arrive within its deadline");
}

/// One accepted connection; `slot` is held until both its halves are closed.
pub(crate) async fn connection(
    mut stream: TcpStream,
    remote: SocketAddr,
    inbound: Arc<Inbound>,
    slot: OwnedSemaphorePermit,
) {
    let counters = &inbound.counters;
    let mut identified: Option<ValidatorIndex> = None;
    let mut slot = Held { _slot: slot, _validator: None };
    // The frame that says what the connection is: the first, or the first after the handshake.
    let mut first = loop {
        // A validator that proved its key may stay quiet as long as consensus does, and send
        // full-size frames; every frame's body has its deadline all the same (crate::node::net).
        let (wait, max) =
            if identified.is_some() { (Duration::MAX, MAX_FRAME) } else { (HANDSHAKE_TIMEOUT, MAX_CLIENT_FRAME) };
        let Ok(next) = tokio::time::timeout(wait, read_frame_within(&mut stream, max)).await else {
            counters.idle_closed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%remote, "closed: no first frame within {HANDSHAKE_TIMEOUT:?}");
            return;
        };
        match next {
            Ok(Some(Frame::Hello { validator })) if identified.is_none() => {
                match inbound.verifier.answer(&mut stream, validator).await {
                    Ok(v) => {
                        // At most CONNECTIONS_PER_VALIDATOR connections per validator that
                        // proved its key, wherever they come from (module docs).
                        let Some(permit) = inbound.slots.identified(v) else {
                            counters.validator_limit.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(
                                %remote,
                                validator = v,
                                "closed: {CONNECTIONS_PER_VALIDATOR} connections of this validator are open"
                            );
                            return;
                        };
                        slot._validator = Some(permit);
                        identified = Some(v);
                    }
                    Err(e) => return refuse(counters, remote, e),
                }
            }
            Ok(Some(Frame::FetchBlocks { from, count })) => {
                return serve_blocks(&inbound, stream, from, count, identified, slot);
            }
            Ok(Some(f)) => break Some(f),
            Ok(None) => return,
            Err(FrameError::Malformed(_)) => {
                counters.malformed_frames.fetch_add(1, Ordering::Relaxed);
                break None;
            }
            Err(e @ FrameError::Stalled { .. }) => return stalled(counters, remote, &e),
            Err(_) => return,
        }
    };
    // Full-size frames only from a validator that proved its key (crate::node::net).
    let limit = if identified.is_some() { MAX_FRAME } else { MAX_CLIENT_FRAME };
    let (mut rd, mut wr) = stream.into_split();
    let (queue, mut end) = ClientQueue::new();
    let slot = Arc::new(slot);
    let writer_slot = slot.clone();
    // Dropped when the writer ends: the reader then ends too, closing the connection.
    let (writer_alive, mut writer_ended) = oneshot::channel::<()>();
    let writer_counters = inbound.counters.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (_slot, _alive) = (writer_slot, writer_alive);
        loop {
            // Told to close (a subscriber lagging, module docs): at once, even mid-frame.
            let buf = tokio::select! {
                biased;
                _ = end.close.notified() => break,
                f = end.frames.recv() => match f {
                    Some(f) => f,
                    None => break,
                },
            };
            let written = tokio::select! {
                biased;
                _ = end.close.notified() => break,
                w = tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&buf)) => w,
            };
            match written {
                Ok(Ok(())) => {
                    end.backlog.fetch_sub(buf.len(), Ordering::Relaxed);
                }
                Ok(Err(_)) => break,
                Err(_) => {
                    writer_counters.write_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%remote, "closed: a frame not taken within {WRITE_TIMEOUT:?}");
                    break;
                }
            }
        }
        // Frees the frames still queued for this connection, then closes its write half.
        drop(end);
        drop(wr);
    });
    // Whether it asked for commit notices, and whether the node took it as a subscriber.
    let (mut asked, mut subscribed) = (false, false);
    // When the connection last sent a well-formed frame (module docs: CLIENT_IDLE_TIMEOUT).
    let mut last_frame = tokio::time::Instant::now();
    loop {
        let next = match first.take() {
            Some(f) => Ok(Some(f)),
            None => {
                let deadline = (identified.is_none() && !subscribed).then(|| last_frame + inbound.client_idle);
                let read = async {
                    match deadline {
                        Some(d) => tokio::time::timeout_at(d, read_frame_within(&mut rd, limit)).await.ok(),
                        None => Some(read_frame_within(&mut rd, limit).await),
                    }
                };
                tokio::select! {
                    biased;
                    _ = &mut writer_ended => return,
                    r = read => match r {
                        Some(r) => r,
                        None => {
                            counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%remote, "closed: no client frame within {:?}", inbound.client_idle);
                            return;
                        }
                    },
                }
            }
        };
        let frame = match next {
            Ok(Some(f)) => {
                last_frame = tokio::time::Instant::now();
                f
            }
            Ok(None) => return,
            Err(FrameError::Malformed(_)) => {
                counters.malformed_frames.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e @ FrameError::Stalled { .. }) => return stalled(counters, remote, &e),
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
                if inbound.submits.send(ClientRequest::Submit(txs)).await.is_err() {
                    return;
                }
                continue;
            }
            // One subscription request per connection: a repeated `Subscribe` changes nothing.
            // One the node did not take (MAX_SUBSCRIBERS reached) leaves a client like any
            // other, closed when idle (module docs).
            Frame::Subscribe if asked => continue,
            Frame::Subscribe => {
                asked = true;
                let (taken, answer) = oneshot::channel();
                if inbound.tx.send(Event::Subscribe(queue.clone(), taken)).await.is_err() {
                    return;
                }
                subscribed = answer.await.unwrap_or(false);
                if !subscribed {
                    tracing::debug!(%remote, "subscription refused: {MAX_SUBSCRIBERS} subscribers");
                }
                continue;
            }
            Frame::StatusRequest { at } => {
                let (rtx, rrx) = oneshot::channel();
                if inbound.submits.send(ClientRequest::Status(at, rtx)).await.is_err() {
                    return;
                }
                if let Ok(s) = rrx.await {
                    let _ = queue.send(Arc::new(encode(&Frame::Status(s)))).await;
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
fn serve_blocks(
    inbound: &Inbound,
    stream: TcpStream,
    from: u64,
    count: u64,
    caller: Option<ValidatorIndex>,
    slot: Held,
) {
    let server = inbound.server.clone();
    match stream.into_std() {
        Ok(std) => {
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                server.serve_counted(std, from, count, caller)
            });
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
        // A peer whose host drops our SYNs (down, firewalled) would otherwise keep us in
        // `connect` for the kernel's SYN retries, about two minutes, with frames piling up.
        let mut s = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) | Err(_) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{getsockopt, sockopt};

    #[tokio::test]
    async fn accepted_connections_probe_a_silent_peer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        assert!(!getsockopt(&stream, sockopt::KeepAlive).unwrap());
        keep_alive(&stream).unwrap();
        assert!(getsockopt(&stream, sockopt::KeepAlive).unwrap());
        assert_eq!(getsockopt(&stream, sockopt::TcpKeepIdle).unwrap(), KEEPALIVE_IDLE.as_secs() as u32);
        assert_eq!(getsockopt(&stream, sockopt::TcpKeepInterval).unwrap(), 10);
        assert_eq!(getsockopt(&stream, sockopt::TcpKeepCount).unwrap(), 3);
    }

    /// A notice is queued by reference (one buffer for every subscriber); one that finds the queue
    /// full, in frames or in bytes, tells the connection to close; dropping the writer's end
    /// frees every queued notice.
    #[tokio::test]
    async fn a_full_client_queue_closes_its_connection() {
        async fn closing(end: &QueueEnd) -> bool {
            tokio::time::timeout(Duration::from_secs(10), end.close.notified()).await.is_ok()
        }
        // In bytes: a notice larger than the bound still goes to a queue with nothing waiting.
        let (q, end) = ClientQueue::new();
        assert_eq!(q.offer(&Arc::new(vec![0; 100]), 10), Offer::Queued);
        assert_eq!(q.offer(&Arc::new(vec![0; 1]), 10), Offer::Lagging);
        assert!(closing(&end).await, "not told to close");
        assert_eq!(q.backlog.load(Ordering::Relaxed), 100);
        // In frames.
        let (q, end) = ClientQueue::new();
        let notice = Arc::new(vec![0u8; 1]);
        for _ in 0..CLIENT_QUEUE {
            assert_eq!(q.offer(&notice, usize::MAX), Offer::Queued);
        }
        assert_eq!(Arc::strong_count(&notice), CLIENT_QUEUE + 1, "one buffer, shared");
        assert_eq!(q.offer(&notice, usize::MAX), Offer::Lagging);
        assert!(closing(&end).await, "not told to close");
        assert_eq!(q.backlog.load(Ordering::Relaxed), CLIENT_QUEUE);
        drop(end);
        assert_eq!(Arc::strong_count(&notice), 1, "the queued notices were kept");
        assert!(q.is_closed());
        assert_eq!(q.offer(&notice, usize::MAX), Offer::Closed);
    }

    /// Finding: the outbound `connect` had no timeout, so a peer whose host drops our SYNs (here
    /// a listener whose accept queue is full: the kernel drops them) kept the validator in
    /// `connect` for the kernel's SYN retries, about two minutes, with the frames queued for that
    /// peer growing stale. It now gives up after `CONNECT_TIMEOUT`, drops what queued and calls
    /// again.
    #[tokio::test]
    async fn an_outbound_connect_that_hangs_is_given_up() {
        use std::time::Instant;
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        // Fill the accept queue: the first connection that does not complete shows it full.
        let mut fillers = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await {
                Ok(Ok(s)) => fillers.push(s),
                Ok(Err(e)) => panic!("connect: {e}"),
                Err(_) => break,
            }
            assert!(fillers.len() < 64, "the accept queue never filled");
        }
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let identity = Arc::new(Identity { key, chain: Digest([0; 32]), me: 0 });
        let (tx, rx) = mpsc::channel(4);
        for _ in 0..4 {
            tx.try_send(Arc::new(vec![0u8])).unwrap();
        }
        let connected = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let task = tokio::spawn(outbound(identity, 1, addr, rx, connected.clone()));
        // What queued is dropped once the connect is given up.
        while tx.capacity() < 4 {
            assert!(started.elapsed() < CONNECT_TIMEOUT + Duration::from_secs(30), "the connect was never given up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(started.elapsed() >= CONNECT_TIMEOUT, "the connect failed rather than hung: {:?}", started.elapsed());
        assert!(!connected.load(Ordering::Relaxed));
        task.abort();
        drop(listener);
    }
}
