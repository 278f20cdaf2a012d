//! The ledger: a UTXO set whose outputs are locked to Ed25519 or BIP-340 keys, transactions that
//! spend them, and blocks of transactions, validated with every signature verified in batches
//! through [`crate::Engine::verify`] (never by a signature crate directly).
//!
//! - [`tx`]: data model, ids, sighash, signing helpers (wallet side).
//! - [`state`]: the UTXO set, validation rules and their errors.
//! - [`app`]: the consensus [`Application`](crate::node::consensus::Application) over a ledger
//!   and a mempool.

pub mod app;
pub mod state;
pub mod tx;

pub use state::{BlockError, Ledger, TxError};
pub use tx::*;

#[cfg(test)]
mod tests;
