//! One validator process: the consensus core, ledger and store driven by tokio.
//!
//! A single consensus task owns the [`Core`], the [`LedgerApp`] and the [`Store`]; network tasks
//! feed it events through a channel. Each tick it drains the pending events, verifies every
//! signature of every consensus message in **one** [`Engine::verify`] batch, drops (and counts)
//! the messages with a bad or unknown signer, feeds the rest to the core, and performs the
//! effects in order: decisions are appended (fsync) and safety state persisted before any message
//! of the same step is sent.
//!
//! Before verification, each message passes cheap checks, and is refused (counted, no signature
//! verified) when the core would drop it anyway: over a structural bound
//! ([`cs::rules::check_shape`]: at most one vote or view change per validator in any list); a
//! proposal or vote for a view the core would drop; a proposal, vote or `Decided` for a height
//! below the core's (the sender, authenticated by its connection, is still told our tip once per
//! height it shows, as the core would: [`Core::lagging`]); a `Decided` whose certificate fails the
//! core's own rule ([`cs::rules::check_commit`]: one kind, height, view and digest, from
//! distinct validators holding a quorum of stake, or all stake for prepares). So a message built
//! to cost many verifications, a certificate of garbage signatures from distinct validators
//! among them, costs only counting it, unless the core could act on it. View changes, and
//! `Decided` with a well-formed quorum certificate at or above our height, are verified.
//! A stopped validator is the answer to anything that makes its state untrustworthy: a failed
//! block append or safety-state write, or a final block its ledger cannot apply
//! ([`Effect::Halt`]).
//!
//! Clients subscribe to commit notices once per connection (at most [`MAX_SUBSCRIBERS`] at a
//! time: the node answers each `Event::Subscribe` with whether it took it, and a connection
//! it refused stays subject to the client idle timeout). Each final block's notice is encoded
//! once and shared by every subscriber's queue; a subscriber whose queue is full (4096 frames,
//! or [`SUBSCRIBER_BACKLOG`] bytes not yet written) has its connection closed and its queue
//! freed rather than buffered for ([`crate::node::peer`]), and a connection
//! that does not take a queued frame within [`WRITE_TIMEOUT`](crate::node::peer::WRITE_TIMEOUT)
//! is closed, its queue freed.
//!
//! Client submissions (`Submit` frames, open to anyone) cost signature verifications, and status
//! requests a JSON report and two index reads, so they do not queue with consensus events: they
//! wait in a queue of their own of at most [`SUBMIT_QUEUE`] requests (a connection whose request
//! does not fit reads nothing more until it does). The consensus task takes consensus events
//! first and at most one client request between two rounds of them, and [`LedgerApp::submit`] verifies at most
//! [`MAX_SUBMIT_SIGNATURES`](crate::node::ledger::app::MAX_SUBMIT_SIGNATURES) signatures of one
//! frame (of its first [`MAX_SUBMIT_TXS`](crate::node::ledger::app::MAX_SUBMIT_TXS)
//! transactions), only for transactions that could enter the mempool: a flood of submissions delays votes and
//! proposals by at most one submission's checks at a time.
//!
//! Connections are [`crate::node::peer`]'s: peers are reached through one outbound TCP connection
//! each (reconnecting; a full queue drops frames, which consensus tolerates). Inbound connections
//! carry validator frames, attributed to a validator only after it proved its key in the `Hello`
//! handshake ([`crate::node::handshake`]), client frames (`Submit`, `Subscribe`,
//! `StatusRequest`), or, when the first frame is `FetchBlocks`, a block connection: final blocks
//! sent through the engine's transfer ([`crate::node::sync`]). A validator that falls behind
//! fetches the blocks it misses that way, one fetch at a time, each ended by its deadline
//! (`NodeConfig::fetch_deadline_ms`), and feeds them to consensus as `Decided` messages.

use crate::node::config::{ConfigError, NodeConfig};
use crate::node::consensus::{self as cs, Core, Effect, Input, Message, Timer, ValidatorIndex};
use crate::node::handshake::{self, Verifier};
use crate::node::ledger::app::LedgerApp;
use crate::node::ledger::{Block, Ledger, Transaction};
use crate::node::metrics::{NodeCollector, NodeGauges};
use crate::node::net::{encode, Frame};
use crate::node::peer::{accept_loop, outbound, raise_fd_limit, ClientQueue, Identity, Inbound, Offer, Slots};
use crate::node::storage::{Store, StoreError};
use crate::node::sync::{BlockServer, SyncError, IO_TIMEOUT, MAX_FETCH};
use crate::sigverify::{Batch, Scheme};
use crate::Engine;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// Why the node stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No block transport (the engine's transfer route failed).
    #[error("block transport: {0}")]
    Transfer(#[from] crate::transfer::Error),
    /// Cannot listen.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: std::net::SocketAddr,
        /// Error.
        source: std::io::Error,
    },
}

/// Network-level counters.
#[derive(Debug, Default, Serialize)]
pub struct NetCounters {
    /// Frames that did not decode.
    pub malformed_frames: AtomicU64,
    /// Consensus and `Tip` frames from a connection that did not complete a `Hello` handshake.
    pub unidentified: AtomicU64,
    /// `Hello` handshakes refused ([`crate::node::handshake::HandshakeError`]), and handshake
    /// frames after a connection's first frame; each closed the connection.
    pub refused_hellos: AtomicU64,
    /// Consensus messages dropped for a bad, unknown or missing signature.
    pub bad_signatures: AtomicU64,
    /// Consensus messages dropped before signature verification because the core would drop
    /// them anyway: over a structural bound ([`cs::rules::check_shape`]), for a view or a height
    /// below ours the core would ignore, or a `Decided` whose certificate fails
    /// [`cs::rules::check_commit`] (module docs).
    pub refused_unverified: AtomicU64,
    /// Frames dropped because a peer queue was full.
    pub send_dropped: AtomicU64,
    /// Consensus messages accepted.
    pub messages_in: AtomicU64,
    /// Inbound connections closed at once for want of a free connection slot
    /// ([`crate::node::peer`]).
    pub refused_connections: AtomicU64,
    /// Inbound connections closed for sending no first frame within
    /// [`HANDSHAKE_TIMEOUT`](crate::node::handshake::HANDSHAKE_TIMEOUT), or (clients that have
    /// not subscribed) no well-formed frame within
    /// [`CLIENT_IDLE_TIMEOUT`](crate::node::peer::CLIENT_IDLE_TIMEOUT) ([`crate::node::peer`]).
    pub idle_closed: AtomicU64,
    /// Client connections closed because a frame for them was not taken within
    /// [`WRITE_TIMEOUT`](crate::node::peer::WRITE_TIMEOUT) ([`crate::node::peer`]).
    pub write_timeouts: AtomicU64,
    /// Subscriber connections closed because a commit notice found their queue full
    /// ([`CLIENT_QUEUE`](crate::node::peer::CLIENT_QUEUE) frames, or [`SUBSCRIBER_BACKLOG`]
    /// bytes not yet written; [`crate::node::peer`]).
    pub lagging_subscribers: AtomicU64,
    /// Connections closed right after their handshake because
    /// [`CONNECTIONS_PER_VALIDATOR`](crate::node::peer::CONNECTIONS_PER_VALIDATOR) connections
    /// of the validator they proved to be were open ([`crate::node::peer`]).
    pub validator_limit: AtomicU64,
    /// Connections closed because a frame's body did not arrive within its deadline
    /// ([`frame_deadline`](crate::node::net::frame_deadline)).
    pub stalled_frames: AtomicU64,
}

/// What the consensus task is fed ([`crate::node::peer`] turns frames into these).
// Messages are moved, not stored in bulk: boxing the large variant would only add allocations.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Event {
    Peer(ValidatorIndex, Message),
    Timer(Timer),
    /// A peer's final height.
    Tip(ValidatorIndex, u64),
    /// Time to try a fetch again (see `Node::fetch_done`).
    RetryFetch,
    /// Fetch number `id`, from `peer` starting at height `from`, when `peer` claimed height
    /// `claimed`, ended: blocks delivered, or why it stopped. Its blocks were queued before it, so
    /// consensus has seen them all.
    FetchDone {
        id: u64,
        peer: ValidatorIndex,
        from: u64,
        claimed: u64,
        result: Result<u64, String>,
    },
    /// A client's commit-notice queue, and where to say whether it was taken (not when
    /// [`MAX_SUBSCRIBERS`] are subscribed).
    Subscribe(ClientQueue, oneshot::Sender<bool>),
    /// Start consensus (see `run`).
    Start,
}

/// A client request for the consensus task, queued apart from consensus events (module docs).
pub(crate) enum ClientRequest {
    /// A `Submit` frame's transactions.
    Submit(Vec<Transaction>),
    /// A `StatusRequest`: the status (with the block digest and chain hash at the height, if
    /// given, or why the index could not give them), answered on the channel.
    Status(Option<u64>, oneshot::Sender<String>),
}

/// What the pre-core checks said about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Not a message, or every signature verified.
    Ok,
    /// A missing, unknown or invalid signature.
    BadSignature,
    /// Refused before verification (shape, view range, certificate stake).
    Refused,
    /// Refused before verification: for a height below the core's ([`Core::lagging`]).
    Lagging,
}

/// Most clients subscribed to commit notices at once (one subscription per connection).
pub const MAX_SUBSCRIBERS: usize = 256;

/// Most bytes queued for one subscriber and not yet written before a commit notice that would
/// add to them closes its connection instead (module docs): some 100 notices of
/// 5000-transaction blocks. Notices are shared between subscribers, so this also bounds the
/// memory that lagging subscribers together hold in notices (plus the one notice a subscriber
/// that has taken everything gets whatever its size).
pub const SUBSCRIBER_BACKLOG: usize = 16 << 20;

/// Most client requests (`Submit` frames and status requests) waiting for the consensus task
/// (module docs).
pub const SUBMIT_QUEUE: usize = 16;

/// Longest a validator waits for its peers before it starts consensus anyway.
const STARTUP_WAIT: Duration = Duration::from_secs(2);

/// Pause before a fetch is tried again after one that delivered nothing or failed.
const FETCH_RETRY: Duration = Duration::from_secs(1);

/// Runs a validator until the process is killed. A bad configuration ([`NodeError::Config`]) is
/// refused first, before any disk, network or device work starts.
pub async fn run(cfg: NodeConfig, engine: Engine) -> Result<(), NodeError> {
    let crate::node::config::Checked { set, key, genesis } = cfg.check()?;
    // Block files, the index, peers and clients all take file descriptors (crate::node::peer).
    raise_fd_limit();
    // A GPU's kernel build and calibration start now, off the handshake and consensus paths.
    engine.warm_up_verify(crate::sigverify::Rules::default());
    let (store, rec) = Store::open(&cfg.data_dir, &genesis)?;
    tracing::info!(index = cfg.index, height = rec.height, "recovered");
    let ledger = Ledger::from_parts(engine.clone(), rec.utxo, rec.height, rec.tip);
    let app = LedgerApp::new(ledger, cfg.index, cfg.max_block_txs, 500_000);
    let config = cs::Config {
        chain: genesis.id(),
        base_timeout_ms: cfg.base_timeout_ms,
        propose_delay_ms: cfg.propose_delay_ms,
        ..cs::Config::default()
    };
    let identity = Arc::new(Identity { key: key.clone(), chain: config.chain, me: cfg.index });
    let core = Core::restore(set.clone(), cfg.index, Box::new(key), config, rec.safety.unwrap_or_default(), rec.height);
    let counters = Arc::new(NetCounters::default());
    let server = Arc::new(BlockServer::new(store.blocks().clone(), rec.height, engine.transport()?));
    tracing::info!(transfer = %server.transport.report(), "block sync");
    let (tx, rx) = mpsc::channel::<Event>(1 << 16);
    let (submits, submitted) = mpsc::channel::<ClientRequest>(SUBMIT_QUEUE);

    let listener =
        TcpListener::bind(cfg.listen).await.map_err(|source| NodeError::Listen { addr: cfg.listen, source })?;
    let inbound = Inbound {
        tx: tx.clone(),
        submits,
        counters: counters.clone(),
        server: server.clone(),
        verifier: Verifier { engine: engine.clone(), set: Arc::new(set.clone()), chain: config.chain, me: cfg.index },
        slots: Slots::new(
            (0..=ValidatorIndex::MAX)
                .zip(&cfg.validators)
                .filter(|(i, _)| *i != cfg.index)
                .map(|(i, v)| (i, v.address)),
        ),
        client_idle: Duration::from_millis(cfg.client_idle_timeout_ms),
    };
    tokio::spawn(accept_loop(listener, Arc::new(inbound)));
    let gauges = Arc::new(NodeGauges::default());
    if let Some(addr) = cfg.metrics {
        let l = TcpListener::bind(addr).await.map_err(|source| NodeError::Listen { addr, source })?;
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(NodeCollector {
            net: counters.clone(),
            server: server.clone(),
            gauges: gauges.clone(),
        }));
        tracing::info!(%addr, "metrics at /metrics");
        tokio::spawn(crate::node::metrics::serve(l, Arc::new(registry)));
    }
    let mut peers = Vec::new();
    let mut connected = Vec::new();
    // The set has at most `MAX_VALIDATORS` (587) validators (`ValidatorSet::new`), so every one
    // gets its index.
    for (peer, v) in (0..=ValidatorIndex::MAX).zip(&cfg.validators) {
        if peer == cfg.index {
            peers.push(None);
            continue;
        }
        let (ptx, prx) = mpsc::channel::<Arc<Vec<u8>>>(4096);
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        tokio::spawn(outbound(identity.clone(), peer, v.address, prx, flag.clone()));
        connected.push(flag);
        peers.push(Some(ptx));
    }
    let recovered_height = rec.height;
    let addrs = cfg.validators.iter().map(|v| v.address).collect();
    let mut node = Node {
        core,
        app,
        store,
        engine,
        peers,
        addrs,
        tx,
        counters,
        server,
        gauges,
        fetching: None,
        fetches: 0,
        fetch_deadline: Duration::from_millis(cfg.fetch_deadline_ms),
        identity,
        tips: vec![0; cfg.validators.len()],
        fruitless: vec![None; cfg.validators.len()],
        retry_pending: false,
        subscribers: Vec::new(),
        subscriber_backlog: SUBSCRIBER_BACKLOG,
        evidence: 0,
        recovered_height,
    };
    // Consensus starts once every peer is reachable, or after STARTUP_WAIT: a proposal or vote
    // sent while a peer is not yet listening is dropped, and the height would then wait a whole
    // view timeout. A restarted validator in a running network finds its peers at once.
    let start_tx = node.tx.clone();
    tokio::spawn(async move {
        let deadline = Instant::now() + STARTUP_WAIT;
        while Instant::now() < deadline && !connected.iter().all(|c| c.load(Ordering::Relaxed)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = start_tx.send(Event::Start).await;
    });
    node.main_loop(rx, submitted).await;
    Ok(())
}

struct Node {
    core: Core,
    app: LedgerApp,
    store: Store,
    engine: Engine,
    peers: Vec<Option<mpsc::Sender<Arc<Vec<u8>>>>>,
    addrs: Vec<std::net::SocketAddr>,
    tx: mpsc::Sender<Event>,
    counters: Arc<NetCounters>,
    server: Arc<BlockServer>,
    gauges: Arc<NodeGauges>,
    /// The number of the fetch in flight and when it started, if one is.
    fetching: Option<(u64, Instant)>,
    /// Fetches started (the next one's number).
    fetches: u64,
    /// Longest a fetch may take (`NodeConfig::fetch_deadline_ms`).
    fetch_deadline: Duration,
    /// Who this validator is when it calls a peer (block connections included).
    identity: Arc<Identity>,
    /// The highest height each peer showed (a `Tip`, or a signed message for it), until a fetch
    /// from that peer was fruitless (see `Node::fetch_done`).
    tips: Vec<u64>,
    /// Per peer, when a fetch from it was last fruitless, until one of its fetches moved our
    /// height by every block it delivered: such a peer is fetched from only when no other peer
    /// claims a height above ours, and not at once on its claims (`Node::fetch_from_best`).
    fruitless: Vec<Option<Instant>>,
    /// A [`Event::RetryFetch`] is on its way.
    retry_pending: bool,
    subscribers: Vec<ClientQueue>,
    /// [`SUBSCRIBER_BACKLOG`] (smaller in tests).
    subscriber_backlog: usize,
    evidence: u64,
    recovered_height: u64,
}

impl Node {
    /// Takes consensus events first, in rounds of up to 4096, and client requests
    /// (`submitted`: submissions and status requests) when none is waiting, or one between two
    /// rounds (module docs).
    async fn main_loop(&mut self, mut rx: mpsc::Receiver<Event>, mut submitted: mpsc::Receiver<ClientRequest>) {
        loop {
            tokio::select! {
                biased;
                first = rx.recv() => {
                    let Some(first) = first else { break };
                    self.round(first, &mut rx);
                    if let Ok(request) = submitted.try_recv() {
                        self.client(request);
                    }
                }
                Some(request) = submitted.recv() => self.client(request),
            }
            self.gauges.view.store(self.core.view(), Ordering::Relaxed);
            self.gauges.mempool.store(self.app.mempool_len() as u64, Ordering::Relaxed);
            self.gauges.evidence.store(self.evidence, Ordering::Relaxed);
            self.gauges.view_changes.store(self.core.view_changes(), Ordering::Relaxed);
        }
    }

    /// One round: `first` and the events waiting behind it (up to 4096 in all), their
    /// consensus signatures verified in one batch.
    fn round(&mut self, first: Event, rx: &mut mpsc::Receiver<Event>) {
        let mut events = vec![first];
        while events.len() < 4096 {
            match rx.try_recv() {
                Ok(e) => events.push(e),
                Err(_) => break,
            }
        }
        let verified = self.verify_messages(&events);
        for (e, verdict) in events.into_iter().zip(verified) {
            match e {
                Event::Peer(from, message) => match verdict {
                    Verdict::Ok => {
                        self.counters.messages_in.fetch_add(1, Ordering::Relaxed);
                        self.step(Input::Message { from, message });
                    }
                    Verdict::BadSignature => {
                        self.counters.bad_signatures.fetch_add(1, Ordering::Relaxed);
                    }
                    Verdict::Refused => {
                        self.counters.refused_unverified.fetch_add(1, Ordering::Relaxed);
                    }
                    Verdict::Lagging => {
                        self.counters.refused_unverified.fetch_add(1, Ordering::Relaxed);
                        if let Some(e) = self.core.lagging(from, message.height()) {
                            self.effect(e);
                        }
                    }
                },
                Event::Timer(t) => self.step(Input::Timeout(t)),
                Event::Start => self.step(Input::Start),
                Event::Tip(peer, h) => self.ahead(peer, h),
                Event::FetchDone { id, peer, from, claimed, result } => {
                    self.fetch_done(id, peer, from, claimed, result)
                }
                Event::RetryFetch => {
                    self.retry_pending = false;
                    self.fetch_from_best();
                }
                Event::Subscribe(s, taken) => {
                    self.subscribers.retain(|s| !s.is_closed());
                    let room = self.subscribers.len() < MAX_SUBSCRIBERS;
                    if room {
                        self.subscribers.push(s);
                    }
                    let _ = taken.send(room);
                }
            }
        }
    }

    /// Answers one client request.
    fn client(&mut self, request: ClientRequest) {
        match request {
            ClientRequest::Submit(txs) => {
                self.app.submit(txs);
            }
            ClientRequest::Status(at, reply) => {
                let _ = reply.send(self.status(at));
            }
        }
    }

    fn step(&mut self, input: Input) {
        let effects = self.core.handle(input, &mut self.app);
        for e in effects {
            self.effect(e);
        }
    }

    fn send(&self, to: ValidatorIndex, f: &Frame) {
        if let Some(Some(p)) = self.peers.get(usize::from(to)) {
            if p.try_send(Arc::new(encode(f))).is_err() {
                self.counters.send_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn effect(&mut self, e: Effect) {
        match e {
            Effect::Decide { height, payload, cert } => {
                let block = Block::decode(&payload).unwrap_or(Block {
                    height,
                    parent: Default::default(),
                    proposer: 0,
                    transactions: Vec::new(),
                });
                if let Err(err) = self.store.append(height, &payload, &cert, &block) {
                    // Without durable storage the validator must not vote on: stop.
                    tracing::error!(height, error = %err, "cannot store a final block; stopping");
                    std::process::exit(1);
                }
                self.server.final_height.store(height + 1, Ordering::Release);
                if !self.subscribers.is_empty() {
                    let txids: Vec<_> = block.transactions.iter().map(|t| t.id()).collect();
                    // Encoded once, shared by every subscriber's queue.
                    let notice = Arc::new(encode(&Frame::Committed { height, txids }));
                    // A subscriber whose queue is full lags by thousands of notices, or by
                    // SUBSCRIBER_BACKLOG bytes: its connection is closed and its queue freed
                    // rather than buffered for (module docs).
                    let (max, counters) = (self.subscriber_backlog, &self.counters);
                    self.subscribers.retain(|s| match s.offer(&notice, max) {
                        Offer::Queued => true,
                        Offer::Closed => false,
                        Offer::Lagging => {
                            counters.lagging_subscribers.fetch_add(1, Ordering::Relaxed);
                            false
                        }
                    });
                }
            }
            Effect::Persist(s) => {
                if let Err(err) = self.store.persist_safety(&s) {
                    tracing::error!(error = %err, "cannot persist consensus state; stopping");
                    std::process::exit(1);
                }
            }
            Effect::Broadcast(m) => {
                if let Message::ViewChange(vc) = &m {
                    // A stall: operators want to see each one (also counted in `view_changes`).
                    let b = &vc.signed.body;
                    tracing::warn!(height = b.height, new_view = b.new_view, "view change");
                }
                let buf = Arc::new(encode(&Frame::Consensus(m)));
                for p in self.peers.iter().flatten() {
                    if p.try_send(buf.clone()).is_err() {
                        self.counters.send_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Effect::Send { to, message } => self.send(to, &Frame::Consensus(message)),
            Effect::SetTimer { timer, after_ms } => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(after_ms)).await;
                    let _ = tx.send(Event::Timer(timer)).await;
                });
            }
            // The peer fetches what it misses (crate::node::sync); tell it how far we are.
            Effect::Behind { peer, .. } => self.send(peer, &Frame::Tip(self.store.height())),
            Effect::Ahead { peer, height, .. } => self.ahead(peer, height),
            Effect::Halt { height, reason } => {
                // The quorum's final block does not apply to this ledger: storing or serving it
                // would spread a block this validator cannot follow. Stop, as on a storage failure.
                tracing::error!(height, %reason, "a final block does not apply; stopping");
                std::process::exit(1);
            }
            Effect::Evidence(ev) => {
                self.evidence += 1;
                tracing::warn!(culprit = ev.culprit(), "equivocation evidence");
            }
        }
    }

    fn status(&self, at: Option<u64>) -> String {
        // Index lookups only: a status request, open to any client, never reads a block file.
        // An index that cannot be read (a corrupt entry, say) is reported as such, not taken for
        // a height that is not final yet (`null`).
        let (digest_at, digest_at_error) = lookup("digest", at.map(|h| self.store.digest(h)));
        let (chain_hash_at, chain_hash_at_error) = lookup("chain hash", at.map(|h| self.store.chain_hash(h)));
        serde_json::json!({
            "index": self.core.me(),
            "height": self.store.height(),
            "recovered_height": self.recovered_height,
            "view": self.core.view(),
            "tip": hex::encode(self.app.ledger().tip().0),
            "digest_at": digest_at,
            "digest_at_error": digest_at_error,
            "chain_hash_at": chain_hash_at,
            "chain_hash_at_error": chain_hash_at_error,
            "mempool": self.app.mempool_len(),
            "rejected_blocks": self.app.rejected_blocks(),
            "ledger_signatures_verified": self.app.ledger().signatures_verified(),
            "evidence": self.evidence,
            "dropped": self.core.dropped(),
            "view_changes": self.core.view_changes(),
            "net": &*self.counters,
            "sync": &self.server.counters,
            "transfer": self.server.transport.report(),
            "sigverify": crate::sigverify::stats(),
            "engine": self.engine.report(),
        })
        .to_string()
    }
}

/// A status lookup (`what` at the requested height) as the status reports it: the digest in hex,
/// or the error; both `None` when no height was asked for or it is not final here.
fn lookup(what: &str, r: Option<Result<Option<cs::Digest>, StoreError>>) -> (Option<String>, Option<String>) {
    match r {
        None | Some(Ok(None)) => (None, None),
        Some(Ok(Some(d))) => (Some(hex::encode(d.0)), None),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "status: cannot read the {what}");
            (None, Some(e.to_string()))
        }
    }
}

mod catch_up;
#[cfg(test)]
mod tests;
mod verify;
