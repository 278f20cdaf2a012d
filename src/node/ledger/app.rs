//! The consensus application of a validator: a [`Ledger`] plus a mempool.
//!
//! - `propose` builds the next block from the mempool (oldest first, up to `max_block_txs` and
//!   [`MAX_PAYLOAD_BYTES`], skipping transactions whose inputs are gone or already taken by an
//!   earlier one).
//! - `validate` rejects a payload above [`MAX_PAYLOAD_BYTES`], a block with more than
//!   `max_block_txs` transactions (the count is read from the block's header before any
//!   transaction is decoded, [`Block::transaction_count`]: a leader's 24 MiB of empty
//!   transactions, 72 bytes each in memory, is refused without decoding them), and one that is
//!   not the canonical encoding of a block ([`Block::decode`]: no trailing bytes), then runs
//!   [`Ledger::validate_block`] against the tip. The limits are validity rules: every validator
//!   of a chain must configure the same `max_block_txs`.
//! - `commit` applies a final block and drops the mempool entries it made obsolete. A final
//!   block that does not apply is an error ([`CommitError`]): the local ledger diverged from the
//!   quorum's, and the node stops rather than store and serve it.
//!
//! Transactions enter the mempool through [`LedgerApp::submit`], which checks a whole batch at
//! once (one engine batch for all their signatures) and admits exactly the valid ones; the
//! verdicts are per transaction, naming the offending input. Signatures are the cost, so a
//! submission pays for them only where a transaction could enter the mempool: of one
//! submission only the first [`MAX_SUBMIT_TXS`] are considered, and a transaction already in
//! the mempool (or earlier in the same submission), too large for a block, beyond the room
//! left in the mempool, whose inputs would take the submission past
//! [`MAX_SUBMIT_SIGNATURES`], or that spends an output a transaction in the mempool (or earlier
//! in the same submission) already spends is refused before any signature is verified.
//!
//! **First seen wins.** The mempool never holds two transactions that spend the same output:
//! only one of them could ever be final, and admitting conflicts let the owner of one output
//! fill the mempool (and make the validator verify a signature for each) with spends of it.
//! A conflicting transaction is refused ([`SubmitError::Conflict`]), with no replacement; an
//! output is free again when the transaction spending it leaves the mempool unconfirmed
//! (refused as invalid), and a final block drops every waiting transaction that spends an
//! output the block spent.

use super::state::{BlockError, Ledger, TxError};
use super::tx::{Block, OutPoint, Transaction, BLOCK_OVERHEAD_BYTES, MAX_PAYLOAD_BYTES};
use crate::node::consensus::{Application, CommitError, Digest, Height, ValidatorIndex};
use std::collections::{HashMap, HashSet, VecDeque};

/// Most transactions of one [`LedgerApp::submit`] call that are considered; the rest are refused
/// ([`SubmitError::PastLimit`]) unverified. With [`MAX_SUBMIT_SIGNATURES`] it bounds the work one
/// client frame makes the consensus task do; a `Submit` frame claiming more does not even decode
/// ([`crate::node::net`]).
pub const MAX_SUBMIT_TXS: usize = 1024;

/// Most signatures (inputs) one [`LedgerApp::submit`] call makes the ledger verify: the
/// candidates' inputs are counted in order, and a transaction that would take the count past
/// this is refused unverified ([`SubmitError::PastLimit`]). A transaction may carry one
/// signature per input, so [`MAX_SUBMIT_TXS`] alone let 1024 transactions of 640 inputs each
/// cost 655,360 verifications. 1024 lets a full frame of one-input transfers (the testnet
/// wallet's) through; a transaction with more inputs than this cannot be submitted (it stays
/// valid in a block).
pub const MAX_SUBMIT_SIGNATURES: usize = 1024;

/// A ledger with a mempool, as a consensus application.
#[derive(Debug)]
pub struct LedgerApp {
    ledger: Ledger,
    me: ValidatorIndex,
    max_block_txs: usize,
    max_mempool: usize,
    mempool: VecDeque<Transaction>,
    in_pool: HashSet<Digest>,
    /// The outputs the mempool's transactions spend, each with the one transaction spending it.
    spent_in_pool: HashMap<OutPoint, Digest>,
    last_rejection: Option<BlockError>,
    rejected_blocks: u64,
}

/// Why [`LedgerApp::submit`] refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Invalid.
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// Already in the mempool.
    #[error("already in the mempool")]
    Duplicate,
    /// Mempool full (counting the transactions before it in the same submission that were
    /// still candidates).
    #[error("mempool full")]
    Full,
    /// Past the first [`MAX_SUBMIT_TXS`] transactions of one submission.
    #[error("only the first {0} transactions of a submission are considered")]
    PastLimit(usize),
    /// Its inputs would take the submission's signatures past [`MAX_SUBMIT_SIGNATURES`].
    #[error("a submission's transactions carry at most {0} signatures in all")]
    PastSignatureLimit(usize),
    /// Too large to fit any block.
    #[error("transaction of {0} bytes cannot fit a block")]
    TooLarge(usize),
    /// Input `input` spends an output that a transaction in the mempool (or earlier in the
    /// same submission) already spends: first seen wins (module docs).
    #[error("input {input} spends an output already spent by a transaction in the mempool")]
    Conflict {
        /// Index of the input.
        input: usize,
    },
}

impl LedgerApp {
    /// An application for validator `me`.
    pub fn new(ledger: Ledger, me: ValidatorIndex, max_block_txs: usize, max_mempool: usize) -> LedgerApp {
        LedgerApp {
            ledger,
            me,
            max_block_txs,
            max_mempool,
            mempool: VecDeque::new(),
            in_pool: HashSet::new(),
            spent_in_pool: HashMap::new(),
            last_rejection: None,
            rejected_blocks: 0,
        }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
    /// Transactions waiting.
    pub fn mempool_len(&self) -> usize {
        self.mempool.len()
    }
    /// Why the last rejected block was rejected.
    pub fn last_rejection(&self) -> Option<&BlockError> {
        self.last_rejection.as_ref()
    }
    /// Blocks rejected so far.
    pub fn rejected_blocks(&self) -> u64 {
        self.rejected_blocks
    }

    /// The validity rules of a proposed payload at `height` (see the module docs).
    pub fn check_block(&mut self, height: Height, payload: &[u8]) -> Result<(), BlockError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(BlockError::TooLarge { bytes: payload.len(), max: MAX_PAYLOAD_BYTES });
        }
        // The count first, so that a block of too many transactions costs no decoding.
        let count = Block::transaction_count(payload).map_err(|e| BlockError::Decode(e.to_string()))?;
        if count > self.max_block_txs {
            return Err(BlockError::TooManyTransactions { got: count, max: self.max_block_txs });
        }
        let b = Block::decode(payload).map_err(|e| BlockError::Decode(e.to_string()))?;
        if b.height != height {
            return Err(BlockError::Height { got: b.height, want: height });
        }
        self.ledger.validate_block(&b)
    }

    /// Checks `txs` in one signature batch and admits the valid ones. One result per input
    /// transaction.
    ///
    /// The cheap refusals come first, so no signature is verified for them: past the first
    /// [`MAX_SUBMIT_TXS`] ([`SubmitError::PastLimit`]); beyond the mempool's room, counting the
    /// candidates before it in `txs` ([`SubmitError::Full`]: when the mempool has room for `k`
    /// more, only the first `k` candidates are checked, valid or not); too large for a block;
    /// an id already in the mempool or earlier in `txs` ([`SubmitError::Duplicate`]; the id
    /// leaves out the signatures, so a copy with other signatures is a duplicate too); inputs
    /// that would take the candidates' inputs past [`MAX_SUBMIT_SIGNATURES`]
    /// ([`SubmitError::PastSignatureLimit`]; a later transaction with fewer inputs may still
    /// fit); and an input spending what the mempool or an earlier candidate in `txs` spends
    /// ([`SubmitError::Conflict`]; a candidate later refused as invalid frees its outputs for
    /// later submissions, not for the rest of this one). At most [`MAX_SUBMIT_SIGNATURES`]
    /// signatures are verified per call.
    pub fn submit(&mut self, txs: Vec<Transaction>) -> Vec<Result<(), SubmitError>> {
        let room = self.max_mempool.saturating_sub(self.mempool.len());
        let mut out = Vec::with_capacity(txs.len());
        let mut candidates: Vec<(usize, Digest)> = Vec::new();
        let mut checked: Vec<Transaction> = Vec::new();
        let mut signatures = 0usize;
        for (i, tx) in txs.into_iter().enumerate() {
            out.push(if i >= MAX_SUBMIT_TXS {
                Err(SubmitError::PastLimit(MAX_SUBMIT_TXS))
            } else if checked.len() >= room {
                Err(SubmitError::Full)
            } else if tx.encoded_len() > MAX_PAYLOAD_BYTES - BLOCK_OVERHEAD_BYTES {
                Err(SubmitError::TooLarge(tx.encoded_len()))
            } else if signatures.saturating_add(tx.inputs.len()) > MAX_SUBMIT_SIGNATURES {
                Err(SubmitError::PastSignatureLimit(MAX_SUBMIT_SIGNATURES))
            } else {
                // Claimed now, so a copy or a conflict later in `txs` is refused; given back if
                // invalid.
                let id = tx.id();
                if self.in_pool.contains(&id) {
                    Err(SubmitError::Duplicate)
                } else if let Some(input) = self.conflict(&tx) {
                    Err(SubmitError::Conflict { input })
                } else {
                    self.in_pool.insert(id);
                    self.claim(&tx, id);
                    // Verification checks one signature per input (at most).
                    signatures += tx.inputs.len();
                    candidates.push((i, id));
                    checked.push(tx);
                    Ok(())
                }
            });
        }
        let checks = self.ledger.check_transactions(&checked);
        for (((i, id), tx), r) in candidates.into_iter().zip(checked).zip(checks) {
            match r {
                Ok(()) => self.mempool.push_back(tx),
                Err(e) => {
                    self.in_pool.remove(&id);
                    self.release(&tx, id);
                    out[i] = Err(SubmitError::Invalid(e));
                }
            }
        }
        out
    }

    /// The first input of `tx` whose output a transaction in the mempool spends (or a candidate
    /// of the submission being checked). An input that repeats an earlier input of `tx` is the
    /// ledger's to refuse ([`TxError`]), not a conflict.
    fn conflict(&self, tx: &Transaction) -> Option<usize> {
        tx.inputs.iter().position(|o| self.spent_in_pool.contains_key(o))
    }

    /// Records that `id` (= `tx.id()`) spends the outputs of `tx`'s inputs.
    fn claim(&mut self, tx: &Transaction, id: Digest) {
        for o in &tx.inputs {
            self.spent_in_pool.entry(*o).or_insert(id);
        }
    }

    /// Frees the outputs `tx` (id `id`) spent, once it left the mempool.
    fn release(&mut self, tx: &Transaction, id: Digest) {
        for o in &tx.inputs {
            if self.spent_in_pool.get(o) == Some(&id) {
                self.spent_in_pool.remove(o);
            }
        }
    }
}

impl Application for LedgerApp {
    fn propose(&mut self, height: Height) -> Vec<u8> {
        let mut taken: HashSet<OutPoint> = HashSet::new();
        let mut txs = Vec::new();
        let mut bytes = BLOCK_OVERHEAD_BYTES;
        let mut keep = VecDeque::with_capacity(self.mempool.len());
        while let Some(tx) = self.mempool.pop_front() {
            if !tx.inputs.iter().all(|o| self.ledger.output(o).is_some()) {
                // Spent by a final block: obsolete (commit drops these already; kept as a
                // guard, so no transaction in a proposal spends a spent output).
                let id = tx.id();
                self.in_pool.remove(&id);
                self.release(&tx, id);
                continue;
            }
            if txs.len() < self.max_block_txs && tx.inputs.iter().all(|o| !taken.contains(o)) {
                let len = tx.encoded_len();
                if bytes.saturating_add(len) <= MAX_PAYLOAD_BYTES {
                    bytes += len;
                    taken.extend(tx.inputs.iter().copied());
                    txs.push(tx.clone());
                }
            }
            keep.push_back(tx);
        }
        self.mempool = keep;
        Block { height, parent: self.ledger.tip(), proposer: self.me, transactions: txs }.encode()
    }

    fn validate(&mut self, height: Height, payload: &[u8]) -> bool {
        match self.check_block(height, payload) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(height, error = %e, "rejected block");
                self.last_rejection = Some(e);
                self.rejected_blocks += 1;
                false
            }
        }
    }

    fn commit(&mut self, height: Height, payload: &[u8]) -> Result<(), CommitError> {
        let r = Block::decode(payload)
            .map_err(|e| BlockError::Decode(e.to_string()))
            .and_then(|b| self.ledger.apply_block(&b, Digest::of(payload)).map(|()| b));
        match r {
            Ok(b) => {
                // Leaving the mempool: the block's transactions, and every waiting transaction
                // that spends an output the block spent (it can never be final now).
                let mut gone: HashSet<Digest> = HashSet::new();
                for tx in &b.transactions {
                    gone.insert(tx.id());
                    gone.extend(tx.inputs.iter().filter_map(|o| self.spent_in_pool.get(o).copied()));
                }
                if gone.iter().any(|id| self.in_pool.contains(id)) {
                    let mut left = VecDeque::with_capacity(self.mempool.len());
                    for tx in std::mem::take(&mut self.mempool) {
                        let id = tx.id();
                        if gone.contains(&id) {
                            self.in_pool.remove(&id);
                            self.release(&tx, id);
                        } else {
                            left.push_back(tx);
                        }
                    }
                    self.mempool = left;
                }
                Ok(())
            }
            // A certified block that does not apply means this ledger diverged from the
            // quorum: nothing safe to do but stop (the core halts, the node exits).
            Err(e) => {
                tracing::error!(height, error = %e, "final block does not apply to the local ledger");
                Err(CommitError(format!("final block {height} does not apply to the local ledger: {e}")))
            }
        }
    }
}
