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

use crate::googlenet::GoogLeNet;
use crate::lenet::{lenet5, LeNetVariant};
use crate::mlp::Mlp;
use crate::resnet::{ResNet, ResNetSpec};
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
    /// size); the generator's latent size is `hidden[0]`.
    pub hidden: Vec<usize>,
    /// Activation of MLPs and autoencoders: relu, tanh, sigmoid, gelu, leaky_relu, elu,
    /// softplus, identity.
    pub activation: String,
    /// Seed of the weight initialization (and of dropout's masks).
    pub seed: u64,
    /// A model-specific variant: "classic"/"modern" LeNet-5, "aux" GoogLeNet heads, ...
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
    ("googlenet", build_googlenet),
    ("resnet18", build_resnet),
    ("resnet34", build_resnet),
    ("resnet50", build_resnet),
    ("resnet101", build_resnet),
    ("resnet152", build_resnet),
    ("se_resnet18", build_resnet),
    ("se_resnet50", build_resnet),
];

/// The names [`build`] knows.
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
