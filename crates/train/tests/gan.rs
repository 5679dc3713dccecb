//! A task with two players on the engine: a minimal GAN learning a 1-D Gaussian, with k₁ = 2
//! discriminator steps then k₂ = 1 generator step, trains (finite losses, both players move)
//! and resumes bitwise from a stop in the middle of an epoch.

use nabla_core::{DType, Generator, Tensor};
use nabla_data::{Batch, DataLoader, TensorDataset};
use nabla_nn::checkpoint::Checkpoint;
use nabla_nn::loss::{binary_cross_entropy_with_logits, Reduction};
use nabla_nn::optim::{Adam, AdamOptions};
use nabla_nn::scheduler::CosineAnnealingLR;
use nabla_nn::{LeakyReLU, Linear, Mode, Module, Sequential};
use nabla_train::{fit, FitOptions, Optim, Outcome, Schedule, StepOutput, Task};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

const K1: u64 = 2;
const K2: u64 = 1;
const NOISE: usize = 2;
const EPOCHS: u64 = 3;

/// A fully connected layer with a bias, initialized from `g` (the one place that builds layers).
fn linear(inp: usize, out: usize, g: &mut Generator) -> Linear {
    let bound = 1.0 / (inp as f64).sqrt();
    let w = Tensor::uniform(&[out, inp], -bound, bound, DType::F32, g).set_requires_grad(true);
    let b = Tensor::uniform(&[out], -bound, bound, DType::F32, g).set_requires_grad(true);
    Linear::from_parts(w, Some(b)).expect("shapes agree")
}

fn mlp(inp: usize, hidden: usize, out: usize, g: &mut Generator) -> Sequential {
    Sequential::new()
        .push(linear(inp, hidden, g))
        .push(LeakyReLU { negative_slope: 0.2 })
        .push(linear(hidden, out, g))
}

/// The generator maps noise to samples; the discriminator scores samples (logits).
struct Gan {
    generator: Sequential,
    discriminator: Sequential,
}

impl Gan {
    fn new(seed: u64) -> Gan {
        let mut g = Generator::new(seed);
        Gan {
            generator: mlp(NOISE, 8, 1, &mut g),
            discriminator: mlp(1, 8, 1, &mut g),
        }
    }

    /// The noise of step `step`: drawn from a generator keyed by the step, so a resumed run
    /// draws what the uninterrupted one did without any state to save.
    fn noise(rows: usize, step: u64) -> Tensor {
        Tensor::randn(&[rows, NOISE], DType::F32, &mut Generator::new(0x6A7 ^ step))
    }
}

fn bce(logits: &Tensor, target: f64) -> nabla_train::Result<Tensor> {
    let t = Tensor::full(logits.shape(), target, logits.dtype());
    Ok(binary_cross_entropy_with_logits(logits, &t, Reduction::Mean)?)
}

impl Task for Gan {
    fn models(&self) -> Vec<(&str, &dyn Module)> {
        vec![("generator", &self.generator), ("discriminator", &self.discriminator)]
    }

    fn configure_optimizers(&mut self) -> nabla_train::Result<Vec<Optim>> {
        let adam = |params| {
            let o = AdamOptions {
                lr: 0.01,
                betas: (0.5, 0.999),
                ..Default::default()
            };
            Adam::new(params, o)
        };
        let mut d = adam(self.discriminator.parameters())?;
        let d_sched = CosineAnnealingLR::new(&mut d, EPOCHS as usize, 0.0)?;
        let g = adam(self.generator.parameters())?;
        Ok(vec![
            Optim::new(Box::new(d), Schedule::Epoch(Box::new(d_sched))),
            Optim::constant(Box::new(g)),
        ])
    }

    fn training_step(&mut self, b: &Batch, step: u64, optims: &mut [Optim]) -> nabla_train::Result<StepOutput> {
        let rows = b.inputs.shape()[0];
        let fake = self.generator.forward(&Gan::noise(rows, step), Mode::Train)?;
        let out = StepOutput::new(rows as u64);
        if step % (K1 + K2) < K1 {
            // The discriminator's step: real samples are 1, the generator's (detached) are 0.
            let real = bce(&self.discriminator.forward(&b.inputs, Mode::Train)?, 1.0)?;
            let fake = bce(&self.discriminator.forward(&fake.detach(), Mode::Train)?, 0.0)?;
            let loss = real.add(&fake)?;
            optims[0].optimizer.step(&loss.backward()?)?;
            Ok(out.sum("d_loss", loss.item()? * rows as f64))
        } else {
            // The generator's step: its samples should be scored as real; only it is updated.
            let loss = bce(&self.discriminator.forward(&fake, Mode::Train)?, 1.0)?;
            optims[1].optimizer.step(&loss.backward()?)?;
            Ok(out.sum("g_loss", loss.item()? * rows as f64))
        }
    }
}

/// 96 samples of N(3, 0.5²) as the real data, in batches of 16 (6 steps an epoch).
fn loader() -> DataLoader {
    let x = Tensor::normal(&[96, 1], 3.0, 0.5, DType::F32, &mut Generator::new(11));
    DataLoader::new(TensorDataset::regression(&x, &x).unwrap(), 16).unwrap()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("nabla-train-gan-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn opts(out: &Path) -> FitOptions {
    FitOptions {
        epochs: EPOCHS,
        seed: 5,
        out: out.to_path_buf(),
        ..Default::default()
    }
}

/// Tensors as raw bits, by name.
type Bits = Vec<(String, Vec<u64>)>;

fn bits(m: &dyn Module) -> Bits {
    let f = |(n, t): (String, Tensor)| (n, t.to_vec_f64().iter().map(|v| v.to_bits()).collect());
    m.state_dict().into_iter().map(f).collect()
}

/// Every tensor and number of a checkpoint as bits (models, both optimizers, the schedule).
fn checkpoint_bits(path: &Path) -> (Bits, Vec<(String, u64)>, u64) {
    let ck = Checkpoint::load(path).unwrap();
    let t = |(n, t): &(String, Tensor)| (n.clone(), t.to_vec_f64().iter().map(|v| v.to_bits()).collect());
    let tensors = ck.model.iter().chain(&ck.optimizer.tensors).map(t).collect();
    let scalars = ck
        .optimizer
        .scalars
        .iter()
        .chain(&ck.scheduler)
        .map(|(k, v)| (k.clone(), v.to_bits()))
        .collect();
    (tensors, scalars, ck.step)
}

fn metric(dir: &Path, key: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let value = |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap()[key].as_f64();
    text.lines().map(|l| value(l).unwrap_or(f64::NAN)).collect()
}

#[test]
fn a_gan_trains_with_two_optimizers_taking_turns() {
    let tmp = TempDir::new("train");
    let mut gan = Gan::new(1);
    let (g0, d0) = (bits(&gan.generator), bits(&gan.discriminator));
    let stop = AtomicBool::new(false);
    let outcome = fit(&mut gan, loader(), None, &opts(&tmp.0), &stop).unwrap();
    assert_eq!(outcome, Outcome::Finished { best: None });
    for key in ["train_d_loss", "train_g_loss"] {
        let v = metric(&tmp.0, key);
        assert!(
            v.len() == EPOCHS as usize && v.iter().all(|x| x.is_finite() && *x > 0.0),
            "{key}: {v:?}"
        );
    }
    assert_ne!(bits(&gan.generator), g0, "the generator did not move");
    assert_ne!(bits(&gan.discriminator), d0, "the discriminator did not move");
    // Both players' optimizer states are in the checkpoint, each under its own prefix.
    let ck = Checkpoint::load(tmp.0.join("last.safetensors")).unwrap();
    for p in ["opt0.", "opt1."] {
        assert!(
            ck.optimizer.tensors.iter().any(|(n, _)| n.starts_with(p)),
            "no {p} state"
        );
    }
    assert!(ck.model.iter().any(|(n, _)| n.starts_with("generator.")));
    assert_eq!(ck.step, EPOCHS * 6);
    // The discriminator's rate followed its cosine schedule; the generator's stayed.
    let lrs = |o: &Optim| o.optimizer.lrs();
    let mut fresh = Gan::new(1).configure_optimizers().unwrap();
    fresh[0].optimizer.load_state_dict(&ck_part(&ck, "opt0")).unwrap();
    fresh[1].optimizer.load_state_dict(&ck_part(&ck, "opt1")).unwrap();
    assert!(
        lrs(&fresh[0])[0] < 1e-9 && lrs(&fresh[1])[0] == 0.01,
        "{:?}",
        (lrs(&fresh[0]), lrs(&fresh[1]))
    );
}

/// The state of optimizer `prefix` in a checkpoint of several.
fn ck_part(ck: &Checkpoint, prefix: &str) -> nabla_nn::optim::OptimizerState {
    let p = format!("{prefix}.");
    nabla_nn::optim::OptimizerState {
        tensors: ck
            .optimizer
            .tensors
            .iter()
            .filter_map(|(n, t)| Some((n.strip_prefix(&p)?.to_string(), t.clone())))
            .collect(),
        scalars: ck
            .optimizer
            .scalars
            .iter()
            .filter_map(|(n, v)| Some((n.strip_prefix(&p)?.to_string(), *v)))
            .collect(),
    }
}

#[test]
fn a_gan_stopped_mid_epoch_resumes_bitwise() {
    let tmp = TempDir::new("resume");
    let stop = AtomicBool::new(false);
    let straight = tmp.0.join("straight");
    let mut a = Gan::new(3);
    fit(&mut a, loader(), None, &opts(&straight), &stop).unwrap();

    // Stopped after 9 steps: 3 into epoch 2 (a generator step was the last one taken).
    let split = tmp.0.join("split");
    let first = FitOptions {
        stop_after_steps: Some(9),
        ..opts(&split)
    };
    let last = split.join("last.safetensors");
    assert_eq!(
        fit(&mut Gan::new(3), loader(), None, &first, &stop).unwrap(),
        Outcome::Stopped(last.clone())
    );
    let ck = Checkpoint::load(&last).unwrap();
    assert_eq!((ck.epoch, ck.step, ck.extra["batch"].as_str()), (1, 9, "3"));
    // A fresh task (initialized differently, so the checkpoint must supply everything).
    let mut b = Gan::new(99);
    let again = FitOptions {
        resume: Some(last.clone()),
        ..opts(&split)
    };
    assert!(matches!(
        fit(&mut b, loader(), None, &again, &stop).unwrap(),
        Outcome::Finished { .. }
    ));
    assert_eq!(bits(&a.generator), bits(&b.generator));
    assert_eq!(bits(&a.discriminator), bits(&b.discriminator));
    assert_eq!(
        checkpoint_bits(&straight.join("last.safetensors")),
        checkpoint_bits(&last)
    );
    for key in ["train_d_loss", "train_g_loss"] {
        let (s, r) = (metric(&straight, key), metric(&split, key));
        let to_bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(to_bits(&s), to_bits(&r), "{key}");
    }
}
