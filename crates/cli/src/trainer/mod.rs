//! `nabla train`'s run: the data, the model and the [`task::Supervised`] task built from the
//! configuration, trained by the engine of `nabla_train`, and the closing confusion matrix.
//!
//! Resuming is exact because everything a step depends on is either in the checkpoint (the
//! weights, the optimizer's buffers, the schedule, the epoch and the batch within it, the
//! running sums of the epoch) or derived from the seed (the model's initialization, every
//! epoch's shuffle and augmentation).

pub mod data;
pub mod folder;
pub mod imagefolder;
pub mod report;
pub mod setup;
pub mod task;
pub mod world;

use crate::config::{Task, TrainConfig};
use crate::error::{CliError, CliResult};
use crate::metrics::{Confusion, Regression};
use data::Data;
use nabla_core::{no_grad, Tensor};
use nabla_data::transforms::{Compose, Normalize, RandomCrop, RandomHorizontalFlip, Transform};
use nabla_data::{Batch, DataLoader};
use nabla_nn::loss::{cross_entropy, mse_loss, CrossEntropyOptions, Reduction};
use nabla_nn::{Mode, Module};
use nabla_train::FitOptions;
use setup::{build_model, model_config, RunMeta};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// How a run is to be carried out, beyond its configuration.
pub struct Options {
    /// The resolved configuration.
    pub cfg: TrainConfig,
    /// A checkpoint to continue from.
    pub resume: Option<PathBuf>,
    /// A checkpoint whose weights a fresh run starts from.
    pub init_from: Option<PathBuf>,
    /// Write into a non-empty `--out` folder.
    pub overwrite: bool,
    /// Stop (as Ctrl-C does) after this many optimizer steps in total.
    pub stop_after_steps: Option<u64>,
    /// A learning rate that replaces the checkpoint's on resume.
    pub lr_override: Option<f64>,
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All epochs done.
    Finished,
    /// Stopped early; the checkpoint to resume from.
    Stopped(PathBuf),
}

/// What the loss compares the model's output with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    /// Cross-entropy against class labels.
    CrossEntropy,
    /// MSE against one-hot labels.
    MseOneHot,
    /// MSE against (standardized) regression targets.
    Regression,
}

impl LossKind {
    /// The loss a configuration asks for.
    pub fn of(cfg: &TrainConfig) -> LossKind {
        match (cfg.task, cfg.loss.as_str()) {
            (Task::Regression, _) => LossKind::Regression,
            (_, "mse") => LossKind::MseOneHot,
            _ => LossKind::CrossEntropy,
        }
    }
}

/// The mean loss of a batch; cross-entropy against targets smoothed by `smoothing` (training
/// only: validation and test losses are plain cross-entropy, as timm reports them).
pub fn batch_loss(out: &Tensor, b: &Batch, kind: LossKind, smoothing: f64) -> CliResult<Tensor> {
    Ok(match kind {
        LossKind::CrossEntropy => {
            let opts = CrossEntropyOptions {
                label_smoothing: smoothing,
                ..Default::default()
            };
            cross_entropy(out, &b.labels[..], &opts)
        }
        LossKind::MseOneHot => {
            let classes = out.shape().get(1).copied().unwrap_or(1);
            let onehot = Tensor::one_hot(&b.labels, classes, out.dtype())?;
            mse_loss(out, &onehot, Reduction::Mean)
        }
        LossKind::Regression => match &b.targets {
            Some(t) => mse_loss(out, &t.to_dtype(out.dtype())?, Reduction::Mean),
            None => return Err(CliError::new("regression batch without targets")),
        },
    }?)
}

/// What one pass over a validation or test set measured.
pub struct Evaluation {
    /// Mean loss per sample.
    pub loss: f64,
    /// Classification: the confusion matrix.
    pub confusion: Option<Confusion>,
    /// Regression: errors in the targets' own units.
    pub regression: Option<Regression>,
}

impl Evaluation {
    /// Accuracy, or RMSE for regression.
    pub fn metric(&self) -> f64 {
        match (&self.confusion, &self.regression) {
            (Some(c), _) => c.accuracy(),
            (_, Some(r)) => r.rmse(),
            _ => f64::NAN,
        }
    }
}

/// Running sums of a validation pass: the loss, and the confusion matrix or the regression
/// errors.
pub struct EvalSums {
    kind: LossKind,
    classes: usize,
    target_scale: Option<(f32, f32)>,
    loss_sum: f64,
    n: usize,
    confusion: Option<Confusion>,
    regression: Option<Regression>,
}

impl EvalSums {
    /// Empty sums for a task with this loss and these classes (regression targets scaled
    /// back to their own units with `target_scale`).
    pub fn new(kind: LossKind, classes: usize, target_scale: Option<(f32, f32)>) -> EvalSums {
        EvalSums {
            kind,
            classes,
            target_scale,
            loss_sum: 0.0,
            n: 0,
            confusion: (kind != LossKind::Regression).then(|| Confusion::new(classes)),
            regression: (kind == LossKind::Regression).then(Regression::default),
        }
    }

    /// Add a batch and the model's output for it.
    pub fn add(&mut self, out: &Tensor, b: &Batch) -> CliResult<()> {
        let rows = b.inputs.shape()[0];
        self.loss_sum += batch_loss(out, b, self.kind, 0.0)?.item()? * rows as f64;
        self.n += rows;
        if let Some(c) = self.confusion.as_mut() {
            for (&t, &p) in b.labels.iter().zip(&out.argmax(1, false)?) {
                c.add(t, p);
            }
        }
        if let (Some(r), Some(t)) = (self.regression.as_mut(), &b.targets) {
            let (m, s) = self.target_scale.map_or((0.0, 1.0), |(m, s)| (m as f64, s as f64));
            let pred: Vec<f64> = out.to_vec_f64().iter().map(|v| v * s + m).collect();
            let truth: Vec<f64> = t.to_vec_f64().iter().map(|v| v * s + m).collect();
            r.add(&pred, &truth);
        }
        Ok(())
    }

    /// What the pass measured; the sums start again from empty.
    pub fn take(&mut self) -> Evaluation {
        let fresh = EvalSums::new(self.kind, self.classes, self.target_scale);
        let done = std::mem::replace(self, fresh);
        Evaluation {
            loss: done.loss_sum / done.n.max(1) as f64,
            confusion: done.confusion,
            regression: done.regression,
        }
    }
}

/// Run `model` over every batch of `loader` in eval mode, recording no graph.
pub fn evaluate(
    model: &dyn Module,
    loader: &DataLoader,
    kind: LossKind,
    classes: usize,
    target_scale: Option<(f32, f32)>,
) -> CliResult<Evaluation> {
    let _guard = no_grad();
    let mut sums = EvalSums::new(kind, classes, target_scale);
    for b in loader.epoch(0) {
        let b = b?;
        sums.add(&model.forward(&b.inputs, Mode::Eval)?, &b)?;
    }
    Ok(sums.take())
}

/// The transform image batches go through: optional augmentation, then normalization.
pub fn image_transform(data_norm: &(Vec<f32>, Vec<f32>), augment: bool, hw: [usize; 2]) -> CliResult<Compose> {
    let mut steps: Vec<Box<dyn Transform>> = Vec::new();
    if augment {
        steps.push(Box::new(RandomCrop::new(hw, 2)));
        steps.push(Box::new(RandomHorizontalFlip::new(0.5)));
    }
    let norm = Normalize::new(data_norm.0.clone(), data_norm.1.clone())?;
    steps.push(Box::new(norm));
    Ok(Compose::new(steps))
}

/// A loader over `ds`, normalizing (and augmenting) images.
pub fn make_loader(
    ds: std::sync::Arc<dyn nabla_data::Dataset>,
    batch: usize,
    data_shape: &[usize],
    norm: &(Vec<f32>, Vec<f32>),
    augment: bool,
) -> CliResult<DataLoader> {
    let loader = DataLoader::from_arc(ds, batch)?;
    Ok(match data_shape {
        [_, h, w] => loader.transform(image_transform(norm, augment, [*h, *w])?),
        _ => loader,
    })
}

/// The configuration saved in a checkpoint, to resume with (flags then override it).
pub fn resume_config(path: &Path) -> CliResult<TrainConfig> {
    let ck = setup::read_checkpoint(path, "--resume ")?;
    Ok(RunMeta::from_checkpoint(&ck, path)?.config)
}

/// Train as `opts` says; `stop` is raised by Ctrl-C.
pub fn run(opts: Options, stop: &AtomicBool) -> CliResult<Outcome> {
    run_with(opts, None, stop)
}

/// [`run`] as one rank of a data-parallel job (`None`: alone). Rank 0 makes the run folder
/// and tells the others; only rank 0 prints, writes, and scores the test split.
pub fn run_with(opts: Options, dist: Option<nabla_train::Distributed>, stop: &AtomicBool) -> CliResult<Outcome> {
    let cfg = opts.cfg;
    cfg.validate()?;
    setup::check_trainable(&cfg)?;
    let data: Data = data::load(&cfg)?;
    let kind = LossKind::of(&cfg);
    let mc = model_config(&cfg, &data.input_shape, data.classes.len());
    let model = build_model(&cfg.model, &mc)?;
    if let Some(p) = &opts.init_from {
        setup::read_checkpoint(p, "--init-from ")?;
    }
    // Only now that the arguments, the data and the model are good.
    let main = dist.as_ref().is_none_or(|d| d.is_main());
    let out = match &dist {
        None => folder::create(&cfg, opts.resume.is_some(), opts.overwrite)?,
        Some(d) => world::shared_folder(d, || folder::create(&cfg, opts.resume.is_some(), opts.overwrite))?,
    };
    let count = |d: &Option<std::sync::Arc<dyn nabla_data::Dataset>>| d.as_ref().map_or(0, |d| d.len());
    let test_part = match &data.test {
        Some(t) => format!(", {} test", t.len()),
        None => String::new(),
    };
    let banner = format!(
        "training {} ({} parameters) on {} ({} training, {} validation{test_part} samples from {}); run folder {}",
        cfg.model,
        model.num_parameters(),
        cfg.dataset,
        data.train.len(),
        count(&data.val),
        data.origin.display(),
        out.display()
    );
    let meta = RunMeta {
        model: cfg.model.clone(),
        model_config: mc,
        config: cfg.clone(),
        classes: data.classes.clone(),
        input_shape: data.input_shape.clone(),
        normalize: data.normalize.clone(),
        target_scale: data.target_scale,
        features: data.features.clone(),
    };
    let mut task = task::Supervised::new(model, &meta, banner);
    let shape = data.input_shape.clone();
    let loader =
        make_loader(data.train.clone(), cfg.batch_size, &shape, &data.normalize, cfg.augment)?.num_workers(cfg.workers);
    let eval_loader =
        |d: &std::sync::Arc<dyn nabla_data::Dataset>| make_loader(d.clone(), 500, &shape, &data.normalize, false);
    let val_loader = data.val.as_ref().map(eval_loader).transpose()?;
    let mut fit = fit_options(
        &cfg,
        &out,
        opts.resume,
        opts.init_from,
        opts.stop_after_steps,
        opts.lr_override,
    );
    fit.distributed = dist;
    let best = match nabla_train::fit(&mut task, loader, val_loader.as_ref(), &fit, stop)? {
        nabla_train::Outcome::Stopped(last) => return Ok(Outcome::Stopped(last)),
        nabla_train::Outcome::Finished { .. } if !main => return Ok(Outcome::Finished),
        nabla_train::Outcome::Finished { best } => best,
    };
    // The test split, once: the best checkpoint's weights (the last's without validation).
    let chosen = out.join(if best.is_some() {
        "best.safetensors"
    } else {
        "last.safetensors"
    });
    let validated = match best {
        Some((m, epoch)) if kind == LossKind::Regression => format!("best validation RMSE {m:.4} at epoch {epoch}"),
        Some((m, epoch)) => format!("best validation accuracy {:.2}% at epoch {epoch}", 100.0 * m),
        None if val_loader.is_some() => "no epoch had a finite validation score".into(),
        None => "no validation split (--val-size 0), so no best checkpoint".into(),
    };
    let Some(test) = &data.test else {
        if let (Some((_, epoch)), Some(v)) = (best, &val_loader) {
            if kind != LossKind::Regression {
                confusion_on(&chosen, v, kind, &data, epoch, "validation", &out)?;
            }
        }
        println!("done; {validated}; files in {}", out.display());
        return Ok(Outcome::Finished);
    };
    let metrics = nabla_train::test(&mut task, &eval_loader(test)?, &chosen, &out)?;
    let get = |k: &str| metrics.iter().find(|(n, _)| n == k).map_or(f64::NAN, |(_, v)| *v);
    let file = chosen.file_name().map_or("".into(), |n| n.to_string_lossy());
    let tested = match kind {
        LossKind::Regression => format!("test RMSE {:.4} ({file})", get("test_rmse")),
        _ => format!("test accuracy {:.2}% ({file})", 100.0 * get("test_acc")),
    };
    if let Some(c) = task.last_confusion() {
        let epoch = best.map_or(cfg.epochs as u64, |(_, e)| e);
        let title = format!(
            "{} on {} (test): epoch {epoch}, accuracy {:.2}%",
            cfg.model,
            cfg.dataset,
            100.0 * c.accuracy()
        );
        report::write_confusion(&out, c, &data.classes, &title)?;
    }
    println!("done; {validated}; {tested}; files in {}", out.display());
    Ok(Outcome::Finished)
}

/// `confusion.png` of the weights in `ck` on `loader` (a table's held-out rows), scored on
/// a fresh model so the trained one is left as it is.
fn confusion_on(
    ck: &Path,
    loader: &DataLoader,
    kind: LossKind,
    data: &Data,
    epoch: u64,
    split: &str,
    out: &Path,
) -> CliResult<()> {
    let (model, meta, _) = setup::load_trained(ck)?;
    let ev = evaluate(model.as_ref(), loader, kind, meta.classes.len(), None)?;
    if let Some(c) = &ev.confusion {
        let title = format!(
            "{} on {} ({split}): best epoch {epoch}, accuracy {:.2}%",
            meta.model,
            meta.config.dataset,
            100.0 * c.accuracy()
        );
        report::write_confusion(out, c, &data.classes, &title)?;
    }
    Ok(())
}

/// The engine's options for a run of `cfg` into `out` (every task `nabla train` runs shares
/// them): the command's resume, init and stop flags go through as they are.
pub(crate) fn fit_options(
    cfg: &TrainConfig,
    out: &std::path::Path,
    resume: Option<PathBuf>,
    init_from: Option<PathBuf>,
    stop_after_steps: Option<u64>,
    lr_override: Option<f64>,
) -> FitOptions {
    FitOptions {
        epochs: cfg.epochs as u64,
        seed: cfg.seed,
        out: out.to_path_buf(),
        resume,
        init_from,
        stop_after_steps,
        lr_override,
        config: Some(cfg.to_toml()),
        early_stop: cfg.early_stop.map(|patience| nabla_train::EarlyStop {
            patience,
            min_delta: cfg.min_delta,
        }),
        clip_grad_norm: cfg.clip_grad_norm,
        warmup_epochs: cfg.warmup_epochs as u64,
        tensorboard: cfg.tensorboard,
        distributed: None,
    }
}
