//! The training configuration: defaults, a TOML file (`key = value` lines), and flags on top.
//!
//! The file format is the subset of TOML a flat configuration needs: one `key = value` per
//! line, `#` comments, values that are numbers, `true`/`false`, "strings" or `[1, 2]` lists.
//! Keys are the long flag names with `-` or `_` (`batch_size = 128`). The resolved
//! configuration is written back in the same form (`config.toml` in the run folder, and into
//! every checkpoint), so a run can be repeated with `--config runs/x/config.toml`.

pub mod detect;
mod format;
pub mod images;

pub use format::{parse_keys, Value};
pub(crate) use format::{want_count, want_num, want_str};

use crate::error::{CliError, CliResult};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What is learned: classes or numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Class labels, cross-entropy (or MSE on one-hot targets), accuracy.
    Classification,
    /// Numbers from a CSV column, MSE, RMSE and R².
    Regression,
    /// A class and a box per image (scenes), cross-entropy + λ·box loss, IoU.
    Localize,
    /// A class per pixel (scenes), per-pixel cross-entropy, mIoU.
    Segment,
    /// Every object's class and box (scenes, COCO or VOC folders), a two-stage detector, mAP.
    Detect,
}

impl Task {
    /// The name used in flags and files.
    pub fn name(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
            Task::Localize => "localize",
            Task::Segment => "segment",
            Task::Detect => "detect",
        }
    }

    /// Whether the task trains on scenes (localize, segment) rather than labels or targets.
    pub fn on_scenes(self) -> bool {
        matches!(self, Task::Localize | Task::Segment)
    }
}

/// Every setting of a training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Model name in the zoo (`lenet5`, `mlp`, ...).
    pub model: String,
    /// Data set (`fashion-mnist`, `mnist`, `kmnist`, `imagefolder`, `cifar10`, `cifar100`, `csv`).
    pub dataset: String,
    /// Where to look for the data set first.
    pub data_dir: Option<PathBuf>,
    /// A CSV file (regression or tabular classification).
    pub data: Option<PathBuf>,
    /// The CSV column to predict.
    pub target: Option<String>,
    /// Classification or regression.
    pub task: Task,
    /// Epochs to train in total.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// `sgd`, `adam`, `adamw` or `rmsprop`.
    pub optimizer: String,
    /// Momentum of SGD and RMSprop (Adam's β₁ stays 0.9).
    pub momentum: f64,
    /// L2 penalty (decoupled for AdamW).
    pub weight_decay: f64,
    /// `none`, `cosine`, `step`, `exponential` or `plateau`.
    pub scheduler: String,
    /// Random crops and flips of training images.
    pub augment: bool,
    /// Seed of the initialization, the shuffles and the augmentation.
    pub seed: u64,
    /// Compute threads (0: one per core).
    pub threads: usize,
    /// Run folder (default `runs/<model>-<dataset>`).
    pub out: Option<PathBuf>,
    /// `cross-entropy` or `mse`.
    pub loss: String,
    /// Use only the first N training samples.
    pub limit: Option<usize>,
    /// Hidden layer sizes of an MLP.
    pub hidden: Vec<usize>,
    /// Activation of an MLP (`relu`, `tanh`, `sigmoid`, `gelu`, ...).
    pub activation: String,
    /// A model variant (`classic` or `modern` LeNet-5).
    pub variant: Option<String>,
    /// Training samples held out for validation (images: default one twelfth of the training
    /// split, 5,000 of Fashion-MNIST's 60,000; 0: no validation and no best checkpoint).
    pub val_size: Option<usize>,
    /// Fraction of the training samples (or table rows) held out for validation instead
    /// (tables: default 0.2).
    pub val_fraction: Option<f64>,
    /// Validate on the first N held-out samples only.
    pub val_limit: Option<usize>,
    /// Background threads building batches.
    pub workers: usize,
    /// Stop after this many epochs without a better validation score.
    pub early_stop: Option<u64>,
    /// The smallest change of the validation score that counts for early stopping.
    pub min_delta: f64,
    /// Clip the gradients' global L2 norm to this before each step.
    pub clip_grad_norm: Option<f64>,
    /// Cross-entropy against targets smoothed by this much (PyTorch's `label_smoothing`).
    pub label_smoothing: f64,
    /// Epochs between decays of the `step` schedule (default a third of the epochs).
    pub step_size: Option<usize>,
    /// Decay factor of `step`, `multistep` (default 0.1) and `exponential` (default: down
    /// to 1% by the last epoch).
    pub gamma: Option<f64>,
    /// Epochs at which `multistep` decays.
    pub milestones: Vec<usize>,
    /// Epochs without a lower validation loss before `plateau` lowers the rate (default 2).
    pub patience: Option<u64>,
    /// Epochs of linear learning-rate warm-up (scaling the schedule's rate).
    pub warmup_epochs: usize,
    /// Write TensorBoard event files into the run folder.
    pub tensorboard: bool,
    /// Localize: the box loss, `l2` (MSE) or `smooth-l1` (β = 1/9 of the normalized box).
    pub box_loss: String,
    /// Localize: λ, the weight of the box loss beside the class cross-entropy.
    pub box_weight: f64,
    /// Segment: per-class weights of the cross-entropy, `auto` (inverse pixel frequency of
    /// the training masks) or `none`.
    pub class_weights: String,
    /// Segment: a mask label whose pixels count for nothing.
    pub ignore_index: Option<usize>,
    /// Detect: backbone, RoI extractor, tiles.
    pub detect: detect::DetectConfig,
    /// Image folders and CIFAR: input size, normalization, strictness.
    pub images: images::ImageConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: "lenet5".into(),
            dataset: "fashion-mnist".into(),
            data_dir: None,
            data: None,
            target: None,
            task: Task::Classification,
            epochs: 10,
            batch_size: 64,
            lr: 0.05,
            optimizer: "sgd".into(),
            momentum: 0.9,
            weight_decay: 5e-4,
            scheduler: "cosine".into(),
            augment: false,
            seed: 0,
            threads: 0,
            out: None,
            loss: "cross-entropy".into(),
            limit: None,
            hidden: vec![256],
            activation: "relu".into(),
            variant: None,
            val_size: None,
            val_fraction: None,
            val_limit: None,
            workers: 0,
            early_stop: None,
            min_delta: 0.0,
            clip_grad_norm: None,
            label_smoothing: 0.0,
            step_size: None,
            gamma: None,
            milestones: vec![],
            patience: None,
            warmup_epochs: 0,
            tensorboard: false,
            box_loss: "l2".into(),
            box_weight: 5.0,
            class_weights: "none".into(),
            ignore_index: None,
            detect: detect::DetectConfig::default(),
            images: images::ImageConfig::default(),
        }
    }
}

/// The names a config file may use (with `_`; `-` is accepted too).
pub const KEYS: &[&str] = &[
    "model",
    "dataset",
    "data_dir",
    "data",
    "target",
    "task",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "momentum",
    "weight_decay",
    "scheduler",
    "augment",
    "seed",
    "threads",
    "out",
    "loss",
    "limit",
    "hidden",
    "activation",
    "variant",
    "val_size",
    "val_fraction",
    "val_split",
    "val_limit",
    "workers",
    "early_stop",
    "min_delta",
    "clip_grad_norm",
    "label_smoothing",
    "step_size",
    "gamma",
    "milestones",
    "patience",
    "warmup_epochs",
    "tensorboard",
    "box_loss",
    "box_weight",
    "class_weights",
    "ignore_index",
];

/// Parse the `key = value` text of a config file into values by key (checked against [`KEYS`]).
pub fn parse(text: &str, origin: &Path) -> CliResult<BTreeMap<String, Value>> {
    let keys: Vec<&str> = KEYS.iter().chain(detect::KEYS).chain(images::KEYS).copied().collect();
    parse_keys(text, origin, &keys)
}

/// Parse a task name.
pub fn parse_task(s: &str) -> CliResult<Task> {
    match s {
        "classification" => Ok(Task::Classification),
        "regression" => Ok(Task::Regression),
        "localize" => Ok(Task::Localize),
        "segment" => Ok(Task::Segment),
        "detect" => Ok(Task::Detect),
        _ => Err(CliError::new(format!(
            "unknown task {s:?} (classification, regression, localize, segment or detect)"
        ))),
    }
}

impl TrainConfig {
    /// Apply the values of a parsed file on top of `self`.
    pub fn apply(&mut self, values: &BTreeMap<String, Value>) -> CliResult<()> {
        for (key, v) in values {
            let k = key.as_str();
            match k {
                "model" => self.model = want_str(k, v)?,
                "dataset" => self.dataset = want_str(k, v)?,
                "data_dir" => self.data_dir = Some(want_str(k, v)?.into()),
                "data" => self.data = Some(want_str(k, v)?.into()),
                "target" => self.target = Some(want_str(k, v)?),
                "task" => self.task = parse_task(&want_str(k, v)?)?,
                "epochs" => self.epochs = want_count(k, v)?,
                "batch_size" => self.batch_size = want_count(k, v)?,
                "lr" => self.lr = want_num(k, v)?,
                "optimizer" => self.optimizer = want_str(k, v)?,
                "momentum" => self.momentum = want_num(k, v)?,
                "weight_decay" => self.weight_decay = want_num(k, v)?,
                "scheduler" => self.scheduler = want_str(k, v)?,
                "augment" => match v {
                    Value::Bool(b) => self.augment = *b,
                    _ => return Err(CliError::new("config: augment must be true or false")),
                },
                "seed" => self.seed = want_count(k, v)? as u64,
                "threads" => self.threads = want_count(k, v)?,
                "out" => self.out = Some(want_str(k, v)?.into()),
                "loss" => self.loss = want_str(k, v)?,
                "limit" => self.limit = Some(want_count(k, v)?),
                "hidden" => match v {
                    Value::List(xs) => {
                        self.hidden = xs
                            .iter()
                            .map(|&x| want_count(k, &Value::Num(x)))
                            .collect::<CliResult<_>>()?
                    }
                    _ => return Err(CliError::new("config: hidden must be a list like [256, 128]")),
                },
                "activation" => self.activation = want_str(k, v)?,
                "variant" => self.variant = Some(want_str(k, v)?),
                "val_size" => self.val_size = Some(want_count(k, v)?),
                "val_fraction" => self.val_fraction = Some(want_num(k, v)?),
                // Its name before val_size existed, when it applied to tables only (and every
                // configuration wrote it): `data` and `dataset` sort before it, so they are set.
                "val_split" => {
                    if self.dataset == "csv" || self.data.is_some() {
                        self.val_fraction = Some(want_num(k, v)?);
                    }
                }
                "val_limit" => self.val_limit = Some(want_count(k, v)?),
                "workers" => self.workers = want_count(k, v)?,
                "early_stop" => self.early_stop = Some(want_count(k, v)? as u64),
                "min_delta" => self.min_delta = want_num(k, v)?,
                "clip_grad_norm" => self.clip_grad_norm = Some(want_num(k, v)?),
                "label_smoothing" => self.label_smoothing = want_num(k, v)?,
                "step_size" => self.step_size = Some(want_count(k, v)?),
                "gamma" => self.gamma = Some(want_num(k, v)?),
                "milestones" => match v {
                    Value::List(xs) => {
                        self.milestones = xs
                            .iter()
                            .map(|&x| want_count(k, &Value::Num(x)))
                            .collect::<CliResult<_>>()?
                    }
                    _ => return Err(CliError::new("config: milestones must be a list like [30, 60]")),
                },
                "patience" => self.patience = Some(want_count(k, v)? as u64),
                "warmup_epochs" => self.warmup_epochs = want_count(k, v)?,
                "tensorboard" => match v {
                    Value::Bool(b) => self.tensorboard = *b,
                    _ => return Err(CliError::new("config: tensorboard must be true or false")),
                },
                "box_loss" => self.box_loss = want_str(k, v)?,
                "box_weight" => self.box_weight = want_num(k, v)?,
                "class_weights" => self.class_weights = want_str(k, v)?,
                "ignore_index" => self.ignore_index = Some(want_count(k, v)?),
                k if detect::KEYS.contains(&k) => self.detect.apply(k, v)?,
                k if images::KEYS.contains(&k) => self.images.apply(k, v)?,
                _ => return Err(CliError::new(format!("config: unknown key {k:?}"))),
            }
        }
        Ok(())
    }

    /// Read a config file and apply it on top of `self`.
    pub fn apply_file(&mut self, path: &Path) -> CliResult<()> {
        let text = std::fs::read_to_string(path).map_err(|e| CliError::io("read config", path, e))?;
        self.apply(&parse(&text, path)?)
    }

    /// Check the values that no later step checks with a clear message.
    pub fn validate(&self) -> CliResult<()> {
        let fail = |m: String| Err(CliError::new(m));
        if self.epochs == 0 {
            return fail("--epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return fail("--batch-size must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return fail(format!("--lr must be a positive number, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return fail(format!("--momentum must be in [0, 1), got {}", self.momentum));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return fail(format!("--weight-decay must be ≥ 0, got {}", self.weight_decay));
        }
        if let Some(f) = self.val_fraction {
            if !(0.0..1.0).contains(&f) {
                return fail(format!("--val-fraction must be in [0, 1), got {f}"));
            }
            if self.val_size.is_some() {
                return fail("give --val-size or --val-fraction, not both".into());
            }
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.threads > cores {
            return fail(format!(
                "--threads {}: this machine has {cores} cores (0 uses them all)",
                self.threads
            ));
        }
        if self.workers > cores {
            return fail(format!(
                "--workers {}: at most {cores}, the cores of this machine",
                self.workers
            ));
        }
        if self.limit == Some(0) {
            return fail("--limit must be at least 1".into());
        }
        if self.val_limit == Some(0) {
            return fail("--val-limit must be at least 1 (--val-size 0 turns validation off)".into());
        }
        if self.hidden.contains(&0) {
            return fail("--hidden sizes must be at least 1".into());
        }
        let one_of = |what: &str, v: &str, known: &[&str]| -> CliResult<()> {
            if known.contains(&v) {
                Ok(())
            } else {
                Err(CliError::new(format!(
                    "unknown {what} {v:?} (known: {})",
                    known.join(", ")
                )))
            }
        };
        one_of("optimizer", &self.optimizer, &["sgd", "adam", "adamw", "rmsprop"])?;
        one_of(
            "scheduler",
            &self.scheduler,
            &["none", "cosine", "step", "multistep", "exponential", "plateau"],
        )?;
        one_of("loss", &self.loss, &["cross-entropy", "mse"])?;
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return fail(format!(
                "--label-smoothing must be in [0, 1], got {}",
                self.label_smoothing
            ));
        }
        if self.label_smoothing > 0.0 && (self.loss != "cross-entropy" || self.task == Task::Regression) {
            return fail("--label-smoothing needs the cross-entropy loss".into());
        }
        if !(self.min_delta >= 0.0 && self.min_delta.is_finite()) {
            return fail(format!("--min-delta must be ≥ 0, got {}", self.min_delta));
        }
        if self.early_stop == Some(0) {
            return fail("--early-stop must be at least 1 epoch".into());
        }
        if let Some(c) = self.clip_grad_norm {
            if !(c > 0.0 && c.is_finite()) {
                return fail(format!("--clip-grad-norm must be a positive number, got {c}"));
            }
        }
        if let Some(g) = self.gamma {
            if !(g > 0.0 && g <= 1.0) {
                return fail(format!("--gamma must be in (0, 1], got {g}"));
            }
        }
        if self.step_size == Some(0) {
            return fail("--step-size must be at least 1".into());
        }
        if self.scheduler == "multistep" && self.milestones.is_empty() {
            return fail("--scheduler multistep needs --milestones, e.g. --milestones 5,8".into());
        }
        if self.task == Task::Regression && self.loss != "mse" {
            return fail("regression trains with --loss mse".into());
        }
        one_of("box loss", &self.box_loss, &["l2", "smooth-l1"])?;
        if !(self.box_weight >= 0.0 && self.box_weight.is_finite()) {
            return fail(format!("--box-weight must be a number ≥ 0, got {}", self.box_weight));
        }
        one_of("class weights", &self.class_weights, &["auto", "none"])?;
        if self.task == Task::Detect {
            self.detect.validate()?;
        }
        self.images.validate()
    }

    /// The run folder: `--out`, else `runs/<model>-<dataset>`.
    pub fn out_dir(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            let data = match (&self.data, self.dataset.as_str()) {
                (Some(p), "csv") => p.file_stem().map_or("csv".into(), |s| s.to_string_lossy().into_owned()),
                _ => self.dataset.clone(),
            };
            PathBuf::from("runs").join(format!("{}-{data}", self.model))
        })
    }

    /// The configuration in the file format, every key written (paths absolute where known).
    pub fn to_toml(&self) -> String {
        let mut s = String::from("# nabla train configuration (use with --config FILE; flags override)\n");
        let q = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\"));
        let p = |v: &Path| q(&v.to_string_lossy());
        let mut line = |k: &str, v: String| {
            let _ = writeln!(s, "{k} = {v}");
        };
        line("model", q(&self.model));
        line("dataset", q(&self.dataset));
        if let Some(d) = &self.data_dir {
            line("data_dir", p(d));
        }
        if let Some(d) = &self.data {
            line("data", p(d));
        }
        if let Some(t) = &self.target {
            line("target", q(t));
        }
        line("task", q(self.task.name()));
        line("epochs", self.epochs.to_string());
        line("batch_size", self.batch_size.to_string());
        line("lr", format!("{:?}", self.lr));
        line("optimizer", q(&self.optimizer));
        line("momentum", format!("{:?}", self.momentum));
        line("weight_decay", format!("{:?}", self.weight_decay));
        line("scheduler", q(&self.scheduler));
        line("augment", self.augment.to_string());
        line("seed", self.seed.to_string());
        line("threads", self.threads.to_string());
        if let Some(o) = &self.out {
            line("out", p(o));
        }
        line("loss", q(&self.loss));
        if let Some(l) = self.limit {
            line("limit", l.to_string());
        }
        let hidden: Vec<String> = self.hidden.iter().map(|h| h.to_string()).collect();
        line("hidden", format!("[{}]", hidden.join(", ")));
        line("activation", q(&self.activation));
        if let Some(v) = &self.variant {
            line("variant", q(v));
        }
        if let Some(v) = self.val_size {
            line("val_size", v.to_string());
        }
        if let Some(v) = self.val_fraction {
            line("val_fraction", format!("{v:?}"));
        }
        if let Some(v) = self.val_limit {
            line("val_limit", v.to_string());
        }
        line("workers", self.workers.to_string());
        if let Some(v) = self.early_stop {
            line("early_stop", v.to_string());
        }
        line("min_delta", format!("{:?}", self.min_delta));
        if let Some(v) = self.clip_grad_norm {
            line("clip_grad_norm", format!("{v:?}"));
        }
        line("label_smoothing", format!("{:?}", self.label_smoothing));
        if let Some(v) = self.step_size {
            line("step_size", v.to_string());
        }
        if let Some(v) = self.gamma {
            line("gamma", format!("{v:?}"));
        }
        if !self.milestones.is_empty() {
            let m: Vec<String> = self.milestones.iter().map(|h| h.to_string()).collect();
            line("milestones", format!("[{}]", m.join(", ")));
        }
        if let Some(v) = self.patience {
            line("patience", v.to_string());
        }
        line("warmup_epochs", self.warmup_epochs.to_string());
        line("tensorboard", self.tensorboard.to_string());
        // Written for their own tasks only, so other runs' files stay as they were.
        if self.task == Task::Localize {
            line("box_loss", q(&self.box_loss));
            line("box_weight", format!("{:?}", self.box_weight));
        }
        if self.task == Task::Segment {
            line("class_weights", q(&self.class_weights));
            if let Some(v) = self.ignore_index {
                line("ignore_index", v.to_string());
            }
        }
        if self.task == Task::Detect {
            self.detect.write_toml(&mut s);
        }
        self.images.write_toml(&mut s);
        s
    }

    /// Parse text written by [`TrainConfig::to_toml`] (or any config file) over the defaults.
    pub fn from_toml(text: &str, origin: &Path) -> CliResult<TrainConfig> {
        let mut c = TrainConfig::default();
        c.apply(&parse(text, origin)?)?;
        Ok(c)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
