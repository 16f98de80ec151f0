//! Op implementations: one file per ONNX op, or per small family of ops
//! sharing one kernel, each implementing [`OpDef`] for everything the
//! engine does with the op:
//!
//! * `infer`: output dtypes and shapes from input dtypes/shapes and any
//!   constant inputs (shape-carrying inputs must be constant at boot);
//! * `eval`: evaluation on owned tensors, used by constant folding. An op
//!   may return `Ok(None)` for f32 data, which then runs through its own CPU
//!   kernel (one implementation of each op, not two);
//! * `lower_cpu`: the CPU kernel for the run phase, with every parameter
//!   resolved and weights packed at boot;
//! * `lower_cuda`: the GPU launches, or an explicit refusal
//!   ([`crate::cuda::lower::refuse`]). It has no default: whether an op
//!   runs on the GPU is decided, by the compiler's insistence, in the op's
//!   own file.
//!
//! [`def`] is the registry: an exhaustive match from [`Op`] to its
//! implementation, so a new `Op` variant does not compile until it is
//! registered. Adding an op: its variant in `ir::Op` (and its attribute
//! parsing in `onnx/convert.rs`), one file here implementing [`OpDef`] with
//! its unit tests, one line in [`def`], and its ONNX node tests in
//! `tests/fixtures/onnx-node` (see `scripts/gen_conformance.py`), which
//! `tests/conformance.rs` runs through every backend.
//!
//! Everything here runs at boot and may allocate, except `CpuKernel::run`,
//! which is on the frame path (inference thread) and never allocates.

mod batchnorm;
mod binary;
mod cast;
mod concat;
pub mod conv;
mod elementwise;
mod gather;
mod gather_elements;
mod grid_sample;
mod layernorm;
mod linear;
mod matmul;
mod movement;
mod pad;
pub mod pool;
mod reduce;
pub mod resize;
mod shape_values;
mod slice;
mod softmax;
mod split;
mod topk;
mod transpose;
mod unary;
mod views;
mod where_op;

use super::cpu::{Buf, CpuKernel, StepIo, ThreadPool};
use super::error::{OpError, OpResult};
use super::ir::Op;
use super::tensor::{DType, Tensor, TensorData};
use crate::cuda::lower::{GpuCtx, GpuNode, Launch};
use crate::cuda::CudaError;

/// What an op implementation knows about one of its inputs at boot.
#[derive(Debug, Clone, Copy)]
pub struct ValueInfo<'a> {
    pub dtype: DType,
    pub shape: &'a [usize],
    /// The value, when the input is a constant (initializer or folded).
    pub value: Option<&'a Tensor>,
}

impl<'a> ValueInfo<'a> {
    pub fn of(t: &'a Tensor) -> ValueInfo<'a> {
        ValueInfo {
            dtype: t.dtype,
            shape: &t.shape,
            value: Some(t),
        }
    }
}

/// An output's dtype and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct OutInfo {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// Everything the engine does with one op (or a small family sharing one
/// kernel). Implementations are unit structs registered in [`def`].
pub trait OpDef: Sync {
    /// Output dtypes and shapes. Boot only.
    fn infer(&self, op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>>;

    /// Evaluation on constant inputs for folding; `Ok(None)` runs the CPU
    /// kernel on them instead (f32 data). Boot only; allocates.
    fn eval(&self, op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Option<Vec<Tensor>>>;

    /// The run-phase CPU kernel, every parameter resolved. Boot only.
    fn lower_cpu(
        &self,
        op: &Op,
        ins: &[Option<ValueInfo>],
        outs: &[OutInfo],
    ) -> OpResult<Box<dyn CpuKernel>>;

    /// The node's GPU launches, or a refusal
    /// ([`crate::cuda::lower::refuse`]) saying why the GPU cannot run it.
    /// Boot only.
    fn lower_cuda(&self, n: &GpuNode, cx: &mut GpuCtx) -> Result<Vec<Launch>, CudaError>;
}

/// The registry: the implementation of `op`. Exhaustive on purpose.
pub fn def(op: &Op) -> &'static dyn OpDef {
    match op {
        Op::Conv(_) => &conv::Conv,
        Op::MatMul | Op::Gemm { .. } => &matmul::MatMulGemm,
        Op::MaxPool(_) | Op::AveragePool(_) => &pool::WindowPool,
        Op::GlobalAveragePool | Op::GlobalMaxPool => &pool::GlobalPool,
        Op::Resize(_) => &resize::Resize,
        Op::Binary(_) => &binary::Binary,
        Op::Unary(_) | Op::Act(_) | Op::Clip { .. } => &unary::Unary,
        Op::Cast { .. } => &cast::Cast,
        Op::Where => &where_op::Where,
        Op::BatchNormalization { .. } => &batchnorm::BatchNorm,
        Op::Softmax { .. } | Op::LogSoftmax { .. } => &softmax::Softmax,
        Op::Reduce { .. } => &reduce::Reduce,
        Op::Concat { .. } => &concat::Concat,
        Op::Split { .. } => &split::Split,
        Op::Slice { .. } => &slice::Slice,
        Op::Reshape { .. }
        | Op::Flatten { .. }
        | Op::Squeeze { .. }
        | Op::Unsqueeze { .. }
        | Op::Identity
        | Op::Dropout => &views::Views,
        Op::Transpose { .. } | Op::Expand => &transpose::Transpose,
        Op::Gather { .. } => &gather::Gather,
        Op::Pad { .. } => &pad::Pad,
        Op::TopK { .. } => &topk::TopK,
        Op::GatherElements { .. } => &gather_elements::GatherElements,
        Op::LayerNormalization { .. } => &layernorm::LayerNorm,
        Op::GridSample { .. } => &grid_sample::GridSample,
        Op::Constant(_) | Op::Shape { .. } | Op::Size | Op::Range | Op::ConstantOfShape(_) => {
            &shape_values::ShapeValues
        }
    }
}

/// Whether `op` may produce or consume integer or bool tensors at run time.
///
/// Run-time tensors live in the f32 arena. Integer ones (TopK's indices
/// and what NMS-free heads derive from them) are held there as f32 values,
/// which is exact because they never exceed 2^24: TopK refuses longer
/// axes, and the ops below only move such values, shrink them (integer
/// `Div` and `Mod`, `Cast` to float) or shift them by small constants
/// (`Add`, `Sub`, `Mul`: RT-DETR's floor division of a TopK index).
/// Bools (comparisons, logic, `Not`, a `Where` condition) are held as
/// 1.0 / 0.0. Every other op's run-time tensors must be float;
/// `CpuModel::build` refuses the rest at boot.
pub fn runs_on_integers(op: &Op) -> bool {
    use super::ir::UnaryOp;
    matches!(
        op,
        Op::TopK { .. }
            | Op::GatherElements { .. }
            | Op::Binary(_)
            | Op::Unary(UnaryOp::Not)
            | Op::Where
            | Op::Cast { .. }
            | Op::Concat { .. }
            | Op::Split { .. }
            | Op::Slice { .. }
            | Op::Transpose { .. }
            | Op::Expand
            | Op::Gather { .. }
    )
}

/// Output dtypes and shapes of `op`.
pub fn infer(op: &Op, ins: &[Option<ValueInfo>]) -> OpResult<Vec<OutInfo>> {
    def(op).infer(op, ins)
}

/// The run-phase kernel for `op` with these inputs and outputs.
pub fn lower(op: &Op, ins: &[Option<ValueInfo>], outs: &[OutInfo]) -> OpResult<Box<dyn CpuKernel>> {
    def(op).lower_cpu(op, ins, outs)
}

/// Evaluate `op` on constant inputs (constant folding). Allocates.
pub fn eval(op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    match def(op).eval(op, ins)? {
        Some(out) => Ok(out),
        None => eval_with_kernel(op, ins),
    }
}

/// Run `op`'s CPU kernel once on owned buffers: the f32 path of [`eval`].
fn eval_with_kernel(op: &Op, ins: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let infos: Vec<Option<ValueInfo>> = ins.iter().map(|t| t.map(ValueInfo::of)).collect();
    let outs = infer(op, &infos)?;
    let kernel = lower(op, &infos, &outs)?;
    // Inputs are copied: the kernel API hands out mutable views and the
    // constants must stay untouched.
    let mut in_bufs: Vec<Vec<f32>> = Vec::new();
    for t in ins.iter().flatten() {
        match &t.data {
            TensorData::F32(v) => in_bufs.push(v.clone()),
            _ => in_bufs.push(Vec::new()),
        }
    }
    let mut out_bufs: Vec<Vec<f32>> = Vec::new();
    for o in &outs {
        if o.dtype.storage() != super::tensor::Storage::F32 {
            return Err(OpError::new(format!(
                "{} has no evaluator for {} outputs",
                op.name(),
                o.dtype
            )));
        }
        out_bufs.push(vec![0.0; o.shape.iter().product()]);
    }
    let mut k = 0;
    let in_raw: Vec<Buf> = ins
        .iter()
        .map(|t| match t {
            Some(_) => {
                let b = Buf::from_slice(&mut in_bufs[k]);
                k += 1;
                b
            }
            None => Buf::empty(),
        })
        .collect();
    let out_raw: Vec<Buf> = out_bufs.iter_mut().map(|v| Buf::from_slice(v)).collect();
    let mut scratch = vec![0.0f32; kernel.scratch_len()];
    let pool = ThreadPool::new(1);
    // SAFETY: every Buf points into a distinct live Vec above, each of the
    // declared length, and nothing else touches them during `run`.
    let io = unsafe { StepIo::new(&in_raw, &out_raw, false) };
    kernel.run(&io, &mut scratch, &pool);
    Ok(outs
        .into_iter()
        .zip(out_bufs)
        .map(|(o, v)| Tensor::from_f32(o.shape, v).with_dtype(o.dtype))
        .collect())
}

/// Input `i` or an error naming it; for ops with required inputs.
pub fn required<'a>(
    ins: &[Option<ValueInfo<'a>>],
    i: usize,
    what: &str,
) -> OpResult<ValueInfo<'a>> {
    ins.get(i)
        .copied()
        .flatten()
        .ok_or_else(|| OpError::new(format!("missing required input {i} ({what})")))
}

/// Constant value of input `i`, for shape-carrying inputs.
pub fn constant<'a>(ins: &[Option<ValueInfo<'a>>], i: usize, what: &str) -> OpResult<&'a Tensor> {
    let v = required(ins, i, what)?;
    v.value.ok_or_else(|| {
        OpError::new(format!(
            "input {i} ({what}) must be a constant computable at boot"
        ))
    })
}
