//! Autoencoders, SegNet, classification + localization, DCGAN: shapes, parameter counts,
//! hand-computed losses, training steps (and a few that must lower the loss).

mod common;

use common::{batch, every_param_has_gradient, make};
use nabla_core::gradcheck::gradcheck;
use nabla_core::{DType, Generator, Tensor};
use nabla_models::autoencoder::{build_autoencoder, MlpAutoencoderConfig};
use nabla_models::classloc::{classloc_loss, split_outputs, ClassLoc};
use nabla_models::segnet::SegNet;
use nabla_models::{build, ModelConfig};
use nabla_nn::loss::{binary_cross_entropy_with_logits, cross_entropy, mse_loss, Reduction};
use nabla_nn::optim::{Adam, AdamOptions, Optimizer};
use nabla_nn::{Error, Mode, Module};

fn ae_cfg(hidden: Vec<usize>) -> ModelConfig {
    ModelConfig {
        hidden,
        ..Default::default()
    }
}

/// Reconstruction loss before each of `steps` Adam steps on one batch.
fn fit(model: &dyn Module, x: &Tensor, steps: usize, lr: f64) -> Vec<f64> {
    let opts = AdamOptions {
        lr,
        ..Default::default()
    };
    let mut opt = Adam::new(model.parameters(), opts).unwrap();
    (0..steps)
        .map(|_| {
            let y = model.forward(x, Mode::Train).unwrap();
            let loss = mse_loss(&y, x, Reduction::Mean).unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
            loss.item().unwrap()
        })
        .collect()
}

#[test]
fn mlp_autoencoder_maps_784_to_a_latent_and_back() {
    let cfg = ae_cfg(vec![128, 32]);
    let ae = build_autoencoder("mlp_autoencoder", &cfg).unwrap();
    let want = (784 * 128 + 128) + (128 * 32 + 32) + (32 * 128 + 128) + (128 * 784 + 784);
    assert_eq!(ae.num_parameters(), want);
    assert_eq!(make("mlp_autoencoder", &cfg).num_parameters(), want);
    let names: Vec<String> = ae.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "encoder.1.weight");
    assert_eq!(names[2], "encoder.3.weight");
    assert_eq!(names[4], "decoder.0.weight");
    let x = batch(4, 1, 28, 28, 0);
    let z = ae.encoder().forward(&x, Mode::Eval).unwrap();
    assert_eq!(z.shape(), &[4, 32]);
    let back = ae.decoder().forward(&z, Mode::Eval).unwrap();
    assert_eq!(back.shape(), &[4, 784]);
    let y = ae.forward(&x, Mode::Eval).unwrap();
    assert_eq!(y.shape(), &[4, 1, 28, 28]);
    assert_eq!(y.to_vec_f32(), back.to_vec_f32());
    let loss = mse_loss(&ae.forward(&x, Mode::Train).unwrap(), &x, Reduction::Mean).unwrap();
    every_param_has_gradient(&*ae, &loss);
}

/// A 20-feature autoencoder with a 2-d code, said as such, is the registry's
/// `mlp_autoencoder` (same names, same weights) for the config it converts to.
#[test]
fn mlp_autoencoder_config_says_features_and_latent() {
    let direct = MlpAutoencoderConfig {
        hidden: vec![8],
        seed: 3,
        ..MlpAutoencoderConfig::new(20, 2)
    };
    let ae = direct.build().unwrap();
    let z = ae
        .encoder
        .forward(&Tensor::ones(&[5, 20], DType::F32), Mode::Eval)
        .unwrap();
    assert_eq!(z.shape(), &[5, 2]);
    let by_name = make("mlp_autoencoder", &ModelConfig::from(&direct));
    let (a, b) = (ae.state_dict(), by_name.state_dict());
    assert_eq!(a.len(), 8);
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!((na, ta.to_vec_f32()), (nb, tb.to_vec_f32()));
    }
    assert!(
        MlpAutoencoderConfig::new(20, 20).build().is_err(),
        "the code must be smaller"
    );
}

#[test]
fn autoencoders_reject_bad_latents() {
    for name in ["mlp_autoencoder", "conv_autoencoder"] {
        for hidden in [vec![], vec![784], vec![64, 1000]] {
            let err = build(name, &ae_cfg(hidden.clone())).err();
            assert!(matches!(err, Some(Error::Config(_))), "{name} {hidden:?}");
        }
    }
}

#[test]
fn autoencoders_learn_to_reconstruct_a_batch() {
    // Gaussian blobs at eight places: a two-parameter family a 16-d code can hold.
    let mut v = Vec::with_capacity(8 * 784);
    for n in 0..8 {
        let (ci, cj) = (6.0 + 2.0 * n as f32, 20.0 - 1.5 * n as f32);
        for i in 0..28 {
            for j in 0..28 {
                let d2 = (i as f32 - ci).powi(2) + (j as f32 - cj).powi(2);
                v.push((-d2 / 18.0).exp());
            }
        }
    }
    let x = Tensor::from_vec(v, &[8, 1, 28, 28]).unwrap();
    for name in ["mlp_autoencoder", "conv_autoencoder"] {
        let ae = make(name, &ae_cfg(vec![64, 16]));
        let losses = fit(&*ae, &x, 30, 0.01);
        assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
        assert!(losses[29] < 0.5 * losses[0], "{name}: {losses:?}");
    }
}

#[test]
fn conv_autoencoder_restores_any_input_size() {
    for (c, h, w) in [(1, 28, 28), (3, 32, 32), (3, 30, 22), (1, 9, 7)] {
        let cfg = ModelConfig {
            in_channels: c,
            input_size: [h, w],
            hidden: vec![8],
            ..Default::default()
        };
        let ae = build_autoencoder("conv_autoencoder", &cfg).unwrap();
        let x = batch(2, c, h, w, 2);
        assert_eq!(ae.forward(&x, Mode::Eval).unwrap().shape(), &[2, c, h, w], "{h}×{w}");
        assert_eq!(ae.encoder().forward(&x, Mode::Eval).unwrap().shape(), &[2, 8]);
        let (h4, w4) = (h.div_ceil(2).div_ceil(2), w.div_ceil(2).div_ceil(2));
        let want = (16 * c * 9 + 16)
            + (32 * 16 * 9 + 32)
            + (32 * h4 * w4 * 8 + 8)
            + (8 * 32 * h4 * w4 + 32 * h4 * w4)
            + (32 * 16 * 9 + 16)
            + (16 * c * 9 + c);
        assert_eq!(ae.num_parameters(), want, "{h}×{w}");
    }
}

#[test]
fn segnet_scores_every_pixel() {
    for (c, h, w) in [(3, 32, 32), (1, 30, 22), (3, 4, 5)] {
        let cfg = ModelConfig {
            num_classes: 4,
            in_channels: c,
            input_size: [h, w],
            ..Default::default()
        };
        let net = make("segnet", &cfg);
        let x = batch(2, c, h, w, 3);
        let y = net.forward(&x, Mode::Train).unwrap();
        assert_eq!(y.shape(), &[2, 4, h, w]);
        let labels: Vec<usize> = (0..2 * h * w).map(|i| (i / 7) % 4).collect();
        let loss = cross_entropy(&y, &labels, &Default::default()).unwrap();
        assert!(loss.item().unwrap().is_finite());
        every_param_has_gradient(&*net, &loss);
    }
    let tiny = make("segnet", &ModelConfig::default());
    let err = tiny.forward(&batch(1, 1, 3, 8, 0), Mode::Eval).err().unwrap();
    assert!(err.to_string().contains("SegNet"), "{err}");
}

/// The whole SegNet (pooling indices, crop, unpooling, transposed convolution) against
/// central differences, in f64, on an odd-sized input.
#[test]
fn segnet_gradients_match_finite_differences() {
    let net = SegNet::new(1, 2, [2, 3, 4], &mut Generator::new(0)).unwrap();
    net.to_dtype(DType::F64).unwrap();
    let x = Tensor::randn(&[1, 1, 6, 7], DType::F64, &mut Generator::new(9));
    gradcheck(
        |t| {
            net.forward(&t[0], Mode::Eval)
                .map_err(|e| nabla_core::Error::invalid("segnet", e.to_string()))
        },
        &[x],
    )
    .unwrap();
}

#[test]
fn classloc_heads_and_loss() {
    let cfg = ModelConfig {
        num_classes: 3,
        ..Default::default()
    };
    let net = ClassLoc::from_config(&cfg, &mut Generator::new(0)).unwrap();
    let x = batch(2, 1, 28, 28, 4);
    let out = net.forward(&x, Mode::Eval).unwrap();
    assert_eq!(out.shape(), &[2, 7]);
    let (logits, boxes) = split_outputs(&out, 3).unwrap();
    let (l2, b2) = net.forward2(&x, Mode::Eval).unwrap();
    assert_eq!(logits.to_vec_f32(), l2.to_vec_f32());
    assert_eq!(boxes.to_vec_f32(), b2.to_vec_f32());
    assert!(split_outputs(&out, 4).is_err());

    // The loss by hand: mean CE over the batch + λ · mean squared box error.
    let lv = logits.to_vec_f64();
    let bv = boxes.to_vec_f64();
    let labels = [2usize, 0];
    let target = [0.5, 0.5, 0.2, 0.3, 0.1, 0.9, 0.4, 0.4];
    let mut ce = 0.0;
    for (n, &y) in labels.iter().enumerate() {
        let row = &lv[n * 3..n * 3 + 3];
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        ce += lse - row[y];
    }
    ce /= 2.0;
    let mse = bv.iter().zip(target).map(|(b, t)| (b - t).powi(2)).sum::<f64>() / 8.0;
    let t = Tensor::from_vec(target.map(|v| v as f32).to_vec(), &[2, 4]).unwrap();
    let loss = classloc_loss(&logits, &boxes, &labels, &t, 2.5).unwrap();
    assert!((loss.item().unwrap() - (ce + 2.5 * mse)).abs() < 1e-5);
    assert!(classloc_loss(&logits, &boxes, &labels, &t, -1.0).is_err());

    let (logits, boxes) = net.forward2(&x, Mode::Train).unwrap();
    let loss = classloc_loss(&logits, &boxes, &labels, &t, 1.0).unwrap();
    every_param_has_gradient(&net, &loss);
}

#[test]
fn classloc_on_a_resnet18_backbone() {
    let cfg = ModelConfig {
        num_classes: 5,
        in_channels: 3,
        input_size: [32, 32],
        small_input: true,
        variant: Some("resnet18".into()),
        ..Default::default()
    };
    let net = make("classloc", &cfg);
    // ResNet-18 without fc, 3×3 stem: 11,689,512 − 7·7·3·64 + 3·3·3·64 − 513,000; heads 512·9 + 9.
    assert_eq!(net.num_parameters(), 11_689_512 - 9408 + 1728 - 513_000 + 512 * 9 + 9);
    assert!(net
        .named_parameters()
        .iter()
        .any(|(n, _)| n == "backbone.layer4.1.bn2.weight"));
    train_step_boxes(&*net, &batch(2, 3, 32, 32, 5), 5);
    let bad = ModelConfig {
        variant: Some("vgg".into()),
        ..cfg
    };
    assert!(matches!(build("classloc", &bad), Err(Error::Config(_))));
}

fn train_step_boxes(net: &dyn Module, x: &Tensor, classes: usize) {
    let out = net.forward(x, Mode::Train).unwrap();
    let (logits, boxes) = split_outputs(&out, classes).unwrap();
    let target = Tensor::full(&[x.shape()[0], 4], 0.5, DType::F32);
    let labels: Vec<usize> = (0..x.shape()[0]).map(|i| i % classes).collect();
    let loss = classloc_loss(&logits, &boxes, &labels, &target, 1.0).unwrap();
    every_param_has_gradient(net, &loss);
}

#[test]
fn dcgan_64x64_has_the_papers_sizes() {
    let cfg = ModelConfig {
        in_channels: 3,
        input_size: [64, 64],
        hidden: vec![100],
        ..Default::default()
    };
    let g = make("generator", &cfg);
    let d = make("discriminator", &cfg);
    // The PyTorch DCGAN tutorial's counts (nz 100, ngf = ndf = 64, 3 channels).
    assert_eq!(g.num_parameters(), 3_576_704);
    assert_eq!(d.num_parameters(), 2_765_568);
    let z = Tensor::randn(&[2, 100], DType::F32, &mut Generator::new(0));
    let fake = g.forward(&z, Mode::Train).unwrap();
    assert_eq!(fake.shape(), &[2, 3, 64, 64]);
    assert!(fake.to_vec_f32().iter().all(|v| v.abs() < 1.0));
    assert_eq!(d.forward(&fake, Mode::Train).unwrap().shape(), &[2, 1]);
}

#[test]
fn dcgan_trains_both_players_on_28x28_and_32x32() {
    for (c, size) in [(1, 28), (3, 32)] {
        let cfg = ModelConfig {
            in_channels: c,
            input_size: [size, size],
            hidden: vec![16],
            ..Default::default()
        };
        let g = make("generator", &cfg);
        let d = make("discriminator", &cfg);
        let z = Tensor::randn(&[4, 16], DType::F32, &mut Generator::new(1));
        let real = batch(4, c, size, size, 6).tanh().unwrap();
        let ones = Tensor::ones(&[4, 1], DType::F32);
        let zeros = Tensor::zeros(&[4, 1], DType::F32);
        let bce = |logit: &Tensor, t: &Tensor| binary_cross_entropy_with_logits(logit, t, Reduction::Mean).unwrap();
        // Discriminator: real → 1, fake (detached) → 0.
        let fake = g.forward(&z, Mode::Train).unwrap();
        assert_eq!(fake.shape(), &[4, c, size, size]);
        let d_loss = bce(&d.forward(&real, Mode::Train).unwrap(), &ones)
            .add(&bce(&d.forward(&fake.detach(), Mode::Train).unwrap(), &zeros))
            .unwrap();
        every_param_has_gradient(&*d, &d_loss);
        // Generator: fool the discriminator.
        let g_loss = bce(&d.forward(&fake, Mode::Train).unwrap(), &ones);
        every_param_has_gradient(&*g, &g_loss);
    }
    let odd = ModelConfig {
        input_size: [27, 27],
        ..Default::default()
    };
    assert!(matches!(build("generator", &odd), Err(Error::Config(_))));
    // An empty hidden list means the paper's 100-dimensional latent.
    let g = make("generator", &ae_cfg(vec![]));
    assert_eq!(g.named_parameters()[0].1.shape(), &[100, 128, 7, 7]);
}

#[test]
fn dcgan_critic_variant_is_the_discriminator_without_batch_norm() {
    let cfg = ModelConfig::default();
    let critic_cfg = ModelConfig {
        variant: Some("critic".into()),
        ..cfg.clone()
    };
    let (d, c) = (make("discriminator", &cfg), make("discriminator", &critic_cfg));
    // 28×28: one batch norm of 128 channels (weight and bias) is all that differs.
    assert_eq!(d.num_parameters() - c.num_parameters(), 2 * 128);
    assert!(c.state_dict().iter().all(|(k, t)| t.rank() != 1 || k.ends_with("bias")));
    let x = batch(3, 1, 28, 28, 2).tanh().unwrap();
    assert_eq!(c.forward(&x, Mode::Train).unwrap().shape(), &[3, 1]);
    let bad = ModelConfig {
        variant: Some("wgan".into()),
        ..cfg
    };
    assert!(matches!(build("discriminator", &bad), Err(Error::Config(_))));
}
