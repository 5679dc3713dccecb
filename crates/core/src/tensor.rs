//! The tensor: shared storage, a strided layout, an element type and a place in the graph.

use crate::autograd::GradMeta;
use crate::dtype::dispatch;
use crate::shape::Layout;
use crate::{Buffer, DType, Element, Error, Result};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Shared, mutable element storage (views of one tensor share it).
pub(crate) type Storage = Arc<RwLock<Buffer>>;

/// An n-dimensional array of f32 or f64 that records the ops applied to it.
///
/// Cloning is cheap: clones share storage and graph identity.
#[derive(Clone)]
pub struct Tensor(Arc<Inner>);

struct Inner {
    storage: Storage,
    layout: Layout,
    dtype: DType,
    meta: Option<Arc<GradMeta>>,
    detached: bool,
}

impl Tensor {
    /// A tensor over `buffer` in row-major order; the caller guarantees the length.
    pub(crate) fn from_buffer(buffer: Buffer, shape: &[usize]) -> Tensor {
        debug_assert_eq!(buffer.len(), shape.iter().product::<usize>());
        Tensor(Arc::new(Inner {
            dtype: buffer.dtype(),
            storage: Arc::new(RwLock::new(buffer)),
            layout: Layout::contiguous(shape),
            meta: None,
            detached: false,
        }))
    }

    /// A tensor from a vector and a shape; the lengths must agree.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::invalid(
                "from_vec",
                format!("{} values cannot fill shape {shape:?} ({n} elements)", data.len()),
            ));
        }
        Ok(Tensor::from_buffer(T::wrap(data), shape))
    }

    /// A tensor from a slice, copied.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape)
    }

    /// A 0-d tensor holding one value.
    pub fn scalar<T: Element>(v: T) -> Tensor {
        Tensor::from_buffer(T::wrap(vec![v]), &[])
    }

    /// A view of the same storage with another layout (no graph recorded).
    pub(crate) fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor(Arc::new(Inner {
            storage: self.0.storage.clone(),
            layout,
            dtype: self.0.dtype,
            meta: None,
            detached: false,
        }))
    }

    /// The same value with another graph identity.
    pub(crate) fn with_meta(mut self, meta: Option<Arc<GradMeta>>) -> Tensor {
        // A fresh op output is its handle's only owner: set the meta in place rather
        // than moving it into a new allocation (this runs once per recorded op).
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.meta = meta;
            return self;
        }
        let shared = &self.0;
        Tensor(Arc::new(Inner {
            storage: shared.storage.clone(),
            layout: shared.layout.clone(),
            dtype: shared.dtype,
            meta,
            detached: shared.detached,
        }))
    }

    /// The autograd identity, if this tensor requires a gradient.
    pub(crate) fn grad_meta(&self) -> Option<&Arc<GradMeta>> {
        self.0.meta.as_ref()
    }

    /// Whether gradients flow to or through this tensor.
    pub fn requires_grad(&self) -> bool {
        self.0.meta.is_some()
    }

    /// Whether this tensor is a graph leaf (made by the user, not by an op that records).
    pub fn is_leaf(&self) -> bool {
        self.0.meta.as_ref().is_none_or(|m| m.is_leaf())
    }

    /// A leaf sharing this storage that does (or does not) require a gradient.
    pub fn set_requires_grad(&self, on: bool) -> Tensor {
        let meta = on.then(|| GradMeta::leaf(self.shape()));
        let t = self.with_layout(self.0.layout.clone());
        t.with_meta(meta)
    }

    /// The same values cut from the graph: no gradient flows back through the result.
    pub fn detach(&self) -> Tensor {
        let mut inner = Inner {
            storage: self.0.storage.clone(),
            layout: self.0.layout.clone(),
            dtype: self.0.dtype,
            meta: None,
            detached: false,
        };
        inner.detached = self.requires_grad();
        Tensor(Arc::new(inner))
    }

    /// Whether this tensor was detached from a graph (shown in graph exports).
    pub fn is_detached(&self) -> bool {
        self.0.detached
    }

    /// Size of each dimension.
    pub fn shape(&self) -> &[usize] {
        &self.0.layout.shape
    }

    /// Step in storage for each dimension.
    pub fn strides(&self) -> &[usize] {
        &self.0.layout.strides
    }

    /// The strided layout.
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.layout.shape.len()
    }

    /// Size of dimension `dim` (negative counts from the end).
    pub fn size(&self, dim: isize) -> Result<usize> {
        let d = crate::shape::normalize_dim("size", dim, self.shape())?;
        Ok(self.shape()[d])
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    /// Whether the elements are row-major without gaps.
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }

    /// Whether two tensors share storage.
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    /// A weak handle on the storage, to check in tests when it is freed.
    #[cfg(test)]
    pub(crate) fn storage_weak(&self) -> std::sync::Weak<RwLock<Buffer>> {
        Arc::downgrade(&self.0.storage)
    }

    /// Read access to the storage (all of it, not just this view).
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Buffer> {
        // A poisoned lock only means a panic elsewhere; the buffer itself is intact.
        self.0.storage.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access to the storage.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Buffer> {
        self.0.storage.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the elements in row-major order, borrowing when contiguous (a strided
    /// view is gathered into a temporary copy first). Holds a read lock on the storage.
    pub fn with_slice<T: Element, R>(&self, f: impl FnOnce(&[T]) -> R) -> Result<R> {
        self.check_dtype::<T>("with_slice")?;
        let buf = self.read();
        let all = T::slice(&buf).ok_or_else(|| dtype_err::<T>("with_slice", self.dtype()))?;
        let l = &self.0.layout;
        if l.is_contiguous() {
            Ok(f(&all[l.offset..l.offset + l.numel()]))
        } else {
            let mut v = Vec::new();
            crate::kernels::copy::gather(all, &l.shape, &l.strides, l.offset, &mut v);
            Ok(f(&v))
        }
    }

    /// Check the element type, naming the op on failure.
    pub(crate) fn check_dtype<T: Element>(&self, op: &'static str) -> Result<()> {
        if self.dtype() != T::DTYPE {
            return Err(dtype_err::<T>(op, self.dtype()));
        }
        Ok(())
    }

    /// The elements in row-major order, as `T` (which must be this tensor's dtype).
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.with_slice(|s: &[T]| s.to_vec())
    }

    /// The elements as f64, whatever the dtype.
    pub fn to_vec_f64(&self) -> Vec<f64> {
        self.to_vec_as::<f64>()
    }

    /// The elements as f32, whatever the dtype.
    pub fn to_vec_f32(&self) -> Vec<f32> {
        self.to_vec_as::<f32>()
    }

    /// The elements converted to `U`, whatever the dtype.
    pub fn to_vec_as<U: Element>(&self) -> Vec<U> {
        dispatch!(self.dtype(), T => self
            // Widening to f64 is exact, so T -> f64 -> U is T's value rounded once to U.
            .with_slice(|s: &[T]| s.iter().map(|&x| U::from_f64(x.to_f64())).collect())
            .unwrap_or_default())
    }

    /// The single value of a one-element tensor, as f64.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::invalid(
                "item",
                format!("needs exactly one element, got shape {:?}", self.shape()),
            ));
        }
        Ok(self.to_vec_f64()[0])
    }

    /// Overwrite this tensor's elements with `src`'s (same shape and dtype), in place.
    /// Nothing is recorded: this is how optimizers update parameters.
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(Error::shapes("assign", self.shape(), src.shape(), ""));
        }
        if src.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "assign",
                lhs: self.dtype(),
                rhs: src.dtype(),
            });
        }
        let data = src.contiguous_buffer();
        let l = self.0.layout.clone();
        let mut buf = self.write();
        dispatch!(self.dtype(), T => {
            let (dst, s) = (T::slice_mut(&mut buf), T::slice(&data));
            let (dst, s) = dst.zip(s).expect("dtypes checked above");
            if self.is_contiguous() {
                // A row-major block (narrow's backward writes one): one copy, no index walk.
                dst[l.offset..l.offset + s.len()].copy_from_slice(s);
            } else {
                l.indices().zip(s).for_each(|(i, &v)| dst[i] = v);
            }
        });
        Ok(())
    }

    /// Apply `f` to the elements in place (contiguous tensors of dtype `T` only).
    /// Nothing is recorded; for optimizers and initializers.
    pub fn update<T: Element>(&self, f: impl FnOnce(&mut [T])) -> Result<()> {
        self.check_dtype::<T>("update")?;
        if !self.is_contiguous() {
            return Err(Error::invalid("update", "needs a contiguous tensor"));
        }
        let l = self.0.layout.clone();
        let mut buf = self.write();
        let dtype = buf.dtype();
        let all = T::slice_mut(&mut buf).ok_or_else(|| dtype_err::<T>("update", dtype))?;
        f(&mut all[l.offset..l.offset + l.numel()]);
        Ok(())
    }

    /// A row-major copy of the viewed elements as a buffer.
    pub(crate) fn contiguous_buffer(&self) -> Buffer {
        dispatch!(self.dtype(), T => T::wrap(self.to_vec::<T>().unwrap_or_default()))
    }
}

pub(crate) fn dtype_err<T: Element>(op: &'static str, have: DType) -> Error {
    Error::DTypeMismatch {
        op,
        lhs: have,
        rhs: T::DTYPE,
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOW: usize = 8;
        let vals = self.to_vec_f64();
        write!(f, "Tensor[{:?}, {:?}", self.shape(), self.dtype())?;
        if self.requires_grad() {
            write!(f, ", requires_grad")?;
        }
        write!(f, "](")?;
        for (i, v) in vals.iter().take(SHOW).enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{v:.4}")?;
        }
        if vals.len() > SHOW {
            write!(f, ", ... ({} more)", vals.len() - SHOW)?;
        }
        write!(f, ")")
    }
}
