//! OpenCL kernels (PoCL on CI) against the pinned reference implementations, item by item, under
//! ZIP-215, strict and BIP-340, over the public vectors plus a random and mutated corpus
//! (`PARTHENON_GPU_CORPUS` random items per scheme, default 1000).
#![cfg(feature = "opencl")]

mod common;
#[path = "common/gpu_corpus.rs"]
mod gpu_corpus;

use gpu_corpus::*;
use parthenon::sigverify::gpu::opencl::OpenClVerifier;
use parthenon::sigverify::gpu::GpuError;

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
    let Some(device) = verifier() else { return };
    let chunked = Chunked { device, chunk: 61 };
    check_against_reference(&chunked, &mixed_corpus(200, 0x5eed_0003));
}

#[test]
fn engine_forced_to_opencl_matches_cpu_backend() {
    if verifier().is_some() {
        engine_forced_matches_cpu_backend(parthenon::Backend::Opencl);
    }
}
