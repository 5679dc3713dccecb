//! The strided kernels against seven-loop f64 convolutions, at every level with vectors
//! and on 1, 2 and 3 threads.

use super::*;
use crate::cpu;

/// `[n, c, h, w]`, `[o, kh, kw]`, padding: odd sizes, sizes where a transposed
/// convolution needs output padding (14 → 7 → 14), batch 1, 1/3/16/17 channels; the last
/// two with wide rows of 256 and more, whose weight gradient takes dot products; 64 channels
/// on both sides (fcn_small's 16 → 8); rows of 272, short enough that the dot products take
/// two blocks of rows at a time, and 21 of them (blocks of rows left over).
const SHAPES: [([usize; 4], [usize; 3], [usize; 2]); 14] = [
    ([3, 1, 28, 28], [16, 3, 3], [1, 1]),
    ([2, 16, 14, 14], [32, 3, 3], [1, 1]),
    ([1, 1, 28, 28], [64, 4, 4], [1, 1]),
    ([2, 16, 13, 13], [17, 3, 3], [1, 1]),
    ([2, 3, 9, 7], [17, 3, 3], [0, 0]),
    ([1, 17, 11, 13], [5, 5, 5], [2, 2]),
    ([2, 64, 8, 9], [1, 4, 4], [2, 1]),
    ([1, 1, 5, 6], [3, 2, 2], [0, 0]),
    ([2, 17, 7, 6], [16, 5, 3], [1, 2]),
    ([3, 3, 10, 9], [16, 1, 3], [0, 1]),
    ([1, 16, 64, 64], [32, 3, 3], [1, 1]),
    ([2, 9, 35, 33], [6, 5, 5], [2, 1]),
    ([2, 64, 16, 15], [64, 3, 3], [1, 1]),
    ([2, 16, 32, 31], [21, 3, 3], [1, 1]),
];

fn geom(&(x, [o, kh, kw], pad): &([usize; 4], [usize; 3], [usize; 2])) -> ConvGeom {
    ConvGeom::new(x, [o, kh, kw], [2, 2], pad, [1, 1], 1)
}

fn seq(len: usize, seed: f64) -> Vec<f64> {
    (0..len)
        .map(|i| ((i as f64 * 0.37 + seed).sin() * 3.0).round() / 2.0 + 0.1)
        .collect()
}

/// The input pixel tap `(i, j)` of output `(y, x)` reads, if inside the image.
fn at(g: &ConvGeom, y: usize, x: usize, i: usize, j: usize) -> Option<usize> {
    let h = (y * 2 + i).checked_sub(g.padding[0]).filter(|&h| h < g.h)?;
    let w = (x * 2 + j).checked_sub(g.padding[1]).filter(|&w| w < g.w)?;
    Some(h * g.w + w)
}

/// Forward, input gradient and weight gradient by seven loops in f64.
fn naive(g: &ConvGeom, x: &[f64], w: &[f64], dy: &[f64]) -> [Vec<f64>; 3] {
    let (hw, p) = (g.h * g.w, g.oh * g.ow);
    let mut out = vec![0.0; g.n * g.o * p];
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    for n in 0..g.n {
        for o in 0..g.o {
            for c in 0..g.c {
                for i in 0..g.kh {
                    for j in 0..g.kw {
                        let wi = ((o * g.c + c) * g.kh + i) * g.kw + j;
                        for y in 0..g.oh {
                            for xx in 0..g.ow {
                                if let Some(q) = at(g, y, xx, i, j) {
                                    let (xi, yi) = ((n * g.c + c) * hw + q, (n * g.o + o) * p + y * g.ow + xx);
                                    out[yi] += w[wi] * x[xi];
                                    dx[xi] += w[wi] * dy[yi];
                                    dw[wi] += dy[yi] * x[xi];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    [out, dx, dw]
}

/// The three passes in f32 by these kernels (also where the router would not take them).
fn passes(g: &ConvGeom, x: &[f32], w: &[f32], dy: &[f32]) -> [Vec<f32>; 3] {
    let mut out = vec![f32::NAN; dy.len()];
    assert!(forward_any(g, x, w, None, &mut out), "{g:?}");
    let mut dx = vec![f32::NAN; x.len()];
    assert!(backward_input_any(g, dy, w, None, &mut dx), "{g:?}");
    let mut dw = vec![f32::NAN; w.len()];
    assert!(backward_weight_any(g, x, dy, &mut dw), "{g:?}");
    [out, dx, dw]
}

fn f32v(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&a| a as f32).collect()
}

fn levels() -> Vec<Isa> {
    cpu::supported().into_iter().filter(|&l| l != Isa::Scalar).collect()
}

/// `f` at the widest vector level, whatever `NABLA_ISA` chose: at the scalar level these
/// kernels decline (see `scalar_level_declines`).
fn on_vectors<R>(f: impl FnOnce() -> R) -> R {
    let top = *levels().last().expect("a CPU without f32 vectors");
    cpu::with_isa(top, f)
}

#[test]
fn scalar_level_declines() {
    let g = geom(&SHAPES[1]);
    let (x, w) = (f32v(&seq(g.n * g.c * g.h * g.w, 0.4)), f32v(&seq(g.o * g.k(), 0.8)));
    let mut out = vec![0f32; g.n * g.o * g.p()];
    assert!(!cpu::with_isa(Isa::Scalar, || forward(&g, &x, &w, None, &mut out)));
}

#[test]
fn passes_match_naive_f64_at_every_level() {
    assert!(!levels().is_empty(), "a CPU without f32 vectors");
    for shape in &SHAPES {
        let g = geom(shape);
        let (x, w) = (seq(g.n * g.c * g.h * g.w, 0.1), seq(g.o * g.k(), 1.3));
        let dy = seq(g.n * g.o * g.p(), 2.7);
        let want = naive(&g, &x, &w, &dy);
        for level in levels() {
            let got = cpu::with_isa(level, || {
                assert_eq!(applies(&g), g.c >= 8 && g.o >= 8, "{g:?}");
                passes(&g, &f32v(&x), &f32v(&w), &f32v(&dy))
            });
            // f32 sums of up to a thousand terms: a wrong tap would be off by whole units.
            for (pass, (a, b)) in got.iter().zip(&want).enumerate() {
                let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                let worst = a.iter().zip(b).map(|(&a, b)| (a as f64 - b).abs()).fold(0.0, f64::max);
                assert!(
                    worst <= 1e-5 * scale,
                    "{g:?} at {level}: pass {pass} off by {worst} (scale {scale})"
                );
            }
        }
    }
}

#[test]
fn f64_takes_the_general_path_and_agrees() {
    // f64 data declines this path; its results and the f32 ones are the same sums.
    let g = geom(&SHAPES[1]);
    let (x, w) = (seq(g.n * g.c * g.h * g.w, 0.4), seq(g.o * g.k(), 0.8));
    let mut out = vec![0.0; g.n * g.o * g.p()];
    let mut o32 = vec![0f32; out.len()];
    on_vectors(|| {
        assert!(!forward(&g, &x, &w, None, &mut out));
        super::super::conv2d_forward(&g, &x, &w, None, &mut out);
        assert!(forward(&g, &f32v(&x), &f32v(&w), None, &mut o32));
    });
    assert!(o32.iter().zip(&out).all(|(&a, b)| (a as f64 - b).abs() < 1e-4));
}

#[test]
fn bias_is_added_per_channel() {
    let g = geom(&SHAPES[3]);
    let (x, w, dy) = (
        seq(g.n * g.c * g.h * g.w, 0.2),
        seq(g.o * g.k(), 0.6),
        seq(g.n * g.o * g.p(), 0.9),
    );
    let (bo, bc) = (f32v(&seq(g.o, 1.1)), f32v(&seq(g.c, 2.2)));
    // At every level: the input gradient adds its bias as it interleaves the phases.
    for level in levels() {
        let [out, dx, _] = cpu::with_isa(level, || passes(&g, &f32v(&x), &f32v(&w), &f32v(&dy)));
        let mut ob = vec![0f32; out.len()];
        let mut dxb = vec![0f32; dx.len()];
        cpu::with_isa(level, || {
            assert!(forward_any(&g, &f32v(&x), &f32v(&w), Some(&bo), &mut ob));
            assert!(backward_input_any(&g, &f32v(&dy), &f32v(&w), Some(&bc), &mut dxb));
        });
        for (i, (a, b)) in ob.iter().zip(&out).enumerate() {
            assert_eq!(*a, b + bo[i / g.p() % g.o], "forward at {i}, {level}");
        }
        for (i, (a, b)) in dxb.iter().zip(&dx).enumerate() {
            assert_eq!(*a, b + bc[i / (g.h * g.w) % g.c], "input gradient at {i}, {level}");
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // Batch 128 (5 for the wide rows) so the work is split; every pass bit for bit on 1, 2
    // and 3 threads.
    for shape in SHAPES[..3].iter().chain(&SHAPES[10..11]) {
        let mut shape = *shape;
        shape.0[0] = if shape.0[2] > 32 { 5 } else { 128 };
        let g = geom(&shape);
        let (x, w) = (f32v(&seq(g.n * g.c * g.h * g.w, 0.3)), f32v(&seq(g.o * g.k(), 1.7)));
        let dy = f32v(&seq(g.n * g.o * g.p(), 0.5));
        let runs: Vec<_> = [1, 2, 3]
            .into_iter()
            .map(|t| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
                pool.install(|| on_vectors(|| passes(&g, &x, &w, &dy)))
            })
            .collect();
        for r in &runs[1..] {
            for (a, b) in r.iter().zip(&runs[0]) {
                assert!(a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits()), "{g:?}");
            }
        }
    }
}
