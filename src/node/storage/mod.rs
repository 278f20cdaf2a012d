//! Durable storage of a validator: append-only block files plus a redb index, UTXO set and
//! safety state.
//!
//! # Contract
//!
//! - [`Store::append`] writes the block record (length-prefixed postcard of height, payload and
//!   commit certificate) at the end of `blocks.dat`, `fsync`s the file, and only then commits one
//!   redb transaction with the index entry (offset, length, digest), the UTXO changes and the new
//!   height. redb commits are durable, so when `append` returns, the block survives a crash, and
//!   the node only then sends anything that depends on it.
//! - [`Store::open`] recovers to the last committed block: the index says how far the file is
//!   valid; a torn record after it (crash between the file write and the index commit) is cut off.
//!   A file *shorter* than the index says is corruption ([`StoreError::Corrupt`]), never silently
//!   accepted.
//! - [`Store::read`] returns a stored block and checks it against the digest in the index.
//! - [`Store::persist_safety`] keeps the consensus [`SafetyState`] (one redb commit).

use crate::node::consensus::{CommitCert, Digest, Height, SafetyState};
use crate::node::ledger::{Block, Genesis, Ledger, OutPoint, Output};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const UTXO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("utxo");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Storage errors, each naming the file and what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// redb error.
    #[error("{path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// The error.
        source: Box<redb::Error>,
    },
    /// Stored data that contradicts itself.
    #[error("{path}: corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A block appended out of order.
    #[error("block {got} appended, expected {want}")]
    OutOfOrder {
        /// Given height.
        got: Height,
        /// Expected height.
        want: Height,
    },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct IndexEntry {
    offset: u64,
    len: u64,
    digest: Digest,
}

/// What [`Store::open`] recovered.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// Next height (= blocks stored).
    pub height: Height,
    /// Id of the last block (genesis id if none).
    pub tip: Digest,
    /// The UTXO set after the last block.
    pub utxo: HashMap<OutPoint, Output>,
    /// The last persisted consensus safety state.
    pub safety: Option<SafetyState>,
}

/// One validator's storage.
pub struct Store {
    dir: PathBuf,
    file: File,
    file_len: u64,
    db: Database,
    height: Height,
}

fn enc<T: serde::Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).unwrap_or_default()
}

impl Store {
    fn db_err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db { path: self.dir.join("index.redb"), source: Box::new(e.into()) }
    }

    /// Opens (or creates, at genesis) the store in `dir` and recovers its state.
    pub fn open(dir: &Path, genesis: &Genesis) -> Result<(Store, Recovered), StoreError> {
        let io = |path: PathBuf| move |source| StoreError::Io { path, source };
        std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
        let bpath = dir.join("blocks.dat");
        let file = OpenOptions::new().create(true).read(true).append(true).open(&bpath).map_err(io(bpath.clone()))?;
        let file_len = file.metadata().map_err(io(bpath.clone()))?.len();
        let dpath = dir.join("index.redb");
        let db =
            Database::create(&dpath).map_err(|e| StoreError::Db { path: dpath.clone(), source: Box::new(e.into()) })?;
        let store = Store { dir: dir.to_path_buf(), file, file_len, db, height: 0 };
        store.recover(genesis)
    }

    fn recover(mut self, genesis: &Genesis) -> Result<(Store, Recovered), StoreError> {
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let initialized = match r.open_table(META) {
            Ok(t) => t.get("height").map_err(|e| self.db_err(e))?.is_some(),
            Err(redb::TableError::TableDoesNotExist(_)) => false,
            Err(e) => return Err(self.db_err(e)),
        };
        drop(r);
        if !initialized {
            let w = self.db.begin_write().map_err(|e| self.db_err(e))?;
            {
                let mut utxo = w.open_table(UTXO).map_err(|e| self.db_err(e))?;
                let id = genesis.id();
                for (i, o) in genesis.outputs.iter().enumerate() {
                    let k = enc(&OutPoint { tx: id, index: i as u32 });
                    utxo.insert(k.as_slice(), enc(o).as_slice()).map_err(|e| self.db_err(e))?;
                }
                let mut meta = w.open_table(META).map_err(|e| self.db_err(e))?;
                meta.insert("height", 0u64.to_le_bytes().as_slice()).map_err(|e| self.db_err(e))?;
                meta.insert("tip", id.0.as_slice()).map_err(|e| self.db_err(e))?;
                w.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
            }
            w.commit().map_err(|e| self.db_err(e))?;
        }
        let corrupt = |reason: String| StoreError::Corrupt { path: self.dir.join("index.redb"), reason };
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let meta = r.open_table(META).map_err(|e| self.db_err(e))?;
        let get = |k: &str| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(meta.get(k).map_err(|e| self.db_err(e))?.map(|g| g.value().to_vec()))
        };
        let height = u64::from_le_bytes(
            get("height")?.and_then(|v| v.try_into().ok()).ok_or_else(|| corrupt("height missing".into()))?,
        );
        let tip = Digest(get("tip")?.and_then(|v| v.try_into().ok()).ok_or_else(|| corrupt("tip missing".into()))?);
        let safety = match get("safety")? {
            Some(b) => Some(postcard::from_bytes(&b).map_err(|e| corrupt(format!("safety state: {e}")))?),
            None => None,
        };
        let mut utxo = HashMap::new();
        for item in r.open_table(UTXO).map_err(|e| self.db_err(e))?.iter().map_err(|e| self.db_err(e))? {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            let k: OutPoint = postcard::from_bytes(k.value()).map_err(|e| corrupt(format!("utxo key: {e}")))?;
            let v: Output = postcard::from_bytes(v.value()).map_err(|e| corrupt(format!("utxo value: {e}")))?;
            utxo.insert(k, v);
        }
        // The file is valid up to the end of the last indexed record.
        let valid_end = if height == 0 {
            0
        } else {
            let blocks = r.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
            let e = blocks
                .get(height - 1)
                .map_err(|e| self.db_err(e))?
                .ok_or_else(|| corrupt("index entry missing".into()))?;
            let e: IndexEntry = postcard::from_bytes(e.value()).map_err(|e| corrupt(format!("index entry: {e}")))?;
            e.offset + e.len
        };
        drop(meta);
        drop(r);
        let bpath = self.dir.join("blocks.dat");
        if self.file_len < valid_end {
            return Err(StoreError::Corrupt {
                path: bpath,
                reason: format!("{} bytes, index says {valid_end}", self.file_len),
            });
        }
        if self.file_len > valid_end {
            tracing::warn!(file = %bpath.display(), cut = self.file_len - valid_end, "discarding torn block record");
            self.file.set_len(valid_end).map_err(|source| StoreError::Io { path: bpath.clone(), source })?;
            self.file.sync_all().map_err(|source| StoreError::Io { path: bpath.clone(), source })?;
            self.file_len = valid_end;
        }
        self.height = height;
        Ok((self, Recovered { height, tip, utxo, safety }))
    }

    /// Blocks stored (= next height).
    pub fn height(&self) -> Height {
        self.height
    }

    /// Durably appends the final block at `height` (see the module contract).
    pub fn append(
        &mut self,
        height: Height,
        payload: &[u8],
        cert: &CommitCert,
        block: &Block,
    ) -> Result<(), StoreError> {
        if height != self.height {
            return Err(StoreError::OutOfOrder { got: height, want: self.height });
        }
        let bpath = self.dir.join("blocks.dat");
        let body = enc(&(height, payload, cert));
        let mut rec = Vec::with_capacity(body.len() + 4);
        rec.extend_from_slice(&(body.len() as u32).to_le_bytes());
        rec.extend_from_slice(&body);
        self.file.write_all(&rec).map_err(|source| StoreError::Io { path: bpath.clone(), source })?;
        self.file.sync_data().map_err(|source| StoreError::Io { path: bpath.clone(), source })?;
        let entry = IndexEntry { offset: self.file_len, len: rec.len() as u64, digest: Digest::of(payload) };
        let (spent, created) = Ledger::changes(block);
        let w = self.db.begin_write().map_err(|e| self.db_err(e))?;
        {
            let mut blocks = w.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
            blocks.insert(height, enc(&entry).as_slice()).map_err(|e| self.db_err(e))?;
            let mut utxo = w.open_table(UTXO).map_err(|e| self.db_err(e))?;
            for o in spent {
                utxo.remove(enc(&o).as_slice()).map_err(|e| self.db_err(e))?;
            }
            for (o, out) in created {
                utxo.insert(enc(&o).as_slice(), enc(&out).as_slice()).map_err(|e| self.db_err(e))?;
            }
            let mut meta = w.open_table(META).map_err(|e| self.db_err(e))?;
            meta.insert("height", (height + 1).to_le_bytes().as_slice()).map_err(|e| self.db_err(e))?;
            meta.insert("tip", entry.digest.0.as_slice()).map_err(|e| self.db_err(e))?;
        }
        w.commit().map_err(|e| self.db_err(e))?;
        self.file_len += rec.len() as u64;
        self.height = height + 1;
        Ok(())
    }

    /// Durably stores the consensus safety state.
    pub fn persist_safety(&mut self, s: &SafetyState) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(|e| self.db_err(e))?;
        {
            let mut meta = w.open_table(META).map_err(|e| self.db_err(e))?;
            meta.insert("safety", enc(s).as_slice()).map_err(|e| self.db_err(e))?;
        }
        w.commit().map_err(|e| self.db_err(e))
    }

    /// The stored block at `height` with its certificate, checked against the index digest.
    pub fn read(&self, height: Height) -> Result<Option<(Vec<u8>, CommitCert)>, StoreError> {
        if height >= self.height {
            return Ok(None);
        }
        let bpath = self.dir.join("blocks.dat");
        let corrupt = |reason: String| StoreError::Corrupt { path: bpath.clone(), reason };
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let blocks = r.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
        let Some(e) = blocks.get(height).map_err(|e| self.db_err(e))? else { return Ok(None) };
        let e: IndexEntry = postcard::from_bytes(e.value()).map_err(|e| corrupt(format!("index entry: {e}")))?;
        let mut buf = vec![0u8; e.len as usize];
        self.file.read_exact_at(&mut buf, e.offset).map_err(|source| StoreError::Io { path: bpath.clone(), source })?;
        let (h, payload, cert): (Height, Vec<u8>, CommitCert) = postcard::from_bytes(buf.get(4..).unwrap_or(&[]))
            .map_err(|x| corrupt(format!("block {height} record: {x}")))?;
        if h != height || Digest::of(&payload) != e.digest {
            return Err(corrupt(format!("block {height} does not match its index entry")));
        }
        Ok(Some((payload, cert)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::ledger::{sign_transaction, SpendKey};

    #[test]
    fn append_recover_and_torn_tail() {
        let dir = std::env::temp_dir().join(format!("parthenon-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let k = SpendKey::from_seed(false, [3; 32]).unwrap();
        let genesis = Genesis { chain: "t".into(), outputs: vec![Output { value: 10, lock: k.lock() }] };
        let g = genesis.id();
        let (mut s, rec) = Store::open(&dir, &genesis).unwrap();
        assert_eq!((rec.height, rec.tip, rec.utxo.len()), (0, g, 1));
        let tx = sign_transaction(&[(OutPoint { tx: g, index: 0 }, &k)], vec![Output { value: 9, lock: k.lock() }]);
        let block = Block { height: 0, parent: g, proposer: 0, transactions: vec![tx.clone()] };
        let payload = block.encode();
        let cert = CommitCert { votes: vec![] };
        s.append(0, &payload, &cert, &block).unwrap();
        assert!(matches!(s.append(5, &payload, &cert, &block), Err(StoreError::OutOfOrder { got: 5, want: 1 })));
        s.persist_safety(&SafetyState { height: 1, view: 2, ..Default::default() }).unwrap();
        drop(s);
        // A torn record after the last indexed one is cut off on recovery.
        let mut f = OpenOptions::new().append(true).open(dir.join("blocks.dat")).unwrap();
        f.write_all(&[9, 9, 9]).unwrap();
        drop(f);
        let (s, rec) = Store::open(&dir, &genesis).unwrap();
        assert_eq!(rec.height, 1);
        assert_eq!(rec.tip, Digest::of(&payload));
        assert_eq!(rec.utxo.keys().copied().collect::<Vec<_>>(), vec![OutPoint { tx: tx.id(), index: 0 }]);
        assert_eq!(rec.safety.unwrap().view, 2);
        assert_eq!(s.read(0).unwrap().unwrap().0, payload);
        assert!(s.read(1).unwrap().is_none());
        drop(s);
        // A file shorter than the index says is corruption.
        let f = OpenOptions::new().write(true).open(dir.join("blocks.dat")).unwrap();
        f.set_len(5).unwrap();
        drop(f);
        assert!(matches!(Store::open(&dir, &genesis), Err(StoreError::Corrupt { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
