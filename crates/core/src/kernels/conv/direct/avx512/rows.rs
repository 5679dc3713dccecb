//! AVX-512 f32 convolution kernels vectorized along output rows: each vector holds up to
//! 16 neighbouring pixels of one row, and a tile holds every output channel of a few rows,
//! so a tap costs one load per row vector and one broadcast per output channel.
//!
//! This suits layers with few output channels and rows of at most 32 pixels, such as
//! LeNet's first layer (6 channels, rows of 28). Inputs are zero-padded copies (see
//! [`Corr`]), so no tap needs bounds logic; rows that are all padding are skipped.

#![cfg(target_arch = "x86_64")]

use crate::kernels::conv::direct::Corr;
use std::arch::x86_64::*;

/// Lanes of one vector.
const L: usize = 16;

/// The mask of the first `n` (≤ 16) lanes.
pub(super) fn mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// `out[o, y, x] = bias[o] + Σ_{c,i,j} wr[c, i, j, o] · xp[c, y+i, x+j]` for one image:
/// `xp` is `[ci, hp, wp]` (padded, with [`Corr::padded_len`] elements), `wr` is
/// `[ci, kh, kw, co]`, `out` is `[co, oh, ow]`. Needs `co ≤ 8` and `ow ≤ 32`.
///
/// # Safety
/// AVX-512F must be available.
pub(super) unsafe fn forward(g: &Corr, xp: &[f32], wr: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        assert!(
            g.co <= 8 && g.ow <= 2 * L && g.ow > 0,
            "rows::forward: unsupported {g:?}"
        );
        assert!(xp.len() >= g.padded_len() && wr.len() >= g.ci * g.kh * g.kw * g.co);
        assert!(out.len() >= g.co * g.oh * g.ow && bias.is_none_or(|b| b.len() >= g.co));
        let v = g.ow.div_ceil(L);
        macro_rules! go {
            ($($co:literal),*) => {
                match (g.co, v) {
                    $(
                        ($co, 1) => image::<$co, 1>(g, xp, wr, bias, out),
                        ($co, 2) => image::<$co, 2>(g, xp, wr, bias, out),
                    )*
                    _ => unreachable!(),
                }
            };
        }
        go!(1, 2, 3, 4, 5, 6, 7, 8)
    }
}

/// [`forward`] with `CO` output channels and rows of `V` vectors, in tiles of about 24
/// accumulators (the rest of the 32 registers hold the row vectors and a broadcast).
///
/// # Safety
/// AVX-512F must be available, the buffers sized as [`forward`] asserts, `CO` the output channels and `V` the vectors per output row.
#[target_feature(enable = "avx512f")]
unsafe fn image<const CO: usize, const V: usize>(
    g: &Corr,
    xp: &[f32],
    wr: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let mut b = [0f32; CO];
        if let Some(bias) = bias {
            b.copy_from_slice(&bias[..CO]);
        }
        let (xp, wr, out) = (xp.as_ptr(), wr.as_ptr(), out.as_mut_ptr());
        // Enough accumulators to hide the FMA latency, and no more: taller tiles skip fewer
        // padding rows (measured: 6 channels × 2 vectors run fastest one row at a time).
        let rows = if CO * V >= 6 {
            1
        } else if CO * V >= 3 {
            2
        } else {
            4
        };
        let mut y0 = 0;
        while y0 < g.oh {
            if y0 + rows > g.oh {
                tile::<CO, V, 1>(g, xp, wr, &b, out, y0);
                y0 += 1;
                continue;
            }
            match rows {
                4 => tile::<CO, V, 4>(g, xp, wr, &b, out, y0),
                2 => tile::<CO, V, 2>(g, xp, wr, &b, out, y0),
                _ => tile::<CO, V, 1>(g, xp, wr, &b, out, y0),
            }
            y0 += rows;
        }
    }
}

/// Output rows `y0..y0+R` of every channel: `R × V × CO` accumulators.
///
/// # Safety
/// AVX-512F must be available; `xp`, `wr` and `out` must point to buffers sized as [`forward`] asserts, with rows `y0..y0+R` inside the output.
#[inline(always)]
unsafe fn tile<const CO: usize, const V: usize, const R: usize>(
    g: &Corr,
    xp: *const f32,
    wr: *const f32,
    bias: &[f32; CO],
    out: *mut f32,
    y0: usize,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let mut acc = [[[_mm512_setzero_ps(); CO]; V]; R];
        for (o, &bv) in bias.iter().enumerate() {
            let bv = _mm512_set1_ps(bv);
            for row in acc.iter_mut() {
                for vs in row.iter_mut() {
                    vs[o] = bv;
                }
            }
        }
        let plane = g.hp * g.wp;
        for c in 0..g.ci {
            for i in g.live_taps(y0, R) {
                let src = xp.add(c * plane + (y0 + i) * g.wp);
                let wrow = wr.add((c * g.kh + i) * g.kw * CO);
                for j in 0..g.kw {
                    let mut xv = [[_mm512_setzero_ps(); V]; R];
                    for (r, row) in xv.iter_mut().enumerate() {
                        for (v, x) in row.iter_mut().enumerate() {
                            *x = _mm512_loadu_ps(src.add(r * g.wp + j + v * L));
                        }
                    }
                    let wj = wrow.add(j * CO);
                    for o in 0..CO {
                        let wb = _mm512_set1_ps(*wj.add(o));
                        for (arow, xrow) in acc.iter_mut().zip(&xv) {
                            for (a, &x) in arow.iter_mut().zip(xrow) {
                                a[o] = _mm512_fmadd_ps(x, wb, a[o]);
                            }
                        }
                    }
                }
            }
        }
        let p = g.oh * g.ow;
        let last = mask(g.ow - (V - 1) * L);
        for (r, arow) in acc.iter().enumerate() {
            for (v, a) in arow.iter().enumerate() {
                let m = if v == V - 1 { last } else { !0 };
                for (o, &x) in a.iter().enumerate() {
                    _mm512_mask_storeu_ps(out.add(o * p + (y0 + r) * g.ow + v * L), m, x);
                }
            }
        }
    }
}

/// Output channels per weight-gradient tile.
const OB: usize = 3;
/// Tap columns per weight-gradient tile.
const JB: usize = 5;

/// `acc[o, c, i, j] += Σ_{y,x} dy[o, y, x] · xp[c, y+i, x+j]` for one image, as 16-lane
/// partial sums (`acc` is `[co, ci, kh, kw, 16]`, reduced by the caller): `xp` as in
/// [`forward`], `dy` is `[co, oh, ow]`. Needs `ow ≤ 32`.
///
/// # Safety
/// AVX-512F must be available.
pub(super) unsafe fn weight(g: &Corr, xp: &[f32], dy: &[f32], acc: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        assert!(g.ow <= 2 * L && g.ow > 0 && g.co > 0, "rows::weight: unsupported {g:?}");
        assert!(xp.len() >= g.padded_len() && dy.len() >= g.co * g.oh * g.ow);
        assert!(acc.len() >= g.co * g.ci * g.kh * g.kw * L);
        if g.ow > L {
            weight_image::<2>(g, xp, dy, acc)
        } else {
            weight_image::<1>(g, xp, dy, acc)
        }
    }
}

/// [`weight`] for rows of `V` vectors: tiles of `OB` channels × `JB` tap columns for one
/// tap row, summed over the image's rows in registers and then added to `acc`.
///
/// # Safety
/// AVX-512F must be available, the buffers sized as [`weight`] asserts, and `V` the vectors per output row.
#[target_feature(enable = "avx512f")]
unsafe fn weight_image<const V: usize>(g: &Corr, xp: &[f32], dy: &[f32], acc: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let (xp, dy) = (xp.as_ptr(), dy.as_ptr());
        let (p, plane) = (g.oh * g.ow, g.hp * g.wp);
        let last = mask(g.ow - (V - 1) * L);
        for c in 0..g.ci {
            for i in 0..g.kh {
                // Output rows whose input row y + i is not padding.
                let [lo, hi] = g.live();
                let ys = lo.saturating_sub(i)..hi.saturating_sub(i).min(g.oh);
                for o0 in (0..g.co).step_by(OB) {
                    // A short last block repeats the last channel; its sums are dropped.
                    let os: [usize; OB] = std::array::from_fn(|b| (o0 + b).min(g.co - 1));
                    for j0 in (0..g.kw).step_by(JB) {
                        let mut a = [[_mm512_setzero_ps(); JB]; OB];
                        for y in ys.clone() {
                            let src = xp.add(c * plane + (y + i) * g.wp + j0);
                            for v in 0..V {
                                let m = if v == V - 1 { last } else { !0 };
                                let d = os.map(|o| _mm512_maskz_loadu_ps(m, dy.add(o * p + y * g.ow + v * L)));
                                for j in 0..JB {
                                    let xv = _mm512_maskz_loadu_ps(m, src.add(v * L + j));
                                    for (ab, &db) in a.iter_mut().zip(&d) {
                                        ab[j] = _mm512_fmadd_ps(db, xv, ab[j]);
                                    }
                                }
                            }
                        }
                        for (b, ab) in a.iter().enumerate().take(g.co - o0) {
                            for (j, &s) in ab.iter().enumerate().take(g.kw - j0) {
                                let dst = acc
                                    .as_mut_ptr()
                                    .add((((o0 + b) * g.ci + c) * g.kh + i) * g.kw * L + (j0 + j) * L);
                                _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), s));
                            }
                        }
                    }
                }
            }
        }
    }
}
