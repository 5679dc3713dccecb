//! Classification plus localization: a backbone gives a feature vector, then two heads give
//! class scores (`classifier`) and one box `(x, y, w, h)` (`regressor`), trained with
//! [`classloc_loss`] = cross entropy + λ · L2 (the mean squared box error).
//!
//! [`Module::forward`] returns one tensor, so it gives `[N, classes + 4]`: the scores, then
//! the box. [`split_outputs`] cuts it apart; [`ClassLoc::forward2`] returns the pair.
//!
//! Backbones (`variant`): `None` / `"small"` (default), three conv-bn-relu stages of 32, 64
//! and 128 maps with 2×2 max pooling between them and global average pooling; `"spatial"`,
//! four conv-bn-relu stages of 16, 32, 64 and 64 maps, each but the first after a 2×2 max
//! pooling, then one more pooling; the heads see the 64 maps globally averaged (what is
//! there, wherever it is: the class) beside a 256-wide fully connected layer (ReLU) over the
//! flattened maps (*where* it is, which global pooling averages away: the box), so the
//! input size is fixed by `input_size` (H and W ≥ 16); `"resnet18"`,
//! a ResNet-18 without `fc` (with `small_input` honoured).
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_models::classloc::{classloc_loss, split_outputs};
//! use nabla_models::{build, ModelConfig};
//! use nabla_nn::{Mode, Module};
//! let net = build("classloc", &ModelConfig { num_classes: 3, ..Default::default() })?;
//! let out = net.forward(&Tensor::zeros(&[2, 1, 28, 28], DType::F32), Mode::Train)?;
//! let (logits, boxes) = split_outputs(&out, 3)?;
//! assert_eq!((logits.shape(), boxes.shape()), (&[2, 3][..], &[2, 4][..]));
//! let target = Tensor::from_vec(vec![0.5f32, 0.5, 0.2, 0.3, 0.1, 0.4, 0.2, 0.2], &[2, 4])?;
//! let loss = classloc_loss(&logits, &boxes, &[0, 2], &target, 1.0)?;
//! assert!(loss.item()?.is_finite());
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::layers::{batch_norm, check_positive, conv, MaxPool2d, SquareConv};
use crate::registry::ModelConfig;
use crate::resnet::{ResNet, ResNetSpec};
use nabla_core::{Generator, Tensor};
use nabla_nn::loss::{cross_entropy, mse_loss, CrossEntropyOptions, Reduction};
use nabla_nn::{Children, Error, Linear, Mode, Module, ReLU, Result, Sequential};

/// The small default backbone: `[N, C, H, W]` → `[N, 128]`.
struct SmallBackbone {
    features: Sequential,
}

impl Module for SmallBackbone {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = self.features.forward_named("features", x, mode)?;
        Ok(y.mean(&[2, 3], false)?)
    }
    fn children(&self, c: &mut Children) {
        c.module("features", &self.features);
    }
}

/// The `spatial` backbone: `[N, C, H, W]` → `[N, 64 + 256]`: the globally pooled maps (what
/// is there, wherever it is) beside a fully connected layer over the flattened maps (where).
struct SpatialBackbone {
    features: Sequential,
    fc: Sequential,
    input: [usize; 2],
}

impl Module for SpatialBackbone {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        if x.rank() != 4 || x.shape()[2..] != self.input {
            return Err(nabla_core::Error::invalid(
                "classloc (spatial)",
                format!(
                    "expects [N, C, {}, {}], got shape {:?}",
                    self.input[0],
                    self.input[1],
                    x.shape()
                ),
            )
            .into());
        }
        let y = self.features.forward_named("features", x, mode)?;
        let pooled = y.mean(&[2, 3], false)?;
        let flat = self.fc.forward_named("fc", &y.flatten(1, -1)?, mode)?;
        Ok(Tensor::cat(&[&pooled, &flat], 1)?)
    }
    fn children(&self, c: &mut Children) {
        c.module("features", &self.features);
        c.module("fc", &self.fc);
    }
}

/// Width of the `spatial` backbone's fully connected layer.
const SPATIAL_FC: usize = 256;
/// Maps of the `spatial` backbone's last stage.
const SPATIAL_MAPS: usize = 64;

/// The `spatial` backbone over `c_in` channels of `input`-sized images.
fn spatial(c_in: usize, input: [usize; 2], g: &mut Generator) -> Result<SpatialBackbone> {
    let [h, w] = input;
    if h < 16 || w < 16 {
        return Err(Error::Config(format!(
            "classloc: the spatial variant needs inputs of at least 16×16, got {h}×{w}"
        )));
    }
    let mut features = Sequential::new();
    let mut c_prev = c_in;
    for (i, c) in [16, 32, 64, SPATIAL_MAPS].into_iter().enumerate() {
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
    let flat = c_prev * (h / 16) * (w / 16);
    let fc = Sequential::new().push(Linear::new(flat, SPATIAL_FC, g)).push(ReLU);
    Ok(SpatialBackbone { features, fc, input })
}

/// Backbone (`backbone`), class head (`classifier`), box head (`regressor`).
pub struct ClassLoc {
    /// Maps images to feature vectors `[N, F]`.
    pub backbone: Box<dyn Module>,
    /// `F → classes`.
    pub classifier: Linear,
    /// `F → 4`: the box `(x, y, w, h)`.
    pub regressor: Linear,
}

impl ClassLoc {
    /// Heads over `backbone`, whose outputs have `features` entries.
    pub fn new(backbone: Box<dyn Module>, features: usize, num_classes: usize, g: &mut Generator) -> Result<ClassLoc> {
        check_positive("classloc", "num_classes", num_classes)?;
        Ok(ClassLoc {
            backbone,
            classifier: Linear::new(features, num_classes, g),
            regressor: Linear::new(features, 4, g),
        })
    }

    /// The model `cfg` describes (see the module docs for the variants).
    pub fn from_config(cfg: &ModelConfig, g: &mut Generator) -> Result<ClassLoc> {
        check_positive("classloc", "in_channels", cfg.in_channels)?;
        match cfg.variant.as_deref() {
            None | Some("small") => {
                let mut features = Sequential::new();
                let mut c_in = cfg.in_channels;
                for (i, c) in [32, 64, 128].into_iter().enumerate() {
                    if i > 0 {
                        features = features.push(MaxPool2d::new(2, 2));
                    }
                    features = features
                        .push(conv(c_in, c, SquareConv::new(3).padding(1).no_bias(), g)?)
                        .push(batch_norm(c, 1e-5))
                        .push(ReLU);
                    c_in = c;
                }
                let backbone = Box::new(SmallBackbone { features });
                ClassLoc::new(backbone, 128, cfg.num_classes, g)
            }
            Some("spatial") => {
                let backbone = Box::new(spatial(cfg.in_channels, cfg.input_size, g)?);
                ClassLoc::new(backbone, SPATIAL_MAPS + SPATIAL_FC, cfg.num_classes, g)
            }
            Some("resnet18") => {
                let spec = ResNetSpec {
                    small_input: cfg.small_input,
                    ..ResNetSpec::named("resnet18").ok_or_else(|| Error::Config("resnet18 is missing".into()))?
                };
                let trunk = ResNet::new(&spec, cfg.in_channels, 1, g)?.without_fc();
                let width = trunk.num_features();
                ClassLoc::new(Box::new(trunk), width, cfg.num_classes, g)
            }
            Some(v) => Err(Error::Config(format!(
                "classloc: unknown variant {v:?}; known: small, spatial, resnet18"
            ))),
        }
    }

    /// Class scores `[N, classes]` and boxes `[N, 4]`.
    pub fn forward2(&self, x: &Tensor, mode: Mode) -> Result<(Tensor, Tensor)> {
        let f = self.backbone.forward_named("backbone", x, mode)?;
        let logits = self.classifier.forward_named("classifier", &f, mode)?;
        let boxes = self.regressor.forward_named("regressor", &f, mode)?;
        Ok((logits, boxes))
    }
}

impl Module for ClassLoc {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let (logits, boxes) = self.forward2(x, mode)?;
        Ok(Tensor::cat(&[&logits, &boxes], 1)?)
    }

    fn children(&self, c: &mut Children) {
        c.module("backbone", &self.backbone);
        c.module("classifier", &self.classifier);
        c.module("regressor", &self.regressor);
    }

    fn describe(&self) -> String {
        format!("ClassLoc {} classes", self.classifier.out_features())
    }
}

/// Split a `[N, classes + 4]` output into scores `[N, classes]` and boxes `[N, 4]`.
pub fn split_outputs(out: &Tensor, num_classes: usize) -> Result<(Tensor, Tensor)> {
    if out.rank() != 2 || out.shape()[1] != num_classes + 4 {
        return Err(nabla_core::Error::invalid(
            "split_outputs",
            format!("expects [N, {} classes + 4], got shape {:?}", num_classes, out.shape()),
        )
        .into());
    }
    Ok((out.narrow(1, 0, num_classes)?, out.narrow(1, num_classes, 4)?))
}

/// Cross entropy of `logits` against `labels` plus `lambda` times the mean squared error
/// of `boxes` against `target_boxes` (both `[N, 4]`).
pub fn classloc_loss(
    logits: &Tensor,
    boxes: &Tensor,
    labels: &[usize],
    target_boxes: &Tensor,
    lambda: f64,
) -> Result<Tensor> {
    if !lambda.is_finite() || lambda < 0.0 {
        return Err(Error::Config(format!(
            "classloc_loss: lambda must be finite and non-negative, got {lambda}"
        )));
    }
    let ce = cross_entropy(logits, labels, &CrossEntropyOptions::default())?;
    let l2 = mse_loss(boxes, target_boxes, Reduction::Mean)?;
    Ok(ce.add(&l2.mul_scalar(lambda)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::DType;

    #[test]
    fn the_spatial_backbone_flattens_the_maps_and_checks_its_input_size() {
        let cfg = ModelConfig {
            variant: Some("spatial".into()),
            input_size: [32, 48],
            ..Default::default()
        };
        let net = ClassLoc::from_config(&cfg, &mut Generator::new(0)).unwrap();
        let (logits, boxes) = net
            .forward2(&Tensor::zeros(&[2, 1, 32, 48], DType::F32), Mode::Eval)
            .unwrap();
        assert_eq!((logits.shape(), boxes.shape()), (&[2, 10][..], &[2, 4][..]));
        // 64 maps of 2×3 after four poolings feed the 256-wide layer.
        let fc = net
            .named_parameters()
            .into_iter()
            .find(|(n, _)| n == "backbone.fc.0.weight")
            .unwrap();
        assert_eq!(fc.1.shape(), &[256, 64 * 2 * 3]);
        assert!(net
            .forward(&Tensor::zeros(&[1, 1, 32, 32], DType::F32), Mode::Eval)
            .is_err());
        let tiny = ModelConfig {
            input_size: [8, 8],
            ..cfg
        };
        assert!(ClassLoc::from_config(&tiny, &mut Generator::new(0)).is_err());
    }
}
