//! The datagram protocol without DPDK: over an in-process link (with loss, corruption,
//! duplication and reordering) and over UDP on loopback. Byte-exact for the contract sizes,
//! MTU discovery finds the path MTU, compression is chosen by entropy, and malformed input is
//! rejected naming the block and the reason.

mod common;

use common::datagram::{aborts, block_frames, feed, feed_config, feed_with, frame, frame_of, CHUNK};
use common::{pattern, TempDir};
use parthenon::transfer::datagram::frame::{Codec, Descriptor, Kind};
use parthenon::transfer::datagram::{
    Compression, DatagramConfig, DatagramReceiver, DatagramSender, Impairments, Link, MemLink, UdpLink,
};
use parthenon::transfer::wire::{BlockHeader, Digest, MAX_BODY_LEN};
use parthenon::transfer::{BlockId, BlockStore, Error, Expect, MAX_BLOCK_BYTES};
use std::thread;
use std::time::Duration;

const SIZES: [usize; 6] = [0, 1, 4095, 4096, (1 << 20) + 7, 64 << 20];

fn run<L: Link + 'static>(mut a: L, mut b: L, blocks: Vec<(u64, Vec<u8>)>, cfg: DatagramConfig) -> Vec<u64> {
    let n = blocks.len();
    let expect: Vec<(u64, Vec<u8>)> = blocks.clone();
    let rx = thread::spawn(move || {
        let mut r = DatagramReceiver::new(cfg);
        let got = (0..n).map(|_| r.recv_block(&mut b, &Expect::default()).unwrap()).collect::<Vec<_>>();
        // Confirm again if the sender missed the last DONE.
        r.linger(&mut b, Duration::from_millis(300)).unwrap();
        got
    });
    let s = DatagramSender::new(cfg);
    let mut resent = Vec::new();
    for (id, body) in &blocks {
        let rep = s.send_block(&mut a, BlockId(*id), body).unwrap();
        resent.push(rep.resent);
    }
    let got = rx.join().unwrap();
    for ((h, body), (id, want)) in got.iter().zip(&expect) {
        assert_eq!(h.id, BlockId(*id));
        assert!(body == want, "block {id} ({} bytes) differs", want.len());
    }
    resent
}

#[test]
fn mem_link_byte_exact_all_sizes_with_mtu_discovery() {
    let (a, b) = MemLink::pair(
        9000,
        Impairments { mtu: 1500, ..Default::default() },
        Impairments { mtu: 1500, ..Default::default() },
    );
    let blocks: Vec<(u64, Vec<u8>)> =
        SIZES.iter().enumerate().map(|(i, &n)| (i as u64, pattern(n, i as u64))).collect();
    let mut a = a;
    let s = DatagramSender::default();
    let mut b2 = b;
    // Discover against a receiver thread that answers probes.
    let h = thread::spawn(move || {
        let mut r = DatagramReceiver::default();
        r.linger(&mut b2, Duration::from_millis(300)).unwrap();
        b2
    });
    assert_eq!(s.mtu.discover(&mut a, &s.config).unwrap(), 1500);
    assert_eq!(s.mtu.get(&a.peer()), Some(1500), "cached per peer");
    let b = h.join().unwrap();
    run(a, b, blocks, DatagramConfig::default());
}

#[test]
fn mem_link_repairs_loss_corruption_duplicates_reordering() {
    let imp = Impairments { mtu: 0, drop_every: 7, corrupt_every: 11, duplicate_every: 5, reorder_every: 3 };
    let back = Impairments { drop_every: 4, ..Default::default() };
    // One thread, and frames checked on helpers while the receiving thread reads on.
    for hash_threads in [1, 3] {
        let (a, b) = MemLink::pair(1500, imp, back);
        let blocks = vec![(1, pattern(300_000, 1)), (2, pattern(4095, 2)), (3, pattern((1 << 20) + 7, 3))];
        let resent = run(a, b, blocks, DatagramConfig { hash_threads, ..Default::default() });
        assert!(resent.iter().sum::<u64>() > 0, "losses must have been repaired by resends");
    }
}

/// A `block_timeout` or `probe_timeout` too long to add to the clock (`Duration::MAX`, a natural
/// "no limit") means no limit, on either side: nothing overflows.
#[test]
fn unbounded_timeouts_do_not_overflow() {
    let cfg = DatagramConfig {
        block_timeout: Duration::MAX,
        probe_timeout: Duration::MAX,
        compression: Compression::Off,
        ..Default::default()
    };
    let (a, b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    run(a, b, vec![(1, pattern(100_000, 1)), (2, pattern(3000, 2))], cfg);
}

#[test]
fn compression_by_entropy() {
    let (a, b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    let text = b"block transfer, compressible text. ".repeat(30_000);
    let noise = pattern(1 << 20, 5);
    let mut a = a;
    let mut b = b;
    let (t2, n2) = (text.clone(), noise.clone());
    let h = thread::spawn(move || {
        let mut r = DatagramReceiver::default();
        let x = r.recv_block(&mut b, &Expect::default()).unwrap();
        let y = r.recv_block(&mut b, &Expect::default()).unwrap();
        assert!(x.1 == t2 && y.1 == n2);
    });
    let s = DatagramSender::new(DatagramConfig { compression: Compression::Auto, ..Default::default() });
    let r1 = s.send_block(&mut a, BlockId(1), &text).unwrap();
    let r2 = s.send_block(&mut a, BlockId(2), &noise).unwrap();
    h.join().unwrap();
    assert_eq!(r1.codec, Codec::Lz4);
    assert!(r1.payload_bytes * 4 < r1.raw_bytes, "{r1:?}");
    assert_eq!(r2.codec, Codec::None);
}

#[test]
fn udp_loopback_byte_exact() {
    let sa = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sb = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sa.connect(sb.local_addr().unwrap()).unwrap();
    sb.connect(sa.local_addr().unwrap()).unwrap();
    for s in [&sa, &sb] {
        let fd = std::os::fd::AsRawFd::as_raw_fd(s);
        let size: libc::c_int = 32 << 20;
        // SAFETY: setsockopt with a valid int option value. Best effort (FORCE needs CAP_NET_ADMIN).
        unsafe {
            let p = &size as *const libc::c_int as *const libc::c_void;
            let l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, p, l) != 0 {
                libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, p, l);
            }
        }
    }
    let blocks: Vec<(u64, Vec<u8>)> =
        SIZES.iter().enumerate().map(|(i, &n)| (i as u64, pattern(n, i as u64 + 40))).collect();
    let cfg = DatagramConfig { max_rounds: 500, ..Default::default() };
    run(UdpLink::new(sa).unwrap(), UdpLink::new(sb).unwrap(), blocks, cfg);
}

/// Into a store, as the stream backends receive: byte-exact for the contract sizes, visible only
/// whole and verified, stored before the sender is told it arrived; a tampered block leaves
/// nothing behind, and a block already stored is a duplicate, refused to the sender too.
#[test]
fn mem_link_into_store_byte_exact_and_nothing_partial() {
    let (mut a, mut b) = MemLink::pair(9000, Impairments::default(), Impairments::default());
    let dir = TempDir::new("dgram-store");
    let store = BlockStore::open(dir.path()).unwrap();
    let bodies: Vec<Vec<u8>> = SIZES.iter().enumerate().map(|(i, &n)| pattern(n, i as u64 + 40)).collect();
    let n = bodies.len();
    let store2 = store.clone();
    let rx = thread::spawn(move || {
        let mut r = DatagramReceiver::default();
        for i in 0..n {
            let got = r.recv_block_to_store(&mut b, &store2, &Expect::block(BlockId(i as u64))).unwrap();
            assert_eq!(got.id(), BlockId(i as u64));
        }
        // Block 1 again: refused at its first frame (already stored), and the sender is told why.
        let e = r.recv_block_to_store(&mut b, &store2, &Expect::default()).unwrap_err();
        assert!(matches!(e, Error::Duplicate { block: BlockId(1), .. }), "{e}");
        // What its sender had queued behind that frame, and block 1 sent once more (refused
        // again at once), do not fail the next receive.
        let got = r.recv_block_to_store(&mut b, &store2, &Expect::block(BlockId(7))).unwrap();
        assert_eq!(got.id(), BlockId(7));
        r.linger(&mut b, Duration::from_millis(300)).unwrap();
    });
    let s = DatagramSender::default();
    for (i, body) in bodies.iter().enumerate() {
        s.send_block(&mut a, BlockId(i as u64), body).unwrap();
    }
    for _ in 0..2 {
        let e = s.send_block(&mut a, BlockId(1), &bodies[4]).unwrap_err();
        assert!(
            matches!(e, Error::RefusedByPeer { block: BlockId(1), .. }) && e.to_string().contains("duplicate"),
            "{e}"
        );
    }
    s.send_block(&mut a, BlockId(7), &bodies[4]).unwrap();
    rx.join().unwrap();
    for (i, body) in bodies.iter().enumerate() {
        let b = store.get(BlockId(i as u64)).unwrap();
        assert!(&b.read_body().unwrap() == body, "size {} differs", body.len());
        b.verify().unwrap();
    }
    assert!(store.get(BlockId(7)).unwrap().read_body().unwrap() == bodies[4]);

    // Tampered (valid frame checks, wrong digest): an error naming the block, nothing stored.
    let (mut a, mut b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    let body = pattern(5000, 7);
    let mut bad = body.clone();
    bad[4321] ^= 1;
    let cfg = DatagramConfig { resend_timeout: Duration::from_millis(5), max_rounds: 5, ..Default::default() };
    let store2 = store.clone();
    let h = thread::spawn(move || DatagramReceiver::new(cfg).recv_block_to_store(&mut b, &store2, &Expect::default()));
    for f in &block_frames(50, &bad, BlockHeader::for_body(BlockId(50), &body)) {
        a.send(&[f]).unwrap();
    }
    let e = h.join().unwrap().unwrap_err();
    drop(a);
    assert!(matches!(e, Error::Tampered { block: BlockId(50), .. }), "{e}");
    assert!(!store.contains(BlockId(50)));
    let tmp: Vec<_> = std::fs::read_dir(store.root().join("tmp")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(tmp.is_empty(), "temp files left: {tmp:?}");
}

#[test]
fn rejects_tampered_oversized_truncated_conflicting_and_interleaved() {
    let body = pattern(5000, 7);
    // Tampered: valid frame checksums, body changed after the digest was taken.
    let mut bad = body.clone();
    bad[4321] ^= 1;
    let e = feed(block_frames(1, &bad, BlockHeader::for_body(BlockId(1), &body)), Expect::default());
    assert!(matches!(e, Error::Tampered { block: BlockId(1), .. }), "{e}");

    // Oversized.
    let e = feed(block_frames(2, &body, BlockHeader::for_body(BlockId(2), &body)), Expect { id: None, max_len: 4999 });
    assert!(matches!(e, Error::Oversized { block: BlockId(2), length: 5000, max: 4999 }), "{e}");
    // A receiver without a limit of its own still has its in-memory one (max_block_len), and
    // without that the protocol's; a length near u64::MAX overflows nothing on the way to
    // saying so.
    let huge = BlockHeader { length: u64::MAX, ..BlockHeader::for_body(BlockId(2), &body) };
    let any = Expect { id: None, max_len: u64::MAX };
    let e = feed(block_frames(2, &body, huge), any);
    assert!(matches!(e, Error::Oversized { block: BlockId(2), length: u64::MAX, max: MAX_BLOCK_BYTES }), "{e}");
    let open = DatagramConfig { max_block_len: u64::MAX, ..feed_config() };
    let (e, _) = feed_with(block_frames(2, &body, huge), any, open);
    assert!(matches!(e, Error::Oversized { block: BlockId(2), length: u64::MAX, max: MAX_BODY_LEN }), "{e}");

    // Truncated: the last frame never comes.
    let mut f = block_frames(3, &body, BlockHeader::for_body(BlockId(3), &body));
    f.pop();
    let e = feed(f, Expect::default());
    assert!(matches!(e, Error::GaveUp { block: BlockId(3), missing: 1, .. }), "{e}");
    assert!(e.to_string().contains("block 0000000000000003") && e.to_string().contains("missing"), "{e}");

    // Conflicting duplicate.
    let mut f = block_frames(4, &body, BlockHeader::for_body(BlockId(4), &body));
    let mut dup = body[..CHUNK].to_vec();
    dup[0] ^= 0xff;
    f.insert(2, frame(Kind::Data, 4, 1, 6, &dup));
    let e = feed(f, Expect::default());
    assert!(matches!(e, Error::FrameRejected { block: BlockId(4), index: 1, .. }), "{e}");
    assert!(e.to_string().contains("conflicting duplicate"), "{e}");

    // Out of order: a frame of block 6 (another send) while block 5 is incomplete. The receive
    // of block 5 is what ends: its send is refused.
    let mut f = block_frames(5, &body, BlockHeader::for_body(BlockId(5), &body));
    f.truncate(3);
    f.push(frame_of(Kind::Data, 6, 2, 1, 6, &body[..CHUNK]));
    let (e, answers) = feed_with(f, Expect::default(), feed_config());
    assert!(matches!(e, Error::UnexpectedBlock { expected: BlockId(5), got: BlockId(6) }), "{e}");
    let aborts = aborts(&answers);
    assert!(
        aborts.len() == 1 && (aborts[0].0.block, aborts[0].0.attempt) == (BlockId(5), 1),
        "the send of block 5 is refused: {aborts:?}"
    );

    // Index out of range; descriptor lying about its payload length.
    let e = feed(vec![frame(Kind::Data, 7, 9, 3, b"x")], Expect::default());
    assert!(matches!(e, Error::FrameRejected { block: BlockId(7), index: 9, .. }), "{e}");
    let mut h = BlockHeader::for_body(BlockId(8), &body);
    h.digest = Digest::of(b"");
    let d = Descriptor { header: h, payload_len: 100, chunk: 1000, codec: Codec::None };
    let e = feed(vec![frame(Kind::Data, 8, 0, 2, &d.encode())], Expect::default());
    assert!(matches!(e, Error::FrameRejected { block: BlockId(8), index: 0, .. }), "{e}");

    // Unexpected block id.
    let e = feed(block_frames(9, &body, BlockHeader::for_body(BlockId(9), &body)), Expect::block(BlockId(10)));
    assert!(matches!(e, Error::UnexpectedBlock { expected: BlockId(10), got: BlockId(9) }), "{e}");
}

/// What a peer's numbers make a receiver hold in memory is bounded before they are trusted: its
/// limit is at most `max_block_len` (it assembles blocks in memory), a first frame's count
/// allocates nothing before the descriptor, a chunk larger than a frame carries is refused, and
/// room that cannot be had (the payload, a compressed payload's decoded body) is an error naming
/// the block, told to its sender (ABORT): never an abort of the process.
#[test]
fn receiver_bounds_what_a_peers_numbers_make_it_hold() {
    let any = Expect { id: None, max_len: u64::MAX };
    let open = DatagramConfig { max_block_len: u64::MAX, ..feed_config() };
    let refused = |answers: &[(parthenon::transfer::datagram::frame::FrameHeader, Vec<u8>)], id: u64| {
        let a = aborts(answers);
        a.len() == 1 && a[0].0.block == BlockId(id) && a[0].0.attempt == 1
    };
    let out_of_memory = |e: &Error, id: u64| matches!(e, Error::Io { block: Some(b), source, .. } if *b == BlockId(id) && source.kind() == std::io::ErrorKind::OutOfMemory);
    // One 48-byte frame claiming u32::MAX frames: more than a block of max_block_len has.
    let t0 = std::time::Instant::now();
    let claim = || vec![frame(Kind::Data, 1, 1, u32::MAX, &[])];
    let (e, answers) = feed_with(claim(), any, feed_config());
    assert!(
        matches!(&e, Error::FrameRejected { block: BlockId(1), index: 1, reason } if reason.contains("frames cannot carry")),
        "{e}"
    );
    assert!(refused(&answers, 1), "{answers:?}");
    // Where the limit allows that many, the claim costs nothing until a descriptor comes: none
    // does, and the receive gives up on the missing frames after max_rounds (5 × 5 ms). Room
    // for u32::MAX frames, filled and scanned every round, would take seconds.
    let (e, _) = feed_with(claim(), any, open);
    assert!(matches!(e, Error::GaveUp { block: BlockId(1), count: u32::MAX, .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());

    // A descriptor of 2^56 bytes in 2^25 chunks of 2^31: more frames than a block of the
    // in-memory limit has; without that limit, a chunk no frame carries.
    let header = |id: u64, length: u64| BlockHeader { length, ..BlockHeader::for_body(BlockId(id), b"") };
    let d =
        Descriptor { header: header(2, MAX_BODY_LEN), payload_len: MAX_BODY_LEN, chunk: 1 << 31, codec: Codec::None };
    let f = || vec![frame(Kind::Data, 2, 0, (1 << 25) + 1, &d.encode())];
    let e = feed(f(), any);
    assert!(
        matches!(&e, Error::FrameRejected { block: BlockId(2), index: 0, reason } if reason.contains("frames cannot carry")),
        "{e}"
    );
    let (e, answers) = feed_with(f(), any, open);
    assert!(
        matches!(&e, Error::FrameRejected { block: BlockId(2), index: 0, reason } if reason.contains("chunk size")),
        "{e}"
    );
    assert!(refused(&answers, 2), "{answers:?}");

    // The largest chunk and u32::MAX frames: a payload of 2^48 bytes, more than an address
    // space holds, whose room cannot be reserved.
    let len = (u32::MAX as u64 - 1) << 16;
    let d = Descriptor { header: header(3, len), payload_len: len, chunk: 1 << 16, codec: Codec::None };
    let (e, answers) = feed_with(vec![frame(Kind::Data, 3, 0, u32::MAX, &d.encode())], any, open);
    assert!(out_of_memory(&e, 3) && e.to_string().contains("block 0000000000000003"), "{e}");
    assert!(refused(&answers, 3), "{answers:?}");

    // A compressed payload of 100 bytes said to decode into 2^56: the decoded body's room
    // cannot be reserved.
    let d = Descriptor { header: header(4, MAX_BODY_LEN), payload_len: 100, chunk: CHUNK as u32, codec: Codec::Lz4 };
    let f = vec![frame(Kind::Data, 4, 0, 2, &d.encode()), frame(Kind::Data, 4, 1, 2, &[0; 100])];
    let (e, answers) = feed_with(f, any, open);
    assert!(out_of_memory(&e, 4), "{e}");
    assert!(refused(&answers, 4), "{answers:?}");
}
