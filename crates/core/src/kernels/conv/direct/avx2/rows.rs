//! AVX2 f32 convolution kernels vectorized along output rows (8 pixels per vector): the
//! AVX-512 `rows` kernels with half the lanes and half the registers, so a tile holds
//! every output channel of a few vectors of one row (LeNet's first layer: 6 channels × 2
//! vectors).

use super::{mask, store_n, V8};
use crate::kernels::conv::direct::Corr;
use std::arch::x86_64::*;

/// Accumulators per tile (16 registers: the rest hold the row vectors and a broadcast).
const ACC: usize = 12;

/// `out[o, y, x] = bias[o] + Σ_{c,i,j} wr[c, i, j, o] · xp[c, y+i, x+j]` for one image:
/// `xp` is `[ci, hp, wp]` (padded, with [`Corr::padded_len`] elements), `wr` is
/// `[ci, kh, kw, co]`, `out` is `[co, oh, ow]`. Needs `co ≤ 8` and `ow ≤ 32`.
///
/// # Safety
/// AVX2 and FMA must be available.
pub(super) unsafe fn forward(g: &Corr, xp: &[f32], wr: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the asserts below check the
    // buffers the kernels read and write.
    unsafe {
        assert!(
            g.co <= 8 && g.ow <= 32 && g.ow > 0,
            "avx2 rows::forward: unsupported {g:?}"
        );
        assert!(xp.len() >= g.padded_len() && wr.len() >= g.ci * g.kh * g.kw * g.co);
        assert!(out.len() >= g.co * g.oh * g.ow && bias.is_none_or(|b| b.len() >= g.co));
        macro_rules! go {
            ($($co:literal),*) => {
                match g.co {
                    $($co => image::<$co>(g, xp, wr, bias, out),)*
                    _ => unreachable!(),
                }
            };
        }
        go!(1, 2, 3, 4, 5, 6, 7, 8)
    }
}

/// [`forward`] with `CO` output channels, in tiles of one row × up to `ACC / CO` vectors.
///
/// # Safety
/// AVX2 and FMA must be available, the buffers sized as [`forward`] asserts and `CO` the
/// output channels.
#[target_feature(enable = "avx2,fma")]
unsafe fn image<const CO: usize>(g: &Corr, xp: &[f32], wr: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; tiles stay inside the
    // output rows and the padded input's slack.
    unsafe {
        let mut b = [0f32; CO];
        if let Some(bias) = bias {
            b.copy_from_slice(&bias[..CO]);
        }
        let (xp, wr, out) = (xp.as_ptr(), wr.as_ptr(), out.as_mut_ptr());
        let vt = g.ow.div_ceil(V8);
        let vb = (ACC / CO).clamp(1, 4).min(vt);
        for y in 0..g.oh {
            let mut v0 = 0;
            while v0 < vt {
                let n = vb.min(vt - v0);
                match n {
                    1 => tile::<CO, 1>(g, xp, wr, &b, out, y, v0),
                    2 => tile::<CO, 2>(g, xp, wr, &b, out, y, v0),
                    3 => tile::<CO, 3>(g, xp, wr, &b, out, y, v0),
                    _ => tile::<CO, 4>(g, xp, wr, &b, out, y, v0),
                }
                v0 += n;
            }
        }
    }
}

/// Output row `y`, vectors `v0..v0+VB`, of every channel: `VB × CO` accumulators.
///
/// # Safety
/// AVX2 and FMA must be available; the buffers sized as [`forward`] asserts, with row `y`
/// and vectors `v0..v0+VB` inside the output.
#[inline(always)]
unsafe fn tile<const CO: usize, const VB: usize>(
    g: &Corr,
    xp: *const f32,
    wr: *const f32,
    bias: &[f32; CO],
    out: *mut f32,
    y: usize,
    v0: usize,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; full-vector reads past a
    // row stay inside the padded buffer's slack.
    unsafe {
        let mut acc: [[__m256; CO]; VB] = [std::array::from_fn(|o| _mm256_set1_ps(bias[o])); VB];
        let plane = g.hp * g.wp;
        for c in 0..g.ci {
            for i in g.live_taps(y, 1) {
                let src = xp.add(c * plane + (y + i) * g.wp + v0 * V8);
                let wrow = wr.add((c * g.kh + i) * g.kw * CO);
                for j in 0..g.kw {
                    let xv: [__m256; VB] = std::array::from_fn(|v| _mm256_loadu_ps(src.add(j + v * V8)));
                    let wj = wrow.add(j * CO);
                    for o in 0..CO {
                        let wb = _mm256_broadcast_ss(&*wj.add(o));
                        for (a, &x) in acc.iter_mut().zip(&xv) {
                            a[o] = _mm256_fmadd_ps(x, wb, a[o]);
                        }
                    }
                }
            }
        }
        let p = g.oh * g.ow;
        for (v, a) in acc.iter().enumerate() {
            let x0 = (v0 + v) * V8;
            let n = (g.ow - x0).min(V8);
            for (o, &s) in a.iter().enumerate() {
                store_n(out.add(o * p + y * g.ow + x0), s, n);
            }
        }
    }
}

/// Output channels per weight-gradient tile.
const OB: usize = 2;
/// Tap columns per weight-gradient tile.
const JB: usize = 5;

/// `acc[o, c, i, j, 0..8] += ` 8-lane partial sums of `Σ_{y,x} dy[o, y, x] · xp[c, y+i, x+j]`
/// for one image (`acc` is `[co, ci, kh, kw, 16]` as the AVX-512 kernels lay it out, lanes
/// 8..16 untouched; the caller sums all 16): `xp` as in [`forward`], `dy` is
/// `[co, oh, ow]`. Needs `ow ≤ 32`.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn weight(g: &Corr, xp: &[f32], dy: &[f32], acc: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the asserts check the
    // buffers, the loads of a row's tail are masked.
    unsafe {
        assert!(
            g.ow <= 32 && g.ow > 0 && g.co > 0,
            "avx2 rows::weight: unsupported {g:?}"
        );
        assert!(xp.len() >= g.padded_len() && dy.len() >= g.co * g.oh * g.ow);
        assert!(acc.len() >= g.co * g.ci * g.kh * g.kw * 16);
        let (xp, dy) = (xp.as_ptr(), dy.as_ptr());
        let (p, plane) = (g.oh * g.ow, g.hp * g.wp);
        let (full, rem) = (g.ow / V8, g.ow % V8);
        let tail = mask(rem);
        for c in 0..g.ci {
            for i in 0..g.kh {
                // Output rows whose input row y + i is not padding.
                let [lo, hi] = g.live();
                let ys = lo.saturating_sub(i)..hi.saturating_sub(i).min(g.oh);
                for o0 in (0..g.co).step_by(OB) {
                    // A short last block repeats the last channel; its sums are dropped.
                    let os: [usize; OB] = std::array::from_fn(|b| (o0 + b).min(g.co - 1));
                    for j0 in (0..g.kw).step_by(JB) {
                        let mut a = [[_mm256_setzero_ps(); JB]; OB];
                        for y in ys.clone() {
                            let src = xp.add(c * plane + (y + i) * g.wp + j0);
                            let drow = dy.add(y * g.ow);
                            for v in 0..full {
                                let d = os.map(|o| _mm256_loadu_ps(drow.add(o * p + v * V8)));
                                for j in 0..JB {
                                    let xv = _mm256_loadu_ps(src.add(v * V8 + j));
                                    for (ab, &db) in a.iter_mut().zip(&d) {
                                        ab[j] = _mm256_fmadd_ps(db, xv, ab[j]);
                                    }
                                }
                            }
                            if rem > 0 {
                                let at = full * V8;
                                let d = os.map(|o| _mm256_maskload_ps(drow.add(o * p + at), tail));
                                for j in 0..JB {
                                    let xv = _mm256_maskload_ps(src.add(at + j), tail);
                                    for (ab, &db) in a.iter_mut().zip(&d) {
                                        ab[j] = _mm256_fmadd_ps(db, xv, ab[j]);
                                    }
                                }
                            }
                        }
                        for (b, ab) in a.iter().enumerate().take(g.co - o0) {
                            for (j, &s) in ab.iter().enumerate().take(g.kw - j0) {
                                let dst = acc
                                    .as_mut_ptr()
                                    .add((((o0 + b) * g.ci + c) * g.kh + i) * g.kw * 16 + (j0 + j) * 16);
                                _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), s));
                            }
                        }
                    }
                }
            }
        }
    }
}
