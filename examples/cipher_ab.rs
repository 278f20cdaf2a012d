//! Noise-robust A/B throughput of AES-256-GCM seal on a shared machine: ring, RustCrypto
//! `aes-gcm` and parthenon's backends take turns on short batches, and each one's *best* batch
//! counts (preemption only ever slows a batch down). Complements the criterion bench, whose
//! means move with the machine's load.
//!
//! `cargo run --release --example cipher_ab -- [rounds]`

use aes_gcm::aead::{AeadInOut, KeyInit};
use parthenon::cipher::{backends_present, threads_for, Aes256Gcm};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use std::time::Instant;

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(300);
    let key = [0x42u8; 32];
    let nonce = [7u8; 12];
    let aad = [1u8; 13];
    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
    let rc = aes_gcm::Aes256Gcm::new(&key.into());
    let ours: Vec<_> = backends_present().into_iter().map(|b| (b, Aes256Gcm::with_backend(&key, b).unwrap())).collect();
    let two = ours[0].1.clone().with_threads(2);
    for size in [64usize, 1420, 16 << 10, 1 << 20, 64 << 20] {
        let mut buf = vec![0u8; size];
        let iters = ((4 << 20) / size).max(1);
        let rounds = if size >= 64 << 20 { rounds.min(12) } else { rounds };
        let mut names: Vec<String> = vec!["ring".into(), "aes-gcm".into()];
        names.extend(ours.iter().map(|(b, _)| format!("parthenon/{b}")));
        // Only where two threads are really used: below `PARALLEL_MIN` a two-thread cipher runs
        // on one, and its row would be a one-core figure under a two-thread name.
        if threads_for(size, 2) == 2 {
            names.push(format!("parthenon/{}/2-threads", ours[0].0));
        }
        let mut best = vec![f64::MAX; names.len()];
        for _ in 0..rounds {
            for (i, b) in best.iter_mut().enumerate() {
                let t = Instant::now();
                for _ in 0..iters {
                    match i {
                        0 => {
                            let n = Nonce::assume_unique_for_key(nonce);
                            let _ = std::hint::black_box(
                                ring_key.seal_in_place_separate_tag(n, Aad::from(&aad), &mut buf).unwrap(),
                            );
                        }
                        1 => {
                            std::hint::black_box(
                                rc.encrypt_inout_detached(&nonce.into(), &aad, buf.as_mut_slice().into()).unwrap(),
                            );
                        }
                        i if i - 2 < ours.len() => {
                            std::hint::black_box(ours[i - 2].1.seal_in_place_detached(&nonce, &aad, &mut buf).unwrap());
                        }
                        _ => {
                            std::hint::black_box(two.seal_in_place_detached(&nonce, &aad, &mut buf).unwrap());
                        }
                    }
                }
                *b = b.min(t.elapsed().as_secs_f64() / iters as f64);
            }
        }
        let ring_gbps = size as f64 / best[0] / 1e9;
        for (n, t) in names.iter().zip(&best) {
            let gbps = size as f64 / t / 1e9;
            println!("{size:>9} {n:<34} {gbps:>7.2} GB/s  {:>5.2}x ring", gbps / ring_gbps);
        }
    }
}
