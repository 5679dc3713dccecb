//! 2-D convolution kernels: forward, input gradient (= transposed convolution) and
//! weight gradient, as per-image im2col + GEMM over contiguous NCHW buffers.
//!
//! Every kernel sees one [`ConvGeom`], written from the convolution's point of view:
//! the "input" side `[n, c, h, w]` and the "output" side `[n, o, oh, ow]`. A transposed
//! convolution is the same geometry read backwards, so the three kernels serve both ops.
//!
//! Work is split over images, each worker with its own column buffer and
//! single-threaded GEMMs (measured: per-image columns in a reused buffer run the GEMM
//! far faster than one column matrix for the whole batch). A single image runs its
//! GEMMs multi-threaded instead. Per-image results never depend on the split, and the
//! weight gradient sums per-part partials over a split that depends only on the batch
//! size, so results do not depend on the thread count.
//!
//! Small stride-1 f32 layers (LeNet-5's) go to the direct AVX-512 kernels of
//! [`conv_direct`] first; 3×3 layers with many channels to [`winograd`].

use super::conv_weight::im2col_backward_weight;
use super::matmul::{gemm, Mat, PAR_FLOPS};
use super::{conv_direct, winograd};
use crate::Element;
use rayon::prelude::*;

/// Sizes and hyper-parameters of one 2-D convolution (all validated by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    /// Batch size.
    pub n: usize,
    /// Channels on the input side.
    pub c: usize,
    /// Input height and width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Channels on the output side.
    pub o: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Step between windows (rows, columns).
    pub stride: [usize; 2],
    /// Implicit zeros added on each side (rows, columns).
    pub padding: [usize; 2],
    /// Step between kernel taps (rows, columns).
    pub dilation: [usize; 2],
    /// Channel groups (divides both `c` and `o`).
    pub groups: usize,
}

impl ConvGeom {
    /// The convolution of `[n, c, h, w]` input with `[o, c/groups, kh, kw]` kernels
    /// (`kernel` = `[o, kh, kw]`), its output size by PyTorch's formula. The dilated kernel
    /// must fit the padded input (the ops check that before building one).
    pub fn new(
        [n, c, h, w]: [usize; 4],
        [o, kh, kw]: [usize; 3],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> ConvGeom {
        let out = |i: usize, k: usize, d: usize| (i + 2 * padding[d] - dilation[d] * (k - 1) - 1) / stride[d] + 1;
        ConvGeom {
            n,
            c,
            h,
            w,
            o,
            oh: out(h, kh, 0),
            ow: out(w, kw, 1),
            kh,
            kw,
            stride,
            padding,
            dilation,
            groups,
        }
    }

    /// Rows of one group's column matrix: input channels per group × kernel taps.
    pub fn k(&self) -> usize {
        self.c / self.groups * self.kh * self.kw
    }

    /// Output positions per image.
    pub fn p(&self) -> usize {
        self.oh * self.ow
    }

    /// Output channels per group.
    pub(super) fn og(&self) -> usize {
        self.o / self.groups
    }

    /// Multiply-adds of the whole convolution.
    pub fn flops(&self) -> usize {
        self.n * self.o * self.k() * self.p()
    }

    /// A 1×1 convolution that reads every input pixel once, in order: no columns needed.
    pub(super) fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.padding == [0, 0]
            && self.h == self.oh
            && self.w == self.ow
    }

    /// Input plane size with the padding.
    pub(super) fn padded_hw(&self) -> [usize; 2] {
        [self.h + 2 * self.padding[0], self.w + 2 * self.padding[1]]
    }

    /// Length of one padded image (none without padding).
    pub(super) fn pad_len(&self) -> usize {
        if self.padding == [0, 0] {
            0
        } else {
            self.c * self.padded_hw()[0] * self.padded_hw()[1]
        }
    }

    /// Length of one image's column buffer (none for pointwise convolutions).
    fn cols_len(&self) -> usize {
        if self.is_pointwise() {
            0
        } else {
            self.groups * self.k() * self.p()
        }
    }

    /// Whether to split over images (else one image at a time with threaded GEMMs).
    pub(crate) fn split_images(&self) -> bool {
        self.n > 1 && self.flops() >= PAR_FLOPS && rayon::current_num_threads() > 1
    }

    /// Threads for each GEMM: one when images run in parallel or the work is tiny.
    pub(crate) fn gemm_threads(&self) -> usize {
        if self.split_images() || self.flops() < PAR_FLOPS {
            1
        } else {
            rayon::current_num_threads()
        }
    }
}

/// One image `x` (`[c, h, w]`) with its zero padding written out into `buf`
/// (`[c, h + 2·ph, w + 2·pw]`), or `x` itself when there is no padding: the column
/// copies then need no bounds logic.
pub(super) fn padded<'a, T: Element>(g: &ConvGeom, x: &'a [T], buf: &'a mut [T]) -> &'a [T] {
    if g.padding == [0, 0] {
        return x;
    }
    let ([hp, wp], [ph, pw]) = (g.padded_hw(), g.padding);
    buf.fill(T::ZERO);
    for (c, plane) in x.chunks(g.h * g.w).take(g.c).enumerate() {
        for (r, row) in plane.chunks(g.w).enumerate() {
            buf[(c * hp + r + ph) * wp + pw..][..g.w].copy_from_slice(row);
        }
    }
    buf
}

/// Unfold one padded image `xp` (see [`padded`]) into `cols` (`[c·kh·kw, oh·ow]`).
fn im2col<T: Element>(g: &ConvGeom, xp: &[T], cols: &mut [T]) {
    im2col_rows(g, xp, 0..g.c, cols, g.p(), 0)
}

/// [`im2col`] for channels `chans` only, into `cols` laid out `[chans · kh · kw, ld]` with
/// this image's pixels from column `first` (several images side by side).
pub(super) fn im2col_rows<T: Element>(
    g: &ConvGeom,
    xp: &[T],
    chans: std::ops::Range<usize>,
    cols: &mut [T],
    ld: usize,
    first: usize,
) {
    let ([hp, wp], [sh, sw], [dh, dw]) = (g.padded_hw(), g.stride, g.dilation);
    let (p, ow, c0) = (g.p(), g.ow, chans.start);
    for c in chans {
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &mut cols[(((c - c0) * g.kh + i) * g.kw + j) * ld + first..][..p];
                for (y, seg) in row.chunks_mut(ow).enumerate() {
                    let src = &xp[(c * hp + y * sh + i * dh) * wp + j * dw..];
                    if sw == 1 {
                        seg.copy_from_slice(&src[..ow]);
                    } else {
                        for (d, s) in seg.iter_mut().zip(src.iter().step_by(sw)) {
                            *d = *s;
                        }
                    }
                }
            }
        }
    }
}

/// Fold `cols` back into one image `dx` (`[c, h, w]`), adding overlapping taps; `buf`
/// holds the padded image while folding (unused without padding).
fn col2im<T: Element>(g: &ConvGeom, cols: &[T], buf: &mut [T], dx: &mut [T]) {
    let ([hp, wp], [sh, sw], [dh, dw]) = (g.padded_hw(), g.stride, g.dilation);
    let (p, ow) = (g.p(), g.ow);
    let unpadded = g.padding == [0, 0];
    let acc: &mut [T] = if unpadded { &mut *dx } else { &mut *buf };
    acc.fill(T::ZERO);
    for c in 0..g.c {
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &cols[((c * g.kh + i) * g.kw + j) * p..][..p];
                for (y, seg) in row.chunks(ow).enumerate() {
                    let dst = &mut acc[(c * hp + y * sh + i * dh) * wp + j * dw..];
                    if sw == 1 {
                        for (d, s) in dst[..ow].iter_mut().zip(seg) {
                            *d += *s;
                        }
                    } else {
                        for (d, s) in dst.iter_mut().step_by(sw).zip(seg) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    }
    if !unpadded {
        let [ph, pw] = g.padding;
        for (c, plane) in dx.chunks_mut(g.h * g.w).take(g.c).enumerate() {
            for (r, row) in plane.chunks_mut(g.w).enumerate() {
                row.copy_from_slice(&buf[(c * hp + r + ph) * wp + pw..][..g.w]);
            }
        }
    }
}

/// Run `f(image, its output slice, scratch)` for each image, in parallel over images when
/// the geometry asks for it; each worker reuses one scratch buffer of `scratch` elements.
pub(super) fn per_image<T: Element>(
    g: &ConvGeom,
    out: &mut [T],
    scratch: usize,
    f: impl Fn(usize, &mut [T], &mut Vec<T>) + Sync,
) {
    let per = out.len() / g.n.max(1);
    if per == 0 {
        return;
    }
    let init = || Vec::<T>::new();
    let run = |buf: &mut Vec<T>, (i, o): (usize, &mut [T])| {
        buf.resize(scratch, T::ZERO);
        f(i, o, buf)
    };
    if g.split_images() {
        out.par_chunks_mut(per).enumerate().for_each_init(init, run);
    } else {
        let mut buf = init();
        out.chunks_mut(per).enumerate().for_each(|item| run(&mut buf, item));
    }
}

/// A row-major matrix view at `offset` with `cols` columns.
pub(super) fn rows<T>(data: &[T], offset: usize, cols: usize) -> Mat<'_, T> {
    Mat {
        data,
        rs: cols,
        cs: 1,
        offset,
    }
}

/// [`conv2d_forward`] by im2col + GEMM.
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

/// [`conv2d_backward_input`] by GEMM into columns, then col2im.
pub(super) fn im2col_backward_input<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) {
    let (k, p, og) = (g.k(), g.p(), g.og());
    let threads = g.gemm_threads();
    let img = g.o * p;
    let plane = g.h * g.w;
    let pointwise = g.is_pointwise();
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
            col2im(g, cols, buf, dxi);
        }
        if let Some(b) = bias {
            for (pl, &bv) in dxi.chunks_mut(plane).zip(b) {
                pl.iter_mut().for_each(|v| *v += bv);
            }
        }
    });
}

/// `dst = srcᵀ` for a row-major `rows × cols` matrix, in cache-sized blocks.
pub(crate) fn transpose<T: Element>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    transpose_on(1, src, rows, cols, dst)
}

/// [`transpose`] on up to `threads` threads, each taking bands of 16 rows of `src`.
pub(crate) fn transpose_on<T: Element>(threads: usize, src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    // 16 × 16 tiles through a local buffer, a band of `src` rows at a time, so `src` is
    // read in order.
    const B: usize = 16;
    let src = &src[..rows * cols];
    let out = super::par::Disjoint::new(&mut dst[..rows * cols]);
    super::par::run_tiles(rows.div_ceil(B), threads, &|t| {
        let (r0, height) = (t * B, B.min(rows - t * B));
        let mut tile = [T::ZERO; B * B];
        for c0 in (0..cols).step_by(B) {
            let width = B.min(cols - c0);
            for (i, row) in tile.chunks_mut(B).take(height).enumerate() {
                row[..width].copy_from_slice(&src[(r0 + i) * cols + c0..][..width]);
            }
            for j in 0..width {
                // SAFETY: band t alone writes columns r0..r0 + height of `dst`'s rows, and
                // `dst` stays borrowed for the call.
                let d = unsafe { out.range((c0 + j) * rows + r0, height) };
                for (i, d) in d.iter_mut().enumerate() {
                    *d = tile[i * B + j];
                }
            }
        }
    });
}

/// Forward: `out[n, o] = Σ_c w[o, c] ⋆ x[n, c] (+ bias[o])`; `out` is `[n, o, oh, ow]`.
/// 3×3 stride-1 layers with enough channels take Winograd, the rest im2col + GEMM.
pub fn conv2d_forward<T: Element>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    if winograd::applies(g) {
        winograd::forward(g, x, w, bias, out)
    } else if !conv_direct::forward(g, x, w, bias, out) {
        im2col_forward(g, x, w, bias, out)
    }
}

/// Input gradient (a transposed convolution): `dx = Σ_o w[o, c]ᵀ ⋆ dy[n, o] (+ bias[c])`;
/// `dy` is `[n, o, oh, ow]`, `dx` is `[n, c, h, w]`.
pub fn conv2d_backward_input<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) {
    if winograd::applies(g) {
        winograd::backward_input(g, dy, w, bias, dx)
    } else if !conv_direct::backward_input(g, dy, w, bias, dx) {
        im2col_backward_input(g, dy, w, bias, dx)
    }
}

/// Weight gradient: `dw[o, c] = Σ_n dy[n, o] ⋆ x[n, c]`, `dw` is `[o, c/groups, kh, kw]`.
pub fn conv2d_backward_weight<T: Element>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    if winograd::applies(g) {
        winograd::backward_weight(g, x, dy, dw)
    } else if !conv_direct::backward_weight(g, x, dy, dw) {
        im2col_backward_weight(g, x, dy, dw)
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
    let threads = super::par::threads_for(n * o * p, super::PAR_THRESHOLD);
    let base = super::par::Disjoint::new(&mut sums);
    super::matmul::run_tiles((n * o).div_ceil(per_tile), threads, &|t| {
        let first = t * per_tile;
        let count = per_tile.min(n * o - first);
        // SAFETY: tile t alone writes sums[first..first + count].
        let out = unsafe { base.range(first, count) };
        for (s, plane) in out.iter_mut().zip(dy[first * p..].chunks(p)) {
            *s = super::reduce::sum(plane).to_f64();
        }
    });
    for (c, d) in db[..o].iter_mut().enumerate() {
        *d = T::from_f64((0..n).map(|i| sums[i * o + c]).sum());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_matches_the_definition_in_bands_and_tiles() {
        // Partial bands and tiles on both sides, one row or column, and nothing at all.
        for (rows, cols) in [(37, 21), (16, 16), (1, 40), (40, 1), (0, 5), (100, 300)] {
            let src: Vec<f64> = (0..rows * cols).map(|i| i as f64).collect();
            for threads in [1, 3] {
                let mut dst = vec![f64::NAN; rows * cols];
                transpose_on(threads, &src, rows, cols, &mut dst);
                for r in 0..rows {
                    for c in 0..cols {
                        assert_eq!(dst[c * rows + r], src[r * cols + c], "{rows}x{cols} at ({r}, {c})");
                    }
                }
            }
        }
    }

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
        ] {
            let x = seq(g.n * g.c * g.h * g.w, 0.1);
            let w = seq(g.o * g.k(), 1.3);
            assert_eq!(winograd::applies(&g), g.c == 16, "{g:?}");
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
}
