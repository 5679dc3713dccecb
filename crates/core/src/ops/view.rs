//! Views that share storage: reshape, permute, transpose, expand, narrow, squeeze,
//! unsqueeze, flatten; and `contiguous`, which copies only when it must.

use super::access::materialize;
use crate::shape::{broadcast_shape, contiguous_strides, normalize_dim, Layout};
use crate::{Error, Result, Tensor};

/// Something that names a shape: `[2, 3]`, `&[usize]`, or with one `-1` to infer.
pub trait ShapeArg {
    /// The sizes, with `-1` for "infer".
    fn sizes(&self) -> Vec<isize>;
}

impl ShapeArg for &[usize] {
    fn sizes(&self) -> Vec<isize> {
        self.iter().map(|&d| d as isize).collect()
    }
}
impl ShapeArg for &Vec<usize> {
    fn sizes(&self) -> Vec<isize> {
        self.iter().map(|&d| d as isize).collect()
    }
}
impl ShapeArg for Vec<usize> {
    fn sizes(&self) -> Vec<isize> {
        self.iter().map(|&d| d as isize).collect()
    }
}
impl ShapeArg for &[isize] {
    fn sizes(&self) -> Vec<isize> {
        self.to_vec()
    }
}
impl<const N: usize> ShapeArg for [usize; N] {
    fn sizes(&self) -> Vec<isize> {
        self.iter().map(|&d| d as isize).collect()
    }
}
impl<const N: usize> ShapeArg for [isize; N] {
    fn sizes(&self) -> Vec<isize> {
        self.to_vec()
    }
}
impl<const N: usize> ShapeArg for [i32; N] {
    fn sizes(&self) -> Vec<isize> {
        self.iter().map(|&d| d as isize).collect()
    }
}

fn resolve(op: &'static str, from: &[usize], sizes: &[isize]) -> Result<Vec<usize>> {
    let numel: usize = from.iter().product();
    let bad = || Error::BadReshape {
        op,
        from: from.to_vec(),
        to: sizes.to_vec(),
    };
    let mut infer = None;
    let mut known = 1usize;
    for (i, &s) in sizes.iter().enumerate() {
        match s {
            -1 if infer.is_none() => infer = Some(i),
            s if s >= 0 => known = known.checked_mul(s as usize).ok_or_else(bad)?,
            _ => return Err(bad()),
        }
    }
    let mut out: Vec<usize> = sizes.iter().map(|&s| s.max(0) as usize).collect();
    if let Some(i) = infer {
        if known == 0 || !numel.is_multiple_of(known) {
            return Err(bad());
        }
        out[i] = numel / known;
    } else if known != numel {
        return Err(bad());
    }
    Ok(out)
}

impl Tensor {
    /// The same elements in another shape (one size may be -1). Shares storage when
    /// the tensor is contiguous, copies otherwise.
    pub fn reshape(&self, shape: impl ShapeArg) -> Result<Tensor> {
        let new = resolve("reshape", self.shape(), &shape.sizes())?;
        let base = if self.is_contiguous() {
            self.clone()
        } else {
            self.contiguous()?
        };
        let layout = Layout {
            strides: contiguous_strides(&new),
            shape: new,
            offset: base.layout().offset,
        };
        let old = self.shape().to_vec();
        Ok(base
            .with_layout(layout)
            .record("reshape", &[&base], move |g, _| Ok(vec![Some(g.reshape(&old)?)])))
    }

    /// Like [`Tensor::reshape`], but fails instead of copying a non-contiguous tensor.
    pub fn view(&self, shape: impl ShapeArg) -> Result<Tensor> {
        if !self.is_contiguous() {
            return Err(Error::invalid(
                "view",
                format!("tensor of shape {:?} is not contiguous; use reshape", self.shape()),
            ));
        }
        self.reshape(shape)
    }

    /// Reorder dimensions: output dim `i` is input dim `dims[i]`.
    pub fn permute(&self, dims: &[isize]) -> Result<Tensor> {
        let r = self.rank();
        if dims.len() != r {
            return Err(Error::invalid(
                "permute",
                format!("{} dims given for a tensor of shape {:?}", dims.len(), self.shape()),
            ));
        }
        let mut perm = Vec::with_capacity(r);
        for &d in dims {
            let d = normalize_dim("permute", d, self.shape())?;
            if perm.contains(&d) {
                return Err(Error::invalid("permute", format!("dim {d} repeated in {dims:?}")));
            }
            perm.push(d);
        }
        let l = self.layout();
        let layout = Layout {
            shape: perm.iter().map(|&d| l.shape[d]).collect(),
            strides: perm.iter().map(|&d| l.strides[d]).collect(),
            offset: l.offset,
        };
        let mut inverse = vec![0isize; r];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i as isize;
        }
        Ok(self
            .with_layout(layout)
            .record("permute", &[self], move |g, _| Ok(vec![Some(g.permute(&inverse)?)])))
    }

    /// Swap two dimensions.
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Tensor> {
        let a = normalize_dim("transpose", d0, self.shape())?;
        let b = normalize_dim("transpose", d1, self.shape())?;
        let mut perm: Vec<isize> = (0..self.rank() as isize).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Transpose of a 2-D tensor.
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() != 2 {
            return Err(Error::invalid(
                "t",
                format!("needs a 2-D tensor, got shape {:?}", self.shape()),
            ));
        }
        self.transpose(0, 1)
    }

    /// Broadcast to a larger shape without copying (size-1 dims repeat; new dims lead).
    pub fn expand(&self, shape: impl ShapeArg) -> Result<Tensor> {
        let sizes = shape.sizes();
        let pad = sizes.len().checked_sub(self.rank()).ok_or_else(|| {
            Error::invalid(
                "expand",
                format!("cannot expand shape {:?} to fewer dims {sizes:?}", self.shape()),
            )
        })?;
        let target: Vec<usize> = sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                if s == -1 && i >= pad {
                    self.shape()[i - pad]
                } else {
                    s.max(0) as usize
                }
            })
            .collect();
        let b = broadcast_shape("expand", self.shape(), &target)?;
        if b != target {
            return Err(Error::shapes(
                "expand",
                self.shape(),
                &target,
                "only size-1 dims can grow",
            ));
        }
        let layout = Layout {
            strides: super::access::broadcast_strides(self, &target),
            shape: target,
            offset: self.layout().offset,
        };
        let old = self.shape().to_vec();
        Ok(self
            .with_layout(layout)
            .record("expand", &[self], move |g, _| Ok(vec![Some(g.sum_to(&old)?)])))
    }

    /// Alias of [`Tensor::expand`] with NumPy's name.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        self.expand(shape)
    }

    /// The slice `start..start + len` along `dim`, sharing storage.
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor> {
        let d = normalize_dim("narrow", dim, self.shape())?;
        let size = self.shape()[d];
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::invalid(
                "narrow",
                format!(
                    "range {start}..{} is outside dim {d} of size {size} (shape {:?})",
                    start + len,
                    self.shape()
                ),
            ));
        }
        if start == 0 && len == size {
            // The whole dim: the tensor itself, so the backward adds no zero-filled copy
            // (models crop upsampled maps this way, and the crop usually keeps everything).
            return Ok(self.clone());
        }
        let mut layout = self.layout().clone();
        layout.offset += start * layout.strides[d];
        layout.shape[d] = len;
        Ok(self
            .with_layout(layout)
            .record("narrow", &[self], move |g, _| Ok(vec![Some(g.embed(d, start, size)?)])))
    }

    /// Place `self` at `start` along `dim` inside zeros of size `size` there: the
    /// backward of `narrow`, itself differentiable (its backward is `narrow`).
    fn embed(&self, dim: usize, start: usize, size: usize) -> Result<Tensor> {
        let mut shape = self.shape().to_vec();
        shape[dim] = size;
        let out = Tensor::zeros(&shape, self.dtype());
        let mut layout = out.layout().clone();
        layout.offset += start * layout.strides[dim];
        layout.shape[dim] = self.shape()[dim];
        out.with_layout(layout).assign(self)?;
        let len = self.shape()[dim];
        Ok(out.record("embed", &[self], move |g, _| {
            Ok(vec![Some(g.narrow(dim as isize, start, len)?)])
        }))
    }

    /// Remove dimension `dim`, which must have size 1.
    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        let d = normalize_dim("squeeze", dim, self.shape())?;
        if self.shape()[d] != 1 {
            return Err(Error::invalid(
                "squeeze",
                format!("dim {d} of shape {:?} is not 1", self.shape()),
            ));
        }
        let mut s = self.shape().to_vec();
        s.remove(d);
        self.reshape(&s)
    }

    /// Insert a size-1 dimension at `dim` (which may equal the rank).
    pub fn unsqueeze(&self, dim: isize) -> Result<Tensor> {
        let r = self.rank() as isize;
        let d = if dim < 0 { dim + r + 1 } else { dim };
        if d < 0 || d > r {
            return Err(Error::DimOutOfRange {
                op: "unsqueeze",
                dim,
                shape: self.shape().to_vec(),
            });
        }
        let mut s = self.shape().to_vec();
        s.insert(d as usize, 1);
        self.reshape(&s)
    }

    /// Merge dims `start..=end` into one.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.rank() == 0 {
            return self.reshape([1usize]);
        }
        let a = normalize_dim("flatten", start, self.shape())?;
        let b = normalize_dim("flatten", end, self.shape())?;
        if a > b {
            return Err(Error::invalid("flatten", format!("start dim {a} is after end dim {b}")));
        }
        let s = self.shape();
        let mut new: Vec<usize> = s[..a].to_vec();
        new.push(s[a..=b].iter().product());
        new.extend_from_slice(&s[b + 1..]);
        self.reshape(&new)
    }

    /// A row-major copy if this view is not row-major already.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let out = materialize(self);
        Ok(out.record("contiguous", &[self], |g, _| Ok(vec![Some(g.clone())])))
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator, Tensor};

    fn r(shape: &[usize]) -> Tensor {
        Tensor::randn(shape, DType::F64, &mut Generator::new(5))
    }

    #[test]
    fn views_share_storage() {
        let x = Tensor::arange(0.0, 24.0, 1.0, DType::F32)
            .unwrap()
            .reshape([2, 3, 4])
            .unwrap();
        let p = x.permute(&[2, 0, 1]).unwrap();
        assert!(p.shares_storage(&x));
        assert_eq!(p.shape(), &[4, 2, 3]);
        assert!(!p.is_contiguous());
        let n = x.narrow(2, 1, 2).unwrap();
        assert!(n.shares_storage(&x));
        assert_eq!(n.to_vec::<f32>().unwrap()[..4], [1.0, 2.0, 5.0, 6.0]);
        let e = Tensor::from_vec(vec![1.0f32, 2.0], &[2, 1])
            .unwrap()
            .expand([2, 3])
            .unwrap();
        assert_eq!(e.to_vec::<f32>().unwrap(), vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
        assert_eq!(x.reshape([-1, 4]).unwrap().shape(), &[6, 4]);
        assert_eq!(x.flatten(1, -1).unwrap().shape(), &[2, 12]);
        assert_eq!(x.unsqueeze(-1).unwrap().shape(), &[2, 3, 4, 1]);
        assert!(p.view([24]).is_err());
        let c = p.contiguous().unwrap();
        assert!(c.is_contiguous() && !c.shares_storage(&x));
    }

    #[test]
    fn errors_name_op_and_shape() {
        let x = Tensor::zeros(&[2, 3], DType::F32);
        let e = x.reshape([4, 2]).unwrap_err().to_string();
        assert!(e.contains("reshape") && e.contains("[2, 3]"), "{e}");
        let e = x.permute(&[0, 5]).unwrap_err().to_string();
        assert!(e.contains("permute") && e.contains("dim 5"), "{e}");
        assert!(x.narrow(1, 2, 2).is_err());
        assert!(x.squeeze(0).is_err());
        assert!(x.expand([3, 3]).is_err());
    }

    #[test]
    fn view_gradients() {
        let x = r(&[3, 4, 5]);
        gradcheck(|t| t[0].permute(&[2, 0, 1])?.reshape([5, 12]), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].narrow(1, 1, 2)?.transpose(0, 2), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].narrow(2, 0, 1)?.expand([3, 4, 6]), &[x.clone()]).unwrap();
        // A full-range narrow is the tensor itself; its gradient still flows.
        gradcheck(|t| t[0].narrow(1, 0, 4)?.mul(&t[0]), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].permute(&[1, 0, 2])?.contiguous()?.flatten(0, 1), &[x]).unwrap();
    }
}
