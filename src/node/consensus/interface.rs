//! What the consensus core takes and returns: the [`Application`] it consults, its [`Config`],
//! [`Input`]s, [`Effect`]s (with the host contract in [`super::Core`]'s module docs), the
//! [`SafetyState`] a restart resumes from, and the [`Dropped`] counters.

use super::types::*;
use serde::{Deserialize, Serialize};

/// The block producer and validity predicate the core consults (pure, deterministic).
pub trait Application {
    /// A new payload for `height` (called on the leader).
    fn propose(&mut self, height: Height) -> Vec<u8>;
    /// Whether `payload` is a valid block at `height` (every honest validator must answer the
    /// same for the same chain).
    fn validate(&mut self, height: Height, payload: &[u8]) -> bool;
    /// `payload` is final at `height`: apply it before the next height's proposals are
    /// validated (called inside [`Core::handle`](super::Core::handle), before [`Effect::Decide`] reaches the host).
    ///
    /// An error means the local state cannot follow the quorum's chain: the core then emits
    /// [`Effect::Halt`] *instead of* [`Effect::Decide`] and stops; the host must stop the
    /// validator (never store or serve that block as final).
    fn commit(&mut self, height: Height, payload: &[u8]) -> Result<(), CommitError> {
        let _ = (height, payload);
        Ok(())
    }
}

/// Why [`Application::commit`] could not apply a final block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CommitError(pub String);

/// Tuning of the core, and the chain it signs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The chain every signature names ([`Signable::signing_bytes`]): the genesis id. A
    /// statement signed for another chain never verifies on this one, even under the same
    /// validator keys. The host verifies with the same id ([`Message::signatures`]).
    pub chain: Digest,
    /// Timeout of view 0 in milliseconds; view `v` waits `base · 2^min(v, 5)`.
    pub base_timeout_ms: u64,
    /// Proposals and votes for views further than this above the current one are dropped
    /// (bounds memory against a validator that signs votes for arbitrary views); a view change
    /// beyond it is kept only as the highest view its validator asked for (the weak-support
    /// join, docs/consensus.md).
    pub max_view_ahead: u64,
    /// At most this many messages for the next height are buffered in all, and at most
    /// `max_buffered / n` (at least 16) signed by any one validator; at most this many decided
    /// blocks above the current height are buffered (each with a checked commit certificate and
    /// the payload it certifies, one per height, within `max_buffered_bytes` or one largest
    /// block; over a bound the highest heights are dropped).
    pub max_buffered: usize,
    /// Next-height messages signed by any one validator are buffered up to
    /// `max(max_buffered_bytes / n, floor)` bytes, where the floor fits one largest proposal or
    /// one view change with two largest payloads ([`Config::max_payload_bytes`]), and up to
    /// `max(max_buffered_bytes, floor)` bytes in all (see the core's `future` module).
    pub max_buffered_bytes: usize,
    /// The leader of view 0 waits this long after entering a height before proposing (lets the
    /// mempool fill; 0 proposes at once).
    pub propose_delay_ms: u64,
    /// Largest payload the core keeps from a view change (larger ones are dropped unread). The
    /// application's own bound; the default is the ledger's
    /// [`MAX_PAYLOAD_BYTES`](crate::node::ledger::MAX_PAYLOAD_BYTES) (24 MiB).
    pub max_payload_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            chain: Digest::default(),
            base_timeout_ms: 1000,
            max_view_ahead: 64,
            max_buffered: 4096,
            max_buffered_bytes: 256 << 20,
            propose_delay_ms: 0,
            max_payload_bytes: crate::node::ledger::MAX_PAYLOAD_BYTES,
        }
    }
}

/// A timer the core asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timer {
    /// Height it was set at.
    pub height: Height,
    /// View it was set at.
    pub view: View,
    /// Sequence number; only the latest view timer counts.
    pub seq: u64,
    /// What the timer is for.
    pub kind: TimerKind,
}

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimerKind {
    /// The view ran out of time: change view if the view has started (its proposal was
    /// accepted, or quorum stake asked for it or a later view), else resend the view change.
    View,
    /// The leader's proposal delay is over: propose.
    Propose,
}

/// What the host gives the core.
// Messages are moved, not stored in bulk: boxing the large variant would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Input {
    /// Begin (or resume after [`Core::restore`](super::Core::restore)): arm the timer, propose
    /// if leader, resend the last own proposal (above view 0 not yet: its justification is not
    /// persisted, and it is resent once view changes rebuild one) and votes.
    Start,
    /// A message whose signatures verified, received from peer `from`.
    Message {
        /// The peer it came from (used only to answer it; authority comes from signatures).
        from: ValidatorIndex,
        /// The message.
        message: Message,
    },
    /// A timer fired.
    Timeout(Timer),
}

/// What the core asks the host to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A payload is final at `height`. Store it durably (with its certificate) before anything
    /// after it.
    Decide {
        /// Height.
        height: Height,
        /// The payload.
        payload: Vec<u8>,
        /// Proof of finality.
        cert: CommitCert,
    },
    /// Conflicting signed statements by one validator.
    Evidence(Evidence),
    /// A final block did not apply ([`Application::commit`] failed): the core stopped and
    /// ignores every further input. The host must stop the validator; nothing of `height` was
    /// decided locally (no [`Effect::Decide`] for it).
    Halt {
        /// The height whose final block did not apply.
        height: Height,
        /// Why.
        reason: String,
    },
    /// Store this state durably before sending any message that follows.
    Persist(Box<SafetyState>),
    /// Send to every other validator.
    Broadcast(Message),
    /// Send to one validator.
    Send {
        /// Recipient.
        to: ValidatorIndex,
        /// Message.
        message: Message,
    },
    /// Deliver [`Input::Timeout`] with `timer` after `after_ms`.
    SetTimer {
        /// The timer.
        timer: Timer,
        /// Delay in milliseconds.
        after_ms: u64,
    },
    /// `peer` is at `height`, below ours: send it the decided blocks from `height` on.
    Behind {
        /// The peer.
        peer: ValidatorIndex,
        /// Its height.
        height: Height,
    },
    /// `peer` is at `height`, above ours: ask it for the blocks we miss.
    Ahead {
        /// The peer.
        peer: ValidatorIndex,
        /// Its height.
        height: Height,
        /// Our height (the first block we miss).
        ours: Height,
    },
}

/// What a validator must remember across a crash to never contradict itself: the votes, proposal
/// and view it committed to at its current height. [`SafetyState::default`] is the state of a
/// validator that never voted: height 0, view 0 running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyState {
    /// Height.
    pub height: Height,
    /// View.
    pub view: View,
    /// Whether the view is running (false after sending a view change for it, until its
    /// new-view proposal is accepted).
    pub active: bool,
    /// Highest prepared certificate at this height.
    pub prepared: Option<PreparedCert>,
    /// Last prepare sent at this height.
    pub last_vote: Option<SignedVote>,
    /// Last commit sent at this height.
    pub last_commit: Option<SignedVote>,
    /// Own proposal at `(height, view)` if leader.
    pub proposal: Option<(Signed<ProposalHeader>, Vec<u8>)>,
    /// Payloads named by `prepared` and `last_vote`.
    pub payloads: Vec<Vec<u8>>,
}

impl Default for SafetyState {
    fn default() -> Self {
        // View 0 of the first height runs from the start: a validator with nothing persisted
        // has sent nothing it could contradict. (Defaulting `active` to false made a fresh
        // network skip view 0 of height 0 and wait a whole view timeout.)
        SafetyState {
            height: 0,
            view: 0,
            active: true,
            prepared: None,
            last_vote: None,
            last_commit: None,
            proposal: None,
            payloads: Vec::new(),
        }
    }
}

/// Counters of what the core dropped, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// Structurally invalid messages (bad certificate, wrong leader, digest mismatch, ...).
    pub invalid: u64,
    /// Proposals whose payload the application rejected.
    pub rejected_payloads: u64,
    /// Messages too far ahead (views or heights) or beyond the buffer.
    pub out_of_range: u64,
}
