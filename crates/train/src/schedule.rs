//! The learning-rate schedule of one optimizer, stepped by the engine once per epoch.

use crate::Result;
use nabla_core::{Gradients, Tensor};
use nabla_nn::optim::{clip_grad_norm, Optimizer};
use nabla_nn::scheduler::{LrScheduler, ReduceLROnPlateau};
use std::collections::BTreeMap;

/// How an optimizer's learning rate moves from epoch to epoch.
pub enum Schedule {
    /// A constant rate.
    Constant,
    /// A closed-form schedule (cosine, step, exponential, ...).
    Epoch(Box<dyn LrScheduler>),
    /// Lower the rate when the validation loss stops improving.
    Plateau(ReduceLROnPlateau),
}

impl Schedule {
    /// Move to the next epoch, given the validation loss of the one just finished.
    pub fn step(&mut self, opt: &mut dyn Optimizer, val_loss: f64) -> Result<()> {
        match self {
            Schedule::Constant => Ok(()),
            Schedule::Epoch(s) => Ok(s.step(opt)?),
            Schedule::Plateau(p) => Ok(p.step(opt, val_loss)?),
        }
    }

    /// Progress for a checkpoint.
    pub fn state(&self) -> BTreeMap<String, f64> {
        match self {
            Schedule::Constant => BTreeMap::new(),
            Schedule::Epoch(s) => s.state_dict(),
            Schedule::Plateau(p) => p.state_dict(),
        }
    }

    /// Restore progress saved by [`Schedule::state`].
    pub fn load(&mut self, state: &BTreeMap<String, f64>) -> Result<()> {
        match self {
            Schedule::Constant => Ok(()),
            Schedule::Epoch(s) => Ok(s.load_state_dict(state)?),
            Schedule::Plateau(p) => Ok(p.load_state_dict(state)?),
        }
    }
}

/// An optimizer with its schedule: one player of a task.
pub struct Optim {
    /// The optimizer, over the parameters this player trains.
    pub optimizer: Box<dyn Optimizer>,
    /// Its learning-rate schedule (made after the optimizer, as PyTorch's are).
    pub schedule: Schedule,
    /// Clip the gradients' global L2 norm to this before [`Optim::step`] steps (set by the
    /// engine from [`crate::FitOptions::clip_grad_norm`]).
    pub clip_grad_norm: Option<f64>,
}

impl Optim {
    /// An optimizer with its schedule (no clipping until the engine sets it).
    pub fn new(optimizer: Box<dyn Optimizer>, schedule: Schedule) -> Optim {
        Optim {
            optimizer,
            schedule,
            clip_grad_norm: None,
        }
    }

    /// An optimizer with a constant learning rate.
    pub fn constant(optimizer: Box<dyn Optimizer>) -> Optim {
        Optim::new(optimizer, Schedule::Constant)
    }

    /// One update from `grads` of `params` (the parameters this optimizer trains), their
    /// global norm clipped first when [`Optim::clip_grad_norm`] is set (PyTorch's
    /// `clip_grad_norm_` then `step`). Returns the norm before clipping, if it was measured.
    pub fn step(&mut self, grads: &mut Gradients, params: &[Tensor]) -> Result<Option<f64>> {
        let norm = match self.clip_grad_norm {
            Some(max) => Some(clip_grad_norm(grads, params, max)?),
            None => None,
        };
        self.optimizer.step(grads)?;
        Ok(norm)
    }
}
