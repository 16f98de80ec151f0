//! The ONNX loader against broken and hostile models, built here with the
//! prost types: every one must come back as an `Err` whose message names
//! the problem, never as a panic or an out-of-memory abort. Plus the
//! positive cases: a small model imports into the expected graph, opset
//! differences are normalised, and tensor files round-trip.

use perceptd::engine::ir::{Activation, BinaryOp, Dim, Op};
use perceptd::engine::onnx::proto::{
    attribute_proto::AttributeType, tensor_proto, tensor_shape_proto, type_proto, AttributeProto,
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use perceptd::engine::onnx::{
    load_model, load_model_bytes, read_tensor_file, write_tensor_file, Limits,
};
use perceptd::engine::{DType, EngineError, Tensor};
use prost::Message;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

// ---------------------------------------------------------------- builders

enum D {
    F(i64),
    S(&'static str),
}

fn vi(name: &str, elem: i32, dims: &[D]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                D::F(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                D::S(s) => tensor_shape_proto::dimension::Value::DimParam(s.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A float tensor of unknown shape.
fn vi_untyped(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: if name.is_empty() {
            None
        } else {
            Some(name.into())
        },
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn a_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn a_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn a_floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Floats as i32),
        floats: v.to_vec(),
        ..Default::default()
    }
}

fn a_str(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(1),
        raw_data: Some(data.iter().flat_map(|x| x.to_le_bytes()).collect()),
        ..Default::default()
    }
}

fn model(
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    opset: i64,
) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        graph: Some(GraphProto {
            node: nodes,
            name: Some("g".into()),
            initializer: inits,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        ..Default::default()
    }
}

/// x [N,3,8,8] -> Conv(w 4x3x3x3, b 4, pads 1) -> Relu -> y.
/// `w` is also listed as a graph input (an input with a default value).
fn conv_relu() -> ModelProto {
    let w: Vec<f32> = (0..108).map(|i| i as f32 * 0.01).collect();
    model(
        vec![
            node(
                "Conv",
                "conv",
                &["x", "w", "b"],
                &["c"],
                vec![
                    a_ints("kernel_shape", &[3, 3]),
                    a_ints("pads", &[1, 1, 1, 1]),
                ],
            ),
            node("Relu", "relu", &["c"], &["y"], vec![]),
        ],
        vec![
            f32_tensor("w", &[4, 3, 3, 3], &w),
            f32_tensor("b", &[4], &[0.5; 4]),
        ],
        vec![
            vi("x", 1, &[D::S("N"), D::F(3), D::F(8), D::F(8)]),
            vi("w", 1, &[D::F(4), D::F(3), D::F(3), D::F(3)]),
        ],
        vec![vi("y", 1, &[D::S("N"), D::F(4), D::F(8), D::F(8)])],
        13,
    )
}

fn load(m: &ModelProto) -> Result<perceptd::engine::ir::Graph, EngineError> {
    load_model_bytes(&m.encode_to_vec(), None, "test.onnx", &Limits::default())
}

fn load_err(m: &ModelProto) -> String {
    match load(m) {
        Ok(_) => panic!("model loaded but should have failed"),
        Err(e) => e.to_string(),
    }
}

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "perceptd-bad-models-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

// ------------------------------------------------------------- positive

#[test]
fn conv_relu_imports_into_the_expected_graph() {
    let g = load(&conv_relu()).unwrap();
    assert_eq!(g.opset, 13);
    let name = |id: usize| g.tensor(id).name.as_str();
    // `w` is an initializer, so not a runtime input.
    assert_eq!(g.inputs.iter().map(|&i| name(i)).collect::<Vec<_>>(), ["x"]);
    assert_eq!(
        g.outputs.iter().map(|&i| name(i)).collect::<Vec<_>>(),
        ["y"]
    );
    let x = g.tensor(g.inputs[0]);
    assert_eq!(x.dtype, DType::F32);
    assert_eq!(
        x.declared,
        Some(vec![
            Dim::Symbol("N".into()),
            Dim::Fixed(3),
            Dim::Fixed(8),
            Dim::Fixed(8)
        ])
    );
    assert!(x.value.is_none());

    assert_eq!(g.nodes.len(), 2);
    let conv = &g.nodes[0];
    assert_eq!(conv.name, "conv");
    let Op::Conv(a) = &conv.op else {
        panic!("{:?}", conv.op)
    };
    assert_eq!(a.kernel_shape, [3, 3]);
    assert_eq!(a.pads, [1, 1, 1, 1]);
    assert!(a.strides.is_empty() && a.dilations.is_empty());
    assert_eq!((a.group, a.activation), (1, Activation::None));
    let ins: Vec<&str> = conv.inputs.iter().map(|i| name(i.unwrap())).collect();
    assert_eq!(ins, ["x", "w", "b"]);
    let w = g.tensor(conv.inputs[1].unwrap()).value.as_ref().unwrap();
    assert_eq!(w.shape, [4, 3, 3, 3]);
    assert_eq!(w.as_f32().unwrap()[107], 107.0 * 0.01);
    assert_eq!(name(conv.outputs[0]), "c");

    let relu = &g.nodes[1];
    assert_eq!(relu.op, Op::Act(Activation::Relu));
    assert_eq!(relu.inputs, [Some(conv.outputs[0])]);
    assert_eq!(relu.outputs, g.outputs);
    assert_eq!(
        g.tensor(relu.outputs[0]).declared,
        Some(vec![
            Dim::Symbol("N".into()),
            Dim::Fixed(4),
            Dim::Fixed(8),
            Dim::Fixed(8)
        ])
    );
}

#[test]
fn nodes_out_of_order_are_sorted() {
    let mut m = conv_relu();
    m.graph.as_mut().unwrap().node.reverse();
    let g = load(&m).unwrap();
    assert_eq!(g.nodes[0].name, "conv");
    assert_eq!(g.nodes[1].name, "relu");
}

#[test]
fn opset_differences_are_normalised() {
    let x = || vec![vi("x", 1, &[D::F(2), D::F(6)])];
    let y = || vec![vi_untyped("y")];
    let one = |op: NodeProto, opset: i64| {
        load(&model(vec![op], vec![], x(), y(), opset))
            .unwrap()
            .nodes
            .remove(0)
            .op
    };
    let sm = || node("Softmax", "s", &["x"], &["y"], vec![]);
    assert_eq!(
        one(sm(), 11),
        Op::Softmax {
            axis: 1,
            legacy: true
        }
    );
    assert_eq!(
        one(sm(), 13),
        Op::Softmax {
            axis: -1,
            legacy: false
        }
    );
    let clip = node(
        "Clip",
        "c",
        &["x"],
        &["y"],
        vec![AttributeProto {
            name: Some("max".into()),
            r#type: Some(AttributeType::Float as i32),
            f: Some(6.0),
            ..Default::default()
        }],
    );
    assert_eq!(
        one(clip, 6),
        Op::Clip {
            min: None,
            max: Some(6.0)
        }
    );
    let sq = node("Unsqueeze", "u", &["x"], &["y"], vec![a_ints("axes", &[0])]);
    assert_eq!(
        one(sq, 11),
        Op::Unsqueeze {
            axes: Some(vec![0])
        }
    );
    let sl = node(
        "Slice",
        "s",
        &["x"],
        &["y"],
        vec![a_ints("starts", &[1]), a_ints("ends", &[3])],
    );
    assert_eq!(
        one(sl, 9),
        Op::Slice {
            starts: Some(vec![1]),
            ends: Some(vec![3]),
            axes: None
        }
    );
    let lr = node("LeakyRelu", "l", &["x"], &["y"], vec![]);
    assert_eq!(one(lr, 13), Op::Act(Activation::LeakyRelu(0.01)));
    let rs = node(
        "ReduceSum",
        "r",
        &["x"],
        &["y"],
        vec![a_ints("axes", &[1]), a_int("keepdims", 0)],
    );
    assert_eq!(
        one(rs, 11),
        Op::Reduce {
            op: perceptd::engine::ir::ReduceOp::Sum,
            axes: Some(vec![1]),
            keepdims: false,
            noop_with_empty_axes: false
        }
    );
    let cast = node("Cast", "c", &["x"], &["y"], vec![a_int("to", 10)]);
    assert_eq!(one(cast, 13), Op::Cast { to: DType::F16 });

    // Split-11 `split` attribute; Split-18 `num_outputs`.
    let split = |opset, attrs| {
        let n = node("Split", "s", &["x"], &["a", "b"], attrs);
        load(&model(
            vec![n],
            vec![],
            x(),
            vec![vi_untyped("a"), vi_untyped("b")],
            opset,
        ))
        .unwrap()
        .nodes
        .remove(0)
        .op
    };
    assert_eq!(
        split(11, vec![a_int("axis", 1), a_ints("split", &[2, 4])]),
        Op::Split {
            axis: 1,
            split: Some(vec![2, 4]),
            num_outputs: None
        }
    );
    assert_eq!(
        split(18, vec![a_int("num_outputs", 2)]),
        Op::Split {
            axis: 0,
            split: None,
            num_outputs: Some(2)
        }
    );
}

#[test]
fn upsample_scales_attribute_becomes_a_constant_input() {
    let n = node(
        "Upsample",
        "up",
        &["x"],
        &["y"],
        vec![
            a_floats("scales", &[1.0, 1.0, 2.0, 2.0]),
            a_str("mode", "nearest"),
        ],
    );
    let g = load(&model(
        vec![n],
        vec![],
        vec![vi("x", 1, &[D::F(1), D::F(1), D::F(2), D::F(2)])],
        vec![vi_untyped("y")],
        7,
    ))
    .unwrap();
    let Op::Resize(r) = &g.nodes[0].op else {
        panic!("{:?}", g.nodes[0].op)
    };
    assert!(r.scales_at_input1);
    let scales = g
        .tensor(g.nodes[0].inputs[1].unwrap())
        .value
        .as_ref()
        .unwrap();
    assert_eq!(scales.as_f32().unwrap(), [1.0, 1.0, 2.0, 2.0]);
}

#[test]
fn variadic_sum_becomes_a_chain_of_adds() {
    let n = node("Sum", "s", &["x", "x", "x"], &["y"], vec![]);
    let g = load(&model(
        vec![n],
        vec![],
        vec![vi("x", 1, &[D::F(2)])],
        vec![vi_untyped("y")],
        13,
    ))
    .unwrap();
    assert_eq!(g.nodes.len(), 2);
    assert!(g.nodes.iter().all(|n| n.op == Op::Binary(BinaryOp::Add)));
    assert_eq!(g.nodes[1].inputs[0], Some(g.nodes[0].outputs[0]));
    assert_eq!(g.nodes[1].outputs, g.outputs);
}

#[test]
fn tensor_files_round_trip() {
    let dir = TempDir::new("tensors");
    let cases = [
        Tensor::from_f32(vec![1, 3, 2], vec![0.0, -1.5, 2.25, 1e-8, 3.0e38, -0.0]),
        Tensor::from_f32(vec![2], vec![1.0, 0.333_251_95]).with_dtype(DType::F16),
        Tensor::from_i64(vec![3], vec![-1, 0, i64::MAX]),
        Tensor::from_i64(vec![2], vec![-7, 9]).with_dtype(DType::I32),
        Tensor::from_i64(vec![2], vec![0, 255]).with_dtype(DType::U8),
        Tensor::from_bool(vec![2, 2], vec![true, false, false, true]),
        Tensor::from_f32(vec![], vec![42.0]),
    ];
    for (i, t) in cases.iter().enumerate() {
        let p = dir.0.join(format!("t{i}.pb"));
        write_tensor_file(&p, &format!("tensor{i}"), t).unwrap();
        let (name, back) = read_tensor_file(&p, &Limits::default()).unwrap();
        assert_eq!(name, format!("tensor{i}"));
        assert_eq!(&back, t);
    }
    let bad = Tensor::from_i64(vec![1], vec![1000]).with_dtype(DType::I8);
    let e = write_tensor_file(&dir.0.join("bad.pb"), "bad", &bad).unwrap_err();
    assert!(e.to_string().contains("1000"), "{e}");
}

#[test]
fn external_data_inside_the_folder_loads() {
    let dir = TempDir::new("ext-ok");
    let bytes: Vec<u8> = [9.0f32, 1.0, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    std::fs::create_dir_all(dir.0.join("data")).unwrap();
    std::fs::write(dir.0.join("data/w.bin"), &bytes).unwrap();
    let m = external_model("data/w.bin", Some(4), Some(16));
    let p = dir.0.join("m.onnx");
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    let g = load_model(&p, &Limits::default()).unwrap();
    let w = g.tensors.iter().find(|t| t.name == "w").unwrap();
    assert_eq!(
        w.value.as_ref().unwrap().as_f32().unwrap(),
        [1.0, 2.0, 3.0, 4.0]
    );
}

// ------------------------------------------------------------- negative

#[test]
fn truncated_model_at_every_length_is_an_error() {
    let bytes = conv_relu().encode_to_vec();
    assert!(load_model_bytes(&bytes, None, "t.onnx", &Limits::default()).is_ok());
    for len in 0..bytes.len() {
        let r = load_model_bytes(&bytes[..len], None, "t.onnx", &Limits::default());
        let e = r
            .err()
            .unwrap_or_else(|| panic!("prefix of {len} bytes loaded"));
        assert!(e.to_string().starts_with("t.onnx: "), "{e}");
    }
}

#[test]
fn empty_file_is_an_error() {
    let dir = TempDir::new("empty");
    let p = dir.0.join("empty.onnx");
    std::fs::write(&p, b"").unwrap();
    let e = load_model(&p, &Limits::default()).unwrap_err().to_string();
    assert!(e.contains("empty.onnx") && e.contains("empty"), "{e}");
    let e = load_model(&dir.0.join("missing.onnx"), &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing.onnx") && e.contains("cannot open"),
        "{e}"
    );
}

#[test]
fn random_bytes_are_an_error() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..3000 {
        let len = (rng.next() % 600) as usize;
        let buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(load_model_bytes(&buf, None, "r.onnx", &Limits::default()).is_err());
    }
}

#[test]
fn mutated_models_never_panic() {
    let good = conv_relu().encode_to_vec();
    let mut rng = Rng(42);
    for _ in 0..5000 {
        let mut buf = good.clone();
        for _ in 0..1 + rng.next() % 4 {
            let i = (rng.next() as usize) % buf.len();
            buf[i] = rng.next() as u8;
        }
        let _ = load_model_bytes(&buf, None, "m.onnx", &Limits::default());
    }
}

#[test]
fn file_over_the_size_limit_is_an_error() {
    let bytes = conv_relu().encode_to_vec();
    let limits = Limits {
        max_file_bytes: 100,
        ..Limits::default()
    };
    let e = load_model_bytes(&bytes, None, "big.onnx", &limits)
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_file_bytes"), "{e}");
}

fn with_init(t: TensorProto) -> ModelProto {
    let mut m = conv_relu();
    m.graph.as_mut().unwrap().initializer.push(t);
    m
}

#[test]
fn huge_declared_tensor_with_little_data_is_an_error() {
    let t = TensorProto {
        name: Some("huge".into()),
        dims: vec![1_000_000, 1_000_000],
        data_type: Some(1),
        raw_data: Some(vec![0; 10]),
        ..Default::default()
    };
    let e = load(&with_init(t)).unwrap_err();
    assert!(matches!(e, EngineError::MemoryLimit { .. }), "{e}");
    assert!(e.to_string().contains("'huge'"), "{e}");

    // Within the limits, the data must still match the dims.
    let t = TensorProto {
        name: Some("short".into()),
        dims: vec![1000],
        data_type: Some(1),
        raw_data: Some(vec![0; 10]),
        ..Default::default()
    };
    let e = load_err(&with_init(t));
    assert!(
        e.contains("'short'") && e.contains("raw_data holds 10 bytes"),
        "{e}"
    );

    let t = TensorProto {
        name: Some("typed".into()),
        dims: vec![5],
        data_type: Some(7),
        int64_data: vec![1, 2],
        ..Default::default()
    };
    let e = load_err(&with_init(t));
    assert!(
        e.contains("'typed'") && e.contains("int64_data holds 2 values"),
        "{e}"
    );
}

#[test]
fn total_size_limit_counts_every_initializer() {
    let limits = Limits {
        max_total_bytes: 400,
        ..Limits::default()
    };
    let e = load_model_bytes(&conv_relu().encode_to_vec(), None, "m.onnx", &limits).unwrap_err();
    assert!(
        matches!(e, EngineError::MemoryLimit { limit: 400, .. }),
        "{e}"
    );
}

#[test]
fn overflowing_and_negative_dims_are_errors() {
    let t = TensorProto {
        name: Some("ovf".into()),
        dims: vec![i64::MAX, i64::MAX, 4],
        data_type: Some(1),
        ..Default::default()
    };
    let e = load_err(&with_init(t));
    assert!(e.contains("'ovf'") && e.contains("overflows"), "{e}");
    let t = TensorProto {
        name: Some("neg".into()),
        dims: vec![3, -2],
        data_type: Some(1),
        float_data: vec![0.0; 6],
        ..Default::default()
    };
    let e = load_err(&with_init(t));
    assert!(e.contains("'neg'") && e.contains("-2"), "{e}");
    let mut m = conv_relu();
    m.graph.as_mut().unwrap().input[0] = vi("x", 1, &[D::F(-1), D::F(3)]);
    let e = load_err(&m);
    assert!(e.contains("'x'") && e.contains("-1"), "{e}");
}

fn external_model(location: &str, offset: Option<u64>, length: Option<u64>) -> ModelProto {
    let mut ext = vec![StringStringEntryProto {
        key: Some("location".into()),
        value: Some(location.into()),
    }];
    for (k, v) in [("offset", offset), ("length", length)] {
        if let Some(v) = v {
            ext.push(StringStringEntryProto {
                key: Some(k.into()),
                value: Some(v.to_string()),
            });
        }
    }
    let w = TensorProto {
        name: Some("w".into()),
        dims: vec![4],
        data_type: Some(1),
        data_location: Some(tensor_proto::DataLocation::External as i32),
        external_data: ext,
        ..Default::default()
    };
    model(
        vec![node("Add", "add", &["x", "w"], &["y"], vec![])],
        vec![w],
        vec![vi("x", 1, &[D::F(4)])],
        vec![vi_untyped("y")],
        13,
    )
}

fn load_in(dir: &Path, m: &ModelProto) -> String {
    let p = dir.join("model.onnx");
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    match load_model(&p, &Limits::default()) {
        Ok(_) => panic!("model with bad external data loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn external_data_cannot_leave_the_model_folder() {
    let root = TempDir::new("ext");
    let model_dir = root.0.join("model");
    let outside = root.0.join("outside");
    std::fs::create_dir_all(&model_dir).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let secret = outside.join("secret.bin");
    std::fs::write(&secret, [0u8; 16]).unwrap();

    let e = load_in(
        &model_dir,
        &external_model("../outside/secret.bin", None, None),
    );
    assert!(e.contains("'..'") && e.contains("'w'"), "{e}");

    let abs = secret.display().to_string();
    let e = load_in(&model_dir, &external_model(&abs, None, None));
    assert!(e.contains("absolute path"), "{e}");

    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&secret, model_dir.join("link.bin")).unwrap();
        let e = load_in(&model_dir, &external_model("link.bin", None, None));
        assert!(e.contains("outside the model's folder"), "{e}");
        std::os::unix::fs::symlink(&outside, model_dir.join("linkdir")).unwrap();
        let e = load_in(
            &model_dir,
            &external_model("linkdir/secret.bin", None, None),
        );
        assert!(e.contains("outside the model's folder"), "{e}");
    }

    // Without a folder (bytes in memory) external data is refused outright.
    let e = load(&external_model("w.bin", None, None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("external data"), "{e}");
}

#[test]
fn external_data_range_is_checked_against_the_file() {
    let dir = TempDir::new("ext-range");
    std::fs::write(dir.0.join("w.bin"), [0u8; 20]).unwrap();
    let e = load_in(&dir.0, &external_model("w.bin", Some(8), Some(16)));
    assert!(
        e.contains("offset 8 + length 16") && e.contains("20 bytes"),
        "{e}"
    );
    let e = load_in(&dir.0, &external_model("w.bin", Some(100), None));
    assert!(e.contains("offset 100"), "{e}");
    let e = load_in(&dir.0, &external_model("w.bin", Some(0), Some(8)));
    assert!(e.contains("holds 8 bytes") && e.contains("need 16"), "{e}");
    let e = load_in(&dir.0, &external_model("missing.bin", None, None));
    assert!(e.contains("missing.bin"), "{e}");
}

#[test]
fn missing_initializer_names_node_and_tensor() {
    let mut m = conv_relu();
    m.graph
        .as_mut()
        .unwrap()
        .initializer
        .retain(|t| t.name.as_deref() != Some("b"));
    let e = load_err(&m);
    assert!(e.contains("node 'conv' (Conv)") && e.contains("'b'"), "{e}");
}

#[test]
fn cycle_names_a_node_on_it() {
    let m = model(
        vec![
            node("Relu", "before", &["x"], &["p"], vec![]),
            node("Add", "a", &["p", "d"], &["b"], vec![]),
            node("Relu", "b", &["b"], &["c"], vec![]),
            node("Relu", "c", &["c"], &["d"], vec![]),
            node("Relu", "after", &["d"], &["y"], vec![]),
        ],
        vec![],
        vec![vi("x", 1, &[D::F(1)])],
        vec![vi_untyped("y")],
        13,
    );
    let e = load_err(&m);
    assert!(e.contains("cycle"), "{e}");
    assert!(["'a'", "'b'", "'c'"].iter().all(|n| e.contains(n)), "{e}");
    assert!(!e.contains("'after'") && !e.contains("'before'"), "{e}");

    let self_loop = model(
        vec![node("Relu", "me", &["z"], &["z"], vec![])],
        vec![],
        vec![vi("x", 1, &[D::F(1)])],
        vec![vi_untyped("z")],
        13,
    );
    let e = load_err(&self_loop);
    assert!(e.contains("cycle") && e.contains("'me'"), "{e}");
}

#[test]
fn duplicate_producers_are_an_error() {
    let mut m = conv_relu();
    let g = m.graph.as_mut().unwrap();
    g.node.push(node("Relu", "again", &["c"], &["y"], vec![]));
    let e = load_err(&m);
    assert!(
        e.contains("'y'") && e.contains("'relu'") && e.contains("'again'"),
        "{e}"
    );

    let mut m = conv_relu();
    m.graph.as_mut().unwrap().node[1].output[0] = "w".into();
    let e = load_err(&m);
    assert!(e.contains("'w'") && e.contains("initializer"), "{e}");
}

#[test]
fn every_unsupported_op_is_listed_with_all_its_nodes() {
    let m = model(
        vec![
            node("Foo", "foo1", &["x"], &["a"], vec![]),
            node("Foo", "", &["a"], &["b"], vec![]),
            node("LSTM", "lstm", &["b"], &["c"], vec![]),
            NodeProto {
                domain: Some("com.microsoft".into()),
                ..node("FusedConv", "fc", &["c"], &["d"], vec![])
            },
            node("Relu", "ok", &["d"], &["e"], vec![]),
            node(
                "MaxPool",
                "mp",
                &["e"],
                &["y", "idx"],
                vec![a_ints("kernel_shape", &[2])],
            ),
            node("Foo", "foo3", &["e"], &["z"], vec![]),
        ],
        vec![],
        vec![vi("x", 1, &[D::F(1), D::F(1), D::F(4)])],
        vec![vi_untyped("y"), vi_untyped("z")],
        13,
    );
    let e = load(&m).unwrap_err();
    let EngineError::Unsupported { list } = &e else {
        panic!("{e}")
    };
    let expect: Vec<(String, Vec<String>)> = vec![
        (
            "Foo".into(),
            vec!["foo1".into(), "node#1 (Foo)".into(), "foo3".into()],
        ),
        ("LSTM".into(), vec!["lstm".into()]),
        ("com.microsoft::FusedConv".into(), vec!["fc".into()]),
        ("MaxPool (indices output)".into(), vec!["mp".into()]),
    ];
    assert_eq!(list, &expect);
    let msg = e.to_string();
    assert!(
        msg.contains("Foo (nodes: foo1, node#1 (Foo), foo3)"),
        "{msg}"
    );
}

#[test]
fn bad_attribute_values_name_node_op_and_value() {
    let with_attrs = |attrs: Vec<AttributeProto>| {
        let mut m = conv_relu();
        m.graph.as_mut().unwrap().node[0].attribute = attrs;
        load_err(&m)
    };
    let e = with_attrs(vec![a_str("auto_pad", "BOGUS")]);
    assert!(
        e.contains("node 'conv' (Conv)") && e.contains("\"BOGUS\""),
        "{e}"
    );
    let e = with_attrs(vec![a_ints("kernel_shape", &[3, -3])]);
    assert!(e.contains("node 'conv' (Conv)") && e.contains("-3"), "{e}");
    let e = with_attrs(vec![a_str("group", "two")]);
    assert!(
        e.contains("'group' must be INT but is STRING \"two\""),
        "{e}"
    );
    let e = with_attrs(vec![a_ints("strides", &[1, 1]), a_ints("pads", &[0, 0, 0])]);
    assert!(e.contains("pads") && e.contains("odd"), "{e}");

    let concat = model(
        vec![node(
            "Concat",
            "cat",
            &["x", "x"],
            &["y"],
            vec![a_str("axis", "one")],
        )],
        vec![],
        vec![vi("x", 1, &[D::F(1)])],
        vec![vi_untyped("y")],
        13,
    );
    let e = load_err(&concat);
    assert!(
        e.contains("node 'cat' (Concat)") && e.contains("STRING \"one\""),
        "{e}"
    );
    let mut no_axis = concat.clone();
    no_axis.graph.as_mut().unwrap().node[0].attribute.clear();
    let e = load_err(&no_axis);
    assert!(e.contains("'axis' is required"), "{e}");
}

#[test]
fn structural_errors_name_the_problem() {
    let mut m = conv_relu();
    m.opset_import.clear();
    assert!(load_err(&m).contains("opset"));

    let mut m = conv_relu();
    m.graph = None;
    assert!(load_err(&m).contains("no graph"));

    let mut m = conv_relu();
    m.graph.as_mut().unwrap().output[0].name = Some("nowhere".into());
    assert!(load_err(&m).contains("'nowhere'"));

    let mut m = conv_relu();
    m.graph.as_mut().unwrap().initializer[0].data_type = Some(8); // STRING
    let e = load_err(&m);
    assert!(e.contains("'w'") && e.contains("STRING"), "{e}");
}
