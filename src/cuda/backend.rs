//! [`CudaBackend`]: the [`Backend`] on an NVIDIA GPU. Boot (`new`,
//! `prepare_slots`) probes the device, compiles or loads the cached NVRTC
//! kernels, lowers the engine plan ([`super::lower`]), allocates one device
//! arena, the cuBLAS workspace and pinned slot memory, runs the whole frame
//! once eagerly (so cuBLAS and lazy module loading do their one-time work
//! outside capture), and captures, per ring slot, copy-in + preprocess +
//! network + copy-out into one CUDA graph.
//!
//! Frame path ([`Backend::infer`], inference thread): `cuCtxSetCurrent`,
//! one `cuGraphLaunch`, one event record and wait; no allocation. Any
//! CUDA error there ends the process with exit code 6
//! ([`super::EXIT_GPU_FAULT`]).

use super::lower::{self, GpuPlan, Launch, Precision};
use super::mem::{DeviceBuf, HostUse, PinnedBuf};
use super::nvrtc::{self, Target};
use super::{check, fault_if, CudaError, DeviceInfo};
use crate::backend::{Backend, BackendError, InferTiming};
use crate::engine::{load_optimized, Bindings, Limits};
use crate::frame::{FrameDesc, PixelFormat};
use crate::preprocess::{Letterbox, LetterboxInfo, PAD_VALUE};
use crate::ring::{HostBuffer, SlotBuffers};
use crate::source::monotonic_ns;
use cudarc::cublas::sys as cb;
use cudarc::driver::sys;
use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// cuBLAS workspace, allocated at boot and set before capture (32 MiB is
/// what cuBLAS documents for Hopper; less for older GPUs would do).
const CUBLAS_WORKSPACE: usize = 32 << 20;

/// Boot options of the CUDA backend.
#[derive(Debug, Clone)]
pub struct CudaOptions {
    pub ordinal: usize,
    pub precision: Precision,
    /// Kernel cache folder (`None`: [`nvrtc::cache_dir`]'s default).
    pub cache_dir: Option<PathBuf>,
}

/// `Tap` in preprocess.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tap {
    pub i0: i32,
    pub i1: i32,
    pub w: f32,
}

/// `PreParams` in preprocess.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PreParams {
    pub src: u64,
    pub dst: u64,
    pub remap: u64,
    pub xs: u64,
    pub ys: u64,
    pub format: i32,
    pub src_w: i32,
    pub src_h: i32,
    pub dst_w: i32,
    pub dst_h: i32,
    pub new_w: i32,
    pub new_h: i32,
    pub top: i32,
    pub left: i32,
    pub pad: f32,
}

/// The `FMT_*` code of preprocess.cu.
pub fn format_code(f: PixelFormat) -> i32 {
    match f {
        PixelFormat::Yuyv => 0,
        PixelFormat::Uyvy => 1,
        PixelFormat::Nv12 => 2,
        PixelFormat::Grey => 3,
        PixelFormat::Rgb24 => 4,
        PixelFormat::I420 => 5,
        PixelFormat::I422 => 6,
        PixelFormat::I444 => 7,
    }
}

/// cv2.INTER_LINEAR taps: the CPU letterbox's own (`preprocess::taps`),
/// in the kernel's layout. Boot only (allocates).
pub fn linear_taps(src: usize, dst: usize) -> Vec<Tap> {
    crate::preprocess::taps(src, dst)
        .into_iter()
        .map(|t| Tap {
            i0: t.i0 as i32,
            i1: t.i1 as i32,
            w: t.w,
        })
        .collect()
}

/// One ring slot on the GPU side.
pub(crate) struct SlotGpu {
    pub frame: Arc<PinnedBuf>,
    pub out: Arc<PinnedBuf>,
    /// Device copy of the frame (`None` when the pinned frame is mapped).
    pub dev_frame: Option<DeviceBuf>,
    pub exec: sys::CUgraphExec,
    pub done: sys::CUevent,
    /// Timing events between the phases (GPU check only).
    pub marks: Option<[sys::CUevent; 5]>,
}

pub struct CudaBackend {
    pub(crate) info: DeviceInfo,
    pub(crate) ctx: sys::CUcontext,
    pub(crate) stream: sys::CUstream,
    pub(crate) cublas: cb::cublasHandle_t,
    _cublas_ws: DeviceBuf,
    _modules: Vec<sys::CUmodule>,
    pub(crate) funcs: HashMap<&'static str, sys::CUfunction>,
    pub(crate) plan: GpuPlan,
    pub(crate) pre: PreParams,
    _taps: Vec<DeviceBuf>,
    remap: Option<DeviceBuf>,
    letterbox: LetterboxInfo,
    pub(crate) src: FrameDesc,
    input_size: [usize; 2],
    output_shape: Vec<usize>,
    pub(crate) out_len: usize,
    /// For buffers that are not a slot's own (boot warm-up, checks).
    pub(crate) staging: Option<SlotGpu>,
    pub(crate) slots: Vec<SlotGpu>,
    pending: Option<Vec<SlotBuffers>>,
    mapped: bool,
    pub(crate) model_path: PathBuf,
}

// SAFETY: the raw CUDA handles are used from one thread at a time (boot,
// then the inference thread, which makes the context current first).
unsafe impl Send for CudaBackend {}

fn device_err(e: CudaError) -> BackendError {
    BackendError::Cuda(e)
}

impl CudaBackend {
    /// Boot: everything but the per-slot graphs ([`Backend::prepare_slots`]).
    pub fn new(
        model_path: &Path,
        src: FrameDesc,
        input_size: Option<[usize; 2]>,
        opts: &CudaOptions,
    ) -> Result<CudaBackend, BackendError> {
        let info = super::probe(opts.ordinal)?;
        super::load_cublas()?;
        let mut b = Bindings::new();
        if let Some([w, h]) = input_size {
            b.shapes.push(Some(vec![1, 3, h, w]));
        }
        let g = load_optimized(model_path, &b, &Limits::default())?;
        // SAFETY: the driver is loaded (probe); plain calls with valid
        // out-pointers; the context is made current before anything else.
        unsafe {
            let mut dev: sys::CUdevice = 0;
            check(
                sys::cuDeviceGet(&mut dev, opts.ordinal as i32),
                "cuDeviceGet",
            )?;
            let mut ctx: sys::CUcontext = std::ptr::null_mut();
            check(
                sys::cuDevicePrimaryCtxRetain(&mut ctx, dev),
                "retaining the primary context",
            )?;
            check(sys::cuCtxSetCurrent(ctx), "cuCtxSetCurrent")?;
            let mut stream: sys::CUstream = std::ptr::null_mut();
            check(
                sys::cuStreamCreate(
                    &mut stream,
                    sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32,
                ),
                "creating a stream",
            )?;

            // Kernels: cached cubins for this exact GPU, else NVRTC.
            let arch = (info.cc.0 * 10 + info.cc.1) as u32;
            let dir = nvrtc::cache_dir(opts.cache_dir.as_deref());
            let mut modules = Vec::new();
            let mut funcs = HashMap::new();
            for (name, src_code) in nvrtc::SOURCES {
                let t0 = std::time::Instant::now();
                let (img, cached) = nvrtc::compile_cached(
                    name,
                    src_code,
                    Target::Cubin(arch),
                    info.driver_version,
                    dir.as_deref(),
                )?;
                log::info!(
                    "kernels {name}.cu for sm_{arch}: {} in {:.0} ms",
                    if cached { "from the cache" } else { "compiled" },
                    t0.elapsed().as_secs_f64() * 1e3
                );
                let mut m: sys::CUmodule = std::ptr::null_mut();
                check(
                    sys::cuModuleLoadData(&mut m, img.as_ptr() as *const c_void),
                    &format!("loading the {name} kernels"),
                )?;
                modules.push(m);
                let names = super::nvrtc::KERNELS
                    .iter()
                    .find(|(module, _)| module == name)
                    .map_or(&[][..], |(_, k)| *k);
                for f in names {
                    let c = CString::new(*f).unwrap_or_default();
                    let mut func: sys::CUfunction = std::ptr::null_mut();
                    check(
                        sys::cuModuleGetFunction(&mut func, m, c.as_ptr()),
                        &format!("finding kernel {f}"),
                    )?;
                    funcs.insert(*f, func);
                }
            }

            // cuBLAS on our stream, with its workspace set before capture.
            let mut cublas: cb::cublasHandle_t = std::ptr::null_mut();
            cublas_check(cb::cublasCreate_v2(&mut cublas), "cublasCreate")?;
            cublas_check(
                cb::cublasSetStream_v2(cublas, stream as cb::cudaStream_t),
                "cublasSetStream",
            )?;
            let ws = DeviceBuf::zeroed(CUBLAS_WORKSPACE, "the cuBLAS workspace")?;
            cublas_check(
                cb::cublasSetWorkspace_v2(cublas, ws.ptr as *mut c_void, ws.bytes),
                "cublasSetWorkspace",
            )?;

            let plan = lower::build(&g, opts.precision)?;
            if plan.inputs.len() != 1 {
                return Err(BackendError::Model(format!(
                    "{}: a detector has one input, this model has {}",
                    model_path.display(),
                    plan.inputs.len()
                )));
            }
            let shape = plan.inputs[0].shape.clone();
            if shape.len() != 4 || shape[0] != 1 || shape[1] != 3 {
                return Err(BackendError::Model(format!(
                    "{}: input '{}' is {} but a detector input must be 1x3xHxW",
                    model_path.display(),
                    plan.inputs[0].name,
                    crate::engine::tensor::shape_string(&shape)
                )));
            }
            let Some(out0) = plan.outputs.first() else {
                return Err(BackendError::Model(format!(
                    "{}: the model has no output",
                    model_path.display()
                )));
            };
            if out0.ptr == 0 {
                return Err(BackendError::Model(format!(
                    "{}: output '{}' is a constant",
                    model_path.display(),
                    out0.name
                )));
            }
            let output_shape = out0.shape.clone();
            let out_len = out0.len;
            let (h, w) = (shape[2], shape[3]);
            let lb = Letterbox::new(src, w, h)?;
            let info_lb = lb.info();
            let (new_w, new_h) = lb.resized();
            let xs = DeviceBuf::from_slice(&linear_taps(src.width, new_w), "letterbox columns")?;
            let ys = DeviceBuf::from_slice(&linear_taps(src.height, new_h), "letterbox rows")?;
            let pre = PreParams {
                src: 0,
                dst: plan.inputs[0].ptr,
                remap: 0,
                xs: xs.ptr,
                ys: ys.ptr,
                format: format_code(src.format),
                src_w: src.width as i32,
                src_h: src.height as i32,
                dst_w: w as i32,
                dst_h: h as i32,
                new_w: new_w as i32,
                new_h: new_h as i32,
                top: info_lb.pad_y as i32,
                left: info_lb.pad_x as i32,
                pad: PAD_VALUE as f32 / 255.0,
            };
            let mapped = info.integrated && info.can_map_host;
            let mut be = CudaBackend {
                info,
                ctx,
                stream,
                cublas,
                _cublas_ws: ws,
                _modules: modules,
                funcs,
                plan,
                pre,
                _taps: vec![xs, ys],
                remap: None,
                letterbox: info_lb,
                src,
                input_size: [w, h],
                output_shape,
                out_len,
                staging: None,
                slots: Vec::new(),
                pending: None,
                mapped,
                model_path: model_path.to_path_buf(),
            };
            // One eager run of every kernel (preprocess included): cuBLAS
            // and lazy module loading do their one-time work outside capture.
            be.run_eager().map_err(device_err)?;
            let probe_frame = DeviceBuf::zeroed(src.bytes(), "a warm-up frame")?;
            be.enqueue_preprocess(probe_frame.ptr)?;
            check(sys::cuStreamSynchronize(stream), "warming up preprocessing")?;
            drop(probe_frame);
            let st = be.new_slot(false).map_err(device_err)?;
            be.staging = Some(st);
            Ok(be)
        }
    }

    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }

    /// Use an undistortion remap: per model-input pixel a source (x, y),
    /// row-major `dst_h x dst_w` (NaN or outside: padding). Boot only:
    /// call before [`Backend::prepare_slots`]; the staging graph is
    /// captured again.
    pub fn set_remap(&mut self, map: &[[f32; 2]]) -> Result<(), CudaError> {
        let want = self.input_size[0] * self.input_size[1];
        if map.len() != want {
            return Err(CudaError::Model(format!(
                "remap has {} entries but the model input has {want} pixels",
                map.len()
            )));
        }
        self.make_current()?;
        let flat: Vec<f32> = map.iter().flat_map(|p| [p[0], p[1]]).collect();
        let b = DeviceBuf::from_slice(&flat, "the undistortion remap")?;
        self.pre.remap = b.ptr;
        self.remap = Some(b);
        if let Some(old) = self.staging.take() {
            destroy_slot(old);
        }
        self.staging = Some(self.new_slot(false)?);
        Ok(())
    }

    pub(crate) fn make_current(&self) -> Result<(), CudaError> {
        // SAFETY: ctx is the retained primary context.
        unsafe { check(sys::cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent") }
    }

    /// Enqueue the network (every node) on the stream.
    ///
    /// # Safety
    /// The context is current; the plan's pointers are live (they are, for
    /// as long as `self`).
    pub(crate) unsafe fn enqueue_network(&self) -> Result<(), CudaError> {
        for n in &self.plan.nodes {
            for l in &n.launches {
                self.enqueue(l)?;
            }
        }
        Ok(())
    }

    /// # Safety
    /// As [`Self::enqueue_network`].
    pub(crate) unsafe fn enqueue(&self, l: &Launch) -> Result<(), CudaError> {
        let f = match l {
            Launch::Kernel { params, .. } => *self.funcs.get(params.kernel()).ok_or_else(|| {
                CudaError::Model(format!("kernel {} not loaded", params.kernel()))
            })?,
            Launch::Gemm(_) => std::ptr::null_mut(),
        };
        lower::enqueue(l, f, self.stream, self.cublas)
    }

    /// # Safety
    /// As [`Self::enqueue_network`]; `src` is a device address of a frame.
    pub(crate) unsafe fn enqueue_preprocess(&self, src: u64) -> Result<(), CudaError> {
        let mut p = self.pre;
        p.src = src;
        let plane = (p.dst_w * p.dst_h) as usize;
        let grid = plane.div_ceil(256).clamp(1, 65_535) as u32;
        let f = *self
            .funcs
            .get("preprocess")
            .ok_or_else(|| CudaError::Model("preprocess kernel not loaded".into()))?;
        let mut args = [&mut p as *mut PreParams as *mut c_void];
        check(
            sys::cuLaunchKernel(
                f,
                grid,
                1,
                1,
                256,
                1,
                1,
                0,
                self.stream,
                args.as_mut_ptr(),
                std::ptr::null_mut(),
            ),
            "preprocess",
        )
    }

    /// Run the network once, outside any graph, and wait. Boot / checks.
    pub(crate) fn run_eager(&self) -> Result<(), CudaError> {
        self.make_current()?;
        // SAFETY: context current; plan pointers live.
        unsafe {
            self.enqueue_network()?;
            check(sys::cuStreamSynchronize(self.stream), "running the network")
        }
    }

    /// Pinned memory, device frame, events and the captured graph of one
    /// slot. Boot only.
    pub(crate) fn new_slot(&self, timed: bool) -> Result<SlotGpu, CudaError> {
        self.make_current()?;
        let fb = self.src.bytes();
        let frame = Arc::new(PinnedBuf::new(fb, HostUse::Staging, self.mapped)?);
        let out = Arc::new(PinnedBuf::new(
            self.out_len * 4,
            HostUse::Readback,
            self.mapped,
        )?);
        let dev_frame = if self.mapped {
            None
        } else {
            Some(DeviceBuf::zeroed(fb, "a device frame")?)
        };
        // SAFETY: context current; valid out-pointers.
        unsafe {
            let mut done: sys::CUevent = std::ptr::null_mut();
            check(
                sys::cuEventCreate(
                    &mut done,
                    sys::CUevent_flags::CU_EVENT_BLOCKING_SYNC as u32
                        | sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32,
                ),
                "creating an event",
            )?;
            let marks = if timed {
                let mut m = [std::ptr::null_mut(); 5];
                for e in m.iter_mut() {
                    check(
                        sys::cuEventCreate(e, sys::CUevent_flags::CU_EVENT_DEFAULT as u32),
                        "creating a timing event",
                    )?;
                }
                Some(m)
            } else {
                None
            };
            let mut slot = SlotGpu {
                frame,
                out,
                dev_frame,
                exec: std::ptr::null_mut(),
                done,
                marks,
            };
            slot.exec = self.capture(&slot)?;
            Ok(slot)
        }
    }

    /// Capture copy-in, preprocess, network and copy-out of `s` into a graph.
    ///
    /// # Safety
    /// Context current; `s`'s buffers live as long as the graph.
    unsafe fn capture(&self, s: &SlotGpu) -> Result<sys::CUgraphExec, CudaError> {
        check(
            sys::cuStreamBeginCapture_v2(
                self.stream,
                sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
            ),
            "beginning graph capture",
        )?;
        let body = || -> Result<(), CudaError> {
            let mark = |i: usize| -> Result<(), CudaError> {
                match &s.marks {
                    Some(m) => check(sys::cuEventRecord(m[i], self.stream), "timing event"),
                    None => Ok(()),
                }
            };
            mark(0)?;
            let src = match &s.dev_frame {
                Some(d) => {
                    check(
                        sys::cuMemcpyHtoDAsync_v2(
                            d.ptr,
                            s.frame.ptr as *const c_void,
                            self.src.bytes(),
                            self.stream,
                        ),
                        "frame copy-in",
                    )?;
                    d.ptr
                }
                None => s.frame.device_ptr,
            };
            mark(1)?;
            self.enqueue_preprocess(src)?;
            mark(2)?;
            self.enqueue_network()?;
            mark(3)?;
            let o = &self.plan.outputs[0];
            if s.out.device_ptr != 0 {
                check(
                    sys::cuMemcpyDtoDAsync_v2(s.out.device_ptr, o.ptr, o.len * 4, self.stream),
                    "output copy-out",
                )?;
            } else {
                check(
                    sys::cuMemcpyDtoHAsync_v2(
                        s.out.ptr as *mut c_void,
                        o.ptr,
                        o.len * 4,
                        self.stream,
                    ),
                    "output copy-out",
                )?;
            }
            mark(4)
        };
        let r = body();
        let mut graph: sys::CUgraph = std::ptr::null_mut();
        let end = check(
            sys::cuStreamEndCapture(self.stream, &mut graph),
            "ending graph capture",
        );
        let result = r.and(end).and_then(|_| {
            let mut exec: sys::CUgraphExec = std::ptr::null_mut();
            check(
                sys::cuGraphInstantiateWithFlags(&mut exec, graph, 0),
                "instantiating the frame graph",
            )?;
            check(
                sys::cuGraphUpload(exec, self.stream),
                "uploading the frame graph",
            )?;
            Ok(exec)
        });
        if !graph.is_null() {
            let _ = sys::cuGraphDestroy(graph);
        }
        result
    }

    /// Launch slot `s`'s graph and wait for it. Frame path: never
    /// allocates; a CUDA error ends the process (exit code 6).
    #[inline]
    pub(crate) fn launch_and_wait(&self, s: &SlotGpu) {
        // SAFETY: the graph and event belong to this backend's context,
        // made current first on whichever thread calls this.
        unsafe {
            fault_if(sys::cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent");
            fault_if(sys::cuGraphLaunch(s.exec, self.stream), "cuGraphLaunch");
            fault_if(sys::cuEventRecord(s.done, self.stream), "cuEventRecord");
            fault_if(
                sys::cuEventSynchronize(s.done),
                "waiting for the frame graph",
            );
        }
    }
}

fn cublas_check(st: cb::cublasStatus_t, what: &str) -> Result<(), CudaError> {
    if st == cb::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(CudaError::Cublas {
            what: what.to_string(),
            status: st as u32,
        })
    }
}

fn destroy_slot(s: SlotGpu) {
    // SAFETY: handles created by this backend; errors at teardown ignored.
    unsafe {
        if !s.exec.is_null() {
            let _ = sys::cuGraphExecDestroy(s.exec);
        }
        let _ = sys::cuEventDestroy_v2(s.done);
        if let Some(m) = s.marks {
            for e in m {
                let _ = sys::cuEventDestroy_v2(e);
            }
        }
    }
}

/// Copy `frame` into a slot's pinned frame memory (at most its size).
fn fill_frame(s: &SlotGpu, frame: &[u8]) {
    let n = s.frame.bytes.min(frame.len());
    // SAFETY: the pinned allocation holds at least `bytes`; the backend
    // only writes the staging slot's memory this way, which the ring never
    // sees, and the GPU is idle (the previous graph was waited for).
    unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), s.frame.ptr, n) }
}

fn out_slice(s: &SlotGpu, len: usize) -> &[f32] {
    // SAFETY: page-aligned pinned allocation of at least len * 4 bytes.
    unsafe { std::slice::from_raw_parts(s.out.ptr as *const f32, len) }
}

impl Backend for CudaBackend {
    fn describe(&self) -> String {
        self.info.describe()
    }

    fn input_size(&self) -> [usize; 2] {
        self.input_size
    }

    fn letterbox(&self) -> LetterboxInfo {
        self.letterbox
    }

    fn rectified_input(&self) -> bool {
        self.remap.is_some()
    }

    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn prepare_slots(
        &mut self,
        n: usize,
        frame_bytes: usize,
        output_len: usize,
    ) -> Result<(), BackendError> {
        if frame_bytes != self.src.bytes() || output_len != self.out_len {
            return Err(BackendError::Model(format!(
                "ring slots of {frame_bytes} bytes / {output_len} floats do not match the CUDA backend's {} / {}",
                self.src.bytes(),
                self.out_len
            )));
        }
        for s in self.slots.drain(..) {
            destroy_slot(s);
        }
        let mut bufs = Vec::with_capacity(n);
        for _ in 0..n {
            let s = self.new_slot(false).map_err(device_err)?;
            // SAFETY: the Arcs keep the pinned memory alive as long as the
            // HostBuffers; the GPU touches it only inside `infer` for this
            // slot, while the inference thread holds the slot's token.
            let b = unsafe {
                SlotBuffers {
                    frame: HostBuffer::external(
                        s.frame.ptr,
                        frame_bytes,
                        Box::new(Arc::clone(&s.frame)),
                    ),
                    output: HostBuffer::external(
                        s.out.ptr as *mut f32,
                        output_len,
                        Box::new(Arc::clone(&s.out)),
                    ),
                }
            };
            bufs.push(b);
            self.slots.push(s);
        }
        log::info!(
            "cuda: {n} ring slots in pinned host memory{}, one CUDA graph each",
            if self.mapped {
                " (mapped: integrated GPU, no copies)"
            } else {
                ""
            }
        );
        self.pending = Some(bufs);
        Ok(())
    }

    fn take_slot_buffers(&mut self) -> Option<Vec<SlotBuffers>> {
        self.pending.take()
    }

    /// `pre_done_ns` is the graph launch time: preprocessing runs inside
    /// the frame's graph, so the network time includes it.
    fn infer(&mut self, slot: usize, frame: &[u8], out: &mut [f32]) -> InferTiming {
        let own = self.slots.get(slot).is_some_and(|s| {
            std::ptr::eq(s.frame.ptr as *const u8, frame.as_ptr())
                && std::ptr::eq(s.out.ptr as *const f32, out.as_ptr())
        });
        let t = monotonic_ns();
        if own {
            self.launch_and_wait(&self.slots[slot]);
        } else if let Some(st) = &self.staging {
            fill_frame(st, frame);
            self.launch_and_wait(st);
            let n = out.len().min(self.out_len);
            out[..n].copy_from_slice(&out_slice(st, self.out_len)[..n]);
        }
        InferTiming { pre_done_ns: t }
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        let _ = self.make_current();
        for s in self.slots.drain(..) {
            destroy_slot(s);
        }
        if let Some(s) = self.staging.take() {
            destroy_slot(s);
        }
        // SAFETY: handles created in `new`; teardown errors are ignored.
        // The primary context stays retained: memory the ring still holds
        // is freed with it when the process ends.
        unsafe {
            let _ = cb::cublasDestroy_v2(self.cublas);
            let _ = sys::cuStreamDestroy_v2(self.stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_params_have_the_cuda_layout() {
        assert_eq!(std::mem::size_of::<PreParams>(), 5 * 8 + 9 * 4 + 4);
        assert_eq!(std::mem::size_of::<Tap>(), 12);
    }

    #[test]
    fn taps_clamp_at_both_edges() {
        let t = linear_taps(4, 8);
        assert_eq!(
            t[0],
            Tap {
                i0: 0,
                i1: 1,
                w: 0.0
            }
        );
        assert_eq!(t[7].i0, 3);
        assert_eq!(t[7].w, 0.0);
        let id = linear_taps(5, 5);
        assert!(id
            .iter()
            .enumerate()
            .all(|(i, t)| t.i0 == i as i32 && t.w == 0.0));
    }

    /// Without a driver the backend says CUDA is unavailable (no panic).
    #[test]
    fn new_without_cuda_is_a_clear_error() {
        if super::super::probe(0).is_ok() {
            return; // a real GPU: covered by `perceptd gpu-check`
        }
        let desc = FrameDesc {
            format: PixelFormat::Rgb24,
            width: 64,
            height: 48,
        };
        let opts = CudaOptions {
            ordinal: 0,
            precision: Precision::Fp32,
            cache_dir: None,
        };
        match CudaBackend::new(Path::new("models/perceptd-synth.onnx"), desc, None, &opts) {
            Err(BackendError::Cuda(CudaError::Unavailable(why))) => {
                assert!(why.contains("libcuda"), "{why}")
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("a CUDA backend without CUDA"),
        }
    }
}
