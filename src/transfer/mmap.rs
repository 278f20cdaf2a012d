//! `mmap`: the sender maps the sealed block file read-only and writes the mapping to the socket
//! (one copy, page cache → socket, no user buffer); the receiver allocates its private temp
//! file's blocks, maps it writable and reads the socket straight into the mapping, hashing in
//! 1 MiB steps. Only sealed files and the receiver's own `O_EXCL` temp file are ever mapped (see
//! [`super::store`]).
//!
//! The receiver allocates the file's blocks (`fallocate`) before mapping it, never only its size:
//! a page of a hole that the file system cannot fill (full, or over quota) cannot be written
//! through a mapping. The kernel's copy from the socket then fails with `EFAULT` ("Bad
//! address"), which says nothing of the disk, and a store by user space would get `SIGBUS`. So a
//! full disk is an I/O error (`ENOSPC`) naming the block, before any body byte is read; a file
//! system without `fallocate` receives with plain reads and writes instead (the `copy`
//! receiver's method). The price: the whole announced body is allocated before its first byte
//! arrives, so a peer whose header announces `Expect::max_len` bytes and then sends nothing
//! holds that much disk until the receive fails (its socket timeout) and the temp file is
//! removed. The `io-uring` receiver allocates only ahead of the bytes received; `copy`,
//! `sendfile` and `splice` grow the file as bytes arrive.

use super::recv::{self, read_full, socket_error, BodyMover, Waits};
use super::store::TempBlock;
use super::wire::{Digest, HEADER_LEN};
use super::{BlockStore, Error, Expect, SealedBlock, SendReport, Transport};
use crate::engine::Backend;
use std::io::Write;
use std::net::TcpStream;

/// The `mmap` backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct MmapTransport;

impl Transport for MmapTransport {
    fn receive_method(&self) -> &'static str {
        "read into the mapped temp file, hashed in 1 MiB steps"
    }

    fn backend(&self) -> Backend {
        Backend::Mmap
    }

    fn send_block(&self, peer: &TcpStream, block: &SealedBlock) -> Result<SendReport, Error> {
        let id = block.id();
        let map = block.map()?;
        let mut out = peer;
        out.write_all(&map)
            .map_err(|e| Error::io("write mapping to peer", Some(id), socket_error(peer, Waits::Send, e)))?;
        Ok(SendReport { id, wire_bytes: map.len() as u64, backend: Backend::Mmap, method: "mmap + write".into() })
    }

    fn recv_block(&self, peer: &TcpStream, store: &BlockStore, expect: &Expect) -> Result<SealedBlock, Error> {
        recv::recv_into_store(peer, store, expect, &MmapMover)
    }
}

struct MmapMover;

impl BodyMover for MmapMover {
    fn move_body(&self, peer: &TcpStream, tmp: &TempBlock) -> Result<Option<Digest>, Error> {
        let id = tmp.header.id;
        let len = tmp.header.length;
        if len == 0 {
            return Ok(Some(Digest::of(&[])));
        }
        let total = HEADER_LEN as u64 + len;
        match allocate(&tmp.file, total) {
            Ok(()) => {}
            // No body byte has been read: the copy receiver takes the whole body.
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                return super::copy::CopyMover.move_body(peer, tmp);
            }
            Err(e) => return Err(Error::io("allocate temp block", Some(id), e)),
        }
        // SAFETY: the temp file is private to this process (O_EXCL, 0600, store tmp dir), and its
        // `total` bytes were just allocated on disk (so no write through the mapping meets a hole
        // the file system cannot fill); nothing truncates it while the mapping lives (dropped
        // below).
        // MAP_POPULATE: fault the pages in with one call instead of one fault per page.
        let mut map = unsafe { memmap2::MmapOptions::new().populate().map_mut(&tmp.file) }
            .map_err(|e| Error::io("map temp block", Some(id), e))?;
        let body = &mut map[HEADER_LEN..];
        let mut hasher = blake3::Hasher::new();
        let mut got = 0usize;
        while got < body.len() {
            let end = (got + (1 << 20)).min(body.len());
            let n = read_full(peer, &mut body[got..end]).map_err(|e| Error::io("read block body", Some(id), e))?;
            hasher.update(&body[got..got + n]);
            got += n;
            if got < end {
                drop(map);
                // Shrink back so the commit-time size check cannot mistake zeros for data.
                let _ = tmp.file.set_len(HEADER_LEN as u64 + got as u64);
                return Err(Error::Truncated { block: id, expected: len, got: got as u64 });
            }
        }
        map.flush().map_err(|e| Error::io("msync temp block", Some(id), e))?;
        Ok(Some(hasher.finalize().into()))
    }
}

/// Allocates the blocks of `file`'s first `len` bytes and sets its size to at least `len`
/// (`fallocate` mode 0): `ENOSPC`/`EDQUOT`/`EFBIG` now, instead of a `SIGBUS` at the first write
/// through a mapping; `EOPNOTSUPP` where the file system cannot.
fn allocate(file: &std::fs::File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(|_| std::io::Error::from_raw_os_error(libc::EFBIG))?;
    loop {
        // SAFETY: fallocate on a descriptor this process owns; no memory is passed.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
