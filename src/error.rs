//! The engine's top-level error. Each job has its own error type with item-level context
//! (`cipher::Error`, `sigverify::Error`, `transfer::Error`); this one covers routing and wraps
//! those where a caller goes through [`crate::Engine`].

use crate::engine::{Backend, Job};

/// Routing and configuration errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A forced backend cannot run here.
    #[error("backend `{backend}` was requested for {job} but is unavailable: {reason}")]
    BackendUnavailable {
        /// The job.
        job: Job,
        /// The requested backend.
        backend: Backend,
        /// Why it cannot run (from detection).
        reason: String,
    },
    /// A backend was forced for a job it does not serve.
    #[error("backend `{backend}` serves {serves}, not {job}")]
    WrongJob {
        /// The backend.
        backend: Backend,
        /// The job it was forced for.
        job: Job,
        /// The job it serves.
        serves: Job,
    },
    /// The same backend was both forced and forbidden.
    #[error("backend `{backend}` is both forced and forbidden")]
    ConflictingOverride {
        /// The backend.
        backend: Backend,
    },
    /// Two different backends were forced for one job.
    #[error("two backends forced for {job}: `{first}` and `{second}`")]
    ForcedTwice {
        /// The job.
        job: Job,
        /// The backend forced first.
        first: Backend,
        /// The backend forced later.
        second: Backend,
    },
    /// Every backend of a job is absent or forbidden.
    #[error("no backend left for {job}: {reasons}")]
    NoBackend {
        /// The job.
        job: Job,
        /// Each backend with why it was passed over.
        reasons: String,
    },
    /// A backend name that does not exist.
    #[error("unknown backend `{name}`; known: vaes-avx512, vaes-avx2, aes-ni, portable, cuda, opencl, cpu, dpdk, io-uring, sendfile, splice, mmap, copy")]
    UnknownBackend {
        /// The name given.
        name: String,
    },
    /// A job name that does not exist.
    #[error("unknown job `{name}`; known: cipher, verify, transfer")]
    UnknownJob {
        /// The name given.
        name: String,
    },
}
