//! Squeeze-and-excitation block (Hu et al.), as torchvision's `SqueezeExcitation`.

use super::Conv2d;
use crate::module::{expect_rank, Children, Mode, Module};
use crate::Result;
use nabla_core::{Generator, Tensor};

/// Reweights channels: global average pool, `fc1` (C → S, a 1×1 conv), ReLU, `fc2`
/// (S → C, a 1×1 conv), sigmoid, then `x · scale` per channel. Input `[N, C, H, W]`.
/// State-dict names: `fc1.weight`, `fc1.bias`, `fc2.weight`, `fc2.bias`.
#[derive(Debug)]
pub struct SqueezeExcitation {
    /// Squeeze: C → S channels.
    pub fc1: Conv2d,
    /// Excite: S → C channels.
    pub fc2: Conv2d,
}

impl SqueezeExcitation {
    /// A block over `input_channels` squeezed to `squeeze_channels` (C/r for reduction r),
    /// with PyTorch's default initialization.
    pub fn new(input_channels: usize, squeeze_channels: usize, g: &mut Generator) -> Self {
        SqueezeExcitation {
            fc1: Conv2d::new(input_channels, squeeze_channels, 1, g),
            fc2: Conv2d::new(squeeze_channels, input_channels, 1, g),
        }
    }

    /// A block around given 1×1 convolutions (`fc1`: C → S, `fc2`: S → C).
    pub fn from_parts(fc1: Conv2d, fc2: Conv2d) -> Result<Self> {
        if fc1.out_channels() != fc2.in_channels() || fc2.out_channels() != fc1.in_channels() {
            return Err(nabla_core::Error::invalid(
                "SqueezeExcitation",
                format!(
                    "fc1 ({}) and fc2 ({}) must map C → S → C",
                    fc1.describe(),
                    fc2.describe()
                ),
            )
            .into());
        }
        Ok(SqueezeExcitation { fc1, fc2 })
    }
}

impl Module for SqueezeExcitation {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        expect_rank("SqueezeExcitation", x, &[4])?;
        // Global average pooling, as AdaptiveAvgPool2d(1): [N, C, 1, 1].
        let pooled = x.mean(&[2, 3], true)?;
        let s = self.fc1.forward_named("fc1", &pooled, mode)?.relu()?;
        let scale = self.fc2.forward_named("fc2", &s, mode)?.sigmoid()?;
        Ok(x.mul(&scale)?)
    }

    fn children(&self, c: &mut Children) {
        c.module("fc1", &self.fc1).module("fc2", &self.fc2);
    }

    fn describe(&self) -> String {
        format!(
            "SqueezeExcitation {}→{}",
            self.fc1.in_channels(),
            self.fc1.out_channels()
        )
    }
}
