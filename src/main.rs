//! The `perceptd` command line: a thin layer over the library. Parses
//! flags, calls into `perceptd`, prints results, maps errors to exit codes
//! (documented in README: 0 ok, 1 error, 2 usage, 3 comparison failed,
//! 4 source lost mid-run, 5 hard stage deadline passed — exited from the
//! supervisor thread, see `perceptd::service`; 6 GPU fault in the frame
//! loop, exited from the inference thread by `perceptd::cuda`).

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use perceptd::backend::Device;
use perceptd::boot::{boot, Overrides};
use perceptd::config::{parse_input_size, ChoiceParser, Config, SourceConfig};
use perceptd::engine;
use perceptd::frame::PixelFormat;
use perceptd::source::v4l2::CameraFormat;
use perceptd::source::y4m::Pace;
use perceptd::source::SourceError;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A line of a command's result on stdout. A failed write (the reader went
/// away: `| head -1`; a full disk) ends the command through
/// [`StdoutFailed`] instead of panicking like `println!`.
macro_rules! outln {
    ($($t:tt)*) => {
        stdout_line(format_args!($($t)*))?
    };
}

/// A line on stderr, best effort: with stderr closed or full there is no
/// one left to tell, and the exit code still says how the command ended.
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// Writing stdout failed; `main` maps it to a quiet exit (EPIPE: 0) or
/// exit 1 with one line (ENOSPC and the rest).
#[derive(Debug, thiserror::Error)]
#[error("stdout: {0}")]
struct StdoutFailed(std::io::Error);

fn stdout_line(args: std::fmt::Arguments<'_>) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| StdoutFailed(e).into())
}

mod model_cmd;
use model_cmd::{bench_model, boot_model, infer, mib, shape_arg};

/// The binary opts into counting heap allocations (one relaxed atomic add
/// each) so that `perceptd gpu-check` can show the frame loop allocates
/// nothing on the machine that runs it.
#[global_allocator]
static ALLOC: perceptd::count_alloc::Counting = perceptd::count_alloc::Counting;

/// The pipeline's stop flag, set by SIGINT/SIGTERM (see `perceptd::stop`).
static STOP: std::sync::LazyLock<Arc<AtomicBool>> =
    std::sync::LazyLock::new(|| Arc::new(AtomicBool::new(false)));

#[derive(Parser)]
#[command(
    name = "perceptd",
    version,
    about = "Real-time perception pipeline: camera -> ONNX detector -> detections on the ground"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the pipeline: source -> model -> detections as JSON lines on
    /// stdout (or the configured output), logs and summaries on stderr.
    Run {
        /// TOML config (relative paths in it are relative to its folder);
        /// without it the embedded default runs from any folder: synthetic
        /// camera, the built-in model and calibration.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Stop after this many frames and exit 0 (default: run until
        /// Ctrl-C/SIGTERM or the source ends).
        #[arg(long)]
        frames: Option<u64>,
        /// Override the config's pipeline.device.
        #[arg(long, value_parser = ChoiceParser::<Device>::new())]
        device: Option<Device>,
        /// Override the config's model.path: an ONNX file, or
        /// builtin:synthetic.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Model input WIDTHxHEIGHT for models with symbolic dims, e.g.
        /// 640x384 (default: model.input_size, else the model's metadata
        /// imgsz).
        #[arg(long, value_parser = parse_input_size)]
        input_size: Option<[usize; 2]>,
        /// Override the synthetic camera's pace: realtime (live: at its fps,
        /// latest frame wins, latency is meaningful) or fast (lockstep:
        /// nothing dropped, measures throughput).
        #[arg(long, value_parser = ChoiceParser::<Pace>::new())]
        pace: Option<Pace>,
        /// Override the config's output: stdout, a file, udp://HOST:PORT.
        #[arg(long)]
        output: Option<String>,
        /// Also write the annotated video (boxes, labels) to this file:
        /// .y4m natively, .mp4/.mkv/... through ffmpeg.
        #[arg(long)]
        annotate: Option<PathBuf>,
    },
    /// Replay a recording through the same pipeline: Y4M, a raw MJPEG
    /// stream, a ROS 2 bag (MCAP file or rosbag2 folder) or any video
    /// ffmpeg reads (MP4, MKV, MOV, ...: an ffmpeg child decodes it), told
    /// apart by content.
    Replay {
        /// The recording (e.g. from `perceptd record`; `-` reads stdin).
        file: PathBuf,
        /// realtime: at the recording's times (Y4M: its frame rate; video:
        /// presentation timestamps; bag: header stamps; raw MJPEG: 30 fps),
        /// dropping frames when slow; fast: lockstep, nothing dropped,
        /// deterministic.
        #[arg(long, default_value = "fast", value_parser = ChoiceParser::<Pace>::new())]
        pace: Pace,
        /// The model: an ONNX file, or builtin:synthetic (default: the
        /// config's model.path, else the built-in model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Model input WIDTHxHEIGHT for models with symbolic dims, e.g.
        /// 640x384 (default: model.input_size, else the model's metadata
        /// imgsz).
        #[arg(long, value_parser = parse_input_size)]
        input_size: Option<[usize; 2]>,
        /// Stop after this many frames (default: the whole file).
        #[arg(long)]
        frames: Option<u64>,
        /// Config for everything but the source (its [source] table, if
        /// any, is ignored; default: the embedded one).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override the config's pipeline.device.
        #[arg(long, value_parser = ChoiceParser::<Device>::new())]
        device: Option<Device>,
        /// Override the config's output: stdout, a file, udp://HOST:PORT.
        #[arg(long)]
        output: Option<String>,
        /// Also write the annotated video (boxes, labels) to this file:
        /// .y4m natively, .mp4/.mkv/... through ffmpeg.
        #[arg(long)]
        annotate: Option<PathBuf>,
        #[command(flatten)]
        bag: perceptd::source::bag::BagArgs,
    },
    /// Record a V4L2 camera: raw formats to Y4M (each frame's capture
    /// timestamp, CLOCK_MONOTONIC ns, as the frame parameter XTS=<ns>);
    /// mjpeg keeps the camera's JPEGs as they came, as a raw MJPEG stream.
    Record {
        #[arg(long, default_value = "/dev/video0")]
        device: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        frames: Option<u64>,
        /// A camera format (Y4M cannot hold rgb24); mjpeg: the camera's
        /// JPEGs, not decoded (refused for a camera without MJPEG).
        #[arg(long, default_value = "yuyv", value_parser = ChoiceParser::<CameraFormat>::new())]
        format: CameraFormat,
        #[arg(long, default_value_t = 640)]
        width: usize,
        #[arg(long, default_value_t = 480)]
        height: usize,
        #[arg(long, default_value_t = 30)]
        fps: u32,
    },
    /// Write synthetic frames and YOLO labels for training (BMP images).
    SynthDataset {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Frames rendered (1..=1000000: 10 minutes at 30 fps of BMPs is
        /// already tens of GB).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=MAX_DATASET_FRAMES))]
        frames: u64,
        /// Keep every Nth frame.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_DATASET_FRAMES))]
        every: u64,
        /// Also write tracking ground truth for every frame: OUT/gt/gt.txt
        /// (MOTChallenge) and OUT/gt/ground.csv (ground position and
        /// velocity).
        #[arg(long)]
        mot: bool,
    },
    /// Run a model once on inputs stored as serialized onnx.TensorProto files
    /// (the ONNX backend-test layout) and write output_N.pb files.
    Infer {
        /// The ONNX model.
        model: PathBuf,
        /// Input tensors in graph-input order (repeat the flag).
        #[arg(long = "input", required = true)]
        inputs: Vec<PathBuf>,
        /// Where to write output_0.pb, output_1.pb, ...
        #[arg(long)]
        output_dir: Option<PathBuf>,
        /// Compare against expected output_N.pb files in this folder;
        /// exit 3 when any element differs by more than atol + rtol*|expected|.
        #[arg(long)]
        compare_dir: Option<PathBuf>,
        /// Relative tolerance: a finite number >= 0.
        #[arg(long, default_value_t = 1e-4, value_parser = tolerance)]
        rtol: f32,
        /// Absolute tolerance: a finite number >= 0.
        #[arg(long, default_value_t = 1e-5, value_parser = tolerance)]
        atol: f32,
        /// Kernel threads (1..=256).
        #[arg(long, default_value_t = 1, value_parser = bounded::<1, 256>)]
        threads: usize,
    },
    /// Benchmark a model on random input: boot time, memory plan, latency.
    BenchModel {
        model: PathBuf,
        /// Kernel threads (1..=256).
        #[arg(long, default_value_t = 1, value_parser = bounded::<1, 256>)]
        threads: usize,
        /// Timed inferences after warm-up (1..=1000000).
        #[arg(long, default_value_t = 50, value_parser = bounded::<1, 1_000_000>)]
        iters: usize,
        /// Untimed inferences first (0..=100000).
        #[arg(long, default_value_t = 5, value_parser = bounded::<0, 100_000>)]
        warmup: usize,
        /// Input shape for models with symbolic dims, e.g. 1x3x640x640.
        #[arg(long, value_parser = shape_arg)]
        input_shape: Option<String>,
        /// End with one JSON object on the last line of stdout.
        #[arg(long)]
        json: bool,
        /// Then time every step over as many runs: per op kind and per step.
        #[arg(long)]
        profile: bool,
    },
    /// Benchmark the tracker alone: cost per frame on a generated scene of
    /// N moving objects. `benches/tracking_vs_bytetrack.py` runs ByteTrack
    /// on the same detections (`--dump`).
    BenchTracking {
        /// Objects in the generated scene.
        #[arg(long, default_value_t = 10)]
        objects: usize,
        #[arg(long, default_value_t = 2000)]
        frames: usize,
        /// Write the scene's detections here (JSON lines) for a peer.
        #[arg(long)]
        dump: Option<PathBuf>,
        /// End stdout with one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Benchmark what the pipeline costs per frame apart from the network:
    /// the real pipeline on synthetic frames held in memory, with the
    /// network replaced by the outputs it gave for them at boot.
    /// `benches/pipeline_overhead.py` runs it next to an OpenCV/numpy loop.
    BenchPipeline {
        /// TOML config (default: the embedded one); its source must be
        /// synthetic.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        model: Option<PathBuf>,
        /// Pixel format of the synthetic frames.
        #[arg(long, default_value = "yuyv", value_parser = ChoiceParser::<PixelFormat>::new())]
        format: PixelFormat,
        /// 1..=16384, as `source.width` (the memory they take is checked
        /// before allocating).
        #[arg(long, default_value_t = 640, value_parser = bounded::<1, 16384>)]
        width: usize,
        #[arg(long, default_value_t = 480, value_parser = bounded::<1, 16384>)]
        height: usize,
        /// Frames through the pipeline.
        #[arg(long, default_value_t = 3000)]
        frames: u64,
        /// Distinct frames rendered (and inferred) at boot, then cycled
        /// (1..=1024).
        #[arg(long, default_value_t = 32, value_parser = bounded::<1, 1024>)]
        distinct: usize,
        /// Write the frames, the network outputs and meta.json here.
        #[arg(long)]
        dump: Option<PathBuf>,
        /// End with one JSON object on the last line of stdout.
        #[arg(long)]
        json: bool,
    },
    /// On a machine with an NVIDIA GPU: the CUDA backend vs the CPU backend
    /// (preprocessing, every op, end to end FP32/FP16), per-phase latency
    /// and heap allocations over N frames. Exit 3 when a check fails.
    GpuCheck {
        /// An ONNX file, or builtin:synthetic (the model in the binary).
        #[arg(long, default_value = perceptd::builtin::MODEL_PATH)]
        model: PathBuf,
        #[arg(long, default_value_t = 0)]
        cuda_device: usize,
        #[arg(long, default_value_t = 1000)]
        frames: usize,
    },
    /// Load a model and print what perceptd infers from it (input size,
    /// classes and their names, decoder; from its metadata where present)
    /// and its plan: inputs, outputs, op counts after fusion, arena size.
    /// With --config or --calibration, also validate the calibration (and
    /// its image size against the config's source).
    Check {
        /// The model: an ONNX file or builtin:synthetic (default with
        /// --config: the config's model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Input shape for models with symbolic dims, e.g. 1x3x640x640.
        #[arg(long, value_parser = shape_arg)]
        input_shape: Option<String>,
        /// A config: its calibration, source size and model are checked.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A calibration file to validate.
        #[arg(long)]
        calibration: Option<PathBuf>,
    },
    /// Undistorted normalised point and ground position (vehicle frame) of
    /// raw pixels, to check a calibration.
    Geometry {
        /// ROS camera_info YAML with extrinsics.
        #[arg(long)]
        calibration: PathBuf,
        /// U,V in raw pixels, OpenCV convention (integers are pixel
        /// centres); repeat the flag.
        #[arg(long = "pixel", required = true, allow_hyphen_values = true)]
        pixels: Vec<String>,
        /// One JSON object per pixel and line.
        #[arg(long)]
        json: bool,
    },
}

/// Most frames `synth-dataset` writes.
const MAX_DATASET_FRAMES: u64 = 1_000_000;

/// `--rtol`/`--atol`: NaN compares false with everything, so a NaN
/// tolerance passed every comparison; a bad value is a usage error.
fn tolerance(s: &str) -> std::result::Result<f32, String> {
    let v: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("'{s}': expected a finite number >= 0"));
    }
    Ok(v)
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    if matches!(
        cli.cmd,
        Cmd::Run { .. } | Cmd::Replay { .. } | Cmd::Record { .. }
    ) {
        // Before boot: a signal during boot (model load, warm-up, waiting
        // for a camera or a FIFO's writer) is a clean exit, not a death by
        // the signal.
        if let Err(e) = perceptd::stop::install(Arc::clone(&STOP)) {
            errln!("error: installing the SIGINT/SIGTERM handler: {e}");
            std::process::exit(1);
        }
    }
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<StdoutFailed>() {
            Some(StdoutFailed(io)) if io.kind() == std::io::ErrorKind::BrokenPipe => 0,
            _ => {
                errln!("error: {e:#}");
                exit_code_of(&e)
            }
        },
    };
    std::process::exit(code);
}

/// 6 for a sticky GPU error at boot (the GPU needs the process restarted,
/// like a fault in the frame loop), 1 for every other error.
fn exit_code_of(e: &anyhow::Error) -> i32 {
    use perceptd::backend::BackendError;
    use perceptd::boot::BootError;
    match e.downcast_ref::<BootError>() {
        Some(BootError::Backend(BackendError::Cuda(c))) if c.is_sticky() => {
            perceptd::cuda::EXIT_GPU_FAULT
        }
        _ => 1,
    }
}

fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Run {
            config,
            frames,
            device,
            model,
            input_size,
            pace,
            output,
            annotate,
        } => {
            let mut cfg = match config {
                Some(p) => Config::load(&p)?,
                None => Config::default_embedded()?,
            };
            if !cfg.source_set {
                bail!(
                    "{}: no [source] table: run needs one (kind = \"synthetic\", \"v4l2\" or \"y4m\"); replay takes the source from its file argument",
                    cfg.origin
                );
            }
            if let Some(p) = pace {
                match &mut cfg.source {
                    SourceConfig::Synthetic { pace, .. } | SourceConfig::Y4m { pace, .. } => {
                        *pace = p
                    }
                    SourceConfig::V4l2 { .. } => {
                        bail!(
                            "--pace: a V4L2 camera runs at its own pace (live, latest frame wins)"
                        )
                    }
                }
            }
            run_pipeline(
                &cfg,
                &Overrides {
                    frames,
                    device,
                    model,
                    input_size,
                    output,
                    annotate,
                },
            )
        }
        Cmd::Replay {
            file,
            pace,
            model,
            input_size,
            frames,
            config,
            device,
            output,
            annotate,
            bag,
        } => {
            let mut cfg = match config {
                Some(p) => Config::load(&p)?,
                None => Config::default_embedded()?,
            };
            cfg.source = SourceConfig::Y4m {
                path: file,
                pace,
                topic: bag.topic,
            };
            run_pipeline(
                &cfg,
                &Overrides {
                    frames,
                    device,
                    model,
                    input_size,
                    output,
                    annotate,
                },
            )
        }
        Cmd::Record {
            device,
            out,
            frames,
            format,
            width,
            height,
            fps,
        } => {
            let line =
                perceptd::record::from_device(device, &out, frames, format, [width, height], fps)?;
            errln!("{line}");
            Ok(0)
        }
        Cmd::SynthDataset {
            out,
            seed,
            frames,
            every,
            mot,
        } => {
            perceptd::source::synthetic::write_dataset(&out, seed, frames, every)?;
            if mot {
                perceptd::source::synthetic::write_mot(&out, seed, frames)?;
            }
            outln!(
                "wrote {} frames of seed {seed} to {}",
                frames.div_ceil(every.max(1)),
                out.display()
            );
            Ok(0)
        }
        Cmd::Infer {
            model,
            inputs,
            output_dir,
            compare_dir,
            rtol,
            atol,
            threads,
        } => infer(
            &model,
            &inputs,
            output_dir.as_deref(),
            compare_dir.as_deref(),
            rtol,
            atol,
            threads,
        ),
        Cmd::BenchModel {
            model,
            threads,
            iters,
            warmup,
            input_shape,
            json,
            profile,
        } => bench_model(
            &model,
            (threads, iters, warmup),
            input_shape.as_deref(),
            json,
            profile,
        ),
        Cmd::BenchTracking {
            objects,
            frames,
            dump,
            json,
        } => {
            use perceptd::postprocess::track::bench;
            if !(1..=500).contains(&objects) || !(11..=1_000_000).contains(&frames) {
                bail!("bench-tracking: --objects must be 1..=500 and --frames 11..=1000000 (got {objects}, {frames})");
            }
            let scene = bench::scene(objects, frames);
            if let Some(p) = dump {
                std::fs::write(&p, bench::dump(&scene))
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            let r = bench::run(&scene, objects);
            outln!(
                "tracker, {} objects, {} frames: median {:.1} us, p99 {:.1} us, mean {:.1} us per frame",
                r.objects, r.frames, r.median_us, r.p99_us, r.mean_us
            );
            if json {
                outln!("{}", r.json());
            }
            Ok(0)
        }
        Cmd::BenchPipeline {
            config,
            model,
            format,
            width,
            height,
            frames,
            distinct,
            dump,
            json,
        } => {
            let mut cfg = match config {
                Some(p) => Config::load(&p)?,
                None => Config::default_embedded()?,
            };
            match &mut cfg.source {
                SourceConfig::Synthetic {
                    format: f,
                    width: w,
                    height: h,
                    pace,
                    ..
                } => {
                    *f = format;
                    *w = width;
                    *h = height;
                    *pace = Pace::Fast;
                }
                _ => bail!("bench-pipeline: the config's [source] must be synthetic"),
            }
            if let Some(m) = model {
                cfg.model.path = m;
            }
            let r = perceptd::bench::bench_pipeline(&cfg, frames, distinct, dump.as_deref())?;
            outln!(
                "{} frames ({} distinct) from {}, model input {}x{}, {:.1} detections/frame, network excluded:",
                r.frames, r.distinct_frames, r.source, r.model_input[0], r.model_input[1], r.detections_per_frame
            );
            outln!("  wall per frame {:.3} ms (pipelined: capture, preprocess, postprocess+sink on their own threads)", r.wall_ms_per_frame);
            outln!(
                "  preprocess     p50 {:.3} ms  p99 {:.3} ms",
                r.pre_p50,
                r.pre_p99
            );
            outln!(
                "  postprocess    p50 {:.3} ms  p99 {:.3} ms (decode, NMS, ground, JSON, write)",
                r.post_p50,
                r.post_p99
            );
            outln!(
                "  capture->sink  p50 {:.3} ms  p99 {:.3} ms",
                r.e2e_p50,
                r.e2e_p99
            );
            if json {
                outln!("{}", r.json());
            }
            Ok(0)
        }
        Cmd::GpuCheck {
            model,
            cuda_device,
            frames,
        } => {
            let mut out = std::io::stdout();
            match perceptd::cuda::check::run(&model, cuda_device, frames, &mut out) {
                Ok(true) => {
                    outln!("\ngpu-check: all checks passed");
                    Ok(0)
                }
                Ok(false) => {
                    outln!("\ngpu-check: FAILED (see above)");
                    Ok(3)
                }
                Err(e) => bail!("gpu-check: {e}"),
            }
        }
        Cmd::Check {
            model,
            input_shape,
            config,
            calibration,
        } => {
            if model.is_none() && config.is_none() && calibration.is_none() {
                errln!("error: check needs --model, --config or --calibration");
                return Ok(2);
            }
            let cfg = config.as_deref().map(Config::load).transpose()?;
            if let Some(c) = &cfg {
                if let Some(p) = &c.calibration.path {
                    check_calibration(p, Some(c))?;
                }
            }
            if let Some(p) = &calibration {
                check_calibration(p, cfg.as_ref())?;
            }
            let labels = cfg.as_ref().and_then(|c| c.model.labels.clone());
            let cfg_size = cfg.as_ref().and_then(|c| c.model.input_size);
            let model = model.or_else(|| cfg.as_ref().map(|c| c.model.path.clone()));
            let mm = match &model {
                Some(m) => check(m, input_shape.as_deref(), cfg_size, labels.as_deref())?,
                None => perceptd::budget::ModelMemory::default(),
            };
            if let Some(c) = &cfg {
                check_memory(c, mm)?;
            }
            Ok(0)
        }
        Cmd::Geometry {
            calibration,
            pixels,
            json,
        } => geometry(&calibration, &pixels, json),
    }
}

/// `perceptd check` on a calibration: load (which validates it) and, with
/// a config, compare its image size with the source's.
fn check_calibration(path: &Path, cfg: Option<&Config>) -> Result<()> {
    let cal = perceptd::calibration::Calibration::load(path)?;
    if let Some(cfg) = cfg {
        let (w, h) = match &cfg.source {
            SourceConfig::Synthetic { width, height, .. }
            | SourceConfig::V4l2 { width, height, .. } => (*width, *height),
            SourceConfig::Y4m { path, .. } => {
                let src = perceptd::source::replay::open(
                    path,
                    perceptd::source::y4m::Pace::Fast,
                    cfg.pipeline.max_memory_mb,
                )?;
                (src.desc().width, src.desc().height)
            }
        };
        cal.check_image_size(w, h)?;
    }
    outln!(
        "calibration {}: camera '{}' {}x{}, {} {:?}, ok",
        path.display(),
        cal.camera_name(),
        cal.width(),
        cal.height(),
        cal.distortion_model().ros_name(),
        cal.distortion_coefficients()
    );
    Ok(())
}

/// `perceptd geometry`: exit 2 on a malformed `--pixel`.
fn geometry(path: &Path, pixels: &[String], json: bool) -> Result<i32> {
    let mut parsed = Vec::with_capacity(pixels.len());
    for p in pixels {
        match perceptd::calibration::parse_pixel(p) {
            Ok(px) => parsed.push(px),
            Err(e) => {
                errln!("error: {e}");
                return Ok(2);
            }
        }
    }
    let cal = perceptd::calibration::Calibration::load(path)?;
    for [u, v] in parsed {
        let g = cal.pixel_geometry(u, v);
        outln!("{}", if json { g.to_json() } else { g.to_text() });
    }
    Ok(0)
}

/// A whole number in `LO..=HI` on the command line; anything else is a
/// usage error (exit 2) naming the range, before anything is allocated.
fn bounded<const LO: usize, const HI: usize>(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if (LO..=HI).contains(&v) => Ok(v),
        _ => Err(format!("expected a whole number in {LO}..={HI}")),
    }
}

/// `perceptd check --config`: the memory budget boot checks, with the same
/// figure (frames from the config or the Y4M header, the planned model).
fn check_memory(cfg: &Config, model: perceptd::budget::ModelMemory) -> Result<()> {
    let (desc, what) = match cfg.stated_frame() {
        Some(d) => (d, format!("{}x{} {} frames", d.width, d.height, d.format)),
        None => match &cfg.source {
            SourceConfig::Y4m { path, .. } => {
                let src =
                    perceptd::source::replay::open(path, Pace::Fast, cfg.pipeline.max_memory_mb)?;
                let d = src.desc();
                let what = format!(
                    "{}x{} {} frames from {}",
                    d.width,
                    d.height,
                    d.format,
                    src.describe()
                );
                (d, what)
            }
            _ => return Ok(()),
        },
    };
    let b = perceptd::budget::MemoryBudget::estimate(cfg, desc, model);
    outln!(
        "memory budget: {} (limit pipeline.max_memory_mb = {} MiB)",
        b.describe(),
        cfg.pipeline.max_memory_mb
    );
    b.check(cfg.pipeline.max_memory_mb, &cfg.origin, &what)?;
    Ok(())
}

/// `perceptd check --model`: what `run` would infer from the model (input
/// size, classes with names, decoder), then its plan; returns what the
/// memory budget needs of it.
fn check(
    model: &Path,
    shape: Option<&str>,
    cfg_size: Option<[usize; 2]>,
    labels: Option<&Path>,
) -> Result<perceptd::budget::ModelMemory> {
    use perceptd::postprocess::{Decoder, DecoderKind, Labels};
    // As `run` binds it: --input-shape, else model.input_size, else the
    // metadata's imgsz.
    let (meta, size) = perceptd::boot::model_facts(model, None, cfg_size)?;
    let size_shape = size.map(|[w, h]| format!("1x3x{h}x{w}"));
    let (m, boot_ms) = boot_model(model, shape.or(size_shape.as_deref()), 1)?;
    outln!(
        "model {} (booted in {boot_ms:.1} ms)",
        perceptd::builtin::describe(model)
    );
    let size_from = match (shape, cfg_size, meta.imgsz) {
        (Some(_), _, _) => "--input-shape",
        (None, Some(_), _) => "model.input_size",
        (None, None, Some(_)) => "metadata imgsz",
        (None, None, None) => "the model's fixed input",
    };
    if let Some(i) = m.inputs().first() {
        if let [_, _, h, w] = i.shape[..] {
            outln!("  input size  {w}x{h} (from {size_from})");
        }
    }
    let out_shape = m
        .outputs()
        .first()
        .map(|o| o.shape.clone())
        .unwrap_or_default();
    // As `run` chooses it: end2end from the metadata (its class count from
    // the metadata names), else the first layout the shape fits.
    let end2end_classes = meta
        .names
        .as_deref()
        .and_then(|n| Labels::parse_text(n, "metadata names").ok())
        .map(|l| l.len());
    let kinds: &[DecoderKind] = if meta.head.as_deref() == Some("RTDETRDecoder") {
        &[DecoderKind::RtDetr]
    } else if meta.end2end == Some(true) {
        &[DecoderKind::End2End]
    } else {
        // A [1, N, 5+C] output with one box per grid cell is YOLOX's.
        &[DecoderKind::YoloV8, DecoderKind::YoloX, DecoderKind::YoloV5]
    };
    let input_wh = match m.inputs().first().map(|i| &i.shape[..]) {
        Some(&[_, _, h, w]) => [w, h],
        _ => [0, 0],
    };
    let decoded = kinds.iter().find_map(|&k| {
        let classes = matches!(k, DecoderKind::End2End | DecoderKind::RtDetr)
            .then_some(end2end_classes)
            .flatten();
        Decoder::new(k, &out_shape, classes, 0.25, 0.45, 100, 30_000)
            .and_then(|d| d.with_input_size(input_wh))
            .ok()
            .map(|d| (k, d))
    });
    match &decoded {
        Some((k, d)) => outln!(
            "  decoder     {} (output {}, {} classes; task {}, end2end {})",
            match k {
                DecoderKind::YoloV8 => "yolov8 (also yolo11, yolov5u): [1, 4+C, N]",
                DecoderKind::YoloV5 => "yolov5: [1, N, 5+C]",
                DecoderKind::End2End =>
                    "end2end (YOLOv10, YOLO26): [1, N, 6] x1, y1, x2, y2, score, class; no NMS",
                DecoderKind::YoloX | DecoderKind::YoloXDecoded =>
                    "yolox (raw head) or yolox-decoded (boxes decoded in the graph), set it in \
                     model.decoder: [1, N, 5+C], one box per cell of strides 8/16/32",
                DecoderKind::RtDetr if d.rtdetr_rows() == Some(true) =>
                    "rtdetr: [1, K, 6] normalised cx, cy, w, h, score, class; no NMS",
                DecoderKind::RtDetr =>
                    "rtdetr: [1, Q, 4+C] normalised cx, cy, w, h, class scores; no NMS",
            },
            engine::tensor::shape_string(&out_shape),
            d.num_classes(),
            meta.task.as_deref().unwrap_or("not in metadata"),
            meta.end2end
                .map_or("not in metadata", |e| if e { "true" } else { "false" }),
        ),
        None => outln!(
            "  decoder     none fits output {} (perceptd decodes [1, 4+C, N], [1, N, 5+C] and, with metadata end2end or head RTDETRDecoder and names, [1, N, 6])",
            engine::tensor::shape_string(&out_shape)
        ),
    }
    if let Some((k, _)) = &decoded {
        let style = perceptd::preprocess::InputStyle::for_decoder(*k);
        outln!(
            "  preprocess  {style}: {} (this family's; model.preprocess sets another)",
            style.describe()
        );
    }
    let beside = [
        model.with_extension("labels"),
        model.with_file_name("labels.txt"),
    ];
    let beside = beside
        .iter()
        .find(|p| !perceptd::builtin::is_builtin(model) && p.exists());
    let (names, from) = if let Some(p) = labels {
        (
            Some(Labels::load(p)?),
            format!("{} (model.labels)", p.display()),
        )
    } else if let Some(p) = beside {
        (Some(Labels::load(p)?), p.display().to_string())
    } else if let Some(n) = &meta.names {
        let from = format!("{} metadata names", model.display());
        (
            Some(Labels::parse_text(n, &from)?),
            "metadata names".to_string(),
        )
    } else if perceptd::builtin::is_model(model) {
        (
            Some(Labels::parse_text(
                perceptd::builtin::LABELS,
                "embedded labels",
            )?),
            "embedded labels".to_string(),
        )
    } else {
        (None, String::new())
    };
    match names {
        Some(l) => {
            let shown: Vec<String> = l
                .names()
                .iter()
                .take(20)
                .enumerate()
                .map(|(i, n)| format!("{i}: {n}"))
                .collect();
            let more = if l.len() > 20 {
                format!(", ... ({} more)", l.len() - 20)
            } else {
                String::new()
            };
            outln!(
                "  classes     {} from {from}: {}{more}",
                l.len(),
                shown.join(", ")
            );
            if let Some((_, d)) = &decoded {
                if d.num_classes() != l.len() {
                    outln!(
                        "  warning: {} names but the output has {} classes",
                        l.len(),
                        d.num_classes()
                    );
                }
            }
        }
        None => outln!("  classes     no names (no labels file, no metadata names): class0.."),
    }
    for p in m.inputs() {
        outln!(
            "  input  {:<20} {}",
            p.name,
            engine::tensor::shape_string(&p.shape)
        );
    }
    for p in m.outputs() {
        outln!(
            "  output {:<20} {}",
            p.name,
            engine::tensor::shape_string(&p.shape)
        );
    }
    let st = m.stats();
    outln!(
        "plan: {} steps ({} views aliased, {} in place)",
        st.steps,
        st.views,
        st.inplace
    );
    for (op, n) in &st.op_counts {
        outln!("  {op:<24} {n}");
    }
    outln!(
        "arena {} bytes ({:.2} MiB) for {} bytes of run-phase tensors ({:.1}x reuse); scratch {} bytes; constants {} bytes",
        st.arena_bytes,
        mib(st.arena_bytes),
        st.tensor_bytes,
        st.tensor_bytes as f64 / st.arena_bytes.max(1) as f64,
        st.scratch_bytes,
        st.constant_bytes
    );
    let input = m
        .inputs()
        .first()
        .filter(|p| p.shape.len() == 4)
        .map(|p| [p.shape[3], p.shape[2]]);
    Ok(perceptd::budget::ModelMemory {
        input,
        output_len: m
            .outputs()
            .first()
            .map(|p| p.shape.iter().product())
            .unwrap_or(0),
        bytes: [st.arena_bytes, st.scratch_bytes, st.constant_bytes]
            .iter()
            .map(|&b| b as u64)
            .sum(),
    })
}

fn run_pipeline(cfg: &Config, ov: &Overrides) -> Result<i32> {
    let pipeline = boot(cfg, ov)?;
    // From here a signal drains the pipeline and prints the summary.
    perceptd::stop::set_phase(perceptd::stop::Phase::Running);
    log::info!("running ({} ring slots)", pipeline.ring_slots);
    let report = pipeline.run(Arc::clone(&STOP));
    let mut buf = vec![0u8; 1024];
    let mut line = report
        .metrics
        .write_summary(&mut buf, report.elapsed_s)
        .to_string();
    for o in &report.outputs {
        let mut b = [0u8; 512];
        let mut w = perceptd::text::SliceWriter::new(&mut b);
        let _ = o.stats.write(&mut w, &Default::default());
        line.push_str(&format!("; output {} {}", o.name, w.into_str()));
    }
    errln!("[perceptd] final: {line}");
    for w in &report.stage_warnings {
        log::warn!("{w}");
    }
    for o in report.outputs.iter().filter(|o| o.stats.dropped > 0) {
        let k = &o.stats;
        log::warn!(
            "output {}: {} frames could not be published (broken pipe {}, connection refused {}, no space {}, would block {}, too long {}, other {})",
            o.name,
            k.dropped,
            k.broken_pipe,
            k.conn_refused,
            k.no_space,
            k.would_block,
            k.overflow + k.oversize,
            k.other
        );
    }
    match report.source_end {
        None => Ok(0),
        Some(e @ SourceError::Truncated { .. }) => {
            log::warn!("{e}: every complete frame was processed");
            Ok(0)
        }
        Some(e) => {
            errln!("error: {e}");
            Ok(4)
        }
    }
}
