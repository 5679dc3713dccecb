//! Shape-only modules: Flatten and Identity.

use crate::module::{Mode, Module};
use crate::Result;
use nabla_core::Tensor;

/// Merges dims `start_dim..=end_dim` (default 1..=−1: everything but the batch dim).
#[derive(Debug, Clone, Copy)]
pub struct Flatten {
    /// First dim to merge.
    pub start_dim: isize,
    /// Last dim to merge (negative counts from the end).
    pub end_dim: isize,
}

impl Flatten {
    /// Flatten dims `start_dim..=end_dim`.
    pub fn new(start_dim: isize, end_dim: isize) -> Self {
        Flatten { start_dim, end_dim }
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten::new(1, -1)
    }
}

impl Module for Flatten {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        Ok(x.flatten(self.start_dim, self.end_dim)?)
    }
}

/// Returns its input (a placeholder, e.g. for a removed classifier head).
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

impl Module for Identity {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        Ok(x.clone())
    }
}
