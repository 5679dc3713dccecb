//! 2-D convolution kernels: forward, input gradient (= transposed convolution) and
//! weight gradient over contiguous NCHW buffers. This file is the only router: it holds
//! the public entry points and picks an algorithm; each algorithm lives in its own child
//! module and imports only [`geom`], the GEMM/parallel layers and SIMD, never this file.
//!
//! - [`geom`]: [`ConvGeom`], output sizes, padding and im2col/col2im, shared by all.
//! - `dense`: a kernel as large as the unpadded input (one output pixel): one GEMM for
//!   the batch, as a linear layer.
//! - `im2col`: im2col + GEMM, the general path (forward and input gradient).
//! - `grouped`: im2col + GEMM over groups of images, for small images with large weights.
//! - `weight`: the weight gradient by GEMMs over im2col columns.
//! - `phase`: the forward pass and input gradient of stride-2 4×4 layers with many
//!   channels, as 2×2 stride-1 convolutions of phase images (of `dy` into the phases of
//!   `dx`) by Winograd F(4×4, 2×2).
//!   Their weight gradient (`phase/wgrad.rs`) by the adjoint F(2×2, 4×4) over phase images.
//! - `winograd`: F(4×4, 3×3) (maps of 16×16 and up) or F(2×2, 3×3) for 3×3 stride-1
//!   layers with many channels.
//! - `strided`: direct f32 kernels for stride-2 layers with few channels (the conv
//!   autoencoder's, DCGAN's first and last), all three passes over phase images.
//! - `direct`: direct f32 kernels for small stride-1 layers (LeNet-5's), with the
//!   instruction-set-specific code under `direct/avx512/`.
//!
//! Results never depend on the thread count: per-image work is independent, and weight
//! gradients sum per-part partials over a split fixed by the shapes.

mod dense;
mod direct;
pub mod geom;
mod grouped;
mod im2col;
mod phase;
mod strided;
mod weight;
mod winograd;

pub use geom::{out_size, ConvGeom};

use super::batch_norm::Activation;
use super::elementwise::{vectorized, Loop};
use super::{par, BLOCK, PAR_THRESHOLD};
use crate::Element;

/// Forward: `out[n, o] = Σ_c w[o, c] ⋆ x[n, c] (+ bias[o])`; `out` is `[n, o, oh, ow]`.
/// Whole-input kernels take one GEMM, 3×3 stride-1 layers with enough channels and pixels
/// (8×8 outputs and up) Winograd, small images with large weights grouped im2col, small layers the direct
/// kernels, the rest im2col + GEMM.
pub fn conv2d_forward<T: Element>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    if dense::applies(g) {
        dense::forward(g, x, w, bias, out)
    } else if phase::applies(g) {
        phase::forward(g, x, w, bias, out)
    } else if winograd::applies(g) {
        winograd::forward(g, x, w, bias, out)
    } else if grouped::applies(g) {
        grouped::forward(g, x, w, bias, out)
    } else if !strided::forward(g, x, w, bias, out) && !direct::forward(g, x, w, bias, out) {
        im2col::im2col_forward(g, x, w, bias, out)
    }
}

/// Input gradient (a transposed convolution): `dx = Σ_o w[o, c]ᵀ ⋆ dy[n, o] (+ bias[c])`;
/// `dy` is `[n, o, oh, ow]`, `dx` is `[n, c, h, w]`.
pub fn conv2d_backward_input<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) {
    if dense::applies(g) {
        dense::backward_input(g, dy, w, bias, dx)
    } else if winograd::applies(g) {
        winograd::backward_input(g, dy, w, bias, dx)
    } else if phase::applies(g) {
        phase::backward_input(g, dy, w, bias, dx)
    } else if strided::backward_input(g, dy, w, bias, dx) {
        // Before grouped im2col: fcn_small's 64→64 16→8 (batch 32, one thread) 2.06 → 1.63 ms
        // (its forward pass ran as fast either way and stays there).
    } else if grouped::applies(g) {
        // As a forward convolution where it is one: the forward pass writes each output once
        // instead of folding columns back (4×4, 512→512, one thread: 31.2 → 22.7 ms).
        match geom::input_gradient_as_forward(g, w) {
            Some((fg, wf)) if grouped::applies(&fg) => grouped::forward(&fg, dy, &wf, bias, dx),
            _ => grouped::backward_input(g, dy, w, bias, dx),
        }
    } else if !strided::backward_input(g, dy, w, bias, dx) && !direct::backward_input(g, dy, w, bias, dx) {
        im2col::im2col_backward_input(g, dy, w, bias, dx)
    }
}

/// Weight gradient: `dw[o, c] = Σ_n dy[n, o] ⋆ x[n, c]`, `dw` is `[o, c/groups, kh, kw]`.
pub fn conv2d_backward_weight<T: Element>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    if dense::applies(g) {
        dense::backward_weight(g, x, dy, dw)
    } else if phase::applies(g) {
        phase::wgrad::backward_weight(g, x, dy, dw)
    } else if winograd::applies(g) {
        winograd::backward_weight(g, x, dy, dw)
    } else if !strided::backward_weight(g, x, dy, dw) && !direct::backward_weight(g, x, dy, dw) {
        weight::im2col_backward_weight(g, x, dy, dw)
    }
}

/// The epilogue of a convolution with a fused activation: `act` applied to its output in
/// place, while the output is still in cache and without a second tensor. The same
/// element functions as `relu` and `leaky_relu`, so the values are theirs bit for bit.
pub fn activate<T: Element>(out: &mut [T], act: Activation) {
    match act {
        Activation::Identity => {}
        Activation::Relu => in_place(out, |v: T| if v > T::ZERO || v.is_nan() { v } else { T::ZERO }),
        Activation::LeakyRelu(slope) => {
            let s = T::from_f64(slope);
            in_place(out, move |v: T| if v > T::ZERO { v } else { s * v })
        }
    }
}

/// `v = f(v)` over one run of elements, compiled per vector width.
struct InPlace<'a, T, F> {
    out: &'a mut [T],
    f: &'a F,
}

impl<T: Copy, F: Fn(T) -> T> Loop for InPlace<'_, T, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let f = self.f;
        self.out.iter_mut().for_each(|v| *v = f(*v));
    }
}

/// `v = f(v)` for every element, in blocks over the threads for large outputs.
fn in_place<T: Element>(out: &mut [T], f: impl Fn(T) -> T + Sync) {
    let isa = crate::cpu::isa();
    if out.len() >= PAR_THRESHOLD {
        par::for_each_chunk(out, BLOCK, &|_, out| vectorized(isa, InPlace { out, f: &f }));
    } else {
        vectorized(isa, InPlace { out, f: &f });
    }
}

/// Bias gradient: `db[o] = Σ_{n, y, x} dy[n, o, y, x]` for `dy` of `[n, o, p]` elements.
pub fn bias_grad<T: Element>(dy: &[T], n: usize, o: usize, p: usize, db: &mut [T]) {
    db[..o].fill(T::ZERO);
    if p == 0 || o == 0 || n == 0 {
        return;
    }
    // Plane sums (tiles of planes over the threads that are awake, see `run_tiles`), then
    // added per channel in image order in f64.
    let mut sums = vec![0f64; n * o];
    let per_tile = (super::BLOCK / p).max(1);
    let isa = crate::cpu::isa();
    let threads = super::par::threads_for(n * o * p, super::PAR_THRESHOLD);
    let base = super::par::Disjoint::new(&mut sums);
    super::matmul::run_tiles((n * o).div_ceil(per_tile), threads, &|t| {
        let first = t * per_tile;
        let count = per_tile.min(n * o - first);
        // SAFETY: tile t alone writes sums[first..first + count].
        let out = unsafe { base.range(first, count) };
        let x = &dy[first * p..(first + count) * p];
        vectorized(isa, super::reduce::PlaneSums { x, p, out });
    });
    for (c, d) in db[..o].iter_mut().enumerate() {
        *d = T::from_f64((0..n).map(|i| sums[i * o + c]).sum());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn geom(
        c: usize,
        h: usize,
        w: usize,
        o: usize,
        k: [usize; 2],
        s: [usize; 2],
        pad: [usize; 2],
        d: [usize; 2],
        groups: usize,
    ) -> ConvGeom {
        ConvGeom::new([2, c, h, w], [o, k[0], k[1]], s, pad, d, groups)
    }

    /// Direct seven-loop convolution.
    fn naive(g: &ConvGeom, x: &[f64], wt: &[f64]) -> Vec<f64> {
        let (cg, og) = (g.c / g.groups, g.o / g.groups);
        let mut out = vec![0.0; g.n * g.o * g.p()];
        for n in 0..g.n {
            for o in 0..g.o {
                let gi = o / og;
                for y in 0..g.oh {
                    for xx in 0..g.ow {
                        let mut s = 0.0;
                        for ci in 0..cg {
                            let c = gi * cg + ci;
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let ih = (y * g.stride[0] + i * g.dilation[0]) as isize - g.padding[0] as isize;
                                    let iw = (xx * g.stride[1] + j * g.dilation[1]) as isize - g.padding[1] as isize;
                                    if ih >= 0 && iw >= 0 && (ih as usize) < g.h && (iw as usize) < g.w {
                                        s += wt[((o * cg + ci) * g.kh + i) * g.kw + j]
                                            * x[((n * g.c + c) * g.h + ih as usize) * g.w + iw as usize];
                                    }
                                }
                            }
                        }
                        out[(n * g.o + o) * g.p() + y * g.ow + xx] = s;
                    }
                }
            }
        }
        out
    }

    fn seq(len: usize, seed: f64) -> Vec<f64> {
        (0..len)
            .map(|i| ((i as f64 * 0.37 + seed).sin() * 3.0).round() / 2.0)
            .collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn forward_and_adjoints_match_naive() {
        for g in [
            geom(3, 7, 6, 4, [3, 3], [1, 1], [1, 1], [1, 1], 1),
            geom(4, 9, 8, 6, [3, 2], [2, 1], [1, 0], [1, 2], 2),
            geom(2, 5, 5, 3, [1, 1], [1, 1], [0, 0], [1, 1], 1),
            geom(4, 8, 7, 4, [3, 3], [3, 2], [2, 1], [2, 1], 4),
            // 16 output channels: the weight gradient as dwᵀ
            geom(2, 5, 6, 16, [2, 2], [2, 1], [1, 0], [1, 1], 1),
            // takes the Winograd path
            geom(16, 16, 16, 17, [3, 3], [1, 1], [1, 1], [1, 1], 1),
            // whole-input kernels take the dense path (DCGAN's 7×7 layers, and one output map)
            geom(5, 4, 3, 6, [4, 3], [1, 1], [0, 0], [1, 1], 1),
            geom(7, 3, 3, 1, [3, 3], [2, 2], [0, 0], [1, 1], 1),
            // grouped im2col, the input gradient as a forward convolution (ResNet's 4×4
            // stage; without padding, the gradient's padding is 2)
            geom(64, 4, 4, 64, [3, 3], [1, 1], [1, 1], [1, 1], 1),
            geom(64, 5, 6, 64, [3, 3], [1, 1], [0, 0], [1, 1], 1),
            // stride-2 4×4 with enough channels: phase images, both ways
            geom(17, 9, 8, 18, [4, 4], [2, 2], [1, 1], [1, 1], 1),
            geom(20, 7, 6, 16, [4, 4], [2, 2], [2, 0], [1, 1], 1),
        ] {
            let x = seq(g.n * g.c * g.h * g.w, 0.1);
            let w = seq(g.o * g.k(), 1.3);
            assert_eq!(winograd::applies(&g), g.c == 16, "{g:?}");
            assert_eq!(dense::applies(&g), g.oh * g.ow == 1, "{g:?}");
            assert_eq!(grouped::applies(&g), g.c == 64, "{g:?}");
            let want = naive(&g, &x, &w);
            let mut y = vec![0.0; want.len()];
            conv2d_forward(&g, &x, &w, None, &mut y);
            assert!(
                y.iter()
                    .zip(&want)
                    .all(|(a, b)| (a - b).abs() < 1e-12 * (1.0 + b.abs())),
                "{g:?}"
            );
            // <dy, conv(x)> = <convT(dy), x> = <dw(x, dy), w>
            let dy = seq(want.len(), 2.7);
            let mut dx = vec![0.0; x.len()];
            conv2d_backward_input(&g, &dy, &w, None, &mut dx);
            let mut dw = vec![0.0; w.len()];
            conv2d_backward_weight(&g, &x, &dy, &mut dw);
            let lhs = dot(&dy, &want);
            assert!((lhs - dot(&dx, &x)).abs() < 1e-9 * lhs.abs().max(1.0), "{g:?}");
            assert!((lhs - dot(&dw, &w)).abs() < 1e-9 * lhs.abs().max(1.0), "{g:?}");
        }
    }

    #[test]
    fn activate_matches_the_activations_at_every_level() {
        // Odd lengths around the lane counts and past the parallel threshold; a NaN, both
        // zeros and infinities among the values.
        let data = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| match i % 13 {
                    0 => f32::NAN,
                    1 => -0.0,
                    2 => 0.0,
                    3 => f32::NEG_INFINITY,
                    4 => f32::INFINITY,
                    _ => ((i as f32) * 0.61).sin() * 4.0,
                })
                .collect()
        };
        for n in [0, 1, 7, 17, 33, 1031, PAR_THRESHOLD + 37] {
            let x = data(n);
            for act in [Activation::Identity, Activation::Relu, Activation::LeakyRelu(0.2)] {
                let want: Vec<u32> = x
                    .iter()
                    .map(|&v| match act {
                        Activation::Identity => v,
                        Activation::Relu => {
                            if v > 0.0 || v.is_nan() {
                                v
                            } else {
                                0.0
                            }
                        }
                        Activation::LeakyRelu(s) => {
                            if v > 0.0 {
                                v
                            } else {
                                s as f32 * v
                            }
                        }
                    })
                    .map(f32::to_bits)
                    .collect();
                for level in crate::cpu::supported() {
                    let mut y = x.clone();
                    crate::cpu::with_isa(level, || activate(&mut y, act));
                    let got: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                    assert!(got == want, "{act:?} n={n} at {level}");
                }
            }
        }
        let mut y = vec![-1.5f64, 2.0, f64::NAN];
        activate(&mut y, Activation::LeakyRelu(0.5));
        assert_eq!((y[0], y[1], y[2].is_nan()), (-0.75, 2.0, true));
    }

    #[test]
    fn dense_bias_matches_the_general_path() {
        // The bias of the forward (per output map) and of the input gradient (per input
        // channel plane, a transposed convolution's bias) as im2col + GEMM adds them.
        let g = geom(3, 4, 5, 6, [4, 5], [1, 1], [0, 0], [1, 1], 1);
        assert!(dense::applies(&g));
        let (x, w, dy) = (seq(g.n * g.c * 20, 0.4), seq(g.o * g.k(), 2.1), seq(g.n * g.o, 0.9));
        let (b_out, b_in) = (seq(g.o, 3.3), seq(g.c, 1.7));
        let (mut y, mut want) = (vec![0.0; g.n * g.o], vec![0.0; g.n * g.o]);
        dense::forward(&g, &x, &w, Some(&b_out), &mut y);
        im2col::im2col_forward(&g, &x, &w, Some(&b_out), &mut want);
        assert!(
            y.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-12),
            "{y:?} vs {want:?}"
        );
        let (mut dx, mut want) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        dense::backward_input(&g, &dy, &w, Some(&b_in), &mut dx);
        im2col::im2col_backward_input(&g, &dy, &w, Some(&b_in), &mut want);
        assert!(
            dx.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-12),
            "{dx:?} vs {want:?}"
        );
    }
}
