//! The training sections: one Fashion-MNIST epoch of LeNet-5 (`lenet`) and of the
//! 784-256-10 MLP (`mlp`), batch 64, SGD with momentum 0.9 at lr 0.05, as
//! `torch_reference.py lenet|mlp` runs them; the figures are seconds per epoch and images
//! per second, with the test accuracy after the epoch as a check that it trained.
//!
//! The loop is the one `nabla train` runs (loader with a seeded shuffle, forward,
//! cross-entropy, backward, optimizer step), minus the progress bar and checkpoints.

use crate::report::Row;
use nabla_core::{no_grad, Error, Result};
use nabla_data::{DataLoader, Dataset, FashionMnist, ImageDataset, Split};
use nabla_models::{build, ModelConfig};
use nabla_nn::loss::{cross_entropy, CrossEntropyOptions};
use nabla_nn::optim::{Optimizer, Sgd, SgdOptions};
use nabla_nn::{Mode, Module};
use std::time::Instant;

fn wrap(e: impl std::fmt::Display) -> Error {
    Error::invalid("train bench", e.to_string())
}

fn load(split: Split) -> Result<ImageDataset> {
    // Never download in a benchmark: the data must be installed (dataset-fashion-mnist).
    let f = FashionMnist {
        download: false,
        ..FashionMnist::new()
    };
    f.load(split).map_err(wrap)
}

/// One epoch of `model` over the training set; returns (seconds, test accuracy).
fn epoch(model: &dyn Module, train: &DataLoader, test: &DataLoader) -> Result<(f64, f64)> {
    let mut opt = Sgd::new(
        model.trainable_parameters(),
        SgdOptions {
            lr: 0.05,
            momentum: 0.9,
            ..Default::default()
        },
    )
    .map_err(wrap)?;
    let ce = CrossEntropyOptions::default();
    let t0 = Instant::now();
    for b in train.epoch(0) {
        let b = b.map_err(wrap)?;
        let loss = cross_entropy(
            &model.forward(&b.inputs, Mode::Train).map_err(wrap)?,
            &b.labels[..],
            &ce,
        )
        .map_err(wrap)?;
        let grads = loss.backward()?;
        opt.step(&grads).map_err(wrap)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let _g = no_grad();
    let (mut right, mut n) = (0usize, 0usize);
    for b in test.epoch(0) {
        let b = b.map_err(wrap)?;
        let pred = model.forward(&b.inputs, Mode::Eval).map_err(wrap)?.argmax(1, false)?;
        right += pred.iter().zip(&b.labels).filter(|(p, l)| p == l).count();
        n += b.labels.len();
    }
    Ok((secs, right as f64 / n.max(1) as f64))
}

fn section(model_name: &str, key: &str, hidden: Vec<usize>) -> Result<Vec<Row>> {
    let (train, test) = (load(Split::Train)?, load(Split::Test)?);
    let n = train.len() as f64;
    let train = DataLoader::new(train, 64).map_err(wrap)?.shuffle(true).seed(0);
    let test = DataLoader::new(test, 1000).map_err(wrap)?;
    let cfg = ModelConfig {
        hidden,
        ..ModelConfig::default()
    };
    let model = build(model_name, &cfg).map_err(wrap)?;
    let (secs, acc) = epoch(model.as_ref(), &train, &test)?;
    say!("nabla {key}: {secs:.2} s ({:.0} img/s), test acc {acc:.4}", n / secs);
    Ok(vec![Row::lower(key, "s", secs), Row::higher(key, "img/s", n / secs)])
}

/// LeNet-5, one epoch.
pub fn lenet() -> Result<Vec<Row>> {
    section("lenet5", "lenet5 epoch 1", vec![])
}

/// The 784-256-10 MLP, one epoch.
pub fn mlp() -> Result<Vec<Row>> {
    section("mlp", "mlp784-256-10 epoch 1", vec![256])
}
