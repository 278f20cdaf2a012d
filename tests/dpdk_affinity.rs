//! DPDK's `rte_eal_init` pins its calling thread to one lcore, and every thread spawned afterwards
//! would inherit that mask. Detection starts the EAL; it must leave the caller's affinity as it
//! was. One test in its own process, because the EAL starts once per process.
#![cfg(feature = "dpdk")]

#[test]
fn dpdk_probe_keeps_the_callers_cpu_affinity() {
    let cores = || std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let before = cores();
    let caps = parthenon::detect::detect();
    assert!(caps.dpdk.is_available(), "EAL must start on the default arguments: {:?}", caps.dpdk);
    assert_eq!(cores(), before, "the EAL left this thread pinned");
    if let Some(eal) = parthenon::dpdk::Eal::get() {
        // SAFETY: detection has returned and made no link; nothing in this process uses DPDK
        // afterwards.
        unsafe { eal.cleanup() };
        assert!(parthenon::dpdk::Eal::get().is_none(), "a cleaned-up EAL is not handed out");
        let again = parthenon::dpdk::Eal::init(&[]);
        assert!(matches!(again, Err(parthenon::dpdk::DpdkError::CleanedUp)), "{again:?}");
    }
}
