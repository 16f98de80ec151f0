//! The CPU backend's run-phase machinery: raw buffer views into the arena
//! ([`Buf`], [`StepIo`]), the kernel trait every op lowers to
//! ([`CpuKernel`]), and the thread pool kernels split work on.
//!
//! `CpuKernel::run` is on the frame path: never allocates, never blocks
//! except on the pool's own completion barrier.

pub mod activation;
pub mod conv;
pub mod gemm;
pub mod pool;
pub mod simd;

pub use pool::ThreadPool;

/// A view of `len` f32 elements at `ptr`: a region of the arena, a constant
/// or a caller's buffer, resolved at boot.
#[derive(Debug, Clone, Copy)]
pub struct Buf {
    pub ptr: *mut f32,
    pub len: usize,
}

// SAFETY: a Buf is a plain address; the plan guarantees that at any time
// each region is written by at most one step and that steps run in order.
unsafe impl Send for Buf {}
unsafe impl Sync for Buf {}

impl Buf {
    pub fn from_slice(s: &mut [f32]) -> Buf {
        Buf {
            ptr: s.as_mut_ptr(),
            len: s.len(),
        }
    }

    pub fn empty() -> Buf {
        Buf {
            ptr: std::ptr::NonNull::<f32>::dangling().as_ptr(),
            len: 0,
        }
    }
}

/// A kernel's inputs and outputs for one run. Inputs are indexed like the
/// node's inputs (an absent optional input is an empty buffer); outputs like
/// its outputs.
pub struct StepIo<'a> {
    ins: &'a [Buf],
    outs: &'a [Buf],
    inplace: bool,
}

impl<'a> StepIo<'a> {
    /// # Safety
    /// Every buffer must be valid for its length for `'a`; output buffers
    /// must not overlap each other or any input, except that when `inplace`
    /// is true output 0 is exactly the buffer of the kernel's
    /// [`CpuKernel::inplace_input`].
    pub unsafe fn new(ins: &'a [Buf], outs: &'a [Buf], inplace: bool) -> StepIo<'a> {
        StepIo { ins, outs, inplace }
    }

    pub fn n_inputs(&self) -> usize {
        self.ins.len()
    }

    /// Input `i`. When [`is_inplace`](Self::is_inplace) is true the kernel
    /// must not call this for its in-place input: read it through
    /// `output(0)` instead.
    pub fn input(&self, i: usize) -> &'a [f32] {
        let b = self.ins[i];
        // SAFETY: valid for 'a per `new`'s contract; shared reads only.
        unsafe { std::slice::from_raw_parts(b.ptr, b.len) }
    }

    /// Output `i`. Each output may be taken once per run.
    #[allow(clippy::mut_from_ref)]
    pub fn output(&self, i: usize) -> &'a mut [f32] {
        let b = self.outs[i];
        // SAFETY: valid for 'a and disjoint from all other views per `new`'s
        // contract; kernels take each output once.
        unsafe { std::slice::from_raw_parts_mut(b.ptr, b.len) }
    }

    /// Output 0 shares its buffer with the in-place input.
    pub fn is_inplace(&self) -> bool {
        self.inplace
    }
}

/// A lowered op: every shape and parameter resolved, weights packed.
pub trait CpuKernel: Send + Sync {
    /// f32 elements of scratch `run` needs (GEMM packing, im2col, ...).
    fn scratch_len(&self) -> usize {
        0
    }

    /// An input whose buffer output 0 may overwrite, if the kernel supports
    /// it (same length as output 0). The planner uses it only when that
    /// input is not read afterwards and is not a constant.
    fn inplace_input(&self) -> Option<usize> {
        None
    }

    /// Frame path: never allocates.
    fn run(&self, io: &StepIo<'_>, scratch: &mut [f32], pool: &ThreadPool);
}
