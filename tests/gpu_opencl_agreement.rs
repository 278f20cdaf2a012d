//! OpenCL kernels (PoCL on CI) against the pinned reference implementations, item by item, under
//! ZIP-215, strict and BIP-340, over the public vectors plus a random and mutated corpus
//! (`PARTHENON_GPU_CORPUS` random items per scheme, default 1000); verdict order through the
//! host's grouping by scheme on a shuffled corpus; and the engine's CPU+GPU split (auto route,
//! crossover pinned) against the CPU backend.
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
        shuffled_corpus_agrees_with_reference(device, 150);
    }
}

/// The engine's auto route on OpenCL (PoCL is a CPU device, which auto leaves to the CPU
/// backend, so the test's capabilities call it a GPU) with a crossover pinned to split every
/// batch between the device and the CPU.
#[test]
fn engine_split_between_opencl_and_cpu_matches_cpu_backend() {
    if verifier().is_none() {
        return;
    }
    let mut caps = parthenon::detect::detect();
    if let parthenon::Probe::Available(info) = &mut caps.opencl {
        for d in info.platforms.iter_mut().flat_map(|p| p.devices.iter_mut()) {
            d.kind = "gpu".into();
        }
    }
    caps.cuda = parthenon::Probe::unavailable("not under test");
    let engine = parthenon::Engine::builder().capabilities(caps).build().expect("an engine");
    assert_eq!(engine.backend(parthenon::Job::Verify), parthenon::Backend::Opencl);
    engine_split_matches_cpu_backend(&engine, &mixed_corpus(100, 0x5eed_0006));
}

/// Exactly the y < 19 on the curve have a non-canonical encoding y + p, and the corpus has all.
#[test]
fn non_canonical_encodings_cover_every_y_below_19() {
    let encodings = non_canonical_encodings();
    assert_eq!(encodings.len(), 2 * NON_CANONICAL_Y.len());
    for (pair, y) in encodings.chunks(2).zip(NON_CANONICAL_Y) {
        assert_eq!(pair[0][0], 0xed + y);
        assert_eq!(pair[1][31], 0xff);
    }
}
