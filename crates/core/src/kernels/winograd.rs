//! Winograd F(2×2, 3×3) for 3×3, stride-1 convolutions: each 2×2 block of output comes
//! from a 4×4 block of input with 16 multiplies per channel pair instead of 36, so the
//! GEMMs do 2.25× less work than im2col's. Used for the forward pass, the input gradient
//! (a 3×3 stride-1 convolution with rotated, transposed weights) and the weight gradient.
//!
//! With `d` a 4×4 input tile, `g` a 3×3 kernel and `y` the 2×2 output tile,
//! `y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`. Per image, the 16 positions ξ of the transformed
//! tiles are 16 independent GEMMs: `M[ξ] (o × tiles) = U[ξ] (o × c) · V[ξ] (c × tiles)`.
//! The weight gradient is the adjoint: `dg = Gᵀ [Σ_tiles (A dy Aᵀ) ⊙ (Bᵀ d B)] G`.
//!
//! Images are processed in groups whose tiles sit side by side as the GEMMs' columns: a
//! deep layer's image has only a few tiles (4 at 4×4), and 16 products with 4 columns each
//! (or, for the weight gradient, a sum over 4 tiles into a c × o matrix per image) spend
//! their time on memory, not arithmetic. Within a group the transforms are split over
//! channels and the 16 products over ξ, each product on one thread.

use super::conv::ConvGeom;
use super::matmul::{gemm, Mat, PAR_FLOPS};
use super::par::for_each_chunk_on;
use crate::Element;
use std::ops::Range;

/// Images are grouped until the products have at least this many columns (2×2 tiles).
const GROUP_COLS: usize = 512;

/// Transform tasks per group (channel ranges), enough to balance a few threads.
const TRANSFORM_TASKS: usize = 8;

/// Whether a convolution takes the Winograd path: one [`supports`], with enough channels
/// and tiles for the GEMMs to pay for the transforms. Below 16×16 outputs im2col ran
/// faster (ResNet-18 at batch 32: 8×8 256→256 forward 17.9 → 11.9 ms, 4×4 512→512
/// 20.6 → 12.2 ms): a tile row of 2 or 4 tiles is too short for the transforms' vectors.
pub fn applies(g: &ConvGeom) -> bool {
    supports(g) && g.c >= 16 && g.o >= 16 && g.oh * g.ow >= 256
}

/// Whether the Winograd kernels can compute a convolution: 3×3, stride 1, no dilation, one
/// group, padding up to 2 (so the input gradient is a 3×3 convolution too), 4×4 or more.
pub fn supports(g: &ConvGeom) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.groups == 1
        && g.padding[0] <= 2
        && g.padding[1] <= 2
        && g.oh >= 4
        && g.ow >= 4
        && g.h >= 4
        && g.w >= 4
}

/// Sizes of one Winograd convolution of `cin → cout` channels, `ihw → ohw`, with `pad`.
#[derive(Clone, Copy)]
struct Plan {
    cin: usize,
    cout: usize,
    ihw: [usize; 2],
    ohw: [usize; 2],
    pad: [usize; 2],
    /// Tile rows and columns (2×2 outputs each).
    tiles: [usize; 2],
}

impl Plan {
    fn new(cin: usize, cout: usize, ihw: [usize; 2], ohw: [usize; 2], pad: [usize; 2]) -> Plan {
        Plan {
            cin,
            cout,
            ihw,
            ohw,
            pad,
            tiles: [ohw[0].div_ceil(2), ohw[1].div_ceil(2)],
        }
    }

    fn t(&self) -> usize {
        self.tiles[0] * self.tiles[1]
    }
}

/// One image's transform, run by [`Transform::run`] compiled for the widest vectors the
/// CPU has (AVX-512, else AVX2, else the baseline SSE2): the transforms are elementwise
/// loops, inlined into a function with those features, which then run 16 lanes wide.
enum Transform<'a, T> {
    /// [`input_transform`].
    Input {
        p: &'a Plan,
        x: &'a [T],
        chans: Range<usize>,
        v: &'a mut [T],
        cols: Cols,
    },
    /// [`output_transform`].
    Output {
        p: &'a Plan,
        m: &'a [T],
        bias: Option<&'a [T]>,
        y: &'a mut [T],
        cols: Cols,
    },
    /// [`output_transform_adjoint`].
    Adjoint {
        p: &'a Plan,
        dy: &'a [T],
        chans: Range<usize>,
        dm: &'a mut [T],
        cols: Cols,
    },
}

/// Where one image's tiles sit in a group's buffers: rows of `ld` columns, this image's
/// tiles from column `first`.
#[derive(Clone, Copy)]
struct Cols {
    ld: usize,
    first: usize,
}

impl<T: Element> Transform<'_, T> {
    #[inline(always)]
    fn body(self) {
        match self {
            Transform::Input { p, x, chans, v, cols } => input_transform(p, x, chans, v, cols),
            Transform::Output { p, m, bias, y, cols } => output_transform(p, m, bias, y, cols),
            Transform::Adjoint { p, dy, chans, dm, cols } => output_transform_adjoint(p, dy, chans, dm, cols),
        }
    }

    fn run(self) {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            fn avx512<T: Element>(t: Transform<'_, T>) {
                t.body()
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2<T: Element>(t: Transform<'_, T>) {
                t.body()
            }
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, checked just above.
                return unsafe { avx512(self) };
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                return unsafe { avx2(self) };
            }
        }
        self.body()
    }
}

/// `d = a ∘ b` elementwise over equal-length runs (the transforms' only loop shape,
/// so they vectorize).
#[inline(always)]
fn zip2<T: Element>(d: &mut [T], a: &[T], b: &[T], f: impl Fn(T, T) -> T) {
    for ((d, &a), &b) in d.iter_mut().zip(a).zip(b) {
        *d = f(a, b);
    }
}

/// Put `src` at column `pad` of a zero row split as `[even columns | odd columns]`
/// (`row` holds both halves; columns past its end are dropped).
#[inline(always)]
fn deinterleave<T: Element>(src: &[T], pad: usize, row: &mut [T]) {
    let half = row.len() / 2;
    let (e, o) = row.split_at_mut(half);
    let mut src = src;
    if pad % 2 == 1 {
        if let (Some((&first, rest)), Some(slot)) = (src.split_first(), o.get_mut(pad / 2)) {
            *slot = first;
            src = rest;
        }
    }
    let k0 = pad.div_ceil(2).min(half);
    let pairs = src.chunks_exact(2);
    let last = pairs.remainder().first().copied();
    let n = pairs.len();
    for (pair, (de, dodd)) in pairs.zip(e[k0..].iter_mut().zip(o[k0..].iter_mut())) {
        *de = pair[0];
        *dodd = pair[1];
    }
    if let (Some(v), Some(slot)) = (last, e.get_mut(k0 + n)) {
        *slot = v;
    }
}

/// `Bᵀ d B` for every 4×4 input tile of channels `chans` of one image `x` (`[cin, h, w]`)
/// into `v` (`[chans, 16, cols.ld]`, this image's tiles from column `cols.first`), zeros
/// outside the input.
///
/// Each padded input row is first split into its even and odd columns; tile `tx` then
/// reads columns `(E[tx], O[tx], E[tx+1], O[tx+1])`, so both transform stages are
/// elementwise over a whole row of tiles.
#[inline(always)]
fn input_transform<T: Element>(p: &Plan, x: &[T], chans: Range<usize>, v: &mut [T], cols: Cols) {
    let ([h, w], [th, tw]) = (p.ihw, p.tiles);
    let c0 = chans.start;
    let half = tw + 1;
    let rows = 2 * th + 2;
    // Per channel: the padded rows, de-interleaved: row r is [E (half) | O (half)].
    let mut split = vec![T::ZERO; rows * 2 * half];
    let mut u = vec![T::ZERO; 4 * 2 * half];
    for c in chans {
        split.fill(T::ZERO);
        for (r, sr) in split.chunks_mut(2 * half).enumerate() {
            let ih = r as isize - p.pad[0] as isize;
            if ih < 0 || ih >= h as isize {
                continue;
            }
            deinterleave(&x[(c * h + ih as usize) * w..][..w], p.pad[1], sr);
        }
        for ty in 0..th {
            let row = |i: usize| &split[(2 * ty + i) * 2 * half..][..2 * half];
            let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
            // Bᵀ over the tile's rows: (d0 − d2, d1 + d2, d2 − d1, d1 − d3).
            let (u0, rest) = u.split_at_mut(2 * half);
            let (u1, rest) = rest.split_at_mut(2 * half);
            let (u2, u3) = rest.split_at_mut(2 * half);
            zip2(u0, r0, r2, |a, b| a - b);
            zip2(u1, r1, r2, |a, b| a + b);
            zip2(u2, r2, r1, |a, b| a - b);
            zip2(u3, r1, r3, |a, b| a - b);
            // B over the columns, the same combination on (E[tx], O[tx], E[tx+1], O[tx+1]).
            for (i, ui) in [&*u0, &*u1, &*u2, &*u3].into_iter().enumerate() {
                let (e, o) = ui.split_at(half);
                let dst = |j: usize| ((c - c0) * 16 + i * 4 + j) * cols.ld + cols.first + ty * tw;
                zip2(&mut v[dst(0)..][..tw], &e[..tw], &e[1..], |a, b| a - b);
                zip2(&mut v[dst(1)..][..tw], &o[..tw], &e[1..], |a, b| a + b);
                zip2(&mut v[dst(2)..][..tw], &e[1..], &o[..tw], |a, b| a - b);
                zip2(&mut v[dst(3)..][..tw], &o[..tw], &o[1..], |a, b| a - b);
            }
        }
    }
}

/// `Aᵀ m A` of one image's tiles in `m` (`[16, cout, cols.ld]`, from column `cols.first`)
/// into the image `y` (`[cout, oh, ow]`), dropping outputs past the edge and adding `bias`.
#[inline(always)]
fn output_transform<T: Element>(p: &Plan, m: &[T], bias: Option<&[T]>, y: &mut [T], cols: Cols) {
    let ([oh, ow], [th, tw]) = (p.ohw, p.tiles);
    let plane = p.cout * cols.ld;
    let mut r = vec![T::ZERO; 8 * tw];
    let (mut even, mut odd) = (vec![T::ZERO; tw], vec![T::ZERO; tw]);
    for o in 0..p.cout {
        let b = bias.map_or(T::ZERO, |b| b[o]);
        for ty in 0..th {
            let mm = |xi: usize| &m[xi * plane + o * cols.ld + cols.first + ty * tw..][..tw];
            // Aᵀ over rows: r0 = m0 + m1 + m2, r1 = m1 − m2 − m3 (for each column j).
            for j in 0..4 {
                let (r0, r1) = r.split_at_mut(4 * tw);
                let (r0, r1) = (&mut r0[j * tw..][..tw], &mut r1[j * tw..][..tw]);
                zip2(r0, mm(j), mm(4 + j), |a, b| a + b);
                for (d, &c) in r0.iter_mut().zip(mm(8 + j)) {
                    *d += c;
                }
                zip2(r1, mm(4 + j), mm(8 + j), |a, b| a - b);
                for (d, &c) in r1.iter_mut().zip(mm(12 + j)) {
                    *d = *d - c;
                }
            }
            for a in 0..2 {
                let oy = 2 * ty + a;
                if oy >= oh {
                    continue;
                }
                let ra = |j: usize| &r[(a * 4 + j) * tw..][..tw];
                // A over columns: even = r0 + r1 + r2, odd = r1 − r2 − r3.
                zip2(&mut even, ra(0), ra(1), |x, y| x + y + b);
                for (d, &c) in even.iter_mut().zip(ra(2)) {
                    *d += c;
                }
                zip2(&mut odd, ra(1), ra(2), |x, y| x - y + b);
                for (d, &c) in odd.iter_mut().zip(ra(3)) {
                    *d = *d - c;
                }
                let row = &mut y[(o * oh + oy) * ow..][..ow];
                for (pair, (&e, &od)) in row.chunks_mut(2).zip(even.iter().zip(&odd)) {
                    pair[0] = e;
                    if let Some(s) = pair.get_mut(1) {
                        *s = od;
                    }
                }
            }
        }
    }
}

/// Adjoint of [`output_transform`]: `A dy Aᵀ` of every 2×2 output tile of channels `chans`
/// of one image `dy` (`[cout, oh, ow]`, zero past the edge) into `dm`
/// (`[chans, 16, cols.ld]`, this image's tiles from column `cols.first`).
#[inline(always)]
fn output_transform_adjoint<T: Element>(p: &Plan, dy: &[T], chans: Range<usize>, dm: &mut [T], cols: Cols) {
    let ([oh, ow], [th, tw]) = (p.ohw, p.tiles);
    let first_chan = chans.start;
    // The tile row's two output rows, split into even and odd columns: [e0, o0, e1, o1].
    let mut d = vec![T::ZERO; 4 * tw];
    let mut q = vec![T::ZERO; 8 * tw];
    for o in chans {
        for ty in 0..th {
            d.fill(T::ZERO);
            for a in 0..2 {
                let oy = 2 * ty + a;
                if oy < oh {
                    let row = &dy[(o * oh + oy) * ow..][..ow];
                    for (ox, &val) in row.iter().enumerate() {
                        d[(2 * a + ox % 2) * tw + ox / 2] = val;
                    }
                }
            }
            let (e0, o0, e1, o1) = (&d[..tw], &d[tw..2 * tw], &d[2 * tw..3 * tw], &d[3 * tw..]);
            // A over rows: (d0, d0 + d1, d0 − d1, −d1), on even and odd columns: q[i] = [e | o].
            for (i, qi) in q.chunks_mut(2 * tw).enumerate() {
                let (qe, qo) = qi.split_at_mut(tw);
                match i {
                    0 => {
                        qe.copy_from_slice(e0);
                        qo.copy_from_slice(o0);
                    }
                    1 => {
                        zip2(qe, e0, e1, |a, b| a + b);
                        zip2(qo, o0, o1, |a, b| a + b);
                    }
                    2 => {
                        zip2(qe, e0, e1, |a, b| a - b);
                        zip2(qo, o0, o1, |a, b| a - b);
                    }
                    _ => {
                        zip2(qe, e1, e1, |a, _| -a);
                        zip2(qo, o1, o1, |a, _| -a);
                    }
                }
            }
            // Aᵀ over columns: (e, e + o, e − o, −o).
            for (i, qi) in q.chunks(2 * tw).enumerate() {
                let (qe, qo) = qi.split_at(tw);
                let dst = |j: usize| ((o - first_chan) * 16 + i * 4 + j) * cols.ld + cols.first + ty * tw;
                dm[dst(0)..][..tw].copy_from_slice(qe);
                zip2(&mut dm[dst(1)..][..tw], qe, qo, |a, b| a + b);
                zip2(&mut dm[dst(2)..][..tw], qe, qo, |a, b| a - b);
                zip2(&mut dm[dst(3)..][..tw], qo, qo, |a, _| -a);
            }
        }
    }
}

/// `G g Gᵀ` of every 3×3 kernel of `w` (`[o, c, 3, 3]`) into `[16, rows, cols]`: with
/// `rotate`, the kernels of the input gradient (rows = c, cols = o, rotated 180°).
fn weight_transform<T: Element>(w: &[T], o: usize, c: usize, rotate: bool) -> Vec<T> {
    let (rows, cols) = if rotate { (c, o) } else { (o, c) };
    let half = T::from_f64(0.5);
    let mut u = vec![T::ZERO; 16 * rows * cols];
    for oi in 0..o {
        for ci in 0..c {
            let k = &w[(oi * c + ci) * 9..][..9];
            let g = |i: usize, j: usize| if rotate { k[(2 - i) * 3 + 2 - j] } else { k[i * 3 + j] };
            // G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]] on both sides.
            let col = |j: usize| {
                [
                    g(0, j),
                    (g(0, j) + g(1, j) + g(2, j)) * half,
                    (g(0, j) - g(1, j) + g(2, j)) * half,
                    g(2, j),
                ]
            };
            let (c0, c1, c2) = (col(0), col(1), col(2));
            let s: [[T; 3]; 4] = std::array::from_fn(|i| [c0[i], c1[i], c2[i]]);
            let (r, cc) = if rotate { (ci, oi) } else { (oi, ci) };
            for (i, si) in s.iter().enumerate() {
                let vals = [
                    si[0],
                    (si[0] + si[1] + si[2]) * half,
                    (si[0] - si[1] + si[2]) * half,
                    si[2],
                ];
                for (j, val) in vals.into_iter().enumerate() {
                    u[((i * 4 + j) * rows + r) * cols + cc] = val;
                }
            }
        }
    }
    u
}

/// Adjoint of [`weight_transform`] (unrotated): `Gᵀ dU G` for `dut` (`[16, c, o]`) into
/// `dw` (`[o, c, 3, 3]`).
fn weight_transform_adjoint<T: Element>(dut: &[T], o: usize, c: usize, dw: &mut [T]) {
    let half = T::from_f64(0.5);
    for oi in 0..o {
        for ci in 0..c {
            let u = |i: usize, j: usize| dut[((i * 4 + j) * c + ci) * o + oi];
            // Gᵀ = [[1, ½, ½, 0], [0, ½, −½, 0], [0, ½, ½, 1]] on both sides.
            let s: [[T; 4]; 3] = [
                std::array::from_fn(|j| u(0, j) + (u(1, j) + u(2, j)) * half),
                std::array::from_fn(|j| (u(1, j) - u(2, j)) * half),
                std::array::from_fn(|j| (u(1, j) + u(2, j)) * half + u(3, j)),
            ];
            let k = &mut dw[(oi * c + ci) * 9..][..9];
            for (i, si) in s.iter().enumerate() {
                k[i * 3] = si[0] + (si[1] + si[2]) * half;
                k[i * 3 + 1] = (si[1] - si[2]) * half;
                k[i * 3 + 2] = (si[1] + si[2]) * half + si[3];
            }
        }
    }
}

/// Images per group for `t` tiles each (fixed by the shapes).
fn group_images(n: usize, t: usize) -> usize {
    GROUP_COLS.div_ceil(t.max(1)).clamp(1, n.max(1))
}

/// Threads for the work of `g`: one for small layers, where a hand-off costs more.
fn threads(g: &ConvGeom) -> usize {
    if g.flops() >= PAR_FLOPS {
        rayon::current_num_threads()
    } else {
        1
    }
}

/// The transform of `chans` channels of `count` images into a group buffer laid out
/// `[chans, 16, count · t]`, split over channel ranges: `each(image, range, chunk, cols)`.
fn transform_group<T: Element>(
    buf: &mut [T],
    chans: usize,
    count: usize,
    t: usize,
    threads: usize,
    each: &(impl Fn(usize, Range<usize>, &mut [T], Cols) + Sync),
) {
    let ld = count * t;
    let per = chans.div_ceil(TRANSFORM_TASKS).max(1);
    for_each_chunk_on(threads, &mut buf[..chans * 16 * ld], per * 16 * ld, &|task, chunk| {
        let first = task * per;
        let range = first..(first + per).min(chans);
        for i in 0..count {
            each(i, range.clone(), chunk, Cols { ld, first: i * t });
        }
    });
}

/// A Winograd convolution of `x` (`[n, cin, ih, iw]`) with transformed weights `u`
/// into `out` (`[n, cout, oh, ow]`), a group of images at a time.
fn convolve<T: Element>(g: &ConvGeom, p: &Plan, x: &[T], u: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let (t, n) = (p.t(), g.n);
    let (img, oimg) = (p.cin * p.ihw[0] * p.ihw[1], p.cout * p.ohw[0] * p.ohw[1]);
    let group = group_images(n, t);
    let threads = threads(g);
    let mut v = vec![T::ZERO; 16 * p.cin * group * t];
    let mut m = vec![T::ZERO; 16 * p.cout * group * t];
    for n0 in (0..n).step_by(group) {
        let count = group.min(n - n0);
        let ld = count * t;
        transform_group(&mut v, p.cin, count, t, threads, &|i, chans, v, cols| {
            let x = &x[(n0 + i) * img..][..img];
            Transform::Input { p, x, chans, v, cols }.run()
        });
        let v = &v[..];
        for_each_chunk_on(threads, &mut m[..16 * p.cout * ld], p.cout * ld, &|xi, mx| {
            let a = Mat {
                data: u,
                rs: p.cin,
                cs: 1,
                offset: xi * p.cout * p.cin,
            };
            let b = Mat {
                data: v,
                rs: 16 * ld,
                cs: 1,
                offset: xi * ld,
            };
            gemm(p.cout, ld, p.cin, a, b, mx, false, 1);
        });
        let m = &m[..];
        for_each_chunk_on(threads, &mut out[n0 * oimg..(n0 + count) * oimg], oimg, &|i, y| {
            let cols = Cols { ld, first: i * t };
            Transform::Output { p, m, bias, y, cols }.run()
        });
    }
}

/// Forward convolution (see [`super::conv::conv2d_forward`]); `g` must satisfy [`applies`].
pub fn forward<T: Element>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let p = Plan::new(g.c, g.o, [g.h, g.w], [g.oh, g.ow], g.padding);
    convolve(g, &p, x, &weight_transform(w, g.o, g.c, false), bias, out);
}

/// Input gradient: a 3×3 convolution of `dy` with the rotated, transposed kernels and
/// padding `2 − padding`; `g` must satisfy [`applies`].
pub fn backward_input<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) {
    let pad = [2 - g.padding[0], 2 - g.padding[1]];
    let p = Plan::new(g.o, g.c, [g.oh, g.ow], [g.h, g.w], pad);
    convolve(g, &p, dy, &weight_transform(w, g.o, g.c, true), bias, dx);
}

/// Weight gradient: the transformed gradient `dU[ξ] (c × o)` summed over groups of images in
/// order (fixed by the shapes, so the result does not depend on the thread count), then
/// taken back through the weight transform; `g` must satisfy [`applies`].
pub fn backward_weight<T: Element>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    let p = Plan::new(g.c, g.o, [g.h, g.w], [g.oh, g.ow], g.padding);
    let (t, n) = (p.t(), g.n);
    let (img, oimg) = (g.c * g.h * g.w, g.o * g.oh * g.ow);
    let group = group_images(n, t);
    let threads = threads(g);
    let mut v = vec![T::ZERO; 16 * g.c * group * t];
    let mut dm = vec![T::ZERO; 16 * g.o * group * t];
    let mut dut = vec![T::ZERO; 16 * g.c * g.o];
    for n0 in (0..n).step_by(group) {
        let count = group.min(n - n0);
        let ld = count * t;
        transform_group(&mut v, g.c, count, t, threads, &|i, chans, v, cols| {
            let x = &x[(n0 + i) * img..][..img];
            Transform::Input {
                p: &p,
                x,
                chans,
                v,
                cols,
            }
            .run()
        });
        transform_group(&mut dm, g.o, count, t, threads, &|i, chans, dm, cols| {
            let dy = &dy[(n0 + i) * oimg..][..oimg];
            Transform::Adjoint {
                p: &p,
                dy,
                chans,
                dm,
                cols,
            }
            .run()
        });
        let (v, dm) = (&v[..], &dm[..]);
        // dU[ξ] += V[ξ] · dM[ξ]ᵀ, both operands rows of `ld` tiles in the `[chans, 16, ld]` layout.
        for_each_chunk_on(threads, &mut dut, g.c * g.o, &|xi, acc| {
            let a = Mat {
                data: v,
                rs: 16 * ld,
                cs: 1,
                offset: xi * ld,
            };
            let b = Mat {
                data: dm,
                rs: 1,
                cs: 16 * ld,
                offset: xi * ld,
            };
            gemm(g.c, g.o, ld, a, b, acc, n0 > 0, 1);
        });
    }
    weight_transform_adjoint(&dut, g.o, g.c, dw);
}

#[cfg(test)]
mod tests {
    use super::super::conv::{im2col_backward_input, im2col_forward};
    use super::super::conv_weight::im2col_backward_weight;
    use super::*;

    fn geom(n: usize, c: usize, hw: [usize; 2], o: usize, pad: [usize; 2]) -> ConvGeom {
        let (oh, ow) = (hw[0] + 2 * pad[0] - 2, hw[1] + 2 * pad[1] - 2);
        ConvGeom {
            n,
            c,
            h: hw[0],
            w: hw[1],
            o,
            oh,
            ow,
            kh: 3,
            kw: 3,
            stride: [1, 1],
            padding: pad,
            dilation: [1, 1],
            groups: 1,
        }
    }

    fn seq(len: usize, seed: f64) -> Vec<f64> {
        (0..len).map(|i| (i as f64 * 0.37 + seed).sin()).collect()
    }

    #[test]
    fn matches_im2col_for_every_pass() {
        // Odd and even sizes (partial edge tiles), all paddings it takes.
        for g in [
            geom(2, 16, [7, 9], 17, [1, 1]),
            geom(3, 18, [8, 6], 16, [0, 2]),
            geom(1, 16, [5, 6], 20, [2, 0]),
            geom(2, 16, [6, 7], 16, [1, 2]),
            // 25 tiles per image: groups of 21 images, the last one partial.
            geom(23, 16, [10, 10], 16, [1, 1]),
        ] {
            assert!(supports(&g), "{g:?}");
            let x = seq(g.n * g.c * g.h * g.w, 0.3);
            let w = seq(g.o * g.c * 9, 1.1);
            let b = seq(g.o.max(g.c), 2.0);
            let dy = seq(g.n * g.o * g.p(), 0.9);
            let close = |a: &[f64], b: &[f64], what: &str| {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (x - y).abs() < 1e-10 * (1.0 + y.abs()),
                        "{what} {g:?} at {i}: {x} vs {y}"
                    );
                }
            };
            let (mut want, mut got) = (vec![0.0; dy.len()], vec![0.0; dy.len()]);
            im2col_forward(&g, &x, &w, Some(&b[..g.o]), &mut want);
            forward(&g, &x, &w, Some(&b[..g.o]), &mut got);
            close(&got, &want, "forward");
            let (mut want, mut got) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            im2col_backward_input(&g, &dy, &w, Some(&b[..g.c]), &mut want);
            backward_input(&g, &dy, &w, Some(&b[..g.c]), &mut got);
            close(&got, &want, "backward input");
            let (mut want, mut got) = (vec![0.0; w.len()], vec![0.0; w.len()]);
            im2col_backward_weight(&g, &x, &dy, &mut want);
            backward_weight(&g, &x, &dy, &mut got);
            close(&got, &want, "backward weight");
        }
    }

    #[test]
    fn f32_matches_im2col_in_groups() {
        // f32 takes the unpacked AVX-512 products where the CPU has them; deep-layer shape
        // (4 tiles per image, one group of 40) and a shallow one (several groups).
        for g in [geom(40, 32, [4, 4], 48, [1, 1]), geom(23, 16, [10, 10], 24, [1, 1])] {
            let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
            let x = f(seq(g.n * g.c * g.h * g.w, 0.3));
            let w = f(seq(g.o * g.c * 9, 1.1));
            let dy = f(seq(g.n * g.o * g.p(), 0.9));
            let close = |a: &[f32], b: &[f32], what: &str| {
                let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    assert!((x - y).abs() < 1e-4 * scale, "{what} {g:?} at {i}: {x} vs {y}");
                }
            };
            let (mut want, mut got) = (vec![0.0; dy.len()], vec![0.0; dy.len()]);
            im2col_forward(&g, &x, &w, None, &mut want);
            forward(&g, &x, &w, None, &mut got);
            close(&got, &want, "forward");
            let (mut want, mut got) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            im2col_backward_input(&g, &dy, &w, None, &mut want);
            backward_input(&g, &dy, &w, None, &mut got);
            close(&got, &want, "backward input");
            let (mut want, mut got) = (vec![0.0; w.len()], vec![0.0; w.len()]);
            im2col_backward_weight(&g, &x, &dy, &mut want);
            backward_weight(&g, &x, &dy, &mut got);
            close(&got, &want, "backward weight");
        }
    }
}
