//! Helpers shared by integration tests.
#![allow(dead_code)]

pub mod datagram;
pub mod seccomp;
pub mod vectors;

use std::path::PathBuf;
use std::process::{Child, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "parthenon-test-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failing size reproduces.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A connected loopback TCP pair: (the connecting side, the accepted side).
pub fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = l.local_addr().expect("local address");
    let c = std::thread::spawn(move || std::net::TcpStream::connect(addr).expect("connect"));
    let (s, _) = l.accept().expect("accept");
    (c.join().expect("connect thread"), s)
}

/// Writes `line` to stderr unbuffered: the test harness captures `println!` and `eprintln!`, so a
/// passing test would hide a skip said that way.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// Whether io_uring must be present: under CI (env `CI` set) with feature `io-uring`, a test
/// meant to run on it may not skip.
pub fn io_uring_required() -> bool {
    cfg!(feature = "io-uring") && std::env::var_os("CI").is_some()
}

/// A forced stream `backend` could not be built (`why`). On Linux copy, mmap, sendfile and splice
/// are always there, and io_uring is where [`io_uring_required`]: their absence fails the test.
/// Any other absence is a skip, said on stderr ([`say`]).
pub fn backend_absent(backend: parthenon::Backend, why: &dyn std::fmt::Display) {
    use parthenon::Backend;
    let always = matches!(backend, Backend::Copy | Backend::Mmap | Backend::Sendfile | Backend::Splice);
    assert!(!(cfg!(target_os = "linux") && always), "{backend} must be present on Linux: {why}");
    assert!(!(backend == Backend::IoUring && io_uring_required()), "CI: the io-uring backend must run here: {why}");
    say(&format!("skip {backend}: {why}"));
}

/// Waits for `child` (spawned with piped stdout and stderr) and collects its output; kills it
/// (SIGKILL) if it has not exited within `limit`, so a child that hangs fails its test instead of
/// hanging it. Returns the output (what was read of it, for a killed child whose own children
/// keep its pipes open) and whether it was killed.
pub fn wait_within(mut child: Child, limit: Duration) -> std::io::Result<(Output, bool)> {
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    type Drain = (Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>);
    fn drain(pipe: Option<impl Read + Send + 'static>) -> Drain {
        let got = Arc::new(Mutex::new(Vec::new()));
        let into = got.clone();
        let reader = std::thread::spawn(move || {
            let Some(mut pipe) = pipe else { return };
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                into.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&buf[..n]);
            }
        });
        (got, reader)
    }
    let drains = [drain(child.stdout.take()), drain(child.stderr.take())];
    let started = Instant::now();
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if !killed && started.elapsed() >= limit {
            // Not reaped yet (`try_wait` just said so), so the pid is still this child's.
            child.kill()?;
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The pipes end with the child, unless a child of its own still holds them.
    let until = Instant::now() + Duration::from_secs(5);
    while drains.iter().any(|(_, r)| !r.is_finished()) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let [stdout, stderr] = drains.map(|(got, _)| std::mem::take(&mut *got.lock().unwrap_or_else(|e| e.into_inner())));
    Ok((Output { status, stdout, stderr }, killed))
}

/// How long a child process a test runs may take before [`output_within`] kills it.
pub const CHILD_LIMIT: Duration = Duration::from_secs(120);

/// [`std::process::Command::output`], except that a child still running after [`CHILD_LIMIT`] is
/// killed and fails the test (the panic shows what it printed) instead of hanging it.
pub fn output_within(cmd: &mut std::process::Command) -> std::io::Result<Output> {
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn()?;
    let (out, killed) = wait_within(child, CHILD_LIMIT)?;
    let text = || format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!killed, "{cmd:?} hung: killed after {CHILD_LIMIT:?}; it printed:\n{}", text());
    Ok(out)
}
