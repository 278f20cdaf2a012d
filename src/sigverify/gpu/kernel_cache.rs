//! Compiled CUDA kernels, kept on disk between runs (feature `cuda`).
//!
//! NVRTC takes about half a minute to turn the kernels into machine code for one architecture
//! (NVRTC 12.9, `sm_90`: 25–30 s on one core of the 2-core development machine), so a process
//! that compiled them at every start would make its first batch wait that long. The CUBIN is
//! stored in the cache folder ([`super::route::cache_dir`]) under a [`Key`] that names everything
//! that determines it: the assembled kernel source, the target architecture, the NVRTC options
//! and NVRTC's version. A changed source or toolkit is a different key, so a stale image is never
//! loaded.
//!
//! A cache file holds the image followed by a 32-byte BLAKE3 of the key's material and the image.
//! A file whose check fails (truncated, overwritten, written for another key) is ignored, and the
//! kernels are compiled and stored again: a bad cache costs one compile, never a wrong kernel.
//! Storing is best effort, like the crossover cache: a read-only home only costs compiles.
//!
//! The check detects damage, not tampering: a cached image is code that decides verdicts, and
//! whoever can write the cache folder can write one with a matching check. The folder must be
//! as private as the node's binary and environment (`XDG_CACHE_HOME` moves it; with neither it
//! nor `HOME` an absolute path, nothing is cached, never a folder under the current one).

use std::path::Path;

/// Everything a compiled image depends on.
#[derive(Debug, Clone)]
pub struct Key {
    material: Vec<u8>,
}

impl Key {
    /// The key of `source` compiled for `target` (`sm_90`) with `options` by NVRTC `nvrtc`.
    pub fn new(source: &str, target: &str, options: &[&str], nvrtc: (i32, i32)) -> Key {
        let mut material = b"parthenon cuda kernel image v1\0".to_vec();
        for part in [target, &options.join(" "), &format!("{}.{}", nvrtc.0, nvrtc.1), source] {
            material.extend_from_slice(&(part.len() as u64).to_le_bytes());
            material.extend_from_slice(part.as_bytes());
        }
        Key { material }
    }

    /// The cache file's name: 128 bits of the material's BLAKE3, in hex.
    fn file_name(&self) -> String {
        let digest = blake3::hash(&self.material);
        format!("cuda-kernels-{}.cubin", &digest.to_hex()[..32])
    }

    fn check(&self, image: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&self.material);
        h.update(image);
        *h.finalize().as_bytes()
    }
}

/// The image stored for `key` in the cache folder, if there is one and its check holds.
pub fn load(key: &Key) -> Option<Vec<u8>> {
    load_in(&super::route::cache_dir()?, key)
}

/// Stores `image` for `key` in the cache folder.
pub fn store(key: &Key, image: &[u8]) {
    if let Some(dir) = super::route::cache_dir() {
        store_in(&dir, key, image)
    }
}

fn load_in(dir: &Path, key: &Key) -> Option<Vec<u8>> {
    let mut bytes = std::fs::read(dir.join(key.file_name())).ok()?;
    let at = bytes.len().checked_sub(32)?;
    let stored: [u8; 32] = bytes[at..].try_into().ok()?;
    bytes.truncate(at);
    if bytes.is_empty() || key.check(&bytes) != stored {
        tracing::warn!(file = %key.file_name(), "ignoring a cached CUDA kernel image whose check fails");
        return None;
    }
    Some(bytes)
}

fn store_in(dir: &Path, key: &Key, image: &[u8]) {
    let path = dir.join(key.file_name());
    let mut bytes = Vec::with_capacity(image.len() + 32);
    bytes.extend_from_slice(image);
    bytes.extend_from_slice(&key.check(image));
    if let Err(e) = super::route::write_cache_file(&path, &bytes) {
        tracing::warn!(path = %path.display(), error = %e, "could not cache the compiled CUDA kernels");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_round_trip_and_damage_or_another_key_is_a_miss() {
        let dir = std::env::temp_dir().join(format!("parthenon-kernel-cache-{}", std::process::id()));
        let (load, store) = (|k: &Key| load_in(&dir, k), |k: &Key, i: &[u8]| store_in(&dir, k, i));
        let key = Key::new("kernel source", "sm_90", &["--std=c++14"], (12, 9));
        assert_eq!(load(&key), None);
        store(&key, b"\x7fELF image");
        assert_eq!(load(&key).as_deref(), Some(&b"\x7fELF image"[..]));
        // Any part of the key changes the file.
        for other in [
            Key::new("kernel source!", "sm_90", &["--std=c++14"], (12, 9)),
            Key::new("kernel source", "sm_80", &["--std=c++14"], (12, 9)),
            Key::new("kernel source", "sm_90", &[], (12, 9)),
            Key::new("kernel source", "sm_90", &["--std=c++14"], (13, 0)),
        ] {
            assert_eq!(load(&other), None);
        }
        // A damaged file is a miss, and storing again repairs it.
        let file = dir.join(key.file_name());
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        assert_eq!(load(&key), None);
        std::fs::write(&file, &bytes[..10]).unwrap();
        assert_eq!(load(&key), None);
        store(&key, b"\x7fELF image");
        assert!(load(&key).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
