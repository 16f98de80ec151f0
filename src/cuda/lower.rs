//! The engine's optimised graph lowered to GPU steps: the same graph, the
//! same arena plan ([`crate::engine::plan_arena`]) as the CPU model, one
//! device arena, weights uploaded once, and for every node a list of
//! kernel launches (NVRTC kernels from `kernels/ops.cu`) or cuBLAS GEMMs
//! with every pointer and parameter resolved.
//!
//! Boot only: building allocates; [`GpuPlan::enqueue`] only issues launches
//! on a stream and is called inside CUDA graph capture (and by
//! `perceptd gpu-check`), never per frame.

use super::mem::DeviceBuf;
use super::{check, CudaError};
use crate::engine::ir::{Activation, BinaryOp, Graph, Op, TensorId, UnaryOp};
use crate::engine::onnx::f32_to_f16;
use crate::engine::ops;
use crate::engine::tensor::{broadcast_strides, numel, shape_string, Storage, Tensor};
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

fn act_code(a: Activation) -> (i32, f32, f32) {
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

fn unary_code(u: UnaryOp) -> Option<i32> {
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

fn binary_code(b: BinaryOp) -> Option<i32> {
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

fn kernel(params: Params, n: usize) -> Launch {
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

struct Ctx<'g> {
    g: &'g Graph,
    /// Host memory instead of device memory (the tests' GPU emulator).
    host: bool,
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

impl Ctx<'_> {
    fn is_rt(&self, t: TensorId) -> bool {
        self.g.tensors[t].value.is_none()
    }

    fn shape(&self, t: TensorId) -> &[usize] {
        self.g.tensors[t].shape.as_deref().unwrap_or(&[])
    }

    fn upload(&mut self, data: &[f32], what: &str) -> Result<u64, CudaError> {
        self.upload_any(data, what)
    }

    fn alloc(&self, bytes: usize, what: &str) -> Result<DeviceBuf, CudaError> {
        if self.host {
            Ok(DeviceBuf::host_zeroed(bytes))
        } else {
            DeviceBuf::zeroed(bytes, what)
        }
    }

    fn upload_any<T: Copy>(&mut self, data: &[T], what: &str) -> Result<u64, CudaError> {
        let b = if self.host {
            DeviceBuf::host_from_slice(data)
        } else {
            DeviceBuf::from_slice(data, what)?
        };
        let p = b.ptr;
        self.consts.push(b);
        Ok(p)
    }

    /// Device address of tensor `t`: its arena region, or its constant
    /// value uploaded once.
    fn ptr(&mut self, t: TensorId) -> Result<u64, CudaError> {
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

fn unsupported(op: &Op, why: &str) -> CudaError {
    CudaError::Model(format!("{}: {why}", op.name()))
}

/// Lower the optimised graph `g`. Err lists every node the GPU cannot run.
/// The CUDA context must be current. Boot only.
pub fn build(g: &Graph, precision: Precision) -> Result<GpuPlan, CudaError> {
    build_in(g, precision, false)
}

/// [`build`], with host memory standing in for device memory when `host`
/// (the tests' GPU emulator runs such plans on the CPU).
pub fn build_in(g: &Graph, precision: Precision, host: bool) -> Result<GpuPlan, CudaError> {
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
    let arena = if host {
        DeviceBuf::host_zeroed(plan.arena_len * 4)
    } else {
        DeviceBuf::zeroed(plan.arena_len * 4, "the activation arena")?
    };
    let mut cx = Ctx {
        g,
        host,
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
    let port = |cx: &mut Ctx, t: TensorId| -> Result<GpuPort, CudaError> {
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

fn lower_node(cx: &mut Ctx, ni: usize) -> Result<Vec<Launch>, CudaError> {
    let g = cx.g;
    let n = &g.nodes[ni];
    let op = &n.op;
    let infos = crate::engine::specialize::value_infos(g, &n.inputs);
    let oerr = |e: crate::engine::error::OpError| CudaError::Model(e.0);
    let out0 = n.outputs[0];
    let out_shape = cx.shape(out0).to_vec();
    let out_len = numel(&out_shape);
    let inp = |i: usize| n.inputs.get(i).copied().flatten();
    let mut v = Vec::new();
    match op {
        Op::Conv(a) => {
            let (Some(x), Some(w)) = (inp(0), inp(1)) else {
                return Err(unsupported(op, "needs X and W"));
            };
            if !cx.is_rt(x) || cx.is_rt(w) {
                return Err(unsupported(op, "needs a run-time X and constant W"));
            }
            let geo = ops::linear::conv2d_geometry(a, cx.shape(x), cx.shape(w)).map_err(oerr)?;
            let Some((batch, c_in, c_out, group, gm)) = geo else {
                return Err(unsupported(op, "only 2-D convolutions run on the GPU"));
            };
            let [h, wd, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow] = gm;
            let (act, alpha, beta) = act_code(a.activation);
            let xp = cx.ptr(x)?;
            let yp = cx.ptr(out0)?;
            let bias = match inp(2) {
                Some(b) => cx.ptr(b)?,
                None => 0,
            };
            let wv = g.tensors[w].value.clone();
            let wdata = wv.as_ref().and_then(|t| t.as_f32()).unwrap_or(&[]);
            if group != 1 {
                let wp = cx.ptr(w)?;
                v.push(kernel(
                    Params::DirectConv(DirectConvParams {
                        x: xp,
                        w: wp,
                        bias,
                        y: yp,
                        n: out_len as i64,
                        c: c_in as i32,
                        h: h as i32,
                        wd: wd as i32,
                        cout: c_out as i32,
                        group: group as i32,
                        kh: kh as i32,
                        kw: kw as i32,
                        oh: oh as i32,
                        ow: ow as i32,
                        sh: sh as i32,
                        sw: sw as i32,
                        ph: ph as i32,
                        pw: pw as i32,
                        dh: dh as i32,
                        dw: dw as i32,
                        act,
                        alpha,
                        beta,
                    }),
                    out_len,
                ));
                return Ok(v);
            }
            let k = c_in * kh * kw;
            let cols = oh * ow;
            let half = cx.precision == Precision::Fp16;
            let wp = if half {
                let bits: Vec<u16> = wdata.iter().map(|&x| f32_to_f16(x)).collect();
                cx.upload_any(&bits, "FP16 conv weights")?
            } else {
                cx.ptr(w)?
            };
            let pointwise = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
            let direct_b = pointwise && !half;
            for b in 0..batch {
                let xb = xp + (b * c_in * h * wd * 4) as u64;
                let yb = yp + (b * c_out * cols * 4) as u64;
                let mut bptr = xb;
                if !direct_b {
                    let idx = v.len();
                    if pointwise {
                        v.push(kernel(
                            Params::Half(HalfParams {
                                dst: 0,
                                src: xb,
                                n: (k * cols) as i64,
                            }),
                            k * cols,
                        ));
                    } else {
                        v.push(kernel(
                            Params::Im2col(Im2colParams {
                                x: xb,
                                col: 0,
                                n: (k * cols) as i64,
                                cin: c_in as i32,
                                h: h as i32,
                                w: wd as i32,
                                kh: kh as i32,
                                kw: kw as i32,
                                oh: oh as i32,
                                ow: ow as i32,
                                sh: sh as i32,
                                sw: sw as i32,
                                ph: ph as i32,
                                pw: pw as i32,
                                dh: dh as i32,
                                dw: dw as i32,
                                half: half as i32,
                            }),
                            k * cols,
                        ));
                    }
                    cx.scratch_users.push((usize::MAX, idx));
                    cx.scratch_elems = cx.scratch_elems.max(k * cols);
                    bptr = 0;
                }
                let gi = v.len();
                v.push(Launch::Gemm(Gemm {
                    m: c_out as i32,
                    n: cols as i32,
                    k: k as i32,
                    a: wp,
                    lda: k as i32,
                    trans_a: false,
                    b: bptr,
                    ldb: cols as i32,
                    trans_b: false,
                    c: yb,
                    ldc: cols as i32,
                    alpha: 1.0,
                    beta: 0.0,
                    batch: 1,
                    stride_a: 0,
                    stride_b: 0,
                    stride_c: 0,
                    half,
                }));
                if bptr == 0 {
                    cx.scratch_users.push((usize::MAX, gi));
                }
            }
            if bias != 0 || act != 0 {
                v.push(kernel(
                    Params::Channel(ChannelParams {
                        y: yp,
                        x: yp,
                        scale: 0,
                        shift: bias,
                        n: out_len as i64,
                        inner: cols as i64,
                        channels: c_out as i32,
                        act,
                        alpha,
                        beta,
                    }),
                    out_len,
                ));
            }
        }
        Op::MatMul | Op::Gemm { .. } => {
            let (Some(a), Some(b)) = (inp(0), inp(1)) else {
                return Err(unsupported(op, "needs A and B"));
            };
            let (sa, sb) = (cx.shape(a).to_vec(), cx.shape(b).to_vec());
            let (alpha, beta, ta, tb) = match op {
                Op::Gemm {
                    alpha,
                    beta,
                    trans_a,
                    trans_b,
                } => (*alpha, *beta, *trans_a, *trans_b),
                _ => (1.0, 0.0, false, false),
            };
            if sa.len() < 2 || sb.len() < 2 {
                return Err(unsupported(op, "1-D operands do not run on the GPU yet"));
            }
            let (ra, rb) = (sa.len(), sb.len());
            let (m, ka) = if ta {
                (sa[ra - 1], sa[ra - 2])
            } else {
                (sa[ra - 2], sa[ra - 1])
            };
            let (kb, nn) = if tb {
                (sb[rb - 1], sb[rb - 2])
            } else {
                (sb[rb - 2], sb[rb - 1])
            };
            if ka != kb {
                return Err(unsupported(op, "inner dimensions differ"));
            }
            let batch_a = numel(&sa[..ra - 2]);
            let batch_b = numel(&sb[..rb - 2]);
            // FP16 applies to the convolutions (the detector's GEMM time);
            // MatMul / Gemm stay FP32.
            let (ap, bp, cp) = (cx.ptr(a)?, cx.ptr(b)?, cx.ptr(out0)?);
            let gm = |batch: usize, m: usize, sa_: i64, sb_: i64| Gemm {
                m: m as i32,
                n: nn as i32,
                k: ka as i32,
                a: ap,
                lda: sa[ra - 1] as i32,
                trans_a: ta,
                b: bp,
                ldb: sb[rb - 1] as i32,
                trans_b: tb,
                c: cp,
                ldc: nn as i32,
                alpha,
                beta: 0.0,
                batch: batch as i32,
                stride_a: sa_,
                stride_b: sb_,
                stride_c: (m * nn) as i64,
                half: false,
            };
            if batch_b == 1 && !ta {
                // B shared by every batch: fold the batch into M.
                v.push(Launch::Gemm(gm(1, batch_a * m, 0, 0)));
            } else if batch_a == batch_b && sa[..ra - 2] == sb[..rb - 2] {
                v.push(Launch::Gemm(gm(
                    batch_a,
                    m,
                    (sa[ra - 2] * sa[ra - 1]) as i64,
                    (sb[rb - 2] * sb[rb - 1]) as i64,
                )));
            } else {
                return Err(unsupported(
                    op,
                    &format!(
                        "batch shapes {} x {} do not run on the GPU yet",
                        shape_string(&sa),
                        shape_string(&sb)
                    ),
                ));
            }
            if let (Op::Gemm { .. }, Some(c)) = (op, inp(2)) {
                if beta != 0.0 {
                    let sc = cx.shape(c).to_vec();
                    let cptr = if cx.is_rt(c) {
                        if beta != 1.0 {
                            return Err(unsupported(op, "a run-time C with beta != 1"));
                        }
                        cx.ptr(c)?
                    } else {
                        let cv = g.tensors[c].value.clone();
                        let data: Vec<f32> = cv
                            .as_ref()
                            .and_then(|t| t.as_f32())
                            .unwrap_or(&[])
                            .iter()
                            .map(|x| x * beta)
                            .collect();
                        cx.upload(&data, "Gemm C")?
                    };
                    v.push(binary(cp, cp, cptr, &out_shape, &out_shape, &sc, 0)?);
                }
            }
        }
        Op::MaxPool(a) | Op::AveragePool(a) => {
            let x = inp(0).ok_or_else(|| unsupported(op, "needs X"))?;
            let sx = cx.shape(x).to_vec();
            let geo = ops::pool::axis_geometry(op, a, &sx).map_err(oerr)?;
            if geo.len() != 2 {
                return Err(unsupported(op, "only 2-D pooling runs on the GPU"));
            }
            let (gy, gx) = (geo[0], geo[1]);
            let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
            v.push(kernel(
                Params::Pool(PoolParams {
                    x: xp,
                    y: yp,
                    n: out_len as i64,
                    h: gy.0 as i32,
                    w: gx.0 as i32,
                    oh: gy.1 as i32,
                    ow: gx.1 as i32,
                    kh: gy.2 as i32,
                    kw: gx.2 as i32,
                    sh: gy.3 as i32,
                    sw: gx.3 as i32,
                    dh: gy.4 as i32,
                    dw: gx.4 as i32,
                    ph: gy.5 as i32,
                    pw: gx.5 as i32,
                    pad_end_h: gy.6 as i32,
                    pad_end_w: gx.6 as i32,
                    is_max: matches!(op, Op::MaxPool(_)) as i32,
                    count_include_pad: a.count_include_pad as i32,
                }),
                out_len,
            ));
        }
        Op::GlobalAveragePool | Op::GlobalMaxPool => {
            let x = inp(0).ok_or_else(|| unsupported(op, "needs X"))?;
            let sx = cx.shape(x).to_vec();
            if sx.len() < 3 {
                return Err(unsupported(op, "needs N x C x spatial"));
            }
            let rows = sx[0] * sx[1];
            let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
            v.push(Launch::Kernel {
                params: Params::GlobalPool(GlobalPoolParams {
                    x: xp,
                    y: yp,
                    rows: rows as i64,
                    len: numel(&sx[2..]) as i64,
                    is_max: matches!(op, Op::GlobalMaxPool) as i32,
                }),
                grid: rows.clamp(1, 65_535) as u32,
                block: 256,
            });
        }
        Op::Resize(_) => {
            let x = inp(0).ok_or_else(|| unsupported(op, "needs X"))?;
            let sx = cx.shape(x).to_vec();
            let t = ops::resize::axis_tables(op, &infos).map_err(oerr)?;
            let r = sx.len();
            if r < 2 || t.iter().any(|a| a.5) {
                return Err(unsupported(op, "extrapolated or rank < 2 resizes"));
            }
            if t[..r - 2].iter().any(|a| a.0 != a.1) {
                return Err(unsupported(
                    op,
                    "only the last two axes may be resized on the GPU",
                ));
            }
            let (ty, tx) = (&t[r - 2], &t[r - 1]);
            let yidx: Vec<i32> = ty.3.iter().map(|&i| i as i32).collect();
            let xidx: Vec<i32> = tx.3.iter().map(|&i| i as i32).collect();
            let (yi, yw) = (
                cx.upload_any(&yidx, "resize rows")?,
                cx.upload(&ty.4, "resize row weights")?,
            );
            let (xi, xw) = (
                cx.upload_any(&xidx, "resize columns")?,
                cx.upload(&tx.4, "resize column weights")?,
            );
            let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
            v.push(kernel(
                Params::Resize(ResizeParams {
                    x: xp,
                    y: yp,
                    yidx: yi,
                    yw,
                    xidx: xi,
                    xw,
                    n: out_len as i64,
                    h: ty.0 as i32,
                    w: tx.0 as i32,
                    oh: ty.1 as i32,
                    ow: tx.1 as i32,
                    ytaps: ty.2 as i32,
                    xtaps: tx.2 as i32,
                }),
                out_len,
            ));
        }
        Op::Binary(b) => {
            let code = binary_code(*b)
                .ok_or_else(|| unsupported(op, "only arithmetic runs on the GPU"))?;
            let (Some(a), Some(bb)) = (inp(0), inp(1)) else {
                return Err(unsupported(op, "needs two inputs"));
            };
            let (sa, sb) = (cx.shape(a).to_vec(), cx.shape(bb).to_vec());
            let (ap, bp, op_) = (cx.ptr(a)?, cx.ptr(bb)?, cx.ptr(out0)?);
            v.push(binary(op_, ap, bp, &out_shape, &sa, &sb, code)?);
        }
        Op::Unary(_) | Op::Act(_) | Op::Clip { .. } => {
            let (code, alpha, beta) = match op {
                Op::Unary(u) => (
                    unary_code(*u).ok_or_else(|| unsupported(op, "Not is boolean"))?,
                    0.0,
                    0.0,
                ),
                Op::Act(a) => act_code(*a),
                _ => {
                    let (lo, hi) = ops::elementwise::clip_bounds(op, &infos).map_err(oerr)?;
                    (8, lo, hi)
                }
            };
            let x = inp(0).ok_or_else(|| unsupported(op, "needs an input"))?;
            let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
            v.push(kernel(
                Params::Unary(UnaryParams {
                    out: yp,
                    x: xp,
                    n: out_len as i64,
                    op: code,
                    alpha,
                    beta,
                }),
                out_len,
            ));
        }
        Op::BatchNormalization { epsilon } => {
            let x = inp(0).ok_or_else(|| unsupported(op, "needs X"))?;
            let get = |i: usize| -> Option<Vec<f32>> {
                let t = inp(i)?;
                g.tensors[t].value.as_ref()?.as_f32().map(|d| d.to_vec())
            };
            let (Some(sc), Some(bi), Some(mean), Some(var)) = (get(1), get(2), get(3), get(4))
            else {
                return Err(unsupported(op, "needs constant scale, bias, mean and var"));
            };
            let sx = cx.shape(x).to_vec();
            if sx.len() < 2 || sc.len() != sx[1] {
                return Err(unsupported(op, "channel count mismatch"));
            }
            let scale: Vec<f32> = sc
                .iter()
                .zip(&var)
                .map(|(s, v)| s / (v + epsilon).sqrt())
                .collect();
            let shift: Vec<f32> = bi
                .iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((b, m), s)| b - m * s)
                .collect();
            let (sp, hp) = (
                cx.upload(&scale, "BN scale")?,
                cx.upload(&shift, "BN shift")?,
            );
            let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
            v.push(kernel(
                Params::Channel(ChannelParams {
                    y: yp,
                    x: xp,
                    scale: sp,
                    shift: hp,
                    n: out_len as i64,
                    inner: numel(&sx[2..]) as i64,
                    channels: sx[1] as i32,
                    act: 0,
                    alpha: 0.0,
                    beta: 0.0,
                }),
                out_len,
            ));
        }
        Op::Softmax { .. } | Op::LogSoftmax { .. } => {
            let x = inp(0).ok_or_else(|| unsupported(op, "needs an input"))?;
            let (outer, len, inner) = ops::reduce::softmax_rows(op, cx.shape(x)).map_err(oerr)?;
            let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
            v.push(kernel(
                Params::Softmax(SoftmaxParams {
                    x: xp,
                    y: yp,
                    rows: (outer * inner) as i64,
                    len: len as i64,
                    inner: inner as i64,
                    log: matches!(op, Op::LogSoftmax { .. }) as i32,
                }),
                outer * inner,
            ));
        }
        Op::Cast { to } if to.is_float() => {
            let x = inp(0).ok_or_else(|| unsupported(op, "needs an input"))?;
            if !g.tensors[x].dtype.is_float() {
                return Err(unsupported(op, "casts from integers run at boot only"));
            }
            let (xp, yp) = (cx.ptr(x)?, cx.ptr(out0)?);
            v.push(copy(yp, xp, &[out_len], &[1], 0, &[1], 0)?);
        }
        _ if op.family() == crate::engine::ir::Family::Movement => {
            let plan = ops::movement::copy_plan(op, &infos)
                .map_err(oerr)?
                .ok_or_else(|| unsupported(op, "not supported by the CUDA backend yet"))?;
            for c in plan {
                let src = n.inputs.get(c.input).copied().flatten();
                let src = src.ok_or_else(|| unsupported(op, "missing input"))?;
                let sp = cx.ptr(src)?;
                let dp = cx.ptr(n.outputs[c.output])?;
                v.push(copy(
                    dp,
                    sp,
                    &c.dims,
                    &c.src_strides,
                    c.src_base,
                    &c.dst_strides,
                    c.dst_base,
                )?);
            }
        }
        _ => return Err(unsupported(op, "not supported by the CUDA backend yet")),
    }
    Ok(v)
}

fn copy(
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

fn binary(
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
    fn half_bits_round_like_ieee() {
        assert_eq!(f32_to_f16(0.0), 0);
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(-2.0), 0xc000);
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        assert_eq!(f32_to_f16(f32::NAN) & 0x7c00, 0x7c00);
        // Smallest subnormal half, 2^-24.
        assert_eq!(f32_to_f16(5.960_464_5e-8), 1);
        // 1 + 2^-11 is a tie between 1 and 1 + 2^-10: even wins.
        assert_eq!(f32_to_f16(1.0 + 1.0 / 2048.0), 0x3c00);
        assert_eq!(f32_to_f16(0.1), 0x2e66);
    }

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
