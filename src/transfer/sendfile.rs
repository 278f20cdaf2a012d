//! `sendfile`: the sender hands the sealed file to `sendfile(2)` (page cache → socket inside the
//! kernel, no user-space copy). `sendfile` cannot read from a socket, so the receiver uses the
//! `splice` path (socket → pipe → file) and hashes the written file.

use super::recv::{self, socket_error, Waits};
use super::splice::{SpliceMover, SPLICE_RECEIVE};
use super::{BlockStore, Error, Expect, SealedBlock, SendReport, Transport};
use crate::engine::Backend;
use nix::errno::Errno;
use std::net::TcpStream;

/// The `sendfile` backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendfileTransport;

impl Transport for SendfileTransport {
    fn receive_method(&self) -> &'static str {
        SPLICE_RECEIVE
    }

    fn backend(&self) -> Backend {
        Backend::Sendfile
    }

    fn send_block(&self, peer: &TcpStream, block: &SealedBlock) -> Result<SendReport, Error> {
        let id = block.id();
        let total = block.wire_len() as i64;
        let mut off: i64 = 0;
        while off < total {
            let n = ((total - off) as usize).min(1 << 30);
            match nix::sys::sendfile::sendfile64(peer, block.file(), Some(&mut off), n) {
                Ok(0) => {
                    return Err(Error::io(
                        "sendfile",
                        Some(id),
                        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shorter than its header says"),
                    ))
                }
                Ok(_) => {}
                Err(Errno::EINTR) => {}
                // `EAGAIN`: the socket's send timeout (`SO_SNDTIMEO`) ran out with nothing sent,
                // the peer stopped reading (`TimedOut`). Retrying would wait another timeout, for
                // ever.
                Err(e) => {
                    let e = socket_error(peer, Waits::Send, std::io::Error::from_raw_os_error(e as i32));
                    return Err(Error::io("sendfile", Some(id), e));
                }
            }
        }
        Ok(SendReport { id, wire_bytes: total as u64, backend: Backend::Sendfile, method: "sendfile".into() })
    }

    fn recv_block(&self, peer: &TcpStream, store: &BlockStore, expect: &Expect) -> Result<SealedBlock, Error> {
        let mover = SpliceMover::new().map_err(|e| Error::errno("pipe", None, e))?;
        recv::recv_into_store(peer, store, expect, &mover)
    }
}
