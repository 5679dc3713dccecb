//! Conversion between element types.

use crate::dtype::dispatch;
use crate::{DType, Result, Tensor};

impl Tensor {
    /// The same values as `dtype` (f64 → f32 rounds). Differentiable; a no-op when equal.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let buf = dispatch!(dtype, T => T::wrap(self.to_vec_as::<T>()));
        let from = self.dtype();
        let out = Tensor::from_buffer(buf, self.shape());
        Ok(out.record("to_dtype", &[self], move |g, _| Ok(vec![Some(g.to_dtype(from)?)])))
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    #[test]
    fn round_trip_and_gradient_dtype() {
        let x = Tensor::from_vec(vec![1.5f32, -2.25], &[2])
            .unwrap()
            .set_requires_grad(true);
        let y = x.to_dtype(DType::F64).unwrap();
        assert_eq!(y.to_vec::<f64>().unwrap(), vec![1.5, -2.25]);
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().dtype(), DType::F32);
    }
}
