//! The model subcommands of the command line: `infer` (one input through
//! the CPU engine, optionally compared with reference outputs) and
//! `bench-model` (boot cost, plan memory and per-run latency of a model),
//! with the `--input-shape` parsing they share with `check`.

use crate::stdout_line;
use anyhow::{bail, Context, Result};
use perceptd::engine::{self, onnx, Bindings, CpuModel, Limits, Tensor};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `--input-shape`: checked while parsing the command line, so a bad shape
/// is a usage error (exit 2), not a boot error.
pub(crate) fn shape_arg(s: &str) -> Result<String, String> {
    parse_shape(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

pub(crate) fn parse_shape(s: &str) -> Result<Vec<usize>> {
    s.split(['x', ','])
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .with_context(|| format!("--input-shape '{s}': '{d}' is not a dimension"))
        })
        .collect()
}

pub(crate) fn bindings(shape: Option<&str>) -> Result<Bindings> {
    let mut b = Bindings::new();
    if let Some(s) = shape {
        b.shapes.push(Some(parse_shape(s)?));
    }
    Ok(b)
}

pub(crate) fn infer(
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
        outln!("wrote {} outputs to {}", outs.len(), dir.display());
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
                    outln!(
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
                    outln!("output {i} '{name}': {verdict}");
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

pub(crate) fn boot_model(
    model: &Path,
    shape: Option<&str>,
    threads: usize,
) -> Result<(CpuModel, f64)> {
    let t0 = Instant::now();
    let m = engine::build_cpu_model(model, &bindings(shape)?, threads, &Limits::default())?;
    Ok((m, t0.elapsed().as_secs_f64() * 1e3))
}

pub(crate) fn bench_model(
    model: &Path,
    (threads, iters, warmup): (usize, usize, usize),
    shape: Option<&str>,
    json: bool,
    profile: bool,
) -> Result<i32> {
    if iters == 0 {
        bail!("--iters must be at least 1");
    }
    let (mut m, boot_ms) = boot_model(model, shape, threads)?;
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
    outln!("model       {}", model.display());
    outln!("threads     {}", m.threads());
    outln!("boot        {boot_ms:.1} ms (load + specialise + plan + pack)");
    outln!(
        "arena       {:.2} MiB (sum of all run-phase tensors {:.2} MiB, {:.1}x reuse), scratch {:.2} MiB",
        mib(st.arena_bytes),
        mib(st.tensor_bytes),
        st.tensor_bytes as f64 / st.arena_bytes.max(1) as f64,
        mib(st.scratch_bytes)
    );
    outln!(
        "latency     min {:.2} ms, median {:.2} ms, p99 {:.2} ms over {iters} runs after {warmup} warm-up",
        times[0],
        pct(0.5),
        pct(0.99)
    );
    if profile {
        outln!("{}", engine::profile::report(&mut m, iters).trim_end());
    }
    if json {
        outln!(
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

pub(crate) fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}
