//! Arithmetic with broadcasting: add, sub, mul, div, neg, and their scalar forms.

use super::access::{map_binary, map_unary, scalar_like};
use crate::dtype::dispatch;
use crate::{Result, Tensor};

impl Tensor {
    /// `self + other`, broadcasting.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_binary::<T>("add", self, other, |a, b| a + b))?;
        let (sa, sb) = (self.shape().to_vec(), other.shape().to_vec());
        Ok(out.record("add", &[self, other], move |g, _| {
            Ok(vec![Some(g.sum_to(&sa)?), Some(g.sum_to(&sb)?)])
        }))
    }

    /// `self - other`, broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_binary::<T>("sub", self, other, |a, b| a - b))?;
        let (sa, sb) = (self.shape().to_vec(), other.shape().to_vec());
        Ok(out.record("sub", &[self, other], move |g, _| {
            Ok(vec![Some(g.sum_to(&sa)?), Some(g.neg()?.sum_to(&sb)?)])
        }))
    }

    /// `self * other`, elementwise, broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_binary::<T>("mul", self, other, |a, b| a * b))?;
        let (a, b) = (self.clone(), other.clone());
        Ok(out.record("mul", &[self, other], move |g, needs| {
            let ga = if needs[0] {
                Some(g.mul(&b)?.sum_to(a.shape())?)
            } else {
                None
            };
            let gb = if needs[1] {
                Some(g.mul(&a)?.sum_to(b.shape())?)
            } else {
                None
            };
            Ok(vec![ga, gb])
        }))
    }

    /// `self / other`, elementwise, broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_binary::<T>("div", self, other, |a, b| a / b))?;
        let (a, b) = (self.clone(), other.clone());
        Ok(out.record("div", &[self, other], move |g, needs| {
            let ga = if needs[0] {
                Some(g.div(&b)?.sum_to(a.shape())?)
            } else {
                None
            };
            let gb = if needs[1] {
                // d(a/b)/db = -a / b²
                Some(g.mul(&a)?.div(&b.mul(&b)?)?.neg()?.sum_to(b.shape())?)
            } else {
                None
            };
            Ok(vec![ga, gb])
        }))
    }

    /// `-self`.
    pub fn neg(&self) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_unary::<T>(self, |a| -a));
        Ok(out.record("neg", &[self], |g, _| Ok(vec![Some(g.neg()?)])))
    }

    /// `self + c`.
    pub fn add_scalar(&self, c: f64) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => {
            let c = T::from_f64(c);
            map_unary::<T>(self, move |a| a + c)
        });
        Ok(out.record("add_scalar", &[self], |g, _| Ok(vec![Some(g.clone())])))
    }

    /// `self * c`.
    pub fn mul_scalar(&self, c: f64) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => {
            let c = T::from_f64(c);
            map_unary::<T>(self, move |a| a * c)
        });
        Ok(out.record("mul_scalar", &[self], move |g, _| Ok(vec![Some(g.mul_scalar(c)?)])))
    }

    /// `self - c`.
    pub fn sub_scalar(&self, c: f64) -> Result<Tensor> {
        self.add_scalar(-c)
    }

    /// `self / c`.
    pub fn div_scalar(&self, c: f64) -> Result<Tensor> {
        self.mul(&scalar_like(self, 1.0 / c))
    }

    /// `c - self`.
    pub fn rsub_scalar(&self, c: f64) -> Result<Tensor> {
        self.neg()?.add_scalar(c)
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
    fn broadcast_values() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2, 1]).unwrap();
        let b = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], &[3]).unwrap();
        let c = a.add(&b).unwrap();
        assert_eq!(c.shape(), &[2, 3]);
        assert_eq!(c.to_vec::<f32>().unwrap(), vec![11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
        let e = a.add(&Tensor::zeros(&[3, 4], DType::F32)).unwrap_err();
        assert!(e.to_string().contains("add"), "{e}");
        let e = a.add(&Tensor::zeros(&[1], DType::F64)).unwrap_err();
        assert!(e.to_string().contains("dtype"), "{e}");
    }

    #[test]
    fn gradients_with_broadcast() {
        let a = r(&[3, 1, 5], 1);
        let b = r(&[4, 5], 2).abs().unwrap().add_scalar(0.5).unwrap();
        gradcheck(|x| x[0].add(&x[1]), &[a.clone(), b.clone()]).unwrap();
        gradcheck(|x| x[0].sub(&x[1]), &[a.clone(), b.clone()]).unwrap();
        gradcheck(|x| x[0].mul(&x[1]), &[a.clone(), b.clone()]).unwrap();
        gradcheck(|x| x[0].div(&x[1]), &[a.clone(), b.clone()]).unwrap();
        gradcheck(|x| x[0].neg()?.mul_scalar(3.0)?.add_scalar(1.0)?.div_scalar(2.0), &[a]).unwrap();
    }

    #[test]
    fn shared_input_gets_summed_gradient() {
        let x = Tensor::from_vec(vec![3.0f64], &[1]).unwrap().set_requires_grad(true);
        let y = x.mul(&x).unwrap().add(&x).unwrap().sum_all().unwrap(); // x² + x
        let g = y.backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![7.0]);
    }
}
