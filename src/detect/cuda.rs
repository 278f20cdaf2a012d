//! CUDA probe: the driver library loads, `cuInit` succeeds, each device answers its attributes,
//! and NVRTC (needed to compile the embedded kernels at run time) loads.
//!
//! cudarc's dynamic loading panics on first use when libcuda is absent, so the library is looked
//! up with `is_culib_present` before any other cudarc call. It also panics when a library is
//! present but lacks a symbol it looks up (a driver older than the CUDA release cudarc was built
//! for): the probe runs under [`contain_library_panic`], and such a driver is reported
//! unavailable, with the panic's message as the reason.

use super::Probe;
use serde::{Deserialize, Serialize};

/// What the CUDA probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CudaInfo {
    /// `cuDriverGetVersion`, e.g. 12080 for CUDA 12.8.
    pub driver_version: i32,
    /// NVRTC's `(major, minor)`.
    pub nvrtc_version: (i32, i32),
    /// The devices, by ordinal.
    pub devices: Vec<CudaDevice>,
}

/// One CUDA device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CudaDevice {
    /// Device ordinal.
    pub ordinal: usize,
    /// Marketing name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Compute capability `(major, minor)`, e.g. (9, 0) for Hopper.
    pub compute_capability: (i32, i32),
    /// Streaming multiprocessors.
    pub sm_count: i32,
    /// Global memory in bytes.
    pub memory_bytes: u64,
}

#[cfg(not(feature = "cuda"))]
pub(super) fn probe() -> Probe<CudaInfo> {
    Probe::unavailable("built without feature `cuda`")
}

/// Probes once per process (`cuInit` and the device list do not change while it runs) and returns
/// the same answer afterwards; concurrent first callers wait for the one probe.
#[cfg(feature = "cuda")]
pub(super) fn probe() -> Probe<CudaInfo> {
    static PROBE: std::sync::OnceLock<Probe<CudaInfo>> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| match contain_library_panic(probe_inner).and_then(|r| r) {
            Ok(info) => Probe::Available(info),
            Err(reason) => Probe::unavailable(reason),
        })
        .clone()
}

/// Runs `f`, which calls into cudarc, and turns a panic inside it into an error that carries the
/// panic's message. cudarc panics instead of returning an error when a dynamically loaded CUDA
/// library lacks a symbol; that is a missing capability of the machine, not a bug to crash on.
#[cfg(feature = "cuda")]
pub(crate) fn contain_library_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    // Nothing `f` touches outlives a panic: the caller drops whatever it was building.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("the CUDA libraries failed inside cudarc: {message}")
    })
}

#[cfg(feature = "cuda")]
fn probe_inner() -> Result<CudaInfo, String> {
    use cudarc::driver::{result, sys};

    // SAFETY: is_culib_present only tries to dlopen candidate library names; it calls nothing.
    if !unsafe { sys::is_culib_present() } {
        return Err("libcuda.so.1 not found (no NVIDIA driver installed)".into());
    }
    result::init().map_err(|e| format!("cuInit failed: {e:?}"))?;
    let mut driver_version = 0i32;
    // SAFETY: the driver library is present (checked above) and `driver_version` is a valid
    // out-pointer for the duration of the call.
    unsafe { sys::cuDriverGetVersion(&mut driver_version) }
        .result()
        .map_err(|e| format!("cuDriverGetVersion failed: {e:?}"))?;
    let count = result::device::get_count().map_err(|e| format!("cuDeviceGetCount failed: {e:?}"))?;
    if count <= 0 {
        return Err("CUDA driver loaded but reports no devices".into());
    }
    let mut devices = Vec::with_capacity(count as usize);
    for ordinal in 0..count {
        let dev = result::device::get(ordinal).map_err(|e| format!("cuDeviceGet({ordinal}): {e:?}"))?;
        let attr = |a: sys::CUdevice_attribute| {
            // SAFETY: `dev` was returned by cuDeviceGet for a valid ordinal.
            unsafe { result::device::get_attribute(dev, a) }
                .map_err(|e| format!("cuDeviceGetAttribute({a:?}) on device {ordinal}: {e:?}"))
        };
        let major = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let sm_count = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        // SAFETY: `dev` was returned by cuDeviceGet for a valid ordinal.
        let memory_bytes = unsafe { result::device::total_mem(dev) }
            .map_err(|e| format!("cuDeviceTotalMem on device {ordinal}: {e:?}"))?;
        let name = result::device::get_name(dev).map_err(|e| format!("cuDeviceGetName({ordinal}): {e:?}"))?;
        devices.push(CudaDevice {
            ordinal: ordinal as usize,
            name,
            compute_capability: (major, minor),
            sm_count,
            memory_bytes: memory_bytes as u64,
        });
    }
    // Probe by trying: a context must come up on device 0, the one the verification backend
    // uses. A GPU in exclusive-process mode held by another process, or a device this driver
    // cannot run, fails here with the driver's reason instead of at the first batch.
    let dev0 = result::device::get(0).map_err(|e| format!("cuDeviceGet(0): {e:?}"))?;
    // SAFETY: `dev0` was returned by cuDeviceGet; the primary context retained here is released
    // right below (the backend retains its own when it starts).
    unsafe { result::primary_ctx::retain(dev0) }
        .map_err(|e| format!("cannot create a CUDA context on device 0: {e:?}"))?;
    // SAFETY: releases the reference retained just above, on the same device.
    let _ = unsafe { result::primary_ctx::release(dev0) };
    // SAFETY: as for the driver: only tries to dlopen candidate names.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(format!(
            "{} CUDA device(s) found, but libnvrtc not found: kernels cannot be compiled",
            devices.len()
        ));
    }
    let (mut maj, mut min) = (0i32, 0i32);
    // SAFETY: NVRTC is present (checked above); both out-pointers are valid for the call.
    let rc = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut maj, &mut min) };
    if rc != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(format!("nvrtcVersion failed: {rc:?}"));
    }
    Ok(CudaInfo { driver_version, nvrtc_version: (maj, min), devices })
}
