//! Arithmetic operators: `+ - * /` and unary `-` on tensors, so formulas read as math.
//! Each calls the method of the same name ([`Tensor::add`], [`Tensor::add_scalar`], ...)
//! and returns `Result<Tensor>`, so a shape or dtype mismatch is an error, not a panic.
//!
//! Operands: `Tensor` or `&Tensor` on either side; an `f64` scalar on either side of a
//! tensor (scalars follow the tensor's dtype, as the `*_scalar` methods do; f64 only, since
//! with an f32 impl too an unsuffixed literal such as `2.0` would be ambiguous); and a
//! `Result<Tensor>` on one side of a tensor, so chains need one `?` at the end. Rust's
//! orphan rule forbids an operator between two `Result`s (or a `Result` and a scalar): one
//! side of each operator must be a tensor, so a sum of two products takes a `?` on one.
//!
//! ```
//! use nabla_core::Tensor;
//! let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2])?;
//! let y = Tensor::from_vec(vec![3.0f64, 4.0], &[2])?;
//! let z = Tensor::from_vec(vec![0.5f64, 0.25], &[2])?;
//! // x·y + eˣ·z + (x + y)²
//! let f = (&x * &y + (x.exp()? * &z)? + (&x + &y)?.square()?)?;
//! let g = x.mul(&y)?.add(&x.exp()?.mul(&z)?)?.add(&x.add(&y)?.square()?)?;
//! assert_eq!(f.to_vec::<f64>()?, g.to_vec::<f64>()?);
//! assert_eq!(((2.0 * &x)? - 1.0)?.to_vec::<f64>()?, vec![1.0, 3.0]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::access::scalar_like;
use crate::{Result, Tensor};
use std::ops::{Add, Div, Mul, Neg, Sub};

/// One binary operator between tensors, `Result`s and scalars. `$tensor` is the method
/// for two tensors, `$scalar` the one for a tensor and a scalar on its right, `$rscalar`
/// (a function of the scalar and the tensor) the one for a scalar on its left.
macro_rules! binary {
    ($Op:ident, $op:ident, $tensor:ident, $scalar:ident, $rscalar:expr) => {
        impl $Op<&Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $op(self, rhs: &Tensor) -> Result<Tensor> {
                Tensor::$tensor(self, rhs)
            }
        }
        impl $Op<Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $op(self, rhs: Tensor) -> Result<Tensor> {
                Tensor::$tensor(self, &rhs)
            }
        }
        impl $Op<&Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $op(self, rhs: &Tensor) -> Result<Tensor> {
                Tensor::$tensor(&self, rhs)
            }
        }
        impl $Op<Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $op(self, rhs: Tensor) -> Result<Tensor> {
                Tensor::$tensor(&self, &rhs)
            }
        }
        impl $Op<Result<Tensor>> for &Tensor {
            type Output = Result<Tensor>;
            fn $op(self, rhs: Result<Tensor>) -> Result<Tensor> {
                Tensor::$tensor(self, &rhs?)
            }
        }
        impl $Op<Result<Tensor>> for Tensor {
            type Output = Result<Tensor>;
            fn $op(self, rhs: Result<Tensor>) -> Result<Tensor> {
                Tensor::$tensor(&self, &rhs?)
            }
        }
        impl $Op<&Tensor> for Result<Tensor> {
            type Output = Result<Tensor>;
            fn $op(self, rhs: &Tensor) -> Result<Tensor> {
                Tensor::$tensor(&self?, rhs)
            }
        }
        impl $Op<Tensor> for Result<Tensor> {
            type Output = Result<Tensor>;
            fn $op(self, rhs: Tensor) -> Result<Tensor> {
                Tensor::$tensor(&self?, &rhs)
            }
        }
        impl $Op<f64> for &Tensor {
            type Output = Result<Tensor>;
            fn $op(self, c: f64) -> Result<Tensor> {
                Tensor::$scalar(self, c)
            }
        }
        impl $Op<f64> for Tensor {
            type Output = Result<Tensor>;
            fn $op(self, c: f64) -> Result<Tensor> {
                Tensor::$scalar(&self, c)
            }
        }
        impl $Op<&Tensor> for f64 {
            type Output = Result<Tensor>;
            fn $op(self, t: &Tensor) -> Result<Tensor> {
                let f: fn(f64, &Tensor) -> Result<Tensor> = $rscalar;
                f(self, t)
            }
        }
        impl $Op<Tensor> for f64 {
            type Output = Result<Tensor>;
            fn $op(self, t: Tensor) -> Result<Tensor> {
                let f: fn(f64, &Tensor) -> Result<Tensor> = $rscalar;
                f(self, &t)
            }
        }
    };
}

binary!(Add, add, add, add_scalar, |c, t| t.add_scalar(c));
binary!(Sub, sub, sub, sub_scalar, |c, t| t.rsub_scalar(c));
binary!(Mul, mul, mul, mul_scalar, |c, t| t.mul_scalar(c));
binary!(Div, div, div, div_scalar, |c, t| scalar_like(t, c).div(t));

impl Neg for &Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(self)
    }
}

impl Neg for Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(&self)
    }
}

#[cfg(test)]
mod tests {
    use crate::autograd::grad;
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator, Result, Tensor};

    fn r(shape: &[usize], seed: u64) -> Tensor {
        Tensor::randn(shape, DType::F64, &mut Generator::new(seed)).set_requires_grad(true)
    }

    fn lecture(x: &Tensor, y: &Tensor, z: &Tensor) -> Result<Tensor> {
        (x * y + (x.exp()? * z)? + (x + y)?.square()?)?.sum_all()
    }

    fn lecture_methods(x: &Tensor, y: &Tensor, z: &Tensor) -> Result<Tensor> {
        x.mul(y)?.add(&x.exp()?.mul(z)?)?.add(&x.add(y)?.square()?)?.sum_all()
    }

    #[test]
    fn lecture_formula_matches_the_methods_in_value_and_gradient() {
        let (x, y, z) = (r(&[2, 3], 1), r(&[2, 3], 2), r(&[3], 3));
        let f = lecture(&x, &y, &z).unwrap();
        let m = lecture_methods(&x, &y, &z).unwrap();
        assert_eq!(f.to_vec::<f64>().unwrap(), m.to_vec::<f64>().unwrap());
        let gf = grad(&[&f], None, &[&x, &y, &z], false).unwrap();
        let gm = grad(&[&m], None, &[&x, &y, &z], false).unwrap();
        for (a, b) in gf.iter().zip(&gm) {
            let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
            assert_eq!(a.to_vec::<f64>().unwrap(), b.to_vec::<f64>().unwrap());
        }
        // ∂f/∂x = y + eˣ·z + 2(x + y), ∂f/∂y = x + 2(x + y), ∂f/∂z = Σ_rows eˣ
        let dx = (&y + (x.exp().unwrap() * &z).unwrap() + ((&x + &y).unwrap() * 2.0).unwrap()).unwrap();
        let dy = (&x + ((&x + &y).unwrap() * 2.0).unwrap()).unwrap();
        for (got, want) in [(&gf[0], dx), (&gf[1], dy)] {
            for (a, b) in got.as_ref().unwrap().to_vec_f64().iter().zip(want.to_vec_f64()) {
                assert!((a - b).abs() < 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
        gradcheck(|v| lecture(&v[0], &v[1], &v[2]), &[x, y, z]).unwrap();
    }

    #[test]
    fn every_operand_form_and_scalar_side() {
        let (a, b) = (r(&[4], 5), r(&[4], 6).abs().unwrap().add_scalar(0.5).unwrap());
        let v = |t: Result<Tensor>| t.unwrap().to_vec::<f64>().unwrap();
        let want = v(a.add(&b));
        assert_eq!(v(&a + &b), want);
        assert_eq!(v(a.clone() + &b), want);
        assert_eq!(v(&a + b.clone()), want);
        assert_eq!(v(a.clone() + b.clone()), want);
        assert_eq!(v(&a + Ok(b.clone())), want);
        assert_eq!(v(Ok(a.clone()) + &b), want);
        assert_eq!(v(&a - &b), v(a.sub(&b)));
        assert_eq!(v(&a * &b), v(a.mul(&b)));
        assert_eq!(v(&a / &b), v(a.div(&b)));
        assert_eq!(v(-&a), v(a.neg()));
        assert_eq!(v(-a.clone()), v(a.neg()));
        assert_eq!(v(&a + 1.5), v(a.add_scalar(1.5)));
        assert_eq!(v(1.5 + &a), v(a.add_scalar(1.5)));
        assert_eq!(v(&a - 1.5), v(a.sub_scalar(1.5)));
        assert_eq!(v(1.5 - &a), v(a.rsub_scalar(1.5)));
        assert_eq!(v(&a * 3.0), v(a.mul_scalar(3.0)));
        assert_eq!(v(3.0 * a.clone()), v(a.mul_scalar(3.0)));
        assert_eq!(v(&b / 4.0), v(b.div_scalar(4.0)));
        // c / t is the reciprocal scaled, elementwise
        for (q, bv) in v(2.0 / &b).iter().zip(b.to_vec::<f64>().unwrap()) {
            assert_eq!(*q, 2.0 / bv);
        }
        gradcheck(|x| (2.0 / &x[0])? - ((1.0 - &x[0])? * 3.0), &[b]).unwrap();
    }

    #[test]
    fn errors_propagate_through_a_chain() {
        let a = Tensor::zeros(&[2, 3], DType::F32);
        let b = Tensor::zeros(&[4], DType::F32);
        let e = (&a + &b).unwrap_err().to_string();
        assert!(e.contains("add") && e.contains("[2, 3]") && e.contains("[4]"), "{e}");
        // The first error reaches the end of the chain unchanged, from either side.
        let e2 = ((&a * &b) + &a).unwrap_err().to_string();
        assert!(e2.contains("mul") && e2.contains("[4]"), "{e2}");
        let e3 = (&a - (&a / &b)).unwrap_err().to_string();
        assert!(e3.contains("div"), "{e3}");
        let e4 = (&a + Tensor::zeros(&[2, 3], DType::F64)).unwrap_err().to_string();
        assert!(e4.contains("dtype"), "{e4}");
    }
}
