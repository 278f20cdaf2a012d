//! CUDA kernels (compiled by NVRTC; run on an NVIDIA GPU when one is present, else one skip line)
//! against the pinned reference implementations, item by item, under ZIP-215, strict and BIP-340, over the public vectors plus a random and mutated corpus
//! (`PARTHENON_GPU_CORPUS` random items per scheme, default 5000).
#![cfg(feature = "cuda")]

#[path = "common/gpu_corpus.rs"]
mod gpu_corpus;

use gpu_corpus::*;
use parthenon::sigverify::gpu::cuda::CudaVerifier;
use parthenon::sigverify::gpu::{EdRules, GpuError, GpuVerifier, SoaBatch};

fn verifier() -> Option<&'static CudaVerifier> {
    match CudaVerifier::shared() {
        Ok(v) => Some(v),
        // CI machines have no NVIDIA GPU: a missing device is a skip there too.
        Err(GpuError::NoDevice(why)) => {
            println!("skip: no CUDA device ({why})");
            None
        }
        Err(e) => panic!("CUDA verifier failed: {e}"),
    }
}

fn check(items: &[Item]) {
    let Some(v) = verifier() else { return };
    let s = soa(items);
    let batch = SoaBatch {
        schemes: &s.schemes,
        pubkeys: &s.pubkeys,
        signatures: &s.signatures,
        messages: &s.messages,
        offsets: &s.offsets,
    };
    let refs: Vec<(bool, bool)> = items.iter().map(reference).collect();
    let zip_valid = refs.iter().filter(|r| r.0).count();
    let strict_valid = refs.iter().filter(|r| r.1).count();
    let rules_differ = refs.iter().filter(|r| r.0 != r.1).count();
    println!(
        "{} items: {zip_valid} valid under ZIP-215, {strict_valid} under strict, {rules_differ} where the rules differ",
        items.len()
    );
    for (rules, pick) in [(EdRules::Zip215, 0usize), (EdRules::Strict, 1)] {
        let t = std::time::Instant::now();
        let got = v.verify_soa(&batch, rules).expect("device verification");
        println!("{} items under {rules:?} on {} in {:.2?}", items.len(), v.describe(), t.elapsed());
        let mut bad = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let want = if pick == 0 { refs[i].0 } else { refs[i].1 };
            if (got[i] == 1) != want {
                bad.push(format!("item {i} ({}) {rules:?}: device {} reference {want}", it.origin, got[i]));
            }
        }
        assert!(bad.is_empty(), "{} disagreements:\n{}", bad.len(), bad.join("\n"));
    }
}

#[test]
fn vectors_agree_with_reference() {
    let Some(dir) = vectors_dir() else {
        println!("skip: conformance vectors not found (set PARTHENON_VECTORS)");
        return;
    };
    let items = vector_items(&dir);
    assert!(items.len() > 100, "too few vectors: {}", items.len());
    check(&items);
}

#[test]
fn random_and_mutated_corpus_agrees_with_reference() {
    if verifier().is_none() {
        return;
    }
    let n = corpus_size(5000);
    let mut rng = Rng::new(0x5eed_0001);
    let mut items = ed25519_items(&mut rng, n);
    items.extend(bip340_items(&mut rng, n));
    // Interleave schemes so mixed batches are exercised.
    let mut mixed = Vec::with_capacity(items.len());
    let (a, b) = items.split_at(n);
    for i in 0..n {
        mixed.push(a[i].clone());
        mixed.push(b[i].clone());
    }
    let valid = mixed.iter().filter(|it| reference(it).0).count();
    assert!(valid > mixed.len() / 10, "corpus has too few valid items ({valid})");
    // The corpus must separate the rules, or agreement under one could hide the other.
    let differ = mixed.iter().map(reference).filter(|r| r.0 != r.1).count();
    assert!(differ > n / 20, "corpus has too few items where ZIP-215 and strict differ ({differ})");
    check(&mixed);
}
