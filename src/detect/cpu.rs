//! CPU probe: instruction-set extensions the cipher and verification backends select on, and the
//! number of cores this process may use (affinity mask and cgroup quota, not the machine's total).

use serde::{Deserialize, Serialize};

/// The CPU as seen by this process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuInfo {
    /// `x86_64`, `aarch64`, ...
    pub arch: String,
    /// The model name from `/proc/cpuinfo`, when readable.
    pub model: Option<String>,
    /// Cores this process may run on: `std::thread::available_parallelism`, which honours the
    /// affinity mask and cgroup CPU quota.
    pub cores_usable: usize,
    /// Instruction-set extensions, as reported by the CPU and enabled by the OS (CPUID plus
    /// XGETBV for the AVX state).
    pub features: CpuFeatures,
}

/// Instruction-set extensions relevant to the engine. All false on non-x86 targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFeatures {
    /// AES-NI: `AESENC`/`AESDEC` on 128-bit registers.
    pub aes: bool,
    /// Carry-less multiplication (GHASH).
    pub pclmulqdq: bool,
    /// SSSE3 (`PSHUFB`: the AES-NI kernel's byte swaps). Absent from JSON written before it was
    /// reported: read as false.
    #[serde(default)]
    pub ssse3: bool,
    /// SSE4.1 (the AES-NI kernel's lane inserts and extracts); JSON name `sse4_1`.
    #[serde(default)]
    pub sse4_1: bool,
    /// AVX (the VEX encodings and 256-bit state the VAES kernels use).
    #[serde(default)]
    pub avx: bool,
    /// Vector AES on 256/512-bit registers.
    pub vaes: bool,
    /// Vector carry-less multiplication.
    pub vpclmulqdq: bool,
    /// AVX2.
    pub avx2: bool,
    /// AVX-512 Foundation.
    pub avx512f: bool,
    /// AVX-512 Vector Length extensions (512-bit instructions on 128/256-bit registers).
    pub avx512vl: bool,
    /// AVX-512 Byte and Word.
    pub avx512bw: bool,
    /// AVX-512 Integer Fused Multiply-Add (52-bit limbs; curve25519-dalek's `avx512` backend).
    pub avx512ifma: bool,
    /// SHA extensions (SHA-1/SHA-256 rounds).
    pub sha: bool,
    /// BMI2 (`MULX`, `SHLX`).
    pub bmi2: bool,
    /// ADX (`ADCX`/`ADOX`).
    pub adx: bool,
}

impl CpuFeatures {
    /// What this CPU and OS support.
    pub fn current() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            CpuFeatures {
                aes: has!("aes"),
                pclmulqdq: has!("pclmulqdq"),
                ssse3: has!("ssse3"),
                sse4_1: has!("sse4.1"),
                avx: has!("avx"),
                vaes: has!("vaes"),
                vpclmulqdq: has!("vpclmulqdq"),
                avx2: has!("avx2"),
                avx512f: has!("avx512f"),
                avx512vl: has!("avx512vl"),
                avx512bw: has!("avx512bw"),
                avx512ifma: has!("avx512ifma"),
                sha: has!("sha"),
                bmi2: has!("bmi2"),
                adx: has!("adx"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            CpuFeatures::default()
        }
    }

    /// Every feature with std's name (as in `is_x86_feature_detected!`) and whether it is
    /// present, in declaration order.
    fn table(&self) -> [(&'static str, bool); 15] {
        [
            ("aes", self.aes),
            ("pclmulqdq", self.pclmulqdq),
            ("ssse3", self.ssse3),
            ("sse4.1", self.sse4_1),
            ("avx", self.avx),
            ("vaes", self.vaes),
            ("vpclmulqdq", self.vpclmulqdq),
            ("avx2", self.avx2),
            ("avx512f", self.avx512f),
            ("avx512vl", self.avx512vl),
            ("avx512bw", self.avx512bw),
            ("avx512ifma", self.avx512ifma),
            ("sha", self.sha),
            ("bmi2", self.bmi2),
            ("adx", self.adx),
        ]
    }

    /// The names of the features present, in declaration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.table().iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect()
    }

    /// Whether the feature `name` (std's name, as in `is_x86_feature_detected!`) is present;
    /// false for a feature this struct does not report.
    pub fn has(&self, name: &str) -> bool {
        self.table().iter().any(|&(n, on)| n == name && on)
    }
}

pub(super) fn probe() -> CpuInfo {
    CpuInfo {
        arch: std::env::consts::ARCH.to_string(),
        model: model_name(),
        cores_usable: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        features: CpuFeatures::current(),
    }
}

fn model_name() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_usable_is_positive_and_features_consistent() {
        let info = probe();
        assert!(info.cores_usable >= 1);
        let f = info.features;
        // The OS-enabled AVX-512 subsets imply the foundation.
        if f.avx512vl || f.avx512bw || f.avx512ifma {
            assert!(f.avx512f, "{f:?}");
        }
    }
}
