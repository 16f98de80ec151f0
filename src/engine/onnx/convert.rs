//! One `NodeProto` → one typed [`Op`]: attribute parsing with the ONNX
//! defaults, normalised across opsets (attributes that later became inputs,
//! defaults that changed, legacy ops such as `Upsample`). No shapes are
//! inferred and nothing is folded here.
//!
//! Boot only (main thread); allocates.

use super::attrs::Attrs;
use super::tensor_io::{dtype_code_name, tensor_from_proto, LoadCtx};
use crate::engine::error::EngineError;
use crate::engine::ir::{
    Activation, AutoPad, BinaryOp, ConvAttrs, CoordTransform, GridMode, GridPadding, KeepAspect,
    NearestMode, Op, PadMode, PoolAttrs, ReduceOp, ResizeAttrs, ResizeMode, UnaryOp,
};
use crate::engine::tensor::{DType, Tensor};
use std::sync::Arc;

/// What a node becomes in the IR.
#[derive(Debug)]
pub(crate) enum Lowered {
    /// One node, inputs as in the model.
    Op(Op),
    /// One node whose legacy attribute became a constant input
    /// (`Upsample`-7 `scales`, `Reshape`-1 `shape`): `(input index, value)`.
    OpWithConst(Op, usize, Tensor),
    /// Variadic `Sum`/`Max`/`Min` with more than two inputs: a chain of
    /// binary nodes.
    Chain(BinaryOp),
}

/// A node the engine cannot run. The string names the op (with its domain
/// when not the default one, and the unsupported feature if the op itself
/// is known): it is the key in [`EngineError::Unsupported`].
pub(crate) enum Converted {
    Ok(Lowered),
    Unsupported(String),
}

/// Everything `convert` needs to know about the node.
pub(crate) struct NodeCtx<'a> {
    pub name: &'a str,
    pub op_type: &'a str,
    pub domain: &'a str,
    pub attrs: &'a [super::proto::AttributeProto],
    pub opset: i64,
    /// Inputs as listed (trailing empty ones included).
    pub n_inputs: usize,
    /// Outputs after dropping trailing empty names.
    pub n_outputs: usize,
}

pub(crate) fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

pub(crate) fn convert(n: &NodeCtx, ctx: &mut LoadCtx) -> Result<Converted, EngineError> {
    if !is_default_domain(n.domain) {
        return Ok(Converted::Unsupported(format!(
            "{}::{}",
            n.domain, n.op_type
        )));
    }
    let a = Attrs::new(n.name, n.op_type, n.attrs)?;
    let unsupported = |what: &str| Ok(Converted::Unsupported(format!("{} ({what})", n.op_type)));
    let op = match n.op_type {
        "Conv" => Op::Conv(conv_attrs(&a)?),
        "MaxPool" => {
            if n.n_outputs > 1 {
                return unsupported("indices output");
            }
            Op::MaxPool(pool_attrs(&a, true)?)
        }
        "AveragePool" => Op::AveragePool(pool_attrs(&a, false)?),
        "GlobalAveragePool" => Op::GlobalAveragePool,
        "GlobalMaxPool" => Op::GlobalMaxPool,
        "Resize" if n.opset >= 11 => Op::Resize(resize_attrs(&a)?),
        "Resize" => Op::Resize(legacy_resize_attrs(&a)?),
        "Upsample" => {
            if n.opset < 7 {
                return unsupported("opset < 7");
            }
            let op = Op::Resize(legacy_resize_attrs(&a)?);
            // Upsample-7 carries `scales` as an attribute; 9+ as input 1.
            if let Some(scales) = a.floats("scales")? {
                let t = Tensor::from_f32(vec![scales.len()], scales);
                return Ok(Converted::Ok(Lowered::OpWithConst(op, 1, t)));
            }
            op
        }
        "Concat" => Op::Concat {
            axis: a
                .int("axis")?
                .ok_or_else(|| a.err("attribute 'axis' is required"))?,
        },
        "Split" => {
            let num_outputs = match a.int("num_outputs")? {
                None => None,
                Some(v) if v >= 1 => Some(v as usize),
                Some(v) => {
                    return Err(a.err(format!("attribute 'num_outputs' must be >= 1 but is {v}")))
                }
            };
            let split = a.ints("split")?;
            if let Some(s) = &split {
                if let Some(&bad) = s.iter().find(|&&x| x < 0) {
                    return Err(a.err(format!("attribute 'split' has a negative size {bad}")));
                }
                if s.len() != n.n_outputs {
                    return Err(a.err(format!(
                        "attribute 'split' has {} sizes but the node has {} outputs",
                        s.len(),
                        n.n_outputs
                    )));
                }
            }
            // Without sizes (attribute or input) the input splits into as
            // many parts as the node has outputs.
            let num_outputs = match split {
                None => num_outputs.or(Some(n.n_outputs)),
                Some(_) => num_outputs,
            };
            Op::Split {
                axis: a.int_or("axis", 0)?,
                split,
                num_outputs,
            }
        }
        "Slice" => {
            let starts = a.ints("starts")?;
            let ends = a.ints("ends")?;
            if n.opset < 10 && (starts.is_none() || ends.is_none()) {
                return Err(a.err("attributes 'starts' and 'ends' are required before opset 10"));
            }
            Op::Slice {
                starts,
                ends,
                axes: a.ints("axes")?,
            }
        }
        "Reshape" => {
            let op = Op::Reshape {
                allowzero: a.bool_or("allowzero", false)?,
            };
            // Reshape-1 carries `shape` as an attribute.
            if let Some(shape) = a.ints("shape")? {
                let t = Tensor::from_i64(vec![shape.len()], shape);
                return Ok(Converted::Ok(Lowered::OpWithConst(op, 1, t)));
            }
            op
        }
        "Transpose" => Op::Transpose {
            perm: a.sizes("perm", 0)?,
        },
        "Flatten" => Op::Flatten {
            axis: a.int_or("axis", 1)?,
        },
        "Squeeze" => Op::Squeeze {
            axes: a.ints("axes")?,
        },
        "Unsqueeze" => {
            let axes = a.ints("axes")?;
            if n.opset < 13 && axes.is_none() {
                return Err(a.err("attribute 'axes' is required before opset 13"));
            }
            Op::Unsqueeze { axes }
        }
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Mod" | "Equal" | "Less" | "LessOrEqual"
        | "Greater" | "GreaterOrEqual" | "And" | "Or" | "Xor" => {
            if a.has("axis") && a.int_or("broadcast", 0)? != 0 {
                return unsupported("legacy broadcast with axis");
            }
            expect_inputs(&a, n, 2)?;
            Op::Binary(match n.op_type {
                "Add" => BinaryOp::Add,
                "Sub" => BinaryOp::Sub,
                "Mul" => BinaryOp::Mul,
                "Div" => BinaryOp::Div,
                "Pow" => BinaryOp::Pow,
                "Mod" => BinaryOp::Mod {
                    fmod: a.bool_or("fmod", false)?,
                },
                "Equal" => BinaryOp::Equal,
                "Less" => BinaryOp::Less,
                "LessOrEqual" => BinaryOp::LessOrEqual,
                "Greater" => BinaryOp::Greater,
                "GreaterOrEqual" => BinaryOp::GreaterOrEqual,
                "And" => BinaryOp::And,
                "Or" => BinaryOp::Or,
                _ => BinaryOp::Xor,
            })
        }
        "Sum" | "Max" | "Min" => {
            let b = match n.op_type {
                "Sum" => BinaryOp::Add,
                "Max" => BinaryOp::Max,
                _ => BinaryOp::Min,
            };
            match n.n_inputs {
                0 => return Err(a.err("needs at least one input")),
                1 => Op::Identity,
                2 => Op::Binary(b),
                _ => return Ok(Converted::Ok(Lowered::Chain(b))),
            }
        }
        "Sqrt" | "Neg" | "Abs" | "Exp" | "Log" | "Floor" | "Ceil" | "Round" | "Reciprocal"
        | "Erf" | "Not" | "Sign" | "Sin" | "Cos" => Op::Unary(match n.op_type {
            "Sqrt" => UnaryOp::Sqrt,
            "Neg" => UnaryOp::Neg,
            "Abs" => UnaryOp::Abs,
            "Exp" => UnaryOp::Exp,
            "Log" => UnaryOp::Log,
            "Floor" => UnaryOp::Floor,
            "Ceil" => UnaryOp::Ceil,
            "Round" => UnaryOp::Round,
            "Reciprocal" => UnaryOp::Reciprocal,
            "Erf" => UnaryOp::Erf,
            "Not" => UnaryOp::Not,
            "Sign" => UnaryOp::Sign,
            "Sin" => UnaryOp::Sin,
            _ => UnaryOp::Cos,
        }),
        "Relu" => Op::Act(Activation::Relu),
        "Sigmoid" => Op::Act(Activation::Sigmoid),
        "Tanh" => Op::Act(Activation::Tanh),
        "HardSwish" => Op::Act(Activation::HardSwish),
        "LeakyRelu" => Op::Act(Activation::LeakyRelu(a.float_or("alpha", 0.01)?)),
        "HardSigmoid" => Op::Act(Activation::HardSigmoid(
            a.float_or("alpha", 0.2)?,
            a.float_or("beta", 0.5)?,
        )),
        "Elu" => Op::Act(Activation::Elu(a.float_or("alpha", 1.0)?)),
        "Softmax" | "LogSoftmax" => {
            let legacy = n.opset < 13;
            let axis = a.int_or("axis", if legacy { 1 } else { -1 })?;
            if n.op_type == "Softmax" {
                Op::Softmax { axis, legacy }
            } else {
                Op::LogSoftmax { axis, legacy }
            }
        }
        "MatMul" => Op::MatMul,
        "Gemm" => Op::Gemm {
            alpha: a.float_or("alpha", 1.0)?,
            beta: a.float_or("beta", 1.0)?,
            trans_a: a.bool_or("transA", false)?,
            trans_b: a.bool_or("transB", false)?,
        },
        "BatchNormalization" => {
            if n.n_outputs > 1 || a.int_or("training_mode", 0)? != 0 {
                return unsupported("training mode");
            }
            if a.int_or("spatial", 1)? == 0 {
                return unsupported("spatial=0");
            }
            Op::BatchNormalization {
                epsilon: a.float_or("epsilon", 1e-5)?,
            }
        }
        "Identity" => Op::Identity,
        "Dropout" => {
            if n.n_outputs > 1 {
                return unsupported("mask output");
            }
            Op::Dropout
        }
        "Constant" => match constant_value(&a, ctx)? {
            Some(t) => Op::Constant(Arc::new(t)),
            None => return unsupported("sparse or string value"),
        },
        "Shape" => Op::Shape {
            start: a.int_or("start", 0)?,
            end: a.int("end")?,
        },
        "Size" => Op::Size,
        "Gather" => Op::Gather {
            axis: a.int_or("axis", 0)?,
        },
        "Range" => Op::Range,
        "TopK" => {
            let op = Op::TopK {
                axis: a.int_or("axis", -1)?,
                largest: a.bool_or("largest", true)?,
                sorted: a.bool_or("sorted", true)?,
            };
            // TopK-1 carries `k` as an attribute.
            if n.opset < 10 {
                let k = a
                    .int("k")?
                    .ok_or_else(|| a.err("attribute 'k' is required before opset 10"))?;
                let t = Tensor::from_i64(vec![1], vec![k]);
                return Ok(Converted::Ok(Lowered::OpWithConst(op, 1, t)));
            }
            op
        }
        "LayerNormalization" => {
            // stash_type only names the precision of the statistics; ours
            // are accumulated in f64 whatever it says.
            Op::LayerNormalization {
                axis: a.int_or("axis", -1)?,
                epsilon: a.float_or("epsilon", 1e-5)?,
            }
        }
        "GridSample" => Op::GridSample {
            // GridSample-16 names the modes bilinear/bicubic, 20 linear/cubic.
            mode: a.choice(
                "mode",
                GridMode::Linear,
                &[
                    ("bilinear", GridMode::Linear),
                    ("linear", GridMode::Linear),
                    ("nearest", GridMode::Nearest),
                    ("bicubic", GridMode::Cubic),
                    ("cubic", GridMode::Cubic),
                ],
            )?,
            padding: a.choice(
                "padding_mode",
                GridPadding::Zeros,
                &[
                    ("zeros", GridPadding::Zeros),
                    ("border", GridPadding::Border),
                    ("reflection", GridPadding::Reflection),
                ],
            )?,
            align_corners: a.bool_or("align_corners", false)?,
        },
        "GatherElements" => Op::GatherElements {
            axis: a.int_or("axis", 0)?,
        },
        "ConstantOfShape" => {
            let value = match a.tensor("value")? {
                None => Tensor::from_f32(vec![1], vec![0.0]),
                Some(tp) => {
                    let what = format!("attribute 'value' of node '{}'", n.name);
                    let t = tensor_from_proto(tp, &what, n.name, ctx)?;
                    if t.numel() != 1 {
                        return Err(a.err(format!(
                            "attribute 'value' must hold one element but has shape {:?}",
                            t.shape
                        )));
                    }
                    t
                }
            };
            Op::ConstantOfShape(Arc::new(value))
        }
        "Expand" => Op::Expand,
        "Cast" => Op::Cast { to: cast_to(&a)? },
        "Where" => Op::Where,
        "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" => Op::Reduce {
            op: match n.op_type {
                "ReduceSum" => ReduceOp::Sum,
                "ReduceMean" => ReduceOp::Mean,
                "ReduceMax" => ReduceOp::Max,
                "ReduceMin" => ReduceOp::Min,
                _ => ReduceOp::Prod,
            },
            axes: a.ints("axes")?,
            keepdims: a.bool_or("keepdims", true)?,
            noop_with_empty_axes: a.bool_or("noop_with_empty_axes", false)?,
        },
        "Clip" => Op::Clip {
            min: a.float("min")?,
            max: a.float("max")?,
        },
        "Pad" => {
            let mode = a.choice(
                "mode",
                PadMode::Constant,
                &[
                    ("constant", PadMode::Constant),
                    ("reflect", PadMode::Reflect),
                    ("edge", PadMode::Edge),
                    ("wrap", PadMode::Wrap),
                ],
            )?;
            // Pad-2 calls it `pads`, Pad-1 `paddings`; 11+ takes an input.
            let pads = match a.ints("pads")? {
                Some(p) => Some(p),
                None => a.ints("paddings")?,
            };
            if n.opset < 11 && pads.is_none() {
                return Err(a.err("attribute 'pads' is required before opset 11"));
            }
            if let Some(p) = &pads {
                if p.len() % 2 != 0 {
                    return Err(a.err(format!(
                        "attribute 'pads' has an odd number of values ({})",
                        p.len()
                    )));
                }
            }
            Op::Pad {
                mode,
                pads,
                value: a.float_or("value", 0.0)?,
            }
        }
        _ => return Ok(Converted::Unsupported(n.op_type.to_string())),
    };
    // Outputs beyond the first: Split's pieces, TopK's indices,
    // LayerNormalization's Mean and InvStdDev.
    let max_outputs = match op {
        Op::Split { .. } => usize::MAX,
        Op::TopK { .. } => 2,
        Op::LayerNormalization { .. } => 3,
        _ => 1,
    };
    if n.n_outputs > max_outputs {
        return Err(a.err(format!(
            "has {} outputs, expected at most {max_outputs}",
            n.n_outputs
        )));
    }
    Ok(Converted::Ok(Lowered::Op(op)))
}

fn expect_inputs(a: &Attrs, n: &NodeCtx, want: usize) -> Result<(), EngineError> {
    if n.n_inputs != want {
        return Err(a.err(format!("has {} inputs, expected {want}", n.n_inputs)));
    }
    Ok(())
}

fn auto_pad(a: &Attrs) -> Result<AutoPad, EngineError> {
    a.choice(
        "auto_pad",
        AutoPad::NotSet,
        &[
            ("NOTSET", AutoPad::NotSet),
            ("SAME_UPPER", AutoPad::SameUpper),
            ("SAME_LOWER", AutoPad::SameLower),
            ("VALID", AutoPad::Valid),
        ],
    )
}

/// kernel_shape, strides, dilations and pads must agree on the number of
/// spatial dims where they are given.
fn check_spatial(
    a: &Attrs,
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    pads: &[usize],
) -> Result<(), EngineError> {
    if !pads.len().is_multiple_of(2) {
        return Err(a.err(format!(
            "attribute 'pads' has an odd number of values ({})",
            pads.len()
        )));
    }
    let mut rank: Option<(&str, usize)> = None;
    for (name, len) in [
        ("kernel_shape", kernel.len()),
        ("strides", strides.len()),
        ("dilations", dilations.len()),
        ("pads", pads.len() / 2),
    ] {
        if len == 0 {
            continue;
        }
        match rank {
            None => rank = Some((name, len)),
            Some((first, r)) if r != len => {
                return Err(a.err(format!(
                    "attribute '{name}' is for {len} spatial dims but '{first}' is for {r}"
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn conv_attrs(a: &Attrs) -> Result<ConvAttrs, EngineError> {
    let kernel_shape = a.sizes("kernel_shape", 1)?.unwrap_or_default();
    let strides = a.sizes("strides", 1)?.unwrap_or_default();
    let dilations = a.sizes("dilations", 1)?.unwrap_or_default();
    let pads = a.sizes("pads", 0)?.unwrap_or_default();
    check_spatial(a, &kernel_shape, &strides, &dilations, &pads)?;
    let group = a.int_or("group", 1)?;
    if group < 1 {
        return Err(a.err(format!("attribute 'group' must be >= 1 but is {group}")));
    }
    Ok(ConvAttrs {
        auto_pad: auto_pad(a)?,
        dilations,
        group: group as usize,
        kernel_shape,
        pads,
        strides,
        activation: Activation::None,
    })
}

fn pool_attrs(a: &Attrs, max: bool) -> Result<PoolAttrs, EngineError> {
    let kernel_shape = a
        .sizes("kernel_shape", 1)?
        .ok_or_else(|| a.err("attribute 'kernel_shape' is required"))?;
    let strides = a.sizes("strides", 1)?.unwrap_or_default();
    let dilations = a.sizes("dilations", 1)?.unwrap_or_default();
    let pads = a.sizes("pads", 0)?.unwrap_or_default();
    check_spatial(a, &kernel_shape, &strides, &dilations, &pads)?;
    let storage_order = if max {
        match a.int_or("storage_order", 0)? {
            v @ (0 | 1) => v,
            v => {
                return Err(a.err(format!(
                    "attribute 'storage_order' must be 0 or 1 but is {v}"
                )))
            }
        }
    } else {
        0
    };
    Ok(PoolAttrs {
        auto_pad: auto_pad(a)?,
        ceil_mode: a.bool_or("ceil_mode", false)?,
        count_include_pad: if max {
            false
        } else {
            a.bool_or("count_include_pad", false)?
        },
        dilations,
        kernel_shape,
        pads,
        strides,
        storage_order,
    })
}

fn resize_mode(a: &Attrs) -> Result<ResizeMode, EngineError> {
    a.choice(
        "mode",
        ResizeMode::Nearest,
        &[
            ("nearest", ResizeMode::Nearest),
            ("linear", ResizeMode::Linear),
            ("bilinear", ResizeMode::Linear),
            ("cubic", ResizeMode::Cubic),
        ],
    )
}

fn resize_attrs(a: &Attrs) -> Result<ResizeAttrs, EngineError> {
    Ok(ResizeAttrs {
        mode: resize_mode(a)?,
        coord: a.choice(
            "coordinate_transformation_mode",
            CoordTransform::HalfPixel,
            &[
                ("half_pixel", CoordTransform::HalfPixel),
                ("half_pixel_symmetric", CoordTransform::HalfPixelSymmetric),
                ("pytorch_half_pixel", CoordTransform::PytorchHalfPixel),
                ("align_corners", CoordTransform::AlignCorners),
                ("asymmetric", CoordTransform::Asymmetric),
                ("tf_half_pixel_for_nn", CoordTransform::TfHalfPixelForNn),
                ("tf_crop_and_resize", CoordTransform::TfCropAndResize),
            ],
        )?,
        nearest: a.choice(
            "nearest_mode",
            NearestMode::RoundPreferFloor,
            &[
                ("round_prefer_floor", NearestMode::RoundPreferFloor),
                ("round_prefer_ceil", NearestMode::RoundPreferCeil),
                ("floor", NearestMode::Floor),
                ("ceil", NearestMode::Ceil),
            ],
        )?,
        cubic_coeff_a: a.float_or("cubic_coeff_a", -0.75)?,
        exclude_outside: a.bool_or("exclude_outside", false)?,
        extrapolation_value: a.float_or("extrapolation_value", 0.0)?,
        antialias: a.bool_or("antialias", false)?,
        axes: a.ints("axes")?,
        keep_aspect: a.choice(
            "keep_aspect_ratio_policy",
            KeepAspect::Stretch,
            &[
                ("stretch", KeepAspect::Stretch),
                ("not_larger", KeepAspect::NotLarger),
                ("not_smaller", KeepAspect::NotSmaller),
            ],
        )?,
        scales_at_input1: false,
    })
}

/// Resize-10 and Upsample: `(X, scales)`, only `mode`; output pixel `x`
/// samples input `x / scale` (asymmetric), nearest rounds down.
fn legacy_resize_attrs(a: &Attrs) -> Result<ResizeAttrs, EngineError> {
    let mode = resize_mode(a)?;
    if mode == ResizeMode::Cubic {
        return Err(a.err("attribute 'mode' is \"cubic\", which this opset does not define"));
    }
    Ok(ResizeAttrs {
        mode,
        coord: CoordTransform::Asymmetric,
        nearest: NearestMode::Floor,
        cubic_coeff_a: -0.75,
        exclude_outside: false,
        extrapolation_value: 0.0,
        antialias: false,
        axes: None,
        keep_aspect: KeepAspect::Stretch,
        scales_at_input1: true,
    })
}

/// Cast's `to`: a data type code, or (Cast-1) its name as a string.
fn cast_to(a: &Attrs) -> Result<DType, EngineError> {
    let code = if let Ok(Some(s)) = a.string("to") {
        super::proto::tensor_proto::DataType::from_str_name(&s.to_ascii_uppercase())
            .map(|d| d as i32)
            .ok_or_else(|| a.err(format!("attribute 'to' is \"{s}\", not a data type")))?
    } else {
        a.int("to")?
            .ok_or_else(|| a.err("attribute 'to' is required"))? as i32
    };
    DType::from_onnx_code(code).ok_or_else(|| {
        a.err(format!(
            "attribute 'to' is {}, a data type the engine does not support",
            dtype_code_name(code)
        ))
    })
}

/// Constant's value; `None` for a value the engine cannot hold (sparse or
/// string tensors).
fn constant_value(a: &Attrs, ctx: &mut LoadCtx) -> Result<Option<Tensor>, EngineError> {
    const KINDS: [&str; 8] = [
        "value",
        "value_float",
        "value_floats",
        "value_int",
        "value_ints",
        "value_string",
        "value_strings",
        "sparse_value",
    ];
    let given: Vec<&str> = KINDS.iter().copied().filter(|k| a.has(k)).collect();
    match given.as_slice() {
        [] => return Err(a.err("has no value attribute")),
        [_] => {}
        _ => {
            return Err(a.err(format!(
                "has several value attributes: {}",
                given.join(", ")
            )))
        }
    }
    let t = match given[0] {
        "value" => match a.tensor("value")? {
            Some(tp) => {
                let what = format!("attribute 'value' of Constant node '{}'", a.node());
                let name = tp.name.clone().unwrap_or_default();
                let name = if name.is_empty() {
                    a.node().to_string()
                } else {
                    name
                };
                tensor_from_proto(tp, &what, &name, ctx)?
            }
            None => return Err(a.err("attribute 'value' holds no tensor")),
        },
        "value_float" => Tensor::from_f32(vec![], vec![a.float_or("value_float", 0.0)?]),
        "value_int" => Tensor::from_i64(vec![], vec![a.int_or("value_int", 0)?]),
        "value_floats" => {
            let v = a.floats("value_floats")?.unwrap_or_default();
            Tensor::from_f32(vec![v.len()], v)
        }
        "value_ints" => {
            let v = a.ints("value_ints")?.unwrap_or_default();
            Tensor::from_i64(vec![v.len()], v)
        }
        _ => return Ok(None),
    };
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::onnx::proto::{attribute_proto::AttributeType, AttributeProto, TensorProto};
    use crate::engine::onnx::Limits;

    fn attr(name: &str, ty: AttributeType) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            r#type: Some(ty as i32),
            ..Default::default()
        }
    }

    fn run(
        op: &str,
        attrs: &[AttributeProto],
        opset: i64,
        ins: usize,
        outs: usize,
    ) -> Result<Converted, EngineError> {
        let limits = Limits::default();
        let mut ctx = LoadCtx::new("m.onnx", None, &limits);
        let n = NodeCtx {
            name: "n",
            op_type: op,
            domain: "",
            attrs,
            opset,
            n_inputs: ins,
            n_outputs: outs,
        };
        convert(&n, &mut ctx)
    }

    fn op(op: &str, attrs: &[AttributeProto], opset: i64) -> Op {
        match run(op, attrs, opset, 1, 1) {
            Ok(Converted::Ok(Lowered::Op(o))) => o,
            Ok(Converted::Ok(l)) => panic!("{l:?}"),
            Ok(Converted::Unsupported(k)) => panic!("unsupported {k}"),
            Err(e) => panic!("{e}"),
        }
    }

    fn unsupported(op: &str, attrs: &[AttributeProto], outs: usize) -> String {
        match run(op, attrs, 17, 1, outs) {
            Ok(Converted::Unsupported(k)) => k,
            _ => panic!("{op} should be unsupported"),
        }
    }

    #[test]
    fn defaults_follow_the_onnx_spec() {
        assert_eq!(
            op("Gemm", &[], 13),
            Op::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: false
            }
        );
        assert_eq!(
            op("HardSigmoid", &[], 13),
            Op::Act(Activation::HardSigmoid(0.2, 0.5))
        );
        assert_eq!(op("Elu", &[], 13), Op::Act(Activation::Elu(1.0)));
        assert_eq!(op("Flatten", &[], 13), Op::Flatten { axis: 1 });
        assert_eq!(op("Gather", &[], 13), Op::Gather { axis: 0 });
        assert_eq!(
            op("BatchNormalization", &[], 15),
            Op::BatchNormalization { epsilon: 1e-5 }
        );
        assert_eq!(
            op("Shape", &[], 15),
            Op::Shape {
                start: 0,
                end: None
            }
        );
        let Op::Resize(r) = op("Resize", &[], 13) else {
            panic!()
        };
        assert_eq!(
            (
                r.mode,
                r.coord,
                r.nearest,
                r.cubic_coeff_a,
                r.keep_aspect,
                r.scales_at_input1
            ),
            (
                ResizeMode::Nearest,
                CoordTransform::HalfPixel,
                NearestMode::RoundPreferFloor,
                -0.75,
                KeepAspect::Stretch,
                false
            )
        );
        let Op::Resize(r) = op("Resize", &[], 10) else {
            panic!()
        };
        assert!(r.scales_at_input1 && r.coord == CoordTransform::Asymmetric);
        assert_eq!(
            op("ConstantOfShape", &[], 13),
            Op::ConstantOfShape(Arc::new(Tensor::from_f32(vec![1], vec![0.0])))
        );
        let Op::MaxPool(p) = op(
            "MaxPool",
            &[AttributeProto {
                ints: vec![2, 2],
                ..attr("kernel_shape", AttributeType::Ints)
            }],
            13,
        ) else {
            panic!()
        };
        assert!(!p.ceil_mode && p.storage_order == 0 && p.auto_pad == AutoPad::NotSet);
    }

    #[test]
    fn legacy_attribute_forms_are_read() {
        let to = AttributeProto {
            s: Some(b"float16".to_vec()),
            ..attr("to", AttributeType::String)
        };
        assert_eq!(op("Cast", &[to], 1), Op::Cast { to: DType::F16 });
        let shape = AttributeProto {
            ints: vec![2, -1],
            ..attr("shape", AttributeType::Ints)
        };
        match run("Reshape", &[shape], 1, 1, 1) {
            Ok(Converted::Ok(Lowered::OpWithConst(Op::Reshape { allowzero: false }, 1, t))) => {
                assert_eq!(t.as_i64().unwrap(), [2, -1])
            }
            _ => panic!(),
        }
        let ints = AttributeProto {
            ints: vec![3, 4],
            ..attr("value_ints", AttributeType::Ints)
        };
        assert_eq!(
            op("Constant", &[ints], 13),
            Op::Constant(Arc::new(Tensor::from_i64(vec![2], vec![3, 4])))
        );
        let pads = AttributeProto {
            ints: vec![1, 1],
            ..attr("paddings", AttributeType::Ints)
        };
        assert_eq!(
            op("Pad", &[pads], 1),
            Op::Pad {
                mode: PadMode::Constant,
                pads: Some(vec![1, 1]),
                value: 0.0
            }
        );
    }

    #[test]
    fn unsupported_features_are_named() {
        let ks = AttributeProto {
            ints: vec![2],
            ..attr("kernel_shape", AttributeType::Ints)
        };
        assert_eq!(unsupported("MaxPool", &[ks], 2), "MaxPool (indices output)");
        assert_eq!(
            unsupported("BatchNormalization", &[], 3),
            "BatchNormalization (training mode)"
        );
        assert_eq!(unsupported("Dropout", &[], 2), "Dropout (mask output)");
        let sparse = attr("sparse_value", AttributeType::SparseTensor);
        assert_eq!(
            unsupported("Constant", &[sparse], 1),
            "Constant (sparse or string value)"
        );
        assert_eq!(unsupported("ConvTranspose", &[], 1), "ConvTranspose");
    }

    #[test]
    fn bad_values_are_node_errors() {
        let bad = |op: &str, a: AttributeProto| match run(op, &[a], 17, 1, 1) {
            Err(e @ EngineError::Node { .. }) => e.to_string(),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("{op} accepted a bad attribute"),
        };
        let e = bad(
            "Resize",
            AttributeProto {
                s: Some(b"bilinearish".to_vec()),
                ..attr("mode", AttributeType::String)
            },
        );
        assert!(e.contains("\"bilinearish\""), "{e}");
        let e = bad(
            "Cast",
            AttributeProto {
                i: Some(8),
                ..attr("to", AttributeType::Int)
            },
        );
        assert!(e.contains("STRING (8)"), "{e}");
        let e = bad(
            "Conv",
            AttributeProto {
                i: Some(0),
                ..attr("group", AttributeType::Int)
            },
        );
        assert!(e.contains("'group' must be >= 1 but is 0"), "{e}");
        let mut v = TensorProto {
            dims: vec![2],
            data_type: Some(1),
            float_data: vec![1.0, 2.0],
            ..Default::default()
        };
        let e = bad(
            "ConstantOfShape",
            AttributeProto {
                t: Some(v.clone()),
                ..attr("value", AttributeType::Tensor)
            },
        );
        assert!(e.contains("one element"), "{e}");
        v.dims = vec![1];
        v.float_data = vec![1.0];
        assert!(matches!(
            run(
                "ConstantOfShape",
                &[AttributeProto {
                    t: Some(v),
                    ..attr("value", AttributeType::Tensor)
                }],
                17,
                1,
                1
            ),
            Ok(Converted::Ok(Lowered::Op(Op::ConstantOfShape(_))))
        ));
    }
}
