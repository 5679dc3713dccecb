//! Activation modules: ReLU, LeakyReLU, ELU, GELU, Sigmoid, Tanh, Softplus. No parameters.

use crate::module::{Mode, Module};
use crate::Result;
use nabla_core::{Activation, Tensor};

/// max(x, 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReLU;

impl Module for ReLU {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        Ok(x.relu()?)
    }
    fn fusable_activation(&self) -> Option<Activation> {
        Some(Activation::Relu)
    }
}

/// x for x > 0, `negative_slope`·x otherwise.
#[derive(Debug, Clone, Copy)]
pub struct LeakyReLU {
    /// Slope for negative inputs (PyTorch's default 0.01).
    pub negative_slope: f64,
}

impl LeakyReLU {
    /// A leaky ReLU with the given negative slope.
    pub fn new(negative_slope: f64) -> Self {
        LeakyReLU { negative_slope }
    }
}

impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU::new(0.01)
    }
}

impl Module for LeakyReLU {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        Ok(x.leaky_relu(self.negative_slope)?)
    }
    fn fusable_activation(&self) -> Option<Activation> {
        Some(Activation::LeakyRelu(self.negative_slope))
    }
    fn describe(&self) -> String {
        format!("LeakyReLU {}", self.negative_slope)
    }
}

/// x for x > 0, α(eˣ − 1) otherwise.
#[derive(Debug, Clone, Copy)]
pub struct ELU {
    /// Scale of the negative part (default 1).
    pub alpha: f64,
}

impl ELU {
    /// An ELU with the given α.
    pub fn new(alpha: f64) -> Self {
        ELU { alpha }
    }
}

impl Default for ELU {
    fn default() -> Self {
        ELU::new(1.0)
    }
}

impl Module for ELU {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        Ok(x.elu(self.alpha)?)
    }
}

/// How [`GELU`] evaluates the normal CDF.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Approximate {
    /// Exact: x·Φ(x) with the error function.
    #[default]
    None,
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    Tanh,
}

/// Gaussian error linear unit.
#[derive(Debug, Clone, Copy, Default)]
pub struct GELU {
    /// Exact or tanh approximation (PyTorch's `approximate`).
    pub approximate: Approximate,
}

impl GELU {
    /// A GELU evaluated as `approximate` says.
    pub fn new(approximate: Approximate) -> Self {
        GELU { approximate }
    }
}

impl Module for GELU {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        match self.approximate {
            Approximate::None => Ok(x.gelu()?),
            Approximate::Tanh => {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                let inner = x.add(&x.powf(3.0)?.mul_scalar(0.044715)?)?.mul_scalar(c)?;
                Ok(x.mul(&inner.tanh()?.add_scalar(1.0)?)?.mul_scalar(0.5)?)
            }
        }
    }
}

/// 1 / (1 + e⁻ˣ).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sigmoid;

impl Module for Sigmoid {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        Ok(x.sigmoid()?)
    }
}

/// Hyperbolic tangent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tanh;

impl Module for Tanh {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        Ok(x.tanh()?)
    }
}

/// log(1 + e^(βx)) / β, and x itself where βx > `threshold` (as PyTorch).
#[derive(Debug, Clone, Copy)]
pub struct Softplus {
    /// Sharpness β (default 1).
    pub beta: f64,
    /// Above this βx the function is linear (default 20).
    pub threshold: f64,
}

impl Softplus {
    /// A softplus with the given β and threshold.
    pub fn new(beta: f64, threshold: f64) -> Self {
        Softplus { beta, threshold }
    }
}

impl Default for Softplus {
    fn default() -> Self {
        Softplus::new(1.0, 20.0)
    }
}

impl Module for Softplus {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        let bx = x.mul_scalar(self.beta)?;
        let smooth = bx.softplus()?.div_scalar(self.beta)?;
        // 0/1 mask of the linear region; masks carry no gradient, the branches do.
        let linear = bx.gt(&Tensor::full(&[], self.threshold, x.dtype()))?;
        Ok(linear.mul(x)?.add(&linear.rsub_scalar(1.0)?.mul(&smooth)?)?)
    }
}
