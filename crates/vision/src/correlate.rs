//! Correlation and convolution of images and signals with a kernel, built from core
//! tensor ops so that gradients flow to both the image and the kernel.
//!
//! Correlation slides the kernel as it is, `g(i,j) = Σ f(i+k, j+l) h(k,l)`; convolution
//! slides it flipped, `g(i,j) = Σ f(i−k, j−l) h(k,l)`.
//!
//! ```
//! use nabla_core::Tensor;
//! use nabla_vision::{correlate1d, Border, Padding};
//! // A 3-point moving average of a signal.
//! let x = Tensor::from_vec(vec![3.0f64, 6.0, 9.0, 0.0], &[4])?;
//! let k = Tensor::from_vec(vec![1.0f64 / 3.0; 3], &[3])?;
//! let y = correlate1d(&x, &k, Padding::Valid, Border::Zero)?;
//! assert_eq!(y.to_vec_f64(), vec![6.0, 5.0]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use crate::pad::{check_rank, flip2d, pad2d, Border, Padding};
use nabla_core::{Conv2dOptions, Error, Result, Tensor};

/// Correlate an image `[H, W]` or `[C, H, W]` (each channel alone) with a kernel
/// `[kh, kw]`. The output keeps the input's rank; its size follows `padding`.
pub fn correlate2d(x: &Tensor, kernel: &Tensor, padding: Padding, border: Border) -> Result<Tensor> {
    check_rank("correlate2d", x)?;
    if kernel.rank() != 2 || kernel.numel() == 0 {
        return Err(Error::invalid(
            "correlate2d",
            format!(
                "kernel must be a non-empty matrix [kh, kw], got shape {:?}",
                kernel.shape()
            ),
        ));
    }
    if x.dtype() != kernel.dtype() {
        return Err(Error::DTypeMismatch {
            op: "correlate2d",
            lhs: x.dtype(),
            rhs: kernel.dtype(),
        });
    }
    let (kh, kw) = (kernel.shape()[0], kernel.shape()[1]);
    let (h, w) = (x.size(-2)?, x.size(-1)?);
    if padding == Padding::Valid && (kh > h || kw > w) {
        return Err(Error::shapes(
            "correlate2d",
            x.shape(),
            kernel.shape(),
            "with Valid padding the kernel must fit inside the image",
        ));
    }
    if h == 0 || w == 0 {
        return Err(Error::invalid(
            "correlate2d",
            format!("empty image of shape {:?}", x.shape()),
        ));
    }
    let (top, bottom) = padding.sizes(kh);
    let (left, right) = padding.sizes(kw);
    let xp = pad2d(x, [top, bottom, left, right], border)?;
    let ho = xp.size(-2)? + 1 - kh;
    let wo = xp.size(-1)? + 1 - kw;
    slide(&xp, kernel, ho, wo)
}

/// Convolve an image with a kernel: correlation with the kernel flipped in both axes.
pub fn convolve2d(x: &Tensor, kernel: &Tensor, padding: Padding, border: Border) -> Result<Tensor> {
    if kernel.rank() != 2 {
        return Err(Error::invalid(
            "convolve2d",
            format!("kernel must be a matrix [kh, kw], got shape {:?}", kernel.shape()),
        ));
    }
    correlate2d(x, &flip2d(kernel)?, padding, border)
}

/// Correlate a signal `[L]` or `[C, L]` (each row alone) with a kernel `[k]`.
pub fn correlate1d(x: &Tensor, kernel: &Tensor, padding: Padding, border: Border) -> Result<Tensor> {
    one_d("correlate1d", x, kernel, |x2, k2| correlate2d(x2, k2, padding, border))
}

/// Convolve a signal `[L]` or `[C, L]` with a kernel `[k]` (the kernel reversed).
pub fn convolve1d(x: &Tensor, kernel: &Tensor, padding: Padding, border: Border) -> Result<Tensor> {
    one_d("convolve1d", x, kernel, |x2, k2| convolve2d(x2, k2, padding, border))
}

/// Moving average of a signal over windows of `k` samples (`padding` Valid: only full windows).
pub fn moving_average(x: &Tensor, k: usize, padding: Padding, border: Border) -> Result<Tensor> {
    if k == 0 {
        return Err(Error::invalid("moving_average", "window of 0 samples"));
    }
    let kernel = Tensor::full(&[k], 1.0 / k as f64, x.dtype());
    correlate1d(x, &kernel, padding, border)
}

/// Weighted moving average: the weights are scaled to sum to 1, then correlated.
pub fn weighted_moving_average(x: &Tensor, weights: &Tensor, padding: Padding, border: Border) -> Result<Tensor> {
    let total = weights.sum_all()?;
    if total.item()? == 0.0 {
        return Err(Error::invalid("weighted_moving_average", "weights sum to 0"));
    }
    correlate1d(x, &weights.div(&total)?, padding, border)
}

/// Lift a 1-D op to the 2-D one: signals become images of height 1.
fn one_d(
    op: &'static str,
    x: &Tensor,
    kernel: &Tensor,
    f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if kernel.rank() != 1 {
        return Err(Error::invalid(
            op,
            format!("kernel must be a vector [k], got shape {:?}", kernel.shape()),
        ));
    }
    let k2 = kernel.unsqueeze(0)?;
    match x.rank() {
        1 => f(&x.unsqueeze(0)?, &k2)?.squeeze(0),
        2 => f(&x.unsqueeze(1)?, &k2)?.squeeze(1),
        _ => Err(Error::invalid(
            op,
            format!("expected a signal [L] or [C, L], got shape {:?}", x.shape()),
        )),
    }
}

/// Target size (elements) of one strip's intermediate buffers in [`slide`].
const STRIP_ELEMS: usize = 1 << 21;

/// Output rows `r0..r0 + len` of [`slide`]: `[N, 1, len, W']`.
fn diagonal_rows(input: &Tensor, weight: &Tensor, kh: usize, r0: usize, len: usize) -> Result<Tensor> {
    let band = input.narrow(2, r0, len + kh - 1)?;
    let z = band.conv2d(weight, None, Conv2dOptions::default())?;
    let mut acc = z.narrow(1, 0, 1)?.narrow(2, 0, len)?;
    for a in 1..kh {
        acc = acc.add(&z.narrow(1, a, 1)?.narrow(2, a, len)?)?;
    }
    Ok(acc)
}

/// Slide `kernel` over an already padded input: `out[.., i, j] = Σ_{a,b} xp[.., i+a, j+b] · k[.., a, b]`.
/// A `[kh, kw]` kernel runs over each channel alone; a `[C, kh, kw]` kernel over a
/// `[C, H, W]` input sums the channels too (one score per position, as in matching).
///
/// Core `conv2d` would unfold all `kh·kw` taps of every position at once (a 32×32
/// template over a megapixel image is a billion-entry matrix). Instead each kernel row
/// becomes an output channel of a `1×kw` convolution — `z[a, r, j] = Σ_b xp[r, j+b] k[a, b]`,
/// a GEMM with `kh` rows over a `kw`-tap unfolding — and the rows are then summed along
/// the diagonal: `out[i, j] = Σ_a z[a, i+a, j]`.
pub(crate) fn slide(xp: &Tensor, kernel: &Tensor, ho: usize, wo: usize) -> Result<Tensor> {
    slide_in_strips(xp, kernel, ho, wo, STRIP_ELEMS)
}

/// [`slide`] with a given strip budget (elements).
fn slide_in_strips(xp: &Tensor, kernel: &Tensor, ho: usize, wo: usize, budget: usize) -> Result<Tensor> {
    let kh = kernel.size(-2)?;
    let (hp, wp) = (xp.size(-2)?, xp.size(-1)?);
    let (input, weight) = if kernel.rank() == 3 {
        // [1, C, Hp, Wp] against [kh, C, 1, kw]: channels are summed by the convolution.
        (xp.unsqueeze(0)?, kernel.transpose(0, 1)?.unsqueeze(2)?)
    } else {
        // Channels become the batch: [C, 1, Hp, Wp] against [kh, 1, 1, kw].
        (
            xp.reshape([-1, 1, hp as isize, wp as isize])?,
            kernel.unsqueeze(1)?.unsqueeze(1)?,
        )
    };
    let weight = weight.contiguous()?;
    let input = input.contiguous()?;
    let (n, cin, kw) = (input.size(0)?, input.size(1)?, kernel.size(-1)?);
    // Strips of output rows keep the unfolded and per-row buffers near STRIP_ELEMS, so they
    // are reused from the allocator instead of freshly mapped (and page-faulted) each time.
    let per_row = (n * kh.max(cin * kw) * wo).max(1);
    let rows = (budget / per_row).saturating_sub(kh - 1).max(kh.max(16).min(ho));
    let strips = (0..ho)
        .step_by(rows)
        .map(|r0| diagonal_rows(&input, &weight, kh, r0, rows.min(ho - r0)))
        .collect::<Result<Vec<_>>>()?;
    let out = match strips.as_slice() {
        [one] => one.clone(),
        many => Tensor::cat(&many.iter().collect::<Vec<_>>(), 2)?,
    };
    debug_assert_eq!(out.size(-1)?, wo);
    if kernel.rank() == 3 || xp.rank() == 2 {
        out.reshape([ho, wo])
    } else {
        out.reshape([xp.size(0)?, ho, wo])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::gradcheck::gradcheck;
    use nabla_core::{DType, Generator};

    fn t(v: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape).unwrap()
    }

    /// Direct evaluation of the definition with zero borders, in "full" coordinates.
    fn naive_full_corr(x: &[f64], h: usize, w: usize, k: &[f64], kh: usize, kw: usize) -> Vec<f64> {
        let (ho, wo) = (h + kh - 1, w + kw - 1);
        let mut out = vec![0.0; ho * wo];
        for i in 0..ho {
            for j in 0..wo {
                let mut s = 0.0;
                for a in 0..kh {
                    for b in 0..kw {
                        let (r, c) = (
                            i as isize + a as isize - (kh as isize - 1),
                            j as isize + b as isize - (kw as isize - 1),
                        );
                        if r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w {
                            s += x[r as usize * w + c as usize] * k[a * kw + b];
                        }
                    }
                }
                out[i * wo + j] = s;
            }
        }
        out
    }

    #[test]
    fn bright_square_smoothed_by_a_box_filter() {
        // A 2×2 square of 9s on a 4×4 dark background; the 3×3 box sums count how many
        // square pixels each 3×3 window covers, so each output is 9·count/9 = count.
        let mut img = vec![0.0; 16];
        for (r, c) in [(1, 1), (1, 2), (2, 1), (2, 2)] {
            img[r * 4 + c] = 9.0;
        }
        let x = t(&img, &[4, 4]);
        let k = Tensor::full(&[3, 3], 1.0 / 9.0, DType::F64);
        let y = correlate2d(&x, &k, Padding::Same, Border::Zero).unwrap();
        let want = [
            1.0, 2.0, 2.0, 1.0, 2.0, 4.0, 4.0, 2.0, 2.0, 4.0, 4.0, 2.0, 1.0, 2.0, 2.0, 1.0,
        ];
        for (a, b) in y.to_vec_f64().iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        let v = correlate2d(&x, &k, Padding::Valid, Border::Zero).unwrap();
        assert_eq!(v.shape(), &[2, 2]);
        assert!(v.to_vec_f64().iter().all(|&a| (a - 4.0).abs() < 1e-12));
    }

    #[test]
    fn same_padding_centres_an_odd_kernel() {
        // A kernel with a single 1 at its centre reproduces the image in every border mode.
        let x = Tensor::randn(&[2, 5, 4], DType::F64, &mut Generator::new(3));
        let mut kv = vec![0.0; 25];
        kv[12] = 1.0;
        let k = t(&kv, &[5, 5]);
        for b in [Border::Zero, Border::Reflect, Border::Replicate] {
            let y = correlate2d(&x, &k, Padding::Same, b).unwrap();
            assert_eq!(y.shape(), x.shape());
            assert_eq!(y.to_vec_f64(), x.to_vec_f64());
        }
        // One step to the right in the kernel reads one pixel to the right in the image.
        let shift = t(&[0.0, 0.0, 1.0], &[1, 3]);
        let r = correlate2d(&t(&[1.0, 2.0, 3.0], &[1, 3]), &shift, Padding::Same, Border::Zero).unwrap();
        assert_eq!(r.to_vec_f64(), vec![2.0, 3.0, 0.0]);
    }

    #[test]
    fn matches_the_definition_for_every_padding() {
        let (h, w, kh, kw) = (5, 6, 3, 4);
        let x = Tensor::randn(&[h, w], DType::F64, &mut Generator::new(1));
        let k = Tensor::randn(&[kh, kw], DType::F64, &mut Generator::new(2));
        let full = naive_full_corr(&x.to_vec_f64(), h, w, &k.to_vec_f64(), kh, kw);
        let wf = w + kw - 1;
        for (padding, (r0, c0), (ho, wo)) in [
            (Padding::Full, (0, 0), (h + kh - 1, w + kw - 1)),
            (Padding::Valid, (kh - 1, kw - 1), (h - kh + 1, w - kw + 1)),
            // Same: top pad (kh−1)/2 = 1, left pad (kw−1)/2 = 1 of the full pad 2 and 3.
            (Padding::Same, (1, 2), (h, w)),
        ] {
            let y = correlate2d(&x, &k, padding, Border::Zero).unwrap();
            assert_eq!(y.shape(), &[ho, wo], "{padding:?}");
            let got = y.to_vec_f64();
            for i in 0..ho {
                for j in 0..wo {
                    let want = full[(i + r0) * wf + j + c0];
                    assert!((got[i * wo + j] - want).abs() < 1e-12, "{padding:?} ({i},{j})");
                }
            }
        }
    }

    #[test]
    fn convolution_is_correlation_with_the_flipped_kernel() {
        let x = Tensor::randn(&[2, 6, 7], DType::F64, &mut Generator::new(4));
        let k = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        let flipped = t(&[6.0, 5.0, 4.0, 3.0, 2.0, 1.0], &[2, 3]);
        for padding in [Padding::Valid, Padding::Same, Padding::Full] {
            let c = convolve2d(&x, &k, padding, Border::Reflect).unwrap();
            let r = correlate2d(&x, &flipped, padding, Border::Reflect).unwrap();
            assert_eq!(c.shape(), r.shape());
            assert_eq!(c.to_vec_f64(), r.to_vec_f64());
        }
        // An asymmetric kernel makes the two differ.
        let c = convolve2d(&x, &k, Padding::Valid, Border::Zero).unwrap().to_vec_f64();
        let r = correlate2d(&x, &k, Padding::Valid, Border::Zero).unwrap().to_vec_f64();
        assert_ne!(c, r);
    }

    #[test]
    fn convolving_an_impulse_reproduces_the_kernel() {
        let mut img = vec![0.0; 49];
        img[3 * 7 + 3] = 1.0;
        let x = t(&img, &[7, 7]);
        let kv: Vec<f64> = (1..=9).map(f64::from).collect();
        let k = t(&kv, &[3, 3]);
        let y = convolve2d(&x, &k, Padding::Same, Border::Zero).unwrap().to_vec_f64();
        for a in 0..3 {
            for b in 0..3 {
                assert_eq!(y[(2 + a) * 7 + 2 + b], kv[a * 3 + b]);
            }
        }
        assert_eq!(y.iter().sum::<f64>(), 45.0);
        // Correlation gives the kernel upside down and mirrored.
        let r = correlate2d(&x, &k, Padding::Same, Border::Zero).unwrap().to_vec_f64();
        assert_eq!(r[2 * 7 + 2], 9.0);
        assert_eq!(r[4 * 7 + 4], 1.0);
        // With Full padding the impulse at the origin of a 1×1 image gives exactly the kernel.
        let one = convolve2d(&t(&[1.0], &[1, 1]), &k, Padding::Full, Border::Zero).unwrap();
        assert_eq!(one.to_vec_f64(), kv);
    }

    #[test]
    fn border_modes_change_only_the_edges() {
        let x = t(&[1.0, 2.0, 3.0, 4.0], &[1, 4]);
        let k = t(&[1.0, 1.0, 1.0], &[1, 3]);
        let run = |b| correlate2d(&x, &k, Padding::Same, b).unwrap().to_vec_f64();
        assert_eq!(run(Border::Zero), vec![3.0, 6.0, 9.0, 7.0]);
        assert_eq!(run(Border::Replicate), vec![4.0, 6.0, 9.0, 11.0]);
        assert_eq!(run(Border::Reflect), vec![5.0, 6.0, 9.0, 10.0]);
    }

    #[test]
    fn signals_moving_averages() {
        let x = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[6]);
        let m = moving_average(&x, 3, Padding::Valid, Border::Zero).unwrap();
        for (a, b) in m.to_vec_f64().iter().zip([2.0, 3.0, 4.0, 5.0]) {
            assert!((a - b).abs() < 1e-12);
        }
        let w = weighted_moving_average(&x, &t(&[1.0, 2.0, 1.0], &[3]), Padding::Same, Border::Replicate).unwrap();
        let want = [1.25, 2.0, 3.0, 4.0, 5.0, 5.75];
        for (a, b) in w.to_vec_f64().iter().zip(want) {
            assert!((a - b).abs() < 1e-12);
        }
        // Convolution reverses a 1-D kernel: [0, 0, 1] then delays rather than advances.
        let d = convolve1d(&x, &t(&[0.0, 0.0, 1.0], &[3]), Padding::Same, Border::Zero).unwrap();
        assert_eq!(d.to_vec_f64(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let two = correlate1d(
            &t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]),
            &t(&[1.0, -1.0], &[2]),
            Padding::Valid,
            Border::Zero,
        )
        .unwrap();
        assert_eq!(two.shape(), &[2, 1]);
        assert_eq!(two.to_vec_f64(), vec![-1.0, -1.0]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let x = t(&[1.0; 4], &[2, 2]);
        assert!(correlate2d(&x, &t(&[1.0; 9], &[3, 3]), Padding::Valid, Border::Zero).is_err());
        assert!(correlate2d(&x, &t(&[1.0; 3], &[3]), Padding::Same, Border::Zero).is_err());
        assert!(correlate2d(&t(&[1.0; 4], &[4]), &t(&[1.0], &[1, 1]), Padding::Same, Border::Zero).is_err());
        let f32k = Tensor::ones(&[1, 1], DType::F32);
        assert!(correlate2d(&x, &f32k, Padding::Same, Border::Zero).is_err());
        assert!(moving_average(&t(&[1.0], &[1]), 0, Padding::Same, Border::Zero).is_err());
    }

    #[test]
    fn strips_agree_with_one_pass() {
        // A tiny budget forces strips of 16 rows (the floor) over 40 output rows.
        let x = Tensor::randn(&[2, 44, 9], DType::F64, &mut Generator::new(13));
        let k = Tensor::randn(&[5, 3], DType::F64, &mut Generator::new(14));
        let one = slide_in_strips(&x, &k, 40, 7, usize::MAX).unwrap();
        let many = slide_in_strips(&x, &k, 40, 7, 1).unwrap();
        assert_eq!(many.shape(), &[2, 40, 7]);
        let (a, b) = (one.to_vec_f64(), many.to_vec_f64());
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-12));
        let k3 = Tensor::randn(&[2, 5, 3], DType::F64, &mut Generator::new(15));
        let (p, q) = (
            slide_in_strips(&x, &k3, 40, 7, usize::MAX).unwrap(),
            slide_in_strips(&x, &k3, 40, 7, 1).unwrap(),
        );
        assert_eq!(q.shape(), &[40, 7]);
        assert!(p
            .to_vec_f64()
            .iter()
            .zip(q.to_vec_f64())
            .all(|(p, q)| (p - q).abs() < 1e-12));
        let small = Tensor::randn(&[1, 24, 4], DType::F64, &mut Generator::new(16));
        gradcheck(|v| slide_in_strips(&v[0], &v[1], 20, 2, 1), &[small, k]).unwrap();
    }

    #[test]
    fn gradients_reach_image_and_kernel() {
        let x = Tensor::randn(&[2, 4, 5], DType::F64, &mut Generator::new(5));
        let k = Tensor::randn(&[3, 2], DType::F64, &mut Generator::new(6));
        for (padding, border) in [
            (Padding::Same, Border::Reflect),
            (Padding::Full, Border::Zero),
            (Padding::Valid, Border::Replicate),
        ] {
            gradcheck(|v| correlate2d(&v[0], &v[1], padding, border), &[x.clone(), k.clone()]).unwrap();
            gradcheck(|v| convolve2d(&v[0], &v[1], padding, border), &[x.clone(), k.clone()]).unwrap();
        }
        let s = Tensor::randn(&[7], DType::F64, &mut Generator::new(7));
        gradcheck(
            |v| correlate1d(&v[0], &v[1], Padding::Same, Border::Reflect),
            &[s, t(&[0.2, 0.5, 0.3], &[3])],
        )
        .unwrap();
    }
}
