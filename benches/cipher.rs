//! AES-256-GCM seal throughput: ring, RustCrypto `aes-gcm` and every parthenon backend present,
//! in the same run, at 64 B, 1420 B, 16 KiB, 1 MiB and 64 MiB (one core), plus parthenon's
//! fastest backend on two threads wherever a buffer is split across two (`threads_for`: from
//! `PARALLEL_MIN`, 2 MiB, so at 64 MiB). `open` is measured at 1420 B and 16 KiB.
//!
//! `cargo bench --bench cipher -- --warm-up-time 1 --measurement-time 3`; then
//! `python3 scripts/cipher_bench_table.py` turns `target/criterion` into the GB/s table with
//! ratios against ring (docs/benchmarks.md).

use aes_gcm::aead::{AeadInOut, KeyInit};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parthenon::cipher::{backends_present, threads_for, Aes256Gcm};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use std::hint::black_box;
use std::time::Duration;

const SIZES: [(usize, &str); 5] =
    [(64, "64B"), (1420, "1420B"), (16 << 10, "16KiB"), (1 << 20, "1MiB"), (64 << 20, "64MiB")];
const KEY: [u8; 32] = [0x42; 32];
const NONCE: [u8; 12] = [7; 12];
const AAD: [u8; 13] = [1; 13];

fn seal(c: &mut Criterion) {
    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap());
    let rc = aes_gcm::Aes256Gcm::new(&KEY.into());
    let ours: Vec<_> = backends_present().into_iter().map(|b| (b, Aes256Gcm::with_backend(&KEY, b).unwrap())).collect();
    for (size, label) in SIZES {
        let mut g = c.benchmark_group(format!("seal/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        if size >= 1 << 20 {
            g.sample_size(10);
        }
        if size >= 64 << 20 {
            g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
        }
        let mut buf = vec![0u8; size];
        g.bench_function("ring", |b| {
            b.iter(|| {
                let n = Nonce::assume_unique_for_key(NONCE);
                black_box(ring_key.seal_in_place_separate_tag(n, Aad::from(&AAD), &mut buf).unwrap())
            })
        });
        g.bench_function("aes-gcm", |b| {
            b.iter(|| black_box(rc.encrypt_inout_detached(&NONCE.into(), &AAD, buf.as_mut_slice().into()).unwrap()))
        });
        for (backend, cipher) in &ours {
            g.bench_function(BenchmarkId::new("parthenon", backend.name()), |b| {
                b.iter(|| black_box(cipher.seal_in_place_detached(&NONCE, &AAD, &mut buf).unwrap()))
            });
        }
        // Only where two threads are really used: below PARALLEL_MIN a two-thread cipher runs
        // on one, and its row would be a one-core figure under a two-thread name.
        if threads_for(size, 2) == 2 {
            if let Some((backend, cipher)) = ours.first() {
                let two = cipher.clone().with_threads(2);
                g.bench_function(BenchmarkId::new("parthenon-2-threads", backend.name()), |b| {
                    b.iter(|| black_box(two.seal_in_place_detached(&NONCE, &AAD, &mut buf).unwrap()))
                });
            }
        }
        g.finish();
    }
}

fn open(c: &mut Criterion) {
    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap());
    let ours: Vec<_> = backends_present().into_iter().map(|b| (b, Aes256Gcm::with_backend(&KEY, b).unwrap())).collect();
    for (size, label) in [(1420, "1420B"), (16 << 10, "16KiB")] {
        let mut g = c.benchmark_group(format!("open/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        let mut sealed = vec![0u8; size];
        let tag = ours[0].1.seal_in_place_detached(&NONCE, &AAD, &mut sealed).unwrap();
        let mut buf = sealed.clone();
        g.bench_function("ring", |b| {
            b.iter(|| {
                buf.copy_from_slice(&sealed);
                let n = Nonce::assume_unique_for_key(NONCE);
                let t = ring::aead::Tag::from(tag);
                black_box(ring_key.open_in_place_separate_tag(n, Aad::from(&AAD), t, &mut buf, 0..).unwrap().len())
            })
        });
        for (backend, cipher) in &ours {
            g.bench_function(BenchmarkId::new("parthenon", backend.name()), |b| {
                b.iter(|| {
                    buf.copy_from_slice(&sealed);
                    cipher.open_in_place_detached(&NONCE, &AAD, &mut buf, &tag).unwrap()
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, seal, open);
criterion_main!(benches);
