//! The inference backend boundary: one trait, implemented by the CPU
//! backend here and by the CUDA backend (`crate::cuda`), chosen at boot. A backend
//! takes a raw frame from a ring slot and leaves the model's output in the
//! slot: preprocessing, the network and any copies are its business.
//!
//! Construction is boot (allocates, plans, warms up); `infer` runs on the
//! inference thread and never allocates.

use crate::calibration::Calibration;
use crate::engine::{build_cpu_model, Bindings, CpuModel, EngineError, Limits};
use crate::frame::FrameDesc;
use crate::preprocess::{InputStyle, Letterbox, LetterboxInfo, PreprocessError, RemapTable};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BackendError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error("{0}")]
    Model(String),
    #[error(transparent)]
    Cuda(#[from] crate::cuda::CudaError),
}
use crate::clock::monotonic_ns;
use std::path::Path;

/// Which backend runs the model (`pipeline.device`, `--device`): `Auto`
/// takes CUDA when a driver and the GPU are there, else the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Auto,
    Cpu,
    Cuda,
}

/// What one call to [`Backend::infer`] measured (CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, Copy, Default)]
pub struct InferTiming {
    /// Preprocessing finished, network started.
    pub pre_done_ns: u64,
    /// False: a stop signal cut the network short and `out` is not valid
    /// (the frame must not be published).
    pub complete: bool,
}

pub trait Backend: Send {
    /// `cpu (2 threads)`, `cuda:0 (NVIDIA ...)`, ...
    fn describe(&self) -> String;

    /// Model input `[width, height]`.
    fn input_size(&self) -> [usize; 2];

    /// How frames are fitted into the model input.
    fn letterbox(&self) -> LetterboxInfo;

    /// Shape of the (first) model output.
    fn output_shape(&self) -> &[usize];

    /// Boot: allocate the memory of `n` ring slots (frames of
    /// `frame_bytes`, outputs of `output_len` floats) and whatever the
    /// backend keeps per slot (the CUDA backend: pinned host memory and one
    /// captured CUDA graph per slot). The default keeps nothing: the ring
    /// uses heap memory.
    fn prepare_slots(
        &mut self,
        _n: usize,
        _frame_bytes: usize,
        _output_len: usize,
    ) -> Result<(), BackendError> {
        Ok(())
    }

    /// Boot: hand over the slot memory [`prepare_slots`](Self::prepare_slots)
    /// allocated, once (`None`: let the ring allocate it).
    fn take_slot_buffers(&mut self) -> Option<Vec<crate::ring::SlotBuffers>> {
        None
    }

    /// Host memory the planned model holds (arena, scratch, constants),
    /// for the memory budget; 0 where it lives on the device.
    fn model_bytes(&self) -> u64 {
        0
    }

    /// Whether the model sees the undistorted (rectified) image, so its
    /// boxes must be mapped back to raw pixels (see `preprocess::remap`).
    fn rectified_input(&self) -> bool {
        false
    }

    /// Preprocess `frame`, run the network, write the output to `out`
    /// (`output_shape()` elements). `slot` is the ring slot that holds
    /// `frame` and `out` (a backend with per-slot state uses it; any index
    /// is accepted, and buffers that are not the slot's own are copied).
    /// Frame path: never allocates.
    fn infer(&mut self, slot: usize, frame: &[u8], out: &mut [f32]) -> InferTiming;
}

/// The CPU backend: CPU letterbox preprocessing into the model's input
/// region of the arena, then the engine's CPU plan.
pub struct CpuBackend {
    letterbox: Letterbox,
    model: CpuModel,
    output_shape: Vec<usize>,
    input_size: [usize; 2],
}

impl CpuBackend {
    /// Boot: load and plan `model_path` for frames of `src`; models with
    /// symbolic input dims take `input_size` (`[width, height]`).
    pub fn new(
        model_path: &Path,
        src: FrameDesc,
        input_size: Option<[usize; 2]>,
        threads: usize,
    ) -> Result<CpuBackend, BackendError> {
        let limits = Limits::default();
        Self::new_within(
            model_path,
            src,
            input_size,
            threads,
            InputStyle::Letterbox,
            &limits,
        )
    }

    /// [`new`](Self::new) with the family's preprocessing `style`, within
    /// `limits` (the pipeline passes what its memory budget leaves for the
    /// model as `max_plan_bytes`).
    pub fn new_within(
        model_path: &Path,
        src: FrameDesc,
        input_size: Option<[usize; 2]>,
        threads: usize,
        style: InputStyle,
        limits: &Limits,
    ) -> Result<CpuBackend, BackendError> {
        let mut b = Bindings::new();
        if let Some([w, h]) = input_size {
            b.shapes.push(Some(vec![1, 3, h, w]));
        }
        let model = build_cpu_model(model_path, &b, threads, limits)?;
        let ins = model.inputs();
        if ins.len() != 1 {
            return Err(BackendError::Model(format!(
                "{}: a detector has one input, this model has {}",
                model_path.display(),
                ins.len()
            )));
        }
        let shape = &ins[0].shape;
        if shape.len() != 4 || shape[0] != 1 || shape[1] != 3 {
            return Err(BackendError::Model(format!(
                "{}: input '{}' is {} but a detector input must be 1x3xHxW",
                model_path.display(),
                ins[0].name,
                crate::engine::tensor::shape_string(shape)
            )));
        }
        let (h, w) = (shape[2], shape[3]);
        let output_shape = model
            .outputs()
            .first()
            .map(|o| o.shape.clone())
            .unwrap_or_default();
        Ok(CpuBackend {
            letterbox: Letterbox::with_style(src, w, h, style)?,
            model,
            output_shape,
            input_size: [w, h],
        })
    }
}

impl CpuBackend {
    /// Undistort through `cal` in preprocessing from now on. Returns false
    /// (and changes nothing) when the calibration has no distortion. Boot:
    /// builds the remap table.
    pub fn undistort(&mut self, cal: &Calibration) -> Result<bool, BackendError> {
        match RemapTable::build(cal, &self.letterbox)? {
            Some(table) => {
                self.letterbox.set_remap(table)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        format!("cpu ({} threads)", self.model.threads())
    }

    fn input_size(&self) -> [usize; 2] {
        self.input_size
    }

    fn letterbox(&self) -> LetterboxInfo {
        self.letterbox.info()
    }

    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn rectified_input(&self) -> bool {
        self.letterbox.remap().is_some()
    }

    fn model_bytes(&self) -> u64 {
        let st = self.model.stats();
        [st.arena_bytes, st.scratch_bytes, st.constant_bytes]
            .iter()
            .map(|&b| b as u64)
            .fold(0, u64::saturating_add)
    }

    fn infer(&mut self, _slot: usize, frame: &[u8], out: &mut [f32]) -> InferTiming {
        // Sizes were checked when the letterbox was built at boot, so this
        // cannot fail for a frame from the ring.
        let r = self.letterbox.run(frame, self.model.input_mut(0));
        debug_assert!(r.is_ok(), "letterbox: {r:?}");
        let pre_done_ns = monotonic_ns();
        if !self.model.run_unless(crate::stop::requested) {
            return InferTiming {
                pre_done_ns,
                complete: false,
            };
        }
        out.copy_from_slice(self.model.output(0));
        InferTiming {
            pre_done_ns,
            complete: true,
        }
    }
}
