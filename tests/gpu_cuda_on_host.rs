//! The CUDA kernel source, run on the CPU, against the pinned reference implementations.
//!
//! `kernels/cuda/verify.cu` and the shared headers are compiled as C++14 by `g++` (with
//! `tests/cuda_host/prelude.h` standing in for the CUDA spellings) together with
//! `tests/cuda_host/harness.cpp`, which does what the CUDA host does: query the table layout,
//! build the fixed-base tables with the `base_tables` kernel, launch `sig_challenge` and
//! `sig_verify` over 128-thread blocks, one emulated thread at a time. The verdicts must equal
//! the reference's on the public vectors and a random and mutated corpus, under every rule.
//!
//! Why: the OpenCL agreement test runs the same arithmetic as OpenCL C, but the CUDA build is C++,
//! whose rules differ (shifts by the type's width or more are undefined, not masked; integer
//! promotions of `u8`/`u32`). This runs the CUDA entry and the headers under C++'s rules, with
//! UndefinedBehaviorSanitizer aborting on the first undefined operation, on machines without a
//! GPU. It does not run the CUDA host code (`src/sigverify/gpu/cuda.rs`): that needs a device.
//!
//! `PARTHENON_GPU_CORPUS` random items per scheme (default 2000; about 70 µs per item here, one
//! emulated thread at a time, under the sanitizer). Skipped (with a message) when `g++` is missing, except under
//! `CI=true`.

mod common;
#[path = "common/gpu_corpus.rs"]
mod gpu_corpus;

use gpu_corpus::*;
use parthenon::sigverify::gpu::{EdRules, GpuError, GpuVerifier, SoaBatch};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The harness, built once per test process into Cargo's scratch folder for integration tests.
fn harness() -> Option<&'static Path> {
    static EXE: OnceLock<Option<PathBuf>> = OnceLock::new();
    EXE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cuda_host_harness");
        let out = Command::new("g++")
            .args(["-std=c++14", "-O2", "-Wall", "-Werror", "-fsanitize=undefined", "-fno-sanitize-recover=all"])
            .arg("-I")
            .arg(root.join("kernels"))
            .arg("-I")
            .arg(root.join("tests/cuda_host"))
            .arg(root.join("tests/cuda_host/harness.cpp"))
            .arg("-o")
            .arg(&exe)
            .output();
        match out {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "the CUDA kernels do not build for the host:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Some(exe)
            }
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                println!("skip: g++ not runnable ({e})");
                None
            }
            Err(e) => panic!("g++ not runnable under CI: {e}"),
        }
    })
    .as_deref()
}

/// The CUDA kernels on the host, as a [`GpuVerifier`] so the shared agreement check applies.
struct HostCuda(&'static Path);

impl GpuVerifier for HostCuda {
    fn describe(&self) -> String {
        "the CUDA kernel source on the host (g++ -O2, UBSan)".into()
    }

    /// The harness launches the whole batch at once: there are no chunks on the host.
    fn chunk_items(&self) -> usize {
        usize::MAX
    }

    fn verify_chunked(&self, batch: &SoaBatch<'_>, rules: EdRules, _: usize) -> Result<(Vec<u8>, f64), GpuError> {
        batch.check()?;
        let n = batch.len();
        let mut input = Vec::new();
        input.extend_from_slice(&(n as u64).to_le_bytes());
        input.extend_from_slice(&rules.code().to_le_bytes());
        input.extend_from_slice(batch.schemes);
        input.extend_from_slice(batch.pubkeys.as_flattened());
        input.extend_from_slice(batch.signatures.as_flattened());
        for o in batch.offsets {
            input.extend_from_slice(&o.to_le_bytes());
        }
        input.extend_from_slice(batch.messages);
        let dir = common::TempDir::new("cuda-host");
        let (in_path, out_path) = (dir.path().join("in"), dir.path().join("out"));
        std::fs::write(&in_path, &input).map_err(|e| GpuError::call("write input", e))?;
        let status =
            Command::new(self.0).arg(&in_path).arg(&out_path).output().map_err(|e| GpuError::call("harness", e))?;
        if !status.status.success() {
            return Err(GpuError::call(
                "harness",
                format!("{}: {}", status.status, String::from_utf8_lossy(&status.stderr)),
            ));
        }
        let verdicts = std::fs::read(&out_path).map_err(|e| GpuError::call("read verdicts", e))?;
        if verdicts.len() != n || verdicts.iter().any(|v| *v > 1) {
            return Err(GpuError::call("harness", format!("{} verdict bytes for {n} items", verdicts.len())));
        }
        Ok((verdicts, 0.0))
    }
}

#[test]
fn vectors_agree_with_reference() {
    let Some(dir) = vectors_dir() else { return };
    let Some(exe) = harness() else { return };
    let items = vector_items(&dir);
    check_against_reference(&HostCuda(exe), &items);
}

#[test]
fn random_and_mutated_corpus_agrees_with_reference() {
    let Some(exe) = harness() else { return };
    check_against_reference(&HostCuda(exe), &mixed_corpus(corpus_size(2000), 0x5eed_00c0));
}

#[test]
fn an_empty_batch_has_no_verdicts() {
    let Some(exe) = harness() else { return };
    let batch = SoaBatch { schemes: &[], pubkeys: &[], signatures: &[], messages: &[], offsets: &[0] };
    assert_eq!(HostCuda(exe).verify_soa(&batch, EdRules::Zip215).unwrap(), Vec::<u8>::new());
}
