//! io_uring probe: a ring can be set up (`io_uring_setup` may be refused by seccomp, by
//! `kernel.io_uring_disabled`, or by an old kernel: the errno says which), it takes a table of
//! fixed files as the transfer backend registers one (two empty entries), which of the opcodes
//! the transfer backend uses the kernel supports (recorded; any kernel that answers
//! `IORING_REGISTER_PROBE`, 5.6, has those it needs, and SEND_ZC is used only where present), and
//! buffers the size transfer registers can be registered
//! under this process's `RLIMIT_MEMLOCK`.
//!
//! What the kernel charges to that limit ([`memlock_charged`]): a ring set up by a process without
//! `CAP_IPC_LOCK` in the initial user namespace charges its registered buffers, on recent kernels
//! its own rings' memory, and every `IORING_OP_SEND_ZC` from memory that is not registered
//! (`(len >> PAGE_SHIFT) + 2` pages per send, held until its notification) to the user's locked
//! memory: one budget for all the user's rings, checked against the calling process's
//! `RLIMIT_MEMLOCK`, and an operation past it fails with `ENOMEM`.

use super::Probe;
use serde::{Deserialize, Serialize};

/// Bytes of registered buffers the io_uring transfer backend wants (its fixed-buffer pool).
pub const REGISTERED_BUFFER_BYTES: u64 = 8 << 20;

/// What the io_uring probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoUringInfo {
    /// Opcodes the running kernel supports (`IORING_REGISTER_PROBE`).
    pub opcodes: IoUringOpcodes,
    /// `RLIMIT_MEMLOCK` soft limit in bytes; `None` when unlimited.
    pub memlock_limit_bytes: Option<u64>,
    /// Whether [`REGISTERED_BUFFER_BYTES`] of buffers could be registered; when not, why.
    pub registered_buffers: Probe<RegisteredBuffers>,
}

/// A successful registration of fixed buffers by the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredBuffers {
    /// Bytes registered (and unregistered again) by the probe.
    pub bytes: u64,
}

/// The opcodes transfer uses, and whether the kernel supports each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoUringOpcodes {
    /// `IORING_OP_SEND_ZC` (zero-copy send, Linux 6.0).
    pub send_zc: bool,
    /// `IORING_OP_SPLICE`.
    pub splice: bool,
    /// `IORING_OP_SENDMSG`.
    pub sendmsg: bool,
    /// `IORING_OP_READ_FIXED`.
    pub read_fixed: bool,
    /// `IORING_OP_WRITE_FIXED`.
    pub write_fixed: bool,
    /// `IORING_OP_PROVIDE_BUFFERS`.
    pub provide_buffers: bool,
}

/// The soft `RLIMIT_MEMLOCK` of this process; `None` when unlimited.
pub fn memlock_limit() -> Option<u64> {
    match nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK) {
        Ok((soft, _)) if soft == libc::RLIM_INFINITY => None,
        Ok((soft, _)) => Some(soft),
        Err(_) => None,
    }
}

/// Why io_uring's locked memory counts against this process's `RLIMIT_MEMLOCK` (module docs), or
/// `None` when it never runs out: the limit is unlimited, or the process has `CAP_IPC_LOCK` in the
/// initial user namespace, as the kernel checks at `io_uring_setup`. With a reason, a
/// `SEND_ZC` from unregistered memory can fail with `ENOMEM` at any size the budget does not
/// cover, so the transfer backend sends such memory with plain `SEND` instead. Read from
/// `/proc/self/status` (`CapEff`) and `/proc/self/ns/user`; where they cannot be read, the
/// memory counts.
pub fn memlock_charged() -> Option<String> {
    let limit = memlock_limit()?;
    /// `CAP_IPC_LOCK` (linux/capability.h).
    const CAP_IPC_LOCK: u32 = 14;
    /// The inode of the initial user namespace (`PROC_USER_INIT_INO`, linux/proc_ns.h).
    const PROC_USER_INIT_INO: u64 = 0xEFFF_FFFD;
    let cap = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
        u64::from_str_radix(hex.trim(), 16).ok()
    });
    let cap = cap.is_some_and(|eff| eff & (1 << CAP_IPC_LOCK) != 0);
    let init_ns = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/ns/user").is_ok_and(|m| m.ino() == PROC_USER_INIT_INO)
    };
    match (cap, init_ns) {
        (true, true) => None,
        (true, false) => Some(format!(
            "RLIMIT_MEMLOCK {} (CAP_IPC_LOCK only inside a user namespace, which the kernel does not count)",
            human_bytes(limit)
        )),
        (false, _) => Some(format!("RLIMIT_MEMLOCK {} (no CAP_IPC_LOCK)", human_bytes(limit))),
    }
}

/// The reason an `io_uring_register(BUFFERS)` of [`REGISTERED_BUFFER_BYTES`] failed with `errno`,
/// for an operator. `ENOMEM` under a limit that would hold the buffers alone means the rest of
/// what the user has charged (module docs) did not fit beside them.
#[cfg(feature = "io-uring")]
pub(crate) fn buffers_refused(errno: i32) -> String {
    let mut reason = format!("io_uring_register(BUFFERS): {}", super::errno_text(errno));
    if errno == libc::ENOMEM {
        if let Some(limit) = memlock_limit() {
            reason.push_str(&format!(
                ": RLIMIT_MEMLOCK {} must hold the {} of buffers and the locked memory this user already has \
                 (the ring's own memory on recent kernels, other rings' buffers)",
                human_bytes(limit),
                human_bytes(REGISTERED_BUFFER_BYTES)
            ));
        }
    }
    reason
}

/// "64 KiB", "8 MiB": byte counts for reasons an operator reads.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(not(feature = "io-uring"))]
pub(super) fn probe() -> Probe<IoUringInfo> {
    Probe::unavailable("built without feature `io-uring`")
}

#[cfg(feature = "io-uring")]
pub(super) fn probe() -> Probe<IoUringInfo> {
    use io_uring::{opcode, IoUring, Probe as OpProbe};

    let ring = match IoUring::new(8) {
        Ok(r) => r,
        Err(e) => {
            return match e.raw_os_error() {
                Some(errno) => Probe::refused("io_uring_setup", errno),
                None => Probe::unavailable(format!("io_uring_setup: {e}")),
            }
        }
    };
    let mut p = OpProbe::new();
    if let Err(e) = ring.submitter().register_probe(&mut p) {
        return match e.raw_os_error() {
            Some(errno) => Probe::refused("io_uring_register(PROBE)", errno),
            None => Probe::unavailable(format!("io_uring_register(PROBE): {e}")),
        };
    }
    // The transfer backend's rings name their files through a table of two fixed files,
    // registered empty (-1 entries, Linux 5.5).
    if let Err(e) = ring.submitter().register_files(&[-1, -1]) {
        return match e.raw_os_error() {
            Some(errno) => Probe::refused("io_uring_register(FILES)", errno),
            None => Probe::unavailable(format!("io_uring_register(FILES): {e}")),
        };
    }
    let opcodes = IoUringOpcodes {
        send_zc: p.is_supported(opcode::SendZc::CODE),
        splice: p.is_supported(opcode::Splice::CODE),
        sendmsg: p.is_supported(opcode::SendMsg::CODE),
        read_fixed: p.is_supported(opcode::ReadFixed::CODE),
        write_fixed: p.is_supported(opcode::WriteFixed::CODE),
        provide_buffers: p.is_supported(opcode::ProvideBuffers::CODE),
    };
    let memlock = memlock_limit();
    let registered_buffers = probe_registered_buffers(&ring, memlock);
    Probe::Available(IoUringInfo { opcodes, memlock_limit_bytes: memlock, registered_buffers })
}

#[cfg(feature = "io-uring")]
fn probe_registered_buffers(ring: &io_uring::IoUring, memlock: Option<u64>) -> Probe<RegisteredBuffers> {
    // Policy, not only mechanism: a privileged process (CAP_IPC_LOCK) could register past the
    // limit, but an operator who set RLIMIT_MEMLOCK low asked for little locked memory, so the
    // engine honours the limit as the budget either way.
    if let Some(limit) = memlock {
        if limit < REGISTERED_BUFFER_BYTES {
            return Probe::unavailable(format!(
                "RLIMIT_MEMLOCK {} < {} needed",
                human_bytes(limit),
                human_bytes(REGISTERED_BUFFER_BYTES)
            ));
        }
    }
    let mut buf = vec![0u8; REGISTERED_BUFFER_BYTES as usize];
    let iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: `buf` outlives the registration: it is unregistered below before `buf` drops, and
    // the ring is not used for I/O in between.
    let res = unsafe { ring.submitter().register_buffers(std::slice::from_ref(&iov)) };
    match res {
        Ok(()) => {
            let _ = ring.submitter().unregister_buffers();
            drop(buf);
            Probe::Available(RegisteredBuffers { bytes: REGISTERED_BUFFER_BYTES })
        }
        Err(e) => match e.raw_os_error() {
            Some(errno) => Probe::Unavailable { reason: buffers_refused(errno), errno: Some(errno) },
            None => Probe::unavailable(format!("io_uring_register(BUFFERS): {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(64 << 10), "64 KiB");
        assert_eq!(human_bytes(8 << 20), "8 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10), "10 B");
    }
}
