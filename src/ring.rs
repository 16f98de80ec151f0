//! The frame ring: N slots allocated at boot, each owning one frame's raw
//! pixels, the model's output for it and its timestamps. Threads pass
//! [`SlotToken`]s (not `Copy`, one per slot, created once) through bounded
//! channels; holding the token is what gives access to the slot, so
//! "exactly one owner at a time" is checked by the compiler, and in debug
//! builds a per-slot flag asserts that no slot is ever borrowed twice.
//!
//! `Ring::new` allocates (boot); `Ring::slot` is the frame path and never
//! allocates.

use crate::source::FrameStamp;
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

pub struct Slot {
    /// The raw frame as the source delivered it.
    pub frame: Box<[u8]>,
    /// The model's output for this frame.
    pub output: Box<[f32]>,
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
        let slots = (0..n)
            .map(|_| {
                UnsafeCell::new(Slot {
                    frame: vec![0u8; frame_bytes].into_boxed_slice(),
                    output: vec![0f32; output_len].into_boxed_slice(),
                    meta: SlotMeta::default(),
                })
            })
            .collect();
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
}
