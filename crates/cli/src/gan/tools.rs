//! `nabla gan sample` and `nabla gan fid`: what a trained generator draws, and how far a
//! set of generated images is from the test set.

use super::fid::{FidModel, Moments, FEATURES};
use super::settings::{GanSettings, EXTRA_KEY};
use super::task::generate;
use super::{data_config, fid_model, report};
use crate::error::{CliError, CliResult};
use crate::trainer::{self, data, setup::read_checkpoint};
use clap::Args;
use nabla_core::{DType, Generator, Tensor};
use nabla_nn::safetensors_io::{load_tensors, save_tensors};
use nabla_nn::Module;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `nabla gan sample`'s flags.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// A checkpoint written by nabla gan
    #[arg(long, value_name = "CKPT")]
    checkpoint: PathBuf,
    /// Images to draw
    #[arg(short = 'n', long, value_name = "N", default_value_t = 64)]
    count: usize,
    /// Output: a .png grid, or a .safetensors file holding `images` [N,C,H,W] in [-1,1]
    #[arg(short = 'o', long, value_name = "FILE")]
    out: PathBuf,
    /// Seed of the noise
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
}

/// `nabla gan fid`'s flags.
#[derive(Debug, Args)]
pub struct FidArgs {
    /// Generated images: a safetensors file with a tensor `images`, [N,1,28,28] f32 in [-1,1]
    #[arg(long, value_name = "FILE")]
    samples: PathBuf,
    /// LeNet-5 checkpoint of the feature space [default: runs/fid-lenet5/best.safetensors, trained first if missing]
    #[arg(long, value_name = "CKPT")]
    fid_model: Option<PathBuf>,
    /// Directory searched first for Fashion-MNIST (the test set is the reference)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// Whether `path` ends in `.ext` (any case).
fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// The generator of a GAN checkpoint, with its weights.
fn load_generator(path: &Path) -> CliResult<nabla_models::dcgan::DcganGenerator> {
    let ck = read_checkpoint(path, "--checkpoint ")?;
    let text = ck.extra.get(EXTRA_KEY).ok_or_else(|| {
        let what = match ck.extra.get("model") {
            Some(m) => format!("a {m} checkpoint"),
            None => "not a GAN checkpoint".to_string(),
        };
        CliError::new(format!(
            "--checkpoint {}: {what}; gan sample needs one written by nabla gan",
            path.display()
        ))
    })?;
    let s = GanSettings::from_json(text, path)?;
    let (g, d) = s.build()?;
    let mut tensors = Vec::new();
    for (name, m) in [("generator", &g as &dyn Module), ("discriminator", &d)] {
        tensors.extend(m.state_dict().into_iter().map(|(k, t)| (format!("{name}.{k}"), t)));
    }
    ck.restore_model(&tensors)
        .map_err(|e| CliError::new(format!("--checkpoint {}: {e}", path.display())))?;
    Ok(g)
}

/// Run `nabla gan sample`.
pub fn sample(a: SampleArgs) -> CliResult<()> {
    if a.count == 0 {
        return Err(CliError::new("-n 0: draw at least one image"));
    }
    let (png, st) = (has_ext(&a.out, "png"), has_ext(&a.out, "safetensors"));
    if !png && !st {
        return Err(CliError::new(format!(
            "-o {}: write a .png grid or a .safetensors file",
            a.out.display()
        )));
    }
    let g = load_generator(&a.checkpoint)?;
    let mut rng = Generator::new(a.seed);
    let mut parts = Vec::new();
    let mut left = a.count;
    while left > 0 {
        let k = left.min(500);
        parts.push(generate(&g, k, &mut rng)?);
        left -= k;
    }
    let refs: Vec<&Tensor> = parts.iter().collect();
    let images = Tensor::cat(&refs, 0)?;
    if png {
        let title = format!("{} samples, seed {}", a.count, a.seed);
        report::write_samples(&a.out, &images, &title)?;
    } else {
        save_tensors(&a.out, &[("images".to_string(), images)], &BTreeMap::new())
            .map_err(|e| CliError::new(format!("-o {}: {e}", a.out.display())))?;
    }
    println!("wrote {} images to {}", a.count, a.out.display());
    Ok(())
}

/// The `images` tensor of a samples file, checked.
fn read_samples(path: &Path) -> CliResult<Tensor> {
    let p = path.display();
    if !path.is_file() {
        return Err(CliError::new(format!("--samples {p}: no such file")));
    }
    let (tensors, _) = load_tensors(path).map_err(|e| CliError::new(format!("--samples {p}: {e}")))?;
    let t = tensors
        .into_iter()
        .find(|(n, _)| n == "images")
        .map(|(_, t)| t)
        .ok_or_else(|| CliError::new(format!("--samples {p}: no tensor named \"images\"")))?;
    if t.rank() != 4 || t.shape()[1..] != [1, 28, 28] || t.shape()[0] < 2 {
        return Err(CliError::new(format!(
            "--samples {p}: images has shape {:?}; need [N, 1, 28, 28] with N ≥ 2",
            t.shape()
        )));
    }
    let t = t.to_dtype(DType::F32)?;
    let v = t.to_vec_f32();
    if let Some(x) = v.iter().find(|x| !(-1.001..=1.001).contains(*x)) {
        return Err(CliError::new(format!(
            "--samples {p}: a value {x} outside [-1, 1] (images must be in the generator's tanh range)"
        )));
    }
    Ok(t)
}

/// The moments of the test set's features.
pub fn test_moments(model: &FidModel, data_dir: Option<&Path>) -> CliResult<Moments> {
    let s = GanSettings {
        data_dir: data_dir.map(Path::to_path_buf),
        ..Default::default()
    };
    let d = data::load(&data_config(&s))?;
    let test = d.test.ok_or_else(|| CliError::new("the data set has no test split"))?;
    let unit = (vec![0.5], vec![0.5]);
    let loader = trainer::make_loader(test, 500, &d.input_shape, &unit, false)?;
    let mut m = Moments::new(FEATURES);
    for b in loader.epoch(0) {
        m.add(&model.features(&b?.inputs)?.0)?;
    }
    Ok(m)
}

/// Run `nabla gan fid`.
pub fn fid(a: FidArgs) -> CliResult<()> {
    let images = read_samples(&a.samples)?;
    let stop = nabla_train::stop_on_ctrl_c()?;
    let (model, _) = fid_model(a.fid_model.as_deref(), a.data_dir.as_deref(), &stop)?;
    let real = test_moments(&model, a.data_dir.as_deref())?;
    let n = images.shape()[0];
    let mut at = 0;
    let score = model.score_generated(&real, n, |k| {
        let part = images.narrow(0, at, k)?;
        at += k;
        Ok(part)
    })?;
    println!(
        "FID {:.2} ({} generated vs {} test images); predicted classes of the generated images: {}; {} of {} classes present",
        score.fid,
        score.samples,
        score.real,
        score.histogram_line(&model.classes),
        score.covered(),
        model.classes.len()
    );
    Ok(())
}
