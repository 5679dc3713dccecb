//! Autoencoders: an encoder maps an input to a latent vector of size `l`, a decoder maps it
//! back; trained to reconstruct their input (e.g. with an MSE loss against it). Both give
//! their output in the input's shape, without an output activation.
//!
//! - [`MlpAutoencoder`]: `d → h1 → … → l` and back `l → … → h1 → d` (`d = C·H·W`).
//! - [`ConvAutoencoder`]: two 3×3 stride-2 convolutions (16 and 32 maps) and a linear layer
//!   down to `l`; a linear layer and two stride-2 transposed convolutions back up (their
//!   output padding chosen so any H×W comes back exactly).
//!
//! [`Autoencoder::encoder`] is a module of its own, mapping inputs to `[N, l]` latents.
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_models::autoencoder::build_autoencoder;
//! use nabla_models::ModelConfig;
//! use nabla_nn::{Mode, Module};
//! let cfg = ModelConfig { hidden: vec![128, 16], ..Default::default() };
//! let ae = build_autoencoder("mlp_autoencoder", &cfg)?;
//! let x = Tensor::zeros(&[4, 1, 28, 28], DType::F32);
//! assert_eq!(ae.forward(&x, Mode::Eval)?.shape(), &[4, 1, 28, 28]);
//! assert_eq!(ae.encoder().forward(&x, Mode::Eval)?.shape(), &[4, 16]);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::layers::{activation, check_positive, conv, SquareConv, Unflatten};
use crate::registry::{input_features, no_variant, ModelConfig};
use nabla_core::{ConvTranspose2dOptions, Generator, Tensor};
use nabla_nn::{Children, ConvTranspose2d, Error, Flatten, LayerOptions, Linear, Mode, Module, Result, Sequential};

/// A model with an encoder to latent vectors and a decoder back to inputs.
pub trait Autoencoder: Module {
    /// Maps inputs `[N, C, H, W]` (or `[N, C·H·W]` for the MLP) to latents `[N, l]`.
    fn encoder(&self) -> &dyn Module;
    /// Maps latents `[N, l]` to reconstructions (`[N, C·H·W]` for the MLP, `[N, C, H, W]`
    /// for the convolutional one).
    fn decoder(&self) -> &dyn Module;
}

/// Build `mlp_autoencoder` or `conv_autoencoder` from `cfg` with the encoder reachable
/// (what [`crate::build`] returns, typed as an [`Autoencoder`]).
pub fn build_autoencoder(name: &str, cfg: &ModelConfig) -> Result<Box<dyn Autoencoder>> {
    autoencoder(name, cfg, &mut Generator::new(cfg.seed))
}

/// The input size and the latent code of an autoencoder `cfg` asks for, checked: the last
/// hidden width is the latent size.
fn sizes<'a>(name: &str, cfg: &'a ModelConfig) -> Result<(usize, &'a [usize], usize)> {
    no_variant(name, cfg)?;
    let d = input_features(name, cfg)?;
    let Some((&latent, widths)) = cfg.hidden.split_last() else {
        return Err(Error::Config(format!(
            "{name}: hidden must list at least the latent size"
        )));
    };
    if latent >= d {
        return Err(Error::Config(format!(
            "{name}: the latent size {latent} must be smaller than the input size {d}"
        )));
    }
    Ok((d, widths, latent))
}

/// `mlp_autoencoder` from `cfg`, drawing from `g`.
fn mlp_autoencoder(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<MlpAutoencoder> {
    let (d, widths, latent) = sizes(name, cfg)?;
    MlpAutoencoder::new(d, widths, latent, &cfg.activation, g)
}

/// [`build_autoencoder`] drawing from `g`.
pub(crate) fn autoencoder(name: &str, cfg: &ModelConfig, g: &mut Generator) -> Result<Box<dyn Autoencoder>> {
    let (_, _, latent) = sizes(name, cfg)?;
    match name {
        "mlp_autoencoder" => Ok(Box::new(mlp_autoencoder(name, cfg, g)?)),
        "conv_autoencoder" => Ok(Box::new(ConvAutoencoder::new(
            cfg.in_channels,
            cfg.input_size,
            latent,
            &cfg.activation,
            g,
        )?)),
        _ => Err(Error::Config(format!("{name} is not an autoencoder"))),
    }
}

/// An MLP autoencoder said directly: `features` inputs, `hidden` widths, a `latent` code.
/// [`MlpAutoencoderConfig::build`] gives the same weights as [`crate::build`] of
/// `mlp_autoencoder` from the [`ModelConfig`] it converts to (`From`), for the CLI's path.
///
/// ```
/// use nabla_core::{DType, Tensor};
/// use nabla_models::autoencoder::MlpAutoencoderConfig;
/// use nabla_nn::{Mode, Module};
/// let ae = MlpAutoencoderConfig::new(20, 2).build()?;
/// let x = Tensor::zeros(&[8, 20], DType::F32);
/// assert_eq!(ae.encoder.forward(&x, Mode::Eval)?.shape(), &[8, 2]);
/// assert_eq!(ae.forward(&x, Mode::Eval)?.shape(), &[8, 20]);
/// # Ok::<(), nabla_nn::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlpAutoencoderConfig {
    /// Size of each input (`C·H·W` for images).
    pub features: usize,
    /// Widths between the input and the latent code (mirrored in the decoder); default none.
    pub hidden: Vec<usize>,
    /// Size of the latent code.
    pub latent: usize,
    /// Activation between layers (default relu; see [`crate::layers::ACTIVATIONS`]).
    pub activation: String,
    /// Seed of the weight initialization (default 0).
    pub seed: u64,
}

impl MlpAutoencoderConfig {
    /// `features → latent → features`, relu, seed 0.
    pub fn new(features: usize, latent: usize) -> Self {
        MlpAutoencoderConfig {
            features,
            hidden: Vec::new(),
            latent,
            activation: "relu".to_string(),
            seed: 0,
        }
    }

    /// The autoencoder, initialized from `seed`.
    pub fn build(&self) -> Result<MlpAutoencoder> {
        let cfg = ModelConfig::from(self);
        mlp_autoencoder("mlp_autoencoder", &cfg, &mut Generator::new(self.seed))
    }
}

impl From<&MlpAutoencoderConfig> for ModelConfig {
    /// A `[1, features]` input with `hidden` then `latent` as the hidden widths.
    fn from(c: &MlpAutoencoderConfig) -> ModelConfig {
        let mut hidden = c.hidden.clone();
        hidden.push(c.latent);
        ModelConfig {
            in_channels: 1,
            input_size: [1, c.features],
            hidden,
            activation: c.activation.clone(),
            seed: c.seed,
            ..Default::default()
        }
    }
}

/// Fully connected autoencoder. Names: `encoder.N` (`encoder.0` flattens), `decoder.N`.
pub struct MlpAutoencoder {
    /// Flatten, then `d → … → l` with the activation between layers (none on the latent).
    pub encoder: Sequential,
    /// `l → … → d`, the activation between layers (none on the output).
    pub decoder: Sequential,
}

/// `seq` with linear layers through `widths` appended, `act` between them but not after
/// the last.
fn dense_stack(mut seq: Sequential, widths: &[usize], act: &str, g: &mut Generator) -> Result<Sequential> {
    for (i, pair) in widths.windows(2).enumerate() {
        check_positive("autoencoder", "every width", pair[1])?;
        if i > 0 {
            seq.add(activation(act)?);
        }
        seq = seq.push(Linear::new(pair[0], pair[1], g));
    }
    Ok(seq)
}

impl MlpAutoencoder {
    /// `d → hidden… → latent → reversed hidden… → d`.
    pub fn new(d: usize, hidden: &[usize], latent: usize, act: &str, g: &mut Generator) -> Result<MlpAutoencoder> {
        check_positive("mlp_autoencoder", "the input size", d)?;
        check_positive("mlp_autoencoder", "the latent size", latent)?;
        let mut down = vec![d];
        down.extend_from_slice(hidden);
        down.push(latent);
        let encoder = dense_stack(Sequential::new().push(Flatten::default()), &down, act, g)?;
        let up: Vec<usize> = down.iter().rev().copied().collect();
        let decoder = dense_stack(Sequential::new(), &up, act, g)?;
        Ok(MlpAutoencoder { encoder, decoder })
    }
}

impl Module for MlpAutoencoder {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let z = self.encoder.forward_named("encoder", x, mode)?;
        let y = self.decoder.forward_named("decoder", &z, mode)?;
        Ok(y.reshape(x.shape())?)
    }
    fn children(&self, c: &mut Children) {
        c.module("encoder", &self.encoder);
        c.module("decoder", &self.decoder);
    }

    fn describe(&self) -> String {
        "MlpAutoencoder".to_string()
    }
}

impl Autoencoder for MlpAutoencoder {
    fn encoder(&self) -> &dyn Module {
        &self.encoder
    }
    fn decoder(&self) -> &dyn Module {
        &self.decoder
    }
}

/// Convolutional autoencoder. Names: `encoder.{0,2}` (convolutions), `encoder.5` (linear),
/// `decoder.0` (linear), `decoder.{3,5}` (transposed convolutions).
pub struct ConvAutoencoder {
    /// Conv 3×3/2 → act → conv 3×3/2 → act → flatten → linear to the latent.
    pub encoder: Sequential,
    /// Linear → act → unflatten → transposed conv 3×3/2 → act → transposed conv 3×3/2.
    pub decoder: Sequential,
}

impl ConvAutoencoder {
    /// For `in_channels`×H×W inputs and `latent`-dimensional codes.
    pub fn new(
        in_channels: usize,
        input_size: [usize; 2],
        latent: usize,
        act: &str,
        g: &mut Generator,
    ) -> Result<ConvAutoencoder> {
        check_positive("conv_autoencoder", "in_channels", in_channels)?;
        check_positive("conv_autoencoder", "the latent size", latent)?;
        let [h0, w0] = input_size;
        check_positive("conv_autoencoder", "the input height", h0)?;
        check_positive("conv_autoencoder", "the input width", w0)?;
        // A 3×3 stride-2 pad-1 convolution maps n to ⌈n/2⌉.
        let (h1, w1) = (h0.div_ceil(2), w0.div_ceil(2));
        let (h2, w2) = (h1.div_ceil(2), w1.div_ceil(2));
        let flat = 32 * h2 * w2;
        let mut encoder = Sequential::new().push(conv(in_channels, 16, SquareConv::new(3).stride(2).padding(1), g)?);
        encoder.add(activation(act)?);
        encoder = encoder.push(conv(16, 32, SquareConv::new(3).stride(2).padding(1), g)?);
        encoder.add(activation(act)?);
        encoder = encoder.push(Flatten::default()).push(Linear::new(flat, latent, g));
        // The transposed convolution maps m to 2m − 1 + output_padding: pick the padding
        // that lands on the encoder's size.
        let up = |c_in: usize, c_out: usize, from: [usize; 2], to: [usize; 2], g: &mut _| {
            let opts = ConvTranspose2dOptions {
                stride: [2, 2],
                padding: [1, 1],
                output_padding: [to[0] + 1 - 2 * from[0], to[1] + 1 - 2 * from[1]],
                ..Default::default()
            };
            ConvTranspose2d::with_options(c_in, c_out, [3, 3], opts, LayerOptions::default(), g)
        };
        let mut decoder = Sequential::new().push(Linear::new(latent, flat, g));
        decoder.add(activation(act)?);
        decoder = decoder
            .push(Unflatten { shape: [32, h2, w2] })
            .push(up(32, 16, [h2, w2], [h1, w1], g)?);
        decoder.add(activation(act)?);
        decoder = decoder.push(up(16, in_channels, [h1, w1], [h0, w0], g)?);
        Ok(ConvAutoencoder { encoder, decoder })
    }
}

impl Module for ConvAutoencoder {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let z = self.encoder.forward_named("encoder", x, mode)?;
        self.decoder.forward_named("decoder", &z, mode)
    }
    fn children(&self, c: &mut Children) {
        c.module("encoder", &self.encoder);
        c.module("decoder", &self.decoder);
    }

    fn describe(&self) -> String {
        "ConvAutoencoder".to_string()
    }
}

impl Autoencoder for ConvAutoencoder {
    fn encoder(&self) -> &dyn Module {
        &self.encoder
    }
    fn decoder(&self) -> &dyn Module {
        &self.decoder
    }
}
