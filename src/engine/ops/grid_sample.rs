//! GridSample (opset 16 and 20/22): `Y[n, c, o..] = X[n, c]` sampled at the
//! normalised coordinates `grid[n, o.., :]` (x, y[, z] in [-1, 1], the
//! last spatial dimension first). RT-DETR's multi-scale deformable
//! attention reads its value maps this way (bilinear, zeros,
//! align_corners 0 in Ultralytics' export).
//!
//! 2-D (`X` `[N, C, H, W]`, grid `[N, Ho, Wo, 2]`) and 3-D (`X`
//! `[N, C, D, H, W]`, grid `[N, Do, Ho, Wo, 3]`) inputs; every mode
//! (linear/bilinear, nearest, cubic/bicubic) and padding (zeros, border,
//! reflection) of the spec, following the ONNX reference operation for
//! operation: coordinates outside the sampling border are clamped
//! (border) or reflected (reflection) first, then every tap outside the
//! input reads 0, the clamped pixel, or the reflected pixel. Nearest
//! rounds half to even (`np.rint`).
//!
//! Shapes are checked at boot (ranks, batch, the grid's last dimension);
//! the grid is run-time data. A NaN coordinate reads 0 (zeros padding) or
//! a clamped pixel, never out of bounds.
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path (inference thread, split over the pool by output range) and
//! never allocates.

use super::movement::par_fill;
use super::{required, OpDef, OutInfo, ValueInfo};
use crate::cuda::lower::{refuse, GpuCtx, GpuNode, Launch};
use crate::cuda::CudaError;
use crate::engine::cpu::{CpuKernel, StepIo, ThreadPool};
use crate::engine::error::OpResult;
use crate::engine::ir::{GridMode, GridPadding, Op};
use crate::engine::tensor::{numel, shape_string, Tensor};
use crate::op_bail;

pub struct GridSample;

/// Most spatial dimensions supported (the spec's 2-D and 3-D cases).
const MAX_R: usize = 3;

/// Everything `run` needs, resolved at boot.
#[derive(Debug, Clone)]
struct Plan {
    mode: GridMode,
    padding: GridPadding,
    align_corners: bool,
    /// Spatial rank (2 or 3).
    r: usize,
    channels: usize,
    /// Input spatial dims (outermost first) and their strides.
    dims: [usize; MAX_R],
    strides: [usize; MAX_R],
    /// Elements of one input channel plane / one output channel plane.
    in_plane: usize,
    out_plane: usize,
    out_shape: Vec<usize>,
}

impl Plan {
    fn new(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Plan> {
        let Op::GridSample {
            mode,
            padding,
            align_corners,
        } = *op
        else {
            op_bail!("{} is not a GridSample", op.name());
        };
        let x = required(ins, 0, "X")?;
        let g = required(ins, 1, "grid")?;
        if !x.dtype.is_float() || !g.dtype.is_float() {
            op_bail!(
                "GridSample needs float X and grid, got {} and {}",
                x.dtype,
                g.dtype
            );
        }
        let rank = x.shape.len();
        if !(4..=MAX_R + 2).contains(&rank) {
            op_bail!(
                "GridSample X {} must be 4-D [N, C, H, W] or 5-D [N, C, D, H, W]",
                shape_string(x.shape)
            );
        }
        let r = rank - 2;
        if g.shape.len() != rank || g.shape[0] != x.shape[0] || g.shape[rank - 1] != r {
            op_bail!(
                "GridSample grid {} does not fit X {}: expected [{}, <{r} output dims>, {r}]",
                shape_string(g.shape),
                shape_string(x.shape),
                x.shape[0]
            );
        }
        let mut dims = [1; MAX_R];
        dims[..r].copy_from_slice(&x.shape[2..]);
        let mut strides = [1; MAX_R];
        for d in (0..r.saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * dims[d + 1];
        }
        let mut out_shape = vec![x.shape[0], x.shape[1]];
        out_shape.extend_from_slice(&g.shape[1..rank - 1]);
        Ok(Plan {
            mode,
            padding,
            align_corners,
            r,
            channels: x.shape[1],
            dims,
            strides,
            in_plane: numel(&x.shape[2..]),
            out_plane: numel(&g.shape[1..rank - 1]),
            out_shape,
        })
    }

    /// The sampling border of dimension `d`: pixel centres (align_corners)
    /// or pixel edges.
    #[inline]
    fn border(&self, d: usize) -> (f32, f32) {
        let n = self.dims[d] as f32;
        if self.align_corners {
            (0.0, n - 1.0)
        } else {
            (-0.5, n - 0.5)
        }
    }

    /// Normalised coordinate to pixel index space of dimension `d`.
    #[inline]
    fn denormalize(&self, v: f32, d: usize) -> f32 {
        let n = self.dims[d] as f32;
        if self.align_corners {
            (v + 1.0) / 2.0 * (n - 1.0)
        } else {
            ((v + 1.0) * n - 1.0) / 2.0
        }
    }

    /// Index along dimension `d` after padding, or `None` for a zero.
    #[inline]
    fn tap(&self, i: i64, d: usize) -> Option<usize> {
        let n = self.dims[d] as i64;
        match self.padding {
            GridPadding::Zeros => (0..n).contains(&i).then_some(i as usize),
            GridPadding::Border => Some(i.clamp(0, n - 1) as usize),
            GridPadding::Reflection => {
                let (lo, hi) = self.border(d);
                // int() truncates, as the reference does; the clamp only
                // guards the read.
                Some((reflect(i as f32, lo, hi) as i64).clamp(0, n - 1) as usize)
            }
        }
    }

    /// One output value: `plane` is the input channel plane, `g` the
    /// element's grid coordinates (x first).
    fn sample(&self, plane: &[f32], g: &[f32]) -> f32 {
        let r = self.r;
        let mut x = [0f32; MAX_R];
        for d in 0..r {
            let mut v = self.denormalize(g[r - 1 - d], d);
            if self.mode == GridMode::Nearest {
                v = v.round_ties_even();
            }
            let (lo, hi) = self.border(d);
            if v < lo || v > hi {
                v = match self.padding {
                    GridPadding::Zeros => v,
                    GridPadding::Border => v.clamp(0.0, (self.dims[d] - 1) as f32),
                    GridPadding::Reflection => reflect(v, lo, hi),
                };
            }
            x[d] = v;
        }
        if x[..r].iter().any(|v| !v.is_finite()) {
            return match self.padding {
                GridPadding::Zeros => 0.0,
                _ => plane[0],
            };
        }
        // Taps per dimension: (first index, weights).
        let (taps, first, weights) = match self.mode {
            GridMode::Nearest => {
                let mut first = [0i64; MAX_R];
                for d in 0..r {
                    first[d] = x[d] as i64;
                }
                (1usize, first, [[1.0, 0.0, 0.0, 0.0]; MAX_R])
            }
            GridMode::Linear => {
                let mut first = [0i64; MAX_R];
                let mut w = [[0f32; 4]; MAX_R];
                for d in 0..r {
                    let f = x[d].floor();
                    first[d] = f as i64;
                    let t = x[d] - f;
                    w[d] = [1.0 - t, t, 0.0, 0.0];
                }
                (2, first, w)
            }
            GridMode::Cubic => {
                let mut first = [0i64; MAX_R];
                let mut w = [[0f32; 4]; MAX_R];
                for d in 0..r {
                    let f = x[d].floor();
                    first[d] = f as i64 - 1;
                    w[d] = cubic_coeffs(x[d] - f);
                }
                (4, first, w)
            }
        };
        let total = taps.pow(r as u32);
        let mut acc = 0f32;
        for k in 0..total {
            let (mut rest, mut off, mut w) = (k, 0usize, 1f32);
            let mut zero = false;
            for d in (0..r).rev() {
                let j = rest % taps;
                rest /= taps;
                w *= weights[d][j];
                match self.tap(first[d] + j as i64, d) {
                    Some(i) => off += i * self.strides[d],
                    None => zero = true,
                }
            }
            if !zero {
                acc += w * plane[off];
            }
        }
        acc
    }
}

/// Reflects `x` by the near border until it lies within `[lo, hi]` (the
/// reference's `_gs_reflect`).
#[inline]
fn reflect(x: f32, lo: f32, hi: f32) -> f32 {
    let range = hi - lo;
    if range <= 0.0 {
        return lo;
    }
    if x < lo {
        let dx = lo - x;
        let n = (dx / range) as i64;
        let r = dx - n as f32 * range;
        if n % 2 == 0 {
            lo + r
        } else {
            hi - r
        }
    } else if x > hi {
        let dx = x - hi;
        let n = (dx / range) as i64;
        let r = dx - n as f32 * range;
        if n % 2 == 0 {
            hi - r
        } else {
            lo + r
        }
    } else {
        x
    }
}

/// Keys' cubic convolution weights (a = -0.75) of the taps at -1, 0, 1, 2
/// for offset `t` in [0, 1).
#[inline]
fn cubic_coeffs(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let x = t.abs();
    [
        ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A,
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0,
        ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0,
        ((A * (2.0 - x) - 5.0 * A) * (2.0 - x) + 8.0 * A) * (2.0 - x) - 4.0 * A,
    ]
}

impl OpDef for GridSample {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        let p = Plan::new(op, ins)?;
        Ok(vec![OutInfo {
            dtype: required(ins, 0, "X")?.dtype,
            shape: p.out_shape,
        }])
    }

    fn eval(&self, _op: &Op, _ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        Ok(None)
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        _outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        Ok(Box::new(GridSampleKernel {
            p: Plan::new(op, ins)?,
        }))
    }

    fn lower_cuda(&self, n: &GpuNode, _cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        Err(refuse(n.op(), "not supported by the CUDA backend yet"))
    }
}

struct GridSampleKernel {
    p: Plan,
}

impl CpuKernel for GridSampleKernel {
    /// Frame path: never allocates.
    fn run(&self, io: &StepIo<'_>, _scratch: &mut [f32], pool: &ThreadPool) {
        let (x, grid) = (io.input(0), io.input(1));
        let out = io.output(0);
        let p = &self.p;
        par_fill(pool, out, &|d, s| {
            for (k, o) in d.iter_mut().enumerate() {
                let e = s + k;
                let pos = e % p.out_plane;
                let nc = e / p.out_plane;
                let b = nc / p.channels;
                let plane = &x[nc * p.in_plane..(nc + 1) * p.in_plane];
                let g0 = (b * p.out_plane + pos) * p.r;
                *o = p.sample(plane, &grid[g0..g0 + p.r]);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tensor::DType;

    fn op(mode: GridMode, padding: GridPadding, align_corners: bool) -> Op {
        Op::GridSample {
            mode,
            padding,
            align_corners,
        }
    }

    fn run(o: &Op, x: &Tensor, g: &Tensor) -> Vec<f32> {
        let outs = super::super::eval(o, &[Some(x), Some(g)]).unwrap();
        outs[0].as_f32().unwrap().to_vec()
    }

    /// 1x1x2x3 input 0..5, one sample per grid point.
    fn input() -> Tensor {
        Tensor::from_f32(vec![1, 1, 2, 3], (0..6).map(|v| v as f32).collect())
    }

    fn grid(points: &[[f32; 2]]) -> Tensor {
        Tensor::from_f32(
            vec![1, 1, points.len(), 2],
            points.iter().flatten().copied().collect(),
        )
    }

    #[test]
    fn corners_and_centre_with_align_corners() {
        let o = op(GridMode::Linear, GridPadding::Zeros, true);
        // (-1,-1) is pixel (0,0), (1,1) pixel (1,2), (0,0) the centre:
        // x = 1, y = 0.5: (1 + 4) / 2.
        let y = run(&o, &input(), &grid(&[[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]));
        assert_eq!(y, vec![0.0, 5.0, 2.5]);
    }

    #[test]
    fn zeros_padding_fades_at_the_edge_border_clamps() {
        // align_corners 0: (1, -1) is the top right corner, half a pixel
        // outside pixel (0, 2)'s centre in x and y: 3 of its 4 taps are
        // padding, so it reads a quarter of that pixel (2).
        let g = grid(&[[1.0, -1.0], [3.0, 0.0]]);
        let z = run(
            &op(GridMode::Linear, GridPadding::Zeros, false),
            &input(),
            &g,
        );
        assert_eq!(z[0], 0.5);
        assert_eq!(z[1], 0.0, "far outside reads zeros");
        let b = run(
            &op(GridMode::Linear, GridPadding::Border, false),
            &input(),
            &g,
        );
        // (3, 0) -> x = 5.5 clamped to 2, y = 0.5 -> (2 + 5) / 2
        assert_eq!(b[1], 3.5);
    }

    #[test]
    fn nearest_rounds_half_to_even_and_reflection_mirrors() {
        // align_corners 1 on width 3: x = -0.5 -> 0.5 -> rounds to 0;
        // x = 0.5 -> 1.5 -> rounds to 2.
        let o = op(GridMode::Nearest, GridPadding::Zeros, true);
        let y = run(&o, &input(), &grid(&[[-0.5, -1.0], [0.5, -1.0]]));
        assert_eq!(y, vec![0.0, 2.0]);
        // reflection, align_corners 1: x = -2 -> -1 -> mirrored to 1.
        let o = op(GridMode::Nearest, GridPadding::Reflection, true);
        let y = run(&o, &input(), &grid(&[[-2.0, -1.0]]));
        assert_eq!(y, vec![1.0]);
    }

    #[test]
    fn cubic_reproduces_a_linear_ramp_inside() {
        // Keys' kernel is exact on linear data away from the borders.
        let x = Tensor::from_f32(vec![1, 1, 1, 8], (0..8).map(|v| v as f32).collect());
        let o = op(GridMode::Cubic, GridPadding::Border, true);
        // x = 3.5 (normalised 3.5 / 7 * 2 - 1)
        let y = run(&o, &x, &grid(&[[3.5 / 7.0 * 2.0 - 1.0, 0.0]]));
        assert!((y[0] - 3.5).abs() < 1e-5, "{y:?}");
    }

    #[test]
    fn nan_coordinates_read_nothing() {
        let o = op(GridMode::Linear, GridPadding::Zeros, false);
        let y = run(&o, &input(), &grid(&[[f32::NAN, 0.0]]));
        assert_eq!(y, vec![0.0]);
    }

    #[test]
    fn shapes_are_checked_at_boot() {
        let o = op(GridMode::Linear, GridPadding::Zeros, false);
        let x = input();
        fn info(t: &Tensor) -> ValueInfo<'_> {
            ValueInfo {
                dtype: DType::F32,
                shape: &t.shape,
                value: None,
            }
        }
        let bad_last = Tensor::from_f32(vec![1, 1, 2, 3], vec![0.0; 6]);
        let e = GridSample
            .infer(&o, &[Some(info(&x)), Some(info(&bad_last))])
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not fit X 1x1x2x3"), "{e}");
        let bad_batch = Tensor::from_f32(vec![2, 1, 1, 2], vec![0.0; 4]);
        assert!(GridSample
            .infer(&o, &[Some(info(&x)), Some(info(&bad_batch))])
            .is_err());
        let x3 = Tensor::from_f32(vec![1, 6], vec![0.0; 6]);
        let e = GridSample
            .infer(&o, &[Some(info(&x3)), Some(info(&bad_last))])
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be 4-D"), "{e}");
        let good = Tensor::from_f32(vec![1, 4, 5, 2], vec![0.0; 40]);
        let out = GridSample
            .infer(&o, &[Some(info(&x)), Some(info(&good))])
            .unwrap();
        assert_eq!(out[0].shape, vec![1, 1, 4, 5]);
    }
}
