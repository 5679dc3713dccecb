//! VGG (Simonyan & Zisserman, 2014) with torchvision's layout, names and initialization:
//! `features` (3×3 pad-1 convolutions with bias, optional batch norm, ReLU, 2×2 max
//! pooling), `avgpool` (adaptive 7×7), `classifier` (Linear 25088→4096, ReLU, dropout,
//! Linear 4096→4096, ReLU, dropout, Linear 4096→classes: indices 0, 3, 6).
//!
//! `small_input` (28×28, 32×32): the poolings round up (28 → 14 → 7 → 4 → 2 → 1), the
//! adaptive pooling goes to 1×1, and the classifier is 512→512→512→classes (same indices).
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_models::{build, ModelConfig};
//! use nabla_nn::{Mode, Module};
//! let cfg = ModelConfig { input_size: [28, 28], small_input: true, ..Default::default() };
//! let net = build("vgg11_bn", &cfg)?;
//! assert_eq!(net.forward(&Tensor::zeros(&[2, 1, 28, 28], DType::F32), Mode::Eval)?.shape(), &[2, 10]);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::convnet::ConvNet;
use crate::layers::{
    batch_norm, check_positive, conv, kaiming_conv, normal_linear, spatial, AdaptiveAvgPool2d, MaxPool2d, SquareConv,
    Window,
};
use nabla_core::{Generator, Pool2dOptions};
use nabla_nn::{Dropout, Error, Module, ReLU, Result, Sequential};

/// `M` marks a 2×2 max pooling in a configuration; other entries are convolution widths.
const M: usize = 0;

/// torchvision's configurations A, B, D, E (VGG-11, -13, -16, -19).
fn config(depth: usize) -> Option<&'static [usize]> {
    Some(match depth {
        11 => &[64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
        13 => &[64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
        16 => &[
            64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M,
        ],
        19 => &[
            64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M,
        ],
        _ => return None,
    })
}

/// VGG of `depth` 11, 13, 16 or 19, with batch norm after each convolution if `bn`.
pub fn vgg(
    depth: usize,
    bn: bool,
    in_channels: usize,
    input_size: [usize; 2],
    num_classes: usize,
    small_input: bool,
    g: &mut Generator,
) -> Result<ConvNet> {
    let name = format!("vgg{depth}{}", if bn { "_bn" } else { "" });
    let layers =
        config(depth).ok_or_else(|| Error::Config(format!("vgg: depth {depth} is not one of 11, 13, 16, 19")))?;
    check_positive(&name, "in_channels", in_channels)?;
    check_positive(&name, "num_classes", num_classes)?;
    let pools = layers.iter().filter(|&&c| c == M).count();
    let windows: Vec<Window> = vec![(2, 2, 0, small_input); pools];
    spatial(&name, input_size, &windows)?;
    let mut features = Sequential::new();
    let mut c_in = in_channels;
    for &c in layers {
        if c == M {
            features = features.push(MaxPool2d::with_options(Pool2dOptions {
                ceil_mode: small_input,
                ..Pool2dOptions::new([2, 2])
            }));
            continue;
        }
        let layer = conv(c_in, c, SquareConv::new(3).padding(1), g)?;
        kaiming_conv(&layer, g)?;
        features = features.push(layer);
        if bn {
            features = features.push(batch_norm(c, 1e-5));
        }
        features = features.push(ReLU);
        c_in = c;
    }
    let (pooled, width) = if small_input { (1, 512) } else { (7, 4096) };
    let avgpool: Box<dyn Module> = Box::new(AdaptiveAvgPool2d::new([pooled, pooled]));
    let fc6 = normal_linear(512 * pooled * pooled, width, 0.01, g)?;
    let fc7 = normal_linear(width, width, 0.01, g)?;
    let fc8 = normal_linear(width, num_classes, 0.01, g)?;
    let classifier = Sequential::new()
        .push(fc6)
        .push(ReLU)
        .push(Dropout::new(0.5, g))
        .push(fc7)
        .push(ReLU)
        .push(Dropout::new(0.5, g))
        .push(fc8);
    Ok(ConvNet::new(name, features, Some(avgpool), classifier))
}
