//! Classification and regression as a task of the training engine: one model, one
//! optimizer, a supervised loss per batch; accuracy or RMSE (and R²) reported.

use super::setup::{build_optimizer, build_optimizer_groups, schedule, RunMeta};
use super::{batch_loss, report, EvalSums, LossKind};
use crate::metrics::{metric_name, Confusion};
use nabla_core::Tensor;
use nabla_data::Batch;
use nabla_nn::{Mode, Module};
use nabla_train::{Direction, Optim, Record, Result, StepOutput, Sums};
use std::collections::BTreeMap;
use std::path::Path;

/// A model trained on labels (classification) or targets (regression).
pub struct Supervised {
    model: Box<dyn Module>,
    params: Vec<Tensor>,
    meta: RunMeta,
    kind: LossKind,
    banner: String,
    val: EvalSums,
    last: Option<Confusion>,
    groups: Option<Vec<nabla_nn::optim::ParamGroup>>,
    extra: BTreeMap<String, String>,
}

impl Supervised {
    /// The task of a run described by `meta`, training `model`; `banner` opens a fresh run.
    pub fn new(model: Box<dyn Module>, meta: &RunMeta, banner: String) -> Supervised {
        let kind = LossKind::of(&meta.config);
        Supervised {
            params: model.trainable_parameters(),
            model,
            meta: meta.clone(),
            kind,
            banner,
            val: EvalSums::new(kind, meta.classes.len(), meta.target_scale),
            last: None,
            groups: None,
            extra: BTreeMap::new(),
        }
    }

    /// The same task saving these entries in its checkpoints beside the run's metadata.
    pub fn with_extra(mut self, extra: impl IntoIterator<Item = (String, String)>) -> Supervised {
        self.extra.extend(extra);
        self
    }

    /// The same task training these parameter groups (each with its own rate) instead of one.
    pub fn with_groups(mut self, groups: Vec<nabla_nn::optim::ParamGroup>) -> Supervised {
        self.groups = Some(groups);
        self
    }

    /// The confusion matrix of the latest validation (or test) pass of a classifier.
    pub fn last_confusion(&self) -> Option<&Confusion> {
        self.last.as_ref()
    }

    fn regression(&self) -> bool {
        self.kind == LossKind::Regression
    }
}

impl nabla_train::Task for Supervised {
    fn models(&self) -> Vec<(&str, &dyn Module)> {
        vec![("", self.model.as_ref())]
    }

    fn configure_optimizers(&mut self) -> Result<Vec<Optim>> {
        let cfg = &self.meta.config;
        let mut optimizer = match &self.groups {
            Some(g) => build_optimizer_groups(cfg, g.clone())?,
            None => build_optimizer(cfg, self.params.clone())?,
        };
        let schedule = schedule(cfg, optimizer.as_mut())?;
        Ok(vec![Optim::new(optimizer, schedule)])
    }

    fn training_step(&mut self, b: &Batch, _step: u64, optims: &mut [Optim]) -> Result<StepOutput> {
        let rows = b.inputs.shape()[0] as u64;
        let logits = self.model.forward(&b.inputs, Mode::Train)?;
        let loss = batch_loss(&logits, b, self.kind, self.meta.config.label_smoothing)?;
        let lv = loss.item()?;
        if !lv.is_finite() {
            // Not stepped: the engine stops on this value and keeps the last checkpoint.
            return Ok(StepOutput::new(rows).sum("loss", lv));
        }
        let mut grads = loss.backward()?;
        optims[0].step(&mut grads, &self.params)?;
        drop(grads);
        let step = StepOutput::new(rows).sum("loss", lv * rows as f64);
        if self.regression() {
            return Ok(step);
        }
        let pred = logits.argmax(1, false)?;
        let correct = pred.iter().zip(&b.labels).filter(|(a, b)| a == b).count();
        Ok(step.sum("acc", correct as f64))
    }

    fn validation_step(&mut self, b: &Batch) -> Result<()> {
        let out = self.model.forward(&b.inputs, Mode::Eval)?;
        Ok(self.val.add(&out, b)?)
    }

    fn validation_end(&mut self) -> Result<Vec<(String, f64)>> {
        let ev = self.val.take();
        self.last = ev.confusion.clone();
        let mut m = vec![
            ("loss".to_string(), ev.loss),
            (metric_name(self.regression()).to_string(), ev.metric()),
        ];
        if let Some(r) = &ev.regression {
            m.push(("r2".into(), r.r2()));
        }
        Ok(m)
    }

    fn validation_means(&self) -> bool {
        // RMSE and R² are not means over samples.
        !self.regression()
    }

    fn train_metrics(&self, sums: &Sums) -> Vec<(String, f64)> {
        let n = sums.seen.max(1) as f64;
        let loss = sums.get("loss") / n;
        let metric = match (self.regression(), self.meta.target_scale) {
            (true, Some((_, s))) => loss.sqrt() * s as f64,
            (true, None) => loss.sqrt(),
            (false, _) => sums.get("acc") / n,
        };
        vec![("loss".into(), loss), (metric_name(self.regression()).into(), metric)]
    }

    fn best(&self) -> (&'static str, Direction) {
        if self.regression() {
            ("val_rmse", Direction::Min)
        } else {
            ("val_acc", Direction::Max)
        }
    }

    fn show(&self, name: &str, value: f64) -> String {
        match name {
            "acc" => format!("{:.2}%", 100.0 * value),
            _ => format!("{value:.4}"),
        }
    }

    fn epoch_end(&mut self, dir: &Path, history: &[Record]) -> Result<()> {
        Ok(report::write_curves(dir, history, self.regression())?)
    }

    fn checkpoint_extra(&self) -> BTreeMap<String, String> {
        let mut m = self.meta.to_extra();
        m.extend(self.extra.clone());
        m
    }

    fn start_message(&self) -> Option<String> {
        Some(self.banner.clone())
    }
}
