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

/// A one-validator `node.toml` in a fresh directory (its `data_dir` not created), changed by
/// `edit`; returns the file and the data directory.
#[cfg(feature = "node")]
fn node_config(
    name: &str,
    edit: impl FnOnce(&mut parthenon::node::config::NodeConfig),
) -> (std::path::PathBuf, std::path::PathBuf) {
    use parthenon::node::config::{GenesisSpec, NodeConfig, ValidatorEntry};
    let dir = std::env::temp_dir().join(format!("parthenon-cli-input-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let listen: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut cfg = NodeConfig {
        index: 0,
        key: hex::encode(key.to_bytes()),
        listen,
        data_dir: dir.join("data"),
        base_timeout_ms: 1000,
        propose_delay_ms: 20,
        max_block_txs: 100,
        validators: vec![ValidatorEntry {
            public_key: hex::encode(key.verifying_key().to_bytes()),
            stake: 1,
            address: listen,
        }],
        genesis: GenesisSpec {
            chain: "cli-input".into(),
            wallet_seed: hex::encode([9u8; 32]),
            keys: 2,
            outputs: 4,
            value: 1,
        },
        metrics: None,
        client_idle_timeout_ms: 10_000,
        fetch_deadline_ms: 10_000,
    };
    edit(&mut cfg);
    let file = dir.join("node.toml");
    std::fs::write(&file, cfg.to_toml()).unwrap();
    (file, dir.join("data"))
}

#[cfg(feature = "node")]
#[test]
fn node_config_with_bad_values_is_input_naming_the_file() {
    type Edit = fn(&mut parthenon::node::config::NodeConfig);
    let cases: [(&str, Edit, &str); 3] = [
        ("key-mismatch", |c| c.key = hex::encode([8u8; 32]), "key: does not match validators[0].public_key"),
        ("fetch-deadline", |c| c.fetch_deadline_ms = 0, "fetch_deadline_ms: must be positive"),
        ("bad-hex", |c| c.validators[0].public_key = "zz".into(), "validators[0].public_key"),
    ];
    for (name, edit, says) in cases {
        let (file, data) = node_config(name, edit);
        let path = file.to_str().unwrap();
        input_error(&["node", "--no-dpdk", "--config", path], &format!("{path}: {says}"));
        // Refused before any disk work (and so before any network work).
        assert!(!data.exists(), "{name}: {} was created", data.display());
        let _ = std::fs::remove_dir_all(file.parent().unwrap());
    }
}
