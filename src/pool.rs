//! Helper threads kept between calls, for work split across cores: one large cipher buffer
//! ([`crate::cipher`]), the parts of a signature batch ([`crate::sigverify`]).
//!
//! [`run`] runs a job on the calling thread and on up to `helpers` helper threads at once and
//! returns when every one of them has finished it — the contract of `std::thread::scope`, without
//! starting threads per call. Helpers are started the first time a call needs them (only when a
//! caller asked for more than one thread) and then sleep on a condition variable between jobs:
//! they use no CPU while idle. A caller that finishes its share first polls for up to [`SPIN`]
//! before it sleeps too, and so does a helper that finishes a job before it sleeps on the
//! condition variable: one batch verification hands the helpers four jobs in a row (decoding,
//! coefficients, digits, window groups), and on this KVM guest waking a sleeping thread took
//! tens of microseconds each time, on the critical path of every job split into as many parts
//! as threads.
//!
//! One caller uses the helpers at a time. A second caller arriving while they are busy, or a
//! call where a helper cannot be started, does not wait: it runs its job on scoped threads
//! started for the call (or on fewer threads), so the result never depends on the pool. A panic
//! in a job is re-raised in the caller after every thread has left the job.

use std::any::Any;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::{Duration, Instant};

/// A job with its lifetime erased; see the SAFETY comments in [`run`].
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn() + Sync + 'static));

// SAFETY: the job is `Sync` (callable from any thread through a shared reference), and `run`
// keeps it alive until no helper holds the pointer.
unsafe impl Send for Job {}

#[derive(Default)]
struct State {
    /// The current job, numbered by `epoch`; `None` between jobs.
    job: Option<Job>,
    epoch: u64,
    /// Helpers that may still take the current job.
    open_slots: usize,
    /// Helpers that took the current job and have not finished it.
    running: usize,
    /// Helpers started so far.
    started: usize,
    /// The first panic of a helper in the current job.
    panic: Option<Box<dyn Any + Send>>,
}

#[derive(Default)]
struct Pool {
    /// Held by the one caller using the helpers.
    in_use: Mutex<()>,
    state: Mutex<State>,
    /// Helpers wait here for a job.
    work: Condvar,
    /// The caller waits here for `running == 0`.
    done: Condvar,
    /// `State::running`, readable without the lock (written under it).
    running: AtomicUsize,
    /// `State::epoch`, readable without the lock (written under it), for helpers polling for
    /// the next job.
    epoch: AtomicU64,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::default)
}

/// Locks, ignoring poison: the state is consistent at every unlock (no code that can panic runs
/// under the lock).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn helper_loop(p: &'static Pool) {
    let mut served = 0u64;
    loop {
        let job = {
            let mut st = lock(&p.state);
            let mut polled = false;
            loop {
                if let Some(job) = st.job {
                    if st.epoch != served && st.open_slots > 0 {
                        st.open_slots -= 1;
                        st.running += 1;
                        p.running.store(st.running, Ordering::Release);
                        served = st.epoch;
                        break job;
                    }
                }
                if polled {
                    st = p.work.wait(st).unwrap_or_else(|e| e.into_inner());
                } else {
                    // Poll for the next job (without the lock) before sleeping.
                    drop(st);
                    spin_until(|| p.epoch.load(Ordering::Acquire) != served);
                    polled = true;
                    st = lock(&p.state);
                }
            }
        };
        // SAFETY: `run` does not return (or unwind) before `running` is back to zero, so the job
        // it points to is alive until this helper decrements `running` below.
        let f = unsafe { &*job.0 };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let mut st = lock(&p.state);
        if let Err(payload) = result {
            st.panic.get_or_insert(payload);
        }
        st.running -= 1;
        p.running.store(st.running, Ordering::Release);
        if st.running == 0 {
            p.done.notify_all();
        }
    }
}

/// Closes the current job and waits until no helper runs it; runs on return and on unwind.
struct Finish<'a> {
    p: &'a Pool,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.p.state);
        st.open_slots = 0;
        if st.running > 0 {
            drop(st);
            spin_until(|| self.p.running.load(Ordering::Acquire) == 0);
            st = lock(&self.p.state);
        }
        while st.running > 0 {
            st = self.p.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.job = None;
    }
}

/// How long a thread polls before sleeping: the caller, done with its share, for the helpers;
/// a helper, done with a job, for the next one. A helper still running has at most one piece
/// (2 MiB, ~100 µs) left; waking a sleeping caller took long enough on this KVM guest that
/// polling lifted two-thread seals of 4 MiB from 25.8–28.5 to 33.9–36.3 GB/s (64 MiB:
/// unchanged); see `docs/benchmarks.md`, "Cipher".
const SPIN: Duration = Duration::from_micros(200);

/// Polls `ready` for up to [`SPIN`] without sleeping.
fn spin_until(ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        for _ in 0..64 {
            std::hint::spin_loop();
        }
        if start.elapsed() >= SPIN {
            return;
        }
    }
}

/// Runs `f` on the calling thread and on up to `helpers` other threads at the same time; returns
/// when all have returned. `f` must give the same result however many threads run it (each
/// thread takes work from a shared queue until it is empty).
pub(crate) fn run(helpers: usize, f: &(dyn Fn() + Sync)) {
    if helpers == 0 {
        f();
        return;
    }
    let p = pool();
    let _in_use = match p.in_use.try_lock() {
        Ok(g) => g,
        Err(TryLockError::Poisoned(e)) => e.into_inner(),
        Err(TryLockError::WouldBlock) => return run_scoped(helpers, f),
    };
    let panic = {
        let mut st = lock(&p.state);
        while st.started < helpers {
            match std::thread::Builder::new().name("parthenon-worker".into()).spawn(move || helper_loop(p)) {
                Ok(_) => st.started += 1,
                // Fewer helpers: the job still completes (the calling thread takes what is left).
                Err(_) => break,
            }
        }
        let erased: *const (dyn Fn() + Sync + '_) = f;
        // SAFETY: only the lifetime changes. `Finish` (below, also on unwind) waits until no
        // helper runs the job and clears it before `f`'s borrow ends.
        let erased: *const (dyn Fn() + Sync + 'static) = unsafe { std::mem::transmute(erased) };
        st.job = Some(Job(erased));
        st.epoch = st.epoch.wrapping_add(1);
        p.epoch.store(st.epoch, Ordering::Release);
        st.open_slots = helpers.min(st.started);
        st.panic = None;
        drop(st);
        p.work.notify_all();
        let finish = Finish { p };
        f();
        drop(finish);
        lock(&p.state).panic.take()
    };
    if let Some(payload) = panic {
        std::panic::resume_unwind(payload);
    }
}

/// [`run`] on threads started for this call: as many of `helpers` as the system lets us start.
fn run_scoped(helpers: usize, f: &(dyn Fn() + Sync)) {
    std::thread::scope(|s| {
        for _ in 0..helpers {
            if !spawn_scoped(s, f) {
                break;
            }
        }
        f();
    });
}

/// Starts `f` on a scoped thread; `false` when the system refuses a thread (`EAGAIN` from
/// `RLIMIT_NPROC` or a cgroup's `pids.max`, `ENOMEM`). `std::thread::Scope::spawn` panics in that
/// case, and a panic in the middle of a split job would leave it half done (a large open with its
/// plaintext in place and no tag checked): every split job here takes its work from a shared
/// queue, so fewer threads only means the ones running take more.
pub(crate) fn spawn_scoped<'scope, 'env, T: Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    f: impl FnOnce() -> T + Send + 'scope,
) -> bool {
    std::thread::Builder::new().spawn_scoped(s, f).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_thread_runs_the_job_once_and_all_finish_before_return() {
        for helpers in [0, 1, 3, 1, 2] {
            let (started, finished) = (AtomicUsize::new(0), AtomicUsize::new(0));
            run(helpers, &|| {
                started.fetch_add(1, Ordering::SeqCst);
                // Long enough that a helper still running when `run` returned would be seen.
                std::thread::sleep(std::time::Duration::from_millis(20));
                finished.fetch_add(1, Ordering::SeqCst);
            });
            // The caller always runs it; each helper that took a slot ran it once, and finished
            // before `run` returned.
            let (n, done) = (started.load(Ordering::SeqCst), finished.load(Ordering::SeqCst));
            assert!((1..=helpers + 1).contains(&n), "helpers {helpers}: {n} runs");
            assert_eq!(done, n, "helpers {helpers}: {n} runs started, {done} finished when run returned");
        }
    }

    #[test]
    fn concurrent_callers_each_complete_their_own_job() {
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    for _ in 0..50 {
                        let work = AtomicUsize::new(1000);
                        let done = AtomicUsize::new(0);
                        run(1 + t % 2, &|| {
                            while work.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| w.checked_sub(1)).is_ok() {
                                done.fetch_add(1, Ordering::SeqCst);
                            }
                        });
                        assert_eq!(done.load(Ordering::SeqCst), 1000);
                    }
                });
            }
        });
    }

    /// Runs `f` on one helper (not the calling thread) through [`run`]: the caller's share of
    /// the job waits until a helper has entered it (at most 30 s), so the helper's part is not
    /// skipped by a caller that finishes first. Whether a helper ran it.
    fn on_a_helper(f: &(dyn Fn() + Sync)) -> bool {
        let caller = std::thread::current().id();
        let entered = std::sync::atomic::AtomicBool::new(false);
        run(1, &|| {
            if std::thread::current().id() == caller {
                let t = std::time::Instant::now();
                while !entered.load(Ordering::SeqCst) && t.elapsed() < std::time::Duration::from_secs(30) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            } else if !entered.swap(true, Ordering::SeqCst) {
                f();
            }
        });
        entered.load(Ordering::SeqCst)
    }

    #[test]
    fn a_panic_in_the_job_reaches_the_caller_and_the_pool_still_works() {
        // Only a helper panics: the caller's own share returns normally, so the panic can reach
        // the caller only through the pool.
        let r = std::panic::catch_unwind(|| on_a_helper(&|| panic!("job failed on a helper")));
        let payload = r.expect_err("a helper's panic is re-raised in the caller");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"job failed on a helper"));
        // The pool still runs jobs on its helpers afterwards.
        let runs = AtomicUsize::new(0);
        assert!(
            on_a_helper(&|| {
                runs.fetch_add(1, Ordering::SeqCst);
            }),
            "no helper ran the next job"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
