//! RMSprop, optionally centered and with momentum.
//!
//! PyTorch's update (`torch.optim.RMSprop`), gradient g, parameter p:
//! g ← g + λp; s ← αs + (1 − α)g²; centered: ḡ ← lerp(ḡ, g, 1 − α), a ← √(s − ḡ²) + ε,
//! else a ← √s + ε; with momentum μ: b ← μb + g/a, p ← p − lr·b; else p ← p − lr·g/a.

use super::{for_each_param, lerp, with_slices, OptimizerState, ParamGroup, ParamGroups, StateStore};
use super::{GroupSettings, Optimizer, ParamState};
use crate::{Error, Result};
use nabla_core::{DType, Element, Gradients, Tensor};

/// Settings of [`RMSprop`]; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RMSpropOptions {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Smoothing constant α of the squared-gradient average (default 0.99).
    pub alpha: f64,
    /// Added to the denominator for stability (default 1e-8).
    pub eps: f64,
    /// L2 penalty λ added to the gradient (default 0).
    pub weight_decay: f64,
    /// Momentum factor μ (default 0).
    pub momentum: f64,
    /// Normalize by the estimated variance of the gradient instead of its second moment.
    pub centered: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

impl Default for RMSpropOptions {
    fn default() -> Self {
        RMSpropOptions {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

/// RMSprop (`torch.optim.RMSprop`).
#[derive(Clone, Debug)]
pub struct RMSprop {
    opts: RMSpropOptions,
    groups: ParamGroups,
    state: StateStore,
}

impl RMSprop {
    /// RMSprop over one group of parameters.
    pub fn new(params: Vec<Tensor>, opts: RMSpropOptions) -> Result<Self> {
        Self::with_groups(vec![ParamGroup::new(params)], opts)
    }

    /// RMSprop over several groups; a group's own lr and weight decay override `opts`'.
    pub fn with_groups(groups: Vec<ParamGroup>, opts: RMSpropOptions) -> Result<Self> {
        const OP: &str = "RMSprop";
        for (what, v) in [("alpha", opts.alpha), ("eps", opts.eps), ("momentum", opts.momentum)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::Config(format!(
                    "{OP}: invalid {what} {v} (must be finite and ≥ 0)"
                )));
            }
        }
        let mut names = vec!["square_avg"];
        if opts.momentum > 0.0 {
            names.push("momentum_buffer");
        }
        if opts.centered {
            names.push("grad_avg");
        }
        Ok(RMSprop {
            groups: ParamGroups::new(OP, groups, opts.lr, opts.weight_decay)?,
            state: StateStore::new(OP, names),
            opts,
        })
    }

    /// The settings this optimizer was made with (lr and weight decay live in the groups).
    pub fn options(&self) -> &RMSpropOptions {
        &self.opts
    }
}

fn update<T: Element>(o: &RMSpropOptions, s: GroupSettings, p: &Tensor, g: &Tensor, st: &mut ParamState) -> Result<()> {
    let neg_lr = T::from_f64(-s.lr);
    let wd = (s.weight_decay != 0.0).then(|| T::from_f64(s.weight_decay));
    let (alpha, w) = (T::from_f64(o.alpha), T::from_f64(1.0 - o.alpha));
    let eps = T::from_f64(o.eps);
    let mu = T::from_f64(o.momentum);
    let sign = if o.maximize { -T::ONE } else { T::ONE };
    let (has_mom, centered) = (o.momentum > 0.0, o.centered);
    let want = 1 + has_mom as usize + centered as usize;
    if st.bufs.len() != want {
        return Err(Error::State(format!(
            "RMSprop: {} buffers, expected {want}",
            st.bufs.len()
        )));
    }
    with_slices::<T>(p, g, st, |p, g, bufs| {
        let (sq, rest) = bufs.split_at_mut(1);
        let (mom, rest) = rest.split_at_mut(has_mom as usize);
        let mut mom = mom.first_mut().map(|b| b.iter_mut());
        let mut gavg = rest.first_mut().map(|b| b.iter_mut());
        for ((p, &g), sq) in p.iter_mut().zip(g).zip(sq[0].iter_mut()) {
            let mut d = sign * g;
            if let Some(wd) = wd {
                d += wd * *p;
            }
            *sq = *sq * alpha + w * (d * d);
            let avg = match gavg.as_mut().and_then(|it| it.next()) {
                Some(ga) => {
                    *ga = lerp(*ga, d, w);
                    (*sq - *ga * *ga).sqrt()
                }
                None => sq.sqrt(),
            } + eps;
            match mom.as_mut().and_then(|it| it.next()) {
                Some(b) => {
                    *b = *b * mu + d / avg;
                    *p += neg_lr * *b;
                }
                None => *p += neg_lr * (d / avg),
            }
        }
    })
}

impl Optimizer for RMSprop {
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
