//! The consensus node: a consumer of parthenon's public API that proves the engine in a real
//! network.
//!
//! - [`consensus`]: the BFT core, a pure state machine (inputs in, effects out, no I/O, no clock).
//! - [`ledger`]: UTXO set, transactions locked to Ed25519 or BIP-340 keys, blocks; signatures
//!   verified in batches through [`crate::Engine::verify`].
//! - [`storage`]: block files in the engine's transfer store, redb index and UTXO set.
//! - [`peer`]: a validator's TCP connections (validators, clients, block fetchers).
//! - [`handshake`]: the authenticated `Hello` that opens every validator-to-validator connection.
//! - [`sync`]: catching up: final blocks served to lagging peers through the engine's transfer.
//! - [`sim`]: a seeded deterministic network simulator that drives the core in tests.
//!
//! The protocol and its safety argument are written down in `docs/consensus.md`.

pub mod config;
pub mod consensus;
pub mod handshake;
pub mod ledger;
pub mod metrics;
pub mod net;
pub mod peer;
pub mod service;
pub mod sim;
pub mod storage;
pub mod sync;
pub mod testnet;
