//! The engine's optimised graph lowered to GPU steps: the same graph, the
//! same arena plan ([`crate::engine::plan_arena`]) as the CPU model, one
//! device arena, weights uploaded once, and for every node a list of
//! kernel launches (NVRTC kernels from `kernels/ops.cu`) or cuBLAS GEMMs
//! with every pointer and parameter resolved.
//!
//! Boot only: building allocates; [`GpuPlan::enqueue`] only issues launches
//! on a stream and is called inside CUDA graph capture (and by
//! `perceptd gpu-check`), never per frame.

use super::driver::Device;
use super::mem::DeviceBuf;
use super::{check, CudaError};
use crate::engine::error::OpError;
use crate::engine::ir::{Activation, BinaryOp, Graph, Node, Op, TensorId, UnaryOp};
use crate::engine::ops::{self, ValueInfo};
use crate::engine::tensor::{broadcast_strides, numel, Storage, Tensor};
use crate::engine::{is_view, plan_arena};
use cudarc::cublas::sys as cb;
use cudarc::driver::sys;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

/// Dims the generic copy and broadcast kernels handle (`MAX_DIMS` in ops.cu).
pub const MAX_DIMS: usize = 8;
const BLOCK: u32 = 256;

// Parameter structs: field for field the structs of kernels/ops.cu.

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CopyParams {
    pub dst: u64,
    pub src: u64,
    pub n: i64,
    pub src_base: i64,
    pub dst_base: i64,
    pub dims: [i64; MAX_DIMS],
    pub src_st: [i64; MAX_DIMS],
    pub dst_st: [i64; MAX_DIMS],
    pub ndim: i32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FillParams {
    pub dst: u64,
    pub n: i64,
    pub value: f32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BinaryParams {
    pub out: u64,
    pub a: u64,
    pub b: u64,
    pub n: i64,
    pub dims: [i64; MAX_DIMS],
    pub a_st: [i64; MAX_DIMS],
    pub b_st: [i64; MAX_DIMS],
    pub ndim: i32,
    pub op: i32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct UnaryParams {
    pub out: u64,
    pub x: u64,
    pub n: i64,
    pub op: i32,
    pub alpha: f32,
    pub beta: f32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ChannelParams {
    pub y: u64,
    pub x: u64,
    pub scale: u64,
    pub shift: u64,
    pub n: i64,
    pub inner: i64,
    pub channels: i32,
    pub act: i32,
    pub alpha: f32,
    pub beta: f32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HalfParams {
    pub dst: u64,
    pub src: u64,
    pub n: i64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Im2colParams {
    pub x: u64,
    pub col: u64,
    pub n: i64,
    pub cin: i32,
    pub h: i32,
    pub w: i32,
    pub kh: i32,
    pub kw: i32,
    pub oh: i32,
    pub ow: i32,
    pub sh: i32,
    pub sw: i32,
    pub ph: i32,
    pub pw: i32,
    pub dh: i32,
    pub dw: i32,
    pub half: i32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DirectConvParams {
    pub x: u64,
    pub w: u64,
    pub bias: u64,
    pub y: u64,
    pub n: i64,
    pub c: i32,
    pub h: i32,
    pub wd: i32,
    pub cout: i32,
    pub group: i32,
    pub kh: i32,
    pub kw: i32,
    pub oh: i32,
    pub ow: i32,
    pub sh: i32,
    pub sw: i32,
    pub ph: i32,
    pub pw: i32,
    pub dh: i32,
    pub dw: i32,
    pub act: i32,
    pub alpha: f32,
    pub beta: f32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PoolParams {
    pub x: u64,
    pub y: u64,
    pub n: i64,
    pub h: i32,
    pub w: i32,
    pub oh: i32,
    pub ow: i32,
    pub kh: i32,
    pub kw: i32,
    pub sh: i32,
    pub sw: i32,
    pub ph: i32,
    pub pw: i32,
    pub pad_end_h: i32,
    pub pad_end_w: i32,
    pub dh: i32,
    pub dw: i32,
    pub is_max: i32,
    pub count_include_pad: i32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GlobalPoolParams {
    pub x: u64,
    pub y: u64,
    pub rows: i64,
    pub len: i64,
    pub is_max: i32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ResizeParams {
    pub x: u64,
    pub y: u64,
    pub yidx: u64,
    pub yw: u64,
    pub xidx: u64,
    pub xw: u64,
    pub n: i64,
    pub h: i32,
    pub w: i32,
    pub oh: i32,
    pub ow: i32,
    pub ytaps: i32,
    pub xtaps: i32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SoftmaxParams {
    pub x: u64,
    pub y: u64,
    pub rows: i64,
    pub len: i64,
    pub inner: i64,
    pub log: i32,
}

/// One kernel's parameters (its single by-value argument).
#[derive(Debug, Clone, Copy)]
pub enum Params {
    Copy(CopyParams),
    Fill(FillParams),
    Binary(BinaryParams),
    Unary(UnaryParams),
    Channel(ChannelParams),
    Half(HalfParams),
    Im2col(Im2colParams),
    DirectConv(DirectConvParams),
    Pool(PoolParams),
    GlobalPool(GlobalPoolParams),
    Resize(ResizeParams),
    Softmax(SoftmaxParams),
}

impl Params {
    /// The kernel's name in ops.cu.
    pub fn kernel(&self) -> &'static str {
        match self {
            Params::Copy(_) => "copy_nd",
            Params::Fill(_) => "fill",
            Params::Binary(_) => "binary_nd",
            Params::Unary(_) => "unary",
            Params::Channel(_) => "channel_affine",
            Params::Half(_) => "to_half",
            Params::Im2col(_) => "im2col",
            Params::DirectConv(_) => "conv_direct",
            Params::Pool(_) => "pool2d",
            Params::GlobalPool(_) => "global_pool",
            Params::Resize(_) => "resize2d",
            Params::Softmax(_) => "softmax",
        }
    }

    /// Address of the struct, as `cuLaunchKernel`'s argument array wants.
    fn arg(&mut self) -> *mut c_void {
        match self {
            Params::Copy(p) => p as *mut _ as *mut c_void,
            Params::Fill(p) => p as *mut _ as *mut c_void,
            Params::Binary(p) => p as *mut _ as *mut c_void,
            Params::Unary(p) => p as *mut _ as *mut c_void,
            Params::Channel(p) => p as *mut _ as *mut c_void,
            Params::Half(p) => p as *mut _ as *mut c_void,
            Params::Im2col(p) => p as *mut _ as *mut c_void,
            Params::DirectConv(p) => p as *mut _ as *mut c_void,
            Params::Pool(p) => p as *mut _ as *mut c_void,
            Params::GlobalPool(p) => p as *mut _ as *mut c_void,
            Params::Resize(p) => p as *mut _ as *mut c_void,
            Params::Softmax(p) => p as *mut _ as *mut c_void,
        }
    }
}

/// A row-major GEMM `C[m, n] = alpha * op(A) op(B) + beta * C`, `batch`
/// times at the given element strides; `half`: A and B are f16 (tensor
/// cores, f32 accumulate and output).
#[derive(Debug, Clone, Copy)]
pub struct Gemm {
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub a: u64,
    pub lda: i32,
    pub trans_a: bool,
    pub b: u64,
    pub ldb: i32,
    pub trans_b: bool,
    pub c: u64,
    pub ldc: i32,
    pub alpha: f32,
    pub beta: f32,
    pub batch: i32,
    pub stride_a: i64,
    pub stride_b: i64,
    pub stride_c: i64,
    pub half: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum Launch {
    Kernel {
        params: Params,
        grid: u32,
        block: u32,
    },
    Gemm(Gemm),
}

/// The launches of one graph node.
#[derive(Debug, Clone)]
pub struct NodeSteps {
    pub node: usize,
    pub op: String,
    pub launches: Vec<Launch>,
}

/// Precision of the GEMMs (convolutions, MatMul, Gemm). Config spellings:
/// `config::choice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    /// FP16 inputs on tensor cores, FP32 accumulate and output.
    Fp16,
}

/// A graph input or output: where it lives in the arena.
#[derive(Debug, Clone)]
pub struct GpuPort {
    pub name: String,
    pub shape: Vec<usize>,
    /// Device address (arena or a constant).
    pub ptr: u64,
    pub len: usize,
    /// Outputs folded at boot: the value itself.
    pub constant: Option<Arc<Tensor>>,
}

pub struct GpuPlan {
    pub nodes: Vec<NodeSteps>,
    pub arena: DeviceBuf,
    pub inputs: Vec<GpuPort>,
    pub outputs: Vec<GpuPort>,
    /// Weights and tables, kept alive for the steps' pointers.
    pub _consts: Vec<DeviceBuf>,
    pub _scratch: Option<DeviceBuf>,
    pub arena_bytes: usize,
    pub precision: Precision,
}

pub(crate) fn act_code(a: Activation) -> (i32, f32, f32) {
    match a {
        Activation::None => (0, 0.0, 0.0),
        Activation::Relu => (1, 0.0, 0.0),
        Activation::Silu => (2, 0.0, 0.0),
        Activation::Sigmoid => (3, 0.0, 0.0),
        Activation::LeakyRelu(a) => (4, a, 0.0),
        Activation::HardSigmoid(a, b) => (5, a, b),
        Activation::HardSwish => (6, 0.0, 0.0),
        Activation::Tanh => (7, 0.0, 0.0),
        Activation::Clip(lo, hi) => (8, lo, hi),
        Activation::Elu(a) => (9, a, 0.0),
    }
}

pub(crate) fn unary_code(u: UnaryOp) -> Option<i32> {
    Some(match u {
        UnaryOp::Sqrt => 20,
        UnaryOp::Neg => 21,
        UnaryOp::Abs => 22,
        UnaryOp::Exp => 23,
        UnaryOp::Log => 24,
        UnaryOp::Floor => 25,
        UnaryOp::Ceil => 26,
        UnaryOp::Round => 27,
        UnaryOp::Reciprocal => 28,
        UnaryOp::Erf => 29,
        UnaryOp::Sign => 30,
        UnaryOp::Sin => 31,
        UnaryOp::Cos => 32,
        UnaryOp::Not => return None,
    })
}

pub(crate) fn binary_code(b: BinaryOp) -> Option<i32> {
    Some(match b {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::Pow => 4,
        BinaryOp::Max => 5,
        BinaryOp::Min => 6,
        _ => return None,
    })
}

/// Blocks for `n` elements (grid-stride kernels: any count is correct).
fn grid(n: usize) -> u32 {
    (n.div_ceil(BLOCK as usize)).clamp(1, 65_535) as u32
}

pub(crate) fn kernel(params: Params, n: usize) -> Launch {
    Launch::Kernel {
        params,
        grid: grid(n),
        block: BLOCK,
    }
}

fn dims8(v: &[usize]) -> [i64; MAX_DIMS] {
    let mut a = [0i64; MAX_DIMS];
    for (d, &x) in a.iter_mut().zip(v) {
        *d = x as i64;
    }
    a
}

fn strides8(v: &[isize]) -> [i64; MAX_DIMS] {
    let mut a = [0i64; MAX_DIMS];
    for (d, &x) in a.iter_mut().zip(v) {
        *d = x as i64;
    }
    a
}

/// What an op's GPU lowering may use: device addresses of tensors,
/// uploads of tables and weights, the shared scratch, the precision.
pub struct GpuCtx<'g> {
    g: &'g Graph,
    /// Where buffers are allocated (a GPU, or the tests' emulator).
    dev: &'g Arc<Device>,
    arena: u64,
    offset: Vec<usize>,
    root_of: Vec<TensorId>,
    consts: Vec<DeviceBuf>,
    uploaded: HashMap<usize, u64>,
    scratch_elems: usize,
    /// Launches that use the scratch buffer, patched once it exists.
    scratch_users: Vec<(usize, usize)>,
    precision: Precision,
}

impl<'g> GpuCtx<'g> {
    pub fn is_rt(&self, t: TensorId) -> bool {
        self.g.tensors[t].value.is_none()
    }

    pub fn shape(&self, t: TensorId) -> &[usize] {
        self.g.tensors[t].shape.as_deref().unwrap_or(&[])
    }

    pub fn upload(&mut self, data: &[f32], what: &str) -> Result<u64, CudaError> {
        self.upload_any(data, what)
    }

    /// The graph being lowered.
    pub fn graph(&self) -> &'g Graph {
        self.g
    }

    /// Precision of the GEMMs.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Launch `launch` of the node being lowered reads or writes the
    /// shared scratch (patched in once every node is lowered), which must
    /// hold `elems` elements.
    pub fn use_scratch(&mut self, launch: usize, elems: usize) {
        self.scratch_users.push((usize::MAX, launch));
        self.scratch_elems = self.scratch_elems.max(elems);
    }

    fn alloc(&self, bytes: usize, what: &str) -> Result<DeviceBuf, CudaError> {
        DeviceBuf::zeroed(self.dev, bytes, what)
    }

    pub fn upload_any<T: Copy>(&mut self, data: &[T], what: &str) -> Result<u64, CudaError> {
        let b = DeviceBuf::from_slice(self.dev, data, what)?;
        let p = b.ptr;
        self.consts.push(b);
        Ok(p)
    }

    /// Device address of tensor `t`: its arena region, or its constant
    /// value uploaded once.
    pub fn ptr(&mut self, t: TensorId) -> Result<u64, CudaError> {
        if self.is_rt(t) {
            return Ok(self.arena + 4 * self.offset[self.root_of[t]] as u64);
        }
        let v = self.g.tensors[t].value.clone();
        let Some(v) = v else { return Ok(0) };
        let key = Arc::as_ptr(&v) as usize;
        if let Some(&p) = self.uploaded.get(&key) {
            return Ok(p);
        }
        let Some(data) = v.as_f32() else {
            return Err(CudaError::Model(format!(
                "constant '{}' is {} where the GPU needs float data",
                self.g.tensors[t].name, v.dtype
            )));
        };
        let p = self.upload(data, &self.g.tensors[t].name.clone())?;
        self.uploaded.insert(key, p);
        Ok(p)
    }
}

/// The GPU lowering declines this node: the model fails at boot on the
/// CUDA backend with `why` (the CPU backend still runs it).
pub fn refuse(op: &Op, why: &str) -> CudaError {
    CudaError::Model(format!("{}: {why}", op.name()))
}

/// Lower the optimised graph `g`, allocating in `dev`. Err lists every
/// node the GPU cannot run. Boot only.
pub fn build(g: &Graph, precision: Precision, dev: &Arc<Device>) -> Result<GpuPlan, CudaError> {
    let views: Vec<bool> = g
        .nodes
        .iter()
        .map(|n| {
            is_view(&n.op)
                && n.outputs.len() == 1
                && n.inputs
                    .first()
                    .copied()
                    .flatten()
                    .is_some_and(|t| g.tensors[t].value.is_none())
        })
        .collect();
    // No in-place reuse on the GPU: simpler, and memory is not the limit.
    let plan = plan_arena(g, &views, &vec![None; g.nodes.len()]);
    let arena = DeviceBuf::zeroed(dev, plan.arena_len * 4, "the activation arena")?;
    let mut cx = GpuCtx {
        g,
        dev,
        arena: arena.ptr,
        offset: plan.offset_of.clone(),
        root_of: plan.root.clone(),
        consts: Vec::new(),
        uploaded: HashMap::new(),
        scratch_elems: 0,
        scratch_users: Vec::new(),
        precision,
    };
    let mut nodes = Vec::new();
    let mut errors = Vec::new();
    for (ni, n) in g.nodes.iter().enumerate() {
        if views[ni] {
            continue;
        }
        for &o in &n.outputs {
            if g.tensors[o].dtype.storage() != Storage::F32 {
                errors.push(format!(
                    "node '{}' ({}): output '{}' is {} at run time",
                    n.name,
                    n.op.name(),
                    g.tensors[o].name,
                    g.tensors[o].dtype
                ));
            }
        }
        match lower_node(&mut cx, ni) {
            Ok(launches) => {
                let at = nodes.len();
                for u in cx.scratch_users.iter_mut().filter(|u| u.0 == usize::MAX) {
                    u.0 = at;
                }
                nodes.push(NodeSteps {
                    node: ni,
                    op: n.op.name(),
                    launches,
                })
            }
            Err(e) => {
                cx.scratch_users.retain(|u| u.0 != usize::MAX);
                errors.push(format!("node '{}' ({}): {e}", n.name, n.op.name()))
            }
        }
    }
    if !errors.is_empty() {
        return Err(CudaError::Model(format!(
            "the CUDA backend cannot run {} node(s) of this model: {}",
            errors.len(),
            errors.join("; ")
        )));
    }
    // The shared scratch (im2col columns), sized for the largest user.
    let scratch = if cx.scratch_elems > 0 {
        let bytes = cx.scratch_elems * if precision == Precision::Fp16 { 2 } else { 4 };
        let s = cx.alloc(bytes, "im2col scratch")?;
        for &(ni, li) in &cx.scratch_users {
            patch_scratch(&mut nodes[ni].launches[li], s.ptr);
        }
        Some(s)
    } else {
        None
    };
    let port = |cx: &mut GpuCtx, t: TensorId| -> Result<GpuPort, CudaError> {
        let len = numel(cx.shape(t));
        Ok(GpuPort {
            name: g.tensors[t].name.clone(),
            shape: cx.shape(t).to_vec(),
            ptr: if cx.is_rt(t) { cx.ptr(t)? } else { 0 },
            len,
            constant: g.tensors[t].value.clone(),
        })
    };
    let inputs = g
        .inputs
        .iter()
        .map(|&t| port(&mut cx, t))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = g
        .outputs
        .iter()
        .map(|&t| port(&mut cx, t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(GpuPlan {
        nodes,
        arena_bytes: arena.bytes,
        arena,
        inputs,
        outputs,
        _consts: cx.consts,
        _scratch: scratch,
        precision,
    })
}

/// Scratch users are built with address 0 (the buffer's size is known only
/// after every node); the real address goes in here.
fn patch_scratch(l: &mut Launch, p: u64) {
    match l {
        Launch::Kernel {
            params: Params::Im2col(q),
            ..
        } => q.col = p,
        Launch::Kernel {
            params: Params::Half(q),
            ..
        } => q.dst = p,
        Launch::Gemm(gm) => gm.b = p,
        _ => {}
    }
}

fn lower_node(cx: &mut GpuCtx, ni: usize) -> Result<Vec<Launch>, CudaError> {
    let n = GpuNode::new(cx.g, ni);
    ops::def(&n.node.op).lower_cuda(&n, cx)
}

/// One node as its op's [`crate::engine::ops::OpDef::lower_cuda`] sees it:
/// the node, what is known of its inputs at boot, and its first output.
pub struct GpuNode<'g> {
    pub node: &'g Node,
    pub infos: Vec<Option<ValueInfo<'g>>>,
    /// Shape and element count of output 0.
    pub out_shape: Vec<usize>,
    pub out_len: usize,
}

impl<'g> GpuNode<'g> {
    fn new(g: &'g Graph, ni: usize) -> GpuNode<'g> {
        let node = &g.nodes[ni];
        let infos = crate::engine::specialize::value_infos(g, &node.inputs);
        let out_shape = g.tensors[node.outputs[0]].shape.clone().unwrap_or_default();
        let out_len = numel(&out_shape);
        GpuNode {
            node,
            infos,
            out_shape,
            out_len,
        }
    }

    pub fn op(&self) -> &'g Op {
        &self.node.op
    }

    /// Input `i`, `None` when absent.
    pub fn input(&self, i: usize) -> Option<TensorId> {
        self.node.inputs.get(i).copied().flatten()
    }

    /// Input `i` or a refusal naming `what`.
    pub fn required(&self, i: usize, what: &str) -> Result<TensorId, CudaError> {
        self.input(i)
            .ok_or_else(|| refuse(self.op(), &format!("needs {what}")))
    }

    pub fn out0(&self) -> TensorId {
        self.node.outputs[0]
    }
}

/// An op error met while lowering, as the CUDA backend's error.
pub fn op_err(e: OpError) -> CudaError {
    CudaError::Model(e.0)
}

pub(crate) fn copy(
    dst: u64,
    src: u64,
    dims: &[usize],
    src_st: &[isize],
    src_base: isize,
    dst_st: &[isize],
    dst_base: isize,
) -> Result<Launch, CudaError> {
    if dims.len() > MAX_DIMS {
        return Err(CudaError::Model(format!(
            "a copy of rank {} (the GPU handles up to {MAX_DIMS})",
            dims.len()
        )));
    }
    let n = numel(dims);
    Ok(kernel(
        Params::Copy(CopyParams {
            dst,
            src,
            n: n as i64,
            src_base: src_base as i64,
            dst_base: dst_base as i64,
            dims: dims8(dims),
            src_st: strides8(src_st),
            dst_st: strides8(dst_st),
            ndim: dims.len() as i32,
        }),
        n,
    ))
}

pub(crate) fn binary(
    out: u64,
    a: u64,
    b: u64,
    shape: &[usize],
    sa: &[usize],
    sb: &[usize],
    code: i32,
) -> Result<Launch, CudaError> {
    if shape.len() > MAX_DIMS {
        return Err(CudaError::Model(format!(
            "a broadcast of rank {} (the GPU handles up to {MAX_DIMS})",
            shape.len()
        )));
    }
    let st = |s: &[usize]| -> Vec<isize> {
        broadcast_strides(s, shape)
            .into_iter()
            .map(|x| x as isize)
            .collect()
    };
    let n = numel(shape);
    Ok(kernel(
        Params::Binary(BinaryParams {
            out,
            a,
            b,
            n: n as i64,
            dims: dims8(shape),
            a_st: strides8(&st(sa)),
            b_st: strides8(&st(sb)),
            ndim: shape.len() as i32,
            op: code,
        }),
        n,
    ))
}

/// Issue one launch on `stream`. Used inside graph capture at boot and by
/// the GPU check; never per frame.
///
/// # Safety
/// The context must be current, `func` must be the kernel `l` names, and
/// every address in `l` valid for the access it describes.
pub unsafe fn enqueue(
    l: &Launch,
    func: sys::CUfunction,
    stream: sys::CUstream,
    cublas: cb::cublasHandle_t,
) -> Result<(), CudaError> {
    match l {
        Launch::Kernel {
            params,
            grid,
            block,
        } => {
            let mut p = *params;
            let mut args = [p.arg()];
            check(
                sys::cuLaunchKernel(
                    func,
                    *grid,
                    1,
                    1,
                    *block,
                    1,
                    1,
                    0,
                    stream,
                    args.as_mut_ptr(),
                    std::ptr::null_mut(),
                ),
                params.kernel(),
            )
        }
        Launch::Gemm(gm) => gemm(gm, cublas),
    }
}

/// A row-major GEMM through column-major cuBLAS: `C^T = B^T A^T`, so
/// cuBLAS sees (n, m, k) with B first.
///
/// # Safety
/// As [`enqueue`]; the handle's stream and workspace are set.
unsafe fn gemm(gm: &Gemm, h: cb::cublasHandle_t) -> Result<(), CudaError> {
    use cb::cublasOperation_t as T;
    let opb = if gm.trans_b {
        T::CUBLAS_OP_T
    } else {
        T::CUBLAS_OP_N
    };
    let opa = if gm.trans_a {
        T::CUBLAS_OP_T
    } else {
        T::CUBLAS_OP_N
    };
    let (alpha, beta) = (gm.alpha, gm.beta);
    let st = if gm.half {
        cb::cublasGemmStridedBatchedEx(
            h,
            opb,
            opa,
            gm.n,
            gm.m,
            gm.k,
            &alpha as *const f32 as *const c_void,
            gm.b as *const c_void,
            cb::cudaDataType::CUDA_R_16F,
            gm.ldb,
            gm.stride_b,
            gm.a as *const c_void,
            cb::cudaDataType::CUDA_R_16F,
            gm.lda,
            gm.stride_a,
            &beta as *const f32 as *const c_void,
            gm.c as *mut c_void,
            cb::cudaDataType::CUDA_R_32F,
            gm.ldc,
            gm.stride_c,
            gm.batch,
            cb::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            cb::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT_TENSOR_OP,
        )
    } else {
        cb::cublasSgemmStridedBatched(
            h,
            opb,
            opa,
            gm.n,
            gm.m,
            gm.k,
            &alpha,
            gm.b as *const f32,
            gm.ldb,
            gm.stride_b,
            gm.a as *const f32,
            gm.lda,
            gm.stride_a,
            &beta,
            gm.c as *mut f32,
            gm.ldc,
            gm.stride_c,
            gm.batch,
        )
    };
    if st != cb::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        return Err(CudaError::Cublas {
            what: format!("GEMM {}x{}x{} (batch {})", gm.m, gm.n, gm.k, gm.batch),
            status: st as u32,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_structs_have_the_cuda_layout() {
        // What the CUDA compiler gives the same structs (8-byte pointers
        // and i64s first, 4-byte fields after, padded to 8);
        // tests/nvrtc_kernels.rs checks these against NVRTC itself.
        assert_eq!(std::mem::size_of::<CopyParams>(), 5 * 8 + 3 * 64 + 8);
        assert_eq!(std::mem::size_of::<FillParams>(), 24);
        assert_eq!(std::mem::size_of::<UnaryParams>(), 40);
        assert_eq!(std::mem::size_of::<ChannelParams>(), 64);
    }
}
