//! AVX-512 f32 input gradient of a stride-1 convolution as columns, then folded:
//! for each input channel `c`, `cols[i, j, p] = Σ_o w[o, c, i, j] · dy[o, p]` (vectors along
//! the flattened output pixels `p`, so every lane is busy whatever the row width), then
//! `dx[c, y, x] = Σ_{i,j} cols[i, j, (y + ph − i)·ow + x + pw − j]` one dx row vector at a
//! time, with a masked load per tap.
//!
//! Gathering straight from the padded output gradient instead (a correlation with the
//! flipped kernel) multiplies the padding too: for LeNet's second layer (14×14 inputs from
//! 10×10 outputs, 5×5 taps) a third of those products are zeros. The columns do only the
//! useful products, and the fold is one load per tap per row vector.

#![cfg(target_arch = "x86_64")]

use crate::kernels::conv::geom::ConvGeom;
use std::arch::x86_64::*;

/// Lanes of one vector.
const L: usize = 16;
/// Zeros before each column row, so taps left of a row's start read inside the buffer.
pub(in crate::kernels::conv::direct) const FRONT: usize = L;
/// Pixel vectors per column tile.
const NV: usize = 4;

/// Whether [`input_grad`] takes `g`: stride 1, no dilation, one group, padding below the
/// kernel size, kernels 3 to 16 wide (each output-gradient vector loaded serves one
/// multiply-add per tap column: narrower kernels starve the FMAs), one image's output
/// gradient in L2 (it is read once per input channel and tap row), and for layers with
/// many channels at least 64 output pixels (at 4×4, 512 → 512, batch 32, im2col took
/// 14.9 ms where this took 19.0).
pub(in crate::kernels::conv::direct) fn fits(g: &ConvGeom) -> bool {
    g.groups == 1
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && (3..=FRONT).contains(&g.kw)
        && g.padding[0] < g.kh
        && g.padding[1] < g.kw
        && g.o * g.p() <= 1 << 16
        && (g.p() >= 64 || g.c * g.o < 64 * 64)
}

/// Length of one column row: the pixels rounded up to vectors, the front zeros, and slack
/// for the fold's last vector.
pub(in crate::kernels::conv::direct) fn row_len(g: &ConvGeom) -> usize {
    FRONT + g.p().div_ceil(L) * L + 2 * L
}

/// Scratch elements [`input_grad`] needs.
pub(in crate::kernels::conv::direct) fn scratch_len(g: &ConvGeom) -> usize {
    g.kh * g.kw * row_len(g)
}

/// `dx = bias + convᵀ(dy, w)` for one image: `dy` is `[o, oh·ow]`, `w` is `[o, c, kh, kw]`,
/// `dx` is `[c, h, w]`; `cols` is scratch of [`scratch_len`] elements.
///
/// # Safety
/// AVX-512F must be available and `fits(g)` must hold.
pub(super) unsafe fn input_grad(
    g: &ConvGeom,
    dy: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    cols: &mut [f32],
    dx: &mut [f32],
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        assert!(dy.len() >= g.o * g.p() && w.len() >= g.o * g.k() && dx.len() >= g.c * g.h * g.w);
        assert!(cols.len() >= scratch_len(g) && bias.is_none_or(|b| b.len() >= g.c));
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
/// AVX-512F must be available and the buffers sized as [`input_grad`] asserts.
#[target_feature(enable = "avx512f")]
unsafe fn image<const JB: usize>(
    g: &ConvGeom,
    dy: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    cols: &mut [f32],
    dx: &mut [f32],
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let (p, rl) = (g.p(), row_len(g));
        let nvec = p.div_ceil(L);
        for r in cols.chunks_mut(rl).take(g.kh * g.kw) {
            r[..FRONT].fill(0.0);
        }
        for c in 0..g.c {
            for i in 0..g.kh {
                for j0 in (0..g.kw).step_by(JB) {
                    let mut v0 = 0;
                    while v0 < nvec {
                        match nvec - v0 {
                            1 => tile::<JB, 1>(g, dy, w, cols, c, i, j0, v0),
                            2 => tile::<JB, 2>(g, dy, w, cols, c, i, j0, v0),
                            3 => tile::<JB, 3>(g, dy, w, cols, c, i, j0, v0),
                            _ => tile::<JB, NV>(g, dy, w, cols, c, i, j0, v0),
                        }
                        v0 += NV;
                    }
                }
            }
            let b = bias.map_or(0.0, |b| b[c]);
            fold(g, cols, b, &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w]);
        }
    }
}

/// Columns `(i, j0..j0+JB)` × pixel vectors `v0..v0+V` of input channel `c`.
///
/// # Safety
/// AVX-512F must be available, the slices sized as [`input_grad`] asserts, and the taps `j0..j0+JB` and pixel vectors `v0..v0+V` inside channel `c`'s columns.
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
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let p = g.p();
        let last = super::rows::mask(p - (p.div_ceil(L) - 1) * L);
        let nvec = p.div_ceil(L);
        let lane_mask = |v: usize| if v0 + v == nvec - 1 { last } else { !0 };
        // A short last block of taps repeats the last tap; its columns are not stored.
        let js: [usize; JB] = std::array::from_fn(|b| (j0 + b).min(g.kw - 1));
        let mut acc = [[_mm512_setzero_ps(); V]; JB];
        let (dy, w) = (dy.as_ptr(), w.as_ptr());
        for o in 0..g.o {
            let d: [__m512; V] =
                std::array::from_fn(|v| _mm512_maskz_loadu_ps(lane_mask(v), dy.add(o * p + (v0 + v) * L)));
            let wrow = w.add(((o * g.c + c) * g.kh + i) * g.kw);
            for (a, &j) in acc.iter_mut().zip(&js) {
                let wb = _mm512_set1_ps(*wrow.add(j));
                for (x, &dv) in a.iter_mut().zip(&d) {
                    *x = _mm512_fmadd_ps(wb, dv, *x);
                }
            }
        }
        let rl = row_len(g);
        for (b, a) in acc.iter().enumerate().take(g.kw - j0) {
            let row = cols.as_mut_ptr().add((i * g.kw + j0 + b) * rl + FRONT);
            for (v, &x) in a.iter().enumerate() {
                _mm512_storeu_ps(row.add((v0 + v) * L), x);
            }
        }
    }
}

/// `dx[y, x] = bias + Σ_{i,j} cols[i, j, (y + ph − i)·ow + x + pw − j]` over the taps that
/// land inside the output, for one channel `dx` (`[h, w]`).
///
/// # Safety
/// AVX-512F must be available; `cols` must hold one channel's columns (as [`input_grad`] lays them out) and `dx` one `[h, w]` plane.
#[target_feature(enable = "avx512f")]
unsafe fn fold(g: &ConvGeom, cols: &[f32], bias: f32, dx: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        match g.kw {
            1 => fold_kw::<1>(g, cols, bias, dx),
            2 => fold_kw::<2>(g, cols, bias, dx),
            3 => fold_kw::<3>(g, cols, bias, dx),
            4 => fold_kw::<4>(g, cols, bias, dx),
            5 => fold_kw::<5>(g, cols, bias, dx),
            6 => fold_kw::<6>(g, cols, bias, dx),
            7 => fold_kw::<7>(g, cols, bias, dx),
            _ => fold_kw::<FRONT>(g, cols, bias, dx),
        }
    }
}

/// [`fold`] for kernels at most `KW` wide, one running sum per tap column (so the adds do
/// not wait on each other; measured 5× faster than one sum at LeNet's 5×5).
///
/// # Safety
/// As [`fold`], with the kernel at most `KW` wide.
#[inline(always)]
unsafe fn fold_kw<const KW: usize>(g: &ConvGeom, cols: &[f32], bias: f32, dx: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        use super::rows::mask;
        let ([ph, pw], rl) = (g.padding, row_len(g));
        let cols = cols.as_ptr();
        for x0 in (0..g.w).step_by(L) {
            let store = mask(L.min(g.w - x0));
            // Per tap column j: the lanes whose column x0 + l + pw − j lies in 0..ow (and
            // x0 + l < w), and where lane 0 reads (`start − j` may be negative down to
            // −(kw − 1): the FRONT zeros). Columns past the kernel read nothing.
            let start = x0 + pw;
            let taps: [(__mmask16, isize); KW] = std::array::from_fn(|j| {
                let lo = j.saturating_sub(start);
                let hi = (g.ow + j).saturating_sub(start).min(L).min(g.w - x0).max(lo);
                let m = if j < g.kw { mask(hi) & !mask(lo) } else { 0 };
                (m, (j * rl) as isize + start as isize - j as isize)
            });
            for y in 0..g.h {
                let yy = y + ph;
                let mut s = [_mm512_setzero_ps(); KW];
                s[0] = _mm512_set1_ps(bias);
                for i in yy.saturating_sub(g.oh - 1)..g.kh.min(yy + 1) {
                    let src = cols.add(FRONT + (yy - i) * g.ow + i * g.kw * rl);
                    for (a, &(m, at)) in s.iter_mut().zip(&taps) {
                        *a = _mm512_add_ps(*a, _mm512_maskz_loadu_ps(m, src.wrapping_offset(at)));
                    }
                }
                let mut sum = s[0];
                for &a in &s[1..] {
                    sum = _mm512_add_ps(sum, a);
                }
                _mm512_mask_storeu_ps(dx.as_mut_ptr().add(y * g.w + x0), store, sum);
            }
        }
    }
}
