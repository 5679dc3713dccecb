//! DCGAN (Radford et al., 2015): a generator from latent vectors to images by transposed
//! convolutions, and a discriminator from images to one real/fake logit by strided
//! convolutions; batch norm inside, ReLU / LeakyReLU(0.2), tanh on the generated image,
//! no biases, weights N(0, 0.02) and batch-norm scales N(1, 0.02) as in the paper.
//!
//! The image size must be `b·2^k` on both sides with `k ≥ 1` (e.g. 28 = 7·2², 32 = 4·2³,
//! 64 = 4·2⁴): the generator starts from a `b×b` map of `64·2^(k−1)` channels (a full-size
//! transposed convolution of the 1×1 latent) and doubles the size `k` times while halving
//! the channels; the discriminator mirrors it and ends with a `b×b` convolution to 1 map.
//! Names: `main.N`, as the PyTorch DCGAN example.
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_models::{build, ModelConfig};
//! use nabla_nn::{Mode, Module};
//! let cfg = ModelConfig { hidden: vec![100], ..Default::default() };
//! let (g, d) = (build("generator", &cfg)?, build("discriminator", &cfg)?);
//! let fake = g.forward(&Tensor::zeros(&[3, 100], DType::F32), Mode::Eval)?;
//! assert_eq!(fake.shape(), &[3, 1, 28, 28]);
//! assert_eq!(d.forward(&fake, Mode::Eval)?.shape(), &[3, 1]);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::layers::{batch_norm, check_positive, conv, SquareConv};
use nabla_core::{ConvTranspose2dOptions, Generator as Rng, Tensor};
use nabla_nn::init;
use nabla_nn::{
    BatchNorm2d, Children, ConvTranspose2d, Error, LayerOptions, LeakyReLU, Mode, Module, ReLU, Result, Sequential,
    Tanh,
};

/// Channels of the largest generator map and the first discriminator map.
const BASE: usize = 64;

/// `(k, [bh, bw])` with `size = b·2^k`, as many halvings as keep both sides ≥ 4.
fn geometry(model: &str, size: [usize; 2]) -> Result<(u32, [usize; 2])> {
    let halvings = |mut n: usize| {
        let mut k = 0;
        while n.is_multiple_of(2) && n / 2 >= 4 {
            n /= 2;
            k += 1;
        }
        k
    };
    let k = halvings(size[0]).min(halvings(size[1]));
    if k == 0 {
        return Err(Error::Config(format!(
            "{model}: image size {}×{} must be b·2^k with k ≥ 1 and b ≥ 4 (e.g. 28, 32, 64)",
            size[0], size[1]
        )));
    }
    Ok((k, [size[0] >> k, size[1] >> k]))
}

/// DCGAN's initialization: conv weights N(0, 0.02), batch-norm weights N(1, 0.02), bias 0.
fn dcgan_bn(c: usize, g: &mut Rng) -> Result<BatchNorm2d> {
    let bn = batch_norm(c, 1e-5);
    if let (Some(w), Some(b)) = (&bn.weight, &bn.bias) {
        init::normal_(&w.leaf(), 1.0, 0.02, g)?;
        init::zeros_(&b.leaf())?;
    }
    Ok(bn)
}

fn up(c_in: usize, c_out: usize, k: [usize; 2], stride: usize, g: &mut Rng) -> Result<ConvTranspose2d> {
    let pad = if stride == 1 { 0 } else { 1 };
    let opts = ConvTranspose2dOptions {
        stride: [stride, stride],
        padding: [pad, pad],
        ..Default::default()
    };
    let layer = ConvTranspose2d::with_options(c_in, c_out, k, opts, LayerOptions::default().with_bias(false), g)?;
    init::normal_(&layer.weight.leaf(), 0.0, 0.02, g)?;
    Ok(layer)
}

/// Latent `[N, z]` (or `[N, z, 1, 1]`) → image `[N, C, H, W]` in (−1, 1).
pub struct DcganGenerator {
    /// Transposed convolutions, batch norms, ReLUs, tanh.
    pub main: Sequential,
    latent: usize,
}

impl DcganGenerator {
    /// A generator of `channels`×H×W images from `latent`-dimensional codes.
    pub fn new(latent: usize, channels: usize, size: [usize; 2], g: &mut Rng) -> Result<Self> {
        check_positive("generator", "the latent size", latent)?;
        check_positive("generator", "the image channels", channels)?;
        let (k, base) = geometry("generator", size)?;
        let mut c = BASE << (k - 1);
        let mut main = Sequential::new()
            .push(up(latent, c, base, 1, g)?)
            .push(dcgan_bn(c, g)?)
            .push(ReLU);
        for _ in 1..k {
            main = main
                .push(up(c, c / 2, [4, 4], 2, g)?)
                .push(dcgan_bn(c / 2, g)?)
                .push(ReLU);
            c /= 2;
        }
        main = main.push(up(c, channels, [4, 4], 2, g)?).push(Tanh);
        Ok(DcganGenerator { main, latent })
    }

    /// Size of the latent vectors.
    pub fn latent(&self) -> usize {
        self.latent
    }
}

impl Module for DcganGenerator {
    fn forward(&self, z: &Tensor, mode: Mode) -> Result<Tensor> {
        let z = if z.rank() == 2 {
            z.reshape([z.size(0)?, z.size(1)?, 1, 1])?
        } else {
            z.clone()
        };
        self.main.forward_named("main", &z, mode)
    }
    fn children(&self, c: &mut Children) {
        c.module("main", &self.main);
    }

    fn describe(&self) -> String {
        format!("DCGAN generator z={}", self.latent)
    }
}

/// Image `[N, C, H, W]` → real/fake logit `[N, 1]` (use a logistic loss on it).
pub struct DcganDiscriminator {
    /// Strided convolutions, batch norms, LeakyReLUs, final convolution.
    pub main: Sequential,
}

impl DcganDiscriminator {
    /// A discriminator of `channels`×H×W images.
    pub fn new(channels: usize, size: [usize; 2], g: &mut Rng) -> Result<Self> {
        Self::build(channels, size, true, g)
    }

    /// The same network without batch norm, as a WGAN-GP critic: the gradient penalty is
    /// taken per sample, and batch norm would make each score depend on the whole batch
    /// (Gulrajani et al. drop it for that reason). The registry's variant `critic`.
    pub fn critic(channels: usize, size: [usize; 2], g: &mut Rng) -> Result<Self> {
        Self::build(channels, size, false, g)
    }

    fn build(channels: usize, size: [usize; 2], norm: bool, g: &mut Rng) -> Result<Self> {
        check_positive("discriminator", "the image channels", channels)?;
        let (k, base) = geometry("discriminator", size)?;
        let down = |c_in: usize, c_out: usize, g: &mut Rng| -> Result<_> {
            let layer = conv(c_in, c_out, SquareConv::new(4).stride(2).padding(1).no_bias(), g)?;
            init::normal_(&layer.weight.leaf(), 0.0, 0.02, g)?;
            Ok(layer)
        };
        // The first stage has no batch norm, as in the paper.
        let mut main = Sequential::new()
            .push(down(channels, BASE, g)?)
            .push(LeakyReLU::new(0.2));
        let mut c = BASE;
        for _ in 1..k {
            main = main.push(down(c, c * 2, g)?);
            if norm {
                main = main.push(dcgan_bn(c * 2, g)?);
            }
            main = main.push(LeakyReLU::new(0.2));
            c *= 2;
        }
        let opts = nabla_core::Conv2dOptions::default();
        let last = nabla_nn::Conv2d::with_options(c, 1, base, opts, LayerOptions::default().with_bias(false), g)?;
        init::normal_(&last.weight.leaf(), 0.0, 0.02, g)?;
        Ok(DcganDiscriminator { main: main.push(last) })
    }
}

impl Module for DcganDiscriminator {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        Ok(self.main.forward_named("main", x, mode)?.flatten(1, -1)?)
    }
    fn children(&self, c: &mut Children) {
        c.module("main", &self.main);
    }

    fn describe(&self) -> String {
        "DCGAN discriminator".to_string()
    }
}
