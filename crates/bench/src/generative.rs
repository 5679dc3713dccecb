//! The generative sections, as `torch/generative.py autoencoder|dcgan` runs them, with the
//! recipes `nabla autoencode` and `nabla gan` default to, on the first 55,000 Fashion-MNIST
//! training images (the CLI holds the last 5,000 out for validation):
//!
//! - `autoencoder`: the zoo's `conv_autoencoder`, latent 16, MSE on [0, 1] pixels, Adam
//!   lr 1e-3 betas (0.9, 0.999), batch 128; seconds per epoch, then the test set's
//!   reconstruction MSE (mean over all pixels) after the epochs run.
//! - `dcgan`: the zoo's DCGAN generator and discriminator for 1×28×28, latent 100, images in
//!   [−1, 1], batch 128, one Adam per player (lr 2e-4, betas (0.5, 0.999)), nonsaturating
//!   BCE-with-logits, one discriminator step then one generator step per batch on the same
//!   fake batch, the generator's step computing its own gradients only, as `nabla gan` runs
//!   it; seconds per epoch, and optionally 10,000 samples saved for `nabla gan fid`.
//!
//! With `--batches B` every epoch stops after B batches, and the figures' label says so
//! (`dcgan first 50 batches`), on both sides.

use crate::report::Row;
use crate::Settings;
use nabla_core::{grad, no_grad, DType, Error, Generator, Gradients, Result, Tensor};
use nabla_data::{DataLoader, Dataset, FashionMnist, ImageDataset, Split};
use nabla_models::autoencoder::build_autoencoder;
use nabla_models::{build, ModelConfig};
use nabla_nn::loss::{binary_cross_entropy_with_logits, mse_loss, Reduction};
use nabla_nn::optim::{Adam, AdamOptions, Optimizer};
use nabla_nn::{Mode, Module};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Training images per epoch (the CLI's split: 60,000 less 5,000 held out).
const N_TRAIN: usize = 55_000;
/// Batch size of both recipes.
const BATCH: usize = 128;
/// DCGAN's latent size.
const LATENT: usize = 100;
/// Generated images saved for the FID.
const SAMPLES: usize = 10_000;

pub(crate) fn wrap(e: impl std::fmt::Display) -> Error {
    Error::invalid("generative bench", e.to_string())
}

pub(crate) fn load(split: Split) -> Result<ImageDataset> {
    // Never download in a benchmark: the data must be installed (dataset-fashion-mnist).
    let f = FashionMnist {
        download: false,
        ..FashionMnist::new()
    };
    f.load(split).map_err(wrap)
}

/// The first [`N_TRAIN`] training images, shuffled every epoch, in batches of [`BATCH`].
fn train_loader() -> Result<DataLoader> {
    let all = load(Split::Train)?;
    let n = N_TRAIN.min(all.len());
    let mut pixels = Vec::with_capacity(n * 784);
    for i in 0..n {
        pixels.extend_from_slice(all.pixels(i).map_err(wrap)?);
    }
    let labels = all.labels()[..n].to_vec();
    let ds = ImageDataset::new(
        pixels,
        labels,
        all.image_shape(),
        all.classes().to_vec(),
        Path::new("train"),
    )
    .map_err(wrap)?;
    Ok(DataLoader::new(ds, BATCH).map_err(wrap)?.shuffle(true).seed(0))
}

/// CPU seconds this process has used, all threads (user + system), from /proc/self/stat;
/// 0 where that cannot be read.
fn cpu_secs() -> f64 {
    // Fields after the command name, which ends at the last ')'; utime and stime are the
    // 12th and 13th of them, in clock ticks of 1/100 s (USER_HZ on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    ticks.iter().sum::<f64>() / 100.0
}

/// Wall and CPU seconds of one timed stretch.
pub(crate) struct Timer(Instant, f64);

impl Timer {
    pub(crate) fn start() -> Timer {
        Timer(Instant::now(), cpu_secs())
    }
    /// (wall, cpu) seconds since the start.
    pub(crate) fn stop(&self) -> (f64, f64) {
        (self.0.elapsed().as_secs_f64(), cpu_secs() - self.1)
    }
}

/// The label of the timed stretch, as the script prints it: a whole epoch of `n` images or
/// its first `--batches`.
fn epoch_key(model: &str, s: &Settings, n: usize) -> String {
    match s.batches {
        Some(b) if b * BATCH < n => format!("{model} first {b} batches"),
        _ => format!("{model} epoch"),
    }
}

/// Images one timed stretch sees.
fn images_seen(s: &Settings, n: usize) -> f64 {
    s.batches.map_or(n, |b| n.min(b * BATCH)) as f64
}

/// The rows of an epoch figure, as the script prints them: wall s, img/s, CPU s.
fn epoch_rows(key: &str, n: f64, secs: f64, cpu: f64) -> Vec<Row> {
    say!("nabla {key}: {secs:.2} s ({:.0} img/s), {cpu:.2} cpu-s", n / secs);
    vec![
        Row::lower(key, "s", secs),
        Row::higher(key, "img/s", n / secs),
        Row::lower(key, "cpu-s", cpu),
    ]
}

fn adam(params: Vec<Tensor>, lr: f64, betas: (f64, f64)) -> Result<Adam> {
    let opts = AdamOptions {
        lr,
        betas,
        ..Default::default()
    };
    Adam::new(params, opts).map_err(wrap)
}

/// `--epochs` epochs of the conv autoencoder: mean seconds per epoch and the test MSE.
pub fn autoencoder(s: &Settings) -> Result<Vec<Row>> {
    let (train, test) = (train_loader()?, load(Split::Test)?);
    let key = epoch_key("conv_autoencoder", s, train.dataset().len());
    let n = images_seen(s, train.dataset().len());
    let test = DataLoader::new(test, 1000).map_err(wrap)?;
    let cfg = ModelConfig {
        hidden: vec![16],
        ..ModelConfig::default()
    };
    let model = build_autoencoder("conv_autoencoder", &cfg).map_err(wrap)?;
    let mut opt = adam(model.trainable_parameters(), 1e-3, (0.9, 0.999))?;
    let (mut secs, mut cpu) = (0.0, 0.0);
    for ep in 0..s.epochs {
        let t0 = Timer::start();
        let mut last = f64::NAN;
        for b in train.epoch(ep as u64).take(s.batches.unwrap_or(usize::MAX)) {
            let x = b.map_err(wrap)?.inputs;
            let loss = mse_loss(&model.forward(&x, Mode::Train).map_err(wrap)?, &x, Reduction::Mean).map_err(wrap)?;
            let grads = loss.backward()?;
            opt.step(&grads).map_err(wrap)?;
            last = loss.item()?;
        }
        let (dt, dc) = t0.stop();
        (secs, cpu) = (secs + dt, cpu + dc);
        eprintln!(
            "nabla autoencoder epoch {} of {}: {dt:.2} s, last batch loss {last:.5}",
            ep + 1,
            s.epochs
        );
    }
    let (secs, cpu) = (secs / s.epochs as f64, cpu / s.epochs as f64);
    let _g = no_grad();
    let (mut se, mut count) = (0.0, 0usize);
    for b in test.epoch(0) {
        let x = b.map_err(wrap)?.inputs;
        let y = model.forward(&x, Mode::Eval).map_err(wrap)?;
        se += mse_loss(&y, &x, Reduction::Sum).map_err(wrap)?.item()?;
        count += x.numel();
    }
    let mse = se / count.max(1) as f64;
    let mut rows = epoch_rows(&key, n, secs, cpu);
    let mse_key = match s.batches {
        Some(b) if key.contains("batches") => {
            format!("conv_autoencoder test mse after {} epochs of {b} batches", s.epochs)
        }
        _ => format!("conv_autoencoder test mse after {} epochs", s.epochs),
    };
    say!("nabla {mse_key}: {mse:.5} mse");
    rows.push(Row::lower(mse_key, "mse", mse));
    Ok(rows)
}

/// `--epochs` epochs of DCGAN: mean seconds per epoch; with `--samples DIR`, 10,000 images
/// from the trained generator in `DIR/nabla-dcgan.safetensors`.
pub fn dcgan(s: &Settings) -> Result<Vec<Row>> {
    let train = train_loader()?;
    let key = epoch_key("dcgan", s, train.dataset().len());
    let n = images_seen(s, train.dataset().len());
    let cfg = ModelConfig {
        hidden: vec![LATENT],
        ..ModelConfig::default()
    };
    let (g, d) = (
        build("generator", &cfg).map_err(wrap)?,
        build("discriminator", &cfg).map_err(wrap)?,
    );
    let g_params = g.trainable_parameters();
    let g_refs: Vec<&Tensor> = g_params.iter().collect();
    let mut opt_g = adam(g_params.clone(), 2e-4, (0.5, 0.999))?;
    let mut opt_d = adam(d.trainable_parameters(), 2e-4, (0.5, 0.999))?;
    let mut noise = Generator::new(0);
    let (mut secs, mut cpu) = (0.0, 0.0);
    for ep in 0..s.epochs {
        let t0 = Timer::start();
        let mut last = [f64::NAN; 4];
        for b in train.epoch(ep as u64).take(s.batches.unwrap_or(usize::MAX)) {
            let real = b.map_err(wrap)?.inputs.mul_scalar(2.0)?.add_scalar(-1.0)?;
            let bs = real.size(0)?;
            // One fake batch serves both steps. D step: real images are 1, the fakes
            // (detached) are 0.
            let z = Tensor::randn(&[bs, LATENT], DType::F32, &mut noise);
            let fake = g.forward(&z, Mode::Train).map_err(wrap)?;
            let (lr, lf) = (
                d.forward(&real, Mode::Train).map_err(wrap)?,
                d.forward(&fake.detach(), Mode::Train).map_err(wrap)?,
            );
            let ones = Tensor::ones(lr.shape(), DType::F32);
            let zeros = Tensor::zeros(lf.shape(), DType::F32);
            let loss_d = binary_cross_entropy_with_logits(&lr, &ones, Reduction::Mean)
                .map_err(wrap)?
                .add(&binary_cross_entropy_with_logits(&lf, &zeros, Reduction::Mean).map_err(wrap)?)?;
            opt_d.step(&loss_d.backward()?).map_err(wrap)?;
            // G step, nonsaturating: the fakes scored against 1, gradients for G alone.
            let lg = d.forward(&fake, Mode::Train).map_err(wrap)?;
            let loss_g = binary_cross_entropy_with_logits(&lg, &ones, Reduction::Mean).map_err(wrap)?;
            let mut grads = Gradients::default();
            for (p, gr) in g_params.iter().zip(grad(&[&loss_g], None, &g_refs, false)?) {
                if let Some(gr) = gr {
                    grads.insert(p, gr);
                }
            }
            opt_g.step(&grads).map_err(wrap)?;
            last = [
                loss_d.item()?,
                loss_g.item()?,
                lr.sigmoid()?.mean_all()?.item()?,
                lf.sigmoid()?.mean_all()?.item()?,
            ];
        }
        let (dt, dc) = t0.stop();
        (secs, cpu) = (secs + dt, cpu + dc);
        let [ld, lg, dx, dgz] = last;
        eprintln!(
            "nabla dcgan epoch {} of {}: {dt:.2} s, D loss {ld:.3}, G loss {lg:.3}, D(x) {dx:.3}, D(G(z)) {dgz:.3}",
            ep + 1,
            s.epochs
        );
    }
    let (secs, cpu) = (secs / s.epochs as f64, cpu / s.epochs as f64);
    let rows = epoch_rows(&key, n, secs, cpu);
    if let Some(dir) = &s.samples {
        let path = dir.join("nabla-dcgan.safetensors");
        save_samples(g.as_ref(), &mut noise, &path)?;
        say!("nabla dcgan samples: {SAMPLES} images written to {}", path.display());
    }
    Ok(rows)
}

/// [`SAMPLES`] images of `g` in eval mode as the safetensors tensor `images` [N, 1, 28, 28].
fn save_samples(g: &dyn Module, noise: &mut Generator, path: &Path) -> Result<()> {
    let _g = no_grad();
    let parts = (0..SAMPLES / 500)
        .map(|_| g.forward(&Tensor::randn(&[500, LATENT], DType::F32, noise), Mode::Eval))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(wrap)?;
    let images = Tensor::cat(&parts.iter().collect::<Vec<_>>(), 0)?;
    nabla_nn::save_tensors(path, &[("images".to_string(), images)], &BTreeMap::new()).map_err(wrap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_count_work_done() {
        let t = Timer::start();
        // Arithmetic the optimizer cannot drop, until 50 ms of CPU time show (10 s at most).
        let mut x = 0u64;
        while t.stop().1 < 0.05 && t.stop().0 < 10.0 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        let (wall, cpu) = t.stop();
        // CPU time grows with the work. It is the whole process's, and other tests run on
        // other threads meanwhile, so it is bounded by the clock times the cores, not the clock.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(cpu >= 0.05, "cpu {cpu} s in {wall} s");
        assert!(cpu <= wall * cores + 0.02, "cpu {cpu} s in {wall} s on {cores} cores");
    }
}
