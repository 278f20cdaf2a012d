//! The buffer of messages for the next height (they are replayed when the core gets there).
//!
//! # What is kept
//!
//! - Each signed statement once: a copy of a message already held is a no-op (it is charged to
//!   nobody), keyed by signer and `(kind, view, digest)` for proposals and votes and by signer and
//!   new view for view changes. A copy of a held view change that carries more of the payloads its
//!   body names replaces it (payloads are not signed, so a relay could strip them from the first
//!   copy). Replaying an honest validator's messages therefore cannot use up its budget.
//! - Proposals only from the leader of their `(height, view)`, with the payload hashing to the
//!   header's digest, at most [`Config::max_payload_bytes`], and a valid justification
//!   ([`check_justification`]): what is held for a header is then as good as any other copy.
//!   Proposals and votes for views the core would drop at the next height
//!   ([`Config::max_view_ahead`]) are not kept.
//! - A view change keeps only the payloads its signed body names (its prepared certificate's and
//!   its last vote's digests), each at most [`Config::max_payload_bytes`], and none when its view
//!   is beyond [`Config::max_view_ahead`] (the core would drop them); a proposal's justification
//!   keeps none.
//!
//! # Bounds
//!
//! Bytes are payload bytes plus an estimate of the signed parts ([`held_bytes`]).
//!
//! - At most `max_buffered` messages in all ([`Config::max_buffered`]).
//! - Per *signer* (the validator whose signature the message carries; the host verified it), at
//!   most `max(max_buffered / n, 16)` messages and `max(max_buffered_bytes / n, floor)` bytes,
//!   where `floor` ([`per_signer_floor`]) is two largest payloads plus the largest justification
//!   of `n` view changes plus 64 KiB: one largest proposal or one view change with two largest
//!   payloads always fits, whatever `n` (with the defaults, `max_buffered_bytes / n` alone is
//!   below one 24 MiB proposal from `n = 11` on).
//! - At most `max(max_buffered_bytes, floor)` bytes in all ([`Config::max_buffered_bytes`]).
//!   While `n · floor` is below that, no signer can crowd out another's bytes; above it (with the
//!   defaults, from `n = 6`), validators that fill their own budgets can together fill the whole
//!   buffer, and later large messages are dropped: the node then gets the next height's block
//!   through catch-up ([`super::super::Effect::Ahead`]) instead.
//!
//! A message over a bound is dropped (the caller counts it): consensus tolerates lost messages.

use super::super::interface::Config;
use super::super::rules::check_justification;
use super::super::types::*;
use std::collections::HashMap;

/// What makes two buffered messages the same signed statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Proposal(ValidatorIndex, View, Digest),
    Vote(ValidatorIndex, VoteKind, View, Digest),
    ViewChange(ValidatorIndex, View),
}

/// Messages for the next height, with per-signer accounting.
#[derive(Debug, Default)]
pub(super) struct FutureBuffer {
    messages: Vec<(ValidatorIndex, Message)>,
    held: HashMap<Key, usize>,
    per_signer: HashMap<ValidatorIndex, (usize, usize)>,
    bytes: usize,
}

/// The validator whose signature `m` carries at its top level, and the statement's key.
fn key(m: &Message) -> Option<(ValidatorIndex, Key)> {
    match m {
        Message::Proposal { header, .. } => {
            let b = &header.body;
            Some((header.signer, Key::Proposal(header.signer, b.view, b.digest)))
        }
        Message::Vote(v) => Some((v.signer, Key::Vote(v.signer, v.body.kind, v.body.view, v.body.digest))),
        Message::ViewChange(vc) => Some((vc.signed.signer, Key::ViewChange(vc.signed.signer, vc.signed.body.new_view))),
        Message::Decided { .. } => None,
    }
}

/// Bytes a view change holds: its payloads, plus its signed parts (generously estimated).
fn view_change_bytes(vc: &ViewChange) -> usize {
    let cert = vc.signed.body.prepared.as_ref().map_or(0, |p| p.votes.len());
    vc.payloads.iter().map(Vec::len).sum::<usize>() + 256 + cert * MAX_SIGNED_VOTE_BYTES
}

/// Bytes `m` holds: payloads plus an estimate of the signed parts.
fn held_bytes(m: &Message) -> usize {
    match m {
        Message::Proposal { payload, justification, .. } => {
            payload.len() + 256 + justification.iter().map(view_change_bytes).sum::<usize>()
        }
        Message::ViewChange(vc) => view_change_bytes(vc),
        Message::Vote(_) => MAX_SIGNED_VOTE_BYTES,
        Message::Decided { .. } => 0,
    }
}

/// The least byte budget of one signer: two largest payloads, the largest justification of a set
/// of `validators` (one view change per validator, each with a certificate of one vote per
/// validator; see [`held_bytes`]), and 64 KiB for votes and headers.
pub(super) fn per_signer_floor(config: &Config, validators: usize) -> usize {
    let justification = validators.saturating_mul(256 + validators.saturating_mul(MAX_SIGNED_VOTE_BYTES));
    config.max_payload_bytes.saturating_mul(2).saturating_add(justification).saturating_add(64 << 10)
}

/// Drops the payloads of `vc` that its body does not name, those above `max_bytes`, and
/// duplicates.
pub(super) fn strip_view_change(vc: &mut ViewChange, max_bytes: usize) {
    let b = &vc.signed.body;
    let wanted: Vec<Digest> =
        b.prepared.as_ref().map(PreparedCert::digest).into_iter().chain(b.last_vote.map(|v| v.body.digest)).collect();
    let mut seen: Vec<Digest> = Vec::new();
    vc.payloads.retain(|p| {
        if p.len() > max_bytes {
            return false;
        }
        let d = Digest::of(p);
        let keep = wanted.contains(&d) && !seen.contains(&d);
        seen.push(d);
        keep
    });
}

impl FutureBuffer {
    /// Buffers `m` from peer `from`. True when it is held (a copy of a held message included);
    /// false (nothing kept) when it is invalid or over a bound.
    pub(super) fn push(&mut self, config: &Config, set: &ValidatorSet, from: ValidatorIndex, mut m: Message) -> bool {
        let Some((s, key)) = key(&m) else { return false };
        match &mut m {
            Message::Proposal { header, payload, justification } => {
                let b = &header.body;
                if header.signer != set.leader(b.height, b.view)
                    || b.view > config.max_view_ahead
                    || payload.len() > config.max_payload_bytes
                    || self.held.contains_key(&key)
                    || Digest::of(payload) != b.digest
                    || check_justification(set, b, justification).is_err()
                {
                    // Invalid, out of range, or a copy of what is held.
                    return self.held.contains_key(&key);
                }
                // A new-view proposal's justification needs no payloads (the proposal carries its own).
                justification.iter_mut().for_each(|vc| vc.payloads.clear());
            }
            Message::Vote(v) => {
                if v.body.view > config.max_view_ahead {
                    return false;
                }
            }
            Message::ViewChange(vc) => {
                if vc.signed.body.new_view > config.max_view_ahead {
                    vc.payloads.clear();
                } else {
                    strip_view_change(vc, config.max_payload_bytes);
                }
            }
            Message::Decided { .. } => return false,
        }
        let n = set.len().max(1);
        let floor = per_signer_floor(config, n);
        let max_count = (config.max_buffered / n).max(16);
        let max_bytes = (config.max_buffered_bytes / n).max(floor);
        let max_total = config.max_buffered_bytes.max(floor);
        let bytes = held_bytes(&m);
        let (count, used) = self.per_signer.get(&s).copied().unwrap_or((0, 0));
        if let Some(&i) = self.held.get(&key) {
            // A copy. Only a view change that carries more of its named payloads replaces it.
            let more = |held: &Message| match (held, &m) {
                (Message::ViewChange(a), Message::ViewChange(b)) => b.payloads.len() > a.payloads.len(),
                _ => false,
            };
            let Some((_, old)) = self.messages.get(i) else { return false };
            if more(old) {
                let old_bytes = held_bytes(old);
                let used = used.saturating_sub(old_bytes);
                let total = self.bytes.saturating_sub(old_bytes);
                if used.saturating_add(bytes) <= max_bytes && total.saturating_add(bytes) <= max_total {
                    self.per_signer.insert(s, (count, used + bytes));
                    self.bytes = total + bytes;
                    self.messages[i] = (from, m);
                }
            }
            return true;
        }
        if self.messages.len() >= config.max_buffered
            || count >= max_count
            || used.saturating_add(bytes) > max_bytes
            || self.bytes.saturating_add(bytes) > max_total
        {
            return false;
        }
        self.per_signer.insert(s, (count + 1, used + bytes));
        self.bytes += bytes;
        self.held.insert(key, self.messages.len());
        self.messages.push((from, m));
        true
    }

    /// Takes every buffered message out.
    pub(super) fn take(&mut self) -> Vec<(ValidatorIndex, Message)> {
        self.per_signer.clear();
        self.held.clear();
        self.bytes = 0;
        std::mem::take(&mut self.messages)
    }

    /// Messages held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.messages.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> ValidatorSet {
        ValidatorSet::new((0..n).map(|i| Validator { public_key: [i as u8 + 1; 32], stake: 1 }).collect()).unwrap()
    }

    fn vc(signer: ValidatorIndex, new_view: View, payloads: Vec<Vec<u8>>, named: Option<&[u8]>) -> Message {
        let last_vote = named.map(|p| Signed {
            body: Vote { kind: VoteKind::Prepare, height: 1, view: 0, digest: Digest::of(p) },
            signer,
            signature: Signature([0; 64]),
        });
        let body = ViewChangeBody { height: 1, new_view, prepared: None, last_vote };
        Message::ViewChange(ViewChange { signed: Signed { body, signer, signature: Signature([0; 64]) }, payloads })
    }

    #[test]
    fn unnamed_payloads_are_stripped_and_each_signer_is_bounded() {
        let config = Config {
            max_buffered: 4096,
            max_buffered_bytes: 4 << 20,
            max_payload_bytes: 400 << 10,
            ..Config::default()
        };
        let set = set(4);
        let mut f = FutureBuffer::default();
        // 1 MiB of junk next to the named payload: only the named one is kept.
        assert!(f.push(&config, &set, 0, vc(0, 1, vec![vec![1; 1 << 20], b"named".to_vec()], Some(b"named"))));
        match &f.messages[0].1 {
            Message::ViewChange(v) => assert_eq!(v.payloads, vec![b"named".to_vec()]),
            other => panic!("{other:?}"),
        }
        // Count bound per signer: 4096 / 4 = 1024 messages from validator 1, not more.
        let mut kept = 0;
        for v in 0..2000 {
            kept += usize::from(f.push(&config, &set, 1, vc(1, v, vec![], None)));
        }
        assert_eq!(kept, 1024);
        // Byte bound per signer: 1 MiB each of validator 2's named payloads.
        let mut kept = 0;
        for k in 0..10u8 {
            let big = vec![k; 400 << 10];
            kept += usize::from(f.push(&config, &set, 2, vc(2, 1 + u64::from(k), vec![big.clone()], Some(&big))));
        }
        assert_eq!(kept, 2);
        // A named payload above `max_payload_bytes` is dropped.
        let huge = vec![9u8; (400 << 10) + 1];
        assert!(f.push(&config, &set, 0, vc(0, 2, vec![huge.clone()], Some(&huge))));
        match f.messages.last().map(|m| &m.1) {
            Some(Message::ViewChange(v)) => assert!(v.payloads.is_empty()),
            other => panic!("{other:?}"),
        }
        // Others still get in.
        assert!(f.push(&config, &set, 3, vc(3, 1, vec![], None)));
        assert_eq!(f.len(), 1 + 1024 + 2 + 1 + 1);
        assert_eq!(f.take().len(), 1029);
        assert!(f.push(&config, &set, 1, vc(1, 1, vec![], None)), "accounting resets after take");
    }

    fn vote(signer: ValidatorIndex, kind: VoteKind, d: u8) -> Message {
        let body = Vote { kind, height: 1, view: 0, digest: Digest([d; 32]) };
        Message::Vote(Signed { body, signer, signature: Signature([0; 64]) })
    }

    /// Finding: copies of one signed message were each charged to its signer, so a peer replaying
    /// an honest validator's vote filled that validator's budget.
    #[test]
    fn replayed_copies_are_stored_once() {
        let config = Config::default();
        let set = set(4);
        let mut f = FutureBuffer::default();
        for _ in 0..2000 {
            assert!(f.push(&config, &set, 3, vote(2, VoteKind::Prepare, 7)), "a copy is held, not refused");
        }
        assert_eq!(f.len(), 1);
        assert!(f.push(&config, &set, 2, vote(2, VoteKind::Commit, 7)), "the signer's next vote is kept");
        assert_eq!(f.len(), 2);
        // A relay that stripped a view change's payloads first does not keep the full copy out.
        let p = b"payload".to_vec();
        assert!(f.push(&config, &set, 3, vc(2, 1, vec![], Some(&p))));
        assert!(f.push(&config, &set, 2, vc(2, 1, vec![p.clone()], Some(&p))));
        assert_eq!(f.len(), 3);
        match &f.messages[2].1 {
            Message::ViewChange(v) => assert_eq!(v.payloads, vec![p]),
            other => panic!("{other:?}"),
        }
    }

    fn proposal(set: &ValidatorSet, view: View, payload: Vec<u8>, justification: Vec<ViewChange>) -> Message {
        let body = ProposalHeader { height: 1, view, digest: Digest::of(&payload) };
        let header = Signed { body, signer: set.leader(1, view), signature: Signature([0; 64]) };
        Message::Proposal { header, payload, justification }
    }

    /// Finding: with 16 validators the per-signer byte budget (256 MiB / 16) was below one
    /// largest proposal (24 MiB).
    #[test]
    fn a_largest_proposal_fits_with_16_validators() {
        let config = Config::default();
        let set = set(16);
        let mut f = FutureBuffer::default();
        assert!(f.push(&config, &set, 1, proposal(&set, 0, vec![5u8; 24 << 20], vec![])));
        // And, from another signer, a view change with two largest payloads.
        let (a, b) = (vec![1u8; 24 << 20], vec![2u8; 24 << 20]);
        let prepared = PreparedCert {
            votes: (0..11)
                .map(|signer| Signed {
                    body: Vote { kind: VoteKind::Prepare, height: 1, view: 0, digest: Digest::of(&a) },
                    signer,
                    signature: Signature([0; 64]),
                })
                .collect(),
        };
        let Message::ViewChange(mut v) = vc(3, 1, vec![a, b.clone()], Some(&b)) else { unreachable!() };
        v.signed.body.prepared = Some(prepared);
        assert!(f.push(&config, &set, 3, Message::ViewChange(v)));
        match &f.messages[1].1 {
            Message::ViewChange(v) => assert_eq!(v.payloads.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn proposals_are_checked_before_they_are_held() {
        let config = Config::default();
        let set = set(4);
        let mut f = FutureBuffer::default();
        // Wrong leader; payload that does not hash to the digest; view 1 without justification.
        let Message::Proposal { mut header, payload, .. } = proposal(&set, 0, b"x".to_vec(), vec![]) else {
            unreachable!()
        };
        header.signer = 3;
        assert!(!f.push(&config, &set, 3, Message::Proposal { header, payload, justification: vec![] }));
        let Message::Proposal { header, .. } = proposal(&set, 0, b"x".to_vec(), vec![]) else { unreachable!() };
        let wrong_payload = Message::Proposal { header, payload: b"y".to_vec(), justification: vec![] };
        assert!(!f.push(&config, &set, 1, wrong_payload));
        assert!(!f.push(&config, &set, 2, proposal(&set, 1, b"x".to_vec(), vec![])));
        let justification: Vec<ViewChange> = (0..3)
            .map(|s| match vc(s, 1, vec![], None) {
                Message::ViewChange(v) => v,
                _ => unreachable!(),
            })
            .collect();
        assert!(f.push(&config, &set, 2, proposal(&set, 1, b"x".to_vec(), justification.clone())));
        // A copy with a worse justification is a no-op; the held one stays.
        assert!(f.push(&config, &set, 0, proposal(&set, 1, b"x".to_vec(), justification[..1].to_vec())));
        assert_eq!(f.len(), 1);
        match &f.messages[0].1 {
            Message::Proposal { justification: j, .. } => assert_eq!(j.len(), 3),
            other => panic!("{other:?}"),
        }
    }
}
