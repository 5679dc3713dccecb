//! [`BatchBuffers`]: a batch being gathered sample by sample, in the data set's dtype, and
//! the few dtype-dispatching helpers the data crate needs (written once here, so another
//! dtype is added in this file).

use crate::{Result, Sample, Target};
use nabla_core::{dispatch, Buffer, DType, Element, Tensor};
use std::ops::Range;

/// A batch being gathered by [`Dataset::append_to`](crate::Dataset::append_to): features
/// and regression targets in the data set's [`dtype`](crate::Dataset::dtype), and class labels.
#[derive(Debug, Clone)]
pub struct BatchBuffers {
    /// The features of the samples so far, one after another.
    pub data: Buffer,
    /// The class labels of the classification samples so far.
    pub labels: Vec<usize>,
    /// The regression targets of the regression samples so far, one row after another.
    pub values: Buffer,
}

impl BatchBuffers {
    /// Empty buffers of `dtype`.
    pub fn new(dtype: DType) -> Self {
        BatchBuffers {
            data: empty(dtype),
            labels: Vec::new(),
            values: empty(dtype),
        }
    }

    /// Append a sample as [`Dataset::get`](crate::Dataset::get) gives it (f32), converted to
    /// the buffers' dtype.
    pub fn push(&mut self, s: &Sample) {
        extend_f32(&mut self.data, &s.data);
        self.push_target(&s.target);
    }

    /// Append a target given as f32 (a label, or values converted to the buffers' dtype).
    pub fn push_target(&mut self, t: &Target) {
        match t {
            Target::Class(c) => self.labels.push(*c),
            Target::Values(v) => extend_f32(&mut self.values, v),
        }
    }
}

fn empty(dtype: DType) -> Buffer {
    dispatch!(dtype, T => T::wrap(Vec::new()))
}

/// Append f32 values to `dst`, converted to its dtype (a plain copy for f32).
pub(crate) fn extend_f32(dst: &mut Buffer, v: &[f32]) {
    match dst {
        Buffer::F32(d) => d.extend_from_slice(v),
        Buffer::F64(d) => d.extend(v.iter().map(|&x| x as f64)),
    }
}

/// Append `src[range]` to `dst`: a plain copy when their dtypes agree (the loader's case),
/// else converted.
pub(crate) fn extend_range(dst: &mut Buffer, src: &Buffer, range: Range<usize>) {
    match dst {
        Buffer::F32(d) => extend_as(d, src, range),
        Buffer::F64(d) => extend_as(d, src, range),
    }
}

fn extend_as<T: Element>(d: &mut Vec<T>, src: &Buffer, range: Range<usize>) {
    match (T::slice(src), src) {
        (Some(s), _) => d.extend_from_slice(&s[range]),
        (None, Buffer::F32(s)) => d.extend(s[range].iter().map(|&x| T::from_f64(x as f64))),
        (None, Buffer::F64(s)) => d.extend(s[range].iter().map(|&x| T::from_f64(x))),
    }
}

/// `src[range]` as f32 (rounded from f64).
pub(crate) fn to_f32(src: &Buffer, range: Range<usize>) -> Vec<f32> {
    let mut v = Vec::with_capacity(range.len());
    extend_as(&mut v, src, range);
    v
}

/// Reserve room for `extra` more elements.
pub(crate) fn reserve_exact(b: &mut Buffer, extra: usize) {
    match b {
        Buffer::F32(v) => v.reserve_exact(extra),
        Buffer::F64(v) => v.reserve_exact(extra),
    }
}

/// A tensor owning `b`'s values, of its dtype.
pub(crate) fn tensor(b: Buffer, shape: &[usize]) -> Result<Tensor> {
    Ok(match b {
        Buffer::F32(v) => Tensor::from_vec(v, shape)?,
        Buffer::F64(v) => Tensor::from_vec(v, shape)?,
    })
}

/// A row-major copy of `t`'s values, converted to `dtype`.
pub(crate) fn buffer_as(t: &Tensor, dtype: DType) -> Result<Buffer> {
    let t = t.contiguous()?;
    Ok(dispatch!(dtype, T => T::wrap(t.to_vec_as::<T>())))
}
