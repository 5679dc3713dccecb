//! Resampling to a target size: nearest neighbour (`F.interpolate(mode="nearest")`) and
//! bilinear (`mode="bilinear"`, with or without `align_corners`), using PyTorch's
//! source-index rules. Each is a fixed linear map; its backward is its adjoint, recorded.
//!
//! ```
//! use nabla_core::Tensor;
//! let x = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 1, 1, 2])?;
//! assert_eq!(x.upsample_nearest2d([1, 4])?.to_vec::<f32>()?, vec![1.0, 1.0, 2.0, 2.0]);
//! assert_eq!(x.upsample_bilinear2d([1, 4], false)?.to_vec::<f32>()?, vec![1.0, 1.25, 1.75, 2.0]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::access::map_kernel;
use super::max_pool2d::check_4d;
use crate::dtype::dispatch;
use crate::kernels::pool::{bilinear, bilinear_adjoint, nearest, nearest_adjoint, Lerp};
use crate::{Element, Error, Result, Tensor};
use std::sync::Arc;

/// Source index of output `i` for nearest resampling, as PyTorch computes it (in f32).
fn nearest_source(i: usize, input: usize, output: usize) -> usize {
    if output == input {
        i
    } else if output == 2 * input {
        i / 2
    } else {
        let scale = input as f32 / output as f32;
        ((i as f32 * scale).floor() as usize).min(input - 1)
    }
}

/// Interpolation weights of each output along one axis, computed in the tensor's own
/// precision as PyTorch does (so f32 results round alike).
fn lerps<T: Element>(input: usize, output: usize, align_corners: bool) -> Vec<Lerp<T>> {
    let f = |v: usize| T::from_f64(v as f64);
    let scale = match (align_corners, output > 1) {
        (true, true) => f(input - 1) / f(output - 1),
        (true, false) => T::ZERO,
        (false, _) => f(input) / f(output),
    };
    let half = T::from_f64(0.5);
    (0..output)
        .map(|i| {
            let src = if align_corners {
                scale * f(i)
            } else {
                (scale * (f(i) + half) - half).max_nan(T::ZERO)
            };
            let i0 = (src.to_f64().floor() as usize).min(input - 1);
            let l1 = (src - f(i0)).max_nan(T::ZERO).min_nan(T::ONE);
            Lerp {
                i0,
                i1: if i0 + 1 < input { i0 + 1 } else { i0 },
                l0: T::ONE - l1,
                l1,
            }
        })
        .collect()
}

/// A resampling of `in_hw` planes to `out_hw`: nearest, or bilinear with `align_corners`.
struct Resample {
    bilinear: Option<bool>,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
}

/// Apply `m` to `x`, or its adjoint (from `out_hw` planes back to `in_hw`).
fn resample(x: &Tensor, m: Arc<Resample>, adjoint: bool) -> Result<Tensor> {
    let name = match (m.bilinear.is_some(), adjoint) {
        (false, false) => "upsample_nearest2d",
        (false, true) => "upsample_nearest2d_backward",
        (true, false) => "upsample_bilinear2d",
        (true, true) => "upsample_bilinear2d_backward",
    };
    let [n, c, _, _] = check_4d(name, x)?;
    let hw = if adjoint { m.in_hw } else { m.out_hw };
    fn go<T: Element>(m: &Resample, adjoint: bool, x: &[T], out: &mut [T]) {
        let ([ih, iw], [oh, ow]) = (m.in_hw, m.out_hw);
        match m.bilinear {
            None => {
                let rows: Vec<usize> = (0..oh).map(|i| nearest_source(i, ih, oh)).collect();
                let cols: Vec<usize> = (0..ow).map(|i| nearest_source(i, iw, ow)).collect();
                if adjoint {
                    nearest_adjoint(x, m.in_hw, &rows, &cols, out);
                } else {
                    nearest(x, m.in_hw, &rows, &cols, out);
                }
            }
            Some(ac) => {
                let (rows, cols) = (lerps::<T>(ih, oh, ac), lerps::<T>(iw, ow, ac));
                if adjoint {
                    bilinear_adjoint(x, m.in_hw, &rows, &cols, out);
                } else {
                    bilinear(x, m.in_hw, &rows, &cols, out);
                }
            }
        }
    }
    let out = dispatch!(x.dtype(), T => map_kernel::<T>(name, x, &[n, c, hw[0], hw[1]], |s, o| go(&m, adjoint, s, o)))?;
    Ok(out.record(name, &[x], move |g, _| {
        Ok(vec![Some(resample(g, m.clone(), !adjoint)?)])
    }))
}

/// Check input and target sizes, then resample.
fn upsample(op: &'static str, x: &Tensor, output: [usize; 2], bilinear: Option<bool>) -> Result<Tensor> {
    let [_, _, h, w] = check_4d(op, x)?;
    if output.contains(&0) || h == 0 || w == 0 {
        return Err(Error::invalid(
            op,
            format!(
                "output size {output:?} and input {:?} must have non-zero H and W",
                x.shape()
            ),
        ));
    }
    resample(
        x,
        Arc::new(Resample {
            bilinear,
            in_hw: [h, w],
            out_hw: output,
        }),
        false,
    )
}

impl Tensor {
    /// Nearest-neighbour resampling of `[N, C, H, W]` to `[N, C, output[0], output[1]]`:
    /// output `i` copies input `floor(i · H / H')`, as PyTorch's `mode="nearest"`.
    pub fn upsample_nearest2d(&self, output: [usize; 2]) -> Result<Tensor> {
        upsample("upsample_nearest2d", self, output, None)
    }

    /// Bilinear resampling of `[N, C, H, W]` to `[N, C, output[0], output[1]]`. With
    /// `align_corners` the corner pixels' centres line up (source `i·(H−1)/(H'−1)`);
    /// without, pixel areas do (source `(i + ½)·H/H' − ½`, clamped at 0).
    pub fn upsample_bilinear2d(&self, output: [usize; 2], align_corners: bool) -> Result<Tensor> {
        upsample("upsample_bilinear2d", self, output, Some(align_corners))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator};

    #[test]
    fn source_indices() {
        assert_eq!(
            (0..5).map(|i| nearest_source(i, 3, 5)).collect::<Vec<_>>(),
            vec![0, 0, 1, 1, 2]
        );
        assert_eq!((0..2).map(|i| nearest_source(i, 5, 2)).collect::<Vec<_>>(), vec![0, 2]);
        let l = lerps::<f64>(3, 5, true);
        assert_eq!((l[1].i0, l[1].i1, l[1].l1), (0, 1, 0.5));
        assert_eq!((l[4].i0, l[4].i1, l[4].l0), (2, 2, 1.0));
        // align_corners=False, 2 → 4: sources −0.25 (clamped to 0), 0.25, 0.75, 1.25
        let l = lerps::<f64>(2, 4, false);
        assert_eq!(
            l.iter().map(|e| (e.i0, e.l1)).collect::<Vec<_>>(),
            vec![(0, 0.0), (0, 0.25), (0, 0.75), (1, 0.25)]
        );
        assert_eq!(l[3].i1, 1);
    }

    #[test]
    fn hand_computed() {
        let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2]).unwrap();
        let y = x.upsample_bilinear2d([3, 3], true).unwrap();
        assert_eq!(
            y.to_vec::<f64>().unwrap(),
            vec![1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.0, 3.5, 4.0]
        );
        let y = x.upsample_nearest2d([3, 4]).unwrap();
        assert_eq!(
            y.to_vec::<f64>().unwrap(),
            vec![1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]
        );
        // downsampling with one output and align_corners takes the first pixel
        assert_eq!(x.upsample_bilinear2d([1, 1], true).unwrap().item().unwrap(), 1.0);
    }

    #[test]
    fn gradients_and_errors() {
        let x = Tensor::randn(&[2, 2, 3, 4], DType::F64, &mut Generator::new(4));
        for out in [[6, 8], [5, 3], [1, 7], [3, 4]] {
            gradcheck(|t| t[0].upsample_nearest2d(out), std::slice::from_ref(&x))
                .unwrap_or_else(|e| panic!("nearest {out:?}: {e}"));
            for ac in [false, true] {
                gradcheck(|t| t[0].upsample_bilinear2d(out, ac), std::slice::from_ref(&x))
                    .unwrap_or_else(|e| panic!("bilinear {out:?} {ac}: {e}"));
            }
        }
        let second = |t: &[Tensor]| {
            super::super::conv2d::recorded_grads(t, |t| t[0].upsample_bilinear2d([5, 7], false)?.square()?.sum_all())
        };
        gradcheck(|t| second(t).map(|g| g[0].clone()), std::slice::from_ref(&x)).unwrap();
        let e = x.upsample_bilinear2d([0, 3], true).unwrap_err().to_string();
        assert!(e.contains("upsample_bilinear2d") && e.contains("[0, 3]"), "{e}");
        let e = Tensor::zeros(&[2, 3], DType::F32)
            .upsample_nearest2d([4, 4])
            .unwrap_err()
            .to_string();
        assert!(e.contains("4-D"), "{e}");
    }
}
