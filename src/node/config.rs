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
//!
//! A key the schema does not know (a typo such as `fetch_deadline = 600000`) is refused
//! ([`ConfigError::Parse`]) rather than ignored, in the file, each `[[validators]]` entry and
//! `[genesis]`. [`NodeConfig::validate`] refuses what parses but cannot run: a zero
//! `base_timeout_ms` (every view timer would fire at once: a storm of view changes),
//! `client_idle_timeout_ms` (every client closed at once) or `fetch_deadline_ms` (every catch-up
//! fetch cut at once), a `max_block_txs` outside `1..=`[`MAX_BLOCK_TXS`], and two validators at
//! one `address`. [`NodeConfig::validator_set`], [`NodeConfig::signing_key`] and
//! [`GenesisSpec::genesis`] (at most [`MAX_GENESIS_KEYS`] keys and [`MAX_GENESIS_OUTPUTS`]
//! outputs) check the rest; each error names the field and, where it helps, the value.

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
#[serde(deny_unknown_fields)]
pub struct ValidatorEntry {
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// Stake.
    pub stake: u64,
    /// Where it listens.
    pub address: SocketAddr,
}

/// Most spend keys a genesis derives (one Ed25519 key each, at every start).
pub const MAX_GENESIS_KEYS: u32 = 1 << 16;
/// Most outputs a genesis creates (48 bytes each in every validator's UTXO set, before any block).
pub const MAX_GENESIS_OUTPUTS: u32 = 1 << 22;
/// Largest `max_block_txs`: near the most a 24 MiB payload holds
/// ([`crate::node::ledger::MAX_PAYLOAD_BYTES`], about 150 bytes for the smallest signed
/// transaction: one input, one output, one signature), and a bound on what a leader's block that
/// claims no more than the limit makes every validator decode before its transactions are checked.
pub const MAX_BLOCK_TXS: usize = 1 << 17;

/// What [`NodeConfig::check`] derives from a configuration that passes every check.
pub struct Checked {
    /// The validator set.
    pub set: ValidatorSet,
    /// This validator's consensus signing key (it matches its entry in `set`).
    pub key: ed25519_dalek::SigningKey,
    /// The genesis.
    pub genesis: Genesis,
}

/// Seed-derived genesis.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
    let n = v.len();
    v.try_into().map_err(|_| bad(&format!("must be 32 bytes (64 hex digits), not {n} bytes")))
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
        for (field, v) in [("genesis.keys", u64::from(self.keys)), ("genesis.value", self.value)] {
            if v == 0 {
                return Err(ConfigError::Field { field: field.into(), reason: "must be positive, not 0".into() });
            }
        }
        for (field, v, max) in
            [("genesis.keys", self.keys, MAX_GENESIS_KEYS), ("genesis.outputs", self.outputs, MAX_GENESIS_OUTPUTS)]
        {
            if v > max {
                return Err(ConfigError::Field {
                    field: field.into(),
                    reason: format!("{v} is above {max}: the genesis is built in memory by every validator"),
                });
            }
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

    /// Refuses what parses but cannot run (module docs): a zero duration, two validators at one
    /// address. [`crate::node::service::run`] calls it first.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let durations = [
            ("base_timeout_ms", self.base_timeout_ms, "every view timer would fire at once"),
            ("client_idle_timeout_ms", self.client_idle_timeout_ms, "every client would be closed at once"),
            ("fetch_deadline_ms", self.fetch_deadline_ms, "every catch-up fetch would be cut at once"),
        ];
        for (field, ms, why) in durations {
            if ms == 0 {
                return Err(ConfigError::Field {
                    field: field.into(),
                    reason: format!("must be positive, not 0: {why}"),
                });
            }
        }
        if !(1..=MAX_BLOCK_TXS).contains(&self.max_block_txs) {
            return Err(ConfigError::Field {
                field: "max_block_txs".into(),
                reason: format!(
                    "{} is outside 1..={MAX_BLOCK_TXS}: a block holds at least one transaction, and a \
                     leader's block of more is decoded in full before it is refused",
                    self.max_block_txs
                ),
            });
        }
        for (i, v) in self.validators.iter().enumerate() {
            if let Some(j) = self.validators[..i].iter().position(|w| w.address == v.address) {
                return Err(ConfigError::Field {
                    field: format!("validators[{i}].address"),
                    reason: format!("{} is validators[{j}].address too", v.address),
                });
            }
        }
        Ok(())
    }

    /// Every check of this configuration ([`NodeConfig::validate`], the validator set, the
    /// signing key, the genesis), and what they produce: what a validator needs before it
    /// touches a disk, a socket or a device.
    pub fn check(&self) -> Result<Checked, ConfigError> {
        self.validate()?;
        let set = self.validator_set()?;
        let key = self.signing_key(&set)?;
        let genesis = self.genesis.genesis()?;
        Ok(Checked { set, key, genesis })
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
            return Err(ConfigError::Field {
                field: "index".into(),
                reason: format!("{} is out of range for {} validators", self.index, set.len()),
            });
        }
        Ok(set)
    }

    /// The consensus signing key; checked against `validators[index].public_key`.
    pub fn signing_key(&self, set: &ValidatorSet) -> Result<ed25519_dalek::SigningKey, ConfigError> {
        let k = ed25519_dalek::SigningKey::from_bytes(&hex32("key", &self.key)?);
        if set.get(self.index).map(|v| v.public_key) != Some(k.verifying_key().to_bytes()) {
            return Err(ConfigError::Field {
                field: "key".into(),
                reason: format!("does not match validators[{}].public_key", self.index),
            });
        }
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[i + 10; 32])
    }

    /// Validator 1 of four, as the testnet harness writes it.
    fn config() -> NodeConfig {
        let validators = (0..4)
            .map(|i| ValidatorEntry {
                public_key: hex::encode(key(i).verifying_key().to_bytes()),
                stake: 1,
                address: ([127, 0, 0, 1], 7000 + u16::from(i)).into(),
            })
            .collect();
        NodeConfig {
            index: 1,
            key: hex::encode(key(1).to_bytes()),
            listen: ([127, 0, 0, 1], 7001).into(),
            data_dir: "/tmp/v1".into(),
            base_timeout_ms: default_timeout(),
            propose_delay_ms: default_propose_delay(),
            max_block_txs: default_max_block(),
            validators,
            genesis: GenesisSpec {
                chain: "config-test".into(),
                wallet_seed: hex::encode([7u8; 32]),
                keys: 4,
                outputs: 8,
                value: 5,
            },
            metrics: None,
            client_idle_timeout_ms: default_client_idle(),
            fetch_deadline_ms: default_fetch_deadline(),
        }
    }

    fn field_error(r: Result<impl std::fmt::Debug, ConfigError>) -> (String, String) {
        match r {
            Err(ConfigError::Field { field, reason }) => (field, reason),
            other => panic!("not a field error: {other:?}"),
        }
    }

    /// Finding: keys the schema does not know were ignored, so a typo (`fetch_deadline` for
    /// `fetch_deadline_ms`) ran on the default without a word. Now they are refused, at the top,
    /// in a `[[validators]]` entry and in `[genesis]`; what `to_toml` writes still loads.
    #[test]
    fn unknown_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("parthenon-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        let text = config().to_toml();
        std::fs::write(&path, &text).unwrap();
        let loaded = NodeConfig::load(&path).unwrap();
        assert_eq!(loaded.to_toml(), text);
        loaded.validate().unwrap();
        let set = loaded.validator_set().unwrap();
        loaded.signing_key(&set).unwrap();
        for (typo, bad) in [
            ("fetch_deadline", format!("fetch_deadline = 600000\n{text}")),
            ("weight", text.replacen("[[validators]]\n", "[[validators]]\nweight = 2\n", 1)),
            ("seed", text.replacen("[genesis]\n", "[genesis]\nseed = \"00\"\n", 1)),
        ] {
            assert_ne!(bad, text);
            std::fs::write(&path, &bad).unwrap();
            match NodeConfig::load(&path) {
                Err(e @ ConfigError::Parse { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("unknown field `{typo}`")), "{msg}");
                    assert!(msg.contains("node.toml"), "{msg}");
                }
                other => panic!("{typo}: {other:?}"),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Finding: `base_timeout_ms = 0` was accepted (every view timer fired at once: a storm of
    /// view changes), as was `client_idle_timeout_ms = 0` (every client closed at once); only
    /// `fetch_deadline_ms = 0` was refused, in the service. All three are refused in
    /// `validate`.
    #[test]
    fn zero_durations_are_refused() {
        config().validate().unwrap();
        type Set = fn(&mut NodeConfig);
        let zeros: [(&str, Set); 3] = [
            ("base_timeout_ms", |c| c.base_timeout_ms = 0),
            ("client_idle_timeout_ms", |c| c.client_idle_timeout_ms = 0),
            ("fetch_deadline_ms", |c| c.fetch_deadline_ms = 0),
        ];
        for (name, zero) in zeros {
            let mut c = config();
            zero(&mut c);
            let (field, reason) = field_error(c.validate());
            assert_eq!(field, name);
            assert!(reason.starts_with("must be positive, not 0"), "{reason}");
        }
    }

    /// A limit beyond what a payload can hold, or none at all, and a genesis too large to build
    /// in memory, are refused naming the field and the bound.
    #[test]
    fn sizes_beyond_their_bounds_are_refused() {
        for n in [0, MAX_BLOCK_TXS + 1, usize::MAX] {
            let mut c = config();
            c.max_block_txs = n;
            let (field, reason) = field_error(c.validate());
            assert_eq!(field, "max_block_txs");
            assert!(reason.starts_with(&format!("{n} is outside 1..={MAX_BLOCK_TXS}")), "{reason}");
        }
        let mut c = config();
        c.max_block_txs = MAX_BLOCK_TXS;
        c.validate().unwrap();
        let mut c = config();
        c.genesis.outputs = u32::MAX;
        let (field, reason) = field_error(c.genesis.genesis().map(|_| ()));
        assert_eq!(field, "genesis.outputs");
        assert!(reason.starts_with(&format!("{} is above {MAX_GENESIS_OUTPUTS}", u32::MAX)), "{reason}");
        c.genesis.outputs = 8;
        c.genesis.keys = MAX_GENESIS_KEYS + 1;
        assert_eq!(field_error(c.genesis.genesis().map(|_| ())).0, "genesis.keys");
    }

    /// Finding: two validators with the same `address` were accepted (calls meant for one reach
    /// the other, whose handshake then fails for ever). Refused, naming both entries.
    #[test]
    fn duplicate_validator_addresses_are_refused() {
        let mut c = config();
        c.validators[2].address = c.validators[0].address;
        let (field, reason) = field_error(c.validate());
        assert_eq!(field, "validators[2].address");
        assert_eq!(reason, "127.0.0.1:7000 is validators[0].address too");
        // Another port on the same host is another address.
        c.validators[2].address = ([127, 0, 0, 1], 7100).into();
        c.validate().unwrap();
    }

    /// Errors name the offending value where it helps.
    #[test]
    fn field_errors_name_the_value() {
        let mut c = config();
        c.index = 4;
        let e = c.validator_set().unwrap_err();
        assert_eq!(e.to_string(), "index: 4 is out of range for 4 validators");

        let c = config();
        let set = c.validator_set().unwrap();
        let mut other = c.clone();
        other.key = hex::encode(key(2).to_bytes());
        assert_eq!(other.signing_key(&set).unwrap_err().to_string(), "key: does not match validators[1].public_key");
        other.key = "abcd".into();
        assert_eq!(
            other.signing_key(&set).unwrap_err().to_string(),
            "key: must be 32 bytes (64 hex digits), not 2 bytes"
        );

        let mut g = c.genesis.clone();
        g.keys = 0;
        assert_eq!(g.genesis().unwrap_err().to_string(), "genesis.keys: must be positive, not 0");
        let mut g = c.genesis.clone();
        g.value = 0;
        assert_eq!(g.genesis().unwrap_err().to_string(), "genesis.value: must be positive, not 0");
    }
}
