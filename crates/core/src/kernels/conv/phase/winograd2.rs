//! Stride-1 2×2 convolutions by Winograd's F(4×4, 2×2) or F(7×7, 2×2): each 5×5 (8×8)
//! input tile gives a 4×4 (7×7) output tile from 25 (64) products per channel pair instead
//! of 64 (196), as batched products `M[ξ] = V[ξ] · U[ξ]` (`V[ξ]`: `[tiles, c]` transformed
//! input, `U[ξ]`: `[c, o]` transformed weights). The stride-2 4×4 layers reach it through
//! their phase images. F(7×7) covers DCGAN's 7×7 maps with one tile, where F(4×4) takes four
//! (64 products against 100); [`use_f7`] picks it wherever it needs fewer products.
//!
//! The transform sets are in [`super::sets`], the fractions moved into the weight transform
//! so the input transform `Bᵀ d B` has small entries. The input reaches it channel-last (the
//! caller's `load` writes each image so), so the transforms run over
//! [`LANES`](super::sets::LANES) channels at a time. A call runs in three passes over the threads (see
//! [`super::passes`]): the input transforms a few images per unit, the products one `ξ` (or half
//! of one) per unit, each making its `U[ξ]` from the gathered taps first, the output
//! transforms a few images per unit; each value is computed the same way whatever the
//! thread count. Each image's outputs are staged channel-last, then written out by a
//! [`Sink`]: to the plain output maps, or into the phases of a transposed convolution's
//! output. Buffers (taps, transformed tiles, products) are kept from call to call in
//! [`super::scratch`].

use super::super::geom::ConvGeom;
use super::passes::{stage_stride, staged, Ctx};
use super::scratch::{self, Buf, Scratch};
use super::sets::{use_f7, Formulas, F4, F7};
use crate::kernels::matmul::PAR_FLOPS;
use crate::kernels::par::{for_each_chunk_on, threads_for, Disjoint};
use crate::Element;

/// Bytes of transformed tiles and products per chunk of images in the staged passes.
const STAGED_BYTES: usize = 24 << 20;

/// Where the stride-1 outputs go.
pub(crate) trait Sink<T>: Sync {
    /// Elements of one image's output.
    fn image_len(&self) -> usize;
    /// One image's outputs of channels `o_lo..o_lo + on`: `stage[(yy · ow + xx) · sp + o]`
    /// being channel `o_lo + o` at stride-1 output position `(yy, xx)` (`oh × ow`, bias not
    /// yet added), each with its bias to `put(offset in the image's output, value)`; the
    /// offsets of distinct channels and positions are distinct.
    fn flush(&self, stage: &[T], sp: usize, on: usize, o_lo: usize, put: &mut impl FnMut(usize, T));
}

/// The plain output maps `[n, o, oh, ow]`, with an optional bias per map.
pub(crate) struct Maps<'a, T> {
    /// Output pixels per map.
    pub p: usize,
    /// Bias per map.
    pub bias: Option<&'a [T]>,
    /// Maps per image.
    pub o: usize,
}

impl<T: Element> Sink<T> for Maps<'_, T> {
    fn image_len(&self) -> usize {
        self.o * self.p
    }
    /// Map by map, each written in order.
    #[inline(always)]
    fn flush(&self, stage: &[T], sp: usize, on: usize, o_lo: usize, put: &mut impl FnMut(usize, T)) {
        for o in 0..on {
            let b = self.bias.map_or(T::ZERO, |b| b[o_lo + o]);
            let at = (o_lo + o) * self.p;
            for (k, px) in stage.chunks_exact(sp).enumerate() {
                put(at + k, px[o] + b);
            }
        }
    }
}

/// The taps `w[o][c][j][l]` (given by `tap(o, c, 2j + l)`) in rows `[c][4][o]`, in a
/// [`scratch`] buffer, gathered on every thread (serial, the gather and the caller's
/// rearranging of `w` before it left the second core idle for about 3 ms of a DCGAN
/// training step). Each product task makes its `U[ξ]` from them (see [`weight_slab`]).
fn taps<T: Element, W>(g: &ConvGeom, tap: &W, threads: usize) -> Buf<T>
where
    W: Fn(usize, usize, usize) -> T + Sync,
{
    let o = g.o;
    let mut taps = scratch::take(4 * o * g.c);
    for_each_chunk_on(threads, &mut taps, 4 * o, &|ci, rows| {
        for (j, row) in rows.chunks_exact_mut(o).enumerate() {
            for (oi, d) in row.iter_mut().enumerate() {
                *d = tap(oi, ci, j);
            }
        }
    });
    taps
}

/// `U[ξ][c][o] = (G w[o][c] Gᵀ)[ξ]` into `ux` (`[c, o]`, `ξ = A·a + b` takes `G[a][j] ·
/// G[b][l]` of tap `(j, l)`), from the rows of [`taps`]: four contiguous scaled rows added
/// per input channel. Made by the product task that reads it, so it stays in that core's
/// cache; all of `U` made first (8 MB at DCGAN's 64 → 128 forward) went out to memory and
/// back (it and the tap gather took about 4.5% of a training step's CPU time). Compiled
/// for the baseline: at the AVX-512 level it took as long (its loads and stores bound it).
pub(super) fn weight_slab<T: Element, const M: usize, const A: usize, P: Formulas<M, A>>(
    taps: &[T],
    o: usize,
    xi: usize,
    ux: &mut [T],
) {
    let (ga, gb) = (P::G[xi / A], P::G[xi % A]);
    let f = [ga[0] * gb[0], ga[0] * gb[1], ga[1] * gb[0], ga[1] * gb[1]].map(T::from_f64);
    for (d, t) in ux.chunks_exact_mut(o).zip(taps.chunks_exact(4 * o)) {
        let (t0, rest) = t.split_at(o);
        let (t1, rest) = rest.split_at(o);
        let (t2, t3) = rest.split_at(o);
        for ((((d, &a), &b), &c), &e) in d.iter_mut().zip(t0).zip(t1).zip(t2).zip(t3) {
            *d = f[0] * a + f[1] * b + f[2] * c + f[3] * e;
        }
    }
}

/// Image `x` (`[c, h, w]`) channel-last with its padding and the tiles' overhang written
/// out as zeros: `[hp, wp, c]`.
#[cfg(test)]
fn channel_last<T: Element>(g: &ConvGeom, x: &[T], hp: usize, wp: usize, dst: &mut [T]) {
    let [ph, pw] = g.padding;
    dst[..hp * wp * g.c].fill(T::ZERO);
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..][..g.h * g.w];
        for (y, row) in plane.chunks(g.w).enumerate() {
            let out = &mut dst[((y + ph) * wp + pw) * g.c + c..];
            for (xx, &v) in row.iter().enumerate() {
                out[xx * g.c] = v;
            }
        }
    }
}

/// [`conv2d_forward`](super::super::conv2d_forward) for a stride-1, undilated, ungrouped
/// 2×2 convolution.
#[cfg(test)]
pub(crate) fn forward<T: Element>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let img = g.c * g.h * g.w;
    forward_with(
        g,
        &|i, hp, wp, dst| channel_last(g, &x[i * img..][..img], hp, wp, dst),
        &|o, c, j| w[(o * g.c + c) * 4 + j],
        bias,
        out,
    )
}

/// As [`forward`], the input given by `load(image, hp, wp, dst)`, which writes that image
/// channel-last with its padding (`[hp, wp, c]`, zeros outside the image) into `dst`, and
/// the weights by `tap(o, c, 2j + l) = w[o][c][j][l]`.
pub(crate) fn forward_with<T: Element, L, W>(g: &ConvGeom, load: &L, tap: &W, bias: Option<&[T]>, out: &mut [T])
where
    L: Fn(usize, usize, usize, &mut [T]) + Sync,
    W: Fn(usize, usize, usize) -> T + Sync,
{
    let sink = Maps { p: g.p(), bias, o: g.o };
    run(g, load, tap, &sink, out)
}

/// The stride-1 2×2 convolution of `g` (weights `[o, c, 2, 2]` given by `tap` as for
/// [`forward_with`]), the input given by `load` as for [`forward_with`], each image's
/// outputs written by [`Sink::flush`] to its `sink.image_len()` elements of `out`. By
/// F(7×7, 2×2) where it needs fewer products than F(4×4, 2×2) (see [`use_f7`]).
pub(crate) fn run<T: Element, L, W, S>(g: &ConvGeom, load: &L, tap: &W, sink: &S, out: &mut [T])
where
    L: Fn(usize, usize, usize, &mut [T]) + Sync,
    W: Fn(usize, usize, usize) -> T + Sync,
    S: Sink<T>,
{
    if use_f7(g.oh, g.ow) {
        run_set::<T, L, W, S, 7, 8, F7>(g, false, load, tap, sink, out, STAGED_BYTES)
    } else {
        run_set::<T, L, W, S, 4, 5, F4>(g, false, load, tap, sink, out, STAGED_BYTES)
    }
}

/// [`run`] by F(4×4, 2×2) whatever the size: for the input gradient's phases, where
/// F(7×7) over their 8×8 union ran no faster (DCGAN's 128 → 64 transposed layer, one
/// thread, CPU time: 13.7–14.1 ms either way) and F(4×4)'s f32 error is a third of
/// F(7×7)'s. (Each phase cropped to its 7×7 pixels by F(7×7), four windows of `dy`
/// transformed per image, ran 17% slower than this; DCGAN's layer takes [`run_adjoint`].)
pub(crate) fn run_f4<T: Element, L, W, S>(g: &ConvGeom, load: &L, tap: &W, sink: &S, out: &mut [T])
where
    L: Fn(usize, usize, usize, &mut [T]) + Sync,
    W: Fn(usize, usize, usize) -> T + Sync,
    S: Sink<T>,
{
    run_set::<T, L, W, S, 4, 5, F4>(g, false, load, tap, sink, out, STAGED_BYTES)
}

/// The adjoint of [`run`] by F(7×7, 2×2): for `g` with input `[n, c, h, w]` (`h, w ≤ 7`),
/// padding 1 and output `[n, o, h + 1, w + 1]`, `out = Σ_c (corr_c)ᵀ`, the transposed
/// stride-1 2×2 convolution, as `B [U ⊙ (A e Aᵀ)] Bᵀ` per `e` (the image, zeros past it,
/// one 7×7 tile) with the forward's `U`. `load` writes an image channel-last, `[7, 7, c]`;
/// `tap(oi, ci, j)` is the forward's tap `j` from `oi` to `ci`. The input gradient of
/// DCGAN's 64 → 128 layer: 64 products per image where F(4×4) over the phases of `dx` took
/// 100 (the forward's tiles, read backwards).
pub(crate) fn run_adjoint<T: Element, L, W, S>(g: &ConvGeom, load: &L, tap: &W, sink: &S, out: &mut [T])
where
    L: Fn(usize, usize, usize, &mut [T]) + Sync,
    W: Fn(usize, usize, usize) -> T + Sync,
    S: Sink<T>,
{
    assert!(g.h <= 7 && g.w <= 7 && g.padding == [1, 1] && g.oh == g.h + 1 && g.ow == g.w + 1);
    run_set::<T, L, W, S, 7, 8, F7>(g, true, load, tap, sink, out, STAGED_BYTES)
}

/// [`run`] by the transform set `P`: F(M×M, 2×2), `A = M + 1`, images in chunks of at most
/// `budget` bytes of transformed tiles and products (at least one image).
#[allow(clippy::too_many_arguments)]
fn run_set<T: Element, L, W, S, const M: usize, const A: usize, P: Formulas<M, A>>(
    g: &ConvGeom,
    adjoint: bool,
    load: &L,
    tap: &W,
    sink: &S,
    out: &mut [T],
    budget: usize,
) where
    L: Fn(usize, usize, usize, &mut [T]) + Sync,
    W: Fn(usize, usize, usize) -> T + Sync,
    S: Sink<T>,
{
    // The adjoint's tiles are M × M of the input, the forward's M × M of the output.
    let (th, tw) = if adjoint {
        (g.h.div_ceil(M), g.w.div_ceil(M))
    } else {
        (g.oh.div_ceil(M), g.ow.div_ceil(M))
    };
    let (hp, wp) = if adjoint {
        (M * th, M * tw)
    } else {
        (
            (M * th + 1).max(g.h + g.padding[0]),
            (M * tw + 1).max(g.w + g.padding[1]),
        )
    };
    let tpi = th * tw;
    let threads = threads_for(A * A * g.n * tpi * g.o * g.c, PAR_FLOPS);
    let taps = taps::<T, W>(g, tap, threads);
    let (xs, ss) = (Scratch(hp * wp * g.c), Scratch(g.oh * g.ow * stage_stride(g.o)));
    let oimg = sink.image_len();
    let base = Disjoint::new(&mut out[..g.n * oimg]);
    let ctx = Ctx::<T, L, S, M, A, P> {
        set: std::marker::PhantomData,
        g,
        load,
        sink,
        base,
        pools: [&xs, &ss],
        hp,
        wp,
        tw,
        tpi,
        adjoint,
    };
    // Images in chunks whose transformed tiles and products fit `budget` bytes
    // (STAGED_BYTES: all of DCGAN's batch at its 64 ↔ 128 layer).
    let per_image = A * A * tpi * (g.c + g.o) * std::mem::size_of::<T>();
    let chunk = (budget / per_image.max(1)).clamp(1, g.n.max(1));
    for c0 in (0..g.n).step_by(chunk) {
        staged(&ctx, &taps, c0, chunk.min(g.n - c0), threads);
    }
    scratch::put(taps);
}

#[cfg(test)]
mod tests {
    use super::super::super::im2col::im2col_forward;
    use super::super::testdata::{dcgan_weights, error_over_largest};
    use super::*;

    /// [`forward`] by the set `P`, whatever [`run`] would choose.
    fn forward_set<T: Element, const M: usize, const A: usize, P: Formulas<M, A>>(
        budget: usize,
        g: &ConvGeom,
        x: &[T],
        w: &[T],
        bias: Option<&[T]>,
        out: &mut [T],
    ) {
        let img = g.c * g.h * g.w;
        let load = |i: usize, hp: usize, wp: usize, dst: &mut [T]| channel_last(g, &x[i * img..][..img], hp, wp, dst);
        let sink = Maps { p: g.p(), bias, o: g.o };
        let tap = |o: usize, c: usize, j: usize| w[(o * g.c + c) * 4 + j];
        run_set::<T, _, _, _, M, A, P>(g, false, &load, &tap, &sink, out, budget)
    }

    #[test]
    fn matches_the_general_path() {
        // Sizes that are and are not multiples of either tile (4×4, 7×7), padding 0 and 1,
        // one image, more images than a task holds, bias; each by both sets.
        for (n, c, h, w, o, pad) in [
            (2, 3, 5, 5, 4, 0),
            (1, 5, 8, 8, 3, 1),
            (7, 4, 9, 6, 5, 1),
            (20, 2, 7, 7, 17, 0),
            (1, 17, 8, 8, 18, 0),
            (3, 6, 13, 11, 5, 1),
            (60, 3, 6, 9, 20, 1),
        ] {
            let g = ConvGeom::new([n, c, h, w], [o, 2, 2], [1, 1], [pad; 2], [1, 1], 1);
            assert_eq!((g.kh, g.kw, g.stride), (2, 2, [1, 1]));
            let x: Vec<f64> = (0..n * c * h * w).map(|i| (i as f64 * 0.37).sin()).collect();
            let wt: Vec<f64> = (0..o * c * 4).map(|i| (i as f64 * 0.71 + 1.0).cos()).collect();
            let b: Vec<f64> = (0..o).map(|i| i as f64 * 0.5 - 1.0).collect();
            let mut want = vec![0.0; n * o * g.p()];
            im2col_forward(&g, &x, &wt, Some(&b), &mut want);
            // Sets 3 and 4: an image per chunk of the staged passes.
            for set in 0..5 {
                let mut got = vec![f64::NAN; n * o * g.p()];
                match set {
                    0 => forward(&g, &x, &wt, Some(&b), &mut got),
                    1 => forward_set::<_, 4, 5, F4>(STAGED_BYTES, &g, &x, &wt, Some(&b), &mut got),
                    2 => forward_set::<_, 7, 8, F7>(STAGED_BYTES, &g, &x, &wt, Some(&b), &mut got),
                    3 => forward_set::<_, 4, 5, F4>(1, &g, &x, &wt, Some(&b), &mut got),
                    _ => forward_set::<_, 7, 8, F7>(1, &g, &x, &wt, Some(&b), &mut got),
                }
                for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - e).abs() < 1e-12 * (1.0 + e.abs()),
                        "{set} {g:?} at {i}: {a} vs {e}"
                    );
                }
            }
        }
    }

    /// DCGAN-like data (weights about N(0, 0.02), inputs in [−1, 1]) at its 64 → 128 layer's
    /// phase geometry: the largest error of either set in f32 against f64, over the largest
    /// output. Measured with the written-out transforms: im2col in f32 2.5e-6, F(4×4)
    /// 4.0e-6, F(7×7) 8.9e-6 (2.2 times F(4×4)'s).
    #[test]
    fn f7_error_in_f32_stays_small() {
        let g = ConvGeom::new([6, 256, 8, 8], [128, 2, 2], [1, 1], [0, 0], [1, 1], 1);
        let x: Vec<f64> = (0..g.n * g.c * 64).map(|i| (i as f64 * 0.37).sin()).collect();
        let w = dcgan_weights(g.o * g.c * 4, 0.0);
        let mut want = vec![0.0; g.n * g.o * g.p()];
        im2col_forward(&g, &x, &w, None, &mut want);
        let (xf, wf): (Vec<f32>, Vec<f32>) = (
            x.iter().map(|&v| v as f32).collect(),
            w.iter().map(|&v| v as f32).collect(),
        );
        let err = |got: &[f32]| error_over_largest(got, &want, 0.0);
        let mut got = vec![0f32; want.len()];
        forward_set::<_, 4, 5, F4>(STAGED_BYTES, &g, &xf, &wf, None, &mut got);
        let e4 = err(&got);
        forward_set::<_, 7, 8, F7>(STAGED_BYTES, &g, &xf, &wf, None, &mut got);
        let e7 = err(&got);
        im2col_forward(&g, &xf, &wf, None, &mut got);
        let e = err(&got);
        println!("f32 error over the largest output: im2col {e:.2e}, F(4×4) {e4:.2e}, F(7×7) {e7:.2e}");
        assert!(e4 < 1e-5 && e7 < 3e-5 && e7 < 5.0 * e4, "F(4×4) {e4:e}, F(7×7) {e7:e}");
    }
}
