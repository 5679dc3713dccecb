//! nabla's core: n-dimensional tensors, reverse-mode automatic differentiation and CPU kernels.
//!
//! ```
//! use nabla_core::{Tensor, DType, Generator};
//! // A leaf that requires a gradient, an expression, and its gradient.
//! let w = Tensor::randn(&[3, 2], DType::F32, &mut Generator::new(0)).set_requires_grad(true);
//! let x = Tensor::ones(&[4, 3], DType::F32);
//! let loss = x.matmul(&w)?.relu()?.mean_all()?;
//! let grads = loss.backward()?;
//! assert_eq!(grads.get(&w).unwrap().shape(), &[3, 2]);
//! # Ok::<(), nabla_core::Error>(())
//! ```
//!
//! Map of the crate:
//! - [`Tensor`] (`tensor.rs`): storage, strided layout, dtype, graph identity; readback.
//! - `ops/`: one file per op, forward and backward side by side.
//! - [`DType`], [`Element`] (`dtype.rs`): the element types, and `dispatch!`, the one
//!   place generic code meets the list of dtypes.
//! - [`autograd`]: the recorded graph, `backward`, `grad`, no-grad scopes, DOT export.
//! - `kernels/`: plain loops over slices (elementwise, reductions, GEMM, `conv/`).
//! - [`gradcheck`]: finite-difference checking of any differentiable function.
//! - [`memory`]: how the process allocator keeps freed memory.
//! - [`profile`]: per-op wall and CPU time under `NABLA_PROFILE=1`.

// Tests pass `&[x.clone()]` to gradcheck; `slice::from_ref` everywhere would read worse.
#![cfg_attr(test, allow(clippy::cloned_ref_to_slice_refs))]

pub mod autograd;
pub mod cpu;
mod dtype;
mod error;
pub mod gradcheck;
pub mod kernels;
pub mod memory;
mod ops;
pub mod profile;
mod rng;
pub mod shape;
mod tensor;

pub use autograd::{grad, no_grad, BackwardOptions, Gradients};
pub use dtype::{Buffer, DType, Element};
/// This crate's error under a name that says whose it is, where several crates' errors meet.
pub use error::Error as CoreError;
pub use error::{Error, Result};
pub use kernels::batch_norm::Activation;
pub use ops::ShapeArg;
pub use ops::{Conv2dOptions, ConvTranspose2dOptions, Pool2dOptions};
pub use rng::Generator;
pub use tensor::Tensor;

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
