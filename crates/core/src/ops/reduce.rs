//! Reductions over one or several dims: sum, mean, max, min, argmax, argmin, var, std;
//! and `sum_to`, which undoes broadcasting (the backward of every broadcasting op).

use super::access::materialize;
use crate::dtype::dispatch;
use crate::kernels::reduce::{fold, reduce_axis, sum as sum_slice};
use crate::shape::{normalize_dim, normalize_dims};
use crate::{Element, Error, Result, Tensor};

/// How to combine a run of elements.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Sum,
    Max,
    Min,
}

fn kept_shape(shape: &[usize], dims: &[usize], keepdim: bool) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, &s) in shape.iter().enumerate() {
        if !dims.contains(&i) {
            out.push(s);
        } else if keepdim {
            out.push(1);
        }
    }
    out
}

/// Reduce `x` over `dims` (sorted, unique); returns a tensor of the kept shape with keepdim.
fn reduce_raw(x: &Tensor, dims: &[usize], kind: Kind) -> Tensor {
    let shape = x.shape().to_vec();
    let out_shape = kept_shape(&shape, dims, true);
    // `dims` is sorted. Separate runs (batch norm's [0, 2, 3]) are reduced one at a time, the
    // last run first: each stage reads its input in place, where bringing the dims together
    // would copy the whole input first.
    if let Some(split) = (1..dims.len()).rev().find(|&i| dims[i] != dims[i - 1] + 1) {
        return reduce_raw(&reduce_raw(x, &dims[split..], kind), &dims[..split], kind);
    }
    // One run of dims: `outer × len × inner`, read in place (`materialize` copies only a
    // strided view). No dims at all: every element is its own result.
    let (outer, len, inner) = match (dims.first(), dims.last()) {
        (Some(&a), Some(&b)) => (
            shape[..a].iter().product(),
            shape[a..=b].iter().product(),
            shape[b + 1..].iter().product(),
        ),
        _ => (x.numel(), 1, 1),
    };
    let src = materialize(x);
    fn run<T: Element>(src: &Tensor, outer: usize, len: usize, inner: usize, kind: Kind, shape: &[usize]) -> Tensor {
        let mut out = crate::kernels::elementwise::output_vec::<T>(outer * inner);
        src.with_slice(|s: &[T]| match kind {
            Kind::Sum => reduce_axis(s, outer, len, inner, &mut out, sum_slice, T::ZERO, |a, b| a + b),
            Kind::Max => reduce_axis(
                s,
                outer,
                len,
                inner,
                &mut out,
                |r| fold(r, T::NEG_INFINITY, T::max_nan),
                T::NEG_INFINITY,
                |a, b| a.max_nan(b),
            ),
            Kind::Min => reduce_axis(
                s,
                outer,
                len,
                inner,
                &mut out,
                |r| fold(r, T::INFINITY, T::min_nan),
                T::INFINITY,
                |a, b| a.min_nan(b),
            ),
        })
        .expect("dtype matches");
        Tensor::from_buffer(T::wrap(out), shape)
    }
    dispatch!(x.dtype(), T => run::<T>(&src, outer, len, inner, kind, &out_shape))
}

impl Tensor {
    /// Sum over `dims` (empty: all dims).
    pub fn sum(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let d = normalize_dims("sum", dims, self.shape())?;
        let out = reduce_raw(self, &d, Kind::Sum);
        let in_shape = self.shape().to_vec();
        let out = out.record("sum", &[self], move |g, _| Ok(vec![Some(g.expand(&in_shape)?)]));
        if keepdim {
            Ok(out)
        } else {
            out.reshape(kept_shape(self.shape(), &d, false))
        }
    }

    /// Sum of all elements, as a 0-d tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(&[], false)
    }

    /// Mean over `dims` (empty: all dims).
    pub fn mean(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let d = normalize_dims("mean", dims, self.shape())?;
        let n: usize = d.iter().map(|&i| self.shape()[i]).product();
        self.sum(dims, keepdim)?.mul_scalar(1.0 / n as f64)
    }

    /// Mean of all elements, as a 0-d tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.mean(&[], false)
    }

    /// Sum the broadcast dims away so the result has `shape` (which must broadcast to ours).
    pub fn sum_to(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let pad = self
            .rank()
            .checked_sub(shape.len())
            .ok_or_else(|| Error::shapes("sum_to", self.shape(), shape, "target has more dims"))?;
        let mut dims = Vec::new();
        for i in 0..self.rank() {
            if i < pad || (shape[i - pad] == 1 && self.shape()[i] != 1) {
                dims.push(i as isize);
            } else if shape[i - pad] != self.shape()[i] {
                return Err(Error::shapes("sum_to", self.shape(), shape, format!("dim {i}")));
            }
        }
        if dims.is_empty() {
            return self.reshape(shape);
        }
        self.sum(&dims, true)?.reshape(shape)
    }

    fn extremum(&self, dims: &[isize], keepdim: bool, kind: Kind, op: &'static str) -> Result<Tensor> {
        let d = normalize_dims(op, dims, self.shape())?;
        if d.iter().any(|&i| self.shape()[i] == 0) {
            return Err(Error::invalid(
                op,
                format!("cannot reduce an empty dim of shape {:?}", self.shape()),
            ));
        }
        let out = reduce_raw(self, &d, kind);
        let x = self.clone();
        let kept = out.clone();
        let out = out.record(op, &[self], move |g, _| {
            // Ties share the gradient evenly (this is also what central differences see).
            let mask = x.eq(&kept)?;
            let count = mask.sum(&d.iter().map(|&i| i as isize).collect::<Vec<_>>(), true)?;
            Ok(vec![Some(g.mul(&mask)?.div(&count)?)])
        });
        if keepdim {
            Ok(out)
        } else {
            out.reshape(kept_shape(
                self.shape(),
                &normalize_dims(op, dims, self.shape())?,
                false,
            ))
        }
    }

    /// Maximum over `dims` (empty: all). NaN wins; ties share the gradient.
    pub fn max(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        self.extremum(dims, keepdim, Kind::Max, "max")
    }

    /// Minimum over `dims` (empty: all). NaN wins; ties share the gradient.
    pub fn min(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        self.extremum(dims, keepdim, Kind::Min, "min")
    }

    fn arg_extremum(&self, dim: isize, keepdim: bool, want_max: bool, op: &'static str) -> Result<Vec<usize>> {
        let d = normalize_dim(op, dim, self.shape())?;
        let len = self.shape()[d];
        if len == 0 {
            return Err(Error::invalid(
                op,
                format!("dim {d} of shape {:?} is empty", self.shape()),
            ));
        }
        let _ = keepdim;
        // Move `dim` last keeping the others in order (a transpose with the last dim would
        // swap H and W of an [N, C, H, W] argmax over C).
        let mut order: Vec<isize> = (0..self.rank() as isize).filter(|&i| i != d as isize).collect();
        order.push(d as isize);
        let moved = self.detach().permute(&order)?;
        let vals = moved.to_vec_f64();
        Ok(vals
            .chunks(len)
            .map(|row| {
                let mut best = 0;
                for (i, &v) in row.iter().enumerate() {
                    let b = row[best];
                    if b.is_nan() {
                        break;
                    }
                    if v.is_nan() || (want_max && v > b) || (!want_max && v < b) {
                        best = i;
                    }
                }
                best
            })
            .collect())
    }

    /// Index of the maximum along `dim` (first one on ties; NaN counts as largest).
    /// Returned as positions in row-major order of the reduced shape.
    pub fn argmax(&self, dim: isize, keepdim: bool) -> Result<Vec<usize>> {
        self.arg_extremum(dim, keepdim, true, "argmax")
    }

    /// Index of the minimum along `dim` (first one on ties; NaN counts as smallest).
    pub fn argmin(&self, dim: isize, keepdim: bool) -> Result<Vec<usize>> {
        self.arg_extremum(dim, keepdim, false, "argmin")
    }

    /// Variance over `dims`, two-pass (mean first) so large means do not cancel;
    /// `unbiased` divides by n − 1 (Bessel).
    pub fn var(&self, dims: &[isize], unbiased: bool, keepdim: bool) -> Result<Tensor> {
        let d = normalize_dims("var", dims, self.shape())?;
        let n: usize = d.iter().map(|&i| self.shape()[i]).product();
        let denom = if unbiased { n.saturating_sub(1) } else { n };
        let centred = self.sub(&self.mean(dims, true)?)?;
        centred
            .mul(&centred)?
            .sum(dims, keepdim)?
            .mul_scalar(1.0 / denom as f64)
    }

    /// Standard deviation over `dims` (square root of [`Tensor::var`]).
    pub fn std(&self, dims: &[isize], unbiased: bool, keepdim: bool) -> Result<Tensor> {
        self.var(dims, unbiased, keepdim)?.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator, Tensor};

    fn r(shape: &[usize]) -> Tensor {
        Tensor::randn(shape, DType::F64, &mut Generator::new(9))
    }

    #[test]
    fn argmax_over_a_middle_dim_keeps_the_other_dims_in_order() {
        // [1, 2, 2, 3]: class 1 wins only at (h 0, w 2) and (h 1, w 0).
        let mut v = vec![0f32; 12];
        v[6 + 2] = 1.0;
        v[6 + 3] = 1.0;
        let x = Tensor::from_vec(v, &[1, 2, 2, 3]).unwrap();
        assert_eq!(x.argmax(1, false).unwrap(), vec![0, 0, 1, 1, 0, 0]);
        assert_eq!(x.neg().unwrap().argmin(1, false).unwrap(), vec![0, 0, 1, 1, 0, 0]);
    }

    #[test]
    fn sums_and_means() {
        let x = Tensor::arange(0.0, 6.0, 1.0, DType::F32)
            .unwrap()
            .reshape([2, 3])
            .unwrap();
        assert_eq!(
            x.sum(&[0], false).unwrap().to_vec::<f32>().unwrap(),
            vec![3.0, 5.0, 7.0]
        );
        assert_eq!(x.sum(&[1], true).unwrap().shape(), &[2, 1]);
        assert_eq!(x.mean_all().unwrap().item().unwrap(), 2.5);
        assert_eq!(
            x.t().unwrap().sum(&[1], false).unwrap().to_vec::<f32>().unwrap(),
            vec![3.0, 5.0, 7.0]
        );
        assert!(x.sum(&[2], false).is_err());
    }

    #[test]
    fn max_propagates_nan_and_ties_split() {
        let x = Tensor::from_vec(vec![1.0f64, f64::NAN, 3.0, 2.0], &[2, 2]).unwrap();
        let m = x.max(&[1], false).unwrap().to_vec::<f64>().unwrap();
        assert!(m[0].is_nan() && m[1] == 3.0);
        assert_eq!(x.argmax(1, false).unwrap(), vec![1, 0]);
        let t = Tensor::from_vec(vec![2.0f64, 2.0, 1.0], &[3])
            .unwrap()
            .set_requires_grad(true);
        let g = t.max(&[], false).unwrap().backward().unwrap();
        assert_eq!(g.get(&t).unwrap().to_vec::<f64>().unwrap(), vec![0.5, 0.5, 0.0]);
    }

    #[test]
    fn variance_is_stable_for_large_means() {
        let v: Vec<f32> = (0..1000).map(|i| 1e4 + (i % 2) as f32 * 0.01).collect();
        let x = Tensor::from_vec(v, &[1000]).unwrap();
        let var = x.var(&[], false, false).unwrap().item().unwrap();
        assert!((var - 2.5e-5).abs() < 1e-6, "{var}");
    }

    #[test]
    fn reduction_gradients() {
        let x = r(&[3, 4, 5]);
        gradcheck(|t| t[0].sum(&[1], true), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].mean(&[0, 2], false), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].max(&[1], false), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].min(&[0, 2], true), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].var(&[1], true, false), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].std(&[2], false, true), &[x]).unwrap();
    }
}
