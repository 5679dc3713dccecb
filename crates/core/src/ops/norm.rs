//! The 2-norm of all elements (`torch.linalg.vector_norm` with its defaults).
//!
//! ```
//! use nabla_core::Tensor;
//! let x = Tensor::from_vec(vec![3.0f32, -4.0], &[2])?;
//! assert_eq!(x.norm()?.item()?, 5.0);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::access::scalar_like;
use super::unary::saved_output;
use crate::autograd::no_grad;
use crate::{Result, Tensor};

impl Tensor {
    /// `√(Σ x²)` over every element, a 0-d tensor. Differentiable: the gradient `x / ‖x‖`
    /// is 0 at `x = 0` (PyTorch's subgradient there), not NaN.
    pub fn norm(&self) -> Result<Tensor> {
        let y = {
            let _scope = no_grad();
            self.mul(self)?.sum_all()?.sqrt()?
        };
        let (x, saved) = (self.clone(), y.clone());
        Ok(y.record("norm", &[self], move |g, _| {
            let y = saved_output(&saved, || x.norm())?;
            // ‖x‖, or 1 where it is 0: x is all zeros there, so x·g/1 gives the 0
            // subgradient, and no 0/0 reaches a second derivative either.
            let safe = y.add(&y.eq(&scalar_like(&y, 0.0))?)?;
            Ok(vec![Some(x.mul(&g.div(&safe)?)?)])
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::autograd::{enable_grad, grad};
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator, Tensor};

    #[test]
    fn value_matches_the_definition() {
        let x = Tensor::randn(&[3, 4], DType::F64, &mut Generator::new(4));
        let want = x.to_vec::<f64>().unwrap().iter().map(|v| v * v).sum::<f64>().sqrt();
        let y = x.norm().unwrap();
        assert_eq!(y.shape(), &[] as &[usize]);
        assert!((y.item().unwrap() - want).abs() < 1e-12 * want);
        assert_eq!(Tensor::zeros(&[0], DType::F32).norm().unwrap().item().unwrap(), 0.0);
    }

    #[test]
    fn gradients_first_and_second_order() {
        let x = Tensor::randn(&[2, 3], DType::F64, &mut Generator::new(5));
        gradcheck(|v| v[0].norm(), &[x.clone()]).unwrap();
        gradcheck(|v| v[0].norm()?.mul(&v[0])?.sum_all(), &[x.clone()]).unwrap();
        // Second order: the gradient x/‖x‖ is itself differentiable.
        // (The finite differences run without grad and on plain tensors: make a leaf there.)
        gradcheck(
            |v| {
                let _on = enable_grad();
                let x = if v[0].requires_grad() {
                    v[0].clone()
                } else {
                    v[0].set_requires_grad(true)
                };
                let g = grad(&[&x.norm()?], None, &[&x], true)?.remove(0).unwrap();
                g.mul(&g.exp()?)?.sum_all()
            },
            &[x],
        )
        .unwrap();
    }

    #[test]
    fn gradient_at_zero_is_zero_not_nan() {
        for dtype in [DType::F32, DType::F64] {
            let x = Tensor::zeros(&[3], dtype).set_requires_grad(true);
            let g = grad(&[&x.norm().unwrap()], None, &[&x], true)
                .unwrap()
                .remove(0)
                .unwrap();
            assert_eq!(g.to_vec_f64(), vec![0.0; 3]);
            // and its second derivative stays finite too
            let gg = grad(&[&g.sum_all().unwrap()], None, &[&x], false).unwrap().remove(0);
            if let Some(gg) = gg {
                assert!(gg.to_vec_f64().iter().all(|v| v.is_finite()), "{:?}", gg.to_vec_f64());
            }
        }
    }
}
