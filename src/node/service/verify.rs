//! Which consensus messages a round verifies: the cheap refusals first (shape, view range, what
//! the core would drop at its height), then one engine batch for the signatures of the rest (see
//! the module docs of [`super`]).

use super::*;

impl Node {
    /// Whether a message may need the core: false for a proposal or vote at the core's height
    /// for a view beyond [`cs::Config::max_view_ahead`] (the core drops those). View changes
    /// always pass: the core remembers the highest view each validator asked for.
    pub(super) fn in_view_range(&self, m: &Message) -> bool {
        let (height, view) = match m {
            Message::Proposal { header, .. } => (header.body.height, header.body.view),
            Message::Vote(v) => (v.body.height, v.body.view),
            Message::ViewChange(_) | Message::Decided { .. } => return true,
        };
        height != self.core.height() || view <= self.core.view().saturating_add(self.core.config().max_view_ahead)
    }

    /// Why `m` is refused before its signatures are verified, if it is: the core would drop it
    /// (module docs). Heights only grow, so a message below the core's height when its round
    /// starts is still below it when the core would take it, and the core's answer to such a
    /// message, `Behind`, is kept ([`Verdict::Lagging`]). The one answer given up is the core's
    /// `Ahead` for a `Decided` above our height whose certificate fails: no honest validator
    /// sends one, and a peer claims heights with `Tip` frames anyway.
    pub(super) fn refusal(&self, m: &Message) -> Option<Verdict> {
        let set = self.core.validators();
        if cs::rules::check_shape(set, m).is_err() || !self.in_view_range(m) {
            return Some(Verdict::Refused);
        }
        match m {
            Message::ViewChange(_) => None,
            _ if m.height() < self.core.height() => Some(Verdict::Lagging),
            Message::Decided { cert, .. } if cs::rules::check_commit(set, cert).is_err() => Some(Verdict::Refused),
            _ => None,
        }
    }

    /// One engine batch for all signatures of all consensus messages in `events`, after the
    /// cheap checks ([`Node::refusal`]): a message that fails those is refused without verifying
    /// any of its signatures. [`Verdict::Ok`] for a message whose signatures all verify (and for
    /// non-messages).
    pub(super) fn verify_messages(&self, events: &[Event]) -> Vec<Verdict> {
        let (mut out, batch, owner) = self.batch_messages(events);
        if !batch.is_empty() {
            let verdicts = self.engine.verify(&batch);
            for (k, i) in owner.into_iter().enumerate() {
                if verdicts.get(k) != Some(true) {
                    out[i] = Verdict::BadSignature;
                }
            }
        }
        out
    }

    /// [`Node::verify_messages`] before the engine: the verdicts known without verifying, and
    /// the batch of the signatures left to verify, with the event each belongs to.
    pub(super) fn batch_messages(&self, events: &[Event]) -> (Vec<Verdict>, Batch, Vec<usize>) {
        let set = self.core.validators();
        let chain = self.core.config().chain;
        let mut batch = Batch::new();
        let mut owner = Vec::new();
        let mut out = vec![Verdict::Ok; events.len()];
        for (i, e) in events.iter().enumerate() {
            let Event::Peer(_, m) = e else { continue };
            if let Some(refused) = self.refusal(m) {
                out[i] = refused;
                continue;
            }
            let sigs = m.signatures(&chain);
            if sigs.is_empty() {
                out[i] = Verdict::BadSignature;
            }
            for s in sigs {
                match set.get(s.signer) {
                    Some(v) if batch.push(Scheme::Ed25519, &v.public_key, &s.bytes, &s.signature.0).is_ok() => {
                        owner.push(i)
                    }
                    _ => out[i] = Verdict::BadSignature,
                }
            }
        }
        (out, batch, owner)
    }
}
