//! Models by name: [`ModelConfig`] says what to build, [`build`] builds it, [`names`] lists
//! what can be built. This is the contract the `nabla` command line relies on.
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
use crate::googlenet::GoogLeNet;
use crate::lenet::{lenet5, LeNetVariant};
use crate::mlp::Mlp;
use crate::resnet::{ResNet, ResNetSpec};
use crate::segnet::SegNet;
use crate::vgg::vgg;
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
    /// "small"/"resnet18" classloc backbones; other models have none (setting one is an
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

/// Every model with its builder, in the order [`names`] lists them.
const MODELS: &[(&str, Builder)] = &[
    ("mlp", build_mlp),
    ("lenet5", build_lenet5),
    ("mlp_autoencoder", build_autoencoder),
    ("conv_autoencoder", build_autoencoder),
    ("alexnet", build_alexnet),
    ("alexnet_torchvision", build_alexnet),
    ("zfnet", build_alexnet),
    ("vgg11", build_vgg),
    ("vgg13", build_vgg),
    ("vgg16", build_vgg),
    ("vgg19", build_vgg),
    ("vgg11_bn", build_vgg),
    ("vgg13_bn", build_vgg),
    ("vgg16_bn", build_vgg),
    ("vgg19_bn", build_vgg),
    ("googlenet", build_googlenet),
    ("resnet18", build_resnet),
    ("resnet34", build_resnet),
    ("resnet50", build_resnet),
    ("resnet101", build_resnet),
    ("resnet152", build_resnet),
    ("se_resnet18", build_resnet),
    ("se_resnet50", build_resnet),
    ("segnet", build_segnet),
    ("classloc", build_classloc),
    ("generator", build_gan),
    ("discriminator", build_gan),
];

/// The names [`build`] knows: mlp, lenet5, mlp_autoencoder, conv_autoencoder, alexnet,
/// alexnet_torchvision, zfnet, vgg11/13/16/19 and their _bn versions, googlenet,
/// resnet18/34/50/101/152, se_resnet18, se_resnet50, segnet, classloc, generator,
/// discriminator.
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

fn build_mlp(_: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Box<dyn Module>> {
    no_variant("mlp", cfg)?;
    let d = input_features("mlp", cfg)?;
    Ok(Box::new(Mlp::new(d, &cfg.hidden, cfg.num_classes, &cfg.activation, g)?))
}

fn build_lenet5(_: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Box<dyn Module>> {
    let variant = LeNetVariant::parse(cfg.variant.as_deref())?;
    Ok(Box::new(lenet5(
        cfg.in_channels,
        cfg.input_size,
        cfg.num_classes,
        variant,
        g,
    )?))
}

fn build_resnet(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Box<dyn Module>> {
    no_variant(name, cfg)?;
    let spec = ResNetSpec::named(name).ok_or_else(|| Error::Config(format!("{name} is not a ResNet")))?;
    let spec = ResNetSpec {
        small_input: cfg.small_input,
        ..spec
    };
    Ok(Box::new(ResNet::new(&spec, cfg.in_channels, cfg.num_classes, g)?))
}

fn build_googlenet(_: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Box<dyn Module>> {
    let aux = match cfg.variant.as_deref() {
        None => false,
        Some("aux") => true,
        Some(v) => return Err(Error::Config(format!("googlenet: unknown variant {v:?}; known: aux"))),
    };
    Ok(Box::new(GoogLeNet::new(
        cfg.in_channels,
        cfg.num_classes,
        aux,
        cfg.small_input,
        g,
    )?))
}

fn build_alexnet(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Box<dyn Module>> {
    no_variant(name, cfg)?;
    let (c, size, classes, small) = (cfg.in_channels, cfg.input_size, cfg.num_classes, cfg.small_input);
    Ok(Box::new(match name {
        "alexnet_torchvision" => alexnet_torchvision(c, size, classes, small, g)?,
        "zfnet" => alexnet_like(name, &AlexNetSpec::zfnet(small), c, size, classes, g)?,
        _ => alexnet_like(name, &AlexNetSpec::alexnet(small), c, size, classes, g)?,
    }))
}

fn build_vgg(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Box<dyn Module>> {
    no_variant(name, cfg)?;
    let rest = name.trim_start_matches("vgg");
    let (depth, bn) = match rest.strip_suffix("_bn") {
        Some(d) => (d, true),
        None => (rest, false),
    };
    let depth = depth
        .parse()
        .map_err(|_| Error::Config(format!("{name} is not a VGG")))?;
    Ok(Box::new(vgg(
        depth,
        bn,
        cfg.in_channels,
        cfg.input_size,
        cfg.num_classes,
        cfg.small_input,
        g,
    )?))
}

fn build_autoencoder(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Box<dyn Module>> {
    Ok(autoencoder(name, cfg, g)?)
}

fn build_segnet(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Box<dyn Module>> {
    no_variant(name, cfg)?;
    let net = SegNet::new(cfg.in_channels, cfg.num_classes, [32, 64, 128], g)?;
    Ok(Box::new(net))
}

fn build_classloc(_: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Box<dyn Module>> {
    Ok(Box::new(ClassLoc::from_config(cfg, g)?))
}

fn build_gan(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Box<dyn Module>> {
    no_variant(name, cfg)?;
    let (c, size) = (cfg.in_channels, cfg.input_size);
    if name == "discriminator" {
        return Ok(Box::new(DcganDiscriminator::new(c, size, g)?));
    }
    let latent = cfg.hidden.first().copied().unwrap_or(100);
    Ok(Box::new(DcganGenerator::new(latent, c, size, g)?))
}
