//! How ops reach tensor data: dtype-generic element maps, contiguous slices read in
//! place, and small helpers every op file shares. Ops call these with `T` bound by
//! [`dispatch!`](crate::dtype::dispatch), so no op lists the dtypes itself.

use crate::dtype::dispatch;
use crate::kernels::elementwise::{self, Operand};
use crate::shape::broadcast_shape;
use crate::tensor::dtype_err;
use crate::{Element, Error, Result, Tensor};

/// Apply an elementwise function to a tensor of dtype `T`; records nothing.
/// Called under [`dispatch!`], which picks `T` from `x`'s dtype.
pub(crate) fn map_unary<T: Element>(x: &Tensor, f: impl Fn(T) -> T + Sync) -> Tensor {
    let out = x
        .with_slice(|s: &[T]| elementwise::map_vec(s, f))
        .expect("dtype matched by caller");
    Tensor::from_buffer(T::wrap(out), x.shape())
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

/// Apply a broadcasting binary function to operands of dtype `T` (picked by the caller's
/// [`dispatch!`] on `a`'s dtype; `b`'s is checked here); records nothing.
pub(crate) fn map_binary<T: Element>(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(T, T) -> T + Sync,
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
    Ok(run::<T>(a, b, shape, sa, sb, f))
}

/// A tensor of one value with `like`'s dtype, for mixing scalars into tensor math.
pub(crate) fn scalar_like(like: &Tensor, v: f64) -> Tensor {
    dispatch!(like.dtype(), T => Tensor::from_buffer(T::wrap(vec![T::from_f64(v)]), &[]))
}

/// A contiguous copy of `t` (or `t` itself when already contiguous from offset 0).
pub(crate) fn materialize(t: &Tensor) -> Tensor {
    if t.is_contiguous() && t.layout().offset == 0 && t.layout().numel() == t.read().len() {
        return t.clone();
    }
    fn run<T: Element>(t: &Tensor) -> crate::Buffer {
        let buf = t.read();
        let all = T::slice(&buf).expect("dtype matched by dispatch");
        let l = t.layout();
        // Straight into the new buffer: large copies (also of a contiguous view with an
        // offset) are split over threads there.
        let mut v = Vec::new();
        crate::kernels::copy::gather(all, &l.shape, &l.strides, l.offset, &mut v);
        T::wrap(v)
    }
    Tensor::from_buffer(dispatch!(t.dtype(), T => run::<T>(t)), t.shape())
}

/// Run `f` on the elements of contiguous views of `ts` (all of dtype `T`), read in place.
pub(crate) fn with_data<T: Element, R>(op: &'static str, ts: &[&Tensor], f: impl FnOnce(&[&[T]]) -> R) -> Result<R> {
    let dense: Vec<Tensor> = ts
        .iter()
        .map(|t| {
            if t.is_contiguous() {
                (*t).clone()
            } else {
                materialize(t)
            }
        })
        .collect();
    // Views of one storage share one read guard (a second read lock from one thread may deadlock).
    let mut guards = Vec::new();
    let mut which = Vec::new();
    for (i, t) in dense.iter().enumerate() {
        match dense[..i].iter().position(|u| u.shares_storage(t)) {
            Some(j) => which.push(which[j]),
            None => {
                which.push(guards.len());
                guards.push(t.read());
            }
        }
    }
    let mut slices = Vec::with_capacity(dense.len());
    for (t, &g) in dense.iter().zip(&which) {
        let all = T::slice(&guards[g]).ok_or_else(|| dtype_err::<T>(op, t.dtype()))?;
        let off = t.layout().offset;
        slices.push(&all[off..off + t.numel()]);
    }
    Ok(f(&slices))
}

/// Run a kernel from `x`'s elements (dtype `T`, picked by the caller's [`dispatch!`])
/// into a fresh buffer of `out_shape`.
pub(crate) fn map_kernel<T: Element>(
    op: &'static str,
    x: &Tensor,
    out_shape: &[usize],
    k: impl FnOnce(&[T], &mut [T]),
) -> Result<Tensor> {
    let mut out = crate::kernels::elementwise::output_vec::<T>(out_shape.iter().product());
    with_data(op, &[x], |s: &[&[T]]| k(s[0], &mut out))?;
    Ok(Tensor::from_buffer(T::wrap(out), out_shape))
}
