//! Building blocks the zoo needs beyond nabla-nn's layers (`Unflatten`), an activation
//! lookup by name, and small constructors and initializers shared by the model files.
//! The pooling modules are nabla-nn's, re-exported here for the model files.
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_models::layers::MaxPool2d;
//! use nabla_nn::{Mode, Module};
//! let pool = MaxPool2d::new(3, 2);
//! let y = pool.forward(&Tensor::zeros(&[1, 96, 55, 55], DType::F32), Mode::Eval)?;
//! assert_eq!(y.shape(), &[1, 96, 27, 27]);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use nabla_core::{Conv2dOptions, DType, Generator, Tensor};
use nabla_nn::init::{self, FanMode, Nonlinearity};
pub use nabla_nn::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
use nabla_nn::{
    BatchNorm2d, BatchNormOptions, Conv2d, Error, Identity, LayerOptions, LeakyReLU, Linear, Mode, Module, ReLU,
    Result, Sigmoid, Softplus, Tanh, ELU, GELU,
};

/// Reshapes `[N, C·H·W]` to `[N, C, H, W]` (PyTorch's `nn.Unflatten(1, (C, H, W))`).
#[derive(Debug, Clone, Copy)]
pub struct Unflatten {
    /// The per-sample shape `[C, H, W]`.
    pub shape: [usize; 3],
}

impl Module for Unflatten {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        let [c, h, w] = self.shape;
        Ok(x.reshape([x.size(0)?, c, h, w])?)
    }
    fn describe(&self) -> String {
        format!("Unflatten {:?}", self.shape)
    }
}

/// The activation names [`activation`] knows.
pub const ACTIVATIONS: [&str; 8] = [
    "relu",
    "tanh",
    "sigmoid",
    "gelu",
    "leaky_relu",
    "elu",
    "softplus",
    "identity",
];

/// An activation module by name (see [`ACTIVATIONS`]; case-insensitive).
pub fn activation(name: &str) -> Result<Box<dyn Module>> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "relu" => Box::new(ReLU),
        "tanh" => Box::new(Tanh),
        "sigmoid" => Box::new(Sigmoid),
        "gelu" => Box::new(GELU::default()),
        "leaky_relu" | "leakyrelu" => Box::new(LeakyReLU::default()),
        "elu" => Box::new(ELU::default()),
        "softplus" => Box::new(Softplus::default()),
        "identity" | "linear" | "none" => Box::new(Identity),
        _ => {
            return Err(Error::Config(format!(
                "unknown activation {name:?}; known: {}",
                ACTIVATIONS.join(", ")
            )))
        }
    })
}

/// A square convolution's kernel side, stride, padding and bias, for [`conv`]: stride 1,
/// no padding and a bias unless said otherwise (PyTorch's defaults).
///
/// ```
/// use nabla_core::Generator;
/// use nabla_models::layers::{conv, SquareConv};
/// use nabla_nn::Module;
/// let c = conv(3, 64, SquareConv::new(7).stride(2).padding(3).no_bias(), &mut Generator::new(0))?;
/// assert_eq!((c.options().stride, c.options().padding), ([2, 2], [3, 3]));
/// assert_eq!(c.state_dict().len(), 1);
/// # Ok::<(), nabla_nn::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SquareConv {
    /// Kernel side `k` (a `k×k` window).
    pub kernel: usize,
    /// Step between windows along both axes.
    pub stride: usize,
    /// Zeros added on each side along both axes.
    pub padding: usize,
    /// Whether the convolution has a bias.
    pub bias: bool,
}

impl SquareConv {
    /// A `k×k` window, stride 1, no padding, with a bias.
    pub fn new(kernel: usize) -> SquareConv {
        SquareConv {
            kernel,
            stride: 1,
            padding: 0,
            bias: true,
        }
    }

    /// This window with stride `s`.
    pub fn stride(self, s: usize) -> SquareConv {
        SquareConv { stride: s, ..self }
    }

    /// This window with padding `p`.
    pub fn padding(self, p: usize) -> SquareConv {
        SquareConv { padding: p, ..self }
    }

    /// This convolution without a bias (followed by a batch norm).
    pub fn no_bias(self) -> SquareConv {
        SquareConv { bias: false, ..self }
    }
}

/// A square convolution as `spec` says, PyTorch's default initialization, f32.
pub fn conv(c_in: usize, c_out: usize, spec: SquareConv, g: &mut Generator) -> Result<Conv2d> {
    let opts = Conv2dOptions {
        stride: [spec.stride; 2],
        padding: [spec.padding; 2],
        ..Default::default()
    };
    let layer = LayerOptions::default().with_bias(spec.bias);
    Conv2d::with_options(c_in, c_out, [spec.kernel; 2], opts, layer, g)
}

/// Batch norm over `c` channels with the given ε (PyTorch's default momentum).
pub fn batch_norm(c: usize, eps: f64) -> BatchNorm2d {
    BatchNorm2d::with_options(
        c,
        BatchNormOptions {
            eps,
            ..Default::default()
        },
    )
}

/// Output length of a convolution or pooling along one axis (PyTorch's formula), or `None`
/// when the window does not fit.
pub fn out_len(n: usize, k: usize, stride: usize, padding: usize, ceil: bool) -> Option<usize> {
    let span = (n + 2 * padding).checked_sub(k)?;
    let mut out = span / stride + 1;
    // In ceil mode the last window must start inside the input or the left padding.
    if ceil && span % stride != 0 && (out * stride) < n + padding {
        out += 1;
    }
    Some(out)
}

/// A convolution or pooling window along both axes: (kernel, stride, padding, ceil mode).
pub type Window = (usize, usize, usize, bool);

/// The `[H, W]` after applying `windows` in turn to `input`, or a config error naming
/// `model` when the input is too small for them.
pub fn spatial(model: &str, input: [usize; 2], windows: &[Window]) -> Result<[usize; 2]> {
    let side = |mut n: usize| {
        for &(k, s, p, ceil) in windows {
            n = out_len(n, k, s, p, ceil).filter(|&n| n > 0)?;
        }
        Some(n)
    };
    match (side(input[0]), side(input[1])) {
        (Some(h), Some(w)) => Ok([h, w]),
        _ => Err(Error::Config(format!(
            "{model}: input {}×{} is too small for its convolutions and pooling \
             (use a larger input, or small_input for 28×28 and 32×32 images)",
            input[0], input[1]
        ))),
    }
}

/// `kaiming_normal_(mode="fan_out", nonlinearity="relu")` on a conv weight, zero bias
/// (torchvision's ResNet and VGG convolutions).
pub fn kaiming_conv(c: &Conv2d, g: &mut Generator) -> Result<()> {
    init::kaiming_normal_(&c.weight.leaf(), 0.0, FanMode::FanOut, Nonlinearity::Relu, g)?;
    if let Some(b) = &c.bias {
        init::zeros_(&b.leaf())?;
    }
    Ok(())
}

/// A linear layer with N(0, std²) weights and a zero bias (torchvision's VGG and, with
/// std 0.01, GoogLeNet heads). Drawn once, not over a default initialization: VGG's
/// classifier has over 100M weights.
pub fn normal_linear(in_features: usize, out_features: usize, std: f64, g: &mut Generator) -> Result<Linear> {
    let w = Tensor::normal(&[out_features, in_features], 0.0, std, DType::F32, g);
    Linear::from_parts(w, Some(Tensor::zeros(&[out_features], DType::F32)))
}

/// Check that `cfg`-style sizes are positive, naming the model.
pub fn check_positive(model: &str, what: &str, v: usize) -> Result<()> {
    if v == 0 {
        return Err(Error::Config(format!("{model}: {what} must be positive")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_len_follows_pytorch() {
        assert_eq!(out_len(227, 11, 4, 0, false), Some(55));
        assert_eq!(out_len(55, 3, 2, 0, false), Some(27));
        assert_eq!(out_len(112, 3, 2, 0, true), Some(56));
        assert_eq!(out_len(56, 3, 2, 0, true), Some(28));
        assert_eq!(out_len(14, 3, 2, 0, true), Some(7));
        assert_eq!(out_len(7, 2, 2, 0, true), Some(4));
        assert_eq!(out_len(2, 5, 1, 0, false), None);
    }

    #[test]
    fn unknown_activation_lists_the_known_ones() {
        let e = activation("swishy").err().unwrap().to_string();
        assert!(e.contains("swishy") && e.contains("gelu"), "{e}");
        let t = Tensor::from_vec(vec![-1.0f32, 2.0], &[2]).unwrap();
        let y = activation("ReLU").unwrap().forward(&t, Mode::Eval).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![0.0, 2.0]);
    }
}
