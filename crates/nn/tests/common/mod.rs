//! Helpers the integration tests share (a folder, so Cargo does not build it as a test of
//! its own).

use nabla_core::Tensor;

/// `p ← p − lr·∂p` for the parameters that have a gradient.
pub fn sgd_step(params: &[Tensor], grads: &nabla_core::Gradients, lr: f64) {
    for p in params {
        if let Some(g) = grads.get(p) {
            p.assign(&p.sub(&g.mul_scalar(lr).unwrap()).unwrap()).unwrap();
        }
    }
}
