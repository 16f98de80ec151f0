//! GEMM operands: strided views ([`MatRef`]) and panels packed once at boot
//! ([`PackedA`], [`PackedB`], [`PackedBRef`]), behind the [`AOperand`] /
//! [`BOperand`] traits the driver packs from. Packing at boot allocates;
//! reading panels on the frame path does not.

use super::*;

/// A read-only strided matrix view: element (i, j) is `data[i*rs + j*cs]`.
/// Swapping the strides ([`MatRef::t`]) gives the transpose.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl<'a> MatRef<'a> {
    /// `None` when some element would lie outside `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Option<Self> {
        if rows > 0 && cols > 0 {
            let last = (rows - 1)
                .checked_mul(rs)?
                .checked_add((cols - 1).checked_mul(cs)?)?;
            if last >= data.len() {
                return None;
            }
        }
        Some(MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        })
    }

    /// A dense row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Option<Self> {
        MatRef::new(data, rows, cols, cols, 1)
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    #[inline]
    pub(crate) fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

/// Bias added in the epilogue.
#[derive(Debug, Clone, Copy, Default)]
pub enum Bias<'a> {
    #[default]
    None,
    /// One value per row of C (length >= m): conv channels.
    Row(&'a [f32]),
    /// One value per column of C (length >= n): Gemm's `C` of shape `[N]`.
    Col(&'a [f32]),
}

/// What happens to each element of C: `act(alpha * AB + beta * C + bias)`.
/// With `beta == 0` C is write-only (it may hold garbage, even NaN).
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    pub alpha: f32,
    pub beta: f32,
    pub bias: Bias<'a>,
    pub act: Activation,
}

impl Default for Epilogue<'_> {
    fn default() -> Self {
        Epilogue {
            alpha: 1.0,
            beta: 0.0,
            bias: Bias::None,
            act: Activation::None,
        }
    }
}

/// The left operand, as the GEMM driver sees it.
pub trait AOperand: Sync {
    /// Whether [`AOperand::block`] packs into the caller's buffer (and so
    /// needs scratch).
    const PACKS: bool;

    /// Whether this operand can serve an `m x k` product packed with `mr`
    /// rows per panel and `kc`-deep k-blocks.
    fn fits(&self, m: usize, k: usize, mr: usize, kc: usize) -> bool;

    /// Rows `m0..m0+mc` (`m0` a multiple of `mr`), depth `k0..k0+kc`, as
    /// `ceil(mc/mr)` panels of `kc x mr` (element (i, k) of panel p at
    /// `p*kc*mr + k*mr + i`), rows past `mc` zero. Either a slice of
    /// pre-packed data or `buf` after packing into it.
    fn block<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        m0: usize,
        mc: usize,
        mr: usize,
        buf: &'s mut [f32],
    ) -> &'s [f32];
}

/// The right operand, as the GEMM driver sees it.
pub trait BOperand: Sync {
    /// Whether [`BOperand::block`] packs into the caller's buffer.
    const PACKS: bool;

    /// Whether this operand can serve a `k x n` product packed with `nr`
    /// columns per panel and `kc`-deep k-blocks.
    fn fits(&self, k: usize, n: usize, nr: usize, kc: usize) -> bool;

    /// Depth `k0..k0+kc`, columns `n0..n0+nc` (`n0` a multiple of `nr`), as
    /// `ceil(nc/nr)` panels of `kc x nr` (element (k, j) of panel p at
    /// `p*kc*nr + k*nr + j`), columns past `nc` zero.
    fn block<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        n0: usize,
        nc: usize,
        nr: usize,
        buf: &'s mut [f32],
    ) -> &'s [f32];

    /// B as it lies in memory when its rows are contiguous: `(data, row
    /// stride)` with element (k, j) at `data[k * stride + j]`. The GEMM then
    /// reads full `nr`-wide panels in place and packs only a partial last
    /// panel (through `block`).
    fn rows(&self) -> Option<(&[f32], usize)> {
        None
    }
}

impl AOperand for MatRef<'_> {
    const PACKS: bool = true;

    fn fits(&self, m: usize, k: usize, _mr: usize, _kc: usize) -> bool {
        self.rows >= m && self.cols >= k
    }

    fn block<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        m0: usize,
        mc: usize,
        mr: usize,
        buf: &'s mut [f32],
    ) -> &'s [f32] {
        let len = mc.div_ceil(mr) * mr * kc;
        let Some(dst) = buf.get_mut(..len) else {
            return &[];
        };
        for (p, panel) in dst.chunks_exact_mut(mr * kc).enumerate() {
            for i in 0..mr {
                let r = p * mr + i;
                if r < mc {
                    for kk in 0..kc {
                        panel[kk * mr + i] = self.at(m0 + r, k0 + kk);
                    }
                } else {
                    for kk in 0..kc {
                        panel[kk * mr + i] = 0.0;
                    }
                }
            }
        }
        dst
    }
}

impl BOperand for MatRef<'_> {
    const PACKS: bool = true;

    fn rows(&self) -> Option<(&[f32], usize)> {
        (self.cs == 1).then_some((self.data, self.rs))
    }

    fn fits(&self, k: usize, n: usize, _nr: usize, _kc: usize) -> bool {
        self.rows >= k && self.cols >= n
    }

    fn block<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        n0: usize,
        nc: usize,
        nr: usize,
        buf: &'s mut [f32],
    ) -> &'s [f32] {
        let panels = nc.div_ceil(nr);
        let len = panels * nr * kc;
        let Some(dst) = buf.get_mut(..len) else {
            return &[];
        };
        for kk in 0..kc {
            let row = (k0 + kk) * self.rs;
            for p in 0..panels {
                let d = &mut dst[p * kc * nr + kk * nr..][..nr];
                let j0 = n0 + p * nr;
                let w = nr.min(nc - p * nr);
                if self.cs == 1 {
                    copy_run(&mut d[..w], &self.data[row + j0..row + j0 + w]);
                } else {
                    for (j, v) in d[..w].iter_mut().enumerate() {
                        *v = self.data[row + (j0 + j) * self.cs];
                    }
                }
                zero_run(&mut d[w..]);
            }
        }
        dst
    }
}

/// An A operand packed at boot for one [`Gemm`] plan.
#[derive(Debug, Clone)]
pub struct PackedA {
    pub(crate) data: Vec<f32>,
    pub(crate) off: usize,
    pub(crate) m: usize,
    pub(crate) k: usize,
    pub(crate) mr: usize,
    pub(crate) kc: usize,
}

impl PackedA {
    pub fn rows(&self) -> usize {
        self.m
    }

    pub fn depth(&self) -> usize {
        self.k
    }
}

impl AOperand for PackedA {
    const PACKS: bool = false;

    fn fits(&self, m: usize, k: usize, mr: usize, kc: usize) -> bool {
        self.m == m && self.k == k && self.mr == mr && self.kc == kc
    }

    fn block<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        m0: usize,
        mc: usize,
        mr: usize,
        _buf: &'s mut [f32],
    ) -> &'s [f32] {
        let mpad = self.m.div_ceil(mr) * mr;
        let start = self.off + k0 * mpad + (m0 / mr) * mr * kc;
        let len = mc.div_ceil(mr) * mr * kc;
        self.data.get(start..start + len).unwrap_or(&[])
    }
}

/// A B operand packed at boot for one [`Gemm`] plan.
#[derive(Debug, Clone)]
pub struct PackedB {
    pub(crate) data: Vec<f32>,
    pub(crate) off: usize,
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) nr: usize,
    pub(crate) kc: usize,
}

impl PackedB {
    pub fn depth(&self) -> usize {
        self.k
    }

    pub fn cols(&self) -> usize {
        self.n
    }
}

impl BOperand for PackedB {
    const PACKS: bool = false;

    fn fits(&self, k: usize, n: usize, nr: usize, kc: usize) -> bool {
        self.k == k && self.n == n && self.nr == nr && self.kc == kc
    }

    fn block<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        n0: usize,
        nc: usize,
        nr: usize,
        _buf: &'s mut [f32],
    ) -> &'s [f32] {
        let npad = self.n.div_ceil(nr) * nr;
        let start = self.off + k0 * npad + (n0 / nr) * nr * kc;
        let len = nc.div_ceil(nr) * nr * kc;
        self.data.get(start..start + len).unwrap_or(&[])
    }
}

/// A B operand a caller wrote straight into the packed layout of a plan
/// (Winograd's transformed input): for each `kc`-deep k-block starting at
/// `k0`, `ceil(n/nr)` panels of `kc x nr` from offset `k0 * ceil(n/nr) * nr`.
/// With `n <= nr` that is simply row-major `k x nr`.
#[derive(Debug, Clone, Copy)]
pub struct PackedBRef<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) nr: usize,
    pub(crate) kc: usize,
}

impl<'a> PackedBRef<'a> {
    /// `None` when `data` is too short for `k x n` in `gemm`'s layout.
    pub fn new(gemm: &Gemm, data: &'a [f32], k: usize, n: usize) -> Option<Self> {
        let need = k.checked_mul(n.div_ceil(gemm.nr) * gemm.nr)?;
        (data.len() >= need).then_some(PackedBRef {
            data,
            k,
            n,
            nr: gemm.nr,
            kc: gemm.kc,
        })
    }
}

impl BOperand for PackedBRef<'_> {
    const PACKS: bool = false;

    fn fits(&self, k: usize, n: usize, nr: usize, kc: usize) -> bool {
        self.k == k && self.n == n && self.nr == nr && self.kc == kc
    }

    fn block<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        n0: usize,
        nc: usize,
        nr: usize,
        _buf: &'s mut [f32],
    ) -> &'s [f32] {
        let npad = self.n.div_ceil(nr) * nr;
        let start = k0 * npad + (n0 / nr) * nr * kc;
        let len = nc.div_ceil(nr) * nr * kc;
        self.data.get(start..start + len).unwrap_or(&[])
    }
}
