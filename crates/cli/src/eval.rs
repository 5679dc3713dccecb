//! `nabla eval`: score a checkpoint on its test split (the held-out rows for a table):
//! accuracy, per-class precision/recall/F1 and the confusion matrix, or RMSE and R².

use crate::error::{CliError, CliResult};
use crate::trainer::setup::load_trained;
use crate::trainer::{data, evaluate, make_loader, LossKind};
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Score a checkpoint written by `nabla train` on the test split of its data set.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  nabla eval --checkpoint runs/lenet5-fashion-mnist/version_0/best.safetensors\n  \
                  nabla eval -c runs/a/best.safetensors -c runs/b/best.safetensors --combine vote --tta flips"
)]
pub struct EvalArgs {
    /// The checkpoint (last.safetensors or best.safetensors of a run folder); several make
    /// an ensemble (image classifiers of any architecture, each with its own preprocessing)
    #[arg(long, short = 'c', value_name = "FILE", required = true)]
    checkpoint: Vec<PathBuf>,
    /// With several --checkpoint: how the members' outputs make one prediction, mean-prob
    /// (the highest mean probability) or vote (the class most members put first; ties go
    /// to the higher mean probability) [default: mean-prob]
    #[arg(long, value_name = "HOW", value_parser = ["mean-prob", "vote"])]
    combine: Option<String>,
    /// Test-time augmentation, the softmax averaged over views of each image: flips (the
    /// image and its mirror), ten-crop (AlexNet's four corners and centre of a 256/224
    /// enlargement, and their mirrors) or multiscale (scales 0.875, 1, 1.125, padded or
    /// cropped back) [default: none]
    #[arg(long, value_name = "HOW", default_value = "none", value_parser = ["none", "flips", "ten-crop", "multiscale"])]
    tta: String,
    /// Where to look for the data set first (default: as when training)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The CSV table of a regression or table run (default: the one trained on)
    #[arg(long, value_name = "FILE.csv")]
    data: Option<PathBuf>,
    /// Samples per forward pass
    #[arg(long, value_name = "N", default_value_t = 500)]
    batch_size: usize,
    /// One JSON object on stdout (loss, accuracy, per-class scores and the confusion
    /// matrix, or RMSE and R²) instead of text
    #[arg(long)]
    json: bool,
    /// The task the checkpoint must have been trained for (default: the checkpoint's own)
    #[arg(long, value_name = "TASK", value_parser = ["classification", "regression", "localize", "segment", "detect"])]
    task: Option<String>,
    /// --task detect: also write the test detections in COCO's results format (image_id,
    /// category_id, bbox [x, y, w, h], score) to this JSON file
    #[arg(long, value_name = "FILE.json")]
    save_detections: Option<PathBuf>,
}

/// Run `nabla eval`.
pub fn run(args: EvalArgs) -> CliResult<()> {
    if crate::ensemble::wanted(&args.checkpoint, &args.tta) {
        if args.save_detections.is_some() || args.data.is_some() {
            return Err(CliError::new(
                "--save-detections and --data take one checkpoint without --tta (ensembles and --tta score image classifiers)",
            ));
        }
        let req = crate::ensemble::EvalRequest {
            checkpoints: &args.checkpoint,
            combine: args.combine.as_deref().unwrap_or("mean-prob"),
            tta: crate::tta::Tta::parse(&args.tta)?,
            data_dir: args.data_dir,
            batch: args.batch_size,
            json: args.json,
        };
        return crate::ensemble::eval(&req);
    }
    if args.combine.is_some() {
        return Err(CliError::new("--combine needs several --checkpoint (an ensemble)"));
    }
    let checkpoint = args.checkpoint[0].clone();
    let ck = crate::trainer::setup::read_checkpoint(&checkpoint, "")?;
    let meta = crate::trainer::setup::RunMeta::from_checkpoint(&ck, &checkpoint)?;
    let task = meta.config.task;
    if let Some(t) = &args.task {
        if t != task.name() {
            return Err(CliError::new(format!(
                "{}: a checkpoint of --task {}, not {t}",
                checkpoint.display(),
                task.name()
            )));
        }
    }
    if args.save_detections.is_some() && task != crate::config::Task::Detect {
        return Err(CliError::new(format!(
            "--save-detections: {} is a checkpoint of --task {}; detections come from --task detect checkpoints",
            checkpoint.display(),
            task.name()
        )));
    }
    if task == crate::config::Task::Detect {
        let req = crate::detect_task::tools::EvalRequest {
            checkpoint: &checkpoint,
            data_dir: args.data_dir,
            batch: args.batch_size,
            json: args.json,
            save: args.save_detections.as_deref(),
        };
        return crate::detect_task::tools::eval(&meta, &ck, &req);
    }
    drop(ck);
    let (model, meta, ck) = load_trained(&checkpoint)?;
    if meta.config.task.on_scenes() {
        let (path, dir) = (&checkpoint, args.data_dir);
        return crate::scenes_task::tools::eval(model.as_ref(), &meta, ck.epoch, path, dir, args.batch_size, args.json);
    }
    let mut cfg = meta.config.clone();
    if args.data_dir.is_some() {
        cfg.data_dir = args.data_dir;
    }
    if args.data.is_some() {
        cfg.data = args.data;
    }
    // An image folder is read at the checkpoint's own size and channels.
    let fixed = match meta.input_shape[..] {
        [c, h, w] if cfg.dataset == "imagefolder" => Some([c, h, w]),
        _ => None,
    };
    let data = data::load_for(&cfg, fixed)?;
    // The test split; a table has none, and its held-out rows stand in.
    let split = data.test.clone().or(data.val.clone()).ok_or_else(|| {
        CliError::new("the run held out no samples to score (--val-size 0 on a table); pass --data with other rows")
    })?;
    let loader = make_loader(
        split.clone(),
        args.batch_size.max(1),
        &data.input_shape,
        &meta.normalize,
        false,
    )?;
    let kind = LossKind::of(&cfg);
    let ev = evaluate(model.as_ref(), &loader, kind, meta.classes.len(), meta.target_scale)?;
    if args.json {
        let mut out = json!({
            "checkpoint": checkpoint.to_string_lossy(),
            "model": meta.model,
            "epoch": ck.epoch,
            "dataset": cfg.dataset,
            "samples": split.len(),
            "loss": ev.loss,
        });
        if let Some(c) = &ev.confusion {
            let n = meta.classes.len();
            let per_class: Vec<Value> = (0..n)
                .map(|k| {
                    let sc = c.scores(k);
                    json!({"class": meta.classes[k], "precision": sc.precision, "recall": sc.recall,
                           "f1": sc.f1, "support": sc.support})
                })
                .collect();
            let matrix: Vec<Vec<u64>> = (0..n).map(|t| (0..n).map(|p| c.get(t, p)).collect()).collect();
            out["accuracy"] = json!(c.accuracy());
            out["per_class"] = json!(per_class);
            out["confusion"] = json!(matrix);
        }
        if let Some(r) = &ev.regression {
            out["rmse"] = json!(r.rmse());
            out["r2"] = json!(r.r2());
        }
        println!("{out}");
        return Ok(());
    }
    println!(
        "{}: {} after epoch {} on {} ({} samples from {})",
        checkpoint.display(),
        meta.model,
        ck.epoch,
        cfg.dataset,
        split.len(),
        data.origin.display()
    );
    println!("loss {:.4}", ev.loss);
    if let Some(c) = &ev.confusion {
        print!("{}", c.report(&meta.classes));
    }
    if let Some(r) = &ev.regression {
        println!("rmse {:.6}\nr2 {:.6}", r.rmse(), r.r2());
    }
    Ok(())
}
