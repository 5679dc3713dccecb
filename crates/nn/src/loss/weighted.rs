//! Cross entropy with a weight per class (PyTorch's `cross_entropy(..., weight=w)`), for
//! data where one class dominates, such as the background of segmentation masks.

use super::{class_layout, CrossEntropyOptions, Reduction};
use crate::Result;
use nabla_core::{Error as CoreError, Tensor};

/// Cross entropy of `input` logits (`[C]`, `[N, C]` or `[N, C, d1, ...]`, classes in dim 1)
/// against class indices, each sample's loss scaled by `weight[target]` (`weight`: `[C]`,
/// a constant: no gradient flows to it). As PyTorch: the mean divides by the sum of the
/// weights of the targets not ignored (NaN when that sum is 0), the sum adds the weighted
/// losses, and `Reduction::None` keeps one weighted loss per sample (0 where ignored).
/// Label smoothing is refused here.
pub fn cross_entropy_weighted(
    input: &Tensor,
    target: &[usize],
    weight: &Tensor,
    opts: &CrossEntropyOptions,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy_weighted";
    if opts.label_smoothing != 0.0 {
        return Err(CoreError::invalid(OP, "label smoothing with class weights is not supported").into());
    }
    let l = class_layout(OP, input)?;
    if weight.shape() != [l.classes] {
        return Err(CoreError::invalid(
            OP,
            format!(
                "weight must be [{}] (one per class), got shape {:?}",
                l.classes,
                weight.shape()
            ),
        )
        .into());
    }
    let w = weight.to_vec_f64();
    if let Some((c, v)) = w.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
        return Err(CoreError::invalid(OP, format!("weight {c} is {v}; weights must be finite and ≥ 0")).into());
    }
    let n: usize = l.sample_shape.iter().product();
    if target.len() != n {
        return Err(CoreError::invalid(
            OP,
            format!(
                "{} class indices for {n} samples (input shape {:?}, classes in dim 1)",
                target.len(),
                l.batched.shape()
            ),
        )
        .into());
    }
    // Core's fused log-softmax + NLL reads `[N, C, d...]` in place (classes in dim 1), each
    // sample's loss bitwise the one of its row after a permute, without that copy.
    let nll = l
        .batched
        .log_softmax_nll(target, opts.ignore_index, None)
        .map_err(|e| match e {
            CoreError::Invalid { msg, .. } => CoreError::invalid(OP, msg),
            e => e,
        })?;
    let per: Vec<f64> = target
        .iter()
        .map(|&t| if Some(t) == opts.ignore_index { 0.0 } else { w[t] })
        .collect();
    let total: f64 = per.iter().sum();
    let scaled = nll
        .reshape([n])?
        .mul(&Tensor::from_vec(per, &[n])?.to_dtype(input.dtype())?)?;
    Ok(match opts.reduction {
        Reduction::None => scaled.reshape(&l.sample_shape)?,
        Reduction::Sum => scaled.sum_all()?,
        // 0/0 is NaN when every target is ignored or weighs 0, as PyTorch.
        Reduction::Mean => scaled.sum_all()?.div_scalar(total)?,
    })
}

/// Inverse-frequency class weights from per-class counts: `total / (C · count_c)`, so a
/// class of average frequency weighs 1; a class never seen weighs 0 (it cannot be a target).
pub fn inverse_frequency_weights(counts: &[u64]) -> Vec<f32> {
    let total: u64 = counts.iter().sum();
    let c = counts.len() as f64;
    counts
        .iter()
        .map(|&k| {
            if k == 0 {
                0.0
            } else {
                (total as f64 / (c * k as f64)) as f32
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::cross_entropy;
    use nabla_core::gradcheck::gradcheck;
    use nabla_core::{DType, Generator};

    fn t64(v: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_slice(v, shape).unwrap()
    }

    #[test]
    fn weighted_mean_divides_by_the_counted_weights() {
        let x = [1.0, 2.0, 0.5, -1.0, 0.0, 3.0, 0.2, 0.1, -0.4];
        let logits = t64(&x, &[3, 3]);
        let lse = |r: &[f64]| r.iter().map(|v| v.exp()).sum::<f64>().ln();
        let nll = |i: usize, t: usize| lse(&x[3 * i..3 * i + 3]) - x[3 * i + t];
        let w = t64(&[0.5, 2.0, 3.0], &[3]);
        let t = [1, 2, 0];
        let got = cross_entropy_weighted(&logits, &t, &w, &CrossEntropyOptions::default()).unwrap();
        let want = (2.0 * nll(0, 1) + 3.0 * nll(1, 2) + 0.5 * nll(2, 0)) / 5.5;
        assert!(
            (got.item().unwrap() - want).abs() < 1e-12,
            "{} vs {want}",
            got.item().unwrap()
        );
        // Ignoring class 2: sample 1 leaves both sums.
        let o = CrossEntropyOptions {
            ignore_index: Some(2),
            ..Default::default()
        };
        let got = cross_entropy_weighted(&logits, &t, &w, &o).unwrap().item().unwrap();
        assert!((got - (2.0 * nll(0, 1) + 0.5 * nll(2, 0)) / 2.5).abs() < 1e-12);
        let o = CrossEntropyOptions {
            reduction: Reduction::Sum,
            ..Default::default()
        };
        let got = cross_entropy_weighted(&logits, &t, &w, &o).unwrap().item().unwrap();
        assert!((got - (2.0 * nll(0, 1) + 3.0 * nll(1, 2) + 0.5 * nll(2, 0))).abs() < 1e-12);
    }

    #[test]
    fn unit_weights_match_plain_cross_entropy_on_maps() {
        let x = Tensor::randn(&[2, 4, 3, 5], DType::F64, &mut Generator::new(3));
        let t: Vec<usize> = (0..30).map(|i| (i * 7) % 4).collect();
        let ones = Tensor::ones(&[4], DType::F64);
        let o = CrossEntropyOptions {
            ignore_index: Some(3),
            ..Default::default()
        };
        let a = cross_entropy_weighted(&x, &t, &ones, &o).unwrap().item().unwrap();
        let b = cross_entropy(&x, &t, &o).unwrap().item().unwrap();
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        let none = CrossEntropyOptions {
            reduction: Reduction::None,
            ..Default::default()
        };
        let per = cross_entropy_weighted(&x, &t, &ones, &none).unwrap();
        assert_eq!(per.shape(), &[2, 3, 5]);
        let plain = cross_entropy(&x, &t, &none).unwrap().to_vec_f64();
        for (a, b) in per.to_vec_f64().iter().zip(&plain) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn gradcheck_on_maps_with_ignored_pixels() {
        let x = Tensor::randn(&[2, 3, 2, 3], DType::F64, &mut Generator::new(5));
        let t = [0, 1, 2, 2, 1, 0, 2, 2, 0, 1, 1, 0];
        let w = t64(&[0.2, 1.5, 4.0], &[3]);
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            let o = CrossEntropyOptions {
                reduction,
                ignore_index: Some(1),
                ..Default::default()
            };
            gradcheck(
                |v| Ok(cross_entropy_weighted(&v[0], &t, &w, &o).unwrap()),
                std::slice::from_ref(&x),
            )
            .unwrap();
        }
    }

    #[test]
    fn bad_weights_are_refused() {
        let x = Tensor::zeros(&[2, 3], DType::F32);
        let o = CrossEntropyOptions::default();
        let e = cross_entropy_weighted(&x, &[0, 1], &Tensor::ones(&[2], DType::F32), &o).unwrap_err();
        assert!(e.to_string().contains("weight must be [3]"), "{e}");
        let neg = Tensor::from_vec(vec![1.0f32, -1.0, 1.0], &[3]).unwrap();
        let e = cross_entropy_weighted(&x, &[0, 1], &neg, &o).unwrap_err();
        assert!(e.to_string().contains("weight 1 is -1"), "{e}");
        let e = cross_entropy_weighted(&x, &[0, 3], &Tensor::ones(&[3], DType::F32), &o).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }

    #[test]
    fn inverse_frequency_by_hand() {
        let w = inverse_frequency_weights(&[60, 20, 20, 0]);
        let want = [100.0 / 240.0, 1.25, 1.25, 0.0];
        assert!(w.iter().zip(want).all(|(a, b)| (*a as f64 - b).abs() < 1e-6), "{w:?}");
    }
}
