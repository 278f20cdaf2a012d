//! `parthenon bench cipher`: AES-256-GCM throughput per backend and size from this binary, one
//! process, no peers (the criterion bench `benches/cipher.rs` puts ring and RustCrypto in the same
//! run). A table, or JSON with `--json`.

use super::Failure;
use parthenon::cipher::{self, Aes256Gcm, Backend};
use serde::Serialize;
use std::time::{Duration, Instant};

/// `parthenon bench cipher`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Message sizes, comma-separated, with optional k/m suffix (KiB/MiB); at most 4096m (4 GiB:
    /// each size is held twice, the buffer and its sealed copy for `open`).
    #[arg(long, value_delimiter = ',', default_value = "64,1420,16k,1m,64m")]
    sizes: Vec<String>,
    /// Only these backends (repeatable; default: every backend present).
    #[arg(long = "backend", value_name = "BACKEND")]
    backends: Vec<String>,
    /// Threads for buffers of at least 2 MiB (`cipher::PARALLEL_MIN`; default 1: one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Measuring time per figure, in milliseconds.
    #[arg(long, default_value_t = 300)]
    millis: u64,
}

#[derive(Debug, Serialize)]
struct Figure {
    backend: Backend,
    op: &'static str,
    bytes: usize,
    threads: usize,
    gb_per_s: f64,
    iterations: u64,
}

/// Largest `--sizes` value: 4 GiB. Each size is allocated twice (the buffer, and the sealed copy
/// `open` restores it from), so a larger one would be a fight with the OOM killer, not a figure.
const MAX_SIZE: usize = 4 << 30;
// Every size the bench accepts is one GCM seals in one message.
const _: () = assert!(MAX_SIZE as u64 <= cipher::MAX_MESSAGE_BYTES);

fn parse_size(s: &str) -> Result<usize, Failure> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mul) = match s.strip_suffix('m') {
        Some(n) => (n, 1 << 20),
        None => match s.strip_suffix('k') {
            Some(n) => (n, 1 << 10),
            None => (s.as_str(), 1),
        },
    };
    let n = num
        .parse::<usize>()
        .map_err(|e| Failure::Input(format!("--sizes: `{s}` is not a size (e.g. 1420, 16k, 1m): {e}")))?;
    match n.checked_mul(mul) {
        Some(bytes) if bytes <= MAX_SIZE => Ok(bytes),
        _ => Err(Failure::Input(format!(
            "--sizes: `{s}` is above the benchmark's cap of {MAX_SIZE} bytes (4096m): each size is allocated twice"
        ))),
    }
}

/// Runs `f` repeatedly for about `budget`, returns (iterations, elapsed).
fn time(budget: Duration, mut f: impl FnMut()) -> (u64, Duration) {
    f(); // warm-up
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        f();
        n += 1;
        let el = start.elapsed();
        if el >= budget {
            return (n, el);
        }
    }
}

pub fn run(a: Args) -> Result<(), Failure> {
    let sizes = a.sizes.iter().map(|s| parse_size(s)).collect::<Result<Vec<_>, _>>()?;
    let backends = if a.backends.is_empty() {
        cipher::backends_present()
    } else {
        a.backends.iter().map(|b| b.parse::<Backend>().map_err(Failure::from)).collect::<Result<Vec<_>, _>>()?
    };
    let key = [0x42u8; 32];
    let nonce = [7u8; 12];
    let budget = Duration::from_millis(a.millis);
    let mut figures = Vec::new();
    for &backend in &backends {
        let c =
            Aes256Gcm::with_backend(&key, backend).map_err(|e| Failure::Input(e.to_string()))?.with_threads(a.threads);
        for &bytes in &sizes {
            // Written before timing, so every page is faulted in (a zeroed allocation maps the
            // shared zero page until first written) and no figure pays for first touch.
            let mut buf: Vec<u8> = (0..bytes).map(|i| i as u8).collect();
            // Sizes are within GCM's limit (`parse_size`): a refused seal is a bug to report, not
            // a figure of failed seals.
            let mut tag = c
                .seal_in_place_detached(&nonce, &[], &mut buf)
                .map_err(|e| Failure::Runtime(format!("{backend}: sealing {bytes} bytes: {e}")))?;
            let (n, el) = time(budget, || {
                tag = c.seal_in_place_detached(&nonce, &[], &mut buf).unwrap_or(tag);
            });
            let threads = cipher::threads_for(bytes, a.threads);
            let gbps = (n as f64 * bytes as f64) / el.as_secs_f64() / 1e9;
            figures.push(Figure { backend, op: "seal", bytes, threads, gb_per_s: gbps, iterations: n });
            // Open what was just sealed (the last seal's output and tag).
            let sealed = buf.clone();
            c.open_in_place_detached(&nonce, &[], &mut buf, &tag)
                .map_err(|e| Failure::Runtime(format!("{backend}: opening what it sealed ({bytes} bytes): {e}")))?;
            let (n, el) = time(budget, || {
                buf.copy_from_slice(&sealed);
                let _ = c.open_in_place_detached(&nonce, &[], &mut buf, &tag);
            });
            let gbps = (n as f64 * bytes as f64) / el.as_secs_f64() / 1e9;
            figures.push(Figure { backend, op: "open", bytes, threads, gb_per_s: gbps, iterations: n });
        }
    }
    if a.json {
        let s = serde_json::to_string_pretty(&figures).map_err(|e| Failure::Runtime(e.to_string()))?;
        outln!("{s}")?;
    } else {
        outln!("AES-256-GCM, GB/s (open includes a copy of the ciphertext back into the buffer)")?;
        outln!("{:<12} {:<5} {:>10} {:>8} {:>9}", "backend", "op", "bytes", "threads", "GB/s")?;
        for f in &figures {
            outln!("{:<12} {:<5} {:>10} {:>8} {:>9.2}", f.backend.name(), f.op, f.bytes, f.threads, f.gb_per_s)?;
        }
    }
    Ok(())
}
