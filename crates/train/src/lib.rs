//! The training engine of nabla: a task says what its models are, how its optimizers are
//! made, what one training step and one validation step compute, which metrics it reports
//! and which one selects the best checkpoint; the engine owns the loop, the data order, the
//! progress bar, the epoch line, `metrics.jsonl`, validation, the `last`/`best`
//! checkpoints, Ctrl-C, stops on a non-finite loss and bitwise resume.
//!
//! A linear regression trained for one epoch on in-memory data:
//!
//! ```
//! use nabla_core::{DType, Generator, Tensor};
//! use nabla_data::{Batch, DataLoader, TensorDataset};
//! use nabla_nn::loss::{mse_loss, Reduction};
//! use nabla_nn::optim::{Sgd, SgdOptions};
//! use nabla_nn::{Linear, Mode, Module};
//! use nabla_train::{fit, FitOptions, Optim, Outcome, StepOutput, Task};
//!
//! struct Fit1d {
//!     model: Linear,
//!     val_sum: f64,
//!     val_n: usize,
//! }
//!
//! impl Task for Fit1d {
//!     fn models(&self) -> Vec<(&str, &dyn Module)> {
//!         vec![("", &self.model)]
//!     }
//!     fn configure_optimizers(&mut self) -> nabla_train::Result<Vec<Optim>> {
//!         let sgd = Sgd::new(self.model.parameters(), SgdOptions { lr: 0.1, ..Default::default() })?;
//!         Ok(vec![Optim::constant(Box::new(sgd))])
//!     }
//!     fn training_step(&mut self, b: &Batch, _step: u64, opt: &mut [Optim]) -> nabla_train::Result<StepOutput> {
//!         let y = b.targets.as_ref().expect("regression data");
//!         let loss = mse_loss(&self.model.forward(&b.inputs, Mode::Train)?, y, Reduction::Mean)?;
//!         opt[0].optimizer.step(&loss.backward()?)?;
//!         let rows = b.inputs.shape()[0] as u64;
//!         Ok(StepOutput::new(rows).sum("loss", loss.item()? * rows as f64))
//!     }
//!     fn validation_step(&mut self, b: &Batch) -> nabla_train::Result<()> {
//!         let y = b.targets.as_ref().expect("regression data");
//!         let loss = mse_loss(&self.model.forward(&b.inputs, Mode::Eval)?, y, Reduction::Sum)?;
//!         (self.val_sum, self.val_n) = (self.val_sum + loss.item()?, self.val_n + b.inputs.shape()[0]);
//!         Ok(())
//!     }
//!     fn validation_end(&mut self) -> nabla_train::Result<Vec<(String, f64)>> {
//!         let loss = self.val_sum / self.val_n.max(1) as f64;
//!         (self.val_sum, self.val_n) = (0.0, 0);
//!         Ok(vec![("loss".into(), loss)])
//!     }
//! }
//!
//! // y = 2x + 1 on 64 points.
//! let x = Tensor::rand(&[64, 1], DType::F32, &mut Generator::new(0));
//! let y = x.mul_scalar(2.0)?.add_scalar(1.0)?;
//! let data = TensorDataset::regression(&x, &y)?;
//! let train = DataLoader::new(data.clone(), 8)?;
//! let val = DataLoader::new(data, 64)?;
//! let w = Tensor::zeros(&[1, 1], DType::F32).set_requires_grad(true);
//! let b = Tensor::zeros(&[1], DType::F32).set_requires_grad(true);
//! let mut task = Fit1d { model: Linear::from_parts(w, Some(b))?, val_sum: 0.0, val_n: 0 };
//! let out = std::env::temp_dir().join(format!("nabla-train-doc-{}", std::process::id()));
//! let opts = FitOptions { epochs: 1, out: out.clone(), ..Default::default() };
//! let stop = std::sync::atomic::AtomicBool::new(false);
//! let outcome = fit(&mut task, train, Some(&val), &opts, &stop)?;
//! assert!(matches!(outcome, Outcome::Finished { best: Some((_, 1)) }));
//! assert!(out.join("last.safetensors").is_file() && out.join("metrics.jsonl").is_file());
//! # std::fs::remove_dir_all(&out).ok();
//! # Ok::<(), nabla_train::TrainError>(())
//! ```
//!
//! A task with several players (a GAN's generator and discriminator) lists each model under
//! its name and returns one [`Optim`] per player; its [`Task::training_step`] receives them
//! all and picks which to step, so an alternation such as k₁ discriminator steps then k₂
//! generator steps is plain code in the task, counted by the step index the engine passes.

mod distributed;
mod engine;
mod error;
pub mod record;
mod schedule;
mod state;
mod stop;
pub mod tensorboard;

pub use distributed::Distributed;
pub use engine::{fit, test, EarlyStop, FitOptions, Outcome};
pub use error::{Result, TrainError};
pub use record::{write_atomic, Record};
pub use schedule::{Optim, Schedule};
pub use state::Sums;
pub use stop::stop_on_ctrl_c;

use nabla_data::Batch;
use nabla_nn::Module;
use std::collections::BTreeMap;
use std::path::Path;

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Lower is better (losses, errors).
    Min,
    /// Higher is better (accuracy).
    Max,
}

/// What one training step reports: the samples it consumed and per-sample sums to add up
/// over the epoch (`loss`: the batch's mean loss times its rows, ...). A non-finite sum
/// stops the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOutput {
    /// Samples in the batch.
    pub samples: u64,
    /// Sums by name, in the order the epoch's metrics list them.
    pub sums: Vec<(&'static str, f64)>,
}

impl StepOutput {
    /// A step over `samples` samples that reports nothing yet.
    pub fn new(samples: u64) -> StepOutput {
        StepOutput { samples, sums: vec![] }
    }

    /// This output with `value` added under `name`.
    pub fn sum(mut self, name: &'static str, value: f64) -> StepOutput {
        self.sums.push((name, value));
        self
    }
}

/// A training task, in the spirit of Lightning's `LightningModule`: the engine ([`fit`])
/// calls these hooks and owns everything else.
pub trait Task {
    /// The task's models by name; a lone model may be named `""` so its checkpoint tensors
    /// keep their own names. Checkpoints save and restore every tensor and generator here.
    fn models(&self) -> Vec<(&str, &dyn Module)>;

    /// Make the optimizers (with their schedules), one per player, in the order
    /// [`Task::training_step`] receives them. Called once, before a resume restores them.
    fn configure_optimizers(&mut self) -> Result<Vec<Optim>>;

    /// One step on `batch` (`step`: steps taken before it in the whole run): forward,
    /// backward, and the update of whichever optimizers this step trains.
    fn training_step(&mut self, batch: &Batch, step: u64, optims: &mut [Optim]) -> Result<StepOutput>;

    /// One validation batch (no graph is recorded): accumulate what the metrics need.
    fn validation_step(&mut self, _batch: &Batch) -> Result<()> {
        Ok(())
    }

    /// The validation metrics by name (`loss` feeds a plateau schedule), and a fresh start
    /// for the next validation pass.
    fn validation_end(&mut self) -> Result<Vec<(String, f64)>> {
        Ok(vec![])
    }

    /// Whether every validation metric is a mean over samples (loss, accuracy), so a
    /// distributed run may shard validation and average the ranks' metrics weighted by
    /// their samples; otherwise (an RMSE, an mAP) every rank validates on the whole set.
    fn validation_means(&self) -> bool {
        true
    }

    /// The training metrics of an epoch from its sums (default: every sum per sample).
    fn train_metrics(&self, sums: &Sums) -> Vec<(String, f64)> {
        sums.means()
    }

    /// The record key that selects `best.safetensors` (`val_acc`, `val_loss`) and its direction.
    fn best(&self) -> (&'static str, Direction) {
        ("val_loss", Direction::Min)
    }

    /// One metric's value as the epoch line and the progress bar show it.
    fn show(&self, _name: &str, value: f64) -> String {
        format!("{value:.4}")
    }

    /// The progress bar's message from the epoch's sums so far.
    fn progress(&self, sums: &Sums) -> String {
        let shown = sums
            .means()
            .into_iter()
            .map(|(k, v)| format!("{k} {}", self.show(&k, v)));
        shown.collect::<Vec<_>>().join(" ")
    }

    /// After each epoch's records are written: draw the task's pictures into `dir`.
    fn epoch_end(&mut self, _dir: &Path, _history: &[Record]) -> Result<()> {
        Ok(())
    }

    /// The task's own strings for every checkpoint (what rebuilds its models later).
    fn checkpoint_extra(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// The line printed when a fresh run starts (none: nothing).
    fn start_message(&self) -> Option<String> {
        None
    }
}
