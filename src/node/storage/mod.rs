//! Durable storage of a validator: append-only block files plus a redb index, UTXO set and
//! safety state.
//!
//! # Contract
//!
//! - Blocks live in the engine's [`BlockStore`] (`<data_dir>/blocks/<height>.blk`): one immutable
//!   file per final block, holding the transfer wire header (length, BLAKE3 digest) and the block
//!   record (postcard of height, payload and commit certificate). A stored block therefore *is*
//!   its wire form, and [`crate::node::sync`] serves it to catching-up peers with the engine's
//!   transfer (`sendfile`, `splice`, io_uring) straight from the file.
//! - [`Store::append`] seals the block file ([`BlockStore::put`]: temp file, `fsync`, link into
//!   place, directory `fsync`) and only then commits one redb transaction with the index entry
//!   (the payload's consensus digest), the UTXO changes and the new height. redb commits are
//!   durable, so when `append` returns the block survives a crash, and the node only then sends
//!   anything that depends on it.
//! - [`Store::open`] recovers to the last committed block: the index says how many blocks are
//!   final. A block file above that height was sealed but never indexed (a crash between the two
//!   steps): nothing was acknowledged for it, so it is removed, and the height is decided or
//!   fetched again. A *missing* file below the indexed height is corruption
//!   ([`StoreError::Corrupt`]), never silently accepted.
//! - [`Store::read`] returns a stored block and checks it against the digest in the index.
//! - [`Store::persist_safety`] keeps the consensus [`SafetyState`] (one redb commit).

use crate::node::consensus::{CommitCert, Digest, Height, SafetyState};
use crate::node::ledger::{Block, Genesis, Ledger, OutPoint, Output};
use crate::transfer::{self, BlockId, BlockStore};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::HashMap;
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
    /// The block files.
    #[error("block store: {0}")]
    Blocks(#[from] transfer::Error),
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
    /// Bytes of the block record (the block file's body).
    len: u64,
    /// Consensus digest of the payload.
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
    blocks: BlockStore,
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
        let blocks = BlockStore::open(dir)?;
        let dpath = dir.join("index.redb");
        let db =
            Database::create(&dpath).map_err(|e| StoreError::Db { path: dpath.clone(), source: Box::new(e.into()) })?;
        let store = Store { dir: dir.to_path_buf(), blocks, db, height: 0 };
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
        drop(meta);
        drop(r);
        if height > 0 && !self.blocks.contains(BlockId(height - 1)) {
            return Err(StoreError::Corrupt {
                path: self.blocks.path(BlockId(height - 1)),
                reason: format!("missing, but the index says {height} blocks are final"),
            });
        }
        for id in self.blocks.ids()?.into_iter().filter(|id| id.0 >= height) {
            let path = self.blocks.path(id);
            tracing::warn!(file = %path.display(), "removing a block sealed but never indexed (crash in between)");
            std::fs::remove_file(&path).map_err(|source| StoreError::Io { path, source })?;
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
        let record = enc(&(height, payload, cert));
        self.blocks.put(BlockId(height), &record)?;
        let entry = IndexEntry { len: record.len() as u64, digest: Digest::of(payload) };
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
        self.height = height + 1;
        Ok(())
    }

    /// The block files (shared read-only with the block server; see [`crate::node::sync`]).
    pub fn blocks(&self) -> &BlockStore {
        &self.blocks
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

    /// SHA-256 over the payload digests of blocks `0..=upto` in height order (from the index, no
    /// block file read): two stores with the same value hold the same chain up to `upto`.
    /// `None` when `upto` is not final here.
    pub fn chain_hash(&self, upto: Height) -> Result<Option<Digest>, StoreError> {
        use sha2::Digest as _;
        if upto >= self.height {
            return Ok(None);
        }
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let blocks = r.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
        let mut hasher = sha2::Sha256::new();
        for (next, item) in (0u64..).zip(blocks.range(0..=upto).map_err(|e| self.db_err(e))?) {
            let (h, v) = item.map_err(|e| self.db_err(e))?;
            let e: IndexEntry = postcard::from_bytes(v.value()).map_err(|x| StoreError::Corrupt {
                path: self.dir.join("index.redb"),
                reason: format!("index entry {}: {x}", h.value()),
            })?;
            if h.value() != next {
                return Err(StoreError::Corrupt {
                    path: self.dir.join("index.redb"),
                    reason: format!("index skips from {next} to {}", h.value()),
                });
            }
            hasher.update(e.digest.0);
        }
        Ok(Some(Digest(hasher.finalize().into())))
    }

    /// The stored block at `height` with its certificate, checked against the index digest.
    pub fn read(&self, height: Height) -> Result<Option<(Vec<u8>, CommitCert)>, StoreError> {
        if height >= self.height {
            return Ok(None);
        }
        let bpath = self.blocks.path(BlockId(height));
        let corrupt = |reason: String| StoreError::Corrupt { path: bpath.clone(), reason };
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let blocks = r.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
        let Some(e) = blocks.get(height).map_err(|e| self.db_err(e))? else { return Ok(None) };
        let e: IndexEntry = postcard::from_bytes(e.value()).map_err(|e| corrupt(format!("index entry: {e}")))?;
        let buf = self.blocks.get(BlockId(height))?.read_body()?;
        if buf.len() as u64 != e.len {
            return Err(corrupt(format!("{} bytes, index says {}", buf.len(), e.len)));
        }
        let (h, payload, cert): (Height, Vec<u8>, CommitCert) =
            postcard::from_bytes(&buf).map_err(|x| corrupt(format!("block {height} record: {x}")))?;
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
        // A block sealed but never indexed (crash between the two steps) is removed on recovery.
        let (s, _) = Store::open(&dir, &genesis).unwrap();
        s.blocks().put(BlockId(1), b"sealed, never indexed").unwrap();
        drop(s);
        let (s, rec) = Store::open(&dir, &genesis).unwrap();
        assert_eq!(rec.height, 1);
        assert!(!s.blocks().contains(BlockId(1)));
        assert_eq!(rec.tip, Digest::of(&payload));
        assert_eq!(rec.utxo.keys().copied().collect::<Vec<_>>(), vec![OutPoint { tx: tx.id(), index: 0 }]);
        assert_eq!(rec.safety.unwrap().view, 2);
        assert_eq!(s.read(0).unwrap().unwrap().0, payload);
        assert_eq!(s.chain_hash(0).unwrap(), Some(Digest::of(&Digest::of(&payload).0)));
        assert_eq!(s.chain_hash(1).unwrap(), None);
        assert!(s.read(1).unwrap().is_none());
        // The stored block is its transfer wire form: header, then the record.
        let sealed = s.blocks().get(BlockId(0)).unwrap();
        sealed.verify().unwrap();
        drop(s);
        // A missing final block is corruption.
        std::fs::remove_file(dir.join("blocks").join(format!("{}.blk", BlockId(0)))).unwrap();
        assert!(matches!(Store::open(&dir, &genesis), Err(StoreError::Corrupt { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
