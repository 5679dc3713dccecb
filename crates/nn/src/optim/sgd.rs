//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay.
//!
//! PyTorch's update (`torch.optim.SGD`), with g the gradient and p the parameter:
//! g ← g + λp; with momentum μ: b ← g at the first step, else b ← μb + (1 − τ)g;
//! then g ← g + μb (Nesterov) or g ← b; finally p ← p − lr·g.

use super::{for_each_param, with_slices, OptimizerState, ParamGroup, ParamGroups, StateStore};
use super::{GroupSettings, Optimizer, ParamState};
use crate::{Error, Result};
use nabla_core::{DType, Element, Gradients, Tensor};

/// Settings of [`Sgd`]; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdOptions {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Momentum factor μ (default 0: plain SGD, no state).
    pub momentum: f64,
    /// Dampening τ of the momentum (default 0).
    pub dampening: f64,
    /// L2 penalty λ added to the gradient (default 0).
    pub weight_decay: f64,
    /// Nesterov momentum (needs momentum > 0 and dampening 0).
    pub nesterov: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

impl Default for SgdOptions {
    fn default() -> Self {
        SgdOptions {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

/// Stochastic gradient descent (`torch.optim.SGD`).
#[derive(Clone, Debug)]
pub struct Sgd {
    opts: SgdOptions,
    groups: ParamGroups,
    state: StateStore,
}

impl Sgd {
    /// SGD over one group of parameters.
    pub fn new(params: Vec<Tensor>, opts: SgdOptions) -> Result<Self> {
        Self::with_groups(vec![ParamGroup::new(params)], opts)
    }

    /// SGD over several groups; a group's own lr and weight decay override `opts`'.
    pub fn with_groups(groups: Vec<ParamGroup>, opts: SgdOptions) -> Result<Self> {
        const OP: &str = "SGD";
        if !(opts.momentum >= 0.0 && opts.momentum.is_finite()) {
            return Err(Error::Config(format!("{OP}: invalid momentum {}", opts.momentum)));
        }
        if !opts.dampening.is_finite() {
            return Err(Error::Config(format!("{OP}: invalid dampening {}", opts.dampening)));
        }
        if opts.nesterov && (opts.momentum <= 0.0 || opts.dampening != 0.0) {
            return Err(Error::Config(format!(
                "{OP}: Nesterov momentum needs momentum > 0 and dampening 0 (got momentum {}, dampening {})",
                opts.momentum, opts.dampening
            )));
        }
        let names = if opts.momentum != 0.0 {
            vec!["momentum_buffer"]
        } else {
            vec![]
        };
        Ok(Sgd {
            groups: ParamGroups::new(OP, groups, opts.lr, opts.weight_decay)?,
            state: StateStore::new(OP, names),
            opts,
        })
    }

    /// The settings this optimizer was made with (lr and weight decay live in the groups).
    pub fn options(&self) -> &SgdOptions {
        &self.opts
    }
}

fn update<T: Element>(o: &SgdOptions, s: GroupSettings, p: &Tensor, g: &Tensor, st: &mut ParamState) -> Result<()> {
    let first = st.step == 1;
    let neg_lr = T::from_f64(-s.lr);
    let wd = T::from_f64(s.weight_decay);
    let mu = T::from_f64(o.momentum);
    let keep = T::from_f64(1.0 - o.dampening);
    let sign = if o.maximize { -T::ONE } else { T::ONE };
    with_slices::<T>(p, g, st, |p, g, bufs| match bufs {
        [buf] => {
            for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
                let mut d = sign * g;
                if s.weight_decay != 0.0 {
                    d += wd * *p;
                }
                *b = if first { d } else { *b * mu + keep * d };
                let d = if o.nesterov { d + mu * *b } else { *b };
                *p += neg_lr * d;
            }
        }
        _ => {
            for (p, &g) in p.iter_mut().zip(g) {
                let mut d = sign * g;
                if s.weight_decay != 0.0 {
                    d += wd * *p;
                }
                *p += neg_lr * d;
            }
        }
    })
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &Gradients) -> Result<()> {
        let o = self.opts;
        for_each_param(&self.groups, &mut self.state, grads, |p, g, st, s| match p.dtype() {
            DType::F32 => update::<f32>(&o, s, p, g, st),
            DType::F64 => update::<f64>(&o, s, p, g, st),
        })
    }

    fn param_groups(&self) -> &ParamGroups {
        &self.groups
    }

    fn param_groups_mut(&mut self) -> &mut ParamGroups {
        &mut self.groups
    }

    fn state_dict(&self) -> Result<OptimizerState> {
        self.state.save(&self.groups)
    }

    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
        self.state.load(&mut self.groups, state)
    }
}
