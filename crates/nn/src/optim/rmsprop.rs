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
    let c = Coefs {
        neg_lr: T::from_f64(-s.lr),
        wd: T::from_f64(s.weight_decay),
        alpha: T::from_f64(o.alpha),
        w: T::from_f64(1.0 - o.alpha),
        eps: T::from_f64(o.eps),
        mu: T::from_f64(o.momentum),
        sign: if o.maximize { -T::ONE } else { T::ONE },
    };
    let (wd, has_mom, centered) = (s.weight_decay != 0.0, o.momentum > 0.0, o.centered);
    let want = 1 + has_mom as usize + centered as usize;
    if st.bufs.len() != want {
        return Err(Error::State(format!(
            "RMSprop: {} buffers, expected {want}",
            st.bufs.len()
        )));
    }
    with_slices::<T>(p, g, st, |p, g, bufs| {
        // Buffers in order: square_avg, then momentum_buffer and grad_avg when present.
        let (sq, rest) = bufs.split_at_mut(1);
        let (mom, gavg) = rest.split_at_mut(has_mom as usize);
        let (sq, mom, gavg) = (&mut *sq[0], mom.first_mut(), gavg.first_mut());
        let (mom, gavg) = (
            mom.map_or(&mut [][..], |b| &mut **b),
            gavg.map_or(&mut [][..], |b| &mut **b),
        );
        // One branch-free pass per case, so each loop vectorizes.
        match (wd, centered, has_mom) {
            (false, false, false) => pass::<T, false, false, false>(&c, p, g, sq, gavg, mom),
            (false, false, true) => pass::<T, false, false, true>(&c, p, g, sq, gavg, mom),
            (false, true, false) => pass::<T, false, true, false>(&c, p, g, sq, gavg, mom),
            (false, true, true) => pass::<T, false, true, true>(&c, p, g, sq, gavg, mom),
            (true, false, false) => pass::<T, true, false, false>(&c, p, g, sq, gavg, mom),
            (true, false, true) => pass::<T, true, false, true>(&c, p, g, sq, gavg, mom),
            (true, true, false) => pass::<T, true, true, false>(&c, p, g, sq, gavg, mom),
            (true, true, true) => pass::<T, true, true, true>(&c, p, g, sq, gavg, mom),
        }
    })
}

/// The step's scalars, rounded once to the parameter's type.
struct Coefs<T> {
    neg_lr: T,
    wd: T,
    alpha: T,
    w: T,
    eps: T,
    mu: T,
    sign: T,
}

/// The update of one parameter; the flags are constants so the loop has no branches.
fn pass<T: Element, const WD: bool, const CENTERED: bool, const MOMENTUM: bool>(
    c: &Coefs<T>,
    p: &mut [T],
    g: &[T],
    sq: &mut [T],
    gavg: &mut [T],
    mom: &mut [T],
) {
    let n = p.len().min(g.len()).min(sq.len());
    let (p, g, sq) = (&mut p[..n], &g[..n], &mut sq[..n]);
    let gavg = if CENTERED { &mut gavg[..n] } else { gavg };
    let mom = if MOMENTUM { &mut mom[..n] } else { mom };
    for i in 0..n {
        let mut d = c.sign * g[i];
        if WD {
            d += c.wd * p[i];
        }
        sq[i] = sq[i] * c.alpha + c.w * (d * d);
        let avg = if CENTERED {
            gavg[i] = lerp(gavg[i], d, c.w);
            (sq[i] - gavg[i] * gavg[i]).sqrt()
        } else {
            sq[i].sqrt()
        } + c.eps;
        if MOMENTUM {
            mom[i] = mom[i] * c.mu + d / avg;
            p[i] += c.neg_lr * mom[i];
        } else {
            p[i] += c.neg_lr * (d / avg);
        }
    }
}
