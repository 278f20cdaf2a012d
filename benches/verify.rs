//! Signature verification on the CPU, with the peers in the same run:
//! ed25519-dalek `verify_batch` and single `verify`, libsecp256k1 single `schnorrsig_verify`,
//! and ours (batch on one thread, batch on all usable cores), batch sizes 64, 1024, 16384.
//! Plus: ours with 1 % invalid items against all valid (the cost of locating bad items), and
//! Strict (item by item). Throughput is reported per signature (elements/s).
//!
//! Run: `cargo bench --bench verify -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ed25519_dalek::{Signer, SigningKey, Verifier};
use parthenon::sigverify::{cpu, Batch, Rules, Scheme};
use rand::RngExt;
use std::hint::black_box;

const SIZES: [usize; 3] = [64, 1024, 16384];

struct EdSet {
    keys: Vec<ed25519_dalek::VerifyingKey>,
    msgs: Vec<Vec<u8>>,
    sigs: Vec<ed25519_dalek::Signature>,
    batch: Batch,
}

fn ed_set(n: usize, invalid_every: Option<usize>) -> EdSet {
    let mut rng = rand::rng();
    let mut set = EdSet { keys: vec![], msgs: vec![], sigs: vec![], batch: Batch::new() };
    for i in 0..n {
        let sk = SigningKey::from_bytes(&rng.random());
        let msg: [u8; 64] = rng.random();
        let mut sig = sk.sign(&msg).to_bytes();
        if invalid_every.is_some_and(|k| i % k == k / 2) {
            sig[40] ^= 1;
        }
        let vk = sk.verifying_key();
        set.batch.push(Scheme::Ed25519, vk.as_bytes(), &msg, &sig).unwrap();
        set.keys.push(vk);
        set.msgs.push(msg.to_vec());
        set.sigs.push(ed25519_dalek::Signature::from_bytes(&sig));
    }
    set
}

struct SchnorrSet {
    keys: Vec<secp256k1::XOnlyPublicKey>,
    msgs: Vec<Vec<u8>>,
    sigs: Vec<secp256k1::schnorr::Signature>,
    batch: Batch,
}

fn schnorr_set(n: usize) -> SchnorrSet {
    let mut rng = rand::rng();
    let mut set = SchnorrSet { keys: vec![], msgs: vec![], sigs: vec![], batch: Batch::new() };
    for _ in 0..n {
        let kp = loop {
            if let Ok(kp) = secp256k1::Keypair::from_secret_bytes(rng.random()) {
                break kp;
            }
        };
        let msg: [u8; 32] = rng.random();
        let sig = kp.sign_schnorr_no_aux_rand(&msg);
        let (pk, _) = kp.x_only_public_key();
        set.batch.push(Scheme::Bip340, &pk.to_byte_array(), &msg, &sig.to_byte_array()).unwrap();
        set.keys.push(pk);
        set.msgs.push(msg.to_vec());
        set.sigs.push(sig);
    }
    set
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn ed25519(c: &mut Criterion) {
    let mut g = c.benchmark_group("ed25519");
    g.sample_size(10);
    for n in SIZES {
        let set = ed_set(n, None);
        g.throughput(Throughput::Elements(n as u64));
        let refs: Vec<&[u8]> = set.msgs.iter().map(|m| m.as_slice()).collect();
        g.bench_with_input(BenchmarkId::new("dalek_verify_batch", n), &n, |b, _| {
            b.iter(|| ed25519_dalek::verify_batch(black_box(&refs), &set.sigs, &set.keys).unwrap())
        });
        // What a node pays with dalek when keys arrive as bytes: decode them, then verify_batch.
        let key_bytes: Vec<[u8; 32]> = set.keys.iter().map(|k| k.to_bytes()).collect();
        g.bench_with_input(BenchmarkId::new("dalek_verify_batch_from_bytes", n), &n, |b, _| {
            b.iter(|| {
                let keys: Vec<ed25519_dalek::VerifyingKey> =
                    key_bytes.iter().map(|k| ed25519_dalek::VerifyingKey::from_bytes(black_box(k)).unwrap()).collect();
                ed25519_dalek::verify_batch(&refs, &set.sigs, &keys).unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("dalek_verify_single", n), &n, |b, _| {
            b.iter(|| {
                for i in 0..n {
                    set.keys[i].verify(black_box(&set.msgs[i]), &set.sigs[i]).unwrap();
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("ours_zip215_batch_1core", n), &n, |b, _| {
            b.iter(|| assert!(cpu::verify_batch(black_box(&set.batch), Rules::Zip215, 1).all_valid()))
        });
        g.bench_with_input(BenchmarkId::new("ours_zip215_batch_2core", n), &n, |b, _| {
            b.iter(|| assert!(cpu::verify_batch(black_box(&set.batch), Rules::Zip215, 2).all_valid()))
        });
        if cores() > 2 {
            g.bench_with_input(BenchmarkId::new("ours_zip215_batch_allcores", n), &n, |b, _| {
                b.iter(|| assert!(cpu::verify_batch(black_box(&set.batch), Rules::Zip215, cores()).all_valid()))
            });
        }
        if n == 1024 {
            g.bench_with_input(BenchmarkId::new("ours_strict_1core", n), &n, |b, _| {
                b.iter(|| assert!(cpu::verify_batch(black_box(&set.batch), Rules::Strict, 1).all_valid()))
            });
        }
        if n >= 1024 {
            let bad = ed_set(n, Some(100));
            g.bench_with_input(BenchmarkId::new("ours_zip215_batch_1core_1pct_invalid", n), &n, |b, _| {
                b.iter(|| assert!(!cpu::verify_batch(black_box(&bad.batch), Rules::Zip215, 1).all_valid()))
            });
        }
    }
    g.finish();
}

fn bip340(c: &mut Criterion) {
    let mut g = c.benchmark_group("bip340");
    g.sample_size(10);
    for n in SIZES {
        let set = schnorr_set(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("libsecp256k1_single", n), &n, |b, _| {
            b.iter(|| {
                for i in 0..n {
                    secp256k1::schnorr::verify(&set.sigs[i], black_box(&set.msgs[i]), &set.keys[i]).unwrap();
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("ours_batch_1core", n), &n, |b, _| {
            b.iter(|| assert!(cpu::verify_batch(black_box(&set.batch), Rules::Zip215, 1).all_valid()))
        });
        g.bench_with_input(BenchmarkId::new("ours_batch_2core", n), &n, |b, _| {
            b.iter(|| assert!(cpu::verify_batch(black_box(&set.batch), Rules::Zip215, 2).all_valid()))
        });
        if n == 1024 {
            let mut bad = Batch::new();
            for i in 0..n {
                let mut sig = set.batch.signatures()[i];
                if i % 100 == 50 {
                    sig[40] ^= 1;
                }
                bad.push(Scheme::Bip340, &set.batch.pubkeys()[i], set.batch.message(i), &sig).unwrap();
            }
            g.bench_with_input(BenchmarkId::new("ours_batch_1core_1pct_invalid", n), &n, |b, _| {
                b.iter(|| assert!(!cpu::verify_batch(black_box(&bad), Rules::Zip215, 1).all_valid()))
            });
            g.bench_with_input(BenchmarkId::new("ours_single_1core", n), &n, |b, _| {
                b.iter(|| {
                    for i in 0..n {
                        assert!(cpu::verify_one(
                            Scheme::Bip340,
                            Rules::Zip215,
                            &set.batch.pubkeys()[i],
                            set.batch.message(i),
                            &set.batch.signatures()[i]
                        ));
                    }
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, ed25519, bip340);
criterion_main!(benches);
