//! TopK: the `k` largest (or smallest) elements along one axis, and their
//! indices, as the NMS-free heads of YOLOv10 / YOLO26 use it to pick their
//! final detections.
//!
//! Order: by value, and between equal values by index, lower index first
//! (the ONNX spec's tie rule, which onnxruntime follows; on random weights
//! many scores tie, so this decides which rows a model outputs). NaN sorts
//! above every number. `sorted = 0` leaves the order to the implementation;
//! this one sorts anyway.
//!
//! The indices output is an integer tensor computed at run time: it is held
//! in the arena as f32 values, exact because the axis is refused at boot
//! when it is longer than 2^24 (see `ops::runs_on_integers`).
//!
//! Boot only (infer, eval, lowering); the CPU kernel's `run` is on the
//! frame path (inference thread) and never allocates: the index
//! permutation lives in the kernel's scratch and is ordered in place.

use super::movement::{const_ints, norm_axis};
use super::{required, OpDef, OutInfo, ValueInfo};
use crate::cuda::lower::{refuse, GpuCtx, GpuNode, Launch};
use crate::cuda::CudaError;
use crate::engine::cpu::{CpuKernel, StepIo, ThreadPool};
use crate::engine::error::{OpError, OpResult};
use crate::engine::ir::Op;
use crate::engine::tensor::{numel, shape_string, DType, Tensor, TensorData};
use crate::op_bail;
use std::cmp::Ordering;

/// Longest axis whose indices are exact as f32 (run-time integers).
pub(super) const MAX_EXACT_INDEX: usize = 1 << 24;

pub struct TopK;

/// The resolved layout: `outer` lanes of `n` elements, `inner` apart,
/// reduced to `k`.
#[derive(Debug, Clone, Copy)]
struct Layout {
    outer: usize,
    n: usize,
    inner: usize,
    k: usize,
    largest: bool,
}

fn layout(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<(Layout, Vec<usize>, DType)> {
    let Op::TopK { axis, largest, .. } = op else {
        op_bail!("{} is not a TopK", op.name());
    };
    let x = required(ins, 0, "X")?;
    let ks = const_ints(ins, 1, "K")?
        .ok_or_else(|| OpError::new("TopK needs input 1 (K), a constant computable at boot"))?;
    let [k] = ks[..] else {
        op_bail!("TopK K must hold exactly one value, got {}", ks.len());
    };
    let a = norm_axis(op, "axis", *axis, x.shape)?;
    let n = x.shape[a];
    if k < 0 || k as usize > n {
        op_bail!(
            "TopK K = {k} is outside 0..={n}, the size of axis {axis} of the input ({})",
            shape_string(x.shape)
        );
    }
    if x.dtype == DType::Bool {
        op_bail!("TopK does not take bool input");
    }
    let mut shape = x.shape.to_vec();
    shape[a] = k as usize;
    Ok((
        Layout {
            outer: numel(&x.shape[..a]),
            n,
            inner: numel(&x.shape[a + 1..]),
            k: k as usize,
            largest: *largest,
        },
        shape,
        x.dtype,
    ))
}

/// Order of two values for "comes first": NaN above every number, then
/// the larger (or smaller) first. Works for f32 and i64 alike.
#[inline(always)]
fn value_order<T: PartialOrd + Copy>(a: T, b: T, largest: bool) -> Ordering {
    #[allow(clippy::eq_op)]
    let (an, bn) = (a != a, b != b);
    let asc = match (an, bn) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    };
    if largest {
        asc.reverse()
    } else {
        asc
    }
}

/// Put the indices of the first `k` elements of the lane (in TopK order:
/// value, then lower index first) into `idx[..k]`, sorted. `idx` has the
/// lane's length; `at(j)` is the lane's element j. Never allocates
/// (in-place selection and sort).
#[inline]
fn select<T: PartialOrd + Copy>(idx: &mut [u32], k: usize, largest: bool, at: impl Fn(usize) -> T) {
    for (j, v) in idx.iter_mut().enumerate() {
        *v = j as u32;
    }
    let cmp =
        |a: &u32, b: &u32| value_order(at(*a as usize), at(*b as usize), largest).then(a.cmp(b));
    if k == 0 {
        return;
    }
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, cmp);
    }
    idx[..k].sort_unstable_by(cmp);
}

/// TopK over typed data: values and indices, lane by lane. Boot (folding)
/// and the kernel share it.
fn topk_into<T: PartialOrd + Copy>(
    l: Layout,
    x: &[T],
    idx: &mut [u32],
    mut put: impl FnMut(usize, T, usize),
) {
    for o in 0..l.outer {
        for i in 0..l.inner {
            let base = o * l.n * l.inner + i;
            select(idx, l.k, l.largest, |j| x[base + j * l.inner]);
            for (r, &j) in idx[..l.k].iter().enumerate() {
                let at = (o * l.k + r) * l.inner + i;
                put(at, x[base + j as usize * l.inner], j as usize);
            }
        }
    }
}

impl OpDef for TopK {
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
        let (_, shape, dtype) = layout(op, ins)?;
        Ok(vec![
            OutInfo {
                dtype,
                shape: shape.clone(),
            },
            OutInfo {
                dtype: DType::I64,
                shape,
            },
        ])
    }

    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>> {
        let infos: Vec<Option<ValueInfo>> = ins.iter().map(|t| t.map(ValueInfo::of)).collect();
        let (l, shape, dtype) = layout(op, &infos)?;
        let x = ins
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| OpError::new("TopK: missing input 0"))?;
        let len = numel(&shape);
        let mut idx = vec![0u32; l.n];
        let mut indices = vec![0i64; len];
        let values = match &x.data {
            TensorData::F32(v) => {
                let mut out = vec![0f32; len];
                topk_into(l, v, &mut idx, |at, val, j| {
                    out[at] = val;
                    indices[at] = j as i64;
                });
                TensorData::F32(out)
            }
            TensorData::I64(v) => {
                let mut out = vec![0i64; len];
                topk_into(l, v, &mut idx, |at, val, j| {
                    out[at] = val;
                    indices[at] = j as i64;
                });
                TensorData::I64(out)
            }
            TensorData::Bool(_) => op_bail!("TopK does not take bool input"),
        };
        Ok(Some(vec![
            Tensor {
                dtype,
                shape: shape.clone(),
                data: values,
            },
            Tensor::from_i64(shape, indices),
        ]))
    }

    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        _outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>> {
        let (l, _, dtype) = layout(op, ins)?;
        if !dtype.is_float() {
            op_bail!("TopK: input 0 is {dtype}; at run time it must be a float tensor");
        }
        if l.n > MAX_EXACT_INDEX {
            op_bail!(
                "TopK over an axis of {} elements: run-time indices are exact only up to {MAX_EXACT_INDEX}",
                l.n
            );
        }
        Ok(Box::new(TopKKernel { l }))
    }

    fn lower_cuda(&self, n: &GpuNode, _cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError> {
        Err(refuse(n.op(), "not supported by the CUDA backend yet"))
    }
}

struct TopKKernel {
    l: Layout,
}

impl CpuKernel for TopKKernel {
    fn scratch_len(&self) -> usize {
        self.l.n
    }

    /// Frame path: never allocates. One lane after another on the calling
    /// thread (detection heads have one lane).
    fn run(&self, io: &StepIo<'_>, scratch: &mut [f32], _pool: &ThreadPool) {
        let x = io.input(0);
        let values = io.output(0);
        let indices = io.output(1);
        let s = &mut scratch[..self.l.n];
        // SAFETY: u32 and f32 have the same size and alignment and every
        // bit pattern is a valid u32; `s` is exclusively borrowed here.
        let idx = unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut u32, s.len()) };
        topk_into(self.l, x, idx, |at, v, j| {
            values[at] = v;
            indices[at] = j as f32;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(x: &[f32], k: usize, largest: bool) -> (Vec<f32>, Vec<u32>) {
        let l = Layout {
            outer: 1,
            n: x.len(),
            inner: 1,
            k,
            largest,
        };
        let mut idx = vec![0u32; x.len()];
        let (mut v, mut i) = (vec![0.0; k], vec![0; k]);
        topk_into(l, x, &mut idx, |at, val, j| {
            v[at] = val;
            i[at] = j as u32;
        });
        (v, i)
    }

    #[test]
    fn ties_take_the_lower_index_first() {
        let x = [0.5, 0.9, 0.5, 0.9, 0.1, 0.5];
        assert_eq!(
            run(&x, 4, true),
            (vec![0.9, 0.9, 0.5, 0.5], vec![1, 3, 0, 2])
        );
        assert_eq!(run(&x, 3, false), (vec![0.1, 0.5, 0.5], vec![4, 0, 2]));
    }

    #[test]
    fn nan_sorts_above_numbers() {
        let x = [1.0, f32::NAN, 3.0];
        let (v, i) = run(&x, 2, true);
        assert!(v[0].is_nan());
        assert_eq!((v[1], &i[..]), (3.0, &[1u32, 2][..]));
    }

    #[test]
    fn all_equal_scores_keep_index_order() {
        // Random-weight heads: many scores saturate to the same value.
        let x = vec![0.25f32; 1000];
        let (_, i) = run(&x, 300, true);
        assert_eq!(i, (0..300).collect::<Vec<u32>>());
    }
}
