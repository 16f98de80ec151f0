//! Test double at the GPU boundary: [`EmuGpu`] implements
//! [`super::driver::Gpu`] on the CPU (host memory stands in for device
//! memory; launches run `emu`'s transcribed kernels) and checks the
//! driver's contracts as it goes, so the backend's boot, capture, graph
//! launches and `gpu-check`'s timing run here exactly as they would call
//! the driver. A breach is recorded in [`EmuGpu::violations`] and the call
//! fails with the error code the driver would return (or a plausible one):
//!
//! - a memory operation or launch on a stream the backend did not create
//!   (the legacy stream 0 above all: it is not ordered with the backend's
//!   `CU_STREAM_NON_BLOCKING` stream);
//! - a synchronisation of a stream that is being captured;
//! - an event recorded inside a capture without `CU_EVENT_RECORD_EXTERNAL`
//!   adds no node: replays never record it, and `event_elapsed_ms` on it
//!   fails with `CUDA_ERROR_CAPTURED_EVENT`, as on a GPU;
//! - the preprocessing kernel gathering from host memory (uncached for an
//!   integrated GPU) instead of device memory;
//! - a device-to-host copy into write-combined memory (the CPU reads it).
//!
//! Execution is immediate and in issue order (one stream), so data races
//! between streams are not modelled: the stream rule above is what keeps
//! the real code free of them. Faults can be injected ([`Faults`]) and
//! every live resource is counted ([`EmuGpu::live`]) to prove cleanup.

use super::backend::PreParams;
use super::driver::{Gpu, Kernels, Res, OK};
use super::lower::Launch;
use super::nvrtc::KERNELS;
use super::{CudaError, DeviceInfo};
use cudarc::cublas::sys as cb;
use cudarc::driver::sys;
use cudarc::driver::sys::CUresult as R;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// Faults to inject.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Every graph launch fails with CUDA_ERROR_LAUNCH_FAILED.
    pub graph_launch: bool,
    /// Pinned host allocations from the n-th (0-based) on fail with out
    /// of memory.
    pub host_alloc: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Memset(u64, usize),
    Copy {
        dst: usize,
        src: usize,
        bytes: usize,
    },
    Launch(Launch),
    Pre(PreParams),
    Event(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum EvState {
    Never,
    At(Instant),
    /// Recorded inside a capture without the external flag.
    Captured,
}

struct Ev {
    timing: bool,
    state: EvState,
}

#[derive(Default)]
struct State {
    next: usize,
    dev: HashMap<u64, Vec<u64>>,
    host: HashMap<usize, (Vec<u64>, bool)>,
    host_allocs: usize,
    streams: Vec<usize>,
    capturing: Option<(usize, Vec<Op>)>,
    graphs: HashMap<usize, Vec<Op>>,
    execs: HashMap<usize, Vec<Op>>,
    events: HashMap<usize, Ev>,
    contexts: i64,
    modules: i64,
    blas: i64,
    violations: Vec<String>,
}

/// Live resources (see [`EmuGpu::live`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Live {
    pub device_buffers: usize,
    pub host_buffers: usize,
    pub streams: usize,
    pub graphs: usize,
    pub execs: usize,
    pub events: usize,
    pub contexts: i64,
    pub modules: i64,
    pub blas: i64,
}

pub struct EmuGpu {
    pub info: DeviceInfo,
    pub faults: Mutex<Faults>,
    st: Mutex<State>,
}

impl EmuGpu {
    /// A leaked (`'static`) emulated GPU; `integrated` as a Jetson.
    pub fn new(integrated: bool) -> &'static EmuGpu {
        Box::leak(Box::new(EmuGpu {
            info: DeviceInfo {
                ordinal: 0,
                name: "emulated GPU".into(),
                cc: if integrated { (8, 7) } else { (9, 0) },
                sms: 1,
                total_mem: 1 << 30,
                integrated,
                can_map_host: true,
                driver_version: 12040,
                count: 1,
            },
            faults: Mutex::new(Faults::default()),
            st: Mutex::new(State::default()),
        }))
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every contract breach so far.
    pub fn violations(&self) -> Vec<String> {
        self.st().violations.clone()
    }

    pub fn live(&self) -> Live {
        let s = self.st();
        Live {
            device_buffers: s.dev.len(),
            host_buffers: s.host.len(),
            streams: s.streams.len(),
            graphs: s.graphs.len(),
            execs: s.execs.len(),
            events: s.events.len(),
            contexts: s.contexts,
            modules: s.modules,
            blas: s.blas,
        }
    }
}

fn handle(s: &mut State) -> usize {
    s.next += 1;
    0x1000 + s.next * 16
}

impl State {
    fn violation(&mut self, v: String, r: Res) -> Res {
        self.violations.push(v);
        r
    }

    /// The stream rule: ours, never the legacy stream. Ok(true): captured.
    fn on(&mut self, what: &str, s: sys::CUstream) -> Result<bool, Res> {
        let id = s as usize;
        if !self.streams.contains(&id) {
            let name = if id == 0 {
                "the legacy stream".to_string()
            } else {
                format!("stream {id:#x}, not the backend's")
            };
            return Err(self.violation(
                format!("{what} issued on {name}"),
                R::CUDA_ERROR_INVALID_HANDLE,
            ));
        }
        Ok(matches!(self.capturing, Some((c, _)) if c == id))
    }

    fn is_dev(&self, p: u64, bytes: usize) -> bool {
        self.dev
            .iter()
            .any(|(&a, v)| p >= a && p + bytes as u64 <= a + 8 * v.len() as u64)
    }

    fn host_wc(&self, p: usize) -> bool {
        self.host
            .iter()
            .any(|(&a, (v, wc))| *wc && p >= a && p < a + 8 * v.len())
    }

    /// Run or record `op` on stream `s`.
    fn issue(&mut self, what: &str, s: sys::CUstream, op: Op) -> Res {
        match self.on(what, s) {
            Err(r) => r,
            Ok(true) => {
                if let Some((_, ops)) = &mut self.capturing {
                    ops.push(op);
                }
                OK
            }
            Ok(false) => self.run(op),
        }
    }

    fn run(&mut self, op: Op) -> Res {
        // SAFETY: addresses are the emulator's own allocations or the
        // caller's live host buffers (checked where the driver would).
        unsafe {
            match op {
                Op::Memset(p, n) => std::ptr::write_bytes(p as *mut u8, 0, n),
                Op::Copy { dst, src, bytes } => {
                    std::ptr::copy(src as *const u8, dst as *mut u8, bytes)
                }
                Op::Launch(l) => super::emu::run_launch(&l),
                Op::Pre(p) => {
                    if !self.is_dev(p.src, 1) {
                        return self.violation(
                            format!(
                                "preprocess gathers from host memory {:#x} (uncached for an integrated GPU): copy the frame to device memory first",
                                p.src
                            ),
                            R::CUDA_ERROR_ILLEGAL_ADDRESS,
                        );
                    }
                    super::emu::preprocess(&p)
                }
                Op::Event(e) => {
                    if let Some(ev) = self.events.get_mut(&e) {
                        ev.state = EvState::At(Instant::now());
                    }
                }
            }
        }
        OK
    }
}

impl Gpu for EmuGpu {
    fn probe(&self, ordinal: usize) -> Result<DeviceInfo, CudaError> {
        if ordinal != 0 {
            return Err(CudaError::Unavailable(format!(
                "pipeline.cuda_device = {ordinal} but this machine has 1 CUDA device(s) (0..0)"
            )));
        }
        Ok(self.info.clone())
    }

    fn load_kernels(&self, _: &DeviceInfo, _: Option<&Path>) -> Result<Kernels, CudaError> {
        let mut k = Kernels::default();
        let mut s = self.st();
        for (i, (_, names)) in KERNELS.iter().enumerate() {
            k.modules.push((0x10 + i) as sys::CUmodule);
            for (j, n) in names.iter().enumerate() {
                k.funcs.insert(*n, (0x100 + 16 * i + j) as sys::CUfunction);
            }
            s.modules += 1;
        }
        Ok(k)
    }

    unsafe fn unload_kernels(&self, k: &Kernels) {
        self.st().modules -= k.modules.len() as i64;
    }

    fn retain_context(&self, _: usize) -> Result<sys::CUcontext, CudaError> {
        self.st().contexts += 1;
        Ok(0x42 as sys::CUcontext)
    }

    unsafe fn release_context(&self, _: usize) {
        self.st().contexts -= 1;
    }

    unsafe fn set_current(&self, _: sys::CUcontext) -> Res {
        OK
    }

    unsafe fn stream_create(&self) -> Result<sys::CUstream, CudaError> {
        let mut s = self.st();
        let h = handle(&mut s);
        s.streams.push(h);
        Ok(h as sys::CUstream)
    }

    unsafe fn stream_destroy(&self, st: sys::CUstream) {
        self.st().streams.retain(|&x| x != st as usize);
    }

    unsafe fn stream_sync(&self, st: sys::CUstream) -> Res {
        let mut s = self.st();
        match s.on("cuStreamSynchronize", st) {
            Err(r) => r,
            Ok(true) => s.violation(
                "cuStreamSynchronize on a stream being captured".into(),
                R::CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
            ),
            Ok(false) => OK,
        }
    }

    unsafe fn mem_alloc(&self, bytes: usize) -> Result<u64, Res> {
        let mut s = self.st();
        if s.capturing.is_some() {
            return Err(s.violation(
                "cuMemAlloc during a capture".into(),
                R::CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
            ));
        }
        // Garbage, not zeros: only an explicit memset zeroes device memory.
        let mut v = vec![0x7fc0_0000_7fc0_0000u64; bytes.div_ceil(8)];
        let p = v.as_mut_ptr() as u64;
        s.dev.insert(p, v);
        Ok(p)
    }

    unsafe fn mem_free(&self, p: u64) {
        let mut s = self.st();
        if s.dev.remove(&p).is_none() {
            s.violation(format!("cuMemFree of unknown {p:#x}"), OK);
        }
    }

    unsafe fn host_alloc(&self, bytes: usize, wc: bool) -> Result<*mut u8, Res> {
        let mut s = self.st();
        let n = s.host_allocs;
        s.host_allocs += 1;
        let fault = self.faults.lock().map(|f| f.host_alloc).unwrap_or(None);
        if fault.is_some_and(|f| n >= f) {
            return Err(R::CUDA_ERROR_OUT_OF_MEMORY);
        }
        let mut v = vec![0u64; bytes.div_ceil(8)];
        let p = v.as_mut_ptr() as usize;
        s.host.insert(p, (v, wc));
        Ok(p as *mut u8)
    }

    unsafe fn host_free(&self, p: *mut u8) {
        let mut s = self.st();
        if s.host.remove(&(p as usize)).is_none() {
            s.violation(format!("cuMemFreeHost of unknown {:#x}", p as usize), OK);
        }
    }

    unsafe fn memset_async(&self, p: u64, bytes: usize, st: sys::CUstream) -> Res {
        let mut s = self.st();
        if !s.is_dev(p, bytes) {
            return s.violation(
                format!("memset of {p:#x}: not device memory"),
                R::CUDA_ERROR_INVALID_VALUE,
            );
        }
        s.issue("cuMemsetD8Async", st, Op::Memset(p, bytes))
    }

    unsafe fn htod_async(&self, dst: u64, src: *const u8, bytes: usize, st: sys::CUstream) -> Res {
        let mut s = self.st();
        if !s.is_dev(dst, bytes) {
            return s.violation(
                format!("HtoD into {dst:#x}: not device memory"),
                R::CUDA_ERROR_INVALID_VALUE,
            );
        }
        let op = Op::Copy {
            dst: dst as usize,
            src: src as usize,
            bytes,
        };
        s.issue("cuMemcpyHtoDAsync", st, op)
    }

    unsafe fn dtoh_async(&self, dst: *mut u8, src: u64, bytes: usize, st: sys::CUstream) -> Res {
        let mut s = self.st();
        if !s.is_dev(src, bytes) {
            return s.violation(
                format!("DtoH from {src:#x}: not device memory"),
                R::CUDA_ERROR_INVALID_VALUE,
            );
        }
        if s.host_wc(dst as usize) {
            return s.violation(
                "DtoH into write-combined host memory, which the CPU then reads".into(),
                R::CUDA_ERROR_INVALID_VALUE,
            );
        }
        let op = Op::Copy {
            dst: dst as usize,
            src: src as usize,
            bytes,
        };
        s.issue("cuMemcpyDtoHAsync", st, op)
    }

    unsafe fn launch(
        &self,
        l: &Launch,
        k: &Kernels,
        st: sys::CUstream,
        _: cb::cublasHandle_t,
    ) -> Result<(), CudaError> {
        if let Launch::Kernel { params, .. } = l {
            k.get(params.kernel())?;
        }
        super::check(
            self.st().issue("kernel launch", st, Op::Launch(*l)),
            "kernel launch",
        )
    }

    unsafe fn launch_preprocess(
        &self,
        k: &Kernels,
        p: &PreParams,
        _: u32,
        st: sys::CUstream,
    ) -> Result<(), CudaError> {
        k.get("preprocess")?;
        super::check(
            self.st().issue("preprocess launch", st, Op::Pre(*p)),
            "preprocess",
        )
    }

    unsafe fn blas_create(
        &self,
        st: sys::CUstream,
        ws: u64,
        bytes: usize,
    ) -> Result<cb::cublasHandle_t, CudaError> {
        let mut s = self.st();
        if s.on("cublasSetStream", st).is_err() || !s.is_dev(ws, bytes) {
            return Err(CudaError::Cublas {
                what: "cublasSetStream/Workspace".into(),
                status: 7,
            });
        }
        s.blas += 1;
        Ok(0x77 as cb::cublasHandle_t)
    }

    unsafe fn blas_destroy(&self, _: cb::cublasHandle_t) {
        self.st().blas -= 1;
    }

    unsafe fn event_create(&self, timing: bool) -> Result<sys::CUevent, CudaError> {
        let mut s = self.st();
        let h = handle(&mut s);
        s.events.insert(
            h,
            Ev {
                timing,
                state: EvState::Never,
            },
        );
        Ok(h as sys::CUevent)
    }

    unsafe fn event_destroy(&self, e: sys::CUevent) {
        self.st().events.remove(&(e as usize));
    }

    unsafe fn event_record(&self, e: sys::CUevent, st: sys::CUstream, external: bool) -> Res {
        let mut s = self.st();
        let id = e as usize;
        if !s.events.contains_key(&id) {
            return R::CUDA_ERROR_INVALID_HANDLE;
        }
        match s.on("cuEventRecord", st) {
            Err(r) => r,
            Ok(true) if !external => {
                // The driver's behaviour: a capture dependency, no node.
                if let Some(ev) = s.events.get_mut(&id) {
                    ev.state = EvState::Captured;
                }
                OK
            }
            Ok(true) => s.issue("cuEventRecordWithFlags", st, Op::Event(id)),
            Ok(false) => s.run(Op::Event(id)),
        }
    }

    unsafe fn event_sync(&self, e: sys::CUevent) -> Res {
        if self.st().events.contains_key(&(e as usize)) {
            OK
        } else {
            R::CUDA_ERROR_INVALID_HANDLE
        }
    }

    unsafe fn event_elapsed_ms(&self, a: sys::CUevent, b: sys::CUevent) -> Result<f32, Res> {
        let s = self.st();
        let (Some(a), Some(b)) = (s.events.get(&(a as usize)), s.events.get(&(b as usize))) else {
            return Err(R::CUDA_ERROR_INVALID_HANDLE);
        };
        if !(a.timing && b.timing) {
            return Err(R::CUDA_ERROR_INVALID_HANDLE);
        }
        match (a.state, b.state) {
            (EvState::At(x), EvState::At(y)) => {
                Ok(y.saturating_duration_since(x).as_secs_f32() * 1e3)
            }
            (EvState::Captured, _) | (_, EvState::Captured) => Err(R::CUDA_ERROR_CAPTURED_EVENT),
            _ => Err(R::CUDA_ERROR_INVALID_HANDLE),
        }
    }

    unsafe fn begin_capture(&self, st: sys::CUstream) -> Res {
        let mut s = self.st();
        if let Err(r) = s.on("cuStreamBeginCapture", st) {
            return r;
        }
        if s.capturing.is_some() {
            return R::CUDA_ERROR_ILLEGAL_STATE;
        }
        s.capturing = Some((st as usize, Vec::new()));
        OK
    }

    unsafe fn end_capture(&self, st: sys::CUstream) -> Result<sys::CUgraph, Res> {
        let mut s = self.st();
        match s.capturing.take() {
            Some((c, ops)) if c == st as usize => {
                let h = handle(&mut s);
                s.graphs.insert(h, ops);
                Ok(h as sys::CUgraph)
            }
            other => {
                s.capturing = other;
                Err(R::CUDA_ERROR_ILLEGAL_STATE)
            }
        }
    }

    unsafe fn graph_instantiate(&self, g: sys::CUgraph) -> Result<sys::CUgraphExec, Res> {
        let mut s = self.st();
        let Some(ops) = s.graphs.get(&(g as usize)).cloned() else {
            return Err(R::CUDA_ERROR_INVALID_HANDLE);
        };
        let h = handle(&mut s);
        s.execs.insert(h, ops);
        Ok(h as sys::CUgraphExec)
    }

    unsafe fn graph_destroy(&self, g: sys::CUgraph) {
        self.st().graphs.remove(&(g as usize));
    }

    unsafe fn graph_upload(&self, e: sys::CUgraphExec, st: sys::CUstream) -> Res {
        let mut s = self.st();
        if let Err(r) = s.on("cuGraphUpload", st) {
            return r;
        }
        if s.execs.contains_key(&(e as usize)) {
            OK
        } else {
            R::CUDA_ERROR_INVALID_HANDLE
        }
    }

    unsafe fn graph_launch(&self, e: sys::CUgraphExec, st: sys::CUstream) -> Res {
        if self.faults.lock().is_ok_and(|f| f.graph_launch) {
            return R::CUDA_ERROR_LAUNCH_FAILED;
        }
        let mut s = self.st();
        match s.on("cuGraphLaunch", st) {
            Err(r) => return r,
            Ok(true) => return R::CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
            Ok(false) => {}
        }
        let Some(ops) = s.execs.get(&(e as usize)).cloned() else {
            return R::CUDA_ERROR_INVALID_HANDLE;
        };
        for op in ops {
            let r = s.run(op);
            if r != OK {
                return r;
            }
        }
        OK
    }

    unsafe fn exec_destroy(&self, e: sys::CUgraphExec) {
        self.st().execs.remove(&(e as usize));
    }
}

#[cfg(test)]
mod tests {
    use super::super::backend::{CudaBackend, CudaOptions};
    use super::super::check::{head_error, FP32_LIMITS};
    use super::super::driver::Device;
    use super::super::lower::Precision;
    use super::super::mem::DeviceBuf;
    use super::*;
    use crate::backend::{Backend, CpuBackend};
    use crate::frame::{FrameDesc, PixelFormat};
    use std::path::PathBuf;

    /// A real YOLOv8 export with a dynamic input, run at 64x64 (fast here).
    pub(crate) fn small_model() -> (PathBuf, FrameDesc, Option<[usize; 2]>) {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/exports/yolov8-w0125-dynamic/model.onnx");
        let d = FrameDesc {
            format: PixelFormat::Yuyv,
            width: 80,
            height: 60,
        };
        (p, d, Some([64, 64]))
    }

    fn opts(p: Precision) -> CudaOptions {
        CudaOptions {
            ordinal: 0,
            precision: p,
            cache_dir: None,
            style: crate::preprocess::InputStyle::Letterbox,
        }
    }

    /// The whole backend (boot, eager run, capture, ring slots, graph
    /// launches) through the driver boundary, discrete and integrated:
    /// no operation outside the backend's stream, nothing synchronous in a
    /// capture, preprocessing from device memory only, no copy-out into
    /// write-combined memory; the output matches the CPU backend; and
    /// dropping the backend frees every buffer, stream, event, graph,
    /// module, cuBLAS handle and context reference.
    #[test]
    fn backend_on_the_emulated_gpu_keeps_the_driver_contracts() {
        let (model, desc, size) = small_model();
        let frame = super::super::check::noise(desc.bytes(), 9);
        let mut cpu = CpuBackend::new(&model, desc, size, 1).unwrap();
        let mut want = vec![0f32; cpu.output_shape().iter().product()];
        cpu.infer(0, &frame, &mut want);
        for integrated in [false, true] {
            let gpu = EmuGpu::new(integrated);
            let mut be =
                CudaBackend::new_on(gpu, &model, desc, size, &opts(Precision::Fp32)).unwrap();
            be.prepare_slots(2, desc.bytes(), want.len()).unwrap();
            be.warm_up(1, &frame).unwrap();
            let mut got = vec![0f32; want.len()];
            be.infer(usize::MAX, &frame, &mut got);
            let e = head_error(&got, &want, be.output_shape());
            assert!(e.within(FP32_LIMITS), "integrated {integrated}: {e:?}");
            assert_eq!(
                gpu.violations(),
                Vec::<String>::new(),
                "integrated {integrated}"
            );
            let bufs = be.take_slot_buffers().unwrap();
            drop(be);
            drop(bufs);
            assert_eq!(
                gpu.live(),
                Live::default(),
                "integrated {integrated}: leaks"
            );
        }
    }

    /// gpu-check's phase timings: events recorded inside the captured
    /// graph give elapsed times after a launch (they carry
    /// CU_EVENT_RECORD_EXTERNAL; without it the driver, and the emulator,
    /// answer CUDA_ERROR_CAPTURED_EVENT).
    #[test]
    fn timing_events_inside_the_graph_are_recorded() {
        let (model, desc, size) = small_model();
        let gpu = EmuGpu::new(false);
        let be = CudaBackend::new_on(gpu, &model, desc, size, &opts(Precision::Fp32)).unwrap();
        let s = be.new_slot(true).unwrap();
        be.launch_checked(&s).unwrap();
        let m = s.marks.unwrap();
        for k in 0..4 {
            // SAFETY: events of this backend, recorded by the launch.
            let ms = unsafe { gpu.event_elapsed_ms(m[k], m[k + 1]) };
            assert!(ms.is_ok_and(|v| v >= 0.0), "phase {k}: {ms:?}");
        }
        be.destroy_slot(s);
        assert!(gpu.violations().is_empty(), "{:?}", gpu.violations());
    }

    /// The double itself: a plain record inside a capture gives no timing,
    /// an operation on the legacy stream and a sync inside a capture are
    /// breaches.
    #[test]
    fn emulator_flags_legacy_stream_sync_in_capture_and_captured_events() {
        let gpu = EmuGpu::new(false);
        let dev = Device::open(gpu, 0).unwrap();
        let b = DeviceBuf::zeroed(&dev, 64, "x").unwrap();
        // SAFETY: emulated handles and memory.
        unsafe {
            assert_ne!(gpu.memset_async(b.ptr, 64, std::ptr::null_mut()), OK);
            let (a, e) = (
                gpu.event_create(true).unwrap(),
                gpu.event_create(true).unwrap(),
            );
            assert_eq!(gpu.begin_capture(dev.stream), OK);
            assert_eq!(gpu.event_record(a, dev.stream, false), OK);
            assert_eq!(gpu.event_record(e, dev.stream, false), OK);
            assert_ne!(gpu.stream_sync(dev.stream), OK);
            let g = gpu.end_capture(dev.stream).unwrap();
            let x = gpu.graph_instantiate(g).unwrap();
            assert_eq!(gpu.graph_launch(x, dev.stream), OK);
            assert_eq!(
                gpu.event_elapsed_ms(a, e),
                Err(R::CUDA_ERROR_CAPTURED_EVENT)
            );
            gpu.exec_destroy(x);
            gpu.graph_destroy(g);
            gpu.event_destroy(a);
            gpu.event_destroy(e);
        }
        let v = gpu.violations();
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].contains("legacy stream"), "{v:?}");
        assert!(v[1].contains("captured"), "{v:?}");
    }
}
