//! The datagram path over DPDK `net_ring` ports in one process (feature `dpdk`): two ring ports,
//! each a loopback, make a link pair. Byte-exact for the contract sizes into memory and into a
//! store, payloads attached as external buffers (not copied), malformed input rejected, and a
//! throughput figure printed (targets live in the benches, not here). Then, on the same ports:
//! a link in copy mode attaches nothing; control frames are copied whatever the mode; an empty
//! mbuf pool loses frames instead of failing the send; an ended send whose frames are still out
//! has its memory kept (not freed, not leaked) without failing or holding up that send or the
//! next ones; a queue already held by a live link cannot be opened again; frames a receive
//! drops (another EtherType, too long) do not keep it past its timeout; and a release whose
//! frames nobody takes ends at its deadline. One test per binary: the EAL starts once per
//! process.
#![cfg(feature = "dpdk")]

mod common;

use common::{pattern, TempDir};
use parthenon::dpdk::Eal;
use parthenon::transfer::datagram::frame::{FrameHeader, Kind};
use parthenon::transfer::datagram::Link;
use parthenon::transfer::datagram::{Compression, DatagramConfig, DatagramReceiver, DatagramSender};
use parthenon::transfer::dpdk::{DpdkLink, TxMode};
use parthenon::transfer::{BlockId, BlockStore, Error, Expect};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const SIZES: [usize; 6] = [0, 1, 4095, 4096, (1 << 20) + 7, 64 << 20];

#[test]
fn dpdk_net_ring_one_process() {
    let args: Vec<String> = [
        "--no-huge",
        "-m",
        "512",
        "--no-pci",
        "--no-shconf",
        "--vdev=net_ring0",
        "--vdev=net_ring1",
        "--log-level=*:error",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--file-prefix=parthenon-{}", std::process::id())])
    .collect();
    let eal = match Eal::init(&args) {
        Ok(e) => e,
        Err(e) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI: the DPDK EAL must start on net_ring: {e}");
            println!("skip: DPDK EAL does not start here: {e}");
            return;
        }
    };
    let ports = eal.ports().unwrap();
    assert!(ports.len() >= 2, "{ports:?}");
    // A sends on port 0 (looped back to port 0's RX, read by B); B answers on port 1.
    let mut a = DpdkLink::new(0, 1).unwrap();
    let mut b = DpdkLink::new(1, 0).unwrap();
    // A sender's first send (here to a receiver thread just started, on a loaded machine) waits
    // up to 500 ms for an answer to its first MTU probe.
    let cfg = DatagramConfig {
        compression: Compression::Off,
        probe_timeout: Duration::from_millis(500),
        ..Default::default()
    };

    let bodies: Vec<Vec<u8>> = SIZES.iter().enumerate().map(|(i, &n)| pattern(n, i as u64 + 11)).collect();
    let expect = bodies.clone();
    let rx = thread::spawn(move || {
        let mut r = DatagramReceiver::new(cfg);
        for (i, want) in expect.iter().enumerate() {
            let (h, body) = r.recv_block(&mut b, &Expect::block(BlockId(i as u64))).unwrap();
            assert_eq!(h.id, BlockId(i as u64));
            assert!(&body == want, "size {} differs", want.len());
        }
        // Into a store, the same sizes: visible only whole and verified.
        let sdir = TempDir::new("ringtest-rx");
        let rstore = BlockStore::open(sdir.path()).unwrap();
        for (i, want) in expect.iter().enumerate() {
            let blk = r.recv_block_to_store(&mut b, &rstore, &Expect::block(BlockId(400 + i as u64))).unwrap();
            assert!(&blk.read_body().unwrap() == want, "store: size {} differs", want.len());
        }
        drop(sdir);
        // Throughput: 64 MiB blocks, received while the sender measures; cold (a new vector
        // per block), then warm (one vector reused).
        for i in 0..5u64 {
            let (_, body) = r.recv_block(&mut b, &Expect::default()).unwrap();
            assert_eq!(body.len(), 64 << 20, "rep {i}");
        }
        let mut body = Vec::new();
        for i in 0..5u64 {
            r.recv_block_into(&mut b, &Expect::default(), &mut body).unwrap();
            assert_eq!(body.len(), 64 << 20, "warm rep {i}");
        }
        // Oversized: refused, and the sender is told why.
        let e = r.recv_block(&mut b, &Expect { id: None, max_len: 1000 }).unwrap_err();
        assert!(matches!(e, Error::Oversized { .. }), "{e}");
        r.linger(&mut b, Duration::from_millis(200)).unwrap();
        b.stats()
    });
    let s = DatagramSender::new(cfg);
    for (i, body) in bodies.iter().enumerate() {
        let rep = s.send_block(&mut a, BlockId(i as u64), body).unwrap();
        println!(
            "block {i}: {} bytes in {} frames of {} bytes, {} resent",
            body.len(),
            rep.frames,
            rep.frame_size,
            rep.resent
        );
    }
    let stats = a.stats();
    assert!(stats.ext_frames > 1000, "payloads must be attached, not copied: {stats:?}");
    for (i, body) in bodies.iter().enumerate() {
        s.send_block(&mut a, BlockId(400 + i as u64), body).unwrap();
    }
    let big = &bodies[5];
    let t0 = Instant::now();
    for i in 0..5u64 {
        s.send_block(&mut a, BlockId(100 + i), big).unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "net_ring one process, cold (body hashed per send, new vector per block): 5 x 64 MiB in {secs:.3} s = {:.2} GB/s",
        5.0 * big.len() as f64 / secs / 1e9
    );
    // Warm: a stored block sent again (mapping and frame values kept), one receive vector.
    let dir = TempDir::new("ringtest");
    let store = BlockStore::open(dir.path()).unwrap();
    let mut other = big.clone();
    other[0] ^= 1;
    let sealed = [store.put(BlockId(300), big).unwrap(), store.put(BlockId(301), &other).unwrap()];
    s.send_sealed(&mut a, &sealed[0]).unwrap();
    let t0 = Instant::now();
    for i in 0..4 {
        // Alternate ids: a receiver re-confirms, without receiving, the id it just accepted.
        s.send_sealed(&mut a, &sealed[(i + 1) % 2]).unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "net_ring one process, warm (stored block sent again, vector reused): 4 x 64 MiB in {secs:.3} s = {:.2} GB/s",
        4.0 * big.len() as f64 / secs / 1e9
    );
    drop(dir);
    let e = s.send_block(&mut a, BlockId(200), &pattern(5000, 1)).unwrap_err();
    assert!(
        matches!(e, Error::RefusedByPeer { block: BlockId(200), .. }) && e.to_string().contains("oversized"),
        "{e}"
    );
    let rs = rx.join().unwrap();
    println!("sender {:?}, receiver {:?}", a.stats(), rs);
    assert_eq!(a.tx_mode(), TxMode::ZeroCopy);
    assert!(a.describe().contains("net_ring") && a.describe().contains("zero-copy"), "{}", a.describe());
    drop(a);
    copy_mode(cfg);
    control_frames_are_copied();
    empty_pool_loses_frames();
    frames_out_after_a_send_are_quarantined(cfg);
    a_confirmed_send_does_not_wait_for_a_busy_receiver();
    one_link_per_queue();
    dropped_frames_do_not_stretch_a_receive();
    release_has_a_deadline();
}

/// A link in copy mode sends byte-exact blocks and attaches nothing.
fn copy_mode(cfg: DatagramConfig) {
    let mut c = DpdkLink::with_tx_mode(0, 1, TxMode::Copy).unwrap();
    let mut d = DpdkLink::new(1, 0).unwrap();
    assert!(c.describe().contains("copy TX"), "{}", c.describe());
    let sizes = [0usize, 1, 4095, (1 << 20) + 7];
    let rx = thread::spawn(move || {
        let mut r = DatagramReceiver::new(cfg);
        for (i, &n) in sizes.iter().enumerate() {
            let (_, body) = r.recv_block(&mut d, &Expect::block(BlockId(500 + i as u64))).unwrap();
            assert!(body == pattern(n, i as u64 + 3), "copy mode: size {n} differs");
        }
        r.linger(&mut d, Duration::from_millis(200)).unwrap();
    });
    let s = DatagramSender::new(cfg);
    for (i, &n) in sizes.iter().enumerate() {
        s.send_block(&mut c, BlockId(500 + i as u64), &pattern(n, i as u64 + 3)).unwrap();
    }
    rx.join().unwrap();
    let st = c.stats();
    assert!(st.ext_frames == 0 && st.copied_frames > 16, "{st:?}");
}

fn data_head(len: usize) -> [u8; 48] {
    let h = FrameHeader { kind: Kind::Data, block: BlockId(900), index: 1, count: 2, payload_len: 0, attempt: 1 };
    h.encode(&vec![0u8; len])
}

/// `send` copies, whatever the payload's size: nothing to release even with nobody receiving.
fn control_frames_are_copied() {
    let mut e = DpdkLink::new(0, 1).unwrap();
    e.set_release_timeout(Duration::from_secs(2));
    let reason = vec![7u8; 4096];
    e.send(&[&data_head(4096), &reason]).unwrap();
    drop(reason);
    let t0 = Instant::now();
    e.release().unwrap();
    assert!(t0.elapsed() < Duration::from_millis(500), "{:?}", t0.elapsed());
    assert_eq!((e.stats().ext_frames, e.stats().copied_frames), (0, 1));
    drain_port0();
}

/// With nobody receiving, 64 KiB frames copied into 2 KiB mbufs empty the pool before they fill
/// the ring: the frames that find no mbuf are lost (counted), not send errors.
fn empty_pool_loses_frames() {
    let mut c = DpdkLink::with_tx_mode(0, 1, TxMode::Copy).unwrap();
    let n = c.max_frame() - 48;
    let payload = vec![1u8; n];
    let head = data_head(n);
    for i in 0..1200 {
        c.send(&[&head, &payload]).unwrap_or_else(|e| panic!("frame {i}: {e}"));
    }
    c.release().unwrap();
    assert!(c.stats().tx_dropped > 0, "{:?}", c.stats());
    drop(c);
    drain_port0();
}

/// Frees whatever waits on port 0's RX.
fn drain_port0() {
    drain_port0_with(DpdkLink::new(1, 0).unwrap());
}

fn drain_port0_with(mut r: DpdkLink) {
    let mut buf = vec![0u8; 1 << 16];
    while r.recv(&mut buf, Duration::from_millis(50)).unwrap().is_some() {}
}

/// A lent frame nobody takes: release gives up at its deadline (the memory stays lent, so it is
/// leaked here), and so does dropping the link.
fn release_has_a_deadline() {
    let mut e = DpdkLink::new(0, 1).unwrap();
    e.set_release_timeout(Duration::from_millis(200));
    let lent: &'static [u8] = Box::leak(vec![9u8; 4096].into_boxed_slice());
    // SAFETY: `lent` is leaked: it stays allocated and unchanged for the rest of the process.
    unsafe { e.send_lent(&[&data_head(4096), lent]) }.unwrap();
    assert_eq!(e.stats().ext_frames, 1);
    let t0 = Instant::now();
    let err = e.release().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let t0 = Instant::now();
    drop(e);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}

/// Memory that says when it is dropped.
struct Flagged(Vec<u8>, Arc<AtomicBool>);

impl Drop for Flagged {
    fn drop(&mut self) {
        self.1.store(true, Ordering::SeqCst);
    }
}

/// A lent frame that stays out after its send ended (here held by a receiver): the link keeps
/// that send's memory instead of failing, freeing or leaking it, a later send on the link is
/// neither failed nor held up by it, and the memory is freed once the frame is.
fn frames_out_after_a_send_are_quarantined(cfg: DatagramConfig) {
    drain_port0();
    let mut e = DpdkLink::new(0, 1).unwrap();
    e.set_release_timeout(Duration::from_millis(200));
    let mut r = DpdkLink::new(1, 0).unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let memory = Flagged(vec![9u8; 4096], Arc::clone(&dropped));
    // A frame every receiver ignores (a DONE of no block being sent), its payload lent.
    let h = FrameHeader { kind: Kind::Done, block: BlockId(901), index: 0, count: 0, payload_len: 0, attempt: 1 };
    // SAFETY: `memory` is handed to `retire` below, which gives it back or keeps it for as long
    // as the frame references it.
    unsafe { e.send_lent(&[&h.encode(&memory.0), &memory.0]) }.unwrap();
    assert_eq!(e.stats().ext_frames, 1);
    assert!(e.retire(Box::new(memory)).is_none(), "the frame is out: the link keeps the memory");
    assert_eq!(e.quarantined(), 1);
    let held = r.recv_frame(Duration::from_secs(1)).unwrap().expect("the lent frame");
    assert_eq!(held.payload(), &[9u8; 4096][..]);

    // A send on the same link, to a live receiver, while that frame is still held.
    let body = pattern(300_000, 5);
    let want = body.clone();
    let rx = thread::spawn(move || {
        let mut rcv = DatagramReceiver::new(cfg);
        let got = rcv.recv_block(&mut r, &Expect::block(BlockId(902))).map(|(_, b)| b);
        rcv.linger(&mut r, Duration::from_millis(200)).unwrap();
        got
    });
    let t0 = Instant::now();
    let cfg = DatagramConfig { probe_timeout: Duration::from_millis(500), ..cfg };
    DatagramSender::new(cfg).send_block(&mut e, BlockId(902), &body).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(rx.join().unwrap().unwrap() == want);
    assert!(!dropped.load(Ordering::SeqCst), "still referenced by the held frame");
    drop(held);
    e.release().unwrap();
    assert!(dropped.load(Ordering::SeqCst), "freed once its frame was");
    assert_eq!(e.quarantined(), 0);
}

/// A receiver that, having received a block, does something else for longer than the sender's
/// release timeout (here: writes it to a store, then sleeps) while the sender, quick to nudge
/// (1 ms resend timeout), left lent copies of the last frame in its ring: the receiver's DONE
/// goes out when its receive returns, not when it next polls, and the confirmed send returns
/// `Ok` at once, keeping that memory until the receiver reads those frames.
fn a_confirmed_send_does_not_wait_for_a_busy_receiver() {
    let mut a = DpdkLink::new(0, 1).unwrap();
    a.set_release_timeout(Duration::from_millis(200));
    let mut b = DpdkLink::new(1, 0).unwrap();
    let sdir = TempDir::new("ringtest-busy");
    let store = BlockStore::open(sdir.path()).unwrap();
    let rcfg = DatagramConfig { compression: Compression::Off, ..Default::default() };
    let woke = Arc::new(AtomicBool::new(false));
    let woke2 = Arc::clone(&woke);
    let rx = thread::spawn(move || {
        let mut r = DatagramReceiver::new(rcfg);
        let got = r.recv_block_to_store(&mut b, &store, &Expect::block(BlockId(910))).map(|s| s.id());
        thread::sleep(Duration::from_secs(3));
        woke2.store(true, Ordering::SeqCst);
        r.linger(&mut b, Duration::from_millis(200)).unwrap();
        got
    });
    let cfg = DatagramConfig {
        compression: Compression::Off,
        resend_timeout: Duration::from_millis(1),
        max_rounds: 100_000,
        // No deadline: its nudges keep sending the last frame (lent) while the receiver stores
        // the block. (With a deadline, a sender told that every frame is in nudges with the
        // descriptor alone, which is copied, and nothing lent would be left out.)
        block_timeout: Duration::MAX,
        // Its first send: the receiver thread may take a while to answer the first probe.
        probe_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let body = pattern(16 << 20, 12);
    let t0 = Instant::now();
    let rep = DatagramSender::new(cfg).send_block(&mut a, BlockId(910), &body).unwrap();
    let took = t0.elapsed();
    let early = !woke.load(Ordering::SeqCst);
    let kept = a.quarantined();
    println!("busy receiver: confirmed in {took:?}, {} resent, {kept} sends kept", rep.resent);
    assert_eq!(rx.join().unwrap().unwrap(), BlockId(910));
    assert!(early, "the send waited for the receiver to poll again ({took:?})");
    assert!(kept >= 1, "nudges left lent frames out when the block was confirmed ({} resent)", rep.resent);
    a.release().unwrap();
    assert_eq!(a.quarantined(), 0, "the receiver read them while lingering");
}

/// A port's TX queue and its RX queue each belong to one live link: a second link on either is
/// an error naming the port, until the first is dropped; a link pair shares no queue.
fn one_link_per_queue() {
    let a = DpdkLink::new(0, 1).unwrap();
    let e = DpdkLink::new(0, 0).unwrap_err();
    assert!(e.to_string().contains("port 0") && e.to_string().contains("TX queue"), "{e}");
    let e = DpdkLink::new(1, 1).unwrap_err();
    assert!(e.to_string().contains("port 1") && e.to_string().contains("RX queue"), "{e}");
    let b = DpdkLink::new(1, 0).unwrap();
    assert!(DpdkLink::with_tx_mode(1, 0, TxMode::Copy).is_err());
    drop(a);
    let again = DpdkLink::new(0, 1).unwrap();
    drop((again, b));
}

/// Puts `n` frames of EtherType 0x0800 on port 0's ring (its TX queue, which no live link
/// holds), as other traffic on a promiscuous port would be.
fn foreign_frames_on_port0(n: usize) {
    use parthenon::dpdk::sys;
    // SAFETY: the EAL runs; the name is a C string; the pool lives for the rest of the process.
    let mp = unsafe {
        sys::rte_pktmbuf_pool_create(
            c"ringtest_foreign".as_ptr(),
            2047,
            0,
            0,
            sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            sys::rte_socket_id() as i32,
        )
    };
    assert!(!mp.is_null());
    let mut frame = [0u8; 64];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    for _ in 0..n {
        // SAFETY: `frame` is copied into an mbuf of `mp`; nothing is attached.
        let m = unsafe {
            sys::parthenon_frame(
                mp,
                frame.as_ptr().cast(),
                frame.len() as u16,
                std::ptr::null(),
                0,
                std::ptr::null(),
                0,
                std::ptr::null_mut(),
            )
        };
        assert!(!m.is_null());
        let mut one = [m];
        // SAFETY: port 0 is started and no link holds its TX queue (this thread alone sends on
        // it); the driver takes the mbuf.
        assert_eq!(unsafe { sys::rte_eth_tx_burst(0, 0, one.as_mut_ptr(), 1) }, 1);
    }
}

/// A receive checks its timeout while it drops frames, at least every 32 of them: a queue full
/// of frames of another EtherType, or of frames too long for `recv`'s buffer, cannot keep it
/// from returning (here with a zero timeout: it returns after one burst, not 500 frames).
fn dropped_frames_do_not_stretch_a_receive() {
    drain_port0();
    foreign_frames_on_port0(500);
    let mut r = DpdkLink::new(1, 0).unwrap();
    let before = r.stats().rx_discarded;
    assert!(r.recv_frame(Duration::ZERO).unwrap().is_none());
    let dropped = r.stats().rx_discarded - before;
    assert!((1..=32).contains(&dropped), "{dropped} frames dropped in one zero-timeout receive");
    // A receive that returns nothing may have timed out in the middle of the frames (this
    // thread descheduled for 50 ms on a loaded machine): that is the point. Receive until all
    // 500 are dropped, then once more: nothing else was queued, and nothing is dropped twice.
    let t0 = Instant::now();
    while r.stats().rx_discarded - before < 500 && t0.elapsed() < Duration::from_secs(10) {
        assert!(r.recv_frame(Duration::from_millis(50)).unwrap().is_none(), "only foreign frames are queued");
    }
    assert!(r.recv_frame(Duration::from_millis(50)).unwrap().is_none());
    assert_eq!(r.stats().rx_discarded - before, 500);

    let mut e = DpdkLink::with_tx_mode(0, 1, TxMode::Copy).unwrap();
    for _ in 0..500 {
        e.send(&[&data_head(1000), &[5u8; 1000]]).unwrap();
    }
    e.release().unwrap();
    let before = r.stats().rx_discarded;
    let mut small = [0u8; 100];
    assert_eq!(r.recv(&mut small, Duration::ZERO).unwrap(), None);
    let dropped = r.stats().rx_discarded - before;
    assert!((1..=32).contains(&dropped), "{dropped} frames too long dropped in one zero-timeout receive");
    drop(e);
    drain_port0_with(r);
}
