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
//!   final (its height). The block file *at* that height, if any, was sealed but never indexed
//!   (a crash between the two steps; a failed commit stops the node, so there is at most one):
//!   nothing was acknowledged for it, so it is removed, and the height is decided or fetched
//!   again. A block file *above* it means the index is older than the blocks (lost, or restored
//!   from an older copy), and block files beside a missing or empty index mean the index was
//!   lost: both are [`StoreError::Corrupt`] naming `index.redb` and the highest block file, and
//!   nothing is removed. On open, only the file of the last final block (height − 1) must exist:
//!   without it, [`StoreError::Corrupt`]. The files below it are not looked at (a check per
//!   block would make opening a long chain slow): one missing there is never taken for a block
//!   that is not final, but surfaces only when it is read ([`Store::read`]:
//!   [`StoreError::Blocks`] naming the block and the store) or served to a peer (the block
//!   connection fails, counted in the sync errors, [`crate::node::sync`]).
//! - The index keeps the id of the genesis the store was created with; opening it with another
//!   genesis (a changed chain name or wallet seed) is [`StoreError::Genesis`] naming both ids,
//!   before anything is removed. A store written before the id was kept gets it from its chain
//!   on open (the tip at height 0, else block 0's parent), checked the same way, then stored.
//! - [`Store::read`] returns a stored block and checks it against the digest in the index.
//! - [`Store::persist_safety`] keeps the consensus [`SafetyState`] (one redb commit).
//! - [`Store::chain_hash`] is one index lookup: `append` stores, in the same transaction as the
//!   block's index entry, the chain hash up to it (SHA-256 over the payload digests of blocks
//!   `0..=h`, concatenated in height order) and the SHA-256 state that extends it. A data
//!   directory written before these were kept (or whose state does not extend its last stored
//!   hash) gets them computed from the index once, on [`Store::open`].

use crate::node::consensus::{CommitCert, Digest, Height, SafetyState};
use crate::node::ledger::{Block, Genesis, Ledger, OutPoint, Output};
use crate::transfer::{self, BlockId, BlockStore};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const UTXO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("utxo");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Height `h` → SHA-256 over the payload digests of blocks `0..=h` ([`Store::chain_hash`]).
const CHAIN: TableDefinition<u64, &[u8]> = TableDefinition::new("chain_hash");
/// Key in [`META`] of the serialized SHA-256 state over the digests of every stored block.
const CHAIN_STATE: &str = "chain_state";
/// Key in [`META`] of the id of the genesis the store was created with ([`Genesis::id`]).
const GENESIS: &str = "genesis";

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
    /// The store holds the chain of another genesis than the one it is opened with.
    #[error(
        "{path}: holds the chain of genesis {stored:?}, not of the configured genesis {given:?} (chain name, wallet \
         seed or outputs changed?): a new chain needs a new data directory"
    )]
    Genesis {
        /// The index (`index.redb`).
        path: PathBuf,
        /// Genesis id the store was created with.
        stored: Digest,
        /// Genesis id it was opened with.
        given: Digest,
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
    /// SHA-256 state over the payload digests of blocks `0..height`.
    chain: Sha256,
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
        if !dpath.try_exists().map_err(io(dpath.clone()))? {
            // Checked before `Database::create`, so that a refused open leaves no new index behind.
            refuse_lost_index(&blocks, &dpath)?;
        }
        let db =
            Database::create(&dpath).map_err(|e| StoreError::Db { path: dpath.clone(), source: Box::new(e.into()) })?;
        let store = Store { dir: dir.to_path_buf(), blocks, db, height: 0, chain: Sha256::new() };
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
            // A new (or emptied) index beside block files is a lost index, not a new store.
            refuse_lost_index(&self.blocks, &self.dir.join("index.redb"))?;
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
                meta.insert(GENESIS, id.0.as_slice()).map_err(|e| self.db_err(e))?;
                w.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
            }
            w.commit().map_err(|e| self.db_err(e))?;
        }
        let corrupt = |reason: String| self.corrupt_index(reason);
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let meta = r.open_table(META).map_err(|e| self.db_err(e))?;
        let get = |k: &str| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(meta.get(k).map_err(|e| self.db_err(e))?.map(|g| g.value().to_vec()))
        };
        let height = u64::from_le_bytes(
            get("height")?.and_then(|v| v.try_into().ok()).ok_or_else(|| corrupt("height missing".into()))?,
        );
        let tip = Digest(get("tip")?.and_then(|v| v.try_into().ok()).ok_or_else(|| corrupt("tip missing".into()))?);
        let stored_genesis = match get(GENESIS)? {
            Some(v) => Some(Digest(v.try_into().map_err(|_| corrupt("genesis id is not 32 bytes".into()))?)),
            None => None,
        };
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
        self.height = height;
        self.check_genesis(stored_genesis, tip, genesis)?;
        if height > 0 && !self.blocks.contains(BlockId(height - 1)) {
            return Err(StoreError::Corrupt {
                path: self.blocks.path(BlockId(height - 1)),
                reason: format!("missing, but the index says {height} blocks are final"),
            });
        }
        // `append` seals the file of `height` before it commits the index entry, and a failed
        // commit stops the node: a crash leaves at most that one file unindexed. A file above it
        // means the index is older than the blocks (lost, or restored from an older copy).
        let ids = self.blocks.ids()?;
        if let Some(&top) = ids.last().filter(|id| id.0 > height) {
            return Err(self.corrupt_index(format!(
                "says {height} blocks are final, but block file {} is above them (a crash leaves at most the \
                 file of block {height}): the index is older than the blocks; no block file was removed",
                self.blocks.path(top).display()
            )));
        }
        if ids.last() == Some(&BlockId(height)) {
            let path = self.blocks.path(BlockId(height));
            tracing::warn!(file = %path.display(), "removing a block sealed but never indexed (crash in between)");
            std::fs::remove_file(&path).map_err(|source| StoreError::Io { path, source })?;
        }
        self.chain = self.recover_chain_hash()?;
        Ok((self, Recovered { height, tip, utxo, safety }))
    }

    /// The SHA-256 state over the digests of every stored block: the stored one if it extends
    /// the stored chain hash of the last block, else computed from the index (one pass, also
    /// storing every height's chain hash).
    fn recover_chain_hash(&self) -> Result<Sha256, StoreError> {
        let height = self.height;
        if height == 0 {
            return Ok(Sha256::new());
        }
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let last = match r.open_table(CHAIN) {
            Ok(t) => t.get(height - 1).map_err(|e| self.db_err(e))?.map(|g| g.value().to_vec()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(self.db_err(e)),
        };
        let meta = r.open_table(META).map_err(|e| self.db_err(e))?;
        let state = meta.get(CHAIN_STATE).map_err(|e| self.db_err(e))?.map(|g| g.value().to_vec());
        let stored = state
            .as_deref()
            .and_then(|b| SerializedState::<Sha256>::try_from(b).ok())
            .and_then(|b| Sha256::deserialize(&b).ok());
        if let (Some(chain), Some(last)) = (stored, last) {
            if chain.clone().finalize().as_slice() == last.as_slice() {
                return Ok(chain);
            }
        }
        // Written by a version that kept no chain hashes: compute them once, streaming.
        drop(meta);
        tracing::info!(blocks = height, "computing the chain hashes of a data directory that kept none");
        let mut chain = Sha256::new();
        let w = self.db.begin_write().map_err(|e| self.db_err(e))?;
        {
            let blocks = r.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
            let mut hashes = w.open_table(CHAIN).map_err(|e| self.db_err(e))?;
            let mut next = 0u64;
            for item in blocks.range(0..height).map_err(|e| self.db_err(e))? {
                let (h, v) = item.map_err(|e| self.db_err(e))?;
                if h.value() != next {
                    return Err(self.corrupt_index(format!("index skips from {next} to {}", h.value())));
                }
                let e: IndexEntry = postcard::from_bytes(v.value())
                    .map_err(|x| self.corrupt_index(format!("index entry {}: {x}", h.value())))?;
                chain.update(e.digest.0);
                hashes.insert(next, chain.clone().finalize().as_slice()).map_err(|e| self.db_err(e))?;
                next += 1;
            }
            if next != height {
                return Err(self.corrupt_index(format!("{next} index entries, {height} blocks final")));
            }
            let mut meta = w.open_table(META).map_err(|e| self.db_err(e))?;
            meta.insert(CHAIN_STATE, chain.serialize().as_slice()).map_err(|e| self.db_err(e))?;
        }
        w.commit().map_err(|e| self.db_err(e))?;
        Ok(chain)
    }

    /// Checks that the store holds the chain of `genesis`. A store written before the genesis id
    /// was kept gets it from its chain (the tip at height 0, else block 0's parent) and stored.
    fn check_genesis(&self, stored: Option<Digest>, tip: Digest, genesis: &Genesis) -> Result<(), StoreError> {
        let given = genesis.id();
        let stored = match stored {
            Some(id) => id,
            None => {
                let id = if self.height == 0 {
                    tip
                } else {
                    let Some((payload, _)) = self.read(0)? else {
                        return Err(self.corrupt_index("block 0 is not final".into()));
                    };
                    let block = Block::decode(&payload).map_err(|e| StoreError::Corrupt {
                        path: self.blocks.path(BlockId(0)),
                        reason: format!("block 0 payload: {e}"),
                    })?;
                    block.parent
                };
                if id == given {
                    let w = self.db.begin_write().map_err(|e| self.db_err(e))?;
                    w.open_table(META)
                        .map_err(|e| self.db_err(e))?
                        .insert(GENESIS, id.0.as_slice())
                        .map_err(|e| self.db_err(e))?;
                    w.commit().map_err(|e| self.db_err(e))?;
                }
                id
            }
        };
        if stored != given {
            return Err(StoreError::Genesis { path: self.dir.join("index.redb"), stored, given });
        }
        Ok(())
    }

    fn corrupt_index(&self, reason: String) -> StoreError {
        StoreError::Corrupt { path: self.dir.join("index.redb"), reason }
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
        let mut chain = self.chain.clone();
        chain.update(entry.digest.0);
        let w = self.db.begin_write().map_err(|e| self.db_err(e))?;
        {
            let mut blocks = w.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
            blocks.insert(height, enc(&entry).as_slice()).map_err(|e| self.db_err(e))?;
            let mut hashes = w.open_table(CHAIN).map_err(|e| self.db_err(e))?;
            hashes.insert(height, chain.clone().finalize().as_slice()).map_err(|e| self.db_err(e))?;
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
            meta.insert(CHAIN_STATE, chain.serialize().as_slice()).map_err(|e| self.db_err(e))?;
        }
        w.commit().map_err(|e| self.db_err(e))?;
        self.height = height + 1;
        self.chain = chain;
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

    /// SHA-256 over the payload digests of blocks `0..=upto`, concatenated in height order: two
    /// stores with the same value hold the same chain up to `upto`. One index lookup (stored by
    /// [`Store::append`]; see the module contract). `None` when `upto` is not final here.
    pub fn chain_hash(&self, upto: Height) -> Result<Option<Digest>, StoreError> {
        if upto >= self.height {
            return Ok(None);
        }
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let t = r.open_table(CHAIN).map_err(|e| self.db_err(e))?;
        let Some(v) = t.get(upto).map_err(|e| self.db_err(e))? else {
            return Err(self.corrupt_index(format!("chain hash {upto} missing")));
        };
        let d: [u8; 32] =
            v.value().try_into().map_err(|_| self.corrupt_index(format!("chain hash {upto} is not 32 bytes")))?;
        Ok(Some(Digest(d)))
    }

    /// The consensus digest of the final block at `height` as the index holds it: one index
    /// lookup, no block file read (what a status request may cost an unauthenticated client).
    /// `None` when `height` is not final here.
    pub fn digest(&self, height: Height) -> Result<Option<Digest>, StoreError> {
        if height >= self.height {
            return Ok(None);
        }
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let blocks = r.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
        let Some(v) = blocks.get(height).map_err(|e| self.db_err(e))? else {
            return Err(self.corrupt_index(format!("index entry {height} missing")));
        };
        let e: IndexEntry =
            postcard::from_bytes(v.value()).map_err(|x| self.corrupt_index(format!("index entry {height}: {x}")))?;
        Ok(Some(e.digest))
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
        let Some(e) = blocks.get(height).map_err(|e| self.db_err(e))? else {
            return Err(self.corrupt_index(format!("index entry {height} missing")));
        };
        let e: IndexEntry =
            postcard::from_bytes(e.value()).map_err(|x| self.corrupt_index(format!("index entry {height}: {x}")))?;
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

/// Refuses to start a new index beside block files: they are a chain whose index was lost (or
/// replaced), and starting over would remove or overwrite them. Nothing is removed.
fn refuse_lost_index(blocks: &BlockStore, dpath: &Path) -> Result<(), StoreError> {
    match blocks.ids()?.last() {
        Some(&top) => Err(StoreError::Corrupt {
            path: dpath.to_path_buf(),
            reason: format!(
                "missing or empty, but block files up to {} exist: the index was lost; no block file was removed \
                 (restore the index, or move the block files away to start a new chain)",
                blocks.path(top).display()
            ),
        }),
        None => Ok(()),
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
        assert_eq!(s.digest(0).unwrap(), Some(Digest::of(&payload)));
        assert_eq!(s.digest(1).unwrap(), None);
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

    /// The contract as documented: open checks the last final block's file only; one missing
    /// below it is an error naming it when the block is read, never "not final".
    #[test]
    fn a_missing_lower_block_file_surfaces_when_read() {
        let dir = std::env::temp_dir().join(format!("parthenon-store-gap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let genesis = Genesis { chain: "g".into(), outputs: vec![] };
        let block = |h: Height| Block { height: h, parent: Digest([h as u8; 32]), proposer: 0, transactions: vec![] };
        let cert = CommitCert { votes: vec![] };
        let (mut s, _) = Store::open(&dir, &genesis).unwrap();
        for h in 0..3 {
            s.append(h, &block(h).encode(), &cert, &block(h)).unwrap();
        }
        drop(s);
        std::fs::remove_file(dir.join("blocks").join(format!("{}.blk", BlockId(1)))).unwrap();
        let (s, rec) = Store::open(&dir, &genesis).unwrap();
        assert_eq!(rec.height, 3);
        assert!(s.read(0).unwrap().is_some());
        let err = s.read(1).unwrap_err();
        assert!(matches!(err, StoreError::Blocks(transfer::Error::NotFound { block: BlockId(1), .. })), "{err}");
        assert!(s.read(2).unwrap().is_some());
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The chain hash is one lookup with the value of its definition (SHA-256 over the
    /// concatenated payload digests), computed once for a data directory that kept none.
    #[test]
    fn chain_hash_is_stored_and_recovered() {
        let dir = std::env::temp_dir().join(format!("parthenon-store-chain-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let genesis = Genesis { chain: "c".into(), outputs: vec![] };
        let block = |h: Height| Block { height: h, parent: Digest([h as u8; 32]), proposer: 0, transactions: vec![] };
        let cert = CommitCert { votes: vec![] };
        let definition = |upto: Height| {
            let mut hasher = Sha256::new();
            for h in 0..=upto {
                hasher.update(Digest::of(&block(h).encode()).0);
            }
            Some(Digest(hasher.finalize().into()))
        };
        let (mut s, _) = Store::open(&dir, &genesis).unwrap();
        for h in 0..4 {
            s.append(h, &block(h).encode(), &cert, &block(h)).unwrap();
        }
        for h in 0..4 {
            assert_eq!(s.chain_hash(h).unwrap(), definition(h));
        }
        // A data directory from before chain hashes were stored: computed on open.
        let w = s.db.begin_write().unwrap();
        w.delete_table(CHAIN).unwrap();
        w.open_table(META).unwrap().remove(CHAIN_STATE).unwrap();
        w.commit().unwrap();
        drop(s);
        let (mut s, _) = Store::open(&dir, &genesis).unwrap();
        s.append(4, &block(4).encode(), &cert, &block(4)).unwrap();
        for h in 0..5 {
            assert_eq!(s.chain_hash(h).unwrap(), definition(h));
        }
        // A state that does not extend the last stored hash is not trusted.
        let w = s.db.begin_write().unwrap();
        w.open_table(META).unwrap().insert(CHAIN_STATE, Sha256::new().serialize().as_slice()).unwrap();
        w.commit().unwrap();
        drop(s);
        let (mut s, _) = Store::open(&dir, &genesis).unwrap();
        s.append(5, &block(5).encode(), &cert, &block(5)).unwrap();
        assert_eq!(s.chain_hash(5).unwrap(), definition(5));
        // One lookup: the index entries below are not read.
        let w = s.db.begin_write().unwrap();
        w.open_table(BLOCKS).unwrap().remove(0).unwrap();
        w.commit().unwrap();
        assert_eq!(s.chain_hash(5).unwrap(), definition(5));
        // A final height without its index entry is corruption to every reader, never "not final".
        assert!(matches!(s.digest(0), Err(StoreError::Corrupt { .. })));
        assert!(matches!(s.read(0), Err(StoreError::Corrupt { .. })));
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Blocks `0..n` of a chain from `genesis` (block 0's parent is the genesis id).
    fn chain(genesis: &Genesis, n: Height) -> Vec<Block> {
        let mut parent = genesis.id();
        (0..n)
            .map(|h| {
                let b = Block { height: h, parent, proposer: 0, transactions: vec![] };
                parent = Digest::of(&b.encode());
                b
            })
            .collect()
    }

    /// The ids of the block files in the store at `dir`.
    fn files(dir: &Path) -> Vec<u64> {
        BlockStore::open(dir).unwrap().ids().unwrap().into_iter().map(|id| id.0).collect()
    }

    /// A crash leaves at most the file at the index height unindexed: a file above it, or block
    /// files beside a missing or empty index, mean a lost or older index, and nothing is removed.
    #[test]
    fn a_lost_or_older_index_is_corrupt_and_removes_no_block_file() {
        let dir = std::env::temp_dir().join(format!("parthenon-store-lost-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let genesis = Genesis { chain: "l".into(), outputs: vec![] };
        let blocks = chain(&genesis, 3);
        let cert = CommitCert { votes: vec![] };
        let index = dir.join("index.redb");
        let (mut s, _) = Store::open(&dir, &genesis).unwrap();
        s.append(0, &blocks[0].encode(), &cert, &blocks[0]).unwrap();
        drop(s);
        let older = dir.join("index-at-1.redb");
        std::fs::copy(&index, &older).unwrap();
        let (mut s, _) = Store::open(&dir, &genesis).unwrap();
        for h in 1..3 {
            s.append(h, &blocks[h as usize].encode(), &cert, &blocks[h as usize]).unwrap();
        }
        let top = s.blocks().path(BlockId(2));
        drop(s);
        let good = dir.join("index-at-3.redb");
        std::fs::copy(&index, &good).unwrap();
        let refused = |what: &str| {
            let err = Store::open(&dir, &genesis).err().unwrap_or_else(|| panic!("{what}: opened"));
            match &err {
                StoreError::Corrupt { path, reason } => {
                    assert_eq!(path, &index, "{what}: {err}");
                    assert!(reason.contains(&top.display().to_string()), "{what}: {err}");
                }
                _ => panic!("{what}: {err}"),
            }
            assert_eq!(files(&dir), vec![0, 1, 2], "{what}: {err}");
        };
        // The index deleted (it looks like a cache): refused, and no new index is left behind.
        std::fs::remove_file(&index).unwrap();
        refused("index deleted");
        assert!(!index.exists());
        // Replaced by an empty database.
        drop(Database::create(&index).unwrap());
        refused("empty index");
        refused("empty index, again");
        // Restored from an older copy (height 1: file 1 at the height, file 2 above it).
        std::fs::copy(&older, &index).unwrap();
        refused("older index");
        // The right index opens the whole chain.
        std::fs::copy(&good, &index).unwrap();
        let (s, rec) = Store::open(&dir, &genesis).unwrap();
        assert_eq!(rec.height, 3);
        assert_eq!(s.read(2).unwrap().unwrap().0, blocks[2].encode());
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A data directory holds the chain of the genesis it was created with, and says so when
    /// opened with another one, also when written before the genesis id was kept.
    #[test]
    fn a_store_opened_with_another_genesis_is_refused() {
        let dir = std::env::temp_dir().join(format!("parthenon-store-genesis-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = Genesis { chain: "a".into(), outputs: vec![] };
        let b = Genesis { chain: "b".into(), outputs: vec![] };
        let blocks = chain(&a, 1);
        let cert = CommitCert { votes: vec![] };
        let refused = |what: &str| {
            let err = Store::open(&dir, &b).err().unwrap_or_else(|| panic!("{what}: opened"));
            match &err {
                StoreError::Genesis { path, stored, given } => {
                    assert_eq!((path, *stored, *given), (&dir.join("index.redb"), a.id(), b.id()), "{what}: {err}");
                }
                _ => panic!("{what}: {err}"),
            }
            let msg = err.to_string();
            assert!(msg.contains("index.redb") && msg.contains(&format!("{:?}", a.id())), "{msg}");
            assert!(msg.contains(&format!("{:?}", b.id())), "{msg}");
        };
        let forget = |s: Store| {
            let w = s.db.begin_write().unwrap();
            w.open_table(META).unwrap().remove(GENESIS).unwrap();
            w.commit().unwrap();
        };
        let (s, _) = Store::open(&dir, &a).unwrap();
        drop(s);
        refused("height 0");
        let (mut s, _) = Store::open(&dir, &a).unwrap();
        s.append(0, &blocks[0].encode(), &cert, &blocks[0]).unwrap();
        // A block sealed but never indexed is not removed for a store that is refused.
        s.blocks().put(BlockId(1), b"sealed, never indexed").unwrap();
        drop(s);
        refused("height 1");
        assert_eq!(files(&dir), vec![0, 1]);
        // Written before the genesis id was kept: taken from block 0's parent.
        let (s, _) = Store::open(&dir, &a).unwrap();
        assert_eq!(files(&dir), vec![0]);
        forget(s);
        refused("height 1, no genesis id");
        let (s, rec) = Store::open(&dir, &a).unwrap();
        assert_eq!(rec.height, 1);
        assert_eq!(
            s.db.begin_read().unwrap().open_table(META).unwrap().get(GENESIS).unwrap().unwrap().value(),
            a.id().0
        );
        drop(s);
        refused("height 1, genesis id stored again");
        // At height 0 the tip is the genesis id.
        let _ = std::fs::remove_dir_all(&dir);
        let (s, _) = Store::open(&dir, &a).unwrap();
        forget(s);
        refused("height 0, no genesis id");
        let (s, rec) = Store::open(&dir, &a).unwrap();
        assert_eq!(rec.tip, a.id());
        drop(s);
        refused("height 0, genesis id stored again");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A corrupt index entry is reported against the index, not the block file.
    #[test]
    fn a_corrupt_index_entry_names_the_index() {
        let dir = std::env::temp_dir().join(format!("parthenon-store-entry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let genesis = Genesis { chain: "e".into(), outputs: vec![] };
        let blocks = chain(&genesis, 1);
        let (mut s, _) = Store::open(&dir, &genesis).unwrap();
        s.append(0, &blocks[0].encode(), &CommitCert { votes: vec![] }, &blocks[0]).unwrap();
        let w = s.db.begin_write().unwrap();
        w.open_table(BLOCKS).unwrap().insert(0, [0xffu8; 3].as_slice()).unwrap();
        w.commit().unwrap();
        for err in [s.read(0).unwrap_err(), s.digest(0).unwrap_err()] {
            match &err {
                StoreError::Corrupt { path, reason } => {
                    assert_eq!(path, &dir.join("index.redb"), "{err}");
                    assert!(reason.starts_with("index entry 0: "), "{err}");
                }
                _ => panic!("{err}"),
            }
        }
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
