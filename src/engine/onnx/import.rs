//! `ModelProto` → [`Graph`]: the default-domain opset, initializers as
//! constants, runtime inputs in order, declared types and shapes, every
//! node converted (all unsupported ops collected before failing), the graph
//! checked (every input defined, one producer per tensor, no cycle) and
//! the nodes sorted topologically.
//!
//! Tensors are created in this order: initializers, runtime inputs, then
//! node outputs in topological order. A node output without declared type
//! gets dtype `F32` and `declared: None` until the planner infers it.
//!
//! Boot only (main thread); allocates.

use super::convert::{convert, is_default_domain, Converted, Lowered, NodeCtx};
use super::proto::{
    tensor_shape_proto::dimension, type_proto, GraphProto, ModelProto, ValueInfoProto,
};
use super::tensor_io::{dtype_code_name, tensor_from_proto, LoadCtx};
use crate::engine::error::EngineError;
use crate::engine::ir::{Dim, Graph, Node, Op, TensorId, TensorInfo};
use crate::engine::tensor::{DType, Tensor};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

/// Declared dtype and shape from a `ValueInfoProto`.
#[derive(Clone)]
struct Declared {
    dtype: DType,
    dims: Option<Vec<Dim>>,
}

pub(crate) fn import_model(model: &ModelProto, ctx: &mut LoadCtx) -> Result<Graph, EngineError> {
    let gp = model
        .graph
        .as_ref()
        .ok_or_else(|| ctx.invalid("the model has no graph"))?;
    let opset = default_opset(model, ctx)?;
    let mut b = Builder {
        g: Graph {
            opset,
            ..Graph::default()
        },
        ids: HashMap::new(),
        used: HashSet::new(),
        next_suffix: HashMap::new(),
    };
    b.constants_and_inputs(gp, ctx)?;

    let mut declared: HashMap<&str, Declared> = HashMap::new();
    for vi in &gp.value_info {
        // value_info is only a hint: entries we cannot use are ignored.
        if let (Some(name), Ok(d)) = (vi.name.as_deref(), value_type(vi, "value_info", ctx)) {
            declared.insert(name, d);
        }
    }
    for vi in &gp.output {
        let name = vi.name.as_deref().unwrap_or("");
        if name.is_empty() {
            return Err(ctx.invalid("a graph output has no name"));
        }
        declared.insert(name, value_type(vi, "graph output", ctx)?);
    }

    let nodes = NodeView::all(gp);
    let lowered = convert_all(&nodes, opset, ctx)?;
    let order = check_and_sort(&nodes, &b, ctx)?;
    for name in nodes.iter().flat_map(|n| n.outputs.iter()) {
        b.used.insert(name.to_string());
    }
    for i in order {
        b.emit(&nodes[i], &lowered[i], &declared);
    }

    for vi in &gp.output {
        let name = vi.name.as_deref().unwrap_or("");
        let id = *b.ids.get(name).ok_or_else(|| {
            ctx.invalid(format!(
                "graph output '{name}' is not produced by any node, nor a graph input or initializer"
            ))
        })?;
        b.g.outputs.push(id);
    }
    Ok(b.g)
}

/// The opset of the default domain (`""` or `"ai.onnx"`).
fn default_opset(model: &ModelProto, ctx: &LoadCtx) -> Result<i64, EngineError> {
    let mut found = None;
    for o in &model.opset_import {
        if is_default_domain(o.domain.as_deref().unwrap_or("")) {
            let v = o.version.unwrap_or(0);
            if found.is_some_and(|f| f != v) {
                return Err(ctx.invalid(
                    "the model imports the default ONNX domain twice with different versions",
                ));
            }
            found = Some(v);
        }
    }
    match found {
        Some(v) if v >= 1 => Ok(v),
        Some(v) => Err(ctx.invalid(format!(
            "the model imports ONNX opset {v}, which does not exist"
        ))),
        None => Err(ctx.invalid("the model imports no opset of the default ONNX domain")),
    }
}

/// Dtype and declared shape of a graph input/output or value_info entry.
fn value_type(vi: &ValueInfoProto, what: &str, ctx: &LoadCtx) -> Result<Declared, EngineError> {
    let name = vi.name.as_deref().unwrap_or("");
    let tt = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(tt)) => tt,
        Some(_) => return Err(ctx.invalid(format!("{what} '{name}' is not a tensor (sequences, maps, optional and sparse values are not supported)"))),
        None => return Err(ctx.invalid(format!("{what} '{name}' has no type"))),
    };
    let code = tt.elem_type.unwrap_or(0);
    let dtype = DType::from_onnx_code(code).ok_or_else(|| {
        ctx.invalid(format!(
            "{what} '{name}' has element type {}, which the engine does not support",
            dtype_code_name(code)
        ))
    })?;
    let dims = match &tt.shape {
        None => None,
        Some(s) => {
            let mut dims = Vec::with_capacity(s.dim.len());
            for d in &s.dim {
                dims.push(match &d.value {
                    Some(dimension::Value::DimValue(v)) => {
                        Dim::Fixed(usize::try_from(*v).map_err(|_| {
                            ctx.invalid(format!("{what} '{name}' declares dimension {v}"))
                        })?)
                    }
                    Some(dimension::Value::DimParam(p)) if !p.is_empty() => Dim::Symbol(p.clone()),
                    _ => Dim::Symbol("?".to_string()),
                });
            }
            Some(dims)
        }
    };
    Ok(Declared { dtype, dims })
}

/// A node's fields with ONNX's optional-string defaults resolved.
struct NodeView<'a> {
    /// The node's name, or `node#<index> (<op>)` when it has none.
    name: String,
    op_type: &'a str,
    domain: &'a str,
    inputs: &'a [String],
    /// Outputs without trailing empty names (optional outputs not asked for).
    outputs: &'a [String],
    proto: &'a super::proto::NodeProto,
}

impl<'a> NodeView<'a> {
    fn all(gp: &'a GraphProto) -> Vec<NodeView<'a>> {
        gp.node
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let op_type = n.op_type.as_deref().unwrap_or("");
                let name = match n.name.as_deref() {
                    Some(s) if !s.is_empty() => s.to_string(),
                    _ => format!("node#{i} ({op_type})"),
                };
                let keep = n
                    .output
                    .iter()
                    .rposition(|o| !o.is_empty())
                    .map_or(0, |p| p + 1);
                NodeView {
                    name,
                    op_type,
                    domain: n.domain.as_deref().unwrap_or(""),
                    inputs: &n.input,
                    outputs: &n.output[..keep],
                    proto: n,
                }
            })
            .collect()
    }

    fn label(&self) -> String {
        format!("node '{}' ({})", self.name, self.op_type)
    }
}

/// Converts every node; unsupported ops are all collected first, then the
/// first attribute error (if any) is reported.
fn convert_all(
    nodes: &[NodeView],
    opset: i64,
    ctx: &mut LoadCtx,
) -> Result<Vec<Option<Lowered>>, EngineError> {
    let mut unsupported: Vec<(String, Vec<String>)> = Vec::new();
    let mut unsupported_at: HashMap<String, usize> = HashMap::new();
    let mut first_err = None;
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        if n.op_type.is_empty() {
            first_err.get_or_insert_with(|| ctx.invalid(format!("{} has no op_type", n.label())));
            out.push(None);
            continue;
        }
        let nc = NodeCtx {
            name: &n.name,
            op_type: n.op_type,
            domain: n.domain,
            attrs: &n.proto.attribute,
            opset,
            n_inputs: n.inputs.len(),
            n_outputs: n.outputs.len(),
        };
        match convert(&nc, ctx) {
            Ok(Converted::Ok(l)) => {
                if n.outputs.is_empty() {
                    first_err.get_or_insert_with(|| {
                        ctx.invalid(format!("{} has no outputs", n.label()))
                    });
                }
                out.push(Some(l));
            }
            Ok(Converted::Unsupported(key)) => {
                match unsupported_at.get(&key) {
                    Some(&at) => unsupported[at].1.push(n.name.clone()),
                    None => {
                        unsupported_at.insert(key.clone(), unsupported.len());
                        unsupported.push((key, vec![n.name.clone()]));
                    }
                }
                out.push(None);
            }
            Err(e) => {
                first_err.get_or_insert(e);
                out.push(None);
            }
        }
    }
    if !unsupported.is_empty() {
        return Err(EngineError::Unsupported { list: unsupported });
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(out)
}

/// Checks that every tensor has exactly one source and that every node
/// input is defined, then orders the nodes topologically (stable: a valid
/// ONNX order is kept as it is).
fn check_and_sort(
    nodes: &[NodeView],
    b: &Builder,
    ctx: &LoadCtx,
) -> Result<Vec<usize>, EngineError> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in n.outputs.iter().filter(|o| !o.is_empty()) {
            if b.ids.contains_key(o.as_str()) {
                return Err(ctx.invalid(format!(
                    "{} writes tensor '{o}', which is already a graph input or initializer",
                    n.label()
                )));
            }
            if let Some(&p) = producer.get(o.as_str()) {
                return Err(ctx.invalid(format!(
                    "tensor '{o}' is produced twice: by {} and by {}",
                    nodes[p].label(),
                    n.label()
                )));
            }
            producer.insert(o, i);
        }
    }
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for inp in n.inputs.iter().filter(|s| !s.is_empty()) {
            if b.ids.contains_key(inp.as_str()) {
                continue;
            }
            match producer.get(inp.as_str()) {
                Some(&p) => {
                    preds[i].push(p);
                    succs[p].push(i);
                }
                None => {
                    return Err(ctx.invalid(format!(
                        "{} reads tensor '{inp}', which is not a graph input, an initializer or the output of any node",
                        n.label()
                    )))
                }
            }
        }
    }
    // Kahn's algorithm, smallest original index first.
    let mut indeg: Vec<usize> = preds.iter().map(|p| p.len()).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..nodes.len())
        .filter(|&i| indeg[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &s in &succs[i] {
            indeg[s] -= 1;
            if indeg[s] == 0 {
                ready.push(Reverse(s));
            }
        }
    }
    if order.len() == nodes.len() {
        return Ok(order);
    }
    // Every node left has a predecessor that is also left: walking
    // backwards from any of them must come round to a node on a cycle.
    let start = (0..nodes.len()).find(|&i| indeg[i] > 0).unwrap_or(0);
    let mut seen_at: HashMap<usize, usize> = HashMap::new();
    let mut path = vec![start];
    let mut cur = start;
    loop {
        seen_at.insert(cur, path.len() - 1);
        let Some(&p) = preds[cur].iter().find(|&&p| indeg[p] > 0) else {
            break;
        };
        if let Some(&at) = seen_at.get(&p) {
            // path[j + 1] feeds path[j]: reversed, the cycle in data-flow order.
            let mut cycle: Vec<String> = path[at..]
                .iter()
                .rev()
                .map(|&i| format!("'{}'", nodes[i].name))
                .collect();
            cycle.push(format!("'{}'", nodes[cur].name));
            return Err(ctx.invalid(format!(
                "the graph has a cycle through {}: {}",
                nodes[p].label(),
                cycle.join(" -> ")
            )));
        }
        path.push(p);
        cur = p;
    }
    Err(ctx.invalid(format!(
        "the graph has a cycle involving {}",
        nodes[start].label()
    )))
}

struct Builder {
    g: Graph,
    ids: HashMap<String, TensorId>,
    /// Every tensor name in the model, so generated names never collide.
    used: HashSet<String>,
    next_suffix: HashMap<String, usize>,
}

impl Builder {
    fn add(&mut self, info: TensorInfo) -> TensorId {
        self.used.insert(info.name.clone());
        let name = info.name.clone();
        let id = self.g.add_tensor(info);
        self.ids.insert(name, id);
        id
    }

    fn fresh_name(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        // Resume numbering where the last clash on this base stopped, so
        // that many clashes (hostile node names) stay linear.
        let k = self.next_suffix.entry(base.to_string()).or_insert(1);
        while self.used.contains(&name) {
            name = format!("{base}_{k}");
            *k += 1;
        }
        self.used.insert(name.clone());
        name
    }

    /// A tensor that only the importer knows about (intermediate of an
    /// expanded op, unnamed optional output, constant from an attribute).
    fn add_anonymous(&mut self, base: &str, value: Option<Tensor>) -> TensorId {
        let name = self.fresh_name(base);
        let (dtype, declared, shape) = match &value {
            Some(t) => (t.dtype, Some(fixed(&t.shape)), Some(t.shape.clone())),
            None => (DType::F32, None, None),
        };
        self.g.add_tensor(TensorInfo {
            name,
            dtype,
            declared,
            shape,
            value: value.map(Arc::new),
        })
    }

    fn constants_and_inputs(
        &mut self,
        gp: &GraphProto,
        ctx: &mut LoadCtx,
    ) -> Result<(), EngineError> {
        for (i, tp) in gp.initializer.iter().enumerate() {
            let name = tp.name.as_deref().unwrap_or("");
            if name.is_empty() {
                return Err(ctx.invalid(format!("initializer #{i} has no name")));
            }
            if self.ids.contains_key(name) {
                return Err(ctx.invalid(format!("initializer '{name}' is defined twice")));
            }
            let t = tensor_from_proto(tp, &format!("initializer '{name}'"), name, ctx)?;
            self.add(TensorInfo {
                name: name.to_string(),
                dtype: t.dtype,
                declared: Some(fixed(&t.shape)),
                shape: Some(t.shape.clone()),
                value: Some(Arc::new(t)),
            });
        }
        if let Some(sp) = gp.sparse_initializer.first() {
            let name = sp
                .values
                .as_ref()
                .and_then(|v| v.name.as_deref())
                .unwrap_or("");
            return Err(ctx.invalid(format!(
                "sparse initializers are not supported ('{name}' is one of {})",
                gp.sparse_initializer.len()
            )));
        }
        let n_init = self.g.tensors.len();
        for vi in &gp.input {
            let name = vi.name.as_deref().unwrap_or("");
            if name.is_empty() {
                return Err(ctx.invalid("a graph input has no name"));
            }
            match self.ids.get(name) {
                // An input with a default value (initializer): a constant.
                Some(&id) if id < n_init => continue,
                Some(_) => return Err(ctx.invalid(format!("graph input '{name}' is listed twice"))),
                None => {}
            }
            let d = value_type(vi, "graph input", ctx)?;
            let id = self.add(TensorInfo {
                name: name.to_string(),
                dtype: d.dtype,
                declared: d.dims,
                shape: None,
                value: None,
            });
            self.g.inputs.push(id);
        }
        Ok(())
    }

    fn output_tensor(&mut self, name: &str, declared: &HashMap<&str, Declared>) -> TensorId {
        let d = declared.get(name);
        self.add(TensorInfo {
            name: name.to_string(),
            dtype: d.map_or(DType::F32, |d| d.dtype),
            declared: d.and_then(|d| d.dims.clone()),
            shape: None,
            value: None,
        })
    }

    /// Adds the node(s) for `n`. The graph has been checked: every
    /// non-empty input name is already defined.
    fn emit(
        &mut self,
        n: &NodeView,
        lowered: &Option<Lowered>,
        declared: &HashMap<&str, Declared>,
    ) {
        let Some(lowered) = lowered else {
            return;
        };
        let mut inputs: Vec<Option<TensorId>> = n
            .inputs
            .iter()
            .map(|s| {
                if s.is_empty() {
                    None
                } else {
                    self.ids.get(s.as_str()).copied()
                }
            })
            .collect();
        let mut outputs = Vec::with_capacity(n.outputs.len());
        for (k, o) in n.outputs.iter().enumerate() {
            outputs.push(if o.is_empty() {
                self.add_anonymous(&format!("{}:output{k}", n.name), None)
            } else {
                self.output_tensor(o, declared)
            });
        }
        match lowered {
            Lowered::Op(op) => self.g.nodes.push(Node {
                name: n.name.clone(),
                op: op.clone(),
                inputs,
                outputs,
            }),
            Lowered::OpWithConst(op, at, t) => {
                let id = self.add_anonymous(&format!("{}:input{at}", n.name), Some(t.clone()));
                if inputs.len() <= *at {
                    inputs.resize(*at + 1, None);
                }
                inputs[*at] = Some(id);
                self.g.nodes.push(Node {
                    name: n.name.clone(),
                    op: op.clone(),
                    inputs,
                    outputs,
                });
            }
            Lowered::Chain(bop) => {
                // ((x0 op x1) op x2) op ... : the last node writes the output.
                let mut acc = inputs[0];
                let last = inputs.len() - 1;
                for (k, &x) in inputs.iter().enumerate().skip(1) {
                    let (name, out) = if k == last {
                        (n.name.clone(), outputs.clone())
                    } else {
                        let t = self.add_anonymous(&format!("{}:partial{k}", n.name), None);
                        (format!("{}/{k}", n.name), vec![t])
                    };
                    self.g.nodes.push(Node {
                        name,
                        op: Op::Binary(*bop),
                        inputs: vec![acc, x],
                        outputs: out.clone(),
                    });
                    acc = out.first().copied();
                }
            }
        }
    }
}

fn fixed(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::Fixed(d)).collect()
}
