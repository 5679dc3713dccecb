//! [`Param`]: one parameter or buffer of a module, the tensor it holds for life, and
//! whether it is frozen or was handed out to an optimizer.

use crate::{Error, Result};
use nabla_core::{DType, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

/// What a [`Param`] is to its module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// A trained parameter (a leaf that requires a gradient unless frozen).
    Parameter,
    /// A saved, untrained value updated in place (batch norm's running statistics).
    Buffer,
    /// An integer-valued buffer held as f64 (batch norm's `num_batches_tracked`): it keeps
    /// f64 when the model changes dtype and loads from any dtype, as PyTorch's int64 does.
    Counter,
}

/// A parameter or buffer of a module.
///
/// It holds one tensor for its whole life: optimizers update that tensor in place, so the
/// module sees every update. Freezing does not replace it either: a frozen parameter is
/// handed to `forward` detached, so no gradient reaches the stored leaf. The one change of
/// tensor, [`Param::convert`], is refused once the leaf was handed out in a parameter list
/// (what optimizers are built from), since the holder would keep the old tensor.
#[derive(Debug)]
pub struct Param {
    value: RwLock<Tensor>,
    kind: ParamKind,
    frozen: AtomicBool,
    lent: AtomicBool,
}

impl Param {
    /// A trainable parameter: `t` itself if it is already a leaf requiring a gradient
    /// (so callers keep its identity), else a new leaf sharing its storage.
    pub fn new(t: Tensor) -> Param {
        let leaf = if t.requires_grad() && t.is_leaf() {
            t
        } else {
            // Optimizers update in place, which needs row-major storage.
            let t = if t.is_contiguous() {
                t
            } else {
                t.detach().contiguous().unwrap_or(t)
            };
            t.set_requires_grad(true)
        };
        Param::with_kind(leaf, ParamKind::Parameter)
    }

    /// A buffer: saved in state dicts, never trained.
    pub fn buffer(t: Tensor) -> Param {
        Param::with_kind(t.detach(), ParamKind::Buffer)
    }

    /// An integer-valued buffer (see [`ParamKind::Counter`]).
    pub fn counter(t: Tensor) -> Param {
        Param::with_kind(t.detach(), ParamKind::Counter)
    }

    fn with_kind(t: Tensor, kind: ParamKind) -> Param {
        Param {
            value: RwLock::new(t),
            kind,
            frozen: AtomicBool::new(false),
            lent: AtomicBool::new(false),
        }
    }

    /// Parameter, buffer or counter.
    pub fn kind(&self) -> ParamKind {
        self.kind
    }

    /// Whether this is a buffer or counter rather than a parameter.
    pub fn is_buffer(&self) -> bool {
        self.kind != ParamKind::Parameter
    }

    /// The stored tensor: the leaf that optimizers update and gradients are keyed by.
    pub fn leaf(&self) -> Tensor {
        self.value.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The leaf, marked as handed out to a holder that keeps it (an optimizer): from now
    /// on [`Param::convert`] refuses to replace it.
    pub fn lend(&self) -> Tensor {
        self.lent.store(true, Ordering::Relaxed);
        self.leaf()
    }

    /// Whether [`Param::lend`] handed the leaf out.
    pub fn is_lent(&self) -> bool {
        self.lent.load(Ordering::Relaxed)
    }

    /// The tensor a forward pass uses: the leaf, or a detached view of it when frozen.
    pub fn tensor(&self) -> Tensor {
        let t = self.leaf();
        if self.frozen.load(Ordering::Relaxed) {
            t.detach()
        } else {
            t
        }
    }

    /// Whether gradients reach this parameter (false for buffers and frozen parameters).
    pub fn trainable(&self) -> bool {
        self.kind == ParamKind::Parameter && !self.frozen.load(Ordering::Relaxed)
    }

    /// Freeze (`false`) or unfreeze (`true`) a parameter; no effect on buffers.
    pub fn set_trainable(&self, on: bool) {
        if self.kind == ParamKind::Parameter {
            self.frozen.store(!on, Ordering::Relaxed);
        }
    }

    /// Replace the stored tensor by a copy in `dtype` (a new leaf). Counters stay f64. A
    /// parameter whose leaf was lent (to an optimizer, through [`crate::Module::parameters`] and
    /// its kin) is refused: the optimizer would go on updating the old tensor.
    pub fn convert(&self, dtype: DType) -> Result<()> {
        if !self.needs_conversion(dtype) {
            return Ok(());
        }
        if self.is_lent() {
            return Err(Error::State(format!(
                "cannot convert to {dtype:?}: the parameters were already handed out (to an \
                 optimizer?), which would keep updating the old tensors; build the layers in \
                 {dtype:?} (LayerOptions::dtype), or convert before taking parameters()"
            )));
        }
        let old = self.leaf();
        let new = old.detach().to_dtype(dtype)?.contiguous()?;
        let new = match self.kind {
            ParamKind::Parameter => new.set_requires_grad(true),
            _ => new,
        };
        *self.value.write().unwrap_or_else(|e| e.into_inner()) = new;
        Ok(())
    }
}

impl Param {
    /// Whether [`Param::convert`] to `dtype` would replace the tensor.
    pub(crate) fn needs_conversion(&self, dtype: DType) -> bool {
        self.kind != ParamKind::Counter && self.leaf().dtype() != dtype
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_param_is_handed_out_detached() {
        let p = Param::new(Tensor::ones(&[2], DType::F32));
        assert!(p.tensor().requires_grad() && p.trainable());
        p.set_trainable(false);
        assert!(!p.tensor().requires_grad() && !p.trainable());
        assert!(p.leaf().requires_grad(), "the stored leaf keeps its identity");
        assert!(p.tensor().shares_storage(&p.leaf()));
        let b = Param::buffer(Tensor::ones(&[2], DType::F32));
        b.set_trainable(true);
        assert!(!b.trainable() && !b.tensor().requires_grad());
    }
}
