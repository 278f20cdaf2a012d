//! The consensus state machine: [`Core::handle`] takes one [`Input`] and returns the [`Effect`]s
//! the host must perform, in order. No I/O, no clock, no randomness: the same inputs give the same
//! effects, which is what lets [`crate::node::sim`] replay a network from a seed.
//!
//! # Host contract
//!
//! - Feed only messages whose signatures (all of [`Message::signatures`]) verified. A proposal,
//!   vote or [`Message::Decided`] for a height below [`Core::height`] may instead be dropped
//!   unverified (the core would drop it): then tell the core with [`Core::lagging`] and perform
//!   the effect it returns, so the sender still learns that it is behind.
//! - Perform effects in order. [`Effect::Decide`] and [`Effect::Persist`] come before any message
//!   the same call produces: make them durable first, then send. Restarting from the last
//!   persisted [`SafetyState`] ([`Core::restore`]) then never makes the validator contradict a
//!   vote it already sent.
//! - On [`Effect::Halt`] (a final block did not apply to the application) stop the validator:
//!   the core has stopped, and the block must not be stored or served as final.
//! - Sign and verify for one chain: [`Config::chain`] and the id given to
//!   [`Message::signatures`] are the same genesis id.
//! - Deliver [`Effect::SetTimer`] back as [`Input::Timeout`] after the given milliseconds; stale
//!   timers are ignored by the core, so the host never needs to cancel one.
//! - Answer [`Effect::Behind`] by making the final blocks the peer misses available to it, and
//!   [`Effect::Ahead`] by getting them from that peer; they must reach the core as
//!   [`Message::Decided`] (with their commit certificates, verified like any message). The node
//!   moves them with the engine's transfer ([`crate::node::sync`]); the simulation sends
//!   `Decided` messages.

use super::interface::*;
use super::rules::choose;
use super::types::*;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

mod decided;
mod future;
mod payloads;
#[cfg(test)]
mod tests;
mod view_change;
mod voting;

use decided::decided_bytes;
use future::FutureBuffer;

/// One validator's consensus state machine.
pub struct Core {
    set: ValidatorSet,
    me: ValidatorIndex,
    signer: Box<dyn Sign>,
    config: Config,
    // Safety state.
    height: Height,
    view: View,
    active: bool,
    /// Whether the current view has *started* for us: we accepted its proposal (`active`), or
    /// quorum stake has asked for it or a later view (`requested`). The view timer counts from
    /// that moment; until then it only resends our view change (`Core::on_view_timer`).
    started: bool,
    prepared: Option<PreparedCert>,
    last_vote: Option<SignedVote>,
    last_commit: Option<SignedVote>,
    own_proposal: Option<(Signed<ProposalHeader>, Vec<u8>)>,
    // Per-height working state.
    /// Per view (within [`Config::max_view_ahead`] of ours when it arrived), the first header
    /// its leader signed that came with a matching payload, valid or not: a second digest from
    /// that leader for that view is equivocation, reported and never validated, so one leader
    /// costs at most one `validate` per view.
    headers: BTreeMap<View, Signed<ProposalHeader>>,
    /// Per view, the proposal accepted (valid payload and justification); for a view below ours
    /// when the header arrived, the leader's header unchecked (`voting.rs`: it only names what a
    /// quorum of prepares at that view certifies).
    proposals: BTreeMap<View, Signed<ProposalHeader>>,
    /// The proposal that made the current view run (above view 0, with its justification: the
    /// new-view message), without the justification's payloads; cleared when we leave the view.
    new_view: Option<Message>,
    my_view_change: Option<ViewChange>,
    /// Payloads by digest, each kept only while something names it ([`Core::referenced`]): our
    /// own proposal, prepared certificate and votes, an accepted proposal, a prepared
    /// certificate seen in a view change (`cert_digests`), or the last vote of a validator's
    /// highest view change (`vote_refs`). So memory is one payload per view that had a proposal
    /// or a certificate, plus at most one per validator.
    payloads: HashMap<Digest, Vec<u8>>,
    /// Per view, the digest of the first prepared certificate of that view seen in a view
    /// change (a certificate needs quorum prepares, so honest validators were in that view and
    /// only one digest per view can have one).
    cert_digests: BTreeMap<View, Digest>,
    /// Per validator, the view of its highest view change stored at this height and the digest
    /// of the last vote it names: the only last-vote payload kept for that validator.
    vote_refs: Vec<Option<(View, Option<Digest>)>>,
    /// `validate`'s answer per digest; only for digests in `headers`, so at most one per view.
    validity: HashMap<Digest, bool>,
    prepares: BTreeMap<View, BTreeMap<ValidatorIndex, SignedVote>>,
    commits: BTreeMap<View, BTreeMap<ValidatorIndex, SignedVote>>,
    /// View changes for the current view and up to [`Config::max_view_ahead`] above it (those
    /// below are dropped when the view moves: only the current view's can justify a proposal),
    /// their payloads stripped (the wanted ones are in `payloads`).
    view_changes: BTreeMap<View, BTreeMap<ValidatorIndex, ViewChange>>,
    /// Per validator, the highest view it asked for at this height (any view: O(n) memory),
    /// for the weak-support rule.
    requested: Vec<Option<View>>,
    reported: HashSet<(ValidatorIndex, View, u8)>,
    /// Per peer, the highest view of a lagging view change of its that we answered at this
    /// height: each is answered once (a copy, or a lower view, gets nothing).
    answered: Vec<Option<View>>,
    /// Per peer, the highest height below ours it was told about at this height
    /// ([`Effect::Behind`]): it is told again only when it shows a higher one (a message delayed
    /// from an earlier height tells nothing new) or asks for a view change. One number per peer,
    /// whatever heights it signs, so a peer replaying old heights neither grows memory nor draws
    /// an answer per message.
    behind_told: Vec<Option<Height>>,
    /// Per peer, the highest height above ours it was reported at ([`Effect::Ahead`]): it is
    /// reported again only for a higher one (one number per peer, whatever heights it signs).
    ahead_told: Vec<Option<Height>>,
    // Across heights.
    future: FutureBuffer,
    /// Final blocks above our height, each with a checked certificate and the payload it
    /// certifies; bounded by [`Core::buffer_decided`].
    decided_future: BTreeMap<Height, (CommitCert, Vec<u8>)>,
    decided_future_bytes: usize,
    timer_seq: u64,
    dirty: bool,
    pending: VecDeque<(ValidatorIndex, Message)>,
    out: Vec<Effect>,
    dropped: Dropped,
    view_changes_started: u64,
    /// Set when a final block did not apply: the core ignores every input from then on.
    halted: bool,
}

impl Core {
    /// A validator at height 0.
    pub fn new(set: ValidatorSet, me: ValidatorIndex, signer: Box<dyn Sign>, config: Config) -> Core {
        Core::restore(set, me, signer, config, SafetyState::default(), 0)
    }

    /// A validator resuming with `next_height` blocks committed and `state` its last persisted
    /// safety state (ignored unless it is for `next_height`).
    pub fn restore(
        set: ValidatorSet,
        me: ValidatorIndex,
        signer: Box<dyn Sign>,
        config: Config,
        state: SafetyState,
        next_height: Height,
    ) -> Core {
        let mut c = Core {
            set,
            me,
            signer,
            config,
            height: next_height,
            view: 0,
            active: true,
            started: true,
            prepared: None,
            last_vote: None,
            last_commit: None,
            own_proposal: None,
            headers: BTreeMap::new(),
            proposals: BTreeMap::new(),
            new_view: None,
            my_view_change: None,
            payloads: HashMap::new(),
            cert_digests: BTreeMap::new(),
            vote_refs: Vec::new(),
            validity: HashMap::new(),
            prepares: BTreeMap::new(),
            commits: BTreeMap::new(),
            view_changes: BTreeMap::new(),
            requested: Vec::new(),
            reported: HashSet::new(),
            answered: Vec::new(),
            behind_told: Vec::new(),
            ahead_told: Vec::new(),
            future: FutureBuffer::default(),
            decided_future: BTreeMap::new(),
            decided_future_bytes: 0,
            timer_seq: 0,
            dirty: false,
            pending: VecDeque::new(),
            out: Vec::new(),
            dropped: Dropped::default(),
            view_changes_started: 0,
            halted: false,
        };
        c.requested = vec![None; c.set.len()];
        c.vote_refs = vec![None; c.set.len()];
        c.answered = vec![None; c.set.len()];
        c.ahead_told = vec![None; c.set.len()];
        c.behind_told = vec![None; c.set.len()];
        if state.height == next_height {
            c.view = state.view;
            c.active = state.active;
            // Who asked for which view is not persisted: an inactive view starts again once
            // quorum stake is heard asking for it.
            c.started = state.active;
            c.prepared = state.prepared;
            c.last_vote = state.last_vote;
            c.last_commit = state.last_commit;
            c.own_proposal = state.proposal;
            for p in state.payloads {
                c.payloads.insert(Digest::of(&p), p);
            }
            if let Some((h, p)) = &c.own_proposal {
                c.payloads.insert(h.body.digest, p.clone());
                c.headers.insert(h.body.view, *h);
                c.proposals.insert(h.body.view, *h);
            }
        }
        c
    }

    /// The height being decided.
    pub fn height(&self) -> Height {
        self.height
    }
    /// The current view.
    pub fn view(&self) -> View {
        self.view
    }
    /// The configuration (with the chain id every signature names).
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// This validator's index.
    pub fn me(&self) -> ValidatorIndex {
        self.me
    }
    /// The validator set.
    pub fn validators(&self) -> &ValidatorSet {
        &self.set
    }
    /// What was dropped so far.
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// View changes this validator started (timeouts, or joining weak stake), since it started.
    pub fn view_changes(&self) -> u64 {
        self.view_changes_started
    }

    /// The state to persist (also emitted as [`Effect::Persist`] whenever it changes).
    pub fn safety_state(&self) -> SafetyState {
        let mut payloads = Vec::new();
        let mut want: Vec<Digest> = Vec::new();
        if let Some(p) = &self.prepared {
            want.push(p.digest());
        }
        if let Some(v) = &self.last_vote {
            want.push(v.body.digest);
        }
        want.dedup();
        for d in want {
            if let Some(p) = self.payloads.get(&d) {
                payloads.push(p.clone());
            }
        }
        SafetyState {
            height: self.height,
            view: self.view,
            active: self.active,
            prepared: self.prepared.clone(),
            last_vote: self.last_vote,
            last_commit: self.last_commit,
            proposal: self.own_proposal.clone(),
            payloads,
        }
    }

    /// True once a final block did not apply ([`Effect::Halt`]); the core then does nothing.
    pub fn halted(&self) -> bool {
        self.halted
    }

    /// Processes one input; returns the effects in the order they must be performed.
    pub fn handle(&mut self, input: Input, app: &mut dyn Application) -> Vec<Effect> {
        if self.halted {
            return Vec::new();
        }
        match input {
            Input::Start => self.start(app),
            Input::Message { from, message } => self.pending.push_back((from, message)),
            Input::Timeout(t) if t.kind == TimerKind::Propose => {
                if t.height == self.height && self.view == 0 && self.active && self.own_proposal.is_none() {
                    self.propose(Vec::new(), app);
                }
            }
            Input::Timeout(t) => {
                if t.seq == self.timer_seq && t.height == self.height {
                    self.on_view_timer();
                }
            }
        }
        while let Some((from, m)) = self.pending.pop_front() {
            if self.halted {
                self.pending.clear();
                break;
            }
            self.on_message(from, m, app);
        }
        let mut out = std::mem::take(&mut self.out);
        // Durable things first: decisions, evidence, then the safety state, then the network.
        let (mut first, rest): (Vec<Effect>, Vec<Effect>) =
            out.drain(..).partition(|e| matches!(e, Effect::Decide { .. } | Effect::Evidence(_) | Effect::Halt { .. }));
        if self.halted {
            // Decisions before the halt stand (their blocks applied); nothing else is performed:
            // no state to persist, nothing to send.
            return first;
        }
        if self.dirty {
            self.dirty = false;
            first.push(Effect::Persist(Box::new(self.safety_state())));
        }
        first.extend(rest);
        first
    }

    fn start(&mut self, app: &mut dyn Application) {
        self.arm_timer();
        if !self.active {
            // Restored in a view change: say where we are now rather than at the first timeout
            // (up to 32 base timeouts away), since who asked for which view is not persisted and
            // the others may be waiting for our stake to start the view.
            self.send_view_change(self.view);
        }
        if let Some((h, p)) = self.own_proposal.clone() {
            // Resent as it went out. Above view 0 that needs its justification, which is not
            // persisted: after a restart the proposal goes out again only once view changes of
            // quorum stake for the view rebuild one (`Core::try_new_view`); without one every
            // validator would refuse it.
            let justification = match &self.new_view {
                Some(Message::Proposal { justification, .. }) => Some(justification.clone()),
                _ => (self.view == 0).then(Vec::new),
            };
            if let Some(justification) = justification.filter(|_| h.body.view == self.view) {
                self.out.push(Effect::Broadcast(Message::Proposal { header: h, payload: p, justification }));
            }
        } else if self.view == 0 && self.active && self.set.leader(self.height, 0) == self.me {
            self.propose(Vec::new(), app);
        }
        if let Some(v) = self.last_vote.filter(|v| v.body.view == self.view) {
            self.out.push(Effect::Broadcast(Message::Vote(v)));
        }
        if let Some(v) = self.last_commit.filter(|v| v.body.view == self.view) {
            self.out.push(Effect::Broadcast(Message::Vote(v)));
        }
    }

    fn arm_timer(&mut self) {
        self.timer_seq += 1;
        let after_ms = self.config.base_timeout_ms.saturating_mul(1 << self.view.min(5));
        let timer = Timer { height: self.height, view: self.view, seq: self.timer_seq, kind: TimerKind::View };
        self.out.push(Effect::SetTimer { timer, after_ms });
    }

    fn sign<T: Signable>(&self, body: T) -> Signed<T> {
        let signature = self.signer.sign(&body.signing_bytes(&self.config.chain));
        Signed { body, signer: self.me, signature }
    }

    fn enter_height(&mut self, height: Height, app: &mut dyn Application) {
        self.height = height;
        self.view = 0;
        self.active = true;
        self.started = true;
        self.prepared = None;
        self.last_vote = None;
        self.last_commit = None;
        self.own_proposal = None;
        self.headers.clear();
        self.proposals.clear();
        self.new_view = None;
        self.my_view_change = None;
        self.payloads.clear();
        self.cert_digests.clear();
        self.vote_refs.iter_mut().for_each(|r| *r = None);
        self.validity.clear();
        self.prepares.clear();
        self.commits.clear();
        self.view_changes.clear();
        self.requested.iter_mut().for_each(|r| *r = None);
        self.reported.clear();
        self.answered.iter_mut().for_each(|a| *a = None);
        self.behind_told.iter_mut().for_each(|t| *t = None);
        self.dirty = true;
        self.arm_timer();
        if self.set.leader(height, 0) == self.me {
            if self.config.propose_delay_ms == 0 {
                self.propose(Vec::new(), app);
            } else {
                let timer = Timer { height, view: 0, seq: 0, kind: TimerKind::Propose };
                self.out.push(Effect::SetTimer { timer, after_ms: self.config.propose_delay_ms });
            }
        }
        for (from, m) in self.future.take() {
            if m.height() == height {
                self.pending.push_back((from, m));
            }
        }
        self.decided_future.retain(|h, _| *h >= height);
        if let Some((cert, payload)) = self.decided_future.remove(&height) {
            self.pending.push_front((self.me, Message::Decided { cert, payload }));
        }
        self.decided_future_bytes = self.decided_future.values().map(|(c, p)| decided_bytes(c, p)).sum();
    }

    /// Proposes at the current view: the chosen payload if `justification` forces one, else a
    /// fresh one from the application.
    fn propose(&mut self, justification: Vec<ViewChange>, app: &mut dyn Application) {
        let forced = choose(&self.set, justification.iter().map(|vc| &vc.signed));
        let payload = match forced {
            Some(d) => match self.payloads.get(&d) {
                Some(p) => p.clone(),
                None => return, // wait for a view change that carries it
            },
            None => app.propose(self.height),
        };
        let digest = Digest::of(&payload);
        let header = self.sign(ProposalHeader { height: self.height, view: self.view, digest });
        self.own_proposal = Some((header, payload.clone()));
        self.dirty = true;
        let justification: Vec<ViewChange> =
            justification.into_iter().map(|vc| ViewChange { signed: vc.signed, payloads: Vec::new() }).collect();
        let m = Message::Proposal { header, payload, justification };
        self.out.push(Effect::Broadcast(m.clone()));
        self.pending.push_front((self.me, m));
    }

    /// A proposal, vote or `Decided` from `from` for `height`, below ours, that the host dropped
    /// without verifying its signatures (the core drops every message below its height): the
    /// [`Effect::Behind`] the core answers such a message with, if any, so the sender still
    /// learns it is behind (the host contract). `None` for a height not below ours.
    pub fn lagging(&mut self, from: ValidatorIndex, height: Height) -> Option<Effect> {
        if self.halted || height >= self.height {
            return None;
        }
        self.behind(from, height, false)
    }

    /// `from` showed a message for `h`, below our height: [`Effect::Behind`] when that is the
    /// highest such height it showed at our height, or `always` (a view change).
    fn behind(&mut self, from: ValidatorIndex, h: Height, always: bool) -> Option<Effect> {
        let first = match self.behind_told.get_mut(usize::from(from)) {
            Some(told) if told.is_none_or(|t| t < h) => {
                *told = Some(h);
                true
            }
            _ => false,
        };
        (from != self.me && (first || always)).then_some(Effect::Behind { peer: from, height: h })
    }

    fn on_message(&mut self, from: ValidatorIndex, m: Message, app: &mut dyn Application) {
        let h = m.height();
        if h < self.height {
            if let Some(e) = self.behind(from, h, matches!(m, Message::ViewChange(_))) {
                self.out.push(e);
            }
            return;
        }
        if h > self.height {
            if let Message::Decided { cert, payload } = m {
                self.buffer_decided(h, cert, payload);
            } else if h != self.height + 1 || !self.future.push(&self.config, &self.set, from, m) {
                self.dropped.out_of_range += 1;
            }
            if let Some(told) = self.ahead_told.get_mut(usize::from(from)) {
                if told.is_none_or(|t| t < h) {
                    *told = Some(h);
                    self.out.push(Effect::Ahead { peer: from, height: h, ours: self.height });
                }
            }
            return;
        }
        match m {
            Message::Proposal { header, payload, justification } => {
                self.on_proposal(header, payload, justification, app)
            }
            Message::Vote(v) => self.on_vote(v, app),
            Message::ViewChange(vc) => self.on_view_change(from, vc, app),
            Message::Decided { cert, payload } => self.on_decided(cert, payload, app),
        }
    }

    fn in_view_range(&mut self, view: View) -> bool {
        if view > self.view.saturating_add(self.config.max_view_ahead) {
            self.dropped.out_of_range += 1;
            return false;
        }
        true
    }

    /// Drops the view changes for views below the current one.
    fn prune_view_changes(&mut self) {
        self.view_changes = self.view_changes.split_off(&self.view);
    }

    fn report(&mut self, key: (ValidatorIndex, View, u8), e: Evidence) {
        if self.reported.insert(key) {
            self.out.push(Effect::Evidence(e));
        }
    }
}
