//! `parthenon bench transfer --sizes 4KiB,1MiB,64MiB [--backend B]... [--json]`
//!
//! Runs the sender in this process and the receiver in a second process (this binary, re-executed
//! with the hidden `--receiver-connect`), connected over loopback TCP. For each backend (every
//! stream backend present, `auto`, and always `copy`) and each size, the sender sends the same
//! stored block `reps` times (enough to move `--min-bytes`: at least 3, at most 4096), after one
//! untimed warm-up send; the receiver receives each
//! with the same backend into its store (on `/dev/shm` when present, so the disk is not what is
//! measured), verifies the digest, publishes it, acknowledges it with one byte and moves it out of
//! the store so the next copy is not a duplicate; the copies of one size are deleted when the
//! next size starts, untimed (so a run keeps `reps + 1` blocks of one size, besides the source
//! blocks, on disk or in memory). Time runs from the first timed send to the last
//! acknowledgement. A receiver that cannot run (its backend absent) is an input error before
//! anything is measured; one that exits before connecting ends the run with an error.
//!
//! `--dir` on a disk measures what a node's store does there (the io-uring receiver writes large
//! blocks with `O_DIRECT` on file systems that allow it; tmpfs does not).
//!
//! `--receiver copy` makes every run use the same receive path, isolating the sender.
//! `--receiver discard` reads every body byte and drops it (no digest check, no store): what is
//! left is the sender and the loopback TCP path, a measuring instrument only, never a way to
//! receive blocks.
//!
//! Reported per backend and size: body GB/s (10^9 bytes), the sender's CPU-seconds per GB
//! (`getrusage(RUSAGE_SELF)`, user + system), and both as ratios to `copy` in the same run.

use super::Failure;
use parthenon::detect::DetectOptions;
use parthenon::transfer::{BlockId, BlockStore, Error as TransferError, Expect, Transport};
use parthenon::{Backend, Engine};
use serde::Serialize;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Block sizes, comma-separated: 4KiB, 1MiB, 64MiB, 1000, ...
    #[arg(long, value_delimiter = ',', default_value = "4KiB,1MiB,64MiB")]
    sizes: Vec<String>,
    /// Backends to measure (repeatable or comma-separated): auto, copy, mmap, sendfile, splice,
    /// io-uring. Default: every stream backend present, plus auto. `copy` is always added.
    #[arg(long = "backend", value_delimiter = ',')]
    backends: Vec<String>,
    /// Bytes to move per backend and size, as whole blocks (at least 3, at most 4096): 256MiB by
    /// default. The receiver keeps one size's copies (and the warm-up block) until the next size
    /// starts, beside the source blocks: --dir needs room for (blocks + 1) × size plus the sum
    /// of --sizes.
    #[arg(long, default_value = "256MiB")]
    min_bytes: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Directory for the block stores (default: /dev/shm when present, else the temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Receive path of the receiver process: `same` (the backend being measured) or a backend
    /// name used for every run (e.g. `copy`, to compare senders against one fixed receiver), or
    /// `discard` (read and drop every byte: the sender and loopback TCP alone).
    #[arg(long, default_value = "same")]
    receiver: String,
    /// Internal: run as the receiver, connecting to this address.
    #[arg(long, hide = true)]
    receiver_connect: Option<String>,
}

/// Parses "4KiB", "1MiB", "64MiB", "2GiB", "4096", "1MiB+7".
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('+') {
        let (a, b) = (parse_size(a)?, parse_size(b)?);
        return a.checked_add(b).ok_or_else(|| format!("size `{s}` overflows 64 bits"));
    }
    let (num, mult) = [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n, *m)))
    .unwrap_or((s, 1));
    let n = num.trim().parse::<u64>().map_err(|_| format!("bad size `{s}` (use e.g. 4KiB, 1MiB, 64MiB)"))?;
    n.checked_mul(mult).ok_or_else(|| format!("size `{s}` overflows 64 bits"))
}

fn human(n: u64) -> String {
    parthenon::detect::human_bytes(n)
}

/// One measured (backend, size).
#[derive(Debug, Clone, Serialize)]
struct Row {
    backend: String,
    /// What actually sent (for `auto`: the routed backend, or copy for small blocks).
    sent_by: String,
    method: String,
    size: u64,
    reps: u64,
    seconds: f64,
    gb_per_s: f64,
    sender_cpu_s_per_gb: f64,
    throughput_vs_copy: Option<f64>,
    cpu_vs_copy: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Output {
    schema: &'static str,
    machine: String,
    receiver: String,
    auto_route: parthenon::transfer::route::TransferReport,
    results: Vec<Row>,
}

fn cpu_seconds() -> f64 {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 * 1e-6;
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => f64::NAN,
    }
}

fn engine_for(name: &str) -> Result<Engine, Failure> {
    let b = Engine::builder().detect_options(DetectOptions { skip_dpdk: true, ..Default::default() });
    if name == "auto" {
        return Ok(b.build()?);
    }
    let backend: Backend = name.parse()?;
    if backend.job() != parthenon::Job::Transfer {
        return Err(Failure::Input(format!("backend `{backend}` serves {}, not transfer", backend.job())));
    }
    Ok(b.force(backend).build()?)
}

fn store_dir(args: &Args, tag: &str) -> PathBuf {
    let base = args.dir.clone().unwrap_or_else(|| {
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        }
    });
    base.join(format!("parthenon-bench-{tag}-{}", std::process::id()))
}

pub fn run(args: Args) -> Result<(), Failure> {
    if let Some(addr) = &args.receiver_connect {
        return receiver(&args, addr);
    }
    let sizes: Vec<u64> = args.sizes.iter().map(|s| parse_size(s)).collect::<Result<_, _>>().map_err(Failure::Input)?;
    let min_bytes = parse_size(&args.min_bytes).map_err(Failure::Input)?;
    if let Some(&n) = sizes.iter().find(|&&n| n > parthenon::transfer::MAX_BLOCK_BYTES) {
        return Err(Failure::Input(format!(
            "block size {} is above the largest block a transport takes ({})",
            human(n),
            human(parthenon::transfer::MAX_BLOCK_BYTES)
        )));
    }
    if args.backends.iter().any(|b| b == "dpdk") || args.receiver == "dpdk" {
        return Err(Failure::Input(
            "`bench transfer` measures the stream backends between two processes over loopback TCP; \
             DPDK is a datagram path between ports of one process here: `cargo bench --bench transfer \
             --features dpdk -- datagram` (net_ring), figures in docs/benchmarks.md"
                .into(),
        ));
    }
    let mut names: Vec<String> = if args.backends.is_empty() {
        let caps = parthenon::detect::detect_with(&DetectOptions { skip_dpdk: true, ..Default::default() });
        let mut v: Vec<String> = [Backend::IoUring, Backend::Sendfile, Backend::Splice, Backend::Mmap]
            .into_iter()
            .filter(|b| b.presence(&caps).is_ok())
            .map(|b| b.name().to_string())
            .collect();
        v.push("auto".into());
        v
    } else {
        args.backends.clone()
    };
    names.retain(|n| n != "copy");
    names.insert(0, "copy".into());
    // Fail on an absent explicit backend, sender's or receiver's, before measuring anything.
    let engines: Vec<(String, Engine)> =
        names.iter().map(|n| engine_for(n).map(|e| (n.clone(), e))).collect::<Result<_, _>>()?;
    if args.receiver != "same" && args.receiver != "discard" {
        engine_for(&args.receiver)?
            .transport()
            .map_err(|e| Failure::Input(format!("--receiver {}: {e}", args.receiver)))?;
    }

    let src_dir = store_dir(&args, "src");
    let _ = std::fs::remove_dir_all(&src_dir);
    let src = BlockStore::open(&src_dir).map_err(|e| Failure::Runtime(e.to_string()))?;
    let stored = sizes.iter().enumerate().try_for_each(|(i, &n)| {
        let body = bench_body(n as usize, i as u64);
        src.put(BlockId(i as u64), &body).map(drop).map_err(|e| Failure::Runtime(e.to_string()))
    });
    let result = stored.and_then(|()| measure_all(&args, &engines, &src, &sizes, min_bytes));
    let _ = std::fs::remove_dir_all(&src_dir);
    let mut rows = result?;
    for i in 0..rows.len() {
        let copy = rows.iter().find(|r| r.backend == "copy" && r.size == rows[i].size).cloned();
        if let Some(c) = copy {
            rows[i].throughput_vs_copy = Some(rows[i].gb_per_s / c.gb_per_s);
            rows[i].cpu_vs_copy = Some(rows[i].sender_cpu_s_per_gb / c.sender_cpu_s_per_gb);
        }
    }
    let auto = engine_for("auto")?;
    let auto_route = auto.transport().map_err(|e| Failure::Runtime(e.to_string()))?.report();
    let cpu = &auto.capabilities().cpu;
    let machine = format!("{}, {} usable cores", cpu.model.as_deref().unwrap_or("unknown CPU"), cpu.cores_usable);
    if args.json {
        let out = Output {
            schema: "parthenon.bench.transfer/1",
            machine,
            receiver: args.receiver.clone(),
            auto_route,
            results: rows,
        };
        outln!("{}", serde_json::to_string_pretty(&out).map_err(|e| Failure::Runtime(e.to_string()))?)?;
    } else {
        outln!("machine: {machine}")?;
        out!("{auto_route}")?;
        outln!("receiver: {}", if args.receiver == "same" { "same backend as the sender" } else { &args.receiver })?;
        outln!(
            "{:<9} {:>8} {:>6} {:>9} {:>12} {:>9} {:>9}  sent by",
            "backend",
            "size",
            "reps",
            "GB/s",
            "CPU-s/GB tx",
            "x copy",
            "cpu/copy"
        )?;
        for r in &rows {
            outln!(
                "{:<9} {:>8} {:>6} {:>9.3} {:>12.4} {:>9.2} {:>9.2}  {} ({})",
                r.backend,
                human(r.size),
                r.reps,
                r.gb_per_s,
                r.sender_cpu_s_per_gb,
                r.throughput_vs_copy.unwrap_or(f64::NAN),
                r.cpu_vs_copy.unwrap_or(f64::NAN),
                r.sent_by,
                r.method
            )?;
        }
    }
    Ok(())
}

/// Half compressible text-like bytes, half pseudo-random: not all zeros (which some paths
/// special-case), deterministic.
fn bench_body(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
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

fn measure_all(
    args: &Args,
    engines: &[(String, Engine)],
    src: &BlockStore,
    sizes: &[u64],
    min_bytes: u64,
) -> Result<Vec<Row>, Failure> {
    let exe = std::env::current_exe().map_err(|e| Failure::Runtime(format!("current_exe: {e}")))?;
    let mut rows = Vec::new();
    for (name, engine) in engines {
        let t = engine.transport().map_err(|e| Failure::Runtime(e.to_string()))?;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| Failure::Runtime(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| Failure::Runtime(e.to_string()))?;
        let dst_dir = store_dir(args, &format!("dst-{name}"));
        let rx_backend = if args.receiver == "same" { name.as_str() } else { args.receiver.as_str() };
        let mut child = Command::new(&exe)
            .args(["bench", "transfer", "--backend", rx_backend, "--receiver-connect", &addr.to_string(), "--dir"])
            .arg(&dst_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Failure::Runtime(format!("spawn receiver: {e}")))?;
        let peer = match accept_from(&listener, &mut child) {
            Ok(p) => p,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_dir_all(&dst_dir);
                return Err(Failure::Runtime(format!("receiver for {name} ({rx_backend}): {why}")));
            }
        };
        let r = measure_backend(name, &t, &peer, src, sizes, min_bytes);
        drop(peer);
        let status = child.wait().map_err(|e| Failure::Runtime(e.to_string()))?;
        let _ = std::fs::remove_dir_all(&dst_dir);
        let mut got = r?;
        if !status.success() {
            return Err(Failure::Runtime(format!("receiver for {name} failed: {status}")));
        }
        rows.append(&mut got);
    }
    Ok(rows)
}

/// The receiver process's connection, or why none came: it exited first (its error is on
/// stderr), or it did not connect within 60 s.
fn accept_from(listener: &TcpListener, child: &mut std::process::Child) -> Result<TcpStream, String> {
    const WAIT: std::time::Duration = std::time::Duration::from_secs(60);
    listener.set_nonblocking(true).map_err(|e| format!("listener: {e}"))?;
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((peer, _)) => {
                peer.set_nonblocking(false).map_err(|e| format!("connection: {e}"))?;
                return Ok(peer);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("accept: {e}")),
        }
        if let Some(status) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            return Err(format!("exited before connecting ({status})"));
        }
        if start.elapsed() > WAIT {
            return Err(format!("did not connect within {WAIT:?}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn measure_backend(
    name: &str,
    t: &dyn Transport,
    peer: &TcpStream,
    src: &BlockStore,
    sizes: &[u64],
    min_bytes: u64,
) -> Result<Vec<Row>, Failure> {
    let fail = |e: TransferError| Failure::Runtime(format!("{name}: {e}"));
    let mut rows = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let block = src.get(BlockId(i as u64)).map_err(fail)?;
        let reps = (min_bytes / size.max(1)).clamp(3, 4096);
        // Warm-up: one block, acknowledged.
        t.send_block(peer, &block).map_err(fail)?;
        read_acks(peer, 1)?;
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let mut last = None;
        for _ in 0..reps {
            last = Some(t.send_block(peer, &block).map_err(fail)?);
        }
        read_acks(peer, reps)?;
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        let gb = (size * reps) as f64 / 1e9;
        let last = last.ok_or_else(|| Failure::Runtime("no send".into()))?;
        rows.push(Row {
            backend: name.to_string(),
            sent_by: last.backend.to_string(),
            method: last.method,
            size,
            reps,
            seconds: secs,
            gb_per_s: gb / secs,
            sender_cpu_s_per_gb: cpu / gb,
            throughput_vs_copy: None,
            cpu_vs_copy: None,
        });
    }
    Ok(rows)
}

fn read_acks(mut peer: &TcpStream, n: u64) -> Result<(), Failure> {
    let mut left = n as usize;
    let mut buf = [0u8; 4096];
    while left > 0 {
        let k = peer.read(&mut buf[..left.min(4096)]).map_err(|e| Failure::Runtime(format!("read ack: {e}")))?;
        if k == 0 {
            return Err(Failure::Runtime("receiver closed before acknowledging".into()));
        }
        left -= k;
    }
    Ok(())
}

/// The receiver process: receive, verify, publish, move aside, acknowledge; until the sender
/// closes. Received blocks are moved out of the store (a rename) so the next copy of the same id
/// is not a duplicate, and deleted when the first block of the next size arrives (its warm-up,
/// before the sender starts timing) and at the end: deleting a block is no part of receiving it,
/// and freeing 64 MiB (page cache pages, or extents a disk then discards) would otherwise be
/// timed with every backend.
fn receiver(args: &Args, addr: &str) -> Result<(), Failure> {
    let name = args.backends.first().cloned().unwrap_or_else(|| "auto".into());
    if name == "discard" {
        let peer = TcpStream::connect(addr).map_err(|e| Failure::Runtime(format!("connect {addr}: {e}")))?;
        return discard(peer);
    }
    let t = engine_for(&name)?.transport().map_err(|e| Failure::Runtime(e.to_string()))?;
    let dir = args.dir.clone().ok_or_else(|| Failure::Input("--receiver-connect needs --dir".into()))?;
    let store = BlockStore::open(dir.join("store")).map_err(|e| Failure::Runtime(e.to_string()))?;
    let aside = dir.join("received");
    std::fs::create_dir_all(&aside).map_err(|e| Failure::Runtime(format!("create {}: {e}", aside.display())))?;
    let clear = |kept: &mut Vec<PathBuf>| -> Result<(), Failure> {
        for p in kept.drain(..) {
            std::fs::remove_file(&p).map_err(|e| Failure::Runtime(format!("remove {}: {e}", p.display())))?;
        }
        Ok(())
    };
    let mut peer = TcpStream::connect(addr).map_err(|e| Failure::Runtime(format!("connect {addr}: {e}")))?;
    let mut kept: Vec<PathBuf> = Vec::new();
    let mut last = None;
    loop {
        match t.recv_block(&peer, &store, &Expect::default()) {
            Ok(b) => {
                if last != Some(b.id()) {
                    clear(&mut kept)?;
                    last = Some(b.id());
                }
                let from = b.path().to_path_buf();
                drop(b);
                let to = aside.join(kept.len().to_string());
                std::fs::rename(&from, &to)
                    .map_err(|e| Failure::Runtime(format!("move {} aside: {e}", from.display())))?;
                kept.push(to);
                peer.write_all(&[1]).map_err(|e| Failure::Runtime(format!("ack: {e}")))?;
            }
            Err(TransferError::Closed) => break,
            Err(e) => return Err(Failure::Runtime(format!("receiver ({name}): {e}"))),
        }
    }
    clear(&mut kept)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The `discard` receiver: per block, the header, then `length` body bytes read through a 1 MiB
/// buffer and dropped, then the acknowledgement.
fn discard(mut peer: TcpStream) -> Result<(), Failure> {
    use parthenon::transfer::wire::{BlockHeader, HEADER_LEN};
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let mut h = [0u8; HEADER_LEN];
        match peer.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(Failure::Runtime(format!("discard: read header: {e}"))),
        }
        let h = BlockHeader::decode(&h).map_err(|e| Failure::Runtime(format!("discard: {e}")))?;
        let mut left = h.length;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = peer.read(&mut buf[..want]).map_err(|e| Failure::Runtime(format!("discard: read body: {e}")))?;
            if n == 0 {
                return Err(Failure::Runtime(format!("discard: block {} truncated", h.id)));
            }
            left -= n as u64;
        }
        peer.write_all(&[1]).map_err(|e| Failure::Runtime(format!("ack: {e}")))?;
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1MiB+7").unwrap(), (1 << 20) + 7);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("18446744073709551615GiB").is_err());
        assert!(parse_size("18446744073709551615+1").is_err());
    }
}
