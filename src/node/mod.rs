//! The consensus node: a consumer of parthenon's public API that proves the engine in a real
//! network.
//!
//! - [`consensus`]: the BFT core, a pure state machine (inputs in, effects out, no I/O, no clock).
//! - [`sim`]: a seeded deterministic network simulator that drives the core in tests.
//!
//! The protocol and its safety argument are written down in `docs/consensus.md`.

pub mod consensus;
pub mod sim;
