//! `node.toml`: one validator's configuration, and the genesis every validator shares.
//!
//! ```toml
//! index = 0                      # this validator's position in `validators`
//! key = "<64 hex>"               # Ed25519 secret key (32 bytes) signing consensus messages
//! listen = "127.0.0.1:7000"
//! data_dir = "/var/lib/parthenon/v0"
//! base_timeout_ms = 1000         # view 0 timeout; doubles per view
//! propose_delay_ms = 20          # leader waits this long to fill a block
//! max_block_txs = 5000
//! fetch_deadline_ms = 120000     # a catch-up fetch taking longer is cut (crate::node::sync)
//!
//! [[validators]]
//! public_key = "<64 hex>"
//! stake = 1
//! address = "127.0.0.1:7000"
//!
//! [genesis]                      # outputs derived from a seed, so configs stay small
//! chain = "testnet"
//! wallet_seed = "<64 hex>"       # spend key i = SHA-256(wallet_seed ‖ i), Ed25519 for even i,
//! keys = 64                      # BIP-340 for odd i
//! outputs = 20000                # output j locked to key j mod keys
//! value = 1000
//! ```

use crate::node::consensus::{Digest, Validator, ValidatorSet};
use crate::node::ledger::{Genesis, Output, SpendKey};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Configuration errors naming the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
    /// Not valid TOML for this schema.
    #[error("{path}: {source}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Error.
        source: Box<toml::de::Error>,
    },
    /// A field with a bad value.
    #[error("{field}: {reason}")]
    Field {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
}

/// One validator entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidatorEntry {
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// Stake.
    pub stake: u64,
    /// Where it listens.
    pub address: SocketAddr,
}

/// Seed-derived genesis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenesisSpec {
    /// Chain name.
    pub chain: String,
    /// Wallet seed, hex (32 bytes).
    pub wallet_seed: String,
    /// Number of spend keys.
    pub keys: u32,
    /// Number of initial outputs.
    pub outputs: u32,
    /// Value of each.
    pub value: u64,
}

/// `node.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeConfig {
    /// This validator's index.
    pub index: u16,
    /// Ed25519 secret key, hex.
    pub key: String,
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// View-0 timeout (ms).
    #[serde(default = "default_timeout")]
    pub base_timeout_ms: u64,
    /// Leader's fill delay (ms).
    #[serde(default = "default_propose_delay")]
    pub propose_delay_ms: u64,
    /// Max transactions per block.
    #[serde(default = "default_max_block")]
    pub max_block_txs: usize,
    /// The validators.
    pub validators: Vec<ValidatorEntry>,
    /// Genesis.
    pub genesis: GenesisSpec,
    /// Where to serve Prometheus metrics (`GET /metrics`); none when absent.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// How long a client connection that has not subscribed may go without a well-formed frame
    /// before it is closed (ms; [`crate::node::peer::CLIENT_IDLE_TIMEOUT`] by default).
    #[serde(default = "default_client_idle")]
    pub client_idle_timeout_ms: u64,
    /// Longest a catch-up fetch may take, from its connect to its last block, before its
    /// connection is shut down and it fails (ms; [`crate::node::sync::FETCH_DEADLINE`] by
    /// default; must be positive).
    #[serde(default = "default_fetch_deadline")]
    pub fetch_deadline_ms: u64,
}

fn default_fetch_deadline() -> u64 {
    crate::node::sync::FETCH_DEADLINE.as_millis() as u64
}

fn default_client_idle() -> u64 {
    crate::node::peer::CLIENT_IDLE_TIMEOUT.as_millis() as u64
}
fn default_timeout() -> u64 {
    1000
}
fn default_propose_delay() -> u64 {
    20
}
fn default_max_block() -> usize {
    5000
}

/// Decodes 32 bytes of hex.
pub fn hex32(field: &str, s: &str) -> Result<[u8; 32], ConfigError> {
    let bad = |reason: &str| ConfigError::Field { field: field.to_string(), reason: reason.to_string() };
    let v = hex::decode(s.trim()).map_err(|e| bad(&e.to_string()))?;
    v.try_into().map_err(|_| bad("must be 32 bytes (64 hex digits)"))
}

impl GenesisSpec {
    /// Spend key `i`.
    pub fn spend_key(&self, i: u32) -> Result<SpendKey, ConfigError> {
        let seed = hex32("genesis.wallet_seed", &self.wallet_seed)?;
        let mut pre = seed.to_vec();
        pre.extend_from_slice(&i.to_le_bytes());
        SpendKey::from_seed(i % 2 == 1, Digest::of(&pre).0).ok_or_else(|| ConfigError::Field {
            field: "genesis.wallet_seed".into(),
            reason: format!("key {i} is not a valid secp256k1 scalar; pick another seed"),
        })
    }

    /// The genesis these parameters describe.
    pub fn genesis(&self) -> Result<Genesis, ConfigError> {
        if self.keys == 0 || self.value == 0 {
            return Err(ConfigError::Field {
                field: "genesis".into(),
                reason: "keys and value must be positive".into(),
            });
        }
        let locks: Vec<_> = (0..self.keys).map(|i| self.spend_key(i).map(|k| k.lock())).collect::<Result<_, _>>()?;
        let outputs =
            (0..self.outputs).map(|j| Output { value: self.value, lock: locks[(j % self.keys) as usize] }).collect();
        Ok(Genesis { chain: self.chain.clone(), outputs })
    }
}

impl NodeConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.into(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), source: Box::new(e) })
    }

    /// TOML text of this configuration.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The validator set.
    pub fn validator_set(&self) -> Result<ValidatorSet, ConfigError> {
        let vs = self
            .validators
            .iter()
            .enumerate()
            .map(|(i, v)| {
                Ok(Validator {
                    public_key: hex32(&format!("validators[{i}].public_key"), &v.public_key)?,
                    stake: v.stake,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let set = ValidatorSet::new(vs)
            .map_err(|e| ConfigError::Field { field: "validators".into(), reason: e.to_string() })?;
        if usize::from(self.index) >= set.len() {
            return Err(ConfigError::Field { field: "index".into(), reason: format!("{} validators", set.len()) });
        }
        Ok(set)
    }

    /// The consensus signing key; checked against `validators[index].public_key`.
    pub fn signing_key(&self, set: &ValidatorSet) -> Result<ed25519_dalek::SigningKey, ConfigError> {
        let k = ed25519_dalek::SigningKey::from_bytes(&hex32("key", &self.key)?);
        if set.get(self.index).map(|v| v.public_key) != Some(k.verifying_key().to_bytes()) {
            return Err(ConfigError::Field {
                field: "key".into(),
                reason: "does not match validators[index].public_key".into(),
            });
        }
        Ok(k)
    }
}
