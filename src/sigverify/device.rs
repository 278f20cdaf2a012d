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
//!   is measured once per hardware fingerprint and cached on disk.

use super::gpu::route::{self, Crossover, Plan};
use super::gpu::{EdRules, GpuError, GpuVerifier, SoaBatch, SCHEME_BIP340, SCHEME_ED25519};
use super::{cpu, Batch, Rules, Scheme, Verdicts};
use crate::engine::{Backend, Engine, Job};
use std::sync::{Mutex, OnceLock};

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

/// The calibrated crossover for this device on this machine (cached per process and on disk).
fn crossover(backend: Backend, v: &dyn GpuVerifier, engine: &Engine) -> Result<Crossover, DeviceFault> {
    static CACHE: OnceLock<Mutex<Vec<(String, Crossover)>>> = OnceLock::new();
    let cpu_info = &engine.capabilities().cpu;
    let threads = super::cpu_threads(engine);
    let fp = route::fingerprint(&v.describe(), cpu_info.model.as_deref().unwrap_or("unknown"), threads);
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    if let Some(c) = cache.lock().ok().and_then(|g| g.iter().find(|(f, _)| *f == fp).map(|(_, c)| c.clone())) {
        return Ok(c.with_env_override());
    }
    let c = match route::load_cached(&fp) {
        Some(c) => c,
        None => {
            tracing::info!(device = %v.describe(), "calibrating the CPU/GPU crossover for verification");
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
                    let _ = cpu::verify_batch(&b, Rules::Zip215, threads);
                    t.elapsed().as_secs_f64()
                },
                |n| {
                    let view = corpus.view().slice(0..n);
                    let t = std::time::Instant::now();
                    v.verify_soa(&view, EdRules::Zip215)?;
                    Ok::<f64, GpuError>(t.elapsed().as_secs_f64())
                },
            )
            .map_err(|source| DeviceFault::Device { backend, source })?;
            tracing::info!(
                min_device_batch = c.min_device_batch,
                split_from = c.split_from,
                device_share = c.device_share,
                "verification crossover calibrated"
            );
            route::store_cached(&c);
            c
        }
    };
    if let Ok(mut g) = cache.lock() {
        g.push((fp, c.clone()));
    }
    Ok(c.with_env_override())
}

/// Verifies `batch` under `rules` on the device the engine routes [`Job::Verify`] to (see the
/// module docs for when part or all of it is served by the CPU instead).
pub(crate) fn try_verify(engine: &Engine, batch: &Batch, rules: Rules) -> Result<Verdicts, DeviceFault> {
    let route = engine.route(Job::Verify);
    let backend = route.backend;
    let v = verifier(backend)?;
    let n = batch.len();
    let plan = if route.reason == "forced" { Plan::Device } else { crossover(backend, v, engine)?.plan(n) };
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
            let (gpu, cpu_part) = std::thread::scope(|s| {
                let h = s.spawn(|| v.verify_soa(&soa.slice(0..device), ed_rules(rules)));
                let c = cpu::verify_batch(&rest, rules, threads);
                (h.join(), c)
            });
            let mut bytes = gpu.map_err(|_| dev(GpuError::call("device thread", "panicked")))?.map_err(dev)?;
            bytes.extend_from_slice(cpu_part.as_bytes());
            Ok(Verdicts::from_bytes(bytes))
        }
    }
}
