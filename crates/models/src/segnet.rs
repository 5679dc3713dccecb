//! A small SegNet (Badrinarayanan et al., 2015) for semantic segmentation: per-pixel class
//! scores `[N, classes, H, W]` for an input `[N, C, H, W]`.
//!
//! The encoder downsamples twice by max pooling (keeping the argmax indices) and once by a
//! stride-2 convolution; the decoder upsamples by a stride-2 transposed convolution, then
//! twice by max-unpooling with the encoder's indices, so each value returns to the pixel its
//! maximum came from. Every convolution is 3×3 with batch norm and ReLU except the last,
//! which gives the scores. Any H, W ≥ 4 works: odd sizes are cropped back after upsampling.
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_models::{build, ModelConfig};
//! use nabla_nn::{Mode, Module};
//! let cfg = ModelConfig { num_classes: 5, in_channels: 3, input_size: [30, 22], ..Default::default() };
//! let net = build("segnet", &cfg)?;
//! let scores = net.forward(&Tensor::zeros(&[2, 3, 30, 22], DType::F32), Mode::Eval)?;
//! assert_eq!(scores.shape(), &[2, 5, 30, 22]);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::layers::{batch_norm, check_positive, conv, SquareConv};
use nabla_core::{ConvTranspose2dOptions, Generator, Pool2dOptions, Tensor};
use nabla_nn::{Children, ConvTranspose2d, Error, LayerOptions, Mode, Module, ReLU, Result, Sequential};

/// Encoder `enc1`..`enc3` and decoder `dec3`..`dec1`, each a Sequential.
pub struct SegNet {
    /// Two conv-bn-relu at full resolution (then max pooling with indices).
    pub enc1: Sequential,
    /// Two conv-bn-relu at half resolution (then max pooling with indices).
    pub enc2: Sequential,
    /// A stride-2 conv-bn-relu to an eighth of the resolution.
    pub enc3: Sequential,
    /// A stride-2 transposed conv-bn-relu back to a quarter.
    pub dec3: Sequential,
    /// Two conv-bn-relu at half resolution, after unpooling.
    pub dec2: Sequential,
    /// A conv-bn-relu and the scoring convolution at full resolution, after unpooling.
    pub dec1: Sequential,
}

/// `seq` with a 3×3 conv (stride 1, pad 1), batch norm and ReLU appended.
fn cbr(seq: Sequential, c_in: usize, c_out: usize, g: &mut Generator) -> Result<Sequential> {
    Ok(seq
        .push(conv(c_in, c_out, SquareConv::new(3).padding(1).no_bias(), g)?)
        .push(batch_norm(c_out, 1e-5))
        .push(ReLU))
}

impl SegNet {
    /// A SegNet over `in_channels` with `widths` channels at the three encoder depths.
    pub fn new(in_channels: usize, num_classes: usize, widths: [usize; 3], g: &mut Generator) -> Result<SegNet> {
        check_positive("segnet", "in_channels", in_channels)?;
        check_positive("segnet", "num_classes", num_classes)?;
        let [w1, w2, w3] = widths;
        if widths.contains(&0) {
            return Err(Error::Config(format!("segnet: widths {widths:?} must be positive")));
        }
        let enc1 = cbr(cbr(Sequential::new(), in_channels, w1, g)?, w1, w1, g)?;
        let enc2 = cbr(cbr(Sequential::new(), w1, w2, g)?, w2, w2, g)?;
        let enc3 = Sequential::new()
            .push(conv(w2, w3, SquareConv::new(3).stride(2).padding(1).no_bias(), g)?)
            .push(batch_norm(w3, 1e-5))
            .push(ReLU);
        let up = ConvTranspose2dOptions {
            stride: [2, 2],
            padding: [1, 1],
            output_padding: [1, 1],
            ..Default::default()
        };
        let dec3 = Sequential::new()
            .push(ConvTranspose2d::with_options(
                w3,
                w2,
                [3, 3],
                up,
                LayerOptions::default().with_bias(false),
                g,
            )?)
            .push(batch_norm(w2, 1e-5))
            .push(ReLU);
        let dec2 = cbr(cbr(Sequential::new(), w2, w2, g)?, w2, w1, g)?;
        let dec1 = cbr(Sequential::new(), w1, w1, g)?.push(conv(w1, num_classes, SquareConv::new(3).padding(1), g)?);
        Ok(SegNet {
            enc1,
            enc2,
            enc3,
            dec3,
            dec2,
            dec1,
        })
    }
}

/// 2×2 max pooling of `x`, with the indices and the size to unpool back to.
fn pool(x: &Tensor) -> Result<(Tensor, Vec<usize>, [usize; 2])> {
    let size = [x.size(2)?, x.size(3)?];
    let (y, idx) = x.max_pool2d_with_indices(Pool2dOptions::new([2, 2]))?;
    Ok((y, idx, size))
}

impl Module for SegNet {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        if x.rank() != 4 || x.shape()[2] < 4 || x.shape()[3] < 4 {
            return Err(nabla_core::Error::invalid(
                "SegNet",
                format!("expects [N, C, H, W] with H, W ≥ 4, got shape {:?}", x.shape()),
            )
            .into());
        }
        let e1 = self.enc1.forward_named("enc1", x, mode)?;
        let (p1, idx1, size1) = pool(&e1)?;
        let e2 = self.enc2.forward_named("enc2", &p1, mode)?;
        let (p2, idx2, size2) = pool(&e2)?;
        let e3 = self.enc3.forward_named("enc3", &p2, mode)?;
        let d3 = self.dec3.forward_named("dec3", &e3, mode)?;
        // The transposed convolution doubles ⌈n/2⌉, one more than an odd n: crop.
        let d3 = d3.narrow(2, 0, p2.size(2)?)?.narrow(3, 0, p2.size(3)?)?;
        let u2 = d3.max_unpool2d(&idx2, size2)?;
        let d2 = self.dec2.forward_named("dec2", &u2, mode)?;
        let u1 = d2.max_unpool2d(&idx1, size1)?;
        self.dec1.forward_named("dec1", &u1, mode)
    }

    fn children(&self, c: &mut Children) {
        c.module("enc1", &self.enc1);
        c.module("enc2", &self.enc2);
        c.module("enc3", &self.enc3);
        c.module("dec3", &self.dec3);
        c.module("dec2", &self.dec2);
        c.module("dec1", &self.dec1);
    }

    fn describe(&self) -> String {
        "SegNet".to_string()
    }
}
