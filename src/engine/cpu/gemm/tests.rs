//! Tests of the GEMM driver, packing and micro-kernels against a naive
//! reference.

use super::*;

/// Deterministic pseudo-random values in [-1, 1).
pub(crate) fn rand_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn naive(
    m: usize,
    n: usize,
    k: usize,
    a: &MatRef,
    b: &MatRef,
    c: &mut [f32],
    ldc: usize,
    epi: &Epilogue,
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                s += a.at(i, p) as f64 * b.at(p, j) as f64;
            }
            let mut x = epi.alpha * s as f32;
            if epi.beta != 0.0 {
                x += epi.beta * c[i * ldc + j];
            }
            match epi.bias {
                Bias::None => {}
                Bias::Row(r) => x += r[i],
                Bias::Col(cb) => x += cb[j],
            }
            c[i * ldc + j] = epi.act.apply(x);
        }
    }
}

fn check_close(got: &[f32], want: &[f32], k: usize, what: &str) {
    let tol = 1e-5 * (k as f32 + 1.0).sqrt() * 4.0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

#[derive(Clone, Copy, Debug)]
enum Operand {
    Runtime,
    Packed,
}

#[allow(clippy::too_many_arguments)]
fn case(
    g: &Gemm,
    pool: &ThreadPool,
    (m, n, k): (usize, usize, usize),
    trans_a: bool,
    trans_b: bool,
    ops: (Operand, Operand),
    epi_kind: usize,
    act: Activation,
) {
    let seed = (m * 131 + n * 17 + k * 7 + epi_kind) as u64;
    let av = rand_vec(m * k + 3, seed);
    let bv = rand_vec(k * n + 5, seed + 1);
    let a = if trans_a {
        MatRef::new(&av, m, k, 1, m).unwrap()
    } else {
        MatRef::new(&av, m, k, k, 1).unwrap()
    };
    let b = if trans_b {
        MatRef::new(&bv, k, n, 1, k).unwrap()
    } else {
        MatRef::new(&bv, k, n, n, 1).unwrap()
    };
    let rb = rand_vec(m, seed + 2);
    let cb = rand_vec(n, seed + 3);
    let ldc = n + (epi_kind % 2) * 3;
    let c0 = rand_vec(m * ldc, seed + 4);
    let epi = match epi_kind {
        0 => Epilogue {
            act,
            ..Epilogue::default()
        },
        1 => Epilogue {
            bias: Bias::Row(&rb),
            act,
            ..Epilogue::default()
        },
        2 => Epilogue {
            alpha: 0.5,
            beta: 1.0,
            bias: Bias::Col(&cb),
            act,
        },
        _ => Epilogue {
            alpha: -1.5,
            beta: 0.25,
            bias: Bias::Row(&rb),
            act,
        },
    };
    let mut want = c0.clone();
    naive(m, n, k, &a, &b, &mut want, ldc, &epi);
    let mut got = c0.clone();
    let threads = pool.threads();
    let pa = g.pack_a(a);
    let pb = g.pack_b(b);
    let pack_a = matches!(ops.0, Operand::Runtime);
    let pack_b = matches!(ops.1, Operand::Runtime);
    let mut scratch = vec![f32::NAN; g.scratch_len(m, n, k, threads, pack_a, pack_b)];
    match ops {
        (Operand::Runtime, Operand::Runtime) => {
            g.run(m, n, k, &a, &b, &mut got, ldc, &epi, &mut scratch, pool)
        }
        (Operand::Packed, Operand::Runtime) => {
            g.run(m, n, k, &pa, &b, &mut got, ldc, &epi, &mut scratch, pool)
        }
        (Operand::Runtime, Operand::Packed) => {
            g.run(m, n, k, &a, &pb, &mut got, ldc, &epi, &mut scratch, pool)
        }
        (Operand::Packed, Operand::Packed) => {
            g.run(m, n, k, &pa, &pb, &mut got, ldc, &epi, &mut scratch, pool)
        }
    }
    let what = format!(
        "{:?} {m}x{n}x{k} ta={trans_a} tb={trans_b} {ops:?} epi={epi_kind} {act:?} threads={threads}",
        g.isa()
    );
    check_close(&got, &want, k, &what);
}

#[test]
fn matches_naive_for_many_shapes() {
    let shapes = [
        (1, 1, 1),
        (1, 1, 7),
        (1, 37, 5),
        (29, 1, 13),
        (7, 13, 11),
        (8, 32, 16),
        (16, 64, 300),
        (17, 33, 257),
        (31, 97, 61),
        (64, 129, 40),
        (130, 45, 520),
        (3, 1100, 9),
        (5, 3, 0),
    ];
    let pools = [ThreadPool::new(1), ThreadPool::new(3)];
    for isa in Isa::available() {
        let g = Gemm::with_isa(isa);
        for pool in &pools {
            for (si, &shape) in shapes.iter().enumerate() {
                let ops = match si % 4 {
                    0 => (Operand::Runtime, Operand::Runtime),
                    1 => (Operand::Packed, Operand::Runtime),
                    2 => (Operand::Runtime, Operand::Packed),
                    _ => (Operand::Packed, Operand::Packed),
                };
                for epi_kind in 0..4 {
                    let ta = (si + epi_kind) % 2 == 1;
                    let tb = (si + epi_kind) % 3 == 1;
                    case(&g, pool, shape, ta, tb, ops, epi_kind, Activation::None);
                }
            }
        }
    }
}

#[test]
fn every_activation_in_the_epilogue() {
    let acts = [
        Activation::Relu,
        Activation::Silu,
        Activation::Sigmoid,
        Activation::LeakyRelu(0.2),
        Activation::HardSigmoid(0.2, 0.5),
        Activation::HardSwish,
        Activation::Tanh,
        Activation::Clip(-0.5, 0.5),
        Activation::Elu(1.1),
    ];
    let pool = ThreadPool::new(2);
    for isa in Isa::available() {
        let g = Gemm::with_isa(isa);
        for act in acts {
            for (i, shape) in [(19, 70, 300), (8, 32, 5), (33, 17, 3)]
                .into_iter()
                .enumerate()
            {
                let ops = if i == 0 {
                    (Operand::Packed, Operand::Runtime)
                } else {
                    (Operand::Runtime, Operand::Runtime)
                };
                case(&g, &pool, shape, false, false, ops, i + 1, act);
            }
        }
    }
}

#[test]
fn all_operand_combinations_with_threads() {
    let pool = ThreadPool::new(3);
    for isa in Isa::available() {
        let g = Gemm::with_isa(isa);
        for ops in [
            (Operand::Runtime, Operand::Runtime),
            (Operand::Packed, Operand::Runtime),
            (Operand::Runtime, Operand::Packed),
            (Operand::Packed, Operand::Packed),
        ] {
            // Tall and wide, both above the threading threshold.
            case(
                &g,
                &pool,
                (300, 40, 100),
                true,
                false,
                ops,
                3,
                Activation::Silu,
            );
            case(
                &g,
                &pool,
                (20, 2100, 30),
                false,
                true,
                ops,
                2,
                Activation::None,
            );
        }
    }
}

#[test]
fn too_little_scratch_uses_fewer_threads() {
    let g = Gemm::new();
    let pool = ThreadPool::new(4);
    let (m, n, k) = (40, 600, 50);
    let a = rand_vec(m * k, 1);
    let b = rand_vec(k * n, 2);
    let am = MatRef::row_major(&a, m, k).unwrap();
    let bm = MatRef::row_major(&b, k, n).unwrap();
    let mut want = vec![0.0; m * n];
    naive(m, n, k, &am, &bm, &mut want, n, &Epilogue::default());
    let mut got = vec![0.0; m * n];
    let mut scratch = vec![0.0; g.scratch_len(m, n, k, 1, true, true)];
    g.run(
        m,
        n,
        k,
        &am,
        &bm,
        &mut got,
        n,
        &Epilogue::default(),
        &mut scratch,
        &pool,
    );
    check_close(&got, &want, k, "one thread's scratch on a 4-thread pool");
}

#[test]
fn run_rows_computes_a_row_range() {
    let (m, n, k) = (30, 29, 300);
    let pool = ThreadPool::new(1);
    for isa in Isa::available() {
        let g = Gemm::with_isa(isa);
        let a = rand_vec(m * k, 5);
        let b = rand_vec(k * n, 6);
        let am = MatRef::row_major(&a, m, k).unwrap();
        let bm = MatRef::row_major(&b, k, n).unwrap();
        let rb = rand_vec(m, 7);
        let epi = Epilogue {
            bias: Bias::Row(&rb),
            act: Activation::Silu,
            ..Epilogue::default()
        };
        let mut want = vec![0.0; m * n];
        naive(m, n, k, &am, &bm, &mut want, n, &epi);
        // B pre-packed by the caller into the plan's layout.
        let pb = g.pack_b(bm);
        let packed = &pb.data[pb.off..];
        let bref = PackedBRef::new(&g, packed, k, n).unwrap();
        let pa = g.pack_a(am);
        let r0 = g.mr();
        let r1 = (3 * g.mr() + 1).min(m);
        let mut got = vec![f32::NAN; (r1 - r0) * n];
        g.run_rows((r0, r1), m, n, k, &pa, &bref, &mut got, n, &epi, &mut []);
        check_close(
            &got,
            &want[r0 * n..r1 * n],
            k,
            &format!("{isa:?} rows {r0}..{r1}"),
        );
        // The whole product through the pool agrees.
        let mut all = vec![0.0; m * n];
        g.run(m, n, k, &pa, &bref, &mut all, n, &epi, &mut [], &pool);
        check_close(&all, &want, k, &format!("{isa:?} PackedBRef"));
    }
}

#[test]
fn beta_zero_never_reads_c() {
    let g = Gemm::new();
    let pool = ThreadPool::new(1);
    let (m, n, k) = (9, 40, 3);
    let a = rand_vec(m * k, 3);
    let b = rand_vec(k * n, 4);
    let am = MatRef::row_major(&a, m, k).unwrap();
    let bm = MatRef::row_major(&b, k, n).unwrap();
    let mut c = vec![f32::NAN; m * n];
    let mut scratch = vec![0.0; g.scratch_len(m, n, k, 1, true, true)];
    g.run(
        m,
        n,
        k,
        &am,
        &bm,
        &mut c,
        n,
        &Epilogue::default(),
        &mut scratch,
        &pool,
    );
    assert!(c.iter().all(|x| x.is_finite()));
}
