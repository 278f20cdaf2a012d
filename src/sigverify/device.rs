//! The device (GPU) path of verification: the one place the dispatcher in [`super`] calls for a
//! [`crate::Backend::Cuda`] or [`crate::Backend::Opencl`] route.
//!
//! Contract: [`try_verify`] either returns the verdicts the device computed, one per item, equal
//! to [`super::cpu::verify_one`] on every item, or a [`DeviceFault`] saying why the device could
//! not; the dispatcher then verifies the batch on the CPU. A fault is never a verdict.
//!
//! No device kernel is wired in yet: every call returns [`DeviceFault::NotBuilt`].

use super::{Batch, Rules, Verdicts};
use crate::engine::{Backend, Engine, Job};

/// Why the device path produced no verdicts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceFault {
    /// The device verification path for this backend is not part of this build.
    #[error("device verification on `{backend}` is not built into this binary")]
    NotBuilt {
        /// The backend routed for verification.
        backend: Backend,
    },
}

/// Verifies `batch` under `rules` on the device the engine routes [`Job::Verify`] to.
/// Currently always [`DeviceFault::NotBuilt`].
pub(crate) fn try_verify(engine: &Engine, batch: &Batch, rules: Rules) -> Result<Verdicts, DeviceFault> {
    let _ = (batch, rules);
    Err(DeviceFault::NotBuilt { backend: engine.backend(Job::Verify) })
}
