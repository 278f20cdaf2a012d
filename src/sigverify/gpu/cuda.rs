//! CUDA host glue (feature `cuda`): the embedded `kernels/cuda/verify.cu` compiled at run time by
//! NVRTC for the device's architecture, loaded once per process: a CUBIN for the device's exact
//! architecture, or PTX for the driver to finish when NVRTC cannot make that CUBIN or the driver
//! refuses it ([`super::nvrtc`] says why CUBIN comes first). A compiled CUBIN is cached on disk
//! ([`super::kernel_cache`]): NVRTC needs about half a minute for it, once per machine and build.
//! [`CudaVerifier::describe`] says which image was loaded and where it came from.
//!
//! A batch is cut into chunks that alternate over [`STREAMS`] streams. Each stream owns pinned
//! (page-locked) staging buffers and device buffers that are grown, never reallocated per batch.
//! While the device hashes and verifies chunk `k` on one stream, the host stages chunk `k + 1`
//! into the other stream's pinned buffers, and copies overlap compute.
//!
//! cudarc's dynamic loading panics when libcuda or libnvrtc is missing, so both are probed with
//! `is_culib_present` before any other cudarc call, and a panic inside cudarc while the verifier
//! is built (a driver too old to export a symbol cudarc looks up) is caught and becomes a
//! [`GpuError::NoDevice`]. Every driver or NVRTC error is a [`GpuError`]; it never becomes a
//! verdict.
//!
//! The kernel-only time [`GpuVerifier::verify_soa_timed`] reports is the union of the kernels'
//! intervals, each measured by CUDA events against the first kernel's start event.

use super::nvrtc::{self, Output};
use super::{kernel_cache, EdRules, GpuError, GpuVerifier, SoaBatch};
use cudarc::driver::{
    result, sys, CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtrMut, LaunchConfig,
    PinnedHostSlice, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use std::sync::{Arc, Mutex, OnceLock};

/// The entry file the module is compiled from.
pub const ENTRY: &str = "cuda/verify.cu";
/// Streams per device; chunks alternate between them.
pub const STREAMS: usize = 2;
/// Most items per chunk. A batch is cut into chunks of `min(CHUNK_ITEMS, ⌈n / STREAMS⌉)` items
/// (one launch pair each) that alternate between the streams, so even a small batch of two or
/// more items uses both.
pub const CHUNK_ITEMS: usize = 1 << 17;
/// Threads per block.
const BLOCK: u32 = 128;

fn drv(call: &'static str) -> impl Fn(result::DriverError) -> GpuError {
    move |e| GpuError::call(call, format!("{e:?}"))
}

/// The label of an error cudarc stored earlier and reports now: a `Drop` that cannot return one
/// (a failed `cuEventRecord`, `cuMemFreeAsync` or `cuEventDestroy` of an earlier batch) stores it
/// in the context, and the context's next `bind_to_thread` (which nearly every cudarc call makes
/// first) returns it as that call's error. [`CudaVerifier::run`] asks for it with
/// `CudaContext::check_err` at its start and end, so it is named for what it is.
const EARLIER_ERROR: &str = "an earlier asynchronous CUDA error";

/// The label of cudarc's `PinnedHostSlice` accessors (`as_mut_ptr`, `as_slice`,
/// `as_mut_slice`): they bind the context (which reports an error stored since the last check,
/// see [`EARLIER_ERROR`]) and wait for the slice's event (`cuEventSynchronize`).
const PINNED_ACCESS: &str = "pinned buffer access (context bind, then cuEventSynchronize)";

/// One stream with its pinned staging and device buffers.
struct Lane {
    stream: Arc<CudaStream>,
    items: usize,
    message_bytes: usize,
    // Pinned host staging (inputs write-combined, verdicts cached for host reads).
    h_schemes: PinnedHostSlice<u8>,
    h_pubkeys: PinnedHostSlice<u8>,
    h_sigs: PinnedHostSlice<u8>,
    h_msgs: PinnedHostSlice<u8>,
    h_offsets: PinnedHostSlice<u64>,
    h_verdicts: PinnedHostSlice<u8>,
    d_schemes: CudaSlice<u8>,
    d_pubkeys: CudaSlice<u8>,
    d_sigs: CudaSlice<u8>,
    d_msgs: CudaSlice<u8>,
    d_offsets: CudaSlice<u64>,
    d_challenges: CudaSlice<u8>,
    d_verdicts: CudaSlice<u8>,
    /// The chunk whose verdicts are in flight on this lane: (first item, count).
    pending: Option<(usize, usize)>,
}

fn pinned<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    ctx: &Arc<CudaContext>,
    n: usize,
    wc: bool,
) -> Result<PinnedHostSlice<T>, GpuError> {
    let flags = if wc { sys::CU_MEMHOSTALLOC_WRITECOMBINED } else { 0 };
    let n = n.max(1);
    // SAFETY: the allocation is uninitialised; it is zeroed below, before any reference to it
    // is made.
    let mut p = unsafe { ctx.alloc_pinned_with_flags::<T>(n, flags) }.map_err(drv("cuMemHostAlloc"))?;
    let ptr = p.as_mut_ptr().map_err(drv(PINNED_ACCESS))?;
    // SAFETY: `ptr` points to `n` elements of `T` just allocated and owned by `p`, which nothing
    // else uses yet; all-zero bytes are a valid `T` (`ValidAsZeroBits`). After
    // this the slice views `stage` and `drain` make cover initialised memory.
    unsafe { std::ptr::write_bytes(ptr, 0, n) };
    Ok(p)
}

impl Lane {
    fn new(
        ctx: &Arc<CudaContext>,
        stream: Arc<CudaStream>,
        items: usize,
        message_bytes: usize,
    ) -> Result<Self, GpuError> {
        let alloc = |n: usize| stream.alloc_zeros::<u8>(n.max(1)).map_err(drv("cuMemAlloc"));
        Ok(Lane {
            items,
            message_bytes,
            h_schemes: pinned(ctx, items, true)?,
            h_pubkeys: pinned(ctx, items * 32, true)?,
            h_sigs: pinned(ctx, items * 64, true)?,
            h_msgs: pinned(ctx, message_bytes, true)?,
            h_offsets: pinned(ctx, items + 1, true)?,
            h_verdicts: pinned(ctx, items, false)?,
            d_schemes: alloc(items)?,
            d_pubkeys: alloc(items * 32)?,
            d_sigs: alloc(items * 64)?,
            d_msgs: alloc(message_bytes)?,
            d_offsets: stream.alloc_zeros::<u64>(items + 1).map_err(drv("cuMemAlloc"))?,
            d_challenges: alloc(items * 32)?,
            d_verdicts: alloc(items)?,
            stream,
            pending: None,
        })
    }
}

/// Copies `src` into the front of pinned `dst` and enqueues the host-to-device copy on `stream`.
fn stage<T: Copy + cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    stream: &CudaStream,
    src: &[T],
    host: &mut PinnedHostSlice<T>,
    dev: &mut CudaSlice<T>,
) -> Result<(), GpuError> {
    if src.is_empty() {
        return Ok(());
    }
    let h = host.as_mut_slice().map_err(drv(PINNED_ACCESS))?;
    let h = &mut h[..src.len()];
    h.copy_from_slice(src);
    let (dptr, _record) = dev.device_ptr_mut(stream);
    // SAFETY: `h` lies in page-locked memory owned by the lane, which is neither written again
    // nor freed until the lane's stream has been synchronised: a chunk's lane is drained (stream
    // synchronised) before it is staged again, every exit of `CudaVerifier::run` leaves no lane
    // with work in flight (drained on success, synchronised on error, leaked when even that
    // fails), and lanes are regrown (freed) only at the start of a call. The device buffer holds
    // at least `src.len()` elements.
    unsafe { result::memcpy_htod_async(dptr, h, stream.cu_stream()) }.map_err(drv("cuMemcpyHtoDAsync"))
}

/// A compiled module on one CUDA device.
pub struct CudaVerifier {
    description: String,
    identity: String,
    ctx: Arc<CudaContext>,
    challenge: CudaFunction,
    verify: CudaFunction,
    /// The fixed-base tables of `B` and `G` ([`super::base_tables`]), written once in `new`.
    tables: (CudaSlice<u8>, CudaSlice<u8>),
    lanes: Mutex<Vec<Lane>>,
}

/// Checks the kernels' table layout, then writes the fixed-base tables of `B` and `G` into new
/// device buffers ([`super::base_tables`]) on the context's default stream and waits for them.
fn base_tables(
    ctx: &Arc<CudaContext>,
    module: &Arc<cudarc::driver::CudaModule>,
) -> Result<(CudaSlice<u8>, CudaSlice<u8>), GpuError> {
    let layout_fn = module.load_function("base_table_layout").map_err(drv("cuModuleGetFunction"))?;
    let tables_fn = module.load_function("base_tables").map_err(drv("cuModuleGetFunction"))?;
    let stream = ctx.default_stream();
    let mut layout_buf = stream.alloc_zeros::<u64>(4).map_err(drv("cuMemAlloc"))?;
    let one = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (1, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: `base_table_layout(u64 *out)` writes out[0..4] from thread 0; the buffer holds 4.
    unsafe { stream.launch_builder(&layout_fn).arg(&mut layout_buf).launch(one) }.map_err(drv("cuLaunchKernel"))?;
    let layout = stream.clone_dtoh(&layout_buf).map_err(drv("cuMemcpyDtoH"))?;
    stream.synchronize().map_err(drv("cuStreamSynchronize"))?;
    let (b_bytes, g_bytes) = super::base_tables::sizes(&layout)?;
    let mut btab = stream.alloc_zeros::<u8>(b_bytes).map_err(drv("cuMemAlloc"))?;
    let mut gtab = stream.alloc_zeros::<u8>(g_bytes).map_err(drv("cuMemAlloc"))?;
    let threads = super::base_tables::THREADS as u32;
    let cfg = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (threads, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: `base_tables(ge25519_cached *, gej_secp *)` writes WINDOWS × ENTRIES entries of
    // each, which the buffers hold (sizes from the layout just checked); one thread per window of
    // each curve.
    unsafe { stream.launch_builder(&tables_fn).arg(&mut btab).arg(&mut gtab).launch(cfg) }
        .map_err(drv("cuLaunchKernel"))?;
    stream.synchronize().map_err(drv("cuStreamSynchronize"))?;
    Ok((btab, gtab))
}

/// NVRTC options beyond the architecture.
const OPTIONS: &[&str] = &["--std=c++14"];

/// Environment variable that caps the registers per thread (`--maxrregcount`), for tuning on a
/// GPU: ptxas gives `sig_verify` 236 registers on `sm_90` (two 128-thread blocks per SM); capped
/// at 168 it spills 72 bytes in one callee and fits three blocks. Which verifies faster is
/// measured on the device (`scripts/device_run.sh` runs both), not assumed.
pub const MAXRREG_ENV: &str = "PARTHENON_CUDA_MAXRREG";

/// [`OPTIONS`] plus the register cap from [`MAXRREG_ENV`], when it is set to a number of
/// registers from 32 to 255 (anything else is ignored with a warning).
fn options() -> Vec<String> {
    options_with(std::env::var(MAXRREG_ENV).ok().as_deref())
}

/// [`options`] with `maxrreg` as the value of [`MAXRREG_ENV`].
fn options_with(maxrreg: Option<&str>) -> Vec<String> {
    let mut all: Vec<String> = OPTIONS.iter().map(|o| o.to_string()).collect();
    if let Some(v) = maxrreg {
        match v.trim().parse::<u32>() {
            Ok(n) if (32..=255).contains(&n) => all.push(format!("--maxrregcount={n}")),
            _ => tracing::warn!("{MAXRREG_ENV}={v:?} ignored: expected a register count from 32 to 255"),
        }
    }
    all
}

/// Compiles the embedded kernels for compute capability `capability` with NVRTC alone: no device
/// and no driver needed, so the kernel source can be checked on any machine with `libnvrtc`.
/// `options` are added to the backend's own (`--ptxas-options=-v` puts register and spill counts
/// in the log). [`CudaVerifier::new`] compiles the same way for the device it opens.
pub fn compile_kernels(capability: (i32, i32), output: Output, options: &[&str]) -> Result<nvrtc::Compiled, GpuError> {
    // SAFETY: is_culib_present only tries to dlopen candidate library names.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(GpuError::NoDevice("libnvrtc not found: kernels cannot be compiled".into()));
    }
    let source = crate::kernels::assemble(ENTRY).map_err(|e| GpuError::Build(e.to_string()))?;
    let base = self::options();
    let all: Vec<&str> = base.iter().map(String::as_str).chain(options.iter().copied()).collect();
    nvrtc::compile(&source, "verify.cu", capability, output, &all).map_err(GpuError::Build)
}

/// Loads the kernels into `ctx`, the first way that works:
/// 1. the CUBIN for `capability` cached by an earlier run ([`kernel_cache`]), if the driver takes it;
/// 2. a CUBIN compiled now, then cached (skipped when the driver refused the cached one: a
///    cached image that passes its check is the one NVRTC would make again);
/// 3. PTX, for the driver to finish, when NVRTC cannot make the CUBIN or the driver refuses it.
///
/// Returns the module and how it was obtained (for [`CudaVerifier::describe`]); the error lists
/// every attempt's reason, NVRTC's log included.
fn load_kernels(
    ctx: &Arc<CudaContext>,
    source: &str,
    capability: (i32, i32),
) -> Result<(Arc<CudaModule>, String), String> {
    let (major, minor) = capability;
    let version = nvrtc::version()?;
    let owned = options();
    let options: Vec<&str> = owned.iter().map(String::as_str).collect();
    let key = kernel_cache::Key::new(source, &format!("sm_{major}{minor}"), &options, version);
    let flags = options.join(" ");
    let mut failures = Vec::new();
    let mut outputs: &[Output] = &[Output::Cubin, Output::Ptx];
    if let Some(image) = kernel_cache::load(&key) {
        match ctx.load_module(Ptx::from_binary(image)) {
            Ok(module) => return Ok((module, format!("CUBIN sm_{major}{minor} from the cache, {flags}"))),
            Err(e) => {
                failures.push(format!("cached CUBIN refused by the driver (cuModuleLoadData): {e:?}"));
                outputs = &[Output::Ptx];
            }
        }
    }
    for &output in outputs {
        tracing::info!(
            "compiling the CUDA kernels to {output} for sm_{major}{minor} (NVRTC takes tens of seconds; a CUBIN is cached)"
        );
        let image = match nvrtc::compile(source, "verify.cu", capability, output, &options) {
            Ok(compiled) => compiled.image,
            Err(e) => {
                failures.push(format!("{output}: {e}"));
                continue;
            }
        };
        let loaded = match output {
            Output::Cubin => ctx.load_module(Ptx::from_binary(image.clone())),
            Output::Ptx => ctx.load_module(Ptx::from_src(String::from_utf8_lossy(&image).into_owned())),
        };
        match loaded {
            Ok(module) => {
                if output == Output::Cubin {
                    kernel_cache::store(&key, &image);
                }
                if !failures.is_empty() {
                    tracing::warn!(attempts = %failures.join("; "), "CUDA kernels loaded as {output}");
                }
                let how = format!("{output} compiled by NVRTC {}.{}, {flags}", version.0, version.1);
                return Ok((module, how));
            }
            Err(e) => failures.push(format!("{output} refused by the driver (cuModuleLoadData): {e:?}")),
        }
    }
    Err(failures.join("; "))
}

/// The process-wide verifier ([`CudaVerifier::shared`]).
static SHARED: OnceLock<Result<CudaVerifier, GpuError>> = OnceLock::new();

impl CudaVerifier {
    /// Compiles and loads the kernels on device `ordinal`.
    pub fn new(ordinal: usize) -> Result<Self, GpuError> {
        // SAFETY: is_culib_present only tries to dlopen candidate library names.
        if !unsafe { sys::is_culib_present() } {
            return Err(GpuError::NoDevice("libcuda.so.1 not found (no NVIDIA driver installed)".into()));
        }
        // SAFETY: as above, for NVRTC.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(GpuError::NoDevice("libnvrtc not found: kernels cannot be compiled".into()));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| GpuError::NoDevice(format!("cuda device {ordinal}: {e:?}")))?;
        let (major, minor) = ctx.compute_capability().map_err(drv("cuDeviceGetAttribute"))?;
        let name = ctx.name().unwrap_or_else(|_| format!("CUDA device {ordinal}"));
        let source = crate::kernels::assemble(ENTRY).map_err(|e| GpuError::Build(e.to_string()))?;
        let (module, how) = load_kernels(&ctx, &source, (major, minor))
            .map_err(|e| GpuError::Build(format!("{name} (sm_{major}{minor}): {e}")))?;
        let identity =
            format!("CUDA: {name}, sm_{major}{minor}; kernels {}", super::kernel_digest(&source, &options().join(" ")));
        let challenge = module.load_function("sig_challenge").map_err(drv("cuModuleGetFunction"))?;
        let verify = module.load_function("sig_verify").map_err(drv("cuModuleGetFunction"))?;
        let tables = base_tables(&ctx, &module)?;
        Ok(CudaVerifier {
            description: format!("CUDA: {name} (device {ordinal}, sm_{major}{minor}; kernels: {how})"),
            identity,
            ctx,
            challenge,
            verify,
            tables,
            lanes: Mutex::new(Vec::new()),
        })
    }

    /// The process-wide verifier on device 0, built once (NVRTC takes about half a minute when
    /// no CUBIN is cached); a failure is remembered.
    pub fn shared() -> Result<&'static CudaVerifier, GpuError> {
        SHARED
            .get_or_init(|| {
                crate::detect::cuda::contain_library_panic(|| CudaVerifier::new(0))
                    .unwrap_or_else(|reason| Err(GpuError::NoDevice(reason)))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// What [`CudaVerifier::shared`] built, if it has finished (successfully or not); `None`
    /// while it was never called or is still building. Never waits.
    pub fn shared_if_ready() -> Option<Result<&'static CudaVerifier, GpuError>> {
        SHARED.get().map(|r| r.as_ref().map_err(Clone::clone))
    }

    fn run(&self, batch: &SoaBatch<'_>, rules: EdRules, chunk_items: usize) -> Result<(Vec<u8>, f64), GpuError> {
        batch.check()?;
        let n = batch.len();
        let mut out = vec![0u8; n];
        if n == 0 {
            return Ok((out, 0.0));
        }
        let mut lanes = self.lanes.lock().map_err(|_| GpuError::call("lock", "a previous launch panicked"))?;
        // An error an earlier batch's drops stored would otherwise surface as the first call's.
        self.ctx.check_err().map_err(drv(EARLIER_ERROR))?;
        // Invariant between calls: no lane has work in flight (see the error path below), so
        // regrowing a lane here never frees memory a copy still reads or writes.
        let chunk = chunk_items.min(n.div_ceil(STREAMS)).max(1);
        let chunks: Vec<std::ops::Range<usize>> = (0..n).step_by(chunk).map(|s| s..(s + chunk).min(n)).collect();
        let max_msg = chunks.iter().map(|r| batch.slice(r.clone()).messages.len()).max().unwrap_or(0);
        let want_lanes = chunks.len().min(STREAMS);
        // Grow (or create) lanes so each can hold one chunk.
        for i in 0..want_lanes {
            let fits = lanes.get(i).is_some_and(|l| l.items >= chunk && l.message_bytes >= max_msg);
            if !fits {
                let (items, bytes) =
                    lanes.get(i).map_or((chunk, max_msg), |l| (l.items.max(chunk), l.message_bytes.max(max_msg)));
                // The old lane's memory is freed before the new one is allocated, so a regrow
                // never needs both at once (nothing is in flight: the invariant above). Should
                // the allocation fail, the lanes left are whole and the next call grows anew.
                let stream = if i < lanes.len() {
                    let old = lanes.remove(i);
                    let stream = old.stream.clone();
                    // Its drops free the buffers and store what failed in the context.
                    drop(old);
                    self.ctx.check_err().map_err(drv("freeing a lane's buffers (cuMemFreeAsync, cuMemFreeHost)"))?;
                    stream
                } else {
                    self.ctx.new_stream().map_err(drv("cuStreamCreate"))?
                };
                let lane = Lane::new(&self.ctx, stream, items, bytes)?;
                lanes.insert(i, lane);
            }
        }
        let mut events = Vec::new();
        if let Err(e) = self.run_chunks(&mut lanes, batch, rules, &chunks, &mut out, &mut events) {
            // A `?` inside may have left copies queued that read or write a lane's pinned
            // memory. Nothing of a failed batch stays in flight: wait for every lane's stream
            // and forget its pending chunk (its verdicts belong to this failed call).
            let mut lost = false;
            for lane in lanes.iter_mut() {
                lane.pending = None;
                lost |= lane.stream.synchronize().is_err();
            }
            if lost {
                // A stream that cannot be synchronised (a lost device) may still have copies
                // queued against the pinned buffers: leak the lanes rather than free memory a
                // copy may touch. The next call allocates new ones (or fails on the device).
                for lane in lanes.drain(..) {
                    std::mem::forget(lane);
                }
            }
            return Err(e);
        }
        // Stored while this batch ran (a lane regrown above frees its buffers in drops): named
        // here, not by the next batch's first call. Every lane is drained: nothing in flight.
        self.ctx.check_err().map_err(drv(EARLIER_ERROR))?;
        // Every kernel's interval against the first start event: chunks on the two streams may
        // overlap, and the union counts the overlap once.
        let mut intervals = Vec::with_capacity(events.len());
        if let Some((origin, _)) = events.first() {
            for (s, e) in &events {
                let at = |ev: &cudarc::driver::CudaEvent| -> Result<f64, GpuError> {
                    Ok(origin.elapsed_ms(ev).map_err(drv("cuEventElapsedTime"))? as f64 * 1e-3)
                };
                intervals.push((at(s)?, at(e)?));
            }
        }
        let kernel_secs = super::busy_seconds(intervals);
        if out.iter().any(|v| *v > 1) {
            return Err(GpuError::call("sig_verify", "device returned a verdict byte other than 0 or 1"));
        }
        Ok((out, kernel_secs))
    }

    /// Stages and launches every chunk on the lanes in turn (draining a lane before staging it
    /// again), then drains them all: the verdicts land in `out`, each chunk's kernel events in
    /// `events`. On `Err` some lanes may still have work in flight; `run` waits for them.
    fn run_chunks(
        &self,
        lanes: &mut [Lane],
        batch: &SoaBatch<'_>,
        rules: EdRules,
        chunks: &[std::ops::Range<usize>],
        out: &mut [u8],
        events: &mut Vec<(cudarc::driver::CudaEvent, cudarc::driver::CudaEvent)>,
    ) -> Result<(), GpuError> {
        let want_lanes = chunks.len().min(STREAMS).min(lanes.len()).max(1);
        let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        for (k, range) in chunks.iter().enumerate() {
            let lane = &mut lanes[k % want_lanes];
            drain(lane, out)?;
            let sub = batch.slice(range.clone());
            let m = sub.len();
            let stream = lane.stream.clone();
            stage(&stream, sub.schemes, &mut lane.h_schemes, &mut lane.d_schemes)?;
            stage(&stream, sub.pubkeys.as_flattened(), &mut lane.h_pubkeys, &mut lane.d_pubkeys)?;
            stage(&stream, sub.signatures.as_flattened(), &mut lane.h_sigs, &mut lane.d_sigs)?;
            stage(&stream, sub.messages, &mut lane.h_msgs, &mut lane.d_msgs)?;
            stage(&stream, sub.offsets, &mut lane.h_offsets, &mut lane.d_offsets)?;
            let cfg = LaunchConfig {
                grid_dim: ((m as u32).div_ceil(BLOCK), 1, 1),
                block_dim: (BLOCK, 1, 1),
                shared_mem_bytes: 0,
            };
            let count = m as u64;
            let code = rules.code();
            let start = stream.record_event(timing).map_err(drv("cuEventRecord"))?;
            // SAFETY: argument order and types match `sig_challenge` / `sig_verify` in
            // kernels/cuda/verify.cu (u64 n, [u32 rules,] then device pointers, sig_verify's two
            // base tables last, sized as the kernels' own layout says); every buffer holds at
            // least `m` items (lanes grown above) and the kernels guard `i < n`.
            unsafe {
                stream
                    .launch_builder(&self.challenge)
                    .arg(&count)
                    .arg(&lane.d_schemes)
                    .arg(&lane.d_pubkeys)
                    .arg(&lane.d_sigs)
                    .arg(&lane.d_msgs)
                    .arg(&lane.d_offsets)
                    .arg(&mut lane.d_challenges)
                    .launch(cfg)
                    .map_err(drv("cuLaunchKernel"))?;
                stream
                    .launch_builder(&self.verify)
                    .arg(&count)
                    .arg(&code)
                    .arg(&lane.d_schemes)
                    .arg(&lane.d_pubkeys)
                    .arg(&lane.d_sigs)
                    .arg(&lane.d_challenges)
                    .arg(&mut lane.d_verdicts)
                    .arg(&self.tables.0)
                    .arg(&self.tables.1)
                    .launch(cfg)
                    .map_err(drv("cuLaunchKernel"))?;
            }
            let end = stream.record_event(timing).map_err(drv("cuEventRecord"))?;
            events.push((start, end));
            let h = lane.h_verdicts.as_mut_slice().map_err(drv(PINNED_ACCESS))?;
            let (dptr, _record) = lane.d_verdicts.device_ptr_mut(&stream);
            // SAFETY: `h[..m]` is page-locked memory owned by the lane; it is read only after the
            // lane's stream is synchronised in `drain`, and neither restaged nor freed while the
            // copy may run (see `stage`: a failed call synchronises every lane before it returns).
            unsafe { result::memcpy_dtoh_async(&mut h[..m], dptr, stream.cu_stream()) }
                .map_err(drv("cuMemcpyDtoHAsync"))?;
            lane.pending = Some((range.start, m));
        }
        for lane in lanes.iter_mut() {
            drain(lane, out)?;
        }
        Ok(())
    }
}

/// Waits for the lane's chunk in flight, if any, and copies its verdicts into `out`.
fn drain(lane: &mut Lane, out: &mut [u8]) -> Result<(), GpuError> {
    if let Some((start, m)) = lane.pending.take() {
        lane.stream.synchronize().map_err(drv("cuStreamSynchronize"))?;
        let h = lane.h_verdicts.as_slice().map_err(drv(PINNED_ACCESS))?;
        out[start..start + m].copy_from_slice(&h[..m]);
    }
    Ok(())
}

impl GpuVerifier for CudaVerifier {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn identity(&self) -> String {
        self.identity.clone()
    }

    fn chunk_items(&self) -> usize {
        CHUNK_ITEMS
    }

    fn verify_chunked(
        &self,
        batch: &SoaBatch<'_>,
        rules: EdRules,
        chunk_items: usize,
    ) -> Result<(Vec<u8>, f64), GpuError> {
        super::grouped_by_scheme(batch, |grouped| self.run(grouped, rules, chunk_items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_register_cap_is_taken_when_it_is_a_register_count() {
        // Through the value, not the process environment: setting a variable would race other
        // test threads (and C libraries they load) that read the environment.
        assert_eq!(options_with(Some("168")), ["--std=c++14", "--maxrregcount=168"]);
        for bad in ["7", "256", "many", ""] {
            assert_eq!(options_with(Some(bad)), ["--std=c++14"], "{bad:?}");
        }
        assert_eq!(options_with(None), ["--std=c++14"]);
    }
}
