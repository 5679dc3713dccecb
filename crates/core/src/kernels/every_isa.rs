//! The loops compiled once per vector width ([`super::elementwise::vectorized`]) run at every
//! level this CPU has (forced with [`cpu::with_isa`]) and must give the scalar level's bits
//! exactly: they do the same arithmetic in the same order at every width (no fused
//! multiply-adds, reductions in fixed lanes), so only the vector width changes.
//!
//! Edge shapes: empty, one element, lengths that are not a multiple of any lane count, and
//! lengths past [`PAR_THRESHOLD`] so the work is split over threads (which must run at the
//! caller's level too).

use super::batch_norm::{self, Activation};
use super::{elementwise, reduce, PAR_THRESHOLD};
use crate::cpu::{self, Isa};

/// Lengths around every lane count (4, 8, 16, 32) and past the parallel threshold.
const LENGTHS: [usize; 12] = [0, 1, 3, 7, 8, 15, 17, 31, 33, 100, 1031, PAR_THRESHOLD + 37];

/// Values with a spread of magnitudes and signs, a NaN and infinities among them.
fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32 ^ seed).wrapping_mul(0x9E37_79B1).rotate_left(11);
            match h % 211 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => f32::NEG_INFINITY,
                _ => (h % 20_011) as f32 / 997.0 - 10.0,
            }
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `f` at the scalar level, then at every other level this CPU has: the same answer.
fn same_at_every_level<R: PartialEq + std::fmt::Debug>(what: &str, f: impl Fn() -> R) {
    let want = cpu::with_isa(Isa::Scalar, &f);
    for level in cpu::supported() {
        let got = cpu::with_isa(level, &f);
        assert!(got == want, "{what}: {level} differs from scalar");
    }
}

#[test]
fn maps_and_zips_match_scalar_bits() {
    for n in LENGTHS {
        let (x, y) = (data(n, 1), data(n, 2));
        same_at_every_level(&format!("map_vec n={n}"), || {
            bits(&elementwise::map_vec(&x, |v| v * 1.5 - 0.25 / (v + 3.0)))
        });
        same_at_every_level(&format!("map n={n}"), || {
            let mut out = vec![0.0; n];
            elementwise::map(&x, &mut out, |v| v.max(0.0));
            bits(&out)
        });
        same_at_every_level(&format!("zip n={n}"), || {
            let mut out = vec![0.0; n];
            elementwise::zip(&x, &y, &mut out, |a, b| a * b + a);
            bits(&out)
        });
    }
}

/// An operand over all of `data`, from element 0.
fn op<'a>(data: &'a [f32], strides: &'a [usize]) -> elementwise::Operand<'a, f32> {
    elementwise::Operand {
        data,
        strides,
        offset: 0,
    }
}

#[test]
fn broadcast_zips_match_scalar_bits() {
    // [rows, cols] + [1, cols], and a transposed operand: rows of odd lengths.
    for (rows, cols) in [(1, 1), (3, 7), (5, 17), (33, 31), (2, PAR_THRESHOLD / 2 + 9)] {
        let (a, b) = (data(rows * cols, 3), data(cols.max(rows) * rows.max(cols), 4));
        same_at_every_level(&format!("row broadcast {rows}x{cols}"), || {
            let out = elementwise::zip_strided_vec(&[rows, cols], op(&a, &[cols, 1]), op(&b, &[0, 1]), |x, y| x - y);
            bits(&out)
        });
        same_at_every_level(&format!("transposed {rows}x{cols}"), || {
            let out = elementwise::zip_strided_vec(&[rows, cols], op(&a, &[cols, 1]), op(&b, &[1, rows]), |x, y| x / y);
            bits(&out)
        });
    }
}

#[test]
fn reductions_match_scalar_bits() {
    for n in LENGTHS {
        let x = data(n, 5);
        // Without the NaN and infinities, so the sums stay informative.
        let finite: Vec<f32> = x.iter().map(|v| if v.is_finite() { *v } else { 0.5 }).collect();
        same_at_every_level(&format!("sum n={n}"), || reduce::sum(&finite).to_bits());
        same_at_every_level(&format!("max n={n}"), || {
            reduce::fold(&x, f32::NEG_INFINITY, |a, b| if a >= b || a.is_nan() { a } else { b }).to_bits()
        });
    }
    for (outer, len, inner) in [
        (1, 1, 1),
        (3, 5, 1),
        (2, 7, 17),
        (1, 9, PAR_THRESHOLD / 8 + 3),
        (5, 3, 33),
    ] {
        let x = data(outer * len * inner, 6);
        same_at_every_level(&format!("reduce_axis {outer}x{len}x{inner}"), || {
            let mut out = vec![0.0; outer * inner];
            let row = |r: &[f32]| r.iter().fold(0.0, |a, b| a + b);
            reduce::reduce_axis(&x, outer, len, inner, &mut out, row, 0.0, |a, b| a + b);
            bits(&out)
        });
    }
}

#[test]
fn batch_norm_matches_scalar_bits() {
    // Planes below and above the row-wise threshold, odd channel counts and plane sizes.
    for [n, c, p] in [
        [1, 1, 1],
        [2, 3, 5],
        [5, 17, 3],
        [2, 3, 65],
        [3, 5, 257],
        [64, 6, 100],
        [1, 1, 0],
    ] {
        let (x, gy) = (data(n * c * p, 7), data(n * c * p, 8));
        let finite = |v: Vec<f32>| -> Vec<f32> { v.into_iter().map(|v| if v.is_finite() { v } else { 1.0 }).collect() };
        let (x, gy) = (finite(x), finite(gy));
        let (w, b) = (data(c, 9), data(c, 10));
        let (w, b) = (finite(w), finite(b));
        same_at_every_level(&format!("batch norm {n}x{c}x{p}"), || {
            let mut y = vec![0.0; x.len()];
            let (mean, var) = batch_norm::forward(&x, [n, c, p], &w, &b, 1e-5, &mut y);
            let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + 1e-5).sqrt()).collect();
            let mut dx = vec![0.0; x.len()];
            let (dw, db) = batch_norm::backward(&x, &gy, [n, c, p], &mean, &inv, &w, &mut dx);
            let stats: Vec<u64> = mean.iter().chain(&var).map(|v| v.to_bits()).collect();
            // With an activation: the bits of the activation applied to `y` and of the
            // plain backward of the gradient gated by `y` (what `relu` then the op make).
            let mut acts = Vec::new();
            for (act, slope) in [(Activation::Relu, 0f32), (Activation::LeakyRelu(0.2), 0.2)] {
                let mut ya = vec![0.0; x.len()];
                let (m2, v2, ac) = batch_norm::forward_act(&x, [n, c, p], &w, &b, 1e-5, act, &mut ya);
                assert!(m2 == mean && v2 == var);
                let want: Vec<f32> = y
                    .iter()
                    .map(|&v| if v > 0.0 || v.is_nan() { v } else { slope * v })
                    .collect();
                let want = match act {
                    Activation::Relu => y.iter().map(|&v| if v > 0.0 || v.is_nan() { v } else { 0.0 }).collect(),
                    _ => want,
                };
                assert_eq!(bits(&ya), bits(&want), "{act:?} forward {n}x{c}x{p}");
                let gated: Vec<f32> = gy
                    .iter()
                    .zip(&y)
                    .map(|(&g, &v)| {
                        if v > 0.0 {
                            g
                        } else if slope == 0.0 {
                            0.0
                        } else {
                            slope * g
                        }
                    })
                    .collect();
                let (mut da, mut dw_want) = (vec![0.0; x.len()], vec![0.0; x.len()]);
                let gw = batch_norm::backward(&x, &gated, [n, c, p], &mean, &inv, &w, &mut dw_want);
                let ga = batch_norm::backward_act(&x, &gy, [n, c, p], &mean, &inv, &w, act, &ac, &mut da);
                assert_eq!(bits(&da), bits(&dw_want), "{act:?} dx {n}x{c}x{p}");
                assert!(ga == gw, "{act:?} dw, db {n}x{c}x{p}");
                acts.push((bits(&ya), bits(&da), bits(&ga.0), bits(&ga.1)));
            }
            (bits(&y), stats, bits(&dx), bits(&dw), bits(&db), acts)
        });
    }
}

#[test]
fn softmax_nll_matches_scalar_bits() {
    // Rows (s = 1) and class runs of odd lengths, with a partial last tile.
    for dims in [[3, 5, 1], [40, 7, 1], [2, 11, 37], [1, 3, 300]] {
        let [n, c, s] = dims;
        let x: Vec<f32> = data(n * c * s, 11)
            .into_iter()
            .map(|v| if v.is_finite() { v } else { 3.0 })
            .collect();
        let tgt: Vec<Option<usize>> = (0..n * s).map(|q| (q % 5 != 3).then_some(q * 7 % c)).collect();
        same_at_every_level(&format!("softmax_nll {dims:?}"), || {
            let (p, loss) = super::softmax_nll::forward(&x, dims, &tgt);
            (bits(&p), bits(&loss))
        });
    }
}
