//! `parthenon testnet`: a local network of separate validator processes on loopback, driven with
//! signed transfers of both schemes, measured, and checked for identical chains.
//!
//! The harness generates validator keys and a seed-derived genesis into a fresh temporary
//! directory, writes one `node.toml` per validator, starts `parthenon node --config …` for each,
//! and then acts as the wallet: every 10 ms it signs as many one-input transfers as the target
//! rate allows (Ed25519 keys and BIP-340 keys alternate), submits each batch to every validator,
//! and times each transaction from submission to the `Committed` notice of validator 0
//! (finality). An output becomes spendable again when its transaction commits. After the load it
//! keeps collecting notices for up to 3 s (the drain): those latencies count too (and in
//! `committed`), and whatever is still unconfirmed then is reported as `pending_at_end`.
//! Throughput (`tx_per_s`) counts only the transactions whose commit notice arrived within the
//! load (`committed_during_load`), divided by the load's duration: counting the drain's commits
//! against the load alone would overstate it by up to (load + 3 s) / load. At the end it asks every validator
//! for the SHA-256 over all its block digests up to a common height: equal hashes mean identical
//! chains at every height. Optionally one validator (the last) is killed with SIGKILL under load
//! and restarted from its data directory; the harness then waits (up to 10 s, reported) for it to
//! catch up with the others. A crash needs a restart before the load ends (`crash_at +
//! crash_down < duration`) and a network that keeps a quorum with one validator down (at least
//! [`MIN_VALIDATORS_FOR_CRASH`] of equal stake): [`run`] refuses other options
//! ([`Options::check`]). Should the kill itself come late (a slow status answer just before it),
//! the load loop still does not end while the killed validator waits for its restart.
//!
//! SIGKILL ends the process, not the machine: what it wrote stays in the kernel's page cache, so
//! the kill checks that recovery from whatever the process left is consistent (no block lost,
//! nothing half-written taken as whole), not that `fsync` happened.

use crate::node::config::{GenesisSpec, NodeConfig, ValidatorEntry};
use crate::node::consensus::Digest;
use crate::node::ledger::{sign_transaction, OutPoint, Output, SpendKey};
use crate::node::net::{read_frame, write_frame, Frame};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of validators.
    pub validators: usize,
    /// Load duration.
    pub duration: Duration,
    /// Target transactions per second.
    pub tx_rate: u64,
    /// Kill the last validator with SIGKILL this long after the load starts...
    pub crash_at: Option<Duration>,
    /// ...and restart it this long after.
    pub crash_down: Duration,
    /// The `parthenon` executable to start validators with.
    pub exe: PathBuf,
    /// Keep the directory (configs, data, logs) afterwards.
    pub keep: bool,
    /// Leader fill delay handed to the validators (ms).
    pub propose_delay_ms: u64,
    /// Largest block, in transactions.
    pub max_block_txs: usize,
}

/// Fewest validators for which [`Options::crash_at`] is accepted: with `n` validators of equal
/// stake a quorum is `n − ⌊(n−1)/3⌋` ([`crate::node::consensus::ValidatorSet::quorum`]), so one
/// validator down leaves a quorum from 4 on. With fewer, nothing commits while it is down (and
/// with one, the killed validator is the one the harness takes commit notices from).
pub const MIN_VALIDATORS_FOR_CRASH: usize = 4;

/// Quorum of `n` validators of stake 1 (see [`MIN_VALIDATORS_FOR_CRASH`]).
fn equal_stake_quorum(n: usize) -> usize {
    n - n.saturating_sub(1) / 3
}

impl Options {
    /// Why [`run`] cannot do what these options ask, if it cannot: no validators; a crash whose
    /// restart (`crash_at + crash_down`) does not come before the load ends (`duration`), so the
    /// killed validator would stay down, or the crash would not happen at all; or a crash with
    /// fewer than [`MIN_VALIDATORS_FOR_CRASH`] validators, which leaves no quorum running. The
    /// message names the command-line flags of `parthenon testnet`.
    pub fn check(&self) -> Result<(), String> {
        let n = self.validators;
        if n == 0 {
            return Err("--validators must be at least 1".into());
        }
        let Some(at) = self.crash_at else { return Ok(()) };
        if n < MIN_VALIDATORS_FOR_CRASH {
            return Err(format!(
                "--kill-at with --validators {n}: killing one leaves {} running, below the quorum of {}; \
                 a crash needs at least {MIN_VALIDATORS_FOR_CRASH} validators",
                n - 1,
                equal_stake_quorum(n)
            ));
        }
        match at.checked_add(self.crash_down) {
            Some(up) if up < self.duration => Ok(()),
            _ => Err(format!(
                "--kill-at {at:?} plus --down-for {:?} must be less than --duration {:?}: the killed validator \
                 is restarted after --down-for, and the load must still run then",
                self.crash_down, self.duration
            )),
        }
    }
}

/// Whether the load loop ends, once the load is over: the drain is done (nothing pending, or 3 s
/// of draining), and no killed validator still waits for its restart (ending then would leave it
/// down and report it as not caught up).
fn drain_done(pending_empty: bool, draining_for: Duration, awaiting_restart: bool) -> bool {
    !awaiting_restart && (pending_empty || draining_for > Duration::from_secs(3))
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Validators.
    pub validators: usize,
    /// Seconds of load.
    pub duration_s: f64,
    /// Transactions submitted.
    pub submitted: u64,
    /// Of those, committed (notice received, during the load or the drain).
    pub committed: u64,
    /// Of those, committed with the notice received within the load (before the drain).
    pub committed_during_load: u64,
    /// Submitted transactions still without a commit notice when the drain ended (not in the
    /// latency figures).
    pub pending_at_end: u64,
    /// `committed_during_load` per second of load (commits in the drain are not counted).
    pub tx_per_s: f64,
    /// Finality latency percentiles in ms.
    pub finality_p50_ms: f64,
    /// 99th percentile.
    pub finality_p99_ms: f64,
    /// 90th percentile.
    pub finality_p90_ms: f64,
    /// 99.9th percentile.
    pub finality_p999_ms: f64,
    /// Slowest transaction.
    pub finality_max_ms: f64,
    /// Lowest height among validators at the end.
    pub committed_height: u64,
    /// Highest height among validators at the end.
    pub max_height: u64,
    /// Whether every validator holds the same blocks at every height below `committed_height`
    /// (the same SHA-256 over all block digests up to it, and the same last block).
    pub identical_chains: bool,
    /// The validator killed with SIGKILL and restarted, if any.
    pub crashed_validator: Option<CrashReport>,
    /// Each validator's status (height, counters, engine report).
    pub nodes: Vec<serde_json::Value>,
    /// Where configs, data and logs are (removed unless kept).
    pub dir: PathBuf,
}

/// What happened to the killed validator.
#[derive(Debug, Clone, Serialize)]
pub struct CrashReport {
    /// Its index.
    pub index: usize,
    /// Its height just before SIGKILL.
    pub height_before_kill: u64,
    /// The height its storage recovered on restart (must be at least `height_before_kill`).
    pub recovered_height: u64,
    /// Its height at the end.
    pub height_at_end: u64,
    /// Whether it got within 2 blocks of the highest validator (`max_height`) before the
    /// comparison, within the wait.
    pub caught_up: bool,
    /// How long the harness waited after the load for every validator to be within 2 blocks
    /// of the highest (at most 10 s).
    pub catch_up_wait_ms: u64,
    /// Final blocks it fetched from peers through the engine's transfer to catch up.
    pub blocks_fetched: u64,
    /// How the serving peers moved them ("validator i: n blocks, backend (method)").
    pub served_by: Vec<String>,
}

fn random32() -> Result<[u8; 32], String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(b)
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind loopback: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn spawn(exe: &Path, dir: &Path, i: usize) -> Result<Child, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("node{i}.log")))
        .map_err(|e| format!("log file: {e}"))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    Command::new(exe)
        .args(["node", "--config"])
        .arg(dir.join(format!("node{i}.toml")))
        .stdout(log)
        .stderr(log2)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("start {}: {e}", exe.display()))
}

async fn status(addr: std::net::SocketAddr, at: Option<u64>) -> Result<serde_json::Value, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    write_frame(&mut s, &Frame::StatusRequest { at }).await.map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s)).await {
        Ok(Ok(Some(Frame::Status(j)))) => serde_json::from_str(&j).map_err(|e| e.to_string()),
        other => Err(format!("no status from {addr}: {other:?}")),
    }
}

/// Of the commits at `commits` (times since the load started), those within a load of `load`,
/// and their rate over it.
fn throughput(commits: &[Duration], load: Duration) -> (u64, f64) {
    let within = commits.iter().filter(|t| **t <= load).count() as u64;
    let secs = load.as_secs_f64();
    (within, if secs > 0.0 { within as f64 / secs } else { 0.0 })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs a testnet (see the module docs).
pub async fn run(opts: Options) -> Result<Report, String> {
    opts.check()?;
    let n = opts.validators;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("parthenon-testnet-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let keys: Vec<ed25519_dalek::SigningKey> =
        (0..n).map(|_| random32().map(|b| ed25519_dalek::SigningKey::from_bytes(&b))).collect::<Result<_, _>>()?;
    let addrs: Vec<std::net::SocketAddr> = (0..n)
        .map(|_| free_port().map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p))))
        .collect::<Result<_, _>>()?;
    let genesis = GenesisSpec {
        chain: format!("testnet-{stamp}"),
        wallet_seed: hex::encode(random32()?),
        keys: 64,
        outputs: (opts.tx_rate * 3).clamp(2_000, 60_000) as u32,
        value: 1_000,
    };
    let validators: Vec<ValidatorEntry> = keys
        .iter()
        .zip(&addrs)
        .map(|(k, a)| ValidatorEntry { public_key: hex::encode(k.verifying_key().to_bytes()), stake: 1, address: *a })
        .collect();
    for (i, k) in keys.iter().enumerate() {
        let cfg = NodeConfig {
            index: i as u16,
            key: hex::encode(k.to_bytes()),
            listen: addrs[i],
            data_dir: dir.join(format!("data{i}")),
            base_timeout_ms: 1000,
            propose_delay_ms: opts.propose_delay_ms,
            max_block_txs: opts.max_block_txs,
            validators: validators.clone(),
            genesis: genesis.clone(),
            metrics: None,
            client_idle_timeout_ms: crate::node::peer::CLIENT_IDLE_TIMEOUT.as_millis() as u64,
            fetch_deadline_ms: crate::node::sync::FETCH_DEADLINE.as_millis() as u64,
        };
        std::fs::write(dir.join(format!("node{i}.toml")), cfg.to_toml()).map_err(|e| format!("write config: {e}"))?;
    }
    let mut children: Vec<Child> = (0..n).map(|i| spawn(&opts.exe, &dir, i)).collect::<Result<_, _>>()?;
    // Wait until every validator answers.
    let t0 = Instant::now();
    for a in &addrs {
        while status(*a, None).await.is_err() {
            if t0.elapsed() > Duration::from_secs(20) {
                return Err(format!("validator at {a} did not start; logs in {}", dir.display()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The wallet.
    let spend_keys: Vec<SpendKey> =
        (0..genesis.keys).map(|i| genesis.spend_key(i)).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let gid = genesis.genesis().map_err(|e| e.to_string())?.id();
    let mut pool: VecDeque<(OutPoint, usize)> =
        (0..genesis.outputs).map(|j| (OutPoint { tx: gid, index: j }, (j % genesis.keys) as usize)).collect();
    let mut writers = Vec::new();
    for a in &addrs {
        let s = TcpStream::connect(a).await.map_err(|e| format!("connect {a}: {e}"))?;
        let _ = s.set_nodelay(true);
        writers.push(s);
    }
    let mut sub = TcpStream::connect(addrs[0]).await.map_err(|e| e.to_string())?;
    write_frame(&mut sub, &Frame::Subscribe).await.map_err(|e| e.to_string())?;
    let (ctx, mut crx) = tokio::sync::mpsc::unbounded_channel::<(Vec<Digest>, Instant)>();
    tokio::spawn(async move {
        while let Ok(Some(f)) = read_frame(&mut sub).await {
            if let Frame::Committed { txids, .. } = f {
                if ctx.send((txids, Instant::now())).is_err() {
                    return;
                }
            }
        }
    });

    let mut pending: HashMap<Digest, (Instant, usize)> = HashMap::new();
    let mut latencies: Vec<f64> = Vec::new();
    // When each commit notice arrived, since the load started.
    let mut commit_times: Vec<Duration> = Vec::new();
    let mut submitted = 0u64;
    let crash_victim = n - 1;
    let mut crashed: Option<Instant> = None;
    let mut restarted = false;
    let mut height_before_kill: Option<u64> = None;
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut draining_since: Option<Instant> = None;
    loop {
        tick.tick().await;
        let now = Instant::now();
        let elapsed = now - start;
        while let Ok((txids, at)) = crx.try_recv() {
            for id in txids {
                if let Some((t, k)) = pending.remove(&id) {
                    // During the drain too: the slowest transactions belong in p99 and max.
                    latencies.push((at - t).as_secs_f64() * 1e3);
                    commit_times.push(at.saturating_duration_since(start));
                    pool.push_back((OutPoint { tx: id, index: 0 }, k));
                }
            }
        }
        if let (Some(at), None) = (opts.crash_at, crashed) {
            if elapsed >= at {
                height_before_kill = status(addrs[crash_victim], None).await.ok().and_then(|s| s["height"].as_u64());
                let _ = children[crash_victim].start_kill(); // SIGKILL
                let _ = children[crash_victim].wait().await;
                crashed = Some(Instant::now());
            }
        }
        if let (Some(c), false) = (crashed, restarted) {
            if c.elapsed() >= opts.crash_down {
                children[crash_victim] = spawn(&opts.exe, &dir, crash_victim)?;
                restarted = true;
            }
        }
        if elapsed >= opts.duration {
            let d = *draining_since.get_or_insert(now);
            if drain_done(pending.is_empty(), d.elapsed(), crashed.is_some() && !restarted) {
                break;
            }
            continue;
        }
        let due = (opts.tx_rate as f64 * elapsed.as_secs_f64()) as u64;
        // At most two ticks' worth per batch: a wallet that falls behind sends more batches,
        // not one giant one whose signing time would count as finality.
        let per_tick_cap = (opts.tx_rate / 50).max(1);
        let want = due.saturating_sub(submitted).min(pool.len() as u64).min(per_tick_cap);
        if want == 0 {
            continue;
        }
        let mut batch = Vec::with_capacity(want as usize);
        let mut owners = Vec::with_capacity(want as usize);
        for _ in 0..want {
            let Some((op, k)) = pool.pop_front() else { break };
            let key = &spend_keys[k];
            batch.push(sign_transaction(&[(op, key)], vec![Output { value: genesis.value, lock: key.lock() }]));
            owners.push(k);
        }
        // Finality is timed from submission (after signing).
        let sent = Instant::now();
        for (tx, k) in batch.iter().zip(owners) {
            pending.insert(tx.id(), (sent, k));
        }
        submitted += batch.len() as u64;
        // In frames of at most what a validator considers of one `Submit`.
        let frame = batch
            .chunks(crate::node::ledger::app::MAX_SUBMIT_TXS)
            .map(|c| crate::node::net::encode(&Frame::Submit(c.to_vec())))
            .collect::<Vec<_>>()
            .concat();
        for (i, w) in writers.iter_mut().enumerate() {
            if crashed.is_some() && i == crash_victim {
                continue;
            }
            use tokio::io::AsyncWriteExt;
            let _ = w.write_all(&frame).await;
        }
    }
    let load_s = opts.duration.as_secs_f64();
    let pending_at_end = pending.len() as u64;
    // Let a restarted validator catch up before comparing.
    let wait_start = Instant::now();
    let deadline = wait_start + Duration::from_secs(10);
    let mut nodes = Vec::new();
    let all_within_2 = loop {
        nodes.clear();
        for a in &addrs {
            nodes.push(status(*a, None).await.unwrap_or(serde_json::Value::Null));
        }
        let hs: Vec<u64> = nodes.iter().map(|s| s["height"].as_u64().unwrap_or(0)).collect();
        let (lo, hi) = (hs.iter().copied().min().unwrap_or(0), hs.iter().copied().max().unwrap_or(0));
        if hi - lo <= 2 {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let catch_up_wait_ms = wait_start.elapsed().as_millis() as u64;
    let committed_height = nodes.iter().map(|s| s["height"].as_u64().unwrap_or(0)).min().unwrap_or(0);
    let mut identical = committed_height > 0;
    if committed_height > 0 {
        let mut first: Option<(String, String)> = None;
        for (i, a) in addrs.iter().enumerate() {
            let s = status(*a, Some(committed_height - 1)).await.unwrap_or(serde_json::Value::Null);
            let d = s["digest_at"].as_str().zip(s["chain_hash_at"].as_str());
            let d = d.map(|(a, b)| (a.to_string(), b.to_string()));
            identical &= d.is_some() && (first.is_none() || first == d);
            first = first.or(d);
            nodes[i] = s;
        }
    }
    let max_height = nodes.iter().map(|s| s["height"].as_u64().unwrap_or(0)).max().unwrap_or(0);
    let victim_height = nodes[crash_victim]["height"].as_u64().unwrap_or(0);
    for c in &mut children {
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let committed = latencies.len() as u64;
    let (committed_during_load, tx_per_s) = throughput(&commit_times, opts.duration);
    let report = Report {
        validators: n,
        duration_s: load_s,
        submitted,
        committed,
        committed_during_load,
        pending_at_end,
        tx_per_s,
        finality_p50_ms: percentile(&latencies, 0.50),
        finality_p99_ms: percentile(&latencies, 0.99),
        finality_p90_ms: percentile(&latencies, 0.90),
        finality_p999_ms: percentile(&latencies, 0.999),
        finality_max_ms: latencies.last().copied().unwrap_or(0.0),
        committed_height,
        max_height,
        identical_chains: identical,
        crashed_validator: crashed.map(|_| CrashReport {
            index: crash_victim,
            height_before_kill: height_before_kill.unwrap_or(0),
            recovered_height: nodes[crash_victim]["recovered_height"].as_u64().unwrap_or(0),
            height_at_end: victim_height,
            caught_up: all_within_2 && victim_height + 2 >= max_height,
            catch_up_wait_ms,
            blocks_fetched: nodes[crash_victim]["sync"]["blocks_fetched"].as_u64().unwrap_or(0),
            served_by: nodes
                .iter()
                .enumerate()
                .filter(|(_, s)| s["sync"]["blocks_served"].as_u64().unwrap_or(0) > 0)
                .map(|(i, s)| {
                    format!(
                        "validator {i}: {} blocks, {}",
                        s["sync"]["blocks_served"],
                        s["sync"]["last_served_via"].as_str().unwrap_or("?")
                    )
                })
                .collect(),
        }),
        nodes,
        dir: dir.clone(),
    };
    if !opts.keep && identical {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(validators: usize, duration: u64, crash_at: Option<u64>, crash_down: u64) -> Options {
        Options {
            validators,
            duration: Duration::from_secs(duration),
            tx_rate: 100,
            crash_at: crash_at.map(Duration::from_secs),
            crash_down: Duration::from_secs(crash_down),
            exe: PathBuf::from("/nonexistent"),
            keep: false,
            propose_delay_ms: 20,
            max_block_txs: 100,
        }
    }

    #[test]
    fn a_crash_must_restart_within_the_load() {
        assert_eq!(opts(4, 10, Some(2), 2).check(), Ok(()));
        assert_eq!(opts(4, 10, None, 50).check(), Ok(()));
        // Restarted at 14 s of a 10 s load: never, before the loop ended.
        let e = opts(4, 10, Some(9), 5).check().unwrap_err();
        assert!(e.contains("--kill-at 9s") && e.contains("--down-for 5s") && e.contains("--duration 10s"), "{e}");
        // Killed after the load: no crash at all.
        assert!(opts(4, 10, Some(20), 2).check().unwrap_err().contains("--kill-at 20s"));
        // Restarted exactly as the load ends: too late to count.
        assert!(opts(4, 10, Some(8), 2).check().is_err());
        let huge = Options { crash_down: Duration::MAX, ..opts(4, 10, Some(1), 0) };
        assert!(huge.check().is_err());
    }

    #[test]
    fn a_crash_needs_a_quorum_left_running() {
        assert!(opts(0, 10, None, 2).check().unwrap_err().contains("--validators"));
        assert_eq!(opts(1, 10, None, 2).check(), Ok(()));
        for n in 1..MIN_VALIDATORS_FOR_CRASH {
            let e = opts(n, 10, Some(2), 2).check().unwrap_err();
            assert!(e.contains(&format!("--validators {n}")) && e.contains("quorum"), "{e}");
        }
        assert_eq!(opts(MIN_VALIDATORS_FOR_CRASH, 10, Some(2), 2).check(), Ok(()));
        // The threshold is the consensus rule's: one down leaves a quorum exactly from 4 on.
        for n in 1..=10usize {
            let set = crate::node::consensus::ValidatorSet::new(
                (0..n).map(|i| crate::node::consensus::Validator { public_key: [i as u8; 32], stake: 1 }).collect(),
            )
            .unwrap();
            assert_eq!(equal_stake_quorum(n) as u64, set.quorum(), "{n}");
            let running = n - 1;
            assert_eq!(running >= equal_stake_quorum(n), n >= MIN_VALIDATORS_FOR_CRASH, "{n}");
        }
    }

    #[test]
    fn the_load_loop_waits_for_a_pending_restart() {
        let s = Duration::from_secs;
        assert!(drain_done(true, s(0), false));
        assert!(drain_done(false, s(4), false));
        assert!(!drain_done(false, s(1), false));
        // The killed validator is still down: keep going, however long the drain has run.
        assert!(!drain_done(true, s(0), true));
        assert!(!drain_done(false, s(60), true));
    }

    #[test]
    fn throughput_counts_only_commits_within_the_load() {
        let ms = Duration::from_millis;
        // Two commits in a 2 s load, one in the drain after it.
        let (within, rate) = throughput(&[ms(500), ms(2000), ms(3500)], ms(2000));
        assert_eq!(within, 2);
        assert!((rate - 1.0).abs() < 1e-9, "{rate}");
        assert_eq!(throughput(&[], Duration::ZERO), (0, 0.0));
    }
}
