//! Convolution by im2col + GEMM, the general path: each image unfolded into columns
//! (`[c·kh·kw, oh·ow]`) in a reused buffer, multiplied by the weights; the input gradient
//! is the transposed GEMM folded back with col2im.
//!
//! Work is split over tiles of images (see `geom::per_image`), each with its own column
//! buffer and single-threaded GEMMs (measured: per-image columns in a reused buffer run
//! the GEMM far faster than one column matrix for the whole batch). A single image runs
//! its GEMMs multi-threaded instead. Per-image results never depend on the split.

use super::geom::{col2im, im2col, padded, per_image, rows, tap_offsets, ConvGeom};
use crate::kernels::matmul::{gemm, Mat};
use crate::Element;

/// [`conv2d_forward`](super::conv2d_forward) by im2col + GEMM.
pub(super) fn im2col_forward<T: Element>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let (k, p, og) = (g.k(), g.p(), g.og());
    let threads = g.gemm_threads();
    let img = g.c * g.h * g.w;
    per_image(g, out, g.cols_len() + g.pad_len(), |n, y, scratch| {
        let xi = &x[n * img..(n + 1) * img];
        let (cols, buf) = scratch.split_at_mut(g.cols_len());
        let (src, src_rows): (&[T], usize) = if g.is_pointwise() {
            (xi, g.c / g.groups)
        } else {
            im2col(g, padded(g, xi, buf), cols);
            (cols, k)
        };
        if let Some(b) = bias {
            for (plane, &bv) in y.chunks_mut(p).zip(b) {
                plane.fill(bv);
            }
        }
        for gi in 0..g.groups {
            let dst = &mut y[gi * og * p..(gi + 1) * og * p];
            gemm(
                og,
                p,
                k,
                rows(w, gi * og * k, k),
                rows(src, gi * src_rows * p, p),
                dst,
                bias.is_some(),
                threads,
            );
        }
    });
}

/// [`conv2d_backward_input`](super::conv2d_backward_input) by GEMM into columns, then col2im.
pub(super) fn im2col_backward_input<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) {
    let (k, p, og) = (g.k(), g.p(), g.og());
    let threads = g.gemm_threads();
    let img = g.o * p;
    let plane = g.h * g.w;
    let pointwise = g.is_pointwise();
    let offsets = (g.stride[1] >= 2).then(|| tap_offsets(g));
    // The columns for one group, then folded: a pointwise convolution writes dx directly.
    per_image(g, dx, g.cols_len() + g.pad_len(), |n, dxi, scratch| {
        let dyi = &dy[n * img..(n + 1) * img];
        let (cols, buf) = scratch.split_at_mut(g.cols_len());
        for gi in 0..g.groups {
            let wt = Mat {
                data: w,
                rs: 1,
                cs: k,
                offset: gi * og * k,
            };
            let dst: &mut [T] = if pointwise {
                &mut dxi[gi * k * p..(gi + 1) * k * p]
            } else {
                &mut cols[gi * k * p..(gi + 1) * k * p]
            };
            gemm(k, p, og, wt, rows(dyi, gi * og * p, p), dst, false, threads);
        }
        if !pointwise {
            col2im(g, cols, buf, dxi, offsets.as_ref().map(|(i, s)| (&i[..], *s)));
        }
        if let Some(b) = bias {
            for (pl, &bv) in dxi.chunks_mut(plane).zip(b) {
                pl.iter_mut().for_each(|v| *v += bv);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_in_tiles_give_the_same_bits_on_any_thread_count() {
        // The conv autoencoder's 1 → 16 layer (tiles of 10 images, the last one partial)
        // and a 3-channel one with bias (tiles of 7 images).
        for (g, bias) in [
            (
                ConvGeom::new([41, 1, 28, 28], [16, 3, 3], [2, 2], [1, 1], [1, 1], 1),
                false,
            ),
            (
                ConvGeom::new([30, 3, 20, 20], [8, 4, 4], [2, 2], [1, 1], [1, 1], 1),
                true,
            ),
        ] {
            assert!(g.split_images(), "{g:?}");
            let x: Vec<f32> = (0..g.n * g.c * g.h * g.w).map(|i| (i as f32 * 0.37).sin()).collect();
            let w: Vec<f32> = (0..g.o * g.k()).map(|i| (i as f32 * 0.11).cos()).collect();
            let dy: Vec<f32> = (0..g.n * g.o * g.p()).map(|i| (i as f32 * 0.71).sin()).collect();
            let (bo, bi): (Vec<f32>, Vec<f32>) = (
                (0..g.o).map(|i| i as f32).collect(),
                (0..g.c).map(|i| i as f32).collect(),
            );
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let (mut y, mut dx) = (vec![f32::NAN; dy.len()], vec![f32::NAN; x.len()]);
                    im2col_forward(&g, &x, &w, bias.then_some(&bo[..]), &mut y);
                    im2col_backward_input(&g, &dy, &w, bias.then_some(&bi[..]), &mut dx);
                    (y, dx)
                })
            };
            let one = run(1);
            // Each image against a one-image call: no tile sees another image's scratch.
            let img = g.c * g.h * g.w;
            let g1 = ConvGeom { n: 1, ..g };
            for n in [0, g.n - 1] {
                let mut y = vec![0f32; g.o * g.p()];
                im2col_forward(&g1, &x[n * img..][..img], &w, bias.then_some(&bo[..]), &mut y);
                assert_eq!(y, one.0[n * y.len()..][..y.len()], "{g:?} image {n}");
            }
            assert!(one.0.iter().chain(&one.1).all(|v| v.is_finite()));
            for threads in [2, 3] {
                let other = run(threads);
                assert!(
                    one.0.iter().zip(&other.0).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{threads}"
                );
                assert!(
                    one.1.iter().zip(&other.1).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{threads}"
                );
            }
        }
    }
}
