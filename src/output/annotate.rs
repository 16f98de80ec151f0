//! The annotated video output (`kind = "annotate"`): every frame the viewer
//! thread gets ([`super::viewer`]) is drawn (boxes, labels, optionally the
//! ground grid and horizon) and written to `path`:
//!
//! * `*.y4m`: written natively, 4:4:4 (`C444`), BT.601 limited range (the
//!   inverse of the conversion the preprocessing uses), so
//!   `perceptd replay` reads it back;
//! * anything else (`.mp4`, `.mkv`, ...): an `ffmpeg` child process fed raw
//!   RGB frames through a pipe, encoding with its default codec for the
//!   container (H.264 for MP4 and MKV in Debian's ffmpeg), through the
//!   shared [`crate::ffmpeg::FfmpegChild`] (own process group, so a Ctrl-C
//!   to the shell does not cut the file short; its stderr made one line).
//!   Its input is closed at the end of the run, and it is waited for
//!   ([`FFMPEG_GRACE`] at most, [`STOP_GRACE`] after SIGTERM) and killed
//!   and reaped after that, or at once on a write error; a forced exit
//!   reaps it too ([`crate::ffmpeg::reap_all`]).
//!
//! Lockstep replay writes every frame; a live source writes what the
//! viewer thread keeps up with, and the frames skipped are counted
//! (`would block` in the output's summary line).
//!
//! Allocation: [`open`] (boot) opens the file or starts the child and
//! allocates the YUV buffer; the frame copies and canvases are its viewer
//! thread's (its own, apart from the JPEG outputs', so it keeps normal
//! priority in lockstep and never shares a thread that allocates).
//! `publish` (frame path) copies the frame into a shot and never
//! allocates. The viewer thread allocates nothing per frame: writes go
//! from the canvas (or the boot-allocated YUV buffer) straight to the file
//! or pipe.

use super::viewer::{Look, Pictures, Shot, View, Viewed};
use super::{OutputContext, OutputError};
use crate::ffmpeg::FfmpegChild;
use serde::Deserialize;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ChildStdin;
use std::time::Duration;

/// `[[output]]` with `kind = "annotate"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnotateConfig {
    /// `out.y4m` (native) or any file ffmpeg writes (`out.mp4`, `out.mkv`).
    pub path: PathBuf,
    /// Frame rate written into the file's header (the sources do not
    /// report theirs).
    #[serde(default = "d_fps")]
    pub fps: u32,
    /// Draw the ground grid (every 5 m ahead, 2 m sideways) and the
    /// horizon when a calibration is loaded.
    #[serde(default)]
    pub grid: bool,
}

fn d_fps() -> u32 {
    30
}

impl AnnotateConfig {
    /// A table for `--annotate PATH`.
    pub fn to_path(path: PathBuf) -> AnnotateConfig {
        AnnotateConfig {
            path,
            fps: d_fps(),
            grid: false,
        }
    }

    /// What is wrong with the table, as (field, value, why).
    pub fn problem(&self) -> Option<(&'static str, String, String)> {
        if !(1..=1000).contains(&self.fps) {
            return Some(("fps", self.fps.to_string(), "expected 1..=1000".into()));
        }
        if self.path.as_os_str().is_empty() || self.path.file_name().is_none() {
            return Some((
                "path",
                format!("\"{}\"", self.path.display()),
                "expected a file path (out.y4m, out.mp4, out.mkv)".into(),
            ));
        }
        None
    }

    fn is_y4m(&self) -> bool {
        self.path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("y4m"))
    }
}

/// How long the end of a run waits for ffmpeg to finish the file.
pub const FFMPEG_GRACE: Duration = Duration::from_secs(5);

/// [`FFMPEG_GRACE`] once a stop is requested: the process must end within
/// a second of SIGTERM ([`crate::stop::GRACE`] is 0.85 s), so ffmpeg gets
/// what is left for flushing its encoder and is killed (and reaped) after.
pub const STOP_GRACE: Duration = Duration::from_millis(500);

/// Boot: opens the file (or starts ffmpeg on it); returns the view (named
/// `annotate:PATH`) for its own viewer thread ([`super::viewer::spawn`]).
pub fn open(cfg: &AnnotateConfig, ctx: &OutputContext) -> Result<Viewed, OutputError> {
    let open_err = |msg: String| OutputError::Open {
        target: format!("annotate path {}", cfg.path.display()),
        msg,
    };
    let desc = ctx.desc;
    // Created here for both kinds, so an unwritable path fails at boot
    // with the OS's reason (ffmpeg would only fail later).
    let file = File::create(&cfg.path).map_err(|e| open_err(e.to_string()))?;
    let video = if cfg.is_y4m() {
        Video::Y4m(Y4mWriter::new(file, desc.width, desc.height, cfg.fps).map_err(open_err)?)
    } else {
        drop(file);
        Video::Ffmpeg(
            FfmpegWriter::spawn(&cfg.path, desc.width, desc.height, cfg.fps).map_err(open_err)?,
        )
    };
    Ok(Viewed {
        name: format!("annotate:{}", cfg.path.display()),
        view: Box::new(AnnotateView {
            look: Look::Annotated { grid: cfg.grid },
            video,
        }),
        skipped: None,
    })
}

/// Where the annotated frames go.
enum Video {
    Y4m(Y4mWriter<File>),
    Ffmpeg(FfmpegWriter),
}

/// The viewer-thread side: each frame drawn and written. Never allocates.
struct AnnotateView {
    look: Look,
    video: Video,
}

impl View for AnnotateView {
    fn show(&mut self, pics: &mut Pictures, shot: &Shot) -> Result<(), String> {
        let canvas = pics.canvas(self.look, shot);
        match &mut self.video {
            Video::Y4m(w) => w.write_rgb(&canvas.rgb).map_err(|e| e.to_string()),
            Video::Ffmpeg(f) => f.write(&canvas.rgb),
        }
    }

    fn end(&mut self) -> Result<(), String> {
        match &mut self.video {
            Video::Y4m(w) => w.flush().map_err(|e| e.to_string()),
            Video::Ffmpeg(f) => f.close(FFMPEG_GRACE),
        }
    }
}

/// BT.601 limited range RGB -> YUV, in 8-bit fixed point (the inverse of
/// the preprocessing's YUV -> RGB, within one level).
#[inline]
fn rgb_to_yuv(r: u8, g: u8, b: u8) -> [u8; 3] {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    [
        y.clamp(0, 255) as u8,
        u.clamp(0, 255) as u8,
        v.clamp(0, 255) as u8,
    ]
}

/// Writes annotated frames as Y4M 4:4:4. Public so tests and tools can
/// write the same files.
pub struct Y4mWriter<W: Write> {
    out: W,
    /// Y, U, V planes of one frame, allocated once.
    planes: Box<[u8]>,
}

impl<W: Write> Y4mWriter<W> {
    /// Writes the stream header. Allocates the plane buffer.
    pub fn new(mut out: W, width: usize, height: usize, fps: u32) -> Result<Y4mWriter<W>, String> {
        writeln!(out, "YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C444")
            .map_err(|e| e.to_string())?;
        Ok(Y4mWriter {
            out,
            planes: vec![0; width * height * 3].into_boxed_slice(),
        })
    }

    /// One frame from packed RGB. Never allocates.
    pub fn write_rgb(&mut self, rgb: &[u8]) -> std::io::Result<()> {
        let n = self.planes.len() / 3;
        let (y, uv) = self.planes.split_at_mut(n);
        let (u, v) = uv.split_at_mut(n);
        for (i, p) in rgb.chunks_exact(3).enumerate().take(n) {
            [y[i], u[i], v[i]] = rgb_to_yuv(p[0], p[1], p[2]);
        }
        self.out.write_all(b"FRAME\n")?;
        self.out.write_all(&self.planes)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// An `ffmpeg` child ([`FfmpegChild`]) encoding raw RGB frames from its
/// stdin into a file.
struct FfmpegWriter {
    child: FfmpegChild,
    stdin: Option<ChildStdin>,
    path: PathBuf,
}

impl FfmpegWriter {
    fn spawn(path: &Path, width: usize, height: usize, fps: u32) -> Result<FfmpegWriter, String> {
        let size = format!("{width}x{height}");
        let fps = fps.to_string();
        let fixed = [
            "-hide_banner",
            "-loglevel",
            "repeat+level+error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            &size,
            "-r",
            &fps,
            "-i",
            "pipe:0",
            // 4:2:0 needs even sizes; players expect 4:2:0.
            "-vf",
            "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            "-pix_fmt",
            "yuv420p",
        ];
        let mut args: Vec<&OsStr> = fixed.iter().map(OsStr::new).collect();
        args.push(path.as_os_str());
        let (child, pipes) = FfmpegChild::spawn(&args, true, false, false).map_err(|e| {
            if e == crate::ffmpeg::NOT_INSTALLED {
                format!("needs ffmpeg for this container (or write .y4m): {e}")
            } else {
                e
            }
        })?;
        Ok(FfmpegWriter {
            child,
            stdin: pipes.stdin,
            path: path.to_path_buf(),
        })
    }

    /// One frame of packed RGB to ffmpeg. Never allocates (an error does).
    fn write(&mut self, rgb: &[u8]) -> Result<(), String> {
        let Some(stdin) = &mut self.stdin else {
            return Err("ffmpeg's input is closed".into());
        };
        if let Err(e) = stdin.write_all(rgb) {
            // ffmpeg has gone or refuses: reap it and say why.
            let why = self.close(Duration::ZERO).err().unwrap_or_default();
            return Err(format!("writing to ffmpeg: {e} {why}"));
        }
        Ok(())
    }

    /// Closes ffmpeg's input and waits up to `grace` for it to finish the
    /// file ([`STOP_GRACE`] at most once a stop is requested, so the run
    /// still ends within a second); kills it after that. The child is
    /// always reaped.
    fn close(&mut self, grace: Duration) -> Result<(), String> {
        self.stdin = None;
        let grace = if crate::stop::requested() {
            grace.min(STOP_GRACE)
        } else {
            grace
        };
        let said = |c: &FfmpegChild| c.message().map(|m| format!(": {m}")).unwrap_or_default();
        match self.child.wait_exit(grace) {
            Some(st) if st.success() => Ok(()),
            Some(_) => Err(format!(
                "ffmpeg writing {} failed ({}){}",
                self.path.display(),
                self.child.describe_status(),
                said(&self.child)
            )),
            None => {
                self.child.kill();
                Err(format!(
                    "ffmpeg did not finish {} within {} ms: killed{}",
                    self.path.display(),
                    grace.as_millis(),
                    said(&self.child)
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_to_yuv_inverts_the_preprocessing_within_a_level() {
        use crate::frame::{FrameDesc, PixelFormat};
        for (y, u, v) in [
            (16u8, 128u8, 128u8),
            (235, 128, 128),
            (81, 90, 240),
            (145, 54, 34),
        ] {
            let desc = FrameDesc {
                format: PixelFormat::I444,
                width: 1,
                height: 1,
            };
            let mut rgb = [0u8; 3];
            crate::preprocess::rgb_row(desc, &[y, u, v], 0, &mut rgb);
            let back = rgb_to_yuv(rgb[0], rgb[1], rgb[2]);
            for (a, b) in back.iter().zip([y, u, v]) {
                assert!(
                    (*a as i32 - b as i32).abs() <= 2,
                    "{y},{u},{v} -> {rgb:?} -> {back:?}"
                );
            }
        }
    }

    #[test]
    fn a_y4m_file_has_the_header_and_one_frame_per_write() {
        let mut w = Y4mWriter::new(Vec::new(), 2, 1, 25).unwrap();
        w.write_rgb(&[255, 255, 255, 0, 0, 0]).unwrap();
        w.write_rgb(&[0; 6]).unwrap();
        let b = &w.out;
        let header = b"YUV4MPEG2 W2 H1 F25:1 Ip A1:1 C444\n";
        assert!(b.starts_with(header));
        assert_eq!(b.len(), header.len() + 2 * (6 + 6));
        assert_eq!(&b[header.len()..header.len() + 8], b"FRAME\n\xeb\x10");
    }
}
