//! NEON versions of the 2×2 tiled max-pooling passes for f32, 4 windows a step.
//!
//! NEON's structured loads do the column split: `vld2q_f32` reads 8 consecutive floats as
//! their even and odd columns, the two taps of 4 windows on one input row, and `vst2q_f32`
//! interleaves them back in the backward. The last step of a row goes through a stack
//! buffer (NEON has no masked loads or stores).

use super::{zero_past_windows, zero_rows_past_windows, Tiles};
use std::arch::aarch64::*;

/// Fold tap `b` (offset vector `b.1`) into `a`: `b` wins when larger or NaN, the scalar
/// kernels' rule (in row-major window order: the last NaN, else the first maximum).
#[inline(always)]
fn fold(a: (float32x4_t, uint32x4_t), b: (float32x4_t, uint32x4_t)) -> (float32x4_t, uint32x4_t) {
    // SAFETY: register-only intrinsics; NEON is part of the aarch64 baseline.
    unsafe {
        let nan = vmvnq_u32(vceqq_f32(b.0, b.0));
        let k = vorrq_u32(vcgtq_f32(b.0, a.0), nan);
        (vbslq_f32(k, b.0, a.0), vbslq_u32(k, b.1, a.1))
    }
}

/// The even and odd columns of the `2n` (`n` ≤ 4) floats at `p`, zeros past them.
///
/// # Safety
/// `2n` floats at `p` must be readable.
#[inline(always)]
unsafe fn load_pairs(p: *const f32, n: usize) -> float32x4x2_t {
    // SAFETY: the caller's contract; a short step reads only its 2n floats.
    unsafe {
        if n == 4 {
            return vld2q_f32(p);
        }
        let mut buf = [0f32; 8];
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), 2 * n);
        vld2q_f32(buf.as_ptr())
    }
}

/// Interleave `e` and `o` into the `2n` (`n` ≤ 4) floats at `p`: `e0, o0, e1, o1, …`.
///
/// # Safety
/// `2n` floats at `p` must be writable.
#[inline(always)]
unsafe fn store_pairs(p: *mut f32, n: usize, e: float32x4_t, o: float32x4_t) {
    // SAFETY: the caller's contract; a short step writes only its 2n floats.
    unsafe {
        if n == 4 {
            return vst2q_f32(p, float32x4x2_t(e, o));
        }
        let mut buf = [0f32; 8];
        vst2q_f32(buf.as_mut_ptr(), float32x4x2_t(e, o));
        std::ptr::copy_nonoverlapping(buf.as_ptr(), p, 2 * n);
    }
}

/// The first `n` (≤ 4) lanes of `v` to `p`.
///
/// # Safety
/// `n` elements at `p` must be writable.
#[inline(always)]
unsafe fn store_n<T: Copy>(p: *mut T, n: usize, v: [T; 4]) {
    // SAFETY: the caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), p, n) }
}

/// The first `n` (≤ 4) elements at `p`, zeros (of `T`'s bits) past them.
///
/// # Safety
/// `n` elements at `p` must be readable.
#[inline(always)]
unsafe fn load_n<T: Copy + Default>(p: *const T, n: usize) -> [T; 4] {
    let mut v = [T::default(); 4];
    // SAFETY: the caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), n) };
    v
}

/// Lane `j`'s window start column, `2j`.
const EVEN: [u32; 4] = [0, 2, 4, 6];

/// The 2×2 forward over `planes` planes; `at` null for no indices.
///
/// # Safety
/// `t` is a 2×2 tiling; `x` holds `planes·h·w` values, `out` (and `at` unless null)
/// `planes·oh·ow` slots.
pub(super) unsafe fn forward_2x2(x: *const f32, t: &Tiles, planes: usize, out: *mut f32, at: *mut u32) {
    // SAFETY: the caller upholds the `# Safety` contract above; loads and stores stay in
    // the row's windows.
    unsafe {
        let ([h, w], [oh, ow]) = (t.hw, t.out);
        let off = [0, 1, w, w + 1].map(|o| vdupq_n_u32(o as u32));
        let even = vld1q_u32(EVEN.as_ptr());
        for p in 0..planes {
            for oy in 0..oh {
                let base = 2 * oy * w;
                let top = x.add(p * h * w + base);
                let bottom = top.add(w);
                let o = p * oh * ow + oy * ow;
                let mut q = 0;
                while q < ow {
                    let m = (ow - q).min(4);
                    let tv = load_pairs(top.add(2 * q), m);
                    let bv = load_pairs(bottom.add(2 * q), m);
                    let upper = fold((tv.0, off[0]), (tv.1, off[1]));
                    let lower = fold((bv.0, off[2]), (bv.1, off[3]));
                    let (best, local) = fold(upper, lower);
                    let mut lanes = [0f32; 4];
                    vst1q_f32(lanes.as_mut_ptr(), best);
                    store_n(out.add(o + q), m, lanes);
                    if !at.is_null() {
                        let start = vaddq_u32(even, vdupq_n_u32((base + 2 * q) as u32));
                        let mut idx = [0u32; 4];
                        vst1q_u32(idx.as_mut_ptr(), vaddq_u32(start, local));
                        store_n(at.add(o + q), m, idx);
                    }
                    q += 4;
                }
            }
        }
    }
}

/// The 2×2 backward over `planes` planes: every slot of `gx` written once.
///
/// # Safety
/// `t` is a 2×2 tiling; `gy` and `at` hold `planes·oh·ow` values (indices from
/// [`forward_2x2`]), `gx` `planes·h·w` slots.
pub(super) unsafe fn backward_2x2(gy: *const f32, at: *const u32, t: &Tiles, planes: usize, gx: *mut f32) {
    // SAFETY: the caller upholds the `# Safety` contract above; loads and stores stay in
    // the row's windows.
    unsafe {
        let ([h, w], [oh, ow]) = (t.hw, t.out);
        let off = [0, 1, w, w + 1].map(|o| vdupq_n_u32(o as u32));
        let even = vld1q_u32(EVEN.as_ptr());
        let zero = vdupq_n_f32(0.0);
        for p in 0..planes {
            let plane = gx.add(p * h * w);
            for oy in 0..oh {
                let base = 2 * oy * w;
                let top = plane.add(base);
                let bottom = top.add(w);
                let o = p * oh * ow + oy * ow;
                let mut q = 0;
                while q < ow {
                    let m = (ow - q).min(4);
                    let g = vld1q_f32(load_n(gy.add(o + q), m).as_ptr());
                    let i = vld1q_u32(load_n(at.add(o + q), m).as_ptr());
                    let start = vaddq_u32(even, vdupq_n_u32((base + 2 * q) as u32));
                    let local = vsubq_u32(i, start);
                    let [v00, v01, v10, v11] = off.map(|o| vbslq_f32(vceqq_u32(local, o), g, zero));
                    store_pairs(top.add(2 * q), m, v00, v01);
                    store_pairs(bottom.add(2 * q), m, v10, v11);
                    q += 4;
                }
                zero_past_windows(top, t);
            }
            zero_rows_past_windows(plane, t);
        }
    }
}
