//! A multilayer perceptron: the input flattened to `C·H·W` features, hidden linear layers
//! each followed by the chosen activation, and a linear output layer.
//!
//! ```
//! use nabla_core::{DType, Generator, Tensor};
//! use nabla_models::Mlp;
//! use nabla_nn::{Mode, Module};
//! let mlp = Mlp::new(784, &[256, 128], 10, "relu", &mut Generator::new(0))?;
//! let y = mlp.forward(&Tensor::zeros(&[8, 1, 28, 28], DType::F32), Mode::Eval)?;
//! assert_eq!(y.shape(), &[8, 10]);
//! assert_eq!(mlp.num_parameters(), 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::layers::{activation, check_positive};
use nabla_core::{Generator, Tensor};
use nabla_nn::{Children, Linear, Mode, Module, Result, Sequential};

/// Flatten, then `layers` (`layers.0` Linear, `layers.1` activation, ..., last Linear).
pub struct Mlp {
    /// The linear layers and activations.
    pub layers: Sequential,
    in_features: usize,
    out_features: usize,
}

impl Mlp {
    /// `in_features → hidden[0] → … → out_features`, `act` after every hidden layer (see
    /// [`crate::layers::ACTIVATIONS`]); PyTorch's default initialization.
    pub fn new(in_features: usize, hidden: &[usize], out_features: usize, act: &str, g: &mut Generator) -> Result<Mlp> {
        check_positive("mlp", "the input size", in_features)?;
        check_positive("mlp", "the output size", out_features)?;
        let mut layers = Sequential::new();
        let mut width = in_features;
        for &h in hidden {
            check_positive("mlp", "every hidden size", h)?;
            layers = layers.push(Linear::new(width, h, g));
            layers.add(activation(act)?);
            width = h;
        }
        layers = layers.push(Linear::new(width, out_features, g));
        Ok(Mlp {
            layers,
            in_features,
            out_features,
        })
    }

    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.in_features
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        // [N, C, H, W] images and [N, D] rows alike.
        let x = if x.rank() > 2 { x.flatten(1, -1)? } else { x.clone() };
        self.layers.forward_named("layers", &x, mode)
    }

    fn children(&self, c: &mut Children) {
        c.module("layers", &self.layers);
    }

    fn describe(&self) -> String {
        format!("Mlp {}→{}", self.in_features, self.out_features)
    }
}
