//! Comparisons: eq, ne, gt, ge, lt, le. They return 0/1 masks in the inputs' dtype,
//! broadcast like arithmetic, and are not differentiable.

use super::access::map_binary;
use crate::dtype::dispatch;
use crate::{Element, Result, Tensor};

fn b2f<T: Element>(b: bool) -> T {
    if b {
        T::ONE
    } else {
        T::ZERO
    }
}

impl Tensor {
    /// 1 where `self == other`, else 0.
    pub fn eq(&self, other: &Tensor) -> Result<Tensor> {
        dispatch!(self.dtype(), T => map_binary::<T>("eq", self, other, |a, b| b2f(a == b)))
    }

    /// 1 where `self != other`, else 0.
    pub fn ne(&self, other: &Tensor) -> Result<Tensor> {
        dispatch!(self.dtype(), T => map_binary::<T>("ne", self, other, |a, b| b2f(a != b)))
    }

    /// 1 where `self > other`, else 0.
    pub fn gt(&self, other: &Tensor) -> Result<Tensor> {
        dispatch!(self.dtype(), T => map_binary::<T>("gt", self, other, |a, b| b2f(a > b)))
    }

    /// 1 where `self >= other`, else 0.
    pub fn ge(&self, other: &Tensor) -> Result<Tensor> {
        dispatch!(self.dtype(), T => map_binary::<T>("ge", self, other, |a, b| b2f(a >= b)))
    }

    /// 1 where `self < other`, else 0.
    pub fn lt(&self, other: &Tensor) -> Result<Tensor> {
        dispatch!(self.dtype(), T => map_binary::<T>("lt", self, other, |a, b| b2f(a < b)))
    }

    /// 1 where `self <= other`, else 0.
    pub fn le(&self, other: &Tensor) -> Result<Tensor> {
        dispatch!(self.dtype(), T => map_binary::<T>("le", self, other, |a, b| b2f(a <= b)))
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn masks_broadcast() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap();
        let b = Tensor::scalar(2.0f32);
        assert_eq!(a.gt(&b).unwrap().to_vec::<f32>().unwrap(), vec![0.0, 0.0, 1.0]);
        assert_eq!(a.le(&b).unwrap().to_vec::<f32>().unwrap(), vec![1.0, 1.0, 0.0]);
        assert_eq!(a.eq(&b).unwrap().to_vec::<f32>().unwrap(), vec![0.0, 1.0, 0.0]);
        assert_eq!(a.ne(&a).unwrap().to_vec::<f32>().unwrap(), vec![0.0, 0.0, 0.0]);
        let x = a.set_requires_grad(true);
        assert!(!x.ge(&b).unwrap().requires_grad());
    }
}
