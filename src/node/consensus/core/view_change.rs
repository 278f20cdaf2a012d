//! View change: a validator whose view timed out broadcasts a [`ViewChange`] carrying its
//! highest prepared certificate; a quorum of them moves everyone to the next view, and its leader
//! re-proposes the digest [`super::super::rules::choose`] picks from them (see
//! `docs/consensus.md`).

use super::super::interface::*;
use super::super::rules::check_view_change;
use super::super::types::*;
use super::Core;
use std::collections::BTreeMap;

impl Core {
    pub(super) fn on_view_change(&mut self, from: ValidatorIndex, vc: ViewChange, app: &mut dyn Application) {
        let b = &vc.signed.body;
        if check_view_change(&self.set, &vc.signed).is_err() {
            self.dropped.invalid += 1;
            return;
        }
        let new_view = b.new_view;
        if !self.in_view_range(new_view) {
            return;
        }
        if new_view < self.view || (new_view == self.view && self.active && new_view > 0) {
            // The sender lags in views: help it catch up.
            if from != self.me {
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
        let mut wanted = Vec::new();
        if let Some(p) = &b.prepared {
            wanted.push(p.digest());
        }
        if let Some(v) = &b.last_vote {
            wanted.push(v.body.digest);
        }
        for p in &vc.payloads {
            self.learn_payload(p, &wanted);
        }
        let signer = vc.signed.signer;
        self.view_changes.entry(new_view).or_default().insert(signer, vc);

        // f+1 rule: join the highest view that weak support has asked for.
        let mut highest: BTreeMap<ValidatorIndex, View> = BTreeMap::new();
        for (v, m) in self.view_changes.range(self.view + 1..) {
            for s in m.keys() {
                highest.insert(*s, *v);
            }
        }
        let mut asks: Vec<(View, u64)> = highest.iter().map(|(s, v)| (*v, self.set.stake(*s))).collect();
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
        self.try_new_view(app);
    }

    pub(super) fn start_view_change(&mut self, new_view: View) {
        self.view_changes_started += 1;
        self.view = new_view;
        self.active = false;
        self.dirty = true;
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
        self.arm_timer();
    }

    pub(super) fn try_new_view(&mut self, app: &mut dyn Application) {
        if self.active || self.set.leader(self.height, self.view) != self.me {
            return;
        }
        if self.own_proposal.as_ref().is_some_and(|(h, _)| h.body.view == self.view) {
            return;
        }
        let Some(vcs) = self.view_changes.get(&self.view) else { return };
        if self.set.stake_of(vcs.keys().copied()) < self.set.quorum() {
            return;
        }
        let justification: Vec<ViewChange> = vcs.values().cloned().collect();
        self.propose(justification, app);
    }
}
