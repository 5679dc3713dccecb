//! The model families `nabla finetune` knows, and what it needs of each: the classifier head
//! it replaces, the last block(s) `--strategy top` trains, the stages `--probe-layer` and
//! `nabla features` read, and a forward pass that stops at a stage.
//!
//! | family | head | top | stages |
//! |---|---|---|---|
//! | LeNet-5, AlexNet, ZFNet, VGG (`ConvNet`) | last `classifier.N` | `classifier` | each pooling `features.N`, each activation after a hidden linear `classifier.N` |
//! | ResNet | `fc` | `layer4` | `layer1` .. `layer4` |
//! | MLP | last `layers.N` | the last hidden `layers.N` | each hidden activation `layers.N` |
//!
//! A stage's output is globally average-pooled when it is a feature map (`[N, C, H, W]` →
//! `[N, C]`), so a linear probe on it has one input per channel.

use crate::error::{CliError, CliResult};
use nabla_core::Tensor;
use nabla_models::{ConvNet, Mlp, ModelConfig, ResNet};
use nabla_nn::{AdaptiveAvgPool2d, Children, Mode, Module, Param, Sequential};
use std::sync::Mutex;

/// A zoo model of a family finetune knows.
pub enum Body {
    /// LeNet-5, AlexNet, ZFNet, VGG.
    Conv(ConvNet),
    /// The ResNets.
    Res(Box<ResNet>),
    /// The multilayer perceptron.
    Mlp(Mlp),
}

impl Body {
    /// Build `name` from the zoo as `mc` says; a model of another family is refused.
    pub fn build(name: &str, mc: &ModelConfig) -> CliResult<Body> {
        let conv = name == "lenet5" || name.starts_with("alexnet") || name == "zfnet" || name.starts_with("vgg");
        if !nabla_models::names().contains(&name) {
            return Err(CliError::new(format!(
                "unknown model {name:?} (known: {})",
                nabla_models::names().join(", ")
            )));
        }
        Ok(if conv {
            Body::Conv(nabla_models::build_convnet(name, mc)?)
        } else if name.contains("resnet") {
            Body::Res(Box::new(nabla_models::build_resnet(name, mc)?))
        } else if name == "mlp" {
            Body::Mlp(nabla_models::build_mlp(name, mc)?)
        } else {
            return Err(CliError::new(format!(
                "--model {name}: finetune knows the classifier families lenet5, alexnet, zfnet, vgg*, resnet* \
                 and mlp"
            )));
        })
    }

    fn seq(&self) -> (&Sequential, &'static str) {
        match self {
            Body::Conv(n) => (&n.classifier, "classifier"),
            Body::Mlp(m) => (&m.layers, "layers"),
            Body::Res(n) => (&n.layers[3], "layer4"),
        }
    }

    /// The name of the classifier head (the module `fc`, `classifier.6`, ...).
    pub fn head(&self) -> String {
        match self {
            Body::Res(_) => "fc".into(),
            _ => {
                let (s, name) = self.seq();
                format!("{name}.{}", s.len() - 1)
            }
        }
    }

    /// The last block(s) `--strategy top` trains besides the head.
    pub fn top(&self) -> Vec<String> {
        match self {
            Body::Conv(_) => vec!["classifier".into()],
            Body::Res(_) => vec!["layer4".into()],
            // The hidden linear before the head's activation; none for a linear model.
            Body::Mlp(m) => match m.layers.len() {
                n if n >= 3 => vec![format!("layers.{}", n - 3)],
                _ => vec![],
            },
        }
    }

    /// The stages a probe or `nabla features` can read, from the input upwards; the last
    /// one feeds the head.
    pub fn stages(&self) -> Vec<String> {
        let after_linear = |s: &Sequential, name: &str| -> Vec<String> {
            (1..s.len())
                .filter(|&i| {
                    let (m, prev) = (s.get(i), s.get(i - 1));
                    m.is_some_and(|m| m.num_parameters() == 0) && prev.is_some_and(|p| p.num_parameters() > 0)
                })
                .map(|i| format!("{name}.{i}"))
                .collect()
        };
        match self {
            Body::Conv(n) => {
                let pools = (0..n.features.len())
                    .filter(|&i| n.features.get(i).is_some_and(|m| m.describe().contains("Pool")))
                    .map(|i| format!("features.{i}"));
                pools.chain(after_linear(&n.classifier, "classifier")).collect()
            }
            Body::Res(_) => (1..=4).map(|i| format!("layer{i}")).collect(),
            Body::Mlp(m) => after_linear(&m.layers, "layers"),
        }
    }

    /// Check that `stage` is one of [`Body::stages`].
    pub fn check_stage(&self, stage: &str, flag: &str) -> CliResult<()> {
        let stages = self.stages();
        if stages.iter().any(|s| s == stage) {
            return Ok(());
        }
        Err(CliError::new(format!(
            "{flag} {stage}: not a stage of this model (stages: {})",
            stages.join(", ")
        )))
    }

    /// The output of `stage` (`None`: the head's input) as `[N, D]`: a feature map is
    /// average-pooled to `pool`×`pool` (1: globally; PyTorch's `adaptive_avg_pool2d`
    /// windows) and flattened.
    pub fn forward_pooled(&self, x: &Tensor, stage: Option<&str>, pool: usize, mode: Mode) -> nabla_nn::Result<Tensor> {
        let stop = |name: &str| stage == Some(name);
        // Run `seq` (named `prefix`) up to and including the index a stage names, or up
        // to `end` (exclusive) with no stage there.
        let run = |seq: &Sequential, prefix: &str, x: Tensor, end: usize| -> nabla_nn::Result<(Tensor, bool)> {
            let mut y = x;
            for i in 0..end {
                let name = format!("{prefix}.{i}");
                if let Some(m) = seq.get(i) {
                    y = m.forward_named(&name, &y, mode)?;
                }
                if stop(&name) {
                    return Ok((y, true));
                }
            }
            Ok((y, false))
        };
        let y = match self {
            Body::Conv(n) => {
                let (y, done) = run(&n.features, "features", x.clone(), n.features.len())?;
                if done {
                    y
                } else {
                    let y = match &n.avgpool {
                        Some(p) => p.forward_named("avgpool", &y, mode)?,
                        None => y,
                    };
                    run(&n.classifier, "classifier", y.flatten(1, -1)?, n.classifier.len() - 1)?.0
                }
            }
            Body::Mlp(m) => {
                let x = if x.rank() > 2 { x.flatten(1, -1)? } else { x.clone() };
                run(&m.layers, "layers", x, m.layers.len() - 1)?.0
            }
            Body::Res(n) => {
                let mut y = n.conv1.forward_named("conv1", x, mode)?;
                y = n.bn1.forward_named("bn1", &y, mode)?.relu()?;
                if let Some(p) = &n.maxpool {
                    y = p.forward_named("maxpool", &y, mode)?;
                }
                for (i, layer) in n.layers.iter().enumerate() {
                    let name = format!("layer{}", i + 1);
                    y = layer.forward_named(&name, &y, mode)?;
                    if stop(&name) {
                        break;
                    }
                }
                y
            }
        };
        match (y.rank(), pool) {
            (4, 1) => Ok(y.mean(&[2, 3], false)?),
            (4, p) => Ok(AdaptiveAvgPool2d::new([p, p]).forward(&y, mode)?.flatten(1, -1)?),
            _ => Ok(y),
        }
    }

    /// The head applied to its input ([`Body::forward_pooled`] with no stage).
    pub fn forward_head(&self, h: &Tensor, mode: Mode) -> nabla_nn::Result<Tensor> {
        match self {
            Body::Res(n) => match &n.fc {
                Some(fc) => fc.forward_named("fc", h, mode),
                None => Ok(h.clone()),
            },
            _ => {
                let (s, _) = self.seq();
                let last = s.len() - 1;
                match s.get(last) {
                    Some(m) => m.forward_named(&self.head(), h, mode),
                    None => Ok(h.clone()),
                }
            }
        }
    }

    fn inner(&self) -> &dyn Module {
        match self {
            Body::Conv(n) => n,
            Body::Res(n) => n.as_ref(),
            Body::Mlp(m) => m,
        }
    }
}

impl Module for Body {
    fn forward(&self, x: &Tensor, mode: Mode) -> nabla_nn::Result<Tensor> {
        self.inner().forward(x, mode)
    }
    fn children(&self, c: &mut Children) {
        self.inner().children(c)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        self.inner().visit(prefix, f)
    }
    fn visit_generators(&self, prefix: &str, f: &mut dyn FnMut(&str, &Mutex<nabla_core::Generator>)) {
        self.inner().visit_generators(prefix, f)
    }
    fn describe(&self) -> String {
        self.inner().describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::{DType, Generator};

    fn input(shape: &[usize]) -> Tensor {
        Tensor::randn(shape, DType::F32, &mut Generator::new(3))
    }

    #[test]
    fn the_head_on_the_top_stage_is_the_whole_network() {
        let mc = ModelConfig {
            num_classes: 4,
            hidden: vec![8, 6],
            ..Default::default()
        };
        for name in ["lenet5", "mlp"] {
            let b = Body::build(name, &mc).unwrap();
            let x = input(&[3, 1, 28, 28]);
            let whole = b.forward(&x, Mode::Eval).unwrap().to_vec_f64();
            let split = b
                .forward_head(&b.forward_pooled(&x, None, 1, Mode::Eval).unwrap(), Mode::Eval)
                .unwrap();
            assert_eq!(split.to_vec_f64(), whole, "{name}");
        }
        let lenet = Body::build("lenet5", &mc).unwrap();
        assert_eq!(lenet.head(), "classifier.4");
        assert_eq!(
            lenet.stages(),
            ["features.2", "features.5", "classifier.1", "classifier.3"]
        );
        let shapes: Vec<Vec<usize>> = lenet
            .stages()
            .iter()
            .map(|s| {
                lenet
                    .forward_pooled(&input(&[2, 1, 28, 28]), Some(s), 1, Mode::Eval)
                    .unwrap()
                    .shape()
                    .to_vec()
            })
            .collect();
        assert_eq!(shapes, [vec![2, 6], vec![2, 16], vec![2, 120], vec![2, 84]]);
        // Pooled to 2×2 instead (14×14 maps: four 7×7 windows): four numbers per channel,
        // whose mean is the global pool's.
        let x = input(&[2, 1, 28, 28]);
        let four = lenet.forward_pooled(&x, Some("features.2"), 2, Mode::Eval).unwrap();
        assert_eq!(four.shape(), &[2, 24]);
        let global = lenet
            .forward_pooled(&x, Some("features.2"), 1, Mode::Eval)
            .unwrap()
            .to_vec_f64();
        let f = four.to_vec_f64();
        for (i, g) in global.iter().enumerate() {
            let m = f[4 * i..4 * i + 4].iter().sum::<f64>() / 4.0;
            assert!((m - g).abs() < 1e-5 * (1.0 + g.abs()), "{i}: {m} vs {g}");
        }
        let mlp = Body::build("mlp", &mc).unwrap();
        assert_eq!(
            (mlp.head(), mlp.top(), mlp.stages()),
            (
                "layers.4".into(),
                vec!["layers.2".into()],
                vec!["layers.1".into(), "layers.3".into()]
            )
        );
    }

    #[test]
    fn resnet_stages_and_head() {
        let mc = ModelConfig {
            num_classes: 3,
            in_channels: 1,
            input_size: [16, 16],
            small_input: true,
            ..Default::default()
        };
        let b = Body::build("resnet18", &mc).unwrap();
        let x = input(&[2, 1, 16, 16]);
        let whole = b.forward(&x, Mode::Eval).unwrap().to_vec_f64();
        let split = b
            .forward_head(&b.forward_pooled(&x, None, 1, Mode::Eval).unwrap(), Mode::Eval)
            .unwrap();
        assert_eq!(split.to_vec_f64(), whole);
        assert_eq!(
            b.forward_pooled(&x, Some("layer2"), 1, Mode::Eval).unwrap().shape(),
            &[2, 128]
        );
        assert_eq!((b.head(), b.top()), ("fc".into(), vec!["layer4".into()]));
        assert!(Body::build("segnet", &mc).is_err());
    }
}
