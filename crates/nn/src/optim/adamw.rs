//! AdamW: Adam with decoupled weight decay (Loshchilov & Hutter).
//!
//! PyTorch's update (`torch.optim.AdamW`): p ← p(1 − lr·λ), then Adam's update without
//! the L2 term (see [`Adam`]).

use super::adam::{self, Adam, AdamOptions};
use super::{Optimizer, OptimizerState, ParamGroup, ParamGroups};
use crate::Result;
use nabla_core::{Gradients, Tensor};

/// Settings of [`AdamW`]; the defaults are PyTorch's (note weight decay 1e-2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWOptions {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Decay rates of the first and second moment estimates (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator for stability (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay λ (default 1e-2).
    pub weight_decay: f64,
    /// Use the running maximum of the second moment (AMSGrad).
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

impl Default for AdamWOptions {
    fn default() -> Self {
        AdamWOptions {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false,
            maximize: false,
        }
    }
}

impl From<AdamWOptions> for AdamOptions {
    fn from(o: AdamWOptions) -> Self {
        AdamOptions {
            lr: o.lr,
            betas: o.betas,
            eps: o.eps,
            weight_decay: o.weight_decay,
            amsgrad: o.amsgrad,
            maximize: o.maximize,
        }
    }
}

/// AdamW (`torch.optim.AdamW`).
#[derive(Clone, Debug)]
pub struct AdamW {
    inner: Adam,
    opts: AdamWOptions,
}

impl AdamW {
    /// AdamW over one group of parameters.
    pub fn new(params: Vec<Tensor>, opts: AdamWOptions) -> Result<Self> {
        Self::with_groups(vec![ParamGroup::new(params)], opts)
    }

    /// AdamW over several groups; a group's own lr and weight decay override `opts`'.
    pub fn with_groups(groups: Vec<ParamGroup>, opts: AdamWOptions) -> Result<Self> {
        Ok(AdamW {
            inner: Adam::build("AdamW", groups, opts.into(), true)?,
            opts,
        })
    }

    /// The settings this optimizer was made with (lr and weight decay live in the groups).
    pub fn options(&self) -> &AdamWOptions {
        &self.opts
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, grads: &Gradients) -> Result<()> {
        adam::step(&mut self.inner, grads)
    }

    fn param_groups(&self) -> &ParamGroups {
        self.inner.param_groups()
    }

    fn param_groups_mut(&mut self) -> &mut ParamGroups {
        self.inner.param_groups_mut()
    }

    fn state_dict(&self) -> Result<OptimizerState> {
        self.inner.state_dict()
    }

    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
        self.inner.load_state_dict(state)
    }
}
