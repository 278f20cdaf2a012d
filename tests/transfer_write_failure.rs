//! A receive whose file write fails mid-body ends in an error naming the block and the failed
//! write, on every stream backend present, and leaves nothing behind: no block, no temp file.
//!
//! The failure is real: the parent test re-executes this test binary running only
//! `child_writes_fail` with the file-size limit (`RLIMIT_FSIZE`) at 2 MiB and `SIGXFSZ` ignored,
//! so a write past 2 MiB fails with `EFBIG` (or comes back short first) instead of killing the
//! process. The sender sends a 9 MiB body from memory (`send_bytes`), since the child cannot
//! store it in a file. Each backend meets two senders: one that sends the whole body, and one
//! that stalls after 3.5 MiB with the connection open, which a receiver whose write failed must
//! not wait for. The io_uring receiver is run with and without registered buffers
//! (`WRITE_FIXED` and `WRITE`, both on the kernel's io-wq workers).

mod common;

use common::{pattern, TempDir};
use parthenon::detect::DetectOptions;
use parthenon::transfer::{BlockHeader, BlockId, BlockStore, Expect, Transport};
use parthenon::{Backend, Engine};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread;

const CHILD_ENV: &str = "PARTHENON_WRITE_FAILURE_CHILD";
const LIMIT: u64 = 2 << 20;
const BODY: usize = 9 << 20;

#[test]
fn receive_whose_write_fails_names_the_block_and_leaves_nothing() {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["child_writes_fail", "--exact", "--nocapture", "--test-threads=1"]).env(CHILD_ENV, "1");
    // SAFETY: the closure only calls signal and setrlimit (async-signal-safe) and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            let lim = libc::rlimit { rlim_cur: LIMIT, rlim_max: LIMIT };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    // A receiver that waits for the stalled peer hangs the child: `output_within` kills it after
    // `common::CHILD_LIMIT` and fails the test instead of hanging.
    let out = common::output_within(&mut cmd).unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    forward_skips(&text);
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("CHILD-OK"), "child did not run its checks:\n{text}");
}

/// How the sender behaves.
#[derive(Clone, Copy)]
enum Peer {
    /// Sends the whole 9 MiB block.
    Whole,
    /// Sends the header of the 9 MiB block and 3.5 MiB of its body, then sends nothing more but
    /// keeps the connection open until the receive has returned: a receiver must not wait for
    /// the rest of a body it can no longer store.
    Stalls,
}

/// Receives one 9 MiB block with `rx` into a fresh store; returns the receive's error.
fn failed_receive(rx: &dyn Transport, id: BlockId, peer_does: Peer) -> String {
    let dir = TempDir::new("wfail");
    failed_receive_in(dir.path(), rx, id, peer_does)
}

/// [`failed_receive`] into a store at `root`.
fn failed_receive_in(root: &std::path::Path, rx: &dyn Transport, id: BlockId, peer_does: Peer) -> String {
    let store = BlockStore::open(root).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let sender = thread::spawn(move || {
        let mut tx = TcpStream::connect(addr).unwrap();
        let body = pattern(BODY, 5);
        // The receiver hangs up early; the sender's own error is not what is tested.
        match peer_does {
            Peer::Whole => {
                let _ = parthenon::transfer::copy::CopyTransport.send_bytes(&tx, id, &body);
            }
            Peer::Stalls => {
                let _ = tx.write_all(&BlockHeader::for_body(id, &body).encode());
                let _ = tx.write_all(&body[..7 << 19]);
                let _ = done_rx.recv();
            }
        }
    });
    let (peer, _) = l.accept().unwrap();
    let got = rx.recv_block(&peer, &store, &Expect::block(id));
    drop(done_tx);
    drop(peer);
    sender.join().unwrap();
    let err = match got {
        Ok(b) => panic!("block {} received past a {LIMIT}-byte limit on what can be written", b.id()),
        Err(e) => e.to_string(),
    };
    assert!(!store.contains(id), "block {id} visible after a failed write");
    let tmp: Vec<_> = std::fs::read_dir(store.root().join("tmp")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(tmp.is_empty(), "temp files left behind: {tmp:?}");
    err
}

/// Both senders against one receiving transport (the second receive reuses what the first left,
/// e.g. the io_uring ring, which must come back with nothing in flight).
fn check(name: &str, rx: &dyn Transport, id: BlockId) {
    for peer in [Peer::Whole, Peer::Stalls] {
        check_one(name, rx, id, peer);
    }
}

fn check_one(name: &str, rx: &dyn Transport, id: BlockId, peer: Peer) {
    let err = failed_receive(rx, id, peer);
    println!("{name}: {err}");
    assert!(err.contains(&format!("block {id}")), "{name}: error does not name the block: {err}");
    assert!(
        err.contains("File too large") || err.contains("EFBIG") || err.contains("write"),
        "{name}: error does not name the failed write: {err}"
    );
}

#[test]
fn child_writes_fail() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let backends = [Backend::Copy, Backend::Mmap, Backend::Sendfile, Backend::Splice, Backend::IoUring];
    for (i, b) in backends.into_iter().enumerate() {
        let engine =
            Engine::builder().detect_options(DetectOptions { skip_dpdk: true, ..Default::default() }).force(b).build();
        match engine {
            Ok(e) => check(b.name(), &e.transport().unwrap(), BlockId(i as u64 + 1)),
            Err(e) => common::backend_absent(b, &e),
        }
    }
    #[cfg(feature = "io-uring")]
    match parthenon::transfer::uring::UringTransport::new() {
        Err(e) => common::backend_absent(Backend::IoUring, &e),
        Ok(u) => {
            // Registered buffers on (WRITE_FIXED) when this host's memlock limit allows; the limit
            // test of tests/transfer_fallback.rs covers WRITE without them.
            println!("io-uring registered buffers: {}", u.registered_buffers());
            check("io-uring (own transport)", &u, BlockId(9));
            // Through the page cache even where the file system offers O_DIRECT: the write itself
            // fails (with O_DIRECT the up-front allocation already does), while a RECV may wait.
            let buffered = parthenon::transfer::uring::UringTransport::new().unwrap().direct_writes(false);
            check("io-uring (page cache)", &buffered, BlockId(10));
        }
    }
    println!("CHILD-OK");
}

const FULL_CHILD_ENV: &str = "PARTHENON_FULL_FS_CHILD";

/// A file system with no room for the block (a 2 MiB tmpfs, in a mount namespace of a child
/// process) fails a receive with an error naming the block, on every stream backend, and leaves
/// nothing behind. Finding: the `mmap` receiver sized its temp file (a hole) and read the socket
/// into a mapping of it, so a full file system surfaced as `EFAULT` ("Bad address") from the
/// read, an error that does not say what happened (and a write by user space into such a
/// mapping gets `SIGBUS`); now the blocks are allocated first and the error is `ENOSPC`.
#[test]
fn receive_into_a_full_file_system_is_an_error_not_a_signal() {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["child_file_system_full", "--exact", "--nocapture", "--test-threads=1"]).env(FULL_CHILD_ENV, "1");
    // SAFETY: the closure only calls unshare (async-signal-safe) and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    // Killed after `common::CHILD_LIMIT` if it hangs.
    let out = match common::output_within(&mut cmd) {
        Ok(o) => o,
        Err(e) => {
            // A mount namespace needs CAP_SYS_ADMIN: CI runs as root, where this must work.
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI: cannot make a mount namespace: {e}");
            eprintln!("skip: cannot make a mount namespace: {e}");
            return;
        }
    };
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    forward_skips(&text);
    assert!(out.status.success(), "child failed or was killed ({:?}):\n{text}", out.status);
    assert!(text.contains("CHILD-OK"), "child did not run its checks:\n{text}");
}

#[test]
fn child_file_system_full() {
    if std::env::var_os(FULL_CHILD_ENV).is_none() {
        return;
    }
    let dir = TempDir::new("fullfs");
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    let target = c(dir.path().to_str().unwrap());
    // SAFETY: mount(2) with valid NUL-terminated strings; this process is alone in its mount
    // namespace (made private first, so nothing propagates back to the parent's).
    unsafe {
        assert_eq!(
            libc::mount(
                std::ptr::null(),
                c("/").as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null()
            ),
            0,
            "make mounts private: {}",
            std::io::Error::last_os_error()
        );
        let opts = c("size=2m");
        assert_eq!(
            libc::mount(c("tmpfs").as_ptr(), target.as_ptr(), c("tmpfs").as_ptr(), 0, opts.as_ptr().cast()),
            0,
            "mount a 2 MiB tmpfs: {}",
            std::io::Error::last_os_error()
        );
    }
    let backends = [Backend::Copy, Backend::Mmap, Backend::Sendfile, Backend::Splice, Backend::IoUring];
    for (i, b) in backends.into_iter().enumerate() {
        let engine =
            Engine::builder().detect_options(DetectOptions { skip_dpdk: true, ..Default::default() }).force(b).build();
        let engine = match engine {
            Ok(engine) => engine,
            Err(e) => {
                common::backend_absent(b, &e);
                continue;
            }
        };
        let rx = engine.transport().unwrap();
        let id = BlockId(i as u64 + 1);
        let root = dir.path().join(b.name());
        let err = failed_receive_in(&root, &rx, id, Peer::Whole);
        println!("{b}: {err}");
        assert!(err.contains(&format!("block {id}")), "{b}: error does not name the block: {err}");
        assert!(
            err.contains("No space left") || err.contains("ENOSPC"),
            "{b}: error does not say the file system is full: {err}"
        );
        let _ = std::fs::remove_dir_all(&root);
    }
    // SAFETY: unmounts the tmpfs mounted above, which nothing uses any more.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    println!("CHILD-OK");
}

/// The child's skip lines (`common::backend_absent`), which the harness would hide in the
/// captured output of a passing test, again on the parent's stderr.
fn forward_skips(child_output: &str) {
    for line in child_output.lines().filter(|l| l.starts_with("skip")) {
        common::say(&format!("child: {line}"));
    }
}
