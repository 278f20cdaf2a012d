//! Hardware detection: what this process can use, and why not where it cannot.
//!
//! [`detect`] runs one probe per kind of hardware and returns [`Capabilities`]. The contract:
//!
//! - **Probe by trying, not by version.** A backend is [`Probe::Available`] only when the probe
//!   actually exercised it: a ring was set up, a CUDA context was created, an OpenCL platform listed
//!   a device, the DPDK EAL started. Version numbers and file existence are never taken as proof.
//! - **Every absent backend says why.** [`Probe::Unavailable`] carries a one-line `reason` meant for
//!   an operator ("built without feature `cuda`", "libcuda.so.1 not found",
//!   "io_uring_setup: EPERM (Operation not permitted)") and, where a system call refused, its
//!   `errno`.
//! - **Never panics, and is quick when nothing is there.** Every probe turns every failure into
//!   `Unavailable`; libraries are looked up with `dlopen` before any binding that would abort on a
//!   missing symbol is touched. With no GPU, no DPDK and no io_uring, [`detect`] returns in
//!   milliseconds.
//! - **Stable JSON.** [`Capabilities`] serialises to the schema documented in `docs/detect.md`
//!   (identified by [`SCHEMA`]); fields are only ever added, never renamed or removed within one
//!   schema version, and the JSON round-trips through serde.
//!
//! Probes that have process-wide side effects (DPDK's EAL can be initialised once per process) keep
//! what they started, so the backend that later uses it does not start it twice.

mod cpu;
pub(crate) mod cuda;
mod dpdk;
mod io_uring;
pub(crate) mod opencl;
mod splice;

pub use cpu::{CpuFeatures, CpuInfo};
pub use cuda::{CudaDevice, CudaInfo};
pub use dpdk::{DpdkInfo, DpdkPort};
#[cfg(feature = "io-uring")]
pub(crate) use io_uring::buffers_refused;
pub use io_uring::{
    human_bytes, memlock_charged, memlock_limit, IoUringInfo, IoUringOpcodes, RegisteredBuffers,
    REGISTERED_BUFFER_BYTES,
};
pub use opencl::{OpenClDevice, OpenClInfo, OpenClPlatform};
pub use splice::SpliceInfo;

use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The identifier of the JSON schema [`Capabilities`] serialises to.
pub const SCHEMA: &str = "parthenon.capabilities/1";

/// The outcome of one probe: what was found, or why nothing can be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Probe<T> {
    /// The backend was exercised and works; `T` describes what was found.
    Available(T),
    /// The backend cannot be used by this process.
    Unavailable {
        /// One line for an operator: what failed and, where known, what to do.
        reason: String,
        /// The errno of the refusing system call, when a system call refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        errno: Option<i32>,
    },
}

impl<T> Probe<T> {
    /// `Unavailable` with a reason and no errno.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Probe::Unavailable { reason: reason.into(), errno: None }
    }

    /// `Unavailable` because the system call `call` failed with `errno`.
    pub fn refused(call: &str, errno: i32) -> Self {
        Probe::Unavailable { reason: format!("{call}: {}", errno_text(errno)), errno: Some(errno) }
    }

    /// What was found, if the backend is available.
    pub fn available(&self) -> Option<&T> {
        match self {
            Probe::Available(t) => Some(t),
            Probe::Unavailable { .. } => None,
        }
    }

    /// `Ok(())` when available, else the reason it is not.
    pub fn check(&self) -> Result<&T, &str> {
        match self {
            Probe::Available(t) => Ok(t),
            Probe::Unavailable { reason, .. } => Err(reason),
        }
    }

    /// True when the backend is available.
    pub fn is_available(&self) -> bool {
        matches!(self, Probe::Available(_))
    }
}

/// "EPERM (Operation not permitted)" for an errno value.
pub fn errno_text(errno: i32) -> String {
    let e = nix::errno::Errno::from_raw(errno);
    format!("{e:?} ({})", e.desc())
}

/// Everything the engine can use on this machine, as found by [`detect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The CPU: instruction-set extensions and usable cores. Always present.
    pub cpu: CpuInfo,
    /// NVIDIA GPUs through the CUDA driver API and NVRTC.
    pub cuda: Probe<CudaInfo>,
    /// OpenCL platforms and devices (GPUs, and CPU implementations such as PoCL).
    pub opencl: Probe<OpenClInfo>,
    /// io_uring: whether a ring can be set up, and which opcodes the kernel supports.
    pub io_uring: Probe<IoUringInfo>,
    /// `sendfile(2)` from a file to a socket.
    pub sendfile: Probe<SpliceInfo>,
    /// `splice(2)` through a pipe.
    pub splice: Probe<SpliceInfo>,
    /// DPDK: whether the EAL starts with the configured arguments, and the ports it found.
    pub dpdk: Probe<DpdkInfo>,
    /// How long detection took, in microseconds.
    pub probe_micros: u64,
}

/// Options for [`detect_with`].
#[derive(Debug, Clone, Default)]
pub struct DetectOptions {
    /// EAL arguments for the DPDK probe; `None` uses [`default_dpdk_args`] (or
    /// `PARTHENON_DPDK_ARGS`, whitespace-separated, when set and not blank).
    pub dpdk_args: Option<Vec<String>>,
    /// Skip the DPDK probe (it starts the EAL, which can happen once per process).
    pub skip_dpdk: bool,
}

/// Environment variable with the EAL arguments of the DPDK probe, whitespace-separated.
pub const DPDK_ARGS_ENV: &str = "PARTHENON_DPDK_ARGS";

/// The EAL arguments used when none are configured: [`DPDK_ARGS_ENV`] split at whitespace when it
/// is set and not blank; else no hugepages, no PCI scan, no shared configuration, one in-memory
/// ring port and a per-process file prefix. Those work on any Linux machine; operators with NICs
/// pass their own. A value that is not UTF-8 is ignored with a warning.
pub fn default_dpdk_args() -> Vec<String> {
    let env = match std::env::var(DPDK_ARGS_ENV) {
        Ok(v) => Some(v),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(v)) => {
            tracing::warn!("{DPDK_ARGS_ENV}={v:?} ignored: not UTF-8; using the default EAL arguments");
            None
        }
    };
    dpdk_args_from(env.as_deref(), std::process::id())
}

/// [`default_dpdk_args`] with `env` as the value of [`DPDK_ARGS_ENV`] and `pid` as the process.
/// A blank value counts as unset: an empty argument list would start the EAL on DPDK's own
/// defaults (hugepages, a PCI scan, the shared default runtime folder).
fn dpdk_args_from(env: Option<&str>, pid: u32) -> Vec<String> {
    if let Some(s) = env.filter(|s| !s.trim().is_empty()) {
        return s.split_whitespace().map(str::to_owned).collect();
    }
    let mut args: Vec<String> =
        ["--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--vdev=net_ring0", "--log-level=*:error"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    // A per-process prefix, so concurrent processes (tests, a sender and a receiver) never
    // contend for one runtime directory.
    args.push(format!("--file-prefix=parthenon-{pid}"));
    args
}

/// Probes everything with default options. See the module docs for the contract.
pub fn detect() -> Capabilities {
    detect_with(&DetectOptions::default())
}

/// Probes everything with the given options.
pub fn detect_with(opts: &DetectOptions) -> Capabilities {
    let start = Instant::now();
    let cpu = cpu::probe();
    tracing::debug!(?cpu, "cpu probed");
    let cuda = cuda::probe();
    tracing::debug!(?cuda, "cuda probed");
    let opencl = opencl::probe();
    tracing::debug!(?opencl, "opencl probed");
    note_effectful_probe();
    let io_uring = io_uring::probe();
    tracing::debug!(?io_uring, "io_uring probed");
    let sendfile = splice::probe_sendfile();
    let splice = splice::probe_splice();
    let dpdk = if opts.skip_dpdk {
        Probe::unavailable("DPDK probe skipped by configuration")
    } else {
        let args = opts.dpdk_args.clone().unwrap_or_else(default_dpdk_args);
        note_effectful_probe();
        dpdk::probe(&args)
    };
    tracing::debug!(?dpdk, "dpdk probed");
    Capabilities {
        schema: SCHEMA.to_string(),
        cpu,
        cuda,
        opencl,
        io_uring,
        sendfile,
        splice,
        dpdk,
        probe_micros: start.elapsed().as_micros() as u64,
    }
}

#[cfg(test)]
thread_local! {
    /// Probes with effects beyond their answer that this thread ran: io_uring's (sets up a ring
    /// and registers [`REGISTERED_BUFFER_BYTES`] of buffers) and DPDK's (starts the EAL, once
    /// per process). Tests of paths that need one backend's probe check that none ran.
    static EFFECTFUL_PROBES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts a probe with side effects in [`EFFECTFUL_PROBES`] (tests only; nothing otherwise).
fn note_effectful_probe() {
    #[cfg(test)]
    EFFECTFUL_PROBES.with(|n| n.set(n.get() + 1));
}

/// How many probes with side effects (io_uring's, DPDK's) this thread has run.
#[cfg(test)]
pub(crate) fn effectful_probes_on_this_thread() -> usize {
    EFFECTFUL_PROBES.with(|n| n.get())
}

/// `dlopen`s `name` to see whether a shared library can be loaded, and closes it again.
/// Returns the loader's message when it cannot.
#[cfg_attr(not(feature = "opencl"), allow(dead_code))]
pub(crate) fn library_loads(name: &str) -> Result<(), String> {
    let cname = std::ffi::CString::new(name).map_err(|_| format!("bad library name {name:?}"))?;
    // SAFETY: `cname` is a valid NUL-terminated string; RTLD_LAZY|RTLD_LOCAL loads without
    // binding symbols into the global namespace. The handle is closed before returning and never
    // used to call anything.
    let handle = unsafe { libc::dlopen(cname.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns either null or a pointer to a NUL-terminated string owned by
        // the loader, valid until the next dl* call on this thread; we copy it out at once.
        let msg = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                format!("{name} not found")
            } else {
                std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        return Err(msg);
    }
    // SAFETY: `handle` came from a successful dlopen and is closed exactly once.
    unsafe { libc::dlclose(handle) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_round_trips_through_json() {
        let caps = detect_with(&DetectOptions { skip_dpdk: true, ..Default::default() });
        let json = serde_json::to_string_pretty(&caps).expect("serialise");
        let back: Capabilities = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(caps, back);
        assert_eq!(back.schema, SCHEMA);
    }

    #[test]
    fn detection_counts_its_probes_with_side_effects() {
        // The count that tests of single-backend paths rely on does move when detection runs.
        let before = effectful_probes_on_this_thread();
        let _ = detect_with(&DetectOptions { skip_dpdk: true, ..Default::default() });
        assert_eq!(effectful_probes_on_this_thread(), before + 1, "the io_uring probe");
    }

    #[test]
    fn blank_dpdk_args_count_as_unset() {
        let defaults = dpdk_args_from(None, 42);
        assert!(defaults.contains(&"--no-pci".to_string()), "{defaults:?}");
        assert_eq!(defaults.last().map(String::as_str), Some("--file-prefix=parthenon-42"));
        assert_eq!(dpdk_args_from(Some(""), 42), defaults);
        assert_eq!(dpdk_args_from(Some(" \t\n"), 42), defaults);
        assert_eq!(dpdk_args_from(Some(" -l 0-1  --no-huge\n"), 42), ["-l", "0-1", "--no-huge"]);
    }

    #[test]
    fn refused_names_the_errno() {
        let p: Probe<()> = Probe::refused("io_uring_setup", libc::EPERM);
        match p {
            Probe::Unavailable { reason, errno } => {
                assert_eq!(errno, Some(libc::EPERM));
                assert!(reason.starts_with("io_uring_setup: EPERM"), "{reason}");
            }
            Probe::Available(_) => panic!("refused must be unavailable"),
        }
    }

    #[test]
    fn missing_library_is_reported_not_panicked() {
        let err = library_loads("libparthenon-does-not-exist.so.9").unwrap_err();
        assert!(err.contains("libparthenon-does-not-exist"), "{err}");
    }
}
