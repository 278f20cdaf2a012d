use super::*;

#[test]
fn the_crossover_key_depends_on_rules_identity_and_cpu_path() {
    let key = |id: &str, rules| crossover_fingerprint(id, rules, "cpu", 8, true);
    let id = "CUDA: NVIDIA H100, sm_90; kernels 0123";
    assert_eq!(key(id, Rules::Zip215), key(id, Rules::Zip215));
    assert_ne!(key(id, Rules::Zip215), key(id, Rules::Strict));
    assert_ne!(key(id, Rules::Zip215), key("CUDA: NVIDIA H200, sm_90; kernels 0123", Rules::Zip215));
    assert_ne!(key(id, Rules::Zip215), crossover_fingerprint(id, Rules::Zip215, "cpu", 8, false));
}

/// A device that verifies batches below `fail_from` items (every verdict "valid", which
/// calibration never looks at) and fails larger ones, counting its calls.
struct FailsLarge {
    id: String,
    fail_from: usize,
    calls: std::sync::atomic::AtomicUsize,
}

impl GpuVerifier for FailsLarge {
    fn describe(&self) -> String {
        self.id.clone()
    }
    fn chunk_items(&self) -> usize {
        1 << 20
    }
    fn verify_chunked(
        &self,
        batch: &SoaBatch<'_>,
        _rules: EdRules,
        _chunk_items: usize,
    ) -> Result<(Vec<u8>, f64), GpuError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = batch.schemes.len();
        if n >= self.fail_from {
            return Err(GpuError::call("launch", "out of memory"));
        }
        Ok((vec![1; n], 0.0))
    }
}

/// An engine whose verify route is CUDA, auto or forced, on capabilities that claim a CUDA
/// device (the [`SlowSetup`] tests never touch it).
fn cuda_engine(forced: bool) -> Engine {
    cuda_engine_with(forced, false)
}

/// [`cuda_engine`], with the CPU backend forbidden when `forbid_cpu`.
fn cuda_engine_with(forced: bool, forbid_cpu: bool) -> Engine {
    let (caps, _) = crate::sigverify::tests::claiming_a_cuda_device();
    let mut builder = Engine::builder().capabilities(caps);
    if forced {
        builder = builder.force(Backend::Cuda);
    }
    if forbid_cpu {
        builder = builder.forbid(Backend::Cpu);
    }
    let engine = builder.build().expect("engine");
    assert_eq!(engine.backend(Job::Verify), Backend::Cuda);
    assert_eq!(is_forced(engine.route(Job::Verify)), forced);
    engine
}

/// A device that answers "valid" for every item and counts its batches.
struct CountingDevice {
    batches: std::sync::atomic::AtomicUsize,
}

impl GpuVerifier for CountingDevice {
    fn describe(&self) -> String {
        "counting test device".into()
    }
    fn chunk_items(&self) -> usize {
        1 << 20
    }
    fn verify_chunked(
        &self,
        batch: &SoaBatch<'_>,
        _rules: EdRules,
        _chunk_items: usize,
    ) -> Result<(Vec<u8>, f64), GpuError> {
        self.batches.fetch_add(1, Ordering::Relaxed);
        Ok((vec![1; batch.len()], 0.0))
    }
}

/// A [`Setup`] whose verifier build waits until the test opens its gate, then succeeds (a
/// [`CountingDevice`]) or fails; the crossover sends every batch to the device. Counts builds
/// and calibrations.
struct SlowSetup {
    open: Mutex<bool>,
    opened: std::sync::Condvar,
    fails: bool,
    built: std::sync::OnceLock<Result<&'static dyn GpuVerifier, DeviceFault>>,
    builds: AtomicUsize,
    crossover: Mutex<Option<Crossover>>,
    calibrations: AtomicUsize,
    device: &'static CountingDevice,
}

impl SlowSetup {
    /// A leaked warmer over a new setup, its gate closed.
    fn warmer(fails: bool) -> &'static Warmer<SlowSetup> {
        let device = Box::leak(Box::new(CountingDevice { batches: Default::default() }));
        Box::leak(Box::new(Warmer::new(SlowSetup {
            open: Mutex::new(false),
            opened: Default::default(),
            fails,
            built: Default::default(),
            builds: Default::default(),
            crossover: Mutex::new(None),
            calibrations: Default::default(),
            device,
        })))
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl Setup for SlowSetup {
    fn verifier(&self, backend: Backend) -> Result<&'static dyn GpuVerifier, DeviceFault> {
        self.built
            .get_or_init(|| {
                self.builds.fetch_add(1, Ordering::Relaxed);
                let mut open = self.open.lock().unwrap();
                while !*open {
                    open = self.opened.wait(open).unwrap();
                }
                if self.fails {
                    Err(DeviceFault::Device { backend, source: GpuError::Build("kernels refused".into()) })
                } else {
                    Ok(self.device as &dyn GpuVerifier)
                }
            })
            .clone()
    }
    fn verifier_if_ready(&self, _backend: Backend) -> Option<Result<&'static dyn GpuVerifier, DeviceFault>> {
        self.built.get().cloned()
    }
    fn crossover(&self, _: Backend, _: &dyn GpuVerifier, _: &Engine, _: Rules) -> Result<Crossover, DeviceFault> {
        self.calibrations.fetch_add(1, Ordering::Relaxed);
        let all_on_device = Crossover {
            fingerprint: "slow setup".into(),
            min_device_batch: 1,
            split_from: usize::MAX,
            device_share: 1.0,
            cpu_rate: 1.0,
            device_rate: 2.0,
        };
        *self.crossover.lock().unwrap() = Some(all_on_device.clone());
        Ok(all_on_device)
    }
    fn crossover_if_known(&self, _: &dyn GpuVerifier, _: &Engine, _: Rules) -> Option<Result<Crossover, DeviceFault>> {
        self.crossover.lock().unwrap().clone().map(Ok)
    }
}

/// Waits (up to a minute: generous on a loaded machine) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Runs `f` while `w`'s gate is closed and returns its result, asserting that it did not
/// wait for the setup: it must return within a minute (generous on a loaded machine; a call
/// that waits for the gate never returns). Opens the gate before failing, so the test fails
/// instead of hanging.
fn without_waiting<T: Send>(w: &'static Warmer<SlowSetup>, what: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let h = s.spawn(f);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !h.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let waited = !h.is_finished();
        if waited {
            w.setup.open();
        }
        let out = h.join().expect("no panic");
        assert!(!waited, "{what} waited for the device's setup");
        out
    })
}

fn valid_batch(n: usize) -> Batch {
    super::super::gpu::synthetic::valid_batch(super::super::gpu::synthetic::Mix::Mixed, n, 3).to_batch()
}

#[test]
fn an_auto_batch_does_not_wait_for_the_device_setup() {
    let w = SlowSetup::warmer(false);
    let engine = cuda_engine(false);
    let batch = valid_batch(8);
    let cpu_verdicts = cpu::verify_batch(&batch, Rules::Zip215, 1);
    // The first batch: the setup waits behind the closed gate, the batch must not.
    let first = without_waiting(w, "the first auto-routed batch", || w.try_verify(&engine, &batch, Rules::Zip215));
    assert_eq!(first, Ok((cpu_verdicts.clone(), Served::Cpu)));
    assert_eq!(w.setup.device.batches.load(Ordering::Relaxed), 0);
    // One setup thread, in the verifier's build now.
    wait_until("the setup thread building the verifier", || w.setup.builds.load(Ordering::Relaxed) == 1);
    assert_eq!(w.started.load(Ordering::Relaxed), 1);
    // A batch while the setup runs: the CPU again, and no second setup thread.
    let second = without_waiting(w, "a batch during the setup", || w.try_verify(&engine, &batch, Rules::Zip215));
    assert_eq!(second, Ok((cpu_verdicts.clone(), Served::Cpu)));
    without_waiting(w, "warm_up during the setup", || w.warm_up(&engine, Rules::Zip215));
    assert_eq!(w.started.load(Ordering::Relaxed), 1, "one setup per backend and rules at a time");
    // The setup finishes; from then on the crossover's plan (the device, here) applies.
    w.setup.open();
    wait_until("the setup thread to finish", || w.running.lock().unwrap().is_empty());
    assert_eq!(w.try_verify(&engine, &batch, Rules::Zip215), Ok((cpu_verdicts, Served::Device)));
    assert_eq!(w.setup.device.batches.load(Ordering::Relaxed), 1);
    assert_eq!(w.setup.builds.load(Ordering::Relaxed), 1);
    assert_eq!(w.setup.calibrations.load(Ordering::Relaxed), 1);
    assert_eq!(w.started.load(Ordering::Relaxed), 1);
    assert!(w.reported.lock().unwrap().is_empty(), "nothing failed");
}

#[test]
fn prepare_waits_for_the_setup_then_the_first_batch_uses_the_device() {
    let w = SlowSetup::warmer(false);
    let engine = cuda_engine(false);
    std::thread::scope(|s| {
        // The gate opens some time after prepare started waiting (or before: either way
        // prepare returns only once the setup is done).
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            w.setup.open();
        });
        assert_eq!(w.prepare(&engine, Rules::Strict), Ok(()));
    });
    assert_eq!((w.setup.builds.load(Ordering::Relaxed), w.setup.calibrations.load(Ordering::Relaxed)), (1, 1));
    let batch = valid_batch(5);
    let got = w.try_verify(&engine, &batch, Rules::Strict).map(|(_, served)| served);
    assert_eq!(got, Ok(Served::Device));
    assert_eq!(w.started.load(Ordering::Relaxed), 0, "no background setup after prepare");
}

#[test]
fn a_failed_setup_is_returned_by_prepare_and_leaves_auto_batches_on_the_cpu() {
    let w = SlowSetup::warmer(true);
    w.setup.open();
    let engine = cuda_engine(false);
    let fault = w.prepare(&engine, Rules::Zip215).expect_err("the build fails");
    assert!(matches!(&fault, DeviceFault::Device { source: GpuError::Build(_), .. }), "{fault:?}");
    // Auto-routed batches: on the CPU, no new setup, one report for the process.
    let batch = valid_batch(6);
    let cpu_verdicts = cpu::verify_batch(&batch, Rules::Zip215, 1);
    for _ in 0..3 {
        assert_eq!(w.try_verify(&engine, &batch, Rules::Zip215), Ok((cpu_verdicts.clone(), Served::Cpu)));
    }
    assert_eq!(w.started.load(Ordering::Relaxed), 0);
    assert_eq!(w.setup.builds.load(Ordering::Relaxed), 1);
    assert_eq!(*w.reported.lock().unwrap(), [Backend::Cuda], "reported once");
    // A forced route asked for the device: every batch is the fault.
    let forced = cuda_engine(true);
    for _ in 0..2 {
        assert_eq!(w.try_verify(&forced, &batch, Rules::Zip215), Err(fault.clone()));
    }
    assert_eq!(w.prepare(&forced, Rules::Zip215), Err(fault));
}

/// The failure seen first by the background setup: reported there, once, and the batches
/// after it stay on the CPU without starting another setup.
#[test]
fn a_setup_failing_in_the_background_is_reported_once() {
    let w = SlowSetup::warmer(true);
    let engine = cuda_engine(false);
    let batch = valid_batch(3);
    without_waiting(w, "warm_up", || w.warm_up(&engine, Rules::Zip215));
    assert_eq!(w.started.load(Ordering::Relaxed), 1);
    w.setup.open();
    wait_until("the setup thread to finish", || w.running.lock().unwrap().is_empty());
    assert_eq!(*w.reported.lock().unwrap(), [Backend::Cuda]);
    for _ in 0..3 {
        assert_eq!(w.try_verify(&engine, &batch, Rules::Zip215).map(|(_, s)| s), Ok(Served::Cpu));
    }
    assert_eq!(w.started.load(Ordering::Relaxed), 1, "a failed build is not retried");
    assert_eq!(w.reported.lock().unwrap().len(), 1);
    assert_eq!(w.setup.calibrations.load(Ordering::Relaxed), 0);
}

#[test]
fn a_failed_calibration_is_not_repeated_for_every_batch() {
    let _pin = route::PIN_TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let engine = Engine::new().expect("engine");
    let v = FailsLarge {
        id: format!("fake device failing at 4096, pid {}", std::process::id()),
        fail_from: 4096,
        calls: Default::default(),
    };
    let first = crossover(Backend::Opencl, &v, &engine, Rules::Zip215);
    assert!(matches!(first, Err(DeviceFault::Device { .. })), "{first:?}");
    let calls = v.calls.load(std::sync::atomic::Ordering::Relaxed);
    assert!(calls > 1, "calibration ran the smaller sizes first ({calls} calls)");
    let second = crossover(Backend::Opencl, &v, &engine, Rules::Zip215);
    assert_eq!(second.err(), first.err(), "the same fault, remembered");
    assert_eq!(v.calls.load(std::sync::atomic::Ordering::Relaxed), calls, "no second calibration");
}

/// With the CPU backend forbidden, an auto route is served as a forced one: the first batch waits
/// for the device's setup instead of going to the CPU, no crossover is calibrated or applied, and
/// a failed setup is a fault for every batch (the dispatcher's logged fallback), not the quiet
/// CPU path of an auto route.
#[test]
fn a_forbidden_cpu_verifies_nothing_while_the_device_is_prepared() {
    let w = SlowSetup::warmer(false);
    let engine = cuda_engine_with(false, true);
    assert!(engine.is_forbidden(Backend::Cpu));
    let batch = valid_batch(4);
    let cpu_verdicts = cpu::verify_batch(&batch, Rules::Zip215, 1);
    std::thread::scope(|s| {
        // The gate opens some time after the batch started waiting (or before: either way the
        // batch is served by the device).
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            w.setup.open();
        });
        assert_eq!(w.try_verify(&engine, &batch, Rules::Zip215), Ok((cpu_verdicts.clone(), Served::Device)));
    });
    assert_eq!(w.setup.device.batches.load(Ordering::Relaxed), 1);
    assert_eq!(w.setup.calibrations.load(Ordering::Relaxed), 0, "no crossover for a device-only route");
    assert_eq!(w.started.load(Ordering::Relaxed), 0, "built by the batch, not in the background");
    // A crossover that sends every batch to the CPU is known now: the auto route with the CPU
    // allowed follows it, the one with the CPU forbidden does not.
    *w.setup.crossover.lock().unwrap() = Some(Crossover {
        fingerprint: "cpu only".into(),
        min_device_batch: usize::MAX,
        split_from: usize::MAX,
        device_share: 1.0,
        cpu_rate: 2.0,
        device_rate: 1.0,
    });
    assert_eq!(w.try_verify(&cuda_engine(false), &batch, Rules::Zip215), Ok((cpu_verdicts.clone(), Served::Cpu)));
    assert_eq!(w.try_verify(&engine, &batch, Rules::Zip215), Ok((cpu_verdicts, Served::Device)));
    assert_eq!(w.setup.device.batches.load(Ordering::Relaxed), 2);
    assert_eq!(w.prepare(&engine, Rules::Zip215), Ok(()));
    assert_eq!(w.setup.calibrations.load(Ordering::Relaxed), 0);

    // A setup that fails: every batch is the fault, as for a forced route; nothing is reported
    // as an auto route's unusable device, and no setup runs in the background.
    let w = SlowSetup::warmer(true);
    w.setup.open();
    let fault = w.try_verify(&engine, &batch, Rules::Zip215).expect_err("the build fails");
    assert!(matches!(&fault, DeviceFault::Device { source: GpuError::Build(_), .. }), "{fault:?}");
    assert_eq!(w.try_verify(&engine, &batch, Rules::Zip215), Err(fault.clone()));
    without_waiting(w, "warm_up", || w.warm_up(&engine, Rules::Zip215));
    assert_eq!(w.prepare(&engine, Rules::Zip215), Err(fault));
    assert_eq!(w.started.load(Ordering::Relaxed), 0);
    assert!(w.reported.lock().unwrap().is_empty());
}
