//! `copy`: `pread` + `write` through a 1 MiB user-space buffer, and `read` + `pwrite` on receive.
//! The honest baseline every other backend is measured against: two copies per byte on each side.

use super::recv::{self, read_full, socket_error, BodyMover, Waits};
use super::store::TempBlock;
use super::wire::{BlockHeader, Digest, HEADER_LEN};
use super::{BlockId, BlockStore, Error, Expect, SealedBlock, SendReport, Transport};
use crate::engine::Backend;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::FileExt;

/// Buffer size of the copy path.
pub const COPY_BUFFER: usize = 1 << 20;

/// The `copy` backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyTransport;

impl Transport for CopyTransport {
    fn receive_method(&self) -> &'static str {
        "read + write (1 MiB buffer), hashed as it is read"
    }

    fn backend(&self) -> Backend {
        Backend::Copy
    }

    fn send_block(&self, peer: &TcpStream, block: &SealedBlock) -> Result<SendReport, Error> {
        let id = block.id();
        let total = block.wire_len();
        let mut buf = vec![0u8; COPY_BUFFER.min(total as usize)];
        let mut off = 0u64;
        let mut out = peer;
        while off < total {
            let n = (total - off).min(buf.len() as u64) as usize;
            block.file().read_exact_at(&mut buf[..n], off).map_err(|e| Error::io("pread block", Some(id), e))?;
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("write to peer", Some(id), socket_error(peer, Waits::Send, e)))?;
            off += n as u64;
        }
        Ok(SendReport { id, wire_bytes: total, backend: Backend::Copy, method: "pread + write (1 MiB buffer)".into() })
    }

    fn recv_block(&self, peer: &TcpStream, store: &BlockStore, expect: &Expect) -> Result<SealedBlock, Error> {
        recv::recv_into_store(peer, store, expect, &CopyMover)
    }
}

/// Writes header + `body` with plain `write`s; the default [`Transport::send_bytes`].
pub(crate) fn send_bytes_copy(
    peer: &TcpStream,
    id: BlockId,
    body: &[u8],
    backend: Backend,
) -> Result<SendReport, Error> {
    let h = BlockHeader::for_body(id, body);
    let mut out = peer;
    out.write_all(&h.encode())
        .map_err(|e| Error::io("write header to peer", Some(id), socket_error(peer, Waits::Send, e)))?;
    out.write_all(body).map_err(|e| Error::io("write to peer", Some(id), socket_error(peer, Waits::Send, e)))?;
    Ok(SendReport {
        id,
        wire_bytes: (HEADER_LEN + body.len()) as u64,
        backend,
        method: "write from caller's buffer".into(),
    })
}

/// Receives through a 1 MiB buffer, hashing on the way.
pub(crate) struct CopyMover;

impl BodyMover for CopyMover {
    fn move_body(&self, peer: &TcpStream, tmp: &TempBlock) -> Result<Option<Digest>, Error> {
        let id = tmp.header.id;
        let len = tmp.header.length;
        let mut buf = vec![0u8; COPY_BUFFER.min(len as usize).max(1)];
        let mut hasher = blake3::Hasher::new();
        let mut got = 0u64;
        while got < len {
            let want = (len - got).min(buf.len() as u64) as usize;
            let n = read_full(peer, &mut buf[..want]).map_err(|e| Error::io("read block body", Some(id), e))?;
            hasher.update(&buf[..n]);
            tmp.file
                .write_all_at(&buf[..n], HEADER_LEN as u64 + got)
                .map_err(|e| Error::io("write temp block", Some(id), e))?;
            got += n as u64;
            if n < want {
                return Err(Error::Truncated { block: id, expected: len, got });
            }
        }
        Ok(Some(hasher.finalize().into()))
    }
}
