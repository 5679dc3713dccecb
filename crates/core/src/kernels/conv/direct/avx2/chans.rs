//! AVX2 f32 convolution kernels vectorized along output channels: a block of 16 output
//! channels is two vectors per pixel, so a tap costs two weight vectors and one broadcast
//! per pixel (LeNet's second layer: 16 channels, 10×10 outputs). Layouts as the AVX-512
//! `chans` kernels: weights `[ci, kh, kw, 16]`, results and output gradients `[p, 16]`.

use crate::kernels::conv::direct::{Corr, L};
use std::arch::x86_64::*;

/// Widest run of pixels one forward tile covers along a row (2 vectors each: 12
/// accumulators).
const MAX_X: usize = 6;

/// `outt[y·ow + x, l] = bias[l] + Σ_{c,i,j} xp[c, y+i, x+j] · wt[c, i, j, l]` for one
/// image and one block of 16 output channels: `xp` is `[ci, hp, wp]` (padded), `wt` is
/// `[ci, kh, kw, 16]`, `outt` is `[oh·ow, 16]`.
///
/// # Safety
/// AVX2 and FMA must be available.
pub(super) unsafe fn forward(g: &Corr, xp: &[f32], wt: &[f32], bias: &[f32; L], outt: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the asserts check the
    // buffers the tiles read and write.
    unsafe {
        assert!(g.ow > 0 && g.oh > 0, "avx2 chans::forward: empty output {g:?}");
        assert!(xp.len() >= g.ci * g.hp * g.wp && wt.len() >= g.ci * g.kh * g.kw * L);
        assert!(outt.len() >= g.oh * g.ow * L);
        // Each row in `segs` runs of `x` pixels (the last run may overlap the one before:
        // those pixels are simply computed twice).
        let segs = g.ow.div_ceil(MAX_X);
        let x = g.ow.div_ceil(segs);
        macro_rules! go {
            ($($x:literal => $r:literal),*) => {
                match x {
                    $($x => rows::<$x, $r>(g, xp, wt, bias, outt, segs),)*
                    _ => unreachable!(),
                }
            };
        }
        go!(1 => 4, 2 => 3, 3 => 2, 4 => 1, 5 => 1, 6 => 1)
    }
}

/// [`forward`] in tiles of `R` rows × `X` pixels (the last tile of rows may overlap too).
///
/// # Safety
/// AVX2 and FMA must be available, the buffers sized as [`forward`] asserts, and `segs`
/// tiles of `X ≤ ow` pixels per output row.
#[target_feature(enable = "avx2,fma")]
unsafe fn rows<const X: usize, const R: usize>(
    g: &Corr,
    xp: &[f32],
    wt: &[f32],
    bias: &[f32; L],
    outt: &mut [f32],
    segs: usize,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; every tile lies inside
    // the output.
    unsafe {
        let (xp, wt, outt) = (xp.as_ptr(), wt.as_ptr(), outt.as_mut_ptr());
        let b = [_mm256_loadu_ps(bias.as_ptr()), _mm256_loadu_ps(bias.as_ptr().add(8))];
        for s in 0..segs {
            let x0 = (s * X).min(g.ow - X);
            if g.oh < R {
                for y0 in 0..g.oh {
                    tile::<X, 1>(g, xp, wt, b, outt, y0, x0);
                }
                continue;
            }
            for y0 in (0..g.oh).step_by(R) {
                tile::<X, R>(g, xp, wt, b, outt, y0.min(g.oh - R), x0);
            }
        }
    }
}

/// Output pixels `(y0..y0+R) × (x0..x0+X)`, 16 channels (two vectors) each.
///
/// # Safety
/// AVX2 and FMA must be available; `xp`, `wt` and `outt` must point to buffers sized as
/// [`forward`] asserts, with the pixels `(y0..y0+R) × (x0..x0+X)` inside the output.
#[inline(always)]
unsafe fn tile<const X: usize, const R: usize>(
    g: &Corr,
    xp: *const f32,
    wt: *const f32,
    bias: [__m256; 2],
    outt: *mut f32,
    y0: usize,
    x0: usize,
) {
    // SAFETY: the caller upholds the `# Safety` contract above.
    unsafe {
        let mut acc = [[bias; X]; R];
        let plane = g.hp * g.wp;
        for c in 0..g.ci {
            for i in g.live_taps(y0, R) {
                let src = xp.add(c * plane + (y0 + i) * g.wp + x0);
                let wrow = wt.add((c * g.kh + i) * g.kw * L);
                for j in 0..g.kw {
                    let w0 = _mm256_loadu_ps(wrow.add(j * L));
                    let w1 = _mm256_loadu_ps(wrow.add(j * L + 8));
                    for (r, arow) in acc.iter_mut().enumerate() {
                        let s = src.add(r * g.wp + j);
                        for (x, a) in arow.iter_mut().enumerate() {
                            let xb = _mm256_broadcast_ss(&*s.add(x));
                            a[0] = _mm256_fmadd_ps(xb, w0, a[0]);
                            a[1] = _mm256_fmadd_ps(xb, w1, a[1]);
                        }
                    }
                }
            }
        }
        for (r, arow) in acc.iter().enumerate() {
            for (x, a) in arow.iter().enumerate() {
                let dst = outt.add(((y0 + r) * g.ow + x0 + x) * L);
                _mm256_storeu_ps(dst, a[0]);
                _mm256_storeu_ps(dst.add(8), a[1]);
            }
        }
    }
}

/// `acc[c, i, j, l] += Σ_{y,x} xp[c, y+i, x+j] · dyt[y·ow + x, l]` for one image and one
/// block of 16 output channels: `xp` as in [`forward`], `dyt` is `[oh·ow, 16]`, `acc` is
/// `[ci, kh, kw, 16]`. Needs a 5×5 or 3×3 kernel.
///
/// # Safety
/// AVX2 and FMA must be available.
pub(super) unsafe fn weight(g: &Corr, xp: &[f32], dyt: &[f32], acc: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the asserts check the
    // buffers.
    unsafe {
        assert!(xp.len() >= g.ci * g.hp * g.wp && dyt.len() >= g.oh * g.ow * L);
        assert!(acc.len() >= g.ci * g.kh * g.kw * L);
        match (g.kh, g.kw) {
            (5, 5) => weight_image::<5>(g, xp, dyt, acc),
            (3, 3) => weight_image::<3>(g, xp, dyt, acc),
            _ => panic!("avx2 chans::weight: unsupported kernel {g:?}"),
        }
    }
}

/// [`weight`] one tap row at a time (`2·KW ≤ 10` accumulators), summed over the image's
/// pixels and then added to `acc`.
///
/// # Safety
/// AVX2 and FMA must be available, the buffers sized as [`weight`] asserts, and `KW` the
/// kernel width.
#[target_feature(enable = "avx2,fma")]
unsafe fn weight_image<const KW: usize>(g: &Corr, xp: &[f32], dyt: &[f32], acc: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; reads stay inside the
    // image (y + i < hp, x + j < wp).
    unsafe {
        let (xp, dyt) = (xp.as_ptr(), dyt.as_ptr());
        let plane = g.hp * g.wp;
        for c in 0..g.ci {
            for i in 0..g.kh {
                let mut a = [[_mm256_setzero_ps(); 2]; KW];
                for y in 0..g.oh {
                    let src = xp.add(c * plane + (y + i) * g.wp);
                    for x in 0..g.ow {
                        let d = dyt.add((y * g.ow + x) * L);
                        let (d0, d1) = (_mm256_loadu_ps(d), _mm256_loadu_ps(d.add(8)));
                        for (j, aj) in a.iter_mut().enumerate() {
                            let xb = _mm256_broadcast_ss(&*src.add(x + j));
                            aj[0] = _mm256_fmadd_ps(xb, d0, aj[0]);
                            aj[1] = _mm256_fmadd_ps(xb, d1, aj[1]);
                        }
                    }
                }
                for (j, aj) in a.iter().enumerate() {
                    let dst = acc.as_mut_ptr().add(((c * g.kh + i) * KW + j) * L);
                    _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), aj[0]));
                    _mm256_storeu_ps(dst.add(8), _mm256_add_ps(_mm256_loadu_ps(dst.add(8)), aj[1]));
                }
            }
        }
    }
}
