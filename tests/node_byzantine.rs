//! Consensus over the real ledger with one Byzantine validator of four that (a) proposes blocks
//! carrying a transaction with an invalid signature, (b) equivocates its votes, and (c) floods
//! the honest validators with transactions whose signatures are invalid. The honest validators
//! stay safe (identical chains), keep committing, reject the invalid transactions by
//! per-signature verdict (from `Engine::verify`), and report the equivocation.
#![cfg(feature = "node")]

use parthenon::node::consensus::*;
use parthenon::node::ledger::app::{LedgerApp, SubmitError};
use parthenon::node::ledger::*;
use std::collections::{BTreeMap, HashSet, VecDeque};

const N: usize = 4;
const BYZ: usize = 3;

/// Honest block plus one transaction whose signature is invalid; votes for anything.
struct ByzantineApp {
    inner: LedgerApp,
    bad: Transaction,
}

impl Application for ByzantineApp {
    fn propose(&mut self, height: Height) -> Vec<u8> {
        let mut b = Block::decode(&self.inner.propose(height)).unwrap();
        b.transactions.push(self.bad.clone());
        b.encode()
    }
    fn validate(&mut self, _: Height, _: &[u8]) -> bool {
        true
    }
    fn commit(&mut self, height: Height, payload: &[u8]) -> Result<(), CommitError> {
        self.inner.commit(height, payload)
    }
}

#[test]
fn one_byzantine_validator_of_four() {
    let engine = parthenon::Engine::builder()
        .detect_options(parthenon::detect::DetectOptions { skip_dpdk: true, ..Default::default() })
        .build()
        .unwrap();
    let spend: Vec<SpendKey> = (0..64u8).map(|i| SpendKey::from_seed(i % 2 == 1, [i + 1; 32]).unwrap()).collect();
    let genesis = Genesis {
        chain: "byzantine".into(),
        outputs: (0..2000).map(|j| Output { value: 10, lock: spend[j % 64].lock() }).collect(),
    };
    let g = genesis.id();
    let keys: Vec<ed25519_dalek::SigningKey> =
        (0..N).map(|i| ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 50; 32])).collect();
    let set = ValidatorSet::new(
        keys.iter().map(|k| Validator { public_key: k.verifying_key().to_bytes(), stake: 1 }).collect(),
    )
    .unwrap();
    let config = Config { chain: g, base_timeout_ms: 50, ..Config::default() };
    let cores: Vec<Core> =
        (0..N).map(|i| Core::new(set.clone(), i as u16, Box::new(keys[i].clone()), config)).collect();
    let honest: Vec<LedgerApp> =
        (0..N - 1).map(|i| LedgerApp::new(Ledger::new(&genesis, engine.clone()), i as u16, 500, 100_000)).collect();
    // The Byzantine transaction: spends a real output, signature flipped.
    let mut bad = sign_transaction(
        &[(OutPoint { tx: g, index: 1999 }, &spend[1999 % 64])],
        vec![Output { value: 10, lock: spend[0].lock() }],
    );
    bad.signatures[0].0[3] ^= 1;
    let byz = ByzantineApp {
        inner: LedgerApp::new(Ledger::new(&genesis, engine.clone()), BYZ as u16, 500, 100_000),
        bad: bad.clone(),
    };

    let mut net = Net {
        cores,
        honest,
        byz,
        keys: keys.clone(),
        chain: g,
        queue: VecDeque::new(),
        timers: BTreeMap::new(),
        now: 0,
        seq: 0,
        chains: vec![Vec::new(); N],
        committed: HashSet::new(),
        evidence: Vec::new(),
    };
    let mut flood_rejected = 0;
    let mut next_output = 0u32;
    for i in 0..N {
        net.run(i, Input::Start);
    }
    let mut steps = 0;
    while net.chains[..BYZ].iter().map(Vec::len).min().unwrap() < 30 {
        steps += 1;
        assert!(steps < 200_000, "no progress: {:?}", net.chains.iter().map(Vec::len).collect::<Vec<_>>());
        // Wallet: 20 valid transfers to every validator; the Byzantine one floods 20 invalid ones.
        if steps % 50 == 1 && next_output < 1990 {
            let mut batch = Vec::new();
            for _ in 0..20 {
                let j = next_output;
                next_output += 1;
                let k = &spend[(j % 64) as usize];
                batch.push(sign_transaction(
                    &[(OutPoint { tx: g, index: j }, k)],
                    vec![Output { value: 9, lock: k.lock() }],
                ));
            }
            let mut flood = batch.clone();
            for t in &mut flood {
                t.outputs[0].value = 8; // new id, signatures now invalid for it
            }
            for app in net.honest.iter_mut() {
                // The forgeries first: after the genuine spends they would be conflicts, refused
                // unverified; before them, only their signatures refuse them.
                let r = app.submit(flood.clone());
                assert!(r.iter().all(|x| *x == Err(SubmitError::Invalid(TxError::BadSignature { input: 0 }))), "{r:?}");
                flood_rejected += r.len();
                let r = app.submit(batch.clone());
                assert!(r.iter().all(Result::is_ok), "{r:?}");
                let r = app.submit(flood.clone());
                assert!(r.iter().all(|x| *x == Err(SubmitError::Conflict { input: 0 })), "{r:?}");
            }
            net.byz.inner.submit(batch);
        }
        if let Some((to, from, m)) = net.queue.pop_front() {
            net.run(to, Input::Message { from: from as u16, message: m });
        } else if let Some((&(at, s), _)) = net.timers.iter().next() {
            let (i, t) = net.timers.remove(&(at, s)).unwrap();
            net.now = at;
            net.run(i, Input::Timeout(t));
        }
    }
    // Safety among honest validators.
    for a in &net.chains[..BYZ] {
        for b in &net.chains[..BYZ] {
            let n = a.len().min(b.len());
            assert_eq!(a[..n], b[..n]);
        }
    }
    assert!(!net.committed.contains(&bad.id()), "the invalid transaction was committed");
    assert!(net.committed.len() >= 100, "valid transfers commit: {}", net.committed.len());
    for app in &net.honest {
        assert!(app.rejected_blocks() > 0, "the Byzantine proposals were rejected");
        assert!(
            matches!(
                app.last_rejection(),
                Some(BlockError::Transaction { error: TxError::BadSignature { input: 0 }, .. })
            ),
            "{:?}",
            app.last_rejection()
        );
    }
    assert!(!net.evidence.is_empty() && net.evidence.iter().all(|c| *c == BYZ as u16), "{:?}", net.evidence);
    assert!(flood_rejected > 0);
}

struct Net {
    cores: Vec<Core>,
    honest: Vec<LedgerApp>,
    byz: ByzantineApp,
    keys: Vec<ed25519_dalek::SigningKey>,
    chain: Digest,
    queue: VecDeque<(usize, usize, Message)>,
    timers: BTreeMap<(u64, u64), (usize, Timer)>,
    now: u64,
    seq: u64,
    chains: Vec<Vec<Digest>>,
    committed: HashSet<Digest>,
    evidence: Vec<u16>,
}

impl Net {
    fn run(&mut self, i: usize, input: Input) {
        let app: &mut dyn Application = if i == BYZ { &mut self.byz } else { &mut self.honest[i] };
        let effects = self.cores[i].handle(input, app);
        for e in effects {
            match e {
                Effect::Broadcast(m) => {
                    for to in (0..N).filter(|t| *t != i) {
                        let m = match (&m, i == BYZ && to >= 2) {
                            // Equivocation: the upper half also gets a conflicting vote.
                            (Message::Vote(v), true) => {
                                self.queue.push_back((to, i, m.clone()));
                                let body = Vote { digest: Digest([0xab; 32]), ..v.body };
                                let signature = Sign::sign(&self.keys[i], &body.signing_bytes(&self.chain));
                                Message::Vote(Signed { body, signer: i as u16, signature })
                            }
                            _ => m.clone(),
                        };
                        self.queue.push_back((to, i, m));
                    }
                }
                Effect::Send { to, message } => self.queue.push_back((to as usize, i, message)),
                Effect::SetTimer { timer, after_ms } => {
                    self.seq += 1;
                    self.timers.insert((self.now + after_ms, self.seq), (i, timer));
                }
                Effect::Decide { height, payload, .. } => {
                    assert_eq!(self.chains[i].len() as u64, height);
                    self.chains[i].push(Digest::of(&payload));
                    if i != BYZ {
                        for tx in Block::decode(&payload).unwrap().transactions {
                            self.committed.insert(tx.id());
                        }
                    }
                }
                Effect::Evidence(ev) if i != BYZ => self.evidence.push(ev.culprit()),
                _ => {}
            }
        }
    }
}
