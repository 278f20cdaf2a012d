//! Classic-BPF seccomp filters that restrict a process the way a hardened host would: one makes
//! `io_uring_setup(2)` fail with `EPERM`, as a hardened container or `kernel.io_uring_disabled`
//! would, another refuses new threads, another refuses what a kernel before 5.19 lacks; and, beside them, the other restrictions a hardened host
//! puts on a service: a low `RLIMIT_MEMLOCK`, no root and no capabilities. Usable in
//! `Command::pre_exec`: they only call `prctl`, `setrlimit` and the `set*id` calls, which are
//! async-signal-safe, and allocate nothing.

/// `AUDIT_ARCH_X86_64` / `AUDIT_ARCH_AARCH64`: a filter lets calls of any other ABI through.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// Installs the filter on the calling thread (and everything it `exec`s): `io_uring_setup`
/// returns `EPERM`, every other system call is allowed. Sets `PR_SET_NO_NEW_PRIVS` first, which
/// an unprivileged process needs before installing a filter.
pub fn deny_io_uring_setup() -> std::io::Result<()> {
    const NR: u32 = libc::SYS_io_uring_setup as u32;
    let [p0, p1, p2, p3] = PROLOGUE;
    let filter = [
        p0,
        p1,
        p2,
        p3,
        bpf_jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, NR, 0, 1),
        bpf_stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32 & libc::SECCOMP_RET_DATA)),
        bpf_stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    install(&filter)
}

/// Installs a filter on the calling thread (and the threads it starts afterwards) under which no
/// new thread can be created: `clone3` fails with `ENOSYS` (so glibc falls back to `clone`) and
/// `clone` with `CLONE_THREAD` fails with `EAGAIN`, as `pthread_create` does when a process is at
/// its thread limit. Processes (`clone` without `CLONE_THREAD`) are still allowed. Other threads
/// of the process are not affected: call it on the thread under test.
pub fn deny_new_threads() -> std::io::Result<()> {
    const CLONE: u32 = libc::SYS_clone as u32;
    const CLONE3: u32 = libc::SYS_clone3 as u32;
    let errno = |e: i32| libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA);
    // The low word of args[0] (clone's flags on x86-64 and aarch64) at offset 16 on
    // little-endian machines.
    let [p0, p1, p2, p3] = PROLOGUE;
    let filter = [
        p0,
        p1,
        p2,
        p3,
        bpf_jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, CLONE3, 0, 1),
        bpf_stmt(libc::BPF_RET | libc::BPF_K, errno(libc::ENOSYS)),
        bpf_jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, CLONE, 1, 0),
        bpf_stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
        bpf_stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 16),
        bpf_jump(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, libc::CLONE_THREAD as u32, 0, 1),
        bpf_stmt(libc::BPF_RET | libc::BPF_K, errno(libc::EAGAIN)),
        bpf_stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    install(&filter)
}

/// Installs a filter under which `io_uring_register(IORING_REGISTER_FILES2)` fails with `EINVAL`,
/// as on a kernel before 5.19, which does not know that opcode (and with it sparse file tables
/// registered by count, `IORING_RSRC_REGISTER_SPARSE`); every other call is allowed, every other
/// `io_uring_register` opcode too.
pub fn refuse_io_uring_register_files2() -> std::io::Result<()> {
    const NR: u32 = libc::SYS_io_uring_register as u32;
    /// `IORING_REGISTER_FILES2` (linux/io_uring.h).
    const FILES2: u32 = 13;
    let [p0, p1, p2, p3] = PROLOGUE;
    let filter = [
        p0,
        p1,
        p2,
        p3,
        bpf_jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, NR, 0, 3),
        // The low word of args[1] (the register opcode) at offset 24 on little-endian machines.
        bpf_stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 24),
        bpf_jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, FILES2, 0, 1),
        bpf_stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | (libc::EINVAL as u32 & libc::SECCOMP_RET_DATA)),
        bpf_stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    install(&filter)
}

/// The start of every filter here: calls of another ABI are allowed, then the system call
/// number is loaded. `struct seccomp_data { int nr; __u32 arch; __u64 ip; __u64 args[6]; }`:
/// nr at offset 0, arch at offset 4.
const PROLOGUE: [libc::sock_filter; 4] = [
    bpf_stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 4),
    bpf_jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, AUDIT_ARCH, 1, 0),
    bpf_stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    bpf_stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
];

fn install(filter: &[libc::sock_filter]) -> std::io::Result<()> {
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut libc::sock_filter };
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `prog` points at `filter`, both alive for the call; the kernel copies the program.
    if unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the soft and hard `RLIMIT_MEMLOCK` to `bytes` (for `pre_exec`).
pub fn limit_memlock(bytes: u64) -> std::io::Result<()> {
    let lim = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// When running as root, becomes uid and gid `id` with no supplementary groups: the `setuid`
/// from root clears every capability (`CAP_IPC_LOCK` among them), as a service running under its
/// own account has none. The id need not exist in `/etc/passwd`; the kernel keeps one budget of
/// locked memory per uid, so children that must not share theirs take different ids. A process
/// that is not root is left as it is (it has no capabilities to lose unless it was given some,
/// which the caller checks). For `pre_exec`: only `setgroups`/`setgid`/`setuid`, which are
/// async-signal-safe, and nothing allocated.
pub fn become_unprivileged(id: u32) -> std::io::Result<()> {
    // SAFETY: geteuid takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    // SAFETY: setgroups with a count of 0 reads no list; setgid/setuid take integers. The gid
    // goes first: after setuid the process may no longer change it.
    let failed = unsafe { libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(id) != 0 || libc::setuid(id) != 0 };
    if failed {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this process has `CAP_IPC_LOCK` in its effective set (`/proc/self/status`, `CapEff`);
/// `None` when that cannot be read.
pub fn has_cap_ipc_lock() -> Option<bool> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    let eff = u64::from_str_radix(hex, 16).ok()?;
    /// `CAP_IPC_LOCK` (linux/capability.h).
    const CAP_IPC_LOCK: u32 = 14;
    Some(eff & (1 << CAP_IPC_LOCK) != 0)
}

const fn bpf_stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

const fn bpf_jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}
