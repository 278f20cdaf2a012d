//! AES-GCM (AES-256 and AES-128, 96-bit nonces, 128-bit tags) on the fastest backend present.
//!
//! # What it computes
//!
//! Exactly NIST SP 800-38D GCM: counter mode from `J0 + 1` where `J0 = nonce || 0^31 || 1`, the
//! 32-bit counter wrapping as `inc32`, and the tag `GHASH_H(A, C) ⊕ E_K(J0)` over the associated
//! data `A` and ciphertext `C`. Every backend computes the same bytes; tests hold each one to the
//! Wycheproof vectors and to *ring*, byte for byte, for every length 0..=2048.
//!
//! # Backends
//!
//! | backend | instructions | blocks in flight |
//! | --- | --- | --- |
//! | [`Backend::VaesAvx512`] | VAES + VPCLMULQDQ on zmm (AVX-512F/BW/VL) | 32 |
//! | [`Backend::VaesAvx2`] | VAES + VPCLMULQDQ on ymm (AVX2) | 16 |
//! | [`Backend::AesNi`] | AES-NI + PCLMULQDQ on xmm | 8 |
//! | [`Backend::Portable`] | RustCrypto `aes` + `ghash` (constant-time software) | – |
//!
//! The vector backends interleave CTR encryption with GHASH in one pass over the buffer and
//! reduce once per chunk using precomputed powers of `H`; they are written with `std::arch`
//! intrinsics (no assembly, no C). [`Aes256Gcm::new`] takes the fastest backend the CPU runs;
//! [`Aes256Gcm::with_backend`] takes exactly the one named or fails with
//! [`Error::BackendUnavailable`] naming what the CPU lacks — never a silent fallback.
//! [`Engine::cipher`](crate::Engine::cipher) uses the engine's route for [`crate::Job::Cipher`].
//!
//! # Opening
//!
//! [`Aes256Gcm::open_in_place_detached`] decrypts and authenticates in one pass. If the tag does
//! not match, the keystream is applied again before returning [`Error::Authentication`], so the
//! buffer holds **the ciphertext it was given**, byte for byte — never unauthenticated plaintext.
//! The tag comparison is constant-time.
//!
//! # Parallelism
//!
//! [`Aes256Gcm::seal_many`] / [`Aes256Gcm::open_many`] spread independent messages over
//! threads. A single buffer of at least [`PARALLEL_MIN`] bytes is split across up to
//! [`Aes256Gcm::threads`] threads (one per MiB) (see [`parallel`](self) docs in the source): the counters and
//! the GHASH partial sums are recombined with powers of `H`, so the output is byte-identical to
//! the sequential pass. [`Aes256Gcm::new`] uses one thread (a library does not start threads
//! unasked); [`Aes256Gcm::with_threads`] or [`Engine::cipher`](crate::Engine::cipher) (all usable
//! cores) change that. The helper threads for one large buffer are started by the first such
//! call and kept, asleep, for later ones (one process-wide set, used by one call at a time; a
//! concurrent call starts its own for the call).
//!
//! # Limits and errors
//!
//! A message may hold at most `2^36 - 32` bytes and associated data `2^61 - 1` bytes
//! ([`Error::MessageTooLong`], [`Error::AadTooLong`]); both are checked before any byte changes.
//! The RustCrypto `aead` 0.6 traits ([`aead::KeyInit`], [`aead::AeadCore`],
//! [`aead::AeadInOut`], and through it `AeadInPlace`) are implemented, so the types drop into
//! code written for the `aes-gcm` crate.

mod engine_ext;
mod kernel;
mod parallel;
mod portable;
mod traits;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use crate::engine::Backend;
pub use parallel::{threads_for, PARALLEL_MIN};

use kernel::{tags_equal, AesKey, Kernel, A_MAX, P_MAX};

/// The longest message GCM seals or opens: 2^36 − 32 bytes (NIST SP 800-38D); longer ones are
/// [`Error::MessageTooLong`].
pub const MAX_MESSAGE_BYTES: u64 = P_MAX;
use std::sync::Arc;

/// A GCM authentication tag.
pub type Tag = [u8; 16];

/// A 96-bit GCM nonce. Never seal two messages with the same key and nonce.
pub type Nonce = [u8; 12];

/// Errors of the cipher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The tag does not match: wrong key, nonce, associated data, ciphertext or tag.
    #[error("authentication failed: the tag does not match the key, nonce, associated data and ciphertext; the buffer holds the unchanged ciphertext")]
    Authentication,
    /// The message is longer than GCM allows under one nonce.
    #[error("message of {len} bytes exceeds GCM's limit of {max} bytes under one nonce")]
    MessageTooLong {
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The associated data is longer than GCM allows.
    #[error("associated data of {len} bytes exceeds GCM's limit of {max} bytes")]
    AadTooLong {
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The requested backend cannot run on this CPU.
    #[error("cipher backend `{backend}` is unavailable: {reason}")]
    BackendUnavailable {
        /// The backend.
        backend: Backend,
        /// What the CPU lacks.
        reason: String,
    },
    /// The backend serves another job.
    #[error("`{backend}` is not a cipher backend; cipher backends: vaes-avx512, vaes-avx2, aes-ni, portable")]
    NotACipherBackend {
        /// The backend.
        backend: Backend,
    },
    /// One message of a batch ([`Aes256Gcm::seal_many`]) failed; nothing in the batch changed.
    #[error("message {index} of the batch: {source}")]
    InBatch {
        /// Its index in the batch.
        index: usize,
        /// Why.
        source: Box<Error>,
    },
}

/// One message of a batch: sealed in place by `seal_many` (which writes `tag`), opened in place
/// by `open_many` (which checks `tag`).
#[derive(Debug)]
pub struct Message<'a> {
    /// The nonce.
    pub nonce: Nonce,
    /// Associated data (authenticated, not encrypted).
    pub aad: &'a [u8],
    /// Plaintext to seal, or ciphertext to open, in place.
    pub buf: &'a mut [u8],
    /// The tag: output of sealing, input of opening.
    pub tag: Tag,
}

fn check_lengths(aad: &[u8], buf: &[u8]) -> Result<(), Error> {
    if buf.len() as u64 > P_MAX {
        return Err(Error::MessageTooLong { len: buf.len() as u64, max: P_MAX });
    }
    if aad.len() as u64 > A_MAX {
        return Err(Error::AadTooLong { len: aad.len() as u64, max: A_MAX });
    }
    Ok(())
}

/// The shared inside of both key sizes.
#[derive(Clone)]
struct Gcm {
    kernel: Arc<dyn Kernel>,
    threads: usize,
}

impl Gcm {
    fn new(key: AesKey<'_>, backend: Backend) -> Result<Gcm, Error> {
        Ok(Gcm { kernel: Arc::from(kernel::build(backend, key)?), threads: 1 })
    }

    fn seal(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Result<Tag, Error> {
        check_lengths(aad, buf)?;
        Ok(self.seal_unchecked(nonce, aad, buf, self.threads))
    }

    fn seal_unchecked(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8], threads: usize) -> Tag {
        if threads_for(buf.len(), threads) > 1 {
            parallel::crypt_message(&*self.kernel, false, nonce, aad, buf, threads)
        } else {
            self.kernel.seal_message(nonce, aad, buf)
        }
    }

    fn open(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8], tag: &Tag, threads: usize) -> Result<(), Error> {
        check_lengths(aad, buf)?;
        let expected = if threads_for(buf.len(), threads) > 1 {
            parallel::crypt_message(&*self.kernel, true, nonce, aad, buf, threads)
        } else {
            self.kernel.open_message(nonce, aad, buf)
        };
        if tags_equal(&expected, tag) {
            Ok(())
        } else {
            // Put the ciphertext back: CTR is its own inverse.
            self.seal_unchecked(nonce, aad, buf, threads);
            Err(Error::Authentication)
        }
    }

    fn seal_many(&self, msgs: &mut [Message<'_>]) -> Result<(), Error> {
        for (index, m) in msgs.iter().enumerate() {
            check_lengths(m.aad, m.buf).map_err(|e| Error::InBatch { index, source: Box::new(e) })?;
        }
        parallel::for_each_group(msgs, self.threads, |_, m| {
            m.tag = self.seal_unchecked(&m.nonce, m.aad, m.buf, 1);
        });
        Ok(())
    }

    fn open_many(&self, msgs: &mut [Message<'_>]) -> Vec<Result<(), Error>> {
        let mut slots: Vec<(&mut Message<'_>, Result<(), Error>)> = msgs.iter_mut().map(|m| (m, Ok(()))).collect();
        parallel::for_each_group(&mut slots, self.threads, |_, (m, r)| {
            *r = self.open(&m.nonce, m.aad, m.buf, &m.tag, 1);
        });
        slots.into_iter().map(|(_, r)| r).collect()
    }
}

macro_rules! aes_gcm_type {
    ($name:ident, $bytes:literal, $bits:literal, $variant:ident) => {
        #[doc = concat!("AES-", $bits, "-GCM with a ", $bytes, "-byte key, 96-bit nonces and 128-bit tags (see the [module docs](self)).")]
        #[derive(Clone)]
        pub struct $name {
            inner: Gcm,
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("backend", &self.backend())
                    .field("threads", &self.inner.threads)
                    .finish_non_exhaustive()
            }
        }

        impl $name {
            /// The key on the fastest backend this CPU runs, one thread.
            pub fn new(key: &impl KeyBytes<$bytes>) -> Self {
                let backend = kernel::fastest();
                match Gcm::new(AesKey::$variant(key.key_bytes()), backend) {
                    Ok(inner) => $name { inner },
                    // `fastest` only returns backends whose check passed, and the portable
                    // backend always builds.
                    Err(_) => $name { inner: Gcm { kernel: Arc::from(portable::new(AesKey::$variant(key.key_bytes()))), threads: 1 } },
                }
            }

            /// The key on exactly `backend`, or why it cannot run here.
            pub fn with_backend(key: &impl KeyBytes<$bytes>, backend: Backend) -> Result<Self, Error> {
                Ok($name { inner: Gcm::new(AesKey::$variant(key.key_bytes()), backend)? })
            }

            /// Use up to `threads` threads for buffers of at least [`PARALLEL_MIN`] bytes and for
            /// batches (`0` is taken as 1).
            pub fn with_threads(mut self, threads: usize) -> Self {
                self.inner.threads = threads.max(1);
                self
            }

            /// The backend doing the work.
            pub fn backend(&self) -> Backend {
                self.inner.kernel.backend()
            }

            /// Threads used for large buffers and batches.
            pub fn threads(&self) -> usize {
                self.inner.threads
            }

            /// Encrypts `buf` in place and returns the tag over `aad` and the ciphertext.
            pub fn seal_in_place_detached(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Result<Tag, Error> {
                self.inner.seal(nonce, aad, buf)
            }

            /// Authenticates and decrypts `buf` in place. On [`Error::Authentication`] the
            /// buffer holds the ciphertext it was given (see the module docs).
            pub fn open_in_place_detached(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8], tag: &Tag) -> Result<(), Error> {
                self.inner.open(nonce, aad, buf, tag, self.inner.threads)
            }

            /// Seals every message (writing its `tag`) across [`Self::threads`] threads. Lengths
            /// are checked first: on error nothing was encrypted.
            pub fn seal_many(&self, msgs: &mut [Message<'_>]) -> Result<(), Error> {
                self.inner.seal_many(msgs)
            }

            /// Opens every message across [`Self::threads`] threads; one verdict per message, in
            /// order. A message that fails holds its ciphertext, unchanged.
            pub fn open_many(&self, msgs: &mut [Message<'_>]) -> Vec<Result<(), Error>> {
                self.inner.open_many(msgs)
            }
        }
    };
}

/// Key bytes of a fixed length: `[u8; N]`, or the `aead` crate's `Key<…>` array.
pub trait KeyBytes<const N: usize> {
    /// The key.
    fn key_bytes(&self) -> &[u8; N];
}

impl<const N: usize> KeyBytes<N> for [u8; N] {
    fn key_bytes(&self) -> &[u8; N] {
        self
    }
}

impl KeyBytes<32> for aead::array::Array<u8, aead::consts::U32> {
    fn key_bytes(&self) -> &[u8; 32] {
        self.as_ref()
    }
}

impl KeyBytes<16> for aead::array::Array<u8, aead::consts::U16> {
    fn key_bytes(&self) -> &[u8; 16] {
        self.as_ref()
    }
}

aes_gcm_type!(Aes256Gcm, 32, "256", K256);
aes_gcm_type!(Aes128Gcm, 16, "128", K128);

/// Every cipher backend this CPU runs, fastest first.
pub fn backends_present() -> Vec<Backend> {
    kernel::ORDER.into_iter().filter(|b| kernel::check(*b).is_ok()).collect()
}

/// `Ok` when `backend` is a cipher backend this CPU runs, else why not.
pub fn check_backend(backend: Backend) -> Result<(), Error> {
    kernel::check(backend)
}

/// The CPU features (std's names, comma-separated) the kernel of cipher `backend` is compiled
/// for; `None` for the portable backend, a backend that is no cipher, or a CPU that is not
/// x86-64. The engine's routing asks for exactly these ([`crate::Backend::presence`]).
pub fn kernel_features(backend: Backend) -> Option<&'static str> {
    kernel::features(backend)
}
