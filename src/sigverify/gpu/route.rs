//! When the device serves a batch: the CPU/GPU crossover, and the CPU+GPU split of large batches.
//!
//! # Contract
//!
//! - Below [`Crossover::min_device_batch`] the CPU serves the batch: a device launch costs a
//!   fixed latency (copies, two kernel launches, synchronisation) that small batches cannot
//!   amortise. This is what sank Solana's GPU path; here the number is measured, not assumed.
//! - From [`Crossover::split_from`] items on, the batch is split: the device takes
//!   [`Crossover::device_share`] of the items and the CPU cores verify the rest at the same time,
//!   both shares sized so they finish together (the shares are the measured throughputs'
//!   ratio). In between, the device takes the whole batch.
//! - The crossover is calibrated once per fingerprint (the device's identity: name, architecture
//!   and kernel digest, never how the kernels were loaded; the Ed25519 rules, since strict
//!   verification costs the CPU about 2.5 times what ZIP-215 does; CPU model; usable cores;
//!   whether the CPU verifies on its AVX-512 IFMA arithmetic or the portable path) by
//!   timing both sides at a few sizes ([`calibrate`]), and cached as JSON in
//!   `$XDG_CACHE_HOME/parthenon/` (else `~/.cache/parthenon/`; not cached when neither is an
//!   absolute path). `PARTHENON_GPU_CROSSOVER=<n>` overrides the threshold (0 sends everything
//!   to the device; the split still applies); it is read once per process, and a value that is
//!   not a whole number is ignored with a warning.
//!   [`pin`] replaces the calibrated crossover for the whole process (tests and benchmarks that
//!   must reach a given plan).
//! - Routing never changes a verdict: every item is verified under the same rules on whichever
//!   side serves it, and both sides are tested to agree item by item.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Batch sizes timed by [`calibrate`].
pub const CALIBRATION_SIZES: [usize; 5] = [64, 256, 1024, 4096, 16384];

/// The calibrated routing thresholds for one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossover {
    /// The hardware fingerprint this was measured on.
    pub fingerprint: String,
    /// Smallest batch the device serves (below: CPU only).
    pub min_device_batch: usize,
    /// Smallest batch that is split between device and CPU.
    pub split_from: usize,
    /// Fraction of a split batch given to the device, in (0, 1].
    pub device_share: f64,
    /// Measured CPU throughput at the largest calibration size, signatures per second.
    pub cpu_rate: f64,
    /// Measured device throughput (end to end) at the largest calibration size.
    pub device_rate: f64,
}

/// How one batch of `n` items is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// All on the CPU.
    Cpu,
    /// All on the device.
    Device,
    /// Items `0..device` on the device, the rest on the CPU, concurrently.
    Split {
        /// Items given to the device.
        device: usize,
    },
}

impl Crossover {
    /// The plan for a batch of `n` items.
    pub fn plan(&self, n: usize) -> Plan {
        if n == 0 || n < self.min_device_batch {
            Plan::Cpu
        } else if n >= self.split_from && self.device_share < 1.0 {
            let device = ((n as f64) * self.device_share).round() as usize;
            match device {
                0 => Plan::Cpu,
                d if d >= n => Plan::Device,
                d => Plan::Split { device: d },
            }
        } else {
            Plan::Device
        }
    }

    /// Applies [`CROSSOVER_ENV`] when set to a whole number of items. The variable is read once
    /// per process; a value that is not such a number is ignored with a warning (once).
    pub fn with_env_override(mut self) -> Self {
        static OVERRIDE: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
        let n = OVERRIDE.get_or_init(|| {
            crossover_override(std::env::var(CROSSOVER_ENV).ok().as_deref()).unwrap_or_else(|warning| {
                tracing::warn!("{warning}");
                None
            })
        });
        if let Some(n) = *n {
            self.min_device_batch = n;
        }
        self
    }
}

/// Environment variable that replaces the calibrated [`Crossover::min_device_batch`].
pub const CROSSOVER_ENV: &str = "PARTHENON_GPU_CROSSOVER";

/// The threshold [`CROSSOVER_ENV`] set to `value` asks for: `None` when it is unset or blank; an
/// error (the warning to log, naming the variable, the value and what it takes) when it is not a
/// whole number of items.
fn crossover_override(value: Option<&str>) -> Result<Option<usize>, String> {
    match value {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            format!(
                "{CROSSOVER_ENV}={v:?} ignored: expected a batch size in items, a whole number \
                 (0 sends every batch to the device)"
            )
        }),
    }
}

/// Derives the thresholds from timings: `cpu[i]` and `device[i]` are seconds to verify
/// `sizes[i]` items on each side (device end to end, transfers included).
pub fn from_timings(fingerprint: &str, sizes: &[usize], cpu: &[f64], device: &[f64]) -> Crossover {
    // The device serves from the smallest size at which it is faster and stays faster.
    let mut min_device_batch = usize::MAX;
    for i in (0..sizes.len()).rev() {
        if device[i] < cpu[i] {
            min_device_batch = sizes[i];
        } else {
            break;
        }
    }
    let last = sizes.len() - 1;
    let cpu_rate = sizes[last] as f64 / cpu[last].max(1e-12);
    let device_rate = sizes[last] as f64 / device[last].max(1e-12);
    // Split so both sides finish together: share = g / (g + c). Only worth it when the CPU adds
    // at least 5% of the combined rate; splitting starts at the largest calibrated size.
    let device_share = device_rate / (device_rate + cpu_rate);
    let (split_from, device_share) = if device_share < 0.95 && min_device_batch != usize::MAX {
        (sizes[last].max(min_device_batch), device_share)
    } else {
        (usize::MAX, 1.0)
    };
    Crossover {
        fingerprint: fingerprint.to_string(),
        min_device_batch,
        split_from,
        device_share,
        cpu_rate,
        device_rate,
    }
}

/// Times both sides at [`CALIBRATION_SIZES`] (best of three runs each) and derives the
/// thresholds. `cpu(n)` and `device(n)` verify a batch of `n` items and return the seconds it
/// took; a device error aborts the calibration.
pub fn calibrate<E>(
    fingerprint: &str,
    mut cpu: impl FnMut(usize) -> f64,
    mut device: impl FnMut(usize) -> Result<f64, E>,
) -> Result<Crossover, E> {
    let mut c = Vec::new();
    let mut d = Vec::new();
    for &n in &CALIBRATION_SIZES {
        device(n)?; // warm-up: buffers grown, code loaded
        let mut best_d = f64::MAX;
        let mut best_c = f64::MAX;
        for _ in 0..3 {
            best_d = best_d.min(device(n)?);
            best_c = best_c.min(cpu(n));
        }
        c.push(best_c);
        d.push(best_d);
    }
    Ok(from_timings(fingerprint, &CALIBRATION_SIZES, &c, &d))
}

/// Held by the unit tests that pin, or that need no pin to be in place, while they run.
#[cfg(test)]
pub(crate) static PIN_TEST_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The crossover pinned by [`pin`], if any.
static PINNED: std::sync::Mutex<Option<Crossover>> = std::sync::Mutex::new(None);

/// Pins the crossover every auto-routed device batch in this process uses, in place of the
/// calibrated one (`None` returns to calibration). For tests and benchmarks that must reach a
/// given plan, such as a CPU+GPU split on a small batch; routing never changes a verdict.
pub fn pin(crossover: Option<Crossover>) {
    *PINNED.lock().unwrap_or_else(|e| e.into_inner()) = crossover;
}

/// The crossover pinned by [`pin`], if any.
pub fn pinned() -> Option<Crossover> {
    PINNED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A stable fingerprint of the hardware a crossover applies to.
pub fn fingerprint(device: &str, cpu_model: &str, cores: usize) -> String {
    // FNV-1a: stable across runs and builds (std's hasher is randomly keyed).
    let mut h: u64 = 0xcbf29ce484222325;
    for b in device.bytes().chain([0]).chain(cpu_model.bytes()).chain([0]).chain(cores.to_le_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// The cache folder: `$XDG_CACHE_HOME/parthenon`, else `$HOME/.cache/parthenon`; `None` (no
/// cache) when neither is an absolute path. An empty or relative value is ignored, as the XDG
/// base directory specification asks: it would put the cache (compiled kernels among it, code
/// that decides verdicts) under whatever folder the process was started in.
pub fn cache_dir() -> Option<PathBuf> {
    cache_dir_from(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
}

/// [`cache_dir`] with `xdg_cache_home` and `home` as the values of those variables.
fn cache_dir_from(xdg_cache_home: Option<std::ffi::OsString>, home: Option<std::ffi::OsString>) -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    let base = xdg_cache_home.and_then(absolute).or_else(|| home.and_then(absolute).map(|h| h.join(".cache")))?;
    Some(base.join("parthenon"))
}

fn cache_file(dir: &std::path::Path, fingerprint: &str) -> PathBuf {
    dir.join(format!("verify-crossover-{fingerprint}.json"))
}

/// The cached crossover for `fingerprint`, if one was stored and parses.
pub fn load_cached(fingerprint: &str) -> Option<Crossover> {
    load_cached_in(&cache_dir()?, fingerprint)
}

fn load_cached_in(dir: &std::path::Path, fingerprint: &str) -> Option<Crossover> {
    let text = std::fs::read_to_string(cache_file(dir, fingerprint)).ok()?;
    let c: Crossover = serde_json::from_str(&text).ok()?;
    (c.fingerprint == fingerprint).then_some(c)
}

/// Stores `c` in the cache (best effort: a read-only home only costs a recalibration).
pub fn store_cached(c: &Crossover) {
    if let Some(dir) = cache_dir() {
        store_cached_in(&dir, c);
    }
}

fn store_cached_in(dir: &std::path::Path, c: &Crossover) {
    let path = cache_file(dir, &c.fingerprint);
    if let Err(e) = write_cache_file(&path, &serde_json::to_vec_pretty(c).unwrap_or_default()) {
        tracing::warn!(path = %path.display(), error = %e, "could not cache the verify crossover");
    }
}

/// Writes a cache file whole: to a name of this process's first, then renamed over `path`, so a
/// reader (another process, too) sees the old file or the complete new one, never a part. When
/// the write or the rename fails, the temporary file is removed: nothing is left behind.
pub(crate) fn write_cache_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        // Best effort: the write may have failed before creating it.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_serves_from_the_first_size_where_it_stays_faster() {
        let sizes = [64, 256, 1024, 4096];
        // CPU 10 µs/item; device 1 ms fixed + 1 µs/item.
        let cpu: Vec<f64> = sizes.iter().map(|&n| n as f64 * 10e-6).collect();
        let dev: Vec<f64> = sizes.iter().map(|&n| 1e-3 + n as f64 * 1e-6).collect();
        let c = from_timings("fp", &sizes, &cpu, &dev);
        assert_eq!(c.min_device_batch, 256);
        assert_eq!(c.plan(64), Plan::Cpu);
        assert_eq!(c.plan(300), Plan::Device);
        // Rates at 4096: CPU 100k/s, device ~803k/s: the CPU adds > 5%, so large batches split.
        match c.plan(100_000) {
            Plan::Split { device } => assert!((85_000..95_000).contains(&device), "{device}"),
            p => panic!("expected a split, got {p:?}"),
        }
    }

    #[test]
    fn a_device_never_faster_is_never_used() {
        let sizes = [64, 1024];
        let c = from_timings("fp", &sizes, &[1e-4, 1e-3], &[1e-3, 2e-3]);
        assert_eq!(c.min_device_batch, usize::MAX);
        assert_eq!(c.plan(1 << 20), Plan::Cpu);
    }

    #[test]
    fn calibration_propagates_device_errors() {
        let r: Result<Crossover, &str> = calibrate("fp", |_| 1.0, |_| Err("lost device"));
        assert_eq!(r.unwrap_err(), "lost device");
    }

    #[test]
    fn cache_round_trips_through_a_folder() {
        // A folder of its own, not the environment: setting XDG_CACHE_HOME would race every
        // other test thread that reads it (or calls getenv from C).
        let dir = std::env::temp_dir().join(format!("parthenon-route-test-{}", std::process::id()));
        let c = from_timings("abc", &[64, 1024], &[1e-3, 1e-2], &[1e-2, 1e-3]);
        store_cached_in(&dir, &c);
        // serde_json may round a float's last bit; the thresholds are what must survive.
        let back = load_cached_in(&dir, "abc").expect("cached");
        assert_eq!((back.min_device_batch, back.split_from), (c.min_device_batch, c.split_from));
        assert!((back.device_share - c.device_share).abs() < 1e-12);
        assert_eq!(load_cached_in(&dir, "other"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_cache_write_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("parthenon-route-tmp-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // The target is a folder that is not empty: the temporary file is written, the rename
        // over it fails.
        let target = dir.join("verify-crossover-x.json");
        std::fs::create_dir_all(target.join("occupied")).unwrap();
        assert!(write_cache_file(&target, b"{}").is_err());
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, [std::ffi::OsString::from("verify-crossover-x.json")], "only the folder is left");
        // And a write that succeeds leaves only the file.
        let good = dir.join("good.json");
        write_cache_file(&good, b"{}").unwrap();
        assert_eq!(std::fs::read(&good).unwrap(), b"{}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_pinned_crossover_is_returned_until_unpinned() {
        // The only test in the crate that pins; tests that need no pin hold the lock too.
        let _pin = PIN_TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let c = Crossover {
            fingerprint: "pinned".into(),
            min_device_batch: 1,
            split_from: 1,
            device_share: 0.5,
            cpu_rate: 1.0,
            device_rate: 1.0,
        };
        pin(Some(c.clone()));
        assert_eq!(pinned(), Some(c.clone()));
        assert_eq!(c.plan(10), Plan::Split { device: 5 });
        pin(None);
        assert_eq!(pinned(), None);
    }

    #[test]
    fn the_crossover_override_takes_whole_numbers_only() {
        assert_eq!(crossover_override(None), Ok(None));
        assert_eq!(crossover_override(Some("")), Ok(None));
        assert_eq!(crossover_override(Some("  ")), Ok(None));
        assert_eq!(crossover_override(Some("0")), Ok(Some(0)));
        assert_eq!(crossover_override(Some(" 4096\n")), Ok(Some(4096)));
        for bad in ["4k", "-1", "1e3", "lots", "12 34"] {
            let warning = crossover_override(Some(bad)).expect_err(bad);
            assert!(warning.starts_with(&format!("PARTHENON_GPU_CROSSOVER={bad:?} ignored")), "{warning}");
            assert!(warning.contains("whole number"), "{warning}");
        }
    }

    #[test]
    fn the_cache_dir_is_absolute_or_none() {
        let dir = |xdg: Option<&str>, home: Option<&str>| cache_dir_from(xdg.map(Into::into), home.map(Into::into));
        assert_eq!(dir(Some("/x/cache"), Some("/home/u")), Some(PathBuf::from("/x/cache/parthenon")));
        assert_eq!(dir(None, Some("/home/u")), Some(PathBuf::from("/home/u/.cache/parthenon")));
        // An empty or relative XDG_CACHE_HOME is ignored for HOME's.
        assert_eq!(dir(Some(""), Some("/home/u")), Some(PathBuf::from("/home/u/.cache/parthenon")));
        assert_eq!(dir(Some("cache"), Some("/home/u")), Some(PathBuf::from("/home/u/.cache/parthenon")));
        // No absolute folder at all: no cache, never one under the current folder.
        assert_eq!(dir(None, Some("")), None);
        assert_eq!(dir(Some(""), Some("")), None);
        assert_eq!(dir(Some("rel"), Some("home")), None);
        assert_eq!(dir(None, None), None);
    }

    #[test]
    fn fingerprint_is_stable_and_input_sensitive() {
        assert_eq!(fingerprint("d", "c", 2), fingerprint("d", "c", 2));
        assert_ne!(fingerprint("d", "c", 2), fingerprint("d", "c", 4));
    }
}
