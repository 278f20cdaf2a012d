//! End-to-end: real validator processes on loopback (`parthenon testnet`), under load of signed
//! transfers of both schemes; and one validator killed with SIGKILL under load, restarted, and
//! caught up without losing a committed block.
//!
//! SIGKILL keeps the kernel's page cache, so the kill test checks that a process killed at any
//! point recovers consistently and catches up; it does not test `fsync` (no power loss).
#![cfg(feature = "node")]

use std::process::Command;

fn testnet(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_parthenon"))
        .args(["testnet", "--json"])
        .args(args)
        .output()
        .expect("run parthenon testnet");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "testnet failed: {}\n{}", text, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&text).expect("JSON report")
}

#[test]
fn four_validators_commit_signed_transfers_with_identical_chains() {
    let r = testnet(&["--validators", "4", "--duration", "5s", "--tx-rate", "400"]);
    assert_eq!(r["identical_chains"], true);
    assert!(r["committed_height"].as_u64().unwrap() >= 5, "{r}");
    assert!(r["committed"].as_u64().unwrap() > 0, "{r}");
    for n in r["nodes"].as_array().unwrap() {
        // Every node verified transaction and consensus signatures through the engine.
        assert!(n["sigverify"]["items"].as_u64().unwrap() > 0, "{n}");
        assert_eq!(n["net"]["bad_signatures"], 0, "{n}");
    }
}

#[test]
fn kill_minus_nine_under_load_then_restart_catches_up_and_loses_nothing() {
    let r =
        testnet(&["--validators", "4", "--duration", "8s", "--tx-rate", "400", "--kill-at", "2s", "--down-for", "2s"]);
    assert_eq!(r["identical_chains"], true, "{r}");
    let c = &r["crashed_validator"];
    let before = c["height_before_kill"].as_u64().unwrap();
    let recovered = c["recovered_height"].as_u64().unwrap();
    let end = c["height_at_end"].as_u64().unwrap();
    assert!(before > 0, "{r}");
    assert!(recovered >= before, "blocks lost: {before} before the kill, {recovered} recovered");
    // Within 2 blocks of the highest validator (the others keep deciding while it is asked).
    let max = r["max_height"].as_u64().unwrap();
    assert!(end + 2 >= max, "did not catch up: at {end}, highest {max}: {r}");
    assert_eq!(c["caught_up"], true, "{r}");
    assert!(end > recovered, "made no progress after restart: {r}");
    // The blocks committed while it was down reached it through the engine's transfer.
    assert!(c["blocks_fetched"].as_u64().unwrap() > 0, "caught up without fetching blocks: {r}");
    assert!(!c["served_by"].as_array().unwrap().is_empty(), "{r}");
}
