//! A fixed thread pool for kernels: workers are spawned at boot and wait for
//! work; `parallel_for` hands them a borrowed closure and an atomic task
//! counter, so dispatching work never allocates.
//!
//! Called from one thread at a time (the inference thread); `parallel_for`
//! returns only when every task has finished.

use super::Buf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

type Task = dyn Fn(usize) + Sync;

struct Job {
    /// Lifetime-erased pointer to the caller's closure; valid until the
    /// job's `pending` count reaches zero.
    task: *const Task,
    n_tasks: usize,
}

// SAFETY: the closure is Sync and outlives the job (see `parallel_for`).
unsafe impl Send for Job {}

struct State {
    job: Option<Job>,
    generation: u64,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    done: Condvar,
    next: AtomicUsize,
    /// Workers still inside the current job.
    active: AtomicUsize,
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
            state: Mutex::new(State {
                job: None,
                generation: 0,
                shutdown: false,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            next: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
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
        if n_tasks == 0 {
            return;
        }
        if self.threads == 1 || n_tasks == 1 {
            for i in 0..n_tasks {
                f(i);
            }
            return;
        }
        let sh = &*self.shared;
        sh.next.store(0, Ordering::SeqCst);
        {
            let mut st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY (lifetime erasure): we wait below until every worker
            // has left the job before returning, so `f` outlives its use.
            let short: *const (dyn Fn(usize) + Sync + '_) = f;
            let task: *const Task = unsafe { std::mem::transmute(short) };
            st.job = Some(Job { task, n_tasks });
            st.generation = st.generation.wrapping_add(1);
            sh.active.store(self.workers.len(), Ordering::SeqCst);
        }
        sh.wake.notify_all();
        loop {
            let i = sh.next.fetch_add(1, Ordering::Relaxed);
            if i >= n_tasks {
                break;
            }
            f(i);
        }
        let mut st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
        while sh.active.load(Ordering::SeqCst) != 0 {
            st = sh.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.job = None;
    }
}

fn worker(sh: &Shared) {
    let mut seen = 0u64;
    loop {
        let (task, n) = {
            let mut st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if st.shutdown {
                    return;
                }
                if st.generation != seen {
                    if let Some(job) = &st.job {
                        seen = st.generation;
                        break (job.task, job.n_tasks);
                    }
                }
                st = sh.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        };
        loop {
            let i = sh.next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            // SAFETY: the submitting thread keeps the closure alive until
            // `active` drops to zero, which happens only after this call.
            unsafe { (*task)(i) };
        }
        if sh.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _g = sh.state.lock().unwrap_or_else(|e| e.into_inner());
            sh.done.notify_all();
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.shutdown = true;
        }
        self.shared.wake.notify_all();
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
}
