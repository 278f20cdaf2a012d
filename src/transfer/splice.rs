//! `splice`: file → pipe → socket on send, socket → pipe → file on receive; the bytes move
//! between kernel buffers by page reference where the kernel can. The pipe is grown to 1 MiB
//! (`F_SETPIPE_SZ`) when allowed. Received bodies never pass through user space, so the receiver
//! hashes what it wrote to the temp file: for bodies of at least [`PIPELINE_MIN`] bytes a second
//! thread hashes each range as soon as it is in the file, while the first keeps splicing (the
//! digest is ready when the last byte lands, instead of after a second pass over the block);
//! smaller bodies are hashed after the fact.

use super::recv::{self, socket_error, BodyMover, Waits};
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

/// Bodies at least this long are hashed by a second thread while they arrive.
pub const PIPELINE_MIN: u64 = 4 << 20;

/// The `splice` backend. Keeps up to four empty pipes for reuse, so a send does not pay for
/// `pipe2` + `F_SETPIPE_SZ` each time; a pipe that may hold data after an error is closed.
#[derive(Debug, Default)]
pub struct SpliceTransport {
    pipes: std::sync::Mutex<Vec<Pipe>>,
}

impl SpliceTransport {
    /// A transport with an empty pipe cache.
    pub fn new() -> Self {
        SpliceTransport::default()
    }

    fn take_pipe(&self) -> Result<Pipe, Errno> {
        match self.pipes.lock().ok().and_then(|mut v| v.pop()) {
            Some(p) => Ok(p),
            None => Pipe::new(),
        }
    }

    fn give_back(&self, p: Pipe) {
        if let Ok(mut v) = self.pipes.lock() {
            if v.len() < 4 {
                v.push(p);
            }
        }
    }
}

/// A pipe pair sized for splicing.
#[derive(Debug)]
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
}

fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// Drains `n` bytes from the pipe into `out` (at `off` when given). `more` says more bytes of
/// the block follow (`SPLICE_F_MORE`, i.e. `MSG_MORE` on a socket): never for the last piece,
/// which TCP would otherwise hold back as a partial segment until its next timer, hundreds of
/// milliseconds on an idle connection. `out` taking nothing is `EPIPE`.
fn drain(pipe: &Pipe, out: impl AsFd, mut off: Option<&mut i64>, mut n: usize, more: bool) -> Result<(), Errno> {
    let out = out.as_fd();
    let flags =
        if more { SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_MORE } else { SpliceFFlags::SPLICE_F_MOVE };
    while n > 0 {
        let moved = retry(|| splice(&pipe.r, None, out, off.as_deref_mut(), n, flags))?;
        if moved == 0 {
            return Err(Errno::EPIPE);
        }
        n -= moved;
    }
    Ok(())
}

/// A failed splice from or to `peer`: an expired socket timeout is `TimedOut`
/// ([`socket_error`]).
fn peer_error(peer: &TcpStream, waits: Waits, what: &str, id: BlockId, e: Errno) -> Error {
    Error::io(what, Some(id), socket_error(peer, waits, std::io::Error::from_raw_os_error(e as i32)))
}

/// How [`SpliceMover`] receives (the `splice` and `sendfile` backends), for reports.
pub(crate) const SPLICE_RECEIVE: &str = "splice socket -> pipe -> temp file, hashed from the file as it lands";

impl Transport for SpliceTransport {
    fn receive_method(&self) -> &'static str {
        SPLICE_RECEIVE
    }

    fn backend(&self) -> Backend {
        Backend::Splice
    }

    fn send_block(&self, peer: &TcpStream, block: &SealedBlock) -> Result<SendReport, Error> {
        let id = block.id();
        let pipe = self.take_pipe().map_err(|e| Error::errno("pipe", Some(id), e))?;
        let total = block.wire_len() as i64;
        let mut off: i64 = 0;
        while off < total {
            let want = ((total - off) as usize).min(pipe.size);
            let n = retry(|| splice(block.file(), Some(&mut off), &pipe.w, None, want, SpliceFFlags::SPLICE_F_MOVE))
                .map_err(|e| Error::errno("splice file -> pipe", Some(id), e))?;
            if n == 0 {
                return Err(Error::errno("splice file -> pipe (file shorter than header says)", Some(id), Errno::EIO));
            }
            // On error the pipe may hold bytes: it is dropped (closed), never reused.
            drain(&pipe, peer, None, n, off < total)
                .map_err(|e| peer_error(peer, Waits::Send, "splice pipe -> socket", id, e))?;
        }
        self.give_back(pipe);
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

impl SpliceMover {
    /// Splices the body into the temp file, calling `landed(end)` each time the file holds the
    /// body up to offset `end` (relative to the body).
    fn splice_body(&self, peer: &TcpStream, tmp: &TempBlock, mut landed: impl FnMut(u64)) -> Result<(), Error> {
        let id = tmp.header.id;
        let len = tmp.header.length;
        let mut got = 0u64;
        let mut file_off = HEADER_LEN as i64;
        while got < len {
            let want = ((len - got) as usize).min(self.pipe.size);
            let n = retry(|| splice(peer, None, &self.pipe.w, None, want, SpliceFFlags::SPLICE_F_MOVE))
                .map_err(|e| peer_error(peer, Waits::Recv, "splice socket -> pipe", id, e))?;
            if n == 0 {
                return Err(Error::Truncated { block: id, expected: len, got });
            }
            drain(&self.pipe, &tmp.file, Some(&mut file_off), n, false)
                .map_err(|e| Error::errno("splice pipe -> temp block", Some(id), e))?;
            got += n as u64;
            landed(got);
        }
        Ok(())
    }
}

/// Hashes the body of `tmp` as it lands: each `end` received means the file holds the body up to
/// `end`. Returns the digest once `len` bytes were hashed, `None` if the sender hung up first
/// (the receive failed) or a read failed.
fn hash_as_it_lands(tmp: &TempBlock, len: u64, ends: std::sync::mpsc::Receiver<u64>) -> Option<Digest> {
    use std::os::unix::fs::FileExt;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut done = 0u64;
    while let Ok(end) = ends.recv() {
        while done < end {
            let n = ((end - done) as usize).min(buf.len());
            tmp.file.read_exact_at(&mut buf[..n], HEADER_LEN as u64 + done).ok()?;
            hasher.update(&buf[..n]);
            done += n as u64;
        }
    }
    (done == len).then(|| hasher.finalize().into())
}

impl BodyMover for SpliceMover {
    fn move_body(&self, peer: &TcpStream, tmp: &TempBlock) -> Result<Option<Digest>, Error> {
        let len = tmp.header.length;
        if len < PIPELINE_MIN {
            self.splice_body(peer, tmp, |_| {})?;
            return Ok(None);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            let Ok(hasher) = std::thread::Builder::new().spawn_scoped(scope, move || hash_as_it_lands(tmp, len, rx))
            else {
                // No thread to hash beside the splice (the system refused one): the body is
                // hashed from the file once it is in.
                self.splice_body(peer, tmp, |_| {})?;
                return Ok(None);
            };
            let moved = self.splice_body(peer, tmp, |end| {
                let _ = tx.send(end);
            });
            // Hanging up ends the hasher: at `len` after a whole body, early after a failure.
            drop(tx);
            let digest = hasher.join().unwrap_or(None);
            moved?;
            // A whole body whose hashing failed (a read error) is hashed again from the file.
            Ok(digest)
        })
    }
}
