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

use super::driver::{self, Device, Gpu, Kernels};
use super::lower::{self, GpuPlan, Launch, Precision};
use super::mem::{DeviceBuf, HostUse, PinnedBuf};
use super::nvrtc;
use super::{check, fault_if, CudaError, DeviceInfo};
use crate::backend::{Backend, BackendError, InferTiming};
use crate::engine::{load_optimized, Bindings, Limits};
use crate::frame::{FrameDesc, PixelFormat};
use crate::preprocess::{InputStyle, Letterbox, LetterboxInfo};
use crate::ring::{HostBuffer, SlotBuffers};
use crate::source::monotonic_ns;
use cudarc::cublas::sys as cb;
use cudarc::driver::sys;
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
    /// The detector family's preprocessing.
    pub style: InputStyle,
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
    /// The padding grey, normalised (114 / `div`).
    pub pad: f32,
    /// What pixel values are divided by (255, or 1 for YOLOX).
    pub div: f32,
    /// 1: write the planes B, G, R (YOLOX); 0: R, G, B.
    pub bgr: i32,
}

impl PreParams {
    /// The kernel's parameters for letterboxing a `src` frame into the
    /// `lb` geometry: `xs`/`ys` are the device addresses of the column and
    /// row taps ([`linear_taps`]), `src`/`dst` the frame and the tensor
    /// (0 where they are patched in per slot), no remap table.
    pub fn letterbox(lb: &Letterbox, src: u64, dst: u64, xs: u64, ys: u64) -> PreParams {
        let desc = lb.src();
        let info = lb.info();
        let (dst_w, dst_h) = lb.dst_size();
        let (new_w, new_h) = lb.resized();
        PreParams {
            src,
            dst,
            remap: 0,
            xs,
            ys,
            format: format_code(desc.format),
            src_w: desc.width as i32,
            src_h: desc.height as i32,
            dst_w: dst_w as i32,
            dst_h: dst_h as i32,
            new_w: new_w as i32,
            new_h: new_h as i32,
            top: info.pad_y as i32,
            left: info.pad_x as i32,
            pad: lb.pixels().pad(),
            div: lb.pixels().div,
            bgr: i32::from(lb.pixels().bgr),
        }
    }
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
    /// Pinned, write-combined: the source writes it, the GPU copies it in.
    pub frame: Arc<PinnedBuf>,
    /// Pinned, cached: the GPU copies the output there, the CPU reads it.
    pub out: Arc<PinnedBuf>,
    /// Device copy of the frame, which the preprocessing kernel gathers
    /// from (also on integrated GPUs, see [`CudaBackend::new_on`]).
    pub dev_frame: DeviceBuf,
    pub exec: sys::CUgraphExec,
    pub done: sys::CUevent,
    /// Timing events between the phases (GPU check only), recorded inside
    /// the graph (`CU_EVENT_RECORD_EXTERNAL`).
    pub marks: Option<[sys::CUevent; 5]>,
}

/// What the backend loads into its context: kernels and cuBLAS. Released
/// on drop, also when boot fails half-way (so `auto` leaves nothing behind
/// when it falls back to the CPU).
pub(crate) struct Core {
    pub dev: Arc<Device>,
    pub kernels: Kernels,
    pub blas: cb::cublasHandle_t,
    _ws: Option<DeviceBuf>,
}

impl Drop for Core {
    fn drop(&mut self) {
        let _ = self.dev.make_current();
        let _ = self.dev.sync("teardown");
        // SAFETY: handles created in `CudaBackend::new_on` in this context;
        // nothing uses them any more; teardown errors are ignored.
        unsafe {
            if !self.blas.is_null() {
                self.dev.gpu.blas_destroy(self.blas);
            }
            self.dev.gpu.unload_kernels(&self.kernels);
        }
    }
}

pub struct CudaBackend {
    pub(crate) info: DeviceInfo,
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
    pub(crate) model_path: PathBuf,
    /// Last: dropped after the slots' graphs are destroyed.
    pub(crate) core: Core,
}

// SAFETY: the raw CUDA handles are used from one thread at a time (boot,
// then the inference thread, which makes the context current first).
unsafe impl Send for CudaBackend {}

fn device_err(e: CudaError) -> BackendError {
    BackendError::Cuda(e)
}

impl CudaBackend {
    /// Boot on the real driver: everything but the per-slot graphs
    /// ([`Backend::prepare_slots`]).
    pub fn new(
        model_path: &Path,
        src: FrameDesc,
        input_size: Option<[usize; 2]>,
        opts: &CudaOptions,
    ) -> Result<CudaBackend, BackendError> {
        CudaBackend::new_on(&driver::CUDA, model_path, src, input_size, opts)
    }

    /// Boot through `gpu` (the driver, or the tests' emulator).
    ///
    /// Frames are always copied into device memory before preprocessing,
    /// integrated GPUs (Jetson) included: there pinned host memory is
    /// uncached for the GPU (CUDA for Tegra, "memory types"), and the
    /// kernel's bilinear gather reads every source byte several times, so
    /// one streaming copy into cached device memory is cheaper than
    /// gathering from mapped memory.
    pub fn new_on(
        gpu: &'static dyn Gpu,
        model_path: &Path,
        src: FrameDesc,
        input_size: Option<[usize; 2]>,
        opts: &CudaOptions,
    ) -> Result<CudaBackend, BackendError> {
        let info = gpu.probe(opts.ordinal)?;
        let mut b = Bindings::new();
        if let Some([w, h]) = input_size {
            b.shapes.push(Some(vec![1, 3, h, w]));
        }
        let g = load_optimized(model_path, &b, &Limits::default())?;
        let dev = Device::open(gpu, opts.ordinal)?;
        let cache = nvrtc::cache_dir(opts.cache_dir.as_deref());
        let kernels = gpu.load_kernels(&info, cache.as_deref())?;
        let mut core = Core {
            dev: Arc::clone(&dev),
            kernels,
            blas: std::ptr::null_mut(),
            _ws: None,
        };
        // cuBLAS on our stream, with its workspace set before capture.
        let ws = DeviceBuf::zeroed(&dev, CUBLAS_WORKSPACE, "the cuBLAS workspace")?;
        // SAFETY: the context is current (Device::open); ws lives in core.
        core.blas = unsafe { gpu.blas_create(dev.stream, ws.ptr, ws.bytes)? };
        core._ws = Some(ws);

        let plan = lower::build(&g, opts.precision, &dev)?;
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
        let lb = Letterbox::with_style(src, w, h, opts.style)?;
        let info_lb = lb.info();
        let (new_w, new_h) = lb.resized();
        let xs = DeviceBuf::from_slice(&dev, &linear_taps(src.width, new_w), "letterbox columns")?;
        let ys = DeviceBuf::from_slice(&dev, &linear_taps(src.height, new_h), "letterbox rows")?;
        let pre = PreParams::letterbox(&lb, 0, plan.inputs[0].ptr, xs.ptr, ys.ptr);
        let mut be = CudaBackend {
            info,
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
            model_path: model_path.to_path_buf(),
            core,
        };
        // One eager run of every kernel (preprocess included): cuBLAS
        // and lazy module loading do their one-time work outside capture.
        be.run_eager().map_err(device_err)?;
        let probe_frame = DeviceBuf::zeroed(&dev, src.bytes(), "a warm-up frame")?;
        // SAFETY: context current; probe_frame and the plan are live.
        unsafe { be.enqueue_preprocess(probe_frame.ptr)? };
        dev.sync("warming up preprocessing")?;
        drop(probe_frame);
        let st = be.new_slot(false).map_err(device_err)?;
        be.staging = Some(st);
        Ok(be)
    }

    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }

    pub(crate) fn dev(&self) -> &Arc<Device> {
        &self.core.dev
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
        let flat: Vec<f32> = map.iter().flat_map(|p| [p[0], p[1]]).collect();
        let b = DeviceBuf::from_slice(self.dev(), &flat, "the undistortion remap")?;
        self.pre.remap = b.ptr;
        self.remap = Some(b);
        if let Some(old) = self.staging.take() {
            self.destroy_slot(old);
        }
        self.staging = Some(self.new_slot(false)?);
        Ok(())
    }

    pub(crate) fn make_current(&self) -> Result<(), CudaError> {
        self.dev().make_current()
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
        let c = &self.core;
        c.dev.gpu.launch(l, &c.kernels, c.dev.stream, c.blas)
    }

    /// # Safety
    /// As [`Self::enqueue_network`]; `src` is a device address of a frame.
    pub(crate) unsafe fn enqueue_preprocess(&self, src: u64) -> Result<(), CudaError> {
        let mut p = self.pre;
        p.src = src;
        let plane = (p.dst_w * p.dst_h) as usize;
        let grid = plane.div_ceil(256).clamp(1, 65_535) as u32;
        let c = &self.core;
        c.dev
            .gpu
            .launch_preprocess(&c.kernels, &p, grid, c.dev.stream)
    }

    /// Run the network once, outside any graph, and wait. Boot / checks.
    pub(crate) fn run_eager(&self) -> Result<(), CudaError> {
        self.make_current()?;
        // SAFETY: context current; plan pointers live.
        unsafe { self.enqueue_network()? };
        self.dev().sync("running the network")
    }

    /// Pinned memory, device frame, events and the captured graph of one
    /// slot. Boot only.
    pub(crate) fn new_slot(&self, timed: bool) -> Result<SlotGpu, CudaError> {
        let dev = self.dev();
        let gpu = dev.gpu;
        let fb = self.src.bytes();
        let frame = Arc::new(PinnedBuf::new(dev, fb, HostUse::Staging)?);
        let out = Arc::new(PinnedBuf::new(dev, self.out_len * 4, HostUse::Readback)?);
        let dev_frame = DeviceBuf::zeroed(dev, fb, "a device frame")?;
        // SAFETY: context current (PinnedBuf::new made it so).
        let done = unsafe { gpu.event_create(false)? };
        let mut slot = SlotGpu {
            frame,
            out,
            dev_frame,
            exec: std::ptr::null_mut(),
            done,
            marks: None,
        };
        let made = (|| {
            if timed {
                let mut m = [std::ptr::null_mut(); 5];
                for e in m.iter_mut() {
                    // SAFETY: context current.
                    *e = unsafe { gpu.event_create(true)? };
                }
                slot.marks = Some(m);
            }
            // SAFETY: context current; the slot's buffers live as long as
            // its graph (both dropped in destroy_slot).
            slot.exec = unsafe { self.capture(&slot)? };
            Ok(())
        })();
        match made {
            Ok(()) => Ok(slot),
            Err(e) => {
                self.destroy_slot(slot);
                Err(e)
            }
        }
    }

    /// Capture copy-in, preprocess, network and copy-out of `s` into a graph.
    ///
    /// # Safety
    /// Context current; `s`'s buffers live as long as the graph.
    unsafe fn capture(&self, s: &SlotGpu) -> Result<sys::CUgraphExec, CudaError> {
        let dev = self.dev();
        let (gpu, stream) = (dev.gpu, dev.stream);
        check(gpu.begin_capture(stream), "beginning graph capture")?;
        let body = || -> Result<(), CudaError> {
            let mark = |i: usize| -> Result<(), CudaError> {
                match &s.marks {
                    // External: a plain record inside a capture adds no
                    // node, so replays would never record the event.
                    Some(m) => check(gpu.event_record(m[i], stream, true), "timing event"),
                    None => Ok(()),
                }
            };
            mark(0)?;
            check(
                gpu.htod_async(s.dev_frame.ptr, s.frame.ptr, self.src.bytes(), stream),
                "frame copy-in",
            )?;
            mark(1)?;
            self.enqueue_preprocess(s.dev_frame.ptr)?;
            mark(2)?;
            self.enqueue_network()?;
            mark(3)?;
            let o = &self.plan.outputs[0];
            check(
                gpu.dtoh_async(s.out.ptr, o.ptr, o.len * 4, stream),
                "output copy-out",
            )?;
            mark(4)
        };
        let r = body();
        let graph = gpu.end_capture(stream);
        let graph = match (r, graph) {
            (Ok(()), Ok(g)) => g,
            (Err(e), Ok(g)) => {
                gpu.graph_destroy(g);
                return Err(e);
            }
            (Err(e), Err(_)) => return Err(e),
            (Ok(()), Err(code)) => return Err(super::driver_error(code, "ending graph capture")),
        };
        let result = gpu
            .graph_instantiate(graph)
            .map_err(|r| super::driver_error(r, "instantiating the frame graph"))
            .and_then(|exec| match gpu.graph_upload(exec, stream) {
                driver::OK => Ok(exec),
                r => {
                    gpu.exec_destroy(exec);
                    Err(super::driver_error(r, "uploading the frame graph"))
                }
            });
        gpu.graph_destroy(graph);
        result
    }

    /// Launch slot `s`'s graph and wait for it. Frame path: never
    /// allocates; a CUDA error ends the process (exit code 6).
    #[inline]
    pub(crate) fn launch_and_wait(&self, s: &SlotGpu) {
        let d = self.dev();
        // SAFETY: the graph and event belong to this backend's context,
        // made current first on whichever thread calls this.
        unsafe {
            fault_if(d.gpu.set_current(d.ctx), "cuCtxSetCurrent");
            fault_if(d.gpu.graph_launch(s.exec, d.stream), "cuGraphLaunch");
            fault_if(d.gpu.event_record(s.done, d.stream, false), "cuEventRecord");
            fault_if(d.gpu.event_sync(s.done), "waiting for the frame graph");
        }
    }

    /// [`Self::launch_and_wait`] with errors returned: boot (warm-up) and
    /// checks, where a failure is still a reason to fall back, not a fault.
    pub(crate) fn launch_checked(&self, s: &SlotGpu) -> Result<(), CudaError> {
        let d = self.dev();
        // SAFETY: as launch_and_wait.
        unsafe {
            check(d.gpu.set_current(d.ctx), "cuCtxSetCurrent")?;
            check(
                d.gpu.graph_launch(s.exec, d.stream),
                "launching the frame graph",
            )?;
            check(d.gpu.event_record(s.done, d.stream, false), "cuEventRecord")?;
            check(d.gpu.event_sync(s.done), "waiting for the frame graph")
        }
    }

    /// Boot: `n` checked launches of the staging graph on `frame`, then one
    /// of every ring slot's graph (after [`Backend::prepare_slots`]), so
    /// that every graph has run once before the first frame and any
    /// failure is an error boot can act on (`auto` falls back to the CPU).
    pub fn warm_up(&mut self, n: usize, frame: &[u8]) -> Result<(), CudaError> {
        if let Some(st) = &self.staging {
            fill_frame(st, frame);
            for _ in 0..n.max(1) {
                self.launch_checked(st)?;
            }
        }
        for s in &self.slots {
            self.launch_checked(s)?;
        }
        Ok(())
    }

    pub(crate) fn destroy_slot(&self, s: SlotGpu) {
        let gpu = self.dev().gpu;
        let _ = self.make_current();
        // SAFETY: handles created by this backend; errors at teardown ignored.
        unsafe {
            if !s.exec.is_null() {
                gpu.exec_destroy(s.exec);
            }
            gpu.event_destroy(s.done);
            if let Some(m) = s.marks {
                for e in m {
                    if !e.is_null() {
                        gpu.event_destroy(e);
                    }
                }
            }
        }
    }
}

/// Copy `frame` into a slot's pinned frame memory (at most its size).
/// Writes only: the memory is write-combined.
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
        for s in std::mem::take(&mut self.slots) {
            self.destroy_slot(s);
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
        log::info!("cuda: {n} ring slots in pinned host memory, one CUDA graph each");
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
        InferTiming {
            pre_done_ns: t,
            complete: true,
        }
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        for s in std::mem::take(&mut self.slots) {
            self.destroy_slot(s);
        }
        if let Some(s) = self.staging.take() {
            self.destroy_slot(s);
        }
        // The fields drop next: buffers, then `core` (cuBLAS, kernels);
        // the context goes with the last buffer that holds it (ring slots
        // may outlive the backend).
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_params_have_the_cuda_layout() {
        // 5 pointers, 9 ints, then pad, div (f32) and bgr (i32).
        assert_eq!(std::mem::size_of::<PreParams>(), 5 * 8 + 9 * 4 + 3 * 4);
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
            style: InputStyle::Letterbox,
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
