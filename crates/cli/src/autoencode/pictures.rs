//! The pictures of an autoencoder's run folder, redrawn after every epoch:
//! `reconstructions.png` (the same test images above their reconstructions), `latent.png`
//! (the test set in latent space, coloured by class) and `curves.png` (the losses).

use super::config::AeMeta;
use super::knn::Pca;
use super::task::{noisy, reconstruct, Images};
use crate::error::CliResult;
use crate::plot::{curves_png, grid_png, scatter_png, GridOptions, Scatter, Series};
use nabla_core::Tensor;
use nabla_models::autoencoder::Autoencoder;
use nabla_train::Record;
use std::path::Path;

/// Test images shown in `reconstructions.png`: the first 16, in two groups of 8.
const SHOWN: usize = 16;
/// Images per row of `reconstructions.png`.
const COLS: usize = 8;
/// The seed of the noisy copies a denoising run shows (the same every epoch).
const SHOWN_NOISE: u64 = 0x5E1F;

/// Write `reconstructions.png`: rows of test images, each above its noisy input (with
/// `--noise`) and its reconstruction.
pub fn reconstructions(dir: &Path, model: &dyn Autoencoder, meta: &AeMeta, test: &Images, epoch: u64) -> CliResult<()> {
    let cfg = &meta.config;
    let n = SHOWN.min(test.len());
    let clean = test.x.narrow(0, 0, n)?;
    let input = noisy(&clean, cfg.noise, SHOWN_NOISE, 0)?;
    let recon = reconstruct(model, &input, cfg.bce())?;
    let mut rows: Vec<Tensor> = Vec::new();
    for start in (0..n).step_by(COLS) {
        let k = COLS.min(n - start);
        rows.push(clean.narrow(0, start, k)?);
        if cfg.noise > 0.0 {
            rows.push(input.narrow(0, start, k)?);
        }
        rows.push(recon.narrow(0, start, k)?);
    }
    // A short last group would shift later rows: pad each row to a full one with white.
    let rows: Vec<Tensor> = rows
        .into_iter()
        .map(|r| {
            let k = r.shape()[0];
            let mut shape = r.shape().to_vec();
            shape[0] = COLS - k;
            match k < COLS {
                true => Tensor::cat(&[&r, &Tensor::ones(&shape, r.dtype())], 0),
                false => Ok(r),
            }
        })
        .collect::<Result<_, _>>()?;
    let refs: Vec<&Tensor> = rows.iter().collect();
    let what = match cfg.noise > 0.0 {
        true => format!("originals, noisy inputs (sigma {}), reconstructions", cfg.noise),
        false => "test images above their reconstructions".into(),
    };
    let opts = GridOptions {
        cols: COLS,
        scale: 2,
        gap: 2,
        title: format!("{}, epoch {epoch}: {what}", cfg.model),
    };
    grid_png(&dir.join("reconstructions.png"), &Tensor::cat(&refs, 0)?, &opts)
}

/// Write `latent.png`: the latent codes `z` (`N × L`) of the test set as points coloured
/// by class; L = 2 drawn directly, L = 1 along the x axis, L > 2 on the first two principal
/// components of these codes (the title says which).
pub fn latent(dir: &Path, z: &[f32], meta: &AeMeta, labels: &[usize], epoch: u64) -> CliResult<()> {
    let l = meta.config.latent;
    let (points, how, axes): (Vec<(f64, f64)>, String, (&str, &str)) = match l {
        1 => (
            z.iter().map(|&v| (v as f64, 0.0)).collect(),
            "1 dim, drawn along x".into(),
            ("z1", ""),
        ),
        2 => (
            z.chunks_exact(2).map(|p| (p[0] as f64, p[1] as f64)).collect(),
            "2 dims, drawn as they are".into(),
            ("z1", "z2"),
        ),
        _ => {
            let pca = Pca::fit(z, l, 2)?;
            let share = (pca.variance[0] + pca.variance[1]) / pca.total_variance.max(1e-30);
            let p = pca.project(z)?;
            (
                p.chunks_exact(2).map(|p| (p[0] as f64, p[1] as f64)).collect(),
                format!(
                    "{l} dims, projected on their first 2 principal components ({:.0}% of the variance)",
                    100.0 * share
                ),
                ("PC1", "PC2"),
            )
        }
    };
    let title = format!("test set in latent space, epoch {epoch}");
    let subtitle = format!("{}, latent {how}", meta.config.model);
    let s = Scatter {
        points: &points,
        labels,
        classes: &meta.classes,
        title: &title,
        subtitle: &subtitle,
        axes,
    };
    scatter_png(&dir.join("latent.png"), &s)
}

/// Write `curves.png`: the training and validation reconstruction loss per epoch.
pub fn curves(dir: &Path, records: &[Record], loss: &str) -> CliResult<()> {
    let series = |name: &str, color, key: &str| Series {
        name: name.to_string(),
        color,
        points: records.iter().map(|r| (r.epoch as f64, r.get(key))).collect(),
    };
    let lines = vec![
        series("train", [31, 119, 180], "train_loss"),
        series("validation", [214, 39, 40], "val_loss"),
    ];
    let label = format!("{loss} per pixel");
    curves_png(&dir.join("curves.png"), &[("reconstruction loss", &label, lines)])
}
