//! Batch normalization over the channel dim: BatchNorm1d (`[N, C]`, `[N, C, L]`) and
//! BatchNorm2d (`[N, C, H, W]`), with PyTorch's parameters and buffers.

use crate::functional::{self, RunningStats};
use crate::module::{Children, Mode, Module, Param};
use crate::Result;
use nabla_core::{Activation, DType, Tensor};
use std::cell::RefCell;
use std::rc::Rc;

/// Training-mode batch norm computed elsewhere (synchronized over processes): from the
/// input, weight, bias (`[C]`) and eps, the output, the batch mean and biased variance
/// (`[C]`, detached) and the number of values per channel they were taken over.
pub type BatchNormTrainHook = dyn Fn(&Tensor, &Tensor, &Tensor, f64) -> Result<(Tensor, Tensor, Tensor, usize)>;

thread_local! {
    static TRAIN_HOOK: RefCell<Option<Rc<BatchNormTrainHook>>> = const { RefCell::new(None) };
}

/// Make every batch-norm layer on this thread compute its training-mode statistics with
/// `hook` (SyncBatchNorm; `None`, the default: each layer's own batch). Evaluation never
/// uses it.
pub fn set_batch_norm_train_hook(hook: Option<Rc<BatchNormTrainHook>>) {
    TRAIN_HOOK.with(|h| *h.borrow_mut() = hook);
}

/// Settings of a batch-norm layer (PyTorch's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormOptions {
    /// Added to the variance before the square root (default 1e-5).
    pub eps: f64,
    /// Weight of each new batch in the running statistics (default 0.1); `None` keeps a
    /// cumulative average over all batches seen.
    pub momentum: Option<f64>,
    /// Whether the layer has a learned `weight` and `bias` (default true).
    pub affine: bool,
    /// Whether the layer keeps running statistics for evaluation (default true); without
    /// them, evaluation normalizes with batch statistics too.
    pub track_running_stats: bool,
    /// Element type of the weight, bias and running statistics made by
    /// [`BatchNorm::with_options`] (default f32; `from_parts` keeps the given tensors').
    pub dtype: DType,
}

impl Default for BatchNormOptions {
    fn default() -> Self {
        BatchNormOptions {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
            dtype: DType::F32,
        }
    }
}

/// Batch normalization for `D`-dimensional samples; use [`BatchNorm1d`] or [`BatchNorm2d`].
///
/// Training normalizes each channel with the batch mean and biased variance, then moves
/// `running_mean` and `running_var` towards the batch mean and unbiased variance; evaluation
/// normalizes with the running statistics. State-dict names: `weight`, `bias`,
/// `running_mean`, `running_var`, `num_batches_tracked`.
#[derive(Debug)]
pub struct BatchNorm<const D: usize> {
    /// Per-channel scale `[C]` (1 at start), if affine.
    pub weight: Option<Param>,
    /// Per-channel shift `[C]` (0 at start), if affine.
    pub bias: Option<Param>,
    /// Running mean `[C]` (0 at start), if tracked.
    pub running_mean: Option<Param>,
    /// Running unbiased variance `[C]` (1 at start), if tracked.
    pub running_var: Option<Param>,
    /// Number of training batches seen, if tracked.
    pub num_batches_tracked: Option<Param>,
    num_features: usize,
    opts: BatchNormOptions,
}

/// Batch norm over `[N, C]` or `[N, C, L]`.
pub type BatchNorm1d = BatchNorm<1>;
/// Batch norm over `[N, C, H, W]`.
pub type BatchNorm2d = BatchNorm<2>;

impl<const D: usize> BatchNorm<D> {
    /// A layer with PyTorch's defaults (eps 1e-5, momentum 0.1, affine, tracking), f32.
    pub fn new(num_features: usize) -> Self {
        Self::with_options(num_features, BatchNormOptions::default())
    }

    /// A layer with the given options (dtype included).
    pub fn with_options(num_features: usize, opts: BatchNormOptions) -> Self {
        let (c, dt) = ([num_features], opts.dtype);
        let running = opts.track_running_stats;
        BatchNorm {
            weight: opts.affine.then(|| Param::new(Tensor::ones(&c, dt))),
            bias: opts.affine.then(|| Param::new(Tensor::zeros(&c, dt))),
            running_mean: running.then(|| Param::buffer(Tensor::zeros(&c, dt))),
            running_var: running.then(|| Param::buffer(Tensor::ones(&c, dt))),
            num_batches_tracked: running.then(|| Param::counter(Tensor::zeros(&[], DType::F64))),
            num_features,
            opts,
        }
    }

    /// A layer around given tensors: `weight` and `bias` (`[C]`, kept as they are if they
    /// are leaves requiring a gradient) and running `(mean, var)`. `affine` and
    /// `track_running_stats` in `opts` are taken from what is given.
    pub fn from_parts(
        weight: Option<Tensor>,
        bias: Option<Tensor>,
        running: Option<(Tensor, Tensor)>,
        opts: BatchNormOptions,
    ) -> Result<Self> {
        let shapes: Vec<&[usize]> = [&weight, &bias]
            .into_iter()
            .flatten()
            .chain(running.iter().flat_map(|(m, v)| [m, v]))
            .map(Tensor::shape)
            .collect();
        let Some(first) = shapes.first() else {
            return Err(invalid(
                "from_parts needs at least a weight, a bias or running stats".into(),
            ));
        };
        let (c, ok) = match first {
            [c] => (*c, shapes.iter().all(|s| *s == [*c])),
            _ => (0, false),
        };
        if !ok {
            return Err(invalid(format!(
                "parameters and buffers must all be [C]; got shapes {shapes:?}"
            )));
        }
        let dtype = [&weight, &bias]
            .into_iter()
            .flatten()
            .chain(running.iter().map(|r| &r.0))
            .map(Tensor::dtype)
            .next();
        let (mean, var) = running.unzip();
        let running = mean.is_some();
        Ok(BatchNorm {
            weight: weight.map(Param::new),
            bias: bias.map(Param::new),
            running_mean: mean.map(Param::buffer),
            running_var: var.map(Param::buffer),
            num_batches_tracked: running.then(|| Param::counter(Tensor::zeros(&[], DType::F64))),
            num_features: c,
            opts: BatchNormOptions {
                affine: dtype.is_some(),
                track_running_stats: running,
                dtype: dtype.unwrap_or(opts.dtype),
                ..opts
            },
        })
    }

    /// Number of channels C.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The layer's settings.
    pub fn options(&self) -> BatchNormOptions {
        self.opts
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let ranks: &[usize] = if D == 1 { &[2, 3] } else { &[D + 2] };
        crate::module::expect_rank(if D == 1 { "BatchNorm1d" } else { "BatchNorm2d" }, x, ranks)?;
        if x.shape()[1] != self.num_features {
            return Err(invalid(format!(
                "input of shape {:?} has {} channels, expected {}",
                x.shape(),
                x.shape()[1],
                self.num_features
            )));
        }
        Ok(())
    }
}

/// Training-mode batch norm through the installed hook, with the running statistics moved
/// as [`functional::batch_norm`] moves them (unbiased variance over the hook's count).
fn hooked(
    hook: &BatchNormTrainHook,
    x: &Tensor,
    running: Option<RunningStats<'_>>,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let c = x.shape()[1];
    let ones = Tensor::ones(&[c], x.dtype());
    let zeros = Tensor::zeros(&[c], x.dtype());
    let (y, mean, var, n) = hook(x, weight.unwrap_or(&ones), bias.unwrap_or(&zeros), eps)?;
    if let Some(r) = running {
        let _g = nabla_core::no_grad();
        let (m, bessel) = (r.momentum, n as f64 / (n.max(2) - 1) as f64);
        r.mean.assign(&r.mean.mul_scalar(1.0 - m)?.add(&mean.mul_scalar(m)?)?)?;
        r.var
            .assign(&r.var.mul_scalar(1.0 - m)?.add(&var.mul_scalar(bessel * m)?)?)?;
    }
    Ok(y)
}

fn invalid(msg: String) -> crate::Error {
    nabla_core::Error::invalid("BatchNorm", msg).into()
}

impl<const D: usize> BatchNorm<D> {
    /// The forward pass followed by `act` (fused in training without a hook).
    fn forward_act(&self, x: &Tensor, mode: Mode, act: Activation) -> Result<Tensor> {
        self.check_input(x)?;
        let weight = self.weight.as_ref().map(Param::tensor);
        let bias = self.bias.as_ref().map(Param::tensor);
        let (mean, var) = match (&self.running_mean, &self.running_var) {
            (Some(m), Some(v)) => (Some(m.leaf()), Some(v.leaf())),
            _ => (None, None),
        };
        let training = mode.is_train() || mean.is_none();
        let mut momentum = self.opts.momentum.unwrap_or(0.0);
        let mut count = None;
        if mode.is_train() {
            if let Some(n) = &self.num_batches_tracked {
                let (n, seen) = (n.leaf(), n.leaf().item()? + 1.0);
                momentum = self.opts.momentum.unwrap_or(1.0 / seen);
                count = Some((n, seen));
            }
        }
        let running = match (&mean, &var) {
            (Some(mean), Some(var)) if mode.is_train() || !training => Some(RunningStats { mean, var, momentum }),
            _ => None,
        };
        let hook = TRAIN_HOOK.with(|h| h.borrow().clone()).filter(|_| mode.is_train());
        let y = match hook {
            Some(hook) => {
                let y = hooked(&*hook, x, running, weight.as_ref(), bias.as_ref(), self.opts.eps)?;
                y.activation(act)?
            }
            None => {
                let (w, b) = (weight.as_ref(), bias.as_ref());
                functional::batch_norm_then(x, running, w, b, training, self.opts.eps, act)?
            }
        };
        // Counted only once the batch went through, so a rejected batch changes nothing.
        if let Some((n, seen)) = count {
            n.assign(&Tensor::full(&[], seen, n.dtype()))?;
        }
        Ok(y)
    }
}

impl<const D: usize> Module for BatchNorm<D> {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_act(x, mode, Activation::Identity)
    }

    /// Training mode without a statistics hook: the normalization and `act` as one op.
    fn forward_then(&self, x: &Tensor, act: Activation, mode: Mode) -> Option<Result<Tensor>> {
        let hooked = TRAIN_HOOK.with(|h| h.borrow().is_some());
        (mode.is_train() && !hooked).then(|| self.forward_act(x, mode, act))
    }

    fn children(&self, c: &mut Children) {
        c.param_opt("weight", &self.weight)
            .param_opt("bias", &self.bias)
            .param_opt("running_mean", &self.running_mean)
            .param_opt("running_var", &self.running_var)
            .param_opt("num_batches_tracked", &self.num_batches_tracked);
    }

    fn describe(&self) -> String {
        format!("BatchNorm{D}d {}", self.num_features)
    }
}
