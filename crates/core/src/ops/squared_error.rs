//! The summed squared error `Σ (x − t)²` as one op (the MSE loss before its scaling):
//! the forward pass squares the differences in one pass and sums them as `sum_all` does,
//! the backward pass writes `2·g·(x − t)` in one pass. Value and gradients are those of
//! `x.sub(t)?.square()?.sum_all()` bit for bit; under `create_graph` the gradient is
//! that composition's, written with tensor ops, so it differentiates again.
//!
//! ```
//! use nabla_core::Tensor;
//! let x = Tensor::from_vec(vec![1.0f32, 2.0, 4.0], &[3])?;
//! let t = Tensor::from_vec(vec![0.0f32, 2.0, 1.0], &[3])?;
//! assert_eq!(x.squared_error(&t)?.item()?, 10.0);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::access::map_binary;
use crate::autograd::is_grad_enabled;
use crate::dtype::dispatch;
use crate::{Error, Result, Tensor};

impl Tensor {
    /// `Σ (self − target)²` over all elements, as a 0-d tensor (shapes must be equal).
    pub fn squared_error(&self, target: &Tensor) -> Result<Tensor> {
        const OP: &str = "squared_error";
        if self.shape() != target.shape() {
            return Err(Error::shapes(OP, self.shape(), target.shape(), "shapes must be equal"));
        }
        // The differences squared as `sub` then `square` round them, summed by `sum_all`.
        let sq = dispatch!(self.dtype(), T => map_binary(OP, self, target, |a: T, b: T| {
            let d = a - b;
            d * d
        }))?;
        // `sq` is a fresh tensor outside the graph: summing it records nothing.
        let out = sq.sum_all()?;
        let (x, t) = (self.clone(), target.clone());
        Ok(out.record(OP, &[self, target], move |g, needs| {
            let gx = if is_grad_enabled() {
                // Recorded: the composition's gradient, g·d + g·d, in tensor ops.
                let gd = g.expand(x.shape())?.mul(&x.sub(&t)?)?;
                gd.add(&gd)?
            } else {
                dispatch!(x.dtype(), T => {
                    let s = T::from_f64(g.item()?);
                    map_binary(OP, &x, &t, move |a: T, b: T| {
                        let v = s * (a - b);
                        v + v
                    })
                })?
            };
            let gt = if needs[1] { Some(gx.neg()?) } else { None };
            Ok(vec![needs[0].then_some(gx), gt])
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::{grad, DType, Generator, Tensor};

    fn bits(t: &Tensor) -> Vec<u64> {
        t.to_vec_f64().iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn matches_the_composition_bit_for_bit() {
        let mut g = Generator::new(3);
        for dtype in [DType::F32, DType::F64] {
            for shape in [&[0][..], &[1], &[7, 3], &[128, 1, 28, 28]] {
                let x = Tensor::rand(shape, dtype, &mut g).set_requires_grad(true);
                let t = Tensor::rand(shape, dtype, &mut g).set_requires_grad(true);
                // A non-contiguous input as well (its transpose, on 2-D shapes).
                let xs = if shape.len() == 2 {
                    x.t().unwrap().t().unwrap()
                } else {
                    x.clone()
                };
                let y = xs.squared_error(&t).unwrap().mul_scalar(0.25).unwrap();
                let y0 = xs
                    .sub(&t)
                    .unwrap()
                    .square()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .mul_scalar(0.25)
                    .unwrap();
                assert_eq!(bits(&y), bits(&y0), "{shape:?} {dtype:?}");
                let got = grad(&[&y], None, &[&x, &t], false).unwrap();
                let want = grad(&[&y0], None, &[&x, &t], false).unwrap();
                for (a, b) in got.iter().zip(&want) {
                    assert_eq!(
                        bits(a.as_ref().unwrap()),
                        bits(b.as_ref().unwrap()),
                        "{shape:?} {dtype:?}"
                    );
                }
            }
        }
        let e = Tensor::zeros(&[2], DType::F32).squared_error(&Tensor::zeros(&[3], DType::F32));
        assert!(e.unwrap_err().to_string().contains("squared_error"));
    }

    #[test]
    fn gradients_and_second_derivatives() {
        let mut g = Generator::new(5);
        let (x, t) = (
            Tensor::randn(&[3, 4], DType::F64, &mut g),
            Tensor::randn(&[3, 4], DType::F64, &mut g),
        );
        gradcheck(|u| u[0].squared_error(&u[1]), &[x.clone(), t.clone()]).unwrap();
        let second = |u: &[Tensor]| {
            let gs = crate::ops::conv2d::recorded_grads(u, |u| u[0].squared_error(&u[1])?.mul_scalar(0.5))?;
            gs[0].mul(&u[0])?.sum_all()?.add(&gs[1].square()?.sum_all()?)
        };
        gradcheck(second, &[x, t]).unwrap();
    }
}
