//! `fcn_small`: a small fully convolutional network (after Long et al., 2015, with the
//! U-Net-style additive skips of later FCNs) for semantic segmentation: per-pixel class
//! scores `[N, classes, H, W]` for an input `[N, C, H, W]`.
//!
//! The encoder is a conv-bn-relu stem at full resolution and three stages that each halve
//! the resolution with a stride-2 conv-bn-relu and refine with a 3×3 conv-bn-relu. The
//! decoder climbs back with stride-2 transposed conv-bn-relus (a learned upsampling), each
//! result added to the encoder's map of the same resolution (the skip connection brings
//! back the detail the downsampling lost); a 3×3 conv-bn-relu and a 1×1 scoring conv
//! finish at full resolution. Skips are added rather than concatenated: half the channels
//! of the next convolution for the same effect on these small images. Any H, W ≥ 8 works:
//! odd sizes are cropped back to the skip's size after each upsampling.
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_models::{build, ModelConfig};
//! use nabla_nn::{Mode, Module};
//! let cfg = ModelConfig { num_classes: 11, input_size: [30, 22], ..Default::default() };
//! let net = build("fcn_small", &cfg)?;
//! let scores = net.forward(&Tensor::zeros(&[2, 1, 30, 22], DType::F32), Mode::Eval)?;
//! assert_eq!(scores.shape(), &[2, 11, 30, 22]);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::layers::{batch_norm, check_positive, conv, SquareConv};
use nabla_core::{ConvTranspose2dOptions, Generator, Tensor};
use nabla_nn::{Children, Conv2d, ConvTranspose2d, Error, LayerOptions, Mode, Module, ReLU, Result, Sequential};

/// Stem, three downsampling stages, three upsampling stages and the scoring head.
pub struct Fcn {
    /// Conv-bn-relu at full resolution (the first skip).
    pub stem: Sequential,
    /// `down[i]`: stride-2 conv-bn-relu then conv-bn-relu, to 1/2, 1/4, 1/8.
    pub down: Vec<Sequential>,
    /// `up[i]`: stride-2 transposed conv-bn-relu from 1/8, 1/4, 1/2 up one step.
    pub up: Vec<Sequential>,
    /// Conv-bn-relu and the 1×1 scoring convolution at full resolution.
    pub head: Sequential,
}

/// `seq` with a 3×3 conv (stride `stride`, pad 1), batch norm and ReLU appended.
fn cbr(seq: Sequential, c_in: usize, c_out: usize, stride: usize, g: &mut Generator) -> Result<Sequential> {
    Ok(seq
        .push(conv(
            c_in,
            c_out,
            SquareConv::new(3).stride(stride).padding(1).no_bias(),
            g,
        )?)
        .push(batch_norm(c_out, 1e-5))
        .push(ReLU))
}

/// A stride-2 3×3 transposed conv-bn-relu: `n` → `2n`.
fn up(c_in: usize, c_out: usize, g: &mut Generator) -> Result<Sequential> {
    let opts = ConvTranspose2dOptions {
        stride: [2, 2],
        padding: [1, 1],
        output_padding: [1, 1],
        ..Default::default()
    };
    let layer = LayerOptions::default().with_bias(false);
    Ok(Sequential::new()
        .push(ConvTranspose2d::with_options(c_in, c_out, [3, 3], opts, layer, g)?)
        .push(batch_norm(c_out, 1e-5))
        .push(ReLU))
}

impl Fcn {
    /// An FCN over `in_channels` with `widths` channels at full, 1/2, 1/4 and 1/8 resolution.
    pub fn new(in_channels: usize, num_classes: usize, widths: [usize; 4], g: &mut Generator) -> Result<Fcn> {
        check_positive("fcn_small", "in_channels", in_channels)?;
        check_positive("fcn_small", "num_classes", num_classes)?;
        if widths.contains(&0) {
            return Err(Error::Config(format!("fcn_small: widths {widths:?} must be positive")));
        }
        let stem = cbr(Sequential::new(), in_channels, widths[0], 1, g)?;
        let mut down = Vec::new();
        for i in 0..3 {
            let s = cbr(Sequential::new(), widths[i], widths[i + 1], 2, g)?;
            down.push(cbr(s, widths[i + 1], widths[i + 1], 1, g)?);
        }
        let mut ups = Vec::new();
        for i in (0..3).rev() {
            ups.push(up(widths[i + 1], widths[i], g)?);
        }
        let score: Conv2d = conv(widths[0], num_classes, SquareConv::new(1), g)?;
        let head = cbr(Sequential::new(), widths[0], widths[0], 1, g)?.push(score);
        Ok(Fcn {
            stem,
            down,
            up: ups,
            head,
        })
    }
}

impl Module for Fcn {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        if x.rank() != 4 || x.shape()[2] < 8 || x.shape()[3] < 8 {
            return Err(nabla_core::Error::invalid(
                "fcn_small",
                format!("expects [N, C, H, W] with H, W ≥ 8, got shape {:?}", x.shape()),
            )
            .into());
        }
        let mut skips = vec![self.stem.forward_named("stem", x, mode)?];
        for (i, d) in self.down.iter().enumerate() {
            let prev = skips.last().expect("the stem is there");
            let y = d.forward_named(&format!("down.{i}"), prev, mode)?;
            skips.push(y);
        }
        let mut y = skips.pop().expect("three stages");
        for (i, u) in self.up.iter().enumerate() {
            let skip = skips.pop().expect("one skip per stage");
            let z = u.forward_named(&format!("up.{i}"), &y, mode)?;
            // The transposed convolution doubles ⌈n/2⌉, one more than an odd n: crop.
            let z = z.narrow(2, 0, skip.size(2)?)?.narrow(3, 0, skip.size(3)?)?;
            y = z.add(&skip)?;
        }
        self.head.forward_named("head", &y, mode)
    }

    fn children(&self, c: &mut Children) {
        c.module("stem", &self.stem);
        for (i, d) in self.down.iter().enumerate() {
            c.module(&format!("down.{i}"), d);
        }
        for (i, u) in self.up.iter().enumerate() {
            c.module(&format!("up.{i}"), u);
        }
        c.module("head", &self.head);
    }

    fn describe(&self) -> String {
        "FCN (small)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::DType;

    #[test]
    fn odd_sizes_come_back_whole_and_gradients_reach_every_stage() {
        let net = Fcn::new(1, 3, [4, 8, 8, 16], &mut Generator::new(0)).unwrap();
        let x = Tensor::rand(&[2, 1, 13, 9], DType::F32, &mut Generator::new(1));
        let y = net.forward(&x, Mode::Train).unwrap();
        assert_eq!(y.shape(), &[2, 3, 13, 9]);
        let grads = y.square().unwrap().sum_all().unwrap().backward().unwrap();
        let params = net.parameters();
        assert!(params.len() > 20);
        for p in &params {
            let g = grads.get(p).expect("every parameter gets a gradient");
            assert!(g.to_vec_f32().iter().all(|v| v.is_finite()));
        }
        assert!(net
            .forward(&Tensor::zeros(&[1, 1, 7, 9], DType::F32), Mode::Eval)
            .is_err());
    }
}
