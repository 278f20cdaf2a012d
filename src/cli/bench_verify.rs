//! `parthenon bench verify --backend cpu|opencl|cuda|auto --sizes 64,1024,... [--json]`
//!
//! Verifies synthetic batches of valid signatures (deterministic keys and messages, 32-byte
//! messages, see `sigverify::gpu::synthetic`) and reports, per scheme and size:
//! - end to end: wall time of the backend's whole call (host staging, copies both ways, both
//!   kernels, synchronisation; for `cpu`, the CPU batch verifier allowed every usable core, of
//!   which it uses one per 64 items of a scheme (`cpu::threads_used`, the count reported per
//!   point); for `auto`, `Engine::verify_with`, routing included);
//! - kernel only (device backends): the device's own timing of the two kernels (OpenCL profiling
//!   events, CUDA events).
//!
//! An `auto` row says what served its timed runs, counted by `sigverify::stats().device_batches`
//! ([`auto_label`]): `auto -> cuda` (or `opencl`) when every run was a device batch, which
//! includes a batch the crossover splits between the device and the CPU (the counters do not
//! tell a split from a whole batch); `auto -> cpu (below the crossover)` when none was; both, with
//! the counts, when some were; `auto -> cpu` when the route itself is the CPU (no device).
//!
//! Each figure is the best of `--repeat` runs after one warm-up run (which also builds the
//! program and grows the device buffers). For `auto`, the device is prepared before anything is
//! timed (`Engine::prepare_verify`: kernels built, crossover loaded or calibrated), since an
//! auto route verifies on the CPU until its device is ready; a device that cannot be prepared is
//! a failure. Every run's verdicts are checked: a valid signature reported invalid, a verdict
//! missing, or (for `auto`) a batch the engine verified on the CPU after a device fault is a
//! failure, not a figure.

use super::Failure;
use parthenon::sigverify::gpu::synthetic::{valid_batch, Mix};
use parthenon::sigverify::gpu::{EdRules, GpuVerifier, OwnedSoa};
use parthenon::sigverify::{cpu, Batch, Rules, Scheme};
use parthenon::{Backend, Engine};
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// cpu, opencl, cuda or auto.
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Batch sizes, comma-separated; at most 16777216 (2^24) signatures each.
    #[arg(long, value_delimiter = ',', default_value = "64,1024,16384,65536,1048576")]
    sizes: Vec<usize>,
    /// Schemes to measure, comma-separated: ed25519, bip340, mixed.
    #[arg(long, value_delimiter = ',', default_value = "ed25519,bip340")]
    schemes: Vec<String>,
    /// Ed25519 rules: zip215 or strict.
    #[arg(long, default_value = "zip215")]
    rules: String,
    /// Timed runs per point (the best is reported), after one warm-up run.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

/// One measured point.
#[derive(Debug, Serialize)]
struct Point {
    scheme: String,
    /// `zip215` or `strict` for Ed25519 and mixed batches, `bip340` for BIP-340 ones.
    rules: String,
    backend: String,
    device: String,
    size: usize,
    /// CPU threads the verification used (`cpu` backend only).
    threads: Option<usize>,
    end_to_end_seconds: f64,
    end_to_end_per_second: f64,
    kernel_seconds: Option<f64>,
    kernel_per_second: Option<f64>,
}

enum Runner {
    /// The CPU batch verifier, allowed `threads` threads.
    Cpu {
        threads: usize,
    },
    Device(&'static dyn GpuVerifier),
    Auto(Engine),
}

fn device(backend: Backend) -> Result<&'static dyn GpuVerifier, Failure> {
    match backend {
        #[cfg(feature = "opencl")]
        Backend::Opencl => parthenon::sigverify::gpu::opencl::OpenClVerifier::shared()
            .map(|v| v as &dyn GpuVerifier)
            .map_err(|e| Failure::Runtime(format!("opencl: {e}"))),
        #[cfg(feature = "cuda")]
        Backend::Cuda => parthenon::sigverify::gpu::cuda::CudaVerifier::shared()
            .map(|v| v as &dyn GpuVerifier)
            .map_err(|e| Failure::Runtime(format!("cuda: {e}"))),
        b => Err(Failure::Input(format!("backend `{b}` is not built into this binary (enable its cargo feature)"))),
    }
}

/// Runs once; returns (end-to-end seconds, kernel seconds).
fn run_once(
    r: &Runner,
    soa: &OwnedSoa,
    batch: &Batch,
    rules: Rules,
    ed: EdRules,
) -> Result<(f64, Option<f64>), Failure> {
    let t = Instant::now();
    let (verdicts, kernel) = match r {
        Runner::Cpu { threads } => {
            (parthenon::sigverify::cpu::verify_batch(batch, rules, *threads).as_bytes().to_vec(), None)
        }
        Runner::Device(v) => {
            let (v, k) = v.verify_soa_timed(&soa.view(), ed).map_err(|e| Failure::Runtime(e.to_string()))?;
            (v, Some(k))
        }
        Runner::Auto(e) => {
            // A device fault makes `verify_with` verify on the CPU: a figure then, labelled
            // `auto -> cuda`, would be the CPU's. Not a figure. (A failed setup was refused by
            // `prepare_verify` before anything was timed.)
            let fallbacks = parthenon::sigverify::stats().device_fallbacks;
            let v = e.verify_with(batch, rules).as_bytes().to_vec();
            if parthenon::sigverify::stats().device_fallbacks > fallbacks {
                return Err(Failure::Runtime(
                    "auto fell back to the CPU after a device fault (see the warning above): no auto figure".into(),
                ));
            }
            (v, None)
        }
    };
    let secs = t.elapsed().as_secs_f64();
    if verdicts.len() != batch.len() {
        return Err(Failure::Runtime(format!("{} verdicts for a batch of {}", verdicts.len(), batch.len())));
    }
    if let Some(i) = verdicts.iter().position(|v| *v != 1) {
        return Err(Failure::Runtime(format!("item {i} of a batch of valid signatures was reported invalid")));
    }
    Ok((secs, kernel))
}

/// The rules a row was verified under: BIP-340 has its own single rule.
fn rules_label(mix: Mix, rules: Rules) -> &'static str {
    if mix == Mix::Bip340 {
        "bip340"
    } else {
        rules.name()
    }
}

/// What an `auto` row ran on: `routed` is the engine's verify backend, `device_batches` the
/// batches a device verified (whole, or its share of a split: `sigverify::Stats::device_batches`)
/// over the row's `runs` timed runs. The crossover plan decides per batch size, so a row below it
/// ran on the CPU although the route is a device.
fn auto_label(routed: Backend, device_batches: u64, runs: u64) -> String {
    match routed {
        Backend::Cuda | Backend::Opencl => match device_batches {
            0 => "auto -> cpu (below the crossover)".to_string(),
            d if d >= runs => format!("auto -> {routed}"),
            d => format!("auto -> {routed} in {d} of {runs} runs, cpu (below the crossover) in the others"),
        },
        b => format!("auto -> {b}"),
    }
}

/// The threads `cpu::verify_batch(batch, _, threads)` uses: each scheme's items run in turn on
/// `cpu::threads_used` threads.
fn cpu_threads_used(batch: &Batch, threads: usize) -> usize {
    [Scheme::Ed25519, Scheme::Bip340]
        .iter()
        .map(|s| batch.schemes().iter().filter(|x| *x == s).count())
        .filter(|&n| n > 0)
        .map(|n| cpu::threads_used(n, threads))
        .max()
        .unwrap_or(1)
}

/// Largest `--sizes` value: 2^24 signatures, a few GiB of synthetic batch (structure of arrays
/// plus its `Batch` copy). Larger ones overflowed the allocation's size or aborted on it.
const MAX_SIZE: usize = 1 << 24;

pub fn run(args: Args) -> Result<(), Failure> {
    if let Some(n) = args.sizes.iter().find(|n| **n > MAX_SIZE) {
        return Err(Failure::Input(format!("--sizes {n}: a batch holds at most {MAX_SIZE} signatures (2^24)")));
    }
    let rules = match args.rules.as_str() {
        "zip215" => Rules::Zip215,
        "strict" => Rules::Strict,
        r => return Err(Failure::Input(format!("unknown rules `{r}` (zip215 or strict)"))),
    };
    let ed = if rules == Rules::Strict { EdRules::Strict } else { EdRules::Zip215 };
    let (runner, device_name) = match args.backend.as_str() {
        "auto" => {
            let e = Engine::builder().detect_options(no_dpdk()).build()?;
            let name = format!("auto (routed to {}; each row says what ran)", e.backend(parthenon::Job::Verify));
            // Until its device is ready an auto route verifies on the CPU: the first points
            // would time the CPU while the kernels build. Prepared first, or refused.
            e.prepare_verify(rules).map_err(|fault| {
                Failure::Runtime(format!("{name}: the device could not be prepared ({fault}): no auto figure"))
            })?;
            (Runner::Auto(e), name)
        }
        "cpu" => {
            // As `Engine::verify_with` allows: the usable cores, no more than the OS runs at once.
            let os = std::thread::available_parallelism().map_or(1, |n| n.get());
            let threads = parthenon::detect::detect_with(&no_dpdk()).cpu.cores_usable.clamp(1, os.max(1));
            (Runner::Cpu { threads }, format!("CPU, up to {threads} thread(s), one per 64 items"))
        }
        b => {
            let backend: Backend = b.parse()?;
            if backend.job() != parthenon::Job::Verify {
                return Err(Failure::Input(format!(
                    "backend `{backend}` serves {}, not verify; use auto, cpu, cuda or opencl",
                    backend.job()
                )));
            }
            let v = device(backend)?;
            (Runner::Device(v), v.describe())
        }
    };
    let auto = matches!(runner, Runner::Auto(_));
    if !args.json {
        outln!("device: {device_name}")?;
        out!(
            "{:<8} {:<7} {:>9} {:>7} {:>12} {:>14} {:>12} {:>14}",
            "scheme",
            "rules",
            "batch",
            "threads",
            "e2e ms",
            "e2e sig/s",
            "kernel ms",
            "kernel sig/s"
        )?;
        outln!("{}", if auto { "  ran on" } else { "" })?;
    }
    for scheme in &args.schemes {
        let mix = match scheme.as_str() {
            "ed25519" => Mix::Ed25519,
            "bip340" => Mix::Bip340,
            "mixed" => Mix::Mixed,
            s => return Err(Failure::Input(format!("unknown scheme `{s}` (ed25519, bip340, mixed)"))),
        };
        for &n in &args.sizes {
            let soa = valid_batch(mix, n, 1);
            let batch = soa.to_batch();
            run_once(&runner, &soa, &batch, rules, ed)?; // warm-up
            let mut best = (f64::MAX, None::<f64>);
            let runs = args.repeat.max(1);
            let device_batches_before = parthenon::sigverify::stats().device_batches;
            for _ in 0..runs {
                let (s, k) = run_once(&runner, &soa, &batch, rules, ed)?;
                if s < best.0 {
                    best.0 = s;
                }
                if let Some(k) = k {
                    best.1 = Some(best.1.map_or(k, |b: f64| b.min(k)));
                }
            }
            let threads = match &runner {
                Runner::Cpu { threads } => Some(cpu_threads_used(&batch, *threads)),
                _ => None,
            };
            let device_batches = parthenon::sigverify::stats().device_batches.saturating_sub(device_batches_before);
            let device = match (&runner, threads) {
                (_, Some(t)) => format!("CPU, {t} thread(s)"),
                (Runner::Auto(e), _) => auto_label(e.backend(parthenon::Job::Verify), device_batches, runs as u64),
                _ => device_name.clone(),
            };
            let p = Point {
                scheme: scheme.clone(),
                rules: rules_label(mix, rules).to_string(),
                backend: args.backend.clone(),
                device,
                size: n,
                threads,
                end_to_end_seconds: best.0,
                end_to_end_per_second: n as f64 / best.0,
                kernel_seconds: best.1,
                kernel_per_second: best.1.filter(|k| *k > 0.0).map(|k| n as f64 / k),
            };
            if args.json {
                outln!("{}", serde_json::to_string(&p).map_err(|e| Failure::Runtime(e.to_string()))?)?;
            } else {
                let k_ms = p.kernel_seconds.map_or("-".to_string(), |k| format!("{:.3}", k * 1e3));
                let k_rate = p.kernel_per_second.map_or("-".to_string(), |r| format!("{r:.0}"));
                out!(
                    "{:<8} {:<7} {:>9} {:>7} {:>12.3} {:>14.0} {:>12} {:>14}",
                    scheme,
                    p.rules,
                    n,
                    p.threads.map_or("-".to_string(), |t| t.to_string()),
                    p.end_to_end_seconds * 1e3,
                    p.end_to_end_per_second,
                    k_ms,
                    k_rate
                )?;
                if auto {
                    outln!("  {}", p.device)?;
                } else {
                    outln!()?;
                }
            }
        }
    }
    Ok(())
}

/// Detection for verification: DPDK's probe starts its EAL (once per process, with threads and
/// memory), which nothing here uses.
fn no_dpdk() -> parthenon::detect::DetectOptions {
    parthenon::detect::DetectOptions { skip_dpdk: true, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bip340_rows_say_bip340() {
        assert_eq!(rules_label(Mix::Bip340, Rules::Zip215), "bip340");
        assert_eq!(rules_label(Mix::Bip340, Rules::Strict), "bip340");
        assert_eq!(rules_label(Mix::Ed25519, Rules::Strict), "strict");
        assert_eq!(rules_label(Mix::Mixed, Rules::Zip215), "zip215");
    }

    #[test]
    fn auto_rows_say_what_ran() {
        // The route is a device, but the crossover kept every timed run on the CPU.
        assert_eq!(auto_label(Backend::Cuda, 0, 3), "auto -> cpu (below the crossover)");
        assert_eq!(auto_label(Backend::Cuda, 3, 3), "auto -> cuda");
        assert_eq!(auto_label(Backend::Opencl, 1, 1), "auto -> opencl");
        assert_eq!(
            auto_label(Backend::Cuda, 2, 3),
            "auto -> cuda in 2 of 3 runs, cpu (below the crossover) in the others"
        );
        // No device: the route is the CPU, whatever the counters.
        assert_eq!(auto_label(Backend::Cpu, 0, 3), "auto -> cpu");
    }

    #[test]
    fn threads_reported_are_those_used() {
        for (mix, n, allowed, want) in [
            (Mix::Ed25519, 64, 16, 1),
            (Mix::Ed25519, 1024, 16, 16),
            (Mix::Ed25519, 1024, 2, 2),
            (Mix::Bip340, 200, 16, 4),
            // Alternating: 100 of each scheme, two threads each.
            (Mix::Mixed, 200, 16, 2),
        ] {
            let batch = valid_batch(mix, n, 1).to_batch();
            assert_eq!(cpu_threads_used(&batch, allowed), want, "{mix:?} {n} {allowed}");
        }
    }
}
