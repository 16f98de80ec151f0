//! Packed single-precision GEMM: `C[m,n] = act(alpha * A[m,k] * B[k,n] +
//! beta * C + bias)`, BLIS-style.
//!
//! The work is blocked over n (`nc`), k (`kc`) and m (`mc`); each k-block of
//! B is packed into `nr`-wide column panels and each of A into `mr`-high row
//! panels, and a register-blocked micro-kernel multiplies one A panel by one
//! B panel into an `mr x nr` tile of C. The bias, `beta` and activation are
//! applied by the micro-kernel as it stores the tile (bias and `beta` on the
//! first k-block, the activation on the last; SiLU and ReLU in registers,
//! rarer activations over the just-stored tile). A B whose rows are
//! contiguous in memory (a plain matrix, a 1x1 conv's input) is read in
//! place; only its last partial panel is packed.
//!
//! Operands are anything implementing [`AOperand`] / [`BOperand`]: strided
//! views ([`MatRef`], so transposed operands need no copy), operands packed
//! once at boot ([`PackedA`], [`PackedB`]: conv weights, constant MatMul/Gemm
//! matrices) or a caller's own packing routine (Conv packs B straight from
//! the image: implicit im2col).
//!
//! The micro-kernel is chosen at boot from the CPU's features ([`Isa`]):
//! AVX-512F (8x32), AVX2+FMA (6x16) or a portable auto-vectorised one (4x16,
//! the aarch64 path). Threads split C into disjoint rectangles, each with
//! its own region of the caller's scratch.
//!
//! Boot: [`Gemm`], packing, [`Gemm::scratch_len`] allocate. Frame path:
//! [`Gemm::run`] never allocates; it is called by a kernel's `run` on the
//! inference thread and fans out to the kernel [`ThreadPool`].

use super::activation;

use super::pool::{Regions, SyncPtr, ThreadPool};

use super::simd::{copy_run, zero_run, Isa};

use crate::engine::ir::Activation;

/// Most threads a GEMM splits over; scratch for `threads` is sized for at
/// most this many and a larger pool leaves the rest idle.
pub const MAX_THREADS: usize = 16;

/// Threads kernels size their scratch for at boot: the machine's
/// parallelism, capped at [`MAX_THREADS`]. A pool with more threads than
/// that leaves the extra ones idle in GEMMs (never wrong, only slower).
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS)
}

/// f32 elements per 64-byte cache line: scratch buffers are aligned to it.
const ALIGN: usize = 16;

/// Largest `mr * nr` of any micro-kernel (edge-tile buffer size).
const MAX_TILE: usize = 512;

/// Column tasks per thread: with more tasks than threads, a worker that
/// wakes late takes a smaller share instead of holding up the rest.
pub(crate) const OVERSPLIT: usize = 4;

/// Below this many multiply-adds a GEMM runs on one thread: waking the pool
/// costs more than it saves.
const PAR_MIN_MACS: usize = 1 << 18;

/// A zeroed Vec with room for `len` f32 starting on a cache line; returns
/// the Vec and the offset of that start.
fn aligned_vec(len: usize) -> (Vec<f32>, usize) {
    let v = vec![0.0f32; len + ALIGN];
    let off = align_offset(v.as_ptr());
    (v, off)
}

/// Elements to skip from `p` to reach a 64-byte boundary.
fn align_offset(p: *const f32) -> usize {
    let mis = (p as usize / std::mem::size_of::<f32>()) % ALIGN;
    (ALIGN - mis) % ALIGN
}

/// A GEMM plan: the instruction set and blocking, fixed at boot. Operands
/// pre-packed by one plan only work with a plan of the same configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gemm {
    isa: Isa,
    mr: usize,
    nr: usize,
    kc: usize,
    mc: usize,
    nc: usize,
}

impl Default for Gemm {
    fn default() -> Self {
        Gemm::new()
    }
}

impl Gemm {
    /// The plan for this CPU (feature detection runs once per process).
    pub fn new() -> Gemm {
        Gemm::with_isa(Isa::cached())
    }

    /// The plan for `isa`, or the portable one if this CPU lacks `isa`.
    pub fn with_isa(isa: Isa) -> Gemm {
        let isa = if isa.is_supported() {
            isa
        } else {
            Isa::Portable
        };
        let (mr, nr) = match isa {
            Isa::Avx512 => (8, 32),
            Isa::Avx2 => (6, 16),
            Isa::Portable => (4, 16),
        };
        Gemm {
            isa,
            mr,
            nr,
            kc: 256,
            mc: mr * (128 / mr),
            nc: 1024,
        }
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Rows per A panel.
    pub fn mr(&self) -> usize {
        self.mr
    }

    /// Columns per B panel.
    pub fn nr(&self) -> usize {
        self.nr
    }

    /// Pack `a` (m x k) once, for use as a constant left operand. Boot only.
    pub fn pack_a(&self, a: MatRef) -> PackedA {
        let (m, k) = (a.rows, a.cols);
        let mpad = m.div_ceil(self.mr) * self.mr;
        let (mut data, off) = aligned_vec(mpad * k);
        let mut k0 = 0;
        while k0 < k {
            let kc = self.kc.min(k - k0);
            let dst = &mut data[off + k0 * mpad..off + (k0 + kc) * mpad];
            let _ = AOperand::block(&a, k0, kc, 0, m, self.mr, dst);
            k0 += kc;
        }
        PackedA {
            data,
            off,
            m,
            k,
            mr: self.mr,
            kc: self.kc,
        }
    }

    /// Pack `b` (k x n) once, for use as a constant right operand. Boot only.
    pub fn pack_b(&self, b: MatRef) -> PackedB {
        let (k, n) = (b.rows, b.cols);
        let npad = n.div_ceil(self.nr) * self.nr;
        let (mut data, off) = aligned_vec(npad * k);
        let mut k0 = 0;
        while k0 < k {
            let kc = self.kc.min(k - k0);
            let dst = &mut data[off + k0 * npad..off + (k0 + kc) * npad];
            let _ = BOperand::block(&b, k0, kc, 0, n, self.nr, dst);
            k0 += kc;
        }
        PackedB {
            data,
            off,
            k,
            n,
            nr: self.nr,
            kc: self.kc,
        }
    }

    /// Scratch one thread needs for an `m x n x k` product when A / B are
    /// packed at run time (`pack_a` / `pack_b`).
    fn region_len(&self, m: usize, n: usize, k: usize, pack_a: bool, pack_b: bool) -> usize {
        let kc = self.kc.min(k);
        let a = if pack_a {
            self.mc.min(m.div_ceil(self.mr) * self.mr) * kc + ALIGN
        } else {
            0
        };
        let b = if pack_b {
            self.nc.min(n.div_ceil(self.nr) * self.nr) * kc + ALIGN
        } else {
            0
        };
        a + b
    }

    /// f32 scratch [`Gemm::run`] needs to use up to `threads` threads
    /// (capped at [`MAX_THREADS`]) when A / B are packed at run time
    /// (false for [`PackedA`] / [`PackedB`] operands). With less scratch,
    /// `run` uses fewer threads.
    pub fn scratch_len(
        &self,
        m: usize,
        n: usize,
        k: usize,
        threads: usize,
        pack_a: bool,
        pack_b: bool,
    ) -> usize {
        self.region_len(m, n, k, pack_a, pack_b) * threads.clamp(1, MAX_THREADS)
    }

    /// `C = act(alpha * A * B + beta * C + bias)` for `A: m x k`, `B: k x n`
    /// and `C: m x n` row-major with row stride `ldc`.
    ///
    /// Shapes are the caller's contract, checked at boot: if an operand,
    /// `c`, a bias or `scratch` is too small, or a pre-packed operand came
    /// from another plan, nothing is computed (debug builds assert).
    /// Frame path: never allocates.
    #[allow(clippy::too_many_arguments)]
    pub fn run<A: AOperand, B: BOperand>(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &A,
        b: &B,
        c: &mut [f32],
        ldc: usize,
        epi: &Epilogue,
        scratch: &mut [f32],
        pool: &ThreadPool,
    ) {
        if !self.check(m, n, k, a, b, c, ldc, epi) {
            return;
        }
        if k == 0 {
            self.epilogue_only((0, m), n, c, ldc, epi);
            return;
        }
        match (self.isa, self.mr, self.nr) {
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 8, 32) => {
                self.run_with::<x86::Avx512<8, 2>, A, B>(m, n, k, a, b, c, ldc, epi, scratch, pool)
            }
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 6, 16) => {
                self.run_with::<x86::Avx2<6, 2>, A, B>(m, n, k, a, b, c, ldc, epi, scratch, pool)
            }
            _ => self.run_with::<Portable<4, 16>, A, B>(m, n, k, a, b, c, ldc, epi, scratch, pool),
        }
    }

    /// Rows `rows.0..rows.1` of `C = act(alpha * A * B + beta * C + bias)`
    /// on the calling thread only (for callers that already split work
    /// across the pool). `c` holds just those rows (row stride `ldc`);
    /// `rows.0` must be a multiple of [`Gemm::mr`]. Scratch: `scratch_len`
    /// with one thread. Frame path: never allocates.
    #[allow(clippy::too_many_arguments)]
    pub fn run_rows<A: AOperand, B: BOperand>(
        &self,
        rows: (usize, usize),
        m: usize,
        n: usize,
        k: usize,
        a: &A,
        b: &B,
        c: &mut [f32],
        ldc: usize,
        epi: &Epilogue,
        scratch: &mut [f32],
    ) {
        let (r0, r1) = rows;
        if r0 >= r1.min(m) || n == 0 {
            return;
        }
        let r1 = r1.min(m);
        let rows_ok = r0 % self.mr == 0;
        let region_ok = scratch.len() >= self.region_len(m, n, k, A::PACKS, B::PACKS);
        if !(rows_ok && region_ok) {
            debug_assert!(
                false,
                "gemm rows {r0}..{r1}: rows_ok={rows_ok} region_ok={region_ok}"
            );
            return;
        }
        // Validate as an (r1 - r0)-row product over `c`, and the operands
        // for the full one.
        let (a_ok, b_ok) = (
            a.fits(m, k, self.mr, self.kc),
            b.fits(k, n, self.nr, self.kc),
        );
        let bias_ok = match epi.bias {
            Bias::None => true,
            Bias::Row(r) => r.len() >= r1,
            Bias::Col(cb) => cb.len() >= n,
        };
        let c_ok = ldc >= n
            && (r1 - r0 - 1)
                .checked_mul(ldc)
                .and_then(|x| x.checked_add(n))
                .is_some_and(|need| need <= c.len());
        if !(a_ok && b_ok && bias_ok && c_ok) {
            debug_assert!(false, "gemm rows {r0}..{r1} of {m}x{n}x{k} do not fit");
            return;
        }
        if k == 0 {
            self.epilogue_only((r0, r1), n, c, ldc, epi);
            return;
        }
        let cp = c.as_mut_ptr();
        // SAFETY: `c` covers rows r0..r1 (checked above) and is exclusively
        // borrowed; the operands and bias fit (checked above).
        unsafe {
            match (self.isa, self.mr, self.nr) {
                #[cfg(target_arch = "x86_64")]
                (Isa::Avx512, 8, 32) => self.task::<x86::Avx512<8, 2>, A, B>(
                    (r0, r1),
                    (0, n),
                    k,
                    a,
                    b,
                    cp,
                    r0,
                    ldc,
                    epi,
                    scratch,
                ),
                #[cfg(target_arch = "x86_64")]
                (Isa::Avx2, 6, 16) => self.task::<x86::Avx2<6, 2>, A, B>(
                    (r0, r1),
                    (0, n),
                    k,
                    a,
                    b,
                    cp,
                    r0,
                    ldc,
                    epi,
                    scratch,
                ),
                _ => self.task::<Portable<4, 16>, A, B>(
                    (r0, r1),
                    (0, n),
                    k,
                    a,
                    b,
                    cp,
                    r0,
                    ldc,
                    epi,
                    scratch,
                ),
            }
        }
    }

    /// Whether the operands, `c` and the bias fit an `m x n x k` product
    /// (debug builds assert that they do).
    #[allow(clippy::too_many_arguments)]
    fn check<A: AOperand, B: BOperand>(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &A,
        b: &B,
        c: &[f32],
        ldc: usize,
        epi: &Epilogue,
    ) -> bool {
        if m == 0 || n == 0 {
            return false;
        }
        let c_ok = ldc >= n
            && (m - 1)
                .checked_mul(ldc)
                .and_then(|x| x.checked_add(n))
                .is_some_and(|need| need <= c.len());
        let bias_ok = match epi.bias {
            Bias::None => true,
            Bias::Row(r) => r.len() >= m,
            Bias::Col(cb) => cb.len() >= n,
        };
        let operands_ok = a.fits(m, k, self.mr, self.kc) && b.fits(k, n, self.nr, self.kc);
        debug_assert!(
            c_ok && bias_ok && operands_ok,
            "gemm {m}x{n}x{k}: c_ok={c_ok} bias_ok={bias_ok} operands_ok={operands_ok}"
        );
        c_ok && bias_ok && operands_ok
    }

    /// `k == 0`: the product is zero, only the epilogue remains. `c`
    /// holds rows `rows.0..rows.1`.
    fn epilogue_only(
        &self,
        rows: (usize, usize),
        n: usize,
        c: &mut [f32],
        ldc: usize,
        epi: &Epilogue,
    ) {
        for i in rows.0..rows.1 {
            let off = (i - rows.0) * ldc;
            let row = &mut c[off..off + n];
            for (j, v) in row.iter_mut().enumerate() {
                let mut x = if epi.beta != 0.0 { epi.beta * *v } else { 0.0 };
                match epi.bias {
                    Bias::None => {}
                    Bias::Row(r) => x += r[i],
                    Bias::Col(cb) => x += cb[j],
                }
                *v = x;
            }
            activation::apply_slice(epi.act, row, self.isa);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run_with<K: MicroKernel, A: AOperand, B: BOperand>(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &A,
        b: &B,
        c: &mut [f32],
        ldc: usize,
        epi: &Epilogue,
        scratch: &mut [f32],
        pool: &ThreadPool,
    ) {
        const { assert!(K::MR * K::NR <= MAX_TILE) };
        debug_assert!(K::MR == self.mr && K::NR == self.nr);
        let region = self.region_len(m, n, k, A::PACKS, B::PACKS);
        let fit = scratch.len().checked_div(region).unwrap_or(MAX_THREADS);
        let regions = fit.min(MAX_THREADS);
        let pool_threads = pool.threads().min(MAX_THREADS);
        let mut threads = pool_threads.min(regions);
        if threads == 0 {
            debug_assert!(false, "gemm scratch {} < {region}", scratch.len());
            return;
        }
        if m.saturating_mul(n).saturating_mul(k) < PAR_MIN_MACS {
            threads = 1;
        }
        let mp = m.div_ceil(K::MR);
        let np = n.div_ceil(K::NR);
        // Split the longer side of C (in panels). Columns are split into a
        // few tasks per thread (each packs only its own B) so that a late
        // worker just takes fewer; rows only across threads (each task
        // packs the whole B block).
        let split = if pool_threads <= regions {
            OVERSPLIT
        } else {
            1
        };
        let (tm, tn) = if threads == 1 {
            (1, 1)
        } else if np >= 2 * threads || np >= mp {
            (1, (threads * split).min(np))
        } else {
            (threads.min(mp), 1)
        };
        let cp = SyncPtr(c.as_mut_ptr());
        let sp = SyncPtr(scratch.as_mut_ptr());
        let slots = Regions::new(regions);
        let body = |t: usize| {
            let (ti, tj) = (t / tn, t % tn);
            let m_lo = (ti * mp / tm) * K::MR;
            let m_hi = ((ti + 1) * mp / tm * K::MR).min(m);
            let n_lo = (tj * np / tn) * K::NR;
            let n_hi = ((tj + 1) * np / tn * K::NR).min(n);
            if m_lo >= m_hi || n_lo >= n_hi {
                return;
            }
            // At most min(pool threads, tasks) tasks run at once, never
            // more than `regions` (tasks > regions only when the pool has
            // no more threads than regions), so a region is always free.
            let r = slots.claim();
            // SAFETY: r < regions <= fit, so region r lies inside `scratch`,
            // and only this task uses it until it releases it.
            let buf = unsafe { std::slice::from_raw_parts_mut(sp.get().add(r * region), region) };
            // SAFETY: tasks own disjoint rectangles of C ([m_lo, m_hi) x
            // [n_lo, n_hi)), all inside `c` (checked in `run`).
            unsafe {
                self.task::<K, A, B>(
                    (m_lo, m_hi),
                    (n_lo, n_hi),
                    k,
                    a,
                    b,
                    cp.get(),
                    0,
                    ldc,
                    epi,
                    buf,
                )
            };
            slots.release(r);
        };
        pool.parallel_for(tm * tn, &body);
    }

    /// One thread's rectangle of C. `c` points at row `row_base` of C.
    ///
    /// # Safety
    /// `c` with row stride `ldc` covers rows `ms` (less `row_base`) x
    /// columns `ns`, and no other thread touches that rectangle meanwhile;
    /// A, B and the bias fit the product (checked in `run`).
    #[allow(clippy::too_many_arguments)]
    unsafe fn task<K: MicroKernel, A: AOperand, B: BOperand>(
        &self,
        ms: (usize, usize),
        ns: (usize, usize),
        k: usize,
        a: &A,
        b: &B,
        c: *mut f32,
        row_base: usize,
        ldc: usize,
        epi: &Epilogue,
        buf: &mut [f32],
    ) {
        let (m_lo, m_hi) = ms;
        let (n_lo, n_hi) = ns;
        let a_len = if A::PACKS {
            self.region_len(m_hi - m_lo, 0, k, true, false)
        } else {
            0
        };
        let (abuf, bbuf) = buf.split_at_mut(a_len.min(buf.len()));
        let abuf = aligned(abuf);
        let bbuf = aligned(bbuf);
        let mut jc = n_lo;
        while jc < n_hi {
            let nc = self.nc.min(n_hi - jc);
            let mut pc = 0;
            while pc < k {
                let kc = self.kc.min(k - pc);
                let (bt, edge): (BPanels, &mut [f32]) = match b.rows() {
                    Some((data, ldb)) => (BPanels::Direct { data, ldb }, &mut *bbuf),
                    None => (
                        BPanels::Packed(b.block(pc, kc, jc, nc, K::NR, bbuf)),
                        &mut [],
                    ),
                };
                let first = pc == 0;
                let last = pc + kc == k;
                let mut ic = m_lo;
                while ic < m_hi {
                    let mc = self.mc.min(m_hi - ic);
                    let at = a.block(pc, kc, ic, mc, K::MR, abuf);
                    let blk = Block {
                        ic,
                        jc,
                        pc,
                        mc,
                        nc,
                        kc,
                        first,
                        last,
                    };
                    // SAFETY: forwarded from this fn's contract.
                    unsafe {
                        self.macro_kernel::<K, B>(&blk, at, b, bt, edge, c, row_base, ldc, epi)
                    };
                    ic += mc;
                }
                pc += kc;
            }
            jc += nc;
        }
    }

    /// All tiles of one (mc x nc x kc) block.
    ///
    /// # Safety
    /// As [`Gemm::task`], for the block's rectangle.
    #[allow(clippy::too_many_arguments)]
    unsafe fn macro_kernel<K: MicroKernel, B: BOperand>(
        &self,
        blk: &Block,
        at: &[f32],
        b: &B,
        bt: BPanels,
        edge: &mut [f32],
        c: *mut f32,
        row_base: usize,
        ldc: usize,
        epi: &Epilogue,
    ) {
        let (mr, nr, kc) = (K::MR, K::NR, blk.kc);
        let b_ok = match bt {
            BPanels::Packed(p) => p.len() >= blk.nc.div_ceil(nr) * nr * kc,
            // The last element any full panel reads.
            BPanels::Direct { data, ldb } => {
                (blk.pc + kc - 1) * ldb + blk.jc + (blk.nc / nr) * nr <= data.len()
            }
        };
        if at.len() < blk.mc.div_ceil(mr) * mr * kc || !b_ok {
            debug_assert!(false, "gemm packing buffer too small");
            return;
        }
        let beta = if blk.first { epi.beta } else { 1.0 };
        let act = if blk.last { epi.act } else { Activation::None };
        let mut tmp = [0.0f32; MAX_TILE];
        let mut jr = 0;
        while jr < blk.nc {
            let nv = nr.min(blk.nc - jr);
            let col = blk.jc + jr;
            let (bp, ldb) = match bt {
                BPanels::Packed(p) => (p[(jr / nr) * nr * kc..].as_ptr(), nr),
                // SAFETY: rows pc..pc+kc, columns col..col+nr are inside
                // `data` (checked above).
                BPanels::Direct { data, ldb } if nv == nr => {
                    (unsafe { data.as_ptr().add(blk.pc * ldb + col) }, ldb)
                }
                BPanels::Direct { .. } => {
                    let p = b.block(blk.pc, kc, col, nv, nr, edge);
                    if p.len() < nr * kc {
                        debug_assert!(false, "gemm edge panel buffer too small");
                        return;
                    }
                    (p.as_ptr(), nr)
                }
            };
            let col_bias = match epi.bias {
                Bias::Col(cb) if blk.first => cb[col..].as_ptr(),
                _ => std::ptr::null(),
            };
            let mut ir = 0;
            while ir < blk.mc {
                let mv = mr.min(blk.mc - ir);
                let ap = at[(ir / mr) * mr * kc..].as_ptr();
                let row = blk.ic + ir;
                let row_bias = match epi.bias {
                    Bias::Row(r) if blk.first => r[row..].as_ptr(),
                    _ => std::ptr::null(),
                };
                // SAFETY: (row, col) is inside this thread's rectangle.
                let ct = unsafe { c.add((row - row_base) * ldc + col) };
                if mv == mr && nv == nr {
                    let ep = TileEp {
                        alpha: epi.alpha,
                        beta,
                        row_bias,
                        col_bias,
                        act,
                    };
                    // SAFETY: panels checked above; a full tile of C; the
                    // biases have mr / nr values from row / col on.
                    unsafe { K::tile(kc, ap, bp, ldb, ct, ldc, &ep) };
                } else {
                    // SAFETY: `tmp` is an mr x nr tile with stride nr.
                    unsafe { K::tile(kc, ap, bp, ldb, tmp.as_mut_ptr(), nr, &TileEp::PLAIN) };
                    for i in 0..mv {
                        // SAFETY: row i of the valid part of the tile.
                        let crow = unsafe { std::slice::from_raw_parts_mut(ct.add(i * ldc), nv) };
                        for (j, v) in crow.iter_mut().enumerate() {
                            let mut x = epi.alpha * tmp[i * nr + j];
                            if beta != 0.0 {
                                x += beta * *v;
                            }
                            if blk.first {
                                match epi.bias {
                                    Bias::None => {}
                                    Bias::Row(r) => x += r[row + i],
                                    Bias::Col(cb) => x += cb[col + j],
                                }
                            }
                            *v = x;
                        }
                        activation::apply_slice(act, crow, self.isa);
                    }
                }
                ir += mr;
            }
            jr += nr;
        }
    }
}

/// A block of B: packed panels, or rows read in place.
#[derive(Clone, Copy)]
enum BPanels<'a> {
    Packed(&'a [f32]),
    Direct { data: &'a [f32], ldb: usize },
}

/// Where one block sits in C and which k-block it is.
struct Block {
    ic: usize,
    jc: usize,
    pc: usize,
    mc: usize,
    nc: usize,
    kc: usize,
    first: bool,
    last: bool,
}

/// `buf` from its first 64-byte boundary on.
fn aligned(buf: &mut [f32]) -> &mut [f32] {
    let off = align_offset(buf.as_ptr()).min(buf.len());
    &mut buf[off..]
}

mod micro;
mod operands;
#[cfg(test)]
pub(crate) mod tests;

use micro::*;
pub use operands::*;
