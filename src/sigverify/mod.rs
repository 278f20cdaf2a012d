//! Batch signature verification: Ed25519 and BIP-340 Schnorr (secp256k1), one verdict per
//! signature, in input order.
//!
//! # Contract
//!
//! [`crate::Engine::verify_with`] takes a [`Batch`] (items of either scheme, mixed freely) and a
//! [`Rules`] and returns [`Verdicts`]: exactly one `bool` per item, `true` iff that item verifies
//! under the named rule. The verdict of an item never depends on the other items of the batch, on
//! the batch size, on the thread count or on the backend: every backend computes the function
//! [`cpu::verify_one`] computes, item by item. Batch verification is an optimisation of that
//! function, never a different one (see [`cpu`] for the argument per rule).
//!
//! # Rules
//!
//! - Ed25519 under [`Rules::Zip215`] (the default): the verdicts of ed25519-zebra 5 (ZIP-215).
//!   Public key `A` and nonce `R` are decoded permissively (non-canonical `y` and "negative zero"
//!   accepted), `s` must be canonical (`s < ℓ`), and the cofactored equation
//!   `[8][s]B = [8]R + [8][k]A` must hold, `k = SHA-512(R_bytes ‖ A_bytes ‖ M) mod ℓ`.
//!   Cofactored verification is what makes batch and single verification agree on every input.
//! - Ed25519 under [`Rules::Strict`]: the verdicts of ed25519-dalek 3 `verify_strict`: `s < ℓ`,
//!   `A` and `R` decodable and not of small order, and the *cofactorless* equation holds with the
//!   recomputed `R` compared byte-for-byte to `R_bytes` (so a non-canonical `R` never verifies).
//! - BIP-340 (one rule, [`Rules`] is ignored): the verdicts of libsecp256k1
//!   `secp256k1_schnorrsig_verify`, messages of any length: `P = lift_x(pk)` (x < p, on the curve),
//!   `r < p`, `s < n`, `e = H_BIP0340/challenge(r ‖ pk ‖ m) mod n`, `R = [s]G − [e]P` not infinity,
//!   `y(R)` even, `x(R) = r`.
//!
//! `docs/rules.md` lists the edge cases each rule accepts and rejects, with the test that pins it.
//!
//! # Backends and faults
//!
//! The route of [`crate::Job::Verify`] decides: [`crate::Backend::Cpu`] runs [`cpu::verify_batch`]
//! over the cores the process may use, on our AVX-512 IFMA arithmetic where the CPU has it and on
//! curve25519-dalek/k256 elsewhere, or everywhere when the environment variable
//! `PARTHENON_NO_IFMA=1` ([`cpu::NO_IFMA_ENV`]) is set (same verdicts either way). A GPU route goes through the device path; if the device
//! fails (not built, lost, out of memory, ...), the failure is logged at `warn`, counted in
//! [`stats`]`().device_fallbacks`, and the batch is verified on the CPU: a device fault is never
//! turned into a verdict.
//!
//! An *auto* GPU route never makes a batch wait for the device's first-time setup (kernel build:
//! about half a minute for CUDA without a cached CUBIN; crossover calibration: seconds): until the
//! device is ready, its batches are verified on the CPU (not a fault: not warned, not counted)
//! while the setup runs once in the background; afterwards they follow the calibrated crossover.
//! A setup that failed for good (no device, kernels refused) leaves auto-routed batches on the
//! CPU with one warning for the process. A *forced* route, and an auto one with the CPU backend
//! forbidden, sends every batch to the device: it waits for the setup and reports a failed one
//! as a fault for every batch (the CPU fallback above, warned and counted). [`Engine::prepare_verify`] performs the setup and waits
//! for it (benchmarks, tests); [`Engine::warm_up_verify`] starts it without waiting (the node, at
//! startup). The device module's docs (`src/sigverify/device/mod.rs`) have the details.
//!
//! # Errors
//!
//! Only [`Batch::push`] fails: a public key or signature of the wrong length is refused
//! with [`Error`] naming the item index, the field and the lengths. Verification itself cannot
//! fail: every well-formed item gets a verdict.

mod batch;
pub mod cpu;
mod device;
pub mod gpu;
mod verdicts;

pub use batch::Batch;
pub use device::DeviceFault;
pub use verdicts::Verdicts;

use crate::engine::{Backend, Engine, Job};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

/// A signature scheme. Serde and command-line names: `ed25519`, `schnorr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scheme {
    /// Ed25519 (RFC 8032 signatures over edwards25519), verified under a [`Rules`].
    #[serde(rename = "ed25519")]
    Ed25519,
    /// BIP-340 Schnorr signatures over secp256k1 with x-only public keys.
    #[serde(rename = "schnorr")]
    Bip340,
}

impl Scheme {
    /// The scheme's name on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Ed25519 => "ed25519",
            Scheme::Bip340 => "schnorr",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "ed25519" => Ok(Scheme::Ed25519),
            "schnorr" | "bip340" => Ok(Scheme::Bip340),
            _ => Err(Error::UnknownScheme { name: s.to_string() }),
        }
    }
}

/// The Ed25519 rule set (BIP-340 has exactly one rule and ignores this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rules {
    /// ZIP-215: permissive point decoding, canonical `s`, cofactored equation; = ed25519-zebra.
    #[default]
    Zip215,
    /// Canonical `s`, no small-order `A` or `R`, cofactorless equation with `R` compared as
    /// bytes; = ed25519-dalek `verify_strict`.
    Strict,
}

impl Rules {
    /// The rule's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Rules::Zip215 => "zip215",
            Rules::Strict => "strict",
        }
    }
}

impl fmt::Display for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Rules {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "zip215" => Ok(Rules::Zip215),
            "strict" => Ok(Rules::Strict),
            _ => Err(Error::UnknownRules { name: s.to_string() }),
        }
    }
}

/// Errors of this module: malformed items, unknown names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A field of an item has the wrong length.
    #[error("item {index}: {field} is {got} bytes, {scheme} needs {want}")]
    WrongLength {
        /// Index the item would have had in the batch.
        index: usize,
        /// The scheme of the item.
        scheme: Scheme,
        /// `pubkey` or `sig`.
        field: &'static str,
        /// Bytes given.
        got: usize,
        /// Bytes required.
        want: usize,
    },
    /// A scheme name that does not exist.
    #[error("unknown scheme `{name}`; known: ed25519, schnorr")]
    UnknownScheme {
        /// The name given.
        name: String,
    },
    /// A rule name that does not exist.
    #[error("unknown rules `{name}`; known: zip215, strict")]
    UnknownRules {
        /// The name given.
        name: String,
    },
}

static DEVICE_FALLBACKS: AtomicU64 = AtomicU64::new(0);
static DEVICE_BATCHES: AtomicU64 = AtomicU64::new(0);
static BATCHES: AtomicU64 = AtomicU64::new(0);
static ITEMS: AtomicU64 = AtomicU64::new(0);

/// Process-wide counters of this module (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Batches verified through [`Engine::verify_with`].
    pub batches: u64,
    /// Items verified through [`Engine::verify_with`].
    pub items: u64,
    /// Batches routed to a device that failed and were verified on the CPU instead.
    pub device_fallbacks: u64,
    /// Batches a device verified: whole, or its share of a CPU+GPU split.
    #[serde(default)]
    pub device_batches: u64,
}

/// A snapshot of the process-wide counters.
pub fn stats() -> Stats {
    Stats {
        batches: BATCHES.load(Ordering::Relaxed),
        items: ITEMS.load(Ordering::Relaxed),
        device_fallbacks: DEVICE_FALLBACKS.load(Ordering::Relaxed),
        device_batches: DEVICE_BATCHES.load(Ordering::Relaxed),
    }
}

impl Engine {
    /// Verifies every item of `batch` under the default rules ([`Rules::Zip215`] for Ed25519).
    pub fn verify(&self, batch: &Batch) -> Verdicts {
        self.verify_with(batch, Rules::default())
    }

    /// Verifies every item of `batch` under `rules`, on the backend routed for
    /// [`Job::Verify`]. A device failure falls back to the CPU (logged, counted in [`stats`]). An
    /// auto route to a device that is not ready yet verifies on the CPU and prepares the device
    /// in the background, unless the CPU backend is forbidden (see the module docs).
    pub fn verify_with(&self, batch: &Batch, rules: Rules) -> Verdicts {
        BATCHES.fetch_add(1, Ordering::Relaxed);
        ITEMS.fetch_add(batch.len() as u64, Ordering::Relaxed);
        match self.backend(Job::Verify) {
            Backend::Cuda | Backend::Opencl => match device::try_verify(self, batch, rules) {
                Ok((v, served)) if v.len() == batch.len() => {
                    if served == device::Served::Device {
                        DEVICE_BATCHES.fetch_add(1, Ordering::Relaxed);
                    }
                    return v;
                }
                Ok((v, _)) => {
                    DEVICE_FALLBACKS.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        got = v.len(),
                        want = batch.len(),
                        "device returned the wrong number of verdicts; verifying on the CPU"
                    );
                }
                Err(fault) => {
                    DEVICE_FALLBACKS.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(reason = %fault, items = batch.len(), "device verification failed; verifying on the CPU");
                }
            },
            _ => {}
        }
        cpu::verify_batch(batch, rules, cpu_threads(self))
    }

    /// Prepares the device [`Job::Verify`] is routed to for batches under `rules`, and waits
    /// for it: builds the device's verifier (compiling or loading its kernels: about half a
    /// minute for CUDA without a cached CUBIN) and, for an auto route, finds the CPU/GPU
    /// crossover (cached, or calibrated now: seconds). Afterwards auto-routed batches follow the
    /// crossover from the first one. Returns the fault of a setup that failed (then auto-routed
    /// batches are verified on the CPU); `Ok` at once for a CPU route or a device already
    /// prepared.
    pub fn prepare_verify(&self, rules: Rules) -> Result<(), DeviceFault> {
        device::prepare(self, rules)
    }

    /// Starts preparing the device [`Job::Verify`] is routed to for batches under `rules` (as
    /// [`Engine::prepare_verify`] does) on a background thread, unless it is prepared or being
    /// prepared, and returns at once. A failure is logged; batches meanwhile go to the CPU.
    pub fn warm_up_verify(&self, rules: Rules) {
        device::warm_up(self, rules)
    }
}

/// The number of CPU threads verification may use: the cores the process may run on.
fn cpu_threads(engine: &Engine) -> usize {
    let usable = engine.capabilities().cpu.cores_usable;
    let os = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    usable.clamp(1, os.max(1))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [Scheme::Ed25519, Scheme::Bip340] {
            assert_eq!(s.name().parse::<Scheme>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.name()));
        }
        for r in [Rules::Zip215, Rules::Strict] {
            assert_eq!(r.name().parse::<Rules>().unwrap(), r);
        }
        assert!("rsa".parse::<Scheme>().is_err());
        assert_eq!(Rules::default(), Rules::Zip215);
    }

    /// This machine's capabilities (DPDK not probed), claiming one CUDA device: on a machine
    /// without one, a route to it fails at its first use. `(capabilities, whether a real CUDA
    /// device was found)`.
    pub(crate) fn claiming_a_cuda_device() -> (crate::detect::Capabilities, bool) {
        use crate::detect::{self, CudaDevice, CudaInfo, DetectOptions, Probe};
        let mut caps = detect::detect_with(&DetectOptions { skip_dpdk: true, ..Default::default() });
        let real_device = caps.cuda.is_available();
        caps.cuda = Probe::Available(CudaInfo {
            driver_version: 12080,
            nvrtc_version: (12, 8),
            devices: vec![CudaDevice {
                ordinal: 0,
                name: "test device".into(),
                compute_capability: (9, 0),
                sm_count: 1,
                memory_bytes: 1 << 30,
            }],
        });
        (caps, real_device)
    }

    /// A route to a device whose path fails gives CPU verdicts and counts a fallback.
    #[test]
    fn device_fault_falls_back_to_cpu_and_is_counted() {
        // Claim a CUDA device that is not there, so the device path must fail. On a machine with
        // a real one the device succeeds instead, and only the verdicts are checked.
        let (caps, real_device) = claiming_a_cuda_device();
        let engine = Engine::builder().capabilities(caps).force(Backend::Cuda).build().unwrap();
        assert_eq!(engine.backend(Job::Verify), Backend::Cuda);
        let mut batch = Batch::new();
        // RFC 8032 test 1 (empty message), then the same with a flipped signature bit.
        let pk = hex_array::<32>("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let sig = hex_array::<64>(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        );
        batch.push(Scheme::Ed25519, &pk, b"", &sig).unwrap();
        let mut bad = sig;
        bad[0] ^= 1;
        batch.push(Scheme::Ed25519, &pk, b"", &bad).unwrap();
        let before = stats().device_fallbacks;
        let v = engine.verify(&batch);
        assert_eq!(v.iter().collect::<Vec<_>>(), vec![true, false]);
        if !real_device {
            assert!(stats().device_fallbacks > before);
        }
    }

    fn hex_array<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).unwrap().try_into().unwrap()
    }
}
