//! Winograd F(4×4, 3×3): each 4×4 block of output comes from a 6×6 block of input with 36
//! multiplies per channel pair instead of F(2×2, 3×3)'s 64 (16 per 2×2 block), 1.78× fewer
//! in the products, and 2.25 transformed values per output instead of 4.
//!
//! The interpolation points are 0, 1, −1, 2, −2 and ∞. In one dimension, with `d` six
//! inputs, `g` three taps and `y` four outputs of the correlation `y[i] = Σ_k d[i + k] g[k]`,
//! `y = Aᵀ [(G g) ⊙ (Bᵀ d)]` with
//!
//! ```text
//! Bᵀ = [ 4  0 −5  0  1  0 ]   G = [  1/4     0     0  ]   Aᵀ = [ 1  1  1  1  1  0 ]
//!      [ 0 −4 −4  1  1  0 ]       [ −1/6  −1/6  −1/6 ]        [ 0  1 −1  2 −2  0 ]
//!      [ 0  4 −4 −1  1  0 ]       [ −1/6   1/6  −1/6 ]        [ 0  1  1  4  4  0 ]
//!      [ 0 −2 −1  2  1  0 ]       [ 1/24  1/12   1/6 ]        [ 0  1 −1  8 −8  1 ]
//!      [ 0  2 −1 −2  1  0 ]       [ 1/24 −1/12   1/6 ]
//!      [ 0  4  0 −5  0  1 ]       [   0     0     1  ]
//! ```
//!
//! (rows 1–4 of `Bᵀ` evaluate the input polynomial's remainder at ±1, ±2; `G` carries the
//! Lagrange denominators, so `Aᵀ` and `Bᵀ` hold only small integers). In two dimensions the
//! same matrices act on both sides. The multiplies by 2, 4 and 8 are exact, so each
//! `a·k + b` below rounds once, as a fused multiply-add does: the vector code in
//! `vector4.rs` gives the same bits.

use super::transform::{Cols, Plan};
use crate::Element;
use std::ops::Range;

/// `Bᵀ d` for one column of six inputs, in the order the vector code computes it.
#[inline(always)]
pub(super) fn bt<T: Element>(d: [T; 6]) -> [T; 6] {
    let (k2, k4, km4) = (T::from_f64(2.0), T::from_f64(4.0), T::from_f64(-4.0));
    let t = d[4] - d[2];
    [
        (d[0] - d[2]) * k4 + t,
        (d[1] + d[2]) * km4 + (d[3] + d[4]),
        (d[1] - d[2]) * k4 + (d[4] - d[3]),
        (d[3] - d[1]) * k2 + t,
        (d[1] - d[3]) * k2 + t,
        (d[1] - d[3]) * k4 + (d[5] - d[3]),
    ]
}

/// `Aᵀ m` for one column of six products, in the order the vector code computes it.
#[inline(always)]
pub(super) fn at<T: Element>(m: [T; 6]) -> [T; 4] {
    let (k2, k4, k8) = (T::from_f64(2.0), T::from_f64(4.0), T::from_f64(8.0));
    let (s12, d12) = (m[1] + m[2], m[1] - m[2]);
    let (s34, d34) = (m[3] + m[4], m[3] - m[4]);
    [
        (m[0] + s12) + s34,
        d34 * k2 + d12,
        s34 * k4 + s12,
        d34 * k8 + (d12 + m[5]),
    ]
}

/// `A d` for one column of four output gradients (the adjoint of [`at`]): the values of
/// `d0 + d1 t + d2 t² + d3 t³` at the points 0, 1, −1, 2, −2 and its `t³` term at ∞, in
/// the order the vector code computes them.
#[inline(always)]
pub(super) fn a<T: Element>(d: [T; 4]) -> [T; 6] {
    let k4 = T::from_f64(4.0);
    let (s02, s13) = (d[0] + d[2], d[1] + d[3]);
    let t02 = d[2] * k4 + d[0];
    let h13 = d[3] * k4 + d[1];
    let t13 = h13 + h13;
    [d[0], s02 + s13, s02 - s13, t02 + t13, t02 - t13, d[3]]
}

/// `Gᵀ u` for one column of six transformed values (the adjoint of `G`), in f64.
fn gt(u: [f64; 6]) -> [f64; 3] {
    let (s12, d12) = (u[1] + u[2], u[1] - u[2]);
    let (s34, d34) = (u[3] + u[4], u[3] - u[4]);
    [
        u[0] / 4.0 - s12 / 6.0 + s34 / 24.0,
        d34 / 12.0 - d12 / 6.0,
        (s34 - s12) / 6.0 + u[5],
    ]
}

/// `G g` for one column of three taps, in f64.
fn gk(g: [f64; 3]) -> [f64; 6] {
    let quarter = g[0] / 4.0;
    [
        quarter,
        -(g[0] + g[1] + g[2]) / 6.0,
        -(g[0] - g[1] + g[2]) / 6.0,
        (quarter + g[1] / 2.0 + g[2]) / 6.0,
        (quarter - g[1] / 2.0 + g[2]) / 6.0,
        g[2],
    ]
}

/// Put `src` at column `pad` of a zero row split into its four phases
/// `[cols ≡ 0 | ≡ 1 | ≡ 2 | ≡ 3 (mod 4)]` (`row` holds all four; columns past its end are
/// dropped).
#[inline(always)]
fn split4<T: Element>(src: &[T], pad: usize, row: &mut [T]) {
    let q = row.len() / 4;
    for (k, &val) in src.iter().enumerate() {
        let col = k + pad;
        if col >= 4 * q {
            break;
        }
        row[(col % 4) * q + col / 4] = val;
    }
}

/// `Bᵀ d B` for every 6×6 input tile of channels `chans` of one image `x` (`[cin, h, w]`)
/// into `v` (36 planes of `chans` rows, see [`Cols`]), zeros outside the input.
///
/// Each padded input row is first split into its four column phases `P0..P3`; tile `tx`
/// then reads columns `(P0[tx], P1[tx], P2[tx], P3[tx], P0[tx+1], P1[tx+1])`, so both
/// stages are elementwise over a whole row of tiles.
#[inline(always)]
pub(super) fn input<T: Element>(p: &Plan, x: &[T], chans: Range<usize>, v: &mut [T], cols: Cols) {
    let ([h, w], [th, tw]) = (p.ihw, p.tiles);
    let c0 = chans.start;
    let q = tw + 1;
    let rows = 4 * th + 2;
    // Every channel writes the same positions, so the padding zeroed here stays zero.
    let mut split = vec![T::ZERO; rows * 4 * q];
    let mut u = vec![T::ZERO; 6 * 4 * q];
    for c in chans {
        for (r, sr) in split.chunks_mut(4 * q).enumerate() {
            let ih = r as isize - p.pad[0] as isize;
            if ih >= 0 && ih < h as isize {
                split4(&x[(c * h + ih as usize) * w..][..w], p.pad[1], sr);
            }
        }
        for ty in 0..th {
            // Bᵀ over the tile's six rows, every phase column at once.
            let d = &split[4 * ty * 4 * q..][..6 * 4 * q];
            for k in 0..4 * q {
                let col = bt(std::array::from_fn(|i| d[i * 4 * q + k]));
                for (i, val) in col.into_iter().enumerate() {
                    u[i * 4 * q + k] = val;
                }
            }
            // B over the columns, the same combination on the six phase columns.
            let base = (c - c0) * cols.ld + cols.first + ty * tw;
            for i in 0..6 {
                let ui = &u[i * 4 * q..][..4 * q];
                for tx in 0..tw {
                    let e = [
                        ui[tx],
                        ui[q + tx],
                        ui[2 * q + tx],
                        ui[3 * q + tx],
                        ui[tx + 1],
                        ui[q + tx + 1],
                    ];
                    for (j, val) in bt(e).into_iter().enumerate() {
                        v[(i * 6 + j) * cols.plane + base + tx] = val;
                    }
                }
            }
        }
    }
}

/// `Aᵀ m A` of one image's tiles in `m` (36 planes of `cout` rows, see [`Cols`]) into the
/// image `y` (`[cout, oh, ow]`), dropping outputs past the edge and adding `bias`.
#[inline(always)]
pub(super) fn output<T: Element>(p: &Plan, m: &[T], bias: Option<&[T]>, y: &mut [T], cols: Cols) {
    let ([oh, ow], [th, tw]) = (p.ohw, p.tiles);
    // r[a][j]: row a of Aᵀ over the tile's rows, for column j, a row of tiles each.
    let mut r = vec![T::ZERO; 4 * 6 * tw];
    for o in 0..p.cout {
        let b = bias.map_or(T::ZERO, |b| b[o]);
        for ty in 0..th {
            let at0 = o * cols.ld + cols.first + ty * tw;
            for j in 0..6 {
                for tx in 0..tw {
                    let col = at(std::array::from_fn(|i| m[(i * 6 + j) * cols.plane + at0 + tx]));
                    for (a, val) in col.into_iter().enumerate() {
                        r[(a * 6 + j) * tw + tx] = val;
                    }
                }
            }
            for a in 0..4 {
                let oy = 4 * ty + a;
                if oy >= oh {
                    break;
                }
                let row = &mut y[(o * oh + oy) * ow..][..ow];
                for tx in 0..tw {
                    let vals = at(std::array::from_fn(|j| r[(a * 6 + j) * tw + tx]));
                    for (bx, val) in vals.into_iter().enumerate() {
                        if let Some(s) = row.get_mut(4 * tx + bx) {
                            *s = val + b;
                        }
                    }
                }
            }
        }
    }
}

/// Row `r` of the 36 planes of the weight transform `G g Gᵀ` (see
/// [`super::transform::weight_transform`]), written through `row(q)`; computed in f64 and
/// rounded once.
pub(super) fn weight_row<'a, T: Element>(
    w: &[T],
    c: usize,
    cols: usize,
    r: usize,
    rotate: bool,
    row: impl Fn(usize) -> &'a mut [T],
) {
    // 16 kernels at a time, so that each of the 36 planes gets whole runs.
    for cc0 in (0..cols).step_by(16) {
        let n = 16.min(cols - cc0);
        let mut buf = [[T::ZERO; 16]; 36];
        for cc in cc0..cc0 + n {
            let (oi, ci) = if rotate { (cc, r) } else { (r, cc) };
            let k = &w[(oi * c + ci) * 9..][..9];
            let g = |i: usize, j: usize| {
                if rotate {
                    k[(2 - i) * 3 + 2 - j].to_f64()
                } else {
                    k[i * 3 + j].to_f64()
                }
            };
            // G over the rows (per kernel column), then over the columns.
            let cols3: [[f64; 6]; 3] = std::array::from_fn(|j| gk([g(0, j), g(1, j), g(2, j)]));
            for i in 0..6 {
                for (j, val) in gk([cols3[0][i], cols3[1][i], cols3[2][i]]).into_iter().enumerate() {
                    buf[i * 6 + j][cc - cc0] = T::from_f64(val);
                }
            }
        }
        for (q, b) in buf.iter().enumerate() {
            row(q)[cc0..][..n].copy_from_slice(&b[..n]);
        }
    }
}

/// Adjoint of [`output`]: `A dy Aᵀ` of every 4×4 output tile of channels `chans` of one
/// image `dy` (`[cout, oh, ow]`, zero past the edge) into `dm` (36 planes of `chans` rows,
/// see [`Cols`]).
#[inline(always)]
pub(super) fn adjoint<T: Element>(p: &Plan, dy: &[T], chans: Range<usize>, dm: &mut [T], cols: Cols) {
    let ([oh, ow], [th, tw]) = (p.ohw, p.tiles);
    let first_chan = chans.start;
    // The tile row's four output rows split into column phases: d[(r * 4 + b) * tw + tx] is
    // dy[4ty + r][4tx + b]; then A over the rows, q[(i * 4 + b) * tw + tx].
    let mut d = vec![T::ZERO; 16 * tw];
    let mut q = vec![T::ZERO; 24 * tw];
    for o in chans {
        for ty in 0..th {
            d.fill(T::ZERO);
            for (r, oy) in (4 * ty..oh).take(4).enumerate() {
                for (ox, &val) in dy[(o * oh + oy) * ow..][..ow].iter().enumerate() {
                    d[(r * 4 + ox % 4) * tw + ox / 4] = val;
                }
            }
            for k in 0..4 * tw {
                let (b, tx) = (k / tw, k % tw);
                let col = a(std::array::from_fn(|r| d[(r * 4 + b) * tw + tx]));
                for (i, val) in col.into_iter().enumerate() {
                    q[(i * 4 + b) * tw + tx] = val;
                }
            }
            // Aᵀ over the columns.
            let base = (o - first_chan) * cols.ld + cols.first + ty * tw;
            for i in 0..6 {
                for tx in 0..tw {
                    let row = a(std::array::from_fn(|b| q[(i * 4 + b) * tw + tx]));
                    for (j, val) in row.into_iter().enumerate() {
                        dm[(i * 6 + j) * cols.plane + base + tx] = val;
                    }
                }
            }
        }
    }
}

/// The adjoint weight transform `Gᵀ dU G` for output channels `outs` from `dut`
/// (`[36, c, o]`) into their kernels `dw`, computed in f64 and rounded once.
pub(super) fn adjoint_block<T: Element>(dut: &[T], o: usize, c: usize, outs: Range<usize>, dw: &mut [T]) {
    let first = outs.start;
    // `dut`'s order, so that each of its 36 planes is read in runs.
    for ci in 0..c {
        for oi in outs.clone() {
            let u = |i: usize, j: usize| dut[((i * 6 + j) * c + ci) * o + oi].to_f64();
            // Gᵀ over the columns of each row, then over the rows.
            let rows: [[f64; 3]; 6] = std::array::from_fn(|i| gt(std::array::from_fn(|j| u(i, j))));
            let k = &mut dw[((oi - first) * c + ci) * 9..][..9];
            for j in 0..3 {
                for (i, val) in gt(std::array::from_fn(|r| rows[r][j])).into_iter().enumerate() {
                    k[i * 3 + j] = T::from_f64(val);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::transform::Transform;
    use super::*;
    use crate::cpu::{self, Isa};
    use crate::kernels::test_rand::uniform_f32;

    /// The input, output and adjoint transforms at every level this CPU has give the scalar level's
    /// bits, over edge shapes: one tile, sizes not a multiple of 4 (partly empty last
    /// tiles), rows of tiles not a multiple of any lane count, padding 0, 1 and 2.
    #[test]
    fn transforms_match_scalar_bits_at_every_level() {
        for (cin, cout, [h, w], pad) in [
            (1, 1, [1, 1], 1),
            (2, 3, [5, 7], 1),
            (3, 2, [6, 6], 0),
            (1, 4, [13, 35], 1),
            (2, 1, [9, 10], 2),
            (3, 5, [4, 70], 1),
            (1, 2, [7, 133], 1),
        ] {
            let ohw = [h + 2 * pad - 2, w + 2 * pad - 2];
            let p = Plan::new(cin, cout, [h, w], ohw, [pad, pad], 4);
            let t = p.t();
            // This image's tiles from column 3 of rows of t + 7, planes a few elements
            // further apart than their rows need.
            let ld = t + 7;
            let (vp, mp) = (cin * ld + 5, cout * ld + 5);
            let cols = |plane| Cols { ld, first: 3, plane };
            let (x, m) = (uniform_f32(cin * h * w, 1), uniform_f32(36 * mp, 2));
            let (bias, dy) = (uniform_f32(cout, 4), uniform_f32(cout * ohw[0] * ohw[1], 3));
            let run = |level| {
                let mut v = vec![0f32; 36 * vp];
                let mut y = vec![0f32; cout * ohw[0] * ohw[1]];
                let mut dm = vec![0f32; 36 * mp];
                cpu::with_isa(level, || {
                    let (p, x, m, dy) = (&p, &x[..], &m[..], &dy[..]);
                    let v = &mut v[..];
                    Transform::Input {
                        p,
                        x,
                        chans: 0..cin,
                        v,
                        cols: cols(vp),
                    }
                    .run(cpu::isa());
                    let (bias, y) = (Some(&bias[..]), &mut y[..]);
                    Transform::Output {
                        p,
                        m,
                        bias,
                        y,
                        cols: cols(mp),
                    }
                    .run(cpu::isa());
                    let dm = &mut dm[..];
                    Transform::Adjoint {
                        p,
                        dy,
                        chans: 0..cout,
                        dm,
                        cols: cols(mp),
                    }
                    .run(cpu::isa());
                });
                [v, y, dm].map(|b| b.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            };
            let want = run(Isa::Scalar);
            for level in cpu::supported() {
                let got = run(level);
                for (name, (g, e)) in ["input", "output", "adjoint"].iter().zip(got.iter().zip(&want)) {
                    assert!(
                        g == e,
                        "F(4) {name} transform {cin}->{cout} {h}x{w} pad {pad}: {level} differs from scalar"
                    );
                }
            }
        }
    }

    #[test]
    fn one_dimension_is_the_correlation_in_f64() {
        // Every unit input against every unit tap (the matrices' entries one by one), then
        // mixed values.
        let unit = |n: usize, k: usize| -> Vec<f64> { (0..n).map(|i| f64::from(u8::from(i == k))).collect() };
        let mut cases: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
        for a in 0..6 {
            for b in 0..3 {
                cases.push((unit(6, a), unit(3, b)));
            }
        }
        cases.push((vec![0.3, -1.7, 2.5, 0.9, -0.4, 1.1], vec![0.7, -0.2, 1.3]));
        for (d, g) in cases {
            let gg = gk([g[0], g[1], g[2]]);
            let v = bt([d[0], d[1], d[2], d[3], d[4], d[5]]);
            let y = at(std::array::from_fn(|i| gg[i] * v[i]));
            for (i, yi) in y.iter().enumerate() {
                let want: f64 = (0..3).map(|k| d[i + k] * g[k]).sum();
                assert!((yi - want).abs() < 1e-12, "d {d:?} g {g:?}: y[{i}] = {yi}, want {want}");
            }
        }
    }

    #[test]
    fn two_dimensions_is_the_correlation_in_f64() {
        // One 6×6 tile through `input` and `output` with a hand-made transformed kernel.
        let p = Plan::new(1, 1, [6, 6], [4, 4], [0, 0], 4);
        let x: Vec<f64> = (0..36).map(|i| (i as f64 * 0.61).sin()).collect();
        let k: Vec<f64> = (0..9).map(|i| (i as f64 * 1.3).cos()).collect();
        let cols = Cols {
            ld: 1,
            first: 0,
            plane: 1,
        };
        let mut v = vec![0.0; 36];
        input(&p, &x, 0..1, &mut v, cols);
        let u = super::super::transform::weight_transform(&k, 1, 1, 4, false, 1);
        let m: Vec<f64> = u.iter().zip(&v).map(|(a, b)| a * b).collect();
        let mut y = vec![0.0; 16];
        output(&p, &m, Some(&[0.5]), &mut y, cols);
        for oy in 0..4 {
            for ox in 0..4 {
                let want: f64 = 0.5 + (0..9).map(|t| x[(oy + t / 3) * 6 + ox + t % 3] * k[t]).sum::<f64>();
                assert!((y[oy * 4 + ox] - want).abs() < 1e-12, "({oy}, {ox})");
            }
        }
    }

    /// The f32 error of F(2×2) and F(4×4) against an f64 reference on realistic data:
    /// Kaiming-scaled weights, ReLU'd (half zero, non-negative) inputs, standard normal
    /// gradients, 64 → 64 at 32×32, every pass. Printed with `--nocapture`; asserted within
    /// a few times the errors measured (F(4×4)'s points ±2 and its 1/6, 1/24 make it about
    /// 20× F(2×2)'s: 5–7e-6 of the largest value against 3e-7).
    #[test]
    fn f32_error_against_f64_on_realistic_data() {
        use super::super::super::geom::ConvGeom;
        use super::super::super::im2col::{im2col_backward_input, im2col_forward};
        use super::super::super::weight::im2col_backward_weight;
        use super::super::{backward_input_in, backward_weight_in, forward_in};
        let g = ConvGeom::new([2, 64, 32, 32], [64, 3, 3], [1, 1], [1, 1], [1, 1], 1);
        let mut rng = crate::Generator::new(7);
        let mut randn = |n: usize| crate::Tensor::randn(&[n], crate::DType::F32, &mut rng).to_vec_f32();
        let std = (2.0 / (9.0 * g.c as f32)).sqrt();
        let x: Vec<f32> = randn(g.n * g.c * g.h * g.w).into_iter().map(|v| v.max(0.0)).collect();
        let w: Vec<f32> = randn(g.o * g.c * 9).into_iter().map(|v| v * std).collect();
        let dy = randn(g.n * g.o * g.p());
        // The reference from the same f32 operands, so only the arithmetic differs.
        let up = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let (x64, w64, dy64) = (up(&x), up(&w), up(&dy));
        let mut want = [vec![0.0; dy.len()], vec![0.0; x.len()], vec![0.0; w.len()]];
        im2col_forward(&g, &x64, &w64, None, &mut want[0]);
        im2col_backward_input(&g, &dy64, &w64, None, &mut want[1]);
        im2col_backward_weight(&g, &x64, &dy64, &mut want[2]);
        for (m, bound) in [(2, 2e-6), (4, 2e-5)] {
            let mut got = [vec![0f32; dy.len()], vec![0f32; x.len()], vec![0f32; w.len()]];
            forward_in(m, &g, &x, &w, None, &mut got[0]);
            backward_input_in(m, &g, &dy, &w, None, &mut got[1]);
            backward_weight_in(m, &g, &x, &dy, &mut got[2]);
            for (pass, (got, want)) in ["forward", "input gradient", "weight gradient"]
                .iter()
                .zip(got.iter().zip(&want))
            {
                let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
                let (mut worst, mut sq, mut ref_sq) = (0f64, 0f64, 0f64);
                for (&a, &b) in got.iter().zip(want) {
                    let e = (a as f64 - b).abs();
                    worst = worst.max(e);
                    sq += e * e;
                    ref_sq += b * b;
                }
                let (max_rel, rms_rel) = (worst / scale, (sq / ref_sq).sqrt());
                println!("F({m}x{m}, 3x3) f32 {pass}: max |error| / max |ref| = {max_rel:.2e}, rms error / rms ref = {rms_rel:.2e}");
                assert!(max_rel < bound, "F({m}) {pass}: max relative error {max_rel:e}");
            }
        }
    }
}
