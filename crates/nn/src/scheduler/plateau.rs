//! Reduce the learning rate when a metric has stopped improving (`ReduceLROnPlateau`).

use super::{check_keys, config, get, get_int};
use crate::optim::Optimizer;
use crate::{Error, Result};
use std::collections::BTreeMap;

/// Whether a lower or a higher metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlateauMode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How `threshold` defines a significant improvement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Better than `best · (1 ∓ threshold)`.
    Rel,
    /// Better than `best ∓ threshold`.
    Abs,
}

/// Settings of [`ReduceLROnPlateau`]; the defaults are PyTorch's.
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceLROnPlateauOptions {
    /// Lower or higher is better (default `Min`).
    pub mode: PlateauMode,
    /// Factor the rate is multiplied by on a plateau, < 1 (default 0.1).
    pub factor: f64,
    /// Epochs without improvement tolerated before reducing (default 10).
    pub patience: u64,
    /// Smallest change that counts as an improvement (default 1e-4).
    pub threshold: f64,
    /// Relative or absolute threshold (default `Rel`).
    pub threshold_mode: ThresholdMode,
    /// Epochs to wait after a reduction before counting bad epochs again (default 0).
    pub cooldown: u64,
    /// Lower bound of the rate: empty for 0, one value for every group, or one per group.
    pub min_lr: Vec<f64>,
    /// A reduction smaller than this is skipped (default 1e-8).
    pub eps: f64,
}

impl Default for ReduceLROnPlateauOptions {
    fn default() -> Self {
        ReduceLROnPlateauOptions {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: Vec::new(),
            eps: 1e-8,
        }
    }
}

/// Reduce every group's rate by `factor` once the metric has not improved for more than
/// `patience` epochs (`torch.optim.lr_scheduler.ReduceLROnPlateau`).
///
/// Unlike the epoch schedulers, making it changes nothing and [`ReduceLROnPlateau::step`]
/// takes the epoch's metric.
#[derive(Clone, Debug)]
pub struct ReduceLROnPlateau {
    opts: ReduceLROnPlateauOptions,
    min_lrs: Vec<f64>,
    best: f64,
    num_bad_epochs: u64,
    cooldown_counter: u64,
    last_epoch: i64,
    last_lr: Vec<f64>,
}

const OP: &str = "ReduceLROnPlateau";

impl ReduceLROnPlateau {
    /// A plateau scheduler for the optimizer's groups.
    pub fn new(opt: &dyn Optimizer, opts: ReduceLROnPlateauOptions) -> Result<Self> {
        let f = opts.factor;
        config(
            OP,
            (0.0..1.0).contains(&f),
            format!("factor must be in [0, 1), got {f}"),
        )?;
        let t = opts.threshold;
        config(OP, t.is_finite() && t >= 0.0, format!("invalid threshold {t}"))?;
        config(
            OP,
            opts.eps.is_finite() && opts.eps >= 0.0,
            format!("invalid eps {}", opts.eps),
        )?;
        let n = opt.lrs().len();
        let min_lrs = match opts.min_lr.len() {
            0 => vec![0.0; n],
            1 => vec![opts.min_lr[0]; n],
            k if k == n => opts.min_lr.clone(),
            k => {
                return Err(Error::Config(format!(
                    "{OP}: {k} min_lr values for {n} parameter groups"
                )))
            }
        };
        if let Some(m) = min_lrs.iter().find(|m| !(m.is_finite() && **m >= 0.0)) {
            return Err(Error::Config(format!("{OP}: invalid min_lr {m}")));
        }
        let best = match opts.mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        };
        Ok(ReduceLROnPlateau {
            min_lrs,
            best,
            num_bad_epochs: 0,
            cooldown_counter: 0,
            last_epoch: 0,
            last_lr: opt.lrs(),
            opts,
        })
    }

    /// Whether `a` improves significantly on `best`.
    fn is_better(&self, a: f64, best: f64) -> bool {
        let t = self.opts.threshold;
        match (self.opts.mode, self.opts.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - t),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - t,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (t + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + t,
        }
    }

    /// Record the epoch's metric and reduce the rates if it has plateaued.
    pub fn step(&mut self, opt: &mut dyn Optimizer, metric: f64) -> Result<()> {
        let n = self.min_lrs.len();
        if opt.lrs().len() != n {
            return Err(Error::Config(format!(
                "{OP}: made for {n} parameter groups, the optimizer has {}",
                opt.lrs().len()
            )));
        }
        self.last_epoch += 1;
        if self.is_better(metric, self.best) {
            self.best = metric;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.opts.patience {
            for (g, &min_lr) in self.min_lrs.iter().enumerate() {
                let old = opt.lr(g)?;
                let new = (old * self.opts.factor).max(min_lr);
                if old - new > self.opts.eps {
                    opt.set_lr(g, new)?;
                }
            }
            self.cooldown_counter = self.opts.cooldown;
            self.num_bad_epochs = 0;
        }
        self.last_lr = opt.lrs();
        Ok(())
    }

    /// The number of `step()` calls so far.
    pub fn last_epoch(&self) -> i64 {
        self.last_epoch
    }

    /// The rates after the last step, one per group.
    pub fn last_lr(&self) -> &[f64] {
        &self.last_lr
    }

    /// The best metric seen (±∞ before the first step).
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Epochs since the last improvement (reset by a reduction and during cooldown).
    pub fn num_bad_epochs(&self) -> u64 {
        self.num_bad_epochs
    }

    /// Whether the scheduler is waiting out its cooldown.
    pub fn in_cooldown(&self) -> bool {
        self.cooldown_counter > 0
    }

    /// The scheduler's progress, for checkpoints (its settings are not included).
    pub fn state_dict(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        m.insert("best".to_string(), self.best);
        m.insert("num_bad_epochs".to_string(), self.num_bad_epochs as f64);
        m.insert("cooldown_counter".to_string(), self.cooldown_counter as f64);
        m.insert("last_epoch".to_string(), self.last_epoch as f64);
        for (g, &l) in self.last_lr.iter().enumerate() {
            m.insert(format!("last_lr.{g}"), l);
        }
        m
    }

    /// Restore progress saved by [`ReduceLROnPlateau::state_dict`].
    pub fn load_state_dict(&mut self, state: &BTreeMap<String, f64>) -> Result<()> {
        let n = self.min_lrs.len();
        let count = |k: &str| -> Result<u64> {
            u64::try_from(get_int(OP, state, k)?).map_err(|_| Error::State(format!("{OP} state: {k} is negative")))
        };
        let (bad, cool) = (count("num_bad_epochs")?, count("cooldown_counter")?);
        let last_epoch = get_int(OP, state, "last_epoch")?;
        let best = get(OP, state, "best")?;
        let last_lr = (0..n)
            .map(|g| get(OP, state, &format!("last_lr.{g}")))
            .collect::<Result<Vec<f64>>>()?;
        check_keys(OP, state, |k| {
            ["best", "num_bad_epochs", "cooldown_counter", "last_epoch"].contains(&k)
                || k.strip_prefix("last_lr.")
                    .and_then(|g| g.parse::<usize>().ok())
                    .is_some_and(|g| g < n)
        })?;
        self.best = best;
        self.num_bad_epochs = bad;
        self.cooldown_counter = cool;
        self.last_epoch = last_epoch;
        self.last_lr = last_lr;
        Ok(())
    }
}
