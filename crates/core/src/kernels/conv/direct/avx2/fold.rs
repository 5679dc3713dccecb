//! AVX2 f32 input gradient of a stride-1 convolution as columns, then folded: the AVX-512
//! `fold` kernel with 8 lanes, on the same column layout (`avx512::fold::row_len`, the
//! same front zeros), chosen by the same `fits`.

use super::{mask, mask_range, store_n, V8};
use crate::kernels::conv::direct::avx512::fold::{row_len, scratch_len, FRONT};
use crate::kernels::conv::geom::ConvGeom;
use std::arch::x86_64::*;

/// Pixel vectors per column tile (5 taps × 2 vectors: 10 accumulators).
const NV: usize = 2;

/// `dx = bias + convᵀ(dy, w)` for one image: `dy` is `[o, oh·ow]`, `w` is `[o, c, kh, kw]`,
/// `dx` is `[c, h, w]`; `cols` is scratch of `scratch_len` elements.
///
/// # Safety
/// AVX2 and FMA must be available and `fold_fits(g)` must hold.
pub(super) unsafe fn input_grad(
    g: &ConvGeom,
    dy: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    cols: &mut [f32],
    dx: &mut [f32],
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the asserts check the
    // buffers.
    unsafe {
        assert!(dy.len() >= g.o * g.p() && w.len() >= g.o * g.k() && dx.len() >= g.c * g.h * g.w);
        assert!(cols.len() >= scratch_len(g) && bias.is_none_or(|b| b.len() >= g.c));
        assert!(g.kw <= FRONT, "avx2 fold: kernel wider than the front zeros {g:?}");
        match g.kw.min(5) {
            1 => image::<1>(g, dy, w, bias, cols, dx),
            2 => image::<2>(g, dy, w, bias, cols, dx),
            3 => image::<3>(g, dy, w, bias, cols, dx),
            4 => image::<4>(g, dy, w, bias, cols, dx),
            _ => image::<5>(g, dy, w, bias, cols, dx),
        }
    }
}

/// [`input_grad`] with column tiles of `JB` taps × [`NV`] pixel vectors.
///
/// # Safety
/// AVX2 and FMA must be available and the buffers sized as [`input_grad`] asserts.
#[target_feature(enable = "avx2,fma")]
unsafe fn image<const JB: usize>(
    g: &ConvGeom,
    dy: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    cols: &mut [f32],
    dx: &mut [f32],
) {
    // SAFETY: the caller upholds the `# Safety` contract above.
    unsafe {
        let (p, rl) = (g.p(), row_len(g));
        let nvec = p.div_ceil(V8);
        for r in cols.chunks_mut(rl).take(g.kh * g.kw) {
            r[..FRONT].fill(0.0);
        }
        for c in 0..g.c {
            for i in 0..g.kh {
                for j0 in (0..g.kw).step_by(JB) {
                    let mut v0 = 0;
                    while v0 < nvec {
                        if nvec - v0 == 1 {
                            tile::<JB, 1>(g, dy, w, cols, c, i, j0, v0);
                        } else {
                            tile::<JB, NV>(g, dy, w, cols, c, i, j0, v0);
                        }
                        v0 += NV;
                    }
                }
            }
            let b = bias.map_or(0.0, |b| b[c]);
            match g.kw {
                1 => fold::<1>(g, cols, b, &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w]),
                2 => fold::<2>(g, cols, b, &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w]),
                3 => fold::<3>(g, cols, b, &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w]),
                4 => fold::<4>(g, cols, b, &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w]),
                5 => fold::<5>(g, cols, b, &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w]),
                6 => fold::<6>(g, cols, b, &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w]),
                7 => fold::<7>(g, cols, b, &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w]),
                _ => fold::<FRONT>(g, cols, b, &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w]),
            }
        }
    }
}

/// Columns `(i, j0..j0+JB)` × pixel vectors `v0..v0+V` of input channel `c`.
///
/// # Safety
/// AVX2 and FMA must be available, the slices sized as [`input_grad`] asserts, and the
/// taps `j0..j0+JB` and pixel vectors `v0..v0+V` inside channel `c`'s columns.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile<const JB: usize, const V: usize>(
    g: &ConvGeom,
    dy: &[f32],
    w: &[f32],
    cols: &mut [f32],
    c: usize,
    i: usize,
    j0: usize,
    v0: usize,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the last pixel vector's
    // load is masked to the image's pixels.
    unsafe {
        let p = g.p();
        let nvec = p.div_ceil(V8);
        let rem = p - (nvec - 1) * V8;
        let tail = v0 + V == nvec && rem < V8;
        let last = mask(rem);
        // A short last block of taps repeats the last tap; its columns are not stored.
        let js: [usize; JB] = std::array::from_fn(|b| (j0 + b).min(g.kw - 1));
        let mut acc = [[_mm256_setzero_ps(); V]; JB];
        let (dy, w) = (dy.as_ptr(), w.as_ptr());
        for o in 0..g.o {
            let row = dy.add(o * p + v0 * V8);
            let d: [__m256; V] = std::array::from_fn(|v| {
                if tail && v == V - 1 {
                    _mm256_maskload_ps(row.add(v * V8), last)
                } else {
                    _mm256_loadu_ps(row.add(v * V8))
                }
            });
            let wrow = w.add(((o * g.c + c) * g.kh + i) * g.kw);
            for (a, &j) in acc.iter_mut().zip(&js) {
                let wb = _mm256_broadcast_ss(&*wrow.add(j));
                for (x, &dv) in a.iter_mut().zip(&d) {
                    *x = _mm256_fmadd_ps(wb, dv, *x);
                }
            }
        }
        let rl = row_len(g);
        for (b, a) in acc.iter().enumerate().take(g.kw - j0) {
            let row = cols.as_mut_ptr().add((i * g.kw + j0 + b) * rl + FRONT);
            for (v, &x) in a.iter().enumerate() {
                _mm256_storeu_ps(row.add((v0 + v) * V8), x);
            }
        }
    }
}

/// `dx[y, x] = bias + Σ_{i,j} cols[i, j, (y + ph − i)·ow + x + pw − j]` over the taps that
/// land inside the output, for one channel `dx` (`[h, w]`) and kernels at most `KW` wide,
/// one running sum per tap column (so the adds do not wait on each other).
///
/// # Safety
/// AVX2 and FMA must be available; `cols` must hold one channel's columns (as
/// [`input_grad`] lays them out) and `dx` one `[h, w]` plane.
#[inline(always)]
unsafe fn fold<const KW: usize>(g: &ConvGeom, cols: &[f32], bias: f32, dx: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; each load is masked to
    // the lanes whose column lies in the output row, and the FRONT zeros cover taps left
    // of a row's start.
    unsafe {
        let ([ph, pw], rl) = (g.padding, row_len(g));
        let cols = cols.as_ptr();
        for x0 in (0..g.w).step_by(V8) {
            let n = V8.min(g.w - x0);
            // Per tap column j: the lanes whose column x0 + l + pw − j lies in 0..ow (and
            // x0 + l < w), and where lane 0 reads. Columns past the kernel read nothing.
            let start = x0 + pw;
            let taps: [(__m256i, isize); KW] = std::array::from_fn(|j| {
                let lo = j.saturating_sub(start).min(V8);
                let hi = (g.ow + j).saturating_sub(start).min(V8).min(n).max(lo);
                let m = if j < g.kw { mask_range(lo, hi) } else { mask(0) };
                (m, (j * rl) as isize + start as isize - j as isize)
            });
            for y in 0..g.h {
                let yy = y + ph;
                let mut s = [_mm256_setzero_ps(); KW];
                s[0] = _mm256_set1_ps(bias);
                for i in yy.saturating_sub(g.oh - 1)..g.kh.min(yy + 1) {
                    let src = cols.add(FRONT + (yy - i) * g.ow + i * g.kw * rl);
                    for (a, &(m, at)) in s.iter_mut().zip(&taps) {
                        *a = _mm256_add_ps(*a, _mm256_maskload_ps(src.wrapping_offset(at), m));
                    }
                }
                let mut sum = s[0];
                for &a in &s[1..] {
                    sum = _mm256_add_ps(sum, a);
                }
                store_n(dx.as_mut_ptr().add(y * g.w + x0), sum, n);
            }
        }
    }
}
