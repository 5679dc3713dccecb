//! Adam and AdamW: adaptive moment estimation, with optional AMSGrad and weight decay.
//!
//! PyTorch's update (`torch.optim.Adam`), step t, gradient g, parameter p:
//! g ← g + λp; m ← lerp(m, g, 1 − β₁); v ← β₂v + (1 − β₂)g²;
//! (AMSGrad: v̂ ← max(v̂, v), used in place of v below);
//! p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε).
//! [`AdamW`] (`torch.optim.AdamW`, Loshchilov & Hutter) runs the same update with the decay
//! decoupled: p ← p(1 − lr·λ) first, and no λp in g. As in PyTorch, where AdamW is Adam with
//! `decoupled_weight_decay=True`, the two are one options struct, [`AdamConfig`], whose
//! constant says which decay it applies.

use super::{lerp, with_slices, ElementwiseOptimizer, GroupSettings, ParamState, UpdateRule};
use crate::{Error, Result};
use nabla_core::{Element, Tensor};

/// Settings of [`Adam`] (`DECOUPLED` false: L2 decay added to the gradient) and of [`AdamW`]
/// (`DECOUPLED` true: decoupled decay); written [`AdamOptions`] and [`AdamWOptions`].
/// The defaults are PyTorch's, which differ only in the weight decay (0 and 1e-2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig<const DECOUPLED: bool> {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Decay rates of the first and second moment estimates (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator for stability (default 1e-8).
    pub eps: f64,
    /// Weight decay λ: an L2 penalty added to the gradient (Adam, default 0), or the
    /// decoupled shrinking of the parameter (AdamW, default 1e-2).
    pub weight_decay: f64,
    /// Use the running maximum of the second moment (AMSGrad).
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing it.
    pub maximize: bool,
}

/// Settings of [`Adam`]: weight decay as an L2 penalty on the gradient.
pub type AdamOptions = AdamConfig<false>;

/// Settings of [`AdamW`]: decoupled weight decay (note the default of 1e-2).
pub type AdamWOptions = AdamConfig<true>;

impl<const DECOUPLED: bool> Default for AdamConfig<DECOUPLED> {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: if DECOUPLED { 1e-2 } else { 0.0 },
            amsgrad: false,
            maximize: false,
        }
    }
}

/// Adam (`torch.optim.Adam`).
pub type Adam = ElementwiseOptimizer<AdamOptions>;

/// AdamW (`torch.optim.AdamW`): Adam with decoupled weight decay.
pub type AdamW = ElementwiseOptimizer<AdamWOptions>;

impl<const DECOUPLED: bool> UpdateRule for AdamConfig<DECOUPLED> {
    const NAME: &'static str = if DECOUPLED { "AdamW" } else { "Adam" };

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn check(&self) -> Result<()> {
        let op = Self::NAME;
        let (b1, b2) = self.betas;
        for (what, b) in [("beta1", b1), ("beta2", b2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::Config(format!("{op}: invalid {what} {b} (must be in [0, 1))")));
            }
        }
        if !(self.eps >= 0.0 && self.eps.is_finite()) {
            return Err(Error::Config(format!("{op}: invalid eps {}", self.eps)));
        }
        Ok(())
    }

    fn buffers(&self) -> Vec<&'static str> {
        let mut names = vec!["exp_avg", "exp_avg_sq"];
        if self.amsgrad {
            names.push("max_exp_avg_sq");
        }
        names
    }

    fn update<T: Element>(&self, s: GroupSettings, p: &Tensor, g: &Tensor, st: &mut ParamState) -> Result<()> {
        update::<T, DECOUPLED>(self, s, p, g, st)
    }
}

fn update<T: Element, const DECOUPLED: bool>(
    o: &AdamConfig<DECOUPLED>,
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
    let l2 = (!DECOUPLED && s.weight_decay != 0.0).then(|| T::from_f64(s.weight_decay));
    let shrink = (DECOUPLED && s.weight_decay != 0.0).then(|| T::from_f64(1.0 - s.lr * s.weight_decay));
    let sign = if o.maximize { -T::ONE } else { T::ONE };
    if !(2..=3).contains(&st.bufs.len()) {
        return Err(Error::State(format!(
            "{}: {} moment buffers, expected 2 or 3",
            AdamConfig::<DECOUPLED>::NAME,
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
