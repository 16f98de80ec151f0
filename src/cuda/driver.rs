//! The GPU boundary. Every CUDA driver and cuBLAS call of the backend and
//! of `gpu-check` goes through the [`Gpu`] trait: [`CUDA`] forwards to the
//! driver (through cudarc's `sys` layer), and the tests' emulator
//! (`emu_gpu`, a test double at exactly this boundary) runs the same calls
//! on the CPU while checking the driver's contracts that a machine without
//! a GPU cannot otherwise see: every memory operation and launch on the
//! backend's own stream (never the legacy stream), nothing synchronous
//! inside a capture, timing events recorded inside a capture carry
//! `CU_EVENT_RECORD_EXTERNAL`, kernels gather from device memory only,
//! and nothing the CPU reads lands in write-combined memory.
//!
//! The trait has no synchronous memory call: memsets and copies take the
//! stream they are ordered on. [`Device`] is one context and its stream,
//! shared (`Arc`) by every buffer allocated in it, so the context is
//! released, and the stream destroyed, only after the last buffer is freed.
//!
//! Boot allocates; the frame path uses `set_current`, `graph_launch`,
//! `event_record` and `event_sync` only, none of which allocates.

use super::backend::PreParams;
use super::lower::Launch;
use super::{check, CudaError, DeviceInfo};
use cudarc::cublas::sys as cb;
use cudarc::driver::sys;
use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::path::Path;
use std::sync::Arc;

pub type Res = sys::CUresult;
pub const OK: Res = sys::CUresult::CUDA_SUCCESS;

/// The loaded kernel modules and their entry points by name.
#[derive(Default)]
pub struct Kernels {
    pub modules: Vec<sys::CUmodule>,
    pub funcs: HashMap<&'static str, sys::CUfunction>,
}

impl Kernels {
    pub fn get(&self, name: &str) -> Result<sys::CUfunction, CudaError> {
        self.funcs
            .get(name)
            .copied()
            .ok_or_else(|| CudaError::Model(format!("kernel {name} not loaded")))
    }
}

/// The CUDA driver and cuBLAS calls perceptd makes. Handles are the
/// driver's own types; results are `CUresult`s so the frame path can use
/// [`super::fault_if`].
///
/// # Safety
/// For every `unsafe fn` (stated once here, hence the `allow`): the
/// context is current on the calling thread, every handle belongs to it,
/// and every address is valid for the access the call describes.
#[allow(clippy::missing_safety_doc)]
pub trait Gpu: Send + Sync {
    fn probe(&self, ordinal: usize) -> Result<DeviceInfo, CudaError>;
    /// cuBLAS and the compiled (or cached) kernels for `info`'s GPU.
    fn load_kernels(&self, info: &DeviceInfo, cache: Option<&Path>) -> Result<Kernels, CudaError>;
    unsafe fn unload_kernels(&self, k: &Kernels);
    fn retain_context(&self, ordinal: usize) -> Result<sys::CUcontext, CudaError>;
    unsafe fn release_context(&self, ordinal: usize);
    unsafe fn set_current(&self, ctx: sys::CUcontext) -> Res;
    unsafe fn stream_create(&self) -> Result<sys::CUstream, CudaError>;
    unsafe fn stream_destroy(&self, s: sys::CUstream);
    unsafe fn stream_sync(&self, s: sys::CUstream) -> Res;
    unsafe fn mem_alloc(&self, bytes: usize) -> Result<u64, Res>;
    unsafe fn mem_free(&self, p: u64);
    /// Page-locked host memory; `write_combined` only for memory the CPU
    /// never reads.
    unsafe fn host_alloc(&self, bytes: usize, write_combined: bool) -> Result<*mut u8, Res>;
    unsafe fn host_free(&self, p: *mut u8);
    unsafe fn memset_async(&self, p: u64, bytes: usize, s: sys::CUstream) -> Res;
    unsafe fn htod_async(&self, dst: u64, src: *const u8, bytes: usize, s: sys::CUstream) -> Res;
    unsafe fn dtoh_async(&self, dst: *mut u8, src: u64, bytes: usize, s: sys::CUstream) -> Res;
    unsafe fn launch(
        &self,
        l: &Launch,
        k: &Kernels,
        s: sys::CUstream,
        blas: cb::cublasHandle_t,
    ) -> Result<(), CudaError>;
    unsafe fn launch_preprocess(
        &self,
        k: &Kernels,
        p: &PreParams,
        grid: u32,
        s: sys::CUstream,
    ) -> Result<(), CudaError>;
    /// A cuBLAS handle on `s` with its workspace set (before any capture).
    unsafe fn blas_create(
        &self,
        s: sys::CUstream,
        ws: u64,
        ws_bytes: usize,
    ) -> Result<cb::cublasHandle_t, CudaError>;
    unsafe fn blas_destroy(&self, h: cb::cublasHandle_t);
    unsafe fn event_create(&self, timing: bool) -> Result<sys::CUevent, CudaError>;
    unsafe fn event_destroy(&self, e: sys::CUevent);
    /// `external`: `CU_EVENT_RECORD_EXTERNAL`, which an event recorded
    /// inside a capture needs to become a node of the graph.
    unsafe fn event_record(&self, e: sys::CUevent, s: sys::CUstream, external: bool) -> Res;
    unsafe fn event_sync(&self, e: sys::CUevent) -> Res;
    unsafe fn event_elapsed_ms(&self, a: sys::CUevent, b: sys::CUevent) -> Result<f32, Res>;
    unsafe fn begin_capture(&self, s: sys::CUstream) -> Res;
    unsafe fn end_capture(&self, s: sys::CUstream) -> Result<sys::CUgraph, Res>;
    unsafe fn graph_instantiate(&self, g: sys::CUgraph) -> Result<sys::CUgraphExec, Res>;
    unsafe fn graph_destroy(&self, g: sys::CUgraph);
    unsafe fn graph_upload(&self, e: sys::CUgraphExec, s: sys::CUstream) -> Res;
    unsafe fn graph_launch(&self, e: sys::CUgraphExec, s: sys::CUstream) -> Res;
    unsafe fn exec_destroy(&self, e: sys::CUgraphExec);
}

/// One GPU's retained primary context and the backend's stream
/// (`CU_STREAM_NON_BLOCKING`: every operation of perceptd is issued on
/// it, so none needs ordering with the legacy stream). Dropped after the
/// last buffer allocated in it.
pub struct Device {
    pub gpu: &'static dyn Gpu,
    pub ctx: sys::CUcontext,
    pub stream: sys::CUstream,
    pub ordinal: usize,
}

// SAFETY: driver handles, valid on any thread once the context is made
// current; the backend uses them from one thread at a time.
unsafe impl Send for Device {}
unsafe impl Sync for Device {}

impl Device {
    /// Retain `ordinal`'s primary context, make it current, create the stream.
    pub fn open(gpu: &'static dyn Gpu, ordinal: usize) -> Result<Arc<Device>, CudaError> {
        let ctx = gpu.retain_context(ordinal)?;
        // SAFETY: ctx was just retained.
        let made = unsafe {
            check(gpu.set_current(ctx), "cuCtxSetCurrent").and_then(|_| gpu.stream_create())
        };
        match made {
            Ok(stream) => Ok(Arc::new(Device {
                gpu,
                ctx,
                stream,
                ordinal,
            })),
            Err(e) => {
                // SAFETY: retained above, nothing allocated in it.
                unsafe { gpu.release_context(ordinal) };
                Err(e)
            }
        }
    }

    pub fn make_current(&self) -> Result<(), CudaError> {
        // SAFETY: ctx is retained for as long as self lives.
        unsafe { check(self.gpu.set_current(self.ctx), "cuCtxSetCurrent") }
    }

    /// Wait for everything issued on the stream (boot and checks).
    pub fn sync(&self, what: &str) -> Result<(), CudaError> {
        // SAFETY: the stream belongs to this context.
        unsafe { check(self.gpu.stream_sync(self.stream), what) }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: handles created in `open`; teardown errors are ignored.
        unsafe {
            let _ = self.gpu.set_current(self.ctx);
            let _ = self.gpu.stream_sync(self.stream);
            self.gpu.stream_destroy(self.stream);
            self.gpu.release_context(self.ordinal);
        }
    }
}

/// The real driver.
pub struct Cuda;

/// The one instance of the real driver.
pub static CUDA: Cuda = Cuda;

impl Gpu for Cuda {
    fn probe(&self, ordinal: usize) -> Result<DeviceInfo, CudaError> {
        super::probe(ordinal)
    }

    fn load_kernels(&self, info: &DeviceInfo, cache: Option<&Path>) -> Result<Kernels, CudaError> {
        super::load_cublas()?;
        let mut k = Kernels::default();
        let loaded = super::nvrtc::load_modules(info, cache, &mut |name, img| {
            let mut m: sys::CUmodule = std::ptr::null_mut();
            // SAFETY: img is a whole cubin or NUL-terminated PTX image; the
            // context is current (caller).
            let r = unsafe { sys::cuModuleLoadData(&mut m, img.as_ptr() as *const c_void) };
            if r != OK {
                return Err(r);
            }
            k.modules.push(m);
            let names = super::nvrtc::KERNELS
                .iter()
                .find(|(module, _)| *module == name)
                .map_or(&[][..], |(_, k)| *k);
            for f in names {
                let c = CString::new(*f).unwrap_or_default();
                let mut func: sys::CUfunction = std::ptr::null_mut();
                // SAFETY: m was loaded just above; valid out-pointer.
                let r = unsafe { sys::cuModuleGetFunction(&mut func, m, c.as_ptr()) };
                if r != OK {
                    return Err(r);
                }
                k.funcs.insert(*f, func);
            }
            Ok(())
        });
        if let Err(e) = loaded {
            // SAFETY: the modules loaded so far, in the current context.
            unsafe { self.unload_kernels(&k) };
            return Err(e);
        }
        Ok(k)
    }

    unsafe fn unload_kernels(&self, k: &Kernels) {
        for m in &k.modules {
            let _ = sys::cuModuleUnload(*m);
        }
    }

    fn retain_context(&self, ordinal: usize) -> Result<sys::CUcontext, CudaError> {
        let mut dev: sys::CUdevice = 0;
        let mut ctx: sys::CUcontext = std::ptr::null_mut();
        // SAFETY: the driver is loaded (probe); valid out-pointers.
        unsafe {
            check(sys::cuDeviceGet(&mut dev, ordinal as i32), "cuDeviceGet")?;
            check(
                sys::cuDevicePrimaryCtxRetain(&mut ctx, dev),
                "retaining the primary context",
            )?;
        }
        Ok(ctx)
    }

    unsafe fn release_context(&self, ordinal: usize) {
        let mut dev: sys::CUdevice = 0;
        if sys::cuDeviceGet(&mut dev, ordinal as i32) == OK {
            let _ = sys::cuDevicePrimaryCtxRelease_v2(dev);
        }
    }

    unsafe fn set_current(&self, ctx: sys::CUcontext) -> Res {
        sys::cuCtxSetCurrent(ctx)
    }

    unsafe fn stream_create(&self) -> Result<sys::CUstream, CudaError> {
        let mut s: sys::CUstream = std::ptr::null_mut();
        check(
            sys::cuStreamCreate(&mut s, sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32),
            "creating a stream",
        )?;
        Ok(s)
    }

    unsafe fn stream_destroy(&self, s: sys::CUstream) {
        let _ = sys::cuStreamDestroy_v2(s);
    }

    unsafe fn stream_sync(&self, s: sys::CUstream) -> Res {
        sys::cuStreamSynchronize(s)
    }

    unsafe fn mem_alloc(&self, bytes: usize) -> Result<u64, Res> {
        let mut p: sys::CUdeviceptr = 0;
        match sys::cuMemAlloc_v2(&mut p, bytes) {
            OK => Ok(p),
            r => Err(r),
        }
    }

    unsafe fn mem_free(&self, p: u64) {
        let _ = sys::cuMemFree_v2(p);
    }

    unsafe fn host_alloc(&self, bytes: usize, write_combined: bool) -> Result<*mut u8, Res> {
        let flags = if write_combined {
            sys::CU_MEMHOSTALLOC_WRITECOMBINED
        } else {
            0
        };
        let mut p: *mut c_void = std::ptr::null_mut();
        match sys::cuMemHostAlloc(&mut p, bytes, flags) {
            OK => Ok(p as *mut u8),
            r => Err(r),
        }
    }

    unsafe fn host_free(&self, p: *mut u8) {
        let _ = sys::cuMemFreeHost(p as *mut c_void);
    }

    unsafe fn memset_async(&self, p: u64, bytes: usize, s: sys::CUstream) -> Res {
        sys::cuMemsetD8Async(p, 0, bytes, s)
    }

    unsafe fn htod_async(&self, dst: u64, src: *const u8, bytes: usize, s: sys::CUstream) -> Res {
        sys::cuMemcpyHtoDAsync_v2(dst, src as *const c_void, bytes, s)
    }

    unsafe fn dtoh_async(&self, dst: *mut u8, src: u64, bytes: usize, s: sys::CUstream) -> Res {
        sys::cuMemcpyDtoHAsync_v2(dst as *mut c_void, src, bytes, s)
    }

    unsafe fn launch(
        &self,
        l: &Launch,
        k: &Kernels,
        s: sys::CUstream,
        blas: cb::cublasHandle_t,
    ) -> Result<(), CudaError> {
        let f = match l {
            Launch::Kernel { params, .. } => k.get(params.kernel())?,
            Launch::Gemm(_) => std::ptr::null_mut(),
        };
        super::lower::enqueue(l, f, s, blas)
    }

    unsafe fn launch_preprocess(
        &self,
        k: &Kernels,
        p: &PreParams,
        grid: u32,
        s: sys::CUstream,
    ) -> Result<(), CudaError> {
        let f = k.get("preprocess")?;
        let mut p = *p;
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
                s,
                args.as_mut_ptr(),
                std::ptr::null_mut(),
            ),
            "preprocess",
        )
    }

    unsafe fn blas_create(
        &self,
        s: sys::CUstream,
        ws: u64,
        ws_bytes: usize,
    ) -> Result<cb::cublasHandle_t, CudaError> {
        let mut h: cb::cublasHandle_t = std::ptr::null_mut();
        cublas_check(cb::cublasCreate_v2(&mut h), "cublasCreate")?;
        let set = cublas_check(
            cb::cublasSetStream_v2(h, s as cb::cudaStream_t),
            "cublasSetStream",
        )
        .and_then(|_| {
            cublas_check(
                cb::cublasSetWorkspace_v2(h, ws as *mut c_void, ws_bytes),
                "cublasSetWorkspace",
            )
        });
        if let Err(e) = set {
            let _ = cb::cublasDestroy_v2(h);
            return Err(e);
        }
        Ok(h)
    }

    unsafe fn blas_destroy(&self, h: cb::cublasHandle_t) {
        let _ = cb::cublasDestroy_v2(h);
    }

    unsafe fn event_create(&self, timing: bool) -> Result<sys::CUevent, CudaError> {
        let flags = if timing {
            sys::CUevent_flags::CU_EVENT_DEFAULT as u32
        } else {
            sys::CUevent_flags::CU_EVENT_BLOCKING_SYNC as u32
                | sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32
        };
        let mut e: sys::CUevent = std::ptr::null_mut();
        check(sys::cuEventCreate(&mut e, flags), "creating an event")?;
        Ok(e)
    }

    unsafe fn event_destroy(&self, e: sys::CUevent) {
        let _ = sys::cuEventDestroy_v2(e);
    }

    unsafe fn event_record(&self, e: sys::CUevent, s: sys::CUstream, external: bool) -> Res {
        if external {
            sys::cuEventRecordWithFlags(
                e,
                s,
                sys::CUevent_record_flags::CU_EVENT_RECORD_EXTERNAL as u32,
            )
        } else {
            sys::cuEventRecord(e, s)
        }
    }

    unsafe fn event_sync(&self, e: sys::CUevent) -> Res {
        sys::cuEventSynchronize(e)
    }

    unsafe fn event_elapsed_ms(&self, a: sys::CUevent, b: sys::CUevent) -> Result<f32, Res> {
        let mut ms = 0f32;
        match sys::cuEventElapsedTime(&mut ms, a, b) {
            OK => Ok(ms),
            r => Err(r),
        }
    }

    unsafe fn begin_capture(&self, s: sys::CUstream) -> Res {
        sys::cuStreamBeginCapture_v2(
            s,
            sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
        )
    }

    unsafe fn end_capture(&self, s: sys::CUstream) -> Result<sys::CUgraph, Res> {
        let mut g: sys::CUgraph = std::ptr::null_mut();
        match sys::cuStreamEndCapture(s, &mut g) {
            OK => Ok(g),
            r => {
                if !g.is_null() {
                    let _ = sys::cuGraphDestroy(g);
                }
                Err(r)
            }
        }
    }

    unsafe fn graph_instantiate(&self, g: sys::CUgraph) -> Result<sys::CUgraphExec, Res> {
        let mut e: sys::CUgraphExec = std::ptr::null_mut();
        match sys::cuGraphInstantiateWithFlags(&mut e, g, 0) {
            OK => Ok(e),
            r => Err(r),
        }
    }

    unsafe fn graph_destroy(&self, g: sys::CUgraph) {
        let _ = sys::cuGraphDestroy(g);
    }

    unsafe fn graph_upload(&self, e: sys::CUgraphExec, s: sys::CUstream) -> Res {
        sys::cuGraphUpload(e, s)
    }

    unsafe fn graph_launch(&self, e: sys::CUgraphExec, s: sys::CUstream) -> Res {
        sys::cuGraphLaunch(e, s)
    }

    unsafe fn exec_destroy(&self, e: sys::CUgraphExec) {
        let _ = sys::cuGraphExecDestroy(e);
    }
}

pub fn cublas_check(st: cb::cublasStatus_t, what: &str) -> Result<(), CudaError> {
    if st == cb::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(CudaError::Cublas {
            what: what.to_string(),
            status: st as u32,
        })
    }
}
