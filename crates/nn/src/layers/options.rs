//! What a layer's weights are made as: with a bias or not, in which element type.

use nabla_core::DType;

/// The bias and dtype of a [`crate::Linear`], [`crate::Conv2d`] or
/// [`crate::ConvTranspose2d`] (PyTorch's defaults: a bias, f32). Set fields directly or
/// chain the `with_` methods:
///
/// ```
/// use nabla_core::{DType, Generator};
/// use nabla_nn::{LayerOptions, Linear, Module};
/// let mut g = Generator::new(0);
/// let fc = Linear::with_options(4, 8, LayerOptions::default().with_bias(false).with_dtype(DType::F64), &mut g);
/// assert_eq!(fc.state_dict().len(), 1);
/// assert_eq!(fc.weight.leaf().dtype(), DType::F64);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerOptions {
    /// Whether the layer has a learned bias (default true).
    pub bias: bool,
    /// Element type of the weights and bias (default f32).
    pub dtype: DType,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            bias: true,
            dtype: DType::F32,
        }
    }
}

impl LayerOptions {
    /// These options with or without a bias.
    pub fn with_bias(self, bias: bool) -> Self {
        LayerOptions { bias, ..self }
    }

    /// These options with weights in `dtype`.
    pub fn with_dtype(self, dtype: DType) -> Self {
        LayerOptions { dtype, ..self }
    }
}
