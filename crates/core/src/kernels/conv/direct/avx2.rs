//! The AVX2 + FMA direct kernels (8 lanes), with the same layouts as the AVX-512 ones so
//! the drivers are shared: vectors along output rows (`rows`), two vectors per block of 16
//! output channels (`chans`), and the folded input gradient (`fold`), behind [`Kernels`].
//!
//! Only 16 vector registers: tiles hold at most about 12 accumulators. Row tails use
//! masked loads (`vmaskmovps`) and stores in pieces (see [`store_n`]); reads past a row
//! inside the padded buffers are covered by their slack, as for AVX-512.

pub(super) mod chans;
pub(super) mod fold;
pub(super) mod rows;

use super::drive::Kernels;
use super::{ConvGeom, Corr, L};
use std::arch::x86_64::*;

/// Lanes of one AVX2 vector.
const V8: usize = 8;

/// The `vmaskmovps` mask of the first `n` (≤ 8) lanes.
///
/// # Safety
/// AVX must be available.
#[inline(always)]
unsafe fn mask(n: usize) -> __m256i {
    static M: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    // SAFETY: 8 − n ≤ 8, so the 8 elements read lie inside M.
    unsafe { _mm256_loadu_si256(M.as_ptr().add(V8 - n.min(V8)) as *const __m256i) }
}

/// The mask of lanes `lo..hi` (`lo ≤ hi ≤ 8`).
///
/// # Safety
/// AVX2 must be available.
#[inline(always)]
unsafe fn mask_range(lo: usize, hi: usize) -> __m256i {
    // SAFETY: as `mask`.
    unsafe { _mm256_andnot_si256(mask(lo), mask(hi)) }
}

/// Store the first `n` (1..=8) lanes of `v` at `dst`, in pieces of 4, 2 and 1 lanes:
/// `vmaskmovps` stores are microcoded and slow on AMD Zen, where AVX2-only CPUs are common.
///
/// # Safety
/// AVX must be available and `dst..dst+n` writable.
#[inline(always)]
unsafe fn store_n(dst: *mut f32, v: __m256, n: usize) {
    // SAFETY: the caller upholds the contract; each piece writes only below dst + n.
    unsafe {
        if n >= V8 {
            return _mm256_storeu_ps(dst, v);
        }
        let (mut at, mut left) = (dst, n);
        let mut part = _mm256_castps256_ps128(v);
        if left >= 4 {
            _mm_storeu_ps(at, part);
            part = _mm256_extractf128_ps::<1>(v);
            (at, left) = (at.add(4), left - 4);
        }
        if left >= 2 {
            _mm_storel_epi64(at as *mut __m128i, _mm_castps_si128(part));
            part = _mm_movehl_ps(part, part);
            (at, left) = (at.add(2), left - 2);
        }
        if left == 1 {
            _mm_store_ss(at, part);
        }
    }
}

/// The AVX2 + FMA kernel set.
pub(super) struct Avx2;

// SAFETY (every function): the caller upholds `Kernels`' contract (AVX2 and FMA at hand,
// the shapes checked), which is what each kernel's `# Safety` asks.
impl Kernels for Avx2 {
    unsafe fn rows_forward(g: &Corr, xp: &[f32], wr: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
        // SAFETY: see above.
        unsafe { rows::forward(g, xp, wr, bias, out) }
    }
    unsafe fn rows_weight(g: &Corr, xp: &[f32], dy: &[f32], acc: &mut [f32]) {
        // SAFETY: see above.
        unsafe { rows::weight(g, xp, dy, acc) }
    }
    unsafe fn chans_forward(g: &Corr, xp: &[f32], wt: &[f32], bias: &[f32; L], outt: &mut [f32]) {
        // SAFETY: see above.
        unsafe { chans::forward(g, xp, wt, bias, outt) }
    }
    unsafe fn chans_weight(g: &Corr, xp: &[f32], dyt: &[f32], acc: &mut [f32]) {
        // SAFETY: see above.
        unsafe { chans::weight(g, xp, dyt, acc) }
    }
    unsafe fn to_lanes(src: &[f32], p: usize, dst: &mut [f32]) {
        // A plain transpose: it moves p·16 floats per image against p·16·k multiply-adds.
        for (l, row) in src[..L * p].chunks(p).enumerate() {
            for (q, &v) in row.iter().enumerate() {
                dst[q * L + l] = v;
            }
        }
    }
    unsafe fn from_lanes(src: &[f32], p: usize, dst: &mut [f32]) {
        for (l, row) in dst[..L * p].chunks_mut(p).enumerate() {
            for (q, d) in row.iter_mut().enumerate() {
                *d = src[q * L + l];
            }
        }
    }
    unsafe fn input_grad(g: &ConvGeom, dy: &[f32], w: &[f32], bias: Option<&[f32]>, cols: &mut [f32], dx: &mut [f32]) {
        // SAFETY: see above.
        unsafe { fold::input_grad(g, dy, w, bias, cols, dx) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_round_trip() {
        for p in [1, 15, 16, 37] {
            let src: Vec<f32> = (0..16 * p).map(|i| i as f32).collect();
            let mut t = vec![0f32; p * 16];
            let mut back = vec![0f32; 16 * p];
            // SAFETY: these two are plain Rust.
            unsafe {
                Avx2::to_lanes(&src, p, &mut t);
                Avx2::from_lanes(&t, p, &mut back);
            }
            for q in 0..p {
                for l in 0..16 {
                    assert_eq!(t[q * 16 + l], src[l * p + q], "p {p}");
                }
            }
            assert_eq!(back, src);
        }
    }
}
