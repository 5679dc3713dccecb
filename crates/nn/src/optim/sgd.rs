//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay.
//!
//! PyTorch's update (`torch.optim.SGD`), with g the gradient and p the parameter:
//! g ← g + λp; with momentum μ: b ← g at the first step, else b ← μb + (1 − τ)g;
//! then g ← g + μb (Nesterov) or g ← b; finally p ← p − lr·g.

use super::{with_slices, ElementwiseOptimizer, GroupSettings, ParamState, UpdateRule};
use crate::{Error, Result};
use nabla_core::{Element, Tensor};

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
pub type Sgd = ElementwiseOptimizer<SgdOptions>;

impl UpdateRule for SgdOptions {
    const NAME: &'static str = "SGD";

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn check(&self) -> Result<()> {
        const OP: &str = SgdOptions::NAME;
        if !(self.momentum >= 0.0 && self.momentum.is_finite()) {
            return Err(Error::Config(format!("{OP}: invalid momentum {}", self.momentum)));
        }
        if !self.dampening.is_finite() {
            return Err(Error::Config(format!("{OP}: invalid dampening {}", self.dampening)));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::Config(format!(
                "{OP}: Nesterov momentum needs momentum > 0 and dampening 0 (got momentum {}, dampening {})",
                self.momentum, self.dampening
            )));
        }
        Ok(())
    }

    fn buffers(&self) -> Vec<&'static str> {
        if self.momentum != 0.0 {
            vec!["momentum_buffer"]
        } else {
            vec![]
        }
    }

    fn update<T: Element>(&self, s: GroupSettings, p: &Tensor, g: &Tensor, st: &mut ParamState) -> Result<()> {
        update::<T>(self, s, p, g, st)
    }
}

fn update<T: Element>(o: &SgdOptions, s: GroupSettings, p: &Tensor, g: &Tensor, st: &mut ParamState) -> Result<()> {
    let c = Coefs {
        neg_lr: T::from_f64(-s.lr),
        wd: T::from_f64(s.weight_decay),
        mu: T::from_f64(o.momentum),
        keep: T::from_f64(1.0 - o.dampening),
        sign: if o.maximize { -T::ONE } else { T::ONE },
    };
    let (wd, first, nesterov) = (s.weight_decay != 0.0, st.step == 1, o.nesterov);
    with_slices::<T>(p, g, st, |p, g, bufs| match bufs {
        // One branch-free pass per case, so each loop vectorizes.
        [b] => match (wd, first, nesterov) {
            (false, false, false) => momentum::<T, false, false, false>(&c, p, g, b),
            (false, false, true) => momentum::<T, false, false, true>(&c, p, g, b),
            (false, true, false) => momentum::<T, false, true, false>(&c, p, g, b),
            (false, true, true) => momentum::<T, false, true, true>(&c, p, g, b),
            (true, false, false) => momentum::<T, true, false, false>(&c, p, g, b),
            (true, false, true) => momentum::<T, true, false, true>(&c, p, g, b),
            (true, true, false) => momentum::<T, true, true, false>(&c, p, g, b),
            (true, true, true) => momentum::<T, true, true, true>(&c, p, g, b),
        },
        _ if wd => plain::<T, true>(&c, p, g),
        _ => plain::<T, false>(&c, p, g),
    })
}

/// The step's scalars, rounded once to the parameter's type.
struct Coefs<T> {
    neg_lr: T,
    wd: T,
    mu: T,
    keep: T,
    sign: T,
}

/// `p ← p − lr·(±g + λp)`.
fn plain<T: Element, const WD: bool>(c: &Coefs<T>, p: &mut [T], g: &[T]) {
    for (p, &g) in p.iter_mut().zip(g) {
        let d = if WD { c.sign * g + c.wd * *p } else { c.sign * g };
        *p += c.neg_lr * d;
    }
}

/// The momentum update of one parameter; the flags are constants so the loop has no branches.
fn momentum<T: Element, const WD: bool, const FIRST: bool, const NESTEROV: bool>(
    c: &Coefs<T>,
    p: &mut [T],
    g: &[T],
    b: &mut [T],
) {
    let n = p.len().min(g.len()).min(b.len());
    let (p, g, b) = (&mut p[..n], &g[..n], &mut b[..n]);
    for i in 0..n {
        let d = if WD { c.sign * g[i] + c.wd * p[i] } else { c.sign * g[i] };
        let m = if FIRST { d } else { b[i] * c.mu + c.keep * d };
        b[i] = m;
        let d = if NESTEROV { d + c.mu * m } else { m };
        p[i] += c.neg_lr * d;
    }
}
