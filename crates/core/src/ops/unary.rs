//! Elementwise math: exp, log, sqrt, abs, pow (scalar and tensor exponent), square.

use super::access::{map_binary, map_unary, scalar_like};
use crate::dtype::dispatch;
use crate::{Element, Result, Tensor};

impl Tensor {
    /// e^x.
    pub fn exp(&self) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_unary(self, <T as Element>::exp));
        let (x, y) = (self.clone(), out.clone());
        Ok(out.record("exp", &[self], move |g, _| {
            Ok(vec![Some(g.mul(&saved_output(&y, || x.exp())?)?)])
        }))
    }

    /// Natural logarithm.
    pub fn log(&self) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_unary(self, <T as Element>::ln));
        let x = self.clone();
        Ok(out.record("log", &[self], move |g, _| Ok(vec![Some(g.div(&x)?)])))
    }

    /// Square root.
    pub fn sqrt(&self) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_unary(self, <T as Element>::sqrt));
        let x = self.clone();
        Ok(out.record("sqrt", &[self], move |g, _| {
            Ok(vec![Some(g.div(&x.sqrt()?.mul_scalar(2.0)?)?)])
        }))
    }

    /// Absolute value (gradient 0 at 0, as PyTorch).
    pub fn abs(&self) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_unary(self, <T as Element>::abs));
        let x = self.clone();
        Ok(out.record("abs", &[self], move |g, _| Ok(vec![Some(g.mul(&x.sign()?)?)])))
    }

    /// −1, 0 or 1 by sign (NaN stays NaN); not differentiable.
    pub fn sign(&self) -> Result<Tensor> {
        fn s<T: Element>(x: T) -> T {
            if x > T::ZERO {
                T::ONE
            } else if x < T::ZERO {
                -T::ONE
            } else {
                x
            }
        }
        Ok(dispatch!(self.dtype(), T => map_unary(self, s::<T>)))
    }

    /// x².
    pub fn square(&self) -> Result<Tensor> {
        self.mul(self)
    }

    /// x^e for a constant exponent.
    pub fn powf(&self, e: f64) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => {
            let e = T::from_f64(e);
            map_unary::<T>(self, move |x| x.powf(e))
        });
        let x = self.clone();
        Ok(out.record("pow", &[self], move |g, _| {
            if e == 0.0 {
                return Ok(vec![Some(g.mul_scalar(0.0)?)]);
            }
            Ok(vec![Some(g.mul(&x.powf(e - 1.0)?.mul_scalar(e)?)?)])
        }))
    }

    /// x^e elementwise with a tensor exponent (broadcasting).
    pub fn pow(&self, e: &Tensor) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_binary("pow", self, e, <T as Element>::powf))?;
        let (x, ex, y) = (self.clone(), e.clone(), out.clone());
        Ok(out.record("pow", &[self, e], move |g, needs| {
            let gx = if needs[0] {
                let d = x.pow(&ex.sub(&scalar_like(&ex, 1.0))?)?.mul(&ex)?;
                Some(g.mul(&d)?.sum_to(x.shape())?)
            } else {
                None
            };
            let ge = if needs[1] {
                let y = saved_output(&y, || x.pow(&ex))?;
                Some(g.mul(&y)?.mul(&x.log()?)?.sum_to(ex.shape())?)
            } else {
                None
            };
            Ok(vec![gx, ge])
        }))
    }
}

/// An op's own output, used in its backward (exp, sigmoid, tanh). The output is saved
/// without its graph identity, since keeping that inside its own node would be a
/// reference cycle; when the backward pass is itself recorded, the output is recomputed
/// from the inputs so that second derivatives see its dependence on them.
pub(crate) fn saved_output(y: &Tensor, recompute: impl FnOnce() -> Result<Tensor>) -> Result<Tensor> {
    if crate::autograd::is_grad_enabled() {
        recompute()
    } else {
        Ok(y.clone())
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator, Tensor};

    #[test]
    fn unary_gradients() {
        let x = Tensor::randn(&[4, 7], DType::F64, &mut Generator::new(2));
        let pos = x.abs().unwrap().add_scalar(0.5).unwrap();
        gradcheck(|t| t[0].exp(), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].log(), &[pos.clone()]).unwrap();
        gradcheck(|t| t[0].sqrt(), &[pos.clone()]).unwrap();
        gradcheck(|t| t[0].abs(), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].powf(3.0), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].pow(&t[1]), &[pos.clone(), x.narrow(0, 0, 1).unwrap()]).unwrap();
    }

    #[test]
    fn abs_kink_has_zero_gradient() {
        let x = Tensor::from_vec(vec![0.0f64, -2.0], &[2])
            .unwrap()
            .set_requires_grad(true);
        let g = x.abs().unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![0.0, -1.0]);
    }
}
