//! Helpers shared by the zoo's integration tests.
#![allow(dead_code)]

use nabla_core::{DType, Generator, Tensor};
use nabla_models::{build, ModelConfig};
use nabla_nn::loss::{cross_entropy, CrossEntropyOptions};
use nabla_nn::{Mode, Module};

/// A standard-normal batch `[n, c, h, w]`.
pub fn batch(n: usize, c: usize, h: usize, w: usize, seed: u64) -> Tensor {
    Tensor::randn(&[n, c, h, w], DType::F32, &mut Generator::new(seed))
}

/// Labels 0, 1, 2, ... modulo `classes`.
pub fn labels(n: usize, classes: usize) -> Vec<usize> {
    (0..n).map(|i| i % classes).collect()
}

/// One cross-entropy training step: the loss is finite, and every parameter receives a
/// finite gradient of its own shape. Returns the loss.
pub fn train_step(model: &dyn Module, x: &Tensor, classes: usize) -> f64 {
    let logits = model.forward(x, Mode::Train).unwrap();
    assert_eq!(logits.shape(), &[x.shape()[0], classes]);
    let loss = cross_entropy(&logits, &labels(x.shape()[0], classes), &CrossEntropyOptions::default()).unwrap();
    let value = loss.item().unwrap();
    assert!(value.is_finite(), "loss {value}");
    every_param_has_gradient(model, &loss);
    value
}

/// Backpropagate `loss` and check every parameter of `model` gets a finite gradient.
pub fn every_param_has_gradient(model: &dyn Module, loss: &Tensor) {
    let grads = loss.backward().unwrap();
    for (name, p) in model.named_parameters() {
        let g = grads.get(&p).unwrap_or_else(|| panic!("{name} got no gradient"));
        assert_eq!(g.shape(), p.shape(), "{name}");
        assert!(
            g.to_vec_f64().iter().all(|v| v.is_finite()),
            "{name}: non-finite gradient"
        );
    }
}

/// A config for ImageNet-style models: 3 channels, 1000 classes, `size`×`size`.
pub fn imagenet(size: usize) -> ModelConfig {
    ModelConfig {
        num_classes: 1000,
        in_channels: 3,
        input_size: [size, size],
        ..Default::default()
    }
}

/// Build `name` from `cfg`, unwrapping.
pub fn make(name: &str, cfg: &ModelConfig) -> Box<dyn Module> {
    build(name, cfg).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Shapes of the state dict, by name.
pub fn state_shapes(model: &dyn Module) -> Vec<(String, Vec<usize>)> {
    model
        .state_dict()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec()))
        .collect()
}
