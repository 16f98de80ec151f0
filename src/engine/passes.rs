//! Graph rewrites after specialisation: Identity/Dropout removal, BatchNorm
//! folded into the preceding Conv, activations fused into Conv epilogues
//! (including the exporters' x·sigmoid(x) spelling of SiLU), and dead-node
//! removal. Each pass keeps the graph valid on its own.
//!
//! Boot only; allocates.

use super::ir::{Activation, BinaryOp, Graph, Node, Op, TensorId};
use super::tensor::Tensor;
use std::sync::Arc;

/// Run every pass in order.
pub fn optimize(g: &mut Graph) {
    remove_constant_nodes(g);
    remove_identities(g);
    fold_batchnorm(g);
    fuse_silu(g);
    fuse_conv_activation(g);
    remove_dead_nodes(g);
}

/// Nodes whose outputs were all folded to constants at boot.
fn remove_constant_nodes(g: &mut Graph) {
    let tensors = &g.tensors;
    g.nodes
        .retain(|n| !n.outputs.iter().all(|&o| tensors[o].value.is_some()));
}

/// Point every reader of `from` at `to` instead.
fn replace_uses(g: &mut Graph, from: TensorId, to: TensorId) {
    for n in &mut g.nodes {
        for i in n.inputs.iter_mut().flatten() {
            if *i == from {
                *i = to;
            }
        }
    }
}

/// Identity and inference-mode Dropout forward their input unchanged.
fn remove_identities(g: &mut Graph) {
    let mut i = 0;
    while i < g.nodes.len() {
        let n = &g.nodes[i];
        let forwarding = matches!(n.op, Op::Identity | Op::Dropout);
        // A Dropout whose mask output is used stays (its kernel writes it).
        let mask_used = n.outputs.len() > 1 && g.consumer_counts()[n.outputs[1]] > 0;
        let out = n.outputs.first().copied();
        let inp = n.inputs.first().copied().flatten();
        match (forwarding && !mask_used, inp, out) {
            (true, Some(inp), Some(out)) if !g.outputs.contains(&out) => {
                replace_uses(g, out, inp);
                g.nodes.remove(i);
            }
            _ => i += 1,
        }
    }
}

fn single_consumer(g: &Graph, t: TensorId) -> Option<usize> {
    if g.outputs.contains(&t) {
        return None;
    }
    let mut found = None;
    for (ni, n) in g.nodes.iter().enumerate() {
        let uses = n.inputs.iter().flatten().filter(|&&i| i == t).count();
        if uses > 0 {
            if found.is_some() || uses > 1 {
                return None;
            }
            found = Some(ni);
        }
    }
    found
}

fn const_f32(g: &Graph, t: Option<TensorId>) -> Option<Arc<Tensor>> {
    let v = g.tensors[t?].value.as_ref()?;
    v.as_f32()?;
    Some(Arc::clone(v))
}

/// Conv → BatchNormalization (inference) becomes one Conv with rescaled
/// weights and bias.
fn fold_batchnorm(g: &mut Graph) {
    let mut ci = 0;
    while ci < g.nodes.len() {
        if let Some(bn) = batchnorm_after_conv(g, ci) {
            let (w, b, bn_out) = bn;
            let conv = &mut g.nodes[ci];
            let wid = g.tensors.len();
            g.tensors.push(super::ir::TensorInfo {
                name: format!("{}.folded_weight", conv.name),
                dtype: super::tensor::DType::F32,
                declared: None,
                shape: Some(w.shape.clone()),
                value: Some(Arc::new(w)),
            });
            let bid = g.tensors.len();
            g.tensors.push(super::ir::TensorInfo {
                name: format!("{}.folded_bias", conv.name),
                dtype: super::tensor::DType::F32,
                declared: None,
                shape: Some(b.shape.clone()),
                value: Some(Arc::new(b)),
            });
            let conv = &mut g.nodes[ci];
            conv.inputs = vec![conv.inputs[0], Some(wid), Some(bid)];
            let old_out = conv.outputs[0];
            conv.outputs[0] = bn_out;
            // The BN node now has no producer for its input; drop it.
            g.nodes.retain(|n| {
                !(matches!(n.op, Op::BatchNormalization { .. })
                    && n.outputs[0] == bn_out
                    && n.inputs[0] == Some(old_out))
            });
            // Conv index may have shifted if the BN came before it (it cannot: BN reads the conv output).
        }
        ci += 1;
    }
}

fn batchnorm_after_conv(g: &Graph, ci: usize) -> Option<(Tensor, Tensor, TensorId)> {
    let conv = &g.nodes[ci];
    let Op::Conv(attrs) = &conv.op else {
        return None;
    };
    if attrs.activation != Activation::None {
        return None;
    }
    let out = conv.outputs[0];
    let bi = single_consumer(g, out)?;
    let bn = &g.nodes[bi];
    let Op::BatchNormalization { epsilon } = bn.op else {
        return None;
    };
    if bn.outputs.len() != 1 || bn.inputs.first().copied().flatten() != Some(out) {
        return None;
    }
    let w = const_f32(g, conv.inputs.get(1).copied().flatten())?;
    let bias = match conv.inputs.get(2).copied().flatten() {
        Some(t) => Some(const_f32(g, Some(t))?),
        None => None,
    };
    let p: Vec<Arc<Tensor>> = (1..5)
        .map(|k| const_f32(g, bn.inputs.get(k).copied().flatten()))
        .collect::<Option<_>>()?;
    let cout = *w.shape.first()?;
    let (scale, beta, mean, var) = (
        p[0].as_f32()?,
        p[1].as_f32()?,
        p[2].as_f32()?,
        p[3].as_f32()?,
    );
    if [scale.len(), beta.len(), mean.len(), var.len()]
        .iter()
        .any(|&l| l != cout)
    {
        return None;
    }
    let per = w.numel() / cout.max(1);
    let wv = w.as_f32()?;
    let mut nw = Vec::with_capacity(wv.len());
    let mut nb = Vec::with_capacity(cout);
    for c in 0..cout {
        let a = scale[c] / (var[c] + epsilon).sqrt();
        nw.extend(wv[c * per..(c + 1) * per].iter().map(|&x| x * a));
        let b0 = bias
            .as_ref()
            .and_then(|b| b.as_f32().map(|v| v[c]))
            .unwrap_or(0.0);
        nb.push((b0 - mean[c]) * a + beta[c]);
    }
    Some((
        Tensor::from_f32(w.shape.clone(), nw),
        Tensor::from_f32(vec![cout], nb),
        bn.outputs[0],
    ))
}

/// `Mul(x, Sigmoid(x))` (either operand order) becomes `Act(Silu)(x)`.
fn fuse_silu(g: &mut Graph) {
    let mut si = 0;
    while si < g.nodes.len() {
        let s = &g.nodes[si];
        if s.op != Op::Act(Activation::Sigmoid) {
            si += 1;
            continue;
        }
        let (Some(x), sig_out) = (s.inputs[0], s.outputs[0]) else {
            si += 1;
            continue;
        };
        let Some(mi) = single_consumer(g, sig_out) else {
            si += 1;
            continue;
        };
        let m = &g.nodes[mi];
        let is_silu = m.op == Op::Binary(BinaryOp::Mul)
            && m.inputs.len() == 2
            && ((m.inputs[0] == Some(x) && m.inputs[1] == Some(sig_out))
                || (m.inputs[1] == Some(x) && m.inputs[0] == Some(sig_out)));
        if !is_silu {
            si += 1;
            continue;
        }
        let mul_out = m.outputs[0];
        let name = m.name.clone();
        g.nodes[mi] = Node {
            name,
            op: Op::Act(Activation::Silu),
            inputs: vec![Some(x)],
            outputs: vec![mul_out],
        };
        g.nodes.remove(si);
    }
}

/// Conv followed by an activation that is its only reader: fuse.
fn fuse_conv_activation(g: &mut Graph) {
    let mut ci = 0;
    while ci < g.nodes.len() {
        let fused = match &g.nodes[ci].op {
            Op::Conv(a) if a.activation == Activation::None => {
                single_consumer(g, g.nodes[ci].outputs[0]).and_then(|ai| {
                    let act = match &g.nodes[ai].op {
                        Op::Act(act) => Some(*act),
                        Op::Clip { min, max } if g.nodes[ai].inputs.len() <= 1 => {
                            Some(Activation::Clip(
                                min.unwrap_or(f32::NEG_INFINITY),
                                max.unwrap_or(f32::INFINITY),
                            ))
                        }
                        _ => None,
                    }?;
                    Some((ai, act))
                })
            }
            _ => None,
        };
        if let Some((ai, act)) = fused {
            let act_out = g.nodes[ai].outputs[0];
            if let Op::Conv(a) = &mut g.nodes[ci].op {
                a.activation = act;
            }
            g.nodes[ci].outputs[0] = act_out;
            g.nodes.remove(ai);
            if ai < ci {
                ci -= 1;
            }
        }
        ci += 1;
    }
}

/// Drop nodes none of whose outputs reach a graph output.
fn remove_dead_nodes(g: &mut Graph) {
    let mut live = vec![false; g.tensors.len()];
    for &o in &g.outputs {
        live[o] = true;
    }
    let mut keep = vec![false; g.nodes.len()];
    for (ni, n) in g.nodes.iter().enumerate().rev() {
        if n.outputs.iter().any(|&o| live[o]) {
            keep[ni] = true;
            for &i in n.inputs.iter().flatten() {
                live[i] = true;
            }
        }
    }
    let mut k = keep.iter();
    g.nodes.retain(|_| *k.next().unwrap_or(&false));
}
