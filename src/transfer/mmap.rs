//! `mmap`: the sender maps the sealed block file read-only and writes the mapping to the socket
//! (one copy, page cache → socket, no user buffer); the receiver sizes its private temp file,
//! maps it writable and reads the socket straight into the mapping, hashing in 1 MiB steps.
//! Only sealed files and the receiver's own `O_EXCL` temp file are ever mapped (see
//! [`super::store`]).

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
        tmp.file.set_len(total).map_err(|e| Error::io("size temp block", Some(id), e))?;
        // SAFETY: the temp file is private to this process (O_EXCL, 0600, store tmp dir) and was
        // just sized to `total`; nothing truncates it while the mapping lives (dropped below).
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
