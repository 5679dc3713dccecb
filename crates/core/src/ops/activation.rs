//! Activations: relu, leaky_relu, elu, gelu, sigmoid, tanh, softplus. Each is finite
//! in value and gradient for inputs up to ±f32::MAX, and NaN passes through.

use super::access::{map_binary, map_unary, scalar_like};
use super::unary::saved_output;
use crate::dtype::dispatch;
use crate::kernels::lstm_rows::tanh_f32_accurate;
use crate::{Element, Result, Tensor};

fn sigmoid_of<T: Element>(x: T) -> T {
    // Split by sign so exp never overflows.
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// tanh; in f32 without a library call, so the map vectorizes.
fn tanh_of<T: Element>(x: T) -> T {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        T::from_f64(f64::from(tanh_f32_accurate(x.to_f64() as f32)))
    } else {
        x.tanh()
    }
}

/// `g` where `x > 0`, else 0, in one pass (PyTorch's `threshold_backward`: a NaN or
/// infinite `g` at `x ≤ 0` gives 0, not NaN). Linear in `g`, so its own gradient is the same
/// mask applied to the incoming one; `x` gets none (the mask is flat almost everywhere).
fn relu_backward(g: &Tensor, x: &Tensor) -> Result<Tensor> {
    fn f<T: Element>(g: T, x: T) -> T {
        if x > T::ZERO {
            g
        } else {
            T::ZERO
        }
    }
    let out = dispatch!(g.dtype(), T => map_binary("relu_backward", g, x, f::<T>))?;
    let x = x.clone();
    Ok(out.record("relu_backward", &[g], move |gg, _| {
        Ok(vec![Some(relu_backward(gg, &x)?)])
    }))
}

/// `g` where `x > 0`, else `slope·g`, in one pass (PyTorch's `leaky_relu_backward`). Linear
/// in `g`, so its own gradient is the same scaling of the incoming one; `x` gets none (the
/// slope is flat almost everywhere).
fn leaky_relu_backward(g: &Tensor, x: &Tensor, slope: f64) -> Result<Tensor> {
    let out = dispatch!(g.dtype(), T => {
        let s = T::from_f64(slope);
        map_binary("leaky_relu_backward", g, x, move |g: T, x: T| if x > T::ZERO { g } else { s * g })
    })?;
    let x = x.clone();
    Ok(out.record("leaky_relu_backward", &[g], move |gg, _| {
        Ok(vec![Some(leaky_relu_backward(gg, &x, slope)?)])
    }))
}

/// The gradient `g` through `act` from the activation's output `y` (for ops that fuse the
/// activation into their output and keep only that): `y > 0` exactly where the input was
/// `> 0` for relu and for a leaky relu with a slope ≥ 0 ([`gates_at_output`]), so this is
/// the unfused backward bit for bit, and as differentiable.
pub(crate) fn backward_at_output(g: &Tensor, y: &Tensor, act: crate::Activation) -> Result<Tensor> {
    match act {
        crate::Activation::Identity => Ok(g.clone()),
        crate::Activation::Relu => relu_backward(g, y),
        crate::Activation::LeakyRelu(slope) => leaky_relu_backward(g, y, slope),
    }
}

/// Whether [`backward_at_output`] can gate `act` from its output alone: not for a negative
/// (or NaN) slope, which flips the sign of negative inputs.
pub(crate) fn gates_at_output(act: crate::Activation) -> bool {
    match act {
        crate::Activation::LeakyRelu(slope) => slope >= 0.0,
        _ => true,
    }
}

impl Tensor {
    /// `act` applied as its own op: `relu`, `leaky_relu`, or the tensor itself for `Identity`.
    pub fn activation(&self, act: crate::Activation) -> Result<Tensor> {
        match act {
            crate::Activation::Identity => Ok(self.clone()),
            crate::Activation::Relu => self.relu(),
            crate::Activation::LeakyRelu(slope) => self.leaky_relu(slope),
        }
    }

    /// max(x, 0); NaN stays NaN. Gradient 0 at the kink, as PyTorch.
    pub fn relu(&self) -> Result<Tensor> {
        fn f<T: Element>(x: T) -> T {
            if x > T::ZERO || x.is_nan() {
                x
            } else {
                T::ZERO
            }
        }
        let out = dispatch!(self.dtype(), T => map_unary(self, f::<T>));
        let x = self.clone();
        Ok(out.record("relu", &[self], move |g, _| Ok(vec![Some(relu_backward(g, &x)?)])))
    }

    /// x for x > 0, `slope`·x otherwise.
    pub fn leaky_relu(&self, slope: f64) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => {
            let s = T::from_f64(slope);
            map_unary::<T>(self, move |x| if x > T::ZERO { x } else { s * x })
        });
        let x = self.clone();
        Ok(out.record("leaky_relu", &[self], move |g, _| {
            Ok(vec![Some(leaky_relu_backward(g, &x, slope)?)])
        }))
    }

    /// x for x > 0, α(eˣ − 1) otherwise.
    pub fn elu(&self, alpha: f64) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => {
            let a = T::from_f64(alpha);
            map_unary::<T>(self, move |x| if x > T::ZERO { x } else { a * x.exp_m1() })
        });
        let (x, y) = (self.clone(), out.clone());
        Ok(out.record("elu", &[self], move |g, _| {
            // For x ≤ 0 the slope is α eˣ = elu(x) + α; no exp of a large x is ever taken.
            let pos = x.gt(&scalar_like(&x, 0.0))?;
            let y = saved_output(&y, || x.elu(alpha))?;
            let d = pos.add(&pos.rsub_scalar(1.0)?.mul(&y.add_scalar(alpha)?)?)?;
            Ok(vec![Some(g.mul(&d)?)])
        }))
    }

    /// 1 / (1 + e⁻ˣ), computed without overflow.
    pub fn sigmoid(&self) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_unary(self, sigmoid_of::<T>));
        let (x, y) = (self.clone(), out.clone());
        Ok(out.record("sigmoid", &[self], move |g, _| {
            let y = saved_output(&y, || x.sigmoid())?;
            Ok(vec![Some(g.mul(&y.mul(&y.rsub_scalar(1.0)?)?)?)])
        }))
    }

    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_unary(self, tanh_of::<T>));
        let (x, y) = (self.clone(), out.clone());
        Ok(out.record("tanh", &[self], move |g, _| {
            let y = saved_output(&y, || x.tanh())?;
            Ok(vec![Some(g.mul(&y.mul(&y)?.rsub_scalar(1.0)?)?)])
        }))
    }

    /// ln(1 + eˣ) as max(x, 0) + ln(1 + e^−|x|): no overflow for large x.
    pub fn softplus(&self) -> Result<Tensor> {
        fn f<T: Element>(x: T) -> T {
            let m = if x > T::ZERO { x } else { T::ZERO };
            m + (-x.abs()).exp().ln_1p()
        }
        let out = dispatch!(self.dtype(), T => map_unary(self, f::<T>));
        let x = self.clone();
        Ok(out.record("softplus", &[self], move |g, _| Ok(vec![Some(g.mul(&x.sigmoid()?)?)])))
    }

    /// x·Φ(x), Φ the standard normal CDF (the exact, erf form).
    pub fn gelu(&self) -> Result<Tensor> {
        let phi = self
            .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)?
            .erf()?
            .add_scalar(1.0)?
            .mul_scalar(0.5)?;
        self.mul(&phi)
    }

    /// The error function.
    pub fn erf(&self) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_unary(self, <T as Element>::erf));
        let x = self.clone();
        Ok(out.record("erf", &[self], move |g, _| {
            // d/dx erf(x) = 2/√π · e^(−x²); e^(−x²) underflows to 0 for large |x|, never NaN.
            let d = x.mul(&x)?.neg()?.exp()?.mul_scalar(std::f64::consts::FRAC_2_SQRT_PI)?;
            Ok(vec![Some(g.mul(&d)?)])
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator, Tensor};

    #[test]
    fn activation_gradients() {
        let x = Tensor::randn(&[4, 7], DType::F64, &mut Generator::new(4))
            .mul_scalar(2.0)
            .unwrap();
        gradcheck(|t| t[0].relu(), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].leaky_relu(0.01), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].elu(1.0), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].sigmoid(), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].tanh(), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].softplus(), &[x.clone()]).unwrap();
        gradcheck(|t| t[0].gelu(), &[x.clone()]).unwrap();
        let zero = Tensor::zeros(&[3], DType::F64);
        gradcheck(|t| t[0].softplus(), &[zero]).unwrap();
        // relu's backward is its own op: differentiate it again (d/dx of 2·relu(x)·1[x>0]).
        let second = |t: &[Tensor]| {
            super::super::conv2d::recorded_grads(t, |t| t[0].relu()?.square()?.sum_all()).map(|g| g[0].clone())
        };
        gradcheck(second, &[x.clone()]).unwrap();
        // leaky_relu's backward is g·slope-mask in tensor ops, so differentiable again (a
        // WGAN-GP critic's penalty goes through it): d/dx of 2·leaky(x)·leaky'(x).
        let second = |t: &[Tensor]| {
            super::super::conv2d::recorded_grads(t, |t| t[0].leaky_relu(0.2)?.square()?.sum_all()).map(|g| g[0].clone())
        };
        gradcheck(second, &[x.clone()]).unwrap();
    }

    #[test]
    fn relu_gradient_is_the_mask_in_one_op() {
        let x = Tensor::from_vec(vec![-1.0f32, 0.0, 2.0, f32::NAN], &[4])
            .unwrap()
            .set_requires_grad(true);
        let g = Tensor::from_vec(vec![f32::NAN, 5.0, 3.0, 7.0], &[4]).unwrap();
        let grads = x.relu().unwrap().backward_with_grad(&g).unwrap();
        // 0 at the kink, below it (even for a NaN gradient, as PyTorch) and at NaN inputs.
        assert_eq!(
            grads.get(&x).unwrap().to_vec::<f32>().unwrap(),
            vec![0.0, 0.0, 3.0, 0.0]
        );
    }

    #[test]
    fn extreme_inputs_stay_finite() {
        let big = [-f32::MAX, -1e4, -50.0, 0.0, 50.0, 1e4, f32::MAX];
        let x = Tensor::from_vec(big.to_vec(), &[7]).unwrap().set_requires_grad(true);
        for (name, y) in [
            ("relu", x.relu()),
            ("leaky_relu", x.leaky_relu(0.01)),
            ("elu", x.elu(1.0)),
            ("gelu", x.gelu()),
            ("sigmoid", x.sigmoid()),
            ("tanh", x.tanh()),
            ("softplus", x.softplus()),
        ] {
            let y = y.unwrap();
            assert!(y.to_vec_f32().iter().all(|v| v.is_finite()), "{name}: {y}");
            let g = y.sum_all().unwrap().backward();
            // sum_all of huge values may overflow to inf; the gradient must still be finite.
            let g = g.unwrap();
            assert!(
                g.get(&x).unwrap().to_vec_f32().iter().all(|v| v.is_finite()),
                "{name} grad"
            );
        }
        let nan = Tensor::from_vec(vec![f32::NAN], &[1]).unwrap();
        assert!(nan.relu().unwrap().item().unwrap().is_nan());
        assert!(nan.sigmoid().unwrap().item().unwrap().is_nan());
    }
}

/// Timings at LeNet-5's and the MLP's shapes:
/// `cargo test --release -p nabla-core relu_bench -- --ignored --nocapture`.
#[cfg(test)]
mod bench {
    use crate::{BackwardOptions, DType, Generator, Tensor};
    use std::time::Instant;

    fn best_us(reps: usize, mut f: impl FnMut()) -> f64 {
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e6
            })
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    #[ignore]
    fn relu_bench() {
        let keep = BackwardOptions {
            retain_graph: true,
            ..Default::default()
        };
        for shape in [&[64, 6, 28, 28][..], &[64, 16, 10, 10], &[64, 120], &[64, 256]] {
            let x = Tensor::randn(shape, DType::F32, &mut Generator::new(1)).set_requires_grad(true);
            let y = x.relu().unwrap();
            let gy = Tensor::randn(shape, DType::F32, &mut Generator::new(2));
            let fwd = best_us(300, || drop(x.relu().unwrap()));
            let bwd = best_us(300, || drop(y.backward_with(&gy, keep).unwrap()));
            println!("relu {shape:?}: forward {fwd:.1} us, backward {bwd:.1} us");
        }
    }
}
