//! Models by name: [`ModelConfig`] says what to build, [`build`] builds it, [`names`] lists
//! what can be built. This is the contract the `nabla` command line relies on.
//!
//! [`build`] gives a `Box<dyn Module>`. To reach a model's own methods, build its concrete
//! type from the same name and config (same weights): [`build_mlp`], [`build_convnet`]
//! (LeNet-5, AlexNets, VGGs), [`build_resnet`], [`build_googlenet`], [`build_segnet`], [`build_fcn`],
//! [`build_classloc`], [`build_fasterrcnn`], [`build_dcgan_generator`], [`build_dcgan_discriminator`] and
//! [`crate::autoencoder::build_autoencoder`].
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_models::{build, build_resnet, ModelConfig};
//! use nabla_nn::{Mode, Module};
//! let cfg = ModelConfig { in_channels: 3, input_size: [32, 32], small_input: true, ..Default::default() };
//! let net = build_resnet("resnet18", &cfg)?;
//! let x = Tensor::zeros(&[1, 3, 32, 32], DType::F32);
//! assert_eq!(net.forward_features(&x, Mode::Eval)?.shape(), &[1, 512]);
//! assert_eq!(net.state_dict()[0].1.to_vec_f32(), build("resnet18", &cfg)?.state_dict()[0].1.to_vec_f32());
//! # Ok::<(), nabla_nn::Error>(())
//! ```
//!
//! ```
//! use nabla_models::{build, names, ModelConfig};
//! use nabla_nn::Module;
//! assert!(names().contains(&"lenet5"));
//! let cfg = ModelConfig { variant: Some("classic".into()), ..Default::default() };
//! assert_eq!(build("lenet5", &cfg)?.num_parameters(), 61_706);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::alexnet::{alexnet_like, alexnet_torchvision, AlexNetSpec};
use crate::autoencoder::autoencoder;
use crate::classloc::ClassLoc;
use crate::dcgan::{DcganDiscriminator, DcganGenerator};
use crate::fasterrcnn::{DetBackbone, FasterRcnn, FasterRcnnConfig};
use crate::fcn::Fcn;
use crate::googlenet::GoogLeNet;
use crate::lenet::{lenet5, LeNetVariant};
use crate::mlp::Mlp;
use crate::resnet::{ResNet, ResNetSpec};
use crate::segnet::SegNet;
use crate::vgg::vgg;
use crate::ConvNet;
use nabla_core::Generator;
use nabla_nn::{Error, Module, Result};

/// What to build: sizes of the data, the head, and the choices some models offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// Number of output classes (1 for a regression output).
    pub num_classes: usize,
    /// Channels of the input images (1 for grayscale, 3 for RGB).
    pub in_channels: usize,
    /// Height and width of the inputs.
    pub input_size: [usize; 2],
    /// Adapt ImageNet models to 28×28 / 32×32 inputs (e.g. a 3×3 stride-1 ResNet stem).
    pub small_input: bool,
    /// Hidden widths of MLPs and autoencoders (an autoencoder's last entry is its latent
    /// size); the generator's latent size is `hidden[0]` (100 when empty).
    pub hidden: Vec<usize>,
    /// Activation of MLPs and autoencoders: relu, tanh, sigmoid, gelu, leaky_relu, elu,
    /// softplus, identity.
    pub activation: String,
    /// Seed of the weight initialization (and of dropout's masks).
    pub seed: u64,
    /// A model-specific variant: "classic"/"modern" LeNet-5, "aux" GoogLeNet heads,
    /// "critic" (no batch norm) DCGAN discriminator,
    /// "small"/"spatial"/"resnet18" classloc backbones, "small"/"resnet18" fasterrcnn_small
    /// backbones; other models have none (setting one is an
    /// error).
    pub variant: Option<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            num_classes: 10,
            in_channels: 1,
            input_size: [28, 28],
            small_input: false,
            hidden: vec![256],
            activation: "relu".to_string(),
            seed: 0,
            variant: None,
        }
    }
}

/// How each model is made from its name, a config and a seeded generator.
type Builder = fn(&str, &ModelConfig, &mut Generator) -> Result<Box<dyn Module>>;

/// Every model with its builder, in the order [`names`] lists them. Each boxes a typed
/// builder below, so [`build`] and the `build_*` functions give the same weights.
const MODELS: &[(&str, Builder)] = &[
    ("mlp", |n, c, g| Ok(Box::new(mlp(n, c, g)?))),
    ("lenet5", boxed_convnet),
    ("mlp_autoencoder", |n, c, g| Ok(autoencoder(n, c, g)?)),
    ("conv_autoencoder", |n, c, g| Ok(autoencoder(n, c, g)?)),
    ("alexnet", boxed_convnet),
    ("alexnet_torchvision", boxed_convnet),
    ("zfnet", boxed_convnet),
    ("vgg11", boxed_convnet),
    ("vgg13", boxed_convnet),
    ("vgg16", boxed_convnet),
    ("vgg19", boxed_convnet),
    ("vgg11_bn", boxed_convnet),
    ("vgg13_bn", boxed_convnet),
    ("vgg16_bn", boxed_convnet),
    ("vgg19_bn", boxed_convnet),
    ("googlenet", |n, c, g| Ok(Box::new(googlenet(n, c, g)?))),
    ("resnet18", boxed_resnet),
    ("resnet34", boxed_resnet),
    ("resnet50", boxed_resnet),
    ("resnet101", boxed_resnet),
    ("resnet152", boxed_resnet),
    ("se_resnet18", boxed_resnet),
    ("se_resnet50", boxed_resnet),
    ("segnet", |n, c, g| Ok(Box::new(segnet(n, c, g)?))),
    ("fcn_small", |n, c, g| Ok(Box::new(fcn(n, c, g)?))),
    ("classloc", |n, c, g| Ok(Box::new(classloc(n, c, g)?))),
    ("fasterrcnn_small", |n, c, g| Ok(Box::new(fasterrcnn(n, c, g)?))),
    ("generator", |n, c, g| Ok(Box::new(dcgan_generator(n, c, g)?))),
    ("discriminator", |n, c, g| Ok(Box::new(dcgan_discriminator(n, c, g)?))),
];

fn boxed_convnet(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Box<dyn Module>> {
    Ok(Box::new(convnet(name, cfg, g)?))
}

fn boxed_resnet(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Box<dyn Module>> {
    Ok(Box::new(resnet(name, cfg, g)?))
}

/// The names [`build`] knows: mlp, lenet5, mlp_autoencoder, conv_autoencoder, alexnet,
/// alexnet_torchvision, zfnet, vgg11/13/16/19 and their _bn versions, googlenet,
/// resnet18/34/50/101/152, se_resnet18, se_resnet50, segnet, fcn_small, classloc,
/// fasterrcnn_small, generator, discriminator.
pub fn names() -> Vec<&'static str> {
    MODELS.iter().map(|(n, _)| *n).collect()
}

/// Build the model `name` as `cfg` says, initialized from `cfg.seed`. An unknown name, a
/// variant the model does not have, or sizes it cannot take give [`Error::Config`].
pub fn build(name: &str, cfg: &ModelConfig) -> Result<Box<dyn Module>> {
    let Some((_, make)) = MODELS.iter().find(|(n, _)| *n == name) else {
        return Err(Error::Config(format!(
            "unknown model {name:?}; known: {}",
            names().join(", ")
        )));
    };
    let mut g = Generator::new(cfg.seed);
    make(name, cfg, &mut g)
}

/// Fail when `cfg.variant` is set for a model that has none.
pub(crate) fn no_variant(model: &str, cfg: &ModelConfig) -> Result<()> {
    match &cfg.variant {
        Some(v) => Err(Error::Config(format!("{model}: unknown variant {v:?}; it has none"))),
        None => Ok(()),
    }
}

/// `C·H·W` of the configured input, checked for overflow.
pub(crate) fn input_features(model: &str, cfg: &ModelConfig) -> Result<usize> {
    let [h, w] = cfg.input_size;
    cfg.in_channels
        .checked_mul(h)
        .and_then(|v| v.checked_mul(w))
        .filter(|&v| v > 0)
        .ok_or_else(|| {
            Error::Config(format!(
                "{model}: input {}×{h}×{w} must be non-empty and fit in memory",
                cfg.in_channels
            ))
        })
}

/// A model's concrete type from a name and config: the same weights as [`build`] gives
/// for it, with the type's own methods (`forward_features`, `forward_aux`, `without_fc`)
/// in reach. `$name` and `$inner` are the public and the generator-taking builders.
macro_rules! typed {
    ($(#[$doc:meta])* $name:ident, $inner:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $name(name: &str, cfg: &ModelConfig) -> Result<$ty> {
            $inner(name, cfg, &mut Generator::new(cfg.seed))
        }
    };
}

typed!(
    /// `mlp` as an [`Mlp`].
    build_mlp, mlp, Mlp
);
typed!(
    /// `lenet5`, `alexnet`, `alexnet_torchvision`, `zfnet` and the VGGs as a [`ConvNet`]
    /// (`features`, `avgpool`, `classifier`; [`ConvNet::forward_features`]).
    build_convnet, convnet, ConvNet
);
typed!(
    /// `resnet18` .. `resnet152`, `se_resnet18`, `se_resnet50` as a [`ResNet`]
    /// ([`ResNet::forward_features`], [`ResNet::without_fc`]).
    build_resnet, resnet, ResNet
);
typed!(
    /// `googlenet` as a [`GoogLeNet`] ([`GoogLeNet::forward_aux`]).
    build_googlenet, googlenet, GoogLeNet
);
typed!(
    /// `segnet` as a [`SegNet`].
    build_segnet, segnet, SegNet
);
typed!(
    /// `fcn_small` as an [`Fcn`].
    build_fcn, fcn, Fcn
);
typed!(
    /// `classloc` as a [`ClassLoc`] ([`ClassLoc::forward2`]).
    build_classloc, classloc, ClassLoc
);
typed!(
    /// `fasterrcnn_small` as a [`FasterRcnn`] ([`FasterRcnn::losses`], [`FasterRcnn::detect`]),
    /// with [`FasterRcnnConfig`]'s defaults for everything `cfg` does not say.
    build_fasterrcnn, fasterrcnn, FasterRcnn
);
typed!(
    /// `generator` as a [`DcganGenerator`].
    build_dcgan_generator, dcgan_generator, DcganGenerator
);
typed!(
    /// `discriminator` as a [`DcganDiscriminator`].
    build_dcgan_discriminator, dcgan_discriminator, DcganDiscriminator
);

fn mlp(_: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Mlp> {
    no_variant("mlp", cfg)?;
    let d = input_features("mlp", cfg)?;
    Mlp::new(d, &cfg.hidden, cfg.num_classes, &cfg.activation, g)
}

fn convnet(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<ConvNet> {
    let (c, size, classes, small) = (cfg.in_channels, cfg.input_size, cfg.num_classes, cfg.small_input);
    if name == "lenet5" {
        let variant = LeNetVariant::parse(cfg.variant.as_deref())?;
        return lenet5(c, size, classes, variant, g);
    }
    no_variant(name, cfg)?;
    match name {
        "alexnet_torchvision" => return alexnet_torchvision(c, size, classes, small, g),
        "zfnet" => return alexnet_like(name, &AlexNetSpec::zfnet(small), c, size, classes, g),
        "alexnet" => return alexnet_like(name, &AlexNetSpec::alexnet(small), c, size, classes, g),
        _ => {}
    }
    let not_convnet = || Error::Config(format!("{name} is not a ConvNet model (lenet5, alexnet, zfnet, vgg)"));
    let rest = name.strip_prefix("vgg").ok_or_else(not_convnet)?;
    let (depth, bn) = match rest.strip_suffix("_bn") {
        Some(d) => (d, true),
        None => (rest, false),
    };
    let depth = depth.parse().map_err(|_| not_convnet())?;
    vgg(depth, bn, c, size, classes, small, g)
}

fn resnet(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<ResNet> {
    no_variant(name, cfg)?;
    let spec = ResNetSpec::named(name).ok_or_else(|| Error::Config(format!("{name} is not a ResNet")))?;
    let spec = ResNetSpec {
        small_input: cfg.small_input,
        ..spec
    };
    ResNet::new(&spec, cfg.in_channels, cfg.num_classes, g)
}

fn googlenet(_: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<GoogLeNet> {
    let aux = match cfg.variant.as_deref() {
        None => false,
        Some("aux") => true,
        Some(v) => return Err(Error::Config(format!("googlenet: unknown variant {v:?}; known: aux"))),
    };
    GoogLeNet::new(cfg.in_channels, cfg.num_classes, aux, cfg.small_input, g)
}

fn segnet(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<SegNet> {
    no_variant(name, cfg)?;
    SegNet::new(cfg.in_channels, cfg.num_classes, [32, 64, 128], g)
}

fn fcn(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Fcn> {
    no_variant(name, cfg)?;
    Fcn::new(cfg.in_channels, cfg.num_classes, [16, 32, 64, 64], g)
}

fn classloc(_: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<ClassLoc> {
    ClassLoc::from_config(cfg, g)
}

fn fasterrcnn(_: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<FasterRcnn> {
    let backbone = match cfg.variant.as_deref() {
        None | Some("small") => DetBackbone::Small,
        Some("resnet18") => DetBackbone::Resnet18,
        Some(v) => {
            return Err(Error::Config(format!(
                "fasterrcnn_small: unknown variant {v:?}; known: small, resnet18"
            )))
        }
    };
    let det = FasterRcnnConfig {
        in_channels: cfg.in_channels,
        num_classes: cfg.num_classes,
        backbone,
        ..Default::default()
    };
    FasterRcnn::new(det, g)
}

fn dcgan_generator(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<DcganGenerator> {
    no_variant(name, cfg)?;
    let latent = cfg.hidden.first().copied().unwrap_or(100);
    DcganGenerator::new(latent, cfg.in_channels, cfg.input_size, g)
}

fn dcgan_discriminator(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<DcganDiscriminator> {
    match cfg.variant.as_deref() {
        None => DcganDiscriminator::new(cfg.in_channels, cfg.input_size, g),
        Some("critic") => DcganDiscriminator::critic(cfg.in_channels, cfg.input_size, g),
        Some(v) => Err(Error::Config(format!("{name}: unknown variant {v:?}; known: critic"))),
    }
}
