//! A fixed thread pool for kernels: workers are spawned at boot and wait for
//! work; `parallel_for` hands them a borrowed closure through one atomic
//! ticket word, so dispatching work never allocates.
//!
//! A model runs ~100 kernels back to back, many of them a few hundred
//! microseconds long, so the hand-off must cost far less than that:
//! * a worker that finishes a job spins on the ticket for a while
//!   ([`SPIN_NS`]) before it parks on a condvar, so within one inference it
//!   picks the next kernel up within a microsecond instead of a futex wake;
//! * the submitter never waits for a worker to *join*: it runs tasks itself
//!   and waits only until every task has *finished* (a worker that wakes
//!   late finds nothing left and goes back to waiting). Tasks are claimed
//!   from a ticket that carries the job's generation, so a late worker can
//!   never take a task of the next job.
//!
//! Called from one thread at a time (the inference thread); `parallel_for`
//! returns only when every task has finished.

use super::Buf;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Task = dyn Fn(usize) + Sync;

/// How long an idle worker spins on the ticket before it parks: longer
/// than the gap between two kernels of one inference, far shorter than
/// the gap between frames.
const SPIN_NS: u64 = 300_000;

/// Ticket layout: generation (24 bits) | task count (20) | next task (20).
const IDX_BITS: u32 = 20;
const IDX_MASK: u64 = (1 << IDX_BITS) - 1;
/// Most tasks one ticket carries; larger jobs run in rounds.
const MAX_TASKS: usize = IDX_MASK as usize;
const GEN_SHIFT: u32 = 2 * IDX_BITS;

fn ticket(gen: u64, n: usize, next: usize) -> u64 {
    (gen << GEN_SHIFT) | ((n as u64) << IDX_BITS) | next as u64
}

fn ticket_gen(t: u64) -> u64 {
    t >> GEN_SHIFT
}

struct Shared {
    /// The current job's generation, task count and next unclaimed task.
    ticket: AtomicU64,
    /// Points at the submitter's `&Task` (on its stack) while a job runs.
    task: AtomicPtr<&'static Task>,
    /// Tasks of the current job finished.
    finished: AtomicUsize,
    /// Workers parked (or about to park) on `wake`.
    sleepers: AtomicUsize,
    shutdown: std::sync::atomic::AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
}

impl ThreadPool {
    /// A pool that runs work on `threads` threads in total: the caller plus
    /// `threads - 1` workers.
    pub fn new(threads: usize) -> ThreadPool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            ticket: AtomicU64::new(0),
            task: AtomicPtr::new(std::ptr::null_mut()),
            finished: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            shutdown: std::sync::atomic::AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut workers = Vec::with_capacity((threads - 1).min(256));
        for i in 1..threads {
            let sh = Arc::clone(&shared);
            match std::thread::Builder::new()
                .name(format!("kernel-{i}"))
                .spawn(move || worker(&sh))
            {
                Ok(h) => workers.push(h),
                // Out of threads (ulimit -u, memory): run on those we have
                // rather than abort at boot; the work is split per call.
                Err(e) => {
                    log::warn!(
                        "kernel thread pool: {threads} threads asked, only {i} started ({e})"
                    );
                    break;
                }
            }
        }
        let threads = workers.len() + 1;
        ThreadPool {
            shared,
            workers,
            threads,
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Run `f(0..n_tasks)` across the pool and wait for all of them.
    /// Frame path: never allocates.
    pub fn parallel_for(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.threads == 1 || n_tasks <= 1 {
            for i in 0..n_tasks {
                f(i);
            }
            return;
        }
        let mut base = 0;
        while base < n_tasks {
            let n = (n_tasks - base).min(MAX_TASKS);
            if base == 0 && n == n_tasks {
                self.run_job(n, f);
            } else {
                self.run_job(n, &|i| f(base + i));
            }
            base += n;
        }
    }

    /// One job of at most [`MAX_TASKS`] tasks.
    fn run_job(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        let sh = &*self.shared;
        // SAFETY (lifetime erasure): workers dereference this only after
        // claiming a task of this job, and we return only once every task
        // has finished, so `f` and `short` outlive every use.
        let short: &(dyn Fn(usize) + Sync + '_) = f;
        let erased: &'static Task = unsafe { std::mem::transmute(short) };
        let slot = &erased as *const &'static Task as *mut &'static Task;
        sh.task.store(slot, Ordering::Relaxed);
        sh.finished.store(0, Ordering::Relaxed);
        let gen = ticket_gen(sh.ticket.load(Ordering::Relaxed)).wrapping_add(1) & 0xff_ffff;
        // SeqCst pairs with the sleepers check (see `park`).
        sh.ticket.store(ticket(gen, n, 0), Ordering::SeqCst);
        if sh.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = sh.lock.lock().unwrap_or_else(|e| e.into_inner());
            sh.wake.notify_all();
        }
        let mut done = 0;
        while let Some(i) = claim(sh, gen) {
            f(i);
            done += 1;
        }
        if done > 0 {
            sh.finished.fetch_add(done, Ordering::AcqRel);
        }
        // The rest are running on workers right now: wait without parking.
        let mut spins = 0u32;
        while sh.finished.load(Ordering::Acquire) < n {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) {
                // A worker descheduled mid-task (busy machine): let it run.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// The next task of job `gen`, if any is left.
fn claim(sh: &Shared, gen: u64) -> Option<usize> {
    let mut cur = sh.ticket.load(Ordering::Acquire);
    loop {
        let n = (cur >> IDX_BITS) & IDX_MASK;
        let next = cur & IDX_MASK;
        if ticket_gen(cur) != gen || next >= n {
            return None;
        }
        match sh
            .ticket
            .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Some(next as usize),
            Err(c) => cur = c,
        }
    }
}

fn worker(sh: &Shared) {
    let mut seen = ticket_gen(sh.ticket.load(Ordering::Acquire));
    loop {
        let Some(gen) = next_job(sh, seen) else {
            return;
        };
        seen = gen;
        let mut done = 0;
        while let Some(i) = claim(sh, gen) {
            // SAFETY: a task of job `gen` was claimed, so that job is not
            // finished: its submitter is still inside `run_job`, keeping
            // the closure and the slot `task` points at alive.
            unsafe { (**sh.task.load(Ordering::Acquire))(i) };
            done += 1;
        }
        if done > 0 {
            sh.finished.fetch_add(done, Ordering::AcqRel);
        }
    }
}

/// Wait for a job newer than `seen` (spin, then park); None at shutdown.
fn next_job(sh: &Shared, seen: u64) -> Option<u64> {
    let t0 = Instant::now();
    let mut spins = 0u32;
    loop {
        if sh.shutdown.load(Ordering::Acquire) {
            return None;
        }
        let gen = ticket_gen(sh.ticket.load(Ordering::Acquire));
        if gen != seen {
            return Some(gen);
        }
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(256) {
            std::hint::spin_loop();
            continue;
        }
        if t0.elapsed() < Duration::from_nanos(SPIN_NS) {
            continue;
        }
        // Park. Announce first, then re-check under the lock: a submitter
        // stores the ticket before it reads `sleepers` (both SeqCst), so
        // either we see its job here or it sees us and notifies.
        let mut g = sh.lock.lock().unwrap_or_else(|e| e.into_inner());
        sh.sleepers.fetch_add(1, Ordering::SeqCst);
        while ticket_gen(sh.ticket.load(Ordering::SeqCst)) == seen
            && !sh.shutdown.load(Ordering::SeqCst)
        {
            g = sh.wake.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        sh.sleepers.fetch_sub(1, Ordering::SeqCst);
        drop(g);
        return next_job_now(sh, seen);
    }
}

fn next_job_now(sh: &Shared, seen: u64) -> Option<u64> {
    if sh.shutdown.load(Ordering::Acquire) {
        return None;
    }
    let gen = ticket_gen(sh.ticket.load(Ordering::Acquire));
    debug_assert!(gen != seen);
    Some(gen)
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _g = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Splitting work over the pool (every kernel's one way to do it)
// ---------------------------------------------------------------------------

/// Elements per task below which splitting over threads does not pay.
pub(crate) const GRAIN: usize = 1 << 14;

/// Run `f(start, end)` over contiguous pieces of `0..n` on the pool, each
/// at least `grain` long (one piece when the pool has one thread).
/// Frame path: never allocates.
pub(crate) fn par_chunks(
    pool: &ThreadPool,
    n: usize,
    grain: usize,
    f: &(dyn Fn(usize, usize) + Sync),
) {
    if n == 0 {
        return;
    }
    let tasks = if pool.threads() <= 1 {
        1
    } else {
        n.div_ceil(grain.max(1)).min(pool.threads() * 4)
    };
    if tasks <= 1 {
        f(0, n);
        return;
    }
    let per = n.div_ceil(tasks);
    pool.parallel_for(tasks, &|t| {
        let s = t * per;
        let e = (s + per).min(n);
        if s < e {
            f(s, e);
        }
    });
}

/// Mutable view of elements `[start, end)` of `buf`.
///
/// # Safety
/// `start <= end <= buf.len`, `buf` valid for the lifetime used, and no
/// other live reference may overlap the range (tasks get disjoint ranges).
#[inline]
pub(crate) unsafe fn buf_range<'a>(buf: Buf, start: usize, end: usize) -> &'a mut [f32] {
    debug_assert!(start <= end && end <= buf.len);
    std::slice::from_raw_parts_mut(buf.ptr.add(start), end - start)
}

/// Scratch regions lent to whichever tasks of one `parallel_for` run at the
/// same time, so a job can have more tasks than threads while scratch
/// stays sized per thread. Lives on the stack of the submitting call.
pub(crate) struct Regions {
    used: AtomicU64,
    n: usize,
}

impl Regions {
    /// `n` regions (at most 64).
    pub(crate) fn new(n: usize) -> Regions {
        Regions {
            used: AtomicU64::new(0),
            n: n.min(64),
        }
    }

    /// A free region. The caller guarantees that at most `n` tasks hold one
    /// at a time (a pool of at most `n` threads), so one is free; the spin
    /// only covers the instant between another task's release and claim.
    pub(crate) fn claim(&self) -> usize {
        let all = if self.n == 64 {
            u64::MAX
        } else {
            (1u64 << self.n) - 1
        };
        loop {
            let cur = self.used.load(Ordering::Acquire);
            let free = !cur & all;
            if free == 0 {
                std::hint::spin_loop();
                continue;
            }
            let i = free.trailing_zeros();
            let bit = 1u64 << i;
            if self
                .used
                .compare_exchange_weak(cur, cur | bit, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return i as usize;
            }
        }
    }

    pub(crate) fn release(&self, i: usize) {
        self.used.fetch_and(!(1u64 << i), Ordering::Release);
    }
}

/// A raw pointer shared by the tasks of one `parallel_for`, each touching a
/// disjoint part of what it points to.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr(pub(crate) *mut f32);

// SAFETY: only used to hand disjoint regions to concurrent tasks (each use
// says which).
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    /// The pointer (a method, so closures capture the Sync wrapper rather
    /// than the raw field).
    #[inline]
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_exactly_once() {
        let pool = ThreadPool::new(3);
        for n in [1usize, 2, 7, 100] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            pool.parallel_for(n, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn jobs_back_to_back_and_after_parking_each_run_once() {
        let pool = ThreadPool::new(2);
        let hits: Vec<AtomicUsize> = (0..64).map(|_| AtomicUsize::new(0)).collect();
        // Back to back: workers still spinning take tasks of each new job,
        // never one of the next job with the previous closure.
        for round in 1..=2000usize {
            let n = 1 + round % 64;
            pool.parallel_for(n, &|i| {
                hits[i].fetch_add(round, Ordering::Relaxed);
            });
            for (i, h) in hits.iter().enumerate() {
                let want = (1..=round).filter(|r| i < 1 + r % 64).sum::<usize>();
                assert_eq!(h.load(Ordering::Relaxed), want, "round {round} task {i}");
            }
        }
        // After the workers parked: the job still runs, each task once.
        std::thread::sleep(Duration::from_nanos(SPIN_NS * 10));
        let once: Vec<AtomicUsize> = (0..8).map(|_| AtomicUsize::new(0)).collect();
        pool.parallel_for(8, &|i| {
            once[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(once.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }
}
