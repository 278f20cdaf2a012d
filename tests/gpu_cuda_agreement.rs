//! CUDA kernels (compiled by NVRTC; run on an NVIDIA GPU when one is present, else one skip line)
//! against the pinned reference implementations, item by item, under ZIP-215, strict and BIP-340:
//! the public vectors, a random and mutated corpus (`PARTHENON_GPU_CORPUS` random items per
//! scheme, default 5000), the same corpus in many small chunks over both streams, a shuffled corpus
//! (verdict order through the host's grouping by scheme), the engine's forced-CUDA route and its
//! auto route split between CUDA and the CPU (crossover pinned) against the CPU backend (no
//! fallback allowed).
//!
//! On a machine without CUDA every test prints one line starting `skip: no CUDA device` and
//! passes; `scripts/device_run.sh` treats that line as a failure on the GPU machine.
#![cfg(feature = "cuda")]

mod common;
#[path = "common/gpu_corpus.rs"]
mod gpu_corpus;

use gpu_corpus::*;
use parthenon::sigverify::gpu::cuda::CudaVerifier;
use parthenon::sigverify::gpu::GpuError;

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
    if let Some(v) = verifier() {
        check_against_reference(v, items);
    }
}

#[test]
fn vectors_agree_with_reference() {
    let Some(dir) = vectors_dir() else { return };
    let items = vector_items(&dir);
    check(&items);
}

#[test]
fn random_and_mutated_corpus_agrees_with_reference() {
    if verifier().is_none() {
        return;
    }
    check(&mixed_corpus(corpus_size(5000), 0x5eed_0001));
}

/// Many chunks per stream (chunks of 61 items over the two streams): a lane drained and staged
/// again, verdicts scattered back in order.
#[test]
fn chunks_alternating_over_streams_agree_with_reference() {
    let Some(device) = verifier() else { return };
    let chunked = Chunked { device, chunk: 61 };
    check_against_reference(&chunked, &mixed_corpus(200, 0x5eed_0003));
}

#[test]
fn engine_forced_to_cuda_matches_cpu_backend() {
    if verifier().is_some() {
        engine_forced_matches_cpu_backend(parthenon::Backend::Cuda);
    }
}

/// Batches of 0, 1, 7, 8, 9, 63, 64, 65, 127, 128 and 129 items, whole and in chunks of 8.
#[test]
fn boundary_batch_sizes_agree_with_reference() {
    if let Some(device) = verifier() {
        boundary_sizes_agree_with_reference(device);
    }
}

/// Runs of one scheme of random lengths, in chunks of 13 items: the host groups each call's
/// items by scheme and must scatter every verdict back to its own item.
#[test]
fn shuffled_mixed_corpus_keeps_verdict_order() {
    if let Some(device) = verifier() {
        shuffled_corpus_agrees_with_reference(device, 500);
    }
}

/// The engine's auto route (CUDA on a GPU machine) with a crossover pinned to split every batch
/// between the device and the CPU.
#[test]
fn engine_split_between_cuda_and_cpu_matches_cpu_backend() {
    if verifier().is_none() {
        return;
    }
    let engine = parthenon::Engine::builder().build().expect("an engine");
    if engine.backend(parthenon::Job::Verify) != parthenon::Backend::Cuda {
        panic!("CUDA works but auto routes verification to {}", engine.backend(parthenon::Job::Verify));
    }
    engine_split_matches_cpu_backend(&engine, &mixed_corpus(1000, 0x5eed_0006));
}
