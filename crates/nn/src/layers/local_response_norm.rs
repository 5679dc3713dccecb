//! Local response normalization across channels (AlexNet).

use crate::functional;
use crate::module::{Mode, Module};
use crate::Result;
use nabla_core::Tensor;

/// `x_c / (k + alpha/size · Σ x_{c'}²)^beta` over a window of `size` neighbouring channels,
/// zero-padded at the edges (PyTorch's `nn.LocalResponseNorm`). Input `[N, C, ...]`.
#[derive(Debug, Clone, Copy)]
pub struct LocalResponseNorm {
    /// Number of channels in the window.
    pub size: usize,
    /// Scale of the sum (default 1e-4).
    pub alpha: f64,
    /// Exponent (default 0.75).
    pub beta: f64,
    /// Additive constant (default 1).
    pub k: f64,
}

impl LocalResponseNorm {
    /// A layer with the given window and PyTorch's defaults α = 1e-4, β = 0.75, k = 1.
    pub fn new(size: usize) -> Self {
        Self::with_params(size, 1e-4, 0.75, 1.0)
    }

    /// A layer with every constant given (AlexNet: 5, 1e-4, 0.75, 2).
    pub fn with_params(size: usize, alpha: f64, beta: f64, k: f64) -> Self {
        LocalResponseNorm { size, alpha, beta, k }
    }
}

impl Module for LocalResponseNorm {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        functional::local_response_norm(x, self.size, self.alpha, self.beta, self.k)
    }
    fn describe(&self) -> String {
        format!("LocalResponseNorm {}", self.size)
    }
}
