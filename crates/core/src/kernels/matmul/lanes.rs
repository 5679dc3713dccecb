//! The small, unpacked f32 products, written once over [`Lanes`] for every level: AVX-512
//! (`avx512.rs`), AVX2 (`avx2.rs`) and NEON (`neon.rs`) give their tile shapes, their lane
//! reduction and the tile functions compiled with their features ([`Tiles`]). Two kernels:
//!
//! - [`outer`] (B's rows contiguous): each step of k broadcasts 6 elements of A and loads
//!   `OUTER_NV` vectors of B's row, 6 × `OUTER_NV` accumulators.
//! - [`dot`] (A's rows and B's columns contiguous, `x·Wᵀ`): `DOT_MR × DOT_NR` accumulators of
//!   dot products along k, each reduced at the end in the level's fixed order.
//!
//! An element's value depends only on the level (its lanes and reduction), never on the tile
//! shape or on how tiles are grouped: chunks of tiles go to [`run_tiles`], so a result does not
//! depend on the thread count either.

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
pub(crate) struct Dst {
    ptr: *mut f32,
    ld: usize,
}

// SAFETY: each thread writes its own tiles through `Dst` of a buffer that outlives the product.
unsafe impl Send for Dst {}
// SAFETY: as above.
unsafe impl Sync for Dst {}

/// A level's tile shapes (sized to its registers) and its lane reduction.
pub(crate) trait Tiles: Lanes {
    /// Vectors of B's row per [`outer`] tile (1 to 4).
    const OUTER_NV: usize;
    /// Rows of A per [`dot`] tile (1 to 6).
    const DOT_MR: usize;
    /// Columns of B per [`dot`] tile (1 to 4).
    const DOT_NR: usize;
    /// Multiply-adds per chunk handed to a thread (a few microseconds of work).
    const CHUNK_MACS: usize;
    /// The lane sums of four vectors, `[Σv0, Σv1, Σv2, Σv3]`, in a fixed order.
    unsafe fn reduce4(v: [Self; 4]) -> [f32; 4];
    /// [`outer_tile`] compiled with the level's features: a function of its own per tile
    /// shape, as the per-level kernels always were (the generic code around it runs in
    /// closures, which would not inline the level's intrinsics).
    ///
    /// # Safety
    /// As [`outer_tile`].
    unsafe fn outer_tile<const MR: usize, const NV: usize>(
        k: usize,
        a: Raw,
        b: Raw,
        d: Dst,
        tail: usize,
        start: Start<'_>,
    );
    /// [`dot_tile`] compiled with the level's features.
    ///
    /// # Safety
    /// As [`dot_tile`].
    unsafe fn dot_tile<const MR: usize, const NR: usize>(k: usize, a: Raw, b: Raw, d: Dst, start: Start<'_>);
}

/// Rows of A per [`outer`] tile.
const OUTER_MR: usize = 6;

/// `dst (m×n) = start + a·b` with `b.cs == 1`, on up to `threads` threads.
///
/// # Safety
/// `V`'s level must be available (the tiles run in its [`Tiles`] methods, compiled with its
/// features); `a` and `b` must be readable at every index of an m×k and k×n matrix with their
/// strides; `dst` must hold m rows of stride `ldc ≥ n`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn outer<V: Tiles>(
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
    let nc = V::OUTER_NV * V::L;
    let d = Dst { ptr: dst, ld: ldc };
    let col_blocks = n.div_ceil(nc);
    let row_blocks = m.div_ceil(OUTER_MR);
    // Chunks: one column block (its panel of b stays in L1) by a run of row blocks.
    let rows_per_chunk = (V::CHUNK_MACS / (OUTER_MR * nc * k).max(1)).clamp(1, row_blocks);
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

/// The operands and start moved to the tile at (r0, c0): `a` from row r0, `b` from column c0
/// (columns `b_step` apart), `dst` and the bias from (r0, c0).
///
/// # Safety
/// The tile lies inside the matrices.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn at_tile<'s>(
    a: Raw,
    b: Raw,
    d: Dst,
    r0: usize,
    c0: usize,
    cols: usize,
    start: Start<'s>,
    b_step: usize,
) -> (Raw, Raw, Dst, Start<'s>) {
    // SAFETY: the caller's contract.
    unsafe {
        let a = Raw {
            ptr: a.ptr.add(r0 * a.rs),
            ..a
        };
        let b = Raw {
            ptr: b.ptr.add(c0 * b_step),
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
        (a, b, d, s)
    }
}

/// [`outer_tile`] for a tile of `rows ≤ 6` by `cols ≤ OUTER_NV·L` at (r0, c0).
///
/// # Safety
/// As [`outer`], with the tile `rows × cols` at `(r0, c0)` inside `dst`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn outer_tile_dispatch<V: Tiles>(
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
        let (a, b, d, s) = at_tile(a, b, d, r0, c0, cols, start, 1);
        // Arms past the level's `OUTER_NV` are never taken (`cols` is at most its width).
        macro_rules! go {
            ($($r:literal),*) => {
                match (rows, nv) {
                    $(
                        ($r, 1) => V::outer_tile::<$r, 1>(k, a, b, d, tail, s),
                        ($r, 2) if V::OUTER_NV >= 2 => V::outer_tile::<$r, 2>(k, a, b, d, tail, s),
                        ($r, 3) if V::OUTER_NV >= 3 => V::outer_tile::<$r, 3>(k, a, b, d, tail, s),
                        ($r, 4) if V::OUTER_NV >= 4 => V::outer_tile::<$r, 4>(k, a, b, d, tail, s),
                    )*
                    _ => unreachable!("tile sizes are at most 6 × OUTER_NV vectors"),
                }
            };
        }
        go!(1, 2, 3, 4, 5, 6)
    }
}

/// The first `n ≤ L` lanes at `p`, the rest zero: a plain load when `n == L`.
///
/// # Safety
/// `p[..n]` must be readable.
#[inline(always)]
unsafe fn load_first<V: Lanes>(p: *const f32, n: usize) -> V {
    // SAFETY: the caller's contract; a partial load reads only its `n` lanes.
    unsafe {
        if n == V::L {
            V::loadu(p)
        } else {
            V::load(p, 0, n)
        }
    }
}

/// `NV` vectors of the row at `p`, the last holding `tail` lanes (the rest zero).
///
/// # Safety
/// `p[..(NV − 1)·L + tail]` must be readable.
#[inline(always)]
unsafe fn load_row<V: Lanes, const NV: usize>(p: *const f32, tail: usize) -> [V; NV] {
    // SAFETY: the caller's contract.
    unsafe {
        let mut out = [V::zero(); NV];
        for (v, x) in out.iter_mut().enumerate() {
            *x = load_first(p.add(v * V::L), if v + 1 < NV { V::L } else { tail });
        }
        out
    }
}

/// One MR × NV·L tile: `d = start + a·b`; the last vector of each row holds `tail` lanes.
///
/// # Safety
/// As [`outer`], with the tile `MR × ((NV − 1)·L + tail)` inside `dst`.
#[inline(always)]
pub(crate) unsafe fn outer_tile<V: Lanes, const MR: usize, const NV: usize>(
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
        // Full-width tiles get a loop of plain loads, with no test of `tail` in it (13% of
        // the AVX2 kernel's time at the MLP's shapes when it was there).
        if tail == V::L {
            outer_steps(&mut acc, k, a, b, V::L);
        } else {
            outer_steps(&mut acc, k, a, b, tail);
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

/// The k steps of [`outer_tile`] on its accumulators.
///
/// # Safety
/// As [`outer_tile`].
#[inline(always)]
unsafe fn outer_steps<V: Lanes, const MR: usize, const NV: usize>(
    acc: &mut [[V; NV]; MR],
    k: usize,
    a: Raw,
    b: Raw,
    tail: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let (mut brow, mut acol) = (b.ptr, a.ptr);
        for _ in 0..k {
            let bv = load_row::<V, NV>(brow, tail);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = V::splat(*acol.add(r * a.rs));
                for (x, &bb) in row.iter_mut().zip(&bv) {
                    *x = av.mul_add(bb, *x);
                }
            }
            // Wrapping: after the last step they may point one stride past the operands.
            brow = brow.wrapping_add(b.rs);
            acol = acol.wrapping_add(a.cs);
        }
    }
}

/// `dst (m×n) = start + a·b` with `a.cs == 1` and `b.rs == 1` (both contiguous along k).
///
/// # Safety
/// As [`outer`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn dot<V: Tiles>(
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
    let col_blocks = n.div_ceil(V::DOT_NR);
    let row_blocks = m.div_ceil(V::DOT_MR);
    // Chunks: a run of column blocks (rows of bᵀ, kept in L1) over all rows of a.
    let cols_per_chunk = (V::CHUNK_MACS / (m * V::DOT_NR * k).max(1)).clamp(1, col_blocks);
    let work = |c: usize| {
        let cb_end = ((c + 1) * cols_per_chunk).min(col_blocks);
        for cb in c * cols_per_chunk..cb_end {
            let c0 = cb * V::DOT_NR;
            let cols = V::DOT_NR.min(n - c0);
            for rb in 0..row_blocks {
                let r0 = rb * V::DOT_MR;
                let rows = V::DOT_MR.min(m - r0);
                // SAFETY: the tile lies inside the matrices (the caller's contract).
                unsafe { dot_tile_dispatch::<V>(rows, cols, k, a, b, d, r0, c0, start) };
            }
        }
    };
    run_tiles(col_blocks.div_ceil(cols_per_chunk), threads, &work);
}

/// [`dot_tile`] for a tile of `rows ≤ DOT_MR` by `cols ≤ DOT_NR` at (r0, c0).
///
/// # Safety
/// As [`dot`], with the tile `rows × cols` at `(r0, c0)` inside `dst`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn dot_tile_dispatch<V: Tiles>(
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
        let (a, b, d, s) = at_tile(a, b, d, r0, c0, cols, start, b.cs);
        // Arms past the level's `DOT_MR × DOT_NR` are never taken.
        macro_rules! go {
            ($($r:literal),*) => {
                match (rows, cols) {
                    $(
                        ($r, 1) if V::DOT_MR >= $r => V::dot_tile::<$r, 1>(k, a, b, d, s),
                        ($r, 2) if V::DOT_MR >= $r && V::DOT_NR >= 2 => V::dot_tile::<$r, 2>(k, a, b, d, s),
                        ($r, 3) if V::DOT_MR >= $r && V::DOT_NR >= 3 => V::dot_tile::<$r, 3>(k, a, b, d, s),
                        ($r, 4) if V::DOT_MR >= $r && V::DOT_NR >= 4 => V::dot_tile::<$r, 4>(k, a, b, d, s),
                    )*
                    _ => unreachable!("tile sizes are at most DOT_MR × DOT_NR"),
                }
            };
        }
        go!(1, 2, 3, 4, 5, 6)
    }
}

/// One MR × NR (≤ 4) tile of dot products along k, L lanes at a time, reduced at the end.
///
/// # Safety
/// As [`dot`], with the `MR × NR` tile inside `dst`.
#[inline(always)]
pub(crate) unsafe fn dot_tile<V: Tiles, const MR: usize, const NR: usize>(
    k: usize,
    a: Raw,
    b: Raw,
    d: Dst,
    start: Start<'_>,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the loads of the last step
    // read only up to `k`.
    unsafe {
        let mut acc = [[V::zero(); NR]; MR];
        let full = k / V::L * V::L;
        for p in (0..full).step_by(V::L) {
            dot_step(&mut acc, a, b, p, V::L);
        }
        if full < k {
            dot_step(&mut acc, a, b, full, k - full);
        }
        for (i, row) in acc.iter().enumerate() {
            let get = |j: usize| if j < NR { row[j] } else { V::zero() };
            let sums = V::reduce4([get(0), get(1), get(2), get(3)]);
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

/// One step of [`dot_tile`]: `lanes ≤ L` elements from `p` of each row of a and column of b
/// (the rest zero). NR vectors of b live across the step, one of a at a time.
///
/// # Safety
/// As [`dot_tile`], with `p + lanes ≤ k`.
#[inline(always)]
unsafe fn dot_step<V: Lanes, const MR: usize, const NR: usize>(
    acc: &mut [[V; NR]; MR],
    a: Raw,
    b: Raw,
    p: usize,
    lanes: usize,
) {
    // SAFETY: the caller's contract; the loads read only `lanes` elements.
    unsafe {
        let mut bv = [V::zero(); NR];
        for (j, x) in bv.iter_mut().enumerate() {
            *x = load_first(b.ptr.add(j * b.cs + p), lanes);
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let av: V = load_first(a.ptr.add(i * a.rs + p), lanes);
            for (x, &bb) in row.iter_mut().zip(&bv) {
                *x = av.mul_add(bb, *x);
            }
        }
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
    /// lanes on aarch64; AVX2's 8 on x86) on edge shapes, from
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
