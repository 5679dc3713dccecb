//! Convolution, pooling, upsampling and squeeze-excitation layers through the module API:
//! torchvision names in a residual block, gradient checks, index round trips, and a small
//! CNN that learns.

use nabla_core::gradcheck::gradcheck;
use nabla_core::{Conv2dOptions, ConvTranspose2dOptions, DType, Generator, Pool2dOptions, Tensor};
use nabla_nn::*;

mod common;
use common::sgd_step;

/// A nabla-nn result as a core result, for closures handed to `gradcheck`.
fn core<T>(r: nabla_nn::Result<T>) -> nabla_core::Result<T> {
    r.map_err(|e| nabla_core::Error::invalid("test", e.to_string()))
}

/// torchvision's BasicBlock: two 3×3 conv + batch-norm pairs and an identity shortcut.
struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
}

impl BasicBlock {
    fn new(c: usize, g: &mut Generator) -> BasicBlock {
        let same = Conv2dOptions {
            padding: [1, 1],
            ..Default::default()
        };
        BasicBlock {
            conv1: Conv2d::with_options(c, c, [3, 3], same, LayerOptions::default().with_bias(false), g).unwrap(),
            bn1: BatchNorm2d::new(c),
            conv2: Conv2d::with_options(c, c, [3, 3], same, LayerOptions::default().with_bias(false), g).unwrap(),
            bn2: BatchNorm2d::new(c),
        }
    }
}

impl Module for BasicBlock {
    fn forward(&self, x: &Tensor, mode: Mode) -> nabla_nn::Result<Tensor> {
        let y = self.conv1.forward_named("conv1", x, mode)?;
        let y = self.bn1.forward_named("bn1", &y, mode)?.relu()?;
        let y = self.conv2.forward_named("conv2", &y, mode)?;
        let y = self.bn2.forward_named("bn2", &y, mode)?;
        Ok(y.add(x)?.relu()?)
    }
    fn children(&self, c: &mut Children) {
        c.module("conv1", &self.conv1);
        c.module("bn1", &self.bn1);
        c.module("conv2", &self.conv2);
        c.module("bn2", &self.bn2);
    }
}

#[test]
fn residual_conv_blocks_have_torchvision_names() {
    let mut g = Generator::new(8);
    let layer1 = Sequential::new()
        .push(BasicBlock::new(4, &mut g))
        .push(BasicBlock::new(4, &mut g));
    let mut names = Vec::new();
    layer1.visit("layer1", &mut |n, _| names.push(n.to_string()));
    assert_eq!(names.len(), 2 * 2 * (1 + 5));
    assert_eq!(names[0], "layer1.0.conv1.weight");
    assert_eq!(names[3], "layer1.0.bn1.running_mean");
    assert_eq!(names[12], "layer1.1.conv1.weight");
    assert_eq!(layer1.num_parameters(), 2 * 2 * (4 * 4 * 9 + 8));
    let y = layer1
        .forward(&Tensor::randn(&[2, 4, 5, 5], DType::F32, &mut g), Mode::Train)
        .unwrap();
    assert_eq!(y.shape(), &[2, 4, 5, 5]);
    let err = layer1
        .forward_named("layer1", &Tensor::ones(&[2, 3, 5, 5], DType::F32), Mode::Eval)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("layer1.0.conv1 (Conv2d 4→4): Conv2d: input of shape [2, 3, 5, 5] has 3 channels, expected 4"),
        "{err}"
    );
}

#[test]
fn gradcheck_conv_layers() {
    let mut g = Generator::new(12);
    let mut r = |s: &[usize]| Tensor::randn(s, DType::F64, &mut g);
    let opts = Conv2dOptions {
        stride: [2, 1],
        padding: [1, 0],
        dilation: [1, 2],
        groups: 2,
    };
    let conv = |t: &[Tensor]| Conv2d::from_parts(t[1].clone(), Some(t[2].clone()), opts)?.forward(&t[0], Mode::Train);
    gradcheck(|t| core(conv(t)), &[r(&[2, 4, 5, 6]), r(&[6, 2, 3, 2]), r(&[6])]).unwrap();
    let topts = ConvTranspose2dOptions {
        stride: [2, 2],
        padding: [1, 0],
        output_padding: [1, 0],
        ..Default::default()
    };
    let tconv = |t: &[Tensor]| {
        ConvTranspose2d::from_parts(t[1].clone(), Some(t[2].clone()), topts)?.forward(&t[0], Mode::Train)
    };
    gradcheck(|t| core(tconv(t)), &[r(&[1, 3, 3, 4]), r(&[3, 2, 3, 3]), r(&[2])]).unwrap();
    // Constructors check their configuration.
    let mut g = Generator::new(0);
    assert!(Conv2d::with_options(
        3,
        4,
        [3, 3],
        Conv2dOptions {
            groups: 2,
            ..Default::default()
        },
        LayerOptions::default(),
        &mut g
    )
    .is_err());
    let bad_pad = ConvTranspose2dOptions {
        output_padding: [1, 1],
        ..Default::default()
    };
    assert!(ConvTranspose2d::with_options(2, 2, [3, 3], bad_pad, LayerOptions::default(), &mut g).is_err());
    let up = ConvTranspose2d::with_options(
        4,
        2,
        [2, 2],
        ConvTranspose2dOptions {
            stride: [2, 2],
            ..Default::default()
        },
        LayerOptions::default(),
        &mut g,
    )
    .unwrap();
    let y = up
        .forward(&Tensor::ones(&[1, 4, 3, 3], DType::F32), Mode::Eval)
        .unwrap();
    assert_eq!(
        (y.shape(), up.describe().as_str()),
        (&[1, 2, 6, 6][..], "ConvTranspose2d 4→2")
    );
}

/// Images of a horizontal (label −1) or vertical (label +1) bar in noise.
fn bars(n: usize, g: &mut Generator) -> (Tensor, Tensor) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let vertical = g.below(2) == 1;
        let at = g.below(8) as usize;
        for i in 0..8 {
            for j in 0..8 {
                let on = if vertical { j == at } else { i == at };
                xs.push(if on { 1.0f32 } else { 0.0 } + 0.3 * g.normal() as f32);
            }
        }
        ys.push(if vertical { 1.0f32 } else { -1.0 });
    }
    (
        Tensor::from_vec(xs, &[n, 1, 8, 8]).unwrap(),
        Tensor::from_vec(ys, &[n, 1]).unwrap(),
    )
}

#[test]
fn small_cnn_learns_bars() {
    let mut g = Generator::new(21);
    let pad = Conv2dOptions {
        padding: [1, 1],
        ..Default::default()
    };
    // 8×8 → conv 8×8 → pool 4×4 → conv 2×2 → global average → 1 logit.
    let cnn = Sequential::new()
        .push(Conv2d::with_options(1, 4, [3, 3], pad, LayerOptions::default(), &mut g).unwrap())
        .push(BatchNorm2d::new(4))
        .push(ReLU)
        .push(MaxPool2d::new(2, 2))
        .push(Conv2d::new(4, 8, 3, &mut g))
        .push(ReLU)
        .push(AdaptiveAvgPool2d::new([1, 1]))
        .push(Flatten::default())
        .push(Linear::new(8, 1, &mut g));
    let params = cnn.parameters();
    // Logistic loss on ±1 labels: mean softplus(−y·z).
    let loss_of = |x: &Tensor, y: &Tensor, mode| {
        let z = cnn.forward(x, mode).unwrap();
        z.mul(y).unwrap().neg().unwrap().softplus().unwrap().mean_all().unwrap()
    };
    let (test_x, test_y) = bars(64, &mut g);
    let before = loss_of(&test_x, &test_y, Mode::Eval).item().unwrap();
    for _ in 0..100 {
        let (x, y) = bars(32, &mut g);
        let grads = loss_of(&x, &y, Mode::Train).backward().unwrap();
        sgd_step(&params, &grads, 0.2);
    }
    let after = loss_of(&test_x, &test_y, Mode::Eval).item().unwrap();
    assert!(after < 0.5 * before && after < 0.3, "held-out loss {before} → {after}");
}

#[test]
fn squeeze_excitation_reweights_channels() {
    let mut g = Generator::new(3);
    let se = SqueezeExcitation::new(4, 2, &mut g);
    se.to_dtype(DType::F64).unwrap();
    let sd = se.state_dict();
    let names: Vec<&str> = sd.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
    assert_eq!(
        (sd[0].1.shape(), sd[2].1.shape()),
        (&[2, 4, 1, 1][..], &[4, 2, 1, 1][..])
    );
    let x = Tensor::randn(&[2, 4, 3, 3], DType::F64, &mut g);
    let y = se.forward(&x, Mode::Eval).unwrap().to_vec_f64();
    // The same block by hand: per image, channel means → relu(W1·m + b1) → sigmoid(W2·h + b2).
    let [w1, b1, w2, b2] = [0, 1, 2, 3].map(|i| sd[i].1.to_vec_f64());
    let xv = x.to_vec_f64();
    for n in 0..2 {
        let m: Vec<f64> = (0..4)
            .map(|c| xv[(n * 4 + c) * 9..][..9].iter().sum::<f64>() / 9.0)
            .collect();
        let h: Vec<f64> = (0..2)
            .map(|s| (b1[s] + (0..4).map(|c| w1[s * 4 + c] * m[c]).sum::<f64>()).max(0.0))
            .collect();
        for c in 0..4 {
            let z = b2[c] + (0..2).map(|s| w2[c * 2 + s] * h[s]).sum::<f64>();
            let scale = 1.0 / (1.0 + (-z).exp());
            for k in 0..9 {
                let i = (n * 4 + c) * 9 + k;
                assert!((y[i] - xv[i] * scale).abs() < 1e-12);
            }
        }
    }
    let block = |t: &[Tensor]| {
        let fc1 = Conv2d::from_parts(t[1].clone(), Some(t[2].clone()), Default::default())?;
        let fc2 = Conv2d::from_parts(t[3].clone(), Some(t[4].clone()), Default::default())?;
        SqueezeExcitation::from_parts(fc1, fc2)?.forward(&t[0], Mode::Train)
    };
    let mut r = |s: &[usize]| Tensor::randn(s, DType::F64, &mut g);
    let inputs = [r(&[2, 4, 2, 3]), r(&[2, 4, 1, 1]), r(&[2]), r(&[4, 2, 1, 1]), r(&[4])];
    gradcheck(|t| core(block(t)), &inputs).unwrap();
    let wrong = SqueezeExcitation::from_parts(Conv2d::new(4, 2, 1, &mut g), Conv2d::new(2, 3, 1, &mut g));
    assert!(wrong.is_err());
}

#[test]
fn gradcheck_pooling_and_upsampling_layers() {
    let mut g = Generator::new(13);
    // Distinct values, so no max-pool window holds a tie.
    let mut v: Vec<f64> = (0..2 * 2 * 5 * 6).map(|i| i as f64 * 0.1).collect();
    g.shuffle(&mut v);
    let x = Tensor::from_vec(v, &[2, 2, 5, 6]).unwrap();
    let overlap = Pool2dOptions {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
        ceil_mode: true,
    };
    let layers: Vec<Box<dyn Module>> = vec![
        Box::new(MaxPool2d::new(2, 2)),
        Box::new(MaxPool2d::with_options(overlap)),
        Box::new(AvgPool2d::with_options(overlap, false)),
        Box::new(AvgPool2d::with_options(overlap, true)),
        Box::new(AdaptiveAvgPool2d::new([3, 4])),
        Box::new(Upsample::with_size([7, 9], UpsampleMode::Nearest)),
        Box::new(Upsample::with_scale(
            2.0,
            UpsampleMode::Bilinear { align_corners: false },
        )),
        Box::new(Upsample::with_size(
            [4, 7],
            UpsampleMode::Bilinear { align_corners: true },
        )),
    ];
    for m in &layers {
        gradcheck(|t| core(m.forward(&t[0], Mode::Train)), std::slice::from_ref(&x))
            .unwrap_or_else(|e| panic!("{}: {e}", m.describe()));
    }
    let (_, idx) = MaxPool2d::new(2, 2).forward_with_indices(&x).unwrap();
    let small = Tensor::randn(&[2, 2, 2, 3], DType::F64, &mut g);
    let unpool = MaxUnpool2d::new(2, 2);
    gradcheck(|t| core(unpool.forward(&t[0], &idx, Some([5, 6]))), &[small]).unwrap();
}

#[test]
fn max_pool_indices_invert_through_unpool() {
    let x = Tensor::from_vec(
        vec![
            1.0f32, 9.0, 2.0, 0.0, //
            3.0, 4.0, 8.0, 7.0, //
            5.0, 0.5, 6.0, 1.0, //
            0.0, 2.0, 3.0, 6.5,
        ],
        &[1, 1, 4, 4],
    )
    .unwrap();
    let (y, idx) = MaxPool2d::new(2, 2).forward_with_indices(&x).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![9.0, 8.0, 5.0, 6.5]);
    assert_eq!(idx, vec![1, 6, 8, 15]);
    let back = MaxUnpool2d::new(2, 2).forward(&y, &idx, None).unwrap();
    let mut want = vec![0.0f32; 16];
    for (&i, v) in idx.iter().zip([9.0, 8.0, 5.0, 6.5]) {
        want[i] = v;
    }
    assert_eq!((back.shape(), back.to_vec::<f32>().unwrap()), (&[1, 1, 4, 4][..], want));
    let up = Upsample::with_scale(1.5, UpsampleMode::Nearest)
        .forward(&x, Mode::Eval)
        .unwrap();
    assert_eq!(up.shape(), &[1, 1, 6, 6]);
    let avg = AvgPool2d::new(2, 2).forward(&x, Mode::Eval).unwrap();
    assert_eq!(
        avg.to_vec::<f32>().unwrap(),
        vec![17.0 / 4.0, 17.0 / 4.0, 7.5 / 4.0, 16.5 / 4.0]
    );
    assert!(MaxPool2d::new(2, 2)
        .forward(&Tensor::ones(&[4, 4], DType::F32), Mode::Eval)
        .is_err());
    assert!(Upsample::with_scale(0.0, UpsampleMode::Nearest)
        .forward(&x, Mode::Eval)
        .is_err());
}
