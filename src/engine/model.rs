//! The CPU model: a specialised, optimised graph lowered to a flat list of
//! steps over one arena. Building it (boot) resolves every pointer, shape
//! and parameter; [`CpuModel::run`] (frame path, inference thread) is a loop
//! over the steps and never allocates.

use super::cpu::{Buf, CpuKernel, StepIo, ThreadPool};
use super::error::EngineError;
use super::ir::{Graph, Op, TensorId};
use super::ops::{self, OutInfo};
use super::plan::{assign_offsets, Interval};
use super::tensor::{numel, DType, Storage, Tensor};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A zeroed, 64-byte aligned f32 buffer allocated once at boot.
pub struct AlignedBuf {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: AlignedBuf owns its allocation like a Box<[f32]>.
unsafe impl Send for AlignedBuf {}
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    pub fn zeroed(len: usize) -> AlignedBuf {
        if len == 0 {
            return AlignedBuf {
                ptr: std::ptr::NonNull::<f32>::dangling().as_ptr(),
                len: 0,
            };
        }
        let layout = Self::layout(len);
        // SAFETY: layout has non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) } as *mut f32;
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        AlignedBuf { ptr, len }
    }

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len * 4, 64).unwrap_or(Layout::new::<f32>())
    }

    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: ptr is valid for len elements (or dangling with len 0).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as above, and &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn sub(&self, off: usize, len: usize) -> Buf {
        debug_assert!(off + len <= self.len);
        // SAFETY: in bounds per the planner.
        Buf {
            ptr: unsafe { self.ptr.add(off) },
            len,
        }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: allocated in `zeroed` with this layout.
            unsafe { dealloc(self.ptr as *mut u8, Self::layout(self.len)) }
        }
    }
}

struct Step {
    kernel: Box<dyn CpuKernel>,
    /// Op name (after fusion) and output shape, for per-step profiles.
    label: String,
    ins: Vec<Buf>,
    outs: Vec<Buf>,
    inplace: bool,
}

/// A graph input or output as the caller sees it.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub shape: Vec<usize>,
    /// Declared element type; integer outputs are held as f32 values.
    pub dtype: DType,
    buf: Buf,
    /// Outputs folded entirely at boot.
    constant: Option<Arc<Tensor>>,
}

/// Figures `perceptd check` and `bench-model` print.
#[derive(Debug, Clone, Default)]
pub struct PlanStats {
    pub arena_bytes: usize,
    /// Sum of the sizes of every run-phase tensor, as if none shared memory.
    pub tensor_bytes: usize,
    pub scratch_bytes: usize,
    pub constant_bytes: usize,
    pub steps: usize,
    /// Op name (after fusion) → count of run-phase steps.
    pub op_counts: BTreeMap<String, usize>,
    pub views: usize,
    pub inplace: usize,
}

pub struct CpuModel {
    steps: Vec<Step>,
    arena: AlignedBuf,
    scratch: AlignedBuf,
    pool: ThreadPool,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    /// Keeps the constants that steps read through raw pointers alive.
    _constants: Vec<Arc<Tensor>>,
    stats: PlanStats,
}

/// Ops that only reinterpret their input's shape: the output aliases it.
pub fn is_view(op: &Op) -> bool {
    matches!(
        op,
        Op::Reshape { .. }
            | Op::Flatten { .. }
            | Op::Squeeze { .. }
            | Op::Unsqueeze { .. }
            | Op::Identity
            | Op::Dropout
    )
}

/// Where every run-phase tensor lives in the one arena: shared by the CPU
/// model and the CUDA backend (`crate::cuda::lower`), which plan the same
/// graph the same way. Boot only; allocates.
#[derive(Debug, Clone)]
pub struct ArenaPlan {
    /// The tensor whose buffer each tensor uses (views and in-place
    /// outputs share their input's).
    pub root: Vec<TensorId>,
    /// Element offset of each root buffer (`usize::MAX`: none).
    pub offset_of: Vec<usize>,
    /// Arena size in f32 elements.
    pub arena_len: usize,
    /// Per node: its output 0 reuses its in-place input's buffer.
    pub inplace: Vec<bool>,
    /// Sum of the sizes of every run-phase tensor (bytes).
    pub tensor_bytes: usize,
}

impl ArenaPlan {
    /// Element offset of tensor `t`'s buffer.
    pub fn offset(&self, t: TensorId) -> usize {
        self.offset_of[self.root[t]]
    }
}

/// Plan the arena of `g`: `views[n]` when node n's output aliases its input
/// 0 (see [`is_view`]); `inplace_input[n]` the input node n's kernel may
/// overwrite with its output, if any.
pub fn plan_arena(g: &Graph, views: &[bool], inplace_input: &[Option<usize>]) -> ArenaPlan {
    let nt = g.tensors.len();
    let is_rt = |t: TensorId| g.tensors[t].value.is_none();
    // 2. Roots: views share their input's buffer.
    let mut root: Vec<TensorId> = (0..nt).collect();
    for (n, &view) in g.nodes.iter().zip(views) {
        if view {
            if let Some(Some(i)) = n.inputs.first() {
                root[n.outputs[0]] = root[*i];
            }
        }
    }

    // 3. Lifetimes per root in step units (node index + 1; inputs at 0).
    let end = g.nodes.len() + 1;
    let mut first = vec![usize::MAX; nt];
    let mut last = vec![0usize; nt];
    for &t in &g.inputs {
        first[root[t]] = 0;
    }
    for (s, n) in g.nodes.iter().enumerate() {
        for &o in &n.outputs {
            let r = root[o];
            first[r] = first[r].min(s + 1);
        }
        for &i in n.inputs.iter().flatten() {
            if is_rt(i) {
                let r = root[i];
                last[r] = last[r].max(s + 1);
            }
        }
    }
    // Inputs stay intact for the whole run, so running again without
    // refilling them gives the same result.
    let input_roots: Vec<TensorId> = g.inputs.iter().map(|&t| root[t]).collect();
    for &r in &input_roots {
        last[r] = end;
    }
    let mut output_roots: Vec<TensorId> = Vec::new();
    for &t in &g.outputs {
        if is_rt(t) {
            output_roots.push(root[t]);
            last[root[t]] = end;
        }
    }

    // 4. In place: the output takes over an input buffer that dies here.
    let mut inplace = vec![false; g.nodes.len()];
    for (s, (n, cand)) in g.nodes.iter().zip(inplace_input).enumerate() {
        let Some(ii) = *cand else {
            continue;
        };
        let Some(Some(t)) = n.inputs.get(ii) else {
            continue;
        };
        if !is_rt(*t) {
            continue;
        }
        let r = root[*t];
        let out = n.outputs[0];
        let ro = root[out];
        let same_len = numel(g.tensors[r].shape.as_deref().unwrap_or(&[]))
            == numel(g.tensors[out].shape.as_deref().unwrap_or(&[]));
        let read_twice = n.inputs.iter().flatten().filter(|&&x| root[x] == r).count() > 1;
        if last[r] == s + 1
            && same_len
            && !read_twice
            && !input_roots.contains(&r)
            && !output_roots.contains(&r)
            && ro == out
        {
            for x in root.iter_mut() {
                if *x == ro {
                    *x = r;
                }
            }
            last[r] = last[r].max(last[ro]);
            if output_roots.contains(&ro) {
                output_roots.push(r);
            }
            inplace[s] = true;
        }
    }

    // 5. Place the root buffers.
    let mut roots: Vec<TensorId> = Vec::new();
    let size_of = |t: TensorId| numel(g.tensors[t].shape.as_deref().unwrap_or(&[]));
    let tensor_bytes: usize = g
        .inputs
        .iter()
        .copied()
        .chain(g.nodes.iter().flat_map(|n| n.outputs.iter().copied()))
        .filter(|&t| is_rt(t))
        .map(|t| size_of(t) * 4)
        .sum();
    for t in 0..nt {
        if root[t] == t && is_rt(t) && first[t] != usize::MAX {
            roots.push(t);
        }
    }
    let intervals: Vec<Interval> = roots
        .iter()
        .map(|&r| Interval {
            size: numel(g.tensors[r].shape.as_deref().unwrap_or(&[])),
            first: first[r],
            last: last[r].max(first[r]),
        })
        .collect();
    let (offsets, arena_len) = assign_offsets(&intervals);
    let mut offset_of = vec![usize::MAX; nt];
    for (k, &r) in roots.iter().enumerate() {
        offset_of[r] = offsets[k];
    }
    ArenaPlan {
        root,
        offset_of,
        arena_len,
        inplace,
        tensor_bytes,
    }
}

/// Bytes of the float constants (weights) the plan keeps.
fn float_constant_bytes(g: &Graph) -> u64 {
    g.tensors
        .iter()
        .filter_map(|t| t.value.as_ref())
        .filter(|v| v.dtype.is_float())
        .map(|v| v.numel() as u64 * 4)
        .fold(0, u64::saturating_add)
}

impl CpuModel {
    /// Lower a specialised, optimised graph, within the default
    /// [`Limits::max_plan_bytes`](crate::engine::Limits). Boot only.
    pub fn build(g: &Graph, threads: usize) -> Result<CpuModel, EngineError> {
        Self::build_within(g, threads, crate::engine::Limits::default().max_plan_bytes)
    }

    /// Lower a specialised, optimised graph whose host memory (arena,
    /// scratch and float constants, [`PlanStats`]) must stay within
    /// `max_plan_bytes`: checked once the plan is known, before the arena
    /// and the scratch are allocated ([`EngineError::PlanLimit`]). Boot
    /// only.
    pub fn build_within(
        g: &Graph,
        threads: usize,
        max_plan_bytes: u64,
    ) -> Result<CpuModel, EngineError> {
        let is_rt = |t: TensorId| g.tensors[t].value.is_none();

        // 1. Lower every node (collecting all failures) and note views.
        let mut kernels: Vec<Option<Box<dyn CpuKernel>>> = Vec::with_capacity(g.nodes.len());
        let mut errors = Vec::new();
        for n in &g.nodes {
            let view = is_view(&n.op)
                && n.outputs.len() == 1
                && n.inputs.first().copied().flatten().is_some_and(is_rt);
            if view {
                kernels.push(None);
                continue;
            }
            let infos = super::specialize::value_infos(g, &n.inputs);
            let outs: Vec<OutInfo> = n
                .outputs
                .iter()
                .map(|&o| OutInfo {
                    dtype: g.tensors[o].dtype,
                    shape: g.tensors[o].shape.clone().unwrap_or_default(),
                })
                .collect();
            for (k, o) in n.outputs.iter().enumerate() {
                let storage = g.tensors[*o].dtype.storage();
                let int_ok =
                    matches!(storage, Storage::I64 | Storage::Bool) && ops::runs_on_integers(&n.op);
                if storage != Storage::F32 && !int_ok {
                    errors.push(EngineError::node(
                        &n.name,
                        &n.op.name(),
                        format!(
                            "output {k} ('{}') is {} and computed at run time; only float tensors may be (integer and bool tensors must be computable at boot, except the indices of TopK and what integer arithmetic, comparisons, logic, Where, Cast, Gather(Elements) and data movement make of them)",
                            g.tensors[*o].name, g.tensors[*o].dtype
                        ),
                    ));
                }
            }
            match ops::lower(&n.op, &infos, &outs) {
                Ok(k) => kernels.push(Some(k)),
                Err(e) => {
                    errors.push(EngineError::node(&n.name, &n.op.name(), e.0));
                    kernels.push(None);
                }
            }
        }
        for &t in &g.inputs {
            if !g.tensors[t].dtype.is_float() {
                errors.push(EngineError::Input {
                    name: g.tensors[t].name.clone(),
                    msg: format!(
                        "is {}; run-time inputs must be float tensors",
                        g.tensors[t].dtype
                    ),
                });
            }
        }
        if let Some(first) = errors.into_iter().next() {
            return Err(first);
        }

        let views: Vec<bool> = kernels.iter().map(|k| k.is_none()).collect();
        let candidates: Vec<Option<usize>> = kernels
            .iter()
            .map(|k| k.as_ref().and_then(|k| k.inplace_input()))
            .collect();
        let ArenaPlan {
            root,
            offset_of,
            arena_len,
            inplace,
            tensor_bytes,
        } = plan_arena(g, &views, &candidates);
        let scratch_len = kernels
            .iter()
            .flatten()
            .map(|k| k.scratch_len())
            .max()
            .unwrap_or(0);
        let constant_bytes = float_constant_bytes(g);
        let needed = [arena_len, scratch_len]
            .iter()
            .map(|&n| (n as u64).saturating_mul(4))
            .fold(constant_bytes, u64::saturating_add);
        if needed > max_plan_bytes {
            return Err(EngineError::PlanLimit {
                arena: arena_len as u64 * 4,
                scratch: scratch_len as u64 * 4,
                constants: constant_bytes,
                limit: max_plan_bytes,
            });
        }
        let arena = AlignedBuf::zeroed(arena_len);
        let buf_of = |t: TensorId| -> Buf {
            let len = numel(g.tensors[t].shape.as_deref().unwrap_or(&[]));
            arena.sub(offset_of[root[t]], len)
        };

        // 6. Steps with resolved buffers.
        let mut constants: Vec<Arc<Tensor>> = Vec::new();
        let mut steps = Vec::new();
        let mut stats = PlanStats::default();
        for (s, (n, k)) in g.nodes.iter().zip(kernels).enumerate() {
            let Some(kernel) = k else {
                stats.views += 1;
                continue;
            };
            let ins = n
                .inputs
                .iter()
                .map(|i| match i {
                    None => Buf::empty(),
                    Some(t) if is_rt(*t) => buf_of(*t),
                    Some(t) => match &g.tensors[*t].value {
                        Some(v) if v.as_f32().is_some() => {
                            let v = Arc::clone(v);
                            let data = v.as_f32().unwrap_or(&[]);
                            // Kernels never write their inputs; the cast
                            // only fits the uniform Buf type.
                            let b = Buf {
                                ptr: data.as_ptr() as *mut f32,
                                len: data.len(),
                            };
                            constants.push(v);
                            b
                        }
                        _ => Buf::empty(),
                    },
                })
                .collect();
            let outs = n.outputs.iter().map(|&o| buf_of(o)).collect();
            *stats.op_counts.entry(n.op.name()).or_default() += 1;
            if inplace[s] {
                stats.inplace += 1;
            }
            let shape = n
                .outputs
                .first()
                .and_then(|&o| g.tensors[o].shape.as_deref())
                .unwrap_or(&[]);
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            steps.push(Step {
                kernel,
                label: format!("{} {} {}", n.op.name(), dims.join("x"), n.name),
                ins,
                outs,
                inplace: inplace[s],
            });
        }

        let port = |t: TensorId| Port {
            name: g.tensors[t].name.clone(),
            shape: g.tensors[t].shape.clone().unwrap_or_default(),
            dtype: g.tensors[t].dtype,
            buf: if is_rt(t) { buf_of(t) } else { Buf::empty() },
            constant: g.tensors[t].value.clone(),
        };
        let inputs = g.inputs.iter().map(|&t| port(t)).collect();
        let outputs = g.outputs.iter().map(|&t| port(t)).collect();

        stats.arena_bytes = arena_len * 4;
        stats.tensor_bytes = tensor_bytes;
        stats.scratch_bytes = scratch_len * 4;
        stats.constant_bytes = constant_bytes as usize;
        stats.steps = steps.len();
        Ok(CpuModel {
            steps,
            arena,
            scratch: AlignedBuf::zeroed(scratch_len),
            pool: ThreadPool::new(threads),
            inputs,
            outputs,
            _constants: constants,
            stats,
        })
    }

    pub fn inputs(&self) -> &[Port] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[Port] {
        &self.outputs
    }

    pub fn stats(&self) -> &PlanStats {
        &self.stats
    }

    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// The arena region of input `i`, to be filled before [`run`](Self::run).
    pub fn input_mut(&mut self, i: usize) -> &mut [f32] {
        let b = self.inputs[i].buf;
        // SAFETY: the region lies inside `self.arena`, which `&mut self`
        // borrows exclusively.
        unsafe { std::slice::from_raw_parts_mut(b.ptr, b.len) }
    }

    /// Output `i` after [`run`](Self::run). Frame path: never allocates.
    pub fn output(&self, i: usize) -> &[f32] {
        let p = &self.outputs[i];
        if let Some(c) = &p.constant {
            return c.as_f32().unwrap_or(&[]);
        }
        // SAFETY: inside the arena, borrowed shared through &self.
        unsafe { std::slice::from_raw_parts(p.buf.ptr, p.buf.len) }
    }

    /// Output `i` as an owned tensor of its declared type (allocates).
    pub fn output_tensor(&self, i: usize) -> Tensor {
        let p = &self.outputs[i];
        match &p.constant {
            Some(c) => (**c).clone(),
            None if p.dtype.storage() == Storage::I64 => Tensor::from_i64(
                p.shape.clone(),
                self.output(i).iter().map(|&v| v as i64).collect(),
            )
            .with_dtype(p.dtype),
            None => Tensor::from_f32(p.shape.clone(), self.output(i).to_vec()).with_dtype(p.dtype),
        }
    }

    /// Run the model once on the current inputs.
    /// Frame path: never allocates.
    pub fn run(&mut self) {
        self.run_unless(|| false);
    }

    /// [`run`](Self::run), giving up between two steps once `stop()` says
    /// so (the pipeline passes the SIGTERM flag: one inference on a slow
    /// CPU can outlast the second the process has to end). False: it gave
    /// up and the outputs are not valid. Never allocates.
    pub fn run_unless(&mut self, stop: impl Fn() -> bool) -> bool {
        let scratch = self.scratch.as_mut_slice();
        for s in &self.steps {
            if stop() {
                return false;
            }
            // SAFETY: the planner gave every live tensor a disjoint arena
            // region, except the in-place output, which is exactly the
            // buffer of the kernel's in-place input.
            let io = unsafe { StepIo::new(&s.ins, &s.outs, s.inplace) };
            s.kernel.run(&io, scratch, &self.pool);
        }
        true
    }

    /// Each step's label (op name after fusion, output shape, ONNX node
    /// name), in run order: what [`run_profiled`](Self::run_profiled)
    /// times.
    pub fn step_labels(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(|s| s.label.as_str())
    }

    /// [`run`](Self::run), adding each step's wall time in nanoseconds to
    /// `acc[step]` (steps beyond `acc.len()` are run but not timed).
    /// Never allocates.
    pub fn run_profiled(&mut self, acc: &mut [u64]) {
        let scratch = self.scratch.as_mut_slice();
        for (i, s) in self.steps.iter().enumerate() {
            let t = std::time::Instant::now();
            // SAFETY: as in `run`.
            let io = unsafe { StepIo::new(&s.ins, &s.outs, s.inplace) };
            s.kernel.run(&io, scratch, &self.pool);
            if let Some(a) = acc.get_mut(i) {
                *a += t.elapsed().as_nanos() as u64;
            }
        }
    }

    /// Size of the arena in elements (for tests and reports).
    pub fn arena_len(&self) -> usize {
        self.arena.len()
    }
}
