//! Model-zoo figures: a small-input ResNet-18 training step and an AlexNet forward,
//! timed like `torch_reference.py` (two warm-ups, then the median).

use crate::measure::median_secs;
use crate::report::Row;
use nabla_core::{no_grad, DType, Error, Generator, Result, Tensor};
use nabla_models::{build, ModelConfig};
use nabla_nn::loss::{cross_entropy, CrossEntropyOptions};
use nabla_nn::optim::{Optimizer, Sgd, SgdOptions};
use nabla_nn::{Mode, Module};

fn wrap(e: impl std::fmt::Display) -> Error {
    Error::invalid("zoo bench", e.to_string())
}

/// ResNet-18 with a 3×3 stem and no max-pool, one SGD step on 32 images of 3×32×32.
pub fn resnet18() -> Result<Vec<Row>> {
    let cfg = ModelConfig {
        num_classes: 10,
        in_channels: 3,
        input_size: [32, 32],
        small_input: true,
        ..Default::default()
    };
    let model = build("resnet18", &cfg).map_err(wrap)?;
    let opts = SgdOptions {
        lr: 0.01,
        momentum: 0.9,
        ..Default::default()
    };
    let mut opt = Sgd::new(model.trainable_parameters(), opts).map_err(wrap)?;
    let mut g = Generator::new(0);
    let x = Tensor::randn(&[32, 3, 32, 32], DType::F32, &mut g);
    let y: Vec<usize> = (0..32).map(|_| g.below(10) as usize).collect();
    let ce = CrossEntropyOptions::default();
    let mut failure = None;
    let secs = median_secs(5, || {
        let mut step = || -> Result<()> {
            let logits = model.forward(&x, Mode::Train).map_err(wrap)?;
            let grads = cross_entropy(&logits, &y[..], &ce).map_err(wrap)?.backward()?;
            opt.step(&grads).map_err(wrap)
        };
        if let Err(e) = step() {
            failure = Some(e);
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let key = "resnet18 (3x3 stem, no maxpool) train step, batch 32 of 3x32x32";
    say!("nabla {key}: {:.1} ms", secs * 1e3);
    Ok(vec![Row::lower(key, "ms", secs * 1e3)])
}

/// torchvision's AlexNet, eval-mode forward of 8 images of 3×227×227 without the graph.
pub fn alexnet() -> Result<Vec<Row>> {
    let cfg = ModelConfig {
        num_classes: 1000,
        in_channels: 3,
        input_size: [227, 227],
        ..Default::default()
    };
    let model = build("alexnet_torchvision", &cfg).map_err(wrap)?;
    let x = Tensor::randn(&[8, 3, 227, 227], DType::F32, &mut Generator::new(0));
    let _guard = no_grad();
    let mut failure = None;
    let secs = median_secs(5, || {
        if let Err(e) = model.forward(&x, Mode::Eval) {
            failure = Some(wrap(e));
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let key = "alexnet (torchvision) forward, batch 8 of 3x227x227";
    say!("nabla {key}: {:.1} ms", secs * 1e3);
    Ok(vec![Row::lower(key, "ms", secs * 1e3)])
}
