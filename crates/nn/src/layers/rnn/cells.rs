//! The single-step cells, for decoding one token at a time: [`RNNCell`], [`LSTMCell`],
//! [`GRUCell`], with PyTorch's parameter names (`weight_ih`, `weight_hh`, `bias_ih`,
//! `bias_hh`) and initialization.

use super::step::{step, CellKind, CellWeights};
use super::RnnNonlinearity;
use crate::module::{Children, Mode, Module, Param};
use crate::{LayerOptions, Result};
use nabla_core::{Generator, Tensor};

/// What the three cells share: the kind, weights and checks.
#[derive(Debug)]
struct Cell {
    kind: CellKind,
    weight_ih: Param,
    weight_hh: Param,
    bias_ih: Option<Param>,
    bias_hh: Option<Param>,
}

impl Cell {
    fn new(kind: CellKind, input: usize, hidden: usize, opts: LayerOptions, g: &mut Generator) -> Cell {
        let gh = kind.gates() * hidden;
        let k = if hidden > 0 { 1.0 / (hidden as f64).sqrt() } else { 0.0 };
        let mut u = |shape: &[usize]| Param::new(Tensor::uniform(shape, -k, k, opts.dtype, g));
        let weight_ih = u(&[gh, input]);
        let weight_hh = u(&[gh, hidden]);
        let (bias_ih, bias_hh) = if opts.bias {
            (Some(u(&[gh])), Some(u(&[gh])))
        } else {
            (None, None)
        };
        Cell {
            kind,
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        }
    }

    fn name(&self) -> &'static str {
        match self.kind {
            CellKind::Tanh | CellKind::Relu => "RNNCell",
            CellKind::Lstm => "LSTMCell",
            CellKind::Gru => "GRUCell",
        }
    }

    fn sizes(&self) -> (usize, usize) {
        let s = self.weight_ih.leaf().shape().to_vec();
        (s[1], self.weight_hh.leaf().shape()[1])
    }

    fn err(&self, msg: String) -> crate::Error {
        nabla_core::Error::invalid(self.name(), msg).into()
    }

    /// One step from `x` `[N, I]` (or `[I]`) and the states `[N, H]` (or `[H]`; zeros when
    /// absent).
    fn run(&self, x: &Tensor, h: Option<&Tensor>, c: Option<&Tensor>) -> Result<(Tensor, Option<Tensor>)> {
        let (input, hidden) = self.sizes();
        if hidden == 0 {
            return Err(self.err("hidden_size is 0; it must be at least 1".into()));
        }
        if !(x.rank() == 1 || x.rank() == 2) || x.shape()[x.rank() - 1] != input {
            return Err(self.err(format!(
                "expects input [N, {input}] or [{input}], got shape {:?}",
                x.shape()
            )));
        }
        let unbatched = x.rank() == 1;
        let x = if unbatched { x.unsqueeze(0)? } else { x.clone() };
        let n = x.shape()[0];
        let want: Vec<usize> = if unbatched { vec![hidden] } else { vec![n, hidden] };
        let zeros = Tensor::zeros(&[n, hidden], x.dtype());
        let state = |what: &str, s: Option<&Tensor>| -> Result<Tensor> {
            match s {
                None => Ok(zeros.clone()),
                Some(s) if s.shape() == want.as_slice() => Ok(if unbatched { s.unsqueeze(0)? } else { s.clone() }),
                Some(s) => Err(self.err(format!("{what} must have shape {want:?}, got {:?}", s.shape()))),
            }
        };
        let h = state("h", h)?;
        let c = (self.kind == CellKind::Lstm).then(|| state("c", c)).transpose()?;
        let folded = self.kind.folds_hidden_bias();
        let b_ih = self.bias_ih.as_ref().map(Param::tensor);
        let b_hh = self.bias_hh.as_ref().map(Param::tensor);
        let bias = match (&b_ih, &b_hh) {
            (Some(a), Some(b)) if folded => Some(a.add(b)?),
            _ => b_ih,
        };
        let xg = x.linear(&self.weight_ih.tensor(), bias.as_ref())?;
        let w_hh = self.weight_hh.tensor();
        let cw = CellWeights {
            w_hh: &w_hh,
            b_hh: if folded { None } else { b_hh.as_ref() },
        };
        let (h, c) = step(self.kind, &xg, &h, c.as_ref(), &cw)?;
        let sq = |t: Tensor| if unbatched { t.squeeze(0) } else { Ok(t) };
        Ok((sq(h)?, c.map(sq).transpose()?))
    }

    fn children(&self, c: &mut Children) {
        c.param("weight_ih", &self.weight_ih)
            .param("weight_hh", &self.weight_hh)
            .param_opt("bias_ih", &self.bias_ih)
            .param_opt("bias_hh", &self.bias_hh);
    }

    fn describe(&self) -> String {
        let (i, h) = self.sizes();
        format!("{} {i}→{h}", self.name())
    }
}

macro_rules! cell_module {
    ($t:ident) => {
        impl $t {
            /// The input-to-hidden weights `[gates·H, I]`.
            pub fn weight_ih(&self) -> Tensor {
                self.cell.weight_ih.leaf()
            }
            /// The hidden-to-hidden weights `[gates·H, H]`.
            pub fn weight_hh(&self) -> Tensor {
                self.cell.weight_hh.leaf()
            }
        }

        impl Module for $t {
            /// The new hidden state from a zero state.
            fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
                Ok(self.cell.run(x, None, None)?.0)
            }
            fn children(&self, c: &mut Children) {
                self.cell.children(c);
            }
            fn describe(&self) -> String {
                self.cell.describe()
            }
        }
    };
}

/// One step of an Elman network (PyTorch's `nn.RNNCell`).
#[derive(Debug)]
pub struct RNNCell {
    cell: Cell,
}

impl RNNCell {
    /// A tanh cell with biases, f32, initialized from U(−1/√H, 1/√H).
    pub fn new(input_size: usize, hidden_size: usize, g: &mut Generator) -> RNNCell {
        RNNCell::with_options(
            input_size,
            hidden_size,
            RnnNonlinearity::Tanh,
            LayerOptions::default(),
            g,
        )
    }

    /// A cell with the given nonlinearity, bias and dtype.
    pub fn with_options(
        input: usize,
        hidden: usize,
        act: RnnNonlinearity,
        opts: LayerOptions,
        g: &mut Generator,
    ) -> RNNCell {
        let kind = match act {
            RnnNonlinearity::Tanh => CellKind::Tanh,
            RnnNonlinearity::Relu => CellKind::Relu,
        };
        RNNCell {
            cell: Cell::new(kind, input, hidden, opts, g),
        }
    }

    /// The next hidden state from `x` `[N, I]` and `h` `[N, H]` (zeros when `None`).
    pub fn step(&self, x: &Tensor, h: Option<&Tensor>) -> Result<Tensor> {
        Ok(self.cell.run(x, h, None)?.0)
    }
}

/// One step of an LSTM (PyTorch's `nn.LSTMCell`).
#[derive(Debug)]
pub struct LSTMCell {
    cell: Cell,
}

impl LSTMCell {
    /// A cell with biases, f32, initialized from U(−1/√H, 1/√H).
    pub fn new(input_size: usize, hidden_size: usize, g: &mut Generator) -> LSTMCell {
        LSTMCell::with_options(input_size, hidden_size, LayerOptions::default(), g)
    }

    /// A cell with the given bias and dtype.
    pub fn with_options(input: usize, hidden: usize, opts: LayerOptions, g: &mut Generator) -> LSTMCell {
        LSTMCell {
            cell: Cell::new(CellKind::Lstm, input, hidden, opts, g),
        }
    }

    /// The next `(h, c)` from `x` `[N, I]` and `state` `(h, c)`, each `[N, H]` (zeros when
    /// `None`).
    pub fn step(&self, x: &Tensor, state: Option<(&Tensor, &Tensor)>) -> Result<(Tensor, Tensor)> {
        let (h, c) = self.cell.run(x, state.map(|s| s.0), state.map(|s| s.1))?;
        Ok((h, c.expect("an LSTM cell has a cell state")))
    }
}

/// One step of a GRU (PyTorch's `nn.GRUCell`).
#[derive(Debug)]
pub struct GRUCell {
    cell: Cell,
}

impl GRUCell {
    /// A cell with biases, f32, initialized from U(−1/√H, 1/√H).
    pub fn new(input_size: usize, hidden_size: usize, g: &mut Generator) -> GRUCell {
        GRUCell::with_options(input_size, hidden_size, LayerOptions::default(), g)
    }

    /// A cell with the given bias and dtype.
    pub fn with_options(input: usize, hidden: usize, opts: LayerOptions, g: &mut Generator) -> GRUCell {
        GRUCell {
            cell: Cell::new(CellKind::Gru, input, hidden, opts, g),
        }
    }

    /// The next hidden state from `x` `[N, I]` and `h` `[N, H]` (zeros when `None`).
    pub fn step(&self, x: &Tensor, h: Option<&Tensor>) -> Result<Tensor> {
        Ok(self.cell.run(x, h, None)?.0)
    }
}

cell_module!(RNNCell);
cell_module!(LSTMCell);
cell_module!(GRUCell);
