//! The malloc-level allocation counter of the allocation tests whose frame
//! path runs C code (zstd, lz4, a JPEG decoder ...): a test binary that
//! includes this module (`mod malloc_count;`) defines `malloc`, `calloc`,
//! `realloc`, `memalign`, `aligned_alloc`, `posix_memalign` and `free`
//! itself; glibc lets a program replace them. Each call counts, then
//! glibc's own `__libc_*` entry points do the work, so an allocation by any
//! C code in the process counts. Only for binaries that run one test, so
//! nothing else allocates concurrently.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

static MALLOCS: AtomicU64 = AtomicU64::new(0);

extern "C" {
    fn __libc_malloc(n: usize) -> *mut c_void;
    fn __libc_calloc(n: usize, size: usize) -> *mut c_void;
    fn __libc_realloc(p: *mut c_void, n: usize) -> *mut c_void;
    fn __libc_memalign(align: usize, n: usize) -> *mut c_void;
    fn __libc_free(p: *mut c_void);
}

// The malloc-level counter: glibc lets a program replace malloc by
// defining these; every call counts, then glibc's allocator does the work.

/// # Safety
/// The C contract of `malloc`.
#[no_mangle]
pub unsafe extern "C" fn malloc(n: usize) -> *mut c_void {
    MALLOCS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwarded unchanged.
    unsafe { __libc_malloc(n) }
}

/// # Safety
/// The C contract of `calloc`.
#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    MALLOCS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwarded unchanged.
    unsafe { __libc_calloc(n, size) }
}

/// # Safety
/// The C contract of `realloc`.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, n: usize) -> *mut c_void {
    MALLOCS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwarded unchanged.
    unsafe { __libc_realloc(p, n) }
}

/// # Safety
/// The C contract of `memalign`.
#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, n: usize) -> *mut c_void {
    MALLOCS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwarded unchanged.
    unsafe { __libc_memalign(align, n) }
}

/// # Safety
/// The C contract of `aligned_alloc`.
#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, n: usize) -> *mut c_void {
    // SAFETY: forwarded.
    unsafe { memalign(align, n) }
}

/// # Safety
/// The C contract of `posix_memalign`.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, n: usize) -> i32 {
    // SAFETY: forwarded; `out` is the caller's valid pointer.
    unsafe {
        let p = memalign(align, n);
        if p.is_null() {
            return libc::ENOMEM;
        }
        *out = p;
    }
    0
}

/// # Safety
/// The C contract of `free`.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: forwarded unchanged.
    unsafe { __libc_free(p) }
}

/// Calls so far.
pub fn mallocs() -> u64 {
    MALLOCS.load(Ordering::Relaxed)
}

/// Fails unless this binary's `malloc` is the one C code calls: glibc's
/// `strdup` allocates through it.
pub fn assert_installed() {
    let before = mallocs();
    // SAFETY: a NUL-terminated literal; the copy is freed right away.
    unsafe { libc::free(libc::strdup(c"counted".as_ptr()).cast()) };
    assert!(mallocs() > before, "malloc counter not installed");
}
