//! AVX-512 f32 convolution kernels vectorized along output channels: each vector holds 16
//! channels of one pixel, so a tap costs one weight vector and one broadcast per pixel,
//! with all 16 lanes busy whatever the image width.
//!
//! This suits layers with 16·m output channels and small images, such as LeNet's second
//! layer (16 channels, 10×10 outputs), where rows are too short for row vectors. Results
//! come out pixel-major (`[p, 16]`) and are turned channel-major by [`from_lanes`]; the
//! weight gradient reads the output gradient pixel-major, made by [`to_lanes`].

#![cfg(target_arch = "x86_64")]

use super::rows::mask;
use crate::kernels::conv::direct::Corr;
use std::arch::x86_64::*;

/// Lanes of one vector (= channels per block).
const L: usize = 16;

/// Transpose 16 rows of 16 lanes in registers.
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
unsafe fn transpose16(r: &mut [__m512; 16]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let mut t = [_mm512_setzero_ps(); 16];
        for k in 0..8 {
            t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
            t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
        }
        for k in 0..4 {
            let (a, b, c, d) = (t[4 * k], t[4 * k + 1], t[4 * k + 2], t[4 * k + 3]);
            r[4 * k] = _mm512_shuffle_ps::<0x44>(a, c);
            r[4 * k + 1] = _mm512_shuffle_ps::<0xEE>(a, c);
            r[4 * k + 2] = _mm512_shuffle_ps::<0x44>(b, d);
            r[4 * k + 3] = _mm512_shuffle_ps::<0xEE>(b, d);
        }
        // Now r[4k + m] holds, in each 128-bit quarter q, elements m of rows 4k..4k+4 at
        // column block q. Gather the quarters.
        for k in 0..2 {
            for m in 0..4 {
                t[8 * k + m] = _mm512_shuffle_f32x4::<0x88>(r[8 * k + m], r[8 * k + 4 + m]);
                t[8 * k + 4 + m] = _mm512_shuffle_f32x4::<0xDD>(r[8 * k + m], r[8 * k + 4 + m]);
            }
        }
        for m in 0..4 {
            r[m] = _mm512_shuffle_f32x4::<0x88>(t[m], t[8 + m]);
            r[8 + m] = _mm512_shuffle_f32x4::<0xDD>(t[m], t[8 + m]);
            r[4 + m] = _mm512_shuffle_f32x4::<0x88>(t[4 + m], t[12 + m]);
            r[12 + m] = _mm512_shuffle_f32x4::<0xDD>(t[4 + m], t[12 + m]);
        }
    }
}

/// `dst[q, l] = src[l·p + q]` for 16 rows `l` of `p` elements: `dst` is `[p, 16]`.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn to_lanes(src: &[f32], p: usize, dst: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        assert!(src.len() >= L * p && dst.len() >= p * L);
        for q0 in (0..p).step_by(L) {
            let n = L.min(p - q0);
            let m = mask(n);
            let mut r: [__m512; 16] = std::array::from_fn(|l| _mm512_maskz_loadu_ps(m, src.as_ptr().add(l * p + q0)));
            transpose16(&mut r);
            for (q, &v) in r.iter().enumerate().take(n) {
                _mm512_storeu_ps(dst.as_mut_ptr().add((q0 + q) * L), v);
            }
        }
    }
}

/// `dst[l·p + q] = src[q, l]`, the inverse of [`to_lanes`].
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn from_lanes(src: &[f32], p: usize, dst: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        assert!(src.len() >= p * L && dst.len() >= L * p);
        for q0 in (0..p).step_by(L) {
            let n = L.min(p - q0);
            let m = mask(n);
            let mut r = [_mm512_setzero_ps(); 16];
            for (q, v) in r.iter_mut().enumerate().take(n) {
                *v = _mm512_loadu_ps(src.as_ptr().add((q0 + q) * L));
            }
            transpose16(&mut r);
            for (l, &v) in r.iter().enumerate() {
                _mm512_mask_storeu_ps(dst.as_mut_ptr().add(l * p + q0), m, v);
            }
        }
    }
}

/// Widest run of pixels one forward tile covers along a row.
const MAX_X: usize = 12;

/// `outt[y·ow + x, l] = bias[l] + Σ_{c,i,j} xp[c, y+i, x+j] · wt[c, i, j, l]` for one
/// image and one block of 16 output channels: `xp` is `[ci, hp, wp]` (padded), `wt` is
/// `[ci, kh, kw, 16]`, `outt` is `[oh·ow, 16]`.
///
/// # Safety
/// AVX-512F must be available.
pub(super) unsafe fn forward(g: &Corr, xp: &[f32], wt: &[f32], bias: &[f32; L], outt: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        assert!(g.ow > 0 && g.oh > 0, "chans::forward: empty output {g:?}");
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
        go!(1 => 4, 2 => 4, 3 => 4, 4 => 4, 5 => 4, 6 => 4, 7 => 3, 8 => 3, 9 => 2, 10 => 2, 11 => 2, 12 => 2)
    }
}

/// [`forward`] in tiles of `R` rows × `X` pixels (the last tile of rows may overlap too).
///
/// # Safety
/// AVX-512F must be available, the buffers sized as [`forward`] asserts, and `segs` tiles of `X ≤ ow` pixels per output row.
#[target_feature(enable = "avx512f")]
unsafe fn rows<const X: usize, const R: usize>(
    g: &Corr,
    xp: &[f32],
    wt: &[f32],
    bias: &[f32; L],
    outt: &mut [f32],
    segs: usize,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let (xp, wt, outt) = (xp.as_ptr(), wt.as_ptr(), outt.as_mut_ptr());
        let b = _mm512_loadu_ps(bias.as_ptr());
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

/// Output pixels `(y0..y0+R) × (x0..x0+X)`, 16 channels each.
///
/// # Safety
/// AVX-512F must be available; `xp`, `wt` and `outt` must point to buffers sized as [`forward`] asserts, with the pixels `(y0..y0+R) × (x0..x0+X)` inside the output.
#[inline(always)]
unsafe fn tile<const X: usize, const R: usize>(
    g: &Corr,
    xp: *const f32,
    wt: *const f32,
    bias: __m512,
    outt: *mut f32,
    y0: usize,
    x0: usize,
) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let mut acc = [[bias; X]; R];
        let plane = g.hp * g.wp;
        for c in 0..g.ci {
            for i in g.live_taps(y0, R) {
                let src = xp.add(c * plane + (y0 + i) * g.wp + x0);
                let wrow = wt.add((c * g.kh + i) * g.kw * L);
                for j in 0..g.kw {
                    let wv = _mm512_loadu_ps(wrow.add(j * L));
                    for (r, arow) in acc.iter_mut().enumerate() {
                        let s = src.add(r * g.wp + j);
                        for (x, a) in arow.iter_mut().enumerate() {
                            *a = _mm512_fmadd_ps(_mm512_set1_ps(*s.add(x)), wv, *a);
                        }
                    }
                }
            }
        }
        for (r, arow) in acc.iter().enumerate() {
            for (x, &a) in arow.iter().enumerate() {
                _mm512_storeu_ps(outt.add(((y0 + r) * g.ow + x0 + x) * L), a);
            }
        }
    }
}

/// `acc[c, i, j, l] += Σ_{y,x} xp[c, y+i, x+j] · dyt[y·ow + x, l]` for one image and one
/// block of 16 output channels: `xp` as in [`forward`], `dyt` is `[oh·ow, 16]` (see
/// [`to_lanes`]), `acc` is `[ci, kh, kw, 16]`. Needs a 5×5 or 3×3 kernel.
///
/// # Safety
/// AVX-512F must be available.
pub(super) unsafe fn weight(g: &Corr, xp: &[f32], dyt: &[f32], acc: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        assert!(xp.len() >= g.ci * g.hp * g.wp && dyt.len() >= g.oh * g.ow * L);
        assert!(acc.len() >= g.ci * g.kh * g.kw * L);
        match (g.kh, g.kw) {
            (5, 5) => weight_image::<5, 5>(g, xp, dyt, acc),
            (3, 3) => weight_image::<3, 3>(g, xp, dyt, acc),
            _ => panic!("chans::weight: unsupported kernel {g:?}"),
        }
    }
}

/// [`weight`] with every tap of one input channel in registers (`KH·KW ≤ 25`
/// accumulators), summed over the image's pixels and then added to `acc`.
///
/// # Safety
/// AVX-512F must be available, the buffers sized as [`weight`] asserts, and `(KH, KW)` the kernel size.
#[target_feature(enable = "avx512f")]
unsafe fn weight_image<const KH: usize, const KW: usize>(g: &Corr, xp: &[f32], dyt: &[f32], acc: &mut [f32]) {
    // SAFETY: the caller upholds the `# Safety` contract above; the intrinsics and
    // pointer accesses below rely on nothing more.
    unsafe {
        let (xp, dyt) = (xp.as_ptr(), dyt.as_ptr());
        let plane = g.hp * g.wp;
        for c in 0..g.ci {
            let mut a = [[_mm512_setzero_ps(); KW]; KH];
            for y in 0..g.oh {
                for x in 0..g.ow {
                    let d = _mm512_loadu_ps(dyt.add((y * g.ow + x) * L));
                    let src = xp.add(c * plane + y * g.wp + x);
                    for (i, arow) in a.iter_mut().enumerate() {
                        let s = src.add(i * g.wp);
                        for (j, v) in arow.iter_mut().enumerate() {
                            *v = _mm512_fmadd_ps(_mm512_set1_ps(*s.add(j)), d, *v);
                        }
                    }
                }
            }
            for (i, arow) in a.iter().enumerate() {
                for (j, &s) in arow.iter().enumerate() {
                    let dst = acc.as_mut_ptr().add(((c * KH + i) * KW + j) * L);
                    _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), s));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_round_trip() {
        if !crate::cpu::supported().contains(&crate::cpu::Isa::Avx512) {
            println!(
                "skipped: avx512 lane transposes, this CPU is {}",
                crate::cpu::detected()
            );
            return;
        }
        for p in [1, 15, 16, 37] {
            let src: Vec<f32> = (0..16 * p).map(|i| i as f32).collect();
            let mut t = vec![0f32; p * 16];
            let mut back = vec![0f32; 16 * p];
            // SAFETY: AVX-512 checked above.
            unsafe {
                to_lanes(&src, p, &mut t);
                from_lanes(&t, p, &mut back);
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
