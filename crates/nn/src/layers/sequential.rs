//! Sequential: children applied in order, named "0", "1", ... as in PyTorch.

use crate::module::{named_error, Children, Mode, Module};
use crate::Result;
use nabla_core::Tensor;

/// Modules applied one after another; child `i` is named `i` (`features.3.weight`).
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty sequence (the identity).
    pub fn new() -> Sequential {
        Sequential::default()
    }

    /// This sequence with `m` appended (builder style).
    pub fn push(mut self, m: impl Module + 'static) -> Sequential {
        self.layers.push(Box::new(m));
        self
    }

    /// Append a boxed module.
    pub fn add(&mut self, m: Box<dyn Module>) {
        self.layers.push(m);
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Child `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&dyn Module> {
        self.layers.get(i).map(|m| &**m)
    }

    /// Replace child `i` (e.g. a new classifier head), returning the old one.
    pub fn replace(&mut self, i: usize, m: Box<dyn Module>) -> Option<Box<dyn Module>> {
        let slot = self.layers.get_mut(i)?;
        Some(std::mem::replace(slot, m))
    }
}

impl From<Vec<Box<dyn Module>>> for Sequential {
    fn from(layers: Vec<Box<dyn Module>>) -> Self {
        Sequential { layers }
    }
}

impl Module for Sequential {
    /// Children in order; a child that can fuse the activation after it
    /// ([`Module::forward_then`]: a convolution, transposed convolution or training-mode
    /// batch norm, then ReLU or leaky ReLU) runs both as one op,
    /// except while a summary records each child's output.
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut y = x.clone();
        let mut i = 0;
        while let Some(m) = self.layers.get(i) {
            let name = i.to_string();
            let next = self.layers.get(i + 1).and_then(|n| n.fusable_activation());
            let fused = next
                .filter(|_| !crate::summary::is_recording())
                .and_then(|act| m.forward_then(&y, act, mode));
            match fused {
                Some(out) => {
                    y = out.map_err(|e| named_error(e, &name, || m.describe()))?;
                    i += 2;
                }
                None => {
                    y = m.forward_named(&name, &y, mode)?;
                    i += 1;
                }
            }
        }
        Ok(y)
    }

    fn children(&self, c: &mut Children) {
        for (i, m) in self.layers.iter().enumerate() {
            c.module(&i.to_string(), &**m);
        }
    }

    fn describe(&self) -> String {
        format!("Sequential of {}", self.layers.len())
    }
}
