//! Constructors: constant fills, ranges, identity and random tensors.

use crate::dtype::dispatch;
use crate::{DType, Error, Generator, Result, Tensor};

fn filled(shape: &[usize], dtype: DType, f: impl FnMut() -> f64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut f = f;
    let buf = dispatch!(dtype, T => T::wrap((0..n).map(|_| T::from_f64(f())).collect()));
    Tensor::from_buffer(buf, shape)
}

/// Standard normal samples drawn two at a time: both halves of each Box–Muller step are used.
fn normals(g: &mut Generator) -> impl FnMut() -> f64 + '_ {
    let mut spare = None;
    move || match spare.take() {
        Some(v) => v,
        None => {
            let (a, b) = g.normal_pair();
            spare = Some(b);
            a
        }
    }
}

impl Tensor {
    /// A tensor of `value` everywhere.
    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Tensor {
        let n: usize = shape.iter().product();
        let buf = dispatch!(dtype, T => T::wrap(vec![T::from_f64(value); n]));
        Tensor::from_buffer(buf, shape)
    }

    /// Zeros.
    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full(shape, 0.0, dtype)
    }

    /// Ones.
    pub fn ones(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full(shape, 1.0, dtype)
    }

    /// Zeros of this tensor's shape and dtype.
    pub fn zeros_like(t: &Tensor) -> Tensor {
        Tensor::zeros(t.shape(), t.dtype())
    }

    /// Ones of this tensor's shape and dtype.
    pub fn ones_like(t: &Tensor) -> Tensor {
        Tensor::ones(t.shape(), t.dtype())
    }

    /// `start, start + step, ...` below `end` (above it for a negative step).
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::invalid(
                "arange",
                format!("start {start}, end {end}, step {step}: need finite values and a non-zero step"),
            ));
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let mut i = 0.0;
        Ok(filled(&[n], dtype, || {
            let v = start + i * step;
            i += 1.0;
            v
        }))
    }

    /// The n×n identity matrix.
    pub fn eye(n: usize, dtype: DType) -> Tensor {
        let mut k = 0;
        filled(&[n, n], dtype, || {
            let v = if k / n == k % n { 1.0 } else { 0.0 };
            k += 1;
            v
        })
    }

    /// Uniform samples in [0, 1).
    pub fn rand(shape: &[usize], dtype: DType, g: &mut Generator) -> Tensor {
        filled(shape, dtype, || g.uniform())
    }

    /// Standard normal samples.
    pub fn randn(shape: &[usize], dtype: DType, g: &mut Generator) -> Tensor {
        filled(shape, dtype, normals(g))
    }

    /// Uniform samples in [low, high).
    pub fn uniform(shape: &[usize], low: f64, high: f64, dtype: DType, g: &mut Generator) -> Tensor {
        filled(shape, dtype, || low + (high - low) * g.uniform())
    }

    /// Normal samples with the given mean and standard deviation.
    pub fn normal(shape: &[usize], mean: f64, std: f64, dtype: DType, g: &mut Generator) -> Tensor {
        let mut z = normals(g);
        filled(shape, dtype, || mean + std * z())
    }

    /// 1 with probability `p`, else 0.
    pub fn bernoulli(shape: &[usize], p: f64, dtype: DType, g: &mut Generator) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "bernoulli",
                format!("probability {p} is outside [0, 1]"),
            ));
        }
        Ok(filled(shape, dtype, || if g.uniform() < p { 1.0 } else { 0.0 }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors() {
        assert_eq!(
            Tensor::arange(0.0, 5.0, 2.0, DType::F32)
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            vec![0.0, 2.0, 4.0]
        );
        assert!(Tensor::arange(0.0, 5.0, 0.0, DType::F32).is_err());
        assert_eq!(
            Tensor::eye(2, DType::F64).to_vec::<f64>().unwrap(),
            vec![1.0, 0.0, 0.0, 1.0]
        );
        assert_eq!(
            Tensor::full(&[2], 3.5, DType::F64).to_vec::<f64>().unwrap(),
            vec![3.5, 3.5]
        );
        let a = Tensor::randn(&[10], DType::F32, &mut Generator::new(3));
        let b = Tensor::randn(&[10], DType::F32, &mut Generator::new(3));
        assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
        let m = Tensor::bernoulli(&[1000], 0.3, DType::F32, &mut Generator::new(1)).unwrap();
        let frac = m.to_vec_f64().iter().sum::<f64>() / 1000.0;
        assert!((frac - 0.3).abs() < 0.05);
        assert!(Tensor::from_vec(vec![1.0f32; 3], &[2, 2]).is_err());
    }
}
