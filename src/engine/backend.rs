//! The jobs the engine routes and the backends that can serve them: their names (as the CLI and
//! the JSON report spell them), their order of preference within a job, and what each needs of
//! the machine to be present and to be picked by `auto` (see the parent module's routing rules).

use crate::detect::Capabilities;
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The three jobs the engine routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Job {
    /// AES-256-GCM seal/open.
    Cipher,
    /// Batch signature verification.
    Verify,
    /// Block transfer between nodes.
    Transfer,
}

impl Job {
    /// All jobs, in report order.
    pub const ALL: [Job; 3] = [Job::Cipher, Job::Verify, Job::Transfer];

    /// The job's name as used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Job::Cipher => "cipher",
            Job::Verify => "verify",
            Job::Transfer => "transfer",
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Job {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        // Case-insensitive, as backend names are.
        let name = s.to_ascii_lowercase();
        Job::ALL.into_iter().find(|j| j.name() == name).ok_or_else(|| Error::UnknownJob { name: s.to_string() })
    }
}

/// Every backend of every job. Names (`Display`/`FromStr`/serde) are kebab-case: `vaes-avx512`,
/// `io-uring`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Cipher: VAES + VPCLMULQDQ on 512-bit registers (AVX-512).
    VaesAvx512,
    /// Cipher: VAES + VPCLMULQDQ on 256-bit registers (AVX2).
    VaesAvx2,
    /// Cipher: AES-NI + PCLMULQDQ on 128-bit registers.
    AesNi,
    /// Cipher: constant-time software (RustCrypto `aes` + `ghash`), for CPUs without AES-NI.
    Portable,
    /// Verify: CUDA GPUs (kernels compiled at run time by NVRTC).
    Cuda,
    /// Verify: OpenCL devices.
    Opencl,
    /// Verify: the CPU, all usable cores.
    Cpu,
    /// Transfer: DPDK kernel-bypass datagrams.
    Dpdk,
    /// Transfer: io_uring (registered buffers, SEND_ZC, batched submissions).
    IoUring,
    /// Transfer: `sendfile(2)`.
    Sendfile,
    /// Transfer: `splice(2)` through a pipe.
    Splice,
    /// Transfer: memory-mapped block files written to the socket.
    Mmap,
    /// Transfer: `read` + `write` through a 1 MiB buffer (the honest baseline).
    Copy,
}

impl Backend {
    /// Every backend, grouped by job, each job's fastest first.
    pub const ALL: [Backend; 13] = [
        Backend::VaesAvx512,
        Backend::VaesAvx2,
        Backend::AesNi,
        Backend::Portable,
        Backend::Cuda,
        Backend::Opencl,
        Backend::Cpu,
        Backend::Dpdk,
        Backend::IoUring,
        Backend::Sendfile,
        Backend::Splice,
        Backend::Mmap,
        Backend::Copy,
    ];

    /// The job this backend serves.
    pub fn job(self) -> Job {
        use Backend::*;
        match self {
            VaesAvx512 | VaesAvx2 | AesNi | Portable => Job::Cipher,
            Cuda | Opencl | Cpu => Job::Verify,
            Dpdk | IoUring | Sendfile | Splice | Mmap | Copy => Job::Transfer,
        }
    }

    /// The backends of `job`, fastest first.
    pub fn for_job(job: Job) -> impl Iterator<Item = Backend> {
        Backend::ALL.into_iter().filter(move |b| b.job() == job)
    }

    /// The backend's name as used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        use Backend::*;
        match self {
            VaesAvx512 => "vaes-avx512",
            VaesAvx2 => "vaes-avx2",
            AesNi => "aes-ni",
            Portable => "portable",
            Cuda => "cuda",
            Opencl => "opencl",
            Cpu => "cpu",
            Dpdk => "dpdk",
            IoUring => "io-uring",
            Sendfile => "sendfile",
            Splice => "splice",
            Mmap => "mmap",
            Copy => "copy",
        }
    }

    /// `Ok(())` when `caps` say this backend can run here, else why not.
    pub fn presence(self, caps: &Capabilities) -> Result<(), String> {
        use Backend::*;
        let f = &caps.cpu.features;
        let need = |pairs: &[(&str, bool)]| -> Result<(), String> {
            let missing: Vec<&str> = pairs.iter().filter(|(_, ok)| !ok).map(|(n, _)| *n).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("CPU lacks {}", missing.join(", ")))
            }
        };
        match self {
            // Exactly the features the kernel is compiled for (`cipher::x86::*::FEATURES`), so
            // the route never names a backend the cipher then refuses: the VAES kernels also use
            // AES-NI and PCLMULQDQ for their single-block edges, and a guest may be given VAES
            // with AES-NI masked, or AES-NI without SSSE3.
            VaesAvx512 | VaesAvx2 | AesNi => match crate::cipher::kernel_features(self) {
                Some(list) => need(&list.split(',').map(|n| (n, f.has(n))).collect::<Vec<_>>()),
                None => Err(format!("not an x86-64 CPU ({})", std::env::consts::ARCH)),
            },
            Portable | Cpu | Copy => Ok(()),
            Cuda => caps.cuda.check().map(drop).map_err(str::to_owned),
            Opencl => caps.opencl.check().map(drop).map_err(str::to_owned),
            Dpdk => caps.dpdk.check().map(drop).map_err(str::to_owned),
            IoUring => caps.io_uring.check().map(drop).map_err(str::to_owned),
            Sendfile => caps.sendfile.check().map(drop).map_err(str::to_owned),
            Splice => caps.splice.check().map(drop).map_err(str::to_owned),
            Mmap => Ok(()),
        }
    }

    /// `Ok(())` when `auto` may pick this present backend, else why it leaves it to an explicit
    /// choice.
    pub fn auto_eligibility(self, caps: &Capabilities) -> Result<(), String> {
        match self {
            Backend::Opencl => {
                let gpus = caps
                    .opencl
                    .available()
                    .map(|i| i.platforms.iter().flat_map(|p| &p.devices).any(|d| d.kind == "gpu"))
                    .unwrap_or(false);
                if gpus {
                    Ok(())
                } else {
                    Err("OpenCL devices are CPUs (e.g. PoCL): the native CPU backend is faster".into())
                }
            }
            Backend::Dpdk => Err("kernel bypass needs a DPDK peer on the same link: select it explicitly".into()),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let name = s.to_ascii_lowercase().replace('_', "-");
        Backend::ALL.into_iter().find(|b| b.name() == name).ok_or_else(|| Error::UnknownBackend { name: s.to_string() })
    }
}
