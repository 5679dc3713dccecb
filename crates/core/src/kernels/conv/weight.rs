//! The weight gradient of a convolution by im2col + GEMM, for the layers neither Winograd
//! nor the direct kernels take (strided, 1×1, larger kernels).
//!
//! `dw = Σ_n dy[n] · cols[n]ᵀ` is a product whose depth is the number of output pixels. A
//! deep layer's image has only a few (16 at 4×4), so one product per image would stream
//! the whole `o × k` result through memory for a handful of multiply-adds each time.
//! Images are grouped instead, their columns side by side, until the depth reaches
//! [`GROUP_COLS`](super::grouped::GROUP_COLS); groups are summed in order (small groups in
//! chunks over threads, the chunks' partials then in chunk order), so the result depends on
//! the shapes alone.
//!
//! ```
//! use nabla_core::kernels::conv::{conv2d_backward_weight, ConvGeom};
//! // A 1×1 convolution, 1 → 1 channel, of one 1×2 image: dw = Σ x · dy.
//! let g = ConvGeom { n: 1, c: 1, h: 1, w: 2, o: 1, oh: 1, ow: 2, kh: 1, kw: 1,
//!     stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 };
//! let mut dw = [0f32];
//! conv2d_backward_weight(&g, &[2.0, 3.0], &[10.0, 100.0], &mut dw);
//! assert_eq!(dw, [320.0]);
//! ```

use super::geom::{rows, transpose, transpose_on, ConvGeom};
use super::grouped::{columns, gather, group_images};
use crate::kernels::matmul::{gemm, Mat, PAR_FLOPS};
use crate::kernels::par::{for_each_chunk_on, run_tiles, Disjoint};
use crate::Element;

/// Multiply-adds of one group's products below which groups are split over threads
/// (chunks of groups, each summed into its own partial): products this small run on one
/// thread anyway, so threading inside them left the second core idle (the conv
/// autoencoder's 1 → 16 layer, DCGAN's 1 → 64).
const CHUNK_GROUP_MACS: usize = 1 << 20;

/// Multiply-adds per chunk of groups: tens of microseconds, enough chunks for two threads
/// to balance.
const CHUNK_MACS: usize = 1 << 18;

/// `dw` (`[o, c/groups, kh, kw]`) for input `x` and output gradient `dy`.
pub(super) fn im2col_backward_weight<T: Element>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    let (k, p, og) = (g.k(), g.p(), g.og());
    let wlen = g.o * k;
    dw[..wlen].fill(T::ZERO);
    if g.n == 0 || wlen == 0 || p == 0 {
        return;
    }
    let group = group_images(g);
    // Few output channels per group: `dw` itself (rows = og) is the better product
    // (measured with 6 channels: 96 GFLOP/s against 26 for `dwᵀ`; with 16 the other way).
    // So is a layer with fewer taps than output channels, where `dwᵀ` would have only a
    // few rows (one input channel: 1 → 64 maps, 4×4, 1.9 → 1.1 ms at batch 128,
    // and 1 → 16 at 3×3, 0.54 → 0.31 ms).
    let direct = og < 16 || k < og;
    // `dwᵀ` per conv group (`[k, og]`) unless direct: that orientation ran 3× faster in
    // `gemm` than a row-major `dw` with the columns as a transposed right operand.
    let mut acc = vec![T::ZERO; wlen];
    let groups_n = g.n.div_ceil(group);
    let group_macs = g.flops() / g.n * group;
    if groups_n > 1 && group_macs < CHUNK_GROUP_MACS && g.flops() >= 1 << 20 {
        // Chunks fixed by the shapes, summed in chunk order: the result does not depend
        // on the thread count.
        let per = CHUNK_MACS.div_ceil(group_macs.max(1)).clamp(1, groups_n);
        let chunks = groups_n.div_ceil(per);
        let mut partials = vec![T::ZERO; chunks * wlen];
        let base = Disjoint::new(&mut partials);
        run_tiles(chunks, rayon::current_num_threads(), &|ch| {
            // SAFETY: chunk ch alone writes its partial, inside `partials`.
            let out = unsafe { base.range(ch * wlen, wlen) };
            let mut s = Scratch::new(g, group);
            for gi in ch * per..((ch + 1) * per).min(groups_n) {
                s.group(g, x, dy, gi * group, direct, gi > ch * per, out, 1);
            }
        });
        for part in partials.chunks(wlen) {
            acc.iter_mut().zip(part).for_each(|(a, &v)| *a += v);
        }
    } else {
        let threads = crate::kernels::par::threads_for(g.flops(), PAR_FLOPS);
        let mut s = Scratch::new(g, group);
        for n0 in (0..g.n).step_by(group) {
            s.group(g, x, dy, n0, direct, n0 > 0, &mut acc, threads);
        }
    }
    if direct {
        dw[..wlen].copy_from_slice(&acc);
        return;
    }
    // In cache-sized blocks: element by element, the writes `k` apart missed the cache
    // (a 4608 × 512 block took several milliseconds that way).
    let threads = crate::kernels::par::threads_for(g.flops(), PAR_FLOPS);
    for gi in 0..g.groups {
        let block = gi * og * k..(gi + 1) * og * k;
        transpose_on(threads, &acc[block.clone()], k, og, &mut dw[block]);
    }
}

/// The buffers one group of images needs: its columns, padded images and output gradient.
struct Scratch<T> {
    cols: Vec<T>,
    pads: Vec<T>,
    /// The output gradient of the group: `[o, group · p]` (direct) or its transpose.
    dyg: Vec<T>,
}

impl<T: Element> Scratch<T> {
    fn new(g: &ConvGeom, group: usize) -> Self {
        let cols_cap = if g.is_pointwise() && group == 1 {
            0
        } else {
            g.c * g.kh * g.kw * group * g.p()
        };
        Scratch {
            cols: vec![T::ZERO; cols_cap],
            pads: vec![T::ZERO; g.pad_len() * group],
            dyg: vec![T::ZERO; g.o * group * g.p()],
        }
    }

    /// The products of the group of images from `n0` into `acc` (`dw`, or `dwᵀ` per conv
    /// group unless `direct`), added to it when `accumulate`.
    #[allow(clippy::too_many_arguments)]
    fn group(
        &mut self,
        g: &ConvGeom,
        x: &[T],
        dy: &[T],
        n0: usize,
        direct: bool,
        accumulate: bool,
        acc: &mut [T],
        threads: usize,
    ) {
        let (k, p, og) = (g.k(), g.p(), g.og());
        let img = g.c * g.h * g.w;
        let count = group_images(g).min(g.n - n0);
        let ld = count * p;
        let image = |i: usize| &x[(n0 + i) * img..][..img];
        // A 1×1 convolution reading every pixel once has one image's columns in `x` itself.
        let own = g.is_pointwise() && count == 1;
        if !own {
            columns(g, x, n0, count, &mut self.pads, &mut self.cols, threads);
        }
        let dy_img = |i: usize| &dy[(n0 + i) * g.o * p..][..g.o * p];
        if direct {
            gather(dy, g.o, p, n0, count, &mut self.dyg, threads);
        } else {
            for_each_chunk_on(threads, &mut self.dyg[..ld * g.o], p * g.o, &|i, part| {
                transpose(dy_img(i), g.o, p, part)
            });
        }
        let (cols, dyg) = (if own { image(0) } else { &self.cols[..] }, &self.dyg[..]);
        for gi in 0..g.groups {
            let dst = &mut acc[gi * og * k..(gi + 1) * og * k];
            if direct {
                let colst = Mat {
                    data: cols,
                    rs: 1,
                    cs: ld,
                    offset: gi * k * ld,
                };
                gemm(og, k, ld, rows(dyg, gi * og * ld, ld), colst, dst, accumulate, threads);
            } else {
                let b = Mat {
                    data: dyg,
                    rs: g.o,
                    cs: 1,
                    offset: gi * og,
                };
                gemm(k, og, ld, rows(cols, gi * k * ld, ld), b, dst, accumulate, threads);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dw` straight from its definition.
    fn naive(g: &ConvGeom, x: &[f64], dy: &[f64]) -> Vec<f64> {
        let (cg, og) = (g.c / g.groups, g.og());
        let mut dw = vec![0.0; g.o * g.k()];
        for n in 0..g.n {
            for o in 0..g.o {
                for ci in 0..cg {
                    let c = o / og * cg + ci;
                    for i in 0..g.kh {
                        for j in 0..g.kw {
                            let mut s = 0.0;
                            for y in 0..g.oh {
                                for xx in 0..g.ow {
                                    let ih = (y * g.stride[0] + i * g.dilation[0]) as isize - g.padding[0] as isize;
                                    let iw = (xx * g.stride[1] + j * g.dilation[1]) as isize - g.padding[1] as isize;
                                    if ih >= 0 && iw >= 0 && (ih as usize) < g.h && (iw as usize) < g.w {
                                        s += dy[((n * g.o + o) * g.oh + y) * g.ow + xx]
                                            * x[((n * g.c + c) * g.h + ih as usize) * g.w + iw as usize];
                                    }
                                }
                            }
                            dw[((o * cg + ci) * g.kh + i) * g.kw + j] += s;
                        }
                    }
                }
            }
        }
        dw
    }

    #[test]
    fn groups_of_images_match_the_definition() {
        // 25 output pixels per image: groups of 21 images, the last one partial; few and
        // many output channels (dw or dwᵀ), two conv groups, padding, 1×1, one input channel.
        let geom = |n, c, o, k: usize, stride: usize, pad: usize, groups| {
            ConvGeom::new([n, c, 9, 9], [o, k, k], [stride; 2], [pad; 2], [1, 1], groups)
        };
        for g in [
            geom(23, 4, 6, 3, 2, 1, 1),
            geom(23, 4, 32, 3, 2, 1, 2),
            geom(45, 3, 16, 1, 2, 0, 1),
            geom(1, 2, 3, 3, 2, 1, 1),
            // 1×1 stride 1: a last group of one image, and a single image, read x as columns.
            geom(8, 3, 16, 1, 1, 0, 1),
            geom(1, 2, 4, 1, 1, 0, 2),
            // Fewer taps than output channels (dw), and 1×1 with more (dwᵀ, x as columns).
            geom(9, 1, 64, 4, 2, 1, 1),
            geom(8, 32, 16, 1, 1, 0, 1),
        ] {
            let x: Vec<f64> = (0..g.n * g.c * g.h * g.w).map(|i| (i as f64 * 0.37).sin()).collect();
            let dy: Vec<f64> = (0..g.n * g.o * g.p()).map(|i| (i as f64 * 0.71 + 1.0).cos()).collect();
            let want = naive(&g, &x, &dy);
            let mut got = vec![f64::NAN; want.len()];
            im2col_backward_weight(&g, &x, &dy, &mut got);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() < 1e-10 * (1.0 + b.abs()), "{g:?} at {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn chunks_of_groups_match_the_definition_on_any_thread_count() {
        // Groups too small to thread inside, split over threads in chunks: the conv
        // autoencoder's 1 → 16 layer (dw, a last partial chunk) and a 4 → 16 one (dwᵀ).
        for g in [
            ConvGeom::new([64, 1, 28, 28], [16, 3, 3], [2, 2], [1, 1], [1, 1], 1),
            ConvGeom::new([40, 4, 20, 20], [16, 3, 3], [2, 2], [1, 1], [1, 1], 1),
        ] {
            let group = group_images(&g);
            assert!(
                g.n.div_ceil(group) > 1 && g.flops() / g.n * group < CHUNK_GROUP_MACS,
                "{g:?}"
            );
            let x: Vec<f64> = (0..g.n * g.c * g.h * g.w).map(|i| (i as f64 * 0.37).sin()).collect();
            let dy: Vec<f64> = (0..g.n * g.o * g.p()).map(|i| (i as f64 * 0.71 + 1.0).cos()).collect();
            let want = naive(&g, &x, &dy);
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut got = vec![f64::NAN; want.len()];
                pool.install(|| im2col_backward_weight(&g, &x, &dy, &mut got));
                got
            };
            let one = run(1);
            for (i, (a, b)) in one.iter().zip(&want).enumerate() {
                assert!((a - b).abs() < 1e-10 * (1.0 + b.abs()), "{g:?} at {i}: {a} vs {b}");
            }
            for threads in [2, 3] {
                let other = run(threads);
                assert!(
                    one.iter().zip(&other).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{g:?}, {threads} threads"
                );
            }
        }
    }
}
