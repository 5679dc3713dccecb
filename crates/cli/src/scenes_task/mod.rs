//! `nabla train --task localize` and `--task segment`: classification + localization and
//! semantic segmentation on Fashion-MNIST scenes (generated from the seed, see
//! `nabla_data::scenes`), trained by the engine of `nabla_train` with the run folders,
//! checkpoints, Ctrl-C and `--resume` of every `nabla train` run.
//!
//! Their checkpoints carry the same metadata as a classifier's (a `RunMeta` whose task is
//! `localize` or `segment`), so `nabla eval` and `nabla predict` rebuild the model and
//! hand the work to [`tools`].

pub mod data;
pub mod localize;
pub mod metrics;
pub mod pictures;
pub mod segment;
pub mod tools;

use crate::config::{Task, TrainConfig};
use crate::error::{CliError, CliResult};
use crate::trainer::setup::{build_model, RunMeta};
use crate::trainer::{folder, Options, Outcome};
use data::SceneData;
use nabla_data::{DataLoader, Sample};
use nabla_models::ModelConfig;
use nabla_nn::Module;
use std::sync::atomic::AtomicBool;

/// Scenes drawn in the pictures after each epoch.
pub const SHOWN: usize = 12;

/// What a scene run's task needs to know beyond its model.
#[derive(Debug, Clone)]
pub struct SceneMeta {
    /// The metadata saved in checkpoints.
    pub run: RunMeta,
    /// `[H, W]` of the scenes.
    pub size: [usize; 2],
}

/// The models that train on `task`, the first the default.
pub fn models_for(task: Task) -> &'static [&'static str] {
    match task {
        Task::Localize => &["classloc"],
        Task::Segment => &["fcn_small", "segnet"],
        _ => &[],
    }
}

/// The settings a fresh `--task localize` or `--task segment` run starts from (a config
/// file and the flags then apply on top): its default model, the generated scenes, and the
/// epochs that reach the targets the README reports.
pub fn defaults(task: Task) -> TrainConfig {
    let base = TrainConfig::default();
    let (model, epochs, box_weight) = match task {
        Task::Localize => ("classloc", 6, 5.0),
        _ => ("fcn_small", 9, 1.0),
    };
    TrainConfig {
        task,
        model: model.into(),
        dataset: "scenes".into(),
        epochs,
        batch_size: 32,
        optimizer: "adam".into(),
        lr: 1e-3,
        weight_decay: 0.0,
        // The box error is small beside the cross-entropy (≈ 0.01 vs 1): λ = 5 lets it count.
        box_weight,
        // Global average pooling (the small backbone) averages away where the item is.
        variant: (task == Task::Localize).then(|| "spatial".to_string()),
        ..base
    }
}

/// Refuse a model that cannot do the task, in one line.
pub fn check_model(cfg: &TrainConfig) -> CliResult<()> {
    let ok = models_for(cfg.task);
    if !ok.contains(&cfg.model.as_str()) {
        return Err(CliError::new(format!(
            "--model {} cannot {}; --task {} trains {}",
            cfg.model,
            cfg.task.name(),
            cfg.task.name(),
            ok.join(" or ")
        )));
    }
    Ok(())
}

/// The zoo config of a scene model: one grey channel, 11 maps (background + 10 classes)
/// for segmentation, the classes for localization.
pub fn model_config(cfg: &TrainConfig, size: [usize; 2], classes: usize) -> ModelConfig {
    ModelConfig {
        num_classes: if cfg.task == Task::Segment {
            classes + 1
        } else {
            classes
        },
        in_channels: 1,
        input_size: size,
        small_input: true,
        seed: cfg.seed,
        variant: cfg.variant.clone(),
        ..ModelConfig::default()
    }
}

/// The first `n` samples of a split, for the pictures.
fn first(ds: &dyn nabla_data::Dataset, n: usize) -> CliResult<Vec<Sample>> {
    (0..n.min(ds.len())).map(|i| Ok(ds.get(i)?)).collect()
}

/// Train a scene task as `opts` says; `stop` is raised by Ctrl-C.
pub fn run(opts: Options, stop: &AtomicBool) -> CliResult<Outcome> {
    let cfg = opts.cfg;
    cfg.validate()?;
    check_model(&cfg)?;
    let data: SceneData = data::load(&cfg)?;
    let mc = model_config(&cfg, data.size, data.classes.len());
    let model = build_model(&cfg.model, &mc)?;
    if let Some(p) = &opts.init_from {
        crate::trainer::setup::read_checkpoint(p, "--init-from ")?;
    }
    let shown = first(data.test.as_ref(), SHOWN)?;
    let weight = match (cfg.task, cfg.class_weights.as_str()) {
        (Task::Segment, "auto") => {
            // Pixel frequencies of (at most) the first 2,000 training masks: enough for
            // stable weights without generating the whole split up front.
            let n = data.train.len().min(2000);
            segment::auto_weights((0..n).map(|i| Ok(data.train.get(i)?)), mc.num_classes)?
        }
        _ => segment::unit_weights(mc.num_classes),
    };
    // Only now that the arguments, the data and the model are good.
    let out = folder::create(&cfg, opts.resume.is_some(), opts.overwrite)?;
    let count = |d: &Option<std::sync::Arc<dyn nabla_data::Dataset>>| d.as_ref().map_or(0, |d| d.len());
    let what = match cfg.task {
        Task::Localize => format!("box loss {}, box weight {}", cfg.box_loss, cfg.box_weight),
        _ => format!(
            "class weights {}{}",
            cfg.class_weights,
            cfg.ignore_index
                .map_or(String::new(), |i| format!(", ignore index {i}"))
        ),
    };
    let banner = format!(
        "training {} to {} ({what}; {} parameters) on {} ({} training, {} validation, {} test scenes of {}×{}); run folder {}",
        cfg.model,
        cfg.task.name(),
        model.num_parameters(),
        data.origin,
        data.train.len(),
        count(&data.val),
        data.test.len(),
        data.size[0],
        data.size[1],
        out.display()
    );
    let meta = SceneMeta {
        run: RunMeta {
            model: cfg.model.clone(),
            model_config: mc.clone(),
            config: cfg.clone(),
            classes: data.classes.clone(),
            input_shape: vec![1, data.size[0], data.size[1]],
            normalize: (vec![0.0], vec![1.0]),
            target_scale: None,
            features: vec![],
        },
        size: data.size,
    };
    let loader = DataLoader::from_arc(data.train.clone(), cfg.batch_size)?.num_workers(cfg.workers);
    let eval_loader = |d: &std::sync::Arc<dyn nabla_data::Dataset>| DataLoader::from_arc(d.clone(), 250);
    let val_loader = data.val.as_ref().map(eval_loader).transpose()?;
    let fit = crate::trainer::fit_options(
        &cfg,
        &out,
        opts.resume,
        opts.init_from,
        opts.stop_after_steps,
        opts.lr_override,
    );
    let mut seg = None;
    let mut loc = None;
    let task: &mut dyn nabla_train::Task = match cfg.task {
        Task::Localize => {
            let m = nabla_models::build_classloc(&cfg.model, &mc)?;
            loc.insert(localize::Localize::new(m, &meta, shown, banner))
        }
        _ => seg.insert(segment::Segment::new(model, &meta, weight, shown, banner)),
    };
    let best = match nabla_train::fit(task, loader, val_loader.as_ref(), &fit, stop)? {
        nabla_train::Outcome::Stopped(last) => return Ok(Outcome::Stopped(last)),
        nabla_train::Outcome::Finished { best } => best,
    };
    let chosen = out.join(if best.is_some() {
        "best.safetensors"
    } else {
        "last.safetensors"
    });
    let score = if cfg.task == Task::Localize {
        "correct localization"
    } else {
        "mIoU"
    };
    let validated = match best {
        Some((m, epoch)) => format!("best validation {score} {} at epoch {epoch}", shown_score(cfg.task, m)),
        None if val_loader.is_some() => "no epoch had a finite validation score".into(),
        None => "no validation split (--val-size 0), so no best checkpoint".into(),
    };
    let metrics = nabla_train::test(task, &eval_loader(&data.test)?, &chosen, &out)?;
    let get = |k: &str| metrics.iter().find(|(n, _)| n == k).map_or(f64::NAN, |(_, v)| *v);
    let file = chosen.file_name().map_or("".into(), |n| n.to_string_lossy());
    let tested = match cfg.task {
        Task::Localize => format!(
            "test: correct localization {:.2}%, class accuracy {:.2}%, mean IoU {:.3} ({file})",
            100.0 * get("test_correct"),
            100.0 * get("test_acc"),
            get("test_iou")
        ),
        _ => format!(
            "test: mIoU {:.3}, pixel accuracy {:.2}% ({file})",
            get("test_miou"),
            100.0 * get("test_pixel_acc")
        ),
    };
    if let Some(m) = seg.as_ref().and_then(|s| s.last_confusion()) {
        print!("{}", tools::iou_table(m, &data.classes));
    }
    println!("done; {validated}; {tested}; files in {}", out.display());
    Ok(Outcome::Finished)
}

/// A best score as the closing line shows it.
fn shown_score(task: Task, v: f64) -> String {
    match task {
        Task::Localize => format!("{:.2}%", 100.0 * v),
        _ => format!("{v:.3}"),
    }
}

#[cfg(test)]
mod tests;
