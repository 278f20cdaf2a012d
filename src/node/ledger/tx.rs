//! Transactions and blocks: the data model of the ledger and its canonical encoding.
//!
//! # Rules
//!
//! - An output locks `value` to one public key: Ed25519 (32-byte compressed point) or BIP-340
//!   (32-byte x-only secp256k1 key).
//! - A transaction spends outputs ([`OutPoint`]s) and creates outputs. Its id ([`Transaction::id`])
//!   is SHA-256 of the canonical encoding *without* signatures; every input carries a 64-byte
//!   signature by the spent output's key over [`Transaction::sighash`] (domain tag ‖ id), so one
//!   signature commits to all inputs and outputs.
//! - A block is `height ‖ parent ‖ proposer ‖ transactions`; its id is SHA-256 of its encoding,
//!   which is also the consensus payload digest.
//! - A block has exactly one encoding: [`Block::decode`] accepts only bytes that [`Block::encode`]
//!   produces again byte for byte (no trailing bytes, no overlong varints), so a proposer cannot
//!   pad a block or give one block several digests. A payload is at most [`MAX_PAYLOAD_BYTES`].
//! - A block's transaction count can be read from its header ([`Block::transaction_count`])
//!   before any transaction is decoded: an empty transaction is [`MIN_TX_BYTES`] on the wire but
//!   72 in memory, so a validity limit on the count is checked on the count alone
//!   ([`LedgerApp::check_block`](super::app::LedgerApp::check_block)).

use crate::node::consensus::{Digest, Height, ValidatorIndex};
use serde::{Deserialize, Serialize};

/// Domain tag of transaction signatures.
pub const TX_DOMAIN: &[u8] = b"parthenon/tx/v1";

/// Who may spend an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lock {
    /// An Ed25519 public key.
    Ed25519([u8; 32]),
    /// A BIP-340 x-only public key.
    Bip340([u8; 32]),
}

/// A reference to an output: the creating transaction's id and the output's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OutPoint {
    /// Id of the transaction that created the output.
    pub tx: Digest,
    /// Index among its outputs.
    pub index: u32,
}

/// An output: an amount and its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// Amount; positive.
    pub value: u64,
    /// Who may spend it.
    pub lock: Lock,
}

/// A transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Outputs spent (at least one, distinct).
    pub inputs: Vec<OutPoint>,
    /// Outputs created (at least one).
    pub outputs: Vec<Output>,
    /// One signature per input, in input order (not part of the id).
    pub signatures: Vec<crate::node::consensus::Signature>,
}

#[derive(Serialize)]
struct Unsigned<'a> {
    inputs: &'a [OutPoint],
    outputs: &'a [Output],
}

impl Transaction {
    /// The id: SHA-256 of the encoding without signatures.
    pub fn id(&self) -> Digest {
        let u = Unsigned { inputs: &self.inputs, outputs: &self.outputs };
        Digest::of(&postcard::to_stdvec(&u).unwrap_or_default())
    }

    /// What each input's key signs: `TX_DOMAIN ‖ id`.
    pub fn sighash(&self) -> Vec<u8> {
        sighash_of(&self.id())
    }

    /// Bytes of its encoding inside a block.
    pub fn encoded_len(&self) -> usize {
        postcard::to_stdvec(self).map_or(usize::MAX, |v| v.len())
    }
}

/// `TX_DOMAIN ‖ id`.
pub fn sighash_of(id: &Digest) -> Vec<u8> {
    let mut m = Vec::with_capacity(TX_DOMAIN.len() + 32);
    m.extend_from_slice(TX_DOMAIN);
    m.extend_from_slice(&id.0);
    m
}

/// A block: the consensus payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Height (the genesis state is before height 0).
    pub height: Height,
    /// Id of the previous block (the genesis id for height 0).
    pub parent: Digest,
    /// The validator that built it.
    pub proposer: ValidatorIndex,
    /// Transactions, applied in order.
    pub transactions: Vec<Transaction>,
}

/// Largest consensus payload (encoded block) a validator proposes or accepts: 24 MiB.
///
/// The bound keeps every message that carries payloads inside the limits of the layers below:
///
/// - a stored block record (height, payload, commit certificate; see
///   [`crate::node::storage`]) is at most `MAX_PAYLOAD_BYTES + 20 +`
///   [`CommitCert::max_encoded_len`]`(65535)` ≈ 31.6 MiB, within the transfer layer's
///   [`MAX_BLOCK_BYTES`](crate::transfer::MAX_BLOCK_BYTES) (64 MiB), so every final block can be
///   served to a catching-up peer;
/// - a view change carries at most two payloads (its prepared certificate's and its last
///   vote's): 48 MiB, leaving 16 MiB of a [`MAX_FRAME`](crate::node::net::MAX_FRAME) (64 MiB)
///   for the signed parts.
///
/// (Both inequalities are checked by unit tests.)
///
/// [`CommitCert::max_encoded_len`]: crate::node::consensus::CommitCert::max_encoded_len
pub const MAX_PAYLOAD_BYTES: usize = 24 << 20;

/// Bytes of a block's encoding besides its transactions: height and vector length (varints of at
/// most 10 bytes each), parent (32), proposer (varint of at most 3).
pub const BLOCK_OVERHEAD_BYTES: usize = 10 + 32 + 3 + 10;

/// Smallest encoding of a transaction: three empty vectors, one length byte each.
pub const MIN_TX_BYTES: usize = 3;

/// Why bytes are not a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a block encoding at all.
    #[error("{0}")]
    Postcard(#[from] postcard::Error),
    /// A block followed by more bytes.
    #[error("{0} trailing bytes after the block")]
    Trailing(usize),
    /// A block whose canonical encoding differs from the bytes (e.g. an overlong varint).
    #[error("non-canonical encoding")]
    NonCanonical,
    /// A transaction count that the bytes after it cannot hold ([`MIN_TX_BYTES`] each).
    #[error("block claims {claimed} transactions in {bytes} bytes (each takes at least {MIN_TX_BYTES})")]
    Truncated {
        /// Transactions claimed.
        claimed: usize,
        /// Bytes after the count.
        bytes: usize,
    },
}

impl Block {
    /// Canonical encoding (the consensus payload).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }
    /// The number of transactions the block encoded in `bytes` claims, read from its header
    /// (height, parent, proposer, then the count) without decoding any transaction; a header
    /// that does not decode is an error. Nothing after the count is checked: for bytes that
    /// [`Block::decode`] accepts it is `transactions.len()`.
    pub fn transaction_count(bytes: &[u8]) -> Result<usize, DecodeError> {
        Block::count_and_rest(bytes).map(|(claimed, _)| claimed)
    }

    /// The claimed transaction count and the bytes after it. Postcard writes a vector's length
    /// as a `usize` varint, the encoding of a `u64` on a 64-bit target (on a narrower one a count
    /// past `usize::MAX` reads as `usize::MAX`: too many either way).
    fn count_and_rest(bytes: &[u8]) -> Result<(usize, &[u8]), DecodeError> {
        let ((_, _, _, claimed), rest): ((Height, Digest, ValidatorIndex, u64), &[u8]) =
            postcard::take_from_bytes(bytes)?;
        Ok((usize::try_from(claimed).unwrap_or(usize::MAX), rest))
    }

    /// Decodes [`Block::encode`]'s output, and nothing else: trailing bytes and non-canonical
    /// encodings are errors. A transaction count the bytes after it cannot hold at
    /// [`MIN_TX_BYTES`] each is refused before any transaction is decoded
    /// ([`DecodeError::Truncated`]).
    pub fn decode(bytes: &[u8]) -> Result<Block, DecodeError> {
        let (claimed, rest) = Block::count_and_rest(bytes)?;
        if claimed > rest.len() / MIN_TX_BYTES {
            return Err(DecodeError::Truncated { claimed, bytes: rest.len() });
        }
        let (block, rest): (Block, &[u8]) = postcard::take_from_bytes(bytes)?;
        if !rest.is_empty() {
            return Err(DecodeError::Trailing(rest.len()));
        }
        if block.encode() != bytes {
            return Err(DecodeError::NonCanonical);
        }
        Ok(block)
    }
}

/// The initial outputs, created by a pseudo-transaction whose id is [`Genesis::id`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Chain name (separates test networks).
    pub chain: String,
    /// Initial outputs; output `i` is `OutPoint { tx: id, index: i }`.
    pub outputs: Vec<Output>,
}

impl Genesis {
    /// SHA-256 of the encoding.
    pub fn id(&self) -> Digest {
        Digest::of(&postcard::to_stdvec(self).unwrap_or_default())
    }
}

/// A spending key of either scheme (signing only; verification goes through the engine).
#[derive(Clone)]
pub enum SpendKey {
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
    /// BIP-340.
    Bip340(k256::schnorr::SigningKey),
}

impl std::fmt::Debug for SpendKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SpendKey({:?})", self.lock())
    }
}

impl SpendKey {
    /// A key from 32 seed bytes: Ed25519 secret, or a secp256k1 scalar (`None` if the bytes are
    /// not a valid scalar, probability ~2^-128).
    pub fn from_seed(bip340: bool, seed: [u8; 32]) -> Option<SpendKey> {
        if bip340 {
            k256::schnorr::SigningKey::from_slice(&seed).ok().map(SpendKey::Bip340)
        } else {
            Some(SpendKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed)))
        }
    }

    /// The lock of outputs this key spends.
    pub fn lock(&self) -> Lock {
        match self {
            SpendKey::Ed25519(k) => Lock::Ed25519(k.verifying_key().to_bytes()),
            SpendKey::Bip340(k) => {
                let mut x = [0u8; 32];
                x.copy_from_slice(&k.verifying_key().to_bytes());
                Lock::Bip340(x)
            }
        }
    }

    /// Signs `msg` (BIP-340 with all-zero auxiliary randomness, which BIP-340 permits).
    pub fn sign(&self, msg: &[u8]) -> crate::node::consensus::Signature {
        match self {
            SpendKey::Ed25519(k) => crate::node::consensus::Sign::sign(k, msg),
            SpendKey::Bip340(k) => {
                let mut out = [0u8; 64];
                if let Ok(s) = k.sign_raw(msg, &[0u8; 32]) {
                    out.copy_from_slice(&s.to_bytes());
                }
                crate::node::consensus::Signature(out)
            }
        }
    }
}

/// Builds and signs a transaction spending `inputs` (each with the key of its output).
pub fn sign_transaction(inputs: &[(OutPoint, &SpendKey)], outputs: Vec<Output>) -> Transaction {
    let mut tx = Transaction { inputs: inputs.iter().map(|(o, _)| *o).collect(), outputs, signatures: Vec::new() };
    let msg = tx.sighash();
    tx.signatures = inputs.iter().map(|(_, k)| k.sign(&msg)).collect();
    tx
}
