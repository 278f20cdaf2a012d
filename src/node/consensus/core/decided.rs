//! Final blocks that arrive as [`Message::Decided`] (catch-up): applied at once when they are
//! for our height, else, above it, buffered until we get there, each only with a commit
//! certificate that checks and a payload that hashes to the certified digest, within
//! [`Config::max_buffered`] blocks and `max(max_buffered_bytes, one largest block)` bytes.

use super::super::interface::*;
use super::super::rules::check_commit;
use super::super::types::*;
use super::Core;

/// Bytes a buffered final block holds: its payload and (at most) its certificate's encoding.
pub(super) fn decided_bytes(cert: &CommitCert, payload: &[u8]) -> usize {
    payload.len() + CommitCert::max_encoded_len(cert.votes.len())
}

impl Core {
    /// Keeps the final block at `h` (above our height) until we get there, if its certificate
    /// holds and certifies this payload. The first such block per height stays (a certified
    /// digest is unique, so a later copy adds nothing). At most [`Config::max_buffered`] blocks
    /// and `max(max_buffered_bytes, one largest block)` bytes: over a bound, the highest
    /// heights go (they are needed last, and fetched again).
    pub(super) fn buffer_decided(&mut self, h: Height, cert: CommitCert, payload: Vec<u8>) {
        if self.decided_future.contains_key(&h) {
            return;
        }
        match check_commit(&self.set, &cert) {
            Ok(v) if v.digest == Digest::of(&payload) => {}
            _ => {
                self.dropped.invalid += 1;
                return;
            }
        }
        self.decided_future_bytes += decided_bytes(&cert, &payload);
        self.decided_future.insert(h, (cert, payload));
        let max_bytes = self
            .config
            .max_buffered_bytes
            .max(self.config.max_payload_bytes.saturating_add(CommitCert::max_encoded_len(self.set.len())));
        while self.decided_future.len() > self.config.max_buffered || self.decided_future_bytes > max_bytes {
            let Some((_, (c, p))) = self.decided_future.pop_last() else { break };
            self.decided_future_bytes = self.decided_future_bytes.saturating_sub(decided_bytes(&c, &p));
            self.dropped.out_of_range += 1;
        }
    }

    pub(super) fn on_decided(&mut self, cert: CommitCert, payload: Vec<u8>, app: &mut dyn Application) {
        match check_commit(&self.set, &cert) {
            Ok(v) if v.digest == Digest::of(&payload) => self.decide(cert, payload, app),
            _ => self.dropped.invalid += 1,
        }
    }
}
