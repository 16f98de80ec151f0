//! GPU and pinned host memory owned by the CUDA backend: [`DeviceBuf`]
//! (`cuMemAlloc`) and [`PinnedBuf`] (`cuMemHostAlloc`), both allocated at
//! boot and freed on drop. Pinned buffers back the ring slots; the CPU
//! reads the output ones, so only input staging may be write-combined.
//!
//! Boot only (allocation); the pointers are used on the frame path.

use super::{check, CudaError};
use cudarc::driver::sys;
use std::ffi::c_void;

/// `bytes` of device memory, or, for the GPU emulator of the tests (a
/// test double at the GPU boundary), the same amount of host memory whose
/// address stands in for the device address.
pub struct DeviceBuf {
    pub ptr: sys::CUdeviceptr,
    pub bytes: usize,
    host: Option<Vec<u64>>,
}

// SAFETY: a device address; the backend orders every access on its stream.
unsafe impl Send for DeviceBuf {}
unsafe impl Sync for DeviceBuf {}

impl DeviceBuf {
    /// Zeroed host memory standing in for device memory (GPU emulation).
    pub fn host_zeroed(bytes: usize) -> DeviceBuf {
        let bytes = bytes.max(4).next_multiple_of(256);
        let mut v = vec![0u64; bytes / 8];
        DeviceBuf {
            ptr: v.as_mut_ptr() as u64,
            bytes,
            host: Some(v),
        }
    }

    /// Host memory holding `data` (GPU emulation).
    pub fn host_from_slice<T: Copy>(data: &[T]) -> DeviceBuf {
        let bytes = std::mem::size_of_val(data);
        let b = DeviceBuf::host_zeroed(bytes);
        // SAFETY: b holds at least `bytes`; the regions are distinct.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr() as *const u8, b.ptr as *mut u8, bytes)
        };
        b
    }

    /// Zeroed device memory (at least 4 bytes, so the pointer is valid).
    /// The backend's context must be current.
    pub fn zeroed(bytes: usize, what: &str) -> Result<DeviceBuf, CudaError> {
        let bytes = bytes.max(4).next_multiple_of(256);
        let mut ptr: sys::CUdeviceptr = 0;
        // SAFETY: valid out-pointer; the context is current (caller).
        unsafe {
            check(
                sys::cuMemAlloc_v2(&mut ptr, bytes),
                &format!("allocating {bytes} bytes of GPU memory for {what}"),
            )?;
            check(sys::cuMemsetD8_v2(ptr, 0, bytes), "clearing GPU memory")?;
        }
        Ok(DeviceBuf {
            ptr,
            bytes,
            host: None,
        })
    }

    /// Device memory holding `data`.
    pub fn from_slice<T: Copy>(data: &[T], what: &str) -> Result<DeviceBuf, CudaError> {
        let bytes = std::mem::size_of_val(data);
        let b = DeviceBuf::zeroed(bytes, what)?;
        if bytes > 0 {
            // SAFETY: b holds at least `bytes`; data is a live host slice.
            unsafe {
                check(
                    sys::cuMemcpyHtoD_v2(b.ptr, data.as_ptr() as *const c_void, bytes),
                    &format!("uploading {what}"),
                )?;
            }
        }
        Ok(b)
    }

    /// Copy the first `dst.len()` elements back (boot, checks, tests).
    pub fn read<T: Copy>(&self, dst: &mut [T]) -> Result<(), CudaError> {
        let bytes = std::mem::size_of_val(dst).min(self.bytes);
        if self.host.is_some() {
            // SAFETY: both regions hold at least `bytes`.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.ptr as *const u8,
                    dst.as_mut_ptr() as *mut u8,
                    bytes,
                )
            };
            return Ok(());
        }
        // SAFETY: both regions hold at least `bytes`.
        unsafe {
            check(
                sys::cuMemcpyDtoH_v2(dst.as_mut_ptr() as *mut c_void, self.ptr, bytes),
                "reading GPU memory",
            )
        }
    }
}

impl Drop for DeviceBuf {
    fn drop(&mut self) {
        if self.host.is_some() {
            return;
        }
        // SAFETY: allocated by cuMemAlloc; errors at teardown are ignored.
        unsafe {
            let _ = sys::cuMemFree_v2(self.ptr);
        }
    }
}

/// How pinned host memory is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostUse {
    /// Written by the CPU, read by the GPU: may be write-combined (fast
    /// PCIe reads, very slow CPU reads).
    Staging,
    /// Read by the CPU: never write-combined.
    Readback,
}

/// Page-locked host memory; on integrated GPUs also mapped into the device
/// address space (`device_ptr`), so kernels read and write it directly.
pub struct PinnedBuf {
    pub ptr: *mut u8,
    pub bytes: usize,
    /// The device address of the same memory when mapped, else 0.
    pub device_ptr: sys::CUdeviceptr,
}

// SAFETY: owns the allocation; access is ordered by the ring's slot
// ownership and the backend's stream synchronisation.
unsafe impl Send for PinnedBuf {}
unsafe impl Sync for PinnedBuf {}

impl PinnedBuf {
    pub fn new(bytes: usize, usage: HostUse, mapped: bool) -> Result<PinnedBuf, CudaError> {
        let bytes = bytes.max(4);
        let mut flags = 0u32;
        if usage == HostUse::Staging && !mapped {
            flags |= sys::CU_MEMHOSTALLOC_WRITECOMBINED;
        }
        if mapped {
            flags |= sys::CU_MEMHOSTALLOC_DEVICEMAP;
        }
        let mut p: *mut c_void = std::ptr::null_mut();
        // SAFETY: valid out-pointer; the context is current (caller).
        unsafe {
            check(
                sys::cuMemHostAlloc(&mut p, bytes, flags),
                &format!("allocating {bytes} bytes of pinned host memory"),
            )?;
            std::ptr::write_bytes(p as *mut u8, 0, bytes);
        }
        let mut device_ptr: sys::CUdeviceptr = 0;
        if mapped {
            // SAFETY: p was allocated with DEVICEMAP just above.
            unsafe {
                check(
                    sys::cuMemHostGetDevicePointer_v2(&mut device_ptr, p, 0),
                    "mapping pinned memory into the GPU",
                )?;
            }
        }
        Ok(PinnedBuf {
            ptr: p as *mut u8,
            bytes,
            device_ptr,
        })
    }
}

impl Drop for PinnedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated by cuMemHostAlloc; errors at teardown ignored.
        unsafe {
            let _ = sys::cuMemFreeHost(self.ptr as *mut c_void);
        }
    }
}
