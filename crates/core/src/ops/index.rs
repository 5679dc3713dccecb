//! Indexing with integer lists: `index_select`, `gather`, `scatter_add` and `one_hot`.
//!
//! Indices are `usize` slices in row-major order; `gather` and `scatter_add` also take
//! the index's shape (PyTorch's index tensor, flattened).
//!
//! ```
//! use nabla_core::Tensor;
//! let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
//! // out[i][j] = x[i][index[i][j]]
//! let y = x.gather(1, &[0, 0, 1, 0], &[2, 2])?;
//! assert_eq!(y.to_vec::<f32>()?, vec![1.0, 1.0, 4.0, 3.0]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use crate::dtype::dispatch;
use crate::shape::{contiguous_strides, normalize_dim};
use crate::tensor::dtype_err;
use crate::{Buffer, DType, Element, Error, Result, Tensor};
use std::sync::Arc;

/// A checked gather/scatter index: the dim, the positions and their shape. Shared (not
/// copied) by the backward rules, which reuse it for every order of derivative.
#[derive(Clone)]
struct Idx {
    d: usize,
    at: Arc<[usize]>,
    shape: Arc<[usize]>,
}

impl Idx {
    /// Check `at` (of shape `shape`) against the input `input` (and `src` for scatter_add).
    fn new(
        op: &'static str,
        input: &[usize],
        dim: isize,
        at: &[usize],
        shape: &[usize],
        src: Option<&[usize]>,
    ) -> Result<Idx> {
        let d = normalize_dim(op, dim, input)?;
        if shape.len() != input.len() {
            return Err(Error::shapes(op, input, shape, "the index must have the input's rank"));
        }
        if shape.iter().try_fold(1usize, |a, &s| a.checked_mul(s)) != Some(at.len()) {
            return Err(Error::invalid(
                op,
                format!("{} indices given for index shape {shape:?}", at.len()),
            ));
        }
        if let Some(k) = (0..shape.len()).find(|&k| k != d && shape[k] > input[k]) {
            return Err(Error::shapes(
                op,
                input,
                shape,
                format!("index is larger than the input at dim {k}"),
            ));
        }
        if let Some(src) = src.filter(|s| s.len() != shape.len() || shape.iter().zip(*s).any(|(i, s)| i > s)) {
            return Err(Error::shapes(
                op,
                src,
                shape,
                "src must be at least as large as the index",
            ));
        }
        check_range(op, input, d, at)?;
        Ok(Idx {
            d,
            at: at.into(),
            shape: shape.into(),
        })
    }
}

fn check_range(op: &'static str, shape: &[usize], d: usize, index: &[usize]) -> Result<()> {
    match index.iter().position(|&i| i >= shape[d]) {
        Some(p) => Err(Error::invalid(
            op,
            format!(
                "index {} at position {p} is out of range for dim {d} of shape {shape:?}",
                index[p]
            ),
        )),
        None => Ok(()),
    }
}

/// Storage offset of row `r` (a position over all dims but the last) under `strides`,
/// leaving out dim `skip` (whose position comes from an index instead).
fn row_base(mut r: usize, shape: &[usize], strides: &[usize], skip: usize) -> usize {
    let mut at = 0;
    for k in (0..shape.len() - 1).rev() {
        if k != skip {
            at += (r % shape[k]) * strides[k];
        }
        r /= shape[k];
    }
    at
}

/// Run `f` on `t`'s whole storage, its offset and strides: strided reads without a copy.
fn with_strided<T: Element, R>(op: &'static str, t: &Tensor, f: impl FnOnce(&[T], usize, &[usize]) -> R) -> Result<R> {
    let buf = t.read();
    let all = T::slice(&buf).ok_or_else(|| dtype_err::<T>(op, t.dtype()))?;
    Ok(f(all, t.layout().offset, t.strides()))
}

fn gather_kernel<T: Element>(x: &Tensor, ix: &Idx) -> Result<Buffer> {
    let (d, last) = (ix.d, ix.shape.len() - 1);
    let len = ix.shape[last];
    let mut out = Vec::with_capacity(ix.at.len());
    if len > 0 {
        with_strided("gather", x, |src: &[T], off, st| {
            let step = if d == last { 0 } else { st[last] };
            for (r, row) in ix.at.chunks_exact(len).enumerate() {
                let base = off + row_base(r, &ix.shape, st, d);
                out.extend(row.iter().enumerate().map(|(j, &i)| src[base + i * st[d] + j * step]));
            }
        })?;
    }
    Ok(T::wrap(out))
}

/// A copy of `x` with `src[p]` added at each index position `p` (in order, so the sums
/// do not depend on threads).
fn scatter_add_kernel<T: Element>(x: &Tensor, ix: &Idx, src: &Tensor) -> Result<Buffer> {
    // Copy x before locking src: the two may share one storage.
    let mut out = x.to_vec::<T>()?;
    let ost = contiguous_strides(x.shape());
    let (d, last) = (ix.d, ix.shape.len() - 1);
    let len = ix.shape[last];
    let ostep = if d == last { 0 } else { 1 };
    if len > 0 {
        with_strided("scatter_add", src, |s: &[T], soff, sst| {
            for (r, row) in ix.at.chunks_exact(len).enumerate() {
                let ob = row_base(r, &ix.shape, &ost, d);
                let sb = soff + row_base(r, &ix.shape, sst, usize::MAX);
                for (j, &i) in row.iter().enumerate() {
                    out[ob + i * ost[d] + j * ostep] += s[sb + j * sst[last]];
                }
            }
        })?;
    }
    Ok(T::wrap(out))
}

/// Sizes before, along and after `d`.
fn split_at(shape: &[usize], d: usize) -> (usize, usize, usize) {
    (shape[..d].iter().product(), shape[d], shape[d + 1..].iter().product())
}

/// index_select (`add` false: rows `index[j]` of `x` become row `j`) or its adjoint
/// (`add` true: row `j` of `x` is added into row `index[j]` of zeros of size `size`).
fn select_kernel<T: Element>(x: &Tensor, d: usize, index: &[usize], size: usize, add: bool) -> Result<Buffer> {
    let (outer, len, inner) = split_at(x.shape(), d);
    let (m, n) = if add { (size, len) } else { (index.len(), len) };
    let mut out = crate::kernels::elementwise::output_vec::<T>(outer * m * inner);
    if inner > 0 && !index.is_empty() {
        x.with_slice(|s: &[T]| {
            for o in 0..outer {
                for (j, &i) in index.iter().enumerate() {
                    let (to, from) = if add { (i, j) } else { (j, i) };
                    let dst = &mut out[(o * m + to) * inner..][..inner];
                    let src = &s[(o * n + from) * inner..][..inner];
                    if add {
                        dst.iter_mut().zip(src).for_each(|(a, &b)| *a += b);
                    } else {
                        dst.copy_from_slice(src);
                    }
                }
            }
        })?;
    }
    Ok(T::wrap(out))
}

impl Tensor {
    /// The entries `index` along `dim`, in that order (repeats allowed).
    pub fn index_select(&self, dim: isize, index: &[usize]) -> Result<Tensor> {
        let d = normalize_dim("index_select", dim, self.shape())?;
        check_range("index_select", self.shape(), d, index)?;
        self.select_or_add(d, index.into(), false, self.shape()[d])
    }

    /// index_select, or (`add`) its adjoint, the backward of index_select: zeros of size
    /// `size` at `d` with slice `j` of `self` added at `index[j]`. Each is the other's backward.
    fn select_or_add(&self, d: usize, index: Arc<[usize]>, add: bool, size: usize) -> Result<Tensor> {
        let buf = dispatch!(self.dtype(), T => select_kernel::<T>(self, d, &index, size, add)?);
        let mut shape = self.shape().to_vec();
        let back = shape[d];
        shape[d] = if add { size } else { index.len() };
        let name = if add { "index_add" } else { "index_select" };
        Ok(Tensor::from_buffer(buf, &shape).record(name, &[self], move |g, _| {
            Ok(vec![Some(g.select_or_add(d, index.clone(), !add, back)?)])
        }))
    }

    /// `out[i][j][k] = self[index[i][j][k]][j][k]` for `dim` 0 (likewise for other dims):
    /// `index` (row-major, of shape `index_shape`, the output's shape) has the input's
    /// rank and is no larger than it in the other dims.
    pub fn gather(&self, dim: isize, index: &[usize], index_shape: &[usize]) -> Result<Tensor> {
        self.gather_idx(Idx::new("gather", self.shape(), dim, index, index_shape, None)?)
    }

    fn gather_idx(&self, ix: Idx) -> Result<Tensor> {
        let buf = dispatch!(self.dtype(), T => gather_kernel::<T>(self, &ix)?);
        let (shape, dtype) = (self.shape().to_vec(), self.dtype());
        Ok(
            Tensor::from_buffer(buf, &ix.shape.clone()).record("gather", &[self], move |g, _| {
                Ok(vec![Some(Tensor::zeros(&shape, dtype).scatter_add_idx(ix.clone(), g)?)])
            }),
        )
    }

    /// A copy of `self` with `src[p]` added at position `p` of the index, its dim-`dim`
    /// coordinate replaced by `index[p]` (repeats accumulate). `index` (of shape
    /// `index_shape`) has the input's rank; `src` may be larger than it (the rest is unused).
    pub fn scatter_add(&self, dim: isize, index: &[usize], index_shape: &[usize], src: &Tensor) -> Result<Tensor> {
        if src.dtype() != self.dtype() {
            let (lhs, rhs) = (self.dtype(), src.dtype());
            return Err(Error::DTypeMismatch {
                op: "scatter_add",
                lhs,
                rhs,
            });
        }
        let ix = Idx::new("scatter_add", self.shape(), dim, index, index_shape, Some(src.shape()))?;
        self.scatter_add_idx(ix, src)
    }

    fn scatter_add_idx(&self, ix: Idx, src: &Tensor) -> Result<Tensor> {
        let buf = dispatch!(self.dtype(), T => scatter_add_kernel::<T>(self, &ix, src)?);
        let src_shape = src.shape().to_vec();
        Ok(
            Tensor::from_buffer(buf, self.shape()).record("scatter_add", &[self, src], move |g, needs| {
                let mut gs = None;
                if needs[1] {
                    let picked = g.gather_idx(ix.clone())?;
                    // A larger src's unused tail gets zeros.
                    let pads: Vec<usize> = src_shape
                        .iter()
                        .zip(ix.shape.iter())
                        .rev()
                        .flat_map(|(&s, &i)| [0, s - i])
                        .collect();
                    gs = Some(if pads.iter().all(|&p| p == 0) {
                        picked
                    } else {
                        picked.pad(&pads, 0.0)?
                    });
                }
                Ok(vec![needs[0].then(|| g.clone()), gs])
            }),
        )
    }

    /// Rows of zeros with a 1 at each label: shape `[labels.len(), num_classes]`.
    pub fn one_hot(labels: &[usize], num_classes: usize, dtype: DType) -> Result<Tensor> {
        if let Some(p) = labels.iter().position(|&l| l >= num_classes) {
            let msg = format!(
                "label {} at position {p} is out of range for {num_classes} classes",
                labels[p]
            );
            return Err(Error::invalid("one_hot", msg));
        }
        let out = Tensor::zeros(&[labels.len(), num_classes], dtype);
        let hot = labels.iter().enumerate().map(|(row, &l)| row * num_classes + l);
        dispatch!(dtype, T => out.update(|v: &mut [T]| hot.for_each(|i| v[i] = T::ONE))?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::{autograd::enable_grad, grad, DType, Generator, Result, Tensor};

    fn r(shape: &[usize], seed: u64) -> Tensor {
        Tensor::randn(shape, DType::F64, &mut Generator::new(seed))
    }

    fn v(t: &Tensor) -> Vec<f64> {
        t.to_vec_f64()
    }

    fn fails(r: Result<Tensor>, parts: &[&str]) {
        let e = r.unwrap_err().to_string();
        assert!(parts.iter().all(|p| e.contains(p)), "{e} lacks one of {parts:?}");
    }

    /// d(f(x))/dx with its graph kept, so gradcheck can differentiate it once more.
    fn first_grad(x: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
        let _on = enable_grad();
        let x = if x.requires_grad() {
            x.clone()
        } else {
            x.set_requires_grad(true)
        };
        let y = f(&x)?;
        Ok(grad(&[&y], None, &[&x], true)?
            .remove(0)
            .unwrap_or_else(|| Tensor::zeros_like(&x)))
    }

    #[test]
    fn index_select_values_and_gradients() {
        let x = Tensor::arange(0.0, 6.0, 1.0, DType::F32)
            .unwrap()
            .reshape([3, 2])
            .unwrap();
        assert_eq!(
            v(&x.index_select(0, &[2, 0, 2]).unwrap()),
            vec![4.0, 5.0, 0.0, 1.0, 4.0, 5.0]
        );
        assert_eq!(v(&x.index_select(-1, &[1]).unwrap()), vec![1.0, 3.0, 5.0]);
        assert_eq!(
            v(&x.t().unwrap().index_select(1, &[2, 1]).unwrap()),
            vec![4.0, 2.0, 5.0, 3.0]
        );
        assert_eq!(x.index_select(1, &[]).unwrap().shape(), &[3, 0]);
        // A repeated row collects both gradients.
        let w = Tensor::from_vec(vec![1.0f64, 2.0], &[2, 1]).unwrap();
        let l = x.to_dtype(DType::F64).unwrap().set_requires_grad(true);
        let g = l
            .index_select(0, &[2, 2])
            .unwrap()
            .mul(&w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(v(g.get(&l).unwrap()), vec![0.0, 0.0, 0.0, 0.0, 3.0, 3.0]);
        gradcheck(|t| t[0].index_select(1, &[3, 0, 3, 1]), &[r(&[2, 4, 3], 1)]).unwrap();
        gradcheck(
            |t| first_grad(&t[0], |x| x.index_select(0, &[1, 1, 0])?.square()),
            &[r(&[2, 3], 2)],
        )
        .unwrap();
        fails(
            x.index_select(0, &[1, 3]),
            &["index_select", "index 3", "dim 0", "[3, 2]"],
        );
        fails(x.index_select(2, &[0]), &["index_select", "dim 2"]);
    }

    #[test]
    fn gather_values() {
        let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        assert_eq!(
            v(&x.gather(1, &[0, 0, 1, 0], &[2, 2]).unwrap()),
            vec![1.0, 1.0, 4.0, 3.0]
        );
        assert_eq!(
            v(&x.gather(0, &[0, 1, 1, 0], &[2, 2]).unwrap()),
            vec![1.0, 4.0, 3.0, 2.0]
        );
        // The index may be smaller than the input in the other dims, and longer along dim.
        assert_eq!(v(&x.gather(1, &[1, 1, 0], &[1, 3]).unwrap()), vec![2.0, 2.0, 1.0]);
        assert_eq!(v(&x.t().unwrap().gather(1, &[1, 0], &[2, 1]).unwrap()), vec![3.0, 2.0]);
        assert_eq!(x.gather(0, &[], &[0, 2]).unwrap().shape(), &[0, 2]);
    }

    #[test]
    fn gather_errors_name_op_shapes_and_dim() {
        let x = Tensor::zeros(&[2, 3], DType::F32);
        fails(x.gather(1, &[0, 3], &[2, 1]), &["gather", "index 3", "dim 1", "[2, 3]"]);
        fails(x.gather(1, &[0, 1], &[2]), &["gather", "[2, 3]", "[2]", "rank"]);
        fails(x.gather(1, &[0, 1, 2], &[2, 1]), &["gather", "3 indices", "[2, 1]"]);
        fails(x.gather(1, &[0; 3], &[3, 1]), &["gather", "[3, 1]", "dim 0"]);
        fails(x.gather(-3, &[0], &[1, 1]), &["gather", "dim -3"]);
        assert!(Tensor::scalar(1.0f32).gather(0, &[0], &[]).is_err());
    }

    #[test]
    fn gather_gradients_first_and_second_order() {
        let idx = [2, 0, 2, 1, 1, 1, 0, 2];
        gradcheck(|t| t[0].gather(1, &idx, &[2, 4]), &[r(&[2, 3], 3)]).unwrap();
        gradcheck(|t| t[0].gather(0, &idx[..6], &[3, 2]), &[r(&[3, 2], 4)]).unwrap();
        let sq = |x: &Tensor| x.gather(1, &idx, &[2, 4])?.square()?.mul(&x.narrow(1, 0, 1)?);
        gradcheck(|t| first_grad(&t[0], sq), &[r(&[2, 3], 5)]).unwrap();
    }

    #[test]
    fn gather_non_contiguous_matches_contiguous() {
        let x = r(&[4, 3], 6).set_requires_grad(true);
        let w = r(&[3, 5], 7);
        let idx = [0, 3, 3, 1, 2, 2, 0, 0, 1, 3, 3, 2, 1, 0, 1];
        let run = |copy: bool| {
            let xt = if copy {
                x.t().unwrap().contiguous().unwrap()
            } else {
                x.t().unwrap()
            };
            let y = xt.gather(1, &idx, &[3, 5]).unwrap();
            let g = y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
            (v(&y), v(g.get(&x).unwrap()))
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn scatter_add_values() {
        let src = Tensor::arange(1.0, 7.0, 1.0, DType::F64)
            .unwrap()
            .reshape([2, 3])
            .unwrap();
        let idx = [0, 1, 0, 2, 2, 1];
        let y = Tensor::ones(&[2, 3], DType::F64)
            .scatter_add(1, &idx, &[2, 3], &src)
            .unwrap();
        assert_eq!(v(&y), vec![5.0, 3.0, 1.0, 1.0, 7.0, 10.0]);
        let y = Tensor::zeros(&[3, 2], DType::F64)
            .scatter_add(0, &[0, 2, 0, 0], &[2, 2], &src.narrow(1, 0, 2).unwrap())
            .unwrap();
        assert_eq!(v(&y), vec![5.0, 5.0, 0.0, 0.0, 0.0, 2.0]);
        // src larger than the index: only the index-shaped corner is used.
        let y = Tensor::zeros(&[1, 2], DType::F64)
            .scatter_add(1, &[1, 1], &[1, 2], &src)
            .unwrap();
        assert_eq!(v(&y), vec![0.0, 3.0]);
        // self and src may be one tensor.
        assert_eq!(
            v(&src.scatter_add(0, &[1, 1, 1], &[1, 3], &src).unwrap()),
            vec![1.0, 2.0, 3.0, 5.0, 7.0, 9.0]
        );
    }

    #[test]
    fn scatter_add_errors() {
        let x = Tensor::zeros(&[2, 3], DType::F64);
        let src = Tensor::ones(&[2, 2], DType::F64);
        fails(
            x.scatter_add(1, &[0, 1, 3, 0], &[2, 2], &src),
            &["scatter_add", "index 3", "dim 1"],
        );
        fails(
            x.scatter_add(1, &[0; 6], &[2, 3], &src),
            &["scatter_add", "[2, 2]", "[2, 3]"],
        );
        fails(x.scatter_add(1, &[0; 2], &[2], &src), &["scatter_add", "rank"]);
        fails(
            x.scatter_add(0, &[0; 4], &[2, 2], &src.to_dtype(DType::F32).unwrap()),
            &["scatter_add", "dtype"],
        );
    }

    #[test]
    fn scatter_add_gradients_first_and_second_order() {
        let idx = [1, 0, 1, 3, 3, 0];
        gradcheck(
            |t| t[0].scatter_add(1, &idx, &[2, 3], &t[1]),
            &[r(&[2, 4], 8), r(&[2, 3], 9)],
        )
        .unwrap();
        gradcheck(
            |t| t[0].scatter_add(0, &[2, 0, 2], &[1, 3], &t[1]),
            &[r(&[3, 4], 10), r(&[2, 4], 11)],
        )
        .unwrap();
        let f = |s: &Tensor| {
            Tensor::zeros(&[2, 4], DType::F64)
                .scatter_add(1, &idx, &[2, 3], s)?
                .powf(3.0)
        };
        gradcheck(|t| first_grad(&t[0], f), &[r(&[2, 3], 12)]).unwrap();
    }

    #[test]
    fn one_hot_values_and_errors() {
        let h = Tensor::one_hot(&[2, 0, 2], 3, DType::F32).unwrap();
        assert_eq!(h.shape(), &[3, 3]);
        assert_eq!(
            h.to_vec::<f32>().unwrap(),
            vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
        );
        assert_eq!(Tensor::one_hot(&[1], 2, DType::F64).unwrap().dtype(), DType::F64);
        fails(
            Tensor::one_hot(&[0, 3], 3, DType::F32),
            &["one_hot", "label 3", "3 classes"],
        );
    }
}
