//! Learning-rate schedulers with PyTorch's step semantics: [`StepLR`], [`MultiStepLR`],
//! [`ExponentialLR`], [`CosineAnnealingLR`], [`LinearLR`] (warm-up) and [`ReduceLROnPlateau`].
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_nn::optim::{Optimizer, Sgd, SgdOptions};
//! use nabla_nn::scheduler::{LrScheduler, StepLR};
//! let w = Tensor::zeros(&[2], DType::F32).set_requires_grad(true);
//! let mut opt = Sgd::new(vec![w], SgdOptions { lr: 0.1, ..Default::default() })?;
//! let mut sched = StepLR::new(&mut opt, 2, 0.5)?;
//! let mut lrs = Vec::new();
//! for _epoch in 0..5 {
//!     // ... train one epoch with opt.step(&grads) ...
//!     sched.step(&mut opt)?;
//!     lrs.push(opt.lr(0)?);
//! }
//! assert_eq!(lrs, [0.1, 0.05, 0.05, 0.025, 0.025]);
//! # Ok::<(), nabla_nn::Error>(())
//! ```
//!
//! As in PyTorch, making a scheduler is its step 0 (`last_epoch` 0; [`LinearLR`] scales the
//! rate there), and each `step()` after an epoch moves to the next. The rates are computed
//! from the optimizer's current ones (PyTorch's chainable form), so a rate set by hand is
//! carried on; the closed forms agree with them when nothing else touches the rates.
//! State for checkpoints is a map of named numbers (`last_epoch`, `base_lr.<g>`, ...).

mod plateau;

pub use plateau::{PlateauMode, ReduceLROnPlateau, ReduceLROnPlateauOptions, ThresholdMode};

use crate::optim::Optimizer;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::f64::consts::PI;

/// A scheduler stepped once per epoch (or per iteration, for warm-up).
///
/// A scheduler gives each group's next rate from the epoch, the group's base rate and its
/// current rate; the provided methods do the stepping and the saving.
pub trait LrScheduler {
    /// The rate of a group at `epoch`, from its base rate and its current rate.
    fn next_lr(&self, epoch: i64, base_lr: f64, current_lr: f64) -> f64;
    /// The scheduler's progress.
    fn progress(&self) -> &Progress;
    /// The scheduler's progress, to advance or restore it.
    fn progress_mut(&mut self) -> &mut Progress;

    /// Move to the next epoch and set the optimizer's learning rates for it.
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let epoch = self.progress().last_epoch + 1;
        let lrs = self.progress().next_lrs(opt, |b, l| self.next_lr(epoch, b, l))?;
        self.progress_mut().commit(opt, epoch, lrs)
    }
    /// The epoch reached: 0 right after construction, +1 per `step()`.
    fn last_epoch(&self) -> i64 {
        self.progress().last_epoch
    }
    /// The learning rates this scheduler last set, one per group.
    fn last_lr(&self) -> &[f64] {
        &self.progress().last_lr
    }
    /// The scheduler's progress, for checkpoints (its settings are not included).
    fn state_dict(&self) -> BTreeMap<String, f64> {
        self.progress().save()
    }
    /// Restore progress saved by [`LrScheduler::state_dict`] for the same number of groups.
    fn load_state_dict(&mut self, state: &BTreeMap<String, f64>) -> Result<()> {
        self.progress_mut().load(state)
    }
}

/// What every epoch-based scheduler tracks: the base rates, the epoch and the last rates.
#[derive(Clone, Debug)]
pub struct Progress {
    op: &'static str,
    base_lrs: Vec<f64>,
    last_epoch: i64,
    last_lr: Vec<f64>,
}

impl Progress {
    /// Progress of a scheduler named `op` that starts from the optimizer's current rates
    /// (epoch −1; a scheduler's constructor then takes step 0).
    pub fn new(op: &'static str, opt: &dyn Optimizer) -> Self {
        let base_lrs = opt.lrs();
        Progress {
            op,
            last_lr: base_lrs.clone(),
            base_lrs,
            last_epoch: -1,
        }
    }

    /// The rates the scheduler started from, one per group (PyTorch's `base_lrs`).
    pub fn base_lrs(&self) -> &[f64] {
        &self.base_lrs
    }

    /// Each group's next rate, `rule(base_lr, current_lr)`.
    fn next_lrs(&self, opt: &dyn Optimizer, rule: impl Fn(f64, f64) -> f64) -> Result<Vec<f64>> {
        let cur = opt.lrs();
        if cur.len() != self.base_lrs.len() {
            return Err(Error::Config(format!(
                "{}: made for {} parameter groups, the optimizer has {}",
                self.op,
                self.base_lrs.len(),
                cur.len()
            )));
        }
        Ok(cur
            .iter()
            .zip(&self.base_lrs)
            .map(|(&lr, &base)| rule(base, lr))
            .collect())
    }

    /// Set the new rates on the optimizer and move to `epoch`.
    fn commit(&mut self, opt: &mut dyn Optimizer, epoch: i64, lrs: Vec<f64>) -> Result<()> {
        if let Some((g, lr)) = lrs.iter().enumerate().find(|(_, lr)| !(lr.is_finite() && **lr >= 0.0)) {
            return Err(Error::Config(format!(
                "{}: epoch {epoch}: group {g} would get the invalid rate {lr}",
                self.op
            )));
        }
        for (g, &lr) in lrs.iter().enumerate() {
            opt.set_lr(g, lr)
                .map_err(|e| Error::Config(format!("{}: epoch {epoch}: {e}", self.op)))?;
        }
        self.last_epoch = epoch;
        self.last_lr = lrs;
        Ok(())
    }

    fn save(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        m.insert("last_epoch".to_string(), self.last_epoch as f64);
        for (g, (&b, &l)) in self.base_lrs.iter().zip(&self.last_lr).enumerate() {
            m.insert(format!("base_lr.{g}"), b);
            m.insert(format!("last_lr.{g}"), l);
        }
        m
    }

    fn load(&mut self, state: &BTreeMap<String, f64>) -> Result<()> {
        let n = self.base_lrs.len();
        let last_epoch = get_int(self.op, state, "last_epoch")?;
        let mut base = Vec::with_capacity(n);
        let mut last = Vec::with_capacity(n);
        for g in 0..n {
            base.push(get(self.op, state, &format!("base_lr.{g}"))?);
            last.push(get(self.op, state, &format!("last_lr.{g}"))?);
        }
        check_keys(self.op, state, |k| {
            k == "last_epoch"
                || ["base_lr.", "last_lr."].iter().any(|p| {
                    k.strip_prefix(p)
                        .and_then(|g| g.parse::<usize>().ok())
                        .is_some_and(|g| g < n)
                })
        })?;
        (self.last_epoch, self.base_lrs, self.last_lr) = (last_epoch, base, last);
        Ok(())
    }
}

/// Take step 0 of a newly made scheduler.
fn started<S: LrScheduler>(mut s: S, opt: &mut dyn Optimizer) -> Result<S> {
    s.step(opt)?;
    Ok(s)
}

fn get(op: &str, state: &BTreeMap<String, f64>, key: &str) -> Result<f64> {
    state
        .get(key)
        .copied()
        .ok_or_else(|| Error::State(format!("{op} state: {key} is missing")))
}

fn get_int(op: &str, state: &BTreeMap<String, f64>, key: &str) -> Result<i64> {
    let v = get(op, state, key)?;
    if v.fract() != 0.0 || v.abs() >= 2f64.powi(53) {
        return Err(Error::State(format!("{op} state: {key} = {v} is not a whole number")));
    }
    Ok(v as i64)
}

fn check_keys(op: &str, state: &BTreeMap<String, f64>, known: impl Fn(&str) -> bool) -> Result<()> {
    match state.keys().find(|k| !known(k)) {
        Some(k) => Err(Error::State(format!("{op} state: unexpected entry {k}"))),
        None => Ok(()),
    }
}

fn config(op: &str, ok: bool, msg: String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!("{op}: {msg}")))
    }
}

/// Multiply the rate by `gamma` every `step_size` epochs (`torch.optim.lr_scheduler.StepLR`).
///
/// Closed form: `base_lr · gamma^⌊epoch / step_size⌋`.
#[derive(Clone, Debug)]
pub struct StepLR {
    step_size: i64,
    gamma: f64,
    p: Progress,
}

impl StepLR {
    /// Decay by `gamma` every `step_size` (> 0) epochs.
    pub fn new(opt: &mut dyn Optimizer, step_size: usize, gamma: f64) -> Result<Self> {
        const OP: &str = "StepLR";
        config(OP, step_size > 0, format!("step_size must be > 0, got {step_size}"))?;
        config(OP, gamma.is_finite() && gamma >= 0.0, format!("invalid gamma {gamma}"))?;
        let p = Progress::new(OP, opt);
        started(
            StepLR {
                step_size: step_size as i64,
                gamma,
                p,
            },
            opt,
        )
    }
}

impl LrScheduler for StepLR {
    fn next_lr(&self, epoch: i64, _base_lr: f64, lr: f64) -> f64 {
        if epoch == 0 || epoch % self.step_size != 0 {
            lr
        } else {
            lr * self.gamma
        }
    }
    fn progress(&self) -> &Progress {
        &self.p
    }
    fn progress_mut(&mut self) -> &mut Progress {
        &mut self.p
    }
}

/// Multiply the rate by `gamma` at each milestone epoch (`MultiStepLR`).
///
/// Closed form: `base_lr · gamma^(number of milestones ≤ epoch)`.
#[derive(Clone, Debug)]
pub struct MultiStepLR {
    milestones: Vec<i64>,
    gamma: f64,
    p: Progress,
}

impl MultiStepLR {
    /// Decay by `gamma` at each of `milestones` (a milestone listed twice decays twice).
    pub fn new(opt: &mut dyn Optimizer, milestones: &[usize], gamma: f64) -> Result<Self> {
        const OP: &str = "MultiStepLR";
        config(OP, gamma.is_finite() && gamma >= 0.0, format!("invalid gamma {gamma}"))?;
        let mut milestones: Vec<i64> = milestones.iter().map(|&m| m as i64).collect();
        milestones.sort_unstable();
        let p = Progress::new(OP, opt);
        started(MultiStepLR { milestones, gamma, p }, opt)
    }
}

impl LrScheduler for MultiStepLR {
    fn next_lr(&self, epoch: i64, _base_lr: f64, lr: f64) -> f64 {
        match self.milestones.iter().filter(|&&m| m == epoch).count() {
            0 => lr,
            n => lr * self.gamma.powf(n as f64),
        }
    }
    fn progress(&self) -> &Progress {
        &self.p
    }
    fn progress_mut(&mut self) -> &mut Progress {
        &mut self.p
    }
}

/// Multiply the rate by `gamma` every epoch (`ExponentialLR`).
///
/// Closed form: `base_lr · gamma^epoch`.
#[derive(Clone, Debug)]
pub struct ExponentialLR {
    gamma: f64,
    p: Progress,
}

impl ExponentialLR {
    /// Decay by `gamma` every epoch.
    pub fn new(opt: &mut dyn Optimizer, gamma: f64) -> Result<Self> {
        const OP: &str = "ExponentialLR";
        config(OP, gamma.is_finite() && gamma >= 0.0, format!("invalid gamma {gamma}"))?;
        let p = Progress::new(OP, opt);
        started(ExponentialLR { gamma, p }, opt)
    }
}

impl LrScheduler for ExponentialLR {
    fn next_lr(&self, epoch: i64, _base_lr: f64, lr: f64) -> f64 {
        if epoch == 0 {
            lr
        } else {
            lr * self.gamma
        }
    }
    fn progress(&self) -> &Progress {
        &self.p
    }
    fn progress_mut(&mut self) -> &mut Progress {
        &mut self.p
    }
}

/// Cosine annealing from the base rate down to `eta_min` over `t_max` epochs, then back up
/// (`CosineAnnealingLR`, without restarts).
///
/// Closed form: `eta_min + (base_lr − eta_min)·(1 + cos(π·epoch/t_max))/2`.
#[derive(Clone, Debug)]
pub struct CosineAnnealingLR {
    t_max: i64,
    eta_min: f64,
    p: Progress,
}

impl CosineAnnealingLR {
    /// Anneal over `t_max` (> 0) epochs down to `eta_min` (≥ 0).
    pub fn new(opt: &mut dyn Optimizer, t_max: usize, eta_min: f64) -> Result<Self> {
        const OP: &str = "CosineAnnealingLR";
        config(OP, t_max > 0, format!("t_max must be > 0, got {t_max}"))?;
        config(
            OP,
            eta_min.is_finite() && eta_min >= 0.0,
            format!("invalid eta_min {eta_min}"),
        )?;
        let p = Progress::new(OP, opt);
        started(
            CosineAnnealingLR {
                t_max: t_max as i64,
                eta_min,
                p,
            },
            opt,
        )
    }
}

impl LrScheduler for CosineAnnealingLR {
    fn next_lr(&self, epoch: i64, base: f64, lr: f64) -> f64 {
        let (t, eta) = (self.t_max as f64, self.eta_min);
        // PyTorch's recursive form; the middle case is the restart from the bottom.
        if epoch == 0 {
            lr
        } else if (epoch - 1 - self.t_max).rem_euclid(2 * self.t_max) == 0 {
            lr + (base - eta) * (1.0 - (PI / t).cos()) / 2.0
        } else {
            (1.0 + (PI * epoch as f64 / t).cos()) / (1.0 + (PI * (epoch - 1) as f64 / t).cos()) * (lr - eta) + eta
        }
    }
    fn progress(&self) -> &Progress {
        &self.p
    }
    fn progress_mut(&mut self) -> &mut Progress {
        &mut self.p
    }
}

/// Linear change of the rate's factor from `start_factor` to `end_factor` over `total_iters`
/// steps, then constant (`LinearLR`; the usual warm-up).
///
/// Closed form: `base_lr · (start + (end − start)·min(epoch, total_iters)/total_iters)`.
#[derive(Clone, Debug)]
pub struct LinearLR {
    start_factor: f64,
    end_factor: f64,
    total_iters: i64,
    p: Progress,
}

impl LinearLR {
    /// Scale from `start_factor` (in (0, 1]) to `end_factor` (in [0, 1]) over `total_iters`
    /// steps. PyTorch's defaults are 1/3, 1 and 5.
    pub fn new(opt: &mut dyn Optimizer, start_factor: f64, end_factor: f64, total_iters: usize) -> Result<Self> {
        const OP: &str = "LinearLR";
        config(
            OP,
            start_factor > 0.0 && start_factor <= 1.0,
            format!("start_factor must be in (0, 1], got {start_factor}"),
        )?;
        config(
            OP,
            (0.0..=1.0).contains(&end_factor),
            format!("end_factor must be in [0, 1], got {end_factor}"),
        )?;
        let p = Progress::new(OP, opt);
        let s = LinearLR {
            start_factor,
            end_factor,
            total_iters: total_iters as i64,
            p,
        };
        started(s, opt)
    }
}

impl LrScheduler for LinearLR {
    fn next_lr(&self, epoch: i64, _base_lr: f64, lr: f64) -> f64 {
        let (s, e) = (self.start_factor, self.end_factor);
        if epoch == 0 {
            lr * s
        } else if epoch > self.total_iters {
            lr
        } else {
            lr * (1.0 + (e - s) / (self.total_iters as f64 * s + (epoch - 1) as f64 * (e - s)))
        }
    }
    fn progress(&self) -> &Progress {
        &self.p
    }
    fn progress_mut(&mut self) -> &mut Progress {
        &mut self.p
    }
}

#[cfg(test)]
mod tests;
