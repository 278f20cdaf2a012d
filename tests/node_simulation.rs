//! Deterministic simulation of the consensus core over many seeds: random delays, drops, a
//! partition, one validator crashed and restarted from its persisted state, and a Byzantine
//! validator that equivocates and floods invalid payloads.
//!
//! Seeds per configuration: `PARTHENON_SIM_SEEDS` (default 200). A failing seed prints itself;
//! rerun with `PARTHENON_SIM_SEED=<n>` to replay only that one.
#![cfg(feature = "node")]

use parthenon::node::sim::{Byzantine, Outcome, Scenario, Simulation};

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("PARTHENON_SIM_SEED") {
        return vec![s.parse().expect("PARTHENON_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("PARTHENON_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    (0..n).collect()
}

fn check(label: &str, seed: u64, sc: &Scenario, o: &Outcome) {
    assert!(o.violations.is_empty(), "{label} seed {seed}: SAFETY violated: {:?} ({sc:?})", o.violations);
    // Every pair of chains agrees on their common prefix.
    for a in &o.chains {
        for b in &o.chains {
            let n = a.len().min(b.len());
            assert_eq!(a[..n], b[..n], "{label} seed {seed}: chains diverge");
        }
    }
    assert!(
        o.live,
        "{label} seed {seed}: not live: height at heal {} chains {:?} end {} ms ({sc:?})",
        o.height_at_heal,
        o.chains.iter().map(Vec::len).collect::<Vec<_>>(),
        o.end_ms
    );
}

fn crash_restart(n: usize) {
    let (mut fast, mut slow) = (0, 0);
    for seed in seeds() {
        let sc = Scenario::random(seed, n);
        let o = Simulation::new(sc.clone()).run();
        check(&format!("crash n={n}"), seed, &sc, &o);
        fast += o.fast_decisions;
        slow += o.slow_decisions;
    }
    println!("n={n}: fast-path decisions {fast}, slow-path decisions {slow}");
    assert!(fast > 0 && slow > 0, "both decision paths are exercised");
}

#[test]
fn four_validators_random_faults_and_crash_restart() {
    crash_restart(4);
}

#[test]
fn seven_validators_random_faults_and_crash_restart() {
    crash_restart(7);
}

fn byzantine(n: usize, crash: bool) {
    let mut evidence = 0;
    let mut rejected = 0;
    for seed in seeds() {
        let mut sc = Scenario::random(seed, n);
        let byz = (seed % n as u64) as u16;
        sc.byzantine = Some((byz, Byzantine::EquivocateAndFlood));
        if !crash || sc.crash.is_some_and(|c| c.0 == byz) {
            sc.crash = None;
        }
        let o = Simulation::new(sc.clone()).run();
        let honest: Vec<_> =
            o.chains.iter().enumerate().filter(|(i, _)| *i != byz as usize).map(|(_, c)| c.clone()).collect();
        let o2 = Outcome { chains: honest, ..o.clone() };
        check(&format!("byzantine n={n}"), seed, &sc, &o2);
        assert!(
            o.evidence.iter().all(|(_, culprit)| *culprit == byz),
            "seed {seed}: evidence blames an honest validator"
        );
        evidence += o.evidence.len();
        rejected += o.rejected_payloads;
    }
    println!("n={n}: evidence reports {evidence}, invalid payloads rejected {rejected}");
    assert!(evidence > 0, "equivocation is detected");
    assert!(rejected > 0, "invalid payloads are rejected");
}

#[test]
fn four_validators_one_byzantine() {
    byzantine(4, false);
}

#[test]
fn seven_validators_one_byzantine_one_crash() {
    byzantine(7, true);
}

#[test]
fn same_seed_same_run() {
    let a = Simulation::new(Scenario::random(42, 4)).run();
    let b = Simulation::new(Scenario::random(42, 4)).run();
    assert_eq!(a.chains, b.chains);
    assert_eq!(a.delivered, b.delivered);
    assert_eq!(a.end_ms, b.end_ms);
}

#[test]
fn weighted_stake() {
    for seed in seeds().into_iter().take(50) {
        let mut sc = Scenario::random(seed, 4);
        sc.stakes = Some(vec![4, 3, 2, 1]); // f = 3: any one validator may fail
        let o = Simulation::new(sc.clone()).run();
        check("weighted", seed, &sc, &o);
    }
}
