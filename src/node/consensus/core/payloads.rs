//! The payload table (`Core::payloads`): a payload is kept, once, by digest, only while
//! something at this height names it, and only within `Config::max_payload_bytes`, so memory
//! stays one payload per view that had a proposal or certificate plus at most one per validator.

use super::super::types::*;
use super::Core;

impl Core {
    /// Keeps `payload` if it is within `Config::max_payload_bytes` and hashes to one of `wanted`
    /// (digests something at this height names; see `payloads`).
    pub(super) fn learn_payload(&mut self, payload: Vec<u8>, wanted: &[Digest]) {
        if payload.len() > self.config.max_payload_bytes {
            self.dropped.invalid += 1;
            return;
        }
        let d = Digest::of(&payload);
        if wanted.contains(&d) {
            self.payloads.entry(d).or_insert(payload);
        }
    }

    /// Whether anything at this height still names payload `d` (see `payloads`).
    pub(super) fn referenced(&self, d: Digest) -> bool {
        self.own_proposal.as_ref().is_some_and(|(h, _)| h.body.digest == d)
            || self.prepared.as_ref().is_some_and(|p| p.digest() == d)
            || self.last_vote.is_some_and(|v| v.body.digest == d)
            || self.last_commit.is_some_and(|v| v.body.digest == d)
            || self.proposals.values().any(|h| h.body.digest == d)
            || self.cert_digests.values().any(|c| *c == d)
            || self.vote_refs.iter().flatten().any(|(_, r)| *r == Some(d))
    }

    /// Drops payload `d` unless something still names it.
    pub(super) fn release_payload(&mut self, d: Digest) {
        if !self.referenced(d) {
            self.payloads.remove(&d);
        }
    }
}
