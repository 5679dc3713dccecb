//! The geometry every convolution kernel shares: [`ConvGeom`], PyTorch's output-size
//! formula ([`out_size`], which pooling uses too), and the layout helpers the algorithms
//! build on (padding, im2col/col2im, per-image work, matrix views, transposes).
//!
//! A [`ConvGeom`] is written from the convolution's point of view: the "input" side
//! `[n, c, h, w]` and the "output" side `[n, o, oh, ow]`. A transposed convolution is the
//! same geometry read backwards, so the kernels serve both ops.

use crate::kernels::matmul::{Mat, PAR_FLOPS};
use crate::kernels::par;
use crate::Element;
use std::borrow::Cow;
use std::sync::Mutex;

/// Output size along one dimension of a window sweep, PyTorch's formula for convolution
/// and pooling: `(size + 2·pad − dilation·(kernel − 1) − 1) / stride + 1`, rounded down,
/// or up with `ceil_mode` (pooling), where the last partial window is kept unless it would
/// start in the right padding. `None` when the dilated kernel does not fit the padded input.
pub fn out_size(
    size: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Option<usize> {
    let span = (size + 2 * pad).checked_sub(dilation * (kernel - 1) + 1)?;
    let mut out = if ceil_mode {
        span.div_ceil(stride)
    } else {
        span / stride
    } + 1;
    if ceil_mode && (out - 1) * stride >= size + pad {
        out -= 1;
    }
    Some(out)
}

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
        let out = |i: usize, k: usize, d: usize| {
            out_size(i, k, stride[d], padding[d], dilation[d], false).expect("the dilated kernel fits the padded input")
        };
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
    pub(super) fn cols_len(&self) -> usize {
        if self.is_pointwise() {
            0
        } else {
            self.groups * self.k() * self.p()
        }
    }

    /// Whether to split over images (else one image at a time with threaded GEMMs).
    pub(crate) fn split_images(&self) -> bool {
        self.n > 1 && self.flops() >= SPLIT_IMAGES_MACS && rayon::current_num_threads() > 1
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

/// The input gradient of a stride-1, undilated, ungrouped convolution as a forward
/// convolution: `dx = conv(dy, w')` with `w'[c, o] = w[o, c]` rotated 180° and padding
/// `k − 1 − padding`, so it can take the forward pass's faster paths. `None` where that does
/// not hold (or a padding exceeds `k − 1`); else the forward geometry and `w'`.
pub(super) fn input_gradient_as_forward<T: Element>(g: &ConvGeom, w: &[T]) -> Option<(ConvGeom, Vec<T>)> {
    let fits = g.stride == [1, 1] && g.dilation == [1, 1] && g.groups == 1;
    if !fits || g.padding[0] >= g.kh || g.padding[1] >= g.kw {
        return None;
    }
    let pad = [g.kh - 1 - g.padding[0], g.kw - 1 - g.padding[1]];
    let fg = ConvGeom::new([g.n, g.o, g.oh, g.ow], [g.c, g.kh, g.kw], [1, 1], pad, [1, 1], 1);
    let taps = g.kh * g.kw;
    let mut wf = vec![T::ZERO; w.len()];
    // Blocks of 16 output channels: 16 rows of `w` read in sequence while `wf` is written in
    // runs of 16 kernels (either order alone strides one side by a whole row of kernels).
    for o0 in (0..g.o).step_by(16) {
        let os = o0..(o0 + 16).min(g.o);
        for ci in 0..g.c {
            for oi in os.clone() {
                let src = &w[(oi * g.c + ci) * taps..][..taps];
                let dst = &mut wf[(ci * g.o + oi) * taps..][..taps];
                dst.iter_mut().zip(src.iter().rev()).for_each(|(d, &s)| *d = s);
            }
        }
    }
    Some((fg, wf))
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
pub(super) fn im2col<T: Element>(g: &ConvGeom, xp: &[T], cols: &mut [T]) {
    im2col_rows(g, xp, 0..g.c, cols, g.p(), 0, None)
}

/// Multiply-adds from which images are split over threads: a few hundred microseconds of
/// work, far above a hand-off's cost (the conv autoencoder's 1 → 16 layer, 3.6 M at batch
/// 128, ran on one thread below the products' threshold of 8 M).
const SPLIT_IMAGES_MACS: usize = 1 << 20;

/// Strided output rows shorter than this gather through [`tap_offsets`]; longer ones copy
/// row by row, which the compiler vectorises (measured at batch 128, one thread: 16 → 32
/// maps at 7 × 7 output, forward 1.18 → 1.07 ms; 1 → 16 at 14 × 14, 0.24 → 0.31 ms).
const TABLE_MAX_OW: usize = 12;

/// [`im2col`] for channels `chans` only, into `cols` laid out `[chans · kh · kw, ld]` with
/// this image's pixels from column `first` (several images side by side); `offsets` is
/// [`tap_offsets`] when the caller has it (strided layers), else computed here.
pub(super) fn im2col_rows<T: Element>(
    g: &ConvGeom,
    xp: &[T],
    chans: std::ops::Range<usize>,
    cols: &mut [T],
    ld: usize,
    first: usize,
    offsets: Option<(&[u32], usize)>,
) {
    let ([hp, wp], [sh, sw], [dh, dw]) = (g.padded_hw(), g.stride, g.dilation);
    let (p, ow, c0) = (g.p(), g.ow, chans.start);
    if sw >= 2 && ow < TABLE_MAX_OW {
        // Every tap's row is the same pattern of offsets from its first pixel: gather
        // through one table instead of row by row (rows of 7 strided elements at a time
        // took a quarter of the conv autoencoder's step).
        let (idx, span) = tap_table(g, offsets);
        for c in chans {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let row = &mut cols[(((c - c0) * g.kh + i) * g.kw + j) * ld + first..][..p];
                    let src = &xp[(c * hp + i * dh) * wp + j * dw..][..span];
                    row.iter_mut().zip(idx.iter()).for_each(|(d, &o)| *d = src[o as usize]);
                }
            }
        }
        return;
    }
    for c in chans {
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &mut cols[(((c - c0) * g.kh + i) * g.kw + j) * ld + first..][..p];
                for (y, seg) in row.chunks_mut(ow).enumerate() {
                    let src = &xp[(c * hp + y * sh + i * dh) * wp + j * dw..];
                    if sw == 1 {
                        seg.copy_from_slice(&src[..ow]);
                    } else if sw == 2 {
                        // One bounds check for the row, so the loop compiles to vector gathers.
                        let src = &src[..2 * ow - 1];
                        for (x, d) in seg.iter_mut().enumerate() {
                            *d = src[2 * x];
                        }
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
pub(super) fn col2im<T: Element>(
    g: &ConvGeom,
    cols: &[T],
    buf: &mut [T],
    dx: &mut [T],
    offsets: Option<(&[u32], usize)>,
) {
    let ([hp, wp], [sh, sw], [dh, dw]) = (g.padded_hw(), g.stride, g.dilation);
    let (p, ow) = (g.p(), g.ow);
    let unpadded = g.padding == [0, 0];
    let acc: &mut [T] = if unpadded { &mut *dx } else { &mut *buf };
    acc.fill(T::ZERO);
    if sw >= 2 {
        // Through the offset table, as in `im2col_rows`; each element still receives its
        // taps in (c, i, j, y, x) order.
        let (idx, span) = tap_table(g, offsets);
        for c in 0..g.c {
            for t in 0..g.kh * g.kw {
                let (i, j) = (t / g.kw, t % g.kw);
                let row = &cols[(c * g.kh * g.kw + t) * p..][..p];
                let dst = &mut acc[(c * hp + i * dh) * wp + j * dw..][..span];
                row.iter().zip(idx.iter()).for_each(|(&s, &o)| dst[o as usize] += s);
            }
        }
    }
    for c in (0..g.c).filter(|_| sw == 1) {
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &cols[((c * g.kh + i) * g.kw + j) * p..][..p];
                for (y, seg) in row.chunks(ow).enumerate() {
                    let dst = &mut acc[(c * hp + y * sh + i * dh) * wp + j * dw..][..ow];
                    dst.iter_mut().zip(seg).for_each(|(d, &s)| *d += s);
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

/// The offset of every output pixel's tap from the tap's first pixel in a padded plane
/// (`y·sh·wp + x·sw` for pixel `y·ow + x`), and one past the largest. Callers compute it
/// once per call, not per image: a per-image table (an allocation that grew by
/// reallocation) contended for the allocator's lock across threads and made the conv
/// autoencoder's 1 → 16 input gradient slower on two threads than on one.
pub(super) fn tap_offsets(g: &ConvGeom) -> (Vec<u32>, usize) {
    let (wp, [sh, sw]) = (g.padded_hw()[1], g.stride);
    let mut idx = Vec::with_capacity(g.oh * g.ow);
    for y in 0..g.oh {
        idx.extend((0..g.ow).map(|x| (y * sh * wp + x * sw) as u32));
    }
    let span = idx.last().map_or(0, |&o| o as usize + 1);
    (idx, span)
}

/// The caller's [`tap_offsets`], or the table built here when it has none.
fn tap_table<'a>(g: &ConvGeom, offsets: Option<(&'a [u32], usize)>) -> (Cow<'a, [u32]>, usize) {
    match offsets {
        Some((idx, span)) => (Cow::Borrowed(idx), span),
        None => {
            let (idx, span) = tap_offsets(g);
            (Cow::Owned(idx), span)
        }
    }
}

/// Multiply-adds per tile of images that [`per_image`] hands to a thread: tens of
/// microseconds, so two threads balance and a tile costs far more than claiming it.
const TILE_MACS: usize = 1 << 18;

/// Run `f(image, its output slice, scratch)` for each image, in parallel over images when
/// the geometry asks for it; each tile of images reuses one scratch buffer of `scratch`
/// elements (zero when first taken).
///
/// Tiles go to [`par::run_tiles`]: the calling thread starts at once and a helper joins
/// when awake. Rayon's `par_chunks_mut` from a thread outside the pool instead parked the
/// caller until two woken workers had finished (the conv autoencoder's 1 → 16 layer, 0.2
/// ms of work, ran no faster on two threads than on one).
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
    if !g.split_images() {
        let mut buf = vec![T::ZERO; scratch];
        out.chunks_mut(per).enumerate().for_each(|(i, o)| f(i, o, &mut buf));
        return;
    }
    let size = TILE_MACS.div_ceil((g.flops() / g.n).max(1)).clamp(1, g.n);
    let bufs = Pool::new(scratch);
    let base = par::Disjoint::new(&mut out[..g.n * per]);
    par::run_tiles(g.n.div_ceil(size), rayon::current_num_threads(), &|t| {
        let mut buf = bufs.take();
        for n in t * size..((t + 1) * size).min(g.n) {
            // SAFETY: image n's output lies inside `out`, and only this tile writes it.
            f(n, unsafe { base.range(n * per, per) }, &mut buf);
        }
        bufs.put(buf);
    });
}

/// Buffers of one length handed from task to task, so each thread reuses its own.
pub(super) struct Pool<T>(Mutex<Vec<Vec<T>>>, usize);

impl<T: Element> Pool<T> {
    /// A pool of zero-filled buffers of `len` elements.
    pub(super) fn new(len: usize) -> Self {
        Pool(Mutex::new(Vec::new()), len)
    }

    /// A free buffer, or a new one.
    pub(super) fn take(&self) -> Vec<T> {
        let free = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        free.unwrap_or_else(|| vec![T::ZERO; self.1])
    }

    /// Hand `buf` back for the next task.
    pub(super) fn put(&self, buf: Vec<T>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(buf);
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
    let out = par::Disjoint::new(&mut dst[..rows * cols]);
    par::run_tiles(rows.div_ceil(B), threads, &|t| {
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

/// `s` as f32 elements, when `T` is f32 (for the f32-only vector kernels).
pub(super) fn f32s<T: Element>(s: &[T]) -> Option<&[f32]> {
    // SAFETY: T is f32 (checked), so the cast only renames the type.
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        .then(|| unsafe { &*(s as *const [T] as *const [f32]) })
}

/// `s` as mutable f32 elements, when `T` is f32 (for the f32-only vector kernels).
pub(super) fn f32s_mut<T: Element>(s: &mut [T]) -> Option<&mut [f32]> {
    if std::any::TypeId::of::<T>() != std::any::TypeId::of::<f32>() {
        return None;
    }
    // SAFETY: as in `f32s`.
    Some(unsafe { &mut *(s as *mut [T] as *mut [f32]) })
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

    #[test]
    fn im2col_and_col2im_match_the_definition_at_every_stride() {
        // Short strided rows (the offset table), long ones (row by row), stride 1, dilation,
        // asymmetric padding and strides, no padding.
        let geom = |hw: [usize; 2], k: [usize; 2], s: [usize; 2], pad: [usize; 2], d: [usize; 2]| {
            ConvGeom::new([1, 3, hw[0], hw[1]], [2, k[0], k[1]], s, pad, d, 1)
        };
        for g in [
            geom([14, 14], [3, 3], [2, 2], [1, 1], [1, 1]),
            geom([28, 28], [4, 4], [2, 2], [1, 1], [1, 1]),
            geom([9, 11], [3, 2], [3, 2], [2, 0], [2, 1]),
            geom([7, 30], [2, 3], [1, 3], [0, 1], [1, 2]),
            geom([6, 6], [3, 3], [1, 1], [1, 1], [1, 1]),
        ] {
            let ([hp, wp], p) = (g.padded_hw(), g.p());
            let x: Vec<f64> = (0..g.c * g.h * g.w).map(|i| (i as f64 * 0.37).sin()).collect();
            let mut buf = vec![0.0; g.pad_len()];
            let mut cols = vec![f64::NAN; g.k() * p];
            im2col(&g, padded(&g, &x, &mut buf), &mut cols);
            // `tap(c, i, j, q)`: the padded-plane pixel that output pixel q's tap reads.
            let tap = |c: usize, i: usize, j: usize, q: usize| {
                let (y, xx) = (q / g.ow, q % g.ow);
                let (r, col) = (
                    y * g.stride[0] + i * g.dilation[0],
                    xx * g.stride[1] + j * g.dilation[1],
                );
                let inside =
                    r >= g.padding[0] && r - g.padding[0] < g.h && col >= g.padding[1] && col - g.padding[1] < g.w;
                inside.then(|| (c * g.h + r - g.padding[0]) * g.w + col - g.padding[1])
            };
            let mut dx_want = vec![0.0; x.len()];
            for c in 0..g.c {
                for i in 0..g.kh {
                    for j in 0..g.kw {
                        for q in 0..p {
                            let row = (c * g.kh + i) * g.kw + j;
                            let want = tap(c, i, j, q).map_or(0.0, |at| x[at]);
                            assert_eq!(cols[row * p + q], want, "{g:?} im2col at ({row}, {q})");
                            if let Some(at) = tap(c, i, j, q) {
                                dx_want[at] += cols[row * p + q] * 2.0 + 1.0;
                            }
                        }
                    }
                }
            }
            let back: Vec<f64> = cols.iter().map(|v| v * 2.0 + 1.0).collect();
            let mut dx = vec![f64::NAN; x.len()];
            let mut buf = vec![f64::NAN; g.c * hp * wp];
            col2im(&g, &back, &mut buf, &mut dx, None);
            for (i, (a, b)) in dx.iter().zip(&dx_want).enumerate() {
                assert!((a - b).abs() < 1e-12, "{g:?} col2im at {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn output_sizes_follow_pytorch() {
        // Pooling: no dilation.
        let ps = |size, kernel, stride, pad, ceil| out_size(size, kernel, stride, pad, 1, ceil);
        assert_eq!(ps(8, 2, 2, 0, false), Some(4));
        assert_eq!(ps(13, 3, 2, 0, false), Some(6));
        assert_eq!(ps(10, 3, 2, 1, true), Some(6)); // 5.5 rounds up
        assert_eq!(ps(5, 2, 2, 0, true), Some(3)); // window 2 starts at 4 < 5
                                                   // ceil would add a window starting at 6 = size + pad: dropped
        assert_eq!(ps(5, 2, 3, 1, true), Some(2));
        assert_eq!(ps(1, 3, 1, 0, false), None);
    }

    #[test]
    fn dilated_output_size_follows_pytorch() {
        // torch.nn.Conv2d(1, 1, 3, stride=2, padding=1, dilation=2) on 10 pixels gives 4
        assert_eq!(out_size(10, 3, 2, 1, 2, false), Some(4));
        assert_eq!(out_size(4, 3, 1, 0, 2, false), None);
    }
}
