//! OpenCL probe: the ICD loader loads, and at least one platform lists at least one device.
//! CPU implementations (PoCL) count: they run the same kernels, which is how CI executes the GPU
//! verification code on every push.

use super::Probe;
use serde::{Deserialize, Serialize};

/// What the OpenCL probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenClInfo {
    /// Platforms with at least one device.
    pub platforms: Vec<OpenClPlatform>,
}

/// One OpenCL platform (an installed driver: PoCL, NVIDIA, ROCm, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenClPlatform {
    /// Platform index in `clGetPlatformIDs` order.
    pub index: usize,
    /// `CL_PLATFORM_NAME`, e.g. "Portable Computing Language".
    pub name: String,
    /// `CL_PLATFORM_VENDOR`.
    pub vendor: String,
    /// `CL_PLATFORM_VERSION`.
    pub version: String,
    /// Its devices.
    pub devices: Vec<OpenClDevice>,
}

/// One OpenCL device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenClDevice {
    /// Device index within its platform.
    pub index: usize,
    /// `CL_DEVICE_NAME`.
    pub name: String,
    /// "gpu", "cpu", "accelerator" or "other".
    pub kind: String,
    /// `CL_DEVICE_MAX_COMPUTE_UNITS`.
    pub compute_units: u32,
    /// `CL_DEVICE_GLOBAL_MEM_SIZE` in bytes.
    pub global_memory_bytes: u64,
    /// `CL_DEVICE_VERSION`.
    pub version: String,
}

#[cfg(not(feature = "opencl"))]
pub(crate) fn probe() -> Probe<OpenClInfo> {
    Probe::unavailable("built without feature `opencl`")
}

/// Probes once per process and returns the same answer afterwards. The ICD loader and some drivers
/// (PoCL among them) are not safe to initialise from several threads at once, and installed
/// platforms do not change while a process runs; the first caller probes while the others wait.
/// The OpenCL verifier picks its device from this answer alone, not from a full detection (whose
/// io_uring and DPDK probes have side effects an engine built without them never asked for).
#[cfg(feature = "opencl")]
pub(crate) fn probe() -> Probe<OpenClInfo> {
    static PROBE: std::sync::OnceLock<Probe<OpenClInfo>> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| match probe_inner() {
            Ok(info) => Probe::Available(info),
            Err(reason) => Probe::unavailable(reason),
        })
        .clone()
}

#[cfg(feature = "opencl")]
fn probe_inner() -> Result<OpenClInfo, String> {
    use opencl3::device::{
        Device, CL_DEVICE_TYPE_ACCELERATOR, CL_DEVICE_TYPE_ALL, CL_DEVICE_TYPE_CPU, CL_DEVICE_TYPE_GPU,
    };

    super::library_loads("libOpenCL.so.1")
        .map_err(|e| format!("OpenCL ICD loader not found ({e}); install ocl-icd-libopencl1"))?;
    let platforms = opencl3::platform::get_platforms()
        .map_err(|e| format!("clGetPlatformIDs failed: {e} (no OpenCL driver installed?)"))?;
    let mut out = Vec::new();
    for (pi, p) in platforms.iter().enumerate() {
        let ids = match p.get_devices(CL_DEVICE_TYPE_ALL) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::debug!(platform = pi, error = %e, "platform lists no devices");
                continue;
            }
        };
        let mut devices = Vec::new();
        for (di, id) in ids.into_iter().enumerate() {
            let d = Device::new(id);
            let ty = d.dev_type().unwrap_or(0);
            let kind = if ty & CL_DEVICE_TYPE_GPU != 0 {
                "gpu"
            } else if ty & CL_DEVICE_TYPE_CPU != 0 {
                "cpu"
            } else if ty & CL_DEVICE_TYPE_ACCELERATOR != 0 {
                "accelerator"
            } else {
                "other"
            };
            devices.push(OpenClDevice {
                index: di,
                name: d.name().unwrap_or_default().trim().to_string(),
                kind: kind.to_string(),
                compute_units: d.max_compute_units().unwrap_or(0),
                global_memory_bytes: d.global_mem_size().unwrap_or(0),
                version: d.version().unwrap_or_default().trim().to_string(),
            });
        }
        if devices.is_empty() {
            continue;
        }
        out.push(OpenClPlatform {
            index: pi,
            name: p.name().unwrap_or_default().trim().to_string(),
            vendor: p.vendor().unwrap_or_default().trim().to_string(),
            version: p.version().unwrap_or_default().trim().to_string(),
            devices,
        });
    }
    if out.is_empty() {
        return Err("OpenCL loader present, but no platform lists a device".into());
    }
    Ok(OpenClInfo { platforms: out })
}
