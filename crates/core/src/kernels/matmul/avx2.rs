//! AVX2+FMA f32 products for the small, skinny shapes of fully connected layers, without
//! packing: the same two kernels as [`super::avx512`], sized for 16 registers of 8 lanes.
//!
//! - [`outer`] (B's rows contiguous): each step of k broadcasts MR = 6 elements of A and
//!   loads 2 vectors of B's row, 6×2 accumulators (the classic 6×16 AVX2 tile).
//! - [`dot`] (A's rows and B's columns contiguous, `x·Wᵀ`): 4×3 accumulators of 8 lanes of
//!   dot products along k, reduced at the end.
//!
//! Edge columns and the tail of k use masked loads (`vmaskmovps`, zero in masked lanes).
//! Chunks of tiles go to [`run_tiles`] as in the AVX-512 kernels, so a result does not
//! depend on the thread count.

use super::avx512::{Raw, Start};
use crate::kernels::par::run_tiles;
use std::arch::x86_64::*;

/// The destination, row-major with row stride `ld`.
#[derive(Clone, Copy)]
struct Dst {
    ptr: *mut f32,
    ld: usize,
}

// SAFETY: each thread writes its own tiles through `Dst` of a buffer that outlives the product.
unsafe impl Send for Dst {}
// SAFETY: as above.
unsafe impl Sync for Dst {}

/// Multiply-adds per chunk handed to a thread (a few microseconds of work).
const CHUNK_MACS: usize = 1 << 17;

/// Lanes of one vector.
const L: usize = 8;

/// The `vmaskmovps` mask of the first `n` (≤ 8) lanes: lanes whose sign bit is set.
///
/// # Safety
/// AVX must be available.
#[inline(always)]
unsafe fn mask(n: usize) -> __m256i {
    const ONES: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    // SAFETY: 8 − n ≤ 8, so the 8 lanes read lie inside ONES; AVX is the caller's promise.
    unsafe { _mm256_loadu_si256(ONES.as_ptr().add(8 - n).cast()) }
}

/// Load 8 lanes at `p`, only those of `m` when `partial` (the rest zero).
///
/// # Safety
/// AVX must be available; the lanes loaded must be readable.
#[inline(always)]
unsafe fn load(p: *const f32, partial: bool, m: __m256i) -> __m256 {
    // SAFETY: the caller's contract.
    unsafe {
        if partial {
            _mm256_maskload_ps(p, m)
        } else {
            _mm256_loadu_ps(p)
        }
    }
}

/// `dst (m×n) = start + a·b` with `b.cs == 1`, on up to `threads` threads.
///
/// # Safety
/// AVX2 and FMA must be available; `a` and `b` must be readable at every index of an m×k and
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
    const NC: usize = 2 * L;
    let d = Dst { ptr: dst, ld: ldc };
    let col_blocks = n.div_ceil(NC);
    let row_blocks = m.div_ceil(MR);
    // Chunks: one column block by a run of row blocks, as in the AVX-512 kernel.
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

/// [`outer_tile`] for a tile of `rows ≤ 6` by `cols ≤ 16` at (r0, c0).
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
    // SAFETY: the caller upholds the `# Safety` contract above.
    unsafe {
        let nv = cols.div_ceil(L);
        let tail = cols - (nv - 1) * L;
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
                        ($r, 1) => outer_tile::<$r, 1>(k, a, b, d, tail, s),
                        ($r, 2) => outer_tile::<$r, 2>(k, a, b, d, tail, s),
                    )*
                    _ => unreachable!("tile sizes are at most 6 × 2 vectors"),
                }
            };
        }
        go!(1, 2, 3, 4, 5, 6)
    }
}

/// One MR × NV·8 tile: `d = start + a·b`; the last vector of each row holds `tail` lanes.
///
/// # Safety
/// As [`outer`], with the tile `MR × ((NV − 1)·8 + tail)` inside `dst`.
#[target_feature(enable = "avx2,fma")]
unsafe fn outer_tile<const MR: usize, const NV: usize>(
    k: usize,
    a: Raw,
    b: Raw,
    d: Dst,
    tail: usize,
    start: Start<'_>,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; every load and store below
    // is masked to the tile's columns.
    unsafe {
        let m = mask(tail);
        let partial = |v: usize| v == NV - 1 && tail < L;
        let mut acc = [[_mm256_setzero_ps(); NV]; MR];
        match start {
            Start::Zero => {}
            Start::Dst => {
                for (r, row) in acc.iter_mut().enumerate() {
                    for (v, x) in row.iter_mut().enumerate() {
                        *x = load(d.ptr.add(r * d.ld + v * L), partial(v), m);
                    }
                }
            }
            Start::Bias(bias) => {
                for v in 0..NV {
                    let bv = load(bias.as_ptr().add(v * L), partial(v), m);
                    for row in acc.iter_mut() {
                        row[v] = bv;
                    }
                }
            }
        }
        for p in 0..k {
            let brow = b.ptr.add(p * b.rs);
            let mut bv = [_mm256_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = load(brow.add(v * L), partial(v), m);
            }
            let acol = a.ptr.add(p * a.cs);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*acol.add(r * a.rs));
                for (x, &bb) in row.iter_mut().zip(&bv) {
                    *x = _mm256_fmadd_ps(av, bb, *x);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                let p = d.ptr.add(r * d.ld + v * L);
                if partial(v) {
                    _mm256_maskstore_ps(p, m, x);
                } else {
                    _mm256_storeu_ps(p, x);
                }
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
    const MR: usize = 4;
    const NR: usize = 3;
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

/// [`dot_tile`] for a tile of `rows ≤ 4` by `cols ≤ 3` at (r0, c0).
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
    // SAFETY: the caller upholds the `# Safety` contract above.
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
                    )*
                    _ => unreachable!("tile sizes are at most 4 × 3"),
                }
            };
        }
        go!(1, 2, 3, 4)
    }
}

/// One MR × NR (≤ 3) tile of dot products along k, 8 lanes at a time, reduced at the end.
///
/// # Safety
/// As [`dot`], with the `MR × NR` tile inside `dst`.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_tile<const MR: usize, const NR: usize>(k: usize, a: Raw, b: Raw, d: Dst, start: Start<'_>) {
    // SAFETY: the caller upholds the `# Safety` contract above; the loads past `k` are masked.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); NR]; MR];
        // NR vectors of b live across the step, one of a at a time: 12 + 3 + 1 registers.
        let step = |acc: &mut [[__m256; NR]; MR], p: usize, partial: bool, m: __m256i| {
            let mut bv = [_mm256_setzero_ps(); NR];
            for (j, x) in bv.iter_mut().enumerate() {
                *x = load(b.ptr.add(j * b.cs + p), partial, m);
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let av = load(a.ptr.add(i * a.rs + p), partial, m);
                for (x, &bb) in row.iter_mut().zip(&bv) {
                    *x = _mm256_fmadd_ps(av, bb, *x);
                }
            }
        };
        let full = k / L * L;
        let all = mask(L);
        for p in (0..full).step_by(L) {
            step(&mut acc, p, false, all);
        }
        if full < k {
            step(&mut acc, full, true, mask(k - full));
        }
        let z = _mm256_setzero_ps();
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

/// The lane sums of four vectors, `[Σv0, Σv1, Σv2, Σv3]`, by a fixed tree of horizontal adds.
///
/// # Safety
/// AVX must be available.
#[inline(always)]
unsafe fn reduce4(v0: __m256, v1: __m256, v2: __m256, v3: __m256) -> __m128 {
    // SAFETY: register-only intrinsics; AVX is the caller's promise.
    unsafe {
        // Per 128-bit half: [v0₀+v0₁, v0₂+v0₃, v1₀+v1₁, v1₂+v1₃] and the same for v2, v3.
        let a = _mm256_hadd_ps(v0, v1);
        let b = _mm256_hadd_ps(v2, v3);
        // Per half: the four vectors' sums over that half.
        let c = _mm256_hadd_ps(a, b);
        _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps::<1>(c))
    }
}
