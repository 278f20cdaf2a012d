//! The memory ceiling under an in-place seal: read-modify-write bandwidth of one large buffer
//! (64 MiB by default, twice this machine's L3) on one thread and on two, next to parthenon's
//! seal of the same buffer on one and two threads, all in one run, taking turns.
//!
//! The RMW pass loads 64 bytes, XORs a constant, stores them back: the access pattern of an
//! in-place CTR seal without the AES and GHASH work, so it bounds what any in-place seal of a
//! buffer this size can reach. Threads are started once and wait on a barrier (no spawn in the
//! timed part, except in the case named "spawned per pass", which measures that cost); the
//! buffer is touched before timing (no first-touch page faults).
//! Every figure is buffer bytes per second (the memory moves twice that: read and write); per
//! case the best pass, the median, the mean (bytes over total time) and the 90th percentile
//! (the pass slower than 90 % of them).
//!
//! `cargo run --release --example mem_bandwidth -- [rounds] [MiB] [huge]` (`huge`: advise
//! transparent huge pages for the buffer; rounds and MiB are positive integers, 30 and 64 by
//! default). Figures: `docs/benchmarks.md`, "Cipher".

use parthenon::cipher::{backends_present, Aes256Gcm};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// XORs every byte of `buf` with `x`, 64 bytes at a time where AVX-512 runs.
fn xor_const(buf: &mut [u8], x: u8) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU runs AVX-512F (checked just above).
        unsafe { xor_const_avx512(buf, x) };
        return;
    }
    buf.iter_mut().for_each(|b| *b ^= x);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn xor_const_avx512(buf: &mut [u8], x: u8) {
    use std::arch::x86_64::*;
    let k = _mm512_set1_epi8(x as i8);
    let mut chunks = buf.chunks_exact_mut(256);
    for c in &mut chunks {
        let p = c.as_mut_ptr() as *mut __m512i;
        // SAFETY: `c` is 256 bytes, four unaligned 64-byte loads and stores stay inside it.
        unsafe {
            let a = _mm512_loadu_si512(p);
            let b = _mm512_loadu_si512(p.add(1));
            let d = _mm512_loadu_si512(p.add(2));
            let e = _mm512_loadu_si512(p.add(3));
            _mm512_storeu_si512(p, _mm512_xor_si512(a, k));
            _mm512_storeu_si512(p.add(1), _mm512_xor_si512(b, k));
            _mm512_storeu_si512(p.add(2), _mm512_xor_si512(d, k));
            _mm512_storeu_si512(p.add(3), _mm512_xor_si512(e, k));
        }
    }
    chunks.into_remainder().iter_mut().for_each(|b| *b ^= x);
}

/// [`xor_const`] with a software prefetch `DIST` bytes ahead of each 256-byte step.
fn xor_const_prefetch<const DIST: usize>(buf: &mut [u8], x: u8) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU runs AVX-512F (checked just above).
        unsafe { xor_const_prefetch_avx512::<DIST>(buf, x) };
        return;
    }
    buf.iter_mut().for_each(|b| *b ^= x);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn xor_const_prefetch_avx512<const DIST: usize>(buf: &mut [u8], x: u8) {
    use std::arch::x86_64::*;
    let k = _mm512_set1_epi8(x as i8);
    let end = buf.as_ptr() as usize + buf.len();
    let mut chunks = buf.chunks_exact_mut(256);
    for c in &mut chunks {
        let p = c.as_mut_ptr() as *mut __m512i;
        let ahead = c.as_ptr() as usize + DIST;
        if ahead + 256 <= end {
            // A prefetch is a hint: it never faults, and the address is inside `buf` anyway.
            for l in 0..4 {
                _mm_prefetch::<_MM_HINT_T0>((ahead + 64 * l) as *const i8);
            }
        }
        // SAFETY: `c` is 256 bytes, four unaligned 64-byte loads and stores stay inside it.
        unsafe {
            let a = _mm512_loadu_si512(p);
            let b = _mm512_loadu_si512(p.add(1));
            let d = _mm512_loadu_si512(p.add(2));
            let e = _mm512_loadu_si512(p.add(3));
            _mm512_storeu_si512(p, _mm512_xor_si512(a, k));
            _mm512_storeu_si512(p.add(1), _mm512_xor_si512(b, k));
            _mm512_storeu_si512(p.add(2), _mm512_xor_si512(d, k));
            _mm512_storeu_si512(p.add(3), _mm512_xor_si512(e, k));
        }
    }
    chunks.into_remainder().iter_mut().for_each(|b| *b ^= x);
}

/// Sums the buffer's 64-bit words (read only), 64 bytes at a time.
fn read_sum(buf: &[u8]) -> u64 {
    let mut acc = [0u64; 8];
    for c in buf.chunks_exact(64) {
        for (a, w) in acc.iter_mut().zip(c.chunks_exact(8)) {
            *a = a.wrapping_add(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
        }
    }
    acc.iter().fold(0, |s, a| s.wrapping_add(*a))
}

/// What a pass does to a piece of the buffer.
#[derive(Clone, Copy, PartialEq)]
enum Work {
    Rmw,
    RmwPrefetch1k,
    RmwPrefetch4k,
    Read,
    Seal,
}

/// How the buffer is split over two threads.
#[derive(Clone, Copy, PartialEq)]
enum Split {
    /// One thread, the whole buffer.
    One,
    /// Thread 0 the first half, thread 1 the second.
    Halves,
    /// Pieces of this many bytes taken in turn (both threads in the same window).
    Interleaved(usize),
    /// Halves, the second thread spawned for the pass (`std::thread::scope`) instead of waiting.
    HalvesSpawned,
}

/// Command-line argument `i` (1-based), a positive integer named `what`, or `default` when
/// absent; anything else ends the process with a message naming it.
fn positive_arg(i: usize, what: &str, default: usize) -> usize {
    let Some(s) = std::env::args().nth(i) else { return default };
    match s.parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!("mem_bandwidth: {what} `{s}`: must be a positive integer (usage: [rounds] [MiB] [huge])");
            std::process::exit(2);
        }
    }
}

fn main() {
    let rounds = positive_arg(1, "rounds", 30);
    let mib = positive_arg(2, "MiB", 64);
    let huge = std::env::args().nth(3).is_some_and(|s| s == "huge");
    // The allocation below adds 2 MiB; a `Vec` holds at most `isize::MAX` bytes.
    let Some(len) = mib.checked_mul(1 << 20).filter(|l| *l <= isize::MAX as usize - (2 << 20)) else {
        eprintln!("mem_bandwidth: MiB `{mib}`: larger than this machine can address");
        std::process::exit(2);
    };
    // 2 MiB more than needed, so a 2 MiB-aligned window exists (transparent huge pages).
    let mut backing = vec![0u8; len + (2 << 20)];
    let skip = backing.as_ptr().align_offset(2 << 20);
    let buf = &mut backing[skip..skip + len];
    if huge {
        // SAFETY: the range is inside `backing` and 2 MiB aligned; MADV_HUGEPAGE only advises.
        let r = unsafe { libc::madvise(buf.as_mut_ptr().cast(), len, libc::MADV_HUGEPAGE) };
        println!("madvise(MADV_HUGEPAGE) = {r}");
    }
    buf.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    if let Ok(s) = std::fs::read_to_string("/proc/self/smaps_rollup") {
        s.lines().filter(|l| l.starts_with("AnonHugePages")).for_each(|l| println!("{l}"));
    }
    let key = [0x42u8; 32];
    let nonce = [7u8; 12];
    let backend = backends_present()[0];
    let one = Aes256Gcm::with_backend(&key, backend).unwrap();
    let two = one.clone().with_threads(2);

    let cases: Vec<(String, Work, Split)> = vec![
        ("rmw 1 thread".into(), Work::Rmw, Split::One),
        ("rmw 2 threads, halves".into(), Work::Rmw, Split::Halves),
        ("rmw 2 threads, halves, spawned per pass".into(), Work::Rmw, Split::HalvesSpawned),
        ("rmw 2 threads, 2 MiB pieces in turn".into(), Work::Rmw, Split::Interleaved(2 << 20)),
        ("rmw 2 threads, 256 KiB pieces in turn".into(), Work::Rmw, Split::Interleaved(256 << 10)),
        ("rmw+prefetch 1 KiB ahead, 1 thread".into(), Work::RmwPrefetch1k, Split::One),
        ("rmw+prefetch 1 KiB ahead, 2 threads, halves".into(), Work::RmwPrefetch1k, Split::Halves),
        ("rmw+prefetch 4 KiB ahead, 1 thread".into(), Work::RmwPrefetch4k, Split::One),
        ("rmw+prefetch 4 KiB ahead, 2 threads, halves".into(), Work::RmwPrefetch4k, Split::Halves),
        ("read 1 thread".into(), Work::Read, Split::One),
        ("read 2 threads, halves".into(), Work::Read, Split::Halves),
        (format!("seal {backend} 1 thread"), Work::Seal, Split::One),
        (format!("seal {backend} 2 threads (library)"), Work::Seal, Split::Halves),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];

    // The second thread: started once, runs its share of each raw pass between two barriers.
    let start = Barrier::new(2);
    let done = Barrier::new(2);
    let job: Mutex<Option<(Work, Split, usize)>> = Mutex::new(None);
    let base = buf.as_mut_ptr() as usize;
    let sink = std::sync::atomic::AtomicU64::new(0);

    // One thread's share of a raw pass (`who` 0 or 1 of `n`).
    let share = |work: Work, split: Split, who: usize, n: usize| {
        // The bytes `range` of the buffer, and no others: each thread makes slices over its own
        // share only, so no two threads ever hold overlapping `&mut`.
        let piece = |range: std::ops::Range<usize>| {
            debug_assert!(range.start <= range.end && range.end <= len);
            // SAFETY: `range` lies within the `len` bytes at `base` (the callers below clamp it
            // to `len`), which `backing` keeps allocated and initialised for the whole scope
            // below. No other reference to these bytes exists while the slice lives: a pass on
            // two threads gives them disjoint shares (the two halves; or pieces `who`, `who + n`,
            // ... to one thread and the others to the other), a `Split::One` pass runs on the
            // main thread alone, a thread makes one piece at a time, and the main thread makes
            // no slice over the buffer (the seal's) while a share runs.
            unsafe { std::slice::from_raw_parts_mut((base as *mut u8).add(range.start), range.len()) }
        };
        let run = |piece: &mut [u8]| match work {
            Work::Rmw => xor_const(piece, 0x5a),
            Work::RmwPrefetch1k => xor_const_prefetch::<1024>(piece, 0x5a),
            Work::RmwPrefetch4k => xor_const_prefetch::<4096>(piece, 0x5a),
            Work::Read => {
                sink.fetch_add(read_sum(piece), std::sync::atomic::Ordering::Relaxed);
            }
            Work::Seal => {}
        };
        match split {
            Split::One => run(piece(0..len)),
            Split::Halves | Split::HalvesSpawned => {
                let half = len.div_ceil(n);
                let start = (who * half).min(len);
                run(piece(start..(start + half).min(len)))
            }
            Split::Interleaved(p) => {
                for start in (who * p..len).step_by(n * p) {
                    run(piece(start..(start + p).min(len)))
                }
            }
        }
    };

    std::thread::scope(|s| {
        s.spawn(|| loop {
            start.wait();
            let Some((work, split, n)) = *job.lock().unwrap() else { break };
            if n == 2 {
                share(work, split, 1, 2);
            }
            done.wait();
        });
        for _ in 0..rounds + 1 {
            for (i, (_, work, split)) in cases.iter().enumerate() {
                let t = Instant::now();
                if *work == Work::Seal {
                    let c = if *split == Split::One { &one } else { &two };
                    // SAFETY: the helper thread is parked on `start`; nothing else touches `buf`.
                    let b = unsafe { std::slice::from_raw_parts_mut(base as *mut u8, len) };
                    std::hint::black_box(c.seal_in_place_detached(&nonce, &[], b).unwrap());
                } else if *split == Split::HalvesSpawned {
                    std::thread::scope(|s2| {
                        s2.spawn(|| share(*work, *split, 1, 2));
                        share(*work, *split, 0, 2);
                    });
                } else {
                    let n = if *split == Split::One { 1 } else { 2 };
                    *job.lock().unwrap() = Some((*work, *split, n));
                    start.wait();
                    share(*work, *split, 0, n);
                    done.wait();
                }
                times[i].push(t.elapsed());
            }
        }
        *job.lock().unwrap() = None;
        start.wait();
    });

    println!("{mib} MiB buffer, {rounds} rounds taking turns (first round dropped); GB/s of buffer bytes");
    println!("{:<42} {:>8} {:>8} {:>8} {:>8}", "case", "best", "median", "mean", "p90");
    for ((name, _, _), t) in cases.iter().zip(&mut times) {
        let t = &mut t[1..];
        t.sort();
        let gbps = |d: Duration| len as f64 / d.as_secs_f64() / 1e9;
        let mean = len as f64 * t.len() as f64 / t.iter().sum::<Duration>().as_secs_f64() / 1e9;
        let p90 = gbps(t[t.len() * 9 / 10]);
        println!("{:<42} {:>8.2} {:>8.2} {:>8.2} {:>8.2}", name, gbps(t[0]), gbps(t[t.len() / 2]), mean, p90);
    }
    std::hint::black_box(sink.into_inner());
}
