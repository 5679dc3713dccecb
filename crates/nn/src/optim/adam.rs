//! Adam: adaptive moment estimation, with optional AMSGrad and L2 weight decay.
//!
//! PyTorch's update (`torch.optim.Adam`), step t, gradient g, parameter p:
//! g ← g + λp; m ← lerp(m, g, 1 − β₁); v ← β₂v + (1 − β₂)g²;
//! (AMSGrad: v̂ ← max(v̂, v), used in place of v below);
//! p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε).
//! [`AdamW`](super::AdamW) runs the same update with the decay decoupled: p ← p(1 − lr·λ) first.

use super::{for_each_param, lerp, with_slices, OptimizerState, ParamGroup, ParamGroups, StateStore};
use super::{GroupSettings, Optimizer, ParamState};
use crate::{Error, Result};
use nabla_core::{DType, Element, Gradients, Tensor};

/// Settings of [`Adam`]; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamOptions {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Decay rates of the first and second moment estimates (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator for stability (default 1e-8).
    pub eps: f64,
    /// L2 penalty λ added to the gradient (default 0).
    pub weight_decay: f64,
    /// Use the running maximum of the second moment (AMSGrad).
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

impl Default for AdamOptions {
    fn default() -> Self {
        AdamOptions {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
        }
    }
}

/// Adam (`torch.optim.Adam`).
#[derive(Clone, Debug)]
pub struct Adam {
    opts: AdamOptions,
    decoupled: bool,
    groups: ParamGroups,
    state: StateStore,
}

impl Adam {
    /// Adam over one group of parameters.
    pub fn new(params: Vec<Tensor>, opts: AdamOptions) -> Result<Self> {
        Self::with_groups(vec![ParamGroup::new(params)], opts)
    }

    /// Adam over several groups; a group's own lr and weight decay override `opts`'.
    pub fn with_groups(groups: Vec<ParamGroup>, opts: AdamOptions) -> Result<Self> {
        Self::build("Adam", groups, opts, false)
    }

    /// Adam with L2 decay (`decoupled` false) or AdamW's decoupled decay.
    pub(crate) fn build(op: &'static str, groups: Vec<ParamGroup>, opts: AdamOptions, decoupled: bool) -> Result<Self> {
        let (b1, b2) = opts.betas;
        for (what, b) in [("beta1", b1), ("beta2", b2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::Config(format!("{op}: invalid {what} {b} (must be in [0, 1))")));
            }
        }
        if !(opts.eps >= 0.0 && opts.eps.is_finite()) {
            return Err(Error::Config(format!("{op}: invalid eps {}", opts.eps)));
        }
        let mut names = vec!["exp_avg", "exp_avg_sq"];
        if opts.amsgrad {
            names.push("max_exp_avg_sq");
        }
        Ok(Adam {
            groups: ParamGroups::new(op, groups, opts.lr, opts.weight_decay)?,
            state: StateStore::new(op, names),
            opts,
            decoupled,
        })
    }

    /// The settings this optimizer was made with (lr and weight decay live in the groups).
    pub fn options(&self) -> &AdamOptions {
        &self.opts
    }
}

fn update<T: Element>(
    o: &AdamOptions,
    decoupled: bool,
    s: GroupSettings,
    p: &Tensor,
    g: &Tensor,
    st: &mut ParamState,
) -> Result<()> {
    let (b1, b2) = o.betas;
    let t = st.step as f64;
    // Scalars are formed in f64 and rounded once, as PyTorch passes Python floats to its kernels.
    let step_size = T::from_f64(s.lr / (1.0 - b1.powf(t)));
    let bc2_sqrt = T::from_f64((1.0 - b2.powf(t)).sqrt());
    let (w1, tb2, w2) = (T::from_f64(1.0 - b1), T::from_f64(b2), T::from_f64(1.0 - b2));
    let eps = T::from_f64(o.eps);
    let l2 = (!decoupled && s.weight_decay != 0.0).then(|| T::from_f64(s.weight_decay));
    let shrink = (decoupled && s.weight_decay != 0.0).then(|| T::from_f64(1.0 - s.lr * s.weight_decay));
    let sign = if o.maximize { -T::ONE } else { T::ONE };
    if !(2..=3).contains(&st.bufs.len()) {
        return Err(Error::State(format!(
            "Adam: {} moment buffers, expected 2 or 3",
            st.bufs.len()
        )));
    }
    with_slices::<T>(p, g, st, |p, g, bufs| {
        let (m, v, vmax) = match bufs {
            [m, v] => (m, v, None),
            [m, v, vmax] => (m, v, Some(vmax)),
            _ => unreachable!("buffer count checked above"),
        };
        let mut vmax = vmax.map(|b| b.iter_mut());
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            if let Some(c) = shrink {
                *p = *p * c;
            }
            let mut d = sign * g;
            if let Some(wd) = l2 {
                d += wd * *p;
            }
            *m = lerp(*m, d, w1);
            *v = *v * tb2 + w2 * (d * d);
            let second = match vmax.as_mut().and_then(|it| it.next()) {
                Some(vm) => {
                    *vm = vm.max_nan(*v);
                    *vm
                }
                None => *v,
            };
            let denom = second.sqrt() / bc2_sqrt + eps;
            *p += (-step_size) * (*m / denom);
        }
    })
}

/// One Adam or AdamW step over every parameter with a gradient.
pub(crate) fn step(a: &mut Adam, grads: &Gradients) -> Result<()> {
    let (o, dec) = (a.opts, a.decoupled);
    for_each_param(&a.groups, &mut a.state, grads, |p, g, st, s| match p.dtype() {
        DType::F32 => update::<f32>(&o, dec, s, p, g, st),
        DType::F64 => update::<f64>(&o, dec, s, p, g, st),
    })
}

impl Optimizer for Adam {
    fn step(&mut self, grads: &Gradients) -> Result<()> {
        step(self, grads)
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
