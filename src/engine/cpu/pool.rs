//! A fixed thread pool for kernels: workers are spawned at boot and wait for
//! work; `parallel_for` hands them a borrowed closure and an atomic task
//! counter, so dispatching work never allocates.
//!
//! Called from one thread at a time (the inference thread); `parallel_for`
//! returns only when every task has finished.

use std::sync::atomic::{AtomicUsize, Ordering};
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
        let workers = (1..threads)
            .map(|i| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("kernel-{i}"))
                    .spawn(move || worker(&shared))
                    .expect("spawning a kernel worker thread at boot")
            })
            .collect();
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
