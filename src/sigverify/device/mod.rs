//! The device (GPU) path of verification: the one place the dispatcher in [`super`] calls for a
//! [`crate::Backend::Cuda`] or [`crate::Backend::Opencl`] route.
//!
//! # Contract
//!
//! [`try_verify`] either returns one verdict per item, equal to [`super::cpu::verify_one`] on
//! every item, and whether the device served the batch (whole, or its share of a split) or the
//! CPU did, or a [`DeviceFault`] saying why the device could not; the dispatcher then verifies
//! the whole batch on the CPU (logged, counted). A fault is never a verdict.
//!
//! # Routing inside the device path
//!
//! - A *forced* route (`--force cuda`, `EngineBuilder::force`) sends every batch to the device:
//!   the caller asked for that device, and benchmarks and agreement tests rely on it. Its first
//!   batch waits for the device's setup, and a device whose setup failed is a [`DeviceFault`]
//!   for every batch.
//! - An auto route with the CPU backend forbidden (`--forbid cpu`, `EngineBuilder::forbid`) is
//!   served as a forced one: the crossover, which hands batches to the CPU, is not applied, and
//!   no batch is verified on the CPU while the device is prepared. The CPU verifies a batch of
//!   such a route only when the device faults (the dispatcher's fallback, warned and counted in
//!   `device_fallbacks`, as for a forced route): the fault is never a verdict.
//! - Any other *auto* route applies the calibrated [`Crossover`] ([`super::gpu::route`]): batches below
//!   the crossover are verified on the CPU here (small batches cannot amortise a launch), large
//!   ones are split between the device and the CPU cores so both finish together. The crossover
//!   is measured once per device identity, rules and CPU (model, usable cores, IFMA or portable
//!   arithmetic), and cached on disk unless more than [`SKEW_TOLERANCE_ITEMS`] items were
//!   verified on the CPU while it was timed (the CPU looked slower than it is: that crossover
//!   serves the process only); [`route::pin`] replaces it (tests reach the split path on small
//!   batches with it).
//!
//! # Preparing the device
//!
//! The device's first-time setup is slow: building the verifier (NVRTC compiles the CUDA kernels
//! in about half a minute when no CUBIN is cached; an OpenCL driver builds its program), then
//! the crossover (read from the disk cache, or calibrated: a 16,384-item corpus timed at five
//! sizes on both sides, seconds; a forced route, or one with the CPU forbidden, needs only the
//! verifier). A batch of an auto route with the CPU allowed never waits for it:
//!
//! - while the verifier is not built, or the crossover of (device, rules, CPU) is not known in
//!   this process (neither pinned nor loaded nor calibrated yet), the batch is verified on the
//!   CPU: not a device fault (no warning, not counted in `device_fallbacks`). The setup is
//!   started on a background thread named `gpu-warmup`, at most one per (backend, rules) at a
//!   time (log at `info`); the batches after it finishes follow the crossover;
//! - a verifier whose build failed (no device, driver, compiler or kernels refused) stays failed
//!   for the process: auto-routed batches are verified on the CPU, with one warning per backend
//!   for the process, not one per batch;
//! - a calibration that fails is warned about when it fails; for [`RETRY_CALIBRATION`] the
//!   auto-routed batches for that device and rules are verified on the CPU, then the setup is
//!   started again;
//! - a device that fails while it verifies a batch (the whole batch, or its share of a split) is
//!   a [`DeviceFault`]: the dispatcher warns, counts it and verifies the batch on the CPU.
//!
//! [`prepare`] (`Engine::prepare_verify`) performs the setup synchronously and returns its
//! fault (benchmarks, and tests that need the device on their first batch); [`warm_up`]
//! (`Engine::warm_up_verify`) starts it in the background and returns at once (the node, at
//! startup).

use super::gpu::route::{self, Crossover, Plan};
use super::gpu::{EdRules, GpuError, GpuVerifier, SoaBatch, SCHEME_BIP340, SCHEME_ED25519};
use super::{cpu, Batch, Rules, Scheme, Verdicts};
use crate::engine::{Backend, Engine, Job, Route};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

/// The process-wide verifier for `backend` if its build has finished (successfully or not);
/// `None` while it was never started or is under way. Never waits.
fn verifier_if_ready(backend: Backend) -> Option<Result<&'static dyn GpuVerifier, DeviceFault>> {
    let dev = |source: GpuError| DeviceFault::Device { backend, source };
    match backend {
        #[cfg(feature = "cuda")]
        Backend::Cuda => {
            super::gpu::cuda::CudaVerifier::shared_if_ready().map(|r| r.map(|v| v as &dyn GpuVerifier).map_err(dev))
        }
        #[cfg(feature = "opencl")]
        Backend::Opencl => {
            super::gpu::opencl::OpenClVerifier::shared_if_ready().map(|r| r.map(|v| v as &dyn GpuVerifier).map_err(dev))
        }
        _ => {
            let _ = dev;
            Some(Err(DeviceFault::NotBuilt { backend }))
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

/// How long a failed calibration stands before the setup is tried again; until then auto-routed
/// batches for that device and rules are verified on the CPU without retrying (a device that
/// fails at some calibration size would otherwise re-run the smaller sizes for every batch).
const RETRY_CALIBRATION: std::time::Duration = std::time::Duration::from_secs(60);

/// What this process knows of one crossover fingerprint.
enum Calibration {
    Done(Crossover),
    /// Calibration failed at this instant, with this fault.
    Failed(std::time::Instant, DeviceFault),
}

/// What this process knows of each crossover fingerprint. Held only to look up or store, never
/// through a calibration, so an auto-routed batch asks without waiting.
static KNOWN: Mutex<Vec<(String, Calibration)>> = Mutex::new(Vec::new());

/// Held through a calibration: one caller calibrates at a time (the others wait for its result
/// instead of timing the device concurrently, which would skew both measurements).
static CALIBRATING: Mutex<()> = Mutex::new(());

/// The fingerprint the crossover of `v` under `rules` on `engine`'s CPU is known by.
fn fingerprint_of(v: &dyn GpuVerifier, engine: &Engine, rules: Rules) -> String {
    let model = engine.capabilities().cpu.model.as_deref().unwrap_or("unknown");
    crossover_fingerprint(&v.identity(), rules, model, super::cpu_threads(engine), cpu::uses_ifma())
}

/// What [`KNOWN`] says of `fp`: the crossover, the fault of a calibration that failed less than
/// [`RETRY_CALIBRATION`] ago, or `None` (not known, or time to try again).
fn known(fp: &str) -> Option<Result<Crossover, DeviceFault>> {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    match known.iter().find(|(f, _)| f == fp).map(|(_, c)| c) {
        Some(Calibration::Done(c)) => Some(Ok(c.clone().with_env_override())),
        Some(Calibration::Failed(at, fault)) if at.elapsed() < RETRY_CALIBRATION => Some(Err(fault.clone())),
        _ => None,
    }
}

/// Records what became of `fp`, in place of what was known of it.
fn remember(fp: String, c: Calibration) {
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known.retain(|(f, _)| *f != fp);
    known.push((fp, c));
}

/// The crossover for this device, these rules and this machine if this process knows it
/// (pinned, or loaded or calibrated by [`crossover`]; or the fault of a recent failed
/// calibration), without waiting; `None` when [`crossover`] has work to do.
fn crossover_if_known(v: &dyn GpuVerifier, engine: &Engine, rules: Rules) -> Option<Result<Crossover, DeviceFault>> {
    if let Some(c) = route::pinned() {
        return Some(Ok(c));
    }
    known(&fingerprint_of(v, engine, rules))
}

/// Items of auto-routed batches verified on the CPU because the device was not ready yet, in
/// this process: a calibration during which this moved by more than [`SKEW_TOLERANCE_ITEMS`]
/// timed a CPU that was busy ([`crossover`]).
static CPU_WHILE_PREPARING: AtomicU64 = AtomicU64::new(0);

/// Items verified on the CPU beside a calibration below which its crossover is still cached on
/// disk: under 1 % of the CPU work the calibration times itself (best of three at every
/// [`route::CALIBRATION_SIZES`], about 65,000 items), e.g. the handshakes and votes a node
/// verifies while it starts. More (blocks of transactions during catch-up) skews it.
const SKEW_TOLERANCE_ITEMS: u64 = 512;

/// The crossover for this device, these rules and this machine: pinned ([`route::pin`]), else
/// calibrated once and cached per process and on disk. One caller calibrates at a time. A failed
/// calibration is the same fault for every caller for [`RETRY_CALIBRATION`], then is retried.
fn crossover(backend: Backend, v: &dyn GpuVerifier, engine: &Engine, rules: Rules) -> Result<Crossover, DeviceFault> {
    if let Some(c) = route::pinned() {
        return Ok(c);
    }
    let fp = fingerprint_of(v, engine, rules);
    if let Some(known) = known(&fp) {
        return known;
    }
    let _calibrating = CALIBRATING.lock().unwrap_or_else(|e| e.into_inner());
    // A caller that calibrated while this one waited left its result.
    if let Some(known) = known(&fp) {
        return known;
    }
    let threads = super::cpu_threads(engine);
    let c = match route::load_cached(&fp) {
        Some(c) => c,
        None => {
            tracing::info!(device = %v.describe(), ?rules, "calibrating the CPU/GPU crossover for verification");
            let cpu_items_before = CPU_WHILE_PREPARING.load(Ordering::Relaxed);
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
                    tracing::warn!(
                        %fault,
                        retry_in = ?RETRY_CALIBRATION,
                        "calibration failed; auto-routed batches are verified on the CPU until it is tried again"
                    );
                    remember(fp, Calibration::Failed(std::time::Instant::now(), fault.clone()));
                    return Err(fault);
                }
            };
            // Auto-routed batches verified on the CPU meanwhile took cores from the CPU's
            // timing, so the CPU looked slower than it is: past a few, such a crossover serves
            // this process but is not kept on disk for later ones (the next one calibrates again).
            let beside = CPU_WHILE_PREPARING.load(Ordering::Relaxed).saturating_sub(cpu_items_before);
            if beside <= SKEW_TOLERANCE_ITEMS {
                route::store_cached(&c);
            } else {
                tracing::info!(
                    fingerprint = %fp,
                    items_verified_on_the_cpu_meanwhile = beside,
                    "calibrated while batches were verified on the CPU; this crossover is not cached on disk"
                );
            }
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
    remember(fp, Calibration::Done(c.clone()));
    Ok(c.with_env_override())
}

/// Who verified a batch that got verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// The device: the whole batch, or its share of a CPU+GPU split.
    Device,
    /// The CPU alone: the crossover's plan, or an auto route while the device is not ready.
    Cpu,
}

/// Where the device path gets its verifier and its crossover: [`Devices`] (the real ones), or a
/// fake in tests. The `_if_ready` / `_if_known` halves never wait; the others may take tens of
/// seconds the first time.
trait Setup: Send + Sync + 'static {
    /// The verifier for `backend`, built on first use.
    fn verifier(&self, backend: Backend) -> Result<&'static dyn GpuVerifier, DeviceFault>;
    /// The verifier for `backend` if its build has finished; `None` while it has not.
    fn verifier_if_ready(&self, backend: Backend) -> Option<Result<&'static dyn GpuVerifier, DeviceFault>>;
    /// The crossover of `v` under `rules` on `engine`'s CPU, calibrated on first use.
    fn crossover(
        &self,
        backend: Backend,
        v: &dyn GpuVerifier,
        engine: &Engine,
        rules: Rules,
    ) -> Result<Crossover, DeviceFault>;
    /// The crossover if this process knows it; `None` while [`Setup::crossover`] has work to do.
    fn crossover_if_known(
        &self,
        v: &dyn GpuVerifier,
        engine: &Engine,
        rules: Rules,
    ) -> Option<Result<Crossover, DeviceFault>>;
}

/// The devices of this process: [`verifier`] and [`crossover`].
struct Devices;

impl Setup for Devices {
    fn verifier(&self, backend: Backend) -> Result<&'static dyn GpuVerifier, DeviceFault> {
        verifier(backend)
    }
    fn verifier_if_ready(&self, backend: Backend) -> Option<Result<&'static dyn GpuVerifier, DeviceFault>> {
        verifier_if_ready(backend)
    }
    fn crossover(
        &self,
        backend: Backend,
        v: &dyn GpuVerifier,
        engine: &Engine,
        rules: Rules,
    ) -> Result<Crossover, DeviceFault> {
        crossover(backend, v, engine, rules)
    }
    fn crossover_if_known(
        &self,
        v: &dyn GpuVerifier,
        engine: &Engine,
        rules: Rules,
    ) -> Option<Result<Crossover, DeviceFault>> {
        crossover_if_known(v, engine, rules)
    }
}

/// The device path of this process.
static DEVICES: Warmer<Devices> = Warmer::new(Devices);

/// Whether `route` was forced by the caller (not chosen by `auto`).
fn is_forced(route: &Route) -> bool {
    route.reason == "forced"
}

/// Whether every batch of `engine`'s verify route goes to the device, waiting for its setup: the
/// route was forced, or the CPU backend is forbidden (then the crossover, which sends batches to
/// the CPU, and verifying on the CPU while the device is prepared are not allowed either).
fn device_only(engine: &Engine) -> bool {
    is_forced(engine.route(Job::Verify)) || engine.is_forbidden(Backend::Cpu)
}

/// The device path over one [`Setup`]: routes batches, and prepares the device in the
/// background for auto routes (see the module docs).
struct Warmer<S> {
    setup: S,
    /// The (backend, rules) whose setup thread is running.
    running: Mutex<Vec<(Backend, Rules)>>,
    /// The backends whose failed setup has been reported (once each).
    reported: Mutex<Vec<Backend>>,
    /// Setup threads started (for tests).
    started: AtomicUsize,
}

/// Removes its key from [`Warmer::running`] when the setup thread ends, however it ends.
struct Running<'a, S> {
    warmer: &'a Warmer<S>,
    key: (Backend, Rules),
}

impl<S> Drop for Running<'_, S> {
    fn drop(&mut self) {
        self.warmer.running.lock().unwrap_or_else(|e| e.into_inner()).retain(|k| *k != self.key);
    }
}

impl<S: Setup> Warmer<S> {
    const fn new(setup: S) -> Self {
        Warmer {
            setup,
            running: Mutex::new(Vec::new()),
            reported: Mutex::new(Vec::new()),
            started: AtomicUsize::new(0),
        }
    }

    /// Performs the setup of `engine`'s verify route for `rules` now, waiting for it: the
    /// verifier, and the crossover unless every batch goes to the device ([`device_only`]).
    /// `Ok` for a CPU route.
    fn prepare(&self, engine: &Engine, rules: Rules) -> Result<(), DeviceFault> {
        let route = engine.route(Job::Verify);
        if !matches!(route.backend, Backend::Cuda | Backend::Opencl) {
            return Ok(());
        }
        let v = self.setup.verifier(route.backend)?;
        if !device_only(engine) {
            self.setup.crossover(route.backend, v, engine, rules)?;
        }
        Ok(())
    }

    /// Starts the setup of `engine`'s verify route for `rules` in the background unless it is
    /// done or under way; returns at once.
    fn warm_up(&'static self, engine: &Engine, rules: Rules) {
        let route = engine.route(Job::Verify);
        if !matches!(route.backend, Backend::Cuda | Backend::Opencl) {
            return;
        }
        if !device_only(engine) {
            let _ = self.ready(engine, rules);
        } else if self.setup.verifier_if_ready(route.backend).is_none() {
            self.start(engine, rules);
        }
    }

    /// For an auto route: the verifier and the crossover when both are ready. Otherwise `None`
    /// (the batch goes to the CPU), after starting the setup in the background, or after
    /// reporting (once) a verifier that failed for good.
    fn ready(&'static self, engine: &Engine, rules: Rules) -> Option<(&'static dyn GpuVerifier, Crossover)> {
        let backend = engine.backend(Job::Verify);
        let v = match self.setup.verifier_if_ready(backend) {
            Some(Ok(v)) => v,
            Some(Err(fault)) => {
                self.report_unusable(backend, &fault);
                return None;
            }
            None => {
                self.start(engine, rules);
                return None;
            }
        };
        match self.setup.crossover_if_known(v, engine, rules) {
            Some(Ok(c)) => Some((v, c)),
            // Warned when the calibration failed; the setup starts again after RETRY_CALIBRATION.
            Some(Err(_)) => None,
            None => {
                self.start(engine, rules);
                None
            }
        }
    }

    /// Warns, once per backend for the process, that its setup failed and auto-routed batches
    /// are verified on the CPU.
    fn report_unusable(&self, backend: Backend, fault: &DeviceFault) {
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        if !reported.contains(&backend) {
            reported.push(backend);
            tracing::warn!(
                %fault,
                "device verification is unavailable in this process; auto-routed batches are verified on the CPU"
            );
        }
    }

    /// Runs [`Warmer::prepare`] on a `gpu-warmup` thread, unless one runs for this backend and
    /// these rules already.
    fn start(&'static self, engine: &Engine, rules: Rules) {
        let backend = engine.backend(Job::Verify);
        let key = (backend, rules);
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if running.contains(&key) {
                return;
            }
            running.push(key);
        }
        let running = Running { warmer: self, key };
        self.started.fetch_add(1, Ordering::Relaxed);
        if device_only(engine) {
            tracing::info!(%backend, ?rules, "preparing the device for verification in the background");
        } else {
            tracing::info!(
                %backend,
                ?rules,
                "preparing the device for verification in the background; until it is ready, auto-routed batches are verified on the CPU"
            );
        }
        let engine = engine.clone();
        let spawned = std::thread::Builder::new().name("gpu-warmup".into()).spawn(move || {
            let _running = running;
            match self.setup.verifier(backend) {
                // A forced route (or one with the CPU forbidden) reports the fault with every
                // batch routed to it, and needs no crossover.
                Err(_) if device_only(&engine) => {}
                Err(fault) => self.report_unusable(backend, &fault),
                Ok(_) if device_only(&engine) => {}
                // A failed calibration is warned about where it fails, and tried again after
                // RETRY_CALIBRATION.
                Ok(v) => {
                    if let Ok(c) = self.setup.crossover(backend, v, &engine, rules) {
                        tracing::info!(
                            device = %v.describe(),
                            ?rules,
                            min_device_batch = c.min_device_batch,
                            "device ready: auto-routed verification follows the crossover"
                        );
                    }
                }
            }
        });
        // A thread that did not start dropped its closure, and with it `running`: the next
        // auto-routed batch tries again.
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the device's setup thread; verifying on the CPU meanwhile");
        }
    }

    /// Verifies `batch` under `rules` on the device the engine routes [`Job::Verify`] to (see
    /// the module docs for when part or all of it is served by the CPU instead).
    fn try_verify(
        &'static self,
        engine: &Engine,
        batch: &Batch,
        rules: Rules,
    ) -> Result<(Verdicts, Served), DeviceFault> {
        let route = engine.route(Job::Verify);
        let backend = route.backend;
        let n = batch.len();
        let (v, plan) = if device_only(engine) {
            (self.setup.verifier(backend)?, Plan::Device)
        } else {
            match self.ready(engine, rules) {
                Some((v, c)) => (v, c.plan(n)),
                None => {
                    CPU_WHILE_PREPARING.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok((cpu::verify_batch(batch, rules, super::cpu_threads(engine)), Served::Cpu));
                }
            }
        };
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
            Plan::Cpu => Ok((cpu::verify_batch(batch, rules, super::cpu_threads(engine)), Served::Cpu)),
            Plan::Device => {
                v.verify_soa(&soa, ed_rules(rules)).map(|b| (Verdicts::from_bytes(b), Served::Device)).map_err(dev)
            }
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
                Ok((Verdicts::from_bytes(bytes), Served::Device))
            }
        }
    }
}

/// Verifies `batch` under `rules` on the device the engine routes [`Job::Verify`] to (see the
/// module docs for when part or all of it is served by the CPU instead).
pub(crate) fn try_verify(engine: &Engine, batch: &Batch, rules: Rules) -> Result<(Verdicts, Served), DeviceFault> {
    DEVICES.try_verify(engine, batch, rules)
}

/// Performs the device's setup for `engine`'s verify route and `rules` now, waiting for it (see
/// the module docs); `Ok` for a CPU route.
pub(crate) fn prepare(engine: &Engine, rules: Rules) -> Result<(), DeviceFault> {
    DEVICES.prepare(engine, rules)
}

/// Starts the device's setup for `engine`'s verify route and `rules` in the background unless
/// it is done or under way; returns at once.
pub(crate) fn warm_up(engine: &Engine, rules: Rules) {
    DEVICES.warm_up(engine, rules)
}

#[cfg(test)]
mod tests;
