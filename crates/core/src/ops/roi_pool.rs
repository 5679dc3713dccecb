//! RoI max pooling (`torchvision.ops.roi_pool`, Fast R-CNN's): each region of interest,
//! its corners rounded to map pixels, is cut into `output_size` bins with `floor`/`ceil`
//! edges and every bin keeps its maximum (0 for a bin that falls outside the map).
//!
//! The backward scatters the gradient to each bin's argmax; its own backward gathers from
//! the same positions, so both are recorded ops and gradients of gradients work.
//!
//! ```
//! use nabla_core::Tensor;
//! let x = Tensor::from_vec((0..16).map(|v| v as f32).collect(), &[1, 1, 4, 4])?;
//! let rois = Tensor::from_vec(vec![0.0f32, 0.0, 0.0, 3.0, 3.0], &[1, 5])?;
//! let y = x.roi_pool(&rois, [2, 2], 1.0)?;
//! assert_eq!(y.to_vec::<f32>()?, vec![5.0, 7.0, 13.0, 15.0]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::access::with_data;
use super::roi_align::{roi_plan, RoiPlan};
use crate::dtype::dispatch;
use crate::kernels::roi::{roi_pool_forward, roi_pool_gather, roi_pool_scatter};
use crate::{Element, Error, Result, Tensor};
use std::sync::Arc;

/// `out[k, c, bin] = src[batch_k, c, arg[k, c, bin]]` (0 where the bin has no argmax):
/// the gradient of RoI pooling's gradient. Recorded, its backward is [`pool_scatter`].
fn pool_gather(src: &Tensor, plan: Arc<RoiPlan>, arg: Arc<Vec<i32>>) -> Result<Tensor> {
    const OP: &str = "roi_pool_gather";
    fn run<T: Element>(src: &Tensor, p: &RoiPlan, arg: &[i32]) -> Result<Tensor> {
        let shape = p.out_shape();
        let mut out = vec![T::ZERO; shape.iter().product()];
        with_data(OP, &[src], |s: &[&[T]]| {
            roi_pool_gather(s[0], &p.rois, arg, &p.geom, &mut out)
        })?;
        Ok(Tensor::from_buffer(T::wrap(out), &shape))
    }
    if src.shape() != plan.map_shape() {
        return Err(Error::shapes(
            OP,
            src.shape(),
            &plan.map_shape(),
            "map vs the rois' map",
        ));
    }
    let y = dispatch!(src.dtype(), T => run::<T>(src, &plan, &arg)?);
    Ok(y.record(OP, &[src], move |g, _| {
        Ok(vec![Some(pool_scatter(g, plan.clone(), arg.clone())?)])
    }))
}

/// The gradient of RoI pooling with respect to its map, from `gy` (`[K, C, out_h, out_w]`):
/// each bin's value added at its argmax. Recorded, its backward is [`pool_gather`].
fn pool_scatter(gy: &Tensor, plan: Arc<RoiPlan>, arg: Arc<Vec<i32>>) -> Result<Tensor> {
    const OP: &str = "roi_pool_backward";
    fn run<T: Element>(gy: &Tensor, p: &RoiPlan, arg: &[i32]) -> Result<Tensor> {
        let shape = p.map_shape();
        let mut gx = vec![T::ZERO; shape.iter().product()];
        with_data(OP, &[gy], |s: &[&[T]]| {
            roi_pool_scatter(s[0], &p.by_image, arg, &p.geom, &mut gx)
        })?;
        Ok(Tensor::from_buffer(T::wrap(gx), &shape))
    }
    if gy.shape() != plan.out_shape() {
        return Err(Error::shapes(
            OP,
            gy.shape(),
            &plan.out_shape(),
            "gradient vs the output",
        ));
    }
    let gx = dispatch!(gy.dtype(), T => run::<T>(gy, &plan, &arg)?);
    Ok(gx.record(OP, &[gy], move |g, _| {
        Ok(vec![Some(pool_gather(g, plan.clone(), arg.clone())?)])
    }))
}

impl Tensor {
    /// `torchvision.ops.roi_pool` (max over Fast R-CNN's quantized bins): `self`
    /// `[N, C, H, W]`; `rois` `[K, 5]` rows `(batch_index, x1, y1, x2, y2)` in image
    /// coordinates, same dtype as `self`; output `[K, C, output_size[0], output_size[1]]`.
    pub fn roi_pool(&self, rois: &Tensor, output_size: [usize; 2], spatial_scale: f64) -> Result<Tensor> {
        const OP: &str = "roi_pool";
        let plan = roi_plan(OP, self, rois, output_size, spatial_scale)?;
        fn run<T: Element>(x: &Tensor, p: &RoiPlan) -> Result<(Tensor, Vec<i32>)> {
            let shape = p.out_shape();
            let n = shape.iter().product();
            let (mut out, mut arg) = (vec![T::ZERO; n], vec![0i32; n]);
            with_data(OP, &[x], |s: &[&[T]]| {
                roi_pool_forward(s[0], &p.rois, &p.geom, &mut out, &mut arg)
            })?;
            Ok((Tensor::from_buffer(T::wrap(out), &shape), arg))
        }
        let (y, arg) = dispatch!(self.dtype(), T => run::<T>(self, &plan)?);
        let (plan, arg) = (Arc::new(plan), Arc::new(arg));
        Ok(y.record(OP, &[self], move |g, _| {
            Ok(vec![Some(pool_scatter(g, plan.clone(), arg.clone())?)])
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv2d::recorded_grads;
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator, Tensor};

    #[test]
    fn gradients_of_first_and_second_order() {
        // Distinct values a step apart so finite differences never change an argmax.
        let mut v: Vec<f64> = (0..2 * 2 * 5 * 6).map(|i| ((i * 37) % 120) as f64 * 0.1).collect();
        v[7] = -1.0;
        let x = Tensor::from_vec(v, &[2, 2, 5, 6]).unwrap();
        let r = Tensor::from_vec(
            vec![
                0.0, 1.0, 0.5, 5.0, 4.0, //
                1.0, -2.0, -1.0, 3.0, 9.0, //
                0.0, 2.2, 2.4, 2.9, 2.6, //
                1.0, 9.0, 9.0, 12.0, 12.0, //
                1.0, 0.0, 0.0, 11.0, 9.0,
            ],
            &[5, 5],
        )
        .unwrap();
        for scale in [1.0, 0.5] {
            gradcheck(|t| t[0].roi_pool(&r, [2, 3], scale), std::slice::from_ref(&x)).unwrap();
            gradcheck(
                |t| recorded_grads(t, |t| t[0].roi_pool(&r, [2, 3], scale)?.square()?.sum_all()).map(|g| g[0].clone()),
                std::slice::from_ref(&x),
            )
            .unwrap();
        }
        // The roi wholly outside the map pools empty bins: zeros.
        let y = x.roi_pool(&r, [2, 3], 1.0).unwrap().to_vec_f64();
        assert!(y[3 * 2 * 6..4 * 2 * 6].iter().all(|&v| v == 0.0));
        let none = Tensor::zeros(&[0, 5], DType::F64);
        let e = Tensor::randn(&[1, 2, 3, 3], DType::F64, &mut Generator::new(1));
        assert_eq!(e.roi_pool(&none, [2, 2], 1.0).unwrap().shape(), &[0, 2, 2, 2]);
    }
}
