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
use parthenon::transfer::{BlockHeader, BlockId, BlockStore, Error, Expect, Transport};
use parthenon::{Backend, Engine};
use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The socket timeout the tests set.
const TIMEOUT: Duration = Duration::from_millis(300);
/// How long a backend may take to give up (the timeout, a cancellation, a reset, a busy host).
const GIVE_UP_WITHIN: Duration = Duration::from_secs(30);

fn transports() -> Vec<(String, Box<dyn Transport>)> {
    let mut out: Vec<(String, Box<dyn Transport>)> = Vec::new();
    for backend in [Backend::Copy, Backend::Mmap, Backend::Sendfile, Backend::Splice, Backend::IoUring] {
        match Engine::builder()
            .detect_options(DetectOptions { skip_dpdk: true, ..Default::default() })
            .force(backend)
            .build()
        {
            Ok(e) => out.push((backend.to_string(), Box::new(e.transport().unwrap()))),
            Err(e) => println!("skip {backend}: {e}"),
        }
    }
    #[cfg(feature = "io-uring")]
    if let Ok(t) = parthenon::transfer::uring::UringTransport::new() {
        // SEND_ZC on the loopback peer: zero-copy pages held by a peer that reads nothing.
        out.push(("io-uring (SEND_ZC)".into(), Box::new(t.zero_copy_on_loopback(true))));
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
        drop(s);
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
