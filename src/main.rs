//! The `perceptd` command line: a thin layer over the library. Parses
//! flags, calls into `perceptd`, prints results, maps errors to exit codes
//! (documented in README: 0 ok, 1 error, 2 usage, 3 comparison failed).

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use perceptd::engine::{self, onnx, Bindings, CpuModel, Limits, Tensor};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
        #[arg(long, default_value_t = 1e-4)]
        rtol: f32,
        #[arg(long, default_value_t = 1e-5)]
        atol: f32,
        /// Kernel threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Benchmark a model on random input: boot time, memory plan, latency.
    BenchModel {
        model: PathBuf,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Timed inferences after warm-up.
        #[arg(long, default_value_t = 50)]
        iters: usize,
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Input shape for models with symbolic dims, e.g. 1x3x640x640.
        #[arg(long)]
        input_shape: Option<String>,
        /// End with one JSON object on the last line of stdout.
        #[arg(long)]
        json: bool,
    },
    /// Load a model and print its plan: inputs, outputs, op counts after
    /// fusion, arena size.
    Check {
        #[arg(long)]
        model: PathBuf,
        /// Input shape for models with symbolic dims, e.g. 1x3x640x640.
        #[arg(long)]
        input_shape: Option<String>,
    },
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
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
        } => bench_model(&model, threads, iters, warmup, input_shape.as_deref(), json),
        Cmd::Check { model, input_shape } => check(&model, input_shape.as_deref()),
    }
}

fn parse_shape(s: &str) -> Result<Vec<usize>> {
    s.split(['x', ','])
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .with_context(|| format!("--input-shape '{s}': '{d}' is not a dimension"))
        })
        .collect()
}

fn bindings(shape: Option<&str>) -> Result<Bindings> {
    let mut b = Bindings::new();
    if let Some(s) = shape {
        b.shapes.push(Some(parse_shape(s)?));
    }
    Ok(b)
}

fn infer(
    model: &Path,
    inputs: &[PathBuf],
    output_dir: Option<&Path>,
    compare_dir: Option<&Path>,
    rtol: f32,
    atol: f32,
    threads: usize,
) -> Result<i32> {
    let limits = Limits::default();
    let tensors = inputs
        .iter()
        .map(|p| onnx::read_tensor_file(p, &limits).map(|(_, t)| t))
        .collect::<Result<Vec<Tensor>, _>>()?;
    let outs = engine::infer_once(model, &tensors, threads, &limits)?;
    if let Some(dir) = output_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create output folder", dir.display()))?;
        for (i, (name, t)) in outs.iter().enumerate() {
            onnx::write_tensor_file(&dir.join(format!("output_{i}.pb")), name, t)?;
        }
        println!("wrote {} outputs to {}", outs.len(), dir.display());
    }
    let mut code = 0;
    if let Some(dir) = compare_dir {
        for (i, (name, got)) in outs.iter().enumerate() {
            let path = dir.join(format!("output_{i}.pb"));
            let (_, want) = onnx::read_tensor_file(&path, &limits)?;
            let c = compare(got, &want, rtol, atol);
            let verdict = match &c {
                Ok(s) if s.violations == 0 => "ok".to_string(),
                Ok(s) => format!(
                    "FAIL ({} elements outside atol {atol} + rtol {rtol})",
                    s.violations
                ),
                Err(e) => format!("FAIL ({e})"),
            };
            match c {
                Ok(s) => {
                    println!(
                        "output {i} '{name}' {}: max abs err {:.3e}, max rel err {:.3e}: {verdict}",
                        engine::tensor::shape_string(&got.shape),
                        s.max_abs,
                        s.max_rel
                    );
                    if s.violations > 0 {
                        code = 3;
                    }
                }
                Err(_) => {
                    println!("output {i} '{name}': {verdict}");
                    code = 3;
                }
            }
        }
    }
    fn compare(got: &Tensor, want: &Tensor, rtol: f32, atol: f32) -> Result<Stats, String> {
        if got.shape != want.shape {
            return Err(format!(
                "shape {} but expected {}",
                engine::tensor::shape_string(&got.shape),
                engine::tensor::shape_string(&want.shape)
            ));
        }
        let (g, w) = (got.to_f32_vec(), want.to_f32_vec());
        let mut s = Stats::default();
        for (&a, &b) in g.iter().zip(&w) {
            let d = (a - b).abs();
            if a.is_nan() != b.is_nan() {
                s.violations += 1;
                continue;
            }
            if d.is_nan() || (a == b) {
                continue;
            }
            if d > atol + rtol * b.abs() {
                s.violations += 1;
            }
            s.max_abs = s.max_abs.max(d);
            s.max_rel = s.max_rel.max(d / b.abs().max(1e-6));
        }
        Ok(s)
    }
    #[derive(Default)]
    struct Stats {
        max_abs: f32,
        max_rel: f32,
        violations: usize,
    }
    Ok(code)
}

fn random_input(m: &mut CpuModel, seed: u64) {
    let mut s = seed | 1;
    for i in 0..m.inputs().len() {
        for v in m.input_mut(i).iter_mut() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *v = (s >> 40) as f32 / (1u64 << 24) as f32;
        }
    }
}

fn boot(model: &Path, shape: Option<&str>, threads: usize) -> Result<(CpuModel, f64)> {
    let t0 = Instant::now();
    let m = engine::build_cpu_model(model, &bindings(shape)?, threads, &Limits::default())?;
    Ok((m, t0.elapsed().as_secs_f64() * 1e3))
}

fn bench_model(
    model: &Path,
    threads: usize,
    iters: usize,
    warmup: usize,
    shape: Option<&str>,
    json: bool,
) -> Result<i32> {
    if iters == 0 {
        bail!("--iters must be at least 1");
    }
    let (mut m, boot_ms) = boot(model, shape, threads)?;
    random_input(&mut m, 0x5eed);
    for _ in 0..warmup {
        m.run();
    }
    let mut times: Vec<f64> = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        m.run();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    let st = m.stats().clone();
    println!("model       {}", model.display());
    println!("threads     {}", m.threads());
    println!("boot        {boot_ms:.1} ms (load + specialise + plan + pack)");
    println!(
        "arena       {:.2} MiB (sum of all run-phase tensors {:.2} MiB, {:.1}x reuse), scratch {:.2} MiB",
        mib(st.arena_bytes),
        mib(st.tensor_bytes),
        st.tensor_bytes as f64 / st.arena_bytes.max(1) as f64,
        mib(st.scratch_bytes)
    );
    println!(
        "latency     min {:.2} ms, median {:.2} ms, p99 {:.2} ms over {iters} runs after {warmup} warm-up",
        times[0],
        pct(0.5),
        pct(0.99)
    );
    if json {
        println!(
            "{{\"model\":\"{}\",\"threads\":{},\"boot_ms\":{:.3},\"arena_bytes\":{},\"tensor_bytes\":{},\"scratch_bytes\":{},\"iters\":{},\"min_ms\":{:.4},\"median_ms\":{:.4},\"p99_ms\":{:.4}}}",
            model.display().to_string().replace('\\', "\\\\").replace('"', "\\\""),
            m.threads(),
            boot_ms,
            st.arena_bytes,
            st.tensor_bytes,
            st.scratch_bytes,
            iters,
            times[0],
            pct(0.5),
            pct(0.99)
        );
    }
    Ok(0)
}

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn check(model: &Path, shape: Option<&str>) -> Result<i32> {
    let (m, boot_ms) = boot(model, shape, 1)?;
    println!("model {} (booted in {boot_ms:.1} ms)", model.display());
    for p in m.inputs() {
        println!(
            "  input  {:<20} {}",
            p.name,
            engine::tensor::shape_string(&p.shape)
        );
    }
    for p in m.outputs() {
        println!(
            "  output {:<20} {}",
            p.name,
            engine::tensor::shape_string(&p.shape)
        );
    }
    let st = m.stats();
    println!(
        "plan: {} steps ({} views aliased, {} in place)",
        st.steps, st.views, st.inplace
    );
    for (op, n) in &st.op_counts {
        println!("  {op:<24} {n}");
    }
    println!(
        "arena {} bytes ({:.2} MiB) for {} bytes of run-phase tensors ({:.1}x reuse); scratch {} bytes; constants {} bytes",
        st.arena_bytes,
        mib(st.arena_bytes),
        st.tensor_bytes,
        st.tensor_bytes as f64 / st.arena_bytes.max(1) as f64,
        st.scratch_bytes,
        st.constant_bytes
    );
    Ok(0)
}
