//! Constant padding in `torch.nn.functional.pad` order.
//!
//! ```
//! use nabla_core::Tensor;
//! let x = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2])?;
//! // Last dim: 1 before, 0 after; dim -2: 0 before, 1 after.
//! let y = x.pad(&[1, 0, 0, 1], -1.0)?;
//! assert_eq!(y.shape(), &[2, 3]);
//! assert_eq!(y.to_vec::<f32>()?, vec![-1.0, 1.0, 2.0, -1.0, -1.0, -1.0]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use crate::dtype::dispatch;
use crate::shape::contiguous_strides;
use crate::{Element, Error, Result, Tensor};

/// Copy `src` (row-major, `shape`) into `out` (row-major, `out_shape`) shifted by `before`.
fn pad_kernel<T: Element>(src: &[T], shape: &[usize], before: &[usize], out: &mut [T], out_shape: &[usize]) {
    let rank = shape.len();
    if rank == 0 {
        out.copy_from_slice(src);
        return;
    }
    let len = shape[rank - 1];
    if len == 0 {
        return;
    }
    let ostrides = contiguous_strides(out_shape);
    for (r, row) in src.chunks_exact(len).enumerate() {
        let mut rest = r;
        let mut at = before[rank - 1];
        for k in (0..rank - 1).rev() {
            at += (rest % shape[k] + before[k]) * ostrides[k];
            rest /= shape[k];
        }
        out[at..at + len].copy_from_slice(row);
    }
}

impl Tensor {
    /// Pad with the constant `value`. `pads` holds (before, after) pairs from the last dim
    /// backwards, as `F.pad`: `[left, right, top, bottom, ...]`, for any number of
    /// trailing dims. The backward narrows the gradient back to the input.
    pub fn pad(&self, pads: &[usize], value: f64) -> Result<Tensor> {
        let rank = self.rank();
        if !pads.len().is_multiple_of(2) || pads.len() / 2 > rank {
            return Err(Error::invalid(
                "pad",
                format!(
                    "needs (before, after) pairs for at most {rank} dims of shape {:?}, got {} values {pads:?}",
                    self.shape(),
                    pads.len()
                ),
            ));
        }
        let mut before = vec![0; rank];
        let mut out_shape = self.shape().to_vec();
        for (i, pair) in pads.chunks_exact(2).enumerate() {
            let k = rank - 1 - i;
            before[k] = pair[0];
            out_shape[k] = pair[0]
                .checked_add(pair[1])
                .and_then(|p| p.checked_add(out_shape[k]))
                .ok_or_else(|| Error::invalid("pad", format!("padding {pads:?} overflows dim {k}")))?;
        }
        if out_shape
            .iter()
            .try_fold(1usize, |acc, &s| acc.checked_mul(s))
            .is_none()
        {
            return Err(Error::invalid(
                "pad",
                format!("padding {pads:?} of shape {:?} gives too many elements", self.shape()),
            ));
        }
        fn run<T: Element>(x: &Tensor, before: &[usize], out_shape: &[usize], value: f64) -> Result<Tensor> {
            let n: usize = out_shape.iter().product();
            let mut out = vec![T::from_f64(value); n];
            x.with_slice(|s: &[T]| pad_kernel(s, x.shape(), before, &mut out, out_shape))?;
            Ok(Tensor::from_buffer(T::wrap(out), out_shape))
        }
        let out = dispatch!(self.dtype(), T => run::<T>(self, &before, &out_shape, value)?);
        let shape = self.shape().to_vec();
        Ok(out.record("pad", &[self], move |g, _| {
            let mut g = g.clone();
            for (k, (&b, &len)) in before.iter().zip(&shape).enumerate() {
                if g.shape()[k] != len {
                    g = g.narrow(k as isize, b, len)?;
                }
            }
            Ok(vec![Some(g)])
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator, Tensor};

    fn r(shape: &[usize], seed: u64) -> Tensor {
        Tensor::randn(shape, DType::F64, &mut Generator::new(seed))
    }

    #[test]
    fn pad_values() {
        let x = Tensor::arange(1.0, 7.0, 1.0, DType::F32)
            .unwrap()
            .reshape([2, 3])
            .unwrap();
        let y = x.pad(&[1, 2], 0.0).unwrap();
        assert_eq!(y.shape(), &[2, 6]);
        assert_eq!(
            y.to_vec::<f32>().unwrap(),
            vec![0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 4.0, 5.0, 6.0, 0.0, 0.0]
        );
        let y = x.pad(&[0, 0, 1, 0], 9.0).unwrap();
        assert_eq!(
            y.to_vec::<f32>().unwrap(),
            vec![9.0, 9.0, 9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
        // Three trailing dims of a 3-D tensor: a new leading plane of the pad value.
        let y = x.unsqueeze(0).unwrap().pad(&[0, 1, 0, 0, 1, 0], -1.0).unwrap();
        assert_eq!(y.shape(), &[2, 2, 4]);
        let v = y.to_vec::<f32>().unwrap();
        assert!(v[..8].iter().all(|&e| e == -1.0));
        assert_eq!(v[8..], [1.0, 2.0, 3.0, -1.0, 4.0, 5.0, 6.0, -1.0]);
        // A transposed input pads its logical layout.
        let y = x.t().unwrap().pad(&[1, 0], 0.0).unwrap();
        assert_eq!(
            y.to_vec::<f32>().unwrap(),
            vec![0.0, 1.0, 4.0, 0.0, 2.0, 5.0, 0.0, 3.0, 6.0]
        );
        // No padding is a copy; a NaN pad value is kept.
        let same = x.pad(&[], 0.0).unwrap();
        assert!(!same.shares_storage(&x));
        assert_eq!(same.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
        assert!(Tensor::zeros(&[0], DType::F64)
            .pad(&[1, 0], f64::NAN)
            .unwrap()
            .item()
            .unwrap()
            .is_nan());
    }

    #[test]
    fn pad_errors_name_op_and_shape() {
        let x = Tensor::zeros(&[2, 3], DType::F32);
        let e = x.pad(&[1, 1, 1], 0.0).unwrap_err().to_string();
        assert!(e.contains("pad") && e.contains("[2, 3]"), "{e}");
        let e = x.pad(&[1, 1, 1, 1, 1, 1], 0.0).unwrap_err().to_string();
        assert!(e.contains("pad") && e.contains("[2, 3]"), "{e}");
        assert!(x.pad(&[usize::MAX, 1], 0.0).unwrap_err().to_string().contains("pad"));
    }

    #[test]
    fn pad_gradients() {
        let x = r(&[2, 3, 4], 1);
        gradcheck(|t| t[0].pad(&[1, 2, 0, 3], 0.5), std::slice::from_ref(&x)).unwrap();
        gradcheck(
            |t| {
                t[0].pad(&[0, 0, 0, 0, 2, 1], 0.0)?
                    .mul(&t[0].pad(&[0, 0, 0, 0, 1, 2], 1.0)?)
            },
            std::slice::from_ref(&x),
        )
        .unwrap();
        gradcheck(|t| t[0].transpose(0, 2)?.pad(&[1, 1], 0.0), &[x]).unwrap();
        // The backward is narrow, itself differentiable: second derivatives of pad(x)².
        let x = r(&[3], 2).set_requires_grad(true);
        let y = x.pad(&[1, 1], 0.0).unwrap().square().unwrap().sum_all().unwrap();
        let g = crate::grad(&[&y], None, &[&x], true).unwrap().remove(0).unwrap();
        assert_eq!(
            g.to_vec::<f64>().unwrap(),
            x.mul_scalar(2.0).unwrap().to_vec::<f64>().unwrap()
        );
        let gg = g.sum_all().unwrap().backward().unwrap();
        assert_eq!(gg.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![2.0; 3]);
    }
}
