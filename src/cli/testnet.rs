//! `parthenon testnet`: a local multi-process network with load, see `parthenon::node::testnet`.

use super::Failure;
use std::time::Duration;

/// Arguments of `parthenon testnet`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of validators (separate processes on loopback).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// How long to drive load, e.g. `30s`, `500ms`, `2m`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Target signed transfers per second.
    #[arg(long, default_value_t = 6000)]
    tx_rate: u64,
    /// Kill the last validator with SIGKILL this long into the run, then restart it. Needs at
    /// least 4 validators (a quorum left running) and --kill-at + --down-for below --duration.
    #[arg(long, value_parser = parse_duration)]
    kill_at: Option<Duration>,
    /// How long the killed validator stays down (with --kill-at).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    down_for: Duration,
    /// Leader's block fill delay in ms.
    #[arg(long, default_value_t = 20)]
    propose_delay_ms: u64,
    /// Largest block, in transactions.
    #[arg(long, default_value_t = 5000)]
    max_block_txs: usize,
    /// Keep the temporary directory (configs, data, logs).
    #[arg(long)]
    keep: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration like 30s, 500ms, 2m"))?;
    let secs = match unit {
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("unknown unit `{unit}` in `{s}` (ms, s, m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}` is not a usable duration: {e}"))
}

/// Highest `--tx-rate`: far above what a local network commits, and low enough that no figure
/// derived from it overflows.
const MAX_TX_RATE: u64 = 10_000_000;

pub fn run(a: Args) -> Result<(), Failure> {
    let most = parthenon::node::consensus::MAX_VALIDATORS;
    if !(1..=most).contains(&a.validators) {
        return Err(Failure::Input(format!("--validators {}: between 1 and {most}", a.validators)));
    }
    if !(1..=MAX_TX_RATE).contains(&a.tx_rate) {
        return Err(Failure::Input(format!("--tx-rate {}: between 1 and {MAX_TX_RATE}", a.tx_rate)));
    }
    let max_txs = parthenon::node::config::MAX_BLOCK_TXS;
    if !(1..=max_txs).contains(&a.max_block_txs) {
        return Err(Failure::Input(format!(
            "--max-block-txs {}: between 1 and {max_txs} (a block holds at least one transaction, and a \
             24 MiB payload no more than about that many)",
            a.max_block_txs
        )));
    }
    let exe = std::env::current_exe().map_err(|e| Failure::Runtime(format!("own executable: {e}")))?;
    let opts = parthenon::node::testnet::Options {
        validators: a.validators,
        duration: a.duration,
        tx_rate: a.tx_rate,
        crash_at: a.kill_at,
        crash_down: a.down_for,
        exe,
        keep: a.keep,
        propose_delay_ms: a.propose_delay_ms,
        max_block_txs: a.max_block_txs,
    };
    // A crash that leaves no quorum, or whose restart would come after the load: refused before
    // any validator starts.
    opts.check().map_err(Failure::Input)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("tokio runtime: {e}")))?;
    let r = rt.block_on(parthenon::node::testnet::run(opts)).map_err(Failure::Runtime)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default())?;
    } else {
        outln!("validators        {}", r.validators)?;
        outln!(
            "load              {:.1} s, {} submitted, {} committed, {} still pending after the drain",
            r.duration_s,
            r.submitted,
            r.committed,
            r.pending_at_end
        )?;
        outln!("throughput        {:.0} tx/s", r.tx_per_s)?;
        outln!(
            "finality          p50 {:.0} ms, p99 {:.0} ms  (p90 {:.0}, p99.9 {:.0}, max {:.0})",
            r.finality_p50_ms,
            r.finality_p99_ms,
            r.finality_p90_ms,
            r.finality_p999_ms,
            r.finality_max_ms
        )?;
        outln!("committed height  {} (lowest), {} (highest)", r.committed_height, r.max_height)?;
        outln!("identical chains  {}", if r.identical_chains { "yes" } else { "NO" })?;
        if let Some(c) = &r.crashed_validator {
            outln!(
                "killed (-9)       validator {} at height {}, recovered {} from disk, now at {}",
                c.index,
                c.height_before_kill,
                c.recovered_height,
                c.height_at_end
            )?;
            outln!(
                "caught up         {} blocks fetched through transfer: {}",
                c.blocks_fetched,
                c.served_by.join("; ")
            )?;
            outln!(
                "catch-up wait     {} ms: {}",
                c.catch_up_wait_ms,
                if c.caught_up { "within 2 blocks of the highest" } else { "DID NOT CATCH UP" }
            )?;
        }
        for n in &r.nodes {
            outln!(
                "validator {}       height {}  sigs verified {}  bad-signature msgs {}  malformed frames {}  evidence {}",
                n["index"],
                n["height"],
                n["sigverify"]["items"],
                n["net"]["bad_signatures"],
                n["net"]["malformed_frames"],
                n["evidence"]
            )?;
            // The validator's engine report: which backend serves each job, and why.
            for route in n["engine"]["routes"].as_array().into_iter().flatten() {
                outln!(
                    "                  {:<9} -> {:<12} ({})",
                    route["job"].as_str().unwrap_or("?"),
                    route["backend"].as_str().unwrap_or("?"),
                    route["reason"].as_str().unwrap_or("")
                )?;
            }
        }
        if !r.identical_chains {
            outln!("logs and data kept in {}", r.dir.display())?;
        }
    }
    if !r.identical_chains || r.committed_height == 0 {
        return Err(Failure::Runtime("validators do not hold identical non-empty chains".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_huge_ones_are_errors_not_panics() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("99999999999999999999999s").is_err());
        assert!(parse_duration("1e400").is_err());
    }
}
