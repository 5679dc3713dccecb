//! Linear (fully connected) layer: `y = x · Wᵀ + b`.

use crate::init::default_uniform;
use crate::module::{Children, Mode, Module, Param};
use crate::{LayerOptions, Result};
use nabla_core::{Activation, Generator, Tensor};

/// Applies `x · weightᵀ + bias` to the last dim of `x`: `[.., in]` → `[.., out]`.
/// Parameters: `weight` `[out, in]`, `bias` `[out]`.
#[derive(Debug)]
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: Param,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Param>,
}

impl Linear {
    /// A layer with a bias, initialized as PyTorch does: weight and bias from
    /// U(−1/√in, 1/√in), f32.
    pub fn new(in_features: usize, out_features: usize, g: &mut Generator) -> Linear {
        Linear::with_options(in_features, out_features, LayerOptions::default(), g)
    }

    /// A layer with or without a bias, in a given dtype (see [`LayerOptions`]), initialized
    /// as [`Linear::new`].
    pub fn with_options(in_features: usize, out_features: usize, opts: LayerOptions, g: &mut Generator) -> Linear {
        let weight = default_uniform(&[out_features, in_features], in_features, opts.dtype, g);
        let bias = opts
            .bias
            .then(|| Param::new(default_uniform(&[out_features], in_features, opts.dtype, g)));
        Linear {
            weight: Param::new(weight),
            bias,
        }
    }

    /// A layer around given tensors (kept as they are if they are leaves requiring a gradient).
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        let [out, _] = *weight.shape() else {
            return Err(invalid(format!(
                "weight must be [out, in], got shape {:?}",
                weight.shape()
            )));
        };
        if let Some(b) = &bias {
            if b.shape() != [out] {
                return Err(invalid(format!("bias must be [{out}], got shape {:?}", b.shape())));
            }
        }
        Ok(Linear {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
        })
    }

    /// Size of each input sample.
    pub fn in_features(&self) -> usize {
        self.weight.leaf().shape()[1]
    }

    /// Size of each output sample.
    pub fn out_features(&self) -> usize {
        self.weight.leaf().shape()[0]
    }
}

fn invalid(msg: String) -> crate::Error {
    nabla_core::Error::invalid("Linear", msg).into()
}

impl Linear {
    /// An input's last dim must be the layer's input features.
    fn check_input(&self, x: &Tensor) -> Result<()> {
        let n_in = self.in_features();
        if x.rank() == 0 || x.shape()[x.rank() - 1] != n_in {
            return Err(invalid(format!(
                "input of shape {:?} must have {n_in} features in its last dim",
                x.shape()
            )));
        }
        Ok(())
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        self.check_input(x)?;
        let bias = self.bias.as_ref().map(Param::tensor);
        // One product with the bias folded in (core's fused op), not matmul + add.
        Ok(x.linear(&self.weight.tensor(), bias.as_ref())?)
    }

    /// The product and `act` as one op in any mode (`Tensor::linear_act`).
    fn forward_then(&self, x: &Tensor, act: Activation, _mode: Mode) -> Option<Result<Tensor>> {
        let run = || {
            self.check_input(x)?;
            let bias = self.bias.as_ref().map(Param::tensor);
            Ok(x.linear_act(&self.weight.tensor(), bias.as_ref(), act)?)
        };
        Some(run())
    }

    fn children(&self, c: &mut Children) {
        c.param("weight", &self.weight).param_opt("bias", &self.bias);
    }

    fn describe(&self) -> String {
        format!("Linear {}→{}", self.in_features(), self.out_features())
    }
}
