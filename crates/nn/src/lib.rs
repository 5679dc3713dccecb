//! nabla's neural-network library: modules, layers, losses, initializers, optimizers,
//! schedulers, state dicts and checkpoints.

mod error;
pub mod optim;
pub use error::{Error, Result};
