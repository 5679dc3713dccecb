//! `nabla train --task detect`: a two-stage detector (`fasterrcnn_small`) trained by the
//! engine of `nabla_train` on Fashion-MNIST scenes of 1 to 4 items (generated from the
//! seed), a COCO folder (`--data coco:PATH`) or Pascal VOC photographs (`--data voc:PATH`,
//! optionally cut into tiles), with the run folders, checkpoints, Ctrl-C and `--resume` of
//! every `nabla train` run; scored by mAP@0.5 (Pascal VOC) each epoch and mAP@[.5:.95]
//! (COCO), and drawn in `detections.png`.
//!
//! Checkpoints carry a `RunMeta` whose task is `detect`; the detector is rebuilt from its
//! configuration (backbone, RoI mode), its classes and its input shape, so `nabla eval` and
//! `nabla predict` hand the work to [`tools`].

pub mod data;
pub mod pictures;
pub mod report;
pub mod task;
pub mod tools;
pub mod voc;

use crate::config::{Task, TrainConfig};
use crate::error::{CliError, CliResult};
use crate::trainer::setup::RunMeta;
use crate::trainer::{folder, Options, Outcome};
use nabla_core::Generator;
use nabla_data::detection::{DetectionImage, DetectionSet, DetectionView};
use nabla_data::DataLoader;
use nabla_models::fasterrcnn::{DetBackbone, FasterRcnn, FasterRcnnConfig, RoiMode};
use nabla_models::ModelConfig;
use nabla_nn::Module;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Test images drawn in `detections.png` after each epoch.
pub const SHOWN: usize = 12;

/// What a detection run's task needs to know beyond its model.
#[derive(Debug, Clone)]
pub struct DetMeta {
    /// The metadata saved in checkpoints.
    pub run: RunMeta,
}

/// The detectors `--task detect` trains, the first the default.
pub const MODELS: &[&str] = &["fasterrcnn_small"];

/// The settings a fresh `--task detect` run starts from (a config file and the flags then
/// apply on top): the default detector, the generated scenes, and the optimizer and epochs
/// that reach the mAP the README reports.
pub fn defaults() -> TrainConfig {
    TrainConfig {
        task: Task::Detect,
        model: MODELS[0].into(),
        dataset: "scenes".into(),
        // 8,000 scenes × 3 epochs, Adam 1e-3 on a cosine schedule: test mAP@0.5 0.738 (3,000
        // scenes gave 0.680).
        epochs: 3,
        batch_size: 16,
        optimizer: "adam".into(),
        lr: 1e-3,
        weight_decay: 0.0,
        ..TrainConfig::default()
    }
}

/// Anchor sides for photographs (`--data voc:`): deepforest's tree crowns are 10 to 100
/// pixels across, past the scenes' 16–48.
pub const PHOTO_ANCHORS: [f32; 6] = [16.0, 24.0, 32.0, 48.0, 64.0, 96.0];

/// The detector of a run: its backbone and RoI mode from the configuration, its input
/// channels and classes from the data, larger anchors for photographs, and the anchors,
/// proposal and detection counts the flags set; the rest are the model's defaults for small
/// images. (The configuration was validated, so its lists parse.)
pub fn detector_config(cfg: &TrainConfig, channels: usize, classes: usize) -> FasterRcnnConfig {
    let photos = cfg
        .data
        .as_ref()
        .is_some_and(|d| d.to_string_lossy().starts_with("voc:"));
    let base = FasterRcnnConfig::default();
    let (sizes, ratios) = cfg.detect.anchors().unwrap_or_default();
    let default_sizes = if photos {
        PHOTO_ANCHORS.to_vec()
    } else {
        base.anchor_sizes.clone()
    };
    let p = cfg.detect.proposals;
    FasterRcnnConfig {
        anchor_sizes: sizes.unwrap_or(default_sizes),
        aspect_ratios: ratios.unwrap_or(base.aspect_ratios.clone()),
        rpn_pre_nms_top_n_train: p.map_or(base.rpn_pre_nms_top_n_train, |n| 2 * n),
        rpn_pre_nms_top_n_test: p.map_or(base.rpn_pre_nms_top_n_test, |n| 2 * n),
        rpn_post_nms_top_n_train: p.unwrap_or(base.rpn_post_nms_top_n_train),
        rpn_post_nms_top_n_test: p.unwrap_or(base.rpn_post_nms_top_n_test),
        box_detections_per_img: cfg.detect.detections.unwrap_or(base.box_detections_per_img),
        small_stride: cfg.detect.small_stride.unwrap_or(base.small_stride),
        in_channels: channels,
        num_classes: classes,
        backbone: match cfg.detect.backbone.as_str() {
            "resnet18" => DetBackbone::Resnet18,
            _ => DetBackbone::Small,
        },
        roi: match cfg.detect.roi.as_str() {
            "pool" => RoiMode::Pool,
            _ => RoiMode::Align,
        },
        ..base
    }
}

/// Refuse a model that cannot detect, in one line.
pub fn check_model(cfg: &TrainConfig) -> CliResult<()> {
    if !MODELS.contains(&cfg.model.as_str()) {
        return Err(CliError::new(format!(
            "--model {} cannot detect; --task detect trains {}",
            cfg.model,
            MODELS.join(" or ")
        )));
    }
    Ok(())
}

/// Build the detector of a run (initialized from its seed).
pub fn build_detector(cfg: &TrainConfig, channels: usize, classes: usize) -> CliResult<FasterRcnn> {
    check_model(cfg)?;
    Ok(FasterRcnn::new(
        detector_config(cfg, channels, classes),
        &mut Generator::new(cfg.seed),
    )?)
}

/// The checkpoint metadata of a detection run over images `[C, H, W]` of `classes`.
pub fn run_meta(cfg: &TrainConfig, shape: [usize; 3], classes: &[String]) -> RunMeta {
    let [c, h, w] = shape;
    RunMeta {
        model: cfg.model.clone(),
        model_config: ModelConfig {
            num_classes: classes.len(),
            in_channels: c,
            input_size: [h, w],
            small_input: true,
            seed: cfg.seed,
            ..ModelConfig::default()
        },
        config: cfg.clone(),
        classes: classes.to_vec(),
        input_shape: vec![c, h, w],
        normalize: (vec![0.0; c], vec![1.0; c]),
        target_scale: None,
        features: vec![],
    }
}

/// Load the backbone of `model` from `--backbone-from`, saying how many tensors it took.
fn load_backbone(model: &FasterRcnn, path: &Path) -> CliResult<usize> {
    let flag = format!("--backbone-from {}", path.display());
    let (tensors, _) = nabla_nn::load_tensors(path).map_err(|e| CliError::new(format!("{flag}: {e}")))?;
    model
        .load_backbone(&tensors)
        .map_err(|e| CliError::new(format!("{flag}: {e}")))
}

/// The first `n` images of a split, for the pictures.
fn first(set: &dyn DetectionSet, n: usize) -> CliResult<Vec<DetectionImage>> {
    (0..n.min(set.len())).map(|i| Ok(set.get(i)?)).collect()
}

/// A loader over a detection split, targets `max_objects` wide.
pub fn loader(set: &Arc<dyn DetectionSet>, max_objects: usize, batch: usize) -> CliResult<DataLoader> {
    let view = DetectionView::new(set.clone(), max_objects)?;
    Ok(DataLoader::from_arc(Arc::new(view), batch.max(1))?)
}

/// Images per forward pass when validating and testing.
pub const EVAL_BATCH: usize = 50;

/// Train a detector as `opts` says; `stop` is raised by Ctrl-C.
pub fn run(opts: Options, stop: &AtomicBool) -> CliResult<Outcome> {
    let cfg = opts.cfg;
    cfg.validate()?;
    check_model(&cfg)?;
    // The backbone's weights are read once, by a fresh run (a resumed one has its own).
    let backbone_from = cfg.detect.backbone_from.as_ref().filter(|_| opts.resume.is_none());
    if let Some(p) = backbone_from.filter(|p| !p.is_file()) {
        return Err(CliError::new(format!("--backbone-from {}: no such file", p.display())));
    }
    if let Some(p) = &opts.init_from {
        crate::trainer::setup::read_checkpoint(p, "--init-from ")?;
    }
    let data = data::load(&cfg)?;
    let model = build_detector(&cfg, data.shape[0], data.classes.len())?;
    let mut from = String::new();
    if let Some(p) = backbone_from {
        let n = load_backbone(&model, p)?;
        from = format!(", backbone from {} ({n} tensors)", p.display());
    }
    let shown = first(data.test.as_ref(), SHOWN)?;
    // Only now that the arguments, the data and the model are good.
    let out = folder::create(&cfg, opts.resume.is_some(), opts.overwrite)?;
    let [c, h, w] = data.shape;
    let banner = format!(
        "training {} ({} backbone, RoI {}{from}; {} parameters) to detect {} {} on {} ({} training, {} validation, {} test images of {c}×{h}×{w}); run folder {}",
        cfg.model,
        cfg.detect.backbone,
        cfg.detect.roi,
        model.num_parameters(),
        data.classes.len(),
        if data.classes.len() == 1 { "class" } else { "classes" },
        data.origin,
        data.train.len(),
        data.val.as_ref().map_or(0, |v| v.len()),
        data.test.len(),
        out.display()
    );
    let meta = DetMeta {
        run: run_meta(&cfg, data.shape, &data.classes),
    };
    let train = DetectionView::new(data.train.clone(), data.max_objects)?;
    let train = DataLoader::from_arc(Arc::new(train), cfg.batch_size)?.num_workers(cfg.workers);
    let val_loader = match &data.val {
        Some(v) => Some(loader(v, data.max_objects, EVAL_BATCH)?),
        None => None,
    };
    let fit = crate::trainer::fit_options(
        &cfg,
        &out,
        opts.resume,
        opts.init_from,
        opts.stop_after_steps,
        opts.lr_override,
    );
    let mut task = task::Detect::new(model, &meta, shown, banner);
    let best = match nabla_train::fit(&mut task, train, val_loader.as_ref(), &fit, stop)? {
        nabla_train::Outcome::Stopped(last) => return Ok(Outcome::Stopped(last)),
        nabla_train::Outcome::Finished { best } => best,
    };
    let chosen = out.join(if best.is_some() {
        "best.safetensors"
    } else {
        "last.safetensors"
    });
    let validated = match best {
        Some((m, epoch)) => format!("best validation mAP@0.5 {m:.3} at epoch {epoch}"),
        None if val_loader.is_some() => "no epoch had a finite validation mAP".into(),
        None => "no validation split (--val-size 0), so no best checkpoint".into(),
    };
    let test_loader = loader(&data.test, data.max_objects, EVAL_BATCH)?;
    let metrics = nabla_train::test(&mut task, &test_loader, &chosen, &out)?;
    let get = |k: &str| metrics.iter().find(|(n, _)| n == k).map_or(f64::NAN, |(_, v)| *v);
    let file = chosen.file_name().map_or("".into(), |n| n.to_string_lossy());
    if let Some((r, dets, gts)) = task.last_pass() {
        print!("{}", report::ap_table(r, &data.classes));
        for t in [task::PICTURE_THRESHOLD, 0.0] {
            print!(
                "{}",
                report::analyse(dets, gts, data.classes.len(), t).text(&data.classes)
            );
        }
    }
    println!(
        "done; {validated}; test: mAP@0.5 {:.3}, mAP@[.5:.95] {:.3} ({file}); files in {}",
        get("test_map50"),
        get("test_map"),
        out.display()
    );
    Ok(Outcome::Finished)
}

#[cfg(test)]
mod tests;
