//! The forward pass of stride-2 4×4 convolutions (DCGAN's 64 → 128 layer, and the input
//! gradient of its 128 → 64 transposed convolution) as a stride-1 2×2 convolution over phase
//! images (space-to-depth): `x` splits into its four pixel phases
//! (`xp[c·4 + 2r + s][u, v] = x_padded[c][2u + r, 2v + s]`), and the 4×4 kernel is a 2×2
//! one over those `4c` channels (`wp[o][c·4 + 2r + s][a, b] = w[o][c][2a + r, 2b + s]`),
//! which [`winograd2`]'s F(4×4, 2×2) computes with 25 products per 4×4 output tile instead
//! of 64 (at 7×7 outputs, tiles cover 8×8: 100 against 196 multiplies per pixel block), or
//! its F(7×7, 2×2) with 64 products per 7×7 tile where that needs fewer (DCGAN's 7×7 maps:
//! one thread, CPU time, loaded machine, 14.0–14.8 → 13.1–13.3 ms). The input gradient
//! takes that set's adjoint there (see [`dx`]).
//!
//! Measured at batch 128, 64 → 128 channels, 14×14 → 7×7, one thread (AVX-512, loaded
//! machine, best of 25): 48–50 → 33–35 ms against the grouped im2col path. The input
//! gradient ([`dx`]) runs the same Winograd products per phase of `dx` (CPU time, one thread,
//! loaded machine: 19.0 → 16.3 ms on AVX-512, 36–40 → 22 ms on AVX2, against grouped
//! im2col); an earlier try of one stride-1 convolution into `4c` phase maps, interleaved
//! afterwards, ran no faster: writing the phases straight to `dx` from the output
//! transform is what gains. The weight gradient ([`wgrad`]) is the adjoint Winograd
//! F(2×2, 4×4) over phase images (one thread, loaded machine: 16.0 → 12.2 ms on AVX-512);
//! over phase images' columns it had run slower than im2col.

mod dx;
mod passes;
mod scratch;
mod sets;
pub(super) mod wgrad;
pub mod winograd2;

pub(super) use dx::backward_input;

use super::geom::ConvGeom;
use crate::Element;

/// Whether `g` takes this path: stride 2 both ways, an even kernel, no dilation or groups,
/// and enough channels that the stride-1 products are large (DCGAN's 64 ↔ 128 layers, not
/// its one-channel ends).
pub(super) fn applies(g: &ConvGeom) -> bool {
    g.stride == [2, 2]
        && g.dilation == [1, 1]
        && g.groups == 1
        && g.kh == 4
        && g.kw == 4
        && g.c >= 16
        && g.o >= 16
        && g.n > 0
        && g.oh > 0
        && g.ow > 0
}

/// The stride-1 geometry over phase images: `[n, 4c, oh + k/2 − 1, ow + k/2 − 1]` with
/// `k/2` kernels and no padding, whose output is `g`'s.
fn phase_geom(g: &ConvGeom) -> ConvGeom {
    let (ah, aw) = (g.kh / 2, g.kw / 2);
    ConvGeom::new(
        [g.n, 4 * g.c, g.oh + ah - 1, g.ow + aw - 1],
        [g.o, ah, aw],
        [1, 1],
        [0, 0],
        [1, 1],
        1,
    )
}

/// [`conv2d_forward`](super::conv2d_forward) as a stride-1 convolution of phase images.
pub(super) fn forward<T: Element>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let pg = phase_geom(g);
    debug_assert_eq!((pg.oh, pg.ow), (g.oh, g.ow));
    let (img, c4) = (g.c * g.h * g.w, 4 * g.c);
    // Each image's phase images channel-last, straight from `x`, zeros past `pg`'s rows and
    // columns (a tile's overhang).
    let load = |n: usize, hp: usize, wp: usize, dst: &mut [T]| {
        phase_pixels(g, &x[n * img..][..img], [hp, wp], [pg.h, pg.w], c4, dst);
    };
    // `wp[o][c·4 + 2r + s][a, b] = w[o][c][2a + r, 2b + s]`, read in place.
    let (c, k) = (g.c, g.kh * g.kw);
    let tap = |o: usize, ch: usize, ab: usize| {
        let (ci, r, s, a, b) = (ch / 4, ch % 4 / 2, ch % 2, ab / 2, ab % 2);
        w[(o * c + ci) * k + (2 * a + r) * g.kw + 2 * b + s]
    };
    winograd2::forward_with(&pg, &load, &tap, bias, out);
}

/// Image `xi`'s (`[c, h, w]`) phase images channel-last:
/// `dst[(u·wp + q)·stride + c·4 + 2r + s] = xi[c][2u + r − ph][2q + s − pw]` for `u < hp`,
/// `q < wp`, zero where that lies outside the image or `u ≥ lim[0]` or `q ≥ lim[1]`
/// (elements `4c..stride` of each pixel are left as they are). Pixel by pixel, its `4c`
/// values written together from four offsets into each plane: a channel at a time through a
/// table of each pixel's offsets (the forward's load before) took a seventh of DCGAN's
/// forward (one thread, CPU time, 12.2–12.8 → 10.6–10.8 ms), row pairs of each channel in
/// turn (two 2-element reads, one 4-element store) 11.5–12.2 ms.
pub(super) fn phase_pixels<T: Element>(
    g: &ConvGeom,
    xi: &[T],
    [hp, wp]: [usize; 2],
    lim: [usize; 2],
    stride: usize,
    dst: &mut [T],
) {
    let [ph, pw] = g.padding;
    let (hw, c4) = (g.h * g.w, 4 * g.c);
    let at = |y: usize, xx: usize| {
        let (y, xx) = (y.checked_sub(ph)?, xx.checked_sub(pw)?);
        (y < g.h && xx < g.w).then_some(y * g.w + xx)
    };
    for (k, px) in dst[..hp * wp * stride].chunks_exact_mut(stride).enumerate() {
        let (u, q) = (k / wp, k % wp);
        let dst = &mut px[..c4];
        let idx = [(0, 0), (0, 1), (1, 0), (1, 1)].map(|(r, s)| at(2 * u + r, 2 * q + s));
        if u >= lim[0] || q >= lim[1] || idx.iter().all(Option::is_none) {
            dst.fill(T::ZERO);
        } else if let [Some(i0), Some(i1), Some(i2), Some(i3)] = idx {
            for (d, plane) in dst.chunks_exact_mut(4).zip(xi.chunks_exact(hw)) {
                d.copy_from_slice(&[plane[i0], plane[i1], plane[i2], plane[i3]]);
            }
        } else {
            // Border pixels: a real pixel's index and a select, no branch per value.
            let (keep, i) = (idx.map(|i| i.is_some()), idx.map(|i| i.unwrap_or(0)));
            for (d, plane) in dst.chunks_exact_mut(4).zip(xi.chunks_exact(hw)) {
                for k in 0..4 {
                    d[k] = if keep[k] { plane[i[k]] } else { T::ZERO };
                }
            }
        }
    }
}

/// Data and measures shared by the phase path's f32 tests.
#[cfg(test)]
mod testdata {
    /// `len` weights like DCGAN's, about N(0, 0.02): sums of three sines.
    pub(super) fn dcgan_weights(len: usize, seed: f64) -> Vec<f64> {
        (0..len)
            .map(|i| {
                (0..3)
                    .map(|k| (i as f64 * (0.71 + 0.13 * k as f64) + k as f64 + seed).sin())
                    .sum::<f64>()
                    * 0.0163
            })
            .collect()
    }

    /// The largest error of `got` against `want`, over the larger of `want`'s largest entry
    /// and `floor`.
    pub(super) fn error_over_largest(got: &[f32], want: &[f64], floor: f64) -> f64 {
        let scale = want.iter().fold(floor, |m, v| m.max(v.abs()));
        got.iter()
            .zip(want)
            .fold(0.0f64, |m, (&a, b)| m.max((a as f64 - b).abs()))
            / scale
    }
}

#[cfg(test)]
mod tests {
    use super::super::im2col::{im2col_backward_input, im2col_forward};
    use super::super::weight::im2col_backward_weight;
    use super::*;

    fn seq(len: usize, seed: f64) -> Vec<f64> {
        (0..len).map(|i| (i as f64 * 0.37 + seed).sin()).collect()
    }

    fn close(a: &[f64], b: &[f64], tol: f64, what: &str, g: &ConvGeom) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < tol * (1.0 + y.abs()), "{what} {g:?} at {i}: {x} vs {y}");
        }
    }

    /// `[n, c, h, w]`, `[o, kh, kw]`, padding.
    fn geom(n: usize, c: usize, hw: [usize; 2], o: usize, k: [usize; 2], pad: [usize; 2]) -> ConvGeom {
        ConvGeom::new([n, c, hw[0], hw[1]], [o, k[0], k[1]], [2, 2], pad, [1, 1], 1)
    }

    /// Odd and even sizes (a last row or column no window reaches: a transposed
    /// convolution's output padding), paddings 0 to 2, non-square images, one image,
    /// channels not multiples of 16, more images than one task holds, several
    /// output-channel blocks, and DCGAN's 64 → 128 layer. Forward outputs of 7×7, 6×6, 5×5
    /// and 13×14 take F(7×7, 2×2), the others F(4×4, 2×2); the input gradients of the
    /// 14×14, 13×12 and 12×12 (no padding) images its adjoint.
    fn shapes() -> Vec<ConvGeom> {
        vec![
            geom(2, 17, [9, 8], 18, [4, 4], [1, 1]),
            geom(1, 16, [7, 7], 20, [4, 4], [0, 0]),
            geom(3, 19, [10, 11], 16, [4, 4], [2, 0]),
            geom(15, 16, [6, 5], 17, [4, 4], [2, 2]),
            geom(1, 24, [5, 6], 16, [4, 4], [0, 2]),
            geom(2, 160, [6, 6], 200, [4, 4], [1, 1]),
            geom(4, 64, [14, 14], 128, [4, 4], [1, 1]),
            geom(1, 17, [14, 14], 24, [4, 4], [1, 1]),
            geom(3, 20, [13, 12], 18, [4, 4], [1, 1]),
            geom(2, 18, [27, 26], 20, [4, 4], [1, 2]),
            geom(60, 16, [12, 12], 16, [4, 4], [0, 0]),
        ]
    }

    #[test]
    fn input_gradient_matches_the_general_path() {
        for g in shapes() {
            assert!(applies(&g), "{g:?}");
            let dy = seq(g.n * g.o * g.p(), 0.8);
            let w = seq(g.o * g.k(), 1.7);
            let bc = seq(g.c, 2.4);
            for bias in [false, true] {
                let len = g.n * g.c * g.h * g.w;
                let (mut want, mut got) = (vec![0.0; len], vec![f64::NAN; len]);
                im2col_backward_input(&g, &dy, &w, bias.then_some(&bc[..]), &mut want);
                backward_input(&g, &dy, &w, bias.then_some(&bc[..]), &mut got);
                close(&got, &want, 1e-12, "input gradient", &g);
            }
        }
    }

    #[test]
    fn forward_matches_the_general_path() {
        for g in shapes() {
            assert!(applies(&g), "{g:?}");
            let x = seq(g.n * g.c * g.h * g.w, 0.3);
            let w = seq(g.o * g.k(), 1.1);
            let bo = seq(g.o, 2.0);
            for bias in [false, true] {
                let len = g.n * g.o * g.p();
                let (mut want, mut got) = (vec![0.0; len], vec![f64::NAN; len]);
                im2col_forward(&g, &x, &w, bias.then_some(&bo[..]), &mut want);
                forward(&g, &x, &w, bias.then_some(&bo[..]), &mut got);
                close(&got, &want, 1e-12, "forward", &g);
            }
        }
    }

    /// At every level this CPU has (the transforms are compiled per level, the products
    /// capped at it), the f32 passes against f64 and on 1, 2 and 3 threads.
    #[test]
    fn f32_results_match_f64_and_do_not_depend_on_the_thread_count() {
        for g in [
            geom(6, 64, [14, 14], 128, [4, 4], [1, 1]),
            geom(13, 40, [9, 10], 24, [4, 4], [2, 1]),
            geom(1, 16, [4, 4], 16, [4, 4], [0, 0]),
            geom(5, 24, [27, 26], 20, [4, 4], [1, 1]),
        ] {
            for level in crate::cpu::supported() {
                f32_case(&g, level);
            }
        }
    }

    fn f32_case(g: &ConvGeom, level: crate::cpu::Isa) {
        let g = *g;
        let (x, w, dy) = (
            seq(g.n * g.c * g.h * g.w, 0.3),
            seq(g.o * g.k(), 1.1).iter().map(|v| v * 0.05).collect::<Vec<_>>(),
            seq(g.n * g.o * g.p(), 0.9),
        );
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let (xf, wf, dyf) = (f(&x), f(&w), f(&dy));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                crate::cpu::with_isa(level, || {
                    let (mut y, mut dx, mut dw) = (vec![0f32; dyf.len()], vec![0f32; xf.len()], vec![0f32; wf.len()]);
                    super::super::conv2d_forward(&g, &xf, &wf, None, &mut y);
                    super::super::conv2d_backward_input(&g, &dyf, &wf, None, &mut dx);
                    super::super::conv2d_backward_weight(&g, &xf, &dyf, &mut dw);
                    [y, dx, dw]
                })
            })
        };
        let one = run(1);
        let bits = |r: &[Vec<f32>; 3]| {
            r.iter()
                .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        assert!(bits(&one) == bits(&run(2)));
        assert!(bits(&one) == bits(&run(3)));
        let (mut y, mut dx, mut dw) = (vec![0.0; dy.len()], vec![0.0; x.len()], vec![0.0; w.len()]);
        im2col_forward(&g, &x, &w, None, &mut y);
        im2col_backward_input(&g, &dy, &w, None, &mut dx);
        im2col_backward_weight(&g, &x, &dy, &mut dw);
        for (got, want) in one.iter().zip([y, dx, dw]) {
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (a, b) in got.iter().zip(&want) {
                assert!((*a as f64 - b).abs() < 1e-4 * scale, "{level}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn takes_dcgan_middle_layers_only() {
        assert!(applies(&geom(128, 64, [14, 14], 128, [4, 4], [1, 1])));
        // One-channel ends, other kernels, stride 1.
        assert!(!applies(&geom(128, 64, [14, 14], 128, [2, 2], [0, 0])));
        assert!(!applies(&geom(128, 1, [28, 28], 64, [4, 4], [1, 1])));
        assert!(!applies(&geom(128, 16, [14, 14], 32, [3, 3], [1, 1])));
        let s1 = ConvGeom::new([2, 64, 8, 8], [64, 4, 4], [1, 1], [1, 1], [1, 1], 1);
        assert!(!applies(&s1));
    }
}
