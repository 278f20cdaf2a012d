//! A small safe wrapper over DPDK (feature `dpdk`): the Environment Abstraction Layer and the
//! ethdev port list. The transfer backend builds its datagram path on top of this.
//!
//! DPDK's EAL can be initialised once per process; [`Eal::init`] does it on first call, remembers
//! the outcome (success or the error) and returns the same outcome to every later caller, whatever
//! arguments they pass. [`Eal::args`] says which arguments it actually started with.

pub mod sys;

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// [`Eal::cleanup`] has run: the EAL is gone for the rest of the process.
    #[error("the DPDK EAL was cleaned up; it cannot start again in this process")]
    CleanedUp,
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
/// Set by [`Eal::cleanup`]: the EAL is gone for the rest of the process.
static CLEANED: AtomicBool = AtomicBool::new(false);

/// Where DPDK 22.11 keeps its runtime directories (one per `--file-prefix`), worked out as its
/// `eal_create_runtime_dir` does: systemd's `$RUNTIME_DIRECTORY` if set, else `/var/run` for the
/// real user root (`getuid`, not the effective user), else `$XDG_RUNTIME_DIR` or `/tmp`; then
/// `dpdk`.
fn runtime_base() -> std::path::PathBuf {
    let dir = std::env::var_os("RUNTIME_DIRECTORY").map(std::path::PathBuf::from).unwrap_or_else(|| {
        // SAFETY: getuid has no preconditions and cannot fail.
        if unsafe { libc::getuid() } == 0 {
            "/var/run".into()
        } else {
            std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| "/tmp".into())
        }
    });
    dir.join("dpdk")
}

/// The lock file inside a runtime directory this crate made: held (`flock`) by the owning
/// process for its lifetime.
const LOCK_FILE: &str = "parthenon.lock";

/// Whether `name` is a runtime directory name of the form this crate makes: `parthenon-<pid>`
/// (the engine's default prefix, `detect::default_dpdk_args`), and nothing else.
fn own_format(name: &str) -> bool {
    name.strip_prefix("parthenon-").is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the runtime directories under `base` that parthenon processes left behind: only
/// those named exactly `parthenon-<pid>` (other names are the operator's, or a test's) and
/// holding a [`LOCK_FILE`] that nobody holds — the process that made it took it for its whole
/// life ([`hold_runtime_lock`]), so a lock that can be taken means that process is gone, in
/// whatever PID namespace it ran. A directory without the lock file is left alone: it may be a
/// process still starting, or not ours. A process killed with SIGKILL, or one that exits
/// without [`Eal::cleanup`], cannot remove its own; the next EAL start does.
fn remove_stale_runtime_dirs(base: &std::path::Path, own: &str) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !own_format(&name) || name == own {
            continue;
        }
        let Ok(lock) = std::fs::File::open(e.path().join(LOCK_FILE)) else { continue };
        if try_lock(&lock) {
            tracing::debug!(dir = %e.path().display(), "removing a stale EAL runtime directory");
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Takes an exclusive `flock` on `f` without waiting; whether it got it.
fn try_lock(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Creates runtime directory `dir` (mode 0700, as DPDK does) with its [`LOCK_FILE`] locked for
/// the rest of the process. The file is locked under a private name and renamed into place, so
/// nobody ever sees it unlocked while its process lives.
fn hold_runtime_lock(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let tmp = dir.join(format!("{LOCK_FILE}.{}", std::process::id()));
    let f = std::fs::File::create(&tmp)?;
    let placed =
        if try_lock(&f) { std::fs::rename(&tmp, dir.join(LOCK_FILE)) } else { Err(std::io::Error::last_os_error()) };
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Held until the process ends.
    std::mem::forget(f);
    Ok(())
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
        if CLEANED.load(Ordering::Acquire) {
            return Err(DpdkError::CleanedUp);
        }
        EAL.get_or_init(|| Self::start(args)).as_ref().map_err(Clone::clone)
    }

    /// The EAL if some earlier call started it and [`Eal::cleanup`] has not run.
    pub fn get() -> Option<&'static Eal> {
        if CLEANED.load(Ordering::Acquire) {
            return None;
        }
        EAL.get().and_then(|r| r.as_ref().ok())
    }

    fn start(args: &[String]) -> Result<Eal, DpdkError> {
        let own = format!("parthenon-{}", std::process::id());
        remove_stale_runtime_dirs(&runtime_base(), &own);
        if args.iter().any(|a| a.strip_prefix("--file-prefix=") == Some(own.as_str())) {
            if let Err(e) = hold_runtime_lock(&runtime_base().join(&own)) {
                tracing::debug!(error = %e, "could not lock the EAL runtime directory; it will not be cleaned up if left behind");
            }
        }
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

    /// Releases the EAL's resources (hugepage or heap memory, runtime files), at process exit.
    /// Afterwards [`Eal::get`] returns `None`, so no new link can open; a second call does
    /// nothing.
    ///
    /// # Safety
    ///
    /// No DPDK object may be alive or used again, on any thread: no link
    /// (`transfer::dpdk::DpdkLink`), no received frame that holds an mbuf, no thread inside a
    /// DPDK call. They all point into memory this frees.
    pub unsafe fn cleanup(&self) {
        if CLEANED.swap(true, Ordering::AcqRel) {
            return;
        }
        // SAFETY: the EAL was initialised (an `Eal` exists only then), this is the first
        // cleanup (the flag above), and the caller guarantees that no DPDK object is in use
        // (this function's contract).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_runtime_dirs_are_only_ours_and_unlocked() {
        let base = std::env::temp_dir().join(format!("parthenon-dpdk-rt-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        // Operator prefixes ending in digits, a dir of our form without a lock (maybe starting,
        // maybe not ours), a live one (lock held), a dead one (lock free), and our own.
        for d in ["parthenon-node-2048", "parthenon-", "parthenon-12x", "parthenon-999991"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        hold_runtime_lock(&base.join("parthenon-999992")).unwrap();
        std::fs::create_dir_all(base.join("parthenon-999993")).unwrap();
        std::fs::File::create(base.join("parthenon-999993").join(LOCK_FILE)).unwrap();
        std::fs::create_dir_all(base.join("parthenon-999994")).unwrap();
        std::fs::File::create(base.join("parthenon-999994").join(LOCK_FILE)).unwrap();
        remove_stale_runtime_dirs(&base, "parthenon-999994");
        let mut left: Vec<String> =
            std::fs::read_dir(&base).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(
            left,
            [
                "parthenon-",
                "parthenon-12x",
                "parthenon-999991",
                "parthenon-999992",
                "parthenon-999994",
                "parthenon-node-2048"
            ]
        );
        let _ = std::fs::remove_dir_all(&base);
    }
}
