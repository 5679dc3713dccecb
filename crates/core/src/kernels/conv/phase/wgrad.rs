//! The weight gradient of stride-2 4×4 convolutions (DCGAN's 64 → 128 layer, and the weight
//! gradient of its 128 → 64 transposed convolution, which is the same computation) over phase
//! images by Winograd's F(2×2, 4×4).
//!
//! Per phase `(r, s)` the 4×4 stride-2 gradient is a 2×2 stride-1 one,
//! `dwp[o][c·4 + 2r + s][a, b] = Σ_n Σ_{u,v} xp[n][c·4 + 2r + s][u + a, v + b] · dy[n][o][u, v]`
//! (phase images as in [`super`]). It is the adjoint of [`super::winograd2`]'s
//! F(4×4, 2×2): from `y = Aᵀ[(G w) ⊙ (Bᵀ d)]`, `dw = Gᵀ[(A dy) ⊙ (Bᵀ d)]` per 4×4 `dy`
//! tile and 5×5 `xp` tile, so the sum over tiles `t` (of every image) becomes 25 products
//! `M[ξ][o][c4] = Σ_t DY[t][ξ][o] · XP[t][ξ][c4]` — 128 × 256 × tiles at DCGAN's layer —
//! and one 2×2 transform `Gᵀ M[·][o][c4] G` per weight pair at the end, where the fractions
//! of `G` are applied once. 25 multiplies per tile position instead of 64.
//!
//! Images go in chunks of about [`CHUNK_TILES`] tiles: each chunk's transforms run per image
//! over the threads, then its 25 products, each split into column blocks of [`NB`], one
//! block per task on one thread, added to the previous chunks' in chunk order. The split is
//! fixed by the shapes, so the result does not depend on the thread count.
//!
//! Measured at batch 128, 64 → 128 channels, 14×14 → 7×7, one thread, CPU time (AVX-512,
//! loaded machine, best of 15): 16.0 ms by grouped im2col, 12.2 ms here (about 6 in the
//! products, 4.5 in the transforms, mostly the channel-last copies of `x` and `dy`); at
//! AVX2 25.5 → 21.7 ms. The transforms are written-out formulas: with loops over the
//! matrices' entries (as `winograd2` has them) this path took 17.2 ms.

use super::super::geom::ConvGeom;
use super::super::grouped::Pool;
use super::scratch;
use crate::kernels::matmul::{gemm_packed, Mat, PAR_FLOPS};
use crate::kernels::par::{run_tiles, threads_for, Disjoint};
use crate::Element;

/// `Gᵀ p` for the 5 rows `p`: 2 taps from 5 points, `G` (5 × 2) being
/// [`super::winograd2`]'s weight transform. Its fractions apply once, after the sums.
#[inline(always)]
fn taps_from_points<T: Element>(p: &[Lanes<T>; 5], o: &mut [Lanes<T>; 2]) {
    let (half, sixth, two) = (T::from_f64(0.5), T::from_f64(1.0 / 6.0), T::from_f64(2.0));
    for l in 0..LANES {
        let (p0, p1, p2, p3, p4) = (p[0][l], p[1][l], p[2][l], p[3][l], p[4][l]);
        o[0][l] = half * (p0 + p1) + sixth * (p2 + p3);
        o[1][l] = half * p1 + sixth * (two * p3 - p2) + p4;
    }
}

/// Channels transformed together, one per vector lane.
const LANES: usize = 16;

/// Tiles per chunk of images: the depth of each chunk's products.
const CHUNK_TILES: usize = 128;

/// Columns (phase channels) per product task.
const NB: usize = 128;

/// A column of lanes.
type Lanes<T> = [T; LANES];

/// `Bᵀ d` ([`super::winograd2`]'s input transform) for the 5 rows `d` (each a vector of
/// lanes), the formulas written out so they compile to a few vector operations on registers.
#[inline(always)]
fn x_points<T: Element>(d: &[Lanes<T>; 5], o: &mut [Lanes<T>; 5]) {
    let (two, three) = (T::from_f64(2.0), T::from_f64(3.0));
    for l in 0..LANES {
        let (d0, d1, d2, d3, d4) = (d[0][l], d[1][l], d[2][l], d[3][l], d[4][l]);
        o[0][l] = two * (d0 - d2) + (d3 - d1);
        o[1][l] = two * d1 + (d2 - d3);
        o[2][l] = three * d2 - two * d1 - d3;
        o[3][l] = d3 - d1;
        o[4][l] = two * (d1 - d3) - d2 + d4;
    }
}

/// `A e` for the 4 rows `e`, `A` (5 × 4) being [`super::winograd2`]'s `Aᵀ` transposed.
#[inline(always)]
fn dy_points<T: Element>(e: &[Lanes<T>; 4], o: &mut [Lanes<T>; 5]) {
    let (two, four, eight) = (T::from_f64(2.0), T::from_f64(4.0), T::from_f64(8.0));
    for l in 0..LANES {
        let (e0, e1, e2, e3) = (e[0][l], e[1][l], e[2][l], e[3][l]);
        let (even, odd) = (e0 + e2, e1 + e3);
        o[0][l] = e0;
        o[1][l] = even + odd;
        o[2][l] = even - odd;
        o[3][l] = e0 + two * e1 + four * e2 + eight * e3;
        o[4][l] = e3;
    }
}

/// The `C × C` tile of `src` (channel-last, rows `stride` pixels apart, `ch` channels)
/// transformed by `f` on both sides into `dst[(a·5 + b)·ch + c]`, [`LANES`] channels at a
/// time (`ch` a multiple of [`LANES`]).
#[inline(always)]
fn transform<T: Element, const C: usize>(
    f: impl Fn(&[Lanes<T>; C], &mut [Lanes<T>; 5]),
    src: &[T],
    stride: usize,
    ch: usize,
    dst: &mut [T],
) {
    let mut d = [[T::ZERO; LANES]; C];
    let mut cols = [[[T::ZERO; LANES]; 5]; C];
    let mut out = [[T::ZERO; LANES]; 5];
    for c0 in (0..ch).step_by(LANES) {
        // f over each column, then over each row of the result.
        for (s, col) in cols.iter_mut().enumerate() {
            for (r, dr) in d.iter_mut().enumerate() {
                dr.copy_from_slice(&src[(r * stride + s) * ch + c0..][..LANES]);
            }
            f(&d, col);
        }
        for ai in 0..5 {
            for (dr, col) in d.iter_mut().zip(&cols) {
                *dr = col[ai];
            }
            f(&d, &mut out);
            for (b, lanes) in out.iter().enumerate() {
                dst[(ai * 5 + b) * ch + c0..][..LANES].copy_from_slice(lanes);
            }
        }
    }
}

/// `dw` (`[o, c, 4, 4]`) of a layer [`super::applies`] takes, for input `x` and output
/// gradient `dy`.
pub(in super::super) fn backward_weight<T: Element>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    let (c4, o) = (4 * g.c, g.o);
    // Channel counts rounded up to whole vectors of lanes (the extra lanes stay zero).
    let (c4p, op) = (c4.next_multiple_of(LANES), o.next_multiple_of(LANES));
    let (th, tw) = (g.oh.div_ceil(4), g.ow.div_ceil(4));
    let tpi = th * tw;
    let group = CHUNK_TILES.div_ceil(tpi).clamp(1, g.n);
    let cap = group * tpi;
    let nblocks = c4.div_ceil(NB);
    // Phase images channel-last, `[hp, wp, c4p]`, and `dy` so, `[4·th, 4·tw, op]`.
    let (hp, wp) = (4 * th + 1, 4 * tw + 1);
    let (xls, dls) = (Pool::new(hp * wp * c4p), Pool::new(16 * tpi * op));
    // Kept from call to call (fresh, their first touches were a sixth of this pass): each
    // chunk writes the transforms its products read, and the first chunk's products write
    // every element of `m` the end reads.
    let mut xt = scratch::take(cap * 25 * c4p);
    let mut dt = scratch::take(cap * 25 * op);
    let mut m = scratch::take(25 * nblocks * o * NB);
    let threads = threads_for(25 * g.n * tpi * o * c4, PAR_FLOPS);
    #[cfg(target_arch = "x86_64")]
    let isa = crate::cpu::isa();
    let ctx = Ctx {
        g,
        x,
        dy,
        pools: [&xls, &dls],
        hp,
        wp,
        tw,
        tpi,
    };
    for n0 in (0..g.n).step_by(group) {
        let count = group.min(g.n - n0);
        let (xb, db) = (Disjoint::new(&mut xt), Disjoint::new(&mut dt));
        run_tiles(count, threads, &|i| {
            // SAFETY: image i alone writes its tiles' transforms.
            let (xo, d_o) = unsafe {
                (
                    xb.range(i * tpi * 25 * c4p, tpi * 25 * c4p),
                    db.range(i * tpi * 25 * op, tpi * 25 * op),
                )
            };
            #[cfg(target_arch = "x86_64")]
            match isa {
                // SAFETY: `isa` is a level this CPU runs (see `cpu::isa`).
                crate::cpu::Isa::Avx512 => unsafe { ctx.image_avx512(n0 + i, xo, d_o) },
                // SAFETY: as above.
                crate::cpu::Isa::Avx2 => unsafe { ctx.image_avx2(n0 + i, xo, d_o) },
                _ => ctx.image(n0 + i, xo, d_o),
            }
            #[cfg(not(target_arch = "x86_64"))]
            ctx.image(n0 + i, xo, d_o);
        });
        let depth = count * tpi;
        let (xt, dt, mb) = (&xt[..], &dt[..], Disjoint::new(&mut m));
        run_tiles(25 * nblocks, threads, &|task| {
            let (xi, nb) = (task / nblocks, task % nblocks);
            let width = NB.min(c4 - nb * NB);
            // SAFETY: task `task` alone writes its block of `m`.
            let dst = unsafe { mb.range(task * o * NB, o * width) };
            let a = Mat {
                data: dt,
                rs: 1,
                cs: 25 * op,
                offset: xi * op,
            };
            let b = Mat {
                data: xt,
                rs: 25 * c4p,
                cs: 1,
                offset: xi * c4p + nb * NB,
            };
            gemm_packed(o, width, depth, a, b, dst, n0 > 0, 1);
        });
    }
    // dwp = Gᵀ M G per (o, c4), LANES phase channels at a time, written to
    // dw[o][c][2a + r][2b + s].
    let taps = g.c * 16;
    let mb = &m[..];
    crate::kernels::par::for_each_chunk_on(threads, &mut dw[..o * taps], taps, &|oi, out| {
        let mut v = [[T::ZERO; LANES]; 5];
        let mut rows = [[[T::ZERO; LANES]; 2]; 5];
        let mut res = [[T::ZERO; LANES]; 2];
        for nb in 0..nblocks {
            let width = NB.min(c4 - nb * NB);
            for c0 in (0..width).step_by(LANES) {
                let nl = LANES.min(width - c0);
                // Gᵀ over ξ for each η, then over η.
                for (eta, row) in rows.iter_mut().enumerate() {
                    for (xi, lanes) in v.iter_mut().enumerate() {
                        let at = ((xi * 5 + eta) * nblocks + nb) * o * NB + oi * width + c0;
                        lanes[..nl].copy_from_slice(&mb[at..][..nl]);
                    }
                    taps_from_points(&v, row);
                }
                for a in 0..2 {
                    for (lanes, row) in v.iter_mut().zip(&rows) {
                        *lanes = row[a];
                    }
                    taps_from_points(&v, &mut res);
                    for (b, lanes) in res.iter().enumerate() {
                        for (l, &val) in lanes[..nl].iter().enumerate() {
                            let ch = nb * NB + c0 + l;
                            let (c, r, s) = (ch / 4, ch % 4 / 2, ch % 2);
                            out[(c * 4 + 2 * a + r) * 4 + 2 * b + s] = val;
                        }
                    }
                }
            }
        }
    });
    scratch::put(xt);
    scratch::put(dt);
    scratch::put(m);
}

/// What every image of [`backward_weight`] reads.
struct Ctx<'a, T> {
    g: &'a ConvGeom,
    x: &'a [T],
    dy: &'a [T],
    pools: [&'a Pool<T>; 2],
    hp: usize,
    wp: usize,
    tw: usize,
    tpi: usize,
}

impl<T: Element> Ctx<'_, T> {
    /// [`Ctx::image`] compiled for AVX-512.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn image_avx512(&self, n: usize, xo: &mut [T], d_o: &mut [T]) {
        self.image(n, xo, d_o)
    }

    /// [`Ctx::image`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn image_avx2(&self, n: usize, xo: &mut [T], d_o: &mut [T]) {
        self.image(n, xo, d_o)
    }

    /// Image `n`'s tiles transformed: `xo[(t·25 + ξ)·c4p + ch]`, `d_o[(t·25 + ξ)·op + o]`.
    #[inline(always)]
    fn image(&self, n: usize, xo: &mut [T], d_o: &mut [T]) {
        let Ctx {
            g,
            x,
            dy,
            pools: [xls, dls],
            hp,
            wp,
            tw,
            tpi,
        } = *self;
        let (c4, o) = (4 * g.c, g.o);
        let (c4p, op) = (c4.next_multiple_of(LANES), o.next_multiple_of(LANES));
        let (mut xl, mut dl) = (xls.take(), dls.take());

        // Phase images up to row and column oh, ow (the last ones a 2×2 window reaches),
        // zeros beyond.
        let img = g.c * g.h * g.w;
        let lim = [(g.oh + 1).min(hp), (g.ow + 1).min(wp)];
        super::phase_pixels(g, &x[n * img..][..img], [hp, wp], lim, c4p, &mut xl);
        let dwd = 4 * tw;
        let (p, oimg) = (g.oh * g.ow, o * g.oh * g.ow);
        let dyi = &dy[n * oimg..][..oimg];
        for (y, row) in dl.chunks_exact_mut(dwd * op).enumerate() {
            for (xx, dst) in row.chunks_exact_mut(op).enumerate() {
                if y < g.oh && xx < g.ow {
                    let i = y * g.ow + xx;
                    dst[..o].iter_mut().enumerate().for_each(|(oc, d)| *d = dyi[oc * p + i]);
                } else {
                    dst[..o].fill(T::ZERO);
                }
            }
        }
        for t in 0..tpi {
            let (ty, tx) = (t / tw, t % tw);
            let xs = &xl[(ty * 4 * wp + tx * 4) * c4p..];
            transform(x_points, xs, wp, c4p, &mut xo[t * 25 * c4p..][..25 * c4p]);
            let ds = &dl[(ty * 4 * dwd + tx * 4) * op..];
            transform(dy_points, ds, dwd, op, &mut d_o[t * 25 * op..][..25 * op]);
        }
        xls.put(xl);
        dls.put(dl);
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::weight::im2col_backward_weight;
    use super::*;

    fn seq(len: usize, seed: f64) -> Vec<f64> {
        (0..len).map(|i| (i as f64 * 0.37 + seed).sin()).collect()
    }

    /// `[n, c, h, w]`, `o`, padding; 4×4 kernels, stride 2.
    fn geom(n: usize, c: usize, hw: [usize; 2], o: usize, pad: [usize; 2]) -> ConvGeom {
        ConvGeom::new([n, c, hw[0], hw[1]], [o, 4, 4], [2, 2], pad, [1, 1], 1)
    }

    #[test]
    fn matches_the_general_path() {
        // Odd and even sizes (a last row or column no window reaches), paddings 0 to 2,
        // non-square images, one image, channels not multiples of 16, more images than one
        // chunk holds (and a partial last chunk), more phase channels than one product
        // block, and DCGAN's 64 → 128 layer.
        for g in [
            geom(2, 17, [9, 8], 18, [1, 1]),
            geom(1, 16, [7, 7], 20, [0, 0]),
            geom(3, 19, [10, 11], 16, [2, 0]),
            geom(15, 16, [6, 5], 17, [2, 2]),
            geom(70, 17, [5, 6], 16, [1, 2]),
            geom(3, 40, [12, 9], 33, [0, 1]),
            geom(4, 64, [14, 14], 128, [1, 1]),
        ] {
            assert!(super::super::applies(&g), "{g:?}");
            let x = seq(g.n * g.c * g.h * g.w, 0.3);
            let dy = seq(g.n * g.o * g.p(), 0.9);
            let (mut want, mut got) = (vec![0.0; g.o * g.k()], vec![f64::NAN; g.o * g.k()]);
            im2col_backward_weight(&g, &x, &dy, &mut want);
            backward_weight(&g, &x, &dy, &mut got);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() < 1e-11 * (1.0 + b.abs()), "{g:?} at {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn f32_matches_f64_and_does_not_depend_on_the_thread_count() {
        // Three chunks, two product blocks.
        for g in [geom(70, 64, [14, 14], 128, [1, 1]), geom(9, 33, [11, 10], 20, [2, 1])] {
            let (x, dy) = (seq(g.n * g.c * g.h * g.w, 0.3), seq(g.n * g.o * g.p(), 0.9));
            let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
            let (xf, dyf) = (f(&x), f(&dy));
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let mut dw = vec![f32::NAN; g.o * g.k()];
                    backward_weight(&g, &xf, &dyf, &mut dw);
                    dw.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                })
            };
            let one = run(1);
            assert!(one == run(2), "{g:?}");
            assert!(one == run(3), "{g:?}");
            let mut want = vec![0.0; g.o * g.k()];
            im2col_backward_weight(&g, &x, &dy, &mut want);
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (a, b) in one.iter().zip(&want) {
                let a = f32::from_bits(*a) as f64;
                assert!((a - b).abs() < 2e-5 * scale, "{g:?}: {a} vs {b} (scale {scale})");
            }
        }
    }
}
