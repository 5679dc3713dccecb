//! The weight gradient of stride-2 4×4 convolutions (DCGAN's 64 → 128 layer, and the weight
//! gradient of its 128 → 64 transposed convolution, which is the same computation) over phase
//! images by the adjoint of Winograd's F(4×4, 2×2) or F(7×7, 2×2).
//!
//! Per phase `(r, s)` the 4×4 stride-2 gradient is a 2×2 stride-1 one,
//! `dwp[o][c·4 + 2r + s][a, b] = Σ_n Σ_{u,v} xp[n][c·4 + 2r + s][u + a, v + b] · dy[n][o][u, v]`
//! (phase images as in [`super`]). It is the adjoint of [`super::winograd2`]'s
//! F(M×M, 2×2): from `y = Aᵀ[(G w) ⊙ (Bᵀ d)]`, `dw = Gᵀ[(A dy) ⊙ (Bᵀ d)]` per M×M `dy`
//! tile and A×A `xp` tile (`A = M + 1`), so the sum over tiles `t` (of every image) becomes
//! A² products `M[ξ][o][c4] = Σ_t DY[t][ξ][o] · XP[t][ξ][c4]` — 128 × 256 × tiles at
//! DCGAN's layer — and one 2×2 transform `Gᵀ M[·][o][c4] G` per weight pair at the end,
//! where the fractions of `G` are applied once. The set is the forward's ([`use_f7`]):
//! F(7×7) covers DCGAN's 7×7 maps with one tile, 64 multiplies per image where F(4×4)'s
//! four tiles take 100 (and direct, 196).
//!
//! Images go in chunks of about [`CHUNK_TILES`] tiles: each chunk's transforms run per image
//! over the threads, then its A² products, each split into column blocks of [`NB`], one
//! block per task on one thread, added to the previous chunks' in chunk order. The split is
//! fixed by the shapes, so the result does not depend on the thread count.
//!
//! Measured at batch 128, 64 → 128 channels, 14×14 → 7×7, one thread, CPU time (AVX-512,
//! loaded machine, best of 15): 16.0 ms by grouped im2col, 12.2 ms by F(4×4) (about 6 in
//! the products, 4.5 in the transforms, mostly the channel-last copies of `x` and `dy`); at
//! AVX2 25.5 → 21.7 ms. The transforms are written-out formulas: with loops over the
//! matrices' entries (as `winograd2` has them) F(4×4) took 17.2 ms, and F(7×7) was slower
//! than F(4×4). Written out, F(7×7) took 8.6–9.3 ms against F(4×4)'s 11.6–12.0 (AVX2:
//! 13.8–14.6 against 19.7–20.0; two threads, wall: 4.1–4.2 against 5.7–5.8), in one chunk
//! of the whole batch (chunks of 64 or 32 images were slower). Its f32 error is 2.5–4
//! times F(4×4)'s, as in the forward (see the f32 test).

use super::super::geom::ConvGeom;
use super::super::grouped::Pool;
use super::scratch;
use super::sets::{use_f7, Formulas, Lanes, F4, F7, LANES};
use crate::kernels::matmul::{gemm_packed, Mat, PAR_FLOPS};
use crate::kernels::par::{run_tiles, threads_for, Disjoint};
use crate::Element;

/// Tiles per chunk of images: the depth of each chunk's products.
const CHUNK_TILES: usize = 128;

/// Columns (phase channels) per product task.
const NB: usize = 128;

/// The `C × C` tile of `src` (channel-last, rows `stride` pixels apart, `ch` channels)
/// transformed by `f` on both sides into `dst[(a·A + b)·ch + c]`, [`LANES`] channels at a
/// time (`ch` a multiple of [`LANES`]).
#[inline(always)]
fn transform<T: Element, const C: usize, const A: usize>(
    f: impl Fn(&[Lanes<T>; C], &mut [Lanes<T>; A]),
    src: &[T],
    stride: usize,
    ch: usize,
    dst: &mut [T],
) {
    let mut d = [[T::ZERO; LANES]; C];
    let mut cols = [[[T::ZERO; LANES]; A]; C];
    let mut out = [[T::ZERO; LANES]; A];
    for c0 in (0..ch).step_by(LANES) {
        // f over each column, then over each row of the result.
        for (s, col) in cols.iter_mut().enumerate() {
            for (r, dr) in d.iter_mut().enumerate() {
                dr.copy_from_slice(&src[(r * stride + s) * ch + c0..][..LANES]);
            }
            f(&d, col);
        }
        for ai in 0..A {
            for (dr, col) in d.iter_mut().zip(&cols) {
                *dr = col[ai];
            }
            f(&d, &mut out);
            for (b, lanes) in out.iter().enumerate() {
                dst[(ai * A + b) * ch + c0..][..LANES].copy_from_slice(lanes);
            }
        }
    }
}

/// `dw` (`[o, c, 4, 4]`) of a layer [`super::applies`] takes, for input `x` and output
/// gradient `dy`: by the adjoint of F(7×7, 2×2) where the forward takes that set (see
/// [`use_f7`]), of F(4×4, 2×2) elsewhere.
pub(in super::super) fn backward_weight<T: Element>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    if use_f7(g.oh, g.ow) {
        run::<T, 7, 8, F7>(g, x, dy, dw)
    } else {
        run::<T, 4, 5, F4>(g, x, dy, dw)
    }
}

/// [`backward_weight`] by the set `P`: F(M×M, 2×2), `A = M + 1` points.
fn run<T: Element, const M: usize, const A: usize, P: Formulas<M, A>>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    let (c4, o) = (4 * g.c, g.o);
    // Channel counts rounded up to whole vectors of lanes (the extra lanes stay zero).
    let (c4p, op) = (c4.next_multiple_of(LANES), o.next_multiple_of(LANES));
    let (th, tw) = (g.oh.div_ceil(M), g.ow.div_ceil(M));
    let tpi = th * tw;
    let group = CHUNK_TILES.div_ceil(tpi).clamp(1, g.n);
    let cap = group * tpi;
    let nblocks = c4.div_ceil(NB);
    // Phase images channel-last, `[hp, wp, c4p]`, and `dy` so, `[4·th, 4·tw, op]`.
    let (hp, wp) = (M * th + 1, M * tw + 1);
    let (xls, dls) = (Pool::new(hp * wp * c4p), Pool::new(M * M * tpi * op));
    // Kept from call to call (fresh, their first touches were a sixth of this pass): each
    // chunk writes the transforms its products read, and the first chunk's products write
    // every element of `m` the end reads.
    let aa = A * A;
    let mut xt = scratch::take(cap * aa * c4p);
    let mut dt = scratch::take(cap * aa * op);
    let mut m = scratch::take(aa * nblocks * o * NB);
    let threads = threads_for(aa * g.n * tpi * o * c4, PAR_FLOPS);
    #[cfg(target_arch = "x86_64")]
    let isa = crate::cpu::isa();
    let ctx = Ctx::<T, M, A, P> {
        set: std::marker::PhantomData,
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
                    xb.range(i * tpi * aa * c4p, tpi * aa * c4p),
                    db.range(i * tpi * aa * op, tpi * aa * op),
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
        run_tiles(aa * nblocks, threads, &|task| {
            let (xi, nb) = (task / nblocks, task % nblocks);
            let width = NB.min(c4 - nb * NB);
            // SAFETY: task `task` alone writes its block of `m`.
            let dst = unsafe { mb.range(task * o * NB, o * width) };
            let a = Mat {
                data: dt,
                rs: 1,
                cs: aa * op,
                offset: xi * op,
            };
            let b = Mat {
                data: xt,
                rs: aa * c4p,
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
        let mut v = [[T::ZERO; LANES]; A];
        let mut rows = [[[T::ZERO; LANES]; 2]; A];
        let mut res = [[T::ZERO; LANES]; 2];
        for nb in 0..nblocks {
            let width = NB.min(c4 - nb * NB);
            for c0 in (0..width).step_by(LANES) {
                let nl = LANES.min(width - c0);
                // Gᵀ over ξ for each η, then over η.
                for (eta, row) in rows.iter_mut().enumerate() {
                    for (xi, lanes) in v.iter_mut().enumerate() {
                        let at = ((xi * A + eta) * nblocks + nb) * o * NB + oi * width + c0;
                        lanes[..nl].copy_from_slice(&mb[at..][..nl]);
                    }
                    P::taps_from_points(&v, row);
                }
                for a in 0..2 {
                    for (lanes, row) in v.iter_mut().zip(&rows) {
                        *lanes = row[a];
                    }
                    P::taps_from_points(&v, &mut res);
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

/// What every image of [`run`] reads.
struct Ctx<'a, T, const M: usize, const A: usize, P> {
    set: std::marker::PhantomData<P>,
    g: &'a ConvGeom,
    x: &'a [T],
    dy: &'a [T],
    pools: [&'a Pool<T>; 2],
    hp: usize,
    wp: usize,
    tw: usize,
    tpi: usize,
}

impl<T: Element, const M: usize, const A: usize, P: Formulas<M, A>> Ctx<'_, T, M, A, P> {
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

    /// Image `n`'s tiles transformed: `xo[(t·A² + ξ)·c4p + ch]`, `d_o[(t·A² + ξ)·op + o]`.
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
            ..
        } = *self;
        let (c4, o) = (4 * g.c, g.o);
        let (c4p, op) = (c4.next_multiple_of(LANES), o.next_multiple_of(LANES));
        let (mut xl, mut dl) = (xls.take(), dls.take());

        // Phase images up to row and column oh, ow (the last ones a 2×2 window reaches),
        // zeros beyond.
        let img = g.c * g.h * g.w;
        let lim = [(g.oh + 1).min(hp), (g.ow + 1).min(wp)];
        super::phase_pixels(g, &x[n * img..][..img], [hp, wp], lim, c4p, &mut xl);
        let dwd = M * tw;
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
            let aa = A * A;
            let xs = &xl[(ty * M * wp + tx * M) * c4p..];
            transform(P::x_points, xs, wp, c4p, &mut xo[t * aa * c4p..][..aa * c4p]);
            let ds = &dl[(ty * M * dwd + tx * M) * op..];
            transform(P::dy_points, ds, dwd, op, &mut d_o[t * aa * op..][..aa * op]);
        }
        xls.put(xl);
        dls.put(dl);
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::weight::im2col_backward_weight;
    use super::super::testdata::error_over_largest;
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
        // DCGAN's 64 → 128 layer (F(7×7), one chunk) and a layer by F(4×4) in three chunks
        // with two product blocks.
        for g in [geom(70, 64, [14, 14], 128, [1, 1]), geom(90, 33, [11, 10], 20, [2, 1])] {
            let (x, dy) = (seq(g.n * g.c * g.h * g.w, 0.3), seq(g.n * g.o * g.p(), 0.9));
            let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
            let (xf, dyf) = (f(&x), f(&dy));
            let run_on = |threads: usize, set: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let mut dw = vec![f32::NAN; g.o * g.k()];
                    match set {
                        4 => run::<_, 4, 5, F4>(&g, &xf, &dyf, &mut dw),
                        7 => run::<_, 7, 8, F7>(&g, &xf, &dyf, &mut dw),
                        _ => im2col_backward_weight(&g, &xf, &dyf, &mut dw),
                    }
                    dw
                })
            };
            let bits = |v: Vec<f32>| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let set = if use_f7(g.oh, g.ow) { 7 } else { 4 };
            let one = bits(run_on(1, set));
            assert!(one == bits(run_on(2, set)), "{g:?}");
            assert!(one == bits(run_on(3, set)), "{g:?}");
            let mut want = vec![0.0; g.o * g.k()];
            im2col_backward_weight(&g, &x, &dy, &mut want);
            let err = |got: &[f32]| error_over_largest(got, &want, 1.0);
            let (e4, e7, e) = (err(&run_on(1, 4)), err(&run_on(1, 7)), err(&run_on(1, 0)));
            println!("{g:?}: f32 error over the largest entry: im2col {e:.2e}, F(4×4) {e4:.2e}, F(7×7) {e7:.2e}");
            assert!(e4 < 2e-5 && e7 < 5e-5 && e7 < 5.0 * e4, "F(4×4) {e4:e}, F(7×7) {e7:e}");
        }
    }
}
