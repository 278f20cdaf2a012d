//! The buffer of messages for the next height (they are replayed when the core gets there).
//!
//! # Bounds
//!
//! - At most `max_buffered` messages in all ([`Config::max_buffered`]).
//! - Per *signer* (the validator whose signature the message carries; the host verified it), at
//!   most `max(max_buffered / n, 16)` messages and `max_buffered_bytes / n` payload bytes
//!   ([`Config::max_buffered_bytes`]). One Byzantine validator therefore cannot crowd out the
//!   others' next-height messages, and the memory held for it is bounded.
//! - A view change keeps only the payloads its signed body names (its prepared certificate's and
//!   its last vote's digests); anything else it carried is dropped before it is stored.
//!
//! A message over a bound is dropped (the caller counts it): consensus tolerates lost messages.

use super::super::interface::Config;
use super::super::types::*;
use std::collections::HashMap;

/// Messages for the next height, with per-signer accounting.
#[derive(Debug, Default)]
pub(super) struct FutureBuffer {
    messages: Vec<(ValidatorIndex, Message)>,
    per_signer: HashMap<ValidatorIndex, (usize, usize)>,
}

/// The validator whose signature `m` carries at its top level.
fn signer(m: &Message) -> Option<ValidatorIndex> {
    match m {
        Message::Proposal { header, .. } => Some(header.signer),
        Message::Vote(v) => Some(v.signer),
        Message::ViewChange(vc) => Some(vc.signed.signer),
        Message::Decided { .. } => None,
    }
}

/// Payload bytes `m` holds.
fn payload_bytes(m: &Message) -> usize {
    match m {
        Message::Proposal { payload, justification, .. } => {
            payload.len()
                + justification.iter().map(|vc| vc.payloads.iter().map(Vec::len).sum::<usize>()).sum::<usize>()
        }
        Message::ViewChange(vc) => vc.payloads.iter().map(Vec::len).sum(),
        Message::Vote(_) | Message::Decided { .. } => 0,
    }
}

/// Drops the payloads of `vc` that its body does not name, and duplicates.
pub(super) fn strip_view_change(vc: &mut ViewChange) {
    let b = &vc.signed.body;
    let wanted: Vec<Digest> =
        b.prepared.as_ref().map(PreparedCert::digest).into_iter().chain(b.last_vote.map(|v| v.body.digest)).collect();
    let mut seen: Vec<Digest> = Vec::new();
    vc.payloads.retain(|p| {
        let d = Digest::of(p);
        let keep = wanted.contains(&d) && !seen.contains(&d);
        seen.push(d);
        keep
    });
}

impl FutureBuffer {
    /// Buffers `m` from peer `from`; false (nothing kept) when it is over a bound.
    pub(super) fn push(&mut self, config: &Config, validators: usize, from: ValidatorIndex, mut m: Message) -> bool {
        let Some(s) = signer(&m) else { return false };
        if let Message::ViewChange(vc) = &mut m {
            strip_view_change(vc);
        }
        if let Message::Proposal { justification, .. } = &mut m {
            // A new-view proposal's justification needs no payloads (the proposal carries its own).
            justification.iter_mut().for_each(|vc| vc.payloads.clear());
        }
        let n = validators.max(1);
        let max_count = (config.max_buffered / n).max(16);
        let max_bytes = config.max_buffered_bytes / n;
        let bytes = payload_bytes(&m);
        let (count, used) = self.per_signer.get(&s).copied().unwrap_or((0, 0));
        if self.messages.len() >= config.max_buffered || count >= max_count || used.saturating_add(bytes) > max_bytes {
            return false;
        }
        self.per_signer.insert(s, (count + 1, used + bytes));
        self.messages.push((from, m));
        true
    }

    /// Takes every buffered message out.
    pub(super) fn take(&mut self) -> Vec<(ValidatorIndex, Message)> {
        self.per_signer.clear();
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

    fn vc(signer: ValidatorIndex, payloads: Vec<Vec<u8>>, named: Option<&[u8]>) -> Message {
        let last_vote = named.map(|p| Signed {
            body: Vote { kind: VoteKind::Prepare, height: 1, view: 0, digest: Digest::of(p) },
            signer,
            signature: Signature([0; 64]),
        });
        let body = ViewChangeBody { height: 1, new_view: 1, prepared: None, last_vote };
        Message::ViewChange(ViewChange { signed: Signed { body, signer, signature: Signature([0; 64]) }, payloads })
    }

    #[test]
    fn unnamed_payloads_are_stripped_and_each_signer_is_bounded() {
        let config = Config { max_buffered: 4096, max_buffered_bytes: 4 << 20, ..Config::default() };
        let mut f = FutureBuffer::default();
        // 1 MiB of junk next to the named payload: only the named one is kept.
        assert!(f.push(&config, 4, 0, vc(0, vec![vec![1; 1 << 20], b"named".to_vec()], Some(b"named"))));
        match &f.messages[0].1 {
            Message::ViewChange(v) => assert_eq!(v.payloads, vec![b"named".to_vec()]),
            other => panic!("{other:?}"),
        }
        // Count bound per signer: 4096 / 4 = 1024 messages from validator 1, not more.
        let mut kept = 0;
        for _ in 0..2000 {
            kept += usize::from(f.push(&config, 4, 1, vc(1, vec![], None)));
        }
        assert_eq!(kept, 1024);
        // Byte bound per signer: 1 MiB each of validator 2's named payloads.
        let big = vec![7u8; 400 << 10];
        let mut kept = 0;
        for _ in 0..10 {
            kept += usize::from(f.push(&config, 4, 2, vc(2, vec![big.clone()], Some(&big))));
        }
        assert_eq!(kept, 2);
        // Others still get in.
        assert!(f.push(&config, 4, 3, vc(3, vec![], None)));
        assert_eq!(f.len(), 1 + 1024 + 2 + 1);
        assert_eq!(f.take().len(), 1028);
        assert!(f.push(&config, 4, 1, vc(1, vec![], None)), "accounting resets after take");
    }
}
