//! [`Lanes`] on x86-64: 16 lanes of AVX-512F and 8 of AVX2 with FMA.

use super::{valid, Lanes};
use std::arch::x86_64::*;

/// 16 lanes of AVX-512F.
#[derive(Clone, Copy)]
pub(crate) struct V16(pub(crate) __m512);

impl Lanes for V16 {
    const L: usize = 16;

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller runs this with the level's features on.
        unsafe { V16(_mm512_setzero_ps()) }
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: the caller runs this with the level's features on.
        unsafe { V16(_mm512_set1_ps(x)) }
    }

    #[inline(always)]
    unsafe fn load(base: *const f32, start: isize, len: usize) -> Self {
        let (lo, hi) = valid(start, len, 16);
        let mask = (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as __mmask16;
        // SAFETY: masked-off lanes are not read (and do not fault), so only base[..len] is;
        // the pointer is formed with wrapping arithmetic and never dereferenced outside it.
        unsafe { V16(_mm512_maskz_loadu_ps(mask, base.wrapping_offset(start))) }
    }

    #[inline(always)]
    unsafe fn loadu(p: *const f32) -> Self {
        // SAFETY: the caller's contract: p[..16] is readable.
        unsafe { V16(_mm512_loadu_ps(p)) }
    }

    #[inline(always)]
    unsafe fn store(self, dst: *mut f32, n: usize) {
        // SAFETY: the caller gives room for n lanes; the others are masked off.
        unsafe { _mm512_mask_storeu_ps(dst, ((1u32 << n) - 1) as __mmask16, self.0) }
    }

    #[inline(always)]
    unsafe fn storeu(self, dst: *mut f32) {
        // SAFETY: the caller's contract: dst[..16] is writable.
        unsafe { _mm512_storeu_ps(dst, self.0) }
    }

    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: the caller runs this with the level's features on.
        unsafe { V16(_mm512_add_ps(self.0, b.0)) }
    }

    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        // SAFETY: the caller runs this with the level's features on.
        unsafe { V16(_mm512_sub_ps(self.0, b.0)) }
    }

    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: the caller runs this with the level's features on.
        unsafe { V16(_mm512_fmadd_ps(self.0, b.0, c.0)) }
    }

    #[inline(always)]
    unsafe fn neg(self) -> Self {
        // SAFETY: the caller runs this with the level's features on.
        unsafe {
            let sign = _mm512_set1_epi32(i32::MIN);
            V16(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(self.0), sign)))
        }
    }

    #[inline(always)]
    unsafe fn even_odd(a: Self, b: Self) -> (Self, Self) {
        // SAFETY: the caller runs this with the level's features on.
        unsafe {
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            (
                V16(_mm512_permutex2var_ps(a.0, even, b.0)),
                V16(_mm512_permutex2var_ps(a.0, odd, b.0)),
            )
        }
    }

    #[inline(always)]
    unsafe fn interleave(e: Self, o: Self) -> (Self, Self) {
        // SAFETY: the caller runs this with the level's features on.
        unsafe {
            let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            let hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
            (
                V16(_mm512_permutex2var_ps(e.0, lo, o.0)),
                V16(_mm512_permutex2var_ps(e.0, hi, o.0)),
            )
        }
    }

    #[inline(always)]
    unsafe fn shift_in(self, next: Self) -> Self {
        // SAFETY: the caller runs this with the level's features on.
        unsafe {
            let idx = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
            V16(_mm512_permutex2var_ps(self.0, idx, next.0))
        }
    }

    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        // SAFETY: the caller runs this with the level's features on.
        unsafe {
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0)));
            sum8(_mm256_add_ps(_mm512_castps512_ps256(self.0), hi))
        }
    }
}

/// 8 lanes of AVX2.
#[derive(Clone, Copy)]
pub(crate) struct V8(pub(crate) __m256);

impl Lanes for V8 {
    const L: usize = 8;

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller runs this with the level's features on.
        unsafe { V8(_mm256_setzero_ps()) }
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: the caller runs this with the level's features on.
        unsafe { V8(_mm256_set1_ps(x)) }
    }

    #[inline(always)]
    unsafe fn load(base: *const f32, start: isize, len: usize) -> Self {
        let (lo, hi) = valid(start, len, 8);
        // SAFETY: the caller runs this with the level's features on.
        unsafe {
            let l = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            // lo ≤ l < hi, as lanes of all ones.
            let above = _mm256_cmpgt_epi32(l, _mm256_set1_epi32(lo as i32 - 1));
            let below = _mm256_cmpgt_epi32(_mm256_set1_epi32(hi as i32), l);
            // SAFETY: as for V16: masked-off lanes are not read and do not fault.
            V8(_mm256_maskload_ps(
                base.wrapping_offset(start),
                _mm256_and_si256(above, below),
            ))
        }
    }

    #[inline(always)]
    unsafe fn store(self, dst: *mut f32, n: usize) {
        // SAFETY: the caller runs this with the level's features on.
        unsafe {
            let l = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), l);
            // SAFETY: the caller gives room for n lanes; the others are masked off.
            _mm256_maskstore_ps(dst, mask, self.0)
        }
    }

    #[inline(always)]
    unsafe fn loadu(p: *const f32) -> Self {
        // SAFETY: the caller's contract: p[..8] is readable.
        unsafe { V8(_mm256_loadu_ps(p)) }
    }

    #[inline(always)]
    unsafe fn storeu(self, dst: *mut f32) {
        // SAFETY: the caller's contract: dst[..8] is writable.
        unsafe { _mm256_storeu_ps(dst, self.0) }
    }

    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: the caller runs this with the level's features on.
        unsafe { V8(_mm256_add_ps(self.0, b.0)) }
    }

    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        // SAFETY: the caller runs this with the level's features on.
        unsafe { V8(_mm256_sub_ps(self.0, b.0)) }
    }

    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: the caller runs this with the level's features on (FMA with AVX2).
        unsafe { V8(_mm256_fmadd_ps(self.0, b.0, c.0)) }
    }

    #[inline(always)]
    unsafe fn neg(self) -> Self {
        // SAFETY: the caller runs this with the level's features on.
        unsafe { V8(_mm256_xor_ps(self.0, _mm256_set1_ps(-0.0))) }
    }

    #[inline(always)]
    unsafe fn even_odd(a: Self, b: Self) -> (Self, Self) {
        // SAFETY: the caller runs this with the level's features on.
        unsafe {
            // Within 128-bit halves: (a0 a2 b0 b2 | a4 a6 b4 b6); then the middle quarters swap.
            let e = _mm256_shuffle_ps::<0b10_00_10_00>(a.0, b.0);
            let o = _mm256_shuffle_ps::<0b11_01_11_01>(a.0, b.0);
            let e = _mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(e));
            let o = _mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(o));
            (V8(_mm256_castpd_ps(e)), V8(_mm256_castpd_ps(o)))
        }
    }

    #[inline(always)]
    unsafe fn interleave(e: Self, o: Self) -> (Self, Self) {
        // SAFETY: the caller runs this with the level's features on.
        unsafe {
            let lo = _mm256_unpacklo_ps(e.0, o.0); // e0 o0 e1 o1 | e4 o4 e5 o5
            let hi = _mm256_unpackhi_ps(e.0, o.0); // e2 o2 e3 o3 | e6 o6 e7 o7
            (
                V8(_mm256_permute2f128_ps::<0x20>(lo, hi)),
                V8(_mm256_permute2f128_ps::<0x31>(lo, hi)),
            )
        }
    }

    #[inline(always)]
    unsafe fn shift_in(self, next: Self) -> Self {
        // SAFETY: the caller runs this with the level's features on.
        unsafe {
            let rot = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
            let r = _mm256_permutevar8x32_ps(self.0, rot);
            let n = _mm256_permutevar8x32_ps(next.0, _mm256_setzero_si256());
            V8(_mm256_blend_ps::<0b1000_0000>(r, n))
        }
    }

    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        // SAFETY: the caller runs this with the level's features on.
        unsafe { sum8(self.0) }
    }
}

/// The sum of 8 lanes: halves added until one lane is left.
#[inline(always)]
unsafe fn sum8(v: __m256) -> f32 {
    // SAFETY: the caller runs this with AVX (part of both levels) on.
    unsafe {
        let x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
        _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps::<1>(x, x)))
    }
}
