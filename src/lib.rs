//! # parthenon
//!
//! Finds the hardware a blockchain node runs on (AES-NI/VAES, AVX-512 IFMA, CUDA and OpenCL GPUs,
//! io_uring, DPDK) and routes three jobs to the fastest backend present:
//!
//! 1. **seal/open**: AES-256-GCM authenticated encryption ([`cipher`]);
//! 2. **verify**: batch verification of Ed25519 and BIP-340 signatures, one verdict per signature
//!    ([`sigverify`]);
//! 3. **transfer**: moving stored blocks between nodes without needless copies ([`transfer`]).
//!
//! Start with [`Engine::new`] (detect and route automatically) or [`Engine::builder`] (force or
//! forbid backends), and [`Engine::report`] to see which backend serves each job and why.
//! [`detect::detect`] alone says what the machine has.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod cipher;
pub mod detect;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod engine;
mod error;
pub mod kernels;
#[cfg(feature = "node")]
pub mod node;
mod pool;
pub mod sigverify;
pub mod transfer;

pub use detect::{Capabilities, Probe};
pub use engine::{Backend, Engine, EngineBuilder, Job, Report, Route, Selection};
pub use error::Error;
