//! AVX-512 f32 products for the small, skinny shapes of fully connected layers, without
//! packing: `gemm` copies both operands into panels on every call, which costs as much as
//! the arithmetic when one dimension is a batch of 64.
//!
//! Two register-tiled kernels, chosen by the operands' layouts:
//! - [`outer`] (B's rows contiguous): each step of k broadcasts MR elements of A and loads
//!   NV vectors of B's row, 6×4 accumulators of 16 lanes. A may have any strides, so `gᵀ·x`
//!   (a weight gradient) and `g·W` (an input gradient) both run without copies.
//! - [`dot`] (A's rows and B's columns contiguous, `x·Wᵀ`): each accumulator sums 16 lanes
//!   of a dot product along k and is reduced at the end.
//!
//! Tiles are grouped into chunks of a few microseconds that [`run_tiles`] hands out to
//! threads; a chunk's work does not depend on who runs it.

use crate::kernels::par::run_tiles;
use std::arch::x86_64::*;

pub(crate) use super::lanes::{Raw, Start};

/// The destination, row-major with row stride `ld`.
#[derive(Clone, Copy)]
struct Dst {
    ptr: *mut f32,
    ld: usize,
}

// SAFETY: each thread writes its own tiles through `Dst`.
unsafe impl Send for Dst {}
// SAFETY: as above.
unsafe impl Sync for Dst {}

/// Multiply-adds per chunk handed to a thread (a few microseconds of work).
const CHUNK_MACS: usize = 1 << 18;

/// Lanes of one vector.
const L: usize = 16;

/// The mask of the first `n` (≤ 16) lanes.
fn mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// `dst (m×n) = start + a·b` with `b.cs == 1`, on up to `threads` threads.
///
/// # Safety
/// AVX-512F must be available; `a` and `b` must be readable at every index of an m×k and
/// k×n matrix with their strides; `dst` must hold m rows of stride `ldc ≥ n`.
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
    const MR: usize = 6;
    const NC: usize = 4 * L;
    let d = Dst { ptr: dst, ld: ldc };
    let col_blocks = n.div_ceil(NC);
    let row_blocks = m.div_ceil(MR);
    // Chunks: one column block (its panel of b stays in L1) by a run of row blocks,
    // numbered by rows first so that a thread's chunks cover whole rows of dst.
    let rows_per_chunk = (CHUNK_MACS / (MR * NC * k).max(1)).clamp(1, row_blocks);
    let chunks_per_col = row_blocks.div_ceil(rows_per_chunk);
    let work = |c: usize| {
        let (rc, cb) = (c / col_blocks, c % col_blocks);
        let c0 = cb * NC;
        let cols = NC.min(n - c0);
        let rb_end = ((rc + 1) * rows_per_chunk).min(row_blocks);
        for rb in rc * rows_per_chunk..rb_end {
            let r0 = rb * MR;
            let rows = MR.min(m - r0);
            // SAFETY: the tile lies inside the matrices (the caller's contract).
            unsafe { outer_tile_dispatch(rows, cols, k, a, b, d, r0, c0, start) };
        }
    };
    run_tiles(col_blocks * chunks_per_col, threads, &work);
}

/// [`outer_tile`] for a tile of `rows ≤ 6` by `cols ≤ 64` at (r0, c0).
///
/// # Safety
/// As [`outer`], with the tile `rows × cols` at `(r0, c0)` inside `dst`.
#[allow(clippy::too_many_arguments)]
unsafe fn outer_tile_dispatch(
    rows: usize,
    cols: usize,
    k: usize,
    a: Raw,
    b: Raw,
    d: Dst,
    r0: usize,
    c0: usize,
    start: Start<'_>,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let nv = cols.div_ceil(L);
        let last = mask(cols - (nv - 1) * L);
        let a = Raw {
            ptr: a.ptr.add(r0 * a.rs),
            ..a
        };
        let b = Raw {
            ptr: b.ptr.add(c0),
            ..b
        };
        let d = Dst {
            ptr: d.ptr.add(r0 * d.ld + c0),
            ..d
        };
        let s = match start {
            Start::Bias(bias) => Start::Bias(&bias[c0..c0 + cols]),
            s => s,
        };
        macro_rules! go {
            ($($r:literal),*) => {
                match (rows, nv) {
                    $(
                        ($r, 1) => outer_tile::<$r, 1>(k, a, b, d, last, s),
                        ($r, 2) => outer_tile::<$r, 2>(k, a, b, d, last, s),
                        ($r, 3) => outer_tile::<$r, 3>(k, a, b, d, last, s),
                        ($r, 4) => outer_tile::<$r, 4>(k, a, b, d, last, s),
                    )*
                    _ => unreachable!("tile sizes are at most 6 × 4 vectors"),
                }
            };
        }
        go!(1, 2, 3, 4, 5, 6)
    }
}

/// One MR × NV·16 tile: `d = start + a·b`; the last vector of each row is masked by `last`.
///
/// # Safety
/// As [`outer`], with the tile `MR × NV·16` (the last vector masked by `last`) inside `dst`.
#[target_feature(enable = "avx512f")]
unsafe fn outer_tile<const MR: usize, const NV: usize>(
    k: usize,
    a: Raw,
    b: Raw,
    d: Dst,
    last: __mmask16,
    start: Start<'_>,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let lane_mask = |v: usize| if v == NV - 1 { last } else { !0 };
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        match start {
            Start::Zero => {}
            Start::Dst => {
                for (r, row) in acc.iter_mut().enumerate() {
                    for (v, x) in row.iter_mut().enumerate() {
                        *x = _mm512_maskz_loadu_ps(lane_mask(v), d.ptr.add(r * d.ld + v * L));
                    }
                }
            }
            Start::Bias(bias) => {
                for v in 0..NV {
                    let bv = _mm512_maskz_loadu_ps(lane_mask(v), bias.as_ptr().add(v * L));
                    for row in acc.iter_mut() {
                        row[v] = bv;
                    }
                }
            }
        }
        for p in 0..k {
            let brow = b.ptr.add(p * b.rs);
            let mut bv = [_mm512_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_maskz_loadu_ps(lane_mask(v), brow.add(v * L));
            }
            let acol = a.ptr.add(p * a.cs);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*acol.add(r * a.rs));
                for (x, &bb) in row.iter_mut().zip(&bv) {
                    *x = _mm512_fmadd_ps(av, bb, *x);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                _mm512_mask_storeu_ps(d.ptr.add(r * d.ld + v * L), lane_mask(v), x);
            }
        }
    }
}

/// `dst (m×n) = start + a·b` with `a.cs == 1` and `b.rs == 1` (both contiguous along k).
///
/// # Safety
/// As [`outer`].
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
    const MR: usize = 6;
    const NR: usize = 4;
    let d = Dst { ptr: dst, ld: ldc };
    let col_blocks = n.div_ceil(NR);
    let row_blocks = m.div_ceil(MR);
    // Chunks: a run of column blocks (rows of bᵀ, kept in L1) over all rows of a.
    let cols_per_chunk = (CHUNK_MACS / (m * NR * k).max(1)).clamp(1, col_blocks);
    let work = |c: usize| {
        let cb_end = ((c + 1) * cols_per_chunk).min(col_blocks);
        for cb in c * cols_per_chunk..cb_end {
            let c0 = cb * NR;
            let cols = NR.min(n - c0);
            for rb in 0..row_blocks {
                let r0 = rb * MR;
                let rows = MR.min(m - r0);
                // SAFETY: the tile lies inside the matrices (the caller's contract).
                unsafe { dot_tile_dispatch(rows, cols, k, a, b, d, r0, c0, start) };
            }
        }
    };
    run_tiles(col_blocks.div_ceil(cols_per_chunk), threads, &work);
}

/// [`dot_tile`] for a tile of `rows ≤ 6` by `cols ≤ 4` at (r0, c0).
///
/// # Safety
/// As [`dot`], with the tile `rows × cols` at `(r0, c0)` inside `dst`.
#[allow(clippy::too_many_arguments)]
unsafe fn dot_tile_dispatch(
    rows: usize,
    cols: usize,
    k: usize,
    a: Raw,
    b: Raw,
    d: Dst,
    r0: usize,
    c0: usize,
    start: Start<'_>,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let a = Raw {
            ptr: a.ptr.add(r0 * a.rs),
            ..a
        };
        let b = Raw {
            ptr: b.ptr.add(c0 * b.cs),
            ..b
        };
        let d = Dst {
            ptr: d.ptr.add(r0 * d.ld + c0),
            ..d
        };
        let s = match start {
            Start::Bias(bias) => Start::Bias(&bias[c0..c0 + cols]),
            s => s,
        };
        macro_rules! go {
            ($($r:literal),*) => {
                match (rows, cols) {
                    $(
                        ($r, 1) => dot_tile::<$r, 1>(k, a, b, d, s),
                        ($r, 2) => dot_tile::<$r, 2>(k, a, b, d, s),
                        ($r, 3) => dot_tile::<$r, 3>(k, a, b, d, s),
                        ($r, 4) => dot_tile::<$r, 4>(k, a, b, d, s),
                    )*
                    _ => unreachable!("tile sizes are at most 6 × 4"),
                }
            };
        }
        go!(1, 2, 3, 4, 5, 6)
    }
}

/// One MR × NR (≤ 4) tile of dot products along k, 16 lanes at a time, reduced at the end.
///
/// # Safety
/// As [`dot`], with the `MR × NR` tile inside `dst`.
#[target_feature(enable = "avx512f")]
unsafe fn dot_tile<const MR: usize, const NR: usize>(k: usize, a: Raw, b: Raw, d: Dst, start: Start<'_>) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); NR]; MR];
        // NR vectors of b live across the step, one of a at a time: 24 + 4 + 1 registers.
        let step = |acc: &mut [[__m512; NR]; MR], p: usize, m: __mmask16| {
            let mut bv = [_mm512_setzero_ps(); NR];
            for (j, x) in bv.iter_mut().enumerate() {
                *x = _mm512_maskz_loadu_ps(m, b.ptr.add(j * b.cs + p));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm512_maskz_loadu_ps(m, a.ptr.add(i * a.rs + p));
                for (x, &bb) in row.iter_mut().zip(&bv) {
                    *x = _mm512_fmadd_ps(av, bb, *x);
                }
            }
        };
        let full = k / L * L;
        for p in (0..full).step_by(L) {
            step(&mut acc, p, !0);
        }
        if full < k {
            step(&mut acc, full, mask(k - full));
        }
        let z = _mm512_setzero_ps();
        for (i, row) in acc.iter().enumerate() {
            let get = |j: usize| if j < NR { row[j] } else { z };
            let mut sums = [0.0f32; 4];
            _mm_storeu_ps(sums.as_mut_ptr(), reduce4(get(0), get(1), get(2), get(3)));
            let o = d.ptr.add(i * d.ld);
            for (j, &s) in sums.iter().enumerate().take(NR) {
                *o.add(j) = match start {
                    Start::Zero => s,
                    Start::Dst => *o.add(j) + s,
                    Start::Bias(bias) => s + bias[j],
                };
            }
        }
    }
}

/// The lane sums of four vectors, `[Σv0, Σv1, Σv2, Σv3]`, by a fixed tree of 512-bit
/// shuffles (EVEX only, so the accumulators may live in any of the 32 registers).
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn reduce4(v0: __m512, v1: __m512, v2: __m512, v3: __m512) -> __m128 {
    // Per 128-bit lane: [v0₀+v0₂, v1₀+v1₂, v0₁+v0₃, v1₁+v1₃] and the same for v2, v3.
    let a = _mm512_add_ps(_mm512_unpacklo_ps(v0, v1), _mm512_unpackhi_ps(v0, v1));
    let b = _mm512_add_ps(_mm512_unpacklo_ps(v2, v3), _mm512_unpackhi_ps(v2, v3));
    // Per 128-bit lane: the four vectors' sums over that lane.
    let c = _mm512_add_ps(_mm512_shuffle_ps::<0x44>(a, b), _mm512_shuffle_ps::<0xEE>(a, b));
    // Add the four 128-bit lanes.
    let e = _mm512_add_ps(c, _mm512_shuffle_f32x4::<0b01_00_11_10>(c, c));
    let f = _mm512_add_ps(e, _mm512_shuffle_f32x4::<0b10_11_00_01>(e, e));
    _mm512_castps512_ps128(f)
}
