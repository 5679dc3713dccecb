//! Tensor operations. Each file holds one op (or a family of trivially related ones):
//! its public method, its backward rule written with tensor ops, and its tests.
//! `access.rs` holds what they share to reach tensor data (element maps, slices read in
//! place), called under [`dispatch!`](crate::dtype::dispatch) so no op lists the dtypes;
//! `operators.rs` maps `+ - * /` onto the arithmetic methods.

mod access;
mod activation;
mod adaptive_avg_pool2d;
mod arith;
mod avg_pool2d;
mod batch_norm;
mod cast;
mod compare;
mod conv2d;
mod conv_act;
mod conv_transpose2d;
mod creation;
mod index;
mod join;
mod lstm_cell;
mod lstm_seq;
mod matmul;
mod max_pool2d;
mod max_unpool2d;
mod norm;
mod operators;
mod pad;
mod reduce;
mod roi_align;
mod roi_pool;
mod select;
mod softmax;
mod squared_error;
mod unary;
mod upsample;
mod view;

pub use conv2d::Conv2dOptions;
pub use conv_transpose2d::ConvTranspose2dOptions;
pub use max_pool2d::Pool2dOptions;
pub use view::ShapeArg;
