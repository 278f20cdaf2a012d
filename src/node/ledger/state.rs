//! The UTXO set and the rules that move it forward: transaction and block validation, with every
//! signature verified in batches through [`Engine::verify`].
//!
//! # Validity
//!
//! A transaction is valid against a UTXO set when: it has at least one input and one output, one
//! signature per input, distinct inputs that are all unspent outputs, positive output values,
//! outputs summing to no more than inputs (the difference is burnt; no overflow), and every
//! signature verifies under the spent output's lock (Ed25519 under ZIP-215, or BIP-340). A block
//! at height `h` is valid when it extends the tip (`height == h`, `parent == tip`), and its
//! transactions are each valid against the UTXO set *before the block* and spend no output twice
//! (outputs created in a block are spendable from the next block on).
//!
//! Signatures of all transactions considered together go into one [`Batch`]; the per-signature
//! verdicts map back to each transaction, so one bad signature rejects exactly the transaction
//! that carries it ([`TxError::BadSignature`] names the input).

use super::tx::*;
use crate::node::consensus::{Digest, Height};
use crate::sigverify::{Batch, Scheme};
use crate::Engine;
use std::collections::{HashMap, HashSet};

/// Why a transaction is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// No inputs.
    #[error("transaction has no inputs")]
    NoInputs,
    /// No outputs.
    #[error("transaction has no outputs")]
    NoOutputs,
    /// Signature count differs from input count.
    #[error("{signatures} signatures for {inputs} inputs")]
    SignatureCount {
        /// Inputs.
        inputs: usize,
        /// Signatures.
        signatures: usize,
    },
    /// The same output spent twice (in the transaction or the block).
    #[error("input {input} spends {outpoint:?} twice")]
    DoubleSpend {
        /// Input index.
        input: usize,
        /// The output.
        outpoint: OutPoint,
    },
    /// An input that is not an unspent output.
    #[error("input {input} spends {outpoint:?}, which is not an unspent output")]
    Missing {
        /// Input index.
        input: usize,
        /// The output.
        outpoint: OutPoint,
    },
    /// An output of value 0.
    #[error("output {output} has value 0")]
    ZeroValue {
        /// Output index.
        output: usize,
    },
    /// Sums overflow u64.
    #[error("values overflow u64")]
    Overflow,
    /// Outputs exceed inputs.
    #[error("outputs {outputs} exceed inputs {inputs}")]
    Overspend {
        /// Sum of inputs.
        inputs: u64,
        /// Sum of outputs.
        outputs: u64,
    },
    /// A signature that does not verify.
    #[error("signature of input {input} does not verify")]
    BadSignature {
        /// Input index.
        input: usize,
    },
}

/// Why a block is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Not the canonical encoding of a block.
    #[error("block does not decode: {0}")]
    Decode(String),
    /// A payload above [`MAX_PAYLOAD_BYTES`].
    #[error("block of {bytes} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Payload bytes.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// More transactions than the chain's `max_block_txs`.
    #[error("block has {got} transactions, at most {max} allowed")]
    TooManyTransactions {
        /// In the block.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// Wrong height.
    #[error("block height {got}, expected {want}")]
    Height {
        /// In the block.
        got: Height,
        /// Expected.
        want: Height,
    },
    /// Does not extend the tip.
    #[error("block parent {got:?} is not the tip {want:?}")]
    Parent {
        /// In the block.
        got: Digest,
        /// The tip.
        want: Digest,
    },
    /// An invalid transaction.
    #[error("transaction {index} ({id:?}): {error}")]
    Transaction {
        /// Index in the block.
        index: usize,
        /// Its id.
        id: Digest,
        /// Why.
        error: TxError,
    },
}

/// How many fully verified transactions to remember (their signatures are not re-verified when
/// they reappear in a block).
const VERIFIED_CACHE: usize = 1 << 20;

/// The ledger: UTXO set at a height, and the engine that verifies signatures.
#[derive(Debug, Clone)]
pub struct Ledger {
    engine: Engine,
    utxo: HashMap<OutPoint, Output>,
    height: Height,
    tip: Digest,
    verified: HashSet<Digest>,
    signatures_verified: u64,
}

fn scheme_of(lock: &Lock) -> (Scheme, &[u8; 32]) {
    match lock {
        Lock::Ed25519(k) => (Scheme::Ed25519, k),
        Lock::Bip340(k) => (Scheme::Bip340, k),
    }
}

/// Full-encoding hash (covers signatures), the key of the verified cache.
fn wtxid(tx: &Transaction) -> Digest {
    Digest::of(&postcard::to_stdvec(tx).unwrap_or_default())
}

impl Ledger {
    /// The ledger at genesis (next block: height 0).
    pub fn new(genesis: &Genesis, engine: Engine) -> Ledger {
        let id = genesis.id();
        let utxo =
            genesis.outputs.iter().enumerate().map(|(i, o)| (OutPoint { tx: id, index: i as u32 }, *o)).collect();
        Ledger { engine, utxo, height: 0, tip: id, verified: HashSet::new(), signatures_verified: 0 }
    }

    /// A ledger restored from storage.
    pub fn from_parts(engine: Engine, utxo: HashMap<OutPoint, Output>, height: Height, tip: Digest) -> Ledger {
        Ledger { engine, utxo, height, tip, verified: HashSet::new(), signatures_verified: 0 }
    }

    /// Next block height (= blocks applied).
    pub fn height(&self) -> Height {
        self.height
    }
    /// Id of the last applied block (the genesis id before any).
    pub fn tip(&self) -> Digest {
        self.tip
    }
    /// The unspent output at `o`, if any.
    pub fn output(&self, o: &OutPoint) -> Option<&Output> {
        self.utxo.get(o)
    }
    /// Number of unspent outputs.
    pub fn utxo_len(&self) -> usize {
        self.utxo.len()
    }
    /// Signatures this ledger has sent to the engine.
    pub fn signatures_verified(&self) -> u64 {
        self.signatures_verified
    }
    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Structure, UTXO and value checks (no signatures). `spent` collects outputs spent so far
    /// in the same block.
    fn check_spend(&self, tx: &Transaction, spent: &mut HashSet<OutPoint>) -> Result<(), TxError> {
        if tx.inputs.is_empty() {
            return Err(TxError::NoInputs);
        }
        if tx.outputs.is_empty() {
            return Err(TxError::NoOutputs);
        }
        if tx.signatures.len() != tx.inputs.len() {
            return Err(TxError::SignatureCount { inputs: tx.inputs.len(), signatures: tx.signatures.len() });
        }
        let mut sum_in = 0u64;
        let mut mine = HashSet::new();
        for (input, o) in tx.inputs.iter().enumerate() {
            if spent.contains(o) || !mine.insert(*o) {
                return Err(TxError::DoubleSpend { input, outpoint: *o });
            }
            let out = self.utxo.get(o).ok_or(TxError::Missing { input, outpoint: *o })?;
            sum_in = sum_in.checked_add(out.value).ok_or(TxError::Overflow)?;
        }
        let mut sum_out = 0u64;
        for (output, o) in tx.outputs.iter().enumerate() {
            if o.value == 0 {
                return Err(TxError::ZeroValue { output });
            }
            sum_out = sum_out.checked_add(o.value).ok_or(TxError::Overflow)?;
        }
        if sum_out > sum_in {
            return Err(TxError::Overspend { inputs: sum_in, outputs: sum_out });
        }
        spent.extend(mine);
        Ok(())
    }

    /// Checks `txs` (each on its own, against the current UTXO set, not against each other);
    /// all signatures in one engine batch. One result per transaction.
    pub fn check_transactions(&mut self, txs: &[Transaction]) -> Vec<Result<(), TxError>> {
        let mut results: Vec<Result<(), TxError>> =
            txs.iter().map(|tx| self.check_spend(tx, &mut HashSet::new())).collect();
        self.verify_signatures(txs, &mut results);
        results
    }

    /// Batch-verifies the signatures of every transaction whose result is still `Ok` and not
    /// already verified; turns a failed verdict into [`TxError::BadSignature`].
    fn verify_signatures(&mut self, txs: &[Transaction], results: &mut [Result<(), TxError>]) {
        let mut batch = Batch::new();
        let mut owners: Vec<(usize, usize)> = Vec::new();
        let mut keys: Vec<Option<Digest>> = vec![None; txs.len()];
        for (t, tx) in txs.iter().enumerate() {
            if results[t].is_err() {
                continue;
            }
            let key = wtxid(tx);
            if self.verified.contains(&key) {
                continue;
            }
            keys[t] = Some(key);
            let msg = tx.sighash();
            for (i, (o, sig)) in tx.inputs.iter().zip(&tx.signatures).enumerate() {
                let Some(out) = self.utxo.get(o) else { continue };
                let (scheme, pk) = scheme_of(&out.lock);
                match batch.push(scheme, pk, &msg, &sig.0) {
                    Ok(_) => owners.push((t, i)),
                    Err(_) => results[t] = Err(TxError::BadSignature { input: i }),
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        self.signatures_verified += batch.len() as u64;
        let verdicts = self.engine.verify(&batch);
        for (k, (t, i)) in owners.iter().enumerate() {
            if verdicts.get(k) != Some(true) && results[*t].is_ok() {
                results[*t] = Err(TxError::BadSignature { input: *i });
            }
        }
        if self.verified.len() > VERIFIED_CACHE {
            self.verified.clear();
        }
        for (t, key) in keys.into_iter().enumerate() {
            if let (Some(key), Ok(())) = (key, &results[t]) {
                self.verified.insert(key);
            }
        }
    }

    /// Validates a block against the tip (see the module rules).
    pub fn validate_block(&mut self, block: &Block) -> Result<(), BlockError> {
        if block.height != self.height {
            return Err(BlockError::Height { got: block.height, want: self.height });
        }
        if block.parent != self.tip {
            return Err(BlockError::Parent { got: block.parent, want: self.tip });
        }
        let mut spent = HashSet::new();
        let mut results: Vec<Result<(), TxError>> =
            block.transactions.iter().map(|tx| self.check_spend(tx, &mut spent)).collect();
        self.verify_signatures(&block.transactions, &mut results);
        for (index, r) in results.into_iter().enumerate() {
            if let Err(error) = r {
                return Err(BlockError::Transaction { index, id: block.transactions[index].id(), error });
            }
        }
        Ok(())
    }

    /// Applies a block that is final (validated by this ledger or certified by a quorum).
    /// Checks height and parent; spends and creates outputs.
    pub fn apply_block(&mut self, block: &Block, id: Digest) -> Result<(), BlockError> {
        if block.height != self.height {
            return Err(BlockError::Height { got: block.height, want: self.height });
        }
        if block.parent != self.tip {
            return Err(BlockError::Parent { got: block.parent, want: self.tip });
        }
        for tx in &block.transactions {
            let txid = tx.id();
            for o in &tx.inputs {
                self.utxo.remove(o);
            }
            for (i, out) in tx.outputs.iter().enumerate() {
                self.utxo.insert(OutPoint { tx: txid, index: i as u32 }, *out);
            }
            self.verified.remove(&wtxid(tx));
        }
        self.height += 1;
        self.tip = id;
        Ok(())
    }

    /// The spent and created outputs of a block (for storage).
    pub fn changes(block: &Block) -> (Vec<OutPoint>, Vec<(OutPoint, Output)>) {
        let mut spent = Vec::new();
        let mut created = Vec::new();
        for tx in &block.transactions {
            let txid = tx.id();
            spent.extend(tx.inputs.iter().copied());
            created.extend(tx.outputs.iter().enumerate().map(|(i, o)| (OutPoint { tx: txid, index: i as u32 }, *o)));
        }
        (spent, created)
    }
}
