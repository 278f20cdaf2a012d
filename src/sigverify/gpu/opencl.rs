//! OpenCL host glue (feature `opencl`): one context, queue and program per device, built once
//! from the embedded `kernels/opencl/verify.cl`; device buffers are kept and grown, never
//! reallocated per batch.
//!
//! The two kernels (`sig_challenge`, then `sig_verify`) run back to back on one in-order queue;
//! the batch's arrays are copied as is. Any OpenCL error is a [`GpuError`], never a verdict.

use super::{EdRules, GpuError, GpuVerifier, SoaBatch};
use opencl3::command_queue::{CommandQueue, CL_QUEUE_PROFILING_ENABLE};
use opencl3::context::Context;
use opencl3::device::{Device, CL_DEVICE_TYPE_ALL, CL_DEVICE_TYPE_GPU};
use opencl3::event::Event;
use opencl3::kernel::{ExecuteKernel, Kernel};
use opencl3::memory::{Buffer, CL_MEM_READ_ONLY, CL_MEM_READ_WRITE};
use opencl3::program::Program;
use opencl3::types::{cl_ulong, CL_BLOCKING, CL_NON_BLOCKING};
use std::ptr;
use std::sync::{Mutex, OnceLock};

/// The entry file the program is built from.
pub const ENTRY: &str = "opencl/verify.cl";

/// Work-group size on GPUs.
const GPU_GROUP: usize = 64;
/// Work-group size on CPU devices (see `run`).
const CPU_GROUP: usize = 4;

/// A built program on one OpenCL device, with its reusable buffers.
pub struct OpenClVerifier {
    description: String,
    is_gpu: bool,
    state: Mutex<State>,
}

struct State {
    context: Context,
    queue: CommandQueue,
    challenge: Kernel,
    verify: Kernel,
    buffers: Option<Buffers>,
    // Kept alive for the kernels' sake.
    _program: Program,
}

struct Buffers {
    items: usize,
    message_bytes: usize,
    schemes: Buffer<u8>,
    pubkeys: Buffer<u8>,
    signatures: Buffer<u8>,
    messages: Buffer<u8>,
    offsets: Buffer<u64>,
    challenges: Buffer<u8>,
    verdicts: Buffer<u8>,
}

fn create_buffer<T>(context: &Context, flags: u64, count: usize) -> Result<Buffer<T>, GpuError> {
    // SAFETY: no host pointer is passed (null with flags lacking USE/COPY_HOST_PTR), so the
    // driver allocates device memory of `count.max(1)` elements that the Buffer owns.
    unsafe { Buffer::<T>::create(context, flags, count.max(1), ptr::null_mut()) }
        .map_err(|e| GpuError::call("clCreateBuffer", e))
}

impl Buffers {
    fn new(context: &Context, items: usize, message_bytes: usize) -> Result<Self, GpuError> {
        Ok(Buffers {
            items,
            message_bytes,
            schemes: create_buffer(context, CL_MEM_READ_ONLY, items)?,
            pubkeys: create_buffer(context, CL_MEM_READ_ONLY, items * 32)?,
            signatures: create_buffer(context, CL_MEM_READ_ONLY, items * 64)?,
            messages: create_buffer(context, CL_MEM_READ_ONLY, message_bytes)?,
            offsets: create_buffer(context, CL_MEM_READ_ONLY, items + 1)?,
            challenges: create_buffer(context, CL_MEM_READ_WRITE, items * 32)?,
            verdicts: create_buffer(context, CL_MEM_READ_WRITE, items)?,
        })
    }
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
        let program = Program::create_and_build_from_source(&context, &source, "")
            .map_err(|log| GpuError::Build(format!("{ENTRY} on {name}: {log}")))?;
        let challenge = Kernel::create(&program, "sig_challenge").map_err(|e| GpuError::call("clCreateKernel", e))?;
        let verify = Kernel::create(&program, "sig_verify").map_err(|e| GpuError::call("clCreateKernel", e))?;
        #[allow(deprecated)]
        let queue = CommandQueue::create_default(&context, CL_QUEUE_PROFILING_ENABLE)
            .map_err(|e| GpuError::call("clCreateCommandQueue", e))?;
        let kind = if is_gpu { "gpu" } else { "cpu/other" };
        Ok(OpenClVerifier {
            description: format!("OpenCL {kind}: {name} (platform {platform}, device {device})"),
            is_gpu,
            state: Mutex::new(State { context, queue, challenge, verify, buffers: None, _program: program }),
        })
    }

    /// The process-wide verifier: the first OpenCL GPU if there is one, else the first device
    /// (PoCL on CI). Built once; a failure is remembered and returned again.
    pub fn shared() -> Result<&'static OpenClVerifier, GpuError> {
        static SHARED: OnceLock<Result<OpenClVerifier, GpuError>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let caps = crate::detect::detect();
                let info = caps.opencl.available().ok_or_else(|| {
                    GpuError::NoDevice(caps.opencl.check().err().unwrap_or("OpenCL unavailable").to_string())
                })?;
                let all = info.platforms.iter().flat_map(|p| p.devices.iter().map(move |d| (p.index, d)));
                let pick = all.clone().find(|(_, d)| d.kind == "gpu").or_else(|| all.clone().next());
                let (pi, d) = pick.ok_or_else(|| GpuError::NoDevice("no OpenCL device".into()))?;
                OpenClVerifier::new(pi, d.index)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether the device is a GPU (PoCL and other CPU implementations are not).
    pub fn is_gpu(&self) -> bool {
        self.is_gpu
    }

    fn run(&self, batch: &SoaBatch<'_>, rules: EdRules) -> Result<(Vec<u8>, f64), GpuError> {
        batch.check()?;
        let n = batch.len();
        if n == 0 {
            return Ok((Vec::new(), 0.0));
        }
        let mut guard = self.state.lock().map_err(|_| GpuError::call("lock", "a previous launch panicked"))?;
        let st = &mut *guard;
        let grow = match &st.buffers {
            Some(b) => b.items < n || b.message_bytes < batch.messages.len(),
            None => true,
        };
        if grow {
            let (items, bytes) = match &st.buffers {
                Some(b) => (b.items.max(n), b.message_bytes.max(batch.messages.len())),
                None => (n, batch.messages.len()),
            };
            st.buffers = None;
            st.buffers = Some(Buffers::new(&st.context, items, bytes)?);
        }
        let Some(b) = st.buffers.as_mut() else {
            return Err(GpuError::call("clCreateBuffer", "buffers missing after allocation"));
        };
        let q = &st.queue;
        let wr = |r: opencl3::Result<Event>| r.map_err(|e| GpuError::call("clEnqueueWriteBuffer", e));
        // SAFETY: each buffer holds at least as many elements as the slice written (grown above),
        // and the writes are non-blocking but the host slices outlive them: `q.finish()` below
        // waits for every enqueued command before this function returns.
        unsafe {
            wr(q.enqueue_write_buffer(&mut b.schemes, CL_NON_BLOCKING, 0, batch.schemes, &[]))?;
            wr(q.enqueue_write_buffer(&mut b.pubkeys, CL_NON_BLOCKING, 0, batch.pubkeys.as_flattened(), &[]))?;
            wr(q.enqueue_write_buffer(&mut b.signatures, CL_NON_BLOCKING, 0, batch.signatures.as_flattened(), &[]))?;
            if !batch.messages.is_empty() {
                wr(q.enqueue_write_buffer(&mut b.messages, CL_NON_BLOCKING, 0, batch.messages, &[]))?;
            }
            wr(q.enqueue_write_buffer(&mut b.offsets, CL_NON_BLOCKING, 0, batch.offsets, &[]))?;
        }
        let count = n as cl_ulong;
        // An explicit work-group size: CPU implementations (PoCL) run a work-group's items on one
        // thread's stack, and these kernels keep a few KiB of tables per item, so the driver's
        // default group size can overflow it. The kernels guard `i < n`, so the global size is
        // rounded up to a whole number of groups.
        let local = if self.is_gpu { GPU_GROUP } else { CPU_GROUP };
        let global = n.div_ceil(local) * local;
        let rules_code = rules.code();
        let launch = |r: opencl3::Result<Event>| r.map_err(|e| GpuError::call("clEnqueueNDRangeKernel", e));
        // SAFETY: the arguments match the kernel signatures in kernels/opencl/verify.cl in order
        // and type (ulong, then buffers; sig_verify takes a uint rules code after n), every buffer
        // holds at least `n` items, and the kernels guard `i < n`.
        let (e1, e2) = unsafe {
            let e1 = launch(
                ExecuteKernel::new(&st.challenge)
                    .set_arg(&count)
                    .set_arg(&b.schemes)
                    .set_arg(&b.pubkeys)
                    .set_arg(&b.signatures)
                    .set_arg(&b.messages)
                    .set_arg(&b.offsets)
                    .set_arg(&b.challenges)
                    .set_global_work_size(global)
                    .set_local_work_size(local)
                    .enqueue_nd_range(q),
            )?;
            let e2 = launch(
                ExecuteKernel::new(&st.verify)
                    .set_arg(&count)
                    .set_arg(&rules_code)
                    .set_arg(&b.schemes)
                    .set_arg(&b.pubkeys)
                    .set_arg(&b.signatures)
                    .set_arg(&b.challenges)
                    .set_arg(&b.verdicts)
                    .set_global_work_size(global)
                    .set_local_work_size(local)
                    .enqueue_nd_range(q),
            )?;
            (e1, e2)
        };
        let mut verdicts = vec![0u8; n];
        // SAFETY: `verdicts` has exactly `n` bytes and the buffer at least `n`; the read is
        // blocking, so the slice is filled when the call returns.
        unsafe { q.enqueue_read_buffer(&b.verdicts, CL_BLOCKING, 0, &mut verdicts, &[]) }
            .map_err(|e| GpuError::call("clEnqueueReadBuffer", e))?;
        q.finish().map_err(|e| GpuError::call("clFinish", e))?;
        let kernel_ns = |e: &Event| -> u64 {
            match (e.profiling_command_start(), e.profiling_command_end()) {
                (Ok(s), Ok(t)) => t.saturating_sub(s),
                _ => 0,
            }
        };
        let secs = (kernel_ns(&e1) + kernel_ns(&e2)) as f64 * 1e-9;
        if verdicts.iter().any(|v| *v > 1) {
            return Err(GpuError::call("sig_verify", "device returned a verdict byte other than 0 or 1"));
        }
        Ok((verdicts, secs))
    }
}

impl GpuVerifier for OpenClVerifier {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn verify_soa(&self, batch: &SoaBatch<'_>, rules: EdRules) -> Result<Vec<u8>, GpuError> {
        self.run(batch, rules).map(|(v, _)| v)
    }

    fn verify_soa_timed(&self, batch: &SoaBatch<'_>, rules: EdRules) -> Result<(Vec<u8>, f64), GpuError> {
        self.run(batch, rules)
    }
}
