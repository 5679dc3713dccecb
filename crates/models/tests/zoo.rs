//! The small models: registry, MLP, LeNet-5 (shapes, parameter counts, hand-computed
//! values, one training step each).

mod common;

use common::{batch, make, train_step};
use nabla_core::{DType, Generator, Tensor};
use nabla_models::lenet::{lenet5, LeNetVariant};
use nabla_models::{build, names, ModelConfig};
use nabla_nn::{Error, Mode, Module};

#[test]
fn unknown_names_and_variants_are_config_errors() {
    let e = build("lenet6", &ModelConfig::default()).err().unwrap();
    let msg = e.to_string();
    assert!(matches!(e, Error::Config(_)));
    assert!(msg.contains("lenet6") && msg.contains("mlp") && msg.contains("lenet5"));
    let cfg = ModelConfig {
        variant: Some("retro".into()),
        ..Default::default()
    };
    assert!(matches!(build("lenet5", &cfg), Err(Error::Config(m)) if m.contains("retro")));
    assert!(matches!(build("mlp", &cfg), Err(Error::Config(_))));
    let cfg = ModelConfig {
        activation: "swish".into(),
        ..Default::default()
    };
    assert!(matches!(build("mlp", &cfg), Err(Error::Config(m)) if m.contains("swish")));
}

#[test]
fn every_listed_name_has_a_unique_entry() {
    let n = names();
    let mut sorted = n.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), n.len());
    assert!(n.starts_with(&["mlp", "lenet5"]));
}

#[test]
fn the_seed_decides_the_weights() {
    let cfg = ModelConfig::default();
    let a = make("mlp", &cfg).parameters()[0].to_vec_f32();
    let b = make("mlp", &cfg).parameters()[0].to_vec_f32();
    let c = make("mlp", &ModelConfig { seed: 1, ..cfg.clone() }).parameters()[0].to_vec_f32();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn mlp_default_is_784_256_10() {
    let m = make("mlp", &ModelConfig::default());
    assert_eq!(m.num_parameters(), 784 * 256 + 256 + 256 * 10 + 10);
    let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]
    );
    let x = batch(4, 1, 28, 28, 1);
    assert_eq!(m.forward(&x, Mode::Eval).unwrap().shape(), &[4, 10]);
    train_step(&*m, &x, 10);
}

/// y = W2·tanh(W1·x + b1) + b2, computed by hand from the model's own weights.
#[test]
fn mlp_matches_a_hand_computation() {
    let cfg = ModelConfig {
        num_classes: 1,
        in_channels: 3,
        input_size: [1, 1],
        hidden: vec![2],
        activation: "tanh".into(),
        ..Default::default()
    };
    let m = make("mlp", &cfg);
    let p: Vec<Vec<f32>> = m.parameters().iter().map(|t| t.to_vec_f32()).collect();
    let (w1, b1, w2, b2) = (&p[0], &p[1], &p[2], &p[3]);
    let xs = [0.5f32, -1.0, 2.0, 1.5, 0.25, -0.75];
    let y = m
        .forward(&Tensor::from_vec(xs.to_vec(), &[2, 3]).unwrap(), Mode::Eval)
        .unwrap();
    assert_eq!(y.shape(), &[2, 1]);
    for (row, got) in y.to_vec_f32().iter().enumerate() {
        let x = &xs[row * 3..row * 3 + 3];
        let h: Vec<f32> = (0..2)
            .map(|j| (b1[j] + (0..3).map(|i| w1[j * 3 + i] * x[i]).sum::<f32>()).tanh())
            .collect();
        let want = b2[0] + w2[0] * h[0] + w2[1] * h[1];
        assert!((got - want).abs() < 1e-6, "row {row}: {got} vs {want}");
    }
}

#[test]
fn mlp_takes_several_hidden_layers_and_plain_rows() {
    let cfg = ModelConfig {
        num_classes: 1,
        in_channels: 13,
        input_size: [1, 1],
        hidden: vec![32, 16, 8],
        activation: "gelu".into(),
        ..Default::default()
    };
    let m = make("mlp", &cfg);
    assert_eq!(m.num_parameters(), 13 * 32 + 32 + 32 * 16 + 16 + 16 * 8 + 8 + 8 + 1);
    let x = Tensor::randn(&[5, 13], DType::F32, &mut Generator::new(3));
    assert_eq!(m.forward(&x, Mode::Eval).unwrap().shape(), &[5, 1]);
    // A wrong feature count names the layer.
    let e = m
        .forward(&Tensor::zeros(&[5, 12], DType::F32), Mode::Eval)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("layers.0"), "{e}");
}

#[test]
fn lenet5_has_the_published_shapes() {
    let mut g = Generator::new(0);
    let net = lenet5(1, [28, 28], 10, LeNetVariant::Modern, &mut g).unwrap();
    let mut x = batch(2, 1, 28, 28, 0);
    let want = [
        [2, 6, 28, 28],
        [2, 6, 28, 28],
        [2, 6, 14, 14],
        [2, 16, 10, 10],
        [2, 16, 10, 10],
        [2, 16, 5, 5],
    ];
    for (i, w) in want.iter().enumerate() {
        x = net.features.get(i).unwrap().forward(&x, Mode::Eval).unwrap();
        assert_eq!(x.shape(), w, "after features.{i}");
    }
    let names: Vec<String> = net
        .named_parameters()
        .into_iter()
        .map(|(n, t)| format!("{n} {:?}", t.shape()))
        .collect();
    assert_eq!(
        names,
        [
            "features.0.weight [6, 1, 5, 5]",
            "features.0.bias [6]",
            "features.3.weight [16, 6, 5, 5]",
            "features.3.bias [16]",
            "classifier.0.weight [120, 400]",
            "classifier.0.bias [120]",
            "classifier.2.weight [84, 120]",
            "classifier.2.bias [84]",
            "classifier.4.weight [10, 84]",
            "classifier.4.bias [10]",
        ]
    );
    assert_eq!(net.num_parameters(), 61_706);
}

#[test]
fn lenet5_on_32x32_does_not_pad() {
    let cfg = ModelConfig {
        in_channels: 3,
        input_size: [32, 32],
        variant: Some("classic".into()),
        ..Default::default()
    };
    let m = make("lenet5", &cfg);
    // 32 → 28 → 14 → 10 → 5, so the classifier still sees 16·5·5.
    assert_eq!(m.num_parameters(), 6 * 3 * 25 + 6 + 2416 + 48_120 + 10_164 + 850);
    let x = batch(3, 3, 32, 32, 2);
    assert_eq!(m.forward(&x, Mode::Eval).unwrap().shape(), &[3, 10]);
    train_step(&*m, &x, 10);
    // 28×28 inputs no longer fit a 32×32 LeNet.
    assert!(m.forward(&batch(1, 3, 28, 28, 0), Mode::Eval).is_err());
}

#[test]
fn lenet5_variants_pool_and_squash_as_published() {
    let mut g = Generator::new(0);
    let classic = lenet5(1, [28, 28], 10, LeNetVariant::Classic, &mut g).unwrap();
    let modern = lenet5(1, [28, 28], 10, LeNetVariant::Modern, &mut g).unwrap();
    let x = Tensor::from_vec(vec![1.0f32, -2.0, 3.0, 0.5], &[1, 1, 2, 2]).unwrap();
    let act = |net: &nabla_models::ConvNet| net.features.get(1).unwrap().forward(&x, Mode::Eval);
    // The f32 tanh op is within a few ulp of the library's, not bitwise the same.
    let squashed = act(&classic).unwrap().to_vec_f32();
    for (got, v) in squashed.iter().zip([1.0f32, -2.0, 3.0, 0.5]) {
        assert!((got - v.tanh()).abs() <= 4e-7 * v.tanh().abs(), "tanh({v}): {got}");
    }
    assert_eq!(act(&modern).unwrap().to_vec_f32(), vec![1.0, 0.0, 3.0, 0.5]);
    let pool = |net: &nabla_models::ConvNet| net.features.get(2).unwrap().forward(&x, Mode::Eval);
    assert_eq!(pool(&classic).unwrap().to_vec_f32(), vec![0.625]);
    assert_eq!(pool(&modern).unwrap().to_vec_f32(), vec![3.0]);
}

#[test]
fn lenet5_trains_one_step_and_rejects_tiny_inputs() {
    let m = make("lenet5", &ModelConfig::default());
    train_step(&*m, &batch(4, 1, 28, 28, 5), 10);
    let cfg = ModelConfig {
        input_size: [8, 8],
        ..Default::default()
    };
    assert!(matches!(build("lenet5", &cfg), Err(Error::Config(m)) if m.contains("8×8")));
}

/// One config every model builds from: 3×32×32 inputs, small-input stems.
fn small_images() -> ModelConfig {
    ModelConfig {
        in_channels: 3,
        input_size: [32, 32],
        small_input: true,
        hidden: vec![64, 16],
        ..Default::default()
    }
}

/// The CLI's view: every name builds from one small-image config and maps a batch to the
/// output its kind promises.
#[test]
fn every_model_builds_and_runs_on_small_images() {
    let cfg = small_images();
    for name in names() {
        let m = make(name, &cfg);
        let x = match name {
            "generator" => Tensor::randn(&[1, 64], DType::F32, &mut Generator::new(0)),
            _ => batch(1, 3, 32, 32, 0),
        };
        let want: &[usize] = match name {
            "segnet" | "fcn_small" => &[1, 10, 32, 32],
            "classloc" => &[1, 14],
            // The detector's forward is its backbone: 64 maps at stride 4.
            "fasterrcnn_small" => &[1, 64, 8, 8],
            "discriminator" => &[1, 1],
            "generator" | "mlp_autoencoder" | "conv_autoencoder" => &[1, 3, 32, 32],
            _ => &[1, 10],
        };
        let y = m.forward(&x, Mode::Eval).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(y.shape(), want, "{name}");
        assert!(y.to_vec_f32().iter().all(|v| v.is_finite()), "{name}");
        assert!(!m.describe().is_empty());
    }
}

/// Every model names every generator it draws from in training: restoring the states it
/// reports and running the same training-mode batch again gives the same output bits (a
/// dropout the walk missed would draw a fresh mask).
#[test]
fn every_model_reports_the_generators_its_training_pass_uses() {
    let cfg = small_images();
    let mut with_dropout = Vec::new();
    for name in names() {
        let m = make(name, &cfg);
        let x = match name {
            "generator" => Tensor::randn(&[2, 64], DType::F32, &mut Generator::new(0)),
            _ => batch(2, 3, 32, 32, 0),
        };
        let states = m.generator_states();
        let first = m.forward(&x, Mode::Train).unwrap_or_else(|e| panic!("{name}: {e}"));
        m.load_generator_states(&states).unwrap();
        let again = m.forward(&x, Mode::Train).unwrap();
        assert!(first.to_vec_f32() == again.to_vec_f32(), "{name}");
        if !states.is_empty() {
            with_dropout.push(name);
        }
    }
    for name in ["alexnet", "vgg11", "googlenet"] {
        assert!(with_dropout.contains(&name), "{name} has dropout: {with_dropout:?}");
    }
}
