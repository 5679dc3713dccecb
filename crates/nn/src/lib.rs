//! nabla's neural-network library: modules, layers, losses, initializers, optimizers,
//! schedulers, state dicts and checkpoints.
//!
//! ```
//! use nabla_core::{DType, Generator, Tensor};
//! use nabla_nn::{Linear, Mode, Module, ReLU, Sequential};
//! let mut g = Generator::new(0);
//! let model = Sequential::new().push(Linear::new(2, 8, &mut g)).push(ReLU).push(Linear::new(8, 1, &mut g));
//! let loss = model.forward(&Tensor::ones(&[4, 2], DType::F32), Mode::Train)?.square()?.mean_all()?;
//! let grads = loss.backward()?;
//! assert!(model.parameters().iter().all(|p| grads.get(p).is_some()));
//! # Ok::<(), nabla_nn::Error>(())
//! ```
//!
//! Map of the crate:
//! - [`module`]: the [`Module`] trait (forward with an explicit [`Mode`], children named
//!   once in [`Module::children`], dotted names, freezing, state dicts) and [`Param`].
//! - [`layers`]: Linear, convolutions, pooling, normalization, dropout, activations,
//!   embeddings, recurrent layers (RNN, LSTM, GRU and their cells), containers (all
//!   re-exported here).
//! - [`functional`]: the stateless compositions layers are built from.
//! - [`init`]: initializers (PyTorch's defaults, Kaiming, Xavier).
//! - [`state_dict`] and [`safetensors_io`]: saving and loading named tensors.

pub mod checkpoint;
mod error;
pub mod functional;
pub mod init;
pub mod layers;
pub mod loss;
pub mod module;
pub mod optim;
mod param;
pub mod safetensors_io;
pub mod scheduler;
pub mod state_dict;
pub mod summary;

/// This crate's error under a name that says whose it is, where several crates' errors meet.
pub use error::Error as NnError;
pub use error::{Error, Result};
pub use layers::*;
pub use module::{Child, Children, Mode, Module, Param, ParamKind};
pub use safetensors_io::{load_tensors, save_tensors};
pub use state_dict::LoadReport;
