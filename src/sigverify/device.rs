//! The device (GPU) path of verification: the one place the dispatcher in [`super`] calls for a
//! [`crate::Backend::Cuda`] or [`crate::Backend::Opencl`] route.
//!
//! # Contract
//!
//! [`try_verify`] either returns one verdict per item, equal to [`super::cpu::verify_one`] on
//! every item, or a [`DeviceFault`] saying why the device could not; the dispatcher then
//! verifies the whole batch on the CPU (logged, counted). A fault is never a verdict.
//!
//! # Routing inside the device path
//!
//! - A *forced* route (`--force cuda`, `EngineBuilder::force`) sends every batch to the device:
//!   the caller asked for that device, and benchmarks and agreement tests rely on it.
//! - An *auto* route applies the calibrated [`Crossover`] ([`super::gpu::route`]): batches below
//!   the crossover are verified on the CPU here (small batches cannot amortise a launch), large
//!   ones are split between the device and the CPU cores so both finish together. The crossover
//!   is measured once per device identity, rules and CPU (model, usable cores, IFMA or portable
//!   arithmetic), and cached on disk; [`route::pin`] replaces it (tests reach the split path on
//!   small batches with it). A calibration that fails is a [`DeviceFault`] for every auto-routed
//!   batch for a minute (those batches are verified on the CPU), then is tried again.

use super::gpu::route::{self, Crossover, Plan};
use super::gpu::{EdRules, GpuError, GpuVerifier, SoaBatch, SCHEME_BIP340, SCHEME_ED25519};
use super::{cpu, Batch, Rules, Scheme, Verdicts};
use crate::engine::{Backend, Engine, Job};
use std::sync::Mutex;

/// Why the device path produced no verdicts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceFault {
    /// The device verification path for this backend is not part of this build.
    #[error("device verification on `{backend}` is not built into this binary")]
    NotBuilt {
        /// The backend routed for verification.
        backend: Backend,
    },
    /// The device (or its driver or compiler) failed; no verdict was taken from it.
    #[error("device verification on `{backend}` failed: {source}")]
    Device {
        /// The backend routed for verification.
        backend: Backend,
        /// What failed.
        source: GpuError,
    },
}

/// The process-wide verifier for `backend`.
pub(crate) fn verifier(backend: Backend) -> Result<&'static dyn GpuVerifier, DeviceFault> {
    let dev = |source: GpuError| DeviceFault::Device { backend, source };
    match backend {
        #[cfg(feature = "cuda")]
        Backend::Cuda => super::gpu::cuda::CudaVerifier::shared().map(|v| v as &dyn GpuVerifier).map_err(dev),
        #[cfg(feature = "opencl")]
        Backend::Opencl => super::gpu::opencl::OpenClVerifier::shared().map(|v| v as &dyn GpuVerifier).map_err(dev),
        _ => {
            let _ = dev;
            Err(DeviceFault::NotBuilt { backend })
        }
    }
}

/// The kernel's scheme codes for `batch`.
fn scheme_codes(batch: &Batch) -> Vec<u8> {
    batch
        .schemes()
        .iter()
        .map(|s| match s {
            Scheme::Ed25519 => SCHEME_ED25519,
            Scheme::Bip340 => SCHEME_BIP340,
        })
        .collect()
}

/// The Ed25519 rule code for the kernels.
pub(crate) fn ed_rules(rules: Rules) -> EdRules {
    match rules {
        Rules::Zip215 => EdRules::Zip215,
        Rules::Strict => EdRules::Strict,
    }
}

/// Items `range` of `batch` as a batch of their own (for the CPU share of a split).
fn sub_batch(batch: &Batch, range: std::ops::Range<usize>) -> Batch {
    let bytes = (batch.message_offsets()[range.end] - batch.message_offsets()[range.start]) as usize;
    let mut out = Batch::with_capacity(range.len(), bytes);
    for i in range {
        // Lengths are fixed by the source batch's types, so push cannot refuse an item.
        let _ = out.push(batch.schemes()[i], &batch.pubkeys()[i], batch.message(i), &batch.signatures()[i]);
    }
    out
}

/// The key the crossover of device `identity` ([`GpuVerifier::identity`]) is cached under for
/// `rules` on a CPU of `cpu_model` with `cores` usable cores, verifying on our AVX-512 IFMA
/// arithmetic or not (`ifma`, [`cpu::uses_ifma`]: the portable path is about half as fast, so
/// a crossover measured on one is wrong for the other).
pub(crate) fn crossover_fingerprint(identity: &str, rules: Rules, cpu_model: &str, cores: usize, ifma: bool) -> String {
    let cpu_path = if ifma { "ifma" } else { "portable" };
    route::fingerprint(&format!("{identity}; rules {rules:?}; cpu {cpu_path}"), cpu_model, cores)
}

/// How long a failed calibration stands before the next auto-routed batch tries again; until
/// then auto-routed batches for that device and rules are verified on the CPU without retrying
/// (a device that fails at some calibration size would otherwise re-run the smaller sizes,
/// under the lock, for every batch).
const RETRY_CALIBRATION: std::time::Duration = std::time::Duration::from_secs(60);

/// What this process knows of one crossover fingerprint.
enum Calibration {
    Done(Crossover),
    /// Calibration failed at this instant, with this fault.
    Failed(std::time::Instant, DeviceFault),
}

/// The crossover for this device, these rules and this machine: pinned ([`route::pin`]), else
/// calibrated once and cached per process and on disk. One caller calibrates at a time (the
/// others wait for its result instead of timing the device concurrently, which would skew both
/// measurements). A failed calibration is the same fault for every caller for
/// [`RETRY_CALIBRATION`] (the dispatcher verifies those batches on the CPU), then is retried.
fn crossover(backend: Backend, v: &dyn GpuVerifier, engine: &Engine, rules: Rules) -> Result<Crossover, DeviceFault> {
    if let Some(c) = route::pinned() {
        return Ok(c);
    }
    static CACHE: Mutex<Vec<(String, Calibration)>> = Mutex::new(Vec::new());
    let cpu_info = &engine.capabilities().cpu;
    let threads = super::cpu_threads(engine);
    let model = cpu_info.model.as_deref().unwrap_or("unknown");
    let fp = crossover_fingerprint(&v.identity(), rules, model, threads, cpu::uses_ifma());
    // Held through lookup, calibration and store: a second first caller finds the result.
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    match cache.iter().find(|(f, _)| *f == fp).map(|(_, c)| c) {
        Some(Calibration::Done(c)) => return Ok(c.clone().with_env_override()),
        Some(Calibration::Failed(at, fault)) if at.elapsed() < RETRY_CALIBRATION => return Err(fault.clone()),
        _ => cache.retain(|(f, _)| *f != fp),
    }
    let c = match route::load_cached(&fp) {
        Some(c) => c,
        None => {
            tracing::info!(device = %v.describe(), ?rules, "calibrating the CPU/GPU crossover for verification");
            // A mixed batch: the device groups it by scheme ([`super::gpu::grouped_by_scheme`]).
            let corpus = super::gpu::synthetic::valid_batch(
                super::gpu::synthetic::Mix::Mixed,
                *route::CALIBRATION_SIZES.last().unwrap_or(&1024),
                7,
            );
            let full = corpus.to_batch();
            let c = route::calibrate(
                &fp,
                |n| {
                    let b = sub_batch(&full, 0..n);
                    let t = std::time::Instant::now();
                    let _ = cpu::verify_batch(&b, rules, threads);
                    t.elapsed().as_secs_f64()
                },
                |n| {
                    let view = corpus.view().slice(0..n);
                    let t = std::time::Instant::now();
                    v.verify_soa(&view, ed_rules(rules))?;
                    Ok::<f64, GpuError>(t.elapsed().as_secs_f64())
                },
            )
            .map_err(|source| DeviceFault::Device { backend, source });
            let c = match c {
                Ok(c) => c,
                Err(fault) => {
                    tracing::warn!(%fault, retry_in = ?RETRY_CALIBRATION, "calibration failed");
                    cache.push((fp, Calibration::Failed(std::time::Instant::now(), fault.clone())));
                    return Err(fault);
                }
            };
            route::store_cached(&c);
            c
        }
    };
    tracing::info!(
        fingerprint = %fp,
        ?rules,
        min_device_batch = c.min_device_batch,
        split_from = c.split_from,
        device_share = c.device_share,
        cpu_rate = c.cpu_rate,
        device_rate = c.device_rate,
        "verification crossover"
    );
    cache.push((fp, Calibration::Done(c.clone())));
    Ok(c.with_env_override())
}

/// Verifies `batch` under `rules` on the device the engine routes [`Job::Verify`] to (see the
/// module docs for when part or all of it is served by the CPU instead).
pub(crate) fn try_verify(engine: &Engine, batch: &Batch, rules: Rules) -> Result<Verdicts, DeviceFault> {
    let route = engine.route(Job::Verify);
    let backend = route.backend;
    let v = verifier(backend)?;
    let n = batch.len();
    let plan = if route.reason == "forced" { Plan::Device } else { crossover(backend, v, engine, rules)?.plan(n) };
    let codes = scheme_codes(batch);
    let soa = SoaBatch {
        schemes: &codes,
        pubkeys: batch.pubkeys(),
        signatures: batch.signatures(),
        messages: batch.messages(),
        offsets: batch.message_offsets(),
    };
    let dev = |source: GpuError| DeviceFault::Device { backend, source };
    match plan {
        Plan::Cpu => Ok(cpu::verify_batch(batch, rules, super::cpu_threads(engine))),
        Plan::Device => v.verify_soa(&soa, ed_rules(rules)).map(Verdicts::from_bytes).map_err(dev),
        Plan::Split { device } => {
            // One core drives the device; the others verify the CPU share meanwhile.
            let threads = super::cpu_threads(engine).saturating_sub(1).max(1);
            let rest = sub_batch(batch, device..n);
            let on_device = || v.verify_soa(&soa.slice(0..device), ed_rules(rules));
            let (gpu, cpu_part) = std::thread::scope(|s| {
                match std::thread::Builder::new().spawn_scoped(s, on_device) {
                    Ok(h) => {
                        let c = cpu::verify_batch(&rest, rules, threads);
                        (h.join().map_err(|_| dev(GpuError::call("device thread", "panicked"))), c)
                    }
                    // No thread for the device: the two shares one after the other.
                    Err(_) => (Ok(on_device()), cpu::verify_batch(&rest, rules, threads)),
                }
            });
            let mut bytes = gpu?.map_err(dev)?;
            bytes.extend_from_slice(cpu_part.as_bytes());
            Ok(Verdicts::from_bytes(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crossover_key_depends_on_rules_identity_and_cpu_path() {
        let key = |id: &str, rules| crossover_fingerprint(id, rules, "cpu", 8, true);
        let id = "CUDA: NVIDIA H100, sm_90; kernels 0123";
        assert_eq!(key(id, Rules::Zip215), key(id, Rules::Zip215));
        assert_ne!(key(id, Rules::Zip215), key(id, Rules::Strict));
        assert_ne!(key(id, Rules::Zip215), key("CUDA: NVIDIA H200, sm_90; kernels 0123", Rules::Zip215));
        assert_ne!(key(id, Rules::Zip215), crossover_fingerprint(id, Rules::Zip215, "cpu", 8, false));
    }

    /// A device that verifies batches below `fail_from` items (every verdict "valid", which
    /// calibration never looks at) and fails larger ones, counting its calls.
    struct FailsLarge {
        id: String,
        fail_from: usize,
        calls: std::sync::atomic::AtomicUsize,
    }

    impl GpuVerifier for FailsLarge {
        fn describe(&self) -> String {
            self.id.clone()
        }
        fn chunk_items(&self) -> usize {
            1 << 20
        }
        fn verify_chunked(
            &self,
            batch: &SoaBatch<'_>,
            _rules: EdRules,
            _chunk_items: usize,
        ) -> Result<(Vec<u8>, f64), GpuError> {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let n = batch.schemes.len();
            if n >= self.fail_from {
                return Err(GpuError::call("launch", "out of memory"));
            }
            Ok((vec![1; n], 0.0))
        }
    }

    #[test]
    fn a_failed_calibration_is_not_repeated_for_every_batch() {
        let _pin = route::PIN_TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let engine = Engine::new().expect("engine");
        let v = FailsLarge {
            id: format!("fake device failing at 4096, pid {}", std::process::id()),
            fail_from: 4096,
            calls: Default::default(),
        };
        let first = crossover(Backend::Opencl, &v, &engine, Rules::Zip215);
        assert!(matches!(first, Err(DeviceFault::Device { .. })), "{first:?}");
        let calls = v.calls.load(std::sync::atomic::Ordering::Relaxed);
        assert!(calls > 1, "calibration ran the smaller sizes first ({calls} calls)");
        let second = crossover(Backend::Opencl, &v, &engine, Rules::Zip215);
        assert_eq!(second.err(), first.err(), "the same fault, remembered");
        assert_eq!(v.calls.load(std::sync::atomic::Ordering::Relaxed), calls, "no second calibration");
    }
}
