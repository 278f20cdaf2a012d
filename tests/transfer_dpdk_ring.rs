//! The datagram path over DPDK `net_ring` ports in one process (feature `dpdk`): two ring ports,
//! each a loopback, make a link pair. Byte-exact for the contract sizes into memory and into a
//! store, payloads attached as external buffers (not copied), malformed input rejected, and a
//! throughput figure printed (targets live in the benches, not here). One test per binary: the EAL starts once per process.
#![cfg(feature = "dpdk")]

mod common;

use common::pattern;
use parthenon::dpdk::Eal;
use parthenon::transfer::datagram::{Compression, DatagramConfig, DatagramReceiver, DatagramSender};
use parthenon::transfer::dpdk::DpdkLink;
use parthenon::transfer::{BlockId, BlockStore, Error, Expect};
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
    .chain([format!("--file-prefix=parthenon-ringtest-{}", std::process::id())])
    .collect();
    let eal = match Eal::init(&args) {
        Ok(e) => e,
        Err(e) => {
            println!("skip: DPDK EAL does not start here: {e}");
            return;
        }
    };
    let ports = eal.ports().unwrap();
    assert!(ports.len() >= 2, "{ports:?}");
    // A sends on port 0 (looped back to port 0's RX, read by B); B answers on port 1.
    let mut a = DpdkLink::new(0, 1).unwrap();
    let mut b = DpdkLink::new(1, 0).unwrap();
    let cfg = DatagramConfig { compression: Compression::Off, ..Default::default() };

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
        let sdir = std::env::temp_dir().join(format!("parthenon-ringtest-rx-{}", std::process::id()));
        let rstore = BlockStore::open(&sdir).unwrap();
        for (i, want) in expect.iter().enumerate() {
            let blk = r.recv_block_to_store(&mut b, &rstore, &Expect::block(BlockId(400 + i as u64))).unwrap();
            assert!(&blk.read_body().unwrap() == want, "store: size {} differs", want.len());
        }
        let _ = std::fs::remove_dir_all(&sdir);
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
    let dir = std::env::temp_dir().join(format!("parthenon-ringtest-{}", std::process::id()));
    let store = BlockStore::open(&dir).unwrap();
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
    let _ = std::fs::remove_dir_all(&dir);
    let e = s.send_block(&mut a, BlockId(200), &pattern(5000, 1)).unwrap_err();
    assert!(
        matches!(e, Error::RefusedByPeer { block: BlockId(200), .. }) && e.to_string().contains("oversized"),
        "{e}"
    );
    let rs = rx.join().unwrap();
    println!("sender {:?}, receiver {:?}", a.stats(), rs);
}
