//! The block store: a directory of immutable block files, addressed by [`BlockId`].
//!
//! Layout: `<root>/blocks/<id as 16 hex digits>.blk` holds the 64-byte wire header followed by
//! the body, so a stored block *is* its wire form and zero-copy backends send the file as is.
//! `<root>/tmp/` holds blocks being written.
//!
//! Rules:
//! - **Append-only and immutable.** A block is written once: into a private temp file
//!   (`O_EXCL`, mode 0600), `fsync`ed, made read-only (0444), then `link`ed to its final name
//!   (which fails if the name exists, so a second copy is [`Error::Duplicate`], never an
//!   overwrite), after which the temp name is removed and the directory `fsync`ed. If that fsync
//!   fails, the new name is removed again and the commit is an error, which says whether the
//!   removal worked: if it did, the block is not stored, as with every other error; if it failed
//!   too, the error says that the block stays visible (whole and synced, its name perhaps not
//!   durable). The withdrawal is not atomic: between the link and its removal the block is
//!   visible, and a concurrent receive of the same id in that moment ends in
//!   [`Error::Duplicate`] for a block that is then withdrawn. The store never truncates,
//!   rewrites or renames a sealed file.
//! - **Nothing partial.** A temp file that is not committed is removed when its handle drops. Its
//!   writer holds an exclusive `flock` on it while writing (a lock it cannot take fails the
//!   write); temp files that nobody holds locked and that are older than 10 s (left by a crash)
//!   are removed when a store is opened. Temp names carry a random number drawn once per
//!   process, so a restart that reuses the process id never meets its predecessor's names. A
//!   reader therefore sees a block whole or not at all.
//! - **Only sealed files and the receiver's own temp file are memory-mapped.**
//!   [`SealedBlock::map`] maps a sealed file read-only. A receive maps its own temp file (the
//!   `mmap` receiver, to write the body into it; `TempBlock::hash_body`, to hash a body that
//!   never passed through user space): a file it created with `O_EXCL`, mode 0600, in the store's
//!   `tmp` directory and holds locked, which nothing else truncates (a store being opened removes
//!   only unlocked temp files, and removing a name truncates nothing), and which the receive
//!   itself truncates only after dropping the mapping. Touching a mapped page that the file no
//!   longer backs kills the process with `SIGBUS` (or fails the system call that touched it with
//!   `EFAULT`): a page past the end of a file another party truncated, or a hole the file system
//!   has no room to fill. Sealed files are never truncated
//!   by the store, nor temp files while mapped, and a temp file is mapped for writing only after
//!   its blocks were allocated (`fallocate`; a full disk is then an I/O error), which is what
//!   makes the mappings sound. (An operator who edits the store by hand voids that guarantee.)
//! - Opening a block checks its header against its id and its size ([`Error::CorruptStore`]);
//!   [`SealedBlock::verify`] re-hashes the body.

use super::datagram::tree::{frame_cvs, FrameCvs};
use super::wire::{BlockHeader, Digest, HEADER_LEN, MAX_BODY_LEN};
use super::{BlockId, Error};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// How old an unlocked temp file must be before it is removed.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// A random number drawn once per process, in every temp file's name: a process id and a
/// sequence number alone repeat across restarts (a node that is pid 1 in its container is pid 1
/// after every restart), and a name left by an earlier incarnation must not make `begin` fail.
fn incarnation() -> u64 {
    static NONCE: OnceLock<u64> = OnceLock::new();
    *NONCE.get_or_init(rand::random)
}

/// Takes an exclusive `flock` on `f` without waiting: `WouldBlock` when another open file
/// description holds one. The lock lasts as long as the open file description.
fn try_lock(f: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether `a` and `b` describe the same file (device and inode).
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// A directory of immutable blocks. Cheap to clone; safe to share between threads.
#[derive(Debug, Clone)]
pub struct BlockStore {
    root: PathBuf,
}

impl BlockStore {
    /// Opens (creating if needed) the store at `root`, and removes temp files left by processes
    /// that no longer run.
    pub fn open(root: impl AsRef<Path>) -> Result<BlockStore, Error> {
        let root = root.as_ref().to_path_buf();
        for d in ["blocks", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| Error::io(format!("create {}", p.display()), None, e))?;
        }
        let store = BlockStore { root };
        store.remove_stale_temps();
        Ok(store)
    }

    /// Removes temp files whose writer is gone. A writer holds an exclusive `flock` on its temp
    /// file for as long as the file is open, which is what proves it alive (a process id would
    /// not: a writer in another PID namespace, a container sharing the store's volume, is not in
    /// this one's `/proc`, and a crashed node that is pid 1 in its container finds pid 1 alive
    /// after every restart). A file is removed when its lock can be taken and it is older than
    /// [`STALE_AFTER`] (which closes the moment between a writer creating the file and locking
    /// it), and only if the name still refers to the file that was locked. Only regular files
    /// are considered, opened without following links; each is opened for writing where its mode
    /// allows, since NFS emulates `flock` with POSIX locks, whose exclusive lock needs a file
    /// open for writing (a sealed temp file, mode 0444, is opened read-only).
    fn remove_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(self.root.join("tmp")) else { return };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let path = e.path();
            let open = |write: bool| {
                OpenOptions::new().read(true).write(write).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&path)
            };
            let Ok(f) = open(true).or_else(|_| open(false)) else { continue };
            let Ok(meta) = f.metadata() else { continue };
            let old = meta.modified().ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age >= STALE_AFTER);
            if !old || try_lock(&f).is_err() {
                continue;
            }
            if fs::symlink_metadata(&path).is_ok_and(|now| same_file(&now, &meta)) {
                let _ = fs::remove_file(&path);
            }
        }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where block `id` is (or would be) stored.
    pub fn path(&self, id: BlockId) -> PathBuf {
        self.root.join("blocks").join(format!("{id}.blk"))
    }

    /// Whether block `id` is stored.
    pub fn contains(&self, id: BlockId) -> bool {
        self.path(id).exists()
    }

    /// Every stored block id, ascending.
    pub fn ids(&self) -> Result<Vec<BlockId>, Error> {
        let dir = self.root.join("blocks");
        let rd = fs::read_dir(&dir).map_err(|e| Error::io(format!("list {}", dir.display()), None, e))?;
        let mut ids: Vec<BlockId> = rd
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                let hex = n.strip_suffix(".blk")?;
                (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok()).flatten().map(BlockId)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Stores `body` as block `id` (digest computed here) and returns it sealed.
    pub fn put(&self, id: BlockId, body: &[u8]) -> Result<SealedBlock, Error> {
        let header = BlockHeader::for_body(id, body);
        let tmp = self.begin(&header)?;
        tmp.file.write_all_at(body, HEADER_LEN as u64).map_err(|e| Error::io("write temp block", Some(id), e))?;
        tmp.commit()
    }

    /// Stores a block received and checked elsewhere (the datagram path checks the body against
    /// `header.digest` before it returns it): written to a private temp file, synced, sealed and
    /// published like every other block. A body whose length is not the header's is refused.
    pub(crate) fn put_received(&self, header: &BlockHeader, body: &[u8]) -> Result<SealedBlock, Error> {
        let id = header.id;
        if body.len() as u64 != header.length {
            return Err(Error::Truncated { block: id, expected: header.length, got: body.len() as u64 });
        }
        let tmp = self.begin(header)?;
        tmp.file.write_all_at(body, HEADER_LEN as u64).map_err(|e| Error::io("write temp block", Some(id), e))?;
        tmp.commit()
    }

    /// Opens block `id` read-only for serving, checking its header against the id and the file
    /// size.
    pub fn get(&self, id: BlockId) -> Result<SealedBlock, Error> {
        let path = self.path(id);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound { block: id, store: self.root.display().to_string() })
            }
            Err(e) => return Err(Error::io(format!("open {}", path.display()), Some(id), e)),
        };
        SealedBlock::from_file(id, path, file)
    }

    /// Starts writing a block with `header`: a private temp file holding the header, removed on
    /// drop unless committed. Refuses a block already stored.
    pub(crate) fn begin(&self, header: &BlockHeader) -> Result<TempBlock, Error> {
        let id = header.id;
        // Receivers check this first (`Expect::limit`); here it is what makes `HEADER_LEN +
        // length` safe to compute wherever a temp block is written, hashed or committed.
        if header.length > MAX_BODY_LEN {
            return Err(Error::Oversized { block: id, length: header.length, max: MAX_BODY_LEN });
        }
        if self.contains(id) {
            return Err(Error::Duplicate { block: id, path: self.path(id).display().to_string() });
        }
        let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        // <id>.<pid>.<incarnation>.<seq>.part: unique across restarts that reuse the pid.
        let name = format!("{id}.{}.{:016x}.{seq}.part", std::process::id(), incarnation());
        let path = self.root.join("tmp").join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("create temp {}", path.display()), Some(id), e))?;
        // Removed on drop from here on, also when the lock below fails.
        let tmp = TempBlock { store: self.clone(), header: *header, file, path, committed: false };
        // Held while the file is open: how other processes opening the store tell that this
        // temp file is being written (`remove_stale_temps`). Without it, another process could
        // remove the file mid-write, so a lock not taken is an error; and so is a name that no
        // longer refers to the file (a cleaner whose clock made it look old got there first).
        let lock_err = |e| Error::io(format!("lock temp {}", tmp.path.display()), Some(id), e);
        try_lock(&tmp.file).map_err(lock_err)?;
        let ours = tmp.file.metadata().map_err(lock_err)?;
        if !fs::symlink_metadata(&tmp.path).is_ok_and(|now| same_file(&now, &ours)) {
            return Err(lock_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "removed by another process before it was locked",
            )));
        }
        tmp.file.write_all_at(&header.encode(), 0).map_err(|e| Error::io("write temp header", Some(id), e))?;
        Ok(tmp)
    }
}

/// A block being written; removed on drop unless [`TempBlock::commit`] succeeded.
#[derive(Debug)]
pub(crate) struct TempBlock {
    store: BlockStore,
    pub(crate) header: BlockHeader,
    pub(crate) file: File,
    path: PathBuf,
    committed: bool,
}

impl TempBlock {
    /// A second, write-only handle on the temp file with `O_DIRECT`, for writes that bypass the
    /// page cache, or `None` where the file system does not offer direct I/O with offsets and
    /// buffers aligned to `align` bytes (a power of two): it must report its direct-I/O
    /// alignment (`statx` `STATX_DIOALIGN`, Linux 6.1) and that alignment must divide `align`.
    #[cfg(feature = "io-uring")]
    pub(crate) fn open_direct(&self, align: u32) -> Option<File> {
        use std::os::fd::AsRawFd;
        // SAFETY: all-zero is a valid `statx` (plain integers).
        let mut stx: libc::statx = unsafe { std::mem::zeroed() };
        // SAFETY: a valid open descriptor, a NUL-terminated empty path with AT_EMPTY_PATH (the
        // descriptor itself), and a pointer to a `statx` the call fills.
        let rc = unsafe {
            libc::statx(self.file.as_raw_fd(), c"".as_ptr(), libc::AT_EMPTY_PATH, libc::STATX_DIOALIGN, &mut stx)
        };
        let fits = |a: u32| a != 0 && a.is_power_of_two() && a <= align;
        if rc != 0
            || stx.stx_mask & libc::STATX_DIOALIGN == 0
            || !fits(stx.stx_dio_offset_align)
            || !fits(stx.stx_dio_mem_align)
        {
            return None;
        }
        OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(&self.path).ok()
    }

    /// Hashes the body as written (file offset 64..64+len), for backends whose body never
    /// passed through user space.
    pub(crate) fn hash_body(&self) -> Result<Digest, Error> {
        let id = self.header.id;
        if self.header.length == 0 {
            return Ok(Digest::of(&[]));
        }
        // SAFETY: the temp file was created by this process with O_EXCL and mode 0600 in the
        // store's private tmp directory; nothing else truncates it while the map lives (the map is
        // dropped before this function returns).
        let map = unsafe { memmap2::Mmap::map(&self.file) }.map_err(|e| Error::io("map temp block", Some(id), e))?;
        let end = HEADER_LEN as u64 + self.header.length;
        if (map.len() as u64) < end {
            return Err(Error::Truncated {
                block: id,
                expected: self.header.length,
                got: (map.len() as u64).saturating_sub(HEADER_LEN as u64),
            });
        }
        let mut h = blake3::Hasher::new();
        h.update(&map[HEADER_LEN..end as usize]);
        Ok(h.finalize().into())
    }

    /// Checks `digest` against the header, then syncs, seals and publishes the block.
    pub(crate) fn commit_checked(self, digest: Digest) -> Result<SealedBlock, Error> {
        if digest != self.header.digest {
            return Err(Error::Tampered {
                block: self.header.id,
                expected: self.header.digest.to_hex(),
                actual: digest.to_hex(),
            });
        }
        self.commit()
    }

    /// Syncs, seals (0444) and publishes the block; see the module docs.
    pub(crate) fn commit(mut self) -> Result<SealedBlock, Error> {
        let id = self.header.id;
        let want = HEADER_LEN as u64 + self.header.length;
        let size = self.file.metadata().map_err(|e| Error::io("stat temp block", Some(id), e))?.len();
        if size != want {
            return Err(Error::Truncated { block: id, expected: self.header.length, got: size.saturating_sub(64) });
        }
        self.file.sync_all().map_err(|e| Error::io("fsync temp block", Some(id), e))?;
        fs::set_permissions(&self.path, fs::Permissions::from_mode(0o444))
            .map_err(|e| Error::io("seal temp block", Some(id), e))?;
        let dest = self.store.path(id);
        // Everything that can fail is done before the block becomes visible, except the
        // directory's fsync, whose failure takes the block back (see the module docs for what
        // that cannot promise).
        let dir =
            File::open(self.store.root.join("blocks")).map_err(|e| Error::io("open block directory", Some(id), e))?;
        // A read-only handle on the inode about to be published.
        let file = File::open(&self.path).map_err(|e| Error::io("reopen sealed temp block", Some(id), e))?;
        match fs::hard_link(&self.path, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Duplicate { block: id, path: dest.display().to_string() })
            }
            Err(e) => return Err(Error::io(format!("publish {}", dest.display()), Some(id), e)),
        }
        self.committed = true;
        let _ = fs::remove_file(&self.path);
        if let Err(e) = dir.sync_all() {
            return Err(withdraw(&dest, id, e));
        }
        Ok(SealedBlock {
            id,
            header: self.header,
            file,
            path: dest,
            frame_cvs: Mutex::new(None),
            mapped: OnceLock::new(),
        })
    }
}

/// Takes back block `id`, just published at `dest`, after the block directory's fsync failed
/// with `e`; the error says whether the block is still visible.
fn withdraw(dest: &Path, id: BlockId, e: std::io::Error) -> Error {
    match fs::remove_file(dest) {
        Ok(()) => Error::io("fsync block directory (block withdrawn)", Some(id), e),
        Err(r) if r.kind() == std::io::ErrorKind::NotFound => {
            Error::io("fsync block directory (block withdrawn)", Some(id), e)
        }
        Err(r) => Error::io(
            format!(
                "fsync block directory (withdrawing the block failed too: {r}; it stays visible at {})",
                dest.display()
            ),
            Some(id),
            e,
        ),
    }
}

impl Drop for TempBlock {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A sealed, read-only block file: its header and an open handle.
#[derive(Debug)]
pub struct SealedBlock {
    id: BlockId,
    header: BlockHeader,
    file: File,
    path: PathBuf,
    /// The body's datagram frame chaining values, once a datagram send computed them.
    frame_cvs: Mutex<Option<Arc<FrameCvs>>>,
    /// The file mapped once for senders that send from memory ([`SealedBlock::mapped`]).
    mapped: OnceLock<memmap2::Mmap>,
}

impl SealedBlock {
    fn from_file(id: BlockId, path: PathBuf, mut file: File) -> Result<SealedBlock, Error> {
        let corrupt = |reason: String| Error::CorruptStore { block: id, path: path.display().to_string(), reason };
        let mut hb = [0u8; HEADER_LEN];
        let size = file.metadata().map_err(|e| Error::io("stat block", Some(id), e))?.len();
        if size < HEADER_LEN as u64 {
            return Err(corrupt(format!("{size} bytes, shorter than a header")));
        }
        std::io::Read::read_exact(&mut file, &mut hb).map_err(|e| Error::io("read block header", Some(id), e))?;
        let header = BlockHeader::decode(&hb).map_err(|e| corrupt(e.to_string()))?;
        if header.id != id {
            return Err(corrupt(format!("header names block {}", header.id)));
        }
        if header.length.checked_add(HEADER_LEN as u64) != Some(size) {
            return Err(corrupt(format!("file is {size} bytes, header says {} + {}", HEADER_LEN, header.length)));
        }
        Ok(SealedBlock { id, header, file, path, frame_cvs: Mutex::new(None), mapped: OnceLock::new() })
    }

    /// The block's id.
    pub fn id(&self) -> BlockId {
        self.id
    }

    /// The block's header.
    pub fn header(&self) -> &BlockHeader {
        &self.header
    }

    /// Body length in bytes.
    pub fn len(&self) -> u64 {
        self.header.length
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.header.length == 0
    }

    /// Bytes on the wire: header + body (= the file size).
    pub fn wire_len(&self) -> u64 {
        HEADER_LEN as u64 + self.header.length
    }

    /// The read-only file (header at offset 0, body at 64).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Where the block is stored.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Maps the whole file (header + body) read-only. See the module docs for why this is sound.
    pub fn map(&self) -> Result<memmap2::Mmap, Error> {
        // SAFETY: the file is sealed: written once, fsynced, mode 0444, and never truncated or
        // rewritten by the store (module docs), so the mapping cannot shrink under us.
        unsafe { memmap2::MmapOptions::new().map(&self.file) }.map_err(|e| Error::io("map block", Some(self.id), e))
    }

    /// The whole file (header + body) mapped read-only once per handle and kept: a block sent
    /// again from the same handle touches no page table (a fresh mapping of a 64 MiB block costs
    /// 16 384 page faults on first touch and an unmap). See the module docs for why mapping is
    /// sound.
    pub fn mapped(&self) -> Result<&[u8], Error> {
        if let Some(m) = self.mapped.get() {
            return Ok(m);
        }
        let m = self.map()?;
        Ok(self.mapped.get_or_init(|| m))
    }

    /// The body, read into memory.
    pub fn read_body(&self) -> Result<Vec<u8>, Error> {
        let mut v = vec![0u8; self.header.length as usize];
        self.file.read_exact_at(&mut v, HEADER_LEN as u64).map_err(|e| Error::io("read block", Some(self.id), e))?;
        Ok(v)
    }

    /// The chaining values of `body` (this block's body, as mapped by the caller) cut into
    /// `chunk`-byte datagram frames ([`crate::transfer::datagram::tree`]): computed on the first
    /// call for a chunk size (on `threads` threads) and kept with this handle, so a block sent again is not hashed
    /// again. The values are checked by the receiver against the bytes it gets, and their root
    /// against the header's digest, so a stale or wrong value can fail a send, never pass one.
    pub(crate) fn frame_cvs(&self, body: &[u8], chunk: usize, threads: usize) -> Arc<FrameCvs> {
        let mut kept = self.frame_cvs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = kept.as_ref().filter(|k| k.chunk == chunk) {
            return Arc::clone(k);
        }
        let fresh = Arc::new(FrameCvs { chunk, cvs: frame_cvs(body, chunk, threads) });
        *kept = Some(Arc::clone(&fresh));
        fresh
    }

    /// Re-hashes the body and checks it against the header.
    pub fn verify(&self) -> Result<(), Error> {
        let map = self.map()?;
        let d = Digest::of(&map[HEADER_LEN..]);
        if d != self.header.digest {
            return Err(Error::Tampered { block: self.id, expected: self.header.digest.to_hex(), actual: d.to_hex() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
