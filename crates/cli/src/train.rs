//! `nabla train`: flags over a config file over the defaults (or over the configuration of
//! the checkpoint being resumed), Ctrl-C handling, and the training loop of [`crate::trainer`].

use crate::config::{parse_task, Task, TrainConfig};
use crate::error::CliResult;
use crate::run_args::RunArgs;
use crate::trainer::{self, Options, Outcome};
use clap::builder::PossibleValuesParser;
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// Train a model (default: LeNet-5 on Fashion-MNIST, SGD with momentum, cosine schedule).
///
/// Writes to the run folder (--out, default a new runs/<model>-<dataset>/version_N): metrics.jsonl,
/// curves.png, confusion.png, last.safetensors, best.safetensors and config.toml.
/// Ctrl-C finishes the current step, saves last.safetensors and exits (code 130); continue
/// with --resume. Settings come from the defaults, then --config FILE, then the flags.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  nabla train\n  nabla train --model mlp --hidden 256 --epochs 5 --lr 0.05\n  \
                  nabla train --task regression --data houses.csv --target price\n  \
                  nabla train --resume runs/lenet5-fashion-mnist/version_0/last.safetensors --epochs 20"
)]
pub struct TrainArgs {
    /// Model from the zoo [default: lenet5; mlp for tables]
    #[arg(long, value_name = "NAME", value_parser = PossibleValuesParser::new(model_names()), hide_possible_values = true)]
    pub(crate) model: Option<String>,
    /// Data set: fashion-mnist, mnist, kmnist, imagefolder (your images in --data-dir, one
    /// folder per class), cifar10, cifar100 (binary versions in --data-dir), or csv (with
    /// --data) [default: fashion-mnist]
    #[arg(long, value_name = "NAME", value_parser = ["fashion-mnist", "mnist", "kmnist", "imagefolder", "cifar10", "cifar100", "csv"])]
    dataset: Option<String>,
    /// Directory searched first for the data set (then $NABLA_DATA, the system, the cache)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A CSV table with a header row to train on (implies --dataset csv)
    #[arg(long, value_name = "FILE.csv")]
    data: Option<PathBuf>,
    /// The CSV column to predict
    #[arg(long, value_name = "COLUMN")]
    target: Option<String>,
    /// classification, regression (an MLP with MSE; RMSE and R² reported), localize (classloc
    /// on one-item scenes: class + box) or segment (fcn_small or segnet on scenes: a class
    /// per pixel) or detect (fasterrcnn_small: every object's class and box)
    #[arg(long, value_name = "TASK", value_parser = ["classification", "regression", "localize", "segment", "detect"])]
    pub(crate) task: Option<String>,
    /// Epochs in total [default: 10]
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Samples per step [default: 64]
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Learning rate at the start of the schedule [default: 0.05]; on --resume it replaces the saved rate
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    lr: Option<f64>,
    /// sgd, adam, adamw or rmsprop [default: sgd]
    #[arg(long, value_name = "NAME", value_parser = ["sgd", "adam", "adamw", "rmsprop"])]
    optimizer: Option<String>,
    /// Momentum of SGD and RMSprop [default: 0.9]
    #[arg(long, value_name = "M", allow_negative_numbers = true)]
    momentum: Option<f64>,
    /// L2 penalty (decoupled for adamw) [default: 0.0005]
    #[arg(long, value_name = "L2", allow_negative_numbers = true)]
    weight_decay: Option<f64>,
    /// none, cosine, step, multistep, exponential or plateau [default: cosine]
    #[arg(long, value_name = "NAME", value_parser = ["none", "cosine", "step", "multistep", "exponential", "plateau"])]
    scheduler: Option<String>,
    /// Random crops (padding 2) and horizontal flips of training images [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    augment: Option<bool>,
    /// Seed of the initialization, shuffles and augmentation [default: 0]
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Start a new run from a checkpoint's weights (fine-tuning: fresh optimizer, schedule and best)
    #[arg(long, value_name = "CHECKPOINT", conflicts_with = "resume")]
    pub(crate) init_from: Option<PathBuf>,
    /// cross-entropy or mse (on one-hot targets) [default: cross-entropy]
    #[arg(long, value_name = "NAME", value_parser = ["cross-entropy", "mse"])]
    loss: Option<String>,
    /// Train on the first N training samples only
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// A config file of key = value lines (the keys are these flags' names)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Hidden layer sizes of an MLP, comma-separated [default: 256]
    #[arg(long, value_name = "SIZES", value_delimiter = ',')]
    pub(crate) hidden: Option<Vec<usize>>,
    /// Activation of an MLP: relu, tanh, sigmoid, gelu, leaky_relu, elu, ... [default: relu]
    #[arg(long, value_name = "NAME")]
    pub(crate) activation: Option<String>,
    /// Model variant (lenet5: modern or classic)
    #[arg(long, value_name = "NAME")]
    pub(crate) variant: Option<String>,
    /// Training images held out for validation (0: none, and no best checkpoint) [default: one
    /// twelfth, 5,000 of Fashion-MNIST's 60,000]
    #[arg(long, value_name = "N")]
    val_size: Option<usize>,
    /// Fraction of the training images or table rows held out for validation instead [default
    /// for tables: 0.2; image folders without val/: 0.1]
    #[arg(long, value_name = "FRACTION", alias = "val-split")]
    val_fraction: Option<f64>,
    /// Validate on the first N held-out samples only
    #[arg(long, value_name = "N")]
    val_limit: Option<usize>,
    /// Background threads building batches [default: 0]
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Stop when the validation score has not improved for this many epochs
    #[arg(long, value_name = "PATIENCE")]
    early_stop: Option<u64>,
    /// The smallest change of the validation score that counts as an improvement for
    /// --early-stop [default: 0]
    #[arg(long, value_name = "DELTA")]
    min_delta: Option<f64>,
    /// Clip the gradients' global L2 norm to this before each step
    #[arg(long, value_name = "NORM")]
    clip_grad_norm: Option<f64>,
    /// Train against targets smoothed by this much (cross-entropy; validation stays plain)
    /// [default: 0]
    #[arg(long, value_name = "EPS")]
    label_smoothing: Option<f64>,
    /// Epochs between decays of the step schedule [default: a third of --epochs]
    #[arg(long, value_name = "N")]
    step_size: Option<usize>,
    /// Decay factor of step, multistep and plateau [default: 0.1] and exponential [default:
    /// down to 1% by the last epoch]
    #[arg(long, value_name = "G")]
    gamma: Option<f64>,
    /// Also write each epoch's metrics as TensorBoard scalars into the run folder
    /// (tensorboard --logdir runs) [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    tensorboard: Option<bool>,
    /// Epochs of linear learning-rate warm-up: epoch e < N runs at (e+1)/(N+1) of the
    /// schedule's rate [default: 0]
    #[arg(long, value_name = "N")]
    warmup_epochs: Option<usize>,
    /// Epochs at which the multistep schedule decays, comma-separated
    #[arg(long, value_name = "EPOCHS", value_delimiter = ',')]
    milestones: Option<Vec<usize>>,
    /// Epochs without a lower validation loss before plateau lowers the rate [default: 2]
    #[arg(long, value_name = "N")]
    patience: Option<u64>,
    /// imagefolder: bring every image to H×W pixels (H or HxW; resized to cover, then
    /// centre-cropped) [default: the first training image's size]
    #[arg(long, value_name = "H[xW]", value_parser = crate::config::images::parse_size)]
    image_size: Option<[usize; 2]>,
    /// imagefolder, cifar10, cifar100: auto (per-channel mean and std of the training images),
    /// imagenet (torchvision's ImageNet statistics) or none [default: auto]
    #[arg(long, value_name = "HOW", value_parser = ["auto", "imagenet", "none"])]
    normalize: Option<String>,
    /// imagefolder: stop at an unreadable image instead of skipping it with a warning
    #[arg(long)]
    strict: bool,
    /// Under mpirun/srun (a build with --features mpi): batch norm over the global batch
    /// rather than each rank's part (SyncBatchNorm); no effect on one process
    #[arg(long)]
    pub(crate) sync_bn: bool,
    /// Under mpirun/srun: MiB of gradients per all-reduce [default: 25]
    #[arg(long, value_name = "MIB")]
    pub(crate) bucket_mb: Option<f64>,
    /// --task localize: the box loss, l2 (mean squared error) or smooth-l1 [default: l2]
    #[arg(long, value_name = "NAME", value_parser = ["l2", "smooth-l1"])]
    box_loss: Option<String>,
    /// --task localize: λ, the weight of the box loss beside the class cross-entropy [default: 5]
    #[arg(long, value_name = "LAMBDA", allow_negative_numbers = true)]
    box_weight: Option<f64>,
    /// --task segment: per-class weights of the cross-entropy, auto (inverse pixel
    /// frequency) or none [default: none]
    #[arg(long, value_name = "WHICH", value_parser = ["auto", "none"])]
    class_weights: Option<String>,
    /// --task segment: a mask label whose pixels count for nothing (e.g. 255 in VOC masks)
    #[arg(long, value_name = "LABEL")]
    ignore_index: Option<usize>,
    /// --task detect: the detector's backbone, small or resnet18 [default: small]
    #[arg(long, value_name = "NAME")]
    backbone: Option<String>,
    /// --task detect: start the backbone from this checkpoint (a classifier's) or
    /// torchvision-named state dict
    #[arg(long, value_name = "CHECKPOINT")]
    backbone_from: Option<PathBuf>,
    /// --task detect: RoI features by align (bilinear) or pool (max) [default: align]
    #[arg(long, value_name = "HOW")]
    roi: Option<String>,
    /// --task detect: cut every image into N×N tiles (photographs larger than the model's input)
    #[arg(long, value_name = "N")]
    tile: Option<usize>,
    /// --task detect with --data voc:PATH: the image (file stem) whose tiles validate and
    /// test [default: the last image by name]
    #[arg(long, value_name = "NAME")]
    holdout: Option<String>,
    /// --task detect: anchor sides in pixels, like 12,16,24,32,48,64,96 [default: 16,24,32,48;
    /// 16,24,32,48,64,96 for voc: photographs]
    #[arg(long, value_name = "LIST")]
    anchor_sizes: Option<String>,
    /// --task detect: anchor height/width ratios [default: 0.5,1,2]
    #[arg(long, value_name = "LIST")]
    aspect_ratios: Option<String>,
    /// --task detect: proposals kept per image after the RPN's NMS, of twice as many before it
    /// [default: 300 in training, 100 in inference]
    #[arg(long, value_name = "N")]
    proposals: Option<usize>,
    /// --task detect: detections kept per image [default: 100]
    #[arg(long, value_name = "N")]
    detections: Option<usize>,
    /// --task detect: random flips of training images, none, h (left-right) or hv (and
    /// up-down, for aerial photographs) [default: none]
    #[arg(long, value_name = "HOW")]
    flip: Option<String>,
    /// --task detect: stride of the small backbone's feature map, 4 or 8 [default: 4]
    #[arg(long, value_name = "N")]
    small_stride: Option<usize>,
}

/// The names `--model` takes: the zoo's and the detectors'.
fn model_names() -> Vec<&'static str> {
    let mut n = nabla_models::names();
    for m in crate::detect_task::MODELS {
        if !n.contains(m) {
            n.push(m);
        }
    }
    n
}

/// The configuration the flags ask for: defaults (or the resumed run's), the file, the flags.
fn resolve(a: &TrainArgs) -> CliResult<TrainConfig> {
    resolve_over(a, None)
}

/// [`resolve`] over `base` instead of the defaults when given (`nabla finetune`: the source's
/// model settings).
pub(crate) fn resolve_over(a: &TrainArgs, base: Option<TrainConfig>) -> CliResult<TrainConfig> {
    let mut c = match (base, &a.run.resume, a.task.as_deref()) {
        (Some(b), _, _) => b,
        (None, Some(p), _) => trainer::resume_config(p)?,
        // The scene tasks start from their own defaults (model, data, epochs, optimizer).
        (None, None, Some(t @ ("localize" | "segment"))) => crate::scenes_task::defaults(parse_task(t)?),
        (None, None, Some("detect")) => crate::detect_task::defaults(),
        (None, None, _) => TrainConfig::default(),
    };
    if let Some(f) = &a.config {
        c.apply_file(f)?;
    }
    macro_rules! set {
        ($($field:ident),*) => {$(
            if let Some(v) = &a.$field {
                c.$field = v.clone().into();
            }
        )*};
    }
    set!(
        model,
        dataset,
        data_dir,
        data,
        target,
        epochs,
        batch_size,
        lr,
        optimizer,
        momentum,
        weight_decay
    );
    set!(scheduler, augment, seed, loss, limit, hidden, activation, variant, workers);
    if let Some(t) = a.run.threads {
        c.threads = t;
    }
    if let Some(o) = &a.run.out {
        c.out = Some(o.clone());
    }
    set!(
        val_size,
        val_fraction,
        val_limit,
        early_stop,
        min_delta,
        clip_grad_norm,
        label_smoothing
    );
    set!(step_size, gamma, milestones, patience, warmup_epochs, tensorboard);
    set!(box_loss, box_weight, class_weights, ignore_index);
    let d = &mut c.detect;
    macro_rules! set_detect {
        ($($field:ident),*) => {$(
            if let Some(v) = &a.$field {
                d.$field = v.clone().into();
            }
        )*};
    }
    set_detect!(
        backbone,
        backbone_from,
        roi,
        tile,
        holdout,
        anchor_sizes,
        aspect_ratios,
        proposals,
        detections,
        flip,
        small_stride
    );
    if let Some(v) = a.image_size {
        c.images.image_size = Some(v);
    }
    if let Some(v) = &a.normalize {
        c.images.normalize = Some(v.clone());
    }
    c.images.strict |= a.strict;
    // A flag replaces the file's (or the resumed run's) choice of the other.
    if a.val_size.is_some() {
        c.val_fraction = None;
    }
    if a.val_fraction.is_some() {
        c.val_size = None;
    }
    if let Some(t) = &a.task {
        c.task = parse_task(t)?;
    }
    let scene_only = [
        ("--box-loss", a.box_loss.is_some(), Task::Localize),
        ("--box-weight", a.box_weight.is_some(), Task::Localize),
        ("--class-weights", a.class_weights.is_some(), Task::Segment),
        ("--ignore-index", a.ignore_index.is_some(), Task::Segment),
        ("--backbone", a.backbone.is_some(), Task::Detect),
        ("--backbone-from", a.backbone_from.is_some(), Task::Detect),
        ("--roi", a.roi.is_some(), Task::Detect),
        ("--tile", a.tile.is_some(), Task::Detect),
        ("--holdout", a.holdout.is_some(), Task::Detect),
        ("--anchor-sizes", a.anchor_sizes.is_some(), Task::Detect),
        ("--aspect-ratios", a.aspect_ratios.is_some(), Task::Detect),
        ("--proposals", a.proposals.is_some(), Task::Detect),
        ("--detections", a.detections.is_some(), Task::Detect),
        ("--flip", a.flip.is_some(), Task::Detect),
        ("--small-stride", a.small_stride.is_some(), Task::Detect),
    ];
    for (flag, given, task) in scene_only {
        if given && c.task != task {
            return Err(crate::error::CliError::new(format!(
                "{flag} applies to --task {} only",
                task.name()
            )));
        }
    }
    if a.run.resume.is_some() && a.run.out.is_none() {
        // Continue in the folder the checkpoint lies in.
        c.out = a.run.resume.as_ref().and_then(|p| p.parent()).map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        });
    }
    if c.data.is_some() && !c.task.on_scenes() && c.task != Task::Detect {
        c.dataset = "csv".into();
    }
    // Tables want an MLP and regression wants MSE, unless asked otherwise.
    if c.dataset == "csv" && c.model == "lenet5" && a.model.is_none() {
        c.model = "mlp".into();
    }
    if c.task == Task::Regression && c.loss == "cross-entropy" && a.loss.is_none() {
        c.loss = "mse".into();
    }
    Ok(c)
}

/// Run `nabla train`.
pub fn run(args: TrainArgs) -> CliResult<()> {
    let cfg = resolve(&args)?;
    cfg.validate()?;
    if cfg.threads > 0 {
        // Fails only if the pool already exists, which it cannot before any work.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(cfg.threads).build_global();
    }
    // The launcher's world first: MPI must be up before anything else is done.
    let dist = trainer::world::from_env(args.sync_bn, args.bucket_mb)?;
    let stop = nabla_train::stop_on_ctrl_c()?;
    let main = dist.as_ref().is_none_or(|d| d.is_main());
    let opts = Options {
        lr_override: args.run.resume.as_ref().and(args.lr),
        cfg,
        resume: args.run.resume,
        init_from: args.init_from,
        overwrite: args.run.overwrite,
        stop_after_steps: args.run.stop_after_steps,
    };
    let outcome = match (opts.cfg.task, dist) {
        (Task::Detect, None) => crate::detect_task::run(opts, &stop)?,
        (t, None) if t.on_scenes() => crate::scenes_task::run(opts, &stop)?,
        (t, Some(d)) if t == Task::Detect || t.on_scenes() => {
            let e = crate::error::CliError::new(format!(
                "distributed training (mpirun) supports --task classify and regression only, not {t:?}"
            ));
            trainer::world::abort_on_error(&d, Err(e))?
        }
        (_, Some(d)) => trainer::world::abort_on_error(&d, trainer::run_with(opts, Some(d.clone()), &stop))?,
        (_, None) => trainer::run(opts, &stop)?,
    };
    if !main {
        return Ok(());
    }
    match outcome {
        Outcome::Finished => Ok(()),
        Outcome::Stopped(ck) => {
            let why = if stop.load(Ordering::Relaxed) {
                "interrupted"
            } else {
                "stopped as asked"
            };
            println!(
                "{why}; checkpoint saved; continue with: nabla train --resume {}",
                ck.display()
            );
            if stop.load(Ordering::Relaxed) {
                use std::io::Write;
                let _ = std::io::stdout().flush();
                std::process::exit(130);
            }
            Ok(())
        }
    }
}
