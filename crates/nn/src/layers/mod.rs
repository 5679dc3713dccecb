//! Layers, one file per layer or small family; all re-exported at the crate root.

mod activation;
mod batch_norm;
mod conv;
mod dropout;
mod embedding;
mod linear;
mod local_response_norm;
mod options;
mod pool;
mod reshape;
mod rnn;
mod sequential;
mod squeeze_excitation;
mod upsample;

pub use activation::{Approximate, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh, ELU, GELU};
pub use batch_norm::{
    set_batch_norm_train_hook, BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormOptions, BatchNormTrainHook,
};
pub use conv::{Conv2d, ConvTranspose2d};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use linear::Linear;
pub use local_response_norm::LocalResponseNorm;
pub use options::LayerOptions;
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, MaxUnpool2d};
pub use reshape::{Flatten, Identity};
pub use rnn::{CellKind, GRUCell, LSTMCell, RNNCell, RnnNonlinearity, RnnOptions, GRU, LSTM, RNN};
pub use sequential::Sequential;
pub use squeeze_excitation::SqueezeExcitation;
pub use upsample::{Upsample, UpsampleMode};

/// Options of the convolution and pooling ops, re-exported for the layers' constructors.
pub use nabla_core::{Conv2dOptions, ConvTranspose2dOptions, Pool2dOptions};
