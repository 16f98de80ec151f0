//! Proves that the synthetic source's frame path (`next_frame`,
//! `skip_frame`, `render`) never allocates, with a counting global
//! allocator armed only on the test's own thread. Its own test binary, so
//! the allocator does not affect other tests.

use perceptd::frame::PixelFormat;
use perceptd::source::synthetic::{SyntheticConfig, SyntheticSource};
use perceptd::source::Source;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if ARMED.with(Cell::get) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged; only
// counts calls made while the current thread is armed.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn synthetic_frame_path_never_allocates() {
    // The counter itself works.
    ALLOCS.store(0, Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(16));
    ARMED.with(|a| a.set(false));
    drop(v);
    assert!(ALLOCS.load(Ordering::Relaxed) >= 1);

    for format in [
        PixelFormat::Rgb24,
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::I420,
    ] {
        let mut config = SyntheticConfig::front_camera(3);
        config.format = format;
        config.max_objects = 32;
        let mut src = SyntheticSource::new(config).unwrap();
        let mut buf = vec![0u8; src.desc().bytes()];
        ALLOCS.store(0, Ordering::Relaxed);
        ARMED.with(|a| a.set(true));
        for k in 0..60 {
            src.next_frame(&mut buf).unwrap();
            src.skip_frame().unwrap();
            src.render(1000 + k * 7, &mut buf).unwrap();
        }
        ARMED.with(|a| a.set(false));
        assert_eq!(
            ALLOCS.load(Ordering::Relaxed),
            0,
            "{format:?}: allocations on the frame path"
        );
    }
}
