//! Optimal assignment (minimum total cost) on a rectangular cost matrix:
//! the Hungarian method with row/column potentials and shortest augmenting
//! paths (the Jonker–Volgenant formulation, `O(n² m)`), on buffers sized at
//! boot for the largest matrix the tracker can build.
//!
//! Invariants: costs are finite; infeasible pairs are given a large finite
//! cost by the caller and filtered out afterwards (so every row of the
//! smaller side is assigned, and the caller drops pairs above its limit).
//!
//! [`Assigner::new`] allocates (boot); [`Assigner::solve`] never allocates.
//! Called on the postprocess thread.

/// Work buffers for matrices up to `capacity` on each side.
#[derive(Debug)]
pub struct Assigner {
    capacity: usize,
    u: Box<[f64]>,
    v: Box<[f64]>,
    /// `p[j]`: the row (1-based, 0 = none) assigned to column `j`.
    p: Box<[usize]>,
    way: Box<[usize]>,
    minv: Box<[f64]>,
    used: Box<[bool]>,
}

impl Assigner {
    /// Boot: room for matrices of up to `capacity` rows and columns.
    pub fn new(capacity: usize) -> Assigner {
        let n = capacity + 1;
        Assigner {
            capacity,
            u: vec![0.0; n].into_boxed_slice(),
            v: vec![0.0; n].into_boxed_slice(),
            p: vec![0; n].into_boxed_slice(),
            way: vec![0; n].into_boxed_slice(),
            minv: vec![0.0; n].into_boxed_slice(),
            used: vec![false; n].into_boxed_slice(),
        }
    }

    /// Assigns rows to columns of the `rows x cols` matrix `cost`
    /// (row-major, row stride `stride`) at minimum total cost. Writes
    /// `row_to_col[i] = Some(j)` for assigned rows; with more rows than
    /// columns some rows stay `None`. Ties resolve the same way on every
    /// run. Returns false (and assigns nothing) when the matrix is larger
    /// than the boot capacity. Frame path: never allocates.
    pub fn solve(
        &mut self,
        cost: &[f64],
        rows: usize,
        cols: usize,
        stride: usize,
        row_to_col: &mut [Option<usize>],
    ) -> bool {
        row_to_col[..rows].iter_mut().for_each(|r| *r = None);
        if rows == 0 || cols == 0 {
            return true;
        }
        if rows > self.capacity || cols > self.capacity {
            return false;
        }
        if rows <= cols {
            self.run(rows, cols, |i, j| cost[i * stride + j]);
            for j in 1..=cols {
                if self.p[j] != 0 {
                    row_to_col[self.p[j] - 1] = Some(j - 1);
                }
            }
        } else {
            // The method needs rows <= cols: solve the transpose.
            self.run(cols, rows, |i, j| cost[j * stride + i]);
            for j in 1..=rows {
                if self.p[j] != 0 {
                    row_to_col[j - 1] = Some(self.p[j] - 1);
                }
            }
        }
        true
    }

    /// The core for `n <= m`, `a(i, j)` 0-based; leaves the matching in `p`.
    fn run(&mut self, n: usize, m: usize, a: impl Fn(usize, usize) -> f64) {
        let (u, v, p, way, minv, used) = (
            &mut self.u[..=n],
            &mut self.v[..=m],
            &mut self.p[..=m],
            &mut self.way[..=m],
            &mut self.minv[..=m],
            &mut self.used[..=m],
        );
        u.fill(0.0);
        v.fill(0.0);
        p.fill(0);
        way.fill(0);
        for i in 1..=n {
            p[0] = i;
            let mut j0 = 0;
            minv.fill(f64::INFINITY);
            used.fill(false);
            loop {
                used[j0] = true;
                let i0 = p[j0];
                let mut delta = f64::INFINITY;
                let mut j1 = 0;
                for j in 1..=m {
                    if used[j] {
                        continue;
                    }
                    let cur = a(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
                if j1 == 0 {
                    // Only with non-finite costs; callers never pass them.
                    break;
                }
                for j in 0..=m {
                    if used[j] {
                        u[p[j]] += delta;
                        v[j] -= delta;
                    } else {
                        minv[j] -= delta;
                    }
                }
                j0 = j1;
                if p[j0] == 0 {
                    break;
                }
            }
            // Flip the augmenting path.
            while j0 != 0 {
                let j1 = way[j0];
                p[j0] = p[j1];
                j0 = j1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every assignment of the smaller side, by brute force.
    fn brute(cost: &[f64], rows: usize, cols: usize) -> f64 {
        fn go(c: &[f64], rows: usize, cols: usize, i: usize, used: &mut Vec<bool>) -> f64 {
            if i == rows {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            let skip_allowed = rows > cols;
            if skip_allowed {
                // Row i may stay unassigned only if enough rows remain.
                let assigned = used.iter().filter(|u| **u).count();
                if rows - i > cols - assigned {
                    best = go(c, rows, cols, i + 1, used);
                }
            }
            for j in 0..cols {
                if !used[j] {
                    used[j] = true;
                    best = best.min(c[i * cols + j] + go(c, rows, cols, i + 1, used));
                    used[j] = false;
                }
            }
            best
        }
        go(cost, rows, cols, 0, &mut vec![false; cols])
    }

    #[test]
    fn matches_brute_force_on_random_rectangles() {
        let mut s = 7u64;
        let mut rnd = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            (s >> 33) as f64 / (1u64 << 31) as f64
        };
        let mut a = Assigner::new(8);
        let mut out = [None; 8];
        for rows in 1..=6 {
            for cols in 1..=6 {
                for _ in 0..5 {
                    let cost: Vec<f64> = (0..rows * cols).map(|_| (rnd() * 10.0).floor()).collect();
                    assert!(a.solve(&cost, rows, cols, cols, &mut out));
                    let mut total = 0.0;
                    let mut seen = vec![false; cols];
                    let mut assigned = 0;
                    for (i, o) in out[..rows].iter().enumerate() {
                        if let Some(j) = *o {
                            assert!(!seen[j], "column {j} twice");
                            seen[j] = true;
                            total += cost[i * cols + j];
                            assigned += 1;
                        }
                    }
                    assert_eq!(assigned, rows.min(cols));
                    assert_eq!(total, brute(&cost, rows, cols), "{rows}x{cols} {cost:?}");
                }
            }
        }
    }

    #[test]
    fn respects_the_stride_and_the_capacity() {
        let mut a = Assigner::new(2);
        // 2x2 inside a stride-3 buffer: the third column is garbage.
        let cost = [5.0, 1.0, -100.0, 1.0, 5.0, -100.0];
        let mut out = [None; 3];
        assert!(a.solve(&cost, 2, 2, 3, &mut out));
        assert_eq!(out[..2], [Some(1), Some(0)]);
        assert!(!a.solve(&[0.0; 9], 3, 3, 3, &mut out));
        assert_eq!(out, [None; 3]);
    }
}
