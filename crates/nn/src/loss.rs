//! Loss functions with PyTorch's names and semantics, composed from core ops (so they need
//! no backward of their own): [`mse_loss`], [`l1_loss`], [`smooth_l1_loss`],
//! [`cross_entropy`], [`nll_loss`], [`binary_cross_entropy`] and
//! [`binary_cross_entropy_with_logits`]; [`cross_entropy_weighted`] (PyTorch's `weight=`);
//! the GAN objectives [`gan_loss`] and [`gradient_penalty`].
//!
//! ```
//! use nabla_core::Tensor;
//! use nabla_nn::loss::{cross_entropy, CrossEntropyOptions};
//! let logits = Tensor::from_vec(vec![2.0f32, 0.0, 0.0, 0.0, 0.0, 2.0], &[2, 3])?.set_requires_grad(true);
//! let loss = cross_entropy(&logits, &[0, 2], &CrossEntropyOptions::default())?;
//! // Each row: −log(e² / (e² + 2)).
//! let want = -(2f64.exp() / (2f64.exp() + 2.0)).ln();
//! assert!((loss.item()? - want).abs() < 1e-6);
//! let grads = loss.backward()?;
//! assert_eq!(grads.get(&logits).unwrap().shape(), &[2, 3]);
//! # Ok::<(), nabla_nn::Error>(())
//! ```
//!
//! Cross entropy of `[N, C]` logits with class indices (the training case) runs as core's
//! fused [`Tensor::log_softmax_nll`], one op forward and one backward instead of about ten.
//!
//! Inputs and targets must agree in shape and dtype (no silent broadcasting); class indices
//! out of range are errors naming the position. Everything stays finite for logits of size
//! 1e4: log-softmax subtracts the row maximum, and the logistic losses use softplus.

use crate::Result;
use nabla_core::{DType, Error as CoreError, Tensor};

/// How the per-element losses are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// Keep one loss per element (per sample for the classification losses).
    None,
    /// The mean (for `nll_loss`/`cross_entropy` with indices: over the targets not ignored).
    #[default]
    Mean,
    /// The sum.
    Sum,
}

fn reduce(loss: Tensor, reduction: Reduction) -> Result<Tensor> {
    Ok(match reduction {
        Reduction::None => loss,
        Reduction::Mean => loss.mean_all()?,
        Reduction::Sum => loss.sum_all()?,
    })
}

/// The input and the target must have one shape and one dtype.
fn same_kind(op: &'static str, input: &Tensor, target: &Tensor) -> Result<()> {
    if input.shape() != target.shape() {
        return Err(CoreError::shapes(op, input.shape(), target.shape(), "input vs target; no broadcasting").into());
    }
    if input.dtype() != target.dtype() {
        let (lhs, rhs) = (input.dtype(), target.dtype());
        return Err(CoreError::DTypeMismatch { op, lhs, rhs }.into());
    }
    Ok(())
}

fn constant(v: f64, dtype: DType) -> Tensor {
    Tensor::full(&[], v, dtype)
}

/// Mean squared error, `(input − target)²` reduced.
pub fn mse_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_kind("mse_loss", input, target)?;
    // Summed in one op (the values and gradients of the composition, one pass each way).
    match reduction {
        Reduction::None => Ok(input.sub(target)?.square()?),
        Reduction::Sum => Ok(input.squared_error(target)?),
        Reduction::Mean => Ok(input.squared_error(target)?.mul_scalar(1.0 / input.numel() as f64)?),
    }
}

/// Mean absolute error, `|input − target|` reduced (gradient 0 where they are equal).
pub fn l1_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_kind("l1_loss", input, target)?;
    reduce(input.sub(target)?.abs()?, reduction)
}

/// Huber-like loss: `0.5·d²/beta` where `|d| < beta`, else `|d| − 0.5·beta`, with
/// `d = input − target`; `beta` 0 is the L1 loss.
pub fn smooth_l1_loss(input: &Tensor, target: &Tensor, beta: f64, reduction: Reduction) -> Result<Tensor> {
    const OP: &str = "smooth_l1_loss";
    same_kind(OP, input, target)?;
    if beta.is_nan() || beta < 0.0 {
        return Err(CoreError::invalid(OP, format!("beta must be ≥ 0, got {beta}")).into());
    }
    if beta == 0.0 {
        return l1_loss(input, target, reduction);
    }
    let d = input.sub(target)?;
    let a = d.abs()?;
    let inside = a.detach().lt(&constant(beta, d.dtype()))?;
    let quad = d.square()?.mul_scalar(0.5 / beta)?;
    let lin = a.sub_scalar(0.5 * beta)?;
    reduce(Tensor::where_cond(&inside, &quad, &lin)?, reduction)
}

/// The classes of [`cross_entropy`]'s target: indices, or probabilities per class.
#[derive(Clone, Copy, Debug)]
pub enum CrossEntropyTarget<'a> {
    /// One class index per sample (shape of the input without its class dim).
    Indices(&'a [usize]),
    /// A distribution over the classes, the input's shape.
    Probs(&'a Tensor),
}

impl<'a> From<&'a [usize]> for CrossEntropyTarget<'a> {
    fn from(v: &'a [usize]) -> Self {
        CrossEntropyTarget::Indices(v)
    }
}

impl<'a, const N: usize> From<&'a [usize; N]> for CrossEntropyTarget<'a> {
    fn from(v: &'a [usize; N]) -> Self {
        CrossEntropyTarget::Indices(v)
    }
}

impl<'a> From<&'a Vec<usize>> for CrossEntropyTarget<'a> {
    fn from(v: &'a Vec<usize>) -> Self {
        CrossEntropyTarget::Indices(v)
    }
}

impl<'a> From<&'a Tensor> for CrossEntropyTarget<'a> {
    fn from(t: &'a Tensor) -> Self {
        CrossEntropyTarget::Probs(t)
    }
}

/// Settings of [`cross_entropy`]; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CrossEntropyOptions {
    /// How the per-sample losses are combined (default mean).
    pub reduction: Reduction,
    /// Mix ε of the uniform distribution into the target, in [0, 1] (default 0).
    pub label_smoothing: f64,
    /// A class index whose samples count for nothing (index targets only).
    pub ignore_index: Option<usize>,
}

/// Where the class dim is and how many samples the input holds.
struct Layout {
    classes: usize,
    /// Shape of the per-sample loss: the input's without dim 1 (`[]` for an unbatched `[C]`).
    sample_shape: Vec<usize>,
    /// The input seen as `[N, C, ...]`.
    batched: Tensor,
}

fn class_layout(op: &'static str, input: &Tensor) -> Result<Layout> {
    match input.rank() {
        0 => Err(CoreError::invalid(op, "input must be [C], [N, C] or [N, C, d1, ...], got a 0-d tensor").into()),
        1 => Ok(Layout {
            classes: input.shape()[0],
            sample_shape: vec![],
            batched: input.unsqueeze(0)?,
        }),
        _ => {
            let mut sample_shape = input.shape().to_vec();
            let classes = sample_shape.remove(1);
            Ok(Layout {
                classes,
                sample_shape,
                batched: input.clone(),
            })
        }
    }
}

/// The per-sample negative log-likelihood of the target classes of `logp` (`[N, C, ...]`),
/// 0 at ignored samples, and the number of samples not ignored.
fn picked_nll(
    op: &'static str,
    l: &Layout,
    logp: &Tensor,
    target: &[usize],
    ignore: Option<usize>,
) -> Result<(Tensor, usize)> {
    let n: usize = l.sample_shape.iter().product();
    if target.len() != n {
        return Err(CoreError::invalid(
            op,
            format!(
                "{} class indices for {} samples (input shape {:?}, classes in dim 1, targets {:?})",
                target.len(),
                n,
                l.batched.shape(),
                l.sample_shape
            ),
        )
        .into());
    }
    let mut keep = Vec::with_capacity(n);
    let mut index = Vec::with_capacity(n);
    for (pos, &t) in target.iter().enumerate() {
        if Some(t) == ignore {
            keep.push(0.0);
            index.push(0);
        } else if t >= l.classes {
            return Err(CoreError::invalid(
                op,
                format!("target {t} at position {pos} is out of range for {} classes", l.classes),
            )
            .into());
        } else {
            keep.push(1.0);
            index.push(t);
        }
    }
    let count = keep.iter().filter(|&&k| k != 0.0).count();
    let mut index_shape = l.batched.shape().to_vec();
    index_shape[1] = 1;
    let picked = logp
        .gather(1, &index, &index_shape)?
        .squeeze(1)?
        .reshape(&l.sample_shape)?;
    let nll = picked.neg()?;
    if count == n {
        return Ok((nll, count));
    }
    let mask = Tensor::from_vec(keep, &l.sample_shape)?.to_dtype(logp.dtype())?;
    Ok((nll.mul(&mask)?, count))
}

/// Mean over the samples not ignored (NaN when all are ignored, as PyTorch), or the sum.
fn reduce_counted(loss: Tensor, count: usize, reduction: Reduction) -> Result<Tensor> {
    match reduction {
        Reduction::Mean => Ok(loss.sum_all()?.div_scalar(count as f64)?),
        r => reduce(loss, r),
    }
}

/// Cross entropy between `input` logits (`[C]`, `[N, C]` or `[N, C, d1, ...]`, classes in
/// dim 1) and class indices or class probabilities, with label smoothing and an ignored
/// class. The log-softmax subtracts the maximum, so large logits stay finite.
pub fn cross_entropy<'a>(
    input: &Tensor,
    target: impl Into<CrossEntropyTarget<'a>>,
    opts: &CrossEntropyOptions,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy";
    let eps = opts.label_smoothing;
    if !(0.0..=1.0).contains(&eps) {
        return Err(CoreError::invalid(OP, format!("label_smoothing must be in [0, 1], got {eps}")).into());
    }
    let l = class_layout(OP, input)?;
    let target = target.into();
    if let (CrossEntropyTarget::Indices(t), 0.0, 2) = (target, eps, l.batched.rank()) {
        return fused_cross_entropy(&l, t, opts);
    }
    let logp = l.batched.log_softmax(1)?;
    let c = l.classes as f64;
    match target {
        CrossEntropyTarget::Indices(t) => {
            let (nll, count) = picked_nll(OP, &l, &logp, t, opts.ignore_index)?;
            let nll = reduce_counted(nll, count, opts.reduction)?;
            if eps == 0.0 {
                return Ok(nll);
            }
            // PyTorch: (1 − ε)·nll + ε/C · Σ_c −log p_c, ignored samples counting 0.
            let mut smooth = logp.sum(&[1], false)?.neg()?.reshape(&l.sample_shape)?;
            if count != t.len() {
                let keep: Vec<f64> = t
                    .iter()
                    .map(|&i| if Some(i) == opts.ignore_index { 0.0 } else { 1.0 })
                    .collect();
                smooth = smooth.mul(&Tensor::from_vec(keep, &l.sample_shape)?.to_dtype(input.dtype())?)?;
            }
            let smooth = reduce_counted(smooth, count, opts.reduction)?;
            Ok(nll.mul_scalar(1.0 - eps)?.add(&smooth.mul_scalar(eps / c)?)?)
        }
        CrossEntropyTarget::Probs(p) => {
            same_kind(OP, input, p)?;
            if opts.ignore_index.is_some() {
                return Err(CoreError::invalid(OP, "ignore_index needs class-index targets, not probabilities").into());
            }
            let p = if l.sample_shape.is_empty() {
                p.unsqueeze(0)?
            } else {
                p.clone()
            };
            let p = if eps == 0.0 {
                p
            } else {
                p.mul_scalar(1.0 - eps)?.add_scalar(eps / c)?
            };
            let loss = p.mul(&logp)?.sum(&[1], false)?.neg()?.reshape(&l.sample_shape)?;
            reduce(loss, opts.reduction)
        }
    }
}

/// Cross entropy of `[N, C]` logits (or an unbatched `[C]`) with class indices and no label
/// smoothing, the training case, as core's fused log-softmax + NLL: one op each way.
fn fused_cross_entropy(l: &Layout, target: &[usize], opts: &CrossEntropyOptions) -> Result<Tensor> {
    const OP: &str = "cross_entropy";
    let n = l.batched.shape()[0];
    if target.len() != n {
        return Err(CoreError::invalid(
            OP,
            format!(
                "{} class indices for {n} samples (input shape {:?}, classes in dim 1, targets {:?})",
                target.len(),
                l.batched.shape(),
                l.sample_shape
            ),
        )
        .into());
    }
    let ignore = opts.ignore_index;
    let scale = match opts.reduction {
        Reduction::None => None,
        Reduction::Sum => Some(1.0),
        // Over the samples not ignored: NaN when all are (1/0 · 0), as PyTorch.
        Reduction::Mean => Some(1.0 / target.iter().filter(|&&t| Some(t) != ignore).count() as f64),
    };
    let loss = l.batched.log_softmax_nll(target, ignore, scale).map_err(|e| match e {
        // Name the public op in range errors, as the composed path does.
        CoreError::Invalid { msg, .. } => CoreError::invalid(OP, msg),
        e => e,
    })?;
    Ok(match scale {
        None => loss.reshape(&l.sample_shape)?,
        Some(_) => loss,
    })
}

/// Negative log-likelihood of class indices under `input` log-probabilities (`[C]`,
/// `[N, C]` or `[N, C, d1, ...]`, classes in dim 1); `ignore_index` samples count for nothing.
pub fn nll_loss(input: &Tensor, target: &[usize], reduction: Reduction, ignore_index: Option<usize>) -> Result<Tensor> {
    const OP: &str = "nll_loss";
    let l = class_layout(OP, input)?;
    let (nll, count) = picked_nll(OP, &l, &l.batched, target, ignore_index)?;
    reduce_counted(nll, count, reduction)
}

/// Binary cross entropy of probabilities `input` (each in [0, 1]) against `target`:
/// `−(t·log x + (1 − t)·log(1 − x))`, each log clamped at −100 as PyTorch does, so the
/// loss stays finite at 0 and 1 (where the clamped log passes no gradient).
pub fn binary_cross_entropy(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    const OP: &str = "binary_cross_entropy";
    same_kind(OP, input, target)?;
    if let Some((i, v)) = input
        .to_vec_f64()
        .iter()
        .enumerate()
        .find(|(_, v)| !(0.0..=1.0).contains(*v))
    {
        return Err(CoreError::invalid(
            OP,
            format!(
                "input (shape {:?}) must hold probabilities in [0, 1]; element {i} is {v}",
                input.shape()
            ),
        )
        .into());
    }
    let lx = clamped_log(input)?;
    let l1x = clamped_log(&input.rsub_scalar(1.0)?)?;
    // −(t·log x + (1 − t)·log(1 − x)) = −(l1x + t·(lx − l1x))
    let loss = l1x.add(&target.mul(&lx.sub(&l1x)?)?)?.neg()?;
    reduce(loss, reduction)
}

/// `max(log x, −100)` whose gradient is 1/x above the clamp and 0 (not NaN) below it.
fn clamped_log(x: &Tensor) -> Result<Tensor> {
    let dt = x.dtype();
    let floor = constant(-100.0, dt);
    let above = x.detach().log()?.gt(&floor)?;
    // Take the log of 1 where it would be clamped, so no infinite slope meets a zero gradient.
    let safe = Tensor::where_cond(&above, x, &constant(1.0, dt))?;
    Ok(Tensor::where_cond(&above, &safe.log()?, &floor)?)
}

/// Binary cross entropy of `input` logits against `target`, as
/// `softplus(x) − x·t` = `max(x, 0) − x·t + log(1 + e^−|x|)`: finite for any logit, with
/// gradient `sigmoid(x) − t` everywhere (including x = 0).
pub fn binary_cross_entropy_with_logits(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_kind("binary_cross_entropy_with_logits", input, target)?;
    let loss = input.softplus()?.sub(&input.mul(target)?)?;
    reduce(loss, reduction)
}

mod gan;
mod weighted;
pub use gan::{gan_loss, gradient_penalty, GanLoss, Player};
pub use weighted::{cross_entropy_weighted, inverse_frequency_weights};

#[cfg(test)]
mod tests;
