//! AlexNet (Krizhevsky et al., 2012) as the CS231n lecture draws it (one tower, LRN after
//! the first two poolings), torchvision's AlexNet variant, and ZFNet (Zeiler & Fergus, 2013).
//!
//! Lecture AlexNet on 227×227×3: CONV1 96 11×11/4 → 55×55×96, MAX POOL 3×3/2 → 27×27×96,
//! NORM, CONV2 256 5×5 pad 2 → 27×27×256, MAX POOL → 13×13×256, NORM, CONV3 384, CONV4 384,
//! CONV5 256 (3×3 pad 1) → 13×13×256, MAX POOL → 6×6×256, FC 4096, FC 4096, FC classes;
//! ReLU after every convolution and hidden FC, dropout 0.5 before FC6 and FC7. FC6 takes
//! whatever map the input size leaves (6×6 for 227×227, 5×5 for 224×224).
//!
//! ZFNet is that network with CONV1 7×7 at stride 2 and CONV3/4/5 of 512/1024/512 filters.
//! As in the ZFNet paper, CONV2 has stride 2 and the second pooling pads by 1, so the maps
//! keep AlexNet's sizes from there on (227 → 111 → 55 → 26 → 13 → 13 → 6); with CONV2 at
//! stride 1, FC6 would see 13×13×512 inputs (354M weights).
//!
//! `small_input` (28×28, 32×32): CONV1 becomes 3×3 stride 1 pad 1, CONV2 stride 1 pad 2, and
//! the rest is kept (32 → 32 → 15 → 15 → 7 → 7 → 3).
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_models::{build, ModelConfig};
//! use nabla_nn::{Mode, Module};
//! let cfg = ModelConfig { in_channels: 3, input_size: [32, 32], small_input: true, ..Default::default() };
//! let net = build("alexnet", &cfg)?;
//! assert_eq!(net.forward(&Tensor::zeros(&[1, 3, 32, 32], DType::F32), Mode::Eval)?.shape(), &[1, 10]);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::convnet::ConvNet;
use crate::layers::{check_positive, conv, spatial, AdaptiveAvgPool2d, MaxPool2d, SquareConv, Window};
use nabla_core::{Generator, Pool2dOptions};
use nabla_nn::{Dropout, Linear, LocalResponseNorm, Module, ReLU, Result, Sequential};

/// The lecture-style AlexNet family: layer sizes of CONV1 .. CONV5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlexNetSpec {
    /// CONV1 (kernel, stride, padding).
    pub conv1: (usize, usize, usize),
    /// CONV2 (kernel, stride, padding).
    pub conv2: (usize, usize, usize),
    /// Padding of the max pooling after CONV2.
    pub pool2_padding: usize,
    /// Filters of CONV1 .. CONV5.
    pub widths: [usize; 5],
}

impl AlexNetSpec {
    /// The lecture's AlexNet; `small_input` adapts it to 28×28 and 32×32 images.
    pub fn alexnet(small_input: bool) -> AlexNetSpec {
        AlexNetSpec {
            conv1: if small_input { (3, 1, 1) } else { (11, 4, 0) },
            conv2: (5, 1, 2),
            pool2_padding: 0,
            widths: [96, 256, 384, 384, 256],
        }
    }

    /// ZFNet; `small_input` adapts it to 28×28 and 32×32 images.
    pub fn zfnet(small_input: bool) -> AlexNetSpec {
        let big = AlexNetSpec {
            conv1: (7, 2, 0),
            conv2: (5, 2, 0),
            pool2_padding: 1,
            widths: [96, 256, 512, 1024, 512],
        };
        if small_input {
            AlexNetSpec {
                widths: big.widths,
                ..AlexNetSpec::alexnet(true)
            }
        } else {
            big
        }
    }
}

/// AlexNet's LRN: window 5, α = 1e-4, β = 0.75, k = 2.
fn lrn() -> LocalResponseNorm {
    LocalResponseNorm::with_params(5, 1e-4, 0.75, 2.0)
}

fn pool(padding: usize) -> MaxPool2d {
    MaxPool2d::with_options(Pool2dOptions {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [padding, padding],
        ceil_mode: false,
    })
}

/// Dropout, FC, ReLU, dropout, FC, ReLU, FC (`classifier.{1,4,6}`), as torchvision.
fn classifier(in_features: usize, num_classes: usize, g: &mut Generator) -> Result<Sequential> {
    check_positive("alexnet", "num_classes", num_classes)?;
    Ok(Sequential::new()
        .push(Dropout::new(0.5, g))
        .push(Linear::new(in_features, 4096, g))
        .push(ReLU)
        .push(Dropout::new(0.5, g))
        .push(Linear::new(4096, 4096, g))
        .push(ReLU)
        .push(Linear::new(4096, num_classes, g)))
}

/// A lecture-style AlexNet (or ZFNet) named `name` for `in_channels`×H×W inputs.
/// Feature indices: convolutions at 0, 4, 8, 10, 12; pooling at 2, 6, 14; LRN at 3, 7.
pub fn alexnet_like(
    name: &str,
    spec: &AlexNetSpec,
    in_channels: usize,
    input_size: [usize; 2],
    num_classes: usize,
    g: &mut Generator,
) -> Result<ConvNet> {
    check_positive(name, "in_channels", in_channels)?;
    let [c1, c2, c3, c4, c5] = spec.widths;
    let (k1, s1, p1) = spec.conv1;
    let (k2, s2, p2) = spec.conv2;
    let windows: [Window; 7] = [
        (k1, s1, p1, false),
        (3, 2, 0, false),
        (k2, s2, p2, false),
        (3, 2, spec.pool2_padding, false),
        (3, 1, 1, false),
        (3, 1, 1, false),
        (3, 2, 0, false),
    ];
    let [h, w] = spatial(name, input_size, &windows)?;
    let features = Sequential::new()
        .push(conv(in_channels, c1, SquareConv::new(k1).stride(s1).padding(p1), g)?)
        .push(ReLU)
        .push(pool(0))
        .push(lrn())
        .push(conv(c1, c2, SquareConv::new(k2).stride(s2).padding(p2), g)?)
        .push(ReLU)
        .push(pool(spec.pool2_padding))
        .push(lrn())
        .push(conv(c2, c3, SquareConv::new(3).padding(1), g)?)
        .push(ReLU)
        .push(conv(c3, c4, SquareConv::new(3).padding(1), g)?)
        .push(ReLU)
        .push(conv(c4, c5, SquareConv::new(3).padding(1), g)?)
        .push(ReLU)
        .push(pool(0));
    let classifier = classifier(c5 * h * w, num_classes, g)?;
    Ok(ConvNet::new(name, features, None, classifier))
}

/// torchvision's AlexNet: 64/192/384/256/256 filters, no LRN, adaptive average pooling to
/// 6×6, the same classifier (61,100,840 parameters for 1000 classes). `small_input` makes
/// the first convolution 3×3 stride 1 pad 1 (the adaptive pooling then upsamples the 3×3
/// map of a 32×32 input to 6×6).
pub fn alexnet_torchvision(
    in_channels: usize,
    input_size: [usize; 2],
    num_classes: usize,
    small_input: bool,
    g: &mut Generator,
) -> Result<ConvNet> {
    const NAME: &str = "alexnet_torchvision";
    check_positive(NAME, "in_channels", in_channels)?;
    let (k1, s1, p1) = if small_input { (3, 1, 1) } else { (11, 4, 2) };
    let windows: [Window; 4] = [
        (k1, s1, p1, false),
        (3, 2, 0, false),
        (3, 2, 0, false),
        (3, 2, 0, false),
    ];
    spatial(NAME, input_size, &windows)?;
    let features = Sequential::new()
        .push(conv(in_channels, 64, SquareConv::new(k1).stride(s1).padding(p1), g)?)
        .push(ReLU)
        .push(pool(0))
        .push(conv(64, 192, SquareConv::new(5).padding(2), g)?)
        .push(ReLU)
        .push(pool(0))
        .push(conv(192, 384, SquareConv::new(3).padding(1), g)?)
        .push(ReLU)
        .push(conv(384, 256, SquareConv::new(3).padding(1), g)?)
        .push(ReLU)
        .push(conv(256, 256, SquareConv::new(3).padding(1), g)?)
        .push(ReLU)
        .push(pool(0));
    let avgpool: Box<dyn Module> = Box::new(AdaptiveAvgPool2d::new([6, 6]));
    let classifier = classifier(256 * 36, num_classes, g)?;
    Ok(ConvNet::new(
        "AlexNet (torchvision)",
        features,
        Some(avgpool),
        classifier,
    ))
}
