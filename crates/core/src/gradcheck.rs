//! Gradient checking: autodiff against central finite differences, in f64.
//!
//! ```
//! use nabla_core::{gradcheck::gradcheck, Tensor};
//! let x = Tensor::from_vec(vec![0.3f64, -1.2, 2.0], &[3])?;
//! gradcheck(|t| t[0].tanh()?.mul(&t[0]), &[x])?;
//! # Ok::<(), nabla_core::Error>(())
//! ```

use crate::{autograd::no_grad, DType, Error, Generator, Result, Tensor};

/// Step of the central differences.
pub const EPS: f64 = 1e-6;
/// Absolute tolerance.
pub const ATOL: f64 = 1e-5;
/// Relative tolerance.
pub const RTOL: f64 = 1e-3;

/// Check the gradient of `f` at `inputs` (f64 tensors) for every input element.
///
/// The output is weighted by fixed random numbers before summing, so every output element
/// matters and errors cannot cancel. Fails with the input, element and both values.
pub fn gradcheck(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) -> Result<()> {
    for (i, x) in inputs.iter().enumerate() {
        if x.dtype() != DType::F64 {
            return Err(Error::invalid(
                "gradcheck",
                format!("input {i} is {:?}; use f64", x.dtype()),
            ));
        }
    }
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|x| Tensor::from_vec(x.to_vec_f64(), x.shape()).map(|t| t.set_requires_grad(true)))
        .collect::<Result<_>>()?;
    let y = f(&leaves)?;
    let w = Tensor::randn(y.shape(), DType::F64, &mut Generator::new(1234));
    let loss = |y: &Tensor| -> Result<f64> { y.mul(&w)?.sum_all()?.item() };
    let grads = y.mul(&w)?.sum_all()?.backward()?;
    for (i, leaf) in leaves.iter().enumerate() {
        let analytic = match grads.get(leaf) {
            Some(g) => g.to_vec_f64(),
            None => vec![0.0; leaf.numel()],
        };
        let base = leaf.to_vec_f64();
        for j in 0..base.len() {
            let eval = |delta: f64| -> Result<f64> {
                let _g = no_grad();
                let mut v = base.clone();
                v[j] += delta;
                let mut xs: Vec<Tensor> = leaves.iter().map(|l| l.detach()).collect();
                xs[i] = Tensor::from_vec(v, leaf.shape())?;
                loss(&f(&xs)?)
            };
            let numeric = (eval(EPS)? - eval(-EPS)?) / (2.0 * EPS);
            let a = analytic[j];
            // Written so that a NaN on either side fails the check.
            let close = (a - numeric).abs() <= ATOL + RTOL * numeric.abs();
            if !close {
                return Err(Error::Autograd(format!(
                    "gradcheck: input {i} (shape {:?}) element {j}: autodiff {a:.8e}, finite differences {numeric:.8e}",
                    leaf.shape()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_a_wrong_gradient() {
        // sign() has no backward: the check must notice the missing gradient of x·sign(x)+x.
        let x = Tensor::from_vec(vec![0.5f64, -0.7], &[2]).unwrap();
        let bad = gradcheck(|t| t[0].detach().mul(&t[0]), &[x.clone()]);
        assert!(bad.is_err());
        gradcheck(|t| t[0].mul(&t[0]), &[x]).unwrap();
    }
}
