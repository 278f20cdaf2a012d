//! A peer that stops: every stream backend honours the socket's own timeouts.
//!
//! The node's block server sets a write timeout so that a peer that asks for blocks and then
//! reads nothing cannot hold a serving thread for ever, and sets a read timeout so that a peer
//! that sends half a block and goes quiet cannot hold a receiving one. Each backend must give up
//! within a bounded time, with an error that names the block, and (receiving) leave nothing
//! behind. `sendfile` used to retry the timeout's `EAGAIN` for ever, and io_uring's sends and
//! receives ignore `SO_SNDTIMEO`/`SO_RCVTIMEO` unless the transport bounds its own waits.

mod common;

use common::{pattern, TempDir};
use parthenon::detect::DetectOptions;
use parthenon::transfer::copy::CopyTransport;
use parthenon::transfer::{BlockHeader, BlockId, BlockStore, Error, Expect, Transport};
use parthenon::{Backend, Engine};
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// The socket timeout the tests set.
const TIMEOUT: Duration = Duration::from_millis(300);
/// How long a backend may take to give up (the timeout, a cancellation, a reset, a busy host).
const GIVE_UP_WITHIN: Duration = Duration::from_secs(30);
/// How long an io_uring send may take to give up on a peer that stopped: the timeout with
/// nothing completing, one more for missing zero-copy notifications, one more after the
/// connection reset (module docs of `uring`, "Timeouts"), and room for a busy host.
const URING_GIVES_UP_WITHIN: Duration = Duration::from_millis(3 * 300 + 700);

fn is_uring(name: &str) -> bool {
    name.starts_with("io-uring")
}

fn transports() -> Vec<(String, Box<dyn Transport>)> {
    let mut out: Vec<(String, Box<dyn Transport>)> = Vec::new();
    for backend in [Backend::Copy, Backend::Mmap, Backend::Sendfile, Backend::Splice, Backend::IoUring] {
        match Engine::builder()
            .detect_options(DetectOptions { skip_dpdk: true, ..Default::default() })
            .force(backend)
            .build()
        {
            Ok(e) => out.push((backend.to_string(), Box::new(e.transport().unwrap()))),
            // Copy, mmap, sendfile and splice on Linux, and io_uring under CI: a failure.
            Err(e) => common::backend_absent(backend, &e),
        }
    }
    #[cfg(feature = "io-uring")]
    match parthenon::transfer::uring::UringTransport::new() {
        // SEND_ZC on the loopback peer: zero-copy pages held by a peer that reads nothing.
        Ok(t) => out.push(("io-uring (SEND_ZC)".into(), Box::new(t.zero_copy_on_loopback(true)))),
        Err(e) => {
            assert!(!common::io_uring_required(), "CI: the io-uring (SEND_ZC) variant must run here: {e}");
            common::say(&format!("skip io-uring (SEND_ZC): {e}"));
        }
    }
    out
}

fn pair() -> (TcpStream, TcpStream) {
    common::tcp_pair()
}

/// Runs `f` on a thread and fails the test if it has not returned within [`GIVE_UP_WITHIN`].
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> (T, Duration) {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(GIVE_UP_WITHIN) {
        Ok(v) => (v, start.elapsed()),
        Err(_) => panic!("{what}: still waiting after {GIVE_UP_WITHIN:?} on a peer that stopped"),
    }
}

fn assert_timed_out(what: &str, r: Result<impl std::fmt::Debug, Error>, id: BlockId) {
    let e = r.expect_err(&format!("{what}: succeeded against a peer that stopped"));
    assert_eq!(e.block(), Some(id), "{what}: the error names the block: {e}");
    match &e {
        // The same kind on every backend: a blocking socket's `EAGAIN` is reported as such.
        Error::Io { source, .. } => assert_eq!(source.kind(), std::io::ErrorKind::TimedOut, "{what}: {e}"),
        other => panic!("{what}: not a timeout: {other}"),
    }
    println!("{what}: {e}");
}

#[test]
fn a_send_to_a_peer_that_reads_nothing_times_out() {
    let dir = TempDir::new("timeout-send");
    let store = BlockStore::open(dir.path()).unwrap();
    let id = BlockId(7);
    // Far more than loopback's socket buffers hold.
    store.put(id, &pattern(64 << 20, 7)).unwrap();
    for (name, t) in transports() {
        let block = store.get(id).unwrap();
        let (c, s) = pair();
        c.set_write_timeout(Some(TIMEOUT)).unwrap();
        let (r, took) = within(&name, move || {
            let r = t.send_block(&c, &block).map(drop);
            drop(c);
            r
        });
        assert_timed_out(&name, r, id);
        println!("{name}: gave up after {took:?}");
        if is_uring(&name) {
            assert!(took <= URING_GIVES_UP_WITHIN, "{name}: gave up after {took:?}, more than three timeouts");
        }
        drop(s);
    }
}

/// Fills `c`'s send buffer (and the peer's receive buffer) until a write finds no room, also
/// after the acknowledgements in flight have freed what they free.
fn fill_send_buffer(mut c: &TcpStream) {
    c.set_nonblocking(true).unwrap();
    let chunk = vec![0u8; 64 << 10];
    for _ in 0..50 {
        let mut wrote = 0;
        loop {
            match c.write(&chunk) {
                Ok(n) => wrote += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("fill the send buffer: {e}"),
            }
        }
        if wrote == 0 {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    c.set_nonblocking(false).unwrap();
}

/// A send whose very first wait finds no room on the socket gives up after one timeout. The
/// io_uring send submits its first operations with the same `io_uring_enter` that waits for
/// them, and the kernel then reports the wait's `ETIME` as "submitted so many": taken for a
/// completion, that cost the send a second timeout.
#[test]
fn a_send_into_a_full_socket_gives_up_after_one_timeout() {
    const LONG: Duration = Duration::from_secs(1);
    let dir = TempDir::new("timeout-full");
    let store = BlockStore::open(dir.path()).unwrap();
    let id = BlockId(8);
    store.put(id, &pattern(8 << 20, 8)).unwrap();
    for (name, t) in transports() {
        let block = store.get(id).unwrap();
        let (c, s) = pair();
        fill_send_buffer(&c);
        c.set_write_timeout(Some(LONG)).unwrap();
        let (r, took) = within(&name, move || {
            let r = t.send_block(&c, &block).map(drop);
            drop(c);
            r
        });
        assert_timed_out(&name, r, id);
        println!("{name}: gave up after {took:?}");
        assert!(took < LONG * 17 / 10, "{name}: gave up after {took:?}, not after one timeout of {LONG:?}");
        drop(s);
    }
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Signals that keep interrupting an io_uring send's wait do not keep it waiting: the deadline
/// is renewed by completions only. (A blocking socket call restarts `SO_SNDTIMEO` on each
/// interruption, so the other backends are not held to this.)
#[test]
fn signals_do_not_extend_an_io_uring_send_timeout() {
    // SAFETY: a zeroed `sigaction` is valid; the handler is an `extern "C"` function that does
    // nothing, so it is async-signal-safe; no SA_RESTART, so waits return EINTR.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ignore_signal as *const () as libc::sighandler_t;
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    let dir = TempDir::new("timeout-signals");
    let store = BlockStore::open(dir.path()).unwrap();
    let id = BlockId(10);
    store.put(id, &pattern(64 << 20, 10)).unwrap();
    for (name, t) in transports().into_iter().filter(|(n, _)| is_uring(n)) {
        let block = store.get(id).unwrap();
        let (c, s) = pair();
        c.set_write_timeout(Some(TIMEOUT)).unwrap();
        let (r, took) = within(&name, move || {
            // SAFETY: pthread_self has no preconditions.
            let me = unsafe { libc::pthread_self() };
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            let signaller = thread::spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    // SAFETY: `me` is the sending thread, which joins this thread before it
                    // ends, so it is alive; SIGUSR1 has a handler installed above.
                    unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
                    thread::sleep(Duration::from_millis(20));
                }
            });
            let r = t.send_block(&c, &block).map(drop);
            stop.store(true, Ordering::Relaxed);
            signaller.join().unwrap();
            drop(c);
            r
        });
        assert_timed_out(&name, r, id);
        println!("{name}: gave up after {took:?} under a signal every 20 ms");
        assert!(took <= URING_GIVES_UP_WITHIN, "{name}: gave up after {took:?}, more than three timeouts");
        drop(s);
    }
}

/// A transport whose send timed out sends the next block whole on a new connection: nothing of
/// the abandoned send (a late completion, a notification, a cancellation) is taken for the new
/// one's, on io_uring's pooled ring in particular.
#[test]
fn a_transport_sends_again_after_a_timed_out_send() {
    let dir = TempDir::new("timeout-again");
    let store = BlockStore::open(dir.path()).unwrap();
    let id = BlockId(11);
    let body = pattern(64 << 20, 11);
    store.put(id, &body).unwrap();
    let body = Arc::new(body);
    for (name, t) in transports() {
        let t: Arc<dyn Transport> = t.into();
        let (c, s) = pair();
        c.set_write_timeout(Some(TIMEOUT)).unwrap();
        let (t1, block) = (t.clone(), store.get(id).unwrap());
        let (r, _) = within(&name, move || {
            let r = t1.send_block(&c, &block).map(drop);
            drop(c);
            r
        });
        assert_timed_out(&name, r, id);
        drop(s);

        let (c, s) = pair();
        c.set_write_timeout(Some(GIVE_UP_WITHIN)).unwrap();
        s.set_read_timeout(Some(GIVE_UP_WITHIN)).unwrap();
        let want = body.clone();
        let reader = thread::spawn(move || {
            let (h, got) = CopyTransport.recv_to_vec(&s, &Expect::block(id)).expect("receive the second send");
            assert_eq!(h.length, want.len() as u64);
            assert!(got == *want, "the second send's body differs");
        });
        let block = store.get(id).unwrap();
        let (r, _) = within(&name, move || t.send_block(&c, &block).map(drop));
        r.unwrap_or_else(|e| panic!("{name}: second send after a timed-out one: {e}"));
        reader.join().unwrap();
        println!("{name}: sent again after a timed-out send");
    }
}

#[test]
fn a_receive_from_a_peer_that_goes_quiet_times_out_and_leaves_nothing() {
    let id = BlockId(9);
    let body = pattern(4 << 20, 9);
    for (name, t) in transports() {
        let dir = TempDir::new("timeout-recv");
        let store = BlockStore::open(dir.path()).unwrap();
        let (mut c, s) = pair();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        // The header and a little over a megabyte of the body, then nothing (the connection
        // stays open).
        c.write_all(&BlockHeader::for_body(id, &body).encode()).unwrap();
        c.write_all(&body[..(1 << 20) + 10]).unwrap();
        let st = store.clone();
        let (r, took) = within(&name, move || {
            let r = t.recv_block(&s, &st, &Expect::default()).map(drop);
            drop(s);
            r
        });
        assert_timed_out(&name, r, id);
        println!("{name}: gave up after {took:?}");
        assert!(!store.contains(id), "{name}: block visible after a failed receive");
        let tmp: Vec<_> = std::fs::read_dir(store.root().join("tmp")).unwrap().flatten().map(|e| e.path()).collect();
        assert!(tmp.is_empty(), "{name}: temp files left: {tmp:?}");
        drop(c);
    }
}
