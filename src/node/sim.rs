//! A seeded deterministic network simulator for the consensus core.
//!
//! Every validator runs a real [`Core`] with a real Ed25519 key; the simulator plays the network
//! (per-message random delay, random drops and a partition until a *heal* time), the clock
//! (timers), the disk (each validator's decided chain and last [`SafetyState`] survive a crash),
//! and optionally one Byzantine validator. All randomness comes from one seed, so a failing seed
//! replays exactly.
//!
//! Channels are authenticated (the simulator delivers a message only from its true sender, and
//! the Byzantine validator signs with its own key only); signature *verification* is the host's
//! job and is exercised by the node's network layer, not here.
//!
//! The simulator checks safety on every decision: two different digests decided at one height by
//! any two validators is recorded as a violation. [`Simulation::run`] reports what happened;
//! tests assert on it.

use crate::node::consensus::*;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// The chain id simulated validators sign for.
pub const SIM_CHAIN: Digest = Digest([0x51; 32]);

/// A small deterministic PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

/// How a Byzantine validator misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Byzantine {
    /// Sends conflicting proposals and conflicting votes to different halves of the network, and
    /// floods proposals with invalid payloads and votes for garbage digests.
    EquivocateAndFlood,
}

/// One simulation scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of validators (stake 1 each unless `stakes` is set).
    pub validators: usize,
    /// Optional per-validator stake.
    pub stakes: Option<Vec<u64>>,
    /// Message delay range in ms (after heal too).
    pub delay_ms: (u64, u64),
    /// Probability of dropping each message before the heal.
    pub drop_rate: f64,
    /// Cut the network into two halves during `[start, end)` ms (before heal).
    pub partition: Option<(u64, u64)>,
    /// From this time on: no drops, no partition.
    pub heal_at_ms: u64,
    /// Crash validator `.0` at `.1` ms and restart it from its persisted state at `.2` ms (each
    /// entry; several validators may be down at once).
    pub crashes: Vec<(ValidatorIndex, u64, u64)>,
    /// A Byzantine validator and its behaviour.
    pub byzantine: Option<(ValidatorIndex, Byzantine)>,
    /// Blocks every honest validator must commit after the heal (and restart).
    pub blocks_after_heal: u64,
    /// Give up (liveness failure) at this simulated time.
    pub deadline_ms: u64,
    /// The cores' base view timeout.
    pub base_timeout_ms: u64,
}

impl Scenario {
    /// A scenario with random delays, drops, a partition and one crash/restart, chosen from `seed`.
    pub fn random(seed: u64, validators: usize) -> Scenario {
        let mut r = Rng::new(seed.wrapping_mul(31).wrapping_add(validators as u64));
        let heal = r.range(2_000, 6_000);
        let p_start = r.range(0, heal / 2);
        let crashed = r.range(0, validators as u64 - 1) as ValidatorIndex;
        let crash_at = r.range(0, heal);
        let restart_at = r.range(crash_at + 100, heal + 2_000);
        let delay_ms = (r.range(1, 5), r.range(10, 80));
        Scenario {
            seed,
            validators,
            stakes: None,
            delay_ms,
            drop_rate: [0.0, 0.05, 0.2, 0.4][r.range(0, 3) as usize],
            partition: r.chance(0.5).then(|| (p_start, r.range(p_start, heal))),
            heal_at_ms: heal,
            crashes: vec![(crashed, crash_at, restart_at)],
            byzantine: None,
            blocks_after_heal: 5,
            deadline_ms: 120_000,
            // From "view changes all the time" to "view changes only on faults".
            base_timeout_ms: r.range(delay_ms.1 / 2, delay_ms.1 * 4),
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Each validator's decided digests in height order.
    pub chains: Vec<Vec<Digest>>,
    /// Safety violations: `(height, digest a, digest b)`.
    pub violations: Vec<(Height, Digest, Digest)>,
    /// Highest height decided by any honest validator when the network healed and the crashed
    /// validator was back.
    pub height_at_heal: u64,
    /// Each validator's view at that moment (a crashed one's persisted view).
    pub views_at_heal: Vec<View>,
    /// Whether every honest validator reached `height_at_heal + blocks_after_heal`.
    pub live: bool,
    /// Simulated time at the end.
    pub end_ms: u64,
    /// Equivocation evidence reported by honest validators, as `(reporter, culprit)`.
    pub evidence: Vec<(ValidatorIndex, ValidatorIndex)>,
    /// Payloads honest validators rejected (sum of [`Dropped::rejected_payloads`]).
    pub rejected_payloads: u64,
    /// Decisions taken by the fast path / slow path (honest validators, own decisions).
    pub fast_decisions: u64,
    /// Decisions by a quorum of commits.
    pub slow_decisions: u64,
    /// Messages delivered.
    pub delivered: u64,
}

/// The application of a simulated validator: payloads are `height ‖ proposer ‖ nonce ‖ flag`;
/// a payload is valid at a height when its height matches and its flag is 1.
#[derive(Debug, Clone)]
pub struct SimApp {
    me: ValidatorIndex,
    nonce: u64,
}

impl SimApp {
    /// A payload with the given validity flag.
    pub fn payload(height: Height, proposer: ValidatorIndex, nonce: u64, valid: bool) -> Vec<u8> {
        let mut p = Vec::with_capacity(19);
        p.extend_from_slice(&height.to_le_bytes());
        p.extend_from_slice(&proposer.to_le_bytes());
        p.extend_from_slice(&nonce.to_le_bytes());
        p.push(u8::from(valid));
        p
    }
}

impl Application for SimApp {
    fn propose(&mut self, height: Height) -> Vec<u8> {
        self.nonce += 1;
        SimApp::payload(height, self.me, self.nonce, true)
    }
    fn validate(&mut self, height: Height, payload: &[u8]) -> bool {
        payload.len() == 19 && payload[..8] == height.to_le_bytes() && payload[18] == 1
    }
}

// Messages are moved, not stored in bulk: boxing the large variant would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Packet {
    Consensus(Message),
    SyncRequest(Height),
}

// Messages are moved, not stored in bulk: boxing the large variant would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Event {
    Deliver { to: ValidatorIndex, from: ValidatorIndex, packet: Packet },
    Timer { node: ValidatorIndex, epoch: u64, timer: Timer },
    Crash(ValidatorIndex),
    Restart(ValidatorIndex),
    Flood,
}

struct Queued {
    at: u64,
    seq: u64,
    event: Event,
}
impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Node {
    core: Option<Core>,
    app: SimApp,
    key: ed25519_dalek::SigningKey,
    chain: Vec<(Vec<u8>, CommitCert)>,
    safety: SafetyState,
    epoch: u64,
}

/// A running simulation.
pub struct Simulation {
    sc: Scenario,
    rng: Rng,
    set: ValidatorSet,
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    now: u64,
    decided: BTreeMap<Height, Digest>,
    out: Outcome,
}

/// Deterministic key of validator `i` in a simulation.
pub fn sim_key(seed: u64, i: usize) -> ed25519_dalek::SigningKey {
    let mut r = Rng::new(seed ^ ((i as u64) << 40));
    let mut b = [0u8; 32];
    for c in b.chunks_mut(8) {
        c.copy_from_slice(&r.next_u64().to_le_bytes());
    }
    ed25519_dalek::SigningKey::from_bytes(&b)
}

impl Simulation {
    /// Sets up validators with deterministic keys.
    pub fn new(sc: Scenario) -> Simulation {
        let keys: Vec<_> = (0..sc.validators).map(|i| sim_key(sc.seed, i)).collect();
        let stakes = sc.stakes.clone().unwrap_or_else(|| vec![1; sc.validators]);
        let set = ValidatorSet::new(
            keys.iter()
                .zip(&stakes)
                .map(|(k, s)| Validator { public_key: k.verifying_key().to_bytes(), stake: *s })
                .collect(),
        )
        .expect("simulated validator set is valid");
        let config = Config { chain: SIM_CHAIN, base_timeout_ms: sc.base_timeout_ms, ..Config::default() };
        let nodes = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| Node {
                core: Some(Core::new(set.clone(), i as ValidatorIndex, Box::new(key.clone()), config)),
                app: SimApp { me: i as ValidatorIndex, nonce: 0 },
                key,
                chain: Vec::new(),
                safety: SafetyState::default(),
                epoch: 0,
            })
            .collect();
        let out = Outcome {
            chains: Vec::new(),
            violations: Vec::new(),
            height_at_heal: 0,
            views_at_heal: Vec::new(),
            live: false,
            end_ms: 0,
            evidence: Vec::new(),
            rejected_payloads: 0,
            fast_decisions: 0,
            slow_decisions: 0,
            delivered: 0,
        };
        Simulation {
            rng: Rng::new(sc.seed),
            sc,
            set,
            nodes,
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            decided: BTreeMap::new(),
            out,
        }
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Queued { at, seq: self.seq, event }));
    }

    fn is_byzantine(&self, i: ValidatorIndex) -> bool {
        self.sc.byzantine.is_some_and(|(b, _)| b == i)
    }

    fn link_up(&mut self, from: ValidatorIndex, to: ValidatorIndex) -> bool {
        if self.now >= self.sc.heal_at_ms {
            return true;
        }
        if let Some((s, e)) = self.sc.partition {
            let half = self.sc.validators / 2;
            if self.now >= s && self.now < e && ((from as usize) < half) != ((to as usize) < half) {
                return false;
            }
        }
        !self.rng.chance(self.sc.drop_rate)
    }

    fn send(&mut self, from: ValidatorIndex, to: ValidatorIndex, packet: Packet) {
        if from == to || !self.link_up(from, to) {
            return;
        }
        let (lo, hi) = self.sc.delay_ms;
        let at = self.now + self.rng.range(lo, hi);
        self.schedule(at, Event::Deliver { to, from, packet });
    }

    fn broadcast(&mut self, from: ValidatorIndex, m: &Message) {
        for to in 0..self.sc.validators as ValidatorIndex {
            if self.is_byzantine(from) {
                let m2 = self.tamper(from, to, m);
                self.send(from, to, Packet::Consensus(m2));
            } else {
                self.send(from, to, Packet::Consensus(m.clone()));
            }
        }
    }

    /// The Byzantine validator shows the upper half of the network a conflicting version of its
    /// proposals and votes.
    fn tamper(&mut self, from: ValidatorIndex, to: ValidatorIndex, m: &Message) -> Message {
        if (to as usize) < self.sc.validators / 2 {
            return m.clone();
        }
        let key = self.nodes[from as usize].key.clone();
        match m {
            Message::Proposal { header, justification, .. } if justification.is_empty() => {
                let payload = SimApp::payload(header.body.height, from, 1_000_000 + self.seq, true);
                let body = ProposalHeader { digest: Digest::of(&payload), ..header.body };
                let header =
                    Signed { body, signer: from, signature: Sign::sign(&key, &body.signing_bytes(&SIM_CHAIN)) };
                Message::Proposal { header, payload, justification: Vec::new() }
            }
            Message::Vote(v) => {
                let body = Vote { digest: Digest([0xee; 32]), ..v.body };
                Message::Vote(Signed {
                    body,
                    signer: from,
                    signature: Sign::sign(&key, &body.signing_bytes(&SIM_CHAIN)),
                })
            }
            other => other.clone(),
        }
    }

    /// Invalid payloads (rejected by every honest application) and garbage votes.
    fn flood(&mut self, from: ValidatorIndex) {
        let Some(core) = &self.nodes[from as usize].core else { return };
        let (h, v) = (core.height(), core.view());
        let key = self.nodes[from as usize].key.clone();
        for dv in 0..3 {
            let view = v + dv;
            if self.set.leader(h, view) == from {
                let payload = SimApp::payload(h, from, self.seq, false);
                let body = ProposalHeader { height: h, view, digest: Digest::of(&payload) };
                let header =
                    Signed { body, signer: from, signature: Sign::sign(&key, &body.signing_bytes(&SIM_CHAIN)) };
                let m = Message::Proposal { header, payload, justification: Vec::new() };
                for to in 0..self.sc.validators as ValidatorIndex {
                    self.send(from, to, Packet::Consensus(m.clone()));
                }
            }
            let body = Vote { kind: VoteKind::Prepare, height: h, view, digest: Digest([dv as u8; 32]) };
            let m = Message::Vote(Signed {
                body,
                signer: from,
                signature: Sign::sign(&key, &body.signing_bytes(&SIM_CHAIN)),
            });
            for to in 0..self.sc.validators as ValidatorIndex {
                self.send(from, to, Packet::Consensus(m.clone()));
            }
        }
    }

    fn input(&mut self, i: ValidatorIndex, input: Input) {
        let node = &mut self.nodes[i as usize];
        let Some(core) = node.core.as_mut() else { return };
        let effects = core.handle(input, &mut node.app);
        for e in effects {
            self.effect(i, e);
        }
    }

    fn effect(&mut self, i: ValidatorIndex, e: Effect) {
        match e {
            Effect::Decide { height, payload, cert } => {
                let d = Digest::of(&payload);
                let honest = !self.is_byzantine(i);
                let node = &mut self.nodes[i as usize];
                assert_eq!(node.chain.len() as u64, height, "decisions are in height order");
                if honest {
                    if cert.is_fast() {
                        self.out.fast_decisions += 1;
                    } else {
                        self.out.slow_decisions += 1;
                    }
                }
                node.chain.push((payload, cert));
                if honest {
                    match self.decided.get(&height) {
                        Some(prev) if *prev != d => self.out.violations.push((height, *prev, d)),
                        Some(_) => {}
                        None => {
                            self.decided.insert(height, d);
                        }
                    }
                }
            }
            Effect::Persist(s) => self.nodes[i as usize].safety = *s,
            Effect::Evidence(ev) => {
                if !self.is_byzantine(i) {
                    self.out.evidence.push((i, ev.culprit()));
                }
            }
            Effect::Broadcast(m) => self.broadcast(i, &m),
            Effect::Send { to, message } => {
                let m = if self.is_byzantine(i) { self.tamper(i, to, &message) } else { message };
                self.send(i, to, Packet::Consensus(m));
            }
            Effect::SetTimer { timer, after_ms } => {
                let epoch = self.nodes[i as usize].epoch;
                self.schedule(self.now + after_ms, Event::Timer { node: i, epoch, timer });
            }
            Effect::Behind { peer, height } => self.serve(i, peer, height),
            // The simulated application never fails to apply a block.
            Effect::Halt { height, reason } => panic!("validator {i} halted at height {height}: {reason}"),
            Effect::Ahead { peer, ours, .. } => self.send(i, peer, Packet::SyncRequest(ours)),
        }
    }

    /// Sends `peer` up to 32 decided blocks from `from`.
    fn serve(&mut self, i: ValidatorIndex, peer: ValidatorIndex, from: Height) {
        let chain = &self.nodes[i as usize].chain;
        let end = chain.len().min(from as usize + 32);
        let msgs: Vec<Message> = chain
            .get(from as usize..end)
            .unwrap_or(&[])
            .iter()
            .map(|(p, c)| Message::Decided { cert: c.clone(), payload: p.clone() })
            .collect();
        for m in msgs {
            self.send(i, peer, Packet::Consensus(m));
        }
    }

    fn honest(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.sc.validators).filter(|i| !self.is_byzantine(*i as ValidatorIndex))
    }

    /// Runs the scenario to completion (liveness target met or deadline).
    pub fn run(mut self) -> Outcome {
        for i in 0..self.sc.validators as ValidatorIndex {
            self.input(i, Input::Start);
        }
        for (c, at, back) in self.sc.crashes.clone() {
            self.schedule(at, Event::Crash(c));
            self.schedule(back, Event::Restart(c));
        }
        if self.sc.byzantine.is_some() {
            self.schedule(50, Event::Flood);
        }
        let settled = self.sc.crashes.iter().map(|c| c.2).fold(self.sc.heal_at_ms, u64::max);
        let mut target: Option<u64> = None;
        while let Some(Reverse(q)) = self.queue.pop() {
            self.now = q.at;
            if self.now > self.sc.deadline_ms {
                break;
            }
            if target.is_none() && self.now >= settled {
                let h = self.honest().map(|i| self.nodes[i].chain.len() as u64).max().unwrap_or(0);
                self.out.height_at_heal = h;
                self.out.views_at_heal =
                    self.nodes.iter().map(|n| n.core.as_ref().map_or(n.safety.view, Core::view)).collect();
                target = Some(h + self.sc.blocks_after_heal);
            }
            match q.event {
                Event::Deliver { to, from, packet } => {
                    self.out.delivered += 1;
                    match packet {
                        Packet::Consensus(message) => self.input(to, Input::Message { from, message }),
                        Packet::SyncRequest(h) => {
                            if self.nodes[to as usize].core.is_some() {
                                self.serve(to, from, h)
                            }
                        }
                    }
                }
                Event::Timer { node, epoch, timer } => {
                    if self.nodes[node as usize].epoch == epoch {
                        self.input(node, Input::Timeout(timer));
                    }
                }
                Event::Crash(i) => {
                    let n = &mut self.nodes[i as usize];
                    n.core = None;
                    n.epoch += 1;
                }
                Event::Restart(i) => {
                    let config =
                        Config { chain: SIM_CHAIN, base_timeout_ms: self.sc.base_timeout_ms, ..Config::default() };
                    let n = &mut self.nodes[i as usize];
                    n.core = Some(Core::restore(
                        self.set.clone(),
                        i,
                        Box::new(n.key.clone()),
                        config,
                        n.safety.clone(),
                        n.chain.len() as u64,
                    ));
                    self.input(i, Input::Start);
                }
                Event::Flood => {
                    if let Some((b, Byzantine::EquivocateAndFlood)) = self.sc.byzantine {
                        self.flood(b);
                    }
                    self.schedule(self.now + 100, Event::Flood);
                }
            }
            if let Some(t) = target {
                if self.honest().all(|i| self.nodes[i].chain.len() as u64 >= t) {
                    self.out.live = true;
                    break;
                }
            }
        }
        self.out.end_ms = self.now;
        self.out.rejected_payloads =
            self.honest().filter_map(|i| self.nodes[i].core.as_ref()).map(|c| c.dropped().rejected_payloads).sum();
        self.out.chains = self.nodes.iter().map(|n| n.chain.iter().map(|(p, _)| Digest::of(p)).collect()).collect();
        self.out
    }
}
