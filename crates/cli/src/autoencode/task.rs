//! An autoencoder as a task of the training engine: one model, Adam, a reconstruction loss
//! per batch (MSE on the output as it is, or BCE on the output taken as logits); with
//! `--noise` the input is a noisy copy and the target the clean image. After every epoch,
//! the run folder's pictures.
//!
//! The noise of a step is drawn from a generator seeded by the run's seed and the step's
//! index, so a resumed run draws what an uninterrupted one would without any saved state.

use super::config::AeMeta;
use super::pictures;
use crate::error::CliResult;
use nabla_core::{no_grad, Generator, Tensor};
use nabla_data::{Batch, DataLoader, Dataset};
use nabla_models::autoencoder::Autoencoder;
use nabla_nn::loss::{binary_cross_entropy_with_logits, mse_loss, Reduction};
use nabla_nn::optim::{Adam, AdamOptions};
use nabla_nn::{Mode, Module};
use nabla_train::{Optim, Record, Result, StepOutput};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Images per forward pass when a whole split is encoded or reconstructed.
const EVAL_BATCH: usize = 500;
/// Mixed into the seed of the validation passes' noise, apart from the training steps'.
const VAL_STREAM: u64 = 0x7A11_DA7E;

/// Every image of a split in one tensor, with the labels.
pub struct Images {
    /// `[N, C, H, W]`, values in [0, 1].
    pub x: Tensor,
    /// Class labels.
    pub labels: Vec<usize>,
}

impl Images {
    /// All of `ds`, in order.
    pub fn load(ds: Arc<dyn Dataset>) -> CliResult<Images> {
        let loader = DataLoader::from_arc(ds, 1000)?;
        let (mut parts, mut labels) = (Vec::new(), Vec::new());
        for b in loader.epoch(0) {
            let b = b?;
            labels.extend_from_slice(&b.labels);
            parts.push(b.inputs);
        }
        let refs: Vec<&Tensor> = parts.iter().collect();
        Ok(Images {
            x: Tensor::cat(&refs, 0)?,
            labels,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
}

/// A seed for one draw of noise: the run's seed and the draw's index, well mixed
/// (SplitMix64's finalizer), so neighbouring steps draw unrelated noise.
fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `x` with Gaussian noise of standard deviation `sigma` added, clipped back to [0, 1]
/// (the input of a denoising autoencoder); `x` itself when `sigma` is 0.
pub fn noisy(x: &Tensor, sigma: f64, seed: u64, index: u64) -> CliResult<Tensor> {
    if sigma == 0.0 {
        return Ok(x.clone());
    }
    let mut g = Generator::new(mix(seed, index));
    let n = Tensor::normal(x.shape(), 0.0, sigma, x.dtype(), &mut g);
    Ok(x.add(&n)?.clamp(Some(0.0), Some(1.0))?)
}

/// The mean reconstruction loss of `out` (the decoder's output) against `x`.
pub fn recon_loss(out: &Tensor, x: &Tensor, bce: bool) -> CliResult<Tensor> {
    let out = out.reshape(x.shape())?;
    Ok(match bce {
        true => binary_cross_entropy_with_logits(&out, x, Reduction::Mean)?,
        false => mse_loss(&out, x, Reduction::Mean)?,
    })
}

/// The decoder's output as images in [0, 1] of `shape` (`[C, H, W]`): a sigmoid first for
/// a model trained with BCE on logits, then clipped.
pub fn as_images(out: &Tensor, shape: &[usize], bce: bool) -> CliResult<Tensor> {
    let n = out.shape()[0];
    let out = out.reshape([&[n][..], shape].concat())?;
    let out = if bce { out.sigmoid()? } else { out };
    Ok(out.clamp(Some(0.0), Some(1.0))?)
}

/// The latent codes of every image in `x` (`[N, C, H, W]`), `N × L` row-major.
pub fn encode_all(model: &dyn Autoencoder, x: &Tensor) -> CliResult<Vec<f32>> {
    let _guard = no_grad();
    let n = x.shape()[0];
    let mut out = Vec::new();
    for start in (0..n).step_by(EVAL_BATCH) {
        let part = x.narrow(0, start, EVAL_BATCH.min(n - start))?;
        out.extend(model.encoder().forward(&part, Mode::Eval)?.to_vec_f32());
    }
    Ok(out)
}

/// Decode latent codes `[N, L]` to images in [0, 1] of `shape`.
pub fn decode(model: &dyn Autoencoder, z: &Tensor, shape: &[usize], bce: bool) -> CliResult<Tensor> {
    let _guard = no_grad();
    as_images(&model.decoder().forward(z, Mode::Eval)?, shape, bce)
}

/// Reconstruct `x` (`[N, C, H, W]`) as images in [0, 1].
pub fn reconstruct(model: &dyn Autoencoder, x: &Tensor, bce: bool) -> CliResult<Tensor> {
    let _guard = no_grad();
    as_images(&model.forward(x, Mode::Eval)?, &x.shape()[1..], bce)
}

/// An autoencoder trained to reconstruct its (possibly noisy) input.
pub struct Autoencode {
    model: Box<dyn Autoencoder>,
    params: Vec<Tensor>,
    meta: AeMeta,
    banner: String,
    val_sum: f64,
    val_n: usize,
    val_batches: u64,
    test: Images,
}

impl Autoencode {
    /// The task of a run described by `meta`, training `model`; `test` is drawn after each
    /// epoch; `banner` opens a fresh run.
    pub fn new(model: Box<dyn Autoencoder>, meta: &AeMeta, test: Images, banner: String) -> Autoencode {
        Autoencode {
            params: model.trainable_parameters(),
            model,
            meta: meta.clone(),
            banner,
            val_sum: 0.0,
            val_n: 0,
            val_batches: 0,
            test,
        }
    }

    /// The model being trained.
    pub fn model(&self) -> &dyn Autoencoder {
        self.model.as_ref()
    }

    /// The test images drawn after each epoch.
    pub fn test(&self) -> &Images {
        &self.test
    }

    /// The latent size.
    pub fn latent(&self) -> usize {
        self.meta.config.latent
    }

    /// The loss of the model on `b` with the noise of draw `index` (of `seed`).
    fn loss(&self, b: &Batch, mode: Mode, seed: u64, index: u64) -> CliResult<Tensor> {
        let cfg = &self.meta.config;
        let input = noisy(&b.inputs, cfg.noise, seed, index)?;
        let out = self.model.forward(&input, mode)?;
        recon_loss(&out, &b.inputs, cfg.bce())
    }
}

impl nabla_train::Task for Autoencode {
    fn models(&self) -> Vec<(&str, &dyn Module)> {
        let m: &dyn Module = self.model.as_ref();
        vec![("", m)]
    }

    fn configure_optimizers(&mut self) -> Result<Vec<Optim>> {
        let opts = AdamOptions {
            lr: self.meta.config.lr,
            ..Default::default()
        };
        let adam = Adam::new(self.params.clone(), opts)?;
        Ok(vec![Optim::constant(Box::new(adam))])
    }

    fn training_step(&mut self, b: &Batch, step: u64, optims: &mut [Optim]) -> Result<StepOutput> {
        let rows = b.inputs.shape()[0] as u64;
        let loss = self.loss(b, Mode::Train, self.meta.config.seed, step)?;
        let lv = loss.item()?;
        if !lv.is_finite() {
            // Not stepped: the engine stops on this value and keeps the last checkpoint.
            return Ok(StepOutput::new(rows).sum("loss", lv));
        }
        let mut grads = loss.backward()?;
        optims[0].step(&mut grads, &self.params)?;
        Ok(StepOutput::new(rows).sum("loss", lv * rows as f64))
    }

    fn validation_step(&mut self, b: &Batch) -> Result<()> {
        let seed = self.meta.config.seed ^ VAL_STREAM;
        let loss = self.loss(b, Mode::Eval, seed, self.val_batches)?;
        let rows = b.inputs.shape()[0];
        self.val_sum += loss.item()? * rows as f64;
        self.val_n += rows;
        self.val_batches += 1;
        Ok(())
    }

    fn validation_end(&mut self) -> Result<Vec<(String, f64)>> {
        let loss = self.val_sum / self.val_n.max(1) as f64;
        (self.val_sum, self.val_n, self.val_batches) = (0.0, 0, 0);
        Ok(vec![("loss".into(), loss)])
    }

    fn show(&self, _name: &str, value: f64) -> String {
        format!("{value:.5}")
    }

    fn epoch_end(&mut self, dir: &Path, history: &[Record]) -> Result<()> {
        let epoch = history.last().map_or(0, |r| r.epoch);
        pictures::reconstructions(dir, self.model.as_ref(), &self.meta, &self.test, epoch)?;
        let z = encode_all(self.model.as_ref(), &self.test.x)?;
        pictures::latent(dir, &z, &self.meta, &self.test.labels, epoch)?;
        Ok(pictures::curves(dir, history, &self.meta.config.loss)?)
    }

    fn checkpoint_extra(&self) -> BTreeMap<String, String> {
        self.meta.to_extra()
    }

    fn start_message(&self) -> Option<String> {
        Some(self.banner.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::DType;

    #[test]
    fn noise_is_clipped_repeatable_and_differs_between_steps() {
        let x = Tensor::full(&[2, 1, 4, 4], 0.5, DType::F32);
        let a = noisy(&x, 1.0, 0, 3).unwrap().to_vec_f32();
        assert_eq!(a, noisy(&x, 1.0, 0, 3).unwrap().to_vec_f32());
        assert_ne!(a, noisy(&x, 1.0, 0, 4).unwrap().to_vec_f32());
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(a.contains(&0.0) && a.contains(&1.0), "σ = 1 around 0.5 clips both ways");
        assert_eq!(noisy(&x, 0.0, 0, 3).unwrap().to_vec_f32(), x.to_vec_f32());
    }

    #[test]
    fn bce_pictures_show_the_sigmoid_of_the_logits() {
        let logits = Tensor::from_vec(vec![0.0f32, 100.0, -100.0, 3.0], &[1, 4]).unwrap();
        let img = as_images(&logits, &[1, 2, 2], true).unwrap();
        assert_eq!(img.shape(), &[1, 1, 2, 2]);
        let v = img.to_vec_f32();
        assert!((v[0] - 0.5).abs() < 1e-6 && v[1] > 1.0 - 1e-6 && v[2] < 1e-6, "{v:?}");
        let mse = as_images(&logits, &[1, 2, 2], false).unwrap().to_vec_f32();
        assert_eq!(mse, vec![0.0, 1.0, 0.0, 1.0]);
        let x = Tensor::full(&[1, 1, 2, 2], 0.5, DType::F32);
        let l = recon_loss(&logits, &x, false).unwrap().item().unwrap();
        let want = (0.25 + 99.5f64.powi(2) + 100.5f64.powi(2) + 2.5f64.powi(2)) / 4.0;
        assert!((l - want).abs() < 1e-3 * want, "{l} vs {want}");
    }
}
