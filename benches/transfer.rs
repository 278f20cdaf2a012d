//! Block transfer, every backend present side by side with `copy` in the same run.
//!
//! - `stream/64MiB/<backend>`: a sealed 64 MiB block sent over loopback TCP to a receiver thread
//!   that receives with the same backend into a store on /dev/shm (digest checked, fsync, publish),
//!   moves it out of the store, acknowledges it, then deletes it (while the next one is sent). Throughput is body bytes per second. (Two-process figures with
//!   CPU-seconds per GB come from `parthenon bench transfer`.)
//! - `datagram/64MiB/mem`: the datagram protocol over the in-process link (framing, reassembly,
//!   digest check), no network.
//! - `datagram/64MiB/dpdk-net_ring` (feature `dpdk`): the same over two DPDK `net_ring` ports in
//!   this process, payloads attached to the block's mapping as external buffers.
//!
//! Run: `cargo bench --bench transfer --features dpdk -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parthenon::detect::DetectOptions;
use parthenon::transfer::datagram::{
    Compression, DatagramConfig, DatagramReceiver, DatagramSender, Impairments, Link, MemLink,
};
use parthenon::transfer::{BlockId, BlockStore, Expect, Transport};
use parthenon::{Backend, Engine};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;

const SIZE: usize = 64 << 20;

fn body(n: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

fn dir(tag: &str) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let p = base.join(format!("parthenon-crit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn stream(c: &mut Criterion) {
    let src_dir = dir("src");
    let src = BlockStore::open(&src_dir).unwrap();
    let block = src.put(BlockId(1), &body(SIZE)).unwrap();
    let mut g = c.benchmark_group("stream/64MiB");
    g.sample_size(10).throughput(Throughput::Bytes(SIZE as u64));
    for b in [Backend::Copy, Backend::Mmap, Backend::Sendfile, Backend::Splice, Backend::IoUring] {
        let Ok(engine) =
            Engine::builder().detect_options(DetectOptions { skip_dpdk: true, ..Default::default() }).force(b).build()
        else {
            eprintln!("skip {b}: absent");
            continue;
        };
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let rdir = dir(&format!("dst-{b}"));
        let rt = engine.transport().unwrap();
        let h = thread::spawn(move || {
            let store = BlockStore::open(&rdir).unwrap();
            let (mut peer, _) = l.accept().unwrap();
            while let Ok(got) = rt.recv_block(&peer, &store, &Expect::default()) {
                let p = got.path().to_path_buf();
                drop(got);
                // Acknowledged before it is deleted: deleting is no part of receiving.
                let aside = p.with_extension("received");
                std::fs::rename(&p, &aside).unwrap();
                peer.write_all(&[1]).unwrap();
                std::fs::remove_file(aside).unwrap();
            }
            let _ = std::fs::remove_dir_all(&rdir);
        });
        let mut tx = TcpStream::connect(addr).unwrap();
        let t = engine.transport().unwrap();
        g.bench_function(BenchmarkId::from_parameter(b), |bench| {
            bench.iter(|| {
                t.primary().send_block(&tx, &block).unwrap();
                let mut ack = [0u8; 1];
                tx.read_exact(&mut ack).unwrap();
            })
        });
        drop(tx);
        h.join().unwrap();
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&src_dir);
}

fn datagram_pair<L: Link + 'static>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut a: L,
    mut b: L,
    store: &BlockStore,
) {
    let cfg = DatagramConfig { compression: Compression::Off, ..Default::default() };
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let h = thread::spawn(move || {
        let mut r = DatagramReceiver::new(cfg);
        // One buffer for every block, as a node receiving many blocks would keep.
        let mut body = Vec::new();
        loop {
            match r.recv_block_into(&mut b, &Expect::default(), &mut body) {
                Ok(_) => {}
                Err(_) => {
                    if stop_rx.try_recv().is_ok() {
                        break;
                    }
                }
            }
        }
    });
    let s = DatagramSender::new(cfg);
    // Two blocks in turn: a receiver re-confirms (without receiving) a block id equal to the one
    // it just accepted, so consecutive sends must differ.
    let blocks = [store.get(BlockId(1)).unwrap(), store.get(BlockId(2)).unwrap()];
    let mut k = 0usize;
    g.bench_function(BenchmarkId::from_parameter(name), |bench| {
        bench.iter(|| {
            k ^= 1;
            let rep = s.send_sealed(&mut a, &blocks[k]).unwrap();
            assert_eq!(rep.raw_bytes, SIZE as u64);
        })
    });
    let _ = stop_tx.send(());
    drop(a);
    let _ = h.join();
}

fn datagram(c: &mut Criterion) {
    let sdir = dir("dg");
    let store = BlockStore::open(&sdir).unwrap();
    store.put(BlockId(1), &body(SIZE)).unwrap();
    store.put(BlockId(2), &body(SIZE)).unwrap();
    let mut g = c.benchmark_group("datagram/64MiB");
    g.sample_size(10).throughput(Throughput::Bytes(SIZE as u64));
    let (a, b) = MemLink::pair(65_000, Impairments::default(), Impairments::default());
    datagram_pair(&mut g, "mem", a, b, &store);
    #[cfg(feature = "dpdk")]
    {
        let args: Vec<String> = [
            "--no-huge",
            "-m",
            "1024",
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
        match parthenon::dpdk::Eal::init(&args) {
            Ok(_) => {
                let a = parthenon::transfer::dpdk::DpdkLink::new(0, 1).unwrap();
                let b = parthenon::transfer::dpdk::DpdkLink::new(1, 0).unwrap();
                datagram_pair(&mut g, "dpdk-net_ring", a, b, &store);
            }
            Err(e) => eprintln!("skip dpdk: {e}"),
        }
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&sdir);
}

criterion_group!(benches, stream, datagram);
criterion_main!(benches);
