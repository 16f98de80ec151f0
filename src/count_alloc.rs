//! The one counting allocator: the system allocator plus one relaxed atomic
//! increment (and one thread-local increment) per allocation. Nothing in
//! the library installs it: a binary opts in explicitly with
//! `#[global_allocator] static A: perceptd::count_alloc::Counting = Counting;`
//! (the `perceptd` binary does, so `perceptd gpu-check` can prove the frame
//! loop allocates nothing on the machine that runs it; so do the
//! zero-allocation tests, each in its own test binary, and the soak example).
//!
//! Counts `alloc`, `alloc_zeroed` and `realloc`; never allocates itself.
//! Any thread.
//!
//! Side threads that are allowed to allocate (the live view's JPEG encoder
//! and HTTP clients: bounded, stated in `output::http`) call
//! [`mark_side_thread`] first; their allocations are counted apart
//! ([`side_allocations`]), so [`allocations`] stays the proof for the
//! frame path and every other thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counting global allocator (see the module doc).
pub struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

static SIDE_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // const-initialised, no destructor: reading it never allocates.
    static MINE: Cell<u64> = const { Cell::new(0) };
    static SIDE: Cell<bool> = const { Cell::new(false) };
}

/// From now on this thread's allocations count in [`side_allocations`],
/// not in [`allocations`]. Only for threads off the frame path that state
/// what they allocate.
pub fn mark_side_thread() {
    let _ = SIDE.try_with(|s| s.set(true));
}

/// Allocations of threads marked with [`mark_side_thread`].
pub fn side_allocations() -> u64 {
    SIDE_ALLOCS.load(Ordering::Relaxed)
}

/// Allocations on every thread since the process started (0 forever when
/// [`Counting`] is not the global allocator: see [`installed`]).
pub fn allocations() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

/// Allocations made by the calling thread so far (immune to other
/// threads, e.g. the test harness's).
pub fn thread_allocations() -> u64 {
    MINE.try_with(Cell::get).unwrap_or(0)
}

/// Is [`Counting`] the global allocator of this process? (Allocates once.)
pub fn installed() -> bool {
    let before = allocations();
    let b = std::hint::black_box(Box::new(std::hint::black_box(1u64)));
    drop(b);
    allocations() != before
}

#[inline]
fn note() {
    if SIDE.try_with(Cell::get).unwrap_or(false) {
        SIDE_ALLOCS.fetch_add(1, Ordering::Relaxed);
    } else {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
    let _ = MINE.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(p, l) }
    }
}
