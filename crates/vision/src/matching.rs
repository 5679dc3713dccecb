//! Template matching by normalized cross-correlation.
//!
//! At each position the template and the image patch under it are read as vectors and
//! scored `⟨patch, template⟩ / (‖patch‖ ‖template‖)`; the zero-mean variant centres both
//! first, so a patch that equals the template up to brightness and contrast scores 1.
//! The products come from a correlation and the patch norms from window sums, all
//! tensor ops, so the score map is differentiable in image and template.
//!
//! ```
//! use nabla_core::Tensor;
//! use nabla_vision::match_template;
//! let img = Tensor::from_vec(vec![0.0f64, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0], &[3, 3])?;
//! let tpl = Tensor::from_vec(vec![2.0f64, 4.0, 6.0, 8.0], &[2, 2])?;
//! let (scores, best) = match_template(&img, &tpl, 1, true)?;
//! assert_eq!(scores.shape(), &[2, 2]);
//! assert_eq!((best[0].x, best[0].y), (1, 1));
//! assert!((best[0].score - 1.0).abs() < 1e-12);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use crate::correlate::slide;
use nabla_core::{DType, Error, Result, Tensor};

/// A found template position: the top-left corner of the box, and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Column of the box's left edge.
    pub x: usize,
    /// Row of the box's top edge.
    pub y: usize,
    /// Normalized correlation there.
    pub score: f64,
}

/// Sums of every `kh×kw` window of the last two dims ("valid" positions). Differentiable.
///
/// Window sums of length `k` are assembled from power-of-two partial sums, so the cost
/// is `O(log k)` tensor adds per axis rather than `O(k)`.
pub fn window_sum2d(x: &Tensor, window: [usize; 2]) -> Result<Tensor> {
    if x.rank() < 2 {
        return Err(Error::invalid(
            "window_sum2d",
            format!("need at least 2 dims, got shape {:?}", x.shape()),
        ));
    }
    let rows = window_sum(x, -2, window[0])?;
    window_sum(&rows, -1, window[1])
}

fn window_sum(x: &Tensor, dim: isize, k: usize) -> Result<Tensor> {
    let n = x.size(dim)?;
    if k == 0 || k > n {
        return Err(Error::invalid(
            "window_sum2d",
            format!("window {k} along dim {dim} of shape {:?}", x.shape()),
        ));
    }
    let out_len = n - k + 1;
    // `pow` holds sums over windows of length `plen`; `acc` covers `[i, i + offset)`.
    let (mut pow, mut plen) = (x.clone(), 1usize);
    let (mut acc, mut offset): (Option<Tensor>, usize) = (None, 0);
    let mut rem = k;
    loop {
        if rem & 1 == 1 {
            let part = pow.narrow(dim, offset, out_len)?;
            acc = Some(match acc {
                Some(a) => a.add(&part)?,
                None => part,
            });
            offset += plen;
        }
        rem >>= 1;
        if rem == 0 {
            break;
        }
        let len = pow.size(dim)? - plen;
        pow = pow.narrow(dim, 0, len)?.add(&pow.narrow(dim, plen, len)?)?;
        plen *= 2;
    }
    acc.ok_or_else(|| Error::invalid("window_sum2d", "empty window"))
}

/// Below this fraction of a patch's energy, what is left after centring is rounding
/// noise: such patches count as flat and score 0.
fn flat_fraction(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-6,
        DType::F64 => 1e-10,
    }
}

/// Normalized cross-correlation of `template` at every valid position of `image`.
///
/// `image` is `[H, W]` or `[C, H, W]`, `template` `[h, w]` or `[C, h, w]` of the same
/// rank; the result is `[H − h + 1, W − w + 1]`. Scores lie in `[−1, 1]`; flat patches
/// (zero norm, or zero spread when `zero_mean`) and flat templates score 0, never NaN.
pub fn normalized_cross_correlation(image: &Tensor, template: &Tensor, zero_mean: bool) -> Result<Tensor> {
    check_pair(image, template)?;
    let (th, tw) = (template.size(-2)?, template.size(-1)?);
    let (ho, wo) = (image.size(-2)? + 1 - th, image.size(-1)? + 1 - tw);
    let dtype = image.dtype();
    let n = template.numel() as f64;
    let rel = flat_fraction(dtype);

    // Norms in f64: centring by subtraction cancels most digits of near-flat data.
    let t64 = template.to_dtype(DType::F64)?;
    let t_energy = t64.square()?.sum_all()?.item()?;
    let t64 = if zero_mean { t64.sub(&t64.mean_all()?)? } else { t64 };
    let t_norm2 = t64.square()?.sum_all()?;
    let tn2 = t_norm2.item()?;
    if tn2.is_nan() || tn2 <= rel * t_energy || tn2.is_infinite() {
        return Ok(Tensor::zeros(&[ho, wo], dtype));
    }
    // A constant shift of the whole image leaves zero-mean scores unchanged, and
    // removing the global mean keeps the window sums small and accurate.
    let x = if zero_mean {
        image.sub(&image.mean_all()?)?
    } else {
        image.clone()
    };
    let num = slide(&x, &t64.to_dtype(dtype)?, ho, wo)?;

    let x64 = x.to_dtype(DType::F64)?;
    let channels = |s: Tensor| {
        if s.rank() == 3 {
            s.sum(&[0], false)
        } else {
            Ok(s)
        }
    };
    let s2 = channels(window_sum2d(&x64.square()?, [th, tw])?)?;
    let (spread, floor) = if zero_mean {
        let s1 = channels(window_sum2d(&x64, [th, tw])?)?;
        (s2.sub(&s1.square()?.div_scalar(n)?)?, s2.mul_scalar(rel)?.detach())
    } else {
        (s2.clone(), Tensor::zeros(&[ho, wo], DType::F64))
    };
    let keep = spread.gt(&floor)?;
    let den2 = spread.mul(&t_norm2)?.mul(&keep)?.add(&keep.rsub_scalar(1.0)?)?;
    let score = num.mul(&keep.to_dtype(dtype)?)?.div(&den2.sqrt()?.to_dtype(dtype)?)?;
    // Rounding can push a perfect match a hair past 1.
    score.clamp(Some(-1.0), Some(1.0))
}

fn check_pair(image: &Tensor, template: &Tensor) -> Result<()> {
    const OP: &str = "normalized_cross_correlation";
    if !(image.rank() == 2 || image.rank() == 3) || template.rank() != image.rank() {
        return Err(Error::shapes(
            OP,
            image.shape(),
            template.shape(),
            "need image [H, W] with template [h, w], or [C, H, W] with [C, h, w]",
        ));
    }
    if template.numel() == 0 {
        return Err(Error::shapes(OP, image.shape(), template.shape(), "empty template"));
    }
    if image.rank() == 3 && image.shape()[0] != template.shape()[0] {
        return Err(Error::shapes(
            OP,
            image.shape(),
            template.shape(),
            "channel counts differ",
        ));
    }
    let (h, w) = (image.size(-2)?, image.size(-1)?);
    let (th, tw) = (template.size(-2)?, template.size(-1)?);
    if th > h || tw > w {
        return Err(Error::shapes(
            OP,
            image.shape(),
            template.shape(),
            format!("template {th}×{tw} is larger than the image {h}×{w}"),
        ));
    }
    if image.dtype() != template.dtype() {
        return Err(Error::DTypeMismatch {
            op: OP,
            lhs: image.dtype(),
            rhs: template.dtype(),
        });
    }
    Ok(())
}

/// The `k` best positions of a score map `[H', W']`, best first. A position is skipped
/// when its `box_size = [h, w]` box overlaps a box already chosen, so one object is
/// reported once. NaN scores are never chosen.
pub fn best_matches(scores: &Tensor, k: usize, box_size: [usize; 2]) -> Result<Vec<Match>> {
    if scores.rank() != 2 {
        return Err(Error::invalid(
            "best_matches",
            format!("expected a score map [H, W], got shape {:?}", scores.shape()),
        ));
    }
    let (h, w) = (scores.shape()[0], scores.shape()[1]);
    let [bh, bw] = [box_size[0].max(1), box_size[1].max(1)];
    let mut v = scores.to_vec_f64();
    let mut out = Vec::with_capacity(k.min(v.len()));
    while out.len() < k {
        let best = v
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_nan())
            .fold(None, |b: Option<(usize, f64)>, (i, &s)| match b {
                Some((_, bs)) if bs >= s => b,
                _ => Some((i, s)),
            });
        let Some((i, score)) = best else { break };
        let (y, x) = (i / w, i % w);
        out.push(Match { x, y, score });
        for r in y.saturating_sub(bh - 1)..(y + bh).min(h) {
            for c in x.saturating_sub(bw - 1)..(x + bw).min(w) {
                v[r * w + c] = f64::NAN;
            }
        }
    }
    Ok(out)
}

/// Score map and the `top` best non-overlapping matches of `template` in `image`.
pub fn match_template(image: &Tensor, template: &Tensor, top: usize, zero_mean: bool) -> Result<(Tensor, Vec<Match>)> {
    let scores = normalized_cross_correlation(image, template, zero_mean)?;
    let found = best_matches(&scores, top, [template.size(-2)?, template.size(-1)?])?;
    Ok((scores, found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::gradcheck::gradcheck;
    use nabla_core::Generator;

    fn t(v: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape).unwrap()
    }

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
        }
    }

    /// The definition, position by position, in f64.
    fn naive(img: &[f64], h: usize, w: usize, tpl: &[f64], th: usize, tw: usize, zero_mean: bool) -> Vec<f64> {
        let n = (th * tw) as f64;
        let tm = if zero_mean { tpl.iter().sum::<f64>() / n } else { 0.0 };
        let tv: Vec<f64> = tpl.iter().map(|v| v - tm).collect();
        let mut out = vec![];
        for i in 0..=h - th {
            for j in 0..=w - tw {
                let p: Vec<f64> = (0..th * tw).map(|q| img[(i + q / tw) * w + j + q % tw]).collect();
                let pm = if zero_mean { p.iter().sum::<f64>() / n } else { 0.0 };
                let pv: Vec<f64> = p.iter().map(|v| v - pm).collect();
                let dot: f64 = pv.iter().zip(&tv).map(|(a, b)| a * b).sum();
                let norms = pv.iter().map(|v| v * v).sum::<f64>().sqrt() * tv.iter().map(|v| v * v).sum::<f64>().sqrt();
                out.push(dot / norms);
            }
        }
        out
    }

    #[rustfmt::skip]
    const X5: [f64; 25] = [
         1.0, -1.0, -1.0, -1.0,  1.0,
        -1.0,  1.0, -1.0,  1.0, -1.0,
        -1.0, -1.0,  1.0, -1.0, -1.0,
        -1.0,  1.0, -1.0,  1.0, -1.0,
         1.0, -1.0, -1.0, -1.0,  1.0,
    ];
    #[rustfmt::skip]
    const DIAG3: [f64; 9] = [
         1.0, -1.0, -1.0,
        -1.0,  1.0, -1.0,
        -1.0, -1.0,  1.0,
    ];

    #[test]
    fn x_pattern_scores_are_the_mean_of_products() {
        // With ±1 entries both norms are √9 = 3, so the score is Σ products / 9:
        // e.g. at (0, 1) the products are (−1,1,1 | −1,−1,−1 | 1,−1,−1), mean −1/3.
        let s = normalized_cross_correlation(&t(&X5, &[5, 5]), &t(&DIAG3, &[3, 3]), false).unwrap();
        assert_eq!(s.shape(), &[3, 3]);
        let third = 1.0 / 3.0;
        #[rustfmt::skip]
        let want = [
            1.0, -third, 1.0 / 9.0,
            -third, 5.0 / 9.0, -third,
            1.0 / 9.0, -third, 1.0,
        ];
        close(&s.to_vec_f64(), &want, 1e-12);
        // Both diagonal copies score 1, but their boxes overlap: only the first is kept.
        let best = best_matches(&s, 3, [3, 3]).unwrap();
        assert_eq!(best, vec![Match { x: 0, y: 0, score: 1.0 }]);
    }

    #[test]
    fn agrees_with_the_definition_on_random_data() {
        let img = Tensor::randn(&[9, 11], DType::F64, &mut Generator::new(8));
        let tpl = Tensor::randn(&[3, 4], DType::F64, &mut Generator::new(9));
        for zm in [false, true] {
            let got = normalized_cross_correlation(&img, &tpl, zm).unwrap();
            assert_eq!(got.shape(), &[7, 8]);
            let want = naive(&img.to_vec_f64(), 9, 11, &tpl.to_vec_f64(), 3, 4, zm);
            close(&got.to_vec_f64(), &want, 1e-10);
            assert!(got.to_vec_f64().iter().all(|v| (-1.0..=1.0).contains(v)));
            // Single precision follows closely.
            let g32 = normalized_cross_correlation(
                &img.to_dtype(DType::F32).unwrap(),
                &tpl.to_dtype(DType::F32).unwrap(),
                zm,
            )
            .unwrap();
            assert_eq!(g32.dtype(), DType::F32);
            close(&g32.to_vec_f64(), &want, 1e-5);
        }
    }

    #[test]
    fn zero_mean_ignores_brightness_and_contrast() {
        let tpl = t(&[0.1, 0.5, 0.9, 0.3], &[2, 2]);
        let mut img = vec![0.2; 16];
        // The template at (row 2, col 1) at half contrast plus an offset; a negative
        // copy at (0, 2).
        for (q, v) in tpl.to_vec_f64().iter().enumerate() {
            img[(2 + q / 2) * 4 + 1 + q % 2] = 0.5 * v + 3.0;
            img[(q / 2) * 4 + 2 + q % 2] = 1.0 - v;
        }
        let x = t(&img, &[4, 4]);
        let s = normalized_cross_correlation(&x, &tpl, true).unwrap().to_vec_f64();
        assert!((s[2 * 3 + 1] - 1.0).abs() < 1e-12);
        assert!((s[2] + 1.0).abs() < 1e-12);
        let (_, best) = match_template(&x, &tpl, 1, true).unwrap();
        assert_eq!((best[0].x, best[0].y), (1, 2));
        // Without centring, the offset copy is no longer a perfect match.
        let plain = normalized_cross_correlation(&x, &tpl, false).unwrap().to_vec_f64();
        assert!(plain[7] < 0.99);
    }

    #[test]
    fn flat_patches_and_templates_score_zero() {
        // Left half constant 5, right half zeros, one textured pixel far right.
        let mut img = vec![0.0; 24];
        for r in 0..4 {
            for c in 0..3 {
                img[r * 6 + c] = 5.0;
            }
        }
        img[6 * 2 + 5] = 1.0;
        let x = t(&img, &[4, 6]);
        let tpl = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        for zm in [false, true] {
            let s = normalized_cross_correlation(&x, &tpl, zm).unwrap().to_vec_f64();
            assert!(s.iter().all(|v| v.is_finite()));
            assert_eq!(s[3], 0.0, "all-zero patch, zero_mean={zm}");
            let f32s =
                normalized_cross_correlation(&x.to_dtype(DType::F32).unwrap(), &tpl.to_dtype(DType::F32).unwrap(), zm)
                    .unwrap();
            let f32s = f32s.to_vec_f64();
            assert!(f32s.iter().all(|v| v.is_finite()));
            assert_eq!(f32s[3], 0.0);
            if zm {
                // A constant patch has no spread left once centred.
                assert_eq!(s[0], 0.0);
                assert_eq!(f32s[0], 0.0);
            } else {
                // Uncentred, a constant patch is a fine vector: ⟨5·1, t⟩ / (‖5·1‖ ‖t‖) = 10 / (2√30).
                assert!((s[0] - 10.0 / (2.0 * 30f64.sqrt())).abs() < 1e-12);
            }
        }
        let flat_t = Tensor::full(&[2, 2], 0.7, DType::F32);
        let s = normalized_cross_correlation(&x.to_dtype(DType::F32).unwrap(), &flat_t, true).unwrap();
        assert!(s.to_vec_f64().iter().all(|&v| v == 0.0));
        let zero_t = Tensor::zeros(&[2, 2], DType::F64);
        assert!(normalized_cross_correlation(&x, &zero_t, false)
            .unwrap()
            .to_vec_f64()
            .iter()
            .all(|&v| v == 0.0));
    }

    #[test]
    fn non_maximum_suppression_finds_each_object_once() {
        // Two copies of a 2×2 blob; the next best positions are half on a blob.
        let mut img = vec![0.0; 8 * 8];
        for (r, c) in [(1, 1), (5, 4)] {
            img[r * 8 + c] = 1.0;
            img[r * 8 + c + 1] = 2.0;
            img[(r + 1) * 8 + c] = 3.0;
            img[(r + 1) * 8 + c + 1] = 4.0;
        }
        let tpl = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        let (s, best) = match_template(&t(&img, &[8, 8]), &tpl, 3, false).unwrap();
        assert_eq!(s.shape(), &[7, 7]);
        assert_eq!(best.len(), 3);
        assert_eq!((best[0].x, best[0].y), (1, 1));
        assert_eq!((best[1].x, best[1].y), (4, 5));
        assert!((best[0].score - 1.0).abs() < 1e-12 && (best[1].score - 1.0).abs() < 1e-12);
        // The third box must not overlap the first two.
        let b = best[2];
        for a in &best[..2] {
            assert!(b.x.abs_diff(a.x) >= 2 || b.y.abs_diff(a.y) >= 2, "{b:?} overlaps {a:?}");
        }
        assert!(b.score < 1.0);
        // Asking for more than fits returns what there is.
        assert!(best_matches(&s, 100, [2, 2]).unwrap().len() <= 49);
    }

    #[test]
    fn window_sums() {
        let x = Tensor::arange(0.0, 30.0, 1.0, DType::F64)
            .unwrap()
            .reshape([5, 6])
            .unwrap();
        let v = x.to_vec_f64();
        for (kh, kw) in [(1, 1), (2, 3), (5, 6), (3, 5), (4, 1)] {
            let s = window_sum2d(&x, [kh, kw]).unwrap();
            assert_eq!(s.shape(), &[6 - kh, 7 - kw]);
            let got = s.to_vec_f64();
            for i in 0..=5 - kh {
                for j in 0..=6 - kw {
                    let want: f64 = (0..kh)
                        .flat_map(|a| (0..kw).map(move |b| (a, b)))
                        .map(|(a, b)| v[(i + a) * 6 + j + b])
                        .sum();
                    assert_eq!(got[i * (7 - kw) + j], want, "{kh}x{kw} at ({i},{j})");
                }
            }
        }
        assert!(window_sum2d(&x, [6, 1]).is_err());
    }

    #[test]
    fn multi_channel_vectors_span_all_channels() {
        let img = Tensor::randn(&[2, 5, 6], DType::F64, &mut Generator::new(10));
        let tpl = img
            .narrow(1, 2, 2)
            .unwrap()
            .narrow(2, 3, 3)
            .unwrap()
            .contiguous()
            .unwrap();
        let (s, best) = match_template(&img, &tpl, 1, true).unwrap();
        assert_eq!(s.shape(), &[4, 4]);
        assert_eq!((best[0].x, best[0].y), (3, 2));
        assert!((best[0].score - 1.0).abs() < 1e-12);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let img = Tensor::zeros(&[4, 4], DType::F64);
        let big = Tensor::ones(&[5, 2], DType::F64);
        let e = normalized_cross_correlation(&img, &big, false).unwrap_err();
        assert!(e.to_string().contains("larger than the image"), "{e}");
        assert!(normalized_cross_correlation(&img, &Tensor::ones(&[2], DType::F64), false).is_err());
        assert!(normalized_cross_correlation(&img, &Tensor::ones(&[2, 2], DType::F32), false).is_err());
        assert!(normalized_cross_correlation(
            &Tensor::zeros(&[2, 4, 4], DType::F64),
            &Tensor::ones(&[3, 2, 2], DType::F64),
            false
        )
        .is_err());
        assert!(best_matches(&Tensor::zeros(&[4], DType::F64), 1, [1, 1]).is_err());
    }

    #[test]
    fn scores_are_differentiable() {
        let img = Tensor::randn(&[5, 6], DType::F64, &mut Generator::new(11));
        let tpl = Tensor::randn(&[2, 3], DType::F64, &mut Generator::new(12));
        for zm in [false, true] {
            gradcheck(
                |v| normalized_cross_correlation(&v[0], &v[1], zm),
                &[img.clone(), tpl.clone()],
            )
            .unwrap();
        }
    }
}
