//! Joining and splitting along a dim: `cat`, `stack`, `split`, `chunk`.
//!
//! ```
//! use nabla_core::Tensor;
//! let a = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2])?;
//! let b = Tensor::from_vec(vec![3.0f32, 4.0, 5.0, 6.0], &[2, 2])?;
//! let c = Tensor::cat(&[&a, &b], 0)?;
//! assert_eq!(c.shape(), &[3, 2]);
//! let parts = c.split(2, 0)?;
//! assert_eq!(parts[1].to_vec::<f32>()?, vec![5.0, 6.0]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use crate::dtype::dispatch;
use crate::shape::normalize_dim;
use crate::{Element, Error, Result, Tensor};

/// Copy each input's rows (runs of `chunks[i]` elements, `outer` of them) side by side.
fn cat_kernel<T: Element>(tensors: &[&Tensor], outer: usize, chunks: &[usize], shape: &[usize]) -> Result<Tensor> {
    let row: usize = chunks.iter().sum();
    let mut out = crate::kernels::elementwise::output_vec::<T>(outer * row);
    let mut start = 0;
    for (t, &len) in tensors.iter().zip(chunks) {
        if len > 0 {
            t.with_slice(|s: &[T]| {
                for (dst, src) in out.chunks_exact_mut(row).zip(s.chunks_exact(len)) {
                    dst[start..start + len].copy_from_slice(src);
                }
            })?;
        }
        start += len;
    }
    Ok(Tensor::from_buffer(T::wrap(out), shape))
}

impl Tensor {
    /// Concatenate `tensors` along `dim`; all other sizes, the rank and the dtype must agree.
    pub fn cat(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("cat", "needs at least one tensor"))?;
        if first.rank() == 0 {
            return Err(Error::invalid(
                "cat",
                "0-d tensors cannot be concatenated; unsqueeze them or use stack",
            ));
        }
        let d = normalize_dim("cat", dim, first.shape())?;
        let mut shape = first.shape().to_vec();
        shape[d] = 0;
        for (i, t) in tensors.iter().enumerate() {
            if t.dtype() != first.dtype() {
                return Err(Error::DTypeMismatch {
                    op: "cat",
                    lhs: first.dtype(),
                    rhs: t.dtype(),
                });
            }
            let agrees = t.rank() == first.rank()
                && t.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(k, (a, b))| k == d || a == b);
            if !agrees {
                return Err(Error::shapes(
                    "cat",
                    first.shape(),
                    t.shape(),
                    format!("tensor {i} must match tensor 0 in every dim but dim {d}"),
                ));
            }
            shape[d] += t.shape()[d];
        }
        let outer: usize = shape[..d].iter().product();
        let inner: usize = shape[d + 1..].iter().product();
        let sizes: Vec<usize> = tensors.iter().map(|t| t.shape()[d]).collect();
        let chunks: Vec<usize> = sizes.iter().map(|&s| s * inner).collect();
        let out = dispatch!(first.dtype(), T => cat_kernel::<T>(tensors, outer, &chunks, &shape)?);
        Ok(out.record("cat", tensors, move |g, needs| {
            let mut start = 0;
            let mut grads = Vec::with_capacity(sizes.len());
            for (&len, &need) in sizes.iter().zip(needs) {
                grads.push(if need {
                    Some(g.narrow(d as isize, start, len)?)
                } else {
                    None
                });
                start += len;
            }
            Ok(grads)
        }))
    }

    /// Join equally shaped `tensors` along a new dim `dim` (which may equal their rank).
    pub fn stack(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("stack", "needs at least one tensor"))?;
        let r = first.rank() as isize;
        let d = if dim < 0 { dim + r + 1 } else { dim };
        if d < 0 || d > r {
            return Err(Error::DimOutOfRange {
                op: "stack",
                dim,
                shape: first.shape().to_vec(),
            });
        }
        for (i, t) in tensors.iter().enumerate() {
            if t.shape() != first.shape() {
                return Err(Error::shapes(
                    "stack",
                    first.shape(),
                    t.shape(),
                    format!("tensor {i} must have the shape of tensor 0"),
                ));
            }
        }
        let parts = tensors.iter().map(|t| t.unsqueeze(d)).collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Tensor> = parts.iter().collect();
        Tensor::cat(&refs, d)
    }

    /// Views of consecutive pieces of `size` along `dim` (the last may be shorter).
    pub fn split(&self, size: usize, dim: isize) -> Result<Vec<Tensor>> {
        let d = normalize_dim("split", dim, self.shape())?;
        let len = self.shape()[d];
        if size == 0 {
            if len == 0 {
                return Ok(vec![self.narrow(d as isize, 0, 0)?]);
            }
            return Err(Error::invalid(
                "split",
                format!(
                    "split size 0 cannot cut dim {d} of size {len} (shape {:?})",
                    self.shape()
                ),
            ));
        }
        if len == 0 {
            return Ok(vec![self.narrow(d as isize, 0, 0)?]);
        }
        (0..len)
            .step_by(size)
            .map(|start| self.narrow(d as isize, start, size.min(len - start)))
            .collect()
    }

    /// `n` pieces along `dim` as views, each of size ⌈len / n⌉ except the last (so fewer
    /// than `n` may come back, as PyTorch).
    pub fn chunk(&self, n: usize, dim: isize) -> Result<Vec<Tensor>> {
        let d = normalize_dim("chunk", dim, self.shape())?;
        if n == 0 {
            return Err(Error::invalid(
                "chunk",
                format!("needs at least one chunk (dim {d} of shape {:?})", self.shape()),
            ));
        }
        let len = self.shape()[d];
        if len == 0 {
            // PyTorch gives n empty pieces here, not one.
            return (0..n).map(|_| self.narrow(d as isize, 0, 0)).collect();
        }
        self.split(len.div_ceil(n), d as isize)
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator, Tensor};

    fn r(shape: &[usize], seed: u64) -> Tensor {
        Tensor::randn(shape, DType::F64, &mut Generator::new(seed))
    }

    fn v32(t: &Tensor) -> Vec<f32> {
        t.to_vec::<f32>().unwrap()
    }

    fn ar(n: usize, shape: &[usize]) -> Tensor {
        Tensor::arange(0.0, n as f64, 1.0, DType::F32)
            .unwrap()
            .reshape(shape)
            .unwrap()
    }

    #[test]
    fn cat_values() {
        let a = ar(4, &[2, 2]);
        let b = ar(6, &[2, 3]).add_scalar(10.0).unwrap();
        let c = Tensor::cat(&[&a, &b], 1).unwrap();
        assert_eq!(c.shape(), &[2, 5]);
        assert_eq!(v32(&c), vec![0.0, 1.0, 10.0, 11.0, 12.0, 2.0, 3.0, 13.0, 14.0, 15.0]);
        let c = Tensor::cat(&[&a, &a.mul_scalar(-1.0).unwrap()], -2).unwrap();
        assert_eq!(v32(&c), vec![0.0, 1.0, 2.0, 3.0, 0.0, -1.0, -2.0, -3.0]);
        // An empty piece is allowed and contributes nothing.
        let e = Tensor::zeros(&[2, 0], DType::F32);
        assert_eq!(v32(&Tensor::cat(&[&e, &a, &e], 1).unwrap()), v32(&a));
    }

    #[test]
    fn cat_errors_name_op_shapes_and_dim() {
        let a = Tensor::zeros(&[2, 3], DType::F32);
        let e = Tensor::cat(&[&a, &Tensor::zeros(&[3, 3], DType::F32)], 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cat") && e.contains("[2, 3]") && e.contains("[3, 3]") && e.contains("dim 1"),
            "{e}"
        );
        let e = Tensor::cat(&[&a, &Tensor::zeros(&[2, 3, 1], DType::F32)], 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cat") && e.contains("[2, 3, 1]"), "{e}");
        let e = Tensor::cat(&[&a, &Tensor::zeros(&[2, 3], DType::F64)], 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cat") && e.contains("dtype"), "{e}");
        let e = Tensor::cat(&[&a], 2).unwrap_err().to_string();
        assert!(e.contains("cat") && e.contains("dim 2"), "{e}");
        assert!(Tensor::cat(&[], 0).unwrap_err().to_string().contains("cat"));
        assert!(Tensor::cat(&[&Tensor::scalar(1.0f32)], 0).is_err());
    }

    #[test]
    fn cat_gradients() {
        let (a, b, c) = (r(&[2, 3, 4], 1), r(&[2, 1, 4], 2), r(&[2, 2, 4], 3));
        gradcheck(|t| Tensor::cat(&[&t[0], &t[1], &t[2]], 1), &[a.clone(), b, c]).unwrap();
        // The same input twice collects both slices of the gradient.
        gradcheck(|t| Tensor::cat(&[&t[0], &t[0]], -1), std::slice::from_ref(&a)).unwrap();
    }

    #[test]
    fn cat_non_contiguous_matches_contiguous() {
        let x = r(&[4, 3], 4).set_requires_grad(true);
        let y = r(&[2, 4], 5).set_requires_grad(true);
        let w = r(&[3, 6], 6);
        let run = |copy: bool| {
            let xt = x.t().unwrap();
            let yt = y.narrow(0, 1, 1).unwrap().expand([2, 4]).unwrap().t().unwrap();
            let (xt, yt) = if copy {
                (xt.contiguous().unwrap(), yt.contiguous().unwrap())
            } else {
                (xt, yt)
            };
            assert_eq!(xt.is_contiguous(), copy);
            let c = Tensor::cat(&[&xt, &yt.narrow(0, 0, 3).unwrap()], 1).unwrap();
            let g = c.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
            (
                c.to_vec::<f64>().unwrap(),
                g.get(&x).unwrap().to_vec_f64(),
                g.get(&y).unwrap().to_vec_f64(),
            )
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn stack_values_errors_and_gradients() {
        let a = ar(3, &[3]);
        let b = ar(3, &[3]).add_scalar(10.0).unwrap();
        let s = Tensor::stack(&[&a, &b], 0).unwrap();
        assert_eq!(s.shape(), &[2, 3]);
        assert_eq!(v32(&s), vec![0.0, 1.0, 2.0, 10.0, 11.0, 12.0]);
        let s = Tensor::stack(&[&a, &b], -1).unwrap();
        assert_eq!(s.shape(), &[3, 2]);
        assert_eq!(v32(&s), vec![0.0, 10.0, 1.0, 11.0, 2.0, 12.0]);
        let e = Tensor::stack(&[&a, &ar(4, &[4])], 0).unwrap_err().to_string();
        assert!(e.contains("stack") && e.contains("[3]") && e.contains("[4]"), "{e}");
        let e = Tensor::stack(&[&a], 2).unwrap_err().to_string();
        assert!(e.contains("stack") && e.contains("dim 2"), "{e}");
        gradcheck(
            |t| Tensor::stack(&[&t[0], &t[1].t()?], 1),
            &[r(&[2, 3], 7), r(&[3, 2], 8)],
        )
        .unwrap();
    }

    #[test]
    fn split_and_chunk() {
        let x = ar(10, &[5, 2]);
        let parts = x.split(2, 0).unwrap();
        assert_eq!(parts.iter().map(|p| p.shape()[0]).collect::<Vec<_>>(), vec![2, 2, 1]);
        assert!(parts.iter().all(|p| p.shares_storage(&x)));
        assert_eq!(v32(&parts[2]), vec![8.0, 9.0]);
        let cols = x.split(1, -1).unwrap();
        assert_eq!(v32(&cols[1]), vec![1.0, 3.0, 5.0, 7.0, 9.0]);
        // ⌈5 / 3⌉ = 2 per chunk, so 3 chunks of 2, 2, 1; ⌈5 / 4⌉ = 2 also gives only 3.
        let sizes = |v: Vec<Tensor>| v.iter().map(|p| p.shape()[0]).collect::<Vec<_>>();
        assert_eq!(sizes(x.chunk(3, 0).unwrap()), vec![2, 2, 1]);
        assert_eq!(sizes(x.chunk(4, 0).unwrap()), vec![2, 2, 1]);
        assert_eq!(sizes(x.chunk(5, 0).unwrap()), vec![1; 5]);
        assert_eq!(sizes(x.chunk(9, 0).unwrap()), vec![1; 5]);
        let empty = Tensor::zeros(&[0, 2], DType::F32);
        assert_eq!(empty.chunk(3, 0).unwrap().len(), 3);
        assert_eq!(empty.split(2, 0).unwrap().len(), 1);
        let e = x.split(0, 0).unwrap_err().to_string();
        assert!(e.contains("split") && e.contains("[5, 2]"), "{e}");
        let e = x.chunk(0, 1).unwrap_err().to_string();
        assert!(e.contains("chunk") && e.contains("[5, 2]"), "{e}");
        assert!(x.split(1, 2).unwrap_err().to_string().contains("split"));
        // The pieces put back together are the whole, and gradients flow through the views.
        let back = Tensor::cat(&x.chunk(2, 1).unwrap().iter().collect::<Vec<_>>(), 1).unwrap();
        assert_eq!(v32(&back), v32(&x));
        gradcheck(
            |t| {
                let p = t[0].split(2, 1)?;
                p[0].mul(&p[2])?.add(&p[1].narrow(1, 0, 1)?)
            },
            &[r(&[3, 5], 9)],
        )
        .unwrap();
    }
}
