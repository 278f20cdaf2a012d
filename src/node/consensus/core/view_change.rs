//! View change: a validator whose view timed out broadcasts a [`ViewChange`] carrying its
//! highest prepared certificate; a quorum of them moves everyone to the next view, and its leader
//! re-proposes the digest [`super::super::rules::choose`] picks from them (see
//! `docs/consensus.md`).
//!
//! View timers (view synchronisation): a view *starts* for a validator when it accepts the
//! view's proposal, or when validators holding quorum stake have asked for that view or a later
//! one; the view timer counts from that moment. A timer that fires in a view that has not started
//! does not leave it: the validator resends its view change for it and waits. So `f` stake that
//! got ahead waits for the rest instead of leaving each view before the others get there (see
//! the liveness sketch in `docs/consensus.md`).
//!
//! A view change for a view below ours (or for our running view) comes from a lagging
//! validator: it is answered with the new-view proposal of our current view if we hold one,
//! else with our own view change, once per peer and view asked for at this height (a copy, or a
//! lower view, gets nothing), so repeating a cheap message does not buy large replies.
//!
//! A leader restarted after its new-view proposal holds that proposal (persisted) but not its
//! justification (not persisted): it does not resend it on start, where every validator would
//! refuse it, but once it holds view changes of quorum stake for the view it resends the same
//! signed proposal with them as justification, if they justify its digest (else the view ends
//! on its timer). It never signs a second proposal for the view.
//!
//! Memory: a stored view change keeps no payloads. Of the payloads it carries, the core keeps
//! (once, by digest, in its payload table) only those within [`Config::max_payload_bytes`] that
//! hash to a digest its body names, and of those only: its prepared certificate's (one per
//! certificate view: a certificate needs quorum prepares, so that view really ran), and its last
//! vote's if it is the signer's highest view change at this height (replacing, and dropping,
//! the one named by the signer's previous highest). One validator therefore pins at most one
//! last-vote payload, however many view changes it signs. View changes are stored only for
//! views up to [`Config::max_view_ahead`] above the current one, one per validator and view;
//! beyond that only the highest view each validator asked for is kept (one number per
//! validator), which is all the weak-support rule needs.

use super::super::interface::*;
use super::super::rules::{check_justification, check_view_change};
use super::super::types::*;
use super::Core;

impl Core {
    pub(super) fn on_view_change(&mut self, from: ValidatorIndex, mut vc: ViewChange, app: &mut dyn Application) {
        if check_view_change(&self.set, &vc.signed).is_err() {
            self.dropped.invalid += 1;
            return;
        }
        let signer = vc.signed.signer;
        let new_view = vc.signed.body.new_view;
        // Remembered at any distance (one entry per validator), so that validators whose views
        // drifted apart by more than `max_view_ahead` still meet through the weak-support rule.
        if let Some(r) = self.requested.get_mut(usize::from(signer)) {
            if r.is_none_or(|v| v < new_view) {
                *r = Some(new_view);
            }
        }
        if !self.in_view_range(new_view) {
            self.join_weak_support();
            self.start_view_if_quorum();
            return;
        }
        if new_view < self.view || (new_view == self.view && self.active && new_view > 0) {
            // The sender lags in views: help it catch up, once per view it asks for (a copy of
            // its view change, or one for a lower view, would get the same answer again).
            let first = match self.answered.get_mut(usize::from(from)) {
                Some(a) if from != self.me && a.is_none_or(|v| v < new_view) => {
                    *a = Some(new_view);
                    true
                }
                _ => false,
            };
            if first {
                if let Some(nv) = self.new_view.clone() {
                    self.out.push(Effect::Send { to: from, message: nv });
                } else if let Some(mine) = self.my_view_change.clone() {
                    self.out.push(Effect::Send { to: from, message: Message::ViewChange(mine) });
                }
            }
            if new_view < self.view {
                return;
            }
        }
        let b = &vc.signed.body;
        let mut wanted = Vec::with_capacity(2);
        // A prepared certificate's payload is kept per view of the certificate.
        if let Some(p) = &b.prepared {
            let d = *self.cert_digests.entry(p.view()).or_insert(p.digest());
            if d == p.digest() {
                wanted.push(d);
            }
        }
        // A last vote's payload is kept for the signer's highest view change only: a newer one
        // replaces it, so one signer holds at most one such payload however often it sends.
        let mut released = None;
        if let Some(slot) = self.vote_refs.get_mut(usize::from(signer)) {
            if slot.is_none_or(|(v, _)| v <= new_view) {
                let last = b.last_vote.map(|v| v.body.digest);
                released = slot.replace((new_view, last)).and_then(|(_, d)| d).filter(|d| Some(*d) != last);
                wanted.extend(last);
            }
        }
        for p in std::mem::take(&mut vc.payloads) {
            self.learn_payload(p, &wanted);
        }
        if let Some(d) = released {
            self.release_payload(d);
        }
        // Stored without payloads: the wanted ones are in `payloads`, the rest is dropped.
        self.view_changes.entry(new_view).or_default().insert(signer, vc);
        self.join_weak_support();
        self.start_view_if_quorum();
        self.try_new_view(app);
    }

    /// PBFT's f+1 rule: join the highest view that weak support has asked for (the highest `v`
    /// such that validators asking for views `≥ v` hold stake `≥ f + 1`; it includes an honest
    /// request). Runs over the per-validator table of requested views (O(n)).
    fn join_weak_support(&mut self) {
        let mut asks: Vec<(View, u64)> = self
            .requested
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.filter(|v| *v > self.view).map(|v| (v, self.set.stake(i as ValidatorIndex))))
            .collect();
        asks.sort_by_key(|a| std::cmp::Reverse(a.0));
        let mut acc = 0;
        for (v, stake) in asks {
            acc += stake;
            if acc >= self.set.weak() {
                if v > self.view {
                    self.start_view_change(v);
                }
                break;
            }
        }
    }

    /// The view timer fired. A started view (see `Core::started`) is left for the next one; a
    /// view that has not started yet is not left: we resend our view change for it (messages
    /// sent before the network stabilised may have been lost) and wait for quorum stake to ask
    /// for it, or weak stake for a later one.
    pub(super) fn on_view_timer(&mut self) {
        if self.active || self.started {
            self.start_view_change(self.view.saturating_add(1));
        } else {
            self.send_view_change(self.view);
            self.arm_timer();
        }
    }

    /// Whether validators holding quorum stake have asked for `view` or a later one at this
    /// height (`requested`; our own request included).
    fn quorum_asked(&self, view: View) -> bool {
        let asked = self.requested.iter().enumerate().filter(|(_, v)| v.is_some_and(|v| v >= view));
        self.set.stake_of(asked.map(|(i, _)| i as ValidatorIndex)) >= self.set.quorum()
    }

    /// Starts the view timer of the current (inactive) view once quorum stake has asked for it
    /// or a later view: PBFT's rule that a backup's timer for `v` runs from the moment it holds
    /// `2f + 1` view changes. Of that stake at least `f + 1` is honest, so after stabilisation
    /// every honest validator joins and starts the view within two message delays (weak
    /// support, then everyone's requests) instead of at its own, unsynchronised, timeout.
    fn start_view_if_quorum(&mut self) {
        if !self.active && !self.started && self.quorum_asked(self.view) {
            self.started = true;
            self.arm_timer();
        }
    }

    pub(super) fn start_view_change(&mut self, new_view: View) {
        self.view_changes_started += 1;
        self.view = new_view;
        self.active = false;
        // The new-view proposal we hold is for a view we now leave: never answer with it.
        self.new_view = None;
        self.prune_view_changes();
        self.dirty = true;
        if let Some(r) = self.requested.get_mut(usize::from(self.me)) {
            *r = Some(r.map_or(new_view, |v| v.max(new_view)));
        }
        self.started = self.quorum_asked(new_view);
        self.send_view_change(new_view);
        self.arm_timer();
    }

    /// Signs and broadcasts our view change for `new_view` (our current view), with our highest
    /// prepared certificate and last vote and the payloads they name.
    pub(super) fn send_view_change(&mut self, new_view: View) {
        let body = ViewChangeBody {
            height: self.height,
            new_view,
            prepared: self.prepared.clone(),
            last_vote: self.last_vote,
        };
        let mut payloads = Vec::new();
        for d in
            [body.prepared.as_ref().map(|p| p.digest()), body.last_vote.map(|v| v.body.digest)].into_iter().flatten()
        {
            if let Some(p) = self.payloads.get(&d) {
                if !payloads.contains(p) {
                    payloads.push(p.clone());
                }
            }
        }
        let vc = ViewChange { signed: self.sign(body), payloads };
        self.my_view_change = Some(vc.clone());
        self.out.push(Effect::Broadcast(Message::ViewChange(vc.clone())));
        self.pending.push_front((self.me, Message::ViewChange(vc)));
    }

    /// As the leader of the current view, once view changes of quorum stake for it are held:
    /// proposes with them as justification; or, holding our own proposal for the view without
    /// the justification it went out with (restored after a restart: it is not persisted),
    /// resends that same signed proposal with them, if they justify its digest. Never a second
    /// proposal for one view.
    pub(super) fn try_new_view(&mut self, app: &mut dyn Application) {
        if self.set.leader(self.height, self.view) != self.me {
            return;
        }
        let resend = match &self.own_proposal {
            Some((h, _)) if h.body.view == self.view => {
                if self.view == 0 || self.new_view.is_some() {
                    return;
                }
                true
            }
            _ if self.active => return,
            _ => false,
        };
        let Some(vcs) = self.view_changes.get(&self.view) else { return };
        if self.set.stake_of(vcs.keys().copied()) < self.set.quorum() {
            return;
        }
        // Stored view changes carry no payloads (`on_view_change`).
        let justification: Vec<ViewChange> = vcs.values().cloned().collect();
        if !resend {
            return self.propose(justification, app);
        }
        let Some((header, payload)) = self.own_proposal.clone() else { return };
        // Another quorum may force another digest: then the proposal is not resent, and the
        // view ends on its timer.
        if check_justification(&self.set, &header.body, &justification).is_ok() {
            let m = Message::Proposal { header, payload, justification };
            self.new_view = Some(m.clone());
            self.out.push(Effect::Broadcast(m));
        }
    }
}
