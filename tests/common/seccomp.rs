//! Test helpers that make the kernel refuse things, for proving fallbacks against real refusals
//! rather than simulated ones. Use them inside `CommandExt::pre_exec`, so only the child process
//! is affected.

/// Installs a seccomp filter in the calling process under which `io_uring_setup(2)` fails with
/// `EPERM` and every other system call is allowed. Irreversible for the process and its children.
pub fn deny_io_uring_setup() -> std::io::Result<()> {
    // Classic BPF: load the audit arch; if it is not x86_64 allow everything; load the syscall
    // number; return EPERM for io_uring_setup, allow the rest.
    // BPF_LD | BPF_W | BPF_ABS, BPF_JMP | BPF_JEQ | BPF_K, BPF_RET | BPF_K.
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const OFF_NR: u32 = 0;
    const OFF_ARCH: u32 = 4;
    let f = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let filter = [
        f(BPF_LD_W_ABS, 0, 0, OFF_ARCH),
        f(BPF_JMP_JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
        f(BPF_LD_W_ABS, 0, 0, OFF_NR),
        f(BPF_JMP_JEQ_K, 0, 1, libc::SYS_io_uring_setup as u32),
        f(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32)),
        f(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `prog` points at `filter`, both alive for the duration of the call; the kernel
    // copies the program.
    if unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const _) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets this process's `RLIMIT_MEMLOCK` (soft and hard) to `bytes`.
pub fn limit_memlock(bytes: u64) -> std::io::Result<()> {
    let lim = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
    // SAFETY: `lim` is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
