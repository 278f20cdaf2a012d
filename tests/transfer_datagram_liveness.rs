//! The datagram protocol's liveness against hostile and slow peers: a sender learns why a
//! receiver refused, reads only the answers to its own attempt, bounds what NACKs make it resend,
//! keeps its deadline within long passes, waits for a live slow receiver and ends a send to a
//! dead one; a receiver's deadlines run from useful frames only, and what it keeps before the
//! descriptor is bounded. Byte-exact delivery and input rejection are in `transfer_datagram.rs`.

mod common;

use common::datagram::{aborts, answers, block_frames, block_frames_of, feed, frame, frame_of, CHUNK};
use common::{pattern, TempDir};
use parthenon::transfer::datagram::frame::{FrameHeader, Kind};
use parthenon::transfer::datagram::{
    Compression, DatagramConfig, DatagramReceiver, DatagramSender, Impairments, Link, MemLink,
};
use parthenon::transfer::wire::BlockHeader;
use parthenon::transfer::{BlockId, BlockStore, Error, Expect};
use std::thread;
use std::time::Duration;

/// The sender of a refused block learns why; the frames it had queued behind the refused one do
/// not start (and fail) the receiver's next receive.
#[test]
fn sender_learns_why_receiver_refused() {
    let (mut a, mut b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    let h = thread::spawn(move || {
        let mut r = DatagramReceiver::default();
        let refused = r.recv_block(&mut b, &Expect { id: None, max_len: 1000 });
        let next = r.recv_block(&mut b, &Expect::default());
        r.linger(&mut b, Duration::from_millis(300)).unwrap();
        (refused, next)
    });
    let s = DatagramSender::default();
    let e = s.send_block(&mut a, BlockId(3), &pattern(5000, 1)).unwrap_err();
    assert!(matches!(e, Error::RefusedByPeer { block: BlockId(3), .. }) && e.to_string().contains("oversized"), "{e}");
    s.send_block(&mut a, BlockId(4), &pattern(5000, 2)).unwrap();
    let (refused, next) = h.join().unwrap();
    assert!(matches!(refused, Err(Error::Oversized { .. })), "{refused:?}");
    assert_eq!(next.unwrap(), (BlockHeader::for_body(BlockId(4), &pattern(5000, 2)), pattern(5000, 2)));
}

/// A copy of a refused send's descriptor (its sender repeats it while the receiver checks the
/// digest and stores the block, until it hears the ABORT) does not start the next receive: it is
/// refused again, answering the same send with the same reason, and the receive goes on waiting.
/// A new send of the block (another attempt) is received.
#[test]
fn a_refused_sends_descriptor_does_not_start_the_next_receive() {
    let body = pattern(5000, 60);
    let header = BlockHeader::for_body(BlockId(60), &body);
    let mut bad = body.clone();
    bad[4321] ^= 1;
    let mut f = block_frames(60, &bad, header);
    f.push(f[0].clone());
    let (mut a, mut b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    for x in &f {
        a.send(&[x]).unwrap();
    }
    let cfg = DatagramConfig {
        resend_timeout: Duration::from_millis(5),
        max_rounds: 5,
        idle_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let mut r = DatagramReceiver::new(cfg);
    let e = r.recv_block(&mut b, &Expect::default()).unwrap_err();
    assert!(matches!(e, Error::Tampered { block: BlockId(60), .. }), "{e}");
    let e = r.recv_block(&mut b, &Expect::default()).unwrap_err();
    assert!(matches!(&e, Error::Timeout { block: None, what } if what.contains("no block arrived")), "{e}");
    let aborts = aborts(&answers(&mut a));
    assert_eq!(aborts.len(), 2, "{aborts:?}");
    for (h, reason) in &aborts {
        assert_eq!((h.block, h.attempt), (BlockId(60), 1), "{h:?}");
        assert!(reason.contains("digest mismatch"), "{reason}");
    }
    assert_eq!(aborts[0].1, aborts[1].1);

    // A new send of the block: received.
    for x in &block_frames_of(60, 2, &body, header) {
        a.send(&[x]).unwrap();
    }
    assert_eq!(r.recv_block(&mut b, &Expect::default()).unwrap(), (header, body));
}

/// Frames of another block while one is being assembled end the receive of the one being
/// assembled (`UnexpectedBlock`): its sender is told (ABORT of that block, answering its send),
/// and its frames queued behind do not start the next receive; the interleaved block's sender is
/// not refused, and its frames start the next receive.
#[test]
fn an_interleaved_block_ends_the_receive_of_the_block_being_assembled() {
    let body = pattern(5000, 61);
    let h5 = BlockHeader::for_body(BlockId(5), &body);
    let h6 = BlockHeader::for_body(BlockId(6), &body);
    let five = block_frames_of(5, 1, &body, h5);
    let six = block_frames_of(6, 2, &body, h6);
    let (mut a, mut b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    // Block 5's descriptor and first two frames, then a frame of block 6, then the rest of 5.
    for x in five[..3].iter().chain([&six[1]]).chain(&five[3..]) {
        a.send(&[x]).unwrap();
    }
    let cfg = DatagramConfig { resend_timeout: Duration::from_millis(5), max_rounds: 5, ..Default::default() };
    let mut r = DatagramReceiver::new(cfg);
    let e = r.recv_block(&mut b, &Expect::default()).unwrap_err();
    assert!(matches!(e, Error::UnexpectedBlock { expected: BlockId(5), got: BlockId(6) }), "{e}");
    let aborts = aborts(&answers(&mut a));
    assert_eq!(aborts.len(), 1, "{aborts:?}");
    assert_eq!((aborts[0].0.block, aborts[0].0.attempt), (BlockId(5), 1), "{aborts:?}");
    assert!(aborts[0].1.contains("unexpected"), "{aborts:?}");

    // Block 6's sender goes on: its frames are received next.
    for x in &six {
        a.send(&[x]).unwrap();
    }
    assert_eq!(r.recv_block(&mut b, &Expect::default()).unwrap(), (h6, body));
}

/// The frames a refused send's sender had queued, delivered late (behind the first frames of
/// the next block), do not end the next block's receive: they are dropped, as they are while no
/// block is being received. A frame of another send of the refused block still would.
#[test]
fn a_refused_sends_late_frames_do_not_end_the_next_receive() {
    let body = pattern(5000, 62);
    let h5 = BlockHeader::for_body(BlockId(5), &body);
    let h6 = BlockHeader::for_body(BlockId(6), &body);
    let five = block_frames_of(5, 1, &body, h5);
    let six = block_frames_of(6, 2, &body, h6);
    assert!(five.len() > 4 && six.len() > 3, "{} {}", five.len(), six.len());
    let (mut a, mut b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    let cfg = DatagramConfig { resend_timeout: Duration::from_millis(5), max_rounds: 5, ..Default::default() };
    let mut r = DatagramReceiver::new(cfg);
    // Block 5's send is refused: a frame of block 6 interleaved.
    for x in five[..3].iter().chain([&six[1]]) {
        a.send(&[x]).unwrap();
    }
    let e = r.recv_block(&mut b, &Expect::default()).unwrap_err();
    assert!(matches!(e, Error::UnexpectedBlock { expected: BlockId(5), got: BlockId(6) }), "{e}");
    // Block 6's first frames, then what block 5's sender had queued (its descriptor again too),
    // then the rest of block 6.
    for x in six[..2].iter().chain(&five[3..]).chain([&five[0]]).chain(&six[2..]) {
        a.send(&[x]).unwrap();
    }
    assert_eq!(r.recv_block(&mut b, &Expect::default()).unwrap(), (h6, body.clone()));
    // Block 5's repeated descriptor was refused again, answering the refused send.
    let aborts = aborts(&answers(&mut a));
    assert_eq!(aborts.len(), 2, "{aborts:?}");
    assert!(aborts.iter().all(|(h, _)| (h.block, h.attempt) == (BlockId(5), 1)), "{aborts:?}");
    assert_eq!(aborts[0].1, aborts[1].1);

    // After that success nothing is refused any more: block 5's frames interleaved in block 7's
    // receive end it, as any other block's would.
    let h7 = BlockHeader::for_body(BlockId(7), &body);
    let seven = block_frames_of(7, 1, &body, h7);
    for x in seven[..2].iter().chain([&five[3]]) {
        a.send(&[x]).unwrap();
    }
    let e = r.recv_block(&mut b, &Expect::default()).unwrap_err();
    assert!(matches!(e, Error::UnexpectedBlock { expected: BlockId(7), got: BlockId(5) }), "{e}");
}

/// An ABORT that answers an earlier send of a block (from a receive that gave up on it), read
/// by a new send of the block after its first pass, does not fail the new send: a sender reads
/// only the answers to its own attempt.
#[test]
fn a_late_abort_of_an_earlier_send_does_not_fail_a_retry() {
    let (mut a, mut b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    let (queued, stale_abort_queued) = std::sync::mpsc::channel();
    let h = thread::spawn(move || {
        let mut r = DatagramReceiver::default();
        // Block 40 first, so that the sender has the path's MTU and reads nothing before its
        // first pass of block 41.
        r.recv_block(&mut b, &Expect::default()).unwrap();
        b.send(&[&frame_of(Kind::Abort, 41, 7, 0, 0, b"gave up after 25 rounds")]).unwrap();
        queued.send(()).unwrap();
        let got = r.recv_block(&mut b, &Expect::default());
        r.linger(&mut b, Duration::from_millis(300)).unwrap();
        got
    });
    let s = DatagramSender::default();
    s.send_block(&mut a, BlockId(40), &pattern(5000, 40)).unwrap();
    stale_abort_queued.recv().unwrap();
    s.send_block(&mut a, BlockId(41), &pattern(50_000, 41)).unwrap();
    let (header, body) = h.join().unwrap().unwrap();
    assert_eq!(header.id, BlockId(41));
    assert!(body == pattern(50_000, 41));
}

fn nack_payload(ranges: &[(u32, u32)]) -> Vec<u8> {
    ranges.iter().flat_map(|(s, l)| s.to_le_bytes().into_iter().chain(l.to_le_bytes())).collect()
}

/// A hostile receiver: answers MTU probes, and once the block's descriptor is in, sends `nack`
/// every 2 ms for `for_how_long`. Returns how many data frames it received.
fn nacking_peer(mut b: MemLink, block: u64, nack: Vec<u8>, for_how_long: Duration) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let start = std::time::Instant::now();
        let mut data = 0u64;
        let mut started = None;
        let mut buf = vec![0u8; b.max_frame()];
        while start.elapsed() < for_how_long {
            if let Ok(Some(n)) = b.recv(&mut buf, Duration::from_millis(2)) {
                if let Ok((h, _, _)) = FrameHeader::parse(&buf[..n]) {
                    match h.kind {
                        Kind::Probe => {
                            let f = frame_of(Kind::ProbeAck, 0, 0, h.index, 0, &[]);
                            let _ = b.send(&[&f]);
                        }
                        Kind::Data => {
                            data += 1;
                            if h.index == 0 {
                                started = Some(h.attempt);
                            }
                        }
                        _ => {}
                    }
                }
            }
            if let Some(attempt) = started {
                let _ = b.send(&[&frame_of(Kind::Nack, block, attempt, 0, 0, &nack)]);
            }
        }
        data
    })
}

/// A NACK of 8182 ranges (0, u32::MAX), sent again and again: the sender reads 58 ranges of a
/// NACK, resends each frame at most once per NACK and at most max_rounds × frames in all, then
/// fails naming the block; a NACK asking for no frame of the block does not hold it either.
#[test]
fn sender_bounds_what_nacks_make_it_resend() {
    let cfg = DatagramConfig {
        max_rounds: 3,
        resend_timeout: Duration::from_millis(20),
        compression: Compression::Off,
        ..Default::default()
    };
    let (mut a, b) = MemLink::pair(65_507, Impairments::default(), Impairments::default());
    let body = pattern(100_000, 3);
    let storm = nack_payload(&vec![(0, u32::MAX); 8182]);
    let peer = nacking_peer(b, 7, storm, Duration::from_secs(3));
    let t0 = std::time::Instant::now();
    let e = DatagramSender::new(cfg).send_block(&mut a, BlockId(7), &body).unwrap_err();
    let took = t0.elapsed();
    drop(a);
    let data = peer.join().unwrap();
    // 32 KiB frames: the descriptor and 4 data frames; budget 3 × 5 resends.
    assert!(
        matches!(&e, Error::Timeout { block: Some(BlockId(7)), what } if what.contains("resends"))
            && e.to_string().contains("block 0000000000000007"),
        "{e}"
    );
    assert_eq!(e.block(), Some(BlockId(7)), "{e}");
    assert!(data <= 5 + 15, "{data} data frames sent for a 5-frame block");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // NACKs that ask for nothing in the block: ignored, the sender gives up after max_rounds.
    let (mut a, b) = MemLink::pair(65_507, Impairments::default(), Impairments::default());
    let peer = nacking_peer(b, 8, nack_payload(&[(1000, 5), (7, 0)]), Duration::from_secs(3));
    let t0 = std::time::Instant::now();
    let e = DatagramSender::new(cfg).send_block(&mut a, BlockId(8), &body).unwrap_err();
    assert!(
        matches!(&e, Error::Timeout { block: Some(BlockId(8)), what } if what.contains("no acknowledgement")),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    drop(a);
    peer.join().unwrap();
}

/// A link whose data frames, after the first `fast`, each take `per_frame` to go out, as on a
/// link that waits for room (a full DPDK ring waits up to 100 ms per burst).
struct Slow {
    link: MemLink,
    fast: u32,
    per_frame: Duration,
    sent: u32,
}

impl Link for Slow {
    fn max_frame(&self) -> usize {
        self.link.max_frame()
    }
    fn send(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        if parts.first().is_some_and(|h| h.len() > 5 && h[5] == Kind::Data as u8) {
            self.sent += 1;
            if self.sent > self.fast {
                thread::sleep(self.per_frame);
            }
        }
        self.link.send(parts)
    }
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> std::io::Result<Option<usize>> {
        self.link.recv(buf, timeout)
    }
    fn peer(&self) -> String {
        self.link.peer()
    }
}

/// A sender checks `block_timeout` while it sends many frames in a row, not only between them:
/// neither its first pass nor a NACK's resends on a link slow to take frames hold it much past
/// the deadline.
#[test]
fn sender_deadline_holds_within_long_passes() {
    let cfg = DatagramConfig {
        block_timeout: Duration::from_millis(150),
        max_rounds: 100,
        compression: Compression::Off,
        ..Default::default()
    };
    // 1500-byte frames: 300 data frames of 1452 bytes, 2 ms each = 600 ms a pass.
    let body = pattern(300 * 1452, 4);
    let slow = |link, fast| Slow { link, fast, per_frame: Duration::from_millis(2), sent: 0 };
    let timed_out = |e: &Error, id| matches!(e, Error::Timeout { block: Some(b), what } if *b == BlockId(id) && what.contains("block_timeout"));

    // The first pass.
    let (a, mut b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    let h = thread::spawn(move || DatagramReceiver::default().linger(&mut b, Duration::from_millis(500)));
    let mut a = slow(a, 0);
    let t0 = std::time::Instant::now();
    let e = DatagramSender::new(cfg).send_block(&mut a, BlockId(20), &body).unwrap_err();
    let took = t0.elapsed();
    assert!(timed_out(&e, 20), "{e}");
    assert!(took < Duration::from_millis(400), "{took:?}");
    drop(a);
    h.join().unwrap().unwrap();

    // A NACK asking for every frame, after a fast first pass.
    let (a, b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    let peer = nacking_peer(b, 21, nack_payload(&[(0, u32::MAX)]), Duration::from_secs(1));
    let mut a = slow(a, 301);
    let t0 = std::time::Instant::now();
    let e = DatagramSender::new(cfg).send_block(&mut a, BlockId(21), &body).unwrap_err();
    let took = t0.elapsed();
    assert!(timed_out(&e, 21), "{e}");
    assert!(took < Duration::from_millis(400), "{took:?}");
    drop(a);
    peer.join().unwrap();
}

/// Runs a receiver on `b` while `trickle` sends frames on `a` every 10 ms for at most 3 s;
/// returns the receiver's error and how long it took.
fn trickled(cfg: DatagramConfig, mut trickle: impl FnMut(u32) -> Vec<u8> + Send + 'static) -> (Error, Duration) {
    let (mut a, mut b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let h = thread::spawn(move || {
        let mut k = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) && k < 300 {
            let _ = a.send(&[&trickle(k)]);
            k += 1;
            thread::sleep(Duration::from_millis(10));
        }
    });
    let t0 = std::time::Instant::now();
    let r = DatagramReceiver::new(cfg).recv_block(&mut b, &Expect::default());
    let took = t0.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    h.join().unwrap();
    (r.unwrap_err(), took)
}

/// Frames that change nothing (garbage, duplicates) do not postpone a receiver's deadlines, and a
/// block that keeps trickling in new frames still ends at `block_timeout`.
#[test]
fn receiver_deadlines_run_from_useful_frames() {
    let cfg = DatagramConfig {
        resend_timeout: Duration::from_millis(20),
        max_rounds: 5,
        idle_timeout: Duration::from_millis(200),
        block_timeout: Duration::from_millis(600),
        ..Default::default()
    };
    // Garbage before any block: idle_timeout.
    let (e, took) = trickled(cfg, |_| vec![0x55; 100]);
    assert!(matches!(&e, Error::Timeout { block: None, what } if what.contains("no block arrived")), "{e}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    // A descriptor, then only garbage and copies of it: gives up after max_rounds.
    let body = pattern(50 * CHUNK, 9);
    let frames = block_frames(11, &body, BlockHeader::for_body(BlockId(11), &body));
    let desc = frames[0].clone();
    let (e, took) = trickled(cfg, move |k| if k % 2 == 0 { desc.clone() } else { vec![0xaa; 64] });
    assert!(matches!(e, Error::GaveUp { block: BlockId(11), .. }), "{e}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    // A descriptor, then frames with valid headers whose payloads fail their checks, each for
    // another missing index: as useless as garbage, the receiver still gives up after
    // max_rounds (it asks for the missing frames meanwhile), long before block_timeout.
    let body = pattern(200 * CHUNK, 9);
    let frames = block_frames(13, &body, BlockHeader::for_body(BlockId(13), &body));
    let long = DatagramConfig { block_timeout: Duration::from_secs(5), ..cfg };
    let (e, took) = trickled(long, move |k| {
        let mut f = frames[k as usize % frames.len()].clone();
        if k % frames.len() as u32 != 0 {
            *f.last_mut().unwrap() ^= 1;
        }
        f
    });
    assert!(matches!(e, Error::GaveUp { block: BlockId(13), .. }), "{e}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    // A new frame every 10 ms (never a stall) of a 201-frame block: block_timeout.
    let body = pattern(200 * CHUNK, 9);
    let frames = block_frames(12, &body, BlockHeader::for_body(BlockId(12), &body));
    let (e, took) = trickled(cfg, move |k| frames[k as usize % frames.len()].clone());
    assert!(matches!(&e, Error::Timeout { block: Some(BlockId(12)), what } if what.contains("block_timeout")), "{e}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

/// Before the descriptor: the first header's frame count and the bytes kept aside are bounded
/// by the largest acceptable block.
#[test]
fn receiver_bounds_frames_before_the_descriptor() {
    let small = Expect { id: None, max_len: 10_000 };
    // 5000 frames cannot carry 10 000 bytes in chunks of at least a descriptor's size.
    let e = feed(vec![frame(Kind::Data, 1, 1, 5000, &[1; 100])], small);
    assert!(matches!(e, Error::FrameRejected { block: BlockId(1), index: 1, .. }), "{e}");
    // 20 distinct frames of 1000 bytes before the descriptor: more than the block can hold.
    let f: Vec<Vec<u8>> = (1..=20).map(|i| frame(Kind::Data, 2, i, 100, &[i as u8; 1000])).collect();
    let e = feed(f, small);
    assert!(
        matches!(&e, Error::FrameRejected { block: BlockId(2), .. }) && e.to_string().contains("before the descriptor"),
        "{e}"
    );
    // Copies of one frame before the descriptor are kept once: the block still arrives.
    let body = pattern(5000, 4);
    let mut f = block_frames(3, &body, BlockHeader::for_body(BlockId(3), &body));
    let first = f[1].clone();
    for _ in 0..50 {
        f.insert(0, first.clone());
    }
    let (mut a, mut b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    for x in &f {
        a.send(&[x]).unwrap();
    }
    let (h, got) = DatagramReceiver::default().recv_block(&mut b, &small).unwrap();
    assert_eq!((h.id, got), (BlockId(3), body));
}

/// A link whose DONE frames cannot be sent.
struct NoDone(MemLink);

impl Link for NoDone {
    fn max_frame(&self) -> usize {
        self.0.max_frame()
    }
    fn send(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        if parts.first().is_some_and(|h| h.len() > 5 && h[5] == Kind::Done as u8) {
            return Err(std::io::Error::other("DONE refused"));
        }
        self.0.send(parts)
    }
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> std::io::Result<Option<usize>> {
        self.0.recv(buf, timeout)
    }
    fn peer(&self) -> String {
        self.0.peer()
    }
}

/// Into a store: a block already stored is refused at its first frame (ABORT, before the rest
/// is assembled); a block published whose DONE cannot be sent is received all the same.
#[test]
fn store_duplicate_refused_early_and_done_failure_after_publish() {
    let dir = TempDir::new("dgram-early-dup");
    let store = BlockStore::open(dir.path()).unwrap();
    let body = pattern(5000, 5);
    store.put(BlockId(1), &body).unwrap();
    let (mut a, mut b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    // Only the descriptor and one frame: a receiver that waited for the block would give up.
    let f = block_frames(1, &body, BlockHeader::for_body(BlockId(1), &body));
    a.send(&[&f[0]]).unwrap();
    a.send(&[&f[1]]).unwrap();
    let cfg = DatagramConfig { resend_timeout: Duration::from_millis(5), max_rounds: 5, ..Default::default() };
    let e = DatagramReceiver::new(cfg).recv_block_to_store(&mut b, &store, &Expect::default()).unwrap_err();
    assert!(matches!(e, Error::Duplicate { block: BlockId(1), .. }), "{e}");
    let mut buf = vec![0u8; 1500];
    let n = a.recv(&mut buf, Duration::from_millis(100)).unwrap().expect("an ABORT");
    let (h, reason) = FrameHeader::decode(&buf[..n]).unwrap();
    assert!(h.kind == Kind::Abort && String::from_utf8_lossy(reason).contains("duplicate"), "{h:?}");
    // It answers the send of the frame it refused, so that the sender reads it.
    assert_eq!(h.attempt, 1, "{h:?}");

    let (mut a, b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    let mut b = NoDone(b);
    for x in &block_frames(2, &body, BlockHeader::for_body(BlockId(2), &body)) {
        a.send(&[x]).unwrap();
    }
    let got = DatagramReceiver::new(cfg).recv_block_to_store(&mut b, &store, &Expect::default()).unwrap();
    assert_eq!(got.id(), BlockId(2));
    assert!(store.contains(BlockId(2)));
    // No ABORT went out.
    while let Some(n) = a.recv(&mut buf, Duration::from_millis(50)).unwrap() {
        let (h, _) = FrameHeader::decode(&buf[..n]).unwrap();
        assert_ne!(h.kind, Kind::Abort);
    }
}

/// A receiver's link on a loaded machine: every frame it receives takes `per_frame` (checking a
/// backlog of frames), and its first DONE waits `before_done` before it goes out (the receiver
/// between its last frame and its DONE: the digest, a store's write and fsync).
struct SlowReceiver {
    link: MemLink,
    per_frame: Duration,
    before_done: Option<Duration>,
}

impl SlowReceiver {
    fn new(link: MemLink, per_frame: Duration, before_done: Duration) -> Self {
        SlowReceiver { link, per_frame, before_done: Some(before_done) }
    }
}

impl Link for SlowReceiver {
    fn max_frame(&self) -> usize {
        self.link.max_frame()
    }
    fn send(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        if parts.first().is_some_and(|h| h.len() > 5 && h[5] == Kind::Done as u8) {
            if let Some(d) = self.before_done.take() {
                thread::sleep(d);
            }
        }
        self.link.send(parts)
    }
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> std::io::Result<Option<usize>> {
        self.link.recv(buf, timeout)
    }
    fn recv_frame(&mut self, timeout: Duration) -> std::io::Result<Option<parthenon::transfer::datagram::RxFrame>> {
        let f = self.link.recv_frame(timeout)?;
        if f.is_some() {
            thread::sleep(self.per_frame);
        }
        Ok(f)
    }
    fn peer(&self) -> String {
        self.link.peer()
    }
}

/// Sends `body` as block `id` with `cfg` to a receiver on a [`SlowReceiver`] link; the send's
/// result and how long it took (the receiver is joined, and must have received the block).
fn send_to_slow(
    cfg: DatagramConfig,
    id: u64,
    body: &[u8],
    per_frame: Duration,
    before_done: Duration,
) -> (Result<(), Error>, Duration) {
    let (mut a, b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    let want = body.to_vec();
    let rx = thread::spawn(move || {
        let mut b = SlowReceiver::new(b, per_frame, before_done);
        let mut r = DatagramReceiver::new(cfg);
        let got = r.recv_block(&mut b, &Expect::block(BlockId(id))).map(|(_, body)| body);
        r.linger(&mut b, Duration::from_millis(200)).unwrap();
        got
    });
    let t0 = std::time::Instant::now();
    let r = DatagramSender::new(cfg).send_block(&mut a, BlockId(id), body).map(|_| ());
    let took = t0.elapsed();
    drop(a);
    assert!(rx.join().unwrap().unwrap() == want, "block {id} received");
    (r, took)
}

/// A receiver slower than the sender's silence limit (`max_rounds` × `resend_timeout`, here
/// about 520 ms) is not given up on: one that checks a backlog of frames slowly reports its
/// progress, and one that has every frame but takes long to confirm (a store's fsync on a
/// loaded machine) said so, and is waited for until `block_timeout`.
#[test]
fn sender_waits_for_a_live_slow_receiver() {
    let cfg = DatagramConfig {
        resend_timeout: Duration::from_millis(20),
        max_rounds: 25,
        block_timeout: Duration::from_secs(20),
        compression: Compression::Off,
        hash_threads: 1,
        // The receiver thread may take a while to answer the first probe on a loaded machine.
        probe_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    // 1500-byte frames: 1000 data frames, 1 ms each to receive: at least 1 s (about two silence
    // limits), reported every 64 frames (64 ms apart: sleeps may each overrun by 7 ms on a
    // loaded machine before a report comes too late).
    let body = pattern(1000 * 1452, 21);
    let (r, took) = send_to_slow(cfg, 30, &body, Duration::from_millis(1), Duration::ZERO);
    r.unwrap();
    assert!(took >= Duration::from_secs(1), "{took:?}");

    // Every frame in at once, then 1.5 s (about three silence limits) before the DONE.
    let body = pattern(100_000, 22);
    let (r, took) = send_to_slow(cfg, 31, &body, Duration::ZERO, Duration::from_millis(1500));
    r.unwrap();
    assert!(took >= Duration::from_millis(1500), "{took:?}");
}

/// A receiver that stops answering ends the send all the same, with an error naming the block:
/// at `block_timeout` once it had said every frame was in; by the silence limit (here about
/// 520 ms), long before `block_timeout`, when it said nothing (gone after MTU discovery), or
/// when the send has no deadline.
#[test]
fn sender_ends_a_send_to_a_dead_receiver() {
    let cfg = DatagramConfig {
        resend_timeout: Duration::from_millis(20),
        max_rounds: 25,
        block_timeout: Duration::from_secs(1),
        compression: Compression::Off,
        probe_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let body = pattern(100_000, 23);
    let names = |e: &Error, id: u64| e.block() == Some(BlockId(id)) && e.to_string().contains(&format!("{:016x}", id));

    // Every frame in, then no DONE for longer than block_timeout.
    let (r, took) = send_to_slow(cfg, 32, &body, Duration::ZERO, Duration::from_secs(3));
    let e = r.unwrap_err();
    assert!(
        matches!(&e, Error::Timeout { what, .. } if what.contains("block_timeout") && what.contains("every frame"))
            && names(&e, 32),
        "{e}"
    );
    assert!(took >= Duration::from_secs(1) && took < Duration::from_millis(2500), "{took:?}");

    // The same without a deadline: the silence limit.
    let forever = DatagramConfig { block_timeout: Duration::MAX, ..cfg };
    let (r, took) = send_to_slow(forever, 33, &body, Duration::ZERO, Duration::from_secs(3));
    let e = r.unwrap_err();
    assert!(matches!(&e, Error::Timeout { what, .. } if what.contains("no acknowledgement")) && names(&e, 33), "{e}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // A peer that answers MTU probes and nothing else: the silence limit, not block_timeout.
    let long = DatagramConfig { block_timeout: Duration::from_secs(20), ..cfg };
    let (mut a, mut b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    let h = thread::spawn(move || DatagramReceiver::default().linger(&mut b, Duration::from_millis(500)));
    let t0 = std::time::Instant::now();
    let e = DatagramSender::new(long).send_block(&mut a, BlockId(34), &body).unwrap_err();
    assert!(matches!(&e, Error::Timeout { what, .. } if what.contains("no acknowledgement")) && names(&e, 34), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    drop(a);
    h.join().unwrap().unwrap();
}

/// PROGRESS frames that report nothing new (the same count again, more frames than the block
/// has, a count of frames the block does not have, another block's) or answer another send of
/// the block do not hold a sender: it gives up after `max_rounds` as on silence.
#[test]
fn progress_that_reports_nothing_new_does_not_hold_the_sender() {
    let cfg = DatagramConfig {
        resend_timeout: Duration::from_millis(20),
        max_rounds: 3,
        compression: Compression::Off,
        probe_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    // 1500-byte frames: 690 of them, so that a check left out would let the frames below,
    // one more every 5 ms, hold the sender for longer than the peer runs (3 s).
    let (mut a, mut b) = MemLink::pair(1500, Impairments::default(), Impairments::default());
    let body = pattern(1_000_000, 3);
    let peer = thread::spawn(move || {
        let start = std::time::Instant::now();
        let mut buf = vec![0u8; b.max_frame()];
        let mut count = None;
        while start.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(n)) = b.recv(&mut buf, Duration::from_millis(2)) {
                if let Ok((h, _, _)) = FrameHeader::parse(&buf[..n]) {
                    match h.kind {
                        Kind::Probe => {
                            let _ = b.send(&[&frame_of(Kind::ProbeAck, 0, 0, h.index, 0, &[])]);
                        }
                        Kind::Data => count = Some((h.count, h.attempt)),
                        _ => {}
                    }
                }
            }
            if let Some((c, at)) = count {
                let k = (start.elapsed().as_millis() / 5) as u32;
                for f in [
                    frame_of(Kind::Progress, 9, at, 1, c, &[]),
                    frame_of(Kind::Progress, 9, at, c + 1 + k, c, &[]),
                    frame_of(Kind::Progress, 9, at, (1 + k).min(c), c + 1, &[]),
                    frame_of(Kind::Progress, 10, at, (1 + k).min(c), c, &[]),
                    // News, but of another send of the block.
                    frame_of(Kind::Progress, 9, at.wrapping_add(1).max(1), (1 + k).min(c), c, &[]),
                ] {
                    let _ = b.send(&[&f]);
                }
            }
        }
    });
    let t0 = std::time::Instant::now();
    let e = DatagramSender::new(cfg).send_block(&mut a, BlockId(9), &body).unwrap_err();
    assert!(
        matches!(&e, Error::Timeout { block: Some(BlockId(9)), what } if what.contains("no acknowledgement")),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    drop(a);
    peer.join().unwrap();
}
