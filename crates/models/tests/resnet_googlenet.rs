//! ResNet, SE-ResNet and GoogLeNet: torchvision's parameter counts and names, output shapes
//! on standard and small inputs, one training step each.

mod common;

use common::{batch, imagenet, make, state_shapes, train_step};
use nabla_core::Generator;
use nabla_models::googlenet::GoogLeNet;
use nabla_models::{build, ModelConfig};
use nabla_nn::loss::{cross_entropy, CrossEntropyOptions};
use nabla_nn::{Error, Mode, Module};

fn shape_of(shapes: &[(String, Vec<usize>)], name: &str) -> Vec<usize> {
    shapes
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
        .clone()
}

#[test]
fn resnet_parameter_counts_are_torchvisions() {
    for (name, count) in [
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        ("resnet50", 25_557_032),
        ("resnet101", 44_549_160),
        ("resnet152", 60_192_808),
    ] {
        assert_eq!(make(name, &imagenet(224)).num_parameters(), count, "{name}");
    }
}

/// SE adds, per block of C output channels, fc1 (C·C/16 + C/16) and fc2 (C/16·C + C).
#[test]
fn se_resnets_add_one_squeeze_excitation_per_block() {
    let se = |c: usize| 2 * c * (c / 16) + c / 16 + c;
    let se18 = 2 * (se(64) + se(128) + se(256) + se(512));
    let se50 = 3 * se(256) + 4 * se(512) + 6 * se(1024) + 3 * se(2048);
    assert_eq!(se18, 89_080);
    let m18 = make("se_resnet18", &imagenet(224));
    assert_eq!(m18.num_parameters(), 11_689_512 + se18);
    let m50 = make("se_resnet50", &imagenet(224));
    assert_eq!(m50.num_parameters(), 25_557_032 + se50);
    let shapes = state_shapes(&*m50);
    assert_eq!(shape_of(&shapes, "layer4.2.se.fc1.weight"), [128, 2048, 1, 1]);
    assert_eq!(shape_of(&shapes, "layer1.0.se.fc2.bias"), [256]);
}

#[test]
fn resnet_names_and_shapes_follow_torchvision() {
    let r18 = state_shapes(&*make("resnet18", &imagenet(224)));
    assert_eq!(r18.len(), 122);
    assert_eq!(r18[0], ("conv1.weight".to_string(), vec![64, 3, 7, 7]));
    assert_eq!(r18[1].0, "bn1.weight");
    assert_eq!(r18[5].0, "bn1.num_batches_tracked");
    assert_eq!(r18[6].0, "layer1.0.conv1.weight");
    assert!(!r18.iter().any(|(n, _)| n.starts_with("layer1.0.downsample")));
    assert_eq!(shape_of(&r18, "layer2.0.downsample.0.weight"), [128, 64, 1, 1]);
    assert_eq!(shape_of(&r18, "layer2.0.downsample.1.running_var"), [128]);
    assert_eq!(r18.last().unwrap(), &("fc.bias".to_string(), vec![1000]));

    let r50 = state_shapes(&*make("resnet50", &imagenet(224)));
    assert_eq!(shape_of(&r50, "layer1.0.downsample.0.weight"), [256, 64, 1, 1]);
    assert_eq!(shape_of(&r50, "layer1.0.conv3.weight"), [256, 64, 1, 1]);
    // The stride sits on the 3×3 convolution (ResNet v1.5), as in torchvision.
    assert_eq!(shape_of(&r50, "layer2.0.conv2.weight"), [128, 128, 3, 3]);
    assert_eq!(shape_of(&r50, "fc.weight"), [1000, 2048]);
}

#[test]
fn resnet18_and_50_classify_224x224_images() {
    for name in ["resnet18", "resnet50"] {
        let m = make(name, &imagenet(224));
        let y = m.forward(&batch(1, 3, 224, 224, 0), Mode::Eval).unwrap();
        assert_eq!(y.shape(), &[1, 1000], "{name}");
    }
}

#[test]
fn resnets_train_one_step() {
    for name in ["resnet18", "resnet34", "resnet50", "se_resnet50"] {
        let m = make(name, &imagenet(64));
        train_step(&*m, &batch(2, 3, 64, 64, 1), 1000);
    }
}

#[test]
fn deep_resnets_train_one_step_on_64x64() {
    for name in ["resnet101", "resnet152"] {
        let cfg = ModelConfig {
            num_classes: 10,
            ..imagenet(64)
        };
        let m = make(name, &cfg);
        train_step(&*m, &batch(2, 3, 64, 64, 2), 10);
    }
}

#[test]
fn small_input_resnets_keep_32x32_resolution_in_layer1() {
    let cfg = ModelConfig {
        in_channels: 3,
        input_size: [32, 32],
        small_input: true,
        ..Default::default()
    };
    let m = make("resnet18", &cfg);
    let shapes = state_shapes(&*m);
    assert_eq!(shape_of(&shapes, "conv1.weight"), [64, 3, 3, 3]);
    // Same blocks, a 3×3 stem instead of 7×7, a 10-way head.
    assert_eq!(
        m.num_parameters(),
        11_689_512 - 64 * 3 * 49 + 64 * 3 * 9 - 512 * 990 - 990
    );
    let typed = nabla_models::ResNet::new(
        &nabla_models::resnet::ResNetSpec {
            small_input: true,
            ..nabla_models::resnet::ResNetSpec::named("resnet18").unwrap()
        },
        3,
        10,
        &mut Generator::new(0),
    )
    .unwrap();
    let x = batch(2, 3, 32, 32, 3);
    let stem = typed.conv1.forward(&x, Mode::Eval).unwrap();
    assert_eq!(stem.shape(), &[2, 64, 32, 32]);
    let l1 = typed.layers[0].forward(&stem, Mode::Eval).unwrap();
    assert_eq!(l1.shape(), &[2, 64, 32, 32]);
    let l4 = typed.layers[1..]
        .iter()
        .fold(l1, |y, l| l.forward(&y, Mode::Eval).unwrap());
    assert_eq!(l4.shape(), &[2, 512, 4, 4]);
    train_step(&*m, &x, 10);
    let gray = ModelConfig {
        in_channels: 1,
        input_size: [28, 28],
        ..cfg
    };
    let se = make("se_resnet18", &gray);
    train_step(&*se, &batch(2, 1, 28, 28, 4), 10);
}

#[test]
fn resnets_reject_variants() {
    let cfg = ModelConfig {
        variant: Some("aux".into()),
        ..imagenet(64)
    };
    assert!(matches!(build("resnet18", &cfg), Err(Error::Config(_))));
}

#[test]
fn googlenet_counts_with_and_without_aux_heads() {
    let plain = make("googlenet", &imagenet(224));
    assert_eq!(plain.num_parameters(), 6_624_904);
    let shapes = state_shapes(&*plain);
    assert_eq!(shapes.len(), 344);
    assert_eq!(shape_of(&shapes, "conv1.conv.weight"), [64, 3, 7, 7]);
    assert_eq!(shape_of(&shapes, "conv1.bn.running_mean"), [64]);
    // torchvision's "5×5" branch is a 3×3 convolution.
    assert_eq!(shape_of(&shapes, "inception3a.branch3.1.conv.weight"), [32, 16, 3, 3]);
    assert_eq!(shape_of(&shapes, "inception5b.branch4.1.conv.weight"), [128, 832, 1, 1]);
    assert!(!shapes.iter().any(|(n, _)| n.ends_with("conv.bias")));
    let cfg = ModelConfig {
        variant: Some("aux".into()),
        ..imagenet(224)
    };
    let aux = make("googlenet", &cfg);
    // torchvision's googlenet(aux_logits=True).
    assert_eq!(aux.num_parameters(), 13_004_888);
    let names: Vec<String> = aux.state_dict().into_iter().map(|(n, _)| n).collect();
    let at = |n: &str| names.iter().position(|m| m == n).unwrap();
    assert!(at("inception5b.branch4.1.bn.num_batches_tracked") < at("aux1.conv.conv.weight"));
    assert!(at("aux2.fc2.bias") < at("fc.weight"));
}

#[test]
fn googlenet_classifies_224x224_and_small_images() {
    let m = make("googlenet", &imagenet(224));
    let y = m.forward(&batch(1, 3, 224, 224, 0), Mode::Eval).unwrap();
    assert_eq!(y.shape(), &[1, 1000]);
    let cfg = ModelConfig {
        in_channels: 3,
        input_size: [32, 32],
        small_input: true,
        ..Default::default()
    };
    let small = make("googlenet", &cfg);
    assert_eq!(shape_of(&state_shapes(&*small), "conv1.conv.weight"), [64, 3, 3, 3]);
    train_step(&*small, &batch(2, 3, 32, 32, 1), 10);
}

/// torchvision's training loss with the heads: main + 0.3 · (aux1 + aux2); every parameter,
/// the heads' included, receives a gradient.
#[test]
fn googlenet_aux_heads_train_with_the_main_head() {
    let net = GoogLeNet::new(3, 10, true, false, &mut Generator::new(0)).unwrap();
    let x = batch(2, 3, 96, 96, 5);
    let labels = [3, 7];
    let ce = |t| cross_entropy(t, &labels[..], &CrossEntropyOptions::default()).unwrap();
    let out = net.forward_aux(&x, Mode::Train).unwrap();
    let (a1, a2) = (out.aux1.unwrap(), out.aux2.unwrap());
    assert_eq!(a1.shape(), &[2, 10]);
    let loss = ce(&out.logits)
        .add(&ce(&a1).add(&ce(&a2)).unwrap().mul_scalar(0.3).unwrap())
        .unwrap();
    assert!(loss.item().unwrap().is_finite());
    common::every_param_has_gradient(&net, &loss);
    // In evaluation the heads are not run, and forward gives the main logits alone.
    let eval = net.forward_aux(&x, Mode::Eval).unwrap();
    assert!(eval.aux1.is_none() && eval.aux2.is_none());
    let plain = net.forward(&x, Mode::Eval).unwrap();
    assert_eq!(plain.to_vec_f32(), eval.logits.to_vec_f32());
}
