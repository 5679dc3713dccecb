//! `nabla features`: one stage's activations for every sample of a split, with the labels,
//! as a safetensors file (for probes or plots outside nabla).

use super::body::Body;
use crate::error::{CliError, CliResult};
use crate::trainer::make_loader;
use crate::trainer::setup::{read_checkpoint, RunMeta};
use clap::Args;
use nabla_core::Tensor;
use nabla_nn::{Mode, Module};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Export a stage's activations (feature maps average-pooled, globally or to --pool N×N)
/// and the labels of a split, as `features` [N, D] and `labels` [N] (float64) in a
/// safetensors file.
///
/// The stages per family are those of nabla finetune --help (lenet5: features.2, features.5,
/// classifier.1, classifier.3; resnet*: layer1..layer4). Reads the data set the checkpoint
/// was trained on, normalized as it was (batch norm in eval mode, no augmentation).
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  nabla features --checkpoint runs/lenet5-fashion-mnist/version_0/best.safetensors \
                        --layer features.5 --split test -o conv2.safetensors"
)]
pub struct FeaturesArgs {
    /// A checkpoint written by nabla train or nabla finetune
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// The stage whose output to export
    #[arg(long, value_name = "STAGE")]
    layer: String,
    /// train (the samples the run trained on) or test
    #[arg(long, value_name = "SPLIT", default_value = "test", value_parser = ["train", "test"])]
    split: String,
    /// Average-pool feature maps to N×N (N·N numbers per channel) instead of globally
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pool: usize,
    /// Where the data set is, if not where the run found it
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The safetensors file to write
    #[arg(long, short = 'o', value_name = "FILE.safetensors")]
    out: PathBuf,
}

/// Run `nabla features`.
pub fn run(a: FeaturesArgs) -> CliResult<()> {
    let ck = read_checkpoint(&a.checkpoint, "--checkpoint ")?;
    let meta = RunMeta::from_checkpoint(&ck, &a.checkpoint)?;
    let body = Body::build(&meta.model, &meta.model_config)?;
    // A finetuned checkpoint may hold a probe beside the model: the model's own tensors load.
    let loaded = body.load_state_dict(&ck.model, false)?;
    if !loaded.missing.is_empty() {
        return Err(CliError::new(format!(
            "--checkpoint {}: lacks the model's {}",
            a.checkpoint.display(),
            loaded.missing.join(", ")
        )));
    }
    body.check_stage(&a.layer, "--layer")?;
    let mut cfg = meta.config.clone();
    if a.data_dir.is_some() {
        cfg.data_dir = a.data_dir.clone();
    }
    let data = crate::trainer::data::load(&cfg)?;
    let ds = match a.split.as_str() {
        "train" => data.train.clone(),
        _ => data
            .test
            .clone()
            .ok_or_else(|| CliError::new(format!("{}: this data set has no test split", cfg.dataset)))?,
    };
    let loader = make_loader(ds, 500, &meta.input_shape, &meta.normalize, false)?;
    let _guard = nabla_core::no_grad();
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    for b in loader.epoch(0) {
        let b = b?;
        rows.push(body.forward_pooled(&b.inputs, Some(&a.layer), a.pool, Mode::Eval)?);
        labels.extend(b.labels.iter().map(|&l| l as f64));
    }
    let refs: Vec<&Tensor> = rows.iter().collect();
    let features = Tensor::cat(&refs, 0)?;
    let n = labels.len();
    let mut info = BTreeMap::new();
    info.insert("layer".to_string(), a.layer.clone());
    info.insert("split".to_string(), a.split.clone());
    info.insert("model".to_string(), meta.model.clone());
    info.insert("classes".to_string(), serde_json::json!(meta.classes).to_string());
    let tensors = vec![
        ("features".to_string(), features.clone()),
        ("labels".to_string(), Tensor::from_vec(labels, &[n])?),
    ];
    nabla_nn::save_tensors(&a.out, &tensors, &info)?;
    println!(
        "wrote {} {} features of {} {} samples ({}) to {}",
        features.shape()[1],
        a.layer,
        n,
        a.split,
        meta.model,
        a.out.display()
    );
    Ok(())
}
