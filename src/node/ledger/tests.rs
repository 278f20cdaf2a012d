use super::app::{LedgerApp, SubmitError};
use super::*;
use crate::node::consensus::{Application, Digest, Signature};
use crate::Engine;

fn key(bip340: bool, i: u8) -> SpendKey {
    SpendKey::from_seed(bip340, [i + 1; 32]).unwrap()
}

fn setup() -> (Ledger, Vec<SpendKey>, Digest) {
    setup_outputs(4)
}

/// Four keys (Ed25519 and BIP-340 alternating) and a genesis of `n` outputs of 100, output `j`
/// locked to key `j % 4`.
fn setup_outputs(n: u32) -> (Ledger, Vec<SpendKey>, Digest) {
    let keys: Vec<SpendKey> = (0..4).map(|i| key(i % 2 == 1, i)).collect();
    let genesis = Genesis {
        chain: "test".into(),
        outputs: (0..n).map(|j| Output { value: 100, lock: keys[j as usize % 4].lock() }).collect(),
    };
    let engine = Engine::builder()
        .detect_options(crate::detect::DetectOptions { skip_dpdk: true, ..Default::default() })
        .build()
        .unwrap();
    let id = genesis.id();
    (Ledger::new(&genesis, engine), keys, id)
}

fn op(tx: Digest, index: u32) -> OutPoint {
    OutPoint { tx, index }
}

#[test]
fn transfers_of_both_schemes_apply() {
    let (mut l, k, g) = setup();
    let t0 = sign_transaction(
        &[(op(g, 0), &k[0])],
        vec![Output { value: 60, lock: k[1].lock() }, Output { value: 40, lock: k[0].lock() }],
    );
    let t1 = sign_transaction(&[(op(g, 1), &k[1]), (op(g, 3), &k[3])], vec![Output { value: 200, lock: k[2].lock() }]);
    assert_eq!(l.check_transactions(&[t0.clone(), t1.clone()]), vec![Ok(()), Ok(())]);
    let block = Block { height: 0, parent: g, proposer: 0, transactions: vec![t0.clone(), t1.clone()] };
    l.validate_block(&block).unwrap();
    l.apply_block(&block, Digest::of(&block.encode())).unwrap();
    assert_eq!(l.height(), 1);
    assert!(l.output(&op(g, 0)).is_none());
    assert_eq!(l.output(&op(t1.id(), 0)).unwrap().value, 200);
    assert_eq!(l.utxo_len(), 1 + 2 + 1);
    // Spending a committed output of a BIP-340 key created in block 0.
    let t2 = sign_transaction(&[(op(t0.id(), 0), &k[1])], vec![Output { value: 60, lock: k[3].lock() }]);
    let b1 = Block { height: 1, parent: Digest::of(&block.encode()), proposer: 1, transactions: vec![t2] };
    l.validate_block(&b1).unwrap();
}

#[test]
fn per_signature_verdicts_reject_only_the_bad_transaction() {
    let (mut l, k, g) = setup();
    let good = sign_transaction(&[(op(g, 0), &k[0])], vec![Output { value: 1, lock: k[1].lock() }]);
    let mut bad_ed = sign_transaction(&[(op(g, 2), &k[2])], vec![Output { value: 1, lock: k[1].lock() }]);
    bad_ed.signatures[0].0[5] ^= 1;
    let mut bad_schnorr =
        sign_transaction(&[(op(g, 1), &k[1]), (op(g, 3), &k[3])], vec![Output { value: 1, lock: k[1].lock() }]);
    bad_schnorr.signatures[1] = Signature([7; 64]);
    // Signed by the wrong key.
    let wrong_key = sign_transaction(&[(op(g, 3), &k[1])], vec![Output { value: 1, lock: k[1].lock() }]);
    let r = l.check_transactions(&[good.clone(), bad_ed.clone(), bad_schnorr.clone(), wrong_key]);
    assert_eq!(r[0], Ok(()));
    assert_eq!(r[1], Err(TxError::BadSignature { input: 0 }));
    assert_eq!(r[2], Err(TxError::BadSignature { input: 1 }));
    assert_eq!(r[3], Err(TxError::BadSignature { input: 0 }));
    let block = Block { height: 0, parent: g, proposer: 0, transactions: vec![good, bad_ed.clone()] };
    assert_eq!(
        l.validate_block(&block),
        Err(BlockError::Transaction { index: 1, id: bad_ed.id(), error: TxError::BadSignature { input: 0 } })
    );
}

#[test]
fn spend_rules() {
    let (mut l, k, g) = setup();
    let lock = k[0].lock();
    let over = sign_transaction(&[(op(g, 0), &k[0])], vec![Output { value: 101, lock }]);
    let zero = sign_transaction(&[(op(g, 0), &k[0])], vec![Output { value: 0, lock }]);
    let missing = sign_transaction(&[(op(g, 9), &k[0])], vec![Output { value: 1, lock }]);
    let twice = sign_transaction(&[(op(g, 0), &k[0]), (op(g, 0), &k[0])], vec![Output { value: 1, lock }]);
    let overflow =
        sign_transaction(&[(op(g, 0), &k[0])], vec![Output { value: u64::MAX, lock }, Output { value: 2, lock }]);
    let mut unsigned = sign_transaction(&[(op(g, 0), &k[0])], vec![Output { value: 1, lock }]);
    unsigned.signatures.clear();
    let empty = Transaction { inputs: vec![], outputs: vec![Output { value: 1, lock }], signatures: vec![] };
    let r = l.check_transactions(&[over, zero, missing, twice, overflow, unsigned, empty]);
    assert_eq!(r[0], Err(TxError::Overspend { inputs: 100, outputs: 101 }));
    assert_eq!(r[1], Err(TxError::ZeroValue { output: 0 }));
    assert_eq!(r[2], Err(TxError::Missing { input: 0, outpoint: op(g, 9) }));
    assert_eq!(r[3], Err(TxError::DoubleSpend { input: 1, outpoint: op(g, 0) }));
    assert_eq!(r[4], Err(TxError::Overflow));
    assert_eq!(r[5], Err(TxError::SignatureCount { inputs: 1, signatures: 0 }));
    assert_eq!(r[6], Err(TxError::NoInputs));
    // Two transactions spending one output in one block.
    let a = sign_transaction(&[(op(g, 0), &k[0])], vec![Output { value: 1, lock }]);
    let b = sign_transaction(&[(op(g, 0), &k[0])], vec![Output { value: 2, lock }]);
    let block = Block { height: 0, parent: g, proposer: 0, transactions: vec![a, b.clone()] };
    assert_eq!(
        l.validate_block(&block),
        Err(BlockError::Transaction {
            index: 1,
            id: b.id(),
            error: TxError::DoubleSpend { input: 0, outpoint: op(g, 0) }
        })
    );
    let wrong_parent = Block { height: 0, parent: Digest([1; 32]), proposer: 0, transactions: vec![] };
    assert!(matches!(l.validate_block(&wrong_parent), Err(BlockError::Parent { .. })));
    let wrong_height = Block { height: 3, parent: g, proposer: 0, transactions: vec![] };
    assert_eq!(l.validate_block(&wrong_height), Err(BlockError::Height { got: 3, want: 0 }));
}

#[test]
fn app_proposes_validates_commits() {
    let (l, k, g) = setup();
    let mut app = LedgerApp::new(l, 0, 1000, 10_000);
    let a = sign_transaction(&[(op(g, 0), &k[0])], vec![Output { value: 1, lock: k[1].lock() }]);
    let conflict = sign_transaction(&[(op(g, 0), &k[0])], vec![Output { value: 2, lock: k[1].lock() }]);
    let mut bad = sign_transaction(&[(op(g, 1), &k[1])], vec![Output { value: 1, lock: k[1].lock() }]);
    bad.signatures[0].0[0] ^= 0x40;
    let r = app.submit(vec![a.clone(), conflict, bad, a.clone()]);
    assert_eq!(r[0], Ok(()));
    assert_eq!(r[1], Err(SubmitError::Conflict { input: 0 }), "first seen wins");
    assert_eq!(r[2], Err(SubmitError::Invalid(TxError::BadSignature { input: 0 })));
    assert_eq!(r[3], Err(SubmitError::Duplicate));
    let payload = app.propose(0);
    let block = Block::decode(&payload).unwrap();
    assert_eq!(block.transactions, vec![a]);
    assert!(app.validate(0, &payload));
    assert!(!app.validate(1, &payload));
    assert!(!app.validate(0, b"garbage"));
    app.commit(0, &payload).unwrap();
    assert_eq!(app.ledger().height(), 1);
    let next = Block::decode(&app.propose(1)).unwrap();
    assert!(next.transactions.is_empty());
    assert_eq!(app.mempool_len(), 0);
}

#[test]
fn block_payloads_must_be_canonical_and_bounded() {
    let (l, k, g) = setup();
    let mut app = LedgerApp::new(l, 0, 2, 10_000);
    let t = |i: u32| sign_transaction(&[(op(g, i), &k[i as usize])], vec![Output { value: 1, lock: k[0].lock() }]);
    let valid = Block { height: 0, parent: g, proposer: 1, transactions: vec![t(0), t(1)] }.encode();
    // One trailing byte: the same block to a lenient decoder, a different digest.
    let mut trailing = valid.clone();
    trailing.push(0);
    assert_eq!(Block::decode(&trailing), Err(DecodeError::Trailing(1)));
    assert!(!app.validate(0, &trailing));
    assert!(matches!(app.last_rejection(), Some(BlockError::Decode(_))), "{:?}", app.last_rejection());
    // Padding to any size is refused before decoding.
    let mut padded = valid.clone();
    padded.resize(MAX_PAYLOAD_BYTES + 1, 0);
    assert!(!app.validate(0, &padded));
    assert_eq!(
        app.last_rejection(),
        Some(&BlockError::TooLarge { bytes: MAX_PAYLOAD_BYTES + 1, max: MAX_PAYLOAD_BYTES })
    );
    // A non-canonical varint (height 0 written as 0x80 0x00).
    let mut overlong = vec![0x80, 0x00];
    overlong.extend_from_slice(&valid[1..]);
    assert_eq!(Block::decode(&overlong), Err(DecodeError::NonCanonical));
    assert!(!app.validate(0, &overlong));
    // More transactions than `max_block_txs` (2), each of them valid.
    let long = Block { height: 0, parent: g, proposer: 1, transactions: vec![t(0), t(1), t(2)] }.encode();
    assert!(!app.validate(0, &long));
    assert_eq!(app.last_rejection(), Some(&BlockError::TooManyTransactions { got: 3, max: 2 }));
    // The canonical block within the limits is valid, and a proposal respects the limit.
    assert!(app.validate(0, &valid));
    assert_eq!(app.submit(vec![t(0), t(1), t(2), t(3)]), vec![Ok(()), Ok(()), Ok(()), Ok(())]);
    assert_eq!(Block::decode(&app.propose(0)).unwrap().transactions.len(), 2);
}

/// Finding: `check_block` decoded a leader's whole payload before counting its transactions, so
/// 24 MiB of empty transactions (3 bytes each on the wire, 72 in memory: 8 million of them) made
/// every validator allocate about 1 GB on the consensus thread before refusing the block. The
/// count is now read from the block's header first: a payload claiming 8 million transactions
/// with none present is refused as too many (the old code decoded until the bytes ran out and
/// called it undecodable), and so is one where all 8 million are present.
#[test]
fn a_block_claiming_too_many_transactions_is_refused_on_its_count() {
    let (l, _, g) = setup();
    let mut app = LedgerApp::new(l, 0, 2, 10_000);
    let header = Block { height: 0, parent: g, proposer: 1, transactions: Vec::new() }.encode();
    let claiming = |count: u64, present: usize| {
        let mut b = header[..header.len() - 1].to_vec(); // the transaction count (0), last
        let mut v = count;
        while v >= 0x80 {
            b.push(v as u8 | 0x80);
            v >>= 7;
        }
        b.push(v as u8);
        b.resize(b.len() + present * MIN_TX_BYTES, 0); // empty transactions
        b
    };
    let claim = claiming(8_000_000, 0);
    assert_eq!(Block::transaction_count(&claim), Ok(8_000_000));
    assert_eq!(Block::decode(&claim), Err(DecodeError::Truncated { claimed: 8_000_000, bytes: 0 }));
    assert!(!app.validate(0, &claim));
    assert_eq!(app.last_rejection(), Some(&BlockError::TooManyTransactions { got: 8_000_000, max: 2 }));
    // All of them present: 24 MB, within `MAX_PAYLOAD_BYTES`, refused without decoding them.
    let full = claiming(8_000_000, 8_000_000);
    assert!(full.len() <= MAX_PAYLOAD_BYTES);
    assert!(!app.validate(0, &full));
    assert_eq!(app.last_rejection(), Some(&BlockError::TooManyTransactions { got: 8_000_000, max: 2 }));
    // Within the limit but not present: undecodable, refused before any transaction is decoded.
    assert!(!app.validate(0, &claiming(2, 0)));
    assert!(matches!(app.last_rejection(), Some(BlockError::Decode(e)) if e.contains("claims 2 transactions")));
    // The count of a real block is its length, and an empty block within the limits is valid.
    let two = claiming(2, 2);
    assert_eq!(Block::decode(&two).map(|b| b.transactions.len()), Ok(2));
    assert_eq!(Block::transaction_count(&header), Ok(0));
    assert!(app.validate(0, &header));
}

#[test]
fn payload_bound_fits_the_transfer_and_frame_limits() {
    use crate::node::consensus::{CommitCert, Signed, Vote, VoteKind, MAX_SIGNED_VOTE_BYTES};
    // The largest signed vote encodes within its bound.
    let v = Signed {
        body: Vote { kind: VoteKind::Commit, height: u64::MAX, view: u64::MAX, digest: Digest([0xff; 32]) },
        signer: u16::MAX,
        signature: Signature([0xff; 64]),
    };
    assert!(postcard::to_stdvec(&v).unwrap().len() <= MAX_SIGNED_VOTE_BYTES);
    // A stored record with the largest certificate any set can produce fits a transfer block.
    const RECORD: usize = 10 + 10 + MAX_PAYLOAD_BYTES + CommitCert::max_encoded_len(u16::MAX as usize);
    const { assert!(RECORD as u64 <= crate::transfer::MAX_BLOCK_BYTES) };
    // A view change carrying two payloads leaves 16 MiB of a frame for its signed parts.
    const { assert!(2 * MAX_PAYLOAD_BYTES + (16 << 20) <= crate::node::net::MAX_FRAME) };
}

#[test]
fn a_final_block_that_does_not_apply_is_an_error() {
    let (l, k, g) = setup();
    let mut app = LedgerApp::new(l, 0, 100, 10_000);
    let spend = sign_transaction(&[(op(g, 0), &k[0])], vec![Output { value: 1, lock: k[1].lock() }]);
    let b0 = Block { height: 0, parent: g, proposer: 0, transactions: vec![spend.clone()] }.encode();
    assert_eq!(app.commit(0, &b0), Ok(()));
    // Certified by a quorum, but it does not extend this ledger's tip: the ledger diverged.
    let b1 = Block { height: 1, parent: Digest([9; 32]), proposer: 0, transactions: vec![spend] }.encode();
    assert!(app.commit(1, &b1).is_err());
    assert!(app.commit(1, b"not a block").is_err());
    assert_eq!(app.ledger().height(), 1);
}

/// Finding: one `Submit` frame made the consensus task verify a signature for every transaction
/// in it (about 490,000 in a 64 MiB frame), also for transactions already in the mempool and
/// while the mempool was full. Every transaction here spends a genuine output with an invalid
/// signature (distinct ids and outputs): only verification can refuse it.
#[test]
fn a_submission_pays_signatures_only_for_what_could_enter_the_mempool() {
    use super::app::MAX_SUBMIT_TXS;
    let (l, k, g) = setup_outputs(MAX_SUBMIT_TXS as u32 + 16);
    // Spends output 3 + i: none of them conflicts with another, or with `a` and `b` below.
    let forged = |i: usize| {
        let mut lock = [0u8; 32];
        lock[..8].copy_from_slice(&(i as u64).to_le_bytes());
        Transaction {
            inputs: vec![op(g, 3 + i as u32)],
            outputs: vec![Output { value: 1, lock: Lock::Ed25519(lock) }],
            signatures: vec![Signature([0; 64])],
        }
    };
    let mut app = LedgerApp::new(l.clone(), 0, 1000, 10_000);
    // Over the per-submission limit: the rest is refused unverified.
    let r = app.submit((0..MAX_SUBMIT_TXS + 10).map(forged).collect());
    assert_eq!(r.len(), MAX_SUBMIT_TXS + 10);
    assert!(r[..MAX_SUBMIT_TXS].iter().all(|r| *r == Err(SubmitError::Invalid(TxError::BadSignature { input: 0 }))));
    assert!(r[MAX_SUBMIT_TXS..].iter().all(|r| *r == Err(SubmitError::PastLimit(MAX_SUBMIT_TXS))));
    assert_eq!(app.ledger().signatures_verified(), MAX_SUBMIT_TXS as u64);
    assert_eq!(app.mempool_len(), 0);
    // Already in the mempool, or earlier in the same submission: refused unverified, also a
    // copy with another (here invalid) signature.
    let a = sign_transaction(&[(op(g, 1), &k[1])], vec![Output { value: 1, lock: k[0].lock() }]);
    assert_eq!(app.submit(vec![a.clone()]), vec![Ok(())]);
    let verified = app.ledger().signatures_verified();
    let mut a_forged = a.clone();
    a_forged.signatures[0].0[3] ^= 1;
    let dup = Err(SubmitError::Duplicate);
    assert_eq!(app.submit(vec![a_forged, a.clone()]), vec![dup.clone(), dup.clone()]);
    let b = sign_transaction(&[(op(g, 2), &k[2])], vec![Output { value: 1, lock: k[0].lock() }]);
    assert_eq!(app.submit(vec![b.clone(), b.clone()]), vec![Ok(()), dup]);
    assert_eq!(app.ledger().signatures_verified(), verified + 1, "only b's first copy was verified");
    assert_eq!(app.mempool_len(), 2);
    // A full mempool verifies nothing; room for one checks the first candidate only.
    let mut app = LedgerApp::new(l, 0, 1000, 2);
    assert_eq!(app.submit(vec![a.clone()]), vec![Ok(())]);
    let verified = app.ledger().signatures_verified();
    let r = app.submit(vec![forged(0), b.clone()]);
    assert_eq!(r, vec![Err(SubmitError::Invalid(TxError::BadSignature { input: 0 })), Err(SubmitError::Full)]);
    assert_eq!(app.submit(vec![b]), vec![Ok(())]);
    let verified_full = app.ledger().signatures_verified();
    assert_eq!(verified_full, verified + 2);
    let r = app.submit((1..100).map(forged).collect());
    assert!(r.iter().all(|r| *r == Err(SubmitError::Full)), "{r:?}");
    assert_eq!(app.ledger().signatures_verified(), verified_full, "a full mempool verifies nothing");
}

/// Finding: `MAX_SUBMIT_TXS` bounded transactions, not signatures: 1024 transactions each
/// spending 64 genuine outputs (distinct ids, invalid signatures) pass every check but the
/// signatures, and cost 65,536 verifications on the consensus task. The budget of
/// `MAX_SUBMIT_SIGNATURES` counts inputs: 16 of them are verified, the rest refused unverified.
#[test]
fn a_submission_verifies_at_most_its_signature_budget() {
    use super::app::{MAX_SUBMIT_SIGNATURES, MAX_SUBMIT_TXS};
    const INPUTS: usize = 64;
    const SLOTS: usize = 20;
    let owner = key(false, 9);
    let genesis = Genesis {
        chain: "budget".into(),
        outputs: (0..INPUTS * SLOTS).map(|_| Output { value: 100, lock: owner.lock() }).collect(),
    };
    let engine = Engine::builder()
        .detect_options(crate::detect::DetectOptions { skip_dpdk: true, ..Default::default() })
        .build()
        .unwrap();
    let g = genesis.id();
    let mut app = LedgerApp::new(Ledger::new(&genesis, engine), 0, 1000, 10_000);
    // Spends the first `inputs` outputs of slot `i % SLOTS` (INPUTS outputs each): the
    // transactions that reach verification spend distinct outputs, so none is a conflict.
    let forged = |i: usize, inputs: usize| Transaction {
        inputs: (0..inputs).map(|j| op(g, ((i % SLOTS) * INPUTS + j) as u32)).collect(),
        outputs: vec![Output { value: 1 + (i % 3000) as u64, lock: owner.lock() }],
        signatures: vec![Signature([0; 64]); inputs],
    };
    let r = app.submit((0..MAX_SUBMIT_TXS).map(|i| forged(1 + i, INPUTS)).collect());
    let fit = MAX_SUBMIT_SIGNATURES / INPUTS;
    assert!(r[..fit].iter().all(|r| matches!(r, Err(SubmitError::Invalid(TxError::BadSignature { .. })))), "{r:?}");
    assert!(r[fit..].iter().all(|r| *r == Err(SubmitError::PastSignatureLimit(MAX_SUBMIT_SIGNATURES))));
    assert_eq!(app.ledger().signatures_verified(), MAX_SUBMIT_SIGNATURES as u64);
    // A transaction that would exceed what is left is refused; a smaller one after it still
    // fits, and an honest one is admitted.
    let before = app.ledger().signatures_verified();
    let honest =
        sign_transaction(&[(op(g, 0), &owner), (op(g, 1), &owner)], vec![Output { value: 200, lock: owner.lock() }]);
    let mut txs: Vec<Transaction> = (1..fit).map(|i| forged(SLOTS * 100 + i, INPUTS)).collect();
    txs.push(forged(SLOTS * 200 + fit, INPUTS / 2));
    txs.push(forged(SLOTS * 300 + fit + 1, INPUTS));
    txs.push(honest);
    let r = app.submit(txs);
    assert_eq!(r[r.len() - 2], Err(SubmitError::PastSignatureLimit(MAX_SUBMIT_SIGNATURES)));
    assert_eq!(r[r.len() - 1], Ok(()));
    assert_eq!(app.ledger().signatures_verified() - before, (MAX_SUBMIT_SIGNATURES - INPUTS / 2 + 2) as u64);
    assert_eq!(app.mempool_len(), 1);
}

/// Finding: the mempool admitted any number of valid transactions spending the same output, so
/// the owner of one output could fill it (every other client then refused as `Full`) and make
/// the validator verify a signature for each. First seen wins now: a conflict is refused
/// unverified, a refused candidate frees its outputs, and a final block drops the waiting
/// transactions that spend what it spent.
#[test]
fn the_mempool_holds_one_spend_per_output() {
    let (l, k, g) = setup();
    let mut app = LedgerApp::new(l, 0, 1000, 10_000);
    let spend =
        |o: u32, value: u64| sign_transaction(&[(op(g, o), &k[o as usize])], vec![Output { value, lock: k[0].lock() }]);
    let verified = app.ledger().signatures_verified();
    assert_eq!(app.submit(vec![spend(0, 1)]), vec![Ok(())]);
    // Spends of output 0 with other outputs: refused, none verified, here or in a submission.
    let r = app.submit((2..200).map(|v| spend(0, v)).collect());
    assert!(r.iter().all(|r| *r == Err(SubmitError::Conflict { input: 0 })), "{r:?}");
    assert_eq!(app.ledger().signatures_verified(), verified + 1);
    // The conflicting input named by its index; within one submission the first one wins too.
    let two = sign_transaction(&[(op(g, 1), &k[1]), (op(g, 0), &k[0])], vec![Output { value: 1, lock: k[0].lock() }]);
    assert_eq!(app.submit(vec![two]), vec![Err(SubmitError::Conflict { input: 1 })]);
    assert_eq!(app.submit(vec![spend(2, 1), spend(2, 2)]), vec![Ok(()), Err(SubmitError::Conflict { input: 0 })]);
    assert_eq!(app.mempool_len(), 2);
    // An invalid candidate frees its output for the next submission.
    let mut bad = spend(3, 1);
    bad.signatures[0].0[0] ^= 0x40;
    assert_eq!(app.submit(vec![bad]), vec![Err(SubmitError::Invalid(TxError::BadSignature { input: 0 }))]);
    assert_eq!(app.submit(vec![spend(3, 2)]), vec![Ok(())]);
    // A final block from another proposer spends output 0 differently: the waiting spend of it
    // leaves the mempool at commit (not at this validator's next proposal), and its outputs are
    // free; the block's own transaction, and the untouched spends, stay as they were.
    let other = spend(0, 77);
    let b0 = Block { height: 0, parent: g, proposer: 1, transactions: vec![other] }.encode();
    app.commit(0, &b0).unwrap();
    assert_eq!(app.mempool_len(), 2, "spends of outputs 2 and 3 wait; the spend of output 0 is gone");
    let next = Block::decode(&app.propose(1)).unwrap();
    assert_eq!(next.transactions, vec![spend(2, 1), spend(3, 2)]);
    app.commit(1, &Block { height: 1, ..next }.encode()).unwrap();
    assert_eq!(app.mempool_len(), 0);
    // Output 1 was never spent and is free; the spent ones are the ledger's to refuse.
    assert_eq!(app.submit(vec![spend(1, 5)]), vec![Ok(())]);
    assert!(matches!(app.submit(vec![spend(0, 5)])[0], Err(SubmitError::Invalid(_))));
}
