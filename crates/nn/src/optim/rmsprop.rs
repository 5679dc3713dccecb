//! RMSprop, optionally centered and with momentum.
//!
//! PyTorch's update (`torch.optim.RMSprop`), gradient g, parameter p:
//! g ← g + λp; s ← αs + (1 − α)g²; centered: ḡ ← lerp(ḡ, g, 1 − α), a ← √(s − ḡ²) + ε,
//! else a ← √s + ε; with momentum μ: b ← μb + g/a, p ← p − lr·b; else p ← p − lr·g/a.

use super::{lerp, with_slices, ElementwiseOptimizer, GroupSettings, ParamState, UpdateRule};
use crate::{Error, Result};
use nabla_core::{Element, Tensor};

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
pub type RMSprop = ElementwiseOptimizer<RMSpropOptions>;

impl UpdateRule for RMSpropOptions {
    const NAME: &'static str = "RMSprop";

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn check(&self) -> Result<()> {
        const OP: &str = RMSpropOptions::NAME;
        for (what, v) in [("alpha", self.alpha), ("eps", self.eps), ("momentum", self.momentum)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::Config(format!(
                    "{OP}: invalid {what} {v} (must be finite and ≥ 0)"
                )));
            }
        }
        Ok(())
    }

    fn buffers(&self) -> Vec<&'static str> {
        let mut names = vec!["square_avg"];
        if self.momentum > 0.0 {
            names.push("momentum_buffer");
        }
        if self.centered {
            names.push("grad_avg");
        }
        names
    }

    fn update<T: Element>(&self, s: GroupSettings, p: &Tensor, g: &Tensor, st: &mut ParamState) -> Result<()> {
        update::<T>(self, s, p, g, st)
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
