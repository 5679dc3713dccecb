//! Max unpooling (`F.max_unpool2d`): put each value back at the flat per-plane index that
//! [`Tensor::max_pool2d_with_indices`] reported, zeros elsewhere. The backward gathers
//! the gradient at the same indices.
//!
//! ```
//! use nabla_core::{Pool2dOptions, Tensor};
//! let x = Tensor::from_vec(vec![1.0f32, 5.0, 3.0, 2.0], &[1, 1, 2, 2])?;
//! let (y, idx) = x.max_pool2d_with_indices(Pool2dOptions::new([2, 2]))?;
//! assert_eq!(y.max_unpool2d(&idx, [2, 2])?.to_vec::<f32>()?, vec![0.0, 5.0, 0.0, 0.0]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::max_pool2d::{check_4d, plane_fits_u32, scatter_planes};
use crate::kernels::elementwise::map_vec;
use crate::{Error, Result, Tensor};
use std::sync::Arc;

impl Tensor {
    /// Scatter `self` (`[N, C, h, w]`) into zero planes of `output` size: element `q` of
    /// plane `(n, c)` lands at flat index `indices[(n·C + c)·h·w + q]` of that plane.
    /// When two elements share an index, the later one wins (as PyTorch on CPU).
    pub fn max_unpool2d(&self, indices: &[usize], output: [usize; 2]) -> Result<Tensor> {
        const OP: &str = "max_unpool2d";
        check_4d(OP, self)?;
        if indices.len() != self.numel() {
            return Err(Error::invalid(
                OP,
                format!(
                    "{} indices for an input of shape {:?} ({} elements)",
                    indices.len(),
                    self.shape(),
                    self.numel()
                ),
            ));
        }
        plane_fits_u32(OP, output)?;
        let plane = output[0] * output[1];
        // Narrowed on all threads, an index past the plane saturating to `plane` (still
        // outside it, so the scatter reports it); the position is only looked for then.
        let idx = Arc::new(map_vec(indices, |i| i.min(plane) as u32));
        scatter_planes(self, idx, output, false).map_err(|e| {
            match indices.iter().enumerate().find(|(_, &i)| i >= plane) {
                Some((at, &i)) => Error::invalid(
                    OP,
                    format!("index {i} at position {at} is outside the output plane {output:?} ({plane} elements)"),
                ),
                None => e,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator, Pool2dOptions, Tensor};

    #[test]
    fn inverts_max_pool_on_the_maxima() {
        let x = Tensor::randn(&[2, 3, 6, 4], DType::F64, &mut Generator::new(1));
        let (y, idx) = x.max_pool2d_with_indices(Pool2dOptions::new([2, 2])).unwrap();
        let u = y.max_unpool2d(&idx, [6, 4]).unwrap();
        assert_eq!(u.shape(), x.shape());
        // The unpooled planes hold each window's max at its place and zeros elsewhere.
        let (xs, us) = (x.to_vec::<f64>().unwrap(), u.to_vec::<f64>().unwrap());
        let kept = us.iter().filter(|&&v| v != 0.0).count();
        assert_eq!(kept, y.numel());
        assert!(xs.iter().zip(&us).all(|(a, b)| *b == 0.0 || a == b));
        let back = u.max_pool2d(Pool2dOptions::new([2, 2])).unwrap();
        assert_eq!(
            back.to_vec::<f64>().unwrap(),
            y.to_vec::<f64>()
                .unwrap()
                .iter()
                .map(|v| v.max(0.0))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn gradients_and_errors() {
        let x = Tensor::randn(&[1, 2, 2, 3], DType::F64, &mut Generator::new(2));
        let idx = vec![0, 5, 7, 9, 13, 19, 1, 2, 3, 4, 18, 11];
        gradcheck(|t| t[0].max_unpool2d(&idx, [4, 5]), std::slice::from_ref(&x)).unwrap();
        gradcheck(
            |t| {
                super::super::conv2d::recorded_grads(t, |t| t[0].max_unpool2d(&idx, [4, 5])?.square()?.sum_all())
                    .map(|g| g[0].clone())
            },
            std::slice::from_ref(&x),
        )
        .unwrap();
        let e = x.max_unpool2d(&idx[..5], [4, 5]).unwrap_err().to_string();
        assert!(e.contains("max_unpool2d") && e.contains("5 indices"), "{e}");
        let mut bad = idx.clone();
        bad[4] = 20;
        let e = x.max_unpool2d(&bad, [4, 5]).unwrap_err().to_string();
        assert!(e.contains("index 20 at position 4"), "{e}");
        // Past 32 bits too (the kernel's indices saturate rather than wrap into range).
        bad[4] = (1usize << 32) + 3;
        let e = x.max_unpool2d(&bad, [4, 5]).unwrap_err().to_string();
        assert!(e.contains("index 4294967299 at position 4"), "{e}");
    }
}
