//! Convolutions whose kernel covers the whole unpadded input, so each image gives one
//! output pixel (DCGAN's first generator layer, a 7×7 transposed convolution of a 1×1
//! latent, and its discriminator's last 7×7 layer): a linear layer over the flattened
//! image, whose `(c, i, j)` order is the kernel's. One GEMM covers the whole batch, where
//! the per-image path would run a matrix-vector product per image and stream the whole
//! weight once per image.

use super::geom::{rows, ConvGeom};
use crate::kernels::matmul::{gemm, gemm_init, Init, Mat, PAR_FLOPS};
use crate::Element;

/// Whether `g` is such a convolution.
pub(super) fn applies(g: &ConvGeom) -> bool {
    g.groups == 1 && g.padding == [0, 0] && g.dilation == [1, 1] && g.kh == g.h && g.kw == g.w
}

/// Threads for a product of `flops` multiply-adds (one below the hand-off's break-even).
fn threads(flops: usize) -> usize {
    if flops < PAR_FLOPS {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// `out[n, o] = Σ_k x[n, k]·w[o, k] (+ bias[o])`: `[N, K] · wᵀ`.
pub(super) fn forward<T: Element>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let k = g.k();
    let wt = Mat {
        data: w,
        rs: 1,
        cs: k,
        offset: 0,
    };
    let init = bias.map_or(Init::Zero, Init::Bias);
    gemm_init(g.n, g.o, k, rows(x, 0, k), wt, out, init, threads(g.flops()));
}

/// `dx[n, k] = Σ_o dy[n, o]·w[o, k] (+ bias[c] on channel c's pixels)`: `dy · w`.
pub(super) fn backward_input<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) {
    let k = g.k();
    gemm(
        g.n,
        k,
        g.o,
        rows(dy, 0, g.o),
        rows(w, 0, k),
        dx,
        false,
        threads(g.flops()),
    );
    if let Some(b) = bias {
        let plane = g.h * g.w;
        for img in dx.chunks_mut(k) {
            for (pl, &bv) in img.chunks_mut(plane).zip(b) {
                pl.iter_mut().for_each(|v| *v += bv);
            }
        }
    }
}

/// `dw[o, k] = Σ_n dy[n, o]·x[n, k]`: `dyᵀ · x`.
pub(super) fn backward_weight<T: Element>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    let k = g.k();
    let dyt = Mat {
        data: dy,
        rs: 1,
        cs: g.o,
        offset: 0,
    };
    gemm(g.o, k, g.n, dyt, rows(x, 0, k), dw, false, threads(g.flops()));
}
