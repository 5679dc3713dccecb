//! Elementwise selection: `where_cond`, `maximum`, `minimum` and `clamp`.
//!
//! ```
//! use nabla_core::Tensor;
//! let x = Tensor::from_vec(vec![-2.0f32, 0.5, 3.0], &[3])?;
//! assert_eq!(x.clamp(Some(-1.0), Some(1.0))?.to_vec::<f32>()?, vec![-1.0, 0.5, 1.0]);
//! let zero = Tensor::scalar(0.0f32);
//! let pos = x.gt(&zero)?;
//! assert_eq!(Tensor::where_cond(&pos, &x, &zero)?.to_vec::<f32>()?, vec![0.0, 0.5, 3.0]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::access::{broadcast_strides, map_binary, map_unary, same_dtype, scalar_like};
use crate::dtype::dispatch;
use crate::shape::{broadcast_shape, Layout};
use crate::{Element, Error, Result, Tensor};

/// The elements of `t` seen through the broadcast `shape`, row-major.
fn broadcast_vec<T: Element>(t: &Tensor, shape: &[usize]) -> Result<Vec<T>> {
    let layout = Layout {
        strides: broadcast_strides(t, shape),
        shape: shape.to_vec(),
        offset: t.layout().offset,
    };
    t.with_layout(layout).to_vec::<T>()
}

/// Which elements of `cond`, broadcast to `shape`, are nonzero (NaN counts as nonzero).
fn truth(cond: &Tensor, shape: &[usize]) -> Result<Vec<bool>> {
    Ok(dispatch!(cond.dtype(), T => broadcast_vec::<T>(cond, shape)?
        .into_iter()
        .map(|v| v != T::ZERO)
        .collect()))
}

impl Tensor {
    /// `a` where `cond` is nonzero, else `b`, broadcasting all three. `cond` gets no
    /// gradient; `a` and `b` get the upstream gradient where they were picked.
    pub fn where_cond(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        same_dtype("where_cond", a, b)?;
        let ab = broadcast_shape("where_cond", a.shape(), b.shape())?;
        let shape = broadcast_shape("where_cond", cond.shape(), &ab)?;
        let pick = truth(cond, &shape)?;
        fn run<T: Element>(pick: &[bool], a: &Tensor, b: &Tensor, shape: &[usize]) -> Result<Tensor> {
            // a and b are read one after the other: they may share one storage lock.
            let av = broadcast_vec::<T>(a, shape)?;
            let mut out = broadcast_vec::<T>(b, shape)?;
            for ((o, &x), &p) in out.iter_mut().zip(&av).zip(pick) {
                if p {
                    *o = x;
                }
            }
            Ok(Tensor::from_buffer(T::wrap(out), shape))
        }
        let out = dispatch!(a.dtype(), T => run::<T>(&pick, a, b, &shape)?);
        let c = cond.detach();
        let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
        Ok(out.record("where_cond", &[a, b], move |g, needs| {
            let zero = scalar_like(g, 0.0);
            let ga = if needs[0] {
                Some(Tensor::where_cond(&c, g, &zero)?.sum_to(&sa)?)
            } else {
                None
            };
            let gb = if needs[1] {
                Some(Tensor::where_cond(&c, &zero, g)?.sum_to(&sb)?)
            } else {
                None
            };
            Ok(vec![ga, gb])
        }))
    }

    /// Elementwise maximum, broadcasting. NaN in either operand gives NaN; on ties each
    /// side gets half the gradient (what central differences see).
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_binary::<T>("maximum", self, other, |x, y| x.max_nan(y)))?;
        let (a, b) = (self.detach(), other.detach());
        Ok(out.record("maximum", &[self, other], move |g, needs| {
            split_grad(g, needs, &a, &b, true)
        }))
    }

    /// Elementwise minimum, broadcasting. NaN in either operand gives NaN; on ties each
    /// side gets half the gradient.
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        let out = dispatch!(self.dtype(), T => map_binary::<T>("minimum", self, other, |x, y| x.min_nan(y)))?;
        let (a, b) = (self.detach(), other.detach());
        Ok(out.record("minimum", &[self, other], move |g, needs| {
            split_grad(g, needs, &a, &b, false)
        }))
    }

    /// Limit every element to `[min, max]` (either bound may be absent; with min > max
    /// everything becomes max, as PyTorch). NaN stays NaN. The gradient is 1 where
    /// `min <= x <= max` (bounds included, as PyTorch) and 0 elsewhere.
    pub fn clamp(&self, min: Option<f64>, max: Option<f64>) -> Result<Tensor> {
        if min.is_none() && max.is_none() {
            return Err(Error::invalid(
                "clamp",
                format!("at least one of min and max is needed (input shape {:?})", self.shape()),
            ));
        }
        fn f<T: Element>(x: T, lo: Option<T>, hi: Option<T>) -> T {
            let x = lo.map_or(x, |lo| x.max_nan(lo));
            hi.map_or(x, |hi| x.min_nan(hi))
        }
        let out = dispatch!(self.dtype(), T => {
            let (lo, hi) = (min.map(T::from_f64), max.map(T::from_f64));
            map_unary::<T>(self, move |x| f(x, lo, hi))
        });
        let x = self.detach();
        Ok(out.record("clamp", &[self], move |g, _| {
            let mut inside: Option<Tensor> = None;
            if let Some(lo) = min {
                inside = Some(x.ge(&scalar_like(&x, lo))?);
            }
            if let Some(hi) = max {
                let le = x.le(&scalar_like(&x, hi))?;
                inside = Some(match inside {
                    Some(m) => m.mul(&le)?,
                    None => le,
                });
            }
            match inside {
                Some(m) => Ok(vec![Some(Tensor::where_cond(&m, g, &scalar_like(g, 0.0))?)]),
                None => Ok(vec![Some(g.clone())]),
            }
        }))
    }
}

/// Gradients of maximum (`is_max`) or minimum: the winner takes `g`, a tie halves it,
/// and where the result is NaN both sides take `g` (PyTorch's rule).
fn split_grad(g: &Tensor, needs: &[bool], a: &Tensor, b: &Tensor, is_max: bool) -> Result<Vec<Option<Tensor>>> {
    let zero = scalar_like(g, 0.0);
    let shared = Tensor::where_cond(&a.eq(b)?, &g.mul_scalar(0.5)?, g)?;
    let (a_loses, b_loses) = if is_max {
        (a.lt(b)?, a.gt(b)?)
    } else {
        (a.gt(b)?, a.lt(b)?)
    };
    let ga = if needs[0] {
        Some(Tensor::where_cond(&a_loses, &zero, &shared)?.sum_to(a.shape())?)
    } else {
        None
    };
    let gb = if needs[1] {
        Some(Tensor::where_cond(&b_loses, &zero, &shared)?.sum_to(b.shape())?)
    } else {
        None
    };
    Ok(vec![ga, gb])
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator, Tensor};

    fn r(shape: &[usize], seed: u64) -> Tensor {
        Tensor::randn(shape, DType::F64, &mut Generator::new(seed))
    }

    fn v64(t: &Tensor) -> Vec<f64> {
        t.to_vec::<f64>().unwrap()
    }

    #[test]
    fn where_cond_values_and_broadcast() {
        let c = Tensor::from_vec(vec![1.0f32, 0.0, f32::NAN], &[3, 1]).unwrap();
        let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
        let b = Tensor::scalar(-5.0f32);
        let y = Tensor::where_cond(&c, &a, &b).unwrap();
        assert_eq!(y.shape(), &[3, 2]);
        // NaN is nonzero, so it picks `a`, as PyTorch's bool conversion does.
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![1.0, 2.0, -5.0, -5.0, 1.0, 2.0]);
        // cond may have the other dtype; a and b may share storage.
        let x = Tensor::from_vec(vec![3.0f64, 4.0, 5.0, 6.0], &[2, 2]).unwrap();
        let c64 = Tensor::from_vec(vec![0.0f32, 1.0], &[2]).unwrap();
        let y = Tensor::where_cond(&c64, &x, &x.t().unwrap()).unwrap();
        assert_eq!(v64(&y), vec![3.0, 4.0, 4.0, 6.0]);
    }

    #[test]
    fn where_cond_errors_name_op_and_shapes() {
        let a = Tensor::zeros(&[2, 3], DType::F32);
        let e = Tensor::where_cond(&Tensor::zeros(&[4], DType::F32), &a, &a)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("where_cond") && e.contains("[4]") && e.contains("[2, 3]"),
            "{e}"
        );
        let e = Tensor::where_cond(&a, &a, &Tensor::zeros(&[3], DType::F64))
            .unwrap_err()
            .to_string();
        assert!(e.contains("where_cond") && e.contains("dtype"), "{e}");
    }

    #[test]
    fn where_cond_gradients() {
        let c = r(&[4, 1], 1).gt(&Tensor::scalar(0.0f64)).unwrap();
        gradcheck(|t| Tensor::where_cond(&c, &t[0], &t[1]), &[r(&[4, 3], 2), r(&[3], 3)]).unwrap();
        // An infinite upstream gradient on the side not picked must not turn into NaN.
        let a = Tensor::from_vec(vec![1.0f64, 2.0], &[2])
            .unwrap()
            .set_requires_grad(true);
        let b = Tensor::from_vec(vec![f64::MAX, f64::MAX], &[2]).unwrap();
        let pick = Tensor::from_vec(vec![1.0f64, 0.0], &[2]).unwrap();
        let y = Tensor::where_cond(&pick, &a, &b)
            .unwrap()
            .exp()
            .unwrap()
            .sum_all()
            .unwrap();
        let g = y.backward().unwrap();
        assert_eq!(v64(g.get(&a).unwrap()), vec![1f64.exp(), 0.0]);
    }

    #[test]
    fn maximum_minimum_values_and_nan() {
        let a = Tensor::from_vec(vec![1.0f32, 5.0, f32::NAN, 2.0], &[4]).unwrap();
        let b = Tensor::from_vec(vec![3.0f32, 4.0, 0.0, f32::NAN], &[4]).unwrap();
        let mx = a.maximum(&b).unwrap().to_vec::<f32>().unwrap();
        let mn = a.minimum(&b).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(mx[..2], [3.0, 5.0]);
        assert_eq!(mn[..2], [1.0, 4.0]);
        assert!(mx[2].is_nan() && mx[3].is_nan() && mn[2].is_nan() && mn[3].is_nan());
        let col = Tensor::from_vec(vec![0.0f32, 10.0], &[2, 1]).unwrap();
        let m = col
            .maximum(&Tensor::from_vec(vec![1.0f32, 20.0], &[2]).unwrap())
            .unwrap();
        assert_eq!(m.to_vec::<f32>().unwrap(), vec![1.0, 20.0, 10.0, 20.0]);
        let e = a.maximum(&Tensor::zeros(&[3], DType::F32)).unwrap_err().to_string();
        assert!(e.contains("maximum") && e.contains("[4]") && e.contains("[3]"), "{e}");
    }

    #[test]
    fn ties_split_the_gradient() {
        let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 0.0], &[4])
            .unwrap()
            .set_requires_grad(true);
        let b = Tensor::from_vec(vec![1.0f64, 5.0, 0.0, 0.0], &[4])
            .unwrap()
            .set_requires_grad(true);
        let g = a.maximum(&b).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(v64(g.get(&a).unwrap()), vec![0.5, 0.0, 1.0, 0.5]);
        assert_eq!(v64(g.get(&b).unwrap()), vec![0.5, 1.0, 0.0, 0.5]);
        let g = a.minimum(&b).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(v64(g.get(&a).unwrap()), vec![0.5, 1.0, 0.0, 0.5]);
        assert_eq!(v64(g.get(&b).unwrap()), vec![0.5, 0.0, 1.0, 0.5]);
        // Central differences agree at the ties (and at zero) too.
        gradcheck(|t| t[0].maximum(&t[1]), &[a.detach(), b.detach()]).unwrap();
        gradcheck(|t| t[0].minimum(&t[1]), &[a.detach(), b.detach()]).unwrap();
    }

    #[test]
    fn maximum_minimum_gradients_broadcast() {
        let (a, b) = (r(&[3, 1, 4], 4), r(&[2, 4], 5));
        gradcheck(|t| t[0].maximum(&t[1]), &[a.clone(), b.clone()]).unwrap();
        gradcheck(|t| t[0].minimum(&t[1])?.mul(&t[0]), &[a, b]).unwrap();
    }

    #[test]
    fn clamp_values_bounds_and_nan() {
        let x = Tensor::from_vec(vec![-3.0f32, -1.0, 0.0, 2.0, f32::NAN], &[5]).unwrap();
        let both = x.clamp(Some(-1.0), Some(1.0)).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(both[..4], [-1.0, -1.0, 0.0, 1.0]);
        assert!(both[4].is_nan());
        assert_eq!(
            x.clamp(Some(0.0), None).unwrap().to_vec::<f32>().unwrap()[..4],
            [0.0, 0.0, 0.0, 2.0]
        );
        assert_eq!(
            x.clamp(None, Some(-2.0)).unwrap().to_vec::<f32>().unwrap()[..4],
            [-3.0, -2.0, -2.0, -2.0]
        );
        // min > max: everything becomes max, as PyTorch.
        assert_eq!(
            x.clamp(Some(5.0), Some(4.0)).unwrap().to_vec::<f32>().unwrap()[..4],
            [4.0; 4]
        );
        let e = x.clamp(None, None).unwrap_err().to_string();
        assert!(e.contains("clamp") && e.contains("[5]"), "{e}");
    }

    #[test]
    fn clamp_gradients() {
        // Gradient 1 inside (bounds included, as PyTorch), 0 outside and for NaN.
        let x = Tensor::from_vec(vec![-3.0f64, -1.0, 0.0, 1.0, 2.0, f64::NAN], &[6])
            .unwrap()
            .set_requires_grad(true);
        let g = x
            .clamp(Some(-1.0), Some(1.0))
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(v64(g.get(&x).unwrap()), vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
        let g = x.clamp(None, Some(0.5)).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(v64(g.get(&x).unwrap()), vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        // Finite differences away from the bounds (random normals never land on ±0.5).
        let x = r(&[5, 6], 6);
        gradcheck(|t| t[0].clamp(Some(-0.5), Some(0.5)), std::slice::from_ref(&x)).unwrap();
        gradcheck(|t| t[0].clamp(Some(-0.5), None)?.mul(&t[0]), std::slice::from_ref(&x)).unwrap();
        gradcheck(|t| t[0].clamp(None, Some(0.5)), &[x]).unwrap();
    }
}
