//! Fallbacks, proven in child processes the test restricts the way a hardened host would:
//!
//! - io_uring refused (a seccomp filter makes `io_uring_setup` fail with `EPERM`): `auto` routes
//!   transfer elsewhere, transfers byte-exact, the report names the refusal, and forcing
//!   `io-uring` is an error carrying the same reason.
//! - `RLIMIT_MEMLOCK` at 64 KiB: io_uring stays routed but without registered buffers, still
//!   byte-exact, and the report says why it downgraded.
//!
//! Each parent test re-executes this test binary running only the matching `child_*` test with
//! `PARTHENON_FALLBACK_CHILD` set; the `child_*` tests do nothing when run directly.

mod common;

use common::{pattern, seccomp, TempDir};
use parthenon::detect::DetectOptions;
use parthenon::transfer::{BlockId, BlockStore, Expect, Transport};
use parthenon::{Backend, Engine, Job};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread;

const CHILD_ENV: &str = "PARTHENON_FALLBACK_CHILD";

fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

fn run_child(name: &str, restrict: fn() -> std::io::Result<()>) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"]).env(CHILD_ENV, "1");
    // SAFETY: the closure only calls prctl/setrlimit (async-signal-safe) and allocates nothing.
    unsafe { cmd.pre_exec(restrict) };
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child {name} failed:\n{text}");
    assert!(text.contains("CHILD-OK"), "child {name} did not run its checks:\n{text}");
    text
}

fn engine(opts: impl FnOnce(parthenon::EngineBuilder) -> parthenon::EngineBuilder) -> Result<Engine, parthenon::Error> {
    opts(Engine::builder().detect_options(DetectOptions { skip_dpdk: true, ..Default::default() })).build()
}

/// Byte-exact transfer of a few sizes through `t` over loopback.
fn transfers_byte_exact(t: &(dyn Transport + 'static)) {
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
        let (rx, _) = l.accept().unwrap();
        let copy = parthenon::transfer::copy::CopyTransport;
        for i in 0..sizes.len() {
            copy.recv_block(&rx, &dst2, &Expect::block(BlockId(i as u64))).unwrap();
        }
    });
    let tx = TcpStream::connect(addr).unwrap();
    for i in 0..sizes.len() {
        let r = t.send_block(&tx, &src.get(BlockId(i as u64)).unwrap()).unwrap();
        println!("sent block {i}: {} bytes via {} ({})", r.wire_bytes, r.backend, r.method);
    }
    h.join().unwrap();
    for (i, &n) in sizes.iter().enumerate() {
        assert!(dst.get(BlockId(i as u64)).unwrap().read_body().unwrap() == pattern(n, i as u64 + 3));
    }
}

#[test]
fn io_uring_refused_auto_downgrades_and_says_why() {
    let text = run_child("child_io_uring_refused", seccomp::deny_io_uring_setup);
    println!("{text}");
}

#[test]
fn memlock_64k_auto_keeps_io_uring_without_registered_buffers() {
    let text = run_child("child_memlock_64k", || seccomp::limit_memlock(64 << 10));
    println!("{text}");
}

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
    assert_eq!(parthenon::detect::memlock_limit(), Some(64 << 10));
    let e = engine(|b| b).unwrap();
    let Some(info) = e.capabilities().io_uring.available() else {
        // io_uring absent on this host for another reason: the downgrade is to another backend.
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
        let u = parthenon::transfer::uring::UringTransport::new().unwrap();
        assert!(!u.registered_buffers());
        assert!(u.notes().iter().any(|n| n.contains("RLIMIT_MEMLOCK 64 KiB")), "{:?}", u.notes());
    }
    println!("CHILD-OK");
}
