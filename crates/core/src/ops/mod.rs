//! Tensor operations. Each file holds one op (or a family of trivially related ones):
//! its public method, its backward rule written with tensor ops, and its tests.

mod activation;
mod adaptive_avg_pool2d;
mod arith;
mod avg_pool2d;
mod batch_norm;
mod cast;
mod compare;
mod conv2d;
mod conv_transpose2d;
mod creation;
mod index;
mod join;
mod matmul;
mod max_pool2d;
mod max_unpool2d;
mod pad;
mod reduce;
mod select;
mod softmax;
mod unary;
mod upsample;
mod view;

pub use conv2d::Conv2dOptions;
pub use conv_transpose2d::ConvTranspose2dOptions;
pub use max_pool2d::Pool2dOptions;
pub use view::ShapeArg;

use crate::kernels::elementwise::{self, Operand};
use crate::shape::broadcast_shape;
use crate::{Buffer, DType, Element, Error, Result, Tensor};

/// Apply an elementwise function (one version per dtype) to a tensor; records nothing.
pub(crate) fn map_unary(x: &Tensor, f32f: impl Fn(f32) -> f32 + Sync, f64f: impl Fn(f64) -> f64 + Sync) -> Tensor {
    fn run<T: Element>(x: &Tensor, f: impl Fn(T) -> T + Sync) -> Tensor {
        let out = x
            .with_slice(|s: &[T]| elementwise::map_vec(s, f))
            .expect("dtype matched by caller");
        Tensor::from_buffer(T::wrap(out), x.shape())
    }
    match x.dtype() {
        DType::F32 => run::<f32>(x, f32f),
        DType::F64 => run::<f64>(x, f64f),
    }
}

/// Check two operands agree in dtype.
pub(crate) fn same_dtype(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(Error::DTypeMismatch {
            op,
            lhs: a.dtype(),
            rhs: b.dtype(),
        });
    }
    Ok(())
}

/// Strides of `t` seen through the broadcast `shape` (0 on broadcast dims).
pub(crate) fn broadcast_strides(t: &Tensor, shape: &[usize]) -> Vec<usize> {
    let pad = shape.len() - t.rank();
    (0..shape.len())
        .map(|i| {
            if i < pad || t.shape()[i - pad] == 1 {
                0
            } else {
                t.strides()[i - pad]
            }
        })
        .collect()
}

/// Apply a broadcasting binary function (one version per dtype); records nothing.
pub(crate) fn map_binary(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    f32f: impl Fn(f32, f32) -> f32 + Sync,
    f64f: impl Fn(f64, f64) -> f64 + Sync,
) -> Result<Tensor> {
    same_dtype(op, a, b)?;
    // Equal shapes (the common case) need no broadcast shape or strides: the operands'
    // own strides walk the output, so a tiny op allocates nothing here.
    let broadcast;
    let (shape, sa, sb) = if a.shape() == b.shape() {
        (a.shape(), a.strides(), b.strides())
    } else {
        let shape = broadcast_shape(op, a.shape(), b.shape())?;
        let (sa, sb) = (broadcast_strides(a, &shape), broadcast_strides(b, &shape));
        broadcast = (shape, sa, sb);
        (&broadcast.0[..], &broadcast.1[..], &broadcast.2[..])
    };
    fn run<T: Element>(
        a: &Tensor,
        b: &Tensor,
        shape: &[usize],
        sa: &[usize],
        sb: &[usize],
        f: impl Fn(T, T) -> T + Sync,
    ) -> Tensor {
        let out = {
            let ba = a.read();
            let bb;
            // Both operands may be views of one storage: take its lock once.
            let (da, db): (&[T], &[T]) = if a.shares_storage(b) {
                let d = T::slice(&ba).expect("dtype checked");
                (d, d)
            } else {
                bb = b.read();
                (
                    T::slice(&ba).expect("dtype checked"),
                    T::slice(&bb).expect("dtype checked"),
                )
            };
            elementwise::zip_strided_vec(
                shape,
                Operand {
                    data: da,
                    strides: sa,
                    offset: a.layout().offset,
                },
                Operand {
                    data: db,
                    strides: sb,
                    offset: b.layout().offset,
                },
                f,
            )
        };
        Tensor::from_buffer(T::wrap(out), shape)
    }
    Ok(match a.dtype() {
        DType::F32 => run::<f32>(a, b, shape, sa, sb, f32f),
        DType::F64 => run::<f64>(a, b, shape, sa, sb, f64f),
    })
}

/// A tensor of one value with `like`'s dtype, for mixing scalars into tensor math.
pub(crate) fn scalar_like(like: &Tensor, v: f64) -> Tensor {
    match like.dtype() {
        DType::F32 => Tensor::from_buffer(Buffer::F32(vec![v as f32]), &[]),
        DType::F64 => Tensor::from_buffer(Buffer::F64(vec![v]), &[]),
    }
}

/// A contiguous copy of `t` (or `t` itself when already contiguous from offset 0).
pub(crate) fn materialize(t: &Tensor) -> Tensor {
    if t.is_contiguous() && t.layout().offset == 0 && t.layout().numel() == t.read().len() {
        return t.clone();
    }
    Tensor::from_buffer(t.contiguous_buffer(), t.shape())
}
