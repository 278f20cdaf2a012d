//! [`Engine::cipher`]: the cipher on the engine's route for [`Job::Cipher`].

use super::{Aes256Gcm, Error};
use crate::engine::{Engine, Job};

impl Engine {
    /// AES-256-GCM with `key` on the backend this engine routes [`Job::Cipher`] to, using all
    /// usable cores for buffers of at least [`super::PARALLEL_MIN`] bytes and for batches.
    ///
    /// Fails with [`Error::BackendUnavailable`] only when the engine was built from capabilities
    /// that claim instructions this CPU does not have (the route is re-checked against the CPU:
    /// running an absent instruction would crash).
    pub fn cipher(&self, key: &[u8; 32]) -> Result<Aes256Gcm, Error> {
        let threads = self.capabilities().cpu.cores_usable;
        Ok(Aes256Gcm::with_backend(key, self.backend(Job::Cipher))?.with_threads(threads))
    }
}
