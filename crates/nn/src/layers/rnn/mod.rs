//! Recurrent layers with PyTorch's semantics and parameter names: [`RNN`], [`LSTM`],
//! [`GRU`] over whole sequences (several layers, bidirectional, dropout between layers,
//! sequences of different lengths) and [`RNNCell`], [`LSTMCell`], [`GRUCell`] for one step.
//!
//! ```
//! use nabla_core::{DType, Generator, Tensor};
//! use nabla_nn::{Mode, RnnOptions, LSTM};
//! let mut g = Generator::new(0);
//! let lstm = LSTM::with_options(8, 16, RnnOptions::default().layers(2).bidirectional(true), &mut g);
//! let x = Tensor::randn(&[5, 3, 8], DType::F32, &mut g); // [T, N, I]
//! let (y, (h, c)) = lstm.forward_with(&x, None, Some(&[5, 2, 4]), Mode::Eval)?;
//! assert_eq!(y.shape(), &[5, 3, 32]);
//! assert_eq!(h.shape(), &[4, 3, 16]);
//! assert_eq!(c.shape(), h.shape());
//! # Ok::<(), nabla_nn::Error>(())
//! ```

mod cells;
mod layer;
mod step;

pub use cells::{GRUCell, LSTMCell, RNNCell};
pub use step::CellKind;

use crate::module::{Children, Mode, Module};
use crate::Result;
use layer::Stack;
use nabla_core::{DType, Generator, Tensor};

/// The options PyTorch's recurrent layers share (its defaults: one layer, biases, `[T, N, I]`
/// input, no dropout, one direction, f32).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RnnOptions {
    /// Stacked layers, each reading the previous one's output.
    pub num_layers: usize,
    /// Whether the cells have `bias_ih` and `bias_hh`.
    pub bias: bool,
    /// Input and output as `[N, T, ·]` rather than `[T, N, ·]` (states keep `[L·D, N, H]`).
    pub batch_first: bool,
    /// Dropout on each layer's output but the last, in training.
    pub dropout: f64,
    /// A second direction reading the sequence backwards; outputs are concatenated.
    pub bidirectional: bool,
    /// Element type of the weights.
    pub dtype: DType,
}

impl Default for RnnOptions {
    fn default() -> Self {
        RnnOptions {
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
            dtype: DType::F32,
        }
    }
}

impl RnnOptions {
    /// These options with `n` layers.
    pub fn layers(self, n: usize) -> Self {
        RnnOptions { num_layers: n, ..self }
    }
    /// These options with or without biases.
    pub fn bias(self, bias: bool) -> Self {
        RnnOptions { bias, ..self }
    }
    /// These options with `[N, T, ·]` input and output.
    pub fn batch_first(self, on: bool) -> Self {
        RnnOptions {
            batch_first: on,
            ..self
        }
    }
    /// These options with dropout `p` between layers.
    pub fn dropout(self, p: f64) -> Self {
        RnnOptions { dropout: p, ..self }
    }
    /// These options with or without the reverse direction.
    pub fn bidirectional(self, on: bool) -> Self {
        RnnOptions {
            bidirectional: on,
            ..self
        }
    }
    /// These options with weights in `dtype`.
    pub fn dtype(self, dtype: DType) -> Self {
        RnnOptions { dtype, ..self }
    }
    /// 2 when bidirectional, else 1.
    pub fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }
}

/// Which nonlinearity an [`RNN`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RnnNonlinearity {
    /// `tanh` (PyTorch's default).
    Tanh,
    /// `relu`.
    Relu,
}

macro_rules! shared_layer_items {
    ($t:ident) => {
        impl $t {
            /// Size of each input step.
            pub fn input_size(&self) -> usize {
                self.stack.input_size
            }
            /// Size of the hidden state.
            pub fn hidden_size(&self) -> usize {
                self.stack.hidden_size
            }
            /// The options the layer was built with.
            pub fn options(&self) -> RnnOptions {
                self.stack.opts
            }
        }

        impl Module for $t {
            /// The output sequence from zero initial states.
            fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
                Ok(self.stack.run(x, None, None, None, mode)?.output)
            }
            fn children(&self, c: &mut Children) {
                self.stack.children(c);
            }
            fn describe(&self) -> String {
                let o = self.stack.opts;
                let bi = if o.bidirectional { " bidirectional" } else { "" };
                format!(
                    "{} {}→{} ×{}{bi}",
                    stringify!($t),
                    self.stack.input_size,
                    self.stack.hidden_size,
                    o.num_layers
                )
            }
        }
    };
}

/// An Elman recurrent network, `h' = act(W_ih x + b_ih + W_hh h + b_hh)` (PyTorch's `nn.RNN`).
#[derive(Debug)]
pub struct RNN {
    stack: Stack,
}

impl RNN {
    /// One tanh layer with PyTorch's defaults and initialization (U(−1/√H, 1/√H)).
    pub fn new(input_size: usize, hidden_size: usize, g: &mut Generator) -> RNN {
        RNN::with_options(input_size, hidden_size, RnnNonlinearity::Tanh, RnnOptions::default(), g)
    }

    /// A stack with the given nonlinearity and options.
    pub fn with_options(
        input_size: usize,
        hidden_size: usize,
        act: RnnNonlinearity,
        opts: RnnOptions,
        g: &mut Generator,
    ) -> RNN {
        let kind = match act {
            RnnNonlinearity::Tanh => CellKind::Tanh,
            RnnNonlinearity::Relu => CellKind::Relu,
        };
        RNN {
            stack: Stack::new(kind, input_size, hidden_size, opts, g),
        }
    }

    /// The output sequence and the final hidden state `[layers·dirs, N, H]`, from `h0` (zeros
    /// when `None`); `lengths` gives each sequence's length as packed sequences do.
    pub fn forward_with(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        lengths: Option<&[usize]>,
        mode: Mode,
    ) -> Result<(Tensor, Tensor)> {
        let r = self.stack.run(x, h0, None, lengths, mode)?;
        Ok((r.output, r.h))
    }
}

/// A long short-term memory network (PyTorch's `nn.LSTM`): gates i, f, g, o.
#[derive(Debug)]
pub struct LSTM {
    stack: Stack,
}

impl LSTM {
    /// One layer with PyTorch's defaults and initialization (U(−1/√H, 1/√H)).
    pub fn new(input_size: usize, hidden_size: usize, g: &mut Generator) -> LSTM {
        LSTM::with_options(input_size, hidden_size, RnnOptions::default(), g)
    }

    /// A stack with the given options.
    pub fn with_options(input_size: usize, hidden_size: usize, opts: RnnOptions, g: &mut Generator) -> LSTM {
        LSTM {
            stack: Stack::new(CellKind::Lstm, input_size, hidden_size, opts, g),
        }
    }

    /// The output sequence and the final `(h, c)`, each `[layers·dirs, N, H]`, from
    /// `state` `(h0, c0)` (zeros when `None`); `lengths` gives each sequence's length as
    /// packed sequences do: outputs past a sequence's end are zero and its final state is
    /// the one at its own last step.
    pub fn forward_with(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
        lengths: Option<&[usize]>,
        mode: Mode,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        let r = self
            .stack
            .run(x, state.map(|s| s.0), state.map(|s| s.1), lengths, mode)?;
        let c = r.c.expect("an LSTM has a cell state");
        Ok((r.output, (r.h, c)))
    }
}

/// A gated recurrent unit network (PyTorch's `nn.GRU`): gates r, z, n with
/// `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`.
#[derive(Debug)]
pub struct GRU {
    stack: Stack,
}

impl GRU {
    /// One layer with PyTorch's defaults and initialization (U(−1/√H, 1/√H)).
    pub fn new(input_size: usize, hidden_size: usize, g: &mut Generator) -> GRU {
        GRU::with_options(input_size, hidden_size, RnnOptions::default(), g)
    }

    /// A stack with the given options.
    pub fn with_options(input_size: usize, hidden_size: usize, opts: RnnOptions, g: &mut Generator) -> GRU {
        GRU {
            stack: Stack::new(CellKind::Gru, input_size, hidden_size, opts, g),
        }
    }

    /// The output sequence and the final hidden state, as [`RNN::forward_with`].
    pub fn forward_with(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        lengths: Option<&[usize]>,
        mode: Mode,
    ) -> Result<(Tensor, Tensor)> {
        let r = self.stack.run(x, h0, None, lengths, mode)?;
        Ok((r.output, r.h))
    }
}

shared_layer_items!(RNN);
shared_layer_items!(LSTM);
shared_layer_items!(GRU);
