//! A small safe wrapper over DPDK (feature `dpdk`): the Environment Abstraction Layer and the
//! ethdev port list. The transfer backend builds its datagram path on top of this.
//!
//! DPDK's EAL can be initialised once per process; [`Eal::init`] does it on first call, remembers
//! the outcome (success or the error) and returns the same outcome to every later caller, whatever
//! arguments they pass. [`Eal::args`] says which arguments it actually started with.

pub mod sys;

use std::ffi::{CStr, CString};
use std::sync::OnceLock;

/// Why DPDK could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    /// `rte_eal_init` returned an error.
    #[error("rte_eal_init({args}) failed: {reason} (rte_errno {errno})")]
    EalInit {
        /// The arguments it was given, space-separated.
        args: String,
        /// `rte_strerror(rte_errno)`.
        reason: String,
        /// `rte_errno`.
        errno: i32,
    },
    /// An argument contained a NUL byte.
    #[error("EAL argument {0:?} contains a NUL byte")]
    BadArgument(String),
    /// A DPDK call on a port failed.
    #[error("{call} on port {port}: {reason}")]
    Port {
        /// The failing function.
        call: &'static str,
        /// The port id.
        port: u16,
        /// What DPDK said.
        reason: String,
    },
}

/// The started EAL of this process.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
}

/// One ethdev port known to the EAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Port id.
    pub id: u16,
    /// Device name, e.g. "net_ring0".
    pub name: String,
    /// Driver name, e.g. "net_ring".
    pub driver: String,
    /// MAC address.
    pub mac: [u8; 6],
    /// Current MTU.
    pub mtu: u16,
}

static EAL: OnceLock<Result<Eal, DpdkError>> = OnceLock::new();

/// Where DPDK 22.11 keeps its runtime directories (one per `--file-prefix`).
fn runtime_base() -> std::path::PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        std::path::PathBuf::from("/var/run/dpdk")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| "/tmp".into()).join("dpdk")
    }
}

/// Removes the runtime directories of parthenon processes that no longer run: those named
/// `parthenon-<pid>` or `parthenon-<anything>-<pid>` (the engine's default prefix and the ones its
/// tests and benches use) whose process is gone. A process killed with SIGKILL, or one that exits
/// without [`Eal::cleanup`], cannot remove its own; the next EAL start does. Other prefixes are
/// the operator's and are left alone.
fn remove_stale_runtime_dirs() {
    let Ok(entries) = std::fs::read_dir(runtime_base()) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("parthenon-") else { continue };
        let Some(pid) = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// `rte_strerror(errno)` as a Rust string.
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string.
    unsafe { CStr::from_ptr(sys::rte_strerror(errno)) }.to_string_lossy().into_owned()
}

/// The current thread's `rte_errno`.
pub fn errno() -> i32 {
    // SAFETY: the shim only reads the thread-local rte_errno.
    unsafe { sys::parthenon_rte_errno() }
}

impl Eal {
    /// Starts the EAL with `args` (without the program name) on first call; later calls return
    /// the first outcome. See the module docs.
    pub fn init(args: &[String]) -> Result<&'static Eal, DpdkError> {
        EAL.get_or_init(|| Self::start(args)).as_ref().map_err(Clone::clone)
    }

    /// The EAL if some earlier call started it.
    pub fn get() -> Option<&'static Eal> {
        EAL.get().and_then(|r| r.as_ref().ok())
    }

    fn start(args: &[String]) -> Result<Eal, DpdkError> {
        remove_stale_runtime_dirs();
        let mut owned = Vec::with_capacity(args.len() + 1);
        owned.push(CString::new("parthenon").expect("static string has no NUL"));
        for a in args {
            owned.push(CString::new(a.as_str()).map_err(|_| DpdkError::BadArgument(a.clone()))?);
        }
        // rte_eal_init may permute argv; give it pointers into `owned`, which outlives the call
        // and is leaked below because DPDK may keep pointers to its arguments.
        let mut argv: Vec<*mut libc::c_char> = owned.iter().map(|c| c.as_ptr() as *mut _).collect();
        // rte_eal_init pins the calling thread to the main lcore; every thread it spawns later
        // would inherit that one-core mask. The engine does not poll from this thread, so give it
        // back the mask it had.
        // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
        let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `mask` is a valid out-buffer of the size passed; pid 0 is the calling thread.
        let saved = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut mask) } == 0;
        // SAFETY: argv holds argc valid NUL-terminated strings that stay alive for the rest of
        // the process (leaked below). rte_eal_init is called at most once (OnceLock).
        let rc = unsafe { sys::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
        std::mem::forget(owned);
        std::mem::forget(argv);
        if saved {
            // SAFETY: `mask` holds the affinity read above; pid 0 is the calling thread.
            if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mask) } != 0 {
                tracing::warn!("could not restore the thread's CPU affinity after rte_eal_init");
            }
        }
        if rc < 0 {
            let e = errno();
            return Err(DpdkError::EalInit { args: args.join(" "), reason: strerror(e), errno: e });
        }
        Ok(Eal { args: args.to_vec() })
    }

    /// Releases the EAL's resources (hugepage or heap memory, runtime files). Call once, at
    /// process exit, after every DPDK user has stopped; the EAL cannot be used afterwards.
    pub fn cleanup(&self) {
        // SAFETY: the EAL was initialised; the caller guarantees no DPDK objects are in use.
        let rc = unsafe { sys::rte_eal_cleanup() };
        if rc != 0 {
            tracing::warn!(rc, "rte_eal_cleanup failed");
        }
        // DPDK 22.11 leaves its runtime directory behind. Remove it when it is this process's own
        // default prefix (see `detect::default_dpdk_args`), so runs do not accumulate; a prefix an
        // operator chose is theirs to keep.
        let own = format!("parthenon-{}", std::process::id());
        if let Some(prefix) = self.args.iter().find_map(|a| a.strip_prefix("--file-prefix=")).filter(|p| *p == own) {
            if let Err(e) = std::fs::remove_dir_all(runtime_base().join(prefix)) {
                tracing::debug!(error = %e, "could not remove the EAL runtime directory");
            }
        }
    }

    /// The arguments the EAL started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Every port the EAL probed.
    pub fn ports(&self) -> Result<Vec<PortInfo>, DpdkError> {
        let mut out = Vec::new();
        // SAFETY: the EAL is initialised (self exists only after a successful rte_eal_init).
        let count = unsafe { sys::rte_eth_dev_count_avail() };
        let mut id: u16 = 0;
        let mut seen = 0u16;
        while seen < count && id < sys::RTE_MAX_ETHPORTS as u16 {
            // SAFETY: rte_eth_dev_is_valid_port accepts any port id.
            if unsafe { sys::rte_eth_dev_is_valid_port(id) } == 1 {
                out.push(self.port(id)?);
                seen += 1;
            }
            id += 1;
        }
        Ok(out)
    }

    /// Information on one port.
    pub fn port(&self, id: u16) -> Result<PortInfo, DpdkError> {
        let fail = |call, rc: i32| DpdkError::Port { call, port: id, reason: strerror(-rc) };
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: `info` is a valid, default-initialised out-struct.
        let rc = unsafe { sys::rte_eth_dev_info_get(id, &mut info) };
        if rc != 0 {
            return Err(fail("rte_eth_dev_info_get", rc));
        }
        let mut name = [0 as libc::c_char; 64];
        // SAFETY: `name` is large enough for RTE_ETH_NAME_MAX_LEN (64) including the NUL.
        let rc = unsafe { sys::rte_eth_dev_get_name_by_port(id, name.as_mut_ptr()) };
        if rc != 0 {
            return Err(fail("rte_eth_dev_get_name_by_port", rc));
        }
        let mut mac = sys::rte_ether_addr::default();
        // SAFETY: `mac` is a valid out-struct.
        let rc = unsafe { sys::rte_eth_macaddr_get(id, &mut mac) };
        if rc != 0 {
            return Err(fail("rte_eth_macaddr_get", rc));
        }
        let mut mtu: u16 = 0;
        // SAFETY: `mtu` is a valid out-pointer.
        let rc = unsafe { sys::rte_eth_dev_get_mtu(id, &mut mtu) };
        if rc != 0 {
            return Err(fail("rte_eth_dev_get_mtu", rc));
        }
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name points at the driver's static NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned()
        };
        Ok(PortInfo {
            id,
            // SAFETY: rte_eth_dev_get_name_by_port wrote a NUL-terminated string into `name`.
            name: unsafe { CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned(),
            driver,
            mac: mac.addr_bytes,
            mtu,
        })
    }
}
