//! The engine's graph IR: an index-based graph (nodes in a `Vec`, tensors by
//! [`TensorId`]), with every ONNX op parsed into a typed [`Op`] whose
//! attributes are already validated and normalised across opsets.
//!
//! Built once at boot by the importer, rewritten by the passes, consumed by
//! the planner. Allocates freely; never touched by the frame path.

use super::tensor::{DType, Tensor};
use std::sync::Arc;

pub type TensorId = usize;
pub type NodeId = usize;

/// A dimension as declared by the model: fixed, or symbolic (`batch`,
/// `height`, ...) until bound at boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Symbol(String),
}

#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    /// Declared shape (graph inputs/outputs, value_info), `None` if unknown.
    pub declared: Option<Vec<Dim>>,
    /// Concrete shape, known after specialisation.
    pub shape: Option<Vec<usize>>,
    /// Constant value (initializer, `Constant` node or folded), if any.
    pub value: Option<Arc<Tensor>>,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub op: Op,
    /// `None` for an optional input left empty (`""` in ONNX).
    pub inputs: Vec<Option<TensorId>>,
    pub outputs: Vec<TensorId>,
}

#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub tensors: Vec<TensorInfo>,
    pub nodes: Vec<Node>,
    /// Runtime inputs in graph-input order (initializers excluded).
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
    pub opset: i64,
}

impl Graph {
    pub fn add_tensor(&mut self, info: TensorInfo) -> TensorId {
        self.tensors.push(info);
        self.tensors.len() - 1
    }

    pub fn tensor(&self, id: TensorId) -> &TensorInfo {
        &self.tensors[id]
    }

    pub fn is_const(&self, id: TensorId) -> bool {
        self.tensors[id].value.is_some()
    }

    /// Number of nodes that read each tensor (graph outputs count once more).
    pub fn consumer_counts(&self) -> Vec<usize> {
        let mut c = vec![0usize; self.tensors.len()];
        for n in &self.nodes {
            for &i in n.inputs.iter().flatten() {
                c[i] += 1;
            }
        }
        for &o in &self.outputs {
            c[o] += 1;
        }
        c
    }

    /// Producer node of each tensor.
    pub fn producers(&self) -> Vec<Option<NodeId>> {
        let mut p = vec![None; self.tensors.len()];
        for (ni, n) in self.nodes.iter().enumerate() {
            for &o in &n.outputs {
                p[o] = Some(ni);
            }
        }
        p
    }
}

/// Element-wise activation, standalone or fused into a producer's epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    /// x * sigmoid(x)
    Silu,
    Sigmoid,
    LeakyRelu(f32),
    /// max(0, min(1, alpha*x + beta))
    HardSigmoid(f32, f32),
    HardSwish,
    Tanh,
    Clip(f32, f32),
    Elu(f32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    Mod { fmod: bool },
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    And,
    Or,
    Xor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Sqrt,
    Neg,
    Abs,
    Exp,
    Log,
    Floor,
    Ceil,
    Round,
    Reciprocal,
    Erf,
    Not,
    Sign,
    Sin,
    Cos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoPad {
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

/// Conv attributes. Empty vectors mean "the ONNX default for this rank".
#[derive(Debug, Clone, PartialEq)]
pub struct ConvAttrs {
    pub auto_pad: AutoPad,
    pub dilations: Vec<usize>,
    pub group: usize,
    pub kernel_shape: Vec<usize>,
    /// `[x1_begin, x2_begin, ..., x1_end, x2_end, ...]` as in ONNX.
    pub pads: Vec<usize>,
    pub strides: Vec<usize>,
    /// Fused epilogue activation (set by the fusion pass).
    pub activation: Activation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolAttrs {
    pub auto_pad: AutoPad,
    pub ceil_mode: bool,
    pub count_include_pad: bool,
    pub dilations: Vec<usize>,
    pub kernel_shape: Vec<usize>,
    pub pads: Vec<usize>,
    pub strides: Vec<usize>,
    /// MaxPool's `storage_order` (only the values output is supported).
    pub storage_order: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordTransform {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfHalfPixelForNn,
    TfCropAndResize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAspect {
    Stretch,
    NotLarger,
    NotSmaller,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResizeAttrs {
    pub mode: ResizeMode,
    pub coord: CoordTransform,
    pub nearest: NearestMode,
    pub cubic_coeff_a: f32,
    pub exclude_outside: bool,
    pub extrapolation_value: f32,
    pub antialias: bool,
    pub axes: Option<Vec<i64>>,
    pub keep_aspect: KeepAspect,
    /// Opset 10 `Resize` / `Upsample`: input 1 is `scales` (no roi).
    pub scales_at_input1: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
}

/// Every op the engine knows, with its attributes normalised across opsets.
/// Inputs that became attributes-as-inputs in later opsets (Split's `split`,
/// Squeeze's `axes`, Slice's starts/ends, Clip's min/max, ...) are read from
/// the attribute when present here, otherwise from the (constant) input.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Conv(ConvAttrs),
    MaxPool(PoolAttrs),
    AveragePool(PoolAttrs),
    GlobalAveragePool,
    GlobalMaxPool,
    Resize(ResizeAttrs),
    Concat {
        axis: i64,
    },
    Split {
        axis: i64,
        split: Option<Vec<i64>>,
        num_outputs: Option<usize>,
    },
    /// Opset < 10 carries starts/ends/axes as attributes.
    Slice {
        starts: Option<Vec<i64>>,
        ends: Option<Vec<i64>>,
        axes: Option<Vec<i64>>,
    },
    Reshape {
        allowzero: bool,
    },
    Transpose {
        perm: Option<Vec<usize>>,
    },
    Flatten {
        axis: i64,
    },
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    Binary(BinaryOp),
    Unary(UnaryOp),
    Act(Activation),
    /// `legacy`: opset < 13 semantics (coerce to 2-D at `axis`).
    Softmax {
        axis: i64,
        legacy: bool,
    },
    LogSoftmax {
        axis: i64,
        legacy: bool,
    },
    MatMul,
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    BatchNormalization {
        epsilon: f32,
    },
    Identity,
    Dropout,
    Constant(Arc<Tensor>),
    Shape {
        start: i64,
        end: Option<i64>,
    },
    Size,
    Gather {
        axis: i64,
    },
    Range,
    ConstantOfShape(Arc<Tensor>),
    Expand,
    Cast {
        to: DType,
    },
    Where,
    Reduce {
        op: ReduceOp,
        axes: Option<Vec<i64>>,
        keepdims: bool,
        noop_with_empty_axes: bool,
    },
    /// Clip with min/max from attributes (opset < 11) or constant inputs.
    Clip {
        min: Option<f32>,
        max: Option<f32>,
    },
    Pad {
        mode: PadMode,
        pads: Option<Vec<i64>>,
        value: f32,
    },
    /// The `k` largest (or smallest) elements along `axis` and their
    /// indices; `k` is input 1 (a boot-time constant).
    TopK {
        axis: i64,
        largest: bool,
        sorted: bool,
    },
    GatherElements {
        axis: i64,
    },
    LayerNormalization {
        axis: i64,
        epsilon: f32,
    },
    /// Samples `X` at the normalised coordinates of `grid` (RT-DETR's
    /// deformable attention).
    GridSample {
        mode: GridMode,
        padding: GridPadding,
        align_corners: bool,
    },
}

/// GridSample interpolation (`linear`/`bilinear`, `nearest`,
/// `cubic`/`bicubic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridMode {
    Linear,
    Nearest,
    Cubic,
}

/// GridSample's value for samples outside the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridPadding {
    Zeros,
    Border,
    Reflection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

impl Op {
    /// Short name for plans, logs and op counts (fused ops say so).
    pub fn name(&self) -> String {
        match self {
            Op::Conv(a) if a.activation != Activation::None => format!("Conv+{:?}", a.activation)
                .split('(')
                .next()
                .unwrap_or("Conv")
                .to_string(),
            Op::Conv(_) => "Conv".into(),
            Op::MaxPool(_) => "MaxPool".into(),
            Op::AveragePool(_) => "AveragePool".into(),
            Op::GlobalAveragePool => "GlobalAveragePool".into(),
            Op::GlobalMaxPool => "GlobalMaxPool".into(),
            Op::Resize(_) => "Resize".into(),
            Op::Concat { .. } => "Concat".into(),
            Op::Split { .. } => "Split".into(),
            Op::Slice { .. } => "Slice".into(),
            Op::Reshape { .. } => "Reshape".into(),
            Op::Transpose { .. } => "Transpose".into(),
            Op::Flatten { .. } => "Flatten".into(),
            Op::Squeeze { .. } => "Squeeze".into(),
            Op::Unsqueeze { .. } => "Unsqueeze".into(),
            Op::Binary(b) => format!("{b:?}")
                .split(' ')
                .next()
                .unwrap_or("Binary")
                .to_string(),
            Op::Unary(u) => format!("{u:?}"),
            Op::Act(a) => format!("{a:?}")
                .split('(')
                .next()
                .unwrap_or("Act")
                .to_string(),
            Op::Softmax { .. } => "Softmax".into(),
            Op::LogSoftmax { .. } => "LogSoftmax".into(),
            Op::MatMul => "MatMul".into(),
            Op::Gemm { .. } => "Gemm".into(),
            Op::BatchNormalization { .. } => "BatchNormalization".into(),
            Op::Identity => "Identity".into(),
            Op::Dropout => "Dropout".into(),
            Op::Constant(_) => "Constant".into(),
            Op::Shape { .. } => "Shape".into(),
            Op::Size => "Size".into(),
            Op::Gather { .. } => "Gather".into(),
            Op::Range => "Range".into(),
            Op::ConstantOfShape(_) => "ConstantOfShape".into(),
            Op::Expand => "Expand".into(),
            Op::Cast { .. } => "Cast".into(),
            Op::Where => "Where".into(),
            Op::Reduce { op, .. } => format!("Reduce{op:?}"),
            Op::Clip { .. } => "Clip".into(),
            Op::Pad { .. } => "Pad".into(),
            Op::TopK { .. } => "TopK".into(),
            Op::GatherElements { .. } => "GatherElements".into(),
            Op::LayerNormalization { .. } => "LayerNormalization".into(),
            Op::GridSample { .. } => "GridSample".into(),
        }
    }
}

impl Op {
    /// Whether input `i` is a parameter the op needs at boot (weights,
    /// shapes, axes, scales, ...) rather than data. A graph input used only
    /// in such positions is bound as a constant when its value is given
    /// (`perceptd infer`, the conformance tests); in deployed models these
    /// are initializers.
    pub fn is_param_input(&self, i: usize) -> bool {
        match self {
            Op::Conv(_) => i >= 1,
            Op::BatchNormalization { .. } => i >= 1,
            Op::Resize(_) => i >= 1,
            Op::Clip { .. } => i >= 1,
            Op::Pad { .. } => i >= 1,
            Op::Reshape { .. }
            | Op::Expand
            | Op::Split { .. }
            | Op::Squeeze { .. }
            | Op::Unsqueeze { .. } => i == 1,
            Op::Slice { .. } => i >= 1,
            Op::Reduce { .. } => i == 1,
            Op::Gather { .. } => i == 1,
            Op::TopK { .. } => i == 1,
            Op::LayerNormalization { .. } => i >= 1,
            Op::Range | Op::ConstantOfShape(_) => true,
            _ => false,
        }
    }
}
