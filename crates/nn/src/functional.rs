//! Stateless forms of the layers composed from core ops (PyTorch's `torch.nn.functional`):
//! the layers call these, and they are differentiable like any composition of core ops.
//!
//! ```
//! use nabla_core::Tensor;
//! use nabla_nn::functional as F;
//! let x = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2])?;
//! let w = Tensor::from_vec(vec![1.0f32, 1.0, 0.5, -1.0], &[2, 2])?;
//! let y = F::linear(&x, &w, None)?;
//! assert_eq!(y.to_vec::<f32>()?, vec![3.0, -1.5]);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::{Error, Result};
use nabla_core::{Activation, Generator, Tensor};

/// `x · weightᵀ + bias` over the last dim of `x` (`[.., in]` with weight `[out, in]`).
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    Ok(x.linear(weight, bias)?)
}

/// The running statistics of batch norm, updated in place in training.
pub struct RunningStats<'a> {
    /// Per-channel mean, `[C]`.
    pub mean: &'a Tensor,
    /// Per-channel (unbiased) variance, `[C]`.
    pub var: &'a Tensor,
    /// Weight of the new batch: `running = (1 − momentum)·running + momentum·batch`.
    pub momentum: f64,
}

/// Batch normalization over every dim but 1 of `x` (`[N, C]`, `[N, C, L]`, `[N, C, H, W]`).
///
/// Training normalizes with the batch mean and biased variance and, if `running` is given,
/// moves the running mean and the running *unbiased* variance towards the batch's (no
/// gradient flows into them). Evaluation normalizes with `running`. `weight` and `bias`
/// (`[C]`) scale and shift the result.
pub fn batch_norm(
    x: &Tensor,
    running: Option<RunningStats<'_>>,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    training: bool,
    eps: f64,
) -> Result<Tensor> {
    batch_norm_then(x, running, weight, bias, training, eps, Activation::Identity)
}

/// [`batch_norm`] followed by `act`: in training one op (core's `batch_norm_train_act`),
/// in evaluation the activation after the normalization.
pub(crate) fn batch_norm_then(
    x: &Tensor,
    running: Option<RunningStats<'_>>,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    training: bool,
    eps: f64,
    act: Activation,
) -> Result<Tensor> {
    if x.rank() < 2 {
        return Err(invalid(
            "batch_norm",
            format!("expects [N, C, ...] input, got shape {:?}", x.shape()),
        ));
    }
    let c = x.shape()[1];
    // Statistics broadcast as [1, C, 1, ...].
    let mut stat_shape = vec![1usize; x.rank()];
    stat_shape[1] = c;
    // Values per channel: N times the spatial size (so [N, 0, ...] is not "too few").
    let per_channel: usize = x.shape()[0] * x.shape()[2..].iter().product::<usize>();
    for (what, t) in [("weight", weight), ("bias", bias)]
        .into_iter()
        .chain([("running_mean", running.as_ref().map(|r| r.mean))])
        .chain([("running_var", running.as_ref().map(|r| r.var))])
    {
        if let Some(t) = t {
            if t.shape() != [c] {
                return Err(Error::from(nabla_core::Error::shapes(
                    "batch_norm",
                    x.shape(),
                    t.shape(),
                    format!("{what} must have one value per channel ({c})"),
                )));
            }
        }
    }
    if training {
        // One op for statistics, output and gradients (core's `batch_norm_train`); without
        // an affine part the weight and bias are constants that take no gradient.
        let (ones, zeros);
        let w = match weight {
            Some(w) => w,
            None => {
                ones = Tensor::ones(&[c], x.dtype());
                &ones
            }
        };
        let b = match bias {
            Some(b) => b,
            None => {
                zeros = Tensor::zeros(&[c], x.dtype());
                &zeros
            }
        };
        // Core rejects fewer than 2 values per channel, so the correction is finite.
        let (y, mean, var) = x.batch_norm_train_act(w, b, eps, act)?;
        if let Some(r) = &running {
            let _g = nabla_core::no_grad();
            let m = r.momentum;
            let bessel = per_channel as f64 / (per_channel - 1) as f64;
            let new_mean = r.mean.mul_scalar(1.0 - m)?.add(&mean.mul_scalar(m)?)?;
            let new_var = r.var.mul_scalar(1.0 - m)?.add(&var.mul_scalar(bessel * m)?)?;
            r.mean.assign(&new_mean)?;
            r.var.assign(&new_var)?;
        }
        return Ok(y);
    }
    let r = running.ok_or_else(|| invalid("batch_norm", "evaluation needs running statistics"))?;
    let (centred, var) = (x.sub(&r.mean.reshape(&stat_shape)?)?, r.var.reshape(&stat_shape)?);
    // The weight joins the per-channel scale, so the full-size tensor sees one product.
    let mut scale = var.add_scalar(eps)?.powf(-0.5)?;
    if let Some(w) = weight {
        scale = scale.mul(&w.reshape(&stat_shape)?)?;
    }
    let mut y = centred.mul(&scale)?;
    if let Some(b) = bias {
        y = y.add(&b.reshape(&stat_shape)?)?;
    }
    Ok(y.activation(act)?)
}

/// Local response normalization across channels (AlexNet), PyTorch's formula:
/// `x_c / (k + alpha/size · Σ x_{c'}²)^beta`, the sum over channels
/// `c − size/2 ..= c + (size−1)/2`, zero beyond the edges. `x` is `[N, C, ...]`.
pub fn local_response_norm(x: &Tensor, size: usize, alpha: f64, beta: f64, k: f64) -> Result<Tensor> {
    if x.rank() < 3 {
        return Err(invalid(
            "local_response_norm",
            format!("expects an input of 3 or more dims, got shape {:?}", x.shape()),
        ));
    }
    if size == 0 {
        return Err(invalid("local_response_norm", "size must be at least 1"));
    }
    let c = x.shape()[1];
    // The window sum is a product with a band matrix over channels: band[c', c] = 1 when
    // channel c' lies in channel c's window. It keeps the op a composition of core ops.
    let (before, after) = ((size / 2) as isize, ((size - 1) / 2) as isize);
    let band: Vec<f64> = (0..c as isize)
        .flat_map(|src| (0..c as isize).map(move |dst| f64::from(u8::from(src >= dst - before && src <= dst + after))))
        .collect();
    let band = Tensor::from_vec(band, &[c, c])?.to_dtype(x.dtype())?;
    let last = x.rank() as isize - 1;
    let sq = x.square()?.transpose(1, last)?;
    let window = sq.matmul(&band)?.transpose(1, last)?;
    let div = window.mul_scalar(alpha / size as f64)?.add_scalar(k)?.powf(beta)?;
    Ok(x.div(&div)?)
}

/// Inverted dropout: in training, zero each element with probability `p` and scale the rest
/// by 1/(1 − p); otherwise the identity.
pub fn dropout(x: &Tensor, p: f64, training: bool, g: &mut Generator) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::Config(format!("dropout probability {p} is outside [0, 1]")));
    }
    if !training || p == 0.0 {
        return Ok(x.clone());
    }
    if p == 1.0 {
        return Ok(x.mul_scalar(0.0)?);
    }
    let keep = Tensor::bernoulli(x.shape(), 1.0 - p, x.dtype(), g)?;
    Ok(x.mul(&keep.mul_scalar(1.0 / (1.0 - p))?)?)
}

fn invalid(op: &'static str, msg: impl Into<String>) -> Error {
    nabla_core::Error::invalid(op, msg).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::DType;

    #[test]
    fn lrn_matches_a_direct_sum() {
        let mut g = Generator::new(2);
        let x = Tensor::randn(&[2, 6, 3], DType::F64, &mut g);
        let (size, alpha, beta, k) = (3usize, 0.3, 0.75, 1.5);
        let y = local_response_norm(&x, size, alpha, beta, k).unwrap().to_vec_f64();
        let v = x.to_vec_f64();
        for n in 0..2 {
            for c in 0..6usize {
                for l in 0..3 {
                    let lo = c.saturating_sub(size / 2);
                    let hi = (c + (size - 1) / 2).min(5);
                    let s: f64 = (lo..=hi).map(|cc| v[(n * 6 + cc) * 3 + l].powi(2)).sum();
                    let want = v[(n * 6 + c) * 3 + l] / (k + alpha / size as f64 * s).powf(beta);
                    assert!((y[(n * 6 + c) * 3 + l] - want).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn dropout_keeps_the_mean_and_is_seeded() {
        let x = Tensor::ones(&[10_000], DType::F64);
        let a = dropout(&x, 0.3, true, &mut Generator::new(1)).unwrap().to_vec_f64();
        let b = dropout(&x, 0.3, true, &mut Generator::new(1)).unwrap().to_vec_f64();
        assert_eq!(a, b);
        let zeros = a.iter().filter(|&&v| v == 0.0).count() as f64 / 1e4;
        assert!((zeros - 0.3).abs() < 0.02, "{zeros}");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-12));
        assert_eq!(
            dropout(&x, 0.3, false, &mut Generator::new(1)).unwrap().to_vec_f64(),
            x.to_vec_f64()
        );
        assert!(dropout(&x, 1.5, true, &mut Generator::new(1)).is_err());
    }
}
