//! sendfile/splice probe: each system call is tried once on a small anonymous file and a pipe,
//! so a seccomp policy or an exotic kernel that refuses them shows up as `Unavailable` with errno.

use super::Probe;
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;

/// What a successful sendfile or splice probe moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpliceInfo {
    /// Bytes moved by the probe call.
    pub probe_bytes: u64,
}

const PROBE: &[u8] = b"parthenon splice probe";

/// The probe's source: an anonymous file holding [`PROBE`], with no name anyone else could
/// plant a link at or find. A `memfd` (tmpfs, like a store under `/dev/shm`) where the kernel
/// allows one, else an unnamed `O_TMPFILE` in the temporary directory; never a named file, so
/// detection neither follows a planted symlink nor needs a writable directory when `memfd`
/// works.
fn temp_file() -> Result<std::fs::File, Probe<SpliceInfo>> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = match memfd_create(c"parthenon-probe", MFdFlags::MFD_CLOEXEC) {
        Ok(fd) => std::fs::File::from(fd),
        Err(memfd) => {
            let dir = std::env::temp_dir();
            std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_TMPFILE).open(&dir).map_err(
                |e| {
                    Probe::unavailable(format!(
                        "cannot create a probe file: memfd_create: {memfd}; O_TMPFILE in {}: {e}",
                        dir.display()
                    ))
                },
            )?
        }
    };
    f.write_all(PROBE).map_err(|e| Probe::unavailable(format!("write probe file: {e}")))?;
    f.rewind().map_err(|e| Probe::unavailable(format!("rewind probe file: {e}")))?;
    Ok(f)
}

/// `sendfile(2)` from a file into a pipe (the same kernel path as into a socket).
pub(super) fn probe_sendfile() -> Probe<SpliceInfo> {
    let f = match temp_file() {
        Ok(f) => f,
        Err(p) => return p,
    };
    let (rd, wr) = match nix::unistd::pipe() {
        Ok(p) => p,
        Err(e) => return Probe::refused("pipe", e as i32),
    };
    match nix::sys::sendfile::sendfile(wr.as_fd(), f.as_fd(), None, PROBE.len()) {
        Ok(n) => {
            drop(wr);
            let mut got = Vec::new();
            let _ = std::fs::File::from(rd).read_to_end(&mut got);
            if got != PROBE[..n] {
                return Probe::unavailable("sendfile moved bytes that differ from the source");
            }
            Probe::Available(SpliceInfo { probe_bytes: n as u64 })
        }
        Err(e) => Probe::refused("sendfile", e as i32),
    }
}

/// `splice(2)` from a file into a pipe.
pub(super) fn probe_splice() -> Probe<SpliceInfo> {
    use nix::fcntl::{splice, SpliceFFlags};
    let f = match temp_file() {
        Ok(f) => f,
        Err(p) => return p,
    };
    let (rd, wr) = match nix::unistd::pipe() {
        Ok(p) => p,
        Err(e) => return Probe::refused("pipe", e as i32),
    };
    let mut off: i64 = 0;
    match splice(f.as_fd(), Some(&mut off), wr.as_fd(), None, PROBE.len(), SpliceFFlags::empty()) {
        Ok(n) => {
            drop(wr);
            let mut got = Vec::new();
            let _ = std::fs::File::from(rd).read_to_end(&mut got);
            if got != PROBE[..n] {
                return Probe::unavailable("splice moved bytes that differ from the source");
            }
            Probe::Available(SpliceInfo { probe_bytes: n as u64 })
        }
        Err(e) => Probe::refused("splice", e as i32),
    }
}
