//! The AVX2+FMA level of the small, unpacked products ([`super::lanes`]), tiles sized for 16
//! registers of 8 lanes: [`outer`] 6×2 accumulators (the classic 6×16 AVX2 tile, 12 + 2 + 1
//! registers); [`dot`] 4×3 accumulators of dot products along k (12 + 3 + 1).

use super::avx512::{Raw, Start};
use super::lanes::{self, Dst, Tiles};
use crate::kernels::simd::V8;
use std::arch::x86_64::*;

impl Tiles for V8 {
    const OUTER_NV: usize = 2;
    const DOT_MR: usize = 4;
    const DOT_NR: usize = 3;
    const CHUNK_MACS: usize = 1 << 17;

    /// By a fixed tree of horizontal adds.
    #[target_feature(enable = "avx2,fma")]
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

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_tile<const MR: usize, const NR: usize>(k: usize, a: Raw, b: Raw, d: Dst, start: Start<'_>) {
        // SAFETY: as above.
        unsafe { lanes::dot_tile::<Self, MR, NR>(k, a, b, d, start) }
    }

    #[inline(always)]
    unsafe fn reduce4(v: [Self; 4]) -> [f32; 4] {
        let [v0, v1, v2, v3] = v.map(|x| x.0);
        // SAFETY: register-only intrinsics; the caller runs this with AVX on.
        unsafe {
            // Per 128-bit half: [v0₀+v0₁, v0₂+v0₃, v1₀+v1₁, v1₂+v1₃] and the same for v2, v3.
            let a = _mm256_hadd_ps(v0, v1);
            let b = _mm256_hadd_ps(v2, v3);
            // Per half: the four vectors' sums over that half.
            let c = _mm256_hadd_ps(a, b);
            let mut out = [0f32; 4];
            _mm_storeu_ps(
                out.as_mut_ptr(),
                _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps::<1>(c)),
            );
            out
        }
    }
}

/// [`lanes::outer`] on 8-lane vectors.
///
/// # Safety
/// AVX2 and FMA must be available; otherwise as [`lanes::outer`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
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
    unsafe { lanes::outer::<V8>(m, n, k, a, b, dst, ldc, start, threads) }
}

/// [`lanes::dot`] on 8-lane vectors.
///
/// # Safety
/// AVX2 and FMA must be available; otherwise as [`lanes::dot`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
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
    unsafe { lanes::dot::<V8>(m, n, k, a, b, dst, ldc, start, threads) }
}
