//! BFT consensus among `n` stake-weighted validators: PBFT's pre-prepare / prepare / commit with
//! view change, plus a fast path that decides after two phases when prepares from *all* stake
//! arrive before a quorum of commits.
//!
//! The core ([`Core`]) is a pure state machine: [`Input`] in, [`Effect`]s out, no I/O, no clock.
//! The node drives it with tokio; tests drive it with the seeded simulator in
//! [`crate::node::sim`]. The protocol and the safety argument are in `docs/consensus.md`:
//!
//! - **Quorum** is stake `≥ S − f` with `f = ⌊(S−1)/3⌋` ([`ValidatorSet::quorum`]).
//! - **Slow path**: proposal → prepare (quorum ⇒ *prepared*) → commit (quorum ⇒ decided).
//! - **Fast path**: prepares from all stake ⇒ decided, without waiting for commits.
//! - **View change**: a quorum of [`ViewChangeBody`]s justifies the next leader's proposal; the
//!   leader must re-propose the digest [`rules::choose`] picks, which every validator recomputes.
//! - **Equivocation**: two conflicting signed statements by one validator surface as
//!   [`Evidence`].

mod core;
mod interface;
pub mod rules;
mod types;

pub use self::core::Core;
pub use interface::{Application, CommitError, Config, Dropped, Effect, Input, SafetyState, Timer, TimerKind};
pub use types::*;
