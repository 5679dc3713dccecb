//! AVX-512 versions of the 2×2 tiled max-pooling passes for f32, up to 16 windows a step.
//!
//! Wide rows (more than 8 windows): each 32-float stretch of the two input rows splits into
//! even and odd columns with one permute each, giving the four taps of 16 windows as four
//! vectors. Narrow rows (LeNet's 10×10 → 5×5): several whole rows of windows, contiguous
//! in memory, are loaded as up to 64 floats and permuted into the taps with tables built
//! per call, so the lanes are not mostly idle. The compiler finds neither (the stride-2
//! loads and index selects stay scalar, 3–5× slower).

use super::{zero_past_windows, zero_rows_past_windows, Tiles};
use std::arch::x86_64::*;

/// Lane `j` picks element `2j` (even columns) of a pair of vectors.
const EVEN: [i32; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
/// Lane `j` picks element `2j + 1` (odd columns).
const ODD: [i32; 16] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31];
/// Interleave the first halves of `a` and `b`: a0 b0 a1 b1 ...
const ZIP_LO: [i32; 16] = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
/// Interleave the second halves.
const ZIP_HI: [i32; 16] = [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];

/// The low `n` ≤ 16 bits set.
#[inline(always)]
fn bits(n: usize) -> u16 {
    ((1u32 << n.min(16)) - 1) as u16
}

/// The 16 indices of `t` as one vector.
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
unsafe fn table(t: &[i32; 16]) -> __m512i {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe { _mm512_loadu_si512(t.as_ptr().cast()) }
}

/// Fold tap `b` (at window offset `lb`) into `a` (at `la`): `b` wins when larger or NaN.
/// Folding in row-major window order, in any grouping, leaves the last NaN, else the
/// first maximum, which is the scalar kernels' rule.
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
unsafe fn fold(a: (__m512, __m512i), b: (__m512, __m512i)) -> (__m512, __m512i) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let k = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(b.0, a.0) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(b.0, b.0);
        (_mm512_mask_mov_ps(a.0, k, b.0), _mm512_mask_mov_epi32(a.1, k, b.1))
    }
}

/// The maximum of four taps (in window order) and its offset in the window: a tree, so
/// the two rows' comparisons run side by side.
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
unsafe fn max4(v: [__m512; 4], off: &[__m512i; 4]) -> (__m512, __m512i) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let top = fold((v[0], off[0]), (v[1], off[1]));
        let bottom = fold((v[2], off[2]), (v[3], off[3]));
        fold(top, bottom)
    }
}

/// Window offsets of the four taps, `[0, 1, w, w + 1]`.
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
unsafe fn offsets(w: usize) -> [__m512i; 4] {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe { [0, 1, w, w + 1].map(|o| _mm512_set1_epi32(o as i32)) }
}

/// Permute tables for narrow rows: `g` rows of windows (`g·2w ≤ 64` floats) per step.
struct Narrow {
    /// Rows of windows per step.
    g: usize,
    /// Per tap, the float (0..64) of the step's block each lane reads.
    src: [[i32; 16]; 4],
    /// Per tap, the lanes whose float lies in the second 32.
    src_hi: [u16; 4],
    /// Per lane, the flat plane index of its window's first element, from the step's start.
    first: [i32; 16],
    /// Per block register (16 floats), the lane (+ 16 for an odd column) that writes each
    /// float in the backward.
    dst: [[i32; 16]; 4],
    /// Per block register, the floats written from the bottom-row taps.
    dst_bottom: [u16; 4],
    /// Per block register, the floats inside a window (the rest, an odd width's last
    /// column, are 0).
    dst_in: [u16; 4],
}

impl Narrow {
    /// The tables for rows of `ow` windows over width `w`, if at least two rows fit a step.
    fn new(w: usize, ow: usize) -> Option<Narrow> {
        let g = (16 / ow.max(1)).min(64 / (2 * w).max(1));
        if g < 2 {
            return None;
        }
        let mut n = Narrow {
            g,
            src: [[0; 16]; 4],
            src_hi: [0; 4],
            first: [0; 16],
            dst: [[0; 16]; 4],
            dst_bottom: [0; 4],
            dst_in: [0; 4],
        };
        // Nested loops, not divisions: this runs on every call.
        for r in 0..g {
            for q in 0..ow {
                let (j, c) = (r * ow + q, r * 2 * w + 2 * q);
                n.first[j] = c as i32;
                for (t, off) in [0, 1, w, w + 1].into_iter().enumerate() {
                    n.src[t][j] = (c + off) as i32;
                    n.src_hi[t] |= ((c + off >= 32) as u16) << j;
                }
            }
            for dy in 0..2 {
                for c in 0..2 * ow {
                    let s = r * 2 * w + dy * w + c;
                    let (k, e) = (s / 16, s % 16);
                    n.dst[k][e] = ((c % 2) * 16 + r * ow + c / 2) as i32;
                    n.dst_bottom[k] |= (dy as u16) << e;
                    n.dst_in[k] |= 1 << e;
                }
            }
        }
        Some(n)
    }
}

/// The 2×2 forward over `planes` planes; `at` null for no indices.
///
/// # Safety
/// The CPU has AVX-512F; `t` is a 2×2 tiling; `x` holds `planes·h·w` values, `out` (and
/// `at` unless null) `planes·oh·ow` slots.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn forward_2x2(x: *const f32, t: &Tiles, planes: usize, out: *mut f32, at: *mut u32) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let ([h, w], [oh, ow]) = (t.hw, t.out);
        let off = offsets(w);
        if let Some(n) = Narrow::new(w, ow) {
            let src = n.src.map(|s| table(&s));
            let first = table(&n.first);
            for p in 0..planes {
                let mut r = 0;
                while r < oh {
                    let rows = n.g.min(oh - r);
                    let block = x.add(p * h * w + r * 2 * w);
                    let floats = rows * 2 * w;
                    let v: [__m512; 4] = std::array::from_fn(|k| {
                        _mm512_maskz_loadu_ps(bits(floats.saturating_sub(16 * k)), block.add(16 * k))
                    });
                    let taps: [__m512; 4] = std::array::from_fn(|i| {
                        let lo = _mm512_permutex2var_ps(v[0], src[i], v[1]);
                        let hi = _mm512_permutex2var_ps(v[2], src[i], v[3]);
                        _mm512_mask_blend_ps(n.src_hi[i], lo, hi)
                    });
                    let (best, local) = max4(taps, &off);
                    let (o, lanes) = (p * oh * ow + r * ow, bits(rows * ow));
                    _mm512_mask_storeu_ps(out.add(o), lanes, best);
                    if !at.is_null() {
                        let start = _mm512_add_epi32(first, _mm512_set1_epi32((r * 2 * w) as i32));
                        _mm512_mask_storeu_epi32(at.add(o).cast(), lanes, _mm512_add_epi32(start, local));
                    }
                    r += rows;
                }
            }
            return;
        }
        let (even, odd) = (table(&EVEN), table(&ODD));
        for p in 0..planes {
            for oy in 0..oh {
                let base = 2 * oy * w;
                let top = x.add(p * h * w + base);
                let bottom = top.add(w);
                let o = p * oh * ow + oy * ow;
                let mut q = 0;
                while q < ow {
                    let m = (ow - q).min(16);
                    let (lo, hi) = (bits(2 * m), bits((2 * m).saturating_sub(16)));
                    let (t, b) = (top.add(2 * q), bottom.add(2 * q));
                    let (t0, t1) = (_mm512_maskz_loadu_ps(lo, t), _mm512_maskz_loadu_ps(hi, t.add(16)));
                    let (b0, b1) = (_mm512_maskz_loadu_ps(lo, b), _mm512_maskz_loadu_ps(hi, b.add(16)));
                    let taps = [
                        _mm512_permutex2var_ps(t0, even, t1),
                        _mm512_permutex2var_ps(t0, odd, t1),
                        _mm512_permutex2var_ps(b0, even, b1),
                        _mm512_permutex2var_ps(b0, odd, b1),
                    ];
                    let (best, local) = max4(taps, &off);
                    _mm512_mask_storeu_ps(out.add(o + q), bits(m), best);
                    if !at.is_null() {
                        // Lane j's window starts at column 2(q + j): `even` holds 2j.
                        let start = _mm512_add_epi32(even, _mm512_set1_epi32((base + 2 * q) as i32));
                        _mm512_mask_storeu_epi32(at.add(o + q).cast(), bits(m), _mm512_add_epi32(start, local));
                    }
                    q += 16;
                }
            }
        }
    }
}

/// The 2×2 backward over `planes` planes: every slot of `gx` written once.
///
/// # Safety
/// The CPU has AVX-512F; `t` is a 2×2 tiling; `gy` and `at` hold `planes·oh·ow` values
/// (indices from [`forward_2x2`]), `gx` `planes·h·w` slots.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn backward_2x2(gy: *const f32, at: *const u32, t: &Tiles, planes: usize, gx: *mut f32) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let ([h, w], [oh, ow]) = (t.hw, t.out);
        let off = offsets(w);
        // The gradient of each tap: the window's where the tap was its maximum, else 0.
        let taps = |g: __m512, local: __m512i| off.map(|o| _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(local, o), g));
        if let Some(n) = Narrow::new(w, ow) {
            let first = table(&n.first);
            let dst = n.dst.map(|d| table(&d));
            for p in 0..planes {
                let mut r = 0;
                while r < oh {
                    let rows = n.g.min(oh - r);
                    let (o, lanes) = (p * oh * ow + r * ow, bits(rows * ow));
                    let g = _mm512_maskz_loadu_ps(lanes, gy.add(o));
                    let i = _mm512_maskz_loadu_epi32(lanes, at.add(o).cast());
                    let start = _mm512_add_epi32(first, _mm512_set1_epi32((r * 2 * w) as i32));
                    let v = taps(g, _mm512_sub_epi32(i, start));
                    let block = gx.add(p * h * w + r * 2 * w);
                    let floats = rows * 2 * w;
                    for (k, &d) in dst.iter().enumerate().take(floats.div_ceil(16)) {
                        let top = _mm512_permutex2var_ps(v[0], d, v[1]);
                        let bottom = _mm512_permutex2var_ps(v[2], d, v[3]);
                        let x = _mm512_maskz_mov_ps(n.dst_in[k], _mm512_mask_blend_ps(n.dst_bottom[k], top, bottom));
                        _mm512_mask_storeu_ps(block.add(16 * k), bits(floats - 16 * k), x);
                    }
                    r += rows;
                }
                zero_rows_past_windows(gx.add(p * h * w), t);
            }
            return;
        }
        let (even, zip_lo, zip_hi) = (table(&EVEN), table(&ZIP_LO), table(&ZIP_HI));
        for p in 0..planes {
            let plane = gx.add(p * h * w);
            for oy in 0..oh {
                let base = 2 * oy * w;
                let top = plane.add(base);
                let bottom = top.add(w);
                let o = p * oh * ow + oy * ow;
                let mut q = 0;
                while q < ow {
                    let m = (ow - q).min(16);
                    let (lo, hi) = (bits(2 * m), bits((2 * m).saturating_sub(16)));
                    let g = _mm512_maskz_loadu_ps(bits(m), gy.add(o + q));
                    let i = _mm512_maskz_loadu_epi32(bits(m), at.add(o + q).cast());
                    let start = _mm512_add_epi32(even, _mm512_set1_epi32((base + 2 * q) as i32));
                    let [v00, v01, v10, v11] = taps(g, _mm512_sub_epi32(i, start));
                    let (t, b) = (top.add(2 * q), bottom.add(2 * q));
                    _mm512_mask_storeu_ps(t, lo, _mm512_permutex2var_ps(v00, zip_lo, v01));
                    _mm512_mask_storeu_ps(t.add(16), hi, _mm512_permutex2var_ps(v00, zip_hi, v01));
                    _mm512_mask_storeu_ps(b, lo, _mm512_permutex2var_ps(v10, zip_lo, v11));
                    _mm512_mask_storeu_ps(b.add(16), hi, _mm512_permutex2var_ps(v10, zip_hi, v11));
                    q += 16;
                }
                zero_past_windows(top, t);
            }
            zero_rows_past_windows(plane, t);
        }
    }
}
