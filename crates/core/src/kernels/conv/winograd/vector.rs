//! The three image transforms for f32 at the AVX-512, AVX2 and NEON levels, written on
//! [`Lanes`]: a vector holds one row of up to `L` tiles. The generic loops of
//! [`super::transform`] left 16-tile rows to 4-wide tail loops and split rows into even and
//! odd columns one element at a time; here a row's even and odd columns come from two
//! masked loads and two permutes, and every store is one masked vector.
//!
//! Each value is computed with the same additions in the same order as the generic loops,
//! so the results are the same bits (tested in `transform.rs`).

use super::lanes::Lanes;
#[cfg(target_arch = "aarch64")]
use super::lanes::V4;
#[cfg(target_arch = "x86_64")]
use super::lanes::{V16, V8};
use super::transform::{Cols, Plan, Transform};
use crate::cpu::Isa;
use std::ops::Range;

/// The columns `(E, O, E', O')` of a padded input row for the tiles `tx0..tx0 + L`, tile `tx`
/// reading padded columns `2tx, 2tx + 1, 2tx + 2, 2tx + 3`: `row` is the input row (`w`
/// long) or `None` for a padding row, `pad` its left padding.
#[inline(always)]
unsafe fn split_row<V: Lanes>(row: Option<&[f32]>, pad: usize, tx0: usize) -> [V; 4] {
    // SAFETY: `load` reads only inside the row.
    unsafe {
        let Some(row) = row else {
            return [V::zero(); 4];
        };
        let s = (2 * tx0) as isize - pad as isize;
        let (base, w) = (row.as_ptr(), row.len());
        let l = V::L as isize;
        let (e, o) = V::even_odd(V::load(base, s, w), V::load(base, s + l, w));
        let (ne, no) = V::even_odd(V::load(base, s + 2 * l, w), V::zero());
        [e, o, e.shift_in(ne), o.shift_in(no)]
    }
}

/// `Bᵀ` over four rows of column vectors: (d0 − d2, d1 + d2, d2 − d1, d1 − d3).
#[inline(always)]
unsafe fn bt_rows<V: Lanes>(d: [[V; 4]; 4]) -> [[V; 4]; 4] {
    let mut u = [[d[0][0]; 4]; 4];
    for k in 0..4 {
        // SAFETY: the caller's features are on.
        unsafe {
            u[0][k] = d[0][k].sub(d[2][k]);
            u[1][k] = d[1][k].add(d[2][k]);
            u[2][k] = d[2][k].sub(d[1][k]);
            u[3][k] = d[1][k].sub(d[3][k]);
        }
    }
    u
}

/// [`super::transform`]'s input transform, `Bᵀ d B` of every tile of channels `chans` of
/// one image `x` into `v` (16 planes of `chans` rows).
#[inline(always)]
unsafe fn input<V: Lanes>(p: &Plan, x: &[f32], chans: Range<usize>, v: &mut [f32], cols: Cols) {
    let ([h, w], [th, tw]) = (p.ihw, p.tiles);
    let (c0, nch) = (chans.start, chans.len());
    assert!(v.len() >= 15 * cols.plane + nch * cols.ld && cols.first + th * tw <= cols.ld);
    assert!(x.len() >= chans.end * h * w && cols.plane >= nch * cols.ld);
    let out = v.as_mut_ptr();
    for c in chans {
        for ty in 0..th {
            let row = |i: usize| {
                let ih = (2 * ty + i).checked_sub(p.pad[0]).filter(|&r| r < h);
                ih.map(|r| &x[(c * h + r) * w..][..w])
            };
            for tx0 in (0..tw).step_by(V::L) {
                let n = V::L.min(tw - tx0);
                // SAFETY: the level's features are on (the caller's contract); each store
                // writes n ≤ L elements from the start of a row's tiles tx0..tx0 + n, inside
                // `v` (checked above).
                unsafe {
                    // No closures or iterator adapters around vector code here: a call the
                    // compiler leaves out of line runs without the level's features, and
                    // then so do the intrinsics inside it (seen as 14% in `permutex2var`).
                    let d = [
                        split_row::<V>(row(0), p.pad[1], tx0),
                        split_row::<V>(row(1), p.pad[1], tx0),
                        split_row::<V>(row(2), p.pad[1], tx0),
                        split_row::<V>(row(3), p.pad[1], tx0),
                    ];
                    let base = (c - c0) * cols.ld + cols.first + ty * tw + tx0;
                    for (i, u) in bt_rows(d).iter().enumerate() {
                        // B over the columns, (E, O, E', O') → (E − E', O + E', E' − O, O − O').
                        let vals = [u[0].sub(u[2]), u[1].add(u[2]), u[2].sub(u[1]), u[1].sub(u[3])];
                        for (j, val) in vals.iter().enumerate() {
                            val.store(out.add((i * 4 + j) * cols.plane + base), n);
                        }
                    }
                }
            }
        }
    }
}

/// [`super::transform`]'s output transform, `Aᵀ m A` of one image's tiles in `m`
/// (16 planes of `cout` rows) into `y` (`[cout, oh, ow]`), plus `bias`.
#[inline(always)]
unsafe fn output<V: Lanes>(p: &Plan, m: &[f32], bias: Option<&[f32]>, y: &mut [f32], cols: Cols) {
    let ([oh, ow], [th, tw]) = (p.ohw, p.tiles);
    let plane = cols.plane;
    assert!(m.len() >= 15 * plane + p.cout * cols.ld && cols.first + th * tw <= cols.ld);
    assert!(plane >= p.cout * cols.ld);
    assert!(y.len() >= p.cout * oh * ow && bias.is_none_or(|b| b.len() >= p.cout));
    let (mp, yp) = (m.as_ptr(), y.as_mut_ptr());
    for o in 0..p.cout {
        let b = bias.map_or(0.0, |b| b[o]);
        for ty in 0..th {
            for tx0 in (0..tw).step_by(V::L) {
                let n = V::L.min(tw - tx0);
                // SAFETY: the level's features are on; loads read n ≤ L elements of a row of
                // tiles inside `m`, stores write the output columns 2·tx0.. that exist (checked
                // above and by the masks).
                unsafe {
                    let bv = V::splat(b);
                    let at = mp.add(o * cols.ld + cols.first + ty * tw + tx0);
                    // Aᵀ over rows: r0 = m0 + m1 + m2, r1 = m1 − m2 − m3 (for each column j).
                    let mut r = [[V::zero(); 4]; 2];
                    let [r0, r1] = &mut r;
                    for (j, (x0, x1)) in r0.iter_mut().zip(r1.iter_mut()).enumerate() {
                        let mm = [0, 4, 8, 12].map(|i| at.add((i + j) * plane));
                        let (m0, m1) = (V::load(mm[0], 0, n), V::load(mm[1], 0, n));
                        let (m2, m3) = (V::load(mm[2], 0, n), V::load(mm[3], 0, n));
                        *x0 = m0.add(m1).add(m2);
                        *x1 = m1.sub(m2).sub(m3);
                    }
                    for (a, ra) in r.iter().enumerate() {
                        let oy = 2 * ty + a;
                        if oy >= oh {
                            continue;
                        }
                        // A over columns: even = r0 + r1 + r2, odd = r1 − r2 − r3.
                        let even = ra[0].add(ra[1]).add(bv).add(ra[2]);
                        let odd = ra[1].sub(ra[2]).add(bv).sub(ra[3]);
                        let (lo, hi) = V::interleave(even, odd);
                        let x0 = 2 * tx0;
                        let row = yp.add((o * oh + oy) * ow + x0);
                        let left = (ow - x0).min(2 * n);
                        lo.store(row, left.min(V::L));
                        if left > V::L {
                            hi.store(row.add(V::L), left - V::L);
                        }
                    }
                }
            }
        }
    }
}

/// [`super::transform`]'s adjoint of the output transform, `A dy Aᵀ` of every 2×2 tile of
/// channels `chans` of `dy` (`[cout, oh, ow]`) into `dm` (16 planes of `chans` rows).
#[inline(always)]
unsafe fn adjoint<V: Lanes>(p: &Plan, dy: &[f32], chans: Range<usize>, dm: &mut [f32], cols: Cols) {
    let ([oh, ow], [th, tw]) = (p.ohw, p.tiles);
    let (c0, nch) = (chans.start, chans.len());
    assert!(dm.len() >= 15 * cols.plane + nch * cols.ld && cols.first + th * tw <= cols.ld);
    assert!(dy.len() >= chans.end * oh * ow && cols.plane >= nch * cols.ld);
    let out = dm.as_mut_ptr();
    for o in chans {
        for ty in 0..th {
            for tx0 in (0..tw).step_by(V::L) {
                let n = V::L.min(tw - tx0);
                // SAFETY: the level's features are on; loads stay inside a row of `dy`, stores
                // write n ≤ L elements of a row of tiles inside `dm` (checked above).
                unsafe {
                    // The tile row's two output rows, split into even and odd columns.
                    let mut d = [[V::zero(); 2]; 2];
                    for (a, da) in d.iter_mut().enumerate() {
                        let oy = 2 * ty + a;
                        if oy < oh {
                            let (base, s) = (dy.as_ptr().add((o * oh + oy) * ow), 2 * tx0 as isize);
                            let (e, od) = V::even_odd(V::load(base, s, ow), V::load(base, s + V::L as isize, ow));
                            *da = [e, od];
                        }
                    }
                    let ([e0, o0], [e1, o1]) = (d[0], d[1]);
                    // A over rows: (d0, d0 + d1, d0 − d1, −d1), on even and odd columns.
                    let q = [
                        [e0, o0],
                        [e0.add(e1), o0.add(o1)],
                        [e0.sub(e1), o0.sub(o1)],
                        [e1.neg(), o1.neg()],
                    ];
                    // Aᵀ over columns: (e, e + o, e − o, −o).
                    for (i, &[qe, qo]) in q.iter().enumerate() {
                        let vals = [qe, qe.add(qo), qe.sub(qo), qo.neg()];
                        for (j, val) in vals.iter().enumerate() {
                            let at = (i * 4 + j) * cols.plane + (o - c0) * cols.ld + cols.first + ty * tw + tx0;
                            val.store(out.add(at), n);
                        }
                    }
                }
            }
        }
    }
}

/// Runs `t` with the vectors of `level` (AVX-512 or AVX2, granted by [`crate::cpu`] only on
/// a CPU that has it).
#[cfg(target_arch = "x86_64")]
pub(super) fn run(t: Transform<'_, f32>, level: Isa) {
    #[target_feature(enable = "avx512f")]
    fn avx512(t: Transform<'_, f32>) {
        // SAFETY: this function runs only with AVX-512F on.
        unsafe { dispatch::<V16>(t) }
    }
    #[target_feature(enable = "avx2,fma")]
    fn avx2(t: Transform<'_, f32>) {
        // SAFETY: this function runs only with AVX2 on.
        unsafe { dispatch::<V8>(t) }
    }
    match level {
        // SAFETY: `cpu` grants the AVX-512 level only on a CPU that has AVX-512F.
        Isa::Avx512 => unsafe { avx512(t) },
        // SAFETY: `cpu` grants the AVX2 level only on a CPU with AVX2 and FMA.
        Isa::Avx2 => unsafe { avx2(t) },
        Isa::Scalar | Isa::Neon => unreachable!("no f32 vectors at {level}"),
    }
}

/// Runs `t` with NEON's 4-lane vectors (`level` must be NEON).
#[cfg(target_arch = "aarch64")]
pub(super) fn run(t: Transform<'_, f32>, level: Isa) {
    assert_eq!(level, Isa::Neon, "no f32 vectors at {level}");
    // SAFETY: NEON is part of every aarch64 target.
    unsafe { dispatch::<V4>(t) }
}

/// The transform `t` on vectors `V`, whose level's features must be on.
#[inline(always)]
unsafe fn dispatch<V: Lanes>(t: Transform<'_, f32>) {
    // SAFETY: the caller's contract.
    unsafe {
        match t {
            Transform::Input { p, x, chans, v, cols } if p.m == 4 => super::vector4::input::<V>(p, x, chans, v, cols),
            Transform::Output { p, m, bias, y, cols } if p.m == 4 => super::vector4::output::<V>(p, m, bias, y, cols),
            Transform::Adjoint { p, dy, chans, dm, cols } if p.m == 4 => {
                super::vector4::adjoint::<V>(p, dy, chans, dm, cols)
            }
            Transform::Input { p, x, chans, v, cols } => input::<V>(p, x, chans, v, cols),
            Transform::Output { p, m, bias, y, cols } => output::<V>(p, m, bias, y, cols),
            Transform::Adjoint { p, dy, chans, dm, cols } => adjoint::<V>(p, dy, chans, dm, cols),
        }
    }
}
