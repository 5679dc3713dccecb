//! The passes of [`super::winograd2`]'s convolutions: a call runs in three passes over the
//! threads, each of many small units, so a core that runs slower does not hold the other up
//! at the end (see [`staged`]). The transforms are plain loops over lane arrays, compiled
//! for the level in use.

use super::super::geom::ConvGeom;
use super::scratch::{self, Scratch};
use super::sets::{Formulas, Lanes, LANES};
use super::winograd2::{weight_slab, Sink};
use crate::kernels::matmul::{gemm_packed, Mat};
use crate::kernels::par::{run_tiles, Disjoint};
use crate::Element;

/// Images per unit of the staged passes' transforms.
const STAGE_IMAGES: usize = 4;

/// The distance between pixels of a task's staged outputs of `on` channels: a line more
/// than whole lines, so the sink's reads down a channel (a pixel apart) do not all fall in
/// the same few sets of L1 (1 KiB apart, DCGAN's input gradient's reads across 49 pixels and
/// four phases had 16 sets).
pub(super) fn stage_stride(on: usize) -> usize {
    on.next_multiple_of(LANES) + LANES
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

/// Images `c0 .. c0 + count` of [`run_set`] in three passes over the threads: every
/// [`STAGE_IMAGES`] images' input transforms into `V`, the A² products over all their tiles
/// (split in row halves where A² is odd, so two cores get the same work), every
/// [`STAGE_IMAGES`] images' output transforms. Before, a few tasks of whole image groups
/// each transformed, multiplied and wrote back (their `V` and `M` did not fit L2 either):
/// a core that ran slower held the other up at the end of each call, and every task read
/// and packed all of `U` (DCGAN's 64 → 128 forward, two threads: 6.8–7.2 → 5.5–5.6 ms; 40
/// training steps 7% faster, medians of five alternated runs).
pub(super) fn staged<T, L, S, const M: usize, const A: usize, P>(
    ctx: &Ctx<'_, T, L, S, M, A, P>,
    taps: &[T],
    c0: usize,
    count: usize,
    threads: usize,
) where
    T: Element,
    L: Fn(usize, usize, usize, &mut [T]) + Sync,
    S: Sink<T>,
    P: Formulas<M, A>,
{
    let (g, tpi) = (ctx.g, ctx.tpi);
    let rows = count * tpi;
    let (mut v, mut m) = (scratch::take(A * A * g.c * rows), scratch::take(A * A * g.o * rows));
    let units = count.div_ceil(STAGE_IMAGES);
    // Unit i's images `n0 .. n0 + count`, their first tile `t0` among the chunk's rows.
    let unit = |i: usize| {
        let first = i * STAGE_IMAGES;
        (c0 + first, STAGE_IMAGES.min(count - first), first * tpi)
    };
    let vb = Disjoint::new(&mut v);
    run_tiles(units, threads, &|i| {
        let (n0, count, t0) = unit(i);
        ctx.run_job(Job::Inputs {
            n0,
            count,
            v: vb,
            rows,
            t0,
        })
    });
    let parts = if (A * A) % 2 == 1 && rows > 1 { 2 } else { 1 };
    let part_rows = rows.div_ceil(parts);
    let (vr, mb) = (&v[..], Disjoint::new(&mut m));
    let slabs = Scratch(g.c * g.o);
    run_tiles(A * A * parts, threads, &|task| {
        let (xi, r0) = (task / parts, task % parts * part_rows);
        let nr = part_rows.min(rows - r0);
        // Both row halves of an odd A² make the same U[ξ]: a few µs of work each, against
        // handing one half's slab to the other across threads.
        let mut ux = slabs.take();
        weight_slab::<T, M, A, P>(taps, g.o, xi, &mut ux);
        let a = Mat {
            data: vr,
            rs: g.c,
            cs: 1,
            offset: (xi * rows + r0) * g.c,
        };
        let b = Mat {
            data: &ux,
            rs: g.o,
            cs: 1,
            offset: 0,
        };
        // SAFETY: this task alone writes rows r0..r0 + nr of product ξ's slab of `M`.
        let dst = unsafe { mb.range((xi * rows + r0) * g.o, nr * g.o) };
        gemm_packed(nr, g.o, g.c, a, b, dst, false, 1);
        slabs.put(ux);
    });
    let mr = &m[..];
    run_tiles(units, threads, &|i| {
        let (n0, count, t0) = unit(i);
        ctx.run_job(Job::Outputs {
            n0,
            count,
            m: mr,
            rows,
            t0,
        })
    });
    scratch::put(v);
    scratch::put(m);
}

/// What every unit of [`run`] shares.
pub(super) struct Ctx<'a, T, L, S, const M: usize, const A: usize, P> {
    /// The transform set.
    pub(super) set: std::marker::PhantomData<P>,
    /// The stride-1 geometry.
    pub(super) g: &'a ConvGeom,
    /// Writes an image channel-last (see [`super::winograd2::forward_with`]).
    pub(super) load: &'a L,
    /// Where the outputs go.
    pub(super) sink: &'a S,
    /// The output.
    pub(super) base: Disjoint<T>,
    /// Per-unit buffers: one image channel-last, one image's staged outputs.
    pub(super) pools: [&'a Scratch; 2],
    /// The channel-last image's rows and columns (padding and tile overhang included).
    pub(super) hp: usize,
    /// As `hp`.
    pub(super) wp: usize,
    /// Tiles per row.
    pub(super) tw: usize,
    /// Whether this is the adjoint of the convolution (see [`super::winograd2::run_adjoint`]):
    /// `M × M` tiles of the input to A×A points by `A e Aᵀ`, outputs `B m Bᵀ` (`A × A`).
    pub(super) adjoint: bool,
    /// Tiles per image.
    pub(super) tpi: usize,
}

impl<T, L, S, const M: usize, const A: usize, P> Ctx<'_, T, L, S, M, A, P>
where
    T: Element,
    L: Fn(usize, usize, usize, &mut [T]) + Sync,
    S: Sink<T>,
    P: Formulas<M, A>,
{
    /// [`Ctx::job`] compiled for AVX-512.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn job_avx512(&self, job: Job<'_, T>) {
        self.job(job)
    }

    /// [`Ctx::job`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn job_avx2(&self, job: Job<'_, T>) {
        self.job(job)
    }

    /// `job` at the level in use: the transforms are plain loops over lane arrays, which
    /// compiled for the level vectorize to its width (the baseline build has 4-wide SSE only).
    fn run_job(&self, job: Job<'_, T>) {
        #[cfg(target_arch = "x86_64")]
        match crate::cpu::isa() {
            // SAFETY: `isa` is a level this CPU runs (see `cpu::isa`).
            crate::cpu::Isa::Avx512 => unsafe { self.job_avx512(job) },
            // SAFETY: as above.
            crate::cpu::Isa::Avx2 => unsafe { self.job_avx2(job) },
            _ => self.job(job),
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.job(job);
    }

    #[inline(always)]
    fn job(&self, job: Job<'_, T>) {
        match job {
            Job::Inputs { n0, count, v, rows, t0 } => self.inputs(n0, count, v, rows, t0),
            Job::Outputs { n0, count, m, rows, t0 } => self.outputs(n0, count, m, rows, t0),
        }
    }

    /// Input transform of images `n0 .. n0 + count`, [`LANES`] channels at a time:
    /// `V[ξ][t0 + t][c]` (`rows` tiles per `ξ`) for the images' tiles `t`.
    // Column `s` of every row of `t1` (rows are A arrays).
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn inputs(&self, n0: usize, count: usize, v: Disjoint<T>, rows: usize, t0: usize) {
        let Ctx {
            g,
            load,
            pools: [xs, _],
            hp,
            wp,
            tw,
            tpi,
            ..
        } = *self;
        let ch = g.c;
        let mut xl = xs.take();
        let (mut d, mut e) = ([[T::ZERO; LANES]; A], [[T::ZERO; LANES]; M]);
        let (mut t1, mut t2) = ([[[T::ZERO; LANES]; A]; A], [[T::ZERO; LANES]; A]);
        for i in 0..count {
            load(n0 + i, hp, wp, &mut xl);
            for t in i * tpi..(i + 1) * tpi {
                let (ty, tx) = (t % tpi / tw, t % tw);
                for c0 in (0..ch).step_by(LANES) {
                    let nl = LANES.min(ch - c0);
                    let at = |r: usize, s: usize| &xl[((ty * M + r) * wp + tx * M + s) * ch + c0..];
                    if self.adjoint {
                        // A e, one column of the M × M tile at a time, then (A e) Aᵀ.
                        for s in 0..M {
                            for (r, er) in e.iter_mut().enumerate() {
                                copy(&mut er[..], at(r, s), nl);
                            }
                            P::dy_points(&e, &mut t2);
                            for a in 0..A {
                                t1[a][s] = t2[a];
                            }
                        }
                        for (a, row) in t1.iter().enumerate() {
                            e.copy_from_slice(&row[..M]);
                            P::dy_points(&e, &mut t2);
                            self.put_points(v, rows, t0 + t, a, c0, nl, &t2);
                        }
                        continue;
                    }
                    // Bᵀ d, one column of the tile at a time.
                    for s in 0..A {
                        for (r, dr) in d.iter_mut().enumerate() {
                            copy(&mut dr[..], at(r, s), nl);
                        }
                        P::x_points(&d, &mut t2);
                        for a in 0..A {
                            t1[a][s] = t2[a];
                        }
                    }
                    // (Bᵀ d) B, row by row.
                    for (a, row) in t1.iter().enumerate() {
                        P::x_points(row, &mut t2);
                        self.put_points(v, rows, t0 + t, a, c0, nl, &t2);
                    }
                }
            }
        }
        xs.put(xl);
    }

    /// Row `a` of a tile's points (`t2[b]` is point `a·A + b`) into `V[ξ][row][c0..c0 + nl]`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn put_points(&self, v: Disjoint<T>, rows: usize, row: usize, a: usize, c0: usize, nl: usize, t2: &[Lanes<T>; A]) {
        let ch = self.g.c;
        for (b, lanes) in t2.iter().enumerate() {
            // SAFETY: these images' tiles are this caller's alone, inside `V` (A² · rows ·
            // ch elements), which outlives the call.
            let dst = unsafe { v.range(((a * A + b) * rows + row) * ch + c0, nl) };
            copy(dst, lanes, nl);
        }
    }

    /// Output transform of images `n0 .. n0 + count` from `M[ξ][t0 + t][o]` (`rows` tiles
    /// per `ξ`), written out by the sink.
    #[inline(always)]
    fn outputs(&self, n0: usize, count: usize, m: &[T], rows: usize, t0: usize) {
        let Ctx {
            g,
            sink,
            base,
            pools: [_, ss],
            tw,
            tpi,
            ..
        } = *self;
        let (oimg, o_lo, on) = (sink.image_len(), 0, g.o);
        let mut mm = [[[T::ZERO; LANES]; A]; A];
        let mut rm = [[[T::ZERO; LANES]; M]; A];
        let mut res = [[T::ZERO; LANES]; M];
        let (mut ra, mut resa) = ([[[T::ZERO; LANES]; A]; A], [[T::ZERO; LANES]; A]);
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
                        copy(&mut lanes[..], &m[(xi * rows + t0 + t) * on + o0..], nl);
                    }
                    if self.adjoint {
                        // m Bᵀ, row by row, then B (m Bᵀ) column by column: the tile's
                        // outputs (one tile per image: neighbours' would overlap), those
                        // past `oh × ow` dropped.
                        for (row, r) in mm.iter().zip(ra.iter_mut()) {
                            P::x_adjoint(|k, l| row[k][l], r);
                        }
                        #[allow(clippy::needless_range_loop)]
                        for b in 0..g.ow {
                            P::x_adjoint(|k, l| ra[k][b][l], &mut resa);
                            for (a, lanes) in resa.iter().enumerate().take(g.oh) {
                                copy(&mut stage[(a * g.ow + b) * sp + o0..], lanes, nl);
                            }
                        }
                        continue;
                    }
                    // m A, row by row, then Aᵀ (m A) column by column.
                    for (row, r) in mm.iter().zip(rm.iter_mut()) {
                        P::y_points(|k, l| row[k][l], r);
                    }
                    // Column b of every row of `rm` (rows are A arrays).
                    #[allow(clippy::needless_range_loop)]
                    for b in 0..M.min(g.ow - tx * M) {
                        P::y_points(|k, l| rm[k][b][l], &mut res);
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
                // SAFETY: this caller alone writes images n0..n0 + count (the sink maps
                // distinct channels and positions to distinct elements of an image's output,
                // inside it), and `out` stays borrowed for the call.
                unsafe { base.range(img + at, 1)[0] = v }
            });
        }
        ss.put(stage);
    }
}

/// A unit of [`run_set`]'s work on one thread.
enum Job<'a, T> {
    /// The input transforms of images `n0 .. n0 + count` into the shared `V` (`rows`
    /// tiles per `ξ`, theirs from `t0`).
    Inputs {
        n0: usize,
        count: usize,
        v: Disjoint<T>,
        rows: usize,
        t0: usize,
    },
    /// The output transforms of images `n0 .. n0 + count` from the shared `M` (as `V`).
    Outputs {
        n0: usize,
        count: usize,
        m: &'a [T],
        rows: usize,
        t0: usize,
    },
}
