//! GPU and pinned host memory owned by the CUDA backend: [`DeviceBuf`]
//! and [`PinnedBuf`], allocated at boot through the GPU boundary
//! ([`super::driver::Gpu`]) in one [`Device`], and freed on drop. Each
//! buffer holds its `Device`, so the context outlives every buffer, ring
//! slots included.
//!
//! Initialisation (zeroing, uploads) is issued on the device's stream, the
//! one every kernel runs on, so it is ordered before them by the stream
//! itself, not by timing. Pinned buffers back the ring slots; the CPU
//! reads the output ones, so only input staging may be write-combined.
//!
//! Boot only (allocation); the pointers are used on the frame path.

use super::driver::Device;
use super::{check, CudaError};
use std::sync::Arc;

/// `bytes` of device memory.
pub struct DeviceBuf {
    pub ptr: u64,
    pub bytes: usize,
    dev: Arc<Device>,
}

impl DeviceBuf {
    /// Device memory (at least 4 bytes, rounded up to 256), zeroed on the
    /// device's stream.
    pub fn zeroed(dev: &Arc<Device>, bytes: usize, what: &str) -> Result<DeviceBuf, CudaError> {
        let bytes = bytes.max(4).next_multiple_of(256);
        dev.make_current()?;
        // SAFETY: the context is current; the buffer is ours.
        let ptr = unsafe { dev.gpu.mem_alloc(bytes) }.map_err(|r| {
            super::driver_error(
                r,
                &format!("allocating {bytes} bytes of GPU memory for {what}"),
            )
        })?;
        let b = DeviceBuf {
            ptr,
            bytes,
            dev: Arc::clone(dev),
        };
        // SAFETY: ptr holds `bytes`; ordered on the backend's stream.
        unsafe {
            check(
                dev.gpu.memset_async(ptr, bytes, dev.stream),
                &format!("clearing GPU memory for {what}"),
            )?
        };
        Ok(b)
    }

    /// Device memory holding `data`, uploaded on the device's stream and
    /// waited for (so `data` may be freed at once).
    pub fn from_slice<T: Copy>(
        dev: &Arc<Device>,
        data: &[T],
        what: &str,
    ) -> Result<DeviceBuf, CudaError> {
        let bytes = std::mem::size_of_val(data);
        let b = DeviceBuf::zeroed(dev, bytes, what)?;
        if bytes > 0 {
            // SAFETY: b holds at least `bytes`; data is a live host slice
            // until the synchronisation below.
            unsafe {
                check(
                    dev.gpu
                        .htod_async(b.ptr, data.as_ptr() as *const u8, bytes, dev.stream),
                    &format!("uploading {what}"),
                )?;
            }
            dev.sync(&format!("uploading {what}"))?;
        }
        Ok(b)
    }

    /// Copy the first `dst.len()` elements back, after everything issued on
    /// the stream before (boot, checks, tests).
    pub fn read<T: Copy>(&self, dst: &mut [T]) -> Result<(), CudaError> {
        read_at(
            &self.dev,
            self.ptr,
            dst.len().min(self.bytes / size_of::<T>()),
            dst,
        )
    }
}

/// Copy `len` elements at device address `src` into `dst`, ordered on the
/// device's stream, and wait (boot, checks, tests).
pub fn read_at<T: Copy>(
    dev: &Arc<Device>,
    src: u64,
    len: usize,
    dst: &mut [T],
) -> Result<(), CudaError> {
    let bytes = std::mem::size_of_val(dst).min(len * size_of::<T>());
    dev.make_current()?;
    // SAFETY: src holds at least `len` elements (caller), dst `bytes`.
    unsafe {
        check(
            dev.gpu
                .dtoh_async(dst.as_mut_ptr() as *mut u8, src, bytes, dev.stream),
            "reading GPU memory",
        )?;
    }
    dev.sync("reading GPU memory")
}

/// Copy `src` to device address `dst` on the stream and wait (checks).
pub fn write_at<T: Copy>(dev: &Arc<Device>, dst: u64, src: &[T]) -> Result<(), CudaError> {
    dev.make_current()?;
    // SAFETY: dst holds at least src's bytes (caller).
    unsafe {
        check(
            dev.gpu.htod_async(
                dst,
                src.as_ptr() as *const u8,
                std::mem::size_of_val(src),
                dev.stream,
            ),
            "writing GPU memory",
        )?;
    }
    dev.sync("writing GPU memory")
}

impl Drop for DeviceBuf {
    fn drop(&mut self) {
        // SAFETY: allocated by mem_alloc in this context; work using it is
        // finished (the stream is drained before the free).
        unsafe {
            let _ = self.dev.gpu.set_current(self.dev.ctx);
            let _ = self.dev.gpu.stream_sync(self.dev.stream);
            self.dev.gpu.mem_free(self.ptr);
        }
    }
}

/// How pinned host memory is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostUse {
    /// Written by the CPU, read by the GPU only: write-combined (fast PCIe
    /// reads, very slow CPU reads; sources write slots, never read them).
    Staging,
    /// Read by the CPU: never write-combined.
    Readback,
}

/// Page-locked host memory (never mapped into the GPU: kernels read
/// device memory, see the backend's note on integrated GPUs).
pub struct PinnedBuf {
    pub ptr: *mut u8,
    pub bytes: usize,
    dev: Arc<Device>,
}

// SAFETY: owns the allocation; access is ordered by the ring's slot
// ownership and the backend's stream synchronisation.
unsafe impl Send for PinnedBuf {}
unsafe impl Sync for PinnedBuf {}

impl PinnedBuf {
    pub fn new(dev: &Arc<Device>, bytes: usize, usage: HostUse) -> Result<PinnedBuf, CudaError> {
        let bytes = bytes.max(4);
        dev.make_current()?;
        // SAFETY: the context is current.
        let p = unsafe { dev.gpu.host_alloc(bytes, usage == HostUse::Staging) }.map_err(|r| {
            super::driver_error(
                r,
                &format!("allocating {bytes} bytes of pinned host memory"),
            )
        })?;
        // SAFETY: p holds `bytes`; zeroing writes only (fine for WC).
        unsafe { std::ptr::write_bytes(p, 0, bytes) };
        Ok(PinnedBuf {
            ptr: p,
            bytes,
            dev: Arc::clone(dev),
        })
    }
}

impl Drop for PinnedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated by host_alloc in this context; errors ignored.
        unsafe {
            let _ = self.dev.gpu.set_current(self.dev.ctx);
            self.dev.gpu.host_free(self.ptr);
        }
    }
}
