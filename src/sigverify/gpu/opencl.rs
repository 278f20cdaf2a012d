//! OpenCL host glue (feature `opencl`): one context and program per device, built once from the
//! embedded `kernels/opencl/verify.cl`.
//!
//! A batch is cut into chunks that alternate over [`QUEUES`] in-order command queues, as the CUDA
//! host does with streams. Each queue's lane owns pinned staging memory (buffers the driver
//! allocates host-side, `CL_MEM_ALLOC_HOST_PTR`, mapped once for the lane's life: the memory
//! NVIDIA's and AMD's drivers copy from by DMA) and device buffers, both grown and never
//! reallocated per batch. While the device hashes and verifies chunk `k` on one queue, the host
//! stages chunk `k + 1` into the other lane's pinned memory, so copies overlap compute. Per chunk
//! the two kernels (`sig_challenge`, then `sig_verify`) run back to back on the lane's queue;
//! the batch's arrays are copied as is. Any OpenCL error is a [`GpuError`], never a verdict.

use super::{EdRules, GpuError, GpuVerifier, SoaBatch};
use opencl3::command_queue::{CommandQueue, CL_QUEUE_PROFILING_ENABLE};
use opencl3::context::Context;
use opencl3::device::{Device, CL_DEVICE_TYPE_ALL, CL_DEVICE_TYPE_GPU};
use opencl3::event::Event;
use opencl3::kernel::{ExecuteKernel, Kernel};
use opencl3::memory::{
    Buffer, ClMem, CL_MAP_READ, CL_MAP_WRITE, CL_MEM_ALLOC_HOST_PTR, CL_MEM_READ_ONLY, CL_MEM_READ_WRITE,
};
use opencl3::program::Program;
use opencl3::types::{cl_mem, cl_ulong, CL_BLOCKING, CL_NON_BLOCKING};
use std::ptr;
use std::sync::{Mutex, OnceLock};

/// The entry file the program is built from.
pub const ENTRY: &str = "opencl/verify.cl";
/// Command queues per device; chunks alternate between them.
pub const QUEUES: usize = 2;
/// Most items per chunk. A batch is cut into chunks of `min(CHUNK_ITEMS, ⌈n / QUEUES⌉)` items
/// (one launch pair each) that alternate between the queues, so even a small batch of two or
/// more items uses both.
pub const CHUNK_ITEMS: usize = 1 << 17;

/// Work-group size on GPUs.
const GPU_GROUP: usize = 64;
/// Work-group size on CPU devices (see `launch`).
const CPU_GROUP: usize = 4;

/// A built program on one OpenCL device, with its lanes.
pub struct OpenClVerifier {
    description: String,
    identity: String,
    is_gpu: bool,
    state: Mutex<State>,
}

struct State {
    context: Context,
    kernels: Kernels,
    lanes: Vec<Lane>,
    // Kept alive for the kernels' sake.
    _program: Program,
}

/// The two kernels of a batch and the fixed-base tables `sig_verify` reads.
struct Kernels {
    challenge: Kernel,
    verify: Kernel,
    /// The fixed-base tables of `B` and `G` ([`super::base_tables`]), written once in `new`.
    tables: (Buffer<u8>, Buffer<u8>),
}

fn create_buffer<T>(context: &Context, flags: u64, count: usize) -> Result<Buffer<T>, GpuError> {
    // SAFETY: no host pointer is passed (null with flags lacking USE/COPY_HOST_PTR), so the
    // driver allocates memory of `count.max(1)` elements that the Buffer owns.
    unsafe { Buffer::<T>::create(context, flags, count.max(1), ptr::null_mut()) }
        .map_err(|e| GpuError::call("clCreateBuffer", e))
}

/// Pinned host memory: a buffer the driver allocates host-side, mapped for its whole life (the
/// owning [`Lane`] unmaps it on drop).
struct Pinned<T> {
    buffer: Buffer<T>,
    ptr: *mut T,
    len: usize,
}

// SAFETY: the mapped memory belongs to `buffer` (an OpenCL object, usable from any thread), and
// it is only reached through `&mut self` of the lane that owns it, under the verifier's mutex.
unsafe impl<T: Send> Send for Pinned<T> {}

impl<T: Copy> Pinned<T> {
    fn new(context: &Context, queue: &CommandQueue, len: usize) -> Result<Self, GpuError> {
        let buffer = create_buffer::<T>(context, CL_MEM_ALLOC_HOST_PTR | CL_MEM_READ_WRITE, len)?;
        let mut mapped: cl_mem = ptr::null_mut();
        // SAFETY: a blocking map of the whole buffer (`len.max(1)` elements, its size), which
        // the driver keeps valid until it is unmapped (`Lane::drop`).
        unsafe {
            queue.enqueue_map_buffer(
                &buffer,
                CL_BLOCKING,
                CL_MAP_READ | CL_MAP_WRITE,
                0,
                len.max(1) * size_of::<T>(),
                &mut mapped,
                &[],
            )
        }
        .map_err(|e| GpuError::call("clEnqueueMapBuffer", e))?;
        if mapped.is_null() {
            return Err(GpuError::call("clEnqueueMapBuffer", "null mapping"));
        }
        let ptr: *mut T = mapped.cast();
        // SAFETY: the blocking map above made `len.max(1)` elements writable at `ptr`, owned by
        // `buffer` and not yet referenced; zeroed once here (every `T` staged is plain data), so
        // the slices `as_mut_slice` makes always cover initialised memory.
        unsafe { ptr::write_bytes(ptr, 0, len.max(1)) };
        Ok(Pinned { buffer, ptr, len })
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: `ptr` maps `len` elements of `buffer` (mapped in `new`, unmapped only when the
        // lane drops), and `&mut self` makes this the only reference to them.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// One command queue with its pinned staging and device buffers.
struct Lane {
    queue: CommandQueue,
    items: usize,
    message_bytes: usize,
    h_schemes: Pinned<u8>,
    h_pubkeys: Pinned<u8>,
    h_sigs: Pinned<u8>,
    h_msgs: Pinned<u8>,
    h_offsets: Pinned<u64>,
    h_verdicts: Pinned<u8>,
    d_schemes: Buffer<u8>,
    d_pubkeys: Buffer<u8>,
    d_sigs: Buffer<u8>,
    d_msgs: Buffer<u8>,
    d_offsets: Buffer<u64>,
    d_challenges: Buffer<u8>,
    d_verdicts: Buffer<u8>,
    /// The chunk whose verdicts are in flight on this lane: (first item, count).
    pending: Option<(usize, usize)>,
}

impl Lane {
    fn new(context: &Context, queue: CommandQueue, items: usize, message_bytes: usize) -> Result<Self, GpuError> {
        Ok(Lane {
            h_schemes: Pinned::new(context, &queue, items)?,
            h_pubkeys: Pinned::new(context, &queue, items * 32)?,
            h_sigs: Pinned::new(context, &queue, items * 64)?,
            h_msgs: Pinned::new(context, &queue, message_bytes)?,
            h_offsets: Pinned::new(context, &queue, items + 1)?,
            h_verdicts: Pinned::new(context, &queue, items)?,
            d_schemes: create_buffer(context, CL_MEM_READ_ONLY, items)?,
            d_pubkeys: create_buffer(context, CL_MEM_READ_ONLY, items * 32)?,
            d_sigs: create_buffer(context, CL_MEM_READ_ONLY, items * 64)?,
            d_msgs: create_buffer(context, CL_MEM_READ_ONLY, message_bytes)?,
            d_offsets: create_buffer(context, CL_MEM_READ_ONLY, items + 1)?,
            d_challenges: create_buffer(context, CL_MEM_READ_WRITE, items * 32)?,
            d_verdicts: create_buffer(context, CL_MEM_READ_WRITE, items)?,
            queue,
            items,
            message_bytes,
            pending: None,
        })
    }

    /// Waits for the chunk in flight, if any, and copies its verdicts into `out`.
    fn drain(&mut self, out: &mut [u8]) -> Result<(), GpuError> {
        if let Some((start, m)) = self.pending.take() {
            self.queue.finish().map_err(|e| GpuError::call("clFinish", e))?;
            out[start..start + m].copy_from_slice(&self.h_verdicts.as_mut_slice()[..m]);
        }
        Ok(())
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        let _ = self.queue.finish();
        let unmap = |buffer: cl_mem, p: *mut std::ffi::c_void| {
            // SAFETY: `p` is the mapping of `buffer` made in `Pinned::new`, unmapped once, here;
            // the queue has finished, so no command reads it.
            let _ = unsafe { self.queue.enqueue_unmap_mem_object(buffer, p, &[]) };
        };
        unmap(self.h_schemes.buffer.get(), self.h_schemes.ptr.cast());
        unmap(self.h_pubkeys.buffer.get(), self.h_pubkeys.ptr.cast());
        unmap(self.h_sigs.buffer.get(), self.h_sigs.ptr.cast());
        unmap(self.h_msgs.buffer.get(), self.h_msgs.ptr.cast());
        unmap(self.h_offsets.buffer.get(), self.h_offsets.ptr.cast());
        unmap(self.h_verdicts.buffer.get(), self.h_verdicts.ptr.cast());
        let _ = self.queue.finish();
    }
}

/// Copies `src` into the front of pinned `host` and enqueues its copy into `dev` on `queue`.
fn stage<T: Copy>(queue: &CommandQueue, src: &[T], host: &mut Pinned<T>, dev: &mut Buffer<T>) -> Result<(), GpuError> {
    if src.is_empty() {
        return Ok(());
    }
    let h = &mut host.as_mut_slice()[..src.len()];
    h.copy_from_slice(src);
    // SAFETY: `dev` holds at least `src.len()` elements (lanes are grown to the chunk), and the
    // pinned source stays untouched until the lane is drained (`Lane::drain` waits for the
    // queue before the lane is staged again).
    unsafe { queue.enqueue_write_buffer(dev, CL_NON_BLOCKING, 0, h, &[]) }
        .map_err(|e| GpuError::call("clEnqueueWriteBuffer", e))?;
    Ok(())
}

/// Checks the kernels' table layout, then writes the fixed-base tables of `B` and `G` into new
/// device buffers ([`super::base_tables`]) and waits for them.
fn base_tables(context: &Context, program: &Program) -> Result<(Buffer<u8>, Buffer<u8>), GpuError> {
    let kernel = |name: &str| Kernel::create(program, name).map_err(|e| GpuError::call("clCreateKernel", e));
    let (layout_kernel, tables_kernel) = (kernel("base_table_layout")?, kernel("base_tables")?);
    #[allow(deprecated)]
    let queue = CommandQueue::create_default(context, 0).map_err(|e| GpuError::call("clCreateCommandQueue", e))?;
    let enqueue = |r: opencl3::Result<Event>| r.map_err(|e| GpuError::call("clEnqueueNDRangeKernel", e));
    let layout_buf = create_buffer::<u64>(context, CL_MEM_READ_WRITE, 4)?;
    let mut layout = [0u64; 4];
    // SAFETY: `base_table_layout(__global ulong *out)` writes out[0..4] from work-item 0; the
    // buffer holds 4 elements; the blocking read fills `layout` before it is used.
    unsafe {
        enqueue(
            ExecuteKernel::new(&layout_kernel).set_arg(&layout_buf).set_global_work_size(1).enqueue_nd_range(&queue),
        )?;
        queue
            .enqueue_read_buffer(&layout_buf, CL_BLOCKING, 0, &mut layout, &[])
            .map_err(|e| GpuError::call("clEnqueueReadBuffer", e))?;
    }
    let (b_bytes, g_bytes) = super::base_tables::sizes(&layout)?;
    let btab = create_buffer::<u8>(context, CL_MEM_READ_WRITE, b_bytes)?;
    let gtab = create_buffer::<u8>(context, CL_MEM_READ_WRITE, g_bytes)?;
    // SAFETY: `base_tables(__global ge25519_cached *, __global gej_secp *)` writes
    // WINDOWS × ENTRIES entries of each, which the buffers hold (sizes from the layout just
    // checked); one work-item per window of each curve.
    unsafe {
        enqueue(
            ExecuteKernel::new(&tables_kernel)
                .set_arg(&btab)
                .set_arg(&gtab)
                .set_global_work_size(super::base_tables::THREADS)
                .enqueue_nd_range(&queue),
        )?;
    }
    queue.finish().map_err(|e| GpuError::call("clFinish", e))?;
    Ok((btab, gtab))
}

/// The process-wide verifier ([`OpenClVerifier::shared`]).
static SHARED: OnceLock<Result<OpenClVerifier, GpuError>> = OnceLock::new();

/// The (platform, device) indices [`OpenClVerifier::shared`] builds on: the first GPU any
/// platform lists, else the first device. Asks the OpenCL probe alone (cached for the process),
/// never the whole detection: that would set up an io_uring ring with registered buffers and
/// start DPDK's EAL, which the caller's engine may have been built without (`skip_dpdk`).
fn shared_device() -> Result<(usize, usize), GpuError> {
    let probe = crate::detect::opencl::probe();
    let info = probe.check().map_err(|reason| GpuError::NoDevice(reason.to_string()))?;
    let all = info.platforms.iter().flat_map(|p| p.devices.iter().map(move |d| (p.index, d)));
    let pick = all.clone().find(|(_, d)| d.kind == "gpu").or_else(|| all.clone().next());
    let (platform, d) = pick.ok_or_else(|| GpuError::NoDevice("no OpenCL device".into()))?;
    Ok((platform, d.index))
}

impl OpenClVerifier {
    /// Builds the program on device `device` of platform `platform` (indices as in
    /// [`crate::detect::OpenClInfo`]).
    pub fn new(platform: usize, device: usize) -> Result<Self, GpuError> {
        crate::detect::library_loads("libOpenCL.so.1")
            .map_err(|e| GpuError::NoDevice(format!("OpenCL ICD loader not found: {e}")))?;
        let platforms = opencl3::platform::get_platforms().map_err(|e| GpuError::NoDevice(e.to_string()))?;
        let p = platforms.get(platform).ok_or_else(|| GpuError::NoDevice(format!("no OpenCL platform {platform}")))?;
        let ids = p.get_devices(CL_DEVICE_TYPE_ALL).map_err(|e| GpuError::NoDevice(e.to_string()))?;
        let id = *ids
            .get(device)
            .ok_or_else(|| GpuError::NoDevice(format!("platform {platform} has no device {device}")))?;
        let dev = Device::new(id);
        let name = dev.name().unwrap_or_default().trim().to_string();
        let is_gpu = dev.dev_type().map(|t| t & CL_DEVICE_TYPE_GPU != 0).unwrap_or(false);
        let context = Context::from_device(&dev).map_err(|e| GpuError::call("clCreateContext", e))?;
        let source = crate::kernels::assemble(ENTRY).map_err(|e| GpuError::Build(e.to_string()))?;
        // The driver's compiler runs in this process: give it a deep stack, as NVRTC needs.
        let program = super::on_compiler_stack(|| Program::create_and_build_from_source(&context, &source, ""))
            .map_err(GpuError::Build)?
            .map_err(|log| GpuError::Build(format!("{ENTRY} on {name}: {log}")))?;
        let challenge = Kernel::create(&program, "sig_challenge").map_err(|e| GpuError::call("clCreateKernel", e))?;
        let verify = Kernel::create(&program, "sig_verify").map_err(|e| GpuError::call("clCreateKernel", e))?;
        let tables = base_tables(&context, &program)?;
        let kind = if is_gpu { "gpu" } else { "cpu/other" };
        let driver = dev.driver_version().unwrap_or_default();
        let identity =
            format!("OpenCL {kind}: {name}, driver {}; kernels {}", driver.trim(), super::kernel_digest(&source, ""));
        Ok(OpenClVerifier {
            description: format!("OpenCL {kind}: {name} (platform {platform}, device {device})"),
            identity,
            is_gpu,
            state: Mutex::new(State {
                context,
                kernels: Kernels { challenge, verify, tables },
                lanes: Vec::new(),
                _program: program,
            }),
        })
    }

    /// The process-wide verifier: the first OpenCL GPU if there is one, else the first device
    /// (PoCL on CI). Built once (the driver compiles the program: seconds); a failure is
    /// remembered and returned again.
    pub fn shared() -> Result<&'static OpenClVerifier, GpuError> {
        SHARED
            .get_or_init(|| {
                let (platform, device) = shared_device()?;
                OpenClVerifier::new(platform, device)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// What [`OpenClVerifier::shared`] built, if it has finished (successfully or not); `None`
    /// while it was never called or is still building. Never waits.
    pub fn shared_if_ready() -> Option<Result<&'static OpenClVerifier, GpuError>> {
        SHARED.get().map(|r| r.as_ref().map_err(Clone::clone))
    }

    /// Whether the device is a GPU (PoCL and other CPU implementations are not).
    pub fn is_gpu(&self) -> bool {
        self.is_gpu
    }

    fn run(&self, batch: &SoaBatch<'_>, rules: EdRules, chunk_items: usize) -> Result<(Vec<u8>, f64), GpuError> {
        batch.check()?;
        let n = batch.len();
        let mut out = vec![0u8; n];
        if n == 0 {
            return Ok((out, 0.0));
        }
        let mut guard = self.state.lock().map_err(|_| GpuError::call("lock", "a previous launch panicked"))?;
        let st = &mut *guard;
        let chunk = chunk_items.min(n.div_ceil(QUEUES)).max(1);
        let chunks: Vec<std::ops::Range<usize>> = (0..n).step_by(chunk).map(|s| s..(s + chunk).min(n)).collect();
        let max_msg = chunks.iter().map(|r| batch.slice(r.clone()).messages.len()).max().unwrap_or(0);
        let want_lanes = chunks.len().min(QUEUES);
        // Grow (or create) lanes so each can hold one chunk; a lane regrown gets a new queue.
        for i in 0..want_lanes {
            let fits = st.lanes.get(i).is_some_and(|l| l.items >= chunk && l.message_bytes >= max_msg);
            if !fits {
                let (items, bytes) =
                    st.lanes.get(i).map_or((chunk, max_msg), |l| (l.items.max(chunk), l.message_bytes.max(max_msg)));
                if i < st.lanes.len() {
                    // Frees the old lane's memory before the new one is allocated.
                    st.lanes.truncate(i);
                }
                #[allow(deprecated)]
                let queue = CommandQueue::create_default(&st.context, CL_QUEUE_PROFILING_ENABLE)
                    .map_err(|e| GpuError::call("clCreateCommandQueue", e))?;
                st.lanes.push(Lane::new(&st.context, queue, items, bytes)?);
            }
        }
        let mut events = Vec::with_capacity(2 * chunks.len());
        if let Err(e) = self.run_chunks(st, batch, rules, &chunks, &mut out, &mut events) {
            // Nothing of a failed batch stays in flight: the next batch must not stage into
            // pinned memory that a command of this one still reads or writes.
            let mut lost = false;
            for lane in st.lanes.iter_mut() {
                lost |= lane.queue.finish().is_err();
                lane.pending = None;
            }
            if lost {
                // A queue that cannot finish (a lost device) may still have writes queued that
                // read a lane's mapped memory: leak the lanes rather than stage into or unmap
                // memory a command may touch. The next call allocates new ones.
                for lane in st.lanes.drain(..) {
                    std::mem::forget(lane);
                }
            }
            return Err(e);
        }
        // Device-clock intervals of every kernel, from the earliest start; the two queues' kernels
        // may overlap, and the union counts the overlap once.
        let spans: Vec<(u64, u64)> = events
            .iter()
            .filter_map(|e| match (e.profiling_command_start(), e.profiling_command_end()) {
                (Ok(s), Ok(t)) => Some((s, t.max(s))),
                _ => None,
            })
            .collect();
        let origin = spans.iter().map(|&(s, _)| s).min().unwrap_or(0);
        let secs = super::busy_seconds(
            spans.iter().map(|&(s, t)| ((s - origin) as f64 * 1e-9, (t - origin) as f64 * 1e-9)).collect(),
        );
        if out.iter().any(|v| *v > 1) {
            return Err(GpuError::call("sig_verify", "device returned a verdict byte other than 0 or 1"));
        }
        Ok((out, secs))
    }

    /// Launches every chunk on the lanes in turn (draining a lane before staging it again), then
    /// drains them all: the verdicts land in `out`, the kernels' events in `events`.
    fn run_chunks(
        &self,
        st: &mut State,
        batch: &SoaBatch<'_>,
        rules: EdRules,
        chunks: &[std::ops::Range<usize>],
        out: &mut [u8],
        events: &mut Vec<Event>,
    ) -> Result<(), GpuError> {
        let lanes = chunks.len().min(QUEUES);
        for (k, range) in chunks.iter().enumerate() {
            let lane = &mut st.lanes[k % lanes];
            lane.drain(out)?;
            let sub = batch.slice(range.clone());
            self.launch(&st.kernels, lane, &sub, rules, events)?;
            lane.pending = Some((range.start, sub.len()));
        }
        for lane in st.lanes.iter_mut() {
            lane.drain(out)?;
        }
        Ok(())
    }

    /// Stages one chunk into `lane` and enqueues its copies, both kernels and the read-back of
    /// its verdicts into the lane's pinned memory (read after [`Lane::drain`]).
    fn launch(
        &self,
        kernels: &Kernels,
        lane: &mut Lane,
        sub: &SoaBatch<'_>,
        rules: EdRules,
        events: &mut Vec<Event>,
    ) -> Result<(), GpuError> {
        let m = sub.len();
        let q = &lane.queue;
        stage(q, sub.schemes, &mut lane.h_schemes, &mut lane.d_schemes)?;
        stage(q, sub.pubkeys.as_flattened(), &mut lane.h_pubkeys, &mut lane.d_pubkeys)?;
        stage(q, sub.signatures.as_flattened(), &mut lane.h_sigs, &mut lane.d_sigs)?;
        stage(q, sub.messages, &mut lane.h_msgs, &mut lane.d_msgs)?;
        stage(q, sub.offsets, &mut lane.h_offsets, &mut lane.d_offsets)?;
        let count = m as cl_ulong;
        // An explicit work-group size: CPU implementations (PoCL) run a work-group's items on one
        // thread's stack, and these kernels keep a few KiB of tables per item, so the driver's
        // default group size can overflow it. The kernels guard `i < n`, so the global size is
        // rounded up to a whole number of groups.
        let local = if self.is_gpu { GPU_GROUP } else { CPU_GROUP };
        let global = m.div_ceil(local) * local;
        let rules_code = rules.code();
        let enqueue = |r: opencl3::Result<Event>| r.map_err(|e| GpuError::call("clEnqueueNDRangeKernel", e));
        // SAFETY: the arguments match the kernel signatures in kernels/opencl/verify.cl in order
        // and type (ulong, then buffers; sig_verify takes a uint rules code after n and the two
        // base tables last, sized as the kernels' own layout says), every buffer holds at least
        // `m` items (lanes grown to the chunk), and the kernels guard `i < n`.
        unsafe {
            events.push(enqueue(
                ExecuteKernel::new(&kernels.challenge)
                    .set_arg(&count)
                    .set_arg(&lane.d_schemes)
                    .set_arg(&lane.d_pubkeys)
                    .set_arg(&lane.d_sigs)
                    .set_arg(&lane.d_msgs)
                    .set_arg(&lane.d_offsets)
                    .set_arg(&lane.d_challenges)
                    .set_global_work_size(global)
                    .set_local_work_size(local)
                    .enqueue_nd_range(q),
            )?);
            events.push(enqueue(
                ExecuteKernel::new(&kernels.verify)
                    .set_arg(&count)
                    .set_arg(&rules_code)
                    .set_arg(&lane.d_schemes)
                    .set_arg(&lane.d_pubkeys)
                    .set_arg(&lane.d_sigs)
                    .set_arg(&lane.d_challenges)
                    .set_arg(&lane.d_verdicts)
                    .set_arg(&kernels.tables.0)
                    .set_arg(&kernels.tables.1)
                    .set_global_work_size(global)
                    .set_local_work_size(local)
                    .enqueue_nd_range(q),
            )?);
        }
        let h = &mut lane.h_verdicts.as_mut_slice()[..m];
        // SAFETY: the device buffer holds at least `m` bytes; the pinned destination is read
        // only after `Lane::drain` has waited for this queue.
        unsafe { q.enqueue_read_buffer(&lane.d_verdicts, CL_NON_BLOCKING, 0, h, &[]) }
            .map_err(|e| GpuError::call("clEnqueueReadBuffer", e))?;
        Ok(())
    }
}

impl GpuVerifier for OpenClVerifier {
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

    /// Choosing the shared verifier's device probes OpenCL and nothing else: no io_uring ring,
    /// no DPDK EAL (an engine built with `skip_dpdk` must not find the EAL started by it).
    #[test]
    fn the_shared_device_is_chosen_by_the_opencl_probe_alone() {
        let before = crate::detect::effectful_probes_on_this_thread();
        // Found or not (no OpenCL driver here is fine): what matters is what it probed.
        let _ = shared_device();
        assert_eq!(crate::detect::effectful_probes_on_this_thread(), before, "io_uring or DPDK was probed");
    }
}
