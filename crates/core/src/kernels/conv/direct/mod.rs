//! Direct f32 convolutions for small stride-1 layers (LeNet-5's), without im2col or GEMM:
//! at such sizes `gemm` spends as long packing its operands and the column copies move
//! rows of a few dozen floats each, while the arithmetic itself is tiny.
//!
//! Each instruction set with kernels (`avx512`, `avx2`; see [`Level`]) has the same three
//! families with the same layouts, driven by the shared `drive`; the level is read once
//! per call from [`crate::cpu::isa`]. The kernel families, chosen by the shapes
//! (described here for AVX-512; the AVX2 ones use two 8-lane vectors where these use one):
//! - [`rows`](avx512::rows): vectors along output rows, all output channels of a
//!   few rows per tile: few output channels (≤ 8) and rows of ≤ 32 pixels.
//! - [`chans`](avx512::chans): vectors along 16 output channels: layers with 16·m
//!   output channels and small images.
//!
//! The input gradient takes [`fold`](avx512::fold): columns `wᵀ·dy` per input
//! channel along the flattened pixels, folded into the image at once.
//!
//! Each entry point returns `false` (doing nothing) when its shapes, the element type or
//! the CPU do not suit it; the caller then takes the general path. Images are split over
//! threads in chunks fixed by the shapes; the weight gradient sums per-part partials over a
//! batch split fixed by the shapes too, so results do not depend on the thread count.

// Elsewhere the kernels do not exist and every entry point declines.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_variables))]

use super::geom::{f32s, f32s_mut, ConvGeom};
use crate::cpu::Isa;
use crate::Element;

/// Lanes of one AVX-512 vector: also the channel block of `chans`, the partial-sum width of
/// `rows::weight` and the slack after padded images, at every level.
const L: usize = 16;

/// A stride-1 correlation of an image `[ci, hp, wp]`, zero-padded by `pad` on each side,
/// with `kh × kw` taps, giving `[co, oh, ow]` (`oh = hp − kh + 1`, `ow = wp − kw + 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Corr {
    /// Input channels.
    pub ci: usize,
    /// Padded input height.
    pub hp: usize,
    /// Padded input width.
    pub wp: usize,
    /// Output channels.
    pub co: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Zeros around the image (rows, columns).
    pub pad: [usize; 2],
}

impl Corr {
    /// The convolution `g` itself (stride 1, no dilation).
    pub(super) fn forward(g: &ConvGeom) -> Corr {
        let [ph, pw] = g.padding;
        Corr {
            ci: g.c,
            hp: g.h + 2 * ph,
            wp: g.w + 2 * pw,
            co: g.o,
            oh: g.oh,
            ow: g.ow,
            kh: g.kh,
            kw: g.kw,
            pad: g.padding,
        }
    }

    /// Rows of the padded image that are not padding.
    pub(super) fn live(&self) -> [usize; 2] {
        [self.pad[0], self.hp - self.pad[0]]
    }

    /// Elements of a padded image buffer, with slack for full-vector reads past a row.
    pub(super) fn padded_len(&self) -> usize {
        self.ci * self.hp * self.wp + L
    }

    /// Tap rows `i` for which one of the output rows `y0..y0+r` reads a non-padding row.
    pub(super) fn live_taps(&self, y0: usize, r: usize) -> std::ops::Range<usize> {
        let [a, b] = self.live();
        let lo = a.saturating_sub(y0 + r - 1);
        let hi = self.kh.min(b.saturating_sub(y0));
        lo..hi.max(lo)
    }

    /// `dst` = the image `src` (`[ci, hp − 2·pad, wp − 2·pad]`) with its zero border.
    pub(super) fn pad_into(&self, src: &[f32], dst: &mut [f32]) {
        let (h, w) = (self.hp - 2 * self.pad[0], self.wp - 2 * self.pad[1]);
        dst.fill(0.0);
        for (c, plane) in src.chunks(h * w).take(self.ci).enumerate() {
            for (r, row) in plane.chunks(w).enumerate() {
                let at = (c * self.hp + r + self.pad[0]) * self.wp + self.pad[1];
                dst[at..at + w].copy_from_slice(row);
            }
        }
    }
}

/// Multiply-adds above which the images are split over threads.
const PAR_MACS: usize = 1 << 20;

/// Multiply-adds per chunk of images handed to a thread (tens of microseconds).
const CHUNK_MACS: usize = 1 << 18;

/// Images per chunk handed to a thread (fixed by the shapes).
fn chunk_images(g: &ConvGeom) -> usize {
    let per_image = (g.flops() / g.n.max(1)).max(1);
    CHUNK_MACS.div_ceil(per_image).clamp(1, g.n.max(1))
}

/// Threads to run `g` on: one for small layers.
fn threads(g: &ConvGeom) -> usize {
    crate::kernels::par::threads_for(g.flops(), PAR_MACS)
}

/// Stride 1, no dilation, one group, nothing empty.
fn plain(g: &ConvGeom) -> bool {
    g.groups == 1 && g.stride == [1, 1] && g.dilation == [1, 1] && g.n > 0 && g.c > 0 && g.o > 0 && g.oh > 0 && g.ow > 0
}

/// The instruction sets the direct kernels exist for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// `avx2`: AVX2 + FMA, 8 lanes.
    Avx2,
    /// `avx512`: AVX-512F, 16 lanes.
    Avx512,
}

/// The kernel set for the level kernels use on this thread ([`crate::cpu::isa`]), if the
/// direct kernels exist for it. Read once per call, on the calling thread, and passed down
/// (the drivers' helper threads do not see a test's `cpu::with_isa`).
fn level() -> Option<Level> {
    match crate::cpu::isa() {
        Isa::Avx512 => Some(Level::Avx512),
        Isa::Avx2 => Some(Level::Avx2),
        Isa::Scalar | Isa::Neon => None,
    }
}

/// `drive::$f::<K>(args)` with `K` the kernel set of `$level`.
macro_rules! drive {
    ($level:expr, $f:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        match $level {
            Level::Avx512 => drive::$f::<avx512::Avx512>($($arg),*),
            Level::Avx2 => drive::$f::<avx2::Avx2>($($arg),*),
        }
    }};
}

/// Which kernels a forward pass takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    /// [`rows`](avx512::rows): few output channels, short rows.
    Rows,
    /// [`chans`](avx512::chans): 16·m output channels, small images.
    Chans,
}

/// The kernels for the forward pass and weight gradient of `g` at `level`, if any suits it.
fn route(g: &ConvGeom, level: Option<Level>) -> Option<Route> {
    if level.is_none() || !plain(g) {
        return None;
    }
    // Both families re-read one image's padded input for every tile: it must sit in L1
    // (measured: a 1×1 64→128 layer on 32×32 images ran 2.3× slower than `gemm`).
    let [hp, wp] = [g.h + 2 * g.padding[0], g.w + 2 * g.padding[1]];
    if g.c * hp * wp > IMAGE_FLOATS {
        return None;
    }
    // Chans also keeps the weights of a 16-channel block ([k, 16]) in L1.
    if g.o.is_multiple_of(L) && g.c * g.kh * g.kw <= 512 {
        Some(Route::Chans)
    } else if g.o <= 8 && g.ow <= 2 * L {
        Some(Route::Rows)
    } else {
        None
    }
}

/// Largest padded input image (f32 elements) the direct forward kernels take: 32 KiB.
const IMAGE_FLOATS: usize = 8192;

/// `buf` resized to `len` elements.
fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.resize(len, 0.0);
    &mut buf[..len]
}

/// [`conv2d_forward`](super::conv2d_forward) by a direct kernel; false if none suits.
pub(super) fn forward<T: Element>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) -> bool {
    let level = level();
    let (Some(level), Some(route), Some(x), Some(w), Some(out)) =
        (level, route(g, level), f32s(x), f32s(w), f32s_mut(out))
    else {
        return false;
    };
    let bias = bias.map(|b| f32s(b).expect("bias has the input's type"));
    drive!(level, forward(g, route, x, w, bias, out));
    true
}

/// [`conv2d_backward_input`](super::conv2d_backward_input) by columns folded at
/// once (see [`fold`](avx512::fold)); false if that does not suit.
pub(super) fn backward_input<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) -> bool {
    let level = level();
    let fits = level.is_some() && plain(g) && g.h > 0 && g.w > 0 && fold_fits(g);
    let (true, Some(level), Some(dy), Some(w), Some(dx)) = (fits, level, f32s(dy), f32s(w), f32s_mut(dx)) else {
        return false;
    };
    let bias = bias.map(|b| f32s(b).expect("bias has the input's type"));
    drive!(level, backward_input(g, dy, w, bias, dx));
    true
}

/// [`conv2d_backward_weight`](super::conv2d_backward_weight) by a direct kernel;
/// false if none suits.
pub(super) fn backward_weight<T: Element>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) -> bool {
    let level = level();
    let route = match route(g, level) {
        Some(Route::Chans) if !chans_weight_fits(g.kh, g.kw) => None,
        Some(Route::Rows) if g.ow > 2 * L => None,
        r => r,
    };
    let (Some(level), Some(route), Some(x), Some(dy), Some(dw)) = (level, route, f32s(x), f32s(dy), f32s_mut(dw))
    else {
        return false;
    };
    drive!(level, backward_weight(g, route, x, dy, dw));
    true
}

/// Parts of the batch whose weight-gradient partials are summed in order (fixed by the
/// shapes alone, so the result does not depend on the thread count).
fn weight_parts(g: &ConvGeom) -> usize {
    if g.flops() >= PAR_MACS {
        g.n.min(8)
    } else {
        1
    }
}

/// Whether the `chans` weight-gradient kernels take a `kh × kw` kernel (every set has 5×5
/// and 3×3).
fn chans_weight_fits(kh: usize, kw: usize) -> bool {
    matches!((kh, kw), (5, 5) | (3, 3))
}

#[cfg(target_arch = "x86_64")]
use avx512::fold::{fits as fold_fits, scratch_len as fold_scratch_len};
#[cfg(not(target_arch = "x86_64"))]
fn fold_fits(_: &ConvGeom) -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod drive;

// On every architecture: where the kernels do not exist the entry points must decline,
// and the x86 levels are reported skipped.
#[cfg(test)]
mod tests {
    use super::super::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward};
    use super::*;

    fn geom(n: usize, c: usize, [h, w]: [usize; 2], o: usize, [kh, kw]: [usize; 2], padding: [usize; 2]) -> ConvGeom {
        ConvGeom::new([n, c, h, w], [o, kh, kw], [1, 1], padding, [1, 1], 1)
    }

    fn seq(len: usize, seed: f64) -> Vec<f64> {
        (0..len)
            .map(|i| ((i as f64 * 0.37 + seed).sin() * 3.0).round() / 2.0)
            .collect()
    }

    fn f32v(v: &[f64]) -> Vec<f32> {
        v.iter().map(|&x| x as f32).collect()
    }

    /// f32 results (from the direct kernels) against the general f64 path.
    fn close(what: &str, g: &ConvGeom, got: &[f32], want: &[f64]) {
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let level = crate::cpu::isa();
        for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a as f64 - b).abs() <= 1e-5 * scale,
                "{what} {g:?} ({level}) at {i}: {a} vs {b}"
            );
        }
        assert_eq!(got.len(), want.len());
    }

    /// The levels the direct kernels have: each one this CPU runs is tested, each other
    /// one is reported skipped.
    const LEVELS: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// `f(level)` under `cpu::with_isa(level)` for every level this CPU runs; a skip line
    /// for the others.
    fn each_level(what: &str, f: impl Fn(Isa)) {
        for level in LEVELS {
            if crate::cpu::supported().contains(&level) {
                crate::cpu::with_isa(level, || f(level));
            } else {
                println!("skipped: {what} at {level}, this CPU is {}", crate::cpu::detected());
            }
        }
    }

    /// Whether the direct kernels exist for `level`.
    fn has_kernels(level: Isa) -> bool {
        matches!(level, Isa::Avx2 | Isa::Avx512)
    }

    /// [`check_at`] at every level.
    fn check(g: ConvGeom, direct: [bool; 3]) {
        each_level("direct kernels", |level| {
            let expect = direct.map(|d| d && has_kernels(level));
            check_at(g, expect, level)
        });
    }

    /// The entry points take the direct kernels where `direct` says (at `level`, which
    /// the caller set) and agree with the general f64 path.
    fn check_at(g: ConvGeom, direct: [bool; 3], level: Isa) {
        let (x, w, b) = (seq(g.n * g.c * g.h * g.w, 0.1), seq(g.o * g.k(), 1.3), seq(g.o, 0.7));
        let (dy, bc) = (seq(g.n * g.o * g.p(), 2.7), seq(g.c, 0.2));
        let mut y = vec![0.0; dy.len()];
        conv2d_forward(&g, &x, &w, Some(&b), &mut y);
        let mut y32 = vec![0f32; dy.len()];
        assert_eq!(
            forward(&g, &f32v(&x), &f32v(&w), Some(&f32v(&b)), &mut y32),
            direct[0],
            "{g:?} at {level}"
        );
        conv2d_forward(&g, &f32v(&x), &f32v(&w), Some(&f32v(&b)), &mut y32);
        close("forward", &g, &y32, &y);
        let mut dx = vec![0.0; x.len()];
        conv2d_backward_input(&g, &dy, &w, Some(&bc), &mut dx);
        let mut dx32 = vec![0f32; x.len()];
        let taken = backward_input(&g, &f32v(&dy), &f32v(&w), Some(&f32v(&bc)), &mut dx32);
        assert_eq!(taken, direct[1], "{g:?} at {level}");
        conv2d_backward_input(&g, &f32v(&dy), &f32v(&w), Some(&f32v(&bc)), &mut dx32);
        close("input gradient", &g, &dx32, &dx);
        let mut dw = vec![0.0; w.len()];
        conv2d_backward_weight(&g, &x, &dy, &mut dw);
        let mut dw32 = vec![0f32; w.len()];
        assert_eq!(
            backward_weight(&g, &f32v(&x), &f32v(&dy), &mut dw32),
            direct[2],
            "{g:?} at {level}"
        );
        conv2d_backward_weight(&g, &f32v(&x), &f32v(&dy), &mut dw32);
        close("weight gradient", &g, &dw32, &dw);
    }

    #[test]
    fn direct_kernels_match_the_general_path() {
        // LeNet-5's layers
        check(geom(3, 1, [28, 28], 6, [5, 5], [2, 2]), [true; 3]);
        check(geom(3, 6, [14, 14], 16, [5, 5], [0, 0]), [true; 3]);
        // two channel blocks with padding, an odd row count, rows of 11
        check(geom(2, 3, [13, 11], 32, [3, 3], [1, 1]), [true; 3]);
        // rows of 26 in overlapping runs of 9
        check(geom(1, 2, [30, 30], 16, [5, 5], [0, 0]), [true; 3]);
        // 7 channels in rows of two vectors, a 3×2 kernel (too narrow for the folded input
        // gradient), uneven padding
        check(geom(2, 2, [9, 20], 7, [3, 2], [1, 0]), [true, false, true]);
        // padding k − 1 (a full correlation), more input channels than the tile
        check(geom(2, 9, [4, 4], 3, [4, 4], [3, 3]), [true; 3]);
        // a 1×1 output; a 1×1 kernel (no direct weight gradient)
        check(geom(2, 4, [5, 5], 16, [5, 5], [0, 0]), [true; 3]);
        check(geom(2, 4, [6, 5], 16, [1, 1], [0, 0]), [true, false, false]);
        // too wide for the rows kernels: the general path, but folded columns (rows of
        // three vectors) for the input gradient; a 7-wide kernel (two tap blocks)
        check(geom(1, 1, [8, 40], 4, [3, 3], [1, 1]), [false, true, false]);
        check(geom(2, 3, [9, 12], 5, [3, 7], [2, 3]), [true; 3]);
        // an input image too big for L1: the general path but for the input gradient
        check(geom(1, 48, [14, 14], 16, [5, 5], [0, 0]), [false, true, false]);
        // many channels and few pixels (a deep layer at 4×4): im2col for every pass
        check(geom(2, 64, [4, 4], 64, [3, 3], [1, 1]), [false; 3]);
    }

    #[test]
    fn row_and_channel_tails_at_every_level() {
        // rows: widths around the 8- and 16-lane vectors, 1 to 8 channels
        check(geom(2, 1, [8, 8], 1, [3, 3], [1, 1]), [true; 3]);
        check(geom(1, 2, [9, 9], 8, [3, 3], [1, 1]), [true; 3]);
        check(geom(1, 3, [17, 17], 5, [3, 3], [1, 1]), [true; 3]);
        check(geom(1, 2, [24, 26], 2, [3, 3], [0, 0]), [true; 3]);
        check(geom(1, 1, [25, 32], 3, [3, 3], [1, 1]), [true; 3]);
        check(geom(1, 2, [6, 15], 4, [1, 4], [0, 1]), [true; 3]);
        // chans: runs of 5 and of 5 with an overlap, rows shorter than a tile's height
        check(geom(2, 3, [7, 7], 16, [3, 3], [0, 0]), [true; 3]);
        check(geom(1, 2, [15, 15], 16, [5, 5], [1, 1]), [true; 3]);
        check(geom(1, 1, [3, 9], 16, [3, 3], [0, 0]), [true; 3]);
        check(geom(1, 2, [4, 4], 16, [3, 3], [0, 0]), [true; 3]);
    }

    #[test]
    fn lenet_batches_split_over_threads_and_parts() {
        // batch 64: images in chunks over the threads, weight partials over 8 parts
        check(geom(64, 1, [28, 28], 6, [5, 5], [2, 2]), [true; 3]);
        check(geom(64, 6, [14, 14], 16, [5, 5], [0, 0]), [true; 3]);
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        each_level("thread-count independence", same_for_any_thread_count);
    }

    /// Results at `level` (read here and passed to the pools' threads) are the same on one
    /// thread and on three.
    fn same_for_any_thread_count(level: Isa) {
        for g in [
            geom(64, 1, [28, 28], 6, [5, 5], [2, 2]),
            geom(64, 6, [14, 14], 16, [5, 5], [0, 0]),
        ] {
            let (x, w, dy) = (
                f32v(&seq(g.n * g.c * g.h * g.w, 0.3)),
                f32v(&seq(g.o * g.k(), 0.9)),
                f32v(&seq(g.n * g.o * g.p(), 1.9)),
            );
            let run = || {
                crate::cpu::with_isa(level, || {
                    let (mut y, mut dx, mut dw) = (vec![0f32; dy.len()], vec![0f32; x.len()], vec![0f32; w.len()]);
                    conv2d_forward(&g, &x, &w, None, &mut y);
                    conv2d_backward_input(&g, &dy, &w, None, &mut dx);
                    conv2d_backward_weight(&g, &x, &dy, &mut dw);
                    (y, dx, dw)
                })
            };
            let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
            let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
            assert!(one.install(run) == three.install(run), "{g:?} at {level}");
        }
    }
}
