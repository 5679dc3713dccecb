//! Reverse-mode automatic differentiation over a graph recorded as ops run.
//!
//! ```
//! use nabla_core::{Tensor, DType};
//! let x = Tensor::from_vec(vec![2.0f64], &[1])?.set_requires_grad(true);
//! let y = x.mul(&x)?.mul(&x)?.sum_all()?; // x³
//! let g = y.backward()?;
//! assert_eq!(g.get(&x).unwrap().to_vec::<f64>()?, vec![12.0]); // 3x²
//! # Ok::<(), nabla_core::Error>(())
//! ```
//!
//! Each tensor that requires a gradient carries a [`GradMeta`]: its identity in the
//! graph and, unless it is a leaf, the [`Node`] that made it. Nodes hold the
//! backward rule (a closure written with tensor ops) and edges to their inputs'
//! metas, never the inputs' storage, so buffers are freed as soon as nothing
//! needs them.

mod dot;
mod engine;
mod hooks;
mod mode;
#[cfg(test)]
mod tests;

pub use dot::to_dot;
pub use engine::{grad, BackwardOptions, Gradients};
pub use hooks::{on_grad_ready, GradReadyHook};
pub use mode::{enable_grad, is_grad_enabled, no_grad, GradModeGuard};

use crate::{Result, Tensor};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A backward rule: given the gradient of the output and which inputs need one,
/// the gradient of each input (`None` where not needed).
pub type BackwardFn = Box<dyn Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// A fresh identity for a graph value.
pub(crate) fn next_id() -> usize {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The autograd identity of a tensor that requires a gradient.
pub struct GradMeta {
    pub(crate) id: usize,
    pub(crate) shape: Vec<usize>,
    pub(crate) node: Option<Node>,
}

impl GradMeta {
    /// A leaf: a value created by the user, where gradients collect.
    pub(crate) fn leaf(shape: &[usize]) -> Arc<Self> {
        Arc::new(GradMeta {
            id: next_id(),
            shape: shape.to_vec(),
            node: None,
        })
    }

    /// Whether this is a leaf (no op made it).
    pub fn is_leaf(&self) -> bool {
        self.node.is_none()
    }
}

/// An input of a recorded op as the graph sees it.
pub enum Edge {
    /// An input that requires a gradient.
    Grad(Arc<GradMeta>),
    /// An input that does not: a constant, or a detached tensor.
    Const {
        /// The input's shape (shown in the DOT export).
        shape: Vec<usize>,
        /// Whether it was cut from the graph by `detach`.
        detached: bool,
    },
}

/// A recorded op: its name, its inputs and its backward rule.
pub struct Node {
    pub(crate) name: &'static str,
    pub(crate) inputs: Vec<Edge>,
    pub(crate) backward: Mutex<Option<BackwardFn>>,
}

impl Tensor {
    /// A custom differentiable op (PyTorch's `autograd.Function`): `self` was computed from
    /// `inputs` outside the graph (e.g. by another process), and `backward` gives each
    /// input's gradient from the result's (`None` where not needed, as the flags say).
    pub fn with_backward(
        self,
        name: &'static str,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    ) -> Tensor {
        self.record(name, inputs, backward)
    }

    /// Record the result of an op. `inputs` are the op's tensor inputs in the order the
    /// backward rule returns their gradients. Nothing is recorded in a no-grad scope or
    /// when no input requires a gradient.
    pub(crate) fn record(
        self,
        name: &'static str,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    ) -> Tensor {
        crate::profile::mark(name);
        if !is_grad_enabled() || !inputs.iter().any(|t| t.requires_grad()) {
            return self;
        }
        let edges = inputs
            .iter()
            .map(|t| match t.grad_meta() {
                Some(m) => Edge::Grad(m.clone()),
                None => Edge::Const {
                    shape: t.shape().to_vec(),
                    detached: t.is_detached(),
                },
            })
            .collect();
        let meta = Arc::new(GradMeta {
            id: next_id(),
            shape: self.shape().to_vec(),
            node: Some(Node {
                name,
                inputs: edges,
                backward: Mutex::new(Some(Box::new(backward))),
            }),
        });
        self.with_meta(Some(meta))
    }
}
