//! AVX2 versions of the 2×2 tiled max-pooling passes for f32, 8 windows a step.
//!
//! Each 16-float stretch of the two input rows splits into even and odd columns with one
//! in-lane shuffle and one cross-lane permute each, giving the four taps of 8 windows as
//! four vectors; the backward interleaves them back with unpacks and lane permutes. The
//! last step of a row is masked. (The AVX-512 kernels' packing of several narrow rows into
//! one step needs two-source permutes, which AVX2 lacks; rows of 5 windows use 5 lanes.)

use super::{zero_past_windows, zero_rows_past_windows, Tiles};
use std::arch::x86_64::*;

/// The `vmaskmovps` mask of the first `n` lanes (`n` ≤ 8; more counts as 8).
///
/// # Safety
/// AVX must be available.
#[inline(always)]
unsafe fn mask(n: usize) -> __m256i {
    const ONES: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    // SAFETY: 8 − min(n, 8) ≤ 8, so the 8 lanes read lie inside ONES.
    unsafe { _mm256_loadu_si256(ONES.as_ptr().add(8 - n.min(8)).cast()) }
}

/// Fold tap `b` (offset vector `b.1`) into `a`: `b` wins when larger or NaN, the scalar
/// kernels' rule (in row-major window order: the last NaN, else the first maximum).
///
/// # Safety
/// AVX2 must be available.
#[inline(always)]
unsafe fn fold(a: (__m256, __m256i), b: (__m256, __m256i)) -> (__m256, __m256i) {
    // SAFETY: register-only intrinsics; AVX2 is the caller's promise.
    unsafe {
        let k = _mm256_or_ps(
            _mm256_cmp_ps::<_CMP_GT_OQ>(b.0, a.0),
            _mm256_cmp_ps::<_CMP_UNORD_Q>(b.0, b.0),
        );
        let i = _mm256_blendv_ps(_mm256_castsi256_ps(a.1), _mm256_castsi256_ps(b.1), k);
        (_mm256_blendv_ps(a.0, b.0, k), _mm256_castps_si256(i))
    }
}

/// Even and odd columns of 16 consecutive floats `lo`, `hi`: `[x0, x2, …, x14]`, `[x1, …, x15]`.
///
/// # Safety
/// AVX2 must be available.
#[inline(always)]
unsafe fn split(lo: __m256, hi: __m256) -> (__m256, __m256) {
    // SAFETY: register-only intrinsics; AVX2 is the caller's promise.
    unsafe {
        // Per 128-bit half: [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6]; the 64-bit permute puts the
        // halves in order.
        let e = _mm256_shuffle_ps::<0x88>(lo, hi);
        let o = _mm256_shuffle_ps::<0xDD>(lo, hi);
        let fix = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(v)));
        (fix(e), fix(o))
    }
}

/// Load `n` (≤ 16) floats at `p` as two vectors, zeros past `n`.
///
/// # Safety
/// AVX must be available; `n` floats at `p` must be readable.
#[inline(always)]
unsafe fn load16(p: *const f32, n: usize) -> (__m256, __m256) {
    // SAFETY: the caller's contract; masked lanes are not read.
    unsafe {
        if n == 16 {
            (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
        } else {
            (
                _mm256_maskload_ps(p, mask(n)),
                _mm256_maskload_ps(p.add(8), mask(n.saturating_sub(8))),
            )
        }
    }
}

/// Store the first `n` (≤ 16) floats of `(a, b)` at `p`.
///
/// # Safety
/// AVX must be available; `n` floats at `p` must be writable.
#[inline(always)]
unsafe fn store16(p: *mut f32, n: usize, a: __m256, b: __m256) {
    // SAFETY: the caller's contract; masked lanes are not written.
    unsafe {
        if n == 16 {
            _mm256_storeu_ps(p, a);
            _mm256_storeu_ps(p.add(8), b);
        } else {
            _mm256_maskstore_ps(p, mask(n), a);
            _mm256_maskstore_ps(p.add(8), mask(n.saturating_sub(8)), b);
        }
    }
}

/// Lane `j`'s window start column, `2j`.
const EVEN: [i32; 8] = [0, 2, 4, 6, 8, 10, 12, 14];

/// The 2×2 forward over `planes` planes; `at` null for no indices.
///
/// # Safety
/// The CPU has AVX2; `t` is a 2×2 tiling; `x` holds `planes·h·w` values, `out` (and `at`
/// unless null) `planes·oh·ow` slots.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn forward_2x2(x: *const f32, t: &Tiles, planes: usize, out: *mut f32, at: *mut u32) {
    // SAFETY: the caller upholds the `# Safety` contract above; loads and stores are masked
    // to the row's windows.
    unsafe {
        let ([h, w], [oh, ow]) = (t.hw, t.out);
        let off = [0, 1, w, w + 1].map(|o| _mm256_set1_epi32(o as i32));
        let even = _mm256_loadu_si256(EVEN.as_ptr().cast());
        for p in 0..planes {
            for oy in 0..oh {
                let base = 2 * oy * w;
                let top = x.add(p * h * w + base);
                let bottom = top.add(w);
                let o = p * oh * ow + oy * ow;
                let mut q = 0;
                while q < ow {
                    let m = (ow - q).min(8);
                    let (t0, t1) = load16(top.add(2 * q), 2 * m);
                    let (b0, b1) = load16(bottom.add(2 * q), 2 * m);
                    let ((te, to), (be, bo)) = (split(t0, t1), split(b0, b1));
                    let upper = fold((te, off[0]), (to, off[1]));
                    let lower = fold((be, off[2]), (bo, off[3]));
                    let (best, local) = fold(upper, lower);
                    let lanes = mask(m);
                    _mm256_maskstore_ps(out.add(o + q), lanes, best);
                    if !at.is_null() {
                        let start = _mm256_add_epi32(even, _mm256_set1_epi32((base + 2 * q) as i32));
                        _mm256_maskstore_epi32(at.add(o + q).cast(), lanes, _mm256_add_epi32(start, local));
                    }
                    q += 8;
                }
            }
        }
    }
}

/// The 2×2 backward over `planes` planes: every slot of `gx` written once.
///
/// # Safety
/// The CPU has AVX2; `t` is a 2×2 tiling; `gy` and `at` hold `planes·oh·ow` values
/// (indices from [`forward_2x2`]), `gx` `planes·h·w` slots.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn backward_2x2(gy: *const f32, at: *const u32, t: &Tiles, planes: usize, gx: *mut f32) {
    // SAFETY: the caller upholds the `# Safety` contract above; loads and stores are masked
    // to the row's windows.
    unsafe {
        let ([h, w], [oh, ow]) = (t.hw, t.out);
        let off = [0, 1, w, w + 1].map(|o| _mm256_set1_epi32(o as i32));
        let even = _mm256_loadu_si256(EVEN.as_ptr().cast());
        // Interleave two tap vectors back into 16 consecutive floats.
        let zip = |a: __m256, b: __m256| {
            let (lo, hi) = (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
            (
                _mm256_permute2f128_ps::<0x20>(lo, hi),
                _mm256_permute2f128_ps::<0x31>(lo, hi),
            )
        };
        for p in 0..planes {
            let plane = gx.add(p * h * w);
            for oy in 0..oh {
                let base = 2 * oy * w;
                let top = plane.add(base);
                let bottom = top.add(w);
                let o = p * oh * ow + oy * ow;
                let mut q = 0;
                while q < ow {
                    let m = (ow - q).min(8);
                    let lanes = mask(m);
                    let g = _mm256_maskload_ps(gy.add(o + q), lanes);
                    let i = _mm256_maskload_epi32(at.add(o + q).cast(), lanes);
                    let start = _mm256_add_epi32(even, _mm256_set1_epi32((base + 2 * q) as i32));
                    let local = _mm256_sub_epi32(i, start);
                    let [v00, v01, v10, v11] =
                        off.map(|o| _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(local, o)), g));
                    let (t0, t1) = zip(v00, v01);
                    let (b0, b1) = zip(v10, v11);
                    store16(top.add(2 * q), 2 * m, t0, t1);
                    store16(bottom.add(2 * q), 2 * m, b0, b1);
                    q += 8;
                }
                zero_past_windows(top, t);
            }
            zero_rows_past_windows(plane, t);
        }
    }
}
