//! Fallbacks, proven in child processes the test restricts the way a hardened host would:
//!
//! - io_uring refused (a seccomp filter makes `io_uring_setup` fail with `EPERM`): `auto` routes
//!   transfer elsewhere, transfers byte-exact, the report names the refusal, and forcing
//!   `io-uring` is an error carrying the same reason.
//! - A kernel without `IORING_REGISTER_FILES2` (before 5.19; a seccomp filter refuses the opcode
//!   with `EINVAL`, as such a kernel does): detection finds io_uring, `auto` routes transfer to
//!   it, and it transfers byte-exact, sending and receiving.
//! - `RLIMIT_MEMLOCK` at 64 KiB, in a process that is not root and has no capabilities (as a
//!   service under its own account): io_uring stays routed but without registered buffers, still
//!   byte-exact (sending and receiving), and the report says why it downgraded. Without
//!   `CAP_IPC_LOCK` the kernel charges every `SEND_ZC` from unregistered memory to the limit, so
//!   such sends go by plain `SEND`, and the report says that too.
//! - `RLIMIT_MEMLOCK` at exactly the 8 MiB the registered buffers take, and at 16 MiB,
//!   unprivileged likewise, with several rings at once: whether a ring's buffers register or not
//!   (the rings' own memory counts against the same limit on recent kernels, and so does every
//!   other ring's pool), every send goes through, zero-copy from registered buffers where there
//!   are some, and a ring without them says why.
//!
//! - `RLIMIT_MEMLOCK` at 64 KiB, unprivileged, with the user's rings filling it (a ring's own
//!   memory is charged to it, some 8 KiB each on 6.18): a call of a transport whose rings are all
//!   in use, for which no new ring can be set up, is served without one (a block by sendfile, a
//!   slice by write, a receive through a buffer), byte-exact, its method naming the fallback and
//!   `RLIMIT_MEMLOCK`; the engine's transport under `auto` goes to the next backend, and a forced
//!   `io-uring` transport is an error naming the limit.
//!
//! Each parent test re-executes this test binary running only the matching `child_*` test with
//! `PARTHENON_FALLBACK_CHILD` set; the `child_*` tests do nothing when run directly.

mod common;

use common::{pattern, seccomp, TempDir};
use parthenon::detect::DetectOptions;
use parthenon::transfer::{BlockId, BlockStore, Expect, Transport};
use parthenon::{Backend, Engine, Job};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread;

const CHILD_ENV: &str = "PARTHENON_FALLBACK_CHILD";

fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

fn run_child(name: &str, restrict: fn() -> std::io::Result<()>) -> String {
    let exe = std::env::current_exe().unwrap();
    // The child's temporary files go into a directory anyone may write to, so that a child that
    // drops to an unprivileged uid (`seccomp::become_unprivileged`) can create them.
    let tmp = TempDir::new("fb-child");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"]).env(CHILD_ENV, "1").env("TMPDIR", tmp.path());
    // SAFETY: the closure only calls prctl/setrlimit/setgroups/setgid/setuid (async-signal-safe)
    // and allocates nothing.
    unsafe { cmd.pre_exec(restrict) };
    // Killed after `common::CHILD_LIMIT`: a fallback that hangs fails the test.
    let out = common::output_within(&mut cmd).unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child {name} failed:\n{text}");
    assert!(text.contains("CHILD-OK"), "child {name} did not run its checks:\n{text}");
    text
}

fn engine(opts: impl FnOnce(parthenon::EngineBuilder) -> parthenon::EngineBuilder) -> Result<Engine, parthenon::Error> {
    opts(Engine::builder().detect_options(DetectOptions { skip_dpdk: true, ..Default::default() })).build()
}

/// Byte-exact transfer of a few sizes through `t` over loopback, received by `copy`; returns
/// each send's method, the largest block's last.
fn transfers_byte_exact(t: &(dyn Transport + 'static)) -> Vec<String> {
    transfers_byte_exact_to(t, || Box::new(parthenon::transfer::copy::CopyTransport))
}

/// Byte-exact transfer of a few sizes sent by `t` and received by the transport `rx` makes;
/// returns each send's method, the largest block's (9 MiB: more than one round of eight 1 MiB
/// chunks) last.
fn transfers_byte_exact_to(t: &(dyn Transport + 'static), rx: fn() -> Box<dyn Transport>) -> Vec<String> {
    let src_dir = TempDir::new("fb-src");
    let dst_dir = TempDir::new("fb-dst");
    let src = BlockStore::open(src_dir.path()).unwrap();
    let dst = BlockStore::open(dst_dir.path()).unwrap();
    let sizes = [0usize, 4096, (1 << 20) + 7, 9 << 20];
    for (i, &n) in sizes.iter().enumerate() {
        src.put(BlockId(i as u64), &pattern(n, i as u64 + 3)).unwrap();
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let dst2 = dst.clone();
    let h = thread::spawn(move || {
        let (peer, _) = l.accept().unwrap();
        let receiver = rx();
        for i in 0..sizes.len() {
            receiver.recv_block(&peer, &dst2, &Expect::block(BlockId(i as u64))).unwrap();
        }
    });
    let tx = TcpStream::connect(addr).unwrap();
    let mut methods = Vec::new();
    for i in 0..sizes.len() {
        let r = t.send_block(&tx, &src.get(BlockId(i as u64)).unwrap()).unwrap();
        println!("sent block {i}: {} bytes via {} ({})", r.wire_bytes, r.backend, r.method);
        methods.push(r.method);
    }
    h.join().unwrap();
    for (i, &n) in sizes.iter().enumerate() {
        assert!(dst.get(BlockId(i as u64)).unwrap().read_body().unwrap() == pattern(n, i as u64 + 3));
    }
    methods
}

/// The `restrict` of the memlock children: `RLIMIT_MEMLOCK` at `BYTES`, then no root and no
/// capabilities (uid and gid `ID` when run as root). The kernel charges locked memory to one
/// budget per uid, shared by every process of that uid, so each child that runs beside the others
/// takes its own id: a child's rings must not spend another's budget.
fn memlock_unprivileged<const BYTES: u64, const ID: u32>() -> std::io::Result<()> {
    seccomp::limit_memlock(BYTES)?;
    seccomp::become_unprivileged(ID)
}

/// In a memlock child: the restriction took, so the kernel charges this process's locked memory.
fn assert_unprivileged(limit: u64) {
    assert_eq!(parthenon::detect::memlock_limit(), Some(limit));
    assert_eq!(
        seccomp::has_cap_ipc_lock(),
        Some(false),
        "the child must run without CAP_IPC_LOCK (run the tests as root, or as a user without capabilities)"
    );
}

#[cfg(feature = "io-uring")] // without it, io_uring is absent for that reason instead
#[test]
fn io_uring_refused_auto_downgrades_and_says_why() {
    let text = run_child("child_io_uring_refused", seccomp::deny_io_uring_setup);
    println!("{text}");
}

#[cfg(feature = "io-uring")] // without it, io_uring is absent for that reason instead
#[test]
fn io_uring_works_without_register_files2_as_before_linux_5_19() {
    let text = run_child("child_no_register_files2", seccomp::refuse_io_uring_register_files2);
    println!("{text}");
}

#[cfg(feature = "io-uring")] // without it, io_uring is absent for that reason instead
#[test]
fn child_no_register_files2() {
    use parthenon::transfer::uring::UringTransport;
    if !in_child() {
        return;
    }
    let e = engine(|b| b).unwrap();
    let Some(_) = e.capabilities().io_uring.available() else {
        assert!(std::env::var_os("CI").is_none(), "CI: io_uring must be usable: {:?}", e.capabilities().io_uring);
        println!("io_uring unavailable here: {:?}", e.capabilities().io_uring);
        println!("CHILD-OK");
        return;
    };
    assert_eq!(e.backend(Job::Transfer), Backend::IoUring);
    let t = e.transport().unwrap();
    println!("{}", t.report());
    // io_uring itself (the router sends loopback peers by sendfile), SEND_ZC forced on loopback,
    // sending and receiving.
    let u = UringTransport::new().unwrap().zero_copy_on_loopback(true);
    transfers_byte_exact_to(&u, || Box::new(UringTransport::new().unwrap()));
    println!("CHILD-OK");
}

#[test]
fn memlock_64k_auto_keeps_io_uring_without_registered_buffers() {
    let text = run_child("child_memlock_64k", memlock_unprivileged::<{ 64 << 10 }, 65534>);
    println!("{text}");
}

#[cfg(feature = "io-uring")] // without it, io_uring is absent for that reason instead
#[test]
fn memlock_8m_unprivileged_io_uring_sends_with_or_without_registered_buffers() {
    let text =
        run_child("child_memlock_8m", memlock_unprivileged::<{ parthenon::detect::REGISTERED_BUFFER_BYTES }, 65533>);
    println!("{text}");
}

#[cfg(feature = "io-uring")] // without it, io_uring is absent for that reason instead
#[test]
fn memlock_full_of_rings_io_uring_serves_calls_without_a_ring() {
    // SAFETY: geteuid takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        // The child fills its user's whole budget of locked memory with rings: only a uid of its
        // own (which only root can switch to) keeps it from starving the other memlock children
        // and every other io_uring user of this account.
        println!("skip: the child needs a uid of its own (run the tests as root)");
        return;
    }
    let text = run_child("child_memlock_rings_full", memlock_unprivileged::<{ 64 << 10 }, 65532>);
    println!("{text}");
}

/// Sets up io_uring transports (one ring each) until the kernel refuses one, keeping them in
/// `held`; returns the refusal. A closed ring's charge to the user's locked memory outlives it
/// for a short while (the detection probe's rings here), so this fills again after pauses until
/// nothing more fits.
#[cfg(feature = "io-uring")]
fn fill_with_rings(held: &mut Vec<parthenon::transfer::uring::UringTransport>) -> String {
    use parthenon::transfer::uring::UringTransport;
    let mut refusal = String::new();
    for round in 0..4 {
        if round > 0 {
            thread::sleep(std::time::Duration::from_millis(500));
        }
        // 64 KiB holds some eight rings; a bound keeps a kernel that charges nothing finite.
        while held.len() < 256 {
            match UringTransport::new() {
                Ok(u) => held.push(u),
                Err(e) => {
                    refusal = e.to_string();
                    break;
                }
            }
        }
    }
    assert!(held.len() < 256, "256 rings under RLIMIT_MEMLOCK 64 KiB: the kernel charges no ring memory here");
    refusal
}

/// Receives blocks of a few sizes by `rx`, sent by copy, byte-exact.
#[cfg(feature = "io-uring")]
fn receives_byte_exact(rx: &dyn Transport) {
    let src_dir = TempDir::new("fb-rsrc");
    let dst_dir = TempDir::new("fb-rdst");
    let src = BlockStore::open(src_dir.path()).unwrap();
    let dst = BlockStore::open(dst_dir.path()).unwrap();
    let sizes = [0usize, 4096, (1 << 20) + 7, 9 << 20];
    for (i, &n) in sizes.iter().enumerate() {
        src.put(BlockId(i as u64), &pattern(n, i as u64 + 11)).unwrap();
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::scope(|s| {
        let src = &src;
        s.spawn(move || {
            let tx = TcpStream::connect(addr).unwrap();
            for i in 0..sizes.len() {
                parthenon::transfer::copy::CopyTransport.send_block(&tx, &src.get(BlockId(i as u64)).unwrap()).unwrap();
            }
        });
        let (peer, _) = l.accept().unwrap();
        for i in 0..sizes.len() {
            rx.recv_block(&peer, &dst, &Expect::block(BlockId(i as u64))).unwrap();
        }
    });
    for (i, &n) in sizes.iter().enumerate() {
        assert!(dst.get(BlockId(i as u64)).unwrap().read_body().unwrap() == pattern(n, i as u64 + 11));
    }
}

/// `RLIMIT_MEMLOCK` 64 KiB, unprivileged, filled with rings: a transport whose one ring is held
/// by a receive in progress serves every other call without a ring, byte-exact, and says why;
/// the engine's transport under `auto` goes to the next backend, and a forced one fails naming
/// the limit. Before the fix, each such call failed with `io_uring_setup: Cannot allocate memory`
/// and `Engine::transport` failed as a whole.
#[cfg(feature = "io-uring")] // without it, io_uring is absent for that reason instead
#[test]
fn child_memlock_rings_full() {
    use parthenon::transfer::uring::UringTransport;
    use std::io::Write;
    if !in_child() {
        return;
    }
    assert_unprivileged(64 << 10);
    let auto = engine(|b| b).unwrap();
    if auto.capabilities().io_uring.available().is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI: io_uring must be usable: {:?}", auto.capabilities().io_uring);
        println!("io_uring unavailable here: {:?}", auto.capabilities().io_uring);
        println!("CHILD-OK");
        return;
    }
    assert_eq!(auto.backend(Job::Transfer), Backend::IoUring);
    let forced = engine(|b| b.force(Backend::IoUring)).unwrap();
    let t = UringTransport::new().unwrap();
    let mut held = Vec::new();
    let refusal = fill_with_rings(&mut held);
    println!("{} rings more fit beside the first; then: {refusal}", held.len());
    let memlock = "RLIMIT_MEMLOCK 64 KiB (no CAP_IPC_LOCK)";
    assert!(refusal.contains("io_uring_setup") && refusal.contains(memlock), "{refusal}");

    // The engine's transports, set up now that no ring fits: `auto` passes io_uring over.
    let routed = auto.transport().unwrap();
    let report = routed.report();
    println!("{report}");
    assert_ne!(routed.backend(), Backend::IoUring);
    let why = report.route.passed_over.iter().find(|p| p.backend == Backend::IoUring).map(|p| p.reason.clone());
    assert!(why.as_deref().is_some_and(|w| w.contains("io_uring_setup") && w.contains(memlock)), "{report}");
    transfers_byte_exact(&routed);
    let err = forced.transport().unwrap_err().to_string();
    assert!(err.contains("io-uring") && err.contains(memlock), "{err}");

    // A receive in progress holds the transport's one ring: the header and the first MiB of a
    // 3 MiB body are sent, the rest only at the end.
    let dir = TempDir::new("fb-held");
    let store = BlockStore::open(dir.path()).unwrap();
    let held_body = pattern(3 << 20, 99);
    let mut wire = parthenon::transfer::BlockHeader::for_body(BlockId(77), &held_body).encode().to_vec();
    wire.extend_from_slice(&held_body);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut feeder = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (held_peer, _) = l.accept().unwrap();
    let split = parthenon::transfer::HEADER_LEN + (1 << 20);
    thread::scope(|s| {
        let holder = s.spawn(|| t.recv_block(&held_peer, &store, &Expect::block(BlockId(77))));
        feeder.write_all(&wire[..split]).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while t.idle_rings() > 0 {
            assert!(std::time::Instant::now() < deadline, "the receive never took the ring");
            thread::sleep(std::time::Duration::from_millis(10));
        }
        // Every other call finds no idle ring and none can be set up.
        let methods = transfers_byte_exact(&t);
        for m in &methods {
            assert!(m.starts_with("sendfile, not io_uring: io_uring_setup: ") && m.contains(memlock), "{m}");
        }
        let (tx, rx) = common::tcp_pair();
        let body = pattern((1 << 20) + 3, 7);
        let r = t.send_bytes(&tx, BlockId(8), &body).unwrap();
        println!("send_bytes: {} ({})", r.backend, r.method);
        assert_eq!(r.backend, Backend::Copy);
        assert!(r.method.starts_with("write from caller's buffer, not io_uring: ") && r.method.contains(memlock));
        let (h, got) = parthenon::transfer::copy::CopyTransport.recv_to_vec(&rx, &Expect::default()).unwrap();
        assert!(h.id == BlockId(8) && got == body);
        receives_byte_exact(&t);
        assert_eq!(t.idle_rings(), 0, "a call without a ring left one in the pool");
        // The held receive completes on its ring, byte-exact.
        feeder.write_all(&wire[split..]).unwrap();
        holder.join().unwrap().unwrap();
    });
    assert!(store.get(BlockId(77)).unwrap().read_body().unwrap() == held_body);
    assert_eq!(t.idle_rings(), 1);
    drop(held);
    println!("CHILD-OK");
}

#[cfg(feature = "io-uring")] // without it, io_uring is absent for that reason instead
#[test]
fn child_io_uring_refused() {
    if !in_child() {
        return;
    }
    let e = engine(|b| b).unwrap();
    let caps = e.capabilities();
    let reason = caps.io_uring.check().unwrap_err();
    assert!(reason.contains("io_uring_setup") && reason.contains("EPERM"), "{reason}");
    let route = e.route(Job::Transfer);
    assert_ne!(route.backend, Backend::IoUring);
    let t = e.transport().unwrap();
    let report = t.report().to_string();
    println!("{report}");
    assert!(report.contains("not io-uring") && report.contains("io_uring_setup: EPERM"), "{report}");
    transfers_byte_exact(&t);

    let err = engine(|b| b.force(Backend::IoUring)).unwrap_err().to_string();
    assert!(err.contains("io-uring") && err.contains("EPERM"), "{err}");
    #[cfg(feature = "io-uring")]
    {
        let err = parthenon::transfer::uring::UringTransport::new().unwrap_err().to_string();
        assert!(err.contains("io_uring_setup"), "{err}");
    }
    println!("CHILD-OK");
}

#[test]
fn child_memlock_64k() {
    if !in_child() {
        return;
    }
    assert_unprivileged(64 << 10);
    let e = engine(|b| b).unwrap();
    let Some(info) = e.capabilities().io_uring.available() else {
        // io_uring absent on this host for another reason: the downgrade is to another backend.
        // Not under CI, where this child exists to prove the unprivileged io_uring path.
        assert!(
            cfg!(not(feature = "io-uring")) || std::env::var_os("CI").is_none(),
            "CI: io_uring must be usable: {:?}",
            e.capabilities().io_uring
        );
        println!("io_uring unavailable here: {:?}", e.capabilities().io_uring);
        transfers_byte_exact(&e.transport().unwrap());
        println!("CHILD-OK");
        return;
    };
    let why = info.registered_buffers.check().unwrap_err();
    assert!(why.contains("RLIMIT_MEMLOCK 64 KiB < 8 MiB needed"), "{why}");
    assert_eq!(e.backend(Job::Transfer), Backend::IoUring);
    let t = e.transport().unwrap();
    let report = t.report();
    println!("{report}");
    assert!(report.backend_notes.iter().any(|n| n.contains("RLIMIT_MEMLOCK 64 KiB < 8 MiB needed")), "{report}");
    transfers_byte_exact(&t);
    #[cfg(feature = "io-uring")]
    {
        // io_uring itself under the limit, without registered buffers: plain SEND, also where
        // SEND_ZC would be used (forced on loopback), since the kernel would charge each
        // zero-copy send from the mapping to the 64 KiB and refuse it (ENOMEM).
        let u = parthenon::transfer::uring::UringTransport::new().unwrap();
        assert!(!u.registered_buffers());
        assert!(u.notes().iter().any(|n| n.contains("RLIMIT_MEMLOCK 64 KiB")), "{:?}", u.notes());
        transfers_byte_exact(&u);
        // Received by io_uring without registered buffers too (plain WRITE from the slots).
        transfers_byte_exact_to(&u, || Box::new(parthenon::transfer::uring::UringTransport::new().unwrap()));
        let zc = parthenon::transfer::uring::UringTransport::new().unwrap().zero_copy_on_loopback(true);
        let methods = transfers_byte_exact(&zc);
        let last = methods.last().unwrap();
        assert!(
            last.starts_with("io_uring linked SEND (") && last.contains("charged to RLIMIT_MEMLOCK 64 KiB"),
            "{last}"
        );
        // SEND_ZC from the mapping all the same (as a process the exemption check misjudged
        // would): the kernel refuses it with ENOMEM, and the send goes on with plain SEND.
        let forced = parthenon::transfer::uring::UringTransport::new()
            .unwrap()
            .zero_copy_on_loopback(true)
            .zero_copy_from_memory(true);
        let methods = transfers_byte_exact(&forced);
        let last = methods.last().unwrap();
        assert!(
            last.starts_with("io_uring linked SEND_ZC from the block mapping") && last.contains("ENOMEM"),
            "{last}"
        );
    }
    println!("CHILD-OK");
}

/// `RLIMIT_MEMLOCK` exactly the registered buffers' 8 MiB, unprivileged, with several io_uring
/// transports at once, as a node serving several peers has several rings, all drawing on the
/// user's one budget of locked memory: a ring registers its buffers or says why not (on 6.18
/// none can: the ring's own memory counts too; where one can, the others cannot), and every send
/// goes through either way, SEND_ZC forced on loopback so that the zero-copy paths are the ones
/// taken; so does the engine's routed transport, whose report says why it has no registered
/// buffers where detection found none.
#[cfg(feature = "io-uring")] // without it, io_uring is absent for that reason instead
#[test]
fn child_memlock_8m() {
    use parthenon::transfer::uring::UringTransport;
    if !in_child() {
        return;
    }
    let limit = parthenon::detect::REGISTERED_BUFFER_BYTES;
    assert_unprivileged(limit);
    let e = engine(|b| b).unwrap();
    println!("detected: {:?}", e.capabilities().io_uring);
    let Some(info) = e.capabilities().io_uring.available() else {
        // io_uring absent on this host for another reason: the downgrade is to another backend.
        // Not under CI, where this child exists to prove the unprivileged io_uring path.
        assert!(
            cfg!(not(feature = "io-uring")) || std::env::var_os("CI").is_none(),
            "CI: io_uring must be usable: {:?}",
            e.capabilities().io_uring
        );
        transfers_byte_exact(&e.transport().unwrap());
        println!("CHILD-OK");
        return;
    };
    let first = UringTransport::new().unwrap().zero_copy_on_loopback(true);
    let second = UringTransport::new().unwrap().zero_copy_on_loopback(true);
    assert!(!(first.registered_buffers() && second.registered_buffers()), "two 8 MiB pools under {limit} B");
    for (name, u) in [("first", &first), ("second", &second)] {
        println!("{name}: registered buffers {}, notes {:?}", u.registered_buffers(), u.notes());
        let methods = transfers_byte_exact(u);
        transfers_byte_exact_to(u, || Box::new(UringTransport::new().unwrap()));
        let last = methods.last().unwrap();
        if u.registered_buffers() {
            assert!(last.starts_with("io_uring READ_FIXED + linked SEND_ZC"), "{name}: {last}");
        } else {
            assert!(
                u.notes().iter().any(|n| n.contains("registered buffers off") && n.contains("ENOMEM")),
                "{name}: {:?}",
                u.notes()
            );
            assert!(last.starts_with("io_uring linked SEND (") && last.contains("ENOMEM"), "{name}: {last}");
        }
    }
    let t = e.transport().unwrap();
    let report = t.report();
    println!("{report}");
    if let Err(why) = info.registered_buffers.check() {
        assert!(why.contains("ENOMEM"), "{why}");
        assert!(
            report.backend_notes.iter().any(|n| n.contains(why) && n.contains("plain SEND from the block mapping")),
            "{report}"
        );
    }
    transfers_byte_exact(&t);
    println!("CHILD-OK");
}

/// The `parthenon` binary under the same refusal: `bench transfer` (sender and receiver as two
/// processes, both under the filter) still transfers with `auto`, its JSON report names the
/// downgrade, and an explicit `--backend io-uring` is an error naming the reason.
#[cfg(feature = "io-uring")] // without it, io_uring is absent for that reason instead
#[test]
fn bench_cli_with_io_uring_refused() {
    let exe = env!("CARGO_BIN_EXE_parthenon");
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "transfer", "--sizes", "4KiB,1MiB", "--min-bytes", "2MiB", "--backend", "auto", "--json"]);
    // SAFETY: only prctl calls in the child before exec.
    unsafe { cmd.pre_exec(seccomp::deny_io_uring_setup) };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let route = &v["auto_route"]["route"];
    assert_ne!(route["backend"], "io-uring", "{route}");
    let passed = route["passed_over"].as_array().unwrap();
    assert!(
        passed.iter().any(|p| p["backend"] == "io-uring" && p["reason"].as_str().unwrap().contains("EPERM")),
        "{route}"
    );
    let rows = v["results"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["backend"] == "copy") && rows.iter().any(|r| r["backend"] == "auto"), "{stdout}");
    assert!(rows.iter().all(|r| r["gb_per_s"].as_f64().unwrap() > 0.0), "{stdout}");

    let mut cmd = Command::new(exe);
    cmd.args(["bench", "transfer", "--sizes", "4KiB", "--backend", "io-uring"]);
    // SAFETY: as above.
    unsafe { cmd.pre_exec(seccomp::deny_io_uring_setup) };
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("io-uring") && stderr.contains("EPERM"), "{stderr}");
}

/// `bench transfer --backend dpdk` is an input error (exit 2) that says where DPDK is measured,
/// not a detection failure: the bench runs stream backends between two processes.
#[test]
fn bench_cli_points_dpdk_to_the_datagram_bench() {
    let out = Command::new(env!("CARGO_BIN_EXE_parthenon"))
        .args(["bench", "transfer", "--sizes", "4KiB", "--backend", "dpdk"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("datagram") && err.contains("cargo bench --bench transfer"), "{err}");
}
