//! The small, unpacked f32 products written once over [`Lanes`]: the kernels of NEON
//! (4 lanes, 32 registers), and the operand types every unpacked kernel shares. The
//! AVX-512 and AVX2 levels keep their own kernels (`avx512.rs`, `avx2.rs`), which use
//! masked loads and tile shapes tuned on x86; these are the same two kernels:
//!
//! - [`outer`] (B's rows contiguous): each step of k broadcasts MR = 6 elements of A and
//!   loads NV = 4 vectors of B's row, 6×4 accumulators (24 of NEON's 32 registers).
//! - [`dot`] (A's rows and B's columns contiguous, `x·Wᵀ`): 4×4 accumulators of dot
//!   products along k, each reduced at the end in a fixed order.
//!
//! Chunks of tiles go to [`run_tiles`], so a result does not depend on the thread count.

#![cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]

use crate::kernels::par::run_tiles;
use crate::kernels::simd::Lanes;

/// What a destination tile starts from before the product is added.
#[derive(Clone, Copy)]
pub(crate) enum Start<'a> {
    /// Zeros: `dst = a·b`.
    Zero,
    /// The destination's values: `dst += a·b`.
    Dst,
    /// `bias[j]` in column j of every row: `dst = bias + a·b`.
    Bias(&'a [f32]),
}

/// A raw strided operand (bounds checked by the caller).
#[derive(Clone, Copy)]
pub(crate) struct Raw {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

// SAFETY: the pointers are only used for disjoint tiles of a product whose buffers outlive it.
unsafe impl Send for Raw {}
// SAFETY: as above: threads only read through `Raw`.
unsafe impl Sync for Raw {}

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

/// Rows of A per [`outer`] tile.
const OUTER_MR: usize = 6;
/// Vectors of B's row per [`outer`] tile.
const OUTER_NV: usize = 4;

/// `dst (m×n) = start + a·b` with `b.cs == 1`, on up to `threads` threads.
///
/// # Safety
/// `V`'s level must be available; `a` and `b` must be readable at every index of an m×k and
/// k×n matrix with their strides; `dst` must hold m rows of stride `ldc ≥ n`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn outer<V: Lanes>(
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
    let nc = OUTER_NV * V::L;
    let d = Dst { ptr: dst, ld: ldc };
    let col_blocks = n.div_ceil(nc);
    let row_blocks = m.div_ceil(OUTER_MR);
    // Chunks: one column block (its panel of b stays in L1) by a run of row blocks.
    let rows_per_chunk = (CHUNK_MACS / (OUTER_MR * nc * k).max(1)).clamp(1, row_blocks);
    let chunks_per_col = row_blocks.div_ceil(rows_per_chunk);
    let work = |c: usize| {
        let (rc, cb) = (c / col_blocks, c % col_blocks);
        let c0 = cb * nc;
        let cols = nc.min(n - c0);
        let rb_end = ((rc + 1) * rows_per_chunk).min(row_blocks);
        for rb in rc * rows_per_chunk..rb_end {
            let r0 = rb * OUTER_MR;
            let rows = OUTER_MR.min(m - r0);
            // SAFETY: the tile lies inside the matrices (the caller's contract).
            unsafe { outer_tile_dispatch::<V>(rows, cols, k, a, b, d, r0, c0, start) };
        }
    };
    run_tiles(col_blocks * chunks_per_col, threads, &work);
}

/// [`outer_tile`] for a tile of `rows ≤ 6` by `cols ≤ 4L` at (r0, c0).
///
/// # Safety
/// As [`outer`], with the tile `rows × cols` at `(r0, c0)` inside `dst`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn outer_tile_dispatch<V: Lanes>(
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
        let nv = cols.div_ceil(V::L);
        let tail = cols - (nv - 1) * V::L;
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
                        ($r, 1) => outer_tile::<V, $r, 1>(k, a, b, d, tail, s),
                        ($r, 2) => outer_tile::<V, $r, 2>(k, a, b, d, tail, s),
                        ($r, 3) => outer_tile::<V, $r, 3>(k, a, b, d, tail, s),
                        ($r, 4) => outer_tile::<V, $r, 4>(k, a, b, d, tail, s),
                    )*
                    _ => unreachable!("tile sizes are at most 6 × 4 vectors"),
                }
            };
        }
        go!(1, 2, 3, 4, 5, 6)
    }
}

/// `NV` vectors of the row at `p`, the last holding `tail` lanes (the rest zero).
///
/// # Safety
/// `p[..(NV − 1)·L + tail]` must be readable.
#[inline(always)]
unsafe fn load_row<V: Lanes, const NV: usize>(p: *const f32, tail: usize) -> [V; NV] {
    // SAFETY: the caller's contract; the last vector reads only its `tail` lanes.
    unsafe {
        let mut out = [V::zero(); NV];
        for (v, x) in out.iter_mut().enumerate() {
            *x = if v + 1 < NV || tail == V::L {
                V::loadu(p.add(v * V::L))
            } else {
                V::load(p.add(v * V::L), 0, tail)
            };
        }
        out
    }
}

/// One MR × NV·L tile: `d = start + a·b`; the last vector of each row holds `tail` lanes.
///
/// # Safety
/// As [`outer`], with the tile `MR × ((NV − 1)·L + tail)` inside `dst`.
#[inline(always)]
unsafe fn outer_tile<V: Lanes, const MR: usize, const NV: usize>(
    k: usize,
    a: Raw,
    b: Raw,
    d: Dst,
    tail: usize,
    start: Start<'_>,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; every load and store below
    // stays inside the tile's columns.
    unsafe {
        let mut acc = [[V::zero(); NV]; MR];
        match start {
            Start::Zero => {}
            Start::Dst => {
                for (r, row) in acc.iter_mut().enumerate() {
                    *row = load_row::<V, NV>(d.ptr.add(r * d.ld), tail);
                }
            }
            Start::Bias(bias) => {
                let bv = load_row::<V, NV>(bias.as_ptr(), tail);
                acc = [bv; MR];
            }
        }
        for p in 0..k {
            let bv = load_row::<V, NV>(b.ptr.add(p * b.rs), tail);
            let acol = a.ptr.add(p * a.cs);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = V::splat(*acol.add(r * a.rs));
                for (x, &bb) in row.iter_mut().zip(&bv) {
                    *x = av.mul_add(bb, *x);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                let p = d.ptr.add(r * d.ld + v * V::L);
                if v + 1 < NV || tail == V::L {
                    x.storeu(p);
                } else {
                    x.store(p, tail);
                }
            }
        }
    }
}

/// Rows of A per [`dot`] tile.
const DOT_MR: usize = 4;
/// Columns of B per [`dot`] tile.
const DOT_NR: usize = 4;

/// `dst (m×n) = start + a·b` with `a.cs == 1` and `b.rs == 1` (both contiguous along k).
///
/// # Safety
/// As [`outer`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn dot<V: Lanes>(
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
    let d = Dst { ptr: dst, ld: ldc };
    let col_blocks = n.div_ceil(DOT_NR);
    let row_blocks = m.div_ceil(DOT_MR);
    // Chunks: a run of column blocks (rows of bᵀ, kept in L1) over all rows of a.
    let cols_per_chunk = (CHUNK_MACS / (m * DOT_NR * k).max(1)).clamp(1, col_blocks);
    let work = |c: usize| {
        let cb_end = ((c + 1) * cols_per_chunk).min(col_blocks);
        for cb in c * cols_per_chunk..cb_end {
            let c0 = cb * DOT_NR;
            let cols = DOT_NR.min(n - c0);
            for rb in 0..row_blocks {
                let r0 = rb * DOT_MR;
                let rows = DOT_MR.min(m - r0);
                // SAFETY: the tile lies inside the matrices (the caller's contract).
                unsafe { dot_tile_dispatch::<V>(rows, cols, k, a, b, d, r0, c0, start) };
            }
        }
    };
    run_tiles(col_blocks.div_ceil(cols_per_chunk), threads, &work);
}

/// [`dot_tile`] for a tile of `rows ≤ 4` by `cols ≤ 4` at (r0, c0).
///
/// # Safety
/// As [`dot`], with the tile `rows × cols` at `(r0, c0)` inside `dst`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn dot_tile_dispatch<V: Lanes>(
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
                        ($r, 1) => dot_tile::<V, $r, 1>(k, a, b, d, s),
                        ($r, 2) => dot_tile::<V, $r, 2>(k, a, b, d, s),
                        ($r, 3) => dot_tile::<V, $r, 3>(k, a, b, d, s),
                        ($r, 4) => dot_tile::<V, $r, 4>(k, a, b, d, s),
                    )*
                    _ => unreachable!("tile sizes are at most 4 × 4"),
                }
            };
        }
        go!(1, 2, 3, 4)
    }
}

/// One MR × NR tile of dot products along k, L lanes at a time, each reduced at the end.
///
/// # Safety
/// As [`dot`], with the `MR × NR` tile inside `dst`.
#[inline(always)]
unsafe fn dot_tile<V: Lanes, const MR: usize, const NR: usize>(k: usize, a: Raw, b: Raw, d: Dst, start: Start<'_>) {
    // SAFETY: the caller upholds the `# Safety` contract above; the loads past `k` read
    // nothing (zero lanes).
    unsafe {
        let mut acc = [[V::zero(); NR]; MR];
        let step = |acc: &mut [[V; NR]; MR], p: usize, full: bool| {
            let ld = |row: *const f32| {
                if full {
                    V::loadu(row.add(p))
                } else {
                    V::load(row, p as isize, k)
                }
            };
            let mut bv = [V::zero(); NR];
            for (j, x) in bv.iter_mut().enumerate() {
                *x = ld(b.ptr.add(j * b.cs));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let av = ld(a.ptr.add(i * a.rs));
                for (x, &bb) in row.iter_mut().zip(&bv) {
                    *x = av.mul_add(bb, *x);
                }
            }
        };
        let full = k / V::L * V::L;
        for p in (0..full).step_by(V::L) {
            step(&mut acc, p, true);
        }
        if full < k {
            step(&mut acc, full, false);
        }
        let mut lanes = [0f32; 16];
        for (i, row) in acc.iter().enumerate() {
            let o = d.ptr.add(i * d.ld);
            for (j, x) in row.iter().enumerate() {
                x.storeu(lanes.as_mut_ptr());
                let s = lanes[..V::L].iter().fold(0.0f32, |t, &l| t + l);
                *o.add(j) = match start {
                    Start::Zero => s,
                    Start::Dst => *o.add(j) + s,
                    Start::Bias(bias) => s + bias[j],
                };
            }
        }
    }
}

/// The NEON entry points (NEON is part of every aarch64 target).
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon {
    use super::{Raw, Start};
    use crate::kernels::simd::V4;

    /// [`super::outer`] on 4-lane NEON vectors.
    ///
    /// # Safety
    /// As [`super::outer`].
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
        unsafe { super::outer::<V4>(m, n, k, a, b, dst, ldc, start, threads) }
    }

    /// [`super::dot`] on 4-lane NEON vectors.
    ///
    /// # Safety
    /// As [`super::dot`].
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
        unsafe { super::dot::<V4>(m, n, k, a, b, dst, ldc, start, threads) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{self, Isa};

    fn data(len: usize, seed: f64) -> Vec<f32> {
        (0..len).map(|i| ((i as f64 * 0.37 + seed).sin()) as f32).collect()
    }

    /// Both kernels with the vectors of this machine's widest level that has them (NEON's 4
    /// lanes on aarch64; AVX2's 8 on x86, which only tests use there) on edge shapes, from
    /// each start, with A transposed for `outer`: the f64 product to within rounding.
    #[test]
    fn generic_kernels_match_the_f64_product() {
        #[cfg(target_arch = "x86_64")]
        type V = crate::kernels::simd::V8;
        #[cfg(target_arch = "aarch64")]
        type V = crate::kernels::simd::V4;
        let level = if cfg!(target_arch = "aarch64") {
            Isa::Neon
        } else {
            Isa::Avx2
        };
        if !cpu::supported().contains(&level) {
            eprintln!("matmul lanes: skipped: this CPU ({}) lacks {level}", cpu::detected());
            return;
        }
        #[derive(Clone, Copy)]
        enum K {
            Outer,
            Dot,
        }
        /// Runs with the level's features on (x86 needs them named; NEON is always on).
        #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
        #[allow(clippy::too_many_arguments)]
        unsafe fn run(
            kind: K,
            m: usize,
            n: usize,
            k: usize,
            a: Raw,
            b: Raw,
            d: *mut f32,
            s: Start<'_>,
            threads: usize,
        ) {
            // SAFETY: the test's buffers hold the operands; the level was checked above.
            unsafe {
                match kind {
                    K::Outer => outer::<V>(m, n, k, a, b, d, n, s, threads),
                    K::Dot => dot::<V>(m, n, k, a, b, d, n, s, threads),
                }
            }
        }
        for (m, n, k) in [
            (1, 1, 1),
            (5, 3, 2),
            (7, 17, 9),
            (13, 33, 31),
            (64, 70, 100),
            (6, 16, 4),
        ] {
            let (a, b) = (data(m * k, 0.3), data(k * n, 1.1));
            let bias = data(n, 2.5);
            let init = data(m * n, 3.7);
            for kind in [K::Outer, K::Dot] {
                // outer: a stored k × m (transposed), b row-major k × n;
                // dot: a row-major m × k, b stored n × k.
                let (ar, br) = match kind {
                    K::Outer => (
                        Raw {
                            ptr: a.as_ptr(),
                            rs: 1,
                            cs: m,
                        },
                        Raw {
                            ptr: b.as_ptr(),
                            rs: n,
                            cs: 1,
                        },
                    ),
                    K::Dot => (
                        Raw {
                            ptr: a.as_ptr(),
                            rs: k,
                            cs: 1,
                        },
                        Raw {
                            ptr: b.as_ptr(),
                            rs: 1,
                            cs: k,
                        },
                    ),
                };
                let at = |i: usize, p: usize| a[i * ar.rs + p * ar.cs] as f64;
                let bt = |p: usize, j: usize| b[p * br.rs + j * br.cs] as f64;
                for (si, threads) in [(0, 1), (1, 2), (2, 1)] {
                    let mut d = init.clone();
                    let s = [Start::Zero, Start::Dst, Start::Bias(&bias)][si];
                    // SAFETY: a, b and d hold the m×k, k×n and m×n matrices described.
                    unsafe { run(kind, m, n, k, ar, br, d.as_mut_ptr(), s, threads) };
                    for i in 0..m {
                        for j in 0..n {
                            let base = [0.0, init[i * n + j] as f64, bias[j] as f64][si];
                            let want = base + (0..k).map(|p| at(i, p) * bt(p, j)).sum::<f64>();
                            let got = d[i * n + j] as f64;
                            assert!(
                                (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                                "{m}x{n}x{k} start {si}: [{i},{j}] = {got}, want {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
