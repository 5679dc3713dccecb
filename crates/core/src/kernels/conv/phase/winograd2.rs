//! Stride-1 2×2 convolutions by Winograd's F(4×4, 2×2): each 5×5 input tile gives a 4×4
//! output tile from 25 products per channel pair instead of 64, as 25 batched products
//! `M[ξ] = V[ξ] · U[ξ]` (`V[ξ]`: `[tiles, c]` transformed input, `U[ξ]`: `[c, o]`
//! transformed weights). The stride-2 4×4 layers reach it through their phase images.
//!
//! Interpolation points 0, 1, −1, 2 and ∞, with the fractions moved into the weight
//! transform so the input transform `Bᵀ d B` has small integer entries. The input reaches it
//! channel-last (the caller's `load` writes each image so), so the transforms run over
//! [`LANES`] channels at a time. Images are grouped into an even number of tasks of about
//! [`TASK_TILES`] tiles, and output channels into blocks of at most [`U_BLOCK_BYTES`] of
//! transformed weights (one block for DCGAN); each task (image group × channel block)
//! transforms its images' input, multiplies and writes back its outputs on one thread, so
//! results depend on the shapes alone. Where the outputs go is a [`Sink`]'s choice: the
//! plain output maps, or a strided scatter into the phases of a transposed convolution's
//! output.

use super::super::geom::ConvGeom;
use super::super::grouped::Pool;
use crate::kernels::matmul::{gemm, Mat, PAR_FLOPS};
use crate::kernels::par::{run_tiles, threads_for, Disjoint};
use crate::Element;

/// `Aᵀ` (4 × 5): output tile from the products.
const AT: [[f64; 5]; 4] = [
    [1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, 1.0],
];

/// `G` (5 × 2): weight transform.
const G: [[f64; 2]; 5] = [
    [0.5, 0.0],
    [0.5, 0.5],
    [1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 6.0, 1.0 / 3.0],
    [0.0, 1.0],
];

/// `Bᵀ` (5 × 5): input transform.
const BT: [[f64; 5]; 5] = [
    [2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 2.0, 1.0, -1.0, 0.0],
    [0.0, -2.0, 3.0, -1.0, 0.0],
    [0.0, -1.0, 0.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0],
];

/// Tiles transformed together, one per vector lane.
const LANES: usize = 16;

/// Tiles per task (whole images): its transformed input and products stay in one core's L2.
const TASK_TILES: usize = 48;

/// Bytes of transformed weights per output-channel block (a task's share of `U`). Large:
/// each block transforms the input again, which at DCGAN's 64 → 128 layer (3.2 MB of `U`)
/// cost more than the L2 hits gained (one thread, 15.8 ms whole, 21.5 in two blocks, 32 in
/// four).
const U_BLOCK_BYTES: usize = 16 << 20;

/// Where the stride-1 outputs go.
pub(crate) trait Sink<T>: Sync {
    /// Elements of one image's output.
    fn image_len(&self) -> usize;
    /// The offset in its image's output of channel `o` at stride-1 output position
    /// `(yy, xx)` (inside `oh × ow`), or `None` where nothing is written.
    fn at(&self, o: usize, yy: usize, xx: usize) -> Option<usize>;
    /// The bias added to channel `o`.
    fn bias(&self, o: usize) -> T;
    /// Where channels `o..o + n` at `(yy, xx)` go, when one rule places them all.
    #[inline(always)]
    fn place(&self, _o: usize, _n: usize, _yy: usize, _xx: usize) -> Place {
        Place::Each
    }
}

/// Where a block of channels at one position goes.
pub(crate) enum Place {
    /// Channel `o + l` to offset `start + l · stride` of its image's output.
    Strided(usize, usize),
    /// Nowhere.
    Skip,
    /// Each channel by [`Sink::at`].
    Each,
}

/// The plain output maps `[n, o, oh, ow]`, with an optional bias per map.
pub(crate) struct Maps<'a, T> {
    /// Output pixels per map.
    pub p: usize,
    /// Output width.
    pub ow: usize,
    /// Bias per map.
    pub bias: Option<&'a [T]>,
    /// Maps per image.
    pub o: usize,
}

impl<T: Element> Sink<T> for Maps<'_, T> {
    fn image_len(&self) -> usize {
        self.o * self.p
    }
    #[inline(always)]
    fn at(&self, o: usize, yy: usize, xx: usize) -> Option<usize> {
        Some(o * self.p + yy * self.ow + xx)
    }
    #[inline(always)]
    fn bias(&self, o: usize) -> T {
        self.bias.map_or(T::ZERO, |b| b[o])
    }
    #[inline(always)]
    fn place(&self, o: usize, _n: usize, yy: usize, xx: usize) -> Place {
        Place::Strided(o * self.p + yy * self.ow + xx, self.p)
    }
}

/// `U[ξ][c][o] = (G w[o][c] Gᵀ)[ξ]`, written in order (`ξ = 5a + b` takes
/// `G[a][j] · G[b][l]` of tap `(j, l)`). The taps go to planes `[4][c][o]` first, so each
/// `U[ξ]` is four contiguous scaled planes added (read across `o` in place, each element
/// was a strided gather: 1.1 ms of DCGAN's 16 ms forward).
fn weights<T: Element>(g: &ConvGeom, w: &[T]) -> Vec<T> {
    let co = g.o * g.c;
    let mut taps = vec![T::ZERO; 4 * co];
    for (oi, wo) in w[..4 * co].chunks_exact(4 * g.c).enumerate() {
        for (ci, k) in wo.chunks_exact(4).enumerate() {
            for (j, &v) in k.iter().enumerate() {
                taps[j * co + ci * g.o + oi] = v;
            }
        }
    }
    let (t0, rest) = taps.split_at(co);
    let (t1, rest) = rest.split_at(co);
    let (t2, t3) = rest.split_at(co);
    let mut u = vec![T::ZERO; 25 * co];
    for (ux, (ga, gb)) in u
        .chunks_exact_mut(co)
        .zip(G.iter().flat_map(|a| G.iter().map(move |b| (a, b))))
    {
        let f = [ga[0] * gb[0], ga[0] * gb[1], ga[1] * gb[0], ga[1] * gb[1]].map(T::from_f64);
        for ((((d, &a), &b), &c), &e) in ux.iter_mut().zip(t0).zip(t1).zip(t2).zip(t3) {
            *d = f[0] * a + f[1] * b + f[2] * c + f[3] * e;
        }
    }
    u
}

/// `dst = M · src` for a constant matrix over rows of lanes (`src[k][l]`), zeros skipped.
#[inline(always)]
fn apply<T: Element, const R: usize>(m: &[[f64; 5]; R], src: &[[T; LANES]; 5], dst: &mut [[T; LANES]; R]) {
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

/// `dst[..n] = src[..n]`, with a fixed length when `n` is a whole vector of lanes (a
/// variable one compiled to a `memmove` call per 16 elements).
#[inline(always)]
fn copy<T: Element>(dst: &mut [T], src: &[T], n: usize) {
    if n == LANES {
        dst[..LANES].copy_from_slice(&src[..LANES]);
    } else {
        dst[..n].copy_from_slice(&src[..n]);
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
        w,
        bias,
        out,
    )
}

/// As [`forward`], the input given by `load(image, hp, wp, dst)`, which writes that image
/// channel-last with its padding (`[hp, wp, c]`, zeros outside the image) into `dst`.
pub(crate) fn forward_with<T: Element, L>(g: &ConvGeom, load: &L, w: &[T], bias: Option<&[T]>, out: &mut [T])
where
    L: Fn(usize, usize, usize, &mut [T]) + Sync,
{
    let sink = Maps {
        p: g.p(),
        ow: g.ow,
        bias,
        o: g.o,
    };
    run(g, load, w, &sink, out)
}

/// The stride-1 2×2 convolution of `g` (weights `w`: `[o, c, 2, 2]`), the input given by
/// `load` as for [`forward_with`], its output channel `o` at `(yy, xx)` of image `i` written
/// to `out[i · sink.image_len() + sink.at(o, yy, xx)]` with `sink.bias(o)` added.
pub(crate) fn run<T: Element, L, S>(g: &ConvGeom, load: &L, w: &[T], sink: &S, out: &mut [T])
where
    L: Fn(usize, usize, usize, &mut [T]) + Sync,
    S: Sink<T>,
{
    let (th, tw) = (g.oh.div_ceil(4), g.ow.div_ceil(4));
    let (hp, wp) = (
        (4 * th + 1).max(g.h + g.padding[0]),
        (4 * tw + 1).max(g.w + g.padding[1]),
    );
    let tpi = th * tw;
    // An even number of image groups of about TASK_TILES tiles, so two cores get the same
    // work (DCGAN's 128 images: 12 groups of 11 or fewer, not 11 of 12 split 6 : 5).
    let groups = g.n.div_ceil(TASK_TILES.div_ceil(tpi).max(1)).max(1);
    let groups = if groups > 1 {
        groups.next_multiple_of(2).min(g.n)
    } else {
        1
    };
    let group = g.n.div_ceil(groups).max(1);
    let groups = g.n.div_ceil(group).max(1);
    let cap = group * tpi;
    // Output-channel blocks of whole lane vectors, as even as that allows.
    let blocks = (25 * g.c * g.o * std::mem::size_of::<T>())
        .div_ceil(U_BLOCK_BYTES)
        .clamp(1, g.o.max(1));
    let ob = g.o.div_ceil(blocks).next_multiple_of(LANES).min(g.o.max(1));
    let blocks = g.o.div_ceil(ob).max(1);
    let u = weights(g, w);
    let (vs, ms, xs) = (
        Pool::new(25 * g.c * cap),
        Pool::new(25 * ob * cap),
        Pool::new(hp * wp * g.c),
    );
    let oimg = sink.image_len();
    let base = Disjoint::new(&mut out[..g.n * oimg]);
    let threads = threads_for(25 * g.n * tpi * g.o * g.c, PAR_FLOPS);
    let ctx = Ctx {
        g,
        load,
        u: &u,
        sink,
        base,
        pools: [&vs, &ms, &xs],
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
}

/// What every task of [`run`] shares.
struct Ctx<'a, T, L, S> {
    g: &'a ConvGeom,
    load: &'a L,
    u: &'a [T],
    sink: &'a S,
    base: Disjoint<T>,
    pools: [&'a Pool<T>; 3],
    hp: usize,
    wp: usize,
    tw: usize,
    tpi: usize,
    group: usize,
    groups: usize,
    ob: usize,
}

impl<T: Element, L: Fn(usize, usize, usize, &mut [T]) + Sync, S: Sink<T>> Ctx<'_, T, L, S> {
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
    /// transform, 25 products, transform back.
    #[inline(always)]
    fn task(&self, task: usize) {
        let Ctx {
            g,
            load,
            u,
            sink,
            base,
            pools: [vs, ms, xs],
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
        let mut d = [[T::ZERO; LANES]; 5];
        let (mut t1, mut t2) = ([[[T::ZERO; LANES]; 5]; 5], [[T::ZERO; LANES]; 5]);
        for i in 0..count {
            load(n0 + i, hp, wp, &mut xl);
            for t in i * tpi..(i + 1) * tpi {
                let (ty, tx) = (t % tpi / tw, t % tw);
                for c0 in (0..ch).step_by(LANES) {
                    let nl = LANES.min(ch - c0);
                    // Bᵀ d, one column of the tile at a time.
                    for s in 0..5 {
                        for (r, dr) in d.iter_mut().enumerate() {
                            let src = &xl[((ty * 4 + r) * wp + tx * 4 + s) * ch + c0..];
                            copy(&mut dr[..], src, nl);
                        }
                        apply(&BT, &d, &mut t2);
                        for a in 0..5 {
                            t1[a][s] = t2[a];
                        }
                    }
                    // (Bᵀ d) B, row by row.
                    for (a, row) in t1.iter().enumerate() {
                        apply(&BT, row, &mut t2);
                        for (b, lanes) in t2.iter().enumerate() {
                            copy(&mut v[((a * 5 + b) * tiles + t) * ch + c0..], lanes, nl);
                        }
                    }
                }
            }
        }
        for xi in 0..25 {
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
            gemm(tiles, on, ch, a, b, &mut m[xi * tiles * on..][..tiles * on], false, 1);
        }
        let oimg = sink.image_len();
        let mut mm = [[[T::ZERO; LANES]; 5]; 5];
        let mut r4 = [[[T::ZERO; LANES]; 4]; 5];
        let mut res = [[T::ZERO; LANES]; 4];
        for t in 0..tiles {
            let (i, ty, tx) = (t / tpi, t % tpi / tw, t % tw);
            for o0 in (0..on).step_by(LANES) {
                let nl = LANES.min(on - o0);
                let bl: [T; LANES] = std::array::from_fn(|l| if l < nl { sink.bias(o_lo + o0 + l) } else { T::ZERO });
                for (xi, lanes) in mm.iter_mut().flatten().enumerate() {
                    copy(&mut lanes[..], &m[(xi * tiles + t) * on + o0..], nl);
                }
                // m A, row by row, then Aᵀ (m A) column by column.
                for (row, r) in mm.iter().zip(r4.iter_mut()) {
                    apply(&AT, row, r);
                }
                for b in 0..4 {
                    let col = r4.map(|rk| rk[b]);
                    apply(&AT, &col, &mut res);
                    let xx = tx * 4 + b;
                    if xx >= g.ow {
                        continue;
                    }
                    for (a, lanes) in res.iter().enumerate() {
                        let yy = ty * 4 + a;
                        if yy >= g.oh {
                            continue;
                        }
                        // Both writes below: this task alone writes channels o_lo..o_lo + on
                        // of images n0..n0 + count (the sink maps distinct channels and
                        // positions to distinct elements of an image's output), and `out`
                        // stays borrowed for the call.
                        let img = (n0 + i) * oimg;
                        match sink.place(o_lo + o0, nl, yy, xx) {
                            Place::Strided(start, stride) => {
                                for (l, (&val, &bv)) in lanes[..nl].iter().zip(&bl).enumerate() {
                                    // SAFETY: see above.
                                    unsafe { base.range(img + start + l * stride, 1)[0] = val + bv };
                                }
                            }
                            Place::Skip => {}
                            Place::Each => {
                                for (l, (&val, &bv)) in lanes[..nl].iter().zip(&bl).enumerate() {
                                    if let Some(at) = sink.at(o_lo + o0 + l, yy, xx) {
                                        // SAFETY: see above.
                                        unsafe { base.range(img + at, 1)[0] = val + bv };
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        vs.put(v);
        ms.put(m);
        xs.put(xl);
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::im2col::im2col_forward;
    use super::*;

    #[test]
    fn matches_the_general_path() {
        // Sizes that are and are not multiples of the 4×4 tile, padding 0 and 1, one image,
        // more images than a task holds, bias.
        for (n, c, h, w, o, pad) in [
            (2, 3, 5, 5, 4, 0),
            (1, 5, 8, 8, 3, 1),
            (7, 4, 9, 6, 5, 1),
            (20, 2, 7, 7, 17, 0),
        ] {
            let g = ConvGeom::new([n, c, h, w], [o, 2, 2], [1, 1], [pad; 2], [1, 1], 1);
            assert_eq!((g.kh, g.kw, g.stride), (2, 2, [1, 1]));
            let x: Vec<f64> = (0..n * c * h * w).map(|i| (i as f64 * 0.37).sin()).collect();
            let wt: Vec<f64> = (0..o * c * 4).map(|i| (i as f64 * 0.71 + 1.0).cos()).collect();
            let b: Vec<f64> = (0..o).map(|i| i as f64 * 0.5 - 1.0).collect();
            let (mut want, mut got) = (vec![0.0; n * o * g.p()], vec![f64::NAN; n * o * g.p()]);
            im2col_forward(&g, &x, &wt, Some(&b), &mut want);
            forward(&g, &x, &wt, Some(&b), &mut got);
            for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                assert!((a - e).abs() < 1e-12 * (1.0 + e.abs()), "{g:?} at {i}: {a} vs {e}");
            }
        }
    }
}
