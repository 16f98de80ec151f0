//! Memory planning: given buffers with sizes and lifetimes (first and last
//! step that touches them), place them at offsets in one arena so that
//! buffers alive at the same time never overlap. Greedy by size, best-fit
//! gap: the largest buffers are placed first, each into the smallest gap
//! between already-placed buffers that overlap it in time.
//!
//! Boot only; allocates.

/// Offsets are multiples of this many f32 elements (64 bytes).
pub const ALIGN_ELEMS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// Elements.
    pub size: usize,
    /// First step that writes the buffer.
    pub first: usize,
    /// Last step that reads it (inclusive).
    pub last: usize,
}

fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN_ELEMS) * ALIGN_ELEMS
}

/// Offsets (elements) for each buffer and the arena size (elements).
pub fn assign_offsets(bufs: &[Interval]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..bufs.len()).collect();
    order.sort_by(|&a, &b| {
        bufs[b]
            .size
            .cmp(&bufs[a].size)
            .then(bufs[a].first.cmp(&bufs[b].first))
    });
    let mut offsets = vec![usize::MAX; bufs.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena = 0usize;
    for &i in &order {
        let b = bufs[i];
        let size = align_up(b.size.max(1));
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| bufs[j].first <= b.last && b.first <= bufs[j].last)
            .map(|&j| (offsets[j], offsets[j] + align_up(bufs[j].size.max(1))))
            .collect();
        busy.sort_unstable();
        let mut best: Option<(usize, usize)> = None; // (gap size, offset)
        let mut cursor = 0usize;
        for &(start, end) in &busy {
            if start > cursor {
                let gap = start - cursor;
                if gap >= size && best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, cursor));
                }
            }
            cursor = cursor.max(end);
        }
        let off = match best {
            Some((_, off)) => off,
            None => cursor,
        };
        offsets[i] = off;
        arena = arena.max(off + size);
        placed.push(i);
    }
    (offsets, arena)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlaps(a: &Interval, oa: usize, b: &Interval, ob: usize) -> bool {
        let time = a.first <= b.last && b.first <= a.last;
        let space = oa < ob + b.size && ob < oa + a.size;
        time && space
    }

    #[test]
    fn buffers_alive_together_never_overlap() {
        // A deterministic pseudo-random mix of sizes and lifetimes.
        let mut s = 12345u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let bufs: Vec<Interval> = (0..200)
            .map(|_| {
                let first = (next() % 100) as usize;
                let len = (next() % 10) as usize;
                Interval {
                    size: 1 + (next() % 5000) as usize,
                    first,
                    last: first + len,
                }
            })
            .collect();
        let (off, arena) = assign_offsets(&bufs);
        for i in 0..bufs.len() {
            assert!(off[i] + bufs[i].size <= arena);
            assert_eq!(off[i] % ALIGN_ELEMS, 0);
            for j in 0..i {
                assert!(
                    !overlaps(&bufs[i], off[i], &bufs[j], off[j]),
                    "{i} and {j} overlap"
                );
            }
        }
        let total: usize = bufs.iter().map(|b| b.size).sum();
        assert!(
            arena < total,
            "reuse expected: arena {arena} vs sum {total}"
        );
    }

    #[test]
    fn a_chain_reuses_two_buffers() {
        // t0 -> t1 -> t2 -> t3, each alive for two consecutive steps.
        let bufs: Vec<Interval> = (0..4)
            .map(|i| Interval {
                size: 64,
                first: i,
                last: i + 1,
            })
            .collect();
        let (_, arena) = assign_offsets(&bufs);
        assert_eq!(arena, 128);
    }
}
