//! nabla's neural-network library: modules, layers, losses, initializers, optimizers,
//! schedulers, state dicts and checkpoints.

mod error;
pub use error::{Error, Result};
