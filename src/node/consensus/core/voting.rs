//! Proposals and votes within a view: a proposal accepted (and prepared) only from the view's
//! leader, with a payload that hashes to its digest, a justification that checks and a payload
//! the application accepts; one vote per validator, kind and view (a second, different one is
//! evidence); and the quorums that make a validator prepared, make it commit, and decide
//! (docs/consensus.md, steps 1–4 and 6). The leader's header for a view below ours is recorded
//! unchecked (nothing is voted for it): it only names the digest a quorum of prepares at that
//! view certifies, and such a quorum holds honest prepares, made after the checks.

use super::super::interface::*;
use super::super::rules::check_justification;
use super::super::types::*;
use super::Core;
use std::collections::BTreeMap;

impl Core {
    pub(super) fn on_proposal(
        &mut self,
        header: Signed<ProposalHeader>,
        payload: Vec<u8>,
        justification: Vec<ViewChange>,
        app: &mut dyn Application,
    ) {
        let ProposalHeader { height, view, digest } = header.body;
        if header.signer != self.set.leader(height, view) || Digest::of(&payload) != digest {
            self.dropped.invalid += 1;
            return;
        }
        if !self.in_view_range(view) {
            return;
        }
        // The first header per view is recorded before anything costly: a different digest
        // from the same leader afterwards is equivocation, never validated.
        match self.headers.get(&view) {
            Some(prev) if prev.body.digest != digest => {
                let e = Evidence::Proposals(*prev, header);
                self.report((header.signer, view, 0), e);
                return;
            }
            Some(_) => {}
            None => {
                self.headers.insert(view, header);
            }
        }
        if view < self.view {
            self.proposals.entry(view).or_insert(header);
            return;
        }
        if check_justification(&self.set, &header.body, &justification).is_err() {
            self.dropped.invalid += 1;
            return;
        }
        let valid = *self.validity.entry(digest).or_insert_with(|| app.validate(height, &payload));
        if !valid {
            self.dropped.rejected_payloads += 1;
            return;
        }
        self.proposals.insert(view, header);
        self.payloads.entry(digest).or_insert_with(|| payload.clone());
        if view > self.view || (view == self.view && !self.active) {
            self.view = view;
            self.prune_view_changes();
            self.active = true;
            self.started = true;
            self.dirty = true;
            // Kept to answer lagging validators (and to resend our own): the justification
            // needs no payloads (the proposal carries its own).
            let justification =
                justification.into_iter().map(|vc| ViewChange { signed: vc.signed, payloads: Vec::new() }).collect();
            self.new_view = Some(Message::Proposal { header, payload, justification });
            self.arm_timer();
        }
        if view == self.view && self.active && self.last_vote.is_none_or(|v| v.body.view < view) {
            let vote = self.sign(Vote { kind: VoteKind::Prepare, height, view, digest });
            self.last_vote = Some(vote);
            self.dirty = true;
            self.out.push(Effect::Broadcast(Message::Vote(vote)));
            self.pending.push_front((self.me, Message::Vote(vote)));
        }
        self.progress(view, app);
    }

    pub(super) fn on_vote(&mut self, v: SignedVote, app: &mut dyn Application) {
        if self.set.get(v.signer).is_none() {
            self.dropped.invalid += 1;
            return;
        }
        if !self.in_view_range(v.body.view) {
            return;
        }
        let (map, tag) = match v.body.kind {
            VoteKind::Prepare => (&mut self.prepares, 1),
            VoteKind::Commit => (&mut self.commits, 2),
        };
        let slot = map.entry(v.body.view).or_default();
        match slot.get(&v.signer) {
            Some(prev) if prev.body.digest != v.body.digest => {
                let e = Evidence::Votes(*prev, v);
                self.report((v.signer, v.body.view, tag), e);
                return;
            }
            Some(_) => return,
            None => {
                slot.insert(v.signer, v);
            }
        }
        self.progress(v.body.view, app);
    }

    /// Votes for `digest` among `votes`, with their stake.
    fn tally(&self, votes: Option<&BTreeMap<ValidatorIndex, SignedVote>>, digest: Digest) -> (Vec<SignedVote>, u64) {
        let vs: Vec<SignedVote> =
            votes.map(|m| m.values().filter(|v| v.body.digest == digest).copied().collect()).unwrap_or_default();
        let stake = self.set.stake_of(vs.iter().map(|v| v.signer));
        (vs, stake)
    }

    fn progress(&mut self, view: View, app: &mut dyn Application) {
        let mut digests: Vec<Digest> = Vec::new();
        for m in [self.prepares.get(&view), self.commits.get(&view)].into_iter().flatten() {
            for v in m.values() {
                if !digests.contains(&v.body.digest) {
                    digests.push(v.body.digest);
                }
            }
        }
        for d in digests {
            if !self.payloads.contains_key(&d) {
                continue;
            }
            // Deciding moves to the next height, whose payload table starts empty: take it.
            let (commits, cstake) = self.tally(self.commits.get(&view), d);
            if cstake >= self.set.quorum() {
                let payload = self.payloads.remove(&d).unwrap_or_default();
                return self.decide(CommitCert { votes: commits }, payload, app);
            }
            let (prepares, pstake) = self.tally(self.prepares.get(&view), d);
            if pstake >= self.set.total_stake() {
                let payload = self.payloads.remove(&d).unwrap_or_default();
                return self.decide(CommitCert { votes: prepares }, payload, app);
            }
            let accepted = self.proposals.get(&view).is_some_and(|h| h.body.digest == d);
            if accepted && pstake >= self.set.quorum() {
                if self.prepared.as_ref().is_none_or(|p| p.view() < view) {
                    self.prepared = Some(PreparedCert { votes: prepares });
                    self.dirty = true;
                }
                if view == self.view && self.active && self.last_commit.is_none_or(|c| c.body.view < view) {
                    let vote = self.sign(Vote { kind: VoteKind::Commit, height: self.height, view, digest: d });
                    self.last_commit = Some(vote);
                    self.dirty = true;
                    self.out.push(Effect::Broadcast(Message::Vote(vote)));
                    self.pending.push_front((self.me, Message::Vote(vote)));
                }
            }
        }
    }

    pub(super) fn decide(&mut self, cert: CommitCert, payload: Vec<u8>, app: &mut dyn Application) {
        let height = self.height;
        if let Err(e) = app.commit(height, &payload) {
            // The quorum's block does not apply here: this validator cannot follow the chain.
            // Stop without recording it as decided; the host stops the validator.
            self.halted = true;
            self.pending.clear();
            self.out.push(Effect::Halt { height, reason: e.to_string() });
            return;
        }
        self.out.push(Effect::Decide { height, payload, cert });
        // Messages still queued for this height are moot.
        self.pending.retain(|(_, m)| m.height() != height);
        self.enter_height(height + 1, app);
    }
}
