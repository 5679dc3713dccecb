//! GoogLeNet / Inception v1 (Szegedy et al., 2014) with torchvision's structure and names:
//! `BasicConv2d` (`conv` without bias, `bn` with ε = 0.001, ReLU), inception blocks with
//! four branches (`branch1` .. `branch4`; the "5×5" branch uses a 3×3 convolution, as
//! torchvision does), max pooling in ceil mode, dropout 0.2 and `fc`. No input transform
//! (torchvision's `transform_input=False`).
//!
//! The auxiliary heads (`aux1` after `inception4a`, `aux2` after `inception4d`) exist in
//! the "aux" variant. [`Module::forward`] returns the main logits only;
//! [`GoogLeNet::forward_aux`] also returns the heads' logits, to train them
//! (torchvision weighs each by 0.3).
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_models::{build, ModelConfig};
//! use nabla_nn::{Mode, Module};
//! let cfg = ModelConfig { in_channels: 3, input_size: [32, 32], small_input: true, ..Default::default() };
//! let net = build("googlenet", &cfg)?;
//! assert_eq!(net.forward(&Tensor::zeros(&[1, 3, 32, 32], DType::F32), Mode::Eval)?.shape(), &[1, 10]);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::layers::{batch_norm, check_positive, conv, MaxPool2d, SquareConv};
use nabla_core::{Generator, Pool2dOptions, Tensor};
use nabla_nn::init;
use nabla_nn::{BatchNorm2d, Children, Conv2d, Dropout, Linear, Mode, Module, Result, Sequential};

/// torchvision's initialization of GoogLeNet's weights: N(0, 0.01) truncated at ±2 (a bound
/// 200 standard deviations out, so a plain normal draw is the same distribution).
const INIT_STD: f64 = 0.01;

/// Convolution without bias, batch norm (ε = 0.001), ReLU. Names: `conv`, `bn`.
pub struct BasicConv2d {
    /// The convolution.
    pub conv: Conv2d,
    /// Its batch norm.
    pub bn: BatchNorm2d,
}

impl BasicConv2d {
    /// A `k×k` block with the given stride and padding.
    pub fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
        g: &mut Generator,
    ) -> Result<BasicConv2d> {
        let c = conv(
            c_in,
            c_out,
            SquareConv::new(k).stride(stride).padding(padding).no_bias(),
            g,
        )?;
        init::normal_(&c.weight.leaf(), 0.0, INIT_STD, g)?;
        Ok(BasicConv2d {
            conv: c,
            bn: batch_norm(c_out, 1e-3),
        })
    }
}

impl Module for BasicConv2d {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = self.conv.forward_named("conv", x, mode)?;
        Ok(self.bn.forward_named("bn", &y, mode)?.relu()?)
    }
    fn children(&self, c: &mut Children) {
        c.module("conv", &self.conv);
        c.module("bn", &self.bn);
    }
    fn describe(&self) -> String {
        format!("BasicConv2d {}→{}", self.conv.in_channels(), self.conv.out_channels())
    }
}

/// An inception block: 1×1; 1×1 then 3×3; 1×1 then 3×3; 3×3 max pool then 1×1, the four
/// outputs concatenated along channels.
pub struct Inception {
    /// The four branches (`branch1` .. `branch4`).
    pub branches: [Box<dyn Module>; 4],
}

impl Inception {
    /// torchvision's `Inception(in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)`.
    pub fn new(c_in: usize, ch: [usize; 6], g: &mut Generator) -> Result<Inception> {
        let [c1, c3r, c3, c5r, c5, cp] = ch;
        let b1 = BasicConv2d::new(c_in, c1, 1, 1, 0, g)?;
        let b2 = Sequential::new()
            .push(BasicConv2d::new(c_in, c3r, 1, 1, 0, g)?)
            .push(BasicConv2d::new(c3r, c3, 3, 1, 1, g)?);
        let b3 = Sequential::new()
            .push(BasicConv2d::new(c_in, c5r, 1, 1, 0, g)?)
            .push(BasicConv2d::new(c5r, c5, 3, 1, 1, g)?);
        let pool = MaxPool2d::with_options(Pool2dOptions {
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            ceil_mode: true,
        });
        let b4 = Sequential::new()
            .push(pool)
            .push(BasicConv2d::new(c_in, cp, 1, 1, 0, g)?);
        Ok(Inception {
            branches: [Box::new(b1), Box::new(b2), Box::new(b3), Box::new(b4)],
        })
    }
}

impl Module for Inception {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut outs = Vec::with_capacity(4);
        for (i, b) in self.branches.iter().enumerate() {
            outs.push(b.forward_named(&format!("branch{}", i + 1), x, mode)?);
        }
        let refs: Vec<&Tensor> = outs.iter().collect();
        Ok(Tensor::cat(&refs, 1)?)
    }
    fn children(&self, c: &mut Children) {
        for (i, b) in self.branches.iter().enumerate() {
            c.module(&format!("branch{}", i + 1), &**b);
        }
    }
}

/// An auxiliary classifier: adaptive average pool to 4×4, `conv` (1×1 to 128), `fc1`
/// (2048 → 1024), ReLU, dropout 0.7, `fc2`.
pub struct InceptionAux {
    /// 1×1 reduction to 128 channels.
    pub conv: BasicConv2d,
    /// 2048 → 1024.
    pub fc1: Linear,
    /// 1024 → classes.
    pub fc2: Linear,
    dropout: Dropout,
}

impl InceptionAux {
    /// A head over `c_in` channels.
    pub fn new(c_in: usize, num_classes: usize, g: &mut Generator) -> Result<InceptionAux> {
        let conv = BasicConv2d::new(c_in, 128, 1, 1, 0, g)?;
        let fc1 = Linear::new(2048, 1024, g);
        let fc2 = Linear::new(1024, num_classes, g);
        for l in [&fc1, &fc2] {
            init::normal_(&l.weight.leaf(), 0.0, INIT_STD, g)?;
        }
        Ok(InceptionAux {
            conv,
            fc1,
            fc2,
            dropout: Dropout::new(0.7, g),
        })
    }
}

impl Module for InceptionAux {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = x.adaptive_avg_pool2d([4, 4])?;
        let y = self.conv.forward_named("conv", &y, mode)?.flatten(1, -1)?;
        let y = self.fc1.forward_named("fc1", &y, mode)?.relu()?;
        let y = self.dropout.forward_named("dropout", &y, mode)?;
        self.fc2.forward_named("fc2", &y, mode)
    }
    fn children(&self, c: &mut Children) {
        c.module("conv", &self.conv);
        c.module("fc1", &self.fc1);
        c.module("fc2", &self.fc2);
        c.module("dropout", &self.dropout);
    }
}

/// GoogLeNet. The stem and inception stages are one ordered list of named children.
pub struct GoogLeNet {
    /// `conv1`, `maxpool1`, `conv2`, `conv3`, `maxpool2`, `inception3a`, ... `inception5b`.
    pub stages: Vec<(&'static str, Box<dyn Module>)>,
    /// Auxiliary heads `aux1` (on `inception4a`) and `aux2` (on `inception4d`), if built.
    pub aux: Option<[InceptionAux; 2]>,
    /// 1024 → classes.
    pub fc: Linear,
    dropout: Dropout,
}

/// Logits of GoogLeNet and of its auxiliary heads (`None` without them).
pub struct GoogLeNetOutputs {
    /// The main classifier's logits.
    pub logits: Tensor,
    /// `aux1`'s logits.
    pub aux1: Option<Tensor>,
    /// `aux2`'s logits.
    pub aux2: Option<Tensor>,
}

impl GoogLeNet {
    /// GoogLeNet for `in_channels` inputs and `num_classes` outputs, with the auxiliary
    /// heads if `aux`; `small_input` makes the stem a 3×3 stride-1 convolution without the
    /// first max pooling (for 28×28 and 32×32 images).
    pub fn new(
        in_channels: usize,
        num_classes: usize,
        aux: bool,
        small_input: bool,
        g: &mut Generator,
    ) -> Result<GoogLeNet> {
        check_positive("googlenet", "in_channels", in_channels)?;
        check_positive("googlenet", "num_classes", num_classes)?;
        let pool = |k: usize| -> Box<dyn Module> {
            Box::new(MaxPool2d::with_options(Pool2dOptions {
                kernel: [k, k],
                stride: [2, 2],
                padding: [0, 0],
                ceil_mode: true,
            }))
        };
        let stem: Box<dyn Module> = if small_input {
            Box::new(BasicConv2d::new(in_channels, 64, 3, 1, 1, g)?)
        } else {
            Box::new(BasicConv2d::new(in_channels, 64, 7, 2, 3, g)?)
        };
        let mut stages: Vec<(&'static str, Box<dyn Module>)> = vec![("conv1", stem)];
        if !small_input {
            stages.push(("maxpool1", pool(3)));
        }
        stages.push(("conv2", Box::new(BasicConv2d::new(64, 64, 1, 1, 0, g)?)));
        stages.push(("conv3", Box::new(BasicConv2d::new(64, 192, 3, 1, 1, g)?)));
        stages.push(("maxpool2", pool(3)));
        let blocks: [(&'static str, usize, [usize; 6]); 9] = [
            ("inception3a", 192, [64, 96, 128, 16, 32, 32]),
            ("inception3b", 256, [128, 128, 192, 32, 96, 64]),
            ("inception4a", 480, [192, 96, 208, 16, 48, 64]),
            ("inception4b", 512, [160, 112, 224, 24, 64, 64]),
            ("inception4c", 512, [128, 128, 256, 24, 64, 64]),
            ("inception4d", 512, [112, 144, 288, 32, 64, 64]),
            ("inception4e", 528, [256, 160, 320, 32, 128, 128]),
            ("inception5a", 832, [256, 160, 320, 32, 128, 128]),
            ("inception5b", 832, [384, 192, 384, 48, 128, 128]),
        ];
        for (name, c_in, ch) in blocks {
            stages.push((name, Box::new(Inception::new(c_in, ch, g)?)));
            match name {
                "inception3b" => stages.push(("maxpool3", pool(3))),
                "inception4e" => stages.push(("maxpool4", pool(2))),
                _ => {}
            }
        }
        let aux = if aux {
            Some([
                InceptionAux::new(512, num_classes, g)?,
                InceptionAux::new(528, num_classes, g)?,
            ])
        } else {
            None
        };
        let fc = Linear::new(1024, num_classes, g);
        init::normal_(&fc.weight.leaf(), 0.0, INIT_STD, g)?;
        Ok(GoogLeNet {
            stages,
            aux,
            fc,
            dropout: Dropout::new(0.2, g),
        })
    }

    /// The main logits and, when the heads exist and `mode` is training, the heads' logits
    /// (torchvision computes them in training only).
    pub fn forward_aux(&self, x: &Tensor, mode: Mode) -> Result<GoogLeNetOutputs> {
        self.run(x, mode, mode.is_train())
    }

    fn run(&self, x: &Tensor, mode: Mode, heads: bool) -> Result<GoogLeNetOutputs> {
        let mut y = x.clone();
        let (mut aux1, mut aux2) = (None, None);
        for (name, m) in &self.stages {
            y = m.forward_named(name, &y, mode)?;
            if let (Some([a1, a2]), true) = (&self.aux, heads) {
                match *name {
                    "inception4a" => aux1 = Some(a1.forward_named("aux1", &y, mode)?),
                    "inception4d" => aux2 = Some(a2.forward_named("aux2", &y, mode)?),
                    _ => {}
                }
            }
        }
        // Global average pooling (torchvision's `avgpool`), then `dropout` and `fc`.
        let y = y.mean(&[2, 3], false)?;
        let y = self.dropout.forward_named("dropout", &y, mode)?;
        let logits = self.fc.forward_named("fc", &y, mode)?;
        Ok(GoogLeNetOutputs { logits, aux1, aux2 })
    }
}

impl Module for GoogLeNet {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        // The heads only feed the training loss, so plain forwards skip them.
        Ok(self.run(x, mode, false)?.logits)
    }

    fn children(&self, c: &mut Children) {
        for (name, m) in &self.stages {
            c.module(name, &**m);
        }
        if let Some([a1, a2]) = &self.aux {
            c.module("aux1", a1);
            c.module("aux2", a2);
        }
        c.module("dropout", &self.dropout);
        c.module("fc", &self.fc);
    }

    fn describe(&self) -> String {
        "GoogLeNet".to_string()
    }
}
