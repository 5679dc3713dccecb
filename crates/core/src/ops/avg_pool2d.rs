//! Average pooling (`F.avg_pool2d`). Both it and adaptive average pooling are a
//! [`WindowMean`]: a fixed linear map whose backward is its adjoint (spreading each
//! gradient evenly over its window), recorded so that it is differentiable in turn.
//!
//! ```
//! use nabla_core::{Pool2dOptions, Tensor};
//! let x = Tensor::from_vec((0..16).map(|v| v as f32).collect(), &[1, 1, 4, 4])?;
//! let y = x.avg_pool2d(Pool2dOptions::new([2, 2]), true)?;
//! assert_eq!(y.to_vec::<f32>()?, vec![2.5, 4.5, 10.5, 12.5]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::access::map_kernel;
use super::max_pool2d::{check_4d, pool_plan, Pool2dOptions};
use crate::dtype::dispatch;
use crate::kernels::pool::{window_sum, window_sum_adjoint, Windows};
use crate::{Element, Result, Tensor};
use std::sync::Arc;

/// A weighted sum over windows of each plane: `out[q] = scale[q] · Σ_{window q} x`.
pub(super) struct WindowMean {
    /// Names of the forward op and of its adjoint (the backward).
    pub names: [&'static str; 2],
    /// Input plane size.
    pub in_hw: [usize; 2],
    /// Input rows of each output row.
    pub rows: Windows,
    /// Input columns of each output column.
    pub cols: Windows,
    /// Weight of each output position (row-major over the output plane).
    pub scale: Vec<f64>,
}

/// Apply `m` to `x` (`[N, C, H, W]` → `[N, C, H', W']`), or its adjoint (the reverse).
pub(super) fn window_mean(x: &Tensor, m: Arc<WindowMean>, adjoint: bool) -> Result<Tensor> {
    let name = m.names[adjoint as usize];
    let [n, c, _, _] = check_4d(name, x)?;
    let (in_hw, out_hw) = ([m.in_hw[0], m.in_hw[1]], [m.rows.len(), m.cols.len()]);
    let shape = if adjoint {
        [n, c, in_hw[0], in_hw[1]]
    } else {
        [n, c, out_hw[0], out_hw[1]]
    };
    fn go<T: Element>(m: &WindowMean, adjoint: bool, x: &[T], out: &mut [T]) {
        let scale: Vec<T> = m.scale.iter().map(|&s| T::from_f64(s)).collect();
        if adjoint {
            window_sum_adjoint(x, m.in_hw, &m.rows, &m.cols, &scale, out);
        } else {
            window_sum(x, m.in_hw, &m.rows, &m.cols, &scale, out);
        }
    }
    let out = dispatch!(x.dtype(), T => map_kernel::<T>(name, x, &shape, |s, o| go(&m, adjoint, s, o)))?;
    Ok(out.record(name, &[x], move |g, _| {
        Ok(vec![Some(window_mean(g, m.clone(), !adjoint)?)])
    }))
}

impl Tensor {
    /// Mean over `opts.kernel` windows of each plane of `[N, C, H, W]`, as `F.avg_pool2d`.
    /// With `count_include_pad` the padding zeros count in the divisor (PyTorch's default);
    /// a ceil-mode window running past the padded input never counts the overhang.
    pub fn avg_pool2d(&self, opts: Pool2dOptions, count_include_pad: bool) -> Result<Tensor> {
        let plan = pool_plan("avg_pool2d", self, &opts)?;
        let mut scale = Vec::with_capacity(plan.rows.len() * plan.cols.len());
        for (&(h0, h1), &ph) in plan.rows.iter().zip(&plan.padded[0]) {
            for (&(w0, w1), &pw) in plan.cols.iter().zip(&plan.padded[1]) {
                let count = if count_include_pad {
                    ph * pw
                } else {
                    (h1 - h0) * (w1 - w0)
                };
                scale.push(1.0 / count as f64);
            }
        }
        let m = WindowMean {
            names: ["avg_pool2d", "avg_pool2d_backward"],
            in_hw: [plan.shape[2], plan.shape[3]],
            rows: plan.rows,
            cols: plan.cols,
            scale,
        };
        window_mean(self, Arc::new(m), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator};

    fn opts(kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2], ceil_mode: bool) -> Pool2dOptions {
        Pool2dOptions {
            kernel,
            stride,
            padding,
            ceil_mode,
        }
    }

    #[test]
    fn padding_counted_or_not() {
        // 3×3 of ones, kernel 3, stride 1, padding 1: a corner window holds 4 ones of 9.
        let x = Tensor::ones(&[1, 1, 3, 3], DType::F64);
        let o = opts([3, 3], [1, 1], [1, 1], false);
        let y = x.avg_pool2d(o, true).unwrap().to_vec::<f64>().unwrap();
        assert_eq!(y[0], 4.0 / 9.0);
        assert_eq!(y[1], 6.0 / 9.0);
        assert_eq!(y[4], 1.0);
        assert!(x
            .avg_pool2d(o, false)
            .unwrap()
            .to_vec::<f64>()
            .unwrap()
            .iter()
            .all(|&v| v == 1.0));
        // ceil mode: 1..5 in a row, kernel 2 stride 2 → [1.5, 3.5, 5] (last window holds one)
        let r = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0], &[1, 1, 1, 5]).unwrap();
        let y = r.avg_pool2d(opts([1, 2], [1, 2], [0, 0], true), true).unwrap();
        assert_eq!(y.to_vec::<f64>().unwrap(), vec![1.5, 3.5, 5.0]);
    }

    #[test]
    fn gradients() {
        let x = Tensor::randn(&[2, 2, 7, 6], DType::F64, &mut Generator::new(5));
        for o in [
            opts([2, 2], [2, 2], [0, 0], false),
            opts([3, 3], [2, 2], [1, 1], true),
            opts([3, 2], [1, 2], [1, 1], false),
            opts([2, 3], [3, 2], [1, 1], true),
        ] {
            for cip in [true, false] {
                gradcheck(|t| t[0].avg_pool2d(o, cip), std::slice::from_ref(&x))
                    .unwrap_or_else(|e| panic!("{o:?} {cip}: {e}"));
            }
        }
        // second order through the recorded backward
        let o = opts([3, 3], [2, 2], [1, 1], true);
        gradcheck(
            |t| {
                super::super::conv2d::recorded_grads(t, |t| t[0].avg_pool2d(o, false)?.square()?.sum_all())
                    .map(|g| g[0].clone())
            },
            &[x],
        )
        .unwrap();
    }

    #[test]
    fn errors() {
        let x = Tensor::zeros(&[1, 1, 4, 4], DType::F32);
        let e = x
            .avg_pool2d(opts([2, 2], [2, 2], [0, 2], false), true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("avg_pool2d") && e.contains("at most half") && e.contains("dim 3"),
            "{e}"
        );
        let e = x
            .avg_pool2d(opts([5, 1], [1, 1], [0, 0], false), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than the padded input") && e.contains("dim 2"), "{e}");
    }
}
