//! `nabla caption`: a Show and Tell captioner (`nabla_models::captioner`) trained by the
//! engine of `nabla_train` on Fashion-MNIST scenes and their sentences (or COCO / Flickr8k
//! captions), with the run folders, `config.toml`, Ctrl-C and bitwise `--resume` of every
//! run; `caption predict` writes captions of image files, `caption eval` scores the test
//! split (greedy and beam search) and writes the COCO captioning results.

pub mod data;
pub mod pictures;
pub mod score;
pub mod settings;
pub mod task;
mod tools;
mod train;

use crate::error::CliResult;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Train an image captioner (default: the small conv encoder + LSTM on Fashion-MNIST scene
/// sentences), caption images with one, or score one.
///
/// Training writes to the run folder (--out, default a new runs/captioner-<data>/version_N):
/// captions.png (test images with their generated and reference captions, each epoch),
/// curves.png, metrics.jsonl, last.safetensors, best.safetensors (highest validation BLEU-4)
/// and config.toml. Ctrl-C saves last.safetensors and exits (code 130); continue with
/// --resume.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  nabla caption train\n  \
                  nabla caption train --data coco:data/coco --epochs 10\n  \
                  nabla caption predict --checkpoint runs/captioner-scenes/version_0/best.safetensors scene.png --beam 3\n  \
                  nabla caption eval --checkpoint runs/captioner-scenes/version_0/best.safetensors --save-captions results.json")]
pub struct CaptionArgs {
    #[command(subcommand)]
    action: CaptionAction,
}

/// The three actions.
#[derive(Debug, Subcommand)]
enum CaptionAction {
    /// Train a captioner
    Train(Box<train::TrainFlags>),
    /// Caption image files with a checkpoint
    Predict(tools::PredictArgs),
    /// Score a checkpoint on its test images (BLEU-1..4, greedy and beam), optionally writing the COCO results JSON
    Eval(tools::EvalArgs),
}

/// Run `nabla caption`.
pub fn run(args: CaptionArgs) -> CliResult<()> {
    match args.action {
        CaptionAction::Train(f) => train::train(*f),
        CaptionAction::Predict(a) => tools::predict(a),
        CaptionAction::Eval(a) => tools::eval(a),
    }
}

/// The run folder's parent for `--data` (`runs/captioner-scenes`, `runs/captioner-coco`).
fn base_dir(data: &str) -> PathBuf {
    let kind = data.split(':').next().unwrap_or("scenes");
    PathBuf::from(format!("runs/captioner-{kind}"))
}
