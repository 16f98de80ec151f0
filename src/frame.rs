//! Frame formats and per-frame records shared by every pipeline stage:
//! the pixel formats sources deliver, frame geometry and byte sizes, and the
//! detection record postprocess produces and the outputs publish.
//!
//! Plain data; nothing here allocates after construction.

/// Pixel formats a source can deliver into a ring slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed 4:2:2, Y0 U Y1 V (V4L2 `YUYV`).
    Yuyv,
    /// Packed 4:2:2, U Y0 V Y1 (V4L2 `UYVY`).
    Uyvy,
    /// Y plane then interleaved UV at half resolution (V4L2 `NV12`).
    Nv12,
    /// 8-bit luma only (V4L2 `GREY`, Y4M `mono`).
    Grey,
    /// Packed R G B (V4L2 `RGB3`).
    Rgb24,
    /// Planar Y, U, V at 4:2:0 (Y4M `420*`); chroma is ceil(w/2) x ceil(h/2).
    I420,
    /// Planar 4:2:2 (Y4M `422`); chroma is ceil(w/2) x h.
    I422,
    /// Planar 4:4:4 (Y4M `444`).
    I444,
}

impl PixelFormat {
    /// Bytes of one frame of `width` x `height` in this format.
    pub fn frame_bytes(self, width: usize, height: usize) -> usize {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        match self {
            PixelFormat::Yuyv | PixelFormat::Uyvy => cw * 2 * 2 * height,
            PixelFormat::Nv12 => width * height + cw * 2 * ch,
            PixelFormat::Grey => width * height,
            PixelFormat::Rgb24 => width * height * 3,
            PixelFormat::I420 => width * height + 2 * cw * ch,
            PixelFormat::I422 => width * height + 2 * cw * height,
            PixelFormat::I444 => width * height * 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Uyvy => "UYVY",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Grey => "GREY",
            PixelFormat::Rgb24 => "RGB24",
            PixelFormat::I420 => "I420",
            PixelFormat::I422 => "I422",
            PixelFormat::I444 => "I444",
        }
    }
}

/// Geometry and format of the frames a source delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDesc {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
}

impl FrameDesc {
    pub fn bytes(&self) -> usize {
        self.format.frame_bytes(self.width, self.height)
    }
}

/// One detection, boxes in source pixels. Filled in by the postprocess
/// stages in turn: decode (class, score, box), ground (position), a
/// tracking stage (identity, age, velocity, time to collision).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Detection {
    pub class_id: u32,
    pub score: f32,
    /// `[x1, y1, x2, y2]` in source-image pixels.
    pub bbox: [f32; 4],
    /// Position on the ground in the vehicle frame (metres), if the ray
    /// through the box's bottom centre hits the ground ahead.
    pub ground: Option<[f32; 2]>,
    /// The confirmed track this detection belongs to (tracking stage);
    /// `None` when tracking is off or its track is not confirmed yet.
    pub track: Option<TrackInfo>,
}

/// What the tracker knows about a detection's object.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TrackInfo {
    /// Stable identity while the object is tracked; never reused in a run.
    pub id: u64,
    /// Frames since the track was started (1 on its first frame).
    pub age_frames: u32,
    /// `[vx, vy]` m/s in the vehicle frame, relative to the vehicle; `None`
    /// without a ground position or while the estimate is too uncertain.
    pub velocity: Option<[f32; 2]>,
    /// Time to collision (s) of an object closing in inside the ego
    /// corridor; `None` otherwise.
    pub ttc_s: Option<f32>,
}

/// One frame's metadata as the outputs publish it (the detections travel
/// beside it, see `output::FrameView`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FrameRecord {
    pub seq: u64,
    /// CLOCK_MONOTONIC nanoseconds at capture (`FrameStamp::capture_ns`).
    pub capture_ns: u64,
    /// The source's own timestamp (`FrameStamp::source_ns`).
    pub source_ns: Option<u64>,
    pub queue_ms: f32,
    pub preprocess_ms: f32,
    pub inference_ms: f32,
    pub postprocess_ms: f32,
    pub e2e_ms: f32,
    /// Frames dropped by the pipeline so far.
    pub dropped_total: u64,
    /// A tracking stage ran: the outputs write the track keys of every
    /// detection (null where it has no confirmed track).
    pub tracked: bool,
}
