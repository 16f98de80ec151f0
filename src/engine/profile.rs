//! Per-step profile of a CPU model (`perceptd bench-model --profile`): where
//! the time of one inference goes, per op kind and per step, so that runs
//! at 1 and 2 threads can be set side by side. Outside the frame path;
//! allocates.

use super::CpuModel;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Wall time per step over `runs` profiled inferences, as text: a table per
/// op kind (time, share, steps), then every step in run order (`step
/// <index> <ms> <label>`, one per line, for joining runs). Each step's time
/// is its fastest of the runs: on a shared machine that is the figure other
/// processes disturb least.
pub fn report(m: &mut CpuModel, runs: usize) -> String {
    let labels: Vec<String> = m.step_labels().map(str::to_owned).collect();
    let mut best = vec![u64::MAX; labels.len()];
    let mut one = vec![0u64; labels.len()];
    for _ in 0..runs.max(1) {
        one.fill(0);
        m.run_profiled(&mut one);
        for (b, &t) in best.iter_mut().zip(&one) {
            *b = (*b).min(t);
        }
    }
    let ms: Vec<f64> = best.iter().map(|&ns| ns as f64 / 1e6).collect();
    let total: f64 = ms.iter().sum();
    let mut kinds: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for (l, &t) in labels.iter().zip(&ms) {
        let kind = l.split(' ').next().unwrap_or("");
        let e = kinds.entry(kind).or_default();
        e.0 += t;
        e.1 += 1;
    }
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "profile     {total:.2} ms per run (sum of each step's fastest of {runs} runs)"
    );
    for (kind, (t, n)) in &kinds {
        let share = 100.0 * t / total.max(1e-9);
        let _ = writeln!(out, "  {kind:<24} {t:>8.3} ms {share:>5.1}%  {n:>3} steps");
    }
    for (i, (l, t)) in labels.iter().zip(&ms).enumerate() {
        let _ = writeln!(out, "step {i:>3} {t:>8.3} {l}");
    }
    out
}
