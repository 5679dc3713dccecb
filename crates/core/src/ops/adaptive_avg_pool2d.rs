//! Adaptive average pooling (`F.adaptive_avg_pool2d`): a target output size, with
//! PyTorch's windows `floor(i·in/out) .. ceil((i+1)·in/out)` (they overlap when `out`
//! does not divide `in`). A [`WindowMean`], so its backward is its adjoint.
//!
//! ```
//! use nabla_core::Tensor;
//! let x = Tensor::from_vec((0..9).map(|v| v as f32).collect(), &[1, 1, 3, 3])?;
//! assert_eq!(x.adaptive_avg_pool2d([1, 1])?.to_vec::<f32>()?, vec![4.0]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::avg_pool2d::{window_mean, WindowMean};
use super::max_pool2d::check_4d;
use crate::kernels::pool::adaptive_windows;
use crate::{Error, Result, Tensor};
use std::sync::Arc;

impl Tensor {
    /// Average pooling of `[N, C, H, W]` to `[N, C, output[0], output[1]]`.
    pub fn adaptive_avg_pool2d(&self, output: [usize; 2]) -> Result<Tensor> {
        const OP: &str = "adaptive_avg_pool2d";
        let [_, _, h, w] = check_4d(OP, self)?;
        if output.contains(&0) || h == 0 || w == 0 {
            return Err(Error::invalid(
                OP,
                format!(
                    "output size {output:?} and input {:?} must have non-zero H and W",
                    self.shape()
                ),
            ));
        }
        let (rows, cols) = (adaptive_windows(h, output[0]), adaptive_windows(w, output[1]));
        let scale = rows
            .iter()
            .flat_map(|&(h0, h1)| cols.iter().map(move |&(w0, w1)| 1.0 / ((h1 - h0) * (w1 - w0)) as f64))
            .collect();
        let m = WindowMean {
            names: [OP, "adaptive_avg_pool2d_backward"],
            in_hw: [h, w],
            rows,
            cols,
            scale,
        };
        window_mean(self, Arc::new(m), false)
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator, Tensor};

    #[test]
    fn overlapping_windows() {
        // 1-D view: in 5 → out 3 reads [0,2), [1,4), [3,5).
        let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0], &[1, 1, 1, 5]).unwrap();
        let y = x.adaptive_avg_pool2d([1, 3]).unwrap();
        assert_eq!(y.to_vec::<f64>().unwrap(), vec![1.5, 3.0, 4.5]);
        // upsampling is allowed too: in 2 → out 3 reads [0,1), [0,2), [1,2)
        let x = Tensor::from_vec(vec![2.0, 4.0], &[1, 1, 2, 1]).unwrap();
        assert_eq!(
            x.adaptive_avg_pool2d([3, 1]).unwrap().to_vec::<f64>().unwrap(),
            vec![2.0, 3.0, 4.0]
        );
    }

    #[test]
    fn gradients_and_errors() {
        let x = Tensor::randn(&[2, 3, 7, 5], DType::F64, &mut Generator::new(9));
        for out in [[1, 1], [3, 2], [7, 5], [4, 6]] {
            gradcheck(|t| t[0].adaptive_avg_pool2d(out), std::slice::from_ref(&x))
                .unwrap_or_else(|e| panic!("{out:?}: {e}"));
        }
        gradcheck(
            |t| {
                super::super::conv2d::recorded_grads(t, |t| t[0].adaptive_avg_pool2d([3, 2])?.square()?.sum_all())
                    .map(|g| g[0].clone())
            },
            std::slice::from_ref(&x),
        )
        .unwrap();
        let e = x.adaptive_avg_pool2d([0, 2]).unwrap_err().to_string();
        assert!(e.contains("adaptive_avg_pool2d") && e.contains("[0, 2]"), "{e}");
        assert!(Tensor::zeros(&[3, 4], DType::F32)
            .adaptive_avg_pool2d([1, 1])
            .unwrap_err()
            .to_string()
            .contains("4-D"));
    }
}
