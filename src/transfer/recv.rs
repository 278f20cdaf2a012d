//! The receive path every backend shares: read and check the header, let the backend move the
//! body into a private temp file, check the digest, publish. Only the body move differs.

use super::store::TempBlock;
use super::wire::{BlockHeader, Digest, HEADER_LEN};
use super::{BlockStore, Error, Expect, SealedBlock};
use std::io::{ErrorKind, Read};
use std::net::TcpStream;

/// How a backend moves a body from the socket into the temp file (at offset [`HEADER_LEN`]).
pub(crate) trait BodyMover {
    /// Moves exactly `tmp.header.length` bytes, or fails with [`Error::Truncated`] when the
    /// stream ends first. Returns the body's digest when the bytes passed through user space
    /// (`None`: the caller hashes the file).
    fn move_body(&self, peer: &TcpStream, tmp: &TempBlock) -> Result<Option<Digest>, Error>;
}

/// Which of a socket's timeouts a call waits under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waits {
    /// A send: `SO_SNDTIMEO` ([`TcpStream::set_write_timeout`]).
    Send,
    /// A receive: `SO_RCVTIMEO` ([`TcpStream::set_read_timeout`]).
    Recv,
}

/// The error of a blocking socket call on `peer`, as every backend reports it. A blocking socket
/// whose timeout ran out fails with `EAGAIN` (`WouldBlock`), which says nothing of time: with
/// the timeout that call waits under set, it is reported as `TimedOut`, the kind that the
/// `io-uring` backend, which bounds its own waits, reports for the same peer. Without one (a
/// socket the caller made non-blocking) `WouldBlock` stays what it is.
pub(crate) fn socket_error(peer: &TcpStream, waits: Waits, e: std::io::Error) -> std::io::Error {
    if e.kind() != ErrorKind::WouldBlock {
        return e;
    }
    let timeout = match waits {
        Waits::Send => peer.write_timeout(),
        Waits::Recv => peer.read_timeout(),
    };
    match timeout {
        Ok(Some(_)) => ErrorKind::TimedOut.into(),
        _ => e,
    }
}

/// Reads up to `buf.len()` bytes, retrying on EINTR; returns how many were read before EOF. An
/// expired read timeout is `TimedOut` ([`socket_error`]).
pub(crate) fn read_full(mut peer: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match peer.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(socket_error(peer, Waits::Recv, e)),
        }
    }
    Ok(got)
}

/// Reads and decodes one header; a clean end of stream before any byte is [`Error::Closed`].
pub(crate) fn read_header(peer: &TcpStream) -> Result<BlockHeader, Error> {
    let mut b = [0u8; HEADER_LEN];
    let got = read_full(peer, &mut b).map_err(|e| Error::io("read block header", None, e))?;
    match got {
        0 => Err(Error::Closed),
        HEADER_LEN => BlockHeader::decode(&b),
        got => Err(Error::TruncatedHeader { got }),
    }
}

/// Applies the receiver's rules to a header before any body byte is read.
pub(crate) fn check_header(h: &BlockHeader, expect: &Expect) -> Result<(), Error> {
    if let Some(want) = expect.id {
        if want != h.id {
            return Err(Error::UnexpectedBlock { expected: want, got: h.id });
        }
    }
    if h.length > expect.limit() {
        return Err(Error::Oversized { block: h.id, length: h.length, max: expect.limit() });
    }
    Ok(())
}

/// The shared receive-into-store path.
pub(crate) fn recv_into_store(
    peer: &TcpStream,
    store: &BlockStore,
    expect: &Expect,
    mover: &dyn BodyMover,
) -> Result<SealedBlock, Error> {
    let h = read_header(peer)?;
    check_header(&h, expect)?;
    let tmp = store.begin(&h)?;
    let digest = match mover.move_body(peer, &tmp)? {
        Some(d) => d,
        None => tmp.hash_body()?,
    };
    tmp.commit_checked(digest)
}

/// Receives one block into memory, checking the digest before returning it.
pub(crate) fn recv_to_vec(peer: &TcpStream, expect: &Expect) -> Result<(BlockHeader, Vec<u8>), Error> {
    let h = read_header(peer)?;
    check_header(&h, expect)?;
    let len = h.length as usize;
    let mut body = Vec::new();
    body.try_reserve_exact(len).map_err(|e| {
        Error::io(
            format!("allocate {len} bytes for the body"),
            Some(h.id),
            std::io::Error::new(std::io::ErrorKind::OutOfMemory, e),
        )
    })?;
    body.resize(len, 0);
    let got = read_full(peer, &mut body).map_err(|e| Error::io("read block body", Some(h.id), e))?;
    if got < len {
        return Err(Error::Truncated { block: h.id, expected: h.length, got: got as u64 });
    }
    let d = Digest::of(&body);
    if d != h.digest {
        return Err(Error::Tampered { block: h.id, expected: h.digest.to_hex(), actual: d.to_hex() });
    }
    Ok((h, body))
}
