//! `splice`: file → pipe → socket on send, socket → pipe → file on receive; the bytes move
//! between kernel buffers by page reference where the kernel can. The pipe is grown to 1 MiB
//! (`F_SETPIPE_SZ`) when allowed. Received bodies never pass through user space, so the receiver
//! hashes the written temp file before publishing it.

use super::recv::{self, BodyMover};
use super::store::TempBlock;
use super::wire::{Digest, HEADER_LEN};
use super::{BlockId, BlockStore, Error, Expect, SealedBlock, SendReport, Transport};
use crate::engine::Backend;
use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use std::net::TcpStream;
use std::os::fd::{AsFd, OwnedFd};

/// Pipe size asked for.
pub const PIPE_BYTES: usize = 1 << 20;

/// The `splice` backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpliceTransport;

/// A pipe pair sized for splicing.
pub(crate) struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    size: usize,
}

impl Pipe {
    pub(crate) fn new() -> Result<Pipe, Errno> {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let size = match fcntl(&w, FcntlArg::F_SETPIPE_SZ(PIPE_BYTES as i32)) {
            Ok(s) if s > 0 => s as usize,
            _ => fcntl(&w, FcntlArg::F_GETPIPE_SZ).map(|s| s as usize).unwrap_or(64 << 10),
        };
        Ok(Pipe { r, w, size })
    }

    /// The read end.
    #[cfg_attr(not(feature = "io-uring"), allow(dead_code))]
    pub(crate) fn read_fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.r)
    }

    /// The write end.
    #[cfg_attr(not(feature = "io-uring"), allow(dead_code))]
    pub(crate) fn write_fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.w)
    }

    /// Capacity in bytes.
    #[cfg_attr(not(feature = "io-uring"), allow(dead_code))]
    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// Drains `n` bytes from the pipe into `out` (at `off` when given).
fn drain(pipe: &Pipe, out: impl AsFd, mut off: Option<&mut i64>, mut n: usize, id: BlockId) -> Result<(), Error> {
    let out = out.as_fd();
    while n > 0 {
        let moved = retry(|| {
            splice(&pipe.r, None, out, off.as_deref_mut(), n, SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_MORE)
        })
        .map_err(|e| Error::errno("splice pipe -> out", Some(id), e))?;
        if moved == 0 {
            return Err(Error::errno("splice pipe -> out", Some(id), Errno::EPIPE));
        }
        n -= moved;
    }
    Ok(())
}

impl Transport for SpliceTransport {
    fn backend(&self) -> Backend {
        Backend::Splice
    }

    fn send_block(&self, peer: &TcpStream, block: &SealedBlock) -> Result<SendReport, Error> {
        let id = block.id();
        let pipe = Pipe::new().map_err(|e| Error::errno("pipe", Some(id), e))?;
        let total = block.wire_len() as i64;
        let mut off: i64 = 0;
        while off < total {
            let want = ((total - off) as usize).min(pipe.size);
            let n = retry(|| splice(block.file(), Some(&mut off), &pipe.w, None, want, SpliceFFlags::SPLICE_F_MOVE))
                .map_err(|e| Error::errno("splice file -> pipe", Some(id), e))?;
            if n == 0 {
                return Err(Error::errno("splice file -> pipe (file shorter than header says)", Some(id), Errno::EIO));
            }
            drain(&pipe, peer, None, n, id)?;
        }
        Ok(SendReport {
            id,
            wire_bytes: total as u64,
            backend: Backend::Splice,
            method: "splice file -> pipe -> socket".into(),
        })
    }

    fn recv_block(&self, peer: &TcpStream, store: &BlockStore, expect: &Expect) -> Result<SealedBlock, Error> {
        let mover = SpliceMover::new().map_err(|e| Error::errno("pipe", None, e))?;
        recv::recv_into_store(peer, store, expect, &mover)
    }
}

/// socket → pipe → temp file.
pub(crate) struct SpliceMover {
    pipe: Pipe,
}

impl SpliceMover {
    pub(crate) fn new() -> Result<SpliceMover, Errno> {
        Ok(SpliceMover { pipe: Pipe::new()? })
    }
}

impl BodyMover for SpliceMover {
    fn move_body(&self, peer: &TcpStream, tmp: &TempBlock) -> Result<Option<Digest>, Error> {
        let id = tmp.header.id;
        let len = tmp.header.length;
        let mut got = 0u64;
        let mut file_off = HEADER_LEN as i64;
        while got < len {
            let want = ((len - got) as usize).min(self.pipe.size);
            let n = retry(|| splice(peer, None, &self.pipe.w, None, want, SpliceFFlags::SPLICE_F_MOVE))
                .map_err(|e| Error::errno("splice socket -> pipe", Some(id), e))?;
            if n == 0 {
                return Err(Error::Truncated { block: id, expected: len, got });
            }
            drain(&self.pipe, &tmp.file, Some(&mut file_off), n, id)?;
            got += n as u64;
        }
        Ok(None)
    }
}
