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
    let c = Coefs {
        neg_step: -T::from_f64(s.lr / (1.0 - b1.powf(t))),
        bc2_sqrt: T::from_f64((1.0 - b2.powf(t)).sqrt()),
        w1: T::from_f64(1.0 - b1),
        b2: T::from_f64(b2),
        w2: T::from_f64(1.0 - b2),
        eps: T::from_f64(o.eps),
        wd: T::from_f64(s.weight_decay),
        shrink: T::from_f64(1.0 - s.lr * s.weight_decay),
        sign: if o.maximize { -T::ONE } else { T::ONE },
    };
    let decay = s.weight_decay != 0.0;
    if !(2..=3).contains(&st.bufs.len()) {
        return Err(Error::State(format!(
            "{}: {} moment buffers, expected 2 or 3",
            AdamConfig::<DECOUPLED>::NAME,
            st.bufs.len()
        )));
    }
    with_slices::<T>(p, g, st, |p, g, bufs| match bufs {
        // One branch-free pass per case, so each loop vectorizes.
        [m, v] if decay => pass::<T, DECOUPLED, true, false>(&c, p, g, m, v, &mut []),
        [m, v] => pass::<T, DECOUPLED, false, false>(&c, p, g, m, v, &mut []),
        [m, v, vmax] if decay => pass::<T, DECOUPLED, true, true>(&c, p, g, m, v, vmax),
        [m, v, vmax] => pass::<T, DECOUPLED, false, true>(&c, p, g, m, v, vmax),
        _ => unreachable!("buffer count checked above"),
    })
}

/// The step's scalars, rounded once to the parameter's type.
struct Coefs<T> {
    neg_step: T,
    bc2_sqrt: T,
    w1: T,
    b2: T,
    w2: T,
    eps: T,
    wd: T,
    shrink: T,
    sign: T,
}

/// The update of one parameter; the flags are constants so the loop has no branches.
fn pass<T: Element, const DECOUPLED: bool, const DECAY: bool, const AMSGRAD: bool>(
    c: &Coefs<T>,
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    vmax: &mut [T],
) {
    let n = p.len().min(g.len()).min(m.len()).min(v.len());
    let (p, g, m, v) = (&mut p[..n], &g[..n], &mut m[..n], &mut v[..n]);
    let vmax = if AMSGRAD { &mut vmax[..n] } else { vmax };
    for i in 0..n {
        if DECAY && DECOUPLED {
            p[i] = p[i] * c.shrink;
        }
        let mut d = c.sign * g[i];
        if DECAY && !DECOUPLED {
            d += c.wd * p[i];
        }
        m[i] = lerp(m[i], d, c.w1);
        v[i] = v[i] * c.b2 + c.w2 * (d * d);
        let second = if AMSGRAD {
            vmax[i] = vmax[i].max_nan(v[i]);
            vmax[i]
        } else {
            v[i]
        };
        let denom = second.sqrt() / c.bc2_sqrt + c.eps;
        p[i] += c.neg_step * (m[i] / denom);
    }
}
