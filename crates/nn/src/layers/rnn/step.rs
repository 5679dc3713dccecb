//! One time step of each recurrent cell, shared by the sequence layers and the cells.
//!
//! The input's share of the gates (`x·W_ihᵀ + b`) comes in precomputed: the sequence
//! layers compute it for every step at once in one product, so a step is one product for
//! the hidden state plus the gate nonlinearities.

use crate::Result;
use nabla_core::Tensor;

/// The cell kinds, with their gate counts (PyTorch's gate order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// Elman cell with tanh.
    Tanh,
    /// Elman cell with ReLU.
    Relu,
    /// LSTM: gates i, f, g, o.
    Lstm,
    /// GRU: gates r, z, n.
    Gru,
}

impl CellKind {
    /// Gates per hidden unit (rows of `W_ih` per unit).
    pub fn gates(self) -> usize {
        match self {
            CellKind::Tanh | CellKind::Relu => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    /// PyTorch's class name, for error messages.
    pub fn layer_name(self) -> &'static str {
        match self {
            CellKind::Tanh | CellKind::Relu => "RNN",
            CellKind::Lstm => "LSTM",
            CellKind::Gru => "GRU",
        }
    }

    /// Whether `b_hh` can be folded into the input's product: everywhere but GRU's n gate,
    /// where it sits inside `r ⊙ (W_hn h + b_hn)`.
    pub fn folds_hidden_bias(self) -> bool {
        self != CellKind::Gru
    }
}

/// The weights of one cell (one layer and direction).
pub struct CellWeights<'a> {
    /// `W_hh` `[gates·H, H]`.
    pub w_hh: &'a Tensor,
    /// `b_hh` `[gates·H]`, only where it was not folded into the input's share (GRU).
    pub b_hh: Option<&'a Tensor>,
}

/// One step: `xg` `[N, gates·H]` (the input's share, biases folded as
/// [`CellKind::folds_hidden_bias`] says), `h` `[N, H]`, `c` `[N, H]` for LSTM. Returns the
/// new `h` and (LSTM) `c`.
pub fn step(
    kind: CellKind,
    xg: &Tensor,
    h: &Tensor,
    c: Option<&Tensor>,
    w: &CellWeights,
) -> Result<(Tensor, Option<Tensor>)> {
    let hs = h.shape()[1];
    match kind {
        CellKind::Tanh | CellKind::Relu => {
            let pre = xg.add(&h.linear(w.w_hh, None)?)?;
            let h = if kind == CellKind::Tanh {
                pre.tanh()?
            } else {
                pre.relu()?
            };
            Ok((h, None))
        }
        CellKind::Lstm => {
            let gates = xg.add(&h.linear(w.w_hh, None)?)?;
            // The gate nonlinearities and the state update in one op (core's lstm_cell).
            let (h, c) = Tensor::lstm_cell(&gates, c.expect("an LSTM step has a cell state"))?;
            Ok((h, Some(c)))
        }
        CellKind::Gru => {
            let hg = h.linear(w.w_hh, w.b_hh)?;
            let rz = xg.narrow(1, 0, 2 * hs)?.add(&hg.narrow(1, 0, 2 * hs)?)?.sigmoid()?;
            let r = rz.narrow(1, 0, hs)?;
            let z = rz.narrow(1, hs, hs)?;
            let n = xg
                .narrow(1, 2 * hs, hs)?
                .add(&r.mul(&hg.narrow(1, 2 * hs, hs)?)?)?
                .tanh()?;
            // (1 − z)·n + z·h, as n + z·(h − n): one op fewer.
            let h = n.add(&z.mul(&h.sub(&n)?)?)?;
            Ok((h, None))
        }
    }
}
