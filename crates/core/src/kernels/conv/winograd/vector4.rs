//! F(4×4, 3×3)'s input and output transforms and the output's adjoint for f32 at the AVX-512, AVX2 and NEON levels,
//! written on [`Lanes`]: a vector holds one row of up to `L` tiles. A padded input row's
//! four column phases come from four masked loads and four even/odd splits, an output row
//! goes back by four interleaves, and every store is one masked vector.
//!
//! Each value is computed with the same operations in the same order as `f4.rs`'s loops
//! (whose multiplies by 2, 4 and 8 are exact, so a fused multiply-add rounds the same), so
//! the results are the same bits (tested in `f4.rs`).

use super::lanes::Lanes;
use super::transform::{Cols, Plan};
use std::ops::Range;

/// The columns `(P0, P1, P2, P3, P0', P1')` of a padded input row for the tiles
/// `tx0..tx0 + L`, tile `tx` reading padded columns `4tx..4tx + 6`: `row` is the input row
/// (`w` long) or `None` for a padding row, `pad` its left padding.
#[inline(always)]
unsafe fn split_row<V: Lanes>(row: Option<&[f32]>, pad: usize, tx0: usize) -> [V; 6] {
    // SAFETY: `load` reads only inside the row; the caller's features are on.
    unsafe {
        let Some(row) = row else {
            return [V::zero(); 6];
        };
        let s = (4 * tx0) as isize - pad as isize;
        let (base, w) = (row.as_ptr(), row.len());
        let l = V::L as isize;
        // Even and odd columns, then the even and odd of each: phases 0, 2 and 1, 3.
        let (ea, oa) = V::even_odd(V::load(base, s, w), V::load(base, s + l, w));
        let (eb, ob) = V::even_odd(V::load(base, s + 2 * l, w), V::load(base, s + 3 * l, w));
        let (p0, p2) = V::even_odd(ea, eb);
        let (p1, p3) = V::even_odd(oa, ob);
        let (n0, n1) = (V::load(base, s + 4 * l, w), V::load(base, s + 4 * l + 1, w));
        [p0, p1, p2, p3, p0.shift_in(n0), p1.shift_in(n1)]
    }
}

/// `f4::bt` on vectors.
#[inline(always)]
unsafe fn bt<V: Lanes>(d: [V; 6]) -> [V; 6] {
    // SAFETY: the caller's features are on.
    unsafe {
        let (k2, k4, km4) = (V::splat(2.0), V::splat(4.0), V::splat(-4.0));
        let t = d[4].sub(d[2]);
        [
            d[0].sub(d[2]).mul_add(k4, t),
            d[1].add(d[2]).mul_add(km4, d[3].add(d[4])),
            d[1].sub(d[2]).mul_add(k4, d[4].sub(d[3])),
            d[3].sub(d[1]).mul_add(k2, t),
            d[1].sub(d[3]).mul_add(k2, t),
            d[1].sub(d[3]).mul_add(k4, d[5].sub(d[3])),
        ]
    }
}

/// `f4::at` on vectors.
#[inline(always)]
unsafe fn at<V: Lanes>(m: [V; 6]) -> [V; 4] {
    // SAFETY: the caller's features are on.
    unsafe {
        let (k2, k4, k8) = (V::splat(2.0), V::splat(4.0), V::splat(8.0));
        let (s12, d12) = (m[1].add(m[2]), m[1].sub(m[2]));
        let (s34, d34) = (m[3].add(m[4]), m[3].sub(m[4]));
        [
            m[0].add(s12).add(s34),
            d34.mul_add(k2, d12),
            s34.mul_add(k4, s12),
            d34.mul_add(k8, d12.add(m[5])),
        ]
    }
}

/// `f4::a` on vectors.
#[inline(always)]
unsafe fn a<V: Lanes>(d: [V; 4]) -> [V; 6] {
    // SAFETY: the caller's features are on.
    unsafe {
        let k4 = V::splat(4.0);
        let (s02, s13) = (d[0].add(d[2]), d[1].add(d[3]));
        let t02 = d[2].mul_add(k4, d[0]);
        let h13 = d[3].mul_add(k4, d[1]);
        let t13 = h13.add(h13);
        [d[0], s02.add(s13), s02.sub(s13), t02.add(t13), t02.sub(t13), d[3]]
    }
}

/// `f4::input`: `Bᵀ d B` of every 6×6 tile of channels `chans` of one image `x` into `v`
/// (36 planes of `chans` rows).
#[inline(always)]
pub(super) unsafe fn input<V: Lanes>(p: &Plan, x: &[f32], chans: Range<usize>, v: &mut [f32], cols: Cols) {
    let ([h, w], [th, tw]) = (p.ihw, p.tiles);
    let (c0, nch) = (chans.start, chans.len());
    assert!(v.len() >= 35 * cols.plane + nch * cols.ld && cols.first + th * tw <= cols.ld);
    assert!(x.len() >= chans.end * h * w && cols.plane >= nch * cols.ld);
    let out = v.as_mut_ptr();
    for c in chans {
        // Padded row `r` of channel `c`, or `None` in the padding.
        let row = |r: usize| {
            r.checked_sub(p.pad[0])
                .filter(|&r| r < h)
                .map(|r| &x[(c * h + r) * w..][..w])
        };
        for tx0 in (0..tw).step_by(V::L) {
            let n = V::L.min(tw - tx0);
            // SAFETY: the level's features are on (the caller's contract); each store
            // writes n ≤ L elements from the start of a row's tiles tx0..tx0 + n, inside
            // `v` (checked above).
            unsafe {
                // Down a column of tiles, whose 6-row windows overlap by 2: the last two split
                // rows of one tile row are the first two of the next (a third fewer splits).
                let mut d = [[V::zero(); 6]; 6];
                d[4] = split_row::<V>(row(0), p.pad[1], tx0);
                d[5] = split_row::<V>(row(1), p.pad[1], tx0);
                for ty in 0..th {
                    d[0] = d[4];
                    d[1] = d[5];
                    d[2] = split_row::<V>(row(4 * ty + 2), p.pad[1], tx0);
                    d[3] = split_row::<V>(row(4 * ty + 3), p.pad[1], tx0);
                    d[4] = split_row::<V>(row(4 * ty + 4), p.pad[1], tx0);
                    d[5] = split_row::<V>(row(4 * ty + 5), p.pad[1], tx0);
                    // Bᵀ over the rows, column by column.
                    let mut u = [[V::zero(); 6]; 6];
                    for k in 0..6 {
                        let col = bt([d[0][k], d[1][k], d[2][k], d[3][k], d[4][k], d[5][k]]);
                        for (i, val) in col.into_iter().enumerate() {
                            u[i][k] = val;
                        }
                    }
                    let base = (c - c0) * cols.ld + cols.first + ty * tw + tx0;
                    for (i, ui) in u.iter().enumerate() {
                        // B over the columns.
                        for (j, val) in bt(*ui).iter().enumerate() {
                            val.store(out.add((i * 6 + j) * cols.plane + base), n);
                        }
                    }
                }
            }
        }
    }
}

/// `f4::output`: `Aᵀ m A` of one image's tiles in `m` (36 planes of `cout` rows) into `y`
/// (`[cout, oh, ow]`), plus `bias`.
#[inline(always)]
pub(super) unsafe fn output<V: Lanes>(p: &Plan, m: &[f32], bias: Option<&[f32]>, y: &mut [f32], cols: Cols) {
    let ([oh, ow], [th, tw]) = (p.ohw, p.tiles);
    let plane = cols.plane;
    assert!(m.len() >= 35 * plane + p.cout * cols.ld && cols.first + th * tw <= cols.ld);
    assert!(plane >= p.cout * cols.ld);
    assert!(y.len() >= p.cout * oh * ow && bias.is_none_or(|b| b.len() >= p.cout));
    let (mp, yp) = (m.as_ptr(), y.as_mut_ptr());
    for o in 0..p.cout {
        let b = bias.map_or(0.0, |b| b[o]);
        for ty in 0..th {
            for tx0 in (0..tw).step_by(V::L) {
                let n = V::L.min(tw - tx0);
                // SAFETY: the level's features are on; loads read n ≤ L elements of a row of
                // tiles inside `m`, stores write the output columns 4·tx0.. that exist (checked
                // above and by the masks).
                unsafe {
                    let bv = V::splat(b);
                    let at0 = mp.add(o * cols.ld + cols.first + ty * tw + tx0);
                    // Aᵀ over the rows, column by column: t[j][a].
                    let mut t = [[V::zero(); 4]; 6];
                    for (j, tj) in t.iter_mut().enumerate() {
                        let q = |i: usize| at0.wrapping_add((i * 6 + j) * plane);
                        let (m0, m1, m2) = (V::load(q(0), 0, n), V::load(q(1), 0, n), V::load(q(2), 0, n));
                        let (m3, m4, m5) = (V::load(q(3), 0, n), V::load(q(4), 0, n), V::load(q(5), 0, n));
                        *tj = at([m0, m1, m2, m3, m4, m5]);
                    }
                    for (a, oy) in (4 * ty..oh).take(4).enumerate() {
                        // A over the columns: outputs 4tx + b for b = 0..4, back in order.
                        let [y0, y1, y2, y3] = at([t[0][a], t[1][a], t[2][a], t[3][a], t[4][a], t[5][a]]);
                        let (e_lo, e_hi) = V::interleave(y0.add(bv), y2.add(bv));
                        let (o_lo, o_hi) = V::interleave(y1.add(bv), y3.add(bv));
                        let (v0, v1) = V::interleave(e_lo, o_lo);
                        let (v2, v3) = V::interleave(e_hi, o_hi);
                        let x0 = 4 * tx0;
                        let rowp = yp.add((o * oh + oy) * ow + x0);
                        let left = (ow - x0).min(4 * n);
                        for (k, vk) in [v0, v1, v2, v3].iter().enumerate() {
                            let start = k * V::L;
                            if left > start {
                                vk.store(rowp.add(start), (left - start).min(V::L));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `f4::adjoint`: `A dy Aᵀ` of every 4×4 tile of channels `chans` of `dy`
/// (`[cout, oh, ow]`) into `dm` (36 planes of `chans` rows).
#[inline(always)]
pub(super) unsafe fn adjoint<V: Lanes>(p: &Plan, dy: &[f32], chans: Range<usize>, dm: &mut [f32], cols: Cols) {
    let ([oh, ow], [th, tw]) = (p.ohw, p.tiles);
    let (c0, nch) = (chans.start, chans.len());
    assert!(dm.len() >= 35 * cols.plane + nch * cols.ld && cols.first + th * tw <= cols.ld);
    assert!(dy.len() >= chans.end * oh * ow && cols.plane >= nch * cols.ld);
    let out = dm.as_mut_ptr();
    for o in chans {
        for ty in 0..th {
            for tx0 in (0..tw).step_by(V::L) {
                let n = V::L.min(tw - tx0);
                // SAFETY: the level's features are on; loads stay inside a row of `dy`, stores
                // write n ≤ L elements of a row of tiles inside `dm` (checked above).
                unsafe {
                    // The tile row's four output rows, split into their column phases.
                    let mut d = [[V::zero(); 4]; 4];
                    for (da, oy) in d.iter_mut().zip(4 * ty..oh) {
                        let (base, s, l) = (dy.as_ptr().add((o * oh + oy) * ow), 4 * tx0 as isize, V::L as isize);
                        let (ea, oa) = V::even_odd(V::load(base, s, ow), V::load(base, s + l, ow));
                        let (eb, ob) = V::even_odd(V::load(base, s + 2 * l, ow), V::load(base, s + 3 * l, ow));
                        let (p0, p2) = V::even_odd(ea, eb);
                        let (p1, p3) = V::even_odd(oa, ob);
                        *da = [p0, p1, p2, p3];
                    }
                    // A over the rows, phase by phase: q[i][b].
                    let mut q = [[V::zero(); 4]; 6];
                    for b in 0..4 {
                        let col = a([d[0][b], d[1][b], d[2][b], d[3][b]]);
                        for (qi, val) in q.iter_mut().zip(col) {
                            qi[b] = val;
                        }
                    }
                    let base = (o - c0) * cols.ld + cols.first + ty * tw + tx0;
                    for (i, qi) in q.iter().enumerate() {
                        // Aᵀ over the columns.
                        for (j, val) in a(*qi).iter().enumerate() {
                            val.store(out.add((i * 6 + j) * cols.plane + base), n);
                        }
                    }
                }
            }
        }
    }
}
