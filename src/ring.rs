//! The frame ring: N slots allocated at boot, each owning one frame's raw
//! pixels, the model's output for it and its timestamps. Threads pass
//! [`SlotToken`]s (not `Copy`, one per slot, created once) through bounded
//! channels; holding the token is what gives access to the slot, so
//! "exactly one owner at a time" is checked by the compiler, and in debug
//! builds a per-slot flag asserts that no slot is ever borrowed twice.
//!
//! Slot memory is a [`HostBuffer`]: a boxed slice, or memory a backend
//! provides (the CUDA backend's pinned host memory, which its per-slot CUDA
//! graphs copy from and to). `Ring::new` / `Ring::with_buffers` allocate
//! (boot); `Ring::slot` is the frame path and never allocates.

use crate::source::FrameStamp;
use std::any::Any;
use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// Per-frame timestamps (CLOCK_MONOTONIC ns) and identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotMeta {
    pub seq: u64,
    pub stamp: FrameStamp,
    /// Capture finished writing the frame and queued it.
    pub t_ready_ns: u64,
    /// Inference took the slot from the queue.
    pub t_infer_start_ns: u64,
    /// Preprocessing done, network started.
    pub t_pre_done_ns: u64,
    /// Network done, output copied to the slot.
    pub t_infer_done_ns: u64,
    /// Postprocess took the slot.
    pub t_post_start_ns: u64,
}

/// A slot's host memory: a boxed slice, or `len` elements at `ptr` owned by
/// `owner` (a backend's pinned allocation, freed when the last owner goes).
/// Derefs to a slice either way.
pub struct HostBuffer<T: Copy + 'static> {
    ptr: *mut T,
    len: usize,
    owner: Owner<T>,
}

enum Owner<T: Copy + 'static> {
    Boxed(Box<[T]>),
    External(#[allow(dead_code)] Box<dyn Any + Send + Sync>),
}

// SAFETY: a HostBuffer owns (or shares ownership of, through `owner`) the
// memory at `ptr` and hands out references only through &self / &mut self.
unsafe impl<T: Copy + Send + 'static> Send for HostBuffer<T> {}
unsafe impl<T: Copy + Sync + 'static> Sync for HostBuffer<T> {}

impl<T: Copy + Default + 'static> HostBuffer<T> {
    /// `len` default values on the heap. Boot: allocates.
    pub fn boxed(len: usize) -> HostBuffer<T> {
        let mut b = vec![T::default(); len].into_boxed_slice();
        HostBuffer {
            ptr: b.as_mut_ptr(),
            len,
            owner: Owner::Boxed(b),
        }
    }
}

impl<T: Copy + 'static> HostBuffer<T> {
    /// `len` elements at `ptr`, kept alive by `owner`.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` elements, aligned,
    /// initialised, for as long as `owner` lives, and nothing else may
    /// access that memory while the HostBuffer does (the backend that
    /// provides it only reads or writes it inside `Backend::infer` for the
    /// slot being passed to it).
    pub unsafe fn external(
        ptr: *mut T,
        len: usize,
        owner: Box<dyn Any + Send + Sync>,
    ) -> HostBuffer<T> {
        HostBuffer {
            ptr,
            len,
            owner: Owner::External(owner),
        }
    }

    /// Whether a backend provided this memory.
    pub fn is_external(&self) -> bool {
        matches!(self.owner, Owner::External(_))
    }
}

impl<T: Copy + 'static> Deref for HostBuffer<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match &self.owner {
            Owner::Boxed(b) => b,
            // SAFETY: valid for `len` elements per `external`'s contract.
            Owner::External(_) => unsafe { std::slice::from_raw_parts(self.ptr, self.len) },
        }
    }
}

impl<T: Copy + 'static> DerefMut for HostBuffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.owner {
            Owner::Boxed(b) => b,
            // SAFETY: as above; &mut self makes this the only reference.
            Owner::External(_) => unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) },
        }
    }
}

impl<T: Copy + 'static> std::fmt::Debug for HostBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HostBuffer({} elements, {})",
            self.len,
            if self.is_external() {
                "external"
            } else {
                "boxed"
            }
        )
    }
}

/// One slot's frame and output memory, as a backend provides it.
pub struct SlotBuffers {
    pub frame: HostBuffer<u8>,
    pub output: HostBuffer<f32>,
}

pub struct Slot {
    /// The raw frame as the source delivered it.
    pub frame: HostBuffer<u8>,
    /// The model's output for this frame.
    pub output: HostBuffer<f32>,
    pub meta: SlotMeta,
}

/// The right to use one slot. Exactly one exists per slot.
#[derive(Debug, PartialEq, Eq)]
pub struct SlotToken(usize);

impl SlotToken {
    pub fn index(&self) -> usize {
        self.0
    }
}

pub struct Ring {
    slots: Box<[UnsafeCell<Slot>]>,
    borrowed: Box<[AtomicBool]>,
}

// SAFETY: a slot is only reachable through its unique SlotToken (borrowed
// mutably for the whole access), so no two threads touch one slot at once.
unsafe impl Sync for Ring {}

impl Ring {
    /// Allocate `n` slots and hand out their tokens. Boot only.
    pub fn new(n: usize, frame_bytes: usize, output_len: usize) -> (Ring, Vec<SlotToken>) {
        Ring::with_buffers(n, frame_bytes, output_len, None)
    }

    /// Like [`Ring::new`], with the slot memory a backend provided
    /// ([`crate::backend::Backend::take_slot_buffers`]) when it has the
    /// right count and sizes; boxed slices otherwise. Boot only.
    pub fn with_buffers(
        n: usize,
        frame_bytes: usize,
        output_len: usize,
        provided: Option<Vec<SlotBuffers>>,
    ) -> (Ring, Vec<SlotToken>) {
        let fits = |v: &Vec<SlotBuffers>| {
            v.len() == n
                && v.iter()
                    .all(|b| b.frame.len() == frame_bytes && b.output.len() == output_len)
        };
        let provided = match provided {
            Some(v) if fits(&v) => Some(v),
            Some(v) => {
                log::warn!(
                    "ring: the backend provided {} slot buffers of the wrong count or size; using heap memory",
                    v.len()
                );
                None
            }
            None => None,
        };
        let slots: Box<[UnsafeCell<Slot>]> = match provided {
            Some(v) => v
                .into_iter()
                .map(|b| {
                    UnsafeCell::new(Slot {
                        frame: b.frame,
                        output: b.output,
                        meta: SlotMeta::default(),
                    })
                })
                .collect(),
            None => (0..n)
                .map(|_| {
                    UnsafeCell::new(Slot {
                        frame: HostBuffer::boxed(frame_bytes),
                        output: HostBuffer::boxed(output_len),
                        meta: SlotMeta::default(),
                    })
                })
                .collect(),
        };
        let borrowed = (0..n).map(|_| AtomicBool::new(false)).collect();
        (Ring { slots, borrowed }, (0..n).map(SlotToken).collect())
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The slot `token` stands for. Frame path: never allocates.
    pub fn slot<'a>(&'a self, token: &'a mut SlotToken) -> SlotGuard<'a> {
        let flag = &self.borrowed[token.0];
        let was = flag.swap(true, Ordering::Acquire);
        debug_assert!(!was, "slot {} borrowed twice", token.0);
        // SAFETY: the token is unique and mutably borrowed for 'a, so this
        // is the only live reference to the slot.
        let slot = unsafe { &mut *self.slots[token.0].get() };
        SlotGuard { slot, flag }
    }

    /// Pre-fault every slot buffer (touch each page) so the run phase
    /// takes no page faults.
    pub fn prefault(&mut self) {
        for s in self.slots.iter_mut() {
            let s = s.get_mut();
            for b in s.frame.iter_mut().step_by(4096) {
                *b = 0;
            }
            for v in s.output.iter_mut().step_by(1024) {
                *v = 0.0;
            }
        }
    }
}

/// Exclusive access to one slot for as long as its token is borrowed.
pub struct SlotGuard<'a> {
    slot: &'a mut Slot,
    flag: &'a AtomicBool,
}

impl Deref for SlotGuard<'_> {
    type Target = Slot;
    fn deref(&self) -> &Slot {
        self.slot
    }
}

impl DerefMut for SlotGuard<'_> {
    fn deref_mut(&mut self) -> &mut Slot {
        self.slot
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.flag.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_cover_every_slot() {
        let (ring, tokens) = Ring::new(4, 16, 8);
        assert_eq!(ring.len(), 4);
        let mut idx: Vec<usize> = tokens.iter().map(|t| t.index()).collect();
        idx.sort();
        assert_eq!(idx, vec![0, 1, 2, 3]);
    }

    #[test]
    fn slots_move_between_threads_with_their_tokens() {
        let (ring, tokens) = Ring::new(3, 4, 1);
        let (tx, rx) = crossbeam_channel::bounded::<SlotToken>(3);
        std::thread::scope(|s| {
            let ring = &ring;
            s.spawn(move || {
                for mut t in tokens {
                    let i = t.index();
                    ring.slot(&mut t).frame[0] = i as u8 + 10;
                    tx.send(t).unwrap();
                }
            });
            s.spawn(move || {
                for mut t in rx.iter() {
                    let i = t.index();
                    assert_eq!(ring.slot(&mut t).frame[0], i as u8 + 10);
                }
            });
        });
    }

    /// A backend's memory (here a leaked-then-owned Vec standing in for
    /// pinned memory) is used when it fits, and freed with the ring.
    #[test]
    fn provided_buffers_are_used_when_they_fit() {
        let mk = |frame: usize, out: usize| {
            let mut f = vec![7u8; frame];
            let mut o = vec![0.5f32; out];
            let (fp, op) = (f.as_mut_ptr(), o.as_mut_ptr());
            // SAFETY: the Vecs move into the owners, so the pointers stay
            // valid for as long as the HostBuffers live.
            unsafe {
                SlotBuffers {
                    frame: HostBuffer::external(fp, frame, Box::new(f)),
                    output: HostBuffer::external(op, out, Box::new(o)),
                }
            }
        };
        let (ring, mut tokens) = Ring::with_buffers(2, 16, 4, Some(vec![mk(16, 4), mk(16, 4)]));
        let s = ring.slot(&mut tokens[1]);
        assert!(s.frame.is_external());
        assert_eq!(s.frame[3], 7);
        assert_eq!(s.output[..], [0.5; 4]);
        drop(s);
        // Wrong sizes: heap slots instead.
        let (ring, mut tokens) = Ring::with_buffers(2, 16, 4, Some(vec![mk(8, 4), mk(16, 4)]));
        let s = ring.slot(&mut tokens[0]);
        assert!(!s.frame.is_external());
        assert_eq!(s.frame.len(), 16);
    }
}
