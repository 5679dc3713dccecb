//! LeNet-5 (LeCun et al., 1998): CONV-POOL-CONV-POOL-FC-FC-FC with 5×5 convolutions of 6
//! and 16 maps, 2×2 pooling at stride 2, and 120-84-classes units.
//!
//! The "classic" variant pools by averaging and uses tanh; the "modern" one (the default)
//! max-pools and uses ReLU. The first convolution pads by 2 when the input is smaller than
//! 32×32, so 28×28 digits give the 28×28 maps a 32×32 input gives unpadded.
//!
//! ```
//! use nabla_core::{DType, Generator, Tensor};
//! use nabla_models::lenet::{lenet5, LeNetVariant};
//! use nabla_nn::{Mode, Module};
//! let net = lenet5(1, [28, 28], 10, LeNetVariant::Modern, &mut Generator::new(0))?;
//! assert_eq!(net.forward(&Tensor::zeros(&[2, 1, 28, 28], DType::F32), Mode::Eval)?.shape(), &[2, 10]);
//! assert_eq!(net.num_parameters(), 61_706);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::convnet::ConvNet;
use crate::layers::{check_positive, conv, out_len, AvgPool2d, MaxPool2d, SquareConv};
use nabla_core::Generator;
use nabla_nn::{Error, Linear, Module, ReLU, Result, Sequential, Tanh};

/// Pooling and activation of LeNet-5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeNetVariant {
    /// Average pooling and tanh, as published.
    Classic,
    /// Max pooling and ReLU.
    #[default]
    Modern,
}

impl LeNetVariant {
    /// `"classic"` or `"modern"`; `None` is the default (modern).
    pub fn parse(name: Option<&str>) -> Result<LeNetVariant> {
        match name.map(str::to_ascii_lowercase).as_deref() {
            None | Some("modern") => Ok(LeNetVariant::Modern),
            Some("classic") => Ok(LeNetVariant::Classic),
            Some(other) => Err(Error::Config(format!(
                "lenet5: unknown variant {other:?}; known: classic, modern"
            ))),
        }
    }
}

/// LeNet-5 for `in_channels`×H×W inputs. Names: `features.{0,3}` (convolutions),
/// `classifier.{0,2,4}` (linear layers).
pub fn lenet5(
    in_channels: usize,
    input_size: [usize; 2],
    num_classes: usize,
    variant: LeNetVariant,
    g: &mut Generator,
) -> Result<ConvNet> {
    check_positive("lenet5", "in_channels", in_channels)?;
    check_positive("lenet5", "num_classes", num_classes)?;
    let pad = if input_size[0] < 32 || input_size[1] < 32 { 2 } else { 0 };
    // conv 5×5 (pad) → pool 2/2 → conv 5×5 → pool 2/2, per axis.
    let side = |n: usize| {
        let n = out_len(n, 5, 1, pad, false)?;
        let n = out_len(n, 2, 2, 0, false)?;
        let n = out_len(n, 5, 1, 0, false)?;
        out_len(n, 2, 2, 0, false).filter(|&n| n > 0)
    };
    let (Some(h), Some(w)) = (side(input_size[0]), side(input_size[1])) else {
        return Err(Error::Config(format!(
            "lenet5: input {}×{} is too small (at least 12×12)",
            input_size[0], input_size[1]
        )));
    };
    let act = || -> Box<dyn Module> {
        match variant {
            LeNetVariant::Classic => Box::new(Tanh),
            LeNetVariant::Modern => Box::new(ReLU),
        }
    };
    let pool = || -> Box<dyn Module> {
        match variant {
            LeNetVariant::Classic => Box::new(AvgPool2d::new(2, 2)),
            LeNetVariant::Modern => Box::new(MaxPool2d::new(2, 2)),
        }
    };
    let mut features = Sequential::new().push(conv(in_channels, 6, SquareConv::new(5).padding(pad), g)?);
    features.add(act());
    features.add(pool());
    features = features.push(conv(6, 16, SquareConv::new(5), g)?);
    features.add(act());
    features.add(pool());
    let mut classifier = Sequential::new().push(Linear::new(16 * h * w, 120, g));
    classifier.add(act());
    classifier = classifier.push(Linear::new(120, 84, g));
    classifier.add(act());
    classifier = classifier.push(Linear::new(84, num_classes, g));
    let name = match variant {
        LeNetVariant::Classic => "LeNet-5 (classic)",
        LeNetVariant::Modern => "LeNet-5",
    };
    Ok(ConvNet::new(name, features, None, classifier))
}
