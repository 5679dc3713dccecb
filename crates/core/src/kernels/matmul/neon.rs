//! The NEON level of the small, unpacked products ([`super::lanes`]): NEON is part of every
//! aarch64 target, so its kernels need no features named. Tiles: [`outer`] 6×4 accumulators
//! (24 of NEON's 32 registers); [`dot`] 4×4 accumulators of dot products along k.

use super::lanes::{self, Dst, Raw, Start, Tiles};
use crate::kernels::simd::{Lanes, V4};

impl Tiles for V4 {
    const OUTER_NV: usize = 4;
    const DOT_MR: usize = 4;
    const DOT_NR: usize = 4;
    const CHUNK_MACS: usize = 1 << 17;

    // NEON is always on: no features to add.
    #[inline(always)]
    unsafe fn outer_tile<const MR: usize, const NV: usize>(
        k: usize,
        a: Raw,
        b: Raw,
        d: Dst,
        tail: usize,
        start: Start<'_>,
    ) {
        // SAFETY: the caller's contract.
        unsafe { lanes::outer_tile::<Self, MR, NV>(k, a, b, d, tail, start) }
    }

    #[inline(always)]
    unsafe fn dot_tile<const MR: usize, const NR: usize>(k: usize, a: Raw, b: Raw, d: Dst, start: Start<'_>) {
        // SAFETY: the caller's contract.
        unsafe { lanes::dot_tile::<Self, MR, NR>(k, a, b, d, start) }
    }

    #[inline(always)]
    unsafe fn reduce4(v: [Self; 4]) -> [f32; 4] {
        // Each vector's lanes summed left to right (from 0.0, as NEON's results always were).
        let mut out = [0f32; 4];
        let mut l = [0f32; 4];
        for (o, x) in out.iter_mut().zip(v) {
            // SAFETY: `l` holds 4 floats; NEON is always there.
            unsafe { x.storeu(l.as_mut_ptr()) };
            *o = l.iter().fold(0.0f32, |t, &x| t + x);
        }
        out
    }
}

/// [`lanes::outer`] on 4-lane NEON vectors.
///
/// # Safety
/// As [`lanes::outer`].
#[allow(clippy::too_many_arguments)]
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
    // SAFETY: the caller's contract; NEON is always there.
    unsafe { lanes::outer::<V4>(m, n, k, a, b, dst, ldc, start, threads) }
}

/// [`lanes::dot`] on 4-lane NEON vectors.
///
/// # Safety
/// As [`lanes::dot`].
#[allow(clippy::too_many_arguments)]
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
    // SAFETY: the caller's contract; NEON is always there.
    unsafe { lanes::dot::<V4>(m, n, k, a, b, dst, ldc, start, threads) }
}
