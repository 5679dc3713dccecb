//! The captioner's image encoders: `[N, C, H, W]` → a feature vector `[N, F]`.
//!
//! - [`EncoderKind::Small`]: four conv-bn-relu stages of 16, 32, 64 and 64 maps, each but the
//!   first after 2×2 max pooling, one more pooling, then the maps flattened (not averaged: a
//!   caption says *where* things are, "to the left of", "above", which global pooling averages
//!   away). 64×64 grey scenes give 64·4·4 = 1024 features at about 12 M multiply-adds.
//! - [`EncoderKind::ResNet18`]: the zoo's ResNet-18 with the small-input stem, without `fc`
//!   (512 globally pooled features), so a `nabla train --model resnet18` classification
//!   checkpoint loads into it unchanged.

use crate::layers::{batch_norm, conv, MaxPool2d, SquareConv};
use crate::resnet::{ResNet, ResNetSpec};
use nabla_core::{Generator, Tensor};
use nabla_nn::{Children, Error, Mode, Module, ReLU, Result, Sequential};

/// Which CNN reads the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderKind {
    /// The small conv net for 64×64 grey scenes (flattened maps, positions kept).
    Small,
    /// ResNet-18, small-input stem, globally pooled.
    ResNet18,
}

impl EncoderKind {
    /// The kind named `name` (`small`, `resnet18`).
    pub fn named(name: &str) -> Result<EncoderKind> {
        match name {
            "small" => Ok(EncoderKind::Small),
            "resnet18" => Ok(EncoderKind::ResNet18),
            _ => Err(Error::Config(format!(
                "captioner: unknown encoder {name:?}; choose small or resnet18"
            ))),
        }
    }

    /// The name [`EncoderKind::named`] reads.
    pub fn name(self) -> &'static str {
        match self {
            EncoderKind::Small => "small",
            EncoderKind::ResNet18 => "resnet18",
        }
    }
}

/// Maps of the small encoder's stages.
const SMALL_MAPS: [usize; 4] = [16, 32, 64, 64];

/// The small encoder: `features` (a Sequential), flattened.
pub struct SmallEncoder {
    /// The conv-bn-relu stages and their pooling (`features.N`).
    pub features: Sequential,
}

impl Module for SmallEncoder {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = self.features.forward_named("features", x, mode)?;
        Ok(y.flatten(1, -1)?)
    }
    fn children(&self, c: &mut Children) {
        c.module("features", &self.features);
    }
    fn describe(&self) -> String {
        "small conv encoder".into()
    }
}

/// An encoder of `kind` for `in_channels`×`size` images, and its feature width.
pub fn build_encoder(
    kind: EncoderKind,
    in_channels: usize,
    size: [usize; 2],
    g: &mut Generator,
) -> Result<(Box<dyn Module>, usize)> {
    match kind {
        EncoderKind::Small => {
            let [h, w] = size;
            if h < 16 || w < 16 {
                return Err(Error::Config(format!(
                    "captioner: the small encoder needs images of at least 16×16, got {h}×{w}"
                )));
            }
            let mut features = Sequential::new();
            let mut c_prev = in_channels;
            for (i, c) in SMALL_MAPS.into_iter().enumerate() {
                if i > 0 {
                    features = features.push(MaxPool2d::new(2, 2));
                }
                features = features
                    .push(conv(c_prev, c, SquareConv::new(3).padding(1).no_bias(), g)?)
                    .push(batch_norm(c, 1e-5))
                    .push(ReLU);
                c_prev = c;
            }
            features = features.push(MaxPool2d::new(2, 2));
            Ok((Box::new(SmallEncoder { features }), c_prev * (h / 16) * (w / 16)))
        }
        EncoderKind::ResNet18 => {
            let spec = ResNetSpec {
                small_input: true,
                ..ResNetSpec::named("resnet18").expect("resnet18 is a zoo spec")
            };
            // Any class count: `fc` is dropped at once.
            let net = ResNet::new(&spec, in_channels, 10, g)?.without_fc();
            let width = net.num_features();
            Ok((Box::new(net), width))
        }
    }
}
