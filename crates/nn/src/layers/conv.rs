//! Convolution layers: Conv2d and ConvTranspose2d, around the core ops.

use crate::init::default_uniform;
use crate::module::{expect_rank, Children, Mode, Module, Param};
use crate::{LayerOptions, Result};
use nabla_core::{Activation, Conv2dOptions, ConvTranspose2dOptions, DType, Generator, Tensor};

fn invalid(layer: &'static str, msg: String) -> crate::Error {
    nabla_core::Error::invalid(layer, msg).into()
}

/// Check hyper-parameters at construction, as PyTorch does.
fn check_config(
    layer: &'static str,
    channels: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) -> Result<()> {
    if groups == 0 || channels.iter().any(|c| c % groups != 0) {
        return Err(invalid(
            layer,
            format!(
                "groups {groups} must be positive and divide in_channels {} and out_channels {}",
                channels[0], channels[1]
            ),
        ));
    }
    if stride.contains(&0) || dilation.contains(&0) {
        return Err(invalid(
            layer,
            format!("stride {stride:?} and dilation {dilation:?} must be positive"),
        ));
    }
    Ok(())
}

/// Check an input is `[N, C, H, W]` with the expected channel count.
fn check_input(layer: &'static str, x: &Tensor, channels: usize) -> Result<()> {
    expect_rank(layer, x, &[4])?;
    if x.shape()[1] != channels {
        return Err(invalid(
            layer,
            format!(
                "input of shape {:?} has {} channels, expected {channels}",
                x.shape(),
                x.shape()[1]
            ),
        ));
    }
    Ok(())
}

fn check_bias(layer: &'static str, bias: &Option<Tensor>, out: usize) -> Result<()> {
    match bias {
        Some(b) if b.shape() != [out] => Err(invalid(
            layer,
            format!("bias must be [{out}], got shape {:?}", b.shape()),
        )),
        _ => Ok(()),
    }
}

/// 2-D convolution over `[N, C_in, H, W]`. Parameters: `weight` `[C_out, C_in/groups, kh, kw]`,
/// `bias` `[C_out]`.
#[derive(Debug)]
pub struct Conv2d {
    /// `[out_channels, in_channels/groups, kh, kw]`.
    pub weight: Param,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Param>,
    opts: Conv2dOptions,
}

impl Conv2d {
    /// A `k×k` convolution with stride 1, no padding and a bias, initialized as PyTorch does
    /// (weight and bias from U(−1/√fan_in, 1/√fan_in), fan_in = in_channels·k·k), f32.
    pub fn new(in_channels: usize, out_channels: usize, k: usize, g: &mut Generator) -> Conv2d {
        let weight = default_uniform(&[out_channels, in_channels, k, k], in_channels * k * k, DType::F32, g);
        let bias = default_uniform(&[out_channels], in_channels * k * k, DType::F32, g);
        Conv2d {
            weight: Param::new(weight),
            bias: Some(Param::new(bias)),
            opts: Conv2dOptions::default(),
        }
    }

    /// A convolution with any kernel size, stride, padding, dilation and groups, with or
    /// without a bias and in a given dtype (`layer`), PyTorch's default initialization.
    /// Fails when `groups` does not divide both channel counts or a stride or dilation is 0.
    pub fn with_options(
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
        opts: Conv2dOptions,
        layer: LayerOptions,
        g: &mut Generator,
    ) -> Result<Conv2d> {
        let (stride, dilation, groups) = (opts.stride, opts.dilation, opts.groups);
        check_config("Conv2d", [in_channels, out_channels], stride, dilation, groups)?;
        let [kh, kw] = kernel_size;
        let fan_in = in_channels / groups * kh * kw;
        let weight = default_uniform(&[out_channels, in_channels / groups, kh, kw], fan_in, layer.dtype, g);
        let bias = layer
            .bias
            .then(|| Param::new(default_uniform(&[out_channels], fan_in, layer.dtype, g)));
        Ok(Conv2d {
            weight: Param::new(weight),
            bias,
            opts,
        })
    }

    /// A convolution around given tensors (kept as they are if they are leaves requiring a
    /// gradient): `weight` `[C_out, C_in/groups, kh, kw]`, `bias` `[C_out]`.
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>, opts: Conv2dOptions) -> Result<Conv2d> {
        let &[out, per_group, _, _] = weight.shape() else {
            return Err(invalid(
                "Conv2d",
                format!(
                    "weight must be [out, in/groups, kh, kw], got shape {:?}",
                    weight.shape()
                ),
            ));
        };
        let (stride, dilation, groups) = (opts.stride, opts.dilation, opts.groups);
        check_config("Conv2d", [per_group * groups, out], stride, dilation, groups)?;
        check_bias("Conv2d", &bias, out)?;
        Ok(Conv2d {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
            opts,
        })
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.weight.leaf().shape()[1] * self.opts.groups
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.leaf().shape()[0]
    }

    /// Stride, padding, dilation and groups.
    pub fn options(&self) -> Conv2dOptions {
        self.opts
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        check_input("Conv2d", x, self.in_channels())?;
        let bias = self.bias.as_ref().map(Param::tensor);
        Ok(x.conv2d(&self.weight.tensor(), bias.as_ref(), self.opts)?)
    }

    /// The convolution and `act` as one op in any mode (`Tensor::conv2d_act`).
    fn forward_then(&self, x: &Tensor, act: Activation, _mode: Mode) -> Option<Result<Tensor>> {
        let run = || {
            check_input("Conv2d", x, self.in_channels())?;
            let bias = self.bias.as_ref().map(Param::tensor);
            Ok(x.conv2d_act(&self.weight.tensor(), bias.as_ref(), self.opts, act)?)
        };
        Some(run())
    }

    fn children(&self, c: &mut Children) {
        c.param("weight", &self.weight).param_opt("bias", &self.bias);
    }

    fn describe(&self) -> String {
        format!("Conv2d {}→{}", self.in_channels(), self.out_channels())
    }
}

/// Transposed 2-D convolution (the gradient of a convolution, used to upsample).
/// Parameters: `weight` `[C_in, C_out/groups, kh, kw]`, `bias` `[C_out]`.
#[derive(Debug)]
pub struct ConvTranspose2d {
    /// `[in_channels, out_channels/groups, kh, kw]`.
    pub weight: Param,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Param>,
    opts: ConvTranspose2dOptions,
}

impl ConvTranspose2d {
    /// A transposed convolution with PyTorch's default initialization (fan_in computed from
    /// the weight as PyTorch does: out_channels/groups·kh·kw). Fails when `groups` does not
    /// divide both channel counts, a stride or dilation is 0, or `output_padding` is not
    /// smaller than the stride or the dilation. `layer` says bias and dtype.
    pub fn with_options(
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
        opts: ConvTranspose2dOptions,
        layer: LayerOptions,
        g: &mut Generator,
    ) -> Result<ConvTranspose2d> {
        let (stride, dilation, groups) = (opts.stride, opts.dilation, opts.groups);
        check_config("ConvTranspose2d", [in_channels, out_channels], stride, dilation, groups)?;
        check_output_padding(&opts)?;
        let [kh, kw] = kernel_size;
        let fan_in = out_channels / groups * kh * kw;
        let weight = default_uniform(&[in_channels, out_channels / groups, kh, kw], fan_in, layer.dtype, g);
        let bias = layer
            .bias
            .then(|| Param::new(default_uniform(&[out_channels], fan_in, layer.dtype, g)));
        Ok(ConvTranspose2d {
            weight: Param::new(weight),
            bias,
            opts,
        })
    }

    /// A transposed convolution around given tensors: `weight` `[C_in, C_out/groups, kh, kw]`,
    /// `bias` `[C_out]`.
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>, opts: ConvTranspose2dOptions) -> Result<ConvTranspose2d> {
        let &[c_in, per_group, _, _] = weight.shape() else {
            return Err(invalid(
                "ConvTranspose2d",
                format!(
                    "weight must be [in, out/groups, kh, kw], got shape {:?}",
                    weight.shape()
                ),
            ));
        };
        let (stride, dilation, groups) = (opts.stride, opts.dilation, opts.groups);
        check_config("ConvTranspose2d", [c_in, per_group * groups], stride, dilation, groups)?;
        check_output_padding(&opts)?;
        check_bias("ConvTranspose2d", &bias, per_group * groups)?;
        Ok(ConvTranspose2d {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
            opts,
        })
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.weight.leaf().shape()[0]
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.leaf().shape()[1] * self.opts.groups
    }

    /// Stride, padding, output padding, dilation and groups.
    pub fn options(&self) -> ConvTranspose2dOptions {
        self.opts
    }
}

fn check_output_padding(opts: &ConvTranspose2dOptions) -> Result<()> {
    for d in 0..2 {
        if opts.output_padding[d] >= opts.stride[d].max(opts.dilation[d]) {
            return Err(invalid(
                "ConvTranspose2d",
                format!(
                    "output_padding {:?} must be smaller than stride {:?} or dilation {:?}",
                    opts.output_padding, opts.stride, opts.dilation
                ),
            ));
        }
    }
    Ok(())
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        check_input("ConvTranspose2d", x, self.in_channels())?;
        let bias = self.bias.as_ref().map(Param::tensor);
        Ok(x.conv_transpose2d(&self.weight.tensor(), bias.as_ref(), self.opts)?)
    }

    /// The transposed convolution and `act` as one op in any mode
    /// (`Tensor::conv_transpose2d_act`).
    fn forward_then(&self, x: &Tensor, act: Activation, _mode: Mode) -> Option<Result<Tensor>> {
        let run = || {
            check_input("ConvTranspose2d", x, self.in_channels())?;
            let bias = self.bias.as_ref().map(Param::tensor);
            Ok(x.conv_transpose2d_act(&self.weight.tensor(), bias.as_ref(), self.opts, act)?)
        };
        Some(run())
    }

    fn children(&self, c: &mut Children) {
        c.param("weight", &self.weight).param_opt("bias", &self.bias);
    }

    fn describe(&self) -> String {
        format!("ConvTranspose2d {}→{}", self.in_channels(), self.out_channels())
    }
}
