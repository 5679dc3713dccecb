//! AlexNet (lecture and torchvision), ZFNet and VGG: the lecture's layer shapes, exact
//! parameter counts, torchvision names, one training step each.

mod common;

use common::{batch, imagenet, make, state_shapes, train_step};
use nabla_core::{Generator, Tensor};
use nabla_models::alexnet::{alexnet_like, AlexNetSpec};
use nabla_models::{build, ConvNet, ModelConfig};
use nabla_nn::{Error, Mode, Module};

/// Run `x` through `net.features` layer by layer, checking the shape after each listed
/// index.
fn check_feature_shapes(net: &ConvNet, x: &Tensor, want: &[(usize, [usize; 4])]) {
    let mut y = x.clone();
    let last = want.last().unwrap().0;
    for i in 0..=last {
        y = net.features.get(i).unwrap().forward(&y, Mode::Eval).unwrap();
        if let Some((_, w)) = want.iter().find(|(j, _)| *j == i) {
            assert_eq!(y.shape(), w, "after features.{i}");
        }
    }
}

/// Parameters of a k×k convolution with bias, and of a linear layer with bias.
fn conv_params(c_in: usize, c_out: usize, k: usize) -> usize {
    c_out * c_in * k * k + c_out
}
fn fc_params(i: usize, o: usize) -> usize {
    i * o + o
}

#[test]
fn alexnet_has_the_lectures_layer_shapes() {
    let net = alexnet_like(
        "alexnet",
        &AlexNetSpec::alexnet(false),
        3,
        [227, 227],
        1000,
        &mut Generator::new(0),
    )
    .unwrap();
    check_feature_shapes(
        &net,
        &batch(1, 3, 227, 227, 0),
        &[
            (0, [1, 96, 55, 55]),
            (2, [1, 96, 27, 27]),
            (3, [1, 96, 27, 27]),
            (4, [1, 256, 27, 27]),
            (6, [1, 256, 13, 13]),
            (7, [1, 256, 13, 13]),
            (8, [1, 384, 13, 13]),
            (10, [1, 384, 13, 13]),
            (12, [1, 256, 13, 13]),
            (14, [1, 256, 6, 6]),
        ],
    );
    let want = conv_params(3, 96, 11)
        + conv_params(96, 256, 5)
        + conv_params(256, 384, 3)
        + conv_params(384, 384, 3)
        + conv_params(384, 256, 3)
        + fc_params(6 * 6 * 256, 4096)
        + fc_params(4096, 4096)
        + fc_params(4096, 1000);
    assert_eq!(want, 62_378_344);
    assert_eq!(net.num_parameters(), want);
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[2], "features.4.weight");
    assert_eq!(names[10], "classifier.1.weight");
    assert_eq!(names[15], "classifier.6.bias");
    let y = net.forward(&batch(1, 3, 227, 227, 1), Mode::Eval).unwrap();
    assert_eq!(y.shape(), &[1, 1000]);
}

#[test]
fn alexnet_sizes_fc6_from_the_input() {
    // 224 → 54 → 26 → 26 → 12 → 12 → 5.
    let m = make("alexnet", &imagenet(224));
    let fc6 = &state_shapes(&*m)[10];
    assert_eq!(fc6, &("classifier.1.weight".to_string(), vec![4096, 256 * 25]));
    let err = build("alexnet", &ModelConfig::default()).err().unwrap();
    assert!(matches!(&err, Error::Config(m) if m.contains("small_input")), "{err}");
}

#[test]
fn alexnet_small_input_trains_on_32x32_and_28x28() {
    for (c, size) in [(3, 32), (1, 28)] {
        let cfg = ModelConfig {
            in_channels: c,
            input_size: [size, size],
            small_input: true,
            ..Default::default()
        };
        for name in ["alexnet", "zfnet", "alexnet_torchvision"] {
            let m = make(name, &cfg);
            train_step(&*m, &batch(2, c, size, size, 1), 10);
        }
    }
}

#[test]
fn alexnet_torchvision_matches_torchvision() {
    let m = make("alexnet_torchvision", &imagenet(224));
    assert_eq!(m.num_parameters(), 61_100_840);
    let shapes = state_shapes(&*m);
    let names: Vec<&str> = shapes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "features.0.weight",
            "features.0.bias",
            "features.3.weight",
            "features.3.bias",
            "features.6.weight",
            "features.6.bias",
            "features.8.weight",
            "features.8.bias",
            "features.10.weight",
            "features.10.bias",
            "classifier.1.weight",
            "classifier.1.bias",
            "classifier.4.weight",
            "classifier.4.bias",
            "classifier.6.weight",
            "classifier.6.bias",
        ]
    );
    assert_eq!(shapes[0].1, [64, 3, 11, 11]);
    assert_eq!(shapes[10].1, [4096, 9216]);
    train_step(&*m, &batch(2, 3, 64, 64, 2), 1000);
}

#[test]
fn zfnet_is_alexnet_with_a_finer_first_layer_and_wider_middle() {
    let net = alexnet_like(
        "zfnet",
        &AlexNetSpec::zfnet(false),
        3,
        [227, 227],
        1000,
        &mut Generator::new(0),
    )
    .unwrap();
    check_feature_shapes(
        &net,
        &batch(1, 3, 227, 227, 0),
        &[
            (0, [1, 96, 111, 111]),
            (2, [1, 96, 55, 55]),
            (4, [1, 256, 26, 26]),
            (6, [1, 256, 13, 13]),
            (8, [1, 512, 13, 13]),
            (10, [1, 1024, 13, 13]),
            (12, [1, 512, 13, 13]),
            (14, [1, 512, 6, 6]),
        ],
    );
    let want = conv_params(3, 96, 7)
        + conv_params(96, 256, 5)
        + conv_params(256, 512, 3)
        + conv_params(512, 1024, 3)
        + conv_params(1024, 512, 3)
        + fc_params(6 * 6 * 512, 4096)
        + fc_params(4096, 4096)
        + fc_params(4096, 1000);
    assert_eq!(net.num_parameters(), want);
    assert_eq!(make("zfnet", &imagenet(227)).num_parameters(), want);
}

fn shape_of(shapes: &[(String, Vec<usize>)], name: &str) -> Vec<usize> {
    shapes
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
        .clone()
}

/// Each VGG is built once (drawing 130M+ normal weights takes seconds): counts for all,
/// names and shapes for two.
#[test]
fn vgg_parameter_counts_and_names_are_torchvisions() {
    for (name, count) in [
        ("vgg11", 132_863_336),
        ("vgg11_bn", 132_868_840),
        ("vgg13", 133_047_848),
        ("vgg13_bn", 133_053_736),
        ("vgg16", 138_357_544),
        ("vgg16_bn", 138_365_992),
        ("vgg19", 143_667_240),
        ("vgg19_bn", 143_678_248),
    ] {
        let m = make(name, &imagenet(224));
        assert_eq!(m.num_parameters(), count, "{name}");
        let s = state_shapes(&*m);
        match name {
            "vgg16" => {
                assert_eq!(s.len(), 32);
                assert_eq!(shape_of(&s, "features.0.weight"), [64, 3, 3, 3]);
                assert_eq!(shape_of(&s, "features.28.weight"), [512, 512, 3, 3]);
                assert_eq!(shape_of(&s, "classifier.0.weight"), [4096, 25088]);
                assert_eq!(shape_of(&s, "classifier.3.weight"), [4096, 4096]);
                assert_eq!(shape_of(&s, "classifier.6.bias"), [1000]);
            }
            "vgg11_bn" => {
                assert_eq!(shape_of(&s, "features.1.running_var"), [64]);
                assert_eq!(shape_of(&s, "features.4.weight"), [128, 64, 3, 3]);
                assert_eq!(shape_of(&s, "features.25.weight"), [512, 512, 3, 3]);
            }
            _ => {}
        }
    }
}

#[test]
fn vgg11_classifies_224x224() {
    let m = make("vgg11", &imagenet(224));
    let y = m.forward(&batch(1, 3, 224, 224, 0), Mode::Eval).unwrap();
    assert_eq!(y.shape(), &[1, 1000]);
}

#[test]
fn vgg16_trains_one_step_on_64x64() {
    let cfg = ModelConfig {
        num_classes: 10,
        ..imagenet(64)
    };
    train_step(&*make("vgg16", &cfg), &batch(2, 3, 64, 64, 3), 10);
}

#[test]
fn small_input_vggs_take_28x28_and_32x32() {
    for (c, size) in [(1, 28), (3, 32)] {
        let cfg = ModelConfig {
            in_channels: c,
            input_size: [size, size],
            small_input: true,
            ..Default::default()
        };
        for name in ["vgg11_bn", "vgg19_bn"] {
            let m = make(name, &cfg);
            let shapes = state_shapes(&*m);
            assert_eq!(shapes[0].1, [64, c, 3, 3]);
            assert_eq!(shape_of(&shapes, "classifier.0.weight"), [512, 512]);
            train_step(&*m, &batch(2, c, size, size, 4), 10);
        }
        let v19 = make("vgg19", &cfg);
        let y = v19.forward(&batch(1, c, size, size, 5), Mode::Eval).unwrap();
        assert_eq!(y.shape(), &[1, 10]);
    }
    // Without small_input, five floor-mode poolings leave nothing of 28×28.
    assert!(matches!(build("vgg16", &ModelConfig::default()), Err(Error::Config(_))));
}
