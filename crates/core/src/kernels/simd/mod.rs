//! A vector of f32 lanes and the few operations the hand-written kernels need, for every
//! level [`crate::cpu`] knows: AVX-512 (16 lanes), AVX2 (8) and NEON (4). A kernel written
//! once over [`Lanes`] runs at each level; the Winograd transforms (`conv/winograd/vector.rs`)
//! and the small products at the NEON level (`matmul/lanes.rs`) are written this way.
//!
//! Every method is `#[inline(always)]` and must be called from a function compiled with the
//! level's features (an x86 entry point with `#[target_feature]`; NEON is part of every
//! aarch64 target, so any aarch64 function will do), where the intrinsics inline.

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "aarch64")]
pub(crate) use neon::V4;
#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{V16, V8};

/// A vector of `L` f32 lanes and the operations on it.
pub(crate) trait Lanes: Copy {
    /// Lanes per vector.
    const L: usize;
    /// All lanes zero.
    unsafe fn zero() -> Self;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self;
    /// Lanes `l` with `0 ≤ start + l < len` from `base[start + l]`, the others zero; nothing
    /// outside `base[..len]` is read.
    unsafe fn load(base: *const f32, start: isize, len: usize) -> Self;
    /// All `L` lanes from `p[..L]` (no alignment needed).
    unsafe fn loadu(p: *const f32) -> Self;
    /// The first `n ≤ L` lanes to `dst[..n]`.
    unsafe fn store(self, dst: *mut f32, n: usize);
    /// All `L` lanes to `dst[..L]` (no alignment needed).
    unsafe fn storeu(self, dst: *mut f32);
    /// `self + b`.
    unsafe fn add(self, b: Self) -> Self;
    /// `self − b`.
    unsafe fn sub(self, b: Self) -> Self;
    /// `self · b + c`, rounded once (a fused multiply-add).
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// `−self` (the sign bit flipped, as scalar negation does).
    unsafe fn neg(self) -> Self;
    /// The even and odd elements of the `2L` elements `a` then `b`.
    unsafe fn even_odd(a: Self, b: Self) -> (Self, Self);
    /// `(e0, o0, e1, o1, …)` as two vectors: the inverse of [`Lanes::even_odd`].
    unsafe fn interleave(e: Self, o: Self) -> (Self, Self);
    /// Lanes `1..L` of `self`, then lane 0 of `next`.
    unsafe fn shift_in(self, next: Self) -> Self;
    /// The sum of the lanes (halves added pairwise, a fixed order per level).
    unsafe fn sum(self) -> f32;
}

/// The lanes `l` of `0..lanes` with `0 ≤ start + l < len`, as a range.
#[inline(always)]
pub(crate) fn valid(start: isize, len: usize, lanes: usize) -> (usize, usize) {
    let lo = (-start).clamp(0, lanes as isize) as usize;
    let hi = (len as isize - start).clamp(0, lanes as isize) as usize;
    (lo, hi.max(lo))
}
