//! Bad command-line input ends with exit code 2 and a message naming the argument, before any
//! work starts (no detection run, no block allocated, no process spawned), never with a panic.

use std::process::Command;

fn input_error(args: &[&str], says: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_parthenon")).args(args).env_remove("RUST_LOG").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(says) && !stderr.contains("panicked"), "{args:?}: {stderr}");
}

#[test]
fn transfer_bench_sizes_that_overflow_or_exceed_a_block() {
    input_error(&["bench", "transfer", "--sizes", "18446744073709551615GiB"], "overflows 64 bits");
    input_error(&["bench", "transfer", "--sizes", "18446744073709551615+1"], "overflows 64 bits");
    input_error(&["bench", "transfer", "--sizes", "4KiB,100MiB"], "block size 100 MiB is above");
}

#[test]
fn transfer_bench_backends_that_cannot_serve() {
    input_error(&["bench", "transfer", "--sizes", "4KiB", "--backend", "aes-ni"], "serves cipher, not transfer");
    input_error(&["bench", "transfer", "--sizes", "4KiB", "--receiver", "aes-ni"], "serves cipher, not transfer");
    input_error(&["bench", "transfer", "--sizes", "4KiB", "--receiver", "bogus"], "unknown backend `bogus`");
    input_error(&["bench", "transfer", "--sizes", "4KiB", "--receiver", "dpdk"], "datagram path");
}

#[test]
fn bench_sizes_above_the_caps() {
    // Overflowed the allocation's size (a panic), or aborted on it.
    input_error(&["bench", "verify", "--sizes", "18446744073709551615"], "--sizes 18446744073709551615");
    input_error(&["bench", "verify", "--sizes", "64,10000000000"], "at most 16777216 signatures");
    // Within GCM's limit, but far beyond memory: the OOM killer ended it.
    input_error(&["bench", "cipher", "--sizes", "60000m"], "`60000m` is above the benchmark's cap");
    input_error(&["bench", "cipher", "--sizes", "4097m"], "cap of 4294967296 bytes");
}

#[test]
fn verify_bench_with_a_backend_of_another_job() {
    input_error(&["bench", "verify", "--backend", "aes-ni"], "serves cipher, not verify");
}

#[cfg(feature = "node")]
#[test]
fn testnet_arguments_out_of_range() {
    input_error(&["testnet", "--validators", "0"], "--validators 0");
    input_error(&["testnet", "--tx-rate", "18446744073709551615"], "--tx-rate");
    input_error(&["testnet", "--max-block-txs", "0"], "--max-block-txs 0");
}

#[cfg(feature = "node")]
#[test]
fn testnet_crash_that_would_not_restart_within_the_load_or_leaves_no_quorum() {
    // Restart due at 14 s of a 10 s load: the killed validator would stay down.
    input_error(
        &["testnet", "--duration", "10s", "--kill-at", "9s", "--down-for", "5s"],
        "--kill-at 9s plus --down-for 5s must be less than --duration 10s",
    );
    // Kill due after the load: no crash at all.
    input_error(&["testnet", "--duration", "10s", "--kill-at", "20s"], "--kill-at 20s plus --down-for 2s");
    // The only validator (the commit subscription too), and three of which two are no quorum.
    input_error(&["testnet", "--validators", "1", "--kill-at", "2s"], "--kill-at with --validators 1");
    input_error(&["testnet", "--validators", "3", "--kill-at", "2s"], "below the quorum of 3");
}
