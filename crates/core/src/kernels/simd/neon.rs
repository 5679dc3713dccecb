//! [`Lanes`] on aarch64: 4 lanes of NEON (Advanced SIMD), which every aarch64 CPU has, so
//! these intrinsics inline into any function.
//!
//! NEON has no masked loads or stores: the partial ones go through a 4-element buffer on
//! the stack (they only happen at the ends of rows).

use super::{valid, Lanes};
use std::arch::aarch64::*;

/// 4 lanes of NEON.
#[derive(Clone, Copy)]
pub(crate) struct V4(float32x4_t);

impl Lanes for V4 {
    const L: usize = 4;

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { V4(vdupq_n_f32(0.0)) }
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { V4(vdupq_n_f32(x)) }
    }

    #[inline(always)]
    unsafe fn load(base: *const f32, start: isize, len: usize) -> Self {
        let (lo, hi) = valid(start, len, 4);
        // SAFETY: only base[start + l] for lo ≤ l < hi is read, all inside base[..len].
        unsafe {
            if lo == 0 && hi == 4 {
                return V4(vld1q_f32(base.offset(start)));
            }
            let mut buf = [0f32; 4];
            for (l, b) in buf.iter_mut().enumerate().take(hi).skip(lo) {
                *b = *base.offset(start + l as isize);
            }
            V4(vld1q_f32(buf.as_ptr()))
        }
    }

    #[inline(always)]
    unsafe fn loadu(p: *const f32) -> Self {
        // SAFETY: the caller's contract: p[..4] is readable.
        unsafe { V4(vld1q_f32(p)) }
    }

    #[inline(always)]
    unsafe fn store(self, dst: *mut f32, n: usize) {
        // SAFETY: the caller gives room for n ≤ 4 lanes; only those are written.
        unsafe {
            if n == 4 {
                return vst1q_f32(dst, self.0);
            }
            let mut buf = [0f32; 4];
            vst1q_f32(buf.as_mut_ptr(), self.0);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), dst, n);
        }
    }

    #[inline(always)]
    unsafe fn storeu(self, dst: *mut f32) {
        // SAFETY: the caller's contract: dst[..4] is writable.
        unsafe { vst1q_f32(dst, self.0) }
    }

    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { V4(vaddq_f32(self.0, b.0)) }
    }

    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { V4(vsubq_f32(self.0, b.0)) }
    }

    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline (`vfmaq_f32(c, a, b)` is c + a·b).
        unsafe { V4(vfmaq_f32(c.0, self.0, b.0)) }
    }

    #[inline(always)]
    unsafe fn neg(self) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline; `fneg` flips the sign bit only.
        unsafe { V4(vnegq_f32(self.0)) }
    }

    #[inline(always)]
    unsafe fn even_odd(a: Self, b: Self) -> (Self, Self) {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { (V4(vuzp1q_f32(a.0, b.0)), V4(vuzp2q_f32(a.0, b.0))) }
    }

    #[inline(always)]
    unsafe fn interleave(e: Self, o: Self) -> (Self, Self) {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { (V4(vzip1q_f32(e.0, o.0)), V4(vzip2q_f32(e.0, o.0))) }
    }

    #[inline(always)]
    unsafe fn shift_in(self, next: Self) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { V4(vextq_f32::<1>(self.0, next.0)) }
    }

    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { vaddvq_f32(self.0) }
    }
}
