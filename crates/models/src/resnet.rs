//! ResNet (He et al., 2015) with torchvision's structure and names (`conv1`, `bn1`,
//! `layer1.0.conv1`, `layer1.0.downsample.0`, `fc`), so torchvision state dicts load
//! unchanged; and SE-ResNet (Hu et al., 2017), a squeeze-and-excitation block (`se.fc1`,
//! `se.fc2`, reduction 16) on every residual branch before the addition.
//!
//! `small_input` swaps the 7×7 stride-2 stem and its max pooling for a 3×3 stride-1
//! convolution, the usual choice for 28×28 and 32×32 images.
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_models::{build, ModelConfig};
//! use nabla_nn::{Mode, Module};
//! let cfg = ModelConfig { in_channels: 3, input_size: [32, 32], small_input: true, ..Default::default() };
//! let net = build("resnet18", &cfg)?;
//! assert_eq!(net.forward(&Tensor::zeros(&[1, 3, 32, 32], DType::F32), Mode::Eval)?.shape(), &[1, 10]);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::layers::{batch_norm, check_positive, conv, kaiming_conv, MaxPool2d, SquareConv};
use nabla_core::{Generator, Pool2dOptions, Tensor};
use nabla_nn::{BatchNorm2d, Children, Conv2d, Error, Linear, Mode, Module, Result, Sequential, SqueezeExcitation};

/// Which residual block a ResNet stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convolutions (ResNet-18/34); expansion 1.
    Basic,
    /// 1×1 reduce, 3×3, 1×1 expand (ResNet-50/101/152); expansion 4.
    Bottleneck,
}

impl BlockKind {
    /// Output channels per `planes`.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// What a ResNet is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResNetSpec {
    /// Basic or bottleneck blocks.
    pub block: BlockKind,
    /// Blocks in `layer1` .. `layer4`.
    pub layers: [usize; 4],
    /// Squeeze-and-excitation in every block.
    pub se: bool,
    /// 3×3 stride-1 stem without max pooling, for small images.
    pub small_input: bool,
}

impl ResNetSpec {
    /// The spec of `resnet18` .. `resnet152` (and `se_` variants), if `name` is one.
    pub fn named(name: &str) -> Option<ResNetSpec> {
        let (se, base) = match name.strip_prefix("se_") {
            Some(b) => (true, b),
            None => (false, name),
        };
        let (block, layers) = match base {
            "resnet18" => (BlockKind::Basic, [2, 2, 2, 2]),
            "resnet34" => (BlockKind::Basic, [3, 4, 6, 3]),
            "resnet50" => (BlockKind::Bottleneck, [3, 4, 6, 3]),
            "resnet101" => (BlockKind::Bottleneck, [3, 4, 23, 3]),
            "resnet152" => (BlockKind::Bottleneck, [3, 8, 36, 3]),
            _ => return None,
        };
        Some(ResNetSpec {
            block,
            layers,
            se,
            small_input: false,
        })
    }
}

/// A residual block: `relu(branch(x) + shortcut(x))`, the branch being conv-bn pairs with
/// ReLU between them (then SE, if any), the shortcut `downsample` or the identity.
/// Names: `conv1`, `bn1`, `conv2`, `bn2` (`conv3`, `bn3`), `se`, `downsample.0`/`.1`.
pub struct ResBlock {
    /// The branch's convolutions and batch norms, in order.
    pub convs: Vec<(Conv2d, BatchNorm2d)>,
    /// Channel reweighting of the branch, in SE-ResNets.
    pub se: Option<SqueezeExcitation>,
    /// 1×1 strided projection and batch norm, when the shape changes.
    pub downsample: Option<Sequential>,
}

impl ResBlock {
    /// A block from `c_in` channels with `planes` (`planes · expansion` out), first
    /// convolution strided by `stride` (the 3×3 one in bottlenecks, as torchvision).
    pub fn new(
        kind: BlockKind,
        c_in: usize,
        planes: usize,
        stride: usize,
        se: bool,
        g: &mut Generator,
    ) -> Result<ResBlock> {
        let c_out = planes * kind.expansion();
        // (in, out, kernel, stride, padding) of each convolution.
        let shapes = match kind {
            BlockKind::Basic => vec![(c_in, planes, 3, stride, 1), (planes, planes, 3, 1, 1)],
            BlockKind::Bottleneck => vec![
                (c_in, planes, 1, 1, 0),
                (planes, planes, 3, stride, 1),
                (planes, c_out, 1, 1, 0),
            ],
        };
        let mut convs = Vec::with_capacity(shapes.len());
        for (i, o, k, s, p) in shapes {
            let c = conv(i, o, SquareConv::new(k).stride(s).padding(p).no_bias(), g)?;
            kaiming_conv(&c, g)?;
            convs.push((c, batch_norm(o, 1e-5)));
        }
        let se = se.then(|| SqueezeExcitation::new(c_out, (c_out / 16).max(1), g));
        let downsample = if stride != 1 || c_in != c_out {
            let c = conv(c_in, c_out, SquareConv::new(1).stride(stride).no_bias(), g)?;
            kaiming_conv(&c, g)?;
            Some(Sequential::new().push(c).push(batch_norm(c_out, 1e-5)))
        } else {
            None
        };
        Ok(ResBlock { convs, se, downsample })
    }
}

impl Module for ResBlock {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut y = x.clone();
        let last = self.convs.len().saturating_sub(1);
        for (i, (c, bn)) in self.convs.iter().enumerate() {
            y = c.forward_named(&format!("conv{}", i + 1), &y, mode)?;
            y = bn.forward_named(&format!("bn{}", i + 1), &y, mode)?;
            if i != last {
                y = y.relu()?;
            }
        }
        if let Some(se) = &self.se {
            y = se.forward_named("se", &y, mode)?;
        }
        let shortcut = match &self.downsample {
            Some(d) => d.forward_named("downsample", x, mode)?,
            None => x.clone(),
        };
        Ok(y.add(&shortcut)?.relu()?)
    }

    fn children(&self, c: &mut Children) {
        for (i, (conv, bn)) in self.convs.iter().enumerate() {
            c.module(&format!("conv{}", i + 1), conv);
            c.module(&format!("bn{}", i + 1), bn);
        }
        c.module_opt("se", &self.se);
        c.module_opt("downsample", &self.downsample);
    }

    fn describe(&self) -> String {
        let kind = if self.convs.len() == 2 {
            "BasicBlock"
        } else {
            "Bottleneck"
        };
        match (self.convs.first(), self.convs.last()) {
            (Some((first, _)), Some((last, _))) => {
                format!("{kind} {}→{}", first.in_channels(), last.out_channels())
            }
            _ => kind.to_string(),
        }
    }
}

/// A ResNet: stem (`conv1`, `bn1`, ReLU, `maxpool`), `layer1`..`layer4`, global average
/// pooling, `fc`.
pub struct ResNet {
    /// Stem convolution (7×7 stride 2, or 3×3 stride 1 for small inputs), no bias.
    pub conv1: Conv2d,
    /// Stem batch norm.
    pub bn1: BatchNorm2d,
    /// 3×3 stride-2 max pooling (absent for small inputs).
    pub maxpool: Option<MaxPool2d>,
    /// The four stages, each a Sequential of [`ResBlock`]s.
    pub layers: [Sequential; 4],
    /// Classifier over the pooled features; `None` makes the network a feature extractor
    /// (see [`ResNet::without_fc`]).
    pub fc: Option<Linear>,
    feature_width: usize,
    name: String,
}

impl ResNet {
    /// A ResNet as `spec` says for `in_channels` inputs and `num_classes` outputs,
    /// initialized as torchvision (Kaiming-normal fan-out convolutions, unit batch norms).
    pub fn new(spec: &ResNetSpec, in_channels: usize, num_classes: usize, g: &mut Generator) -> Result<ResNet> {
        check_positive("resnet", "in_channels", in_channels)?;
        check_positive("resnet", "num_classes", num_classes)?;
        if spec.layers.contains(&0) {
            return Err(Error::Config(format!(
                "resnet: every stage needs a block, got {:?}",
                spec.layers
            )));
        }
        let conv1 = if spec.small_input {
            conv(in_channels, 64, SquareConv::new(3).padding(1).no_bias(), g)?
        } else {
            conv(in_channels, 64, SquareConv::new(7).stride(2).padding(3).no_bias(), g)?
        };
        kaiming_conv(&conv1, g)?;
        let maxpool = (!spec.small_input).then(|| {
            MaxPool2d::with_options(Pool2dOptions {
                kernel: [3, 3],
                stride: [2, 2],
                padding: [1, 1],
                ceil_mode: false,
            })
        });
        let mut c_in = 64;
        let mut stage = |planes: usize, blocks: usize, stride: usize, g: &mut Generator| {
            let mut seq = Sequential::new();
            for b in 0..blocks {
                let s = if b == 0 { stride } else { 1 };
                seq = seq.push(ResBlock::new(spec.block, c_in, planes, s, spec.se, g)?);
                c_in = planes * spec.block.expansion();
            }
            Ok::<_, Error>(seq)
        };
        let layers = [
            stage(64, spec.layers[0], 1, g)?,
            stage(128, spec.layers[1], 2, g)?,
            stage(256, spec.layers[2], 2, g)?,
            stage(512, spec.layers[3], 2, g)?,
        ];
        let per_block = match spec.block {
            BlockKind::Basic => 2,
            BlockKind::Bottleneck => 3,
        };
        let depth = spec.layers.iter().sum::<usize>() * per_block + 2;
        Ok(ResNet {
            conv1,
            bn1: batch_norm(64, 1e-5),
            maxpool,
            layers,
            fc: Some(Linear::new(512 * spec.block.expansion(), num_classes, g)),
            feature_width: 512 * spec.block.expansion(),
            name: format!("{}ResNet-{depth}", if spec.se { "SE-" } else { "" }),
        })
    }

    /// This network without `fc`: its forward gives the pooled features (torchvision's
    /// `model.fc = nn.Identity()`).
    pub fn without_fc(mut self) -> ResNet {
        self.fc = None;
        self
    }

    /// Width of the pooled features: 512 for basic blocks, 2048 for bottlenecks.
    pub fn num_features(&self) -> usize {
        self.feature_width
    }

    /// The pooled features `[N, 512·expansion]` that `fc` classifies.
    pub fn forward_features(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut y = self.conv1.forward_named("conv1", x, mode)?;
        y = self.bn1.forward_named("bn1", &y, mode)?.relu()?;
        if let Some(p) = &self.maxpool {
            y = p.forward_named("maxpool", &y, mode)?;
        }
        for (i, layer) in self.layers.iter().enumerate() {
            y = layer.forward_named(&format!("layer{}", i + 1), &y, mode)?;
        }
        Ok(y.mean(&[2, 3], false)?)
    }
}

impl Module for ResNet {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = self.forward_features(x, mode)?;
        match &self.fc {
            Some(fc) => fc.forward_named("fc", &y, mode),
            None => Ok(y),
        }
    }

    fn children(&self, c: &mut Children) {
        c.module("conv1", &self.conv1);
        c.module("bn1", &self.bn1);
        c.module_opt("maxpool", &self.maxpool);
        for (i, layer) in self.layers.iter().enumerate() {
            c.module(&format!("layer{}", i + 1), layer);
        }
        c.module_opt("fc", &self.fc);
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
