//! Softmax and log-softmax along a dim, composed from primitives (so they need no
//! backward of their own and are differentiable to any order).
//!
//! Both subtract the row maximum first, held as a constant: softmax does not change
//! under a shift, so the exact gradient is unaffected, and `exp` never sees a positive
//! argument, so logits of 1e8 or ±f32::MAX stay finite. A NaN makes its row NaN.
//!
//! ```
//! use nabla_core::Tensor;
//! let x = Tensor::from_vec(vec![1e4f32, 1e4, -1e4], &[3])?;
//! assert_eq!(x.softmax(0)?.to_vec::<f32>()?, vec![0.5, 0.5, 0.0]);
//! assert_eq!(x.log_softmax(0)?.to_vec::<f32>()?[2], -2e4 - 2f32.ln());
//! # Ok::<(), nabla_core::Error>(())
//! ```

use crate::shape::normalize_dim;
use crate::{Error, Result, Tensor};

impl Tensor {
    /// `exp(x) / sum(exp(x))` along `dim`.
    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        self.along("softmax", dim, |z, d| {
            let e = z.exp()?;
            e.div(&e.sum(&[d], true)?)
        })
    }

    /// `x - log(sum(exp(x)))` along `dim`, without forming `exp(x)` of large values.
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        self.along("log_softmax", dim, |z, d| z.sub(&z.exp()?.sum(&[d], true)?.log()?))
    }

    /// Apply `f` to `self` minus its detached maximum along `dim`.
    fn along(&self, op: &'static str, dim: isize, f: impl Fn(&Tensor, isize) -> Result<Tensor>) -> Result<Tensor> {
        if self.rank() == 0 {
            // A 0-d tensor is one row of one element, as PyTorch treats it.
            if dim != 0 && dim != -1 {
                return Err(Error::DimOutOfRange { op, dim, shape: vec![] });
            }
            return self.reshape([1usize])?.along(op, 0, f)?.reshape([0usize; 0]);
        }
        let d = normalize_dim(op, dim, self.shape())? as isize;
        if self.numel() == 0 {
            return self.mul_scalar(1.0);
        }
        let z = self.sub(&self.detach().max(&[d], true)?)?;
        f(&z, d)
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::{autograd::enable_grad, grad, DType, Generator, Tensor};

    fn r(shape: &[usize], seed: u64) -> Tensor {
        Tensor::randn(shape, DType::F64, &mut Generator::new(seed))
    }

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn values_against_hand_computed() {
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 0.0, 0.0, 0.0], &[2, 3]).unwrap();
        let s = x.softmax(1).unwrap().to_vec_f64();
        let third = 1.0 / 3.0;
        close(
            &s,
            &[
                0.09003057317038046,
                0.24472847105479767,
                0.6652409557748219,
                third,
                third,
                third,
            ],
            1e-15,
        );
        let l = x.log_softmax(-1).unwrap().to_vec_f64();
        let ln3 = -(3f64.ln());
        close(
            &l,
            &[
                -2.4076059644443806,
                -1.4076059644443806,
                -0.4076059644443806,
                ln3,
                ln3,
                ln3,
            ],
            1e-15,
        );
        // Along dim 0 each column sums to one: e/(1+e), 1/(1+e) for a gap of 1, 2, 3.
        let s0 = x.softmax(0).unwrap().to_vec_f64();
        for (j, gap) in [1.0f64, 2.0, 3.0].iter().enumerate() {
            let p = 1.0 / (1.0 + (-gap).exp());
            close(&[s0[j], s0[3 + j]], &[p, 1.0 - p], 1e-15);
        }
        // A 0-d tensor is a row of one; an empty tensor stays empty.
        assert_eq!(Tensor::scalar(5.0f32).softmax(0).unwrap().item().unwrap(), 1.0);
        assert_eq!(Tensor::scalar(5.0f32).log_softmax(-1).unwrap().item().unwrap(), 0.0);
        assert_eq!(Tensor::zeros(&[2, 0], DType::F32).softmax(1).unwrap().shape(), &[2, 0]);
        assert_eq!(
            Tensor::zeros(&[0, 3], DType::F32).log_softmax(1).unwrap().shape(),
            &[0, 3]
        );
    }

    #[test]
    fn errors_name_op_and_dim() {
        let x = Tensor::zeros(&[2, 3], DType::F32);
        let e = x.softmax(2).unwrap_err().to_string();
        assert!(
            e.contains("softmax") && e.contains("dim 2") && e.contains("[2, 3]"),
            "{e}"
        );
        let e = x.log_softmax(-3).unwrap_err().to_string();
        assert!(e.contains("log_softmax") && e.contains("dim -3"), "{e}");
        let e = Tensor::scalar(1.0f32).softmax(1).unwrap_err().to_string();
        assert!(e.contains("softmax") && e.contains("dim 1"), "{e}");
    }

    #[test]
    fn large_logits_stay_finite() {
        let rows: [[f32; 3]; 5] = [
            [1e3, 1e3 - 1.0, 0.0],
            [1e4, 0.0, -1e4],
            [1e8, 0.0, -1e8],
            [-1e8, -1e8, 1e8],
            [f32::MAX, 0.0, f32::MAX],
        ];
        let x = Tensor::from_vec(rows.concat(), &[5, 3])
            .unwrap()
            .set_requires_grad(true);
        let w = Tensor::randn(&[5, 3], DType::F32, &mut Generator::new(1));
        let s = x.softmax(1).unwrap();
        let l = x.log_softmax(1).unwrap();
        let (sv, lv) = (s.to_vec_f64(), l.to_vec_f64());
        let p = 1.0 / (1.0 + (-1f64).exp());
        close(
            &sv,
            &[
                p,
                1.0 - p,
                0.0,
                1.0,
                0.0,
                0.0,
                1.0,
                0.0,
                0.0,
                0.0,
                0.0,
                1.0,
                0.5,
                0.0,
                0.5,
            ],
            1e-6,
        );
        close(
            &lv[..2],
            &[-(1.0 + (-1f64).exp()).ln(), -1.0 - (1.0 + (-1f64).exp()).ln()],
            1e-5,
        );
        // ln(e^0 + e^-1e4 + ...) is 0: the large gaps come through exactly, not as 0 or -inf.
        assert_eq!(lv[3..9], [0.0, -1e4, -2e4, 0.0, -1e8, -2e8]);
        assert_eq!(lv[12], -(2f64.ln() as f32) as f64);
        for y in [&s, &l] {
            let g = y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
            let g = g.get(&x).unwrap().to_vec_f32();
            assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
        }
    }

    #[test]
    fn nan_propagates_to_its_row_only() {
        let x = Tensor::from_vec(vec![1.0f32, f32::NAN, 0.0, 1.0, 2.0, 3.0], &[2, 3]).unwrap();
        for y in [x.softmax(1).unwrap(), x.log_softmax(1).unwrap()] {
            let v = y.to_vec_f32();
            assert!(v[..3].iter().all(|e| e.is_nan()), "{v:?}");
            assert!(v[3..].iter().all(|e| e.is_finite()), "{v:?}");
        }
    }

    #[test]
    fn gradients_first_and_second_order() {
        let x = r(&[3, 4, 2], 2);
        gradcheck(|t| t[0].softmax(1), std::slice::from_ref(&x)).unwrap();
        gradcheck(|t| t[0].log_softmax(-1), std::slice::from_ref(&x)).unwrap();
        gradcheck(|t| t[0].softmax(0), std::slice::from_ref(&x)).unwrap();
        // Zero and tied logits (the detached max is shared by several entries).
        let ties = Tensor::from_vec(vec![0.0f64, 0.0, 0.0, 2.0, 2.0, -1.0], &[2, 3]).unwrap();
        gradcheck(|t| t[0].softmax(1), std::slice::from_ref(&ties)).unwrap();
        gradcheck(|t| t[0].log_softmax(1), std::slice::from_ref(&ties)).unwrap();
        // Second derivatives: gradcheck the gradient itself.
        let first = |t: &[Tensor]| {
            let _on = enable_grad();
            let x = if t[0].requires_grad() {
                t[0].clone()
            } else {
                t[0].set_requires_grad(true)
            };
            let y = x.log_softmax(1)?.mul(&x.softmax(1)?)?.sum_all()?;
            Ok(grad(&[&y], None, &[&x], true)?
                .remove(0)
                .unwrap_or_else(|| Tensor::zeros_like(&x)))
        };
        gradcheck(first, &[r(&[2, 5], 3)]).unwrap();
    }

    #[test]
    fn non_contiguous_matches_contiguous() {
        let x = r(&[5, 3], 4).set_requires_grad(true);
        let w = r(&[3, 5], 5);
        for log in [false, true] {
            let run = |copy: bool| {
                let xt = if copy {
                    x.t().unwrap().contiguous().unwrap()
                } else {
                    x.t().unwrap()
                };
                let y = if log { xt.log_softmax(1) } else { xt.softmax(1) }.unwrap();
                let g = y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
                (y.to_vec_f64(), g.get(&x).unwrap().to_vec_f64())
            };
            let ((y0, g0), (y1, g1)) = (run(false), run(true));
            close(&y0, &y1, 1e-15);
            close(&g0, &g1, 1e-15);
        }
    }
}
