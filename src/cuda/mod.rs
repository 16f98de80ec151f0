//! The CUDA backend: device probing, NVRTC kernels, the engine plan lowered
//! to GPU steps, pinned ring slots and one CUDA graph per slot.
//!
//! Every driver and cuBLAS call goes through one boundary,
//! [`driver::Gpu`]: the real driver is `cudarc`'s raw `sys` layer with
//! dynamic loading, so one binary runs with or without CUDA (before the
//! first call into a library this module `dlopen`s it itself, [`probe`],
//! [`load_cublas`], and turns a missing library into an error where cudarc
//! would panic); the tests' emulator (`emu_gpu`, `emu`) implements the same
//! trait on the CPU. NVRTC is resolved from our own handle ([`nvrtc`]).
//!
//! Boot (probing, compiling, planning, capturing) allocates freely on the
//! boot thread. The run phase is [`backend::CudaBackend::infer`] on the
//! inference thread: one `cuGraphLaunch` and one event per frame, no
//! allocation. A CUDA error in the run phase is a GPU fault: the process
//! ends with [`EXIT_GPU_FAULT`] so that the service manager restarts it.

pub mod backend;
pub mod check;
pub mod driver;
/// The GPU emulator's kernels and its driver (test doubles at the GPU
/// boundary): compiled always so that integration tests
/// (`tests/conformance.rs`) can run lowered plans; nothing in the binary
/// calls them.
pub mod emu;
pub mod emu_gpu;
pub mod lower;
pub mod mem;
pub mod nvrtc;

pub use backend::CudaBackend;

use cudarc::driver::sys;
use std::ffi::{c_int, CStr, CString};
use thiserror::Error;

/// Exit code of a GPU fault in the run phase ("GPU fault, restart me").
pub const EXIT_GPU_FAULT: i32 = 6;

#[derive(Debug, Error)]
pub enum CudaError {
    /// No usable CUDA: library missing, no device, driver refuses.
    #[error("CUDA is unavailable: {0}")]
    Unavailable(String),
    /// A driver call failed.
    #[error("CUDA {what}: {name} (error {code})")]
    Driver {
        what: String,
        name: String,
        code: u32,
    },
    #[error("cuBLAS {what}: status {status}")]
    Cublas { what: String, status: u32 },
    #[error("NVRTC: {0}")]
    Nvrtc(String),
    /// The model cannot run on the CUDA backend (unsupported op, ...).
    #[error("{0}")]
    Model(String),
}

impl CudaError {
    /// Errors after which the CUDA context is unusable until the process
    /// exits (the driver's "sticky" errors).
    pub fn is_sticky(&self) -> bool {
        match self {
            CudaError::Driver { code, .. } => is_sticky_code(*code),
            _ => false,
        }
    }
}

/// CUDA_ERROR_ECC_UNCORRECTABLE (214), ILLEGAL_ADDRESS (700), LAUNCH_TIMEOUT
/// (702), HARDWARE_STACK_ERROR (714), ILLEGAL_INSTRUCTION (715),
/// MISALIGNED_ADDRESS (716), INVALID_ADDRESS_SPACE (717), INVALID_PC (718),
/// LAUNCH_FAILED (719), and UNKNOWN (999).
pub fn is_sticky_code(code: u32) -> bool {
    matches!(code, 214 | 700 | 702 | 714..=719 | 999)
}

/// `Ok(())` for CUDA_SUCCESS, else a [`CudaError::Driver`] naming `what`.
/// Boot only (the error allocates); the run phase uses [`fault_if`].
pub fn check(r: sys::CUresult, what: &str) -> Result<(), CudaError> {
    if r == sys::CUresult::CUDA_SUCCESS {
        return Ok(());
    }
    Err(driver_error(r, what))
}

/// The error for result `r` of `what`, named as the driver names it
/// (`CUDA_ERROR_LAUNCH_FAILED`): the enum's own name, so that naming an
/// error never calls into a driver library that may not be loaded.
pub fn driver_error(r: sys::CUresult, what: &str) -> CudaError {
    CudaError::Driver {
        what: what.to_string(),
        name: format!("{r:?}"),
        code: r as u32,
    }
}

/// Run phase: a failed driver call is a GPU fault. Print one line and end
/// the process with [`EXIT_GPU_FAULT`]: the context may be unusable
/// (sticky errors always are), and retrying in a loop would only hide it.
/// Allocates only on the way out.
#[inline]
pub fn fault_if(r: sys::CUresult, what: &'static str) {
    if r != sys::CUresult::CUDA_SUCCESS {
        gpu_fault(driver_error(r, what));
    }
}

#[cold]
pub fn gpu_fault(e: CudaError) -> ! {
    use std::io::Write as _;
    let kind = if e.is_sticky() {
        "sticky GPU error"
    } else {
        "GPU error"
    };
    // Best effort: with stderr closed or full, eprintln! would panic here
    // and the thread would die instead of the process exiting with 6.
    let _ = writeln!(
        std::io::stderr(),
        "error: {e}: {kind} in the frame loop, exiting with code {EXIT_GPU_FAULT} (GPU fault, restart me)"
    );
    std::process::exit(EXIT_GPU_FAULT)
}

/// What the driver says about one GPU.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    /// Compute capability `(major, minor)`.
    pub cc: (i32, i32),
    pub sms: i32,
    pub total_mem: usize,
    /// `CU_DEVICE_ATTRIBUTE_INTEGRATED` (Jetson): host and device share memory.
    pub integrated: bool,
    pub can_map_host: bool,
    /// Driver API version, e.g. 12040.
    pub driver_version: i32,
    pub count: usize,
}

impl DeviceInfo {
    pub fn describe(&self) -> String {
        format!(
            "cuda:{} ({}, sm_{}{}, {} SMs, {:.1} GiB{}, driver {}.{})",
            self.ordinal,
            self.name,
            self.cc.0,
            self.cc.1,
            self.sms,
            self.total_mem as f64 / (1u64 << 30) as f64,
            if self.integrated { ", integrated" } else { "" },
            self.driver_version / 1000,
            (self.driver_version % 1000) / 10
        )
    }
}

/// `dlopen` the first of `names` that loads (RTLD_NOW | RTLD_GLOBAL, kept
/// open for the life of the process, so cudarc's own `dlopen` of the same
/// soname finds it). Err: every `dlerror` message.
pub fn dlopen_any(names: &[&str]) -> Result<String, String> {
    let mut why = Vec::new();
    for n in names {
        let Ok(c) = CString::new(*n) else { continue };
        // SAFETY: c is a valid C string; dlopen has no other preconditions.
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if !h.is_null() {
            return Ok(n.to_string());
        }
        // SAFETY: dlerror returns null or a thread-local C string.
        let e = unsafe { libc::dlerror() };
        if e.is_null() {
            why.push(format!("{n}: not found"));
        } else {
            // SAFETY: non-null dlerror result is a valid C string.
            why.push(unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned());
        }
    }
    Err(why.join("; "))
}

/// Is a driver and GPU `ordinal` there? Never panics: the driver library is
/// `dlopen`ed before any cudarc call.
pub fn probe(ordinal: usize) -> Result<DeviceInfo, CudaError> {
    dlopen_any(&["libcuda.so.1", "libcuda.so"]).map_err(|e| {
        CudaError::Unavailable(format!(
            "the NVIDIA driver library libcuda.so.1 was not found ({e})"
        ))
    })?;
    // SAFETY: libcuda is loaded (checked above), so cudarc's lazy symbol
    // loading succeeds; cudarc itself asks the same names.
    if !unsafe { sys::is_culib_present() } {
        return Err(CudaError::Unavailable(
            "libcuda loads but not under a name cudarc looks for".into(),
        ));
    }
    let unavailable = |what: &str, r: sys::CUresult| {
        let e = driver_error(r, what);
        CudaError::Unavailable(e.to_string())
    };
    // SAFETY: plain driver calls with valid out-pointers.
    unsafe {
        let r = sys::cuInit(0);
        if r != sys::CUresult::CUDA_SUCCESS {
            return Err(unavailable("driver initialisation (cuInit)", r));
        }
        let mut count: c_int = 0;
        let r = sys::cuDeviceGetCount(&mut count);
        if r != sys::CUresult::CUDA_SUCCESS {
            return Err(unavailable("cuDeviceGetCount", r));
        }
        if count <= 0 {
            return Err(CudaError::Unavailable(
                "the driver reports no CUDA device".into(),
            ));
        }
        if ordinal >= count as usize {
            return Err(CudaError::Unavailable(format!(
                "pipeline.cuda_device = {ordinal} but this machine has {count} CUDA device(s) (0..{})",
                count - 1
            )));
        }
        let mut dev: sys::CUdevice = 0;
        let r = sys::cuDeviceGet(&mut dev, ordinal as c_int);
        if r != sys::CUresult::CUDA_SUCCESS {
            return Err(unavailable("cuDeviceGet", r));
        }
        let mut name = [0 as std::ffi::c_char; 256];
        let _ = sys::cuDeviceGetName(name.as_mut_ptr(), 255, dev);
        let name = CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned();
        let attr = |a: sys::CUdevice_attribute| {
            let mut v: c_int = 0;
            let _ = sys::cuDeviceGetAttribute(&mut v, a, dev);
            v
        };
        use sys::CUdevice_attribute as A;
        let mut total: usize = 0;
        let _ = sys::cuDeviceTotalMem_v2(&mut total, dev);
        let mut driver_version: c_int = 0;
        let _ = sys::cuDriverGetVersion(&mut driver_version);
        Ok(DeviceInfo {
            ordinal,
            name,
            cc: (
                attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
                attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
            ),
            sms: attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
            total_mem: total,
            integrated: attr(A::CU_DEVICE_ATTRIBUTE_INTEGRATED) != 0,
            can_map_host: attr(A::CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY) != 0,
            driver_version,
            count: count as usize,
        })
    }
}

/// Load cuBLAS before its first use (cudarc panics on a missing library),
/// under exactly the names cudarc itself tries, in its order, so the
/// library found here is the one cudarc's calls use.
pub fn load_cublas() -> Result<(), CudaError> {
    let names = cudarc::get_lib_name_candidates("cublas");
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    dlopen_any(&refs).map_err(|e| {
        CudaError::Unavailable(format!(
            "cuBLAS 12 (libcublas.so.12) was not found ({e}); install the CUDA 12 toolkit's cuBLAS or pip's nvidia-cublas-cu12 and add its lib folder to LD_LIBRARY_PATH"
        ))
    })?;
    // SAFETY: only dlopens the same candidate names.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(CudaError::Unavailable(
            "cuBLAS loads here but not through cudarc".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_codes_are_the_drivers_fatal_ones() {
        assert!(is_sticky_code(700)); // illegal address
        assert!(is_sticky_code(719)); // launch failed
        assert!(is_sticky_code(214)); // ECC
        assert!(!is_sticky_code(2)); // out of memory: not sticky
        assert!(!is_sticky_code(100)); // no device
    }

    /// On a machine without a driver (this one, CI) the probe must say why
    /// instead of panicking; with a driver it must describe a device.
    /// The names tried for cuBLAS are cudarc's own (no libcublas.so.13
    /// that cudarc would then fail to find).
    #[test]
    fn cublas_names_are_cudarcs() {
        let names = cudarc::get_lib_name_candidates("cublas");
        assert!(names.iter().any(|n| n == "libcublas.so.12"), "{names:?}");
        assert!(!names.iter().any(|n| n == "libcublas.so.13"), "{names:?}");
    }

    #[test]
    fn probe_without_a_driver_says_why() {
        match probe(0) {
            Ok(d) => assert!(!d.name.is_empty()),
            Err(CudaError::Unavailable(why)) => assert!(!why.is_empty()),
            Err(e) => panic!("unexpected error kind: {e}"),
        }
    }
}
