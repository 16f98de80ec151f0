//! Randomised movement tests against naive reference implementations.

use super::*;

/// Deterministic generator for the randomized cross-checks.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    fn shape(&mut self, max_rank: i64, max_dim: i64) -> Vec<usize> {
        let r = self.range(1, max_rank);
        (0..r).map(|_| self.range(0, max_dim) as usize).collect()
    }
}

/// Reference gather: output multi-index -> input multi-index (or None
/// for a padded element), walked one element at a time.
pub(super) fn naive(
    x: &[f32],
    in_shape: &[usize],
    out_shape: &[usize],
    f: impl Fn(&[usize]) -> Option<Vec<usize>>,
    fill: f32,
) -> Vec<f32> {
    let ist = strides(in_shape);
    let n = numel(out_shape);
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; out_shape.len()];
    for flat in 0..n {
        let mut rem = flat;
        for d in (0..out_shape.len()).rev() {
            idx[d] = rem % out_shape[d];
            rem /= out_shape[d];
        }
        out.push(match f(&idx) {
            Some(src) => x[src.iter().zip(&ist).map(|(i, s)| i * s).sum::<usize>()],
            None => fill,
        });
    }
    out
}

/// The index list of x[start:end:step] by Python's slice.indices(),
/// except that, as the ONNX spec says (and ONNX Runtime does), a start
/// still negative after adding the length clamps to 0 for negative
/// steps too, where Python clamps it to -1 (an empty slice).
fn onnx_slice(start: i64, end: i64, step: i64, len: usize) -> Vec<usize> {
    let len = len as i128;
    let (lower, upper) = if step > 0 { (0, len) } else { (-1, len - 1) };
    let adj = |v: i64, lower: i128| {
        let mut v = v as i128;
        if v < 0 {
            v += len;
            if v < lower {
                v = lower;
            }
        } else if v > upper {
            v = upper;
        }
        v
    };
    let i = adj(start, lower.max(0)).min(upper);
    let (mut i, e, st) = (i, adj(end, lower), step as i128);
    let mut out = Vec::new();
    while (st > 0 && i < e) || (st < 0 && i > e) {
        out.push(i as usize);
        i += st;
    }
    out
}

#[test]
fn random_slices_match_reference_slicing() {
    let mut g = Lcg(7);
    let picks = [i64::MIN, i64::MAX, -9, -5, -3, -2, -1, 0, 1, 2, 3, 4, 6, 9];
    for _ in 0..400 {
        let shape = g.shape(4, 5);
        let x = iota_t(&shape);
        let r = shape.len();
        let k = g.range(1, r as i64) as usize;
        let mut axes: Vec<usize> = (0..r).collect();
        for i in (1..r).rev() {
            axes.swap(i, g.range(0, i as i64) as usize);
        }
        axes.truncate(k);
        let pick = |g: &mut Lcg| picks[g.range(0, picks.len() as i64 - 1) as usize];
        let starts: Vec<i64> = (0..k).map(|_| pick(&mut g)).collect();
        let ends: Vec<i64> = (0..k).map(|_| pick(&mut g)).collect();
        let steps: Vec<i64> = (0..k)
            .map(|_| [-3, -2, -1, 1, 2, 3][g.range(0, 5) as usize])
            .collect();
        let neg_axes: Vec<i64> = axes
            .iter()
            .map(|&a| {
                if g.range(0, 1) == 0 {
                    a as i64
                } else {
                    a as i64 - r as i64
                }
            })
            .collect();
        let mut lists: Vec<Vec<usize>> = shape.iter().map(|&n| (0..n).collect()).collect();
        for i in 0..k {
            lists[axes[i]] = onnx_slice(starts[i], ends[i], steps[i], shape[axes[i]]);
        }
        let out_shape: Vec<usize> = lists.iter().map(|l| l.len()).collect();
        let want = naive(
            x.as_f32().unwrap(),
            &shape,
            &out_shape,
            |o| Some(o.iter().enumerate().map(|(d, &i)| lists[d][i]).collect()),
            0.0,
        );
        let t = slice(&x, &starts, &ends, Some(&neg_axes), Some(&steps));
        assert_eq!(
            t.shape, out_shape,
            "{shape:?} {starts:?} {ends:?} {axes:?} {steps:?}"
        );
        assert_eq!(
            t.to_f32_vec(),
            want,
            "{shape:?} {starts:?} {ends:?} {axes:?} {steps:?}"
        );
    }
}

#[test]
fn random_transposes_expands_and_concats_match_naive() {
    let mut g = Lcg(11);
    for _ in 0..200 {
        let shape = g.shape(5, 4);
        let r = shape.len();
        let x = iota_t(&shape);
        let mut perm: Vec<usize> = (0..r).collect();
        for i in (1..r).rev() {
            perm.swap(i, g.range(0, i as i64) as usize);
        }
        let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let want = naive(
            x.as_f32().unwrap(),
            &shape,
            &out_shape,
            |o| {
                let mut src = vec![0; r];
                for (k, &p) in perm.iter().enumerate() {
                    src[p] = o[k];
                }
                Some(src)
            },
            0.0,
        );
        let t = check_all_paths(
            &Op::Transpose {
                perm: Some(perm.clone()),
            },
            &[Some(&x)],
            1,
        )
        .remove(0);
        assert_eq!(t.to_f32_vec(), want, "{shape:?} {perm:?}");

        // Expand: some dims of 1 in the input, a longer target.
        let small: Vec<usize> = shape
            .iter()
            .map(|&d| if g.range(0, 1) == 0 { 1 } else { d })
            .collect();
        let xs = iota_t(&small);
        let extra = g.range(0, 2) as usize;
        let mut target: Vec<i64> = (0..extra).map(|_| g.range(1, 3)).collect();
        target.extend(shape.iter().zip(&small).map(|(&d, &s)| {
            if s == 1 && g.range(0, 1) == 0 {
                1
            } else {
                d as i64
            }
        }));
        let tt = i64t(&[target.len()], &target);
        let t = check_all_paths(&Op::Expand, &[Some(&xs), Some(&tt)], 1).remove(0);
        let oshape = t.shape.clone();
        let want = naive(
            xs.as_f32().unwrap(),
            &small,
            &oshape,
            |o| {
                Some(
                    small
                        .iter()
                        .enumerate()
                        .map(|(d, &n)| if n == 1 { 0 } else { o[o.len() - r + d] })
                        .collect(),
                )
            },
            0.0,
        );
        assert_eq!(t.to_f32_vec(), want, "{small:?} -> {target:?}");

        // Concat along a random axis of 1 to 3 inputs.
        let axis = g.range(0, r as i64 - 1) as usize;
        let n_in = g.range(1, 3) as usize;
        let parts: Vec<Tensor> = (0..n_in)
            .map(|k| {
                let mut s = shape.clone();
                s[axis] = g.range(0, 3) as usize;
                f32t(
                    &s,
                    &iota(numel(&s))
                        .iter()
                        .map(|v| v + 1000.0 * k as f32)
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let refs: Vec<Option<&Tensor>> = parts.iter().map(Some).collect();
        let t = check_all_paths(
            &Op::Concat {
                axis: axis as i64 - r as i64,
            },
            &refs,
            n_in,
        )
        .remove(0);
        let mut want = Vec::new();
        let outer = numel(&shape[..axis]);
        for o in 0..outer {
            for p in &parts {
                let chunk = numel(&p.shape[axis..]);
                want.extend_from_slice(&p.as_f32().unwrap()[o * chunk..(o + 1) * chunk]);
            }
        }
        assert_eq!(t.to_f32_vec(), want, "concat {shape:?} axis {axis}");
    }
}

#[test]
fn random_pads_match_naive_for_every_mode() {
    let mut g = Lcg(3);
    for _ in 0..200 {
        let shape = g.shape(3, 4);
        let r = shape.len();
        let x = iota_t(&shape);
        let mode = [
            PadMode::Constant,
            PadMode::Edge,
            PadMode::Reflect,
            PadMode::Wrap,
        ][g.range(0, 3) as usize];
        let mut pads: Vec<i64> = (0..2 * r).map(|_| g.range(0, 5)).collect();
        if mode == PadMode::Constant {
            for p in pads.iter_mut() {
                if g.range(0, 3) == 0 {
                    *p = -g.range(0, 1);
                }
            }
        }
        let empty_axis = shape
            .iter()
            .enumerate()
            .any(|(d, &n)| n == 0 && (pads[d] != 0 || pads[r + d] != 0));
        let out_shape: Vec<usize> = (0..r)
            .map(|d| (shape[d] as i64 + pads[d] + pads[r + d]).max(0) as usize)
            .collect();
        let pt = i64t(&[2 * r], &pads);
        let v = f32t(&[], &[-7.0]);
        let ins = [Some(&x), Some(&pt), Some(&v)];
        if mode != PadMode::Constant && empty_axis {
            assert!(ops::eval(&pad(mode), &ins).is_err());
            continue;
        }
        if (0..r).any(|d| shape[d] as i64 + pads[d] + pads[r + d] < 0) {
            continue;
        }
        let want = naive(
            x.as_f32().unwrap(),
            &shape,
            &out_shape,
            |o| {
                let mut src = Vec::with_capacity(r);
                for d in 0..r {
                    let n = shape[d] as i64;
                    let mut i = o[d] as i64 - pads[d];
                    if !(0..n).contains(&i) {
                        match mode {
                            PadMode::Constant => return None,
                            PadMode::Edge => i = i.clamp(0, n - 1),
                            PadMode::Wrap => i = ((i % n) + n) % n,
                            PadMode::Reflect => {
                                // numpy: reflect repeatedly about the edges.
                                while n > 1 && !(0..n).contains(&i) {
                                    i = if i < 0 { -i } else { 2 * (n - 1) - i };
                                }
                                if n == 1 {
                                    i = 0;
                                }
                            }
                        }
                    }
                    src.push(i as usize);
                }
                Some(src)
            },
            -7.0,
        );
        let t = check_all_paths(&pad(mode), &ins, 1).remove(0);
        assert_eq!(t.shape, out_shape);
        assert_eq!(t.to_f32_vec(), want, "{mode:?} {shape:?} {pads:?}");
    }
}
