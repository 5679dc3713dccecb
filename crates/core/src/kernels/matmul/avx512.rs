//! The AVX-512 level of the small, unpacked products ([`super::lanes`]): `gemm` copies both
//! operands into panels on every call, which costs as much as the arithmetic when one
//! dimension is a batch of 64, so fully connected layers' shapes run here instead.
//!
//! Tiles sized for 32 registers of 16 lanes: [`outer`] 6×4 accumulators (A may have any
//! strides, so `gᵀ·x`, a weight gradient, and `g·W`, an input gradient, both run without
//! copies); [`dot`] 6×4 accumulators of dot products along k.

use super::lanes::{self, Dst, Tiles};
use crate::kernels::simd::V16;
use std::arch::x86_64::*;

pub(crate) use super::lanes::{Raw, Start};

impl Tiles for V16 {
    const OUTER_NV: usize = 4;
    // 24 accumulators + 4 vectors of b + 1 of a.
    const DOT_MR: usize = 6;
    const DOT_NR: usize = 4;
    const CHUNK_MACS: usize = 1 << 18;

    /// By a fixed tree of 512-bit shuffles (EVEX only, so the accumulators may live in any of
    /// the 32 registers).
    #[target_feature(enable = "avx512f")]
    unsafe fn outer_tile<const MR: usize, const NV: usize>(
        k: usize,
        a: Raw,
        b: Raw,
        d: Dst,
        tail: usize,
        start: Start<'_>,
    ) {
        // SAFETY: the caller's contract; this function has the level's features.
        unsafe { lanes::outer_tile::<Self, MR, NV>(k, a, b, d, tail, start) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn dot_tile<const MR: usize, const NR: usize>(k: usize, a: Raw, b: Raw, d: Dst, start: Start<'_>) {
        // SAFETY: as above.
        unsafe { lanes::dot_tile::<Self, MR, NR>(k, a, b, d, start) }
    }

    #[inline(always)]
    unsafe fn reduce4(v: [Self; 4]) -> [f32; 4] {
        let [v0, v1, v2, v3] = v.map(|x| x.0);
        // SAFETY: register-only intrinsics; the caller runs this with AVX-512F on.
        unsafe {
            // Per 128-bit lane: [v0₀+v0₂, v1₀+v1₂, v0₁+v0₃, v1₁+v1₃] and the same for v2, v3.
            let a = _mm512_add_ps(_mm512_unpacklo_ps(v0, v1), _mm512_unpackhi_ps(v0, v1));
            let b = _mm512_add_ps(_mm512_unpacklo_ps(v2, v3), _mm512_unpackhi_ps(v2, v3));
            // Per 128-bit lane: the four vectors' sums over that lane.
            let c = _mm512_add_ps(_mm512_shuffle_ps::<0x44>(a, b), _mm512_shuffle_ps::<0xEE>(a, b));
            // Add the four 128-bit lanes.
            let e = _mm512_add_ps(c, _mm512_shuffle_f32x4::<0b01_00_11_10>(c, c));
            let f = _mm512_add_ps(e, _mm512_shuffle_f32x4::<0b10_11_00_01>(e, e));
            let mut out = [0f32; 4];
            _mm_storeu_ps(out.as_mut_ptr(), _mm512_castps512_ps128(f));
            out
        }
    }
}

/// [`lanes::outer`] on 16-lane vectors.
///
/// # Safety
/// AVX-512F must be available; otherwise as [`lanes::outer`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn outer(
    m: usize,
    n: usize,
    k: usize,
    a: Raw,
    b: Raw,
    dst: *mut f32,
    ldc: usize,
    start: Start<'_>,
    threads: usize,
) {
    // SAFETY: the caller's contract; this function has the level's features.
    unsafe { lanes::outer::<V16>(m, n, k, a, b, dst, ldc, start, threads) }
}

/// [`lanes::dot`] on 16-lane vectors.
///
/// # Safety
/// AVX-512F must be available; otherwise as [`lanes::dot`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn dot(
    m: usize,
    n: usize,
    k: usize,
    a: Raw,
    b: Raw,
    dst: *mut f32,
    ldc: usize,
    start: Start<'_>,
    threads: usize,
) {
    // SAFETY: as above.
    unsafe { lanes::dot::<V16>(m, n, k, a, b, dst, ldc, start, threads) }
}
