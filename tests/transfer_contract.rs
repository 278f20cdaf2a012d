//! One contract, every stream backend present: byte-exact transfer of sizes 0, 1, 4095, 4096,
//! 1 MiB + 7 and 64 MiB over loopback TCP, into a store and into memory, and rejection of
//! tampered, truncated, oversized, duplicated, unexpected and malformed input with nothing
//! partial left behind. On Linux copy, mmap, sendfile and splice must be present; io_uring
//! absent here is skipped with its detection reason (a line on stderr), except under CI (env
//! `CI` set, feature `io-uring`), where its absence fails the tests.

mod common;

use common::{pattern, TempDir};
use parthenon::detect::DetectOptions;
use parthenon::transfer::{
    BlockHeader, BlockId, BlockStore, Digest, Error, Expect, SealedBlock, Transport, HEADER_LEN, MAX_BODY_LEN,
};
use parthenon::{Backend, Engine};
use std::io::Write;
use std::net::TcpStream;
use std::thread;

const SIZES: [usize; 6] = [0, 1, 4095, 4096, (1 << 20) + 7, 64 << 20];

fn engine_for(backend: Backend) -> Option<Engine> {
    match Engine::builder()
        .detect_options(DetectOptions { skip_dpdk: true, ..Default::default() })
        .force(backend)
        .build()
    {
        Ok(e) => Some(e),
        Err(e) => {
            // Copy, mmap, sendfile and splice on Linux, and io_uring under CI: a failure.
            common::backend_absent(backend, &e);
            None
        }
    }
}

/// A sender's store: one block per size, ids = index. Each test builds its own, so the
/// directory is removed when the test ends (a store kept in a `static` is never dropped, and
/// leaked 66 MB of temp files per run).
fn source() -> (TempDir, BlockStore) {
    let dir = TempDir::new("contract-src");
    let store = BlockStore::open(dir.path()).unwrap();
    for (i, &n) in SIZES.iter().enumerate() {
        store.put(BlockId(i as u64), &pattern(n, i as u64 + 1)).unwrap();
    }
    (dir, store)
}

fn pair() -> (TcpStream, TcpStream) {
    common::tcp_pair()
}

/// Nothing partial: the store's tmp dir is empty and `id` is absent.
fn assert_clean(store: &BlockStore, id: BlockId) {
    assert!(!store.contains(id), "block {id} visible after a failed receive");
    let tmp: Vec<_> = std::fs::read_dir(store.root().join("tmp")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(tmp.is_empty(), "temp files left: {tmp:?}");
}

fn run_contract(backend: Backend) {
    let Some(engine) = engine_for(backend) else { return };
    let t = engine.transport().unwrap();
    assert_eq!(t.backend(), backend);
    run_contract_on(Box::new(t), backend, None);
}

/// `method`: whether the 64 MiB send's method is one expected.
fn run_contract_on(t: Box<dyn Transport>, backend: Backend, method: Option<&dyn Fn(&str) -> bool>) {
    let (_src_dir, src) = &source();
    let dst_dir = TempDir::new(&format!("contract-dst-{backend}"));
    let dst = BlockStore::open(dst_dir.path()).unwrap();

    // Byte-exact, every size, into the store; all blocks on one connection.
    let (tx, rx) = pair();
    let t: std::sync::Arc<dyn Transport> = t.into();
    let t2 = t.clone();
    let dst2 = dst.clone();
    let receiver = thread::spawn(move || {
        (0..SIZES.len())
            .map(|i| t2.recv_block(&rx, &dst2, &Expect::block(BlockId(i as u64))).map(|b| b.id()))
            .collect::<Result<Vec<_>, Error>>()
    });
    for (i, &n) in SIZES.iter().enumerate() {
        let b = src.get(BlockId(i as u64)).unwrap();
        let r = t.send_block(&tx, &b).unwrap();
        assert_eq!(r.wire_bytes, (HEADER_LEN + n) as u64);
        if let (Some(expected), true) = (method, n == 64 << 20) {
            assert!(expected(&r.method), "{backend}: 64 MiB sent by `{}`, not a method expected here", r.method);
        }
    }
    receiver.join().unwrap().unwrap();
    for (i, &n) in SIZES.iter().enumerate() {
        let got = dst.get(BlockId(i as u64)).unwrap().read_body().unwrap();
        assert_eq!(got.len(), n, "{backend}: size {n}");
        assert!(got == pattern(n, i as u64 + 1), "{backend}: size {n} differs");
    }

    // Into memory, from the caller's buffer (send_bytes), sizes up to 1 MiB + 7.
    let (tx, rx) = pair();
    let t2 = t.clone();
    let receiver = thread::spawn(move || {
        (0..5).map(|_| t2.recv_to_vec(&rx, &Expect::default())).collect::<Result<Vec<_>, Error>>()
    });
    for (i, &n) in SIZES[..5].iter().enumerate() {
        t.send_bytes(&tx, BlockId(100 + i as u64), &pattern(n, 50 + i as u64)).unwrap();
    }
    for (i, (h, body)) in receiver.join().unwrap().unwrap().into_iter().enumerate() {
        assert_eq!(h.id, BlockId(100 + i as u64));
        assert!(body == pattern(SIZES[i], 50 + i as u64), "{backend}: recv_to_vec size {}", SIZES[i]);
    }

    adversarial(&*t, backend);
}

/// Sends raw `bytes` and returns the receiver's verdict (store receive).
fn feed(t: &dyn Transport, store: &BlockStore, expect: Expect, bytes: Vec<u8>) -> Result<SealedBlock, Error> {
    let (mut tx, rx) = pair();
    let w = thread::spawn(move || {
        let _ = tx.write_all(&bytes);
        // dropping tx closes the stream
    });
    let r = t.recv_block(&rx, store, &expect);
    w.join().unwrap();
    r
}

fn framed(id: u64, body: &[u8]) -> Vec<u8> {
    let mut v = BlockHeader::for_body(BlockId(id), body).encode().to_vec();
    v.extend_from_slice(body);
    v
}

fn adversarial(t: &dyn Transport, backend: Backend) {
    let dir = TempDir::new(&format!("contract-adv-{backend}"));
    let store = BlockStore::open(dir.path()).unwrap();
    let body = pattern(300_000, 9);

    // Tampered: one body bit flipped.
    let mut bytes = framed(1, &body);
    bytes[HEADER_LEN + 123_456] ^= 0x10;
    let e = feed(t, &store, Expect::default(), bytes).unwrap_err();
    assert!(matches!(e, Error::Tampered { block: BlockId(1), .. }), "{backend}: {e}");
    assert!(e.to_string().contains("0000000000000001") && e.to_string().contains("digest mismatch"), "{e}");
    assert_clean(&store, BlockId(1));

    // Header claims a digest of other content (tampered digest).
    let mut h = BlockHeader::for_body(BlockId(2), &body);
    h.digest = Digest::of(b"something else");
    let mut bytes = h.encode().to_vec();
    bytes.extend_from_slice(&body);
    let e = feed(t, &store, Expect::default(), bytes).unwrap_err();
    assert!(matches!(e, Error::Tampered { block: BlockId(2), .. }), "{backend}: {e}");
    assert_clean(&store, BlockId(2));

    // Truncated body.
    let bytes = framed(3, &body)[..HEADER_LEN + 200_000].to_vec();
    let e = feed(t, &store, Expect::default(), bytes).unwrap_err();
    assert!(matches!(e, Error::Truncated { block: BlockId(3), expected: 300_000, got: 200_000 }), "{backend}: {e}");
    assert_clean(&store, BlockId(3));

    // The same two for a body large enough for the receive paths that hash while it lands.
    let big = pattern(5 << 20, 4);
    let mut bytes = framed(21, &big);
    bytes[HEADER_LEN + (4 << 20) + 17] ^= 0x01;
    let e = feed(t, &store, Expect::default(), bytes).unwrap_err();
    assert!(matches!(e, Error::Tampered { block: BlockId(21), .. }), "{backend}: {e}");
    assert_clean(&store, BlockId(21));
    let bytes = framed(22, &big)[..HEADER_LEN + (3 << 20)].to_vec();
    let e = feed(t, &store, Expect::default(), bytes).unwrap_err();
    assert!(
        matches!(e, Error::Truncated { block: BlockId(22), expected: 5_242_880, got: 3_145_728 }),
        "{backend}: {e}"
    );
    assert_clean(&store, BlockId(22));

    // Truncated header; empty stream.
    let e = feed(t, &store, Expect::default(), framed(4, &body)[..10].to_vec()).unwrap_err();
    assert!(matches!(e, Error::TruncatedHeader { got: 10 }), "{backend}: {e}");
    let e = feed(t, &store, Expect::default(), Vec::new()).unwrap_err();
    assert!(matches!(e, Error::Closed), "{backend}: {e}");

    // Oversized: over the receiver's limit, and absurdly large; no body byte is needed.
    let e = feed(t, &store, Expect { id: None, max_len: 299_999 }, framed(5, &body)).unwrap_err();
    assert!(matches!(e, Error::Oversized { block: BlockId(5), length: 300_000, max: 299_999 }), "{backend}: {e}");
    assert_clean(&store, BlockId(5));
    let h = BlockHeader { id: BlockId(6), length: 1 << 40, digest: Digest::of(b"") };
    let e = feed(t, &store, Expect::default(), h.encode().to_vec()).unwrap_err();
    assert!(matches!(e, Error::Oversized { block: BlockId(6), .. }), "{backend}: {e}");
    assert_clean(&store, BlockId(6));
    // A receiver that sets no limit of its own still has the protocol's: lengths whose header +
    // body would overflow 64 bits (or come near) are refused before anything is computed.
    for length in [u64::MAX, u64::MAX - HEADER_LEN as u64 + 1, MAX_BODY_LEN + 1] {
        let h = BlockHeader { id: BlockId(8), length, digest: Digest::of(b"") };
        let e = feed(t, &store, Expect { id: None, max_len: u64::MAX }, h.encode().to_vec()).unwrap_err();
        assert!(
            matches!(e, Error::Oversized { block: BlockId(8), length: l, max: MAX_BODY_LEN } if l == length),
            "{backend}: {e}"
        );
        assert_clean(&store, BlockId(8));
    }

    // Oversized in the other sense: more bytes than announced. The block is whole and accepted;
    // the surplus is not a valid header, so the next receive fails naming why.
    let (mut tx, rx) = pair();
    let mut bytes = framed(7, &body[..1000]);
    bytes.extend_from_slice(&[0xAB; 100]);
    tx.write_all(&bytes).unwrap();
    drop(tx);
    t.recv_block(&rx, &store, &Expect::default()).unwrap();
    let e = t.recv_block(&rx, &store, &Expect::default()).unwrap_err();
    assert!(matches!(e, Error::BadHeader { .. }), "{backend}: {e}");

    // Duplicate: block 7 is stored; a second copy (even different content) is refused.
    let e = feed(t, &store, Expect::default(), framed(7, b"other")).unwrap_err();
    assert!(matches!(e, Error::Duplicate { block: BlockId(7), .. }), "{backend}: {e}");
    assert_eq!(store.get(BlockId(7)).unwrap().read_body().unwrap(), &body[..1000]);

    // Out of order: asked for 8, got 9.
    let e = feed(t, &store, Expect::block(BlockId(8)), framed(9, b"x")).unwrap_err();
    assert!(matches!(e, Error::UnexpectedBlock { expected: BlockId(8), got: BlockId(9) }), "{backend}: {e}");
    assert_clean(&store, BlockId(9));

    // Corrupt header (length bit flipped): the header check catches it.
    let mut bytes = framed(10, b"hello");
    bytes[16] ^= 1;
    let e = feed(t, &store, Expect::default(), bytes).unwrap_err();
    assert!(matches!(e, Error::BadHeader { .. }), "{backend}: {e}");
    assert_clean(&store, BlockId(10));

    // Into memory: tampered and truncated are rejected too.
    let mut bytes = framed(11, &body);
    bytes[HEADER_LEN] ^= 1;
    let (mut tx, rx) = pair();
    thread::spawn(move || tx.write_all(&bytes));
    let e = t.recv_to_vec(&rx, &Expect::default()).unwrap_err();
    assert!(matches!(e, Error::Tampered { block: BlockId(11), .. }), "{backend}: {e}");
    let bytes = framed(12, &body)[..HEADER_LEN + 5].to_vec();
    let (mut tx, rx) = pair();
    thread::spawn(move || tx.write_all(&bytes));
    let e = t.recv_to_vec(&rx, &Expect::default()).unwrap_err();
    assert!(matches!(e, Error::Truncated { block: BlockId(12), .. }), "{backend}: {e}");
}

#[test]
fn contract_copy() {
    run_contract(Backend::Copy);
}

#[test]
fn contract_mmap() {
    run_contract(Backend::Mmap);
}

#[test]
fn contract_sendfile() {
    run_contract(Backend::Sendfile);
}

#[test]
fn contract_splice() {
    run_contract(Backend::Splice);
}

#[test]
fn contract_io_uring() {
    run_contract(Backend::IoUring);
}

/// io_uring with SEND_ZC forced on the loopback peer, so the zero-copy paths (registered
/// buffers when RLIMIT_MEMLOCK allows, else SEND_ZC from the mapping) run the contract too. A
/// process whose locked memory the kernel charges (not root, no CAP_IPC_LOCK) sends zero-copy
/// only from registered buffers, and the ring a send takes may have none (its user's locked
/// memory is one budget for all its rings): there the 64 MiB send may be a plain SEND. The
/// method is matched whole, up to the reasons a ring without registered buffers appends: from
/// registered buffers exactly `io_uring READ_FIXED + linked SEND_ZC (…)`, which a process the
/// kernel does not charge and whose limit holds the buffers always takes; otherwise SEND_ZC
/// from the block mapping where not charged, and plain SEND, saying it is charged, where it is.
#[cfg(feature = "io-uring")]
#[test]
fn contract_io_uring_zero_copy_paths() {
    use parthenon::detect::{memlock_charged, memlock_limit, REGISTERED_BUFFER_BYTES};
    let Some(engine) = engine_for(Backend::IoUring) else { return };
    let t = parthenon::transfer::uring::UringTransport::new().unwrap().zero_copy_on_loopback(true);
    const REGISTERED: &str = "io_uring READ_FIXED + linked SEND_ZC (registered buffers, registered socket)";
    let send_zc = engine.capabilities().io_uring.available().is_some_and(|i| i.opcodes.send_zc);
    let charged = memlock_charged();
    let always_registered = charged.is_none() && memlock_limit().is_none_or(|l| l >= REGISTERED_BUFFER_BYTES);
    let expected = move |m: &str| {
        if !send_zc {
            // Before 6.0; before 5.12 also one send per wait (no IORING_FEAT_NATIVE_WORKERS).
            return m == "io_uring linked SEND (registered socket)"
                || m.starts_with("io_uring sequential SEND (registered socket); one send per wait: ");
        }
        if m == REGISTERED {
            return true;
        }
        match &charged {
            _ if always_registered => false,
            None => {
                m.starts_with(
                    "io_uring linked SEND_ZC from the block mapping (registered socket); registered buffers off: ",
                ) && !m.contains("SEND_ZC refused")
            }
            Some(c) => {
                m.starts_with("io_uring linked SEND (registered socket); registered buffers off: ")
                    && m.ends_with(&format!("; plain SEND, not SEND_ZC, from unregistered memory: charged to {c}"))
            }
        }
    };
    run_contract_on(Box::new(t), Backend::IoUring, Some(&expected));
}

/// A header that announces a large body makes the io_uring receiver with direct writes allocate
/// its temp file only ahead of the bytes that came (one round of slots, 8 MiB), not the whole
/// announced length before any of it: 2 MiB of a body announced as 64 MiB take at most 9 MiB of
/// file. (On a file system without direct I/O the writes go through the page cache and allocate
/// nothing ahead; the bound holds there too.)
#[cfg(feature = "io-uring")]
#[test]
fn io_uring_receive_allocates_only_ahead_of_the_body() {
    use std::os::unix::fs::MetadataExt;
    if engine_for(Backend::IoUring).is_none() {
        return;
    }
    let rx_t = parthenon::transfer::uring::UringTransport::new().unwrap().direct_writes(true);
    let dir = TempDir::new("uring-alloc");
    let store = BlockStore::open(dir.path()).unwrap();
    let h = BlockHeader { id: BlockId(1), length: 64 << 20, digest: Digest::of(b"") };
    let (mut tx, rx) = pair();
    let store2 = store.clone();
    let receiver = thread::spawn(move || rx_t.recv_block(&rx, &store2, &Expect::default()));
    tx.write_all(&h.encode()).unwrap();
    tx.write_all(&pattern(2 << 20, 3)).unwrap();
    // Wait until the temp file holds what was sent (its size, or what is allocated).
    let tmp = store.root().join("tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let meta = loop {
        let files: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
        if let Some(m) = files.first().and_then(|f| f.metadata().ok()) {
            if m.len() >= 2 << 20 {
                break m;
            }
        }
        assert!(std::time::Instant::now() < deadline, "the receive never wrote what was sent: {files:?}");
        thread::sleep(std::time::Duration::from_millis(10));
    };
    let allocated = (meta.blocks() * 512).max(meta.len());
    assert!(allocated <= 9 << 20, "2 MiB received, {allocated} bytes of temp file allocated");
    drop(tx);
    let e = receiver.join().unwrap().unwrap_err();
    assert!(matches!(e, Error::Truncated { block: BlockId(1), .. }), "{e}");
    assert_clean(&store, BlockId(1));
}

/// The io_uring receiver's two file layouts, byte-exact at their edges: with direct writes (where
/// the store's file system offers O_DIRECT, bodies of 1 MiB or more are written in 1 MiB-aligned
/// slots, the first one carrying the header, and an unaligned end goes through the page cache)
/// and through the page cache only. Sizes: just under and at the direct threshold, bodies whose
/// file ends exactly on a slot or a page, one page short of it (only the unaligned end), and more
/// slots than the ring has (slots reused).
#[cfg(feature = "io-uring")]
#[test]
fn io_uring_receive_layouts_byte_exact() {
    if engine_for(Backend::IoUring).is_none() {
        return;
    }
    const MIB: usize = 1 << 20;
    let sizes = [
        MIB - 1,
        MIB,
        2 * MIB - HEADER_LEN,
        2 * MIB - HEADER_LEN + 4095,
        2 * MIB - HEADER_LEN + 4096,
        9 * MIB - HEADER_LEN,
        8 * MIB + 12345,
    ];
    for direct in [true, false] {
        let rx_t = parthenon::transfer::uring::UringTransport::new().unwrap().direct_writes(direct);
        let dir = TempDir::new("uring-layout");
        let store = BlockStore::open(dir.path()).unwrap();
        let (tx, rx) = pair();
        let sender = thread::spawn(move || {
            let copy = parthenon::transfer::copy::CopyTransport;
            for (i, &n) in sizes.iter().enumerate() {
                copy.send_bytes(&tx, BlockId(i as u64), &pattern(n, 70 + i as u64)).unwrap();
            }
        });
        for i in 0..sizes.len() {
            rx_t.recv_block(&rx, &store, &Expect::block(BlockId(i as u64))).unwrap();
        }
        sender.join().unwrap();
        for (i, &n) in sizes.iter().enumerate() {
            let b = store.get(BlockId(i as u64)).unwrap();
            assert!(b.read_body().unwrap() == pattern(n, 70 + i as u64), "direct {direct}: size {n} differs");
            b.verify().unwrap();
        }
        // Six of the sizes are at or above the direct threshold. Where the temp dir's file
        // system offers no direct I/O (tmpfs), the direct layout cannot run: say so, and
        // require it under CI, whose temp dir is on a disk.
        let direct_runs = rx_t.direct_receives();
        if direct && direct_runs == 0 {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI: no receive used O_DIRECT in {} (the direct layout went untested)",
                dir.path().display()
            );
            common::say(&format!(
                "skip: {} offers no direct I/O; the direct layout was not exercised",
                dir.path().display()
            ));
        } else {
            assert_eq!(direct_runs, if direct { 6 } else { 0 }, "direct {direct}");
        }
        // A receive that fails (a tampered 2 MiB body, written the same way) is not counted.
        let (mut tx, rx) = pair();
        let id = BlockId(100);
        let sender = thread::spawn(move || {
            tx.write_all(&BlockHeader::for_body(id, &pattern(2 * MIB, 1)).encode()).unwrap();
            tx.write_all(&pattern(2 * MIB, 2)).unwrap();
        });
        let err = rx_t.recv_block(&rx, &store, &Expect::block(id)).unwrap_err();
        sender.join().unwrap();
        assert!(matches!(err, Error::Tampered { .. }), "direct {direct}: {err}");
        assert_clean(&store, id);
        assert_eq!(rx_t.direct_receives(), direct_runs, "direct {direct}: a failed receive was counted");
    }
}

/// Every sender backend interoperates with every receiver backend (same wire format).
#[test]
fn backends_interoperate() {
    let backends: Vec<(Backend, Engine)> =
        [Backend::Copy, Backend::Mmap, Backend::Sendfile, Backend::Splice, Backend::IoUring]
            .into_iter()
            .filter_map(|b| engine_for(b).map(|e| (b, e)))
            .collect();
    let (_d, src) = &source();
    let block = src.get(BlockId(4)).unwrap(); // 1 MiB + 7
    for (sb, se) in &backends {
        for (rb, re) in &backends {
            let dir = TempDir::new("interop");
            let dst = BlockStore::open(dir.path()).unwrap();
            let (tx, rx) = pair();
            let rt = re.transport().unwrap();
            let dst2 = dst.clone();
            let h = thread::spawn(move || rt.recv_block(&rx, &dst2, &Expect::default()).map(|b| b.id()));
            se.transport().unwrap().send_block(&tx, &block).unwrap();
            assert_eq!(h.join().unwrap().unwrap(), BlockId(4), "{sb} -> {rb}");
            dst.get(BlockId(4)).unwrap().verify().unwrap();
        }
    }
}

/// The auto router: small blocks by copy, the rest by the routed backend; the report says so.
#[test]
fn auto_routes_by_size_and_reports_why() {
    let engine =
        Engine::builder().detect_options(DetectOptions { skip_dpdk: true, ..Default::default() }).build().unwrap();
    let t = engine.transport().unwrap();
    let report = t.report();
    let text = report.to_string();
    println!("{text}");
    if t.backend() != Backend::Copy {
        assert!(report.size_refinement);
        assert_eq!(t.choose(100).0.backend(), Backend::Copy);
        assert_eq!(t.choose(64 << 20).0.backend(), t.backend());
        if t.backend() == Backend::IoUring {
            let (a, _b) = pair();
            let (chosen, why) = t.choose_for(&a, 64 << 20);
            assert_eq!(chosen.backend(), Backend::Sendfile, "{why}");
            assert!(why.contains("loopback"), "{why}");
            assert!(text.contains("loopback peer -> sendfile"), "{text}");
        }
        let small = format!("wire size < {} B -> copy", report.policy.small_block_max);
        assert!(text.contains(&small), "{text}");
        // Through the router as well as by `choose`: a block below the threshold goes by copy.
        let dir = TempDir::new("route-small");
        let store = BlockStore::open(dir.path()).unwrap();
        let small_block = store.put(BlockId(77), b"a small block").unwrap();
        let (a, b) = pair();
        let sent = t.send_block(&a, &small_block).unwrap();
        assert_eq!(sent.backend, Backend::Copy, "{}", sent.method);
        drop(b);
        assert!(report.receive.starts_with(t.backend().name()), "{}", report.receive);
        assert!(text.contains(&format!("receive: {}", report.receive)), "{text}");
    }
    // Byte-exact through the router, small and large.
    let (_d, src) = &source();
    let dir = TempDir::new("auto");
    let dst = BlockStore::open(dir.path()).unwrap();
    let (tx, rx) = pair();
    let t = std::sync::Arc::new(t);
    let t2 = t.clone();
    let dst2 = dst.clone();
    let h = thread::spawn(move || {
        for _ in 0..3 {
            t2.recv_block(&rx, &dst2, &Expect::default()).unwrap();
        }
    });
    for i in [1u64, 3, 4] {
        t.send_block(&tx, &src.get(BlockId(i)).unwrap()).unwrap();
    }
    h.join().unwrap();
    for i in [1u64, 3, 4] {
        dst.get(BlockId(i)).unwrap().verify().unwrap();
    }
}

/// A forced backend the build or the machine lacks is an error naming the reason.
#[test]
fn forcing_absent_transfer_backend_is_an_error() {
    let e = Engine::builder()
        .detect_options(DetectOptions { skip_dpdk: true, ..Default::default() })
        .force(Backend::Dpdk)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("dpdk") && e.to_string().contains("skipped"), "{e}");
}

/// With `copy` forbidden there is no small-block class, but the loopback rule still applies
/// (`choose_for`), and the report says so. Finding: the report then read "all sizes ->
/// io-uring" while a send to a loopback peer went by sendfile.
#[test]
fn the_report_names_the_loopback_rule_without_the_small_block_class() {
    let engine = Engine::builder()
        .detect_options(DetectOptions { skip_dpdk: true, ..Default::default() })
        .forbid(Backend::Copy)
        .build()
        .unwrap();
    let t = engine.transport().unwrap();
    let report = t.report();
    let text = report.to_string();
    println!("{text}");
    assert!(!text.contains("-> copy"), "{text}");
    let dir = TempDir::new("route-loopback");
    let store = BlockStore::open(dir.path()).unwrap();
    let block = store.put(BlockId(78), &pattern(1 << 20, 3)).unwrap();
    let (a, b) = pair();
    let rx = thread::spawn(move || {
        let dir = TempDir::new("route-loopback-rx");
        let dst = BlockStore::open(dir.path()).unwrap();
        parthenon::transfer::copy::CopyTransport.recv_block(&b, &dst, &Expect::default()).map(|s| s.id())
    });
    let sent = t.send_block(&a, &block).unwrap();
    assert_eq!(rx.join().unwrap().unwrap(), BlockId(78));
    if t.backend() == Backend::IoUring && text.contains("loopback") {
        assert!(report.size_refinement, "{text}");
        assert!(text.contains("all sizes to a loopback peer -> sendfile"), "{text}");
        assert_eq!(sent.backend, Backend::Sendfile, "{}", sent.method);
    } else {
        assert_eq!(sent.backend, t.backend(), "{}", sent.method);
    }
}
