//! The detector's backbones: one feature map at a fixed stride.
//!
//! - `Small`: conv-bn-relu layers (`features.0`, `features.1`, ...): 32 maps at full
//!   resolution, then 64 maps through stride-2 convolutions to stride 4 (or 8), then one more
//!   64-map layer at that stride.
//! - `Resnet18`: the zoo's ResNet-18 stem (`conv1`, `bn1`, max pooling) and `layer1`,
//!   `layer2`: 128 maps at stride 8, named as torchvision names them, so ImageNet weights
//!   load. `layer3` (stride 16) would leave 4×4 maps of a 64×64 scene, too coarse for items
//!   of 18–45 pixels.

use crate::layers::{batch_norm, conv, kaiming_conv, MaxPool2d, SquareConv};
use crate::resnet::{ResNet, ResNetSpec};
use nabla_core::{Generator, Tensor};
use nabla_nn::{BatchNorm2d, Children, Conv2d, Error, Mode, Module, ParamKind, ReLU, Result, Sequential};

/// The small backbone: `features`, a Sequential of conv-bn-relu layers.
pub struct SmallBackbone {
    /// Convolutions (no bias), batch norms and ReLUs in turn.
    pub features: Sequential,
}

impl SmallBackbone {
    /// Conv-bn-relu layers from `in_channels` to `channels` maps at `stride` (4 or 8).
    pub fn new(in_channels: usize, channels: usize, stride: usize, g: &mut Generator) -> Result<SmallBackbone> {
        let downs = match stride {
            4 => 2,
            8 => 3,
            s => {
                return Err(Error::Config(format!(
                    "fasterrcnn_small: the small backbone's stride must be 4 or 8, got {s}"
                )))
            }
        };
        // (out maps, stride) of each layer: full resolution, the downsamplings, one more.
        let mut layers = vec![(32, 1)];
        layers.extend(std::iter::repeat_n((channels, 2), downs));
        layers.push((channels, 1));
        let mut features = Sequential::new();
        let mut c_in = in_channels;
        for (c, s) in layers {
            let cv = conv(c_in, c, SquareConv::new(3).stride(s).padding(1).no_bias(), g)?;
            kaiming_conv(&cv, g)?;
            features = features.push(cv).push(batch_norm(c, 1e-5)).push(ReLU);
            c_in = c;
        }
        Ok(SmallBackbone { features })
    }
}

impl Module for SmallBackbone {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.features.forward_named("features", x, mode)
    }
    fn children(&self, c: &mut Children) {
        c.module("features", &self.features);
    }
    fn describe(&self) -> String {
        "SmallBackbone".into()
    }
}

/// ResNet-18 up to `layer2`: 128 maps at stride 8.
pub struct ResnetTrunk {
    /// Stem convolution, 7×7 stride 2.
    pub conv1: Conv2d,
    /// Stem batch norm.
    pub bn1: BatchNorm2d,
    /// 3×3 stride-2 max pooling.
    pub maxpool: MaxPool2d,
    /// 64-map stage.
    pub layer1: Sequential,
    /// 128-map stage, stride 2.
    pub layer2: Sequential,
}

impl ResnetTrunk {
    /// The trunk of a ResNet-18 over `in_channels`, initialized as the zoo's ResNet-18.
    pub fn new(in_channels: usize, g: &mut Generator) -> Result<ResnetTrunk> {
        let spec = ResNetSpec::named("resnet18").ok_or_else(|| Error::Config("resnet18 is missing".into()))?;
        let net = ResNet::new(&spec, in_channels, 1, g)?;
        let ResNet {
            conv1,
            bn1,
            maxpool,
            layers,
            ..
        } = net;
        let [layer1, layer2, _, _] = layers;
        let maxpool = maxpool.ok_or_else(|| Error::Config("resnet18 without its max pooling".into()))?;
        Ok(ResnetTrunk {
            conv1,
            bn1,
            maxpool,
            layer1,
            layer2,
        })
    }
}

impl Module for ResnetTrunk {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = self.conv1.forward_named("conv1", x, mode)?;
        let y = self.bn1.forward_named("bn1", &y, mode)?.relu()?;
        let y = self.maxpool.forward_named("maxpool", &y, mode)?;
        let y = self.layer1.forward_named("layer1", &y, mode)?;
        self.layer2.forward_named("layer2", &y, mode)
    }
    fn children(&self, c: &mut Children) {
        c.module("conv1", &self.conv1);
        c.module("bn1", &self.bn1);
        c.module("maxpool", &self.maxpool);
        c.module("layer1", &self.layer1);
        c.module("layer2", &self.layer2);
    }
    fn describe(&self) -> String {
        "ResNet-18 to layer2".into()
    }
}

/// Prefixes under which a backbone tensor `name` is looked for in a foreign state dict:
/// a classification model's own names, a checkpoint's `model.` ones, a detector's
/// `backbone.` ones and torchvision's `backbone.body.` ones.
const PREFIXES: [&str; 6] = [
    "",
    "model.",
    "backbone.",
    "backbone.body.",
    "model.backbone.",
    "model.backbone.body.",
];

/// Copy the tensors of `backbone` from `source` (names as [`PREFIXES`] allows), returning
/// how many were loaded. A missing tensor or one of another shape is an error naming it,
/// and nothing changes then; batch-norm counters (`num_batches_tracked`) may be missing.
pub fn load_backbone_from(backbone: &dyn Module, source: &[(String, Tensor)]) -> Result<usize> {
    let mut picked = Vec::new();
    for (name, dst, kind) in backbone.state_entries() {
        let found = PREFIXES.iter().find_map(|p| {
            let full = format!("{p}{name}");
            source.iter().find(|(n, _)| *n == full)
        });
        match found {
            Some((n, t)) if t.shape() != dst.shape() => {
                return Err(Error::State(format!(
                    "load_backbone: {n} has shape {:?}, the backbone's {name} needs {:?}",
                    t.shape(),
                    dst.shape()
                )))
            }
            Some((_, t)) => picked.push((name, t.clone())),
            None if kind == ParamKind::Counter => {}
            None => {
                return Err(Error::State(format!(
                    "load_backbone: the source has no tensor for the backbone's {name} \
                     (looked for {name}, model.{name}, backbone.{name}, backbone.body.{name})"
                )))
            }
        }
    }
    let n = picked.len();
    backbone.load_state_dict(&picked, false)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::DType;

    #[test]
    fn small_backbone_reaches_its_stride() {
        let mut g = Generator::new(0);
        for (stride, side) in [(4, 16), (8, 8)] {
            let b = SmallBackbone::new(1, 64, stride, &mut g).unwrap();
            let y = b
                .forward(&Tensor::zeros(&[2, 1, 64, 64], DType::F32), Mode::Train)
                .unwrap();
            assert_eq!(y.shape(), &[2, 64, side, side]);
        }
        assert!(SmallBackbone::new(1, 64, 16, &mut g).is_err());
    }

    #[test]
    fn resnet_trunk_has_torchvision_names_and_stride_8() {
        let t = ResnetTrunk::new(3, &mut Generator::new(0)).unwrap();
        let y = t
            .forward(&Tensor::zeros(&[1, 3, 64, 64], DType::F32), Mode::Eval)
            .unwrap();
        assert_eq!(y.shape(), &[1, 128, 8, 8]);
        let names: Vec<String> = t.state_dict().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"layer2.0.downsample.0.weight".to_string()));
        assert!(!names.iter().any(|n| n.starts_with("layer3") || n.starts_with("fc")));
    }

    #[test]
    fn backbone_loads_from_a_classifier_state_dict_and_names_what_is_wrong() {
        let mut g = Generator::new(1);
        let classifier = ResNet::new(&ResNetSpec::named("resnet18").unwrap(), 3, 10, &mut g).unwrap();
        let trunk = ResnetTrunk::new(3, &mut g).unwrap();
        // As a checkpoint stores them: `model.` names, with the classifier's fc and layer3/4.
        let source: Vec<(String, Tensor)> = classifier
            .state_dict()
            .into_iter()
            .map(|(n, t)| (format!("model.{n}"), t))
            .collect();
        let n = load_backbone_from(&trunk, &source).unwrap();
        assert_eq!(n, trunk.state_dict().len());
        let w = |m: &dyn Module, name: &str| m.parameter(name).unwrap().to_vec_f32();
        assert_eq!(
            w(&trunk, "layer2.1.conv2.weight"),
            w(&classifier, "layer2.1.conv2.weight")
        );

        let missing: Vec<_> = source
            .iter()
            .filter(|(n, _)| n != "model.bn1.weight")
            .cloned()
            .collect();
        let e = load_backbone_from(&trunk, &missing).unwrap_err().to_string();
        assert!(e.contains("bn1.weight"), "{e}");
        let other = ResNet::new(&ResNetSpec::named("resnet18").unwrap(), 1, 10, &mut g).unwrap();
        let e = load_backbone_from(&trunk, &other.state_dict()).unwrap_err().to_string();
        assert!(e.contains("conv1.weight") && e.contains("shape"), "{e}");
    }
}
