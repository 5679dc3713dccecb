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
//! [`LANES`] channels at a time. Images are grouped into an even number of tasks of about
//! `TASK_TILES` tiles, and output channels into blocks of at most [`U_BLOCK_BYTES`] of
//! transformed weights (one block for DCGAN); each task (image group × channel block)
//! transforms its images' input, multiplies and writes back its outputs on one thread, so
//! results depend on the shapes alone. Each image's outputs are staged channel-last, then
//! written out by a [`Sink`]: to the plain output maps, or into the phases of a transposed
//! convolution's output. Buffers (transformed weights and tiles) are kept from call to call
//! in [`super::scratch`].

use super::super::geom::ConvGeom;
use super::scratch::{self, Buf, Scratch};
use super::sets::{use_f7, Set, F4, F7};
use crate::kernels::matmul::{gemm_packed, Mat, PAR_FLOPS};
use crate::kernels::par::{for_each_chunk_on, run_tiles, threads_for, Disjoint};
use crate::Element;

/// Tiles transformed together, one per vector lane.
const LANES: usize = 16;

/// Bytes of transformed weights per output-channel block (a task's share of `U`). Large:
/// each block transforms the input again, which at DCGAN's 64 → 128 layer (3.2 MB of `U`)
/// cost more than the L2 hits gained (one thread, 15.8 ms whole, 21.5 in two blocks, 32 in
/// four).
const U_BLOCK_BYTES: usize = 16 << 20;

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

/// The distance between pixels of a task's staged outputs of `on` channels: a line more
/// than whole lines, so the sink's reads down a channel (a pixel apart) do not all fall in
/// the same few sets of L1 (1 KiB apart, DCGAN's input gradient's reads across 49 pixels and
/// four phases had 16 sets).
fn stage_stride(on: usize) -> usize {
    on.next_multiple_of(LANES) + LANES
}

/// `U[ξ][c][o] = (G w[o][c] Gᵀ)[ξ]` in a [`scratch`] buffer, written in order
/// (`ξ = A·a + b` takes `G[a][j] · G[b][l]` of tap `(j, l)`), where `tap(o, c, 2j + l)` is
/// `w[o][c][j][l]`. The taps go to rows `[c][4][o]` first, so each `U[ξ]` is four
/// contiguous scaled rows added per input channel (read across `o` in place, each element
/// was a strided gather: 1.1 ms of DCGAN's 16 ms forward). Both passes run over the
/// threads: serial, the taps' gather (and the caller's rearranging of `w` before it) left
/// the second core idle for about 3 ms of a DCGAN training step.
fn weights<T: Element, W, const M: usize, const A: usize, P: Set<M, A>>(g: &ConvGeom, tap: &W, threads: usize) -> Buf<T>
where
    W: Fn(usize, usize, usize) -> T + Sync,
{
    let (o, co) = (g.o, g.o * g.c);
    let mut taps = scratch::take(4 * co);
    for_each_chunk_on(threads, &mut taps, 4 * o, &|ci, rows| {
        for (j, row) in rows.chunks_exact_mut(o).enumerate() {
            for (oi, d) in row.iter_mut().enumerate() {
                *d = tap(oi, ci, j);
            }
        }
    });
    let mut u = scratch::take(A * A * co);
    // A `U[ξ]` each (one thread: 0.5–1 ms of DCGAN's 12 ms forward).
    for_each_chunk_on(threads, &mut u, co, &|xi, ux| {
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
    });
    scratch::put(taps);
    u
}

/// `dst = M · src` for a constant matrix over rows of lanes (`src[k][l]`), zeros skipped.
#[inline(always)]
fn apply<T: Element, const A: usize, const R: usize>(
    m: &[[f64; A]; R],
    src: &[[T; LANES]; A],
    dst: &mut [[T; LANES]; R],
) {
    for (row, out) in m.iter().zip(dst.iter_mut()) {
        *out = [T::ZERO; LANES];
        for (&coef, s) in row.iter().zip(src) {
            if coef != 0.0 {
                let cf = T::from_f64(coef);
                out.iter_mut().zip(s).for_each(|(o, &v)| *o += cf * v);
            }
        }
    }
}

/// `dst = M · src[..][col]`: [`apply`] to column `col` of `src` read in place (copied out
/// first, the copies took a tenth of F(7×7)'s input gradient).
#[inline(always)]
fn apply_col<T: Element, const A: usize, const R: usize, const C: usize>(
    m: &[[f64; A]; R],
    src: &[[[T; LANES]; C]; A],
    col: usize,
    dst: &mut [[T; LANES]; R],
) {
    for (row, out) in m.iter().zip(dst.iter_mut()) {
        *out = [T::ZERO; LANES];
        for (&coef, s) in row.iter().zip(src) {
            if coef != 0.0 {
                let cf = T::from_f64(coef);
                out.iter_mut().zip(&s[col]).for_each(|(o, &v)| *o += cf * v);
            }
        }
    }
}

/// `dst[..n] = src[..n]`, with a fixed length when `n` is a whole vector of lanes (a
/// variable one compiled to a `memmove` call per 16 elements).
#[inline(always)]
fn copy<T: Element>(dst: &mut [T], src: &[T], n: usize) {
    if n == LANES {
        dst[..LANES].copy_from_slice(&src[..LANES]);
    } else {
        copy_short(dst, src, n);
    }
}

/// [`copy`] of a partial vector, out of line: inline, LLVM merged both copies into one
/// `memmove` call of a variable length, taken for whole vectors too (about 6% of the
/// forward's and input gradient's `perf` samples).
#[inline(never)]
#[cold]
fn copy_short<T: Element>(dst: &mut [T], src: &[T], n: usize) {
    dst[..n].copy_from_slice(&src[..n]);
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
        run_set::<T, L, W, S, 7, 8, F7>(g, load, tap, sink, out)
    } else {
        run_set::<T, L, W, S, 4, 5, F4>(g, load, tap, sink, out)
    }
}

/// [`run`] by F(4×4, 2×2) whatever the size: for the input gradient's phases, where
/// F(7×7) ran no faster (DCGAN's 128 → 64 transposed layer, one thread, CPU time: 13.7–14.1
/// ms either way) and F(4×4)'s f32 error is a third of F(7×7)'s.
pub(crate) fn run_f4<T: Element, L, W, S>(g: &ConvGeom, load: &L, tap: &W, sink: &S, out: &mut [T])
where
    L: Fn(usize, usize, usize, &mut [T]) + Sync,
    W: Fn(usize, usize, usize) -> T + Sync,
    S: Sink<T>,
{
    run_set::<T, L, W, S, 4, 5, F4>(g, load, tap, sink, out)
}

/// [`run`] by the transform set `P`: F(M×M, 2×2), `A = M + 1`.
fn run_set<T: Element, L, W, S, const M: usize, const A: usize, P: Set<M, A>>(
    g: &ConvGeom,
    load: &L,
    tap: &W,
    sink: &S,
    out: &mut [T],
) where
    L: Fn(usize, usize, usize, &mut [T]) + Sync,
    W: Fn(usize, usize, usize) -> T + Sync,
    S: Sink<T>,
{
    let (th, tw) = (g.oh.div_ceil(M), g.ow.div_ceil(M));
    let (hp, wp) = (
        (M * th + 1).max(g.h + g.padding[0]),
        (M * tw + 1).max(g.w + g.padding[1]),
    );
    let tpi = th * tw;
    // An even number of image groups of about P::TASK_TILES tiles, so two cores get the
    // same work (DCGAN's 128 images: 12 groups of 11 or fewer, not 11 of 12 split 6 : 5).
    let groups = g.n.div_ceil(P::TASK_TILES.div_ceil(tpi).max(1)).max(1);
    let groups = if groups > 1 {
        groups.next_multiple_of(2).min(g.n)
    } else {
        1
    };
    let group = g.n.div_ceil(groups).max(1);
    let groups = g.n.div_ceil(group).max(1);
    let cap = group * tpi;
    // Output-channel blocks of whole lane vectors, as even as that allows.
    let blocks = (A * A * g.c * g.o * std::mem::size_of::<T>())
        .div_ceil(U_BLOCK_BYTES)
        .clamp(1, g.o.max(1));
    let ob = g.o.div_ceil(blocks).next_multiple_of(LANES).min(g.o.max(1));
    let blocks = g.o.div_ceil(ob).max(1);
    let threads = threads_for(A * A * g.n * tpi * g.o * g.c, PAR_FLOPS);
    let u = weights::<T, W, M, A, P>(g, tap, threads);
    let (vs, ms, xs, ss) = (
        Scratch(A * A * g.c * cap),
        Scratch(A * A * ob * cap),
        Scratch(hp * wp * g.c),
        Scratch(g.oh * g.ow * stage_stride(ob)),
    );
    let oimg = sink.image_len();
    let base = Disjoint::new(&mut out[..g.n * oimg]);
    let ctx = Ctx::<T, L, S, M, A, P> {
        set: std::marker::PhantomData,
        g,
        load,
        u: &u,
        sink,
        base,
        pools: [&vs, &ms, &xs, &ss],
        hp,
        wp,
        tw,
        tpi,
        group,
        groups,
        ob,
    };
    #[cfg(target_arch = "x86_64")]
    let isa = crate::cpu::isa();
    // Tasks of the first channel block first: cores that run at the same time share it.
    run_tiles(groups * blocks, threads, &|task| {
        // The transforms are plain loops over lane arrays: compiled for the level in use,
        // they vectorize to its width (the baseline build has 4-wide SSE only).
        #[cfg(target_arch = "x86_64")]
        match isa {
            // SAFETY: `isa` is a level this CPU runs (see `cpu::isa`).
            crate::cpu::Isa::Avx512 => unsafe { ctx.task_avx512(task) },
            // SAFETY: as above.
            crate::cpu::Isa::Avx2 => unsafe { ctx.task_avx2(task) },
            _ => ctx.task(task),
        }
        #[cfg(not(target_arch = "x86_64"))]
        ctx.task(task);
    });
    scratch::put(u);
}

/// What every task of [`run`] shares.
struct Ctx<'a, T, L, S, const M: usize, const A: usize, P> {
    set: std::marker::PhantomData<P>,
    g: &'a ConvGeom,
    load: &'a L,
    u: &'a [T],
    sink: &'a S,
    base: Disjoint<T>,
    pools: [&'a Scratch; 4],
    hp: usize,
    wp: usize,
    tw: usize,
    tpi: usize,
    group: usize,
    groups: usize,
    ob: usize,
}

impl<T, L, S, const M: usize, const A: usize, P> Ctx<'_, T, L, S, M, A, P>
where
    T: Element,
    L: Fn(usize, usize, usize, &mut [T]) + Sync,
    S: Sink<T>,
    P: Set<M, A>,
{
    /// [`Ctx::task`] compiled for AVX-512.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn task_avx512(&self, task: usize) {
        self.task(task)
    }

    /// [`Ctx::task`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn task_avx2(&self, task: usize) {
        self.task(task)
    }

    /// Output channels `ob · (task / groups) ..` of images `group · (task % groups) ..`:
    /// transform, `A²` products, transform back.
    #[inline(always)]
    fn task(&self, task: usize) {
        let Ctx {
            set: _,
            g,
            load,
            u,
            sink,
            base,
            pools: [vs, ms, xs, ss],
            hp,
            wp,
            tw,
            tpi,
            group,
            groups,
            ob,
        } = *self;
        let ch = g.c;
        let n0 = task % groups * group;
        let o_lo = task / groups * ob;
        let on = ob.min(g.o - o_lo);
        let count = group.min(g.n - n0);
        let tiles = count * tpi;
        let (mut v, mut m, mut xl) = (vs.take(), ms.take(), xs.take());
        // Input transform, LANES channels at a time: V[ξ][t][c].
        let mut d = [[T::ZERO; LANES]; A];
        let (mut t1, mut t2) = ([[[T::ZERO; LANES]; A]; A], [[T::ZERO; LANES]; A]);
        for i in 0..count {
            load(n0 + i, hp, wp, &mut xl);
            for t in i * tpi..(i + 1) * tpi {
                let (ty, tx) = (t % tpi / tw, t % tw);
                for c0 in (0..ch).step_by(LANES) {
                    let nl = LANES.min(ch - c0);
                    // Bᵀ d, one column of the tile at a time.
                    for s in 0..A {
                        for (r, dr) in d.iter_mut().enumerate() {
                            let src = &xl[((ty * M + r) * wp + tx * M + s) * ch + c0..];
                            copy(&mut dr[..], src, nl);
                        }
                        apply(&P::BT, &d, &mut t2);
                        for a in 0..A {
                            t1[a][s] = t2[a];
                        }
                    }
                    // (Bᵀ d) B, row by row.
                    for (a, row) in t1.iter().enumerate() {
                        apply(&P::BT, row, &mut t2);
                        for (b, lanes) in t2.iter().enumerate() {
                            copy(&mut v[((a * A + b) * tiles + t) * ch + c0..], lanes, nl);
                        }
                    }
                }
            }
        }
        for xi in 0..A * A {
            let a = Mat {
                data: &v,
                rs: ch,
                cs: 1,
                offset: xi * tiles * ch,
            };
            let b = Mat {
                data: u,
                rs: g.o,
                cs: 1,
                offset: xi * ch * g.o + o_lo,
            };
            // Packed: `U[ξ]` is read by every row panel, and its 64-column panels (a depth
            // of 256 or 128) overflow L1 unpacked (DCGAN's 64 → 128 layer, one thread, CPU
            // time: forward 13.0 → 12.3 ms, input gradient 14.9 → 14.4).
            gemm_packed(tiles, on, ch, a, b, &mut m[xi * tiles * on..][..tiles * on], false, 1);
        }
        let oimg = sink.image_len();
        let mut mm = [[[T::ZERO; LANES]; A]; A];
        let mut rm = [[[T::ZERO; LANES]; M]; A];
        let mut res = [[T::ZERO; LANES]; M];
        // One image's outputs go channel-last to `stage` (whole lines per store), then to
        // `out` channel by channel in the sink's order: stored straight from the lanes, each
        // element went to its own line (DCGAN's 128 → 64 input gradient: 5 of 16 ms).
        let (mut stage, sp) = (ss.take(), stage_stride(on));
        for i in 0..count {
            for t in i * tpi..(i + 1) * tpi {
                let (ty, tx) = (t % tpi / tw, t % tw);
                for o0 in (0..on).step_by(LANES) {
                    let nl = LANES.min(on - o0);
                    for (xi, lanes) in mm.iter_mut().flatten().enumerate() {
                        copy(&mut lanes[..], &m[(xi * tiles + t) * on + o0..], nl);
                    }
                    // m A, row by row, then Aᵀ (m A) column by column.
                    for (row, r) in mm.iter().zip(rm.iter_mut()) {
                        apply(&P::AT, row, r);
                    }
                    for b in 0..M.min(g.ow - tx * M) {
                        apply_col(&P::AT, &rm, b, &mut res);
                        let xx = tx * M + b;
                        for (a, lanes) in res.iter().enumerate().take(g.oh - ty * M) {
                            let yy = ty * M + a;
                            copy(&mut stage[(yy * g.ow + xx) * sp + o0..], lanes, nl);
                        }
                    }
                }
            }
            let img = (n0 + i) * oimg;
            sink.flush(&stage[..g.oh * g.ow * sp], sp, on, o_lo, &mut |at, v| {
                // SAFETY: this task alone writes channels o_lo..o_lo + on of images
                // n0..n0 + count (the sink maps distinct channels and positions to distinct
                // elements of an image's output, inside it), and `out` stays borrowed for
                // the call.
                unsafe { base.range(img + at, 1)[0] = v }
            });
        }
        ss.put(stage);
        vs.put(v);
        ms.put(m);
        xs.put(xl);
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::im2col::im2col_forward;
    use super::*;

    /// [`forward`] by the set `P`, whatever [`run`] would choose.
    fn forward_set<T: Element, const M: usize, const A: usize, P: Set<M, A>>(
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
        run_set::<T, _, _, _, M, A, P>(g, &load, &tap, &sink, out)
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
            for set in 0..3 {
                let mut got = vec![f64::NAN; n * o * g.p()];
                match set {
                    0 => forward(&g, &x, &wt, Some(&b), &mut got),
                    1 => forward_set::<_, 4, 5, F4>(&g, &x, &wt, Some(&b), &mut got),
                    _ => forward_set::<_, 7, 8, F7>(&g, &x, &wt, Some(&b), &mut got),
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
    /// output. Measured: im2col in f32 2.5e-6, F(4×4) 3.6e-6, F(7×7) 1.0e-5 (2.8 times
    /// F(4×4)'s).
    #[test]
    fn f7_error_in_f32_stays_small() {
        let g = ConvGeom::new([6, 256, 8, 8], [128, 2, 2], [1, 1], [0, 0], [1, 1], 1);
        let x: Vec<f64> = (0..g.n * g.c * 64).map(|i| (i as f64 * 0.37).sin()).collect();
        // Sums of three sines: roughly normal, standard deviation 0.02.
        let w: Vec<f64> = (0..g.o * g.c * 4)
            .map(|i| {
                (0..3)
                    .map(|k| (i as f64 * (0.71 + 0.13 * k as f64) + k as f64).sin())
                    .sum::<f64>()
                    * 0.0163
            })
            .collect();
        let mut want = vec![0.0; g.n * g.o * g.p()];
        im2col_forward(&g, &x, &w, None, &mut want);
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let (xf, wf): (Vec<f32>, Vec<f32>) = (
            x.iter().map(|&v| v as f32).collect(),
            w.iter().map(|&v| v as f32).collect(),
        );
        let err = |got: &[f32]| {
            got.iter()
                .zip(&want)
                .fold(0.0f64, |m, (&a, b)| m.max((a as f64 - b).abs()))
                / scale
        };
        let mut got = vec![0f32; want.len()];
        forward_set::<_, 4, 5, F4>(&g, &xf, &wf, None, &mut got);
        let e4 = err(&got);
        forward_set::<_, 7, 8, F7>(&g, &xf, &wf, None, &mut got);
        let e7 = err(&got);
        im2col_forward(&g, &xf, &wf, None, &mut got);
        let e = err(&got);
        println!("f32 error over the largest output: im2col {e:.2e}, F(4×4) {e4:.2e}, F(7×7) {e7:.2e}");
        assert!(e4 < 1e-5 && e7 < 3e-5 && e7 < 5.0 * e4, "F(4×4) {e4:e}, F(7×7) {e7:e}");
    }
}
