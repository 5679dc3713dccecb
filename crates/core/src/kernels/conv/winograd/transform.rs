//! The Winograd F(2×2, 3×3) transforms: input tiles `Bᵀ d B`, output tiles `Aᵀ M A` and
//! its adjoint, kernels `G g Gᵀ` and its adjoint, as elementwise loops over a group's
//! columns, compiled for the widest vectors the CPU has. A [`Plan`] with 4×4 output tiles
//! sends the input and output transforms to F(4×4, 3×3) in `f4.rs`.

use crate::cpu::Isa;
use crate::kernels::par::{for_each_chunk_on, run_tiles, Disjoint};
use crate::Element;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use std::any::TypeId;
use std::ops::Range;

/// Sizes of one Winograd convolution of `cin → cout` channels, `ihw → ohw`, with `pad`.
#[derive(Clone, Copy)]
pub(super) struct Plan {
    pub(super) cin: usize,
    pub(super) cout: usize,
    pub(super) ihw: [usize; 2],
    pub(super) ohw: [usize; 2],
    pub(super) pad: [usize; 2],
    /// Output tile side: 2 for F(2×2, 3×3), 4 for F(4×4, 3×3).
    pub(super) m: usize,
    /// Tile rows and columns (`m`×`m` outputs each).
    pub(super) tiles: [usize; 2],
}

impl Plan {
    /// The plan of `cin → cout`, `ihw → ohw` with `pad`, in `m`×`m` output tiles.
    pub(super) fn new(cin: usize, cout: usize, ihw: [usize; 2], ohw: [usize; 2], pad: [usize; 2], m: usize) -> Plan {
        assert!(m == 2 || m == 4, "winograd: no F({m}×{m}, 3×3)");
        Plan {
            cin,
            cout,
            ihw,
            ohw,
            pad,
            m,
            tiles: [ohw[0].div_ceil(m), ohw[1].div_ceil(m)],
        }
    }

    /// Tiles per image.
    pub(super) fn t(&self) -> usize {
        self.tiles[0] * self.tiles[1]
    }

    /// Points of a transformed tile, `(m + 2)²`: the number of products per group.
    pub(super) fn planes(&self) -> usize {
        (self.m + 2) * (self.m + 2)
    }
}

/// One image's transform, run by [`Transform::run`] compiled for the vectors of the level
/// [`crate::cpu::isa`] gives (AVX-512, AVX2, else the baseline SSE2): the transforms are elementwise
/// loops, inlined into a function with those features, which then run 16 lanes wide.
pub(super) enum Transform<'a, T> {
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

/// Where one image's tiles sit in a group's buffers: 16 planes `plane` elements apart, of
/// rows of `ld` columns, this image's tiles from column `first`.
#[derive(Clone, Copy)]
pub(super) struct Cols {
    pub(super) ld: usize,
    pub(super) first: usize,
    pub(super) plane: usize,
}

impl<'a, T: Element> Transform<'a, T> {
    /// The same transform on f32 slices; `T` must be f32.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn cast(self) -> Transform<'a, f32> {
        assert!(TypeId::of::<T>() == TypeId::of::<f32>());
        // SAFETY: T is f32 (asserted), so each cast only renames the element type.
        let f = |s: &'a [T]| unsafe { &*(s as *const [T] as *const [f32]) };
        // SAFETY: as above.
        let f_mut = |s: &'a mut [T]| unsafe { &mut *(s as *mut [T] as *mut [f32]) };
        match self {
            Transform::Input { p, x, chans, v, cols } => Transform::Input {
                p,
                x: f(x),
                chans,
                v: f_mut(v),
                cols,
            },
            Transform::Output { p, m, bias, y, cols } => Transform::Output {
                p,
                m: f(m),
                bias: bias.map(f),
                y: f_mut(y),
                cols,
            },
            Transform::Adjoint { p, dy, chans, dm, cols } => Transform::Adjoint {
                p,
                dy: f(dy),
                chans,
                dm: f_mut(dm),
                cols,
            },
        }
    }

    #[inline(always)]
    fn body(self) {
        match self {
            Transform::Input { p, x, chans, v, cols } if p.m == 4 => super::f4::input(p, x, chans, v, cols),
            Transform::Output { p, m, bias, y, cols } if p.m == 4 => super::f4::output(p, m, bias, y, cols),
            Transform::Input { p, x, chans, v, cols } => input_transform(p, x, chans, v, cols),
            Transform::Output { p, m, bias, y, cols } => output_transform(p, m, bias, y, cols),
            Transform::Adjoint { p, dy, chans, dm, cols } if p.m == 4 => super::f4::adjoint(p, dy, chans, dm, cols),
            Transform::Adjoint { p, dy, chans, dm, cols } => output_transform_adjoint(p, dy, chans, dm, cols),
        }
    }

    /// Run at `level` (read by the caller before splitting its work over threads).
    pub(super) fn run(self, level: Isa) {
        #[cfg(target_arch = "x86_64")]
        {
            if matches!(level, Isa::Avx512 | Isa::Avx2) && TypeId::of::<T>() == TypeId::of::<f32>() {
                return super::vector::run(self.cast(), level);
            }
            #[target_feature(enable = "avx512f")]
            fn avx512<T: Element>(t: Transform<'_, T>) {
                t.body()
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2<T: Element>(t: Transform<'_, T>) {
                t.body()
            }
            match level {
                // SAFETY: `cpu` grants the AVX-512 level only on a CPU that has AVX-512F.
                Isa::Avx512 => return unsafe { avx512(self) },
                // SAFETY: `cpu` grants the AVX2 level only on a CPU with AVX2 and FMA.
                Isa::Avx2 => return unsafe { avx2(self) },
                Isa::Scalar | Isa::Neon => {}
            }
        }
        #[cfg(target_arch = "aarch64")]
        if level == Isa::Neon && TypeId::of::<T>() == TypeId::of::<f32>() {
            return super::vector::run(self.cast(), level);
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let _ = level;
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
/// into `v` (16 planes of `chans` rows, see [`Cols`]), zeros
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
    // Per channel: the padded rows, de-interleaved: row r is [E (half) | O (half)]. Every
    // channel writes the same positions, so the padding zeroed here stays zero.
    let mut split = vec![T::ZERO; rows * 2 * half];
    let mut u = vec![T::ZERO; 4 * 2 * half];
    for c in chans {
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
                let dst = |j: usize| (i * 4 + j) * cols.plane + (c - c0) * cols.ld + cols.first + ty * tw;
                zip2(&mut v[dst(0)..][..tw], &e[..tw], &e[1..], |a, b| a - b);
                zip2(&mut v[dst(1)..][..tw], &o[..tw], &e[1..], |a, b| a + b);
                zip2(&mut v[dst(2)..][..tw], &e[1..], &o[..tw], |a, b| a - b);
                zip2(&mut v[dst(3)..][..tw], &o[..tw], &o[1..], |a, b| a - b);
            }
        }
    }
}

/// `Aᵀ m A` of one image's tiles in `m` (16 planes of `cout` rows, see [`Cols`])
/// into the image `y` (`[cout, oh, ow]`), dropping outputs past the edge and adding `bias`.
#[inline(always)]
fn output_transform<T: Element>(p: &Plan, m: &[T], bias: Option<&[T]>, y: &mut [T], cols: Cols) {
    let ([oh, ow], [th, tw]) = (p.ohw, p.tiles);
    let plane = cols.plane;
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
/// (16 planes of `chans` rows, see [`Cols`]).
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
                let dst = |j: usize| (i * 4 + j) * cols.plane + (o - first_chan) * cols.ld + cols.first + ty * tw;
                dm[dst(0)..][..tw].copy_from_slice(qe);
                zip2(&mut dm[dst(1)..][..tw], qe, qo, |a, b| a + b);
                zip2(&mut dm[dst(2)..][..tw], qe, qo, |a, b| a - b);
                zip2(&mut dm[dst(3)..][..tw], qo, qo, |a, _| -a);
            }
        }
    }
}

/// Kernels per task of the weight transforms and their adjoint (whole rows of `u`).
const KERNELS_PER_TASK: usize = 4096;

/// `G g Gᵀ` of every 3×3 kernel of `w` (`[o, c, 3, 3]`) into `[planes, rows, cols]` for
/// `m`×`m` output tiles (16 planes for m = 2, 36 for m = 4): with `rotate`, the kernels of
/// the input gradient (rows = c, cols = o, rotated 180°). Rows are split over `threads`
/// (each value is computed the same way on any thread): on one thread a 256 → 256 layer's
/// transforms were a serial stretch before every product.
pub(super) fn weight_transform<T: Element>(
    w: &[T],
    o: usize,
    c: usize,
    m: usize,
    rotate: bool,
    threads: usize,
) -> Vec<T> {
    let (rows, cols) = if rotate { (c, o) } else { (o, c) };
    let mut u = vec![T::ZERO; (m + 2) * (m + 2) * rows * cols];
    let per = (KERNELS_PER_TASK / cols.max(1)).max(1);
    let base = Disjoint::new(&mut u);
    run_tiles(rows.div_ceil(per), threads, &|t| {
        for r in t * per..((t + 1) * per).min(rows) {
            // SAFETY: row `r` of each of the 16 planes belongs to this task alone, and `u`
            // stays borrowed for the call.
            let row = |q: usize| unsafe { base.range((q * rows + r) * cols, cols) };
            if m == 4 {
                super::f4::weight_row(w, c, cols, r, rotate, row);
            } else {
                weight_transform_row(w, c, cols, r, rotate, row);
            }
        }
    });
    u
}

/// Row `r` of the 16 planes of [`weight_transform`]'s output, written through `row(q)`.
fn weight_transform_row<'a, T: Element>(
    w: &[T],
    c: usize,
    cols: usize,
    r: usize,
    rotate: bool,
    row: impl Fn(usize) -> &'a mut [T],
) {
    let half = T::from_f64(0.5);
    // In the order of `u`'s rows, 16 kernels at a time, so that each of the 16 planes gets
    // whole runs (the rotated kernels in `w`'s order wrote each plane a column at a time, and
    // single values to 16 planes a power of two apart evict each other: 3% of a step).
    for cc0 in (0..cols).step_by(16) {
        let n = 16.min(cols - cc0);
        let mut buf = [[T::ZERO; 16]; 16];
        for cc in cc0..cc0 + n {
            let (oi, ci) = if rotate { (cc, r) } else { (r, cc) };
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
            for (i, si) in s.iter().enumerate() {
                let vals = [
                    si[0],
                    (si[0] + si[1] + si[2]) * half,
                    (si[0] - si[1] + si[2]) * half,
                    si[2],
                ];
                for (j, val) in vals.into_iter().enumerate() {
                    buf[i * 4 + j][cc - cc0] = val;
                }
            }
        }
        for (q, b) in buf.iter().enumerate() {
            row(q)[cc0..][..n].copy_from_slice(&b[..n]);
        }
    }
}

/// Adjoint of [`weight_transform`] (unrotated) for `m`×`m` tiles: `Gᵀ dU G` for `dut`
/// (`[(m + 2)², c, o]`) into `dw` (`[o, c, 3, 3]`), blocks of output channels over `threads`.
pub(super) fn weight_transform_adjoint<T: Element>(
    dut: &[T],
    o: usize,
    c: usize,
    m: usize,
    dw: &mut [T],
    threads: usize,
) {
    let per = (KERNELS_PER_TASK / c.max(1)).max(1);
    for_each_chunk_on(threads, &mut dw[..o * c * 9], per * c * 9, &|t, dw| {
        let outs = t * per..(t * per + per).min(o);
        if m == 4 {
            super::f4::adjoint_block(dut, o, c, outs, dw)
        } else {
            adjoint_block(dut, o, c, outs, dw)
        }
    });
}

/// [`weight_transform_adjoint`] for output channels `outs`, into their kernels `dw`.
fn adjoint_block<T: Element>(dut: &[T], o: usize, c: usize, outs: Range<usize>, dw: &mut [T]) {
    let half = T::from_f64(0.5);
    let first = outs.start;
    // `dut`'s order, so that each of its 16 planes is read in runs.
    for ci in 0..c {
        for oi in outs.clone() {
            let u = |i: usize, j: usize| dut[((i * 4 + j) * c + ci) * o + oi];
            // Gᵀ = [[1, ½, ½, 0], [0, ½, −½, 0], [0, ½, ½, 1]] on both sides.
            let s: [[T; 4]; 3] = [
                std::array::from_fn(|j| u(0, j) + (u(1, j) + u(2, j)) * half),
                std::array::from_fn(|j| (u(1, j) - u(2, j)) * half),
                std::array::from_fn(|j| (u(1, j) + u(2, j)) * half + u(3, j)),
            ];
            let k = &mut dw[((oi - first) * c + ci) * 9..][..9];
            for (i, si) in s.iter().enumerate() {
                k[i * 3] = si[0] + (si[1] + si[2]) * half;
                k[i * 3 + 1] = (si[1] - si[2]) * half;
                k[i * 3 + 2] = (si[1] + si[2]) * half + si[3];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu;
    use crate::kernels::test_rand::uniform_f32;

    /// The three image transforms at every level this CPU has give the scalar level's bits
    /// (additions and subtractions only, in the same order at every vector width), over
    /// edge shapes: one tile, odd sizes (a half-empty last tile), rows of tiles not a
    /// multiple of any lane count, and no padding.
    #[test]
    fn transforms_match_scalar_bits_at_every_level() {
        for level in [Isa::Avx2, Isa::Avx512] {
            if cfg!(target_arch = "x86_64") && !cpu::supported().contains(&level) {
                eprintln!("winograd transforms: the {level} vectors are not tested (this CPU lacks {level})");
            }
        }
        for (cin, cout, [h, w], pad) in [
            (1, 1, [1, 1], 1),
            (2, 3, [5, 7], 1),
            (3, 2, [6, 6], 1),
            (1, 4, [13, 35], 1),
            (2, 1, [8, 9], 0),
            (3, 5, [4, 66], 1),
        ] {
            let ohw = [h + 2 * pad - 2, w + 2 * pad - 2];
            let p = Plan::new(cin, cout, [h, w], ohw, [pad, pad], 2);
            let t = p.t();
            // This image's tiles from column 3 of rows of t + 7 (as in a group of images), so
            // the vectors start off their alignment and the rows have spare columns.
            let ld = t + 7;
            // Planes a few elements further apart than their rows need.
            let (vp, mp) = (cin * ld + 5, cout * ld + 5);
            let cols = |plane| Cols { ld, first: 3, plane };
            let (x, m, dy) = (
                uniform_f32(cin * h * w, 1),
                uniform_f32(16 * mp, 2),
                uniform_f32(cout * ohw[0] * ohw[1], 3),
            );
            let bias = uniform_f32(cout, 4);
            let run = |level| {
                let mut v = vec![0f32; 16 * vp];
                let mut y = vec![0f32; cout * ohw[0] * ohw[1]];
                let mut dm = vec![0f32; 16 * mp];
                cpu::with_isa(level, || {
                    let (p, x, m, dy) = (&p, &x[..], &m[..], &dy[..]);
                    Transform::Input {
                        p,
                        x,
                        chans: 0..cin,
                        v: &mut v,
                        cols: cols(vp),
                    }
                    .run(cpu::isa());
                    let bias = Some(&bias[..]);
                    Transform::Output {
                        p,
                        m,
                        bias,
                        y: &mut y,
                        cols: cols(mp),
                    }
                    .run(cpu::isa());
                    Transform::Adjoint {
                        p,
                        dy,
                        chans: 0..cout,
                        dm: &mut dm,
                        cols: cols(mp),
                    }
                    .run(cpu::isa());
                });
                [v, y, dm].map(|b| b.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            };
            let want = run(Isa::Scalar);
            for level in cpu::supported() {
                let got = run(level);
                for (name, (g, e)) in ["input", "output", "adjoint"].iter().zip(got.iter().zip(&want)) {
                    assert!(
                        g == e,
                        "{name} transform {cin}->{cout} {h}x{w} pad {pad}: {level} differs from scalar"
                    );
                }
            }
        }
    }
}
