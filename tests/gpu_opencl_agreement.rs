//! OpenCL kernels (PoCL on CI) against the pinned reference implementations, item by item, under
//! ZIP-215, strict and BIP-340, over the public vectors plus a random and mutated corpus
//! (`PARTHENON_GPU_CORPUS` random items per scheme, default 1000).
#![cfg(feature = "opencl")]

mod common;
#[path = "common/gpu_corpus.rs"]
mod gpu_corpus;

use gpu_corpus::*;
use parthenon::sigverify::gpu::opencl::OpenClVerifier;
use parthenon::sigverify::gpu::{EdRules, GpuError, GpuVerifier, SoaBatch};

fn verifier() -> Option<&'static OpenClVerifier> {
    match OpenClVerifier::shared() {
        Ok(v) => Some(v),
        Err(GpuError::NoDevice(why)) if std::env::var("CI").as_deref() != Ok("true") => {
            println!("skip: no OpenCL device ({why})");
            None
        }
        Err(e) => panic!("OpenCL verifier failed: {e}"),
    }
}

fn check(items: &[Item]) {
    if let Some(v) = verifier() {
        check_against_reference(v, items);
    }
}

#[test]
fn vectors_agree_with_reference() {
    let Some(dir) = vectors_dir() else { return };
    let items = vector_items(&dir);
    assert!(items.len() > 100, "too few vectors: {}", items.len());
    check(&items);
}

#[test]
fn random_and_mutated_corpus_agrees_with_reference() {
    if verifier().is_none() {
        return;
    }
    check(&mixed_corpus(corpus_size(1000), 0x5eed_0001));
}

/// Many chunks per queue (chunks of 61 items over the two queues): staging a lane again after
/// draining it, and verdicts scattered back in order.
#[test]
fn chunks_alternating_over_queues_agree_with_reference() {
    struct Chunked(&'static OpenClVerifier);
    impl GpuVerifier for Chunked {
        fn describe(&self) -> String {
            format!("{} in chunks of 61", self.0.describe())
        }
        fn verify_soa(&self, batch: &SoaBatch<'_>, rules: EdRules) -> Result<Vec<u8>, GpuError> {
            self.0.verify_soa_in_chunks(batch, rules, 61)
        }
        fn verify_soa_timed(&self, batch: &SoaBatch<'_>, rules: EdRules) -> Result<(Vec<u8>, f64), GpuError> {
            self.verify_soa(batch, rules).map(|v| (v, 0.0))
        }
    }
    let Some(v) = verifier() else { return };
    check_against_reference(&Chunked(v), &mixed_corpus(200, 0x5eed_0003));
}

/// The engine's own path: a route forced to OpenCL serves the batch on the device (no fallback
/// counted) and returns the CPU backend's verdicts.
#[test]
fn engine_forced_to_opencl_matches_cpu_backend() {
    if verifier().is_none() {
        return;
    }
    let engine = parthenon::Engine::builder().force(parthenon::Backend::Opencl).build().expect("opencl present");
    let mut rng = Rng::new(0x5eed_0002);
    let mut items = ed25519_items(&mut rng, 100);
    items.extend(bip340_items(&mut rng, 100));
    let mut batch = parthenon::sigverify::Batch::new();
    for it in &items {
        let scheme = if it.scheme == ED25519 {
            parthenon::sigverify::Scheme::Ed25519
        } else {
            parthenon::sigverify::Scheme::Bip340
        };
        batch.push(scheme, &it.pk, &it.msg, &it.sig).expect("well-formed item");
    }
    for rules in [parthenon::sigverify::Rules::Zip215, parthenon::sigverify::Rules::Strict] {
        let before = parthenon::sigverify::stats().device_fallbacks;
        let got = engine.verify_with(&batch, rules);
        assert_eq!(parthenon::sigverify::stats().device_fallbacks, before, "the device path fell back to the CPU");
        let want = parthenon::sigverify::cpu::verify_batch(&batch, rules, 2);
        assert_eq!(got.as_bytes(), want.as_bytes(), "{rules:?}");
    }
}
