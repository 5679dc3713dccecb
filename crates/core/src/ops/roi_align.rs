//! RoI align (`torchvision.ops.roi_align`): each region of interest is cut into
//! `output_size` bins and every bin is the mean of bilinear samples of the feature map.
//!
//! The op is linear in the map, so its backward is its adjoint (the gradient spread back
//! with the same bilinear weights), recorded with the forward as its own backward: the
//! pair is differentiable any number of times. Rois are constants, as in torchvision.
//! This file also holds the roi checks [`Tensor::roi_pool`] shares.
//!
//! ```
//! use nabla_core::Tensor;
//! let x = Tensor::from_vec((0..16).map(|v| v as f32).collect(), &[1, 1, 4, 4])?;
//! let rois = Tensor::from_vec(vec![0.0f32, 0.0, 0.0, 4.0, 4.0], &[1, 5])?;
//! let y = x.roi_align(&rois, [2, 2], 1.0, 2, true)?;
//! assert_eq!(y.shape(), &[1, 1, 2, 2]);
//! assert_eq!(y.to_vec::<f32>()?, vec![2.5, 4.5, 10.5, 12.5]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::access::{same_dtype, with_data};
use super::max_pool2d::{check_4d, plane_fits_u32};
use crate::dtype::dispatch;
use crate::kernels::roi::{
    align_tables, roi_align_adjoint, roi_align_forward, rois_by_image, AlignOptions, Roi, RoiGeometry,
};
use crate::{Element, Error, Result, Tensor};
use std::sync::Arc;

/// Checked rois with the sizes of the map they index.
pub(super) struct RoiPlan {
    /// Map and output sizes.
    pub geom: RoiGeometry,
    /// The rois, in order.
    pub rois: Vec<Roi>,
    /// Roi indices per image.
    pub by_image: Vec<Vec<usize>>,
}

impl RoiPlan {
    /// `[K, C, out_h, out_w]`.
    pub fn out_shape(&self) -> [usize; 4] {
        [self.rois.len(), self.geom.channels, self.geom.out[0], self.geom.out[1]]
    }

    /// `[N, C, H, W]`.
    pub fn map_shape(&self) -> [usize; 4] {
        let g = &self.geom;
        [g.batch, g.channels, g.hw[0], g.hw[1]]
    }
}

/// Check `x`, `rois` and the settings the RoI ops share, naming `op` and the offending roi.
pub(super) fn roi_plan(
    op: &'static str,
    x: &Tensor,
    rois: &Tensor,
    output_size: [usize; 2],
    spatial_scale: f64,
) -> Result<RoiPlan> {
    let [n, c, h, w] = check_4d(op, x)?;
    same_dtype(op, x, rois)?;
    let k = match *rois.shape() {
        [k, 5] => k,
        _ => {
            return Err(Error::invalid(
                op,
                format!(
                    "rois must be [K, 5] rows (batch_index, x1, y1, x2, y2), got shape {:?}",
                    rois.shape()
                ),
            ))
        }
    };
    if output_size.contains(&0) {
        return Err(Error::invalid(
            op,
            format!("output_size {output_size:?} must be positive"),
        ));
    }
    if !(spatial_scale.is_finite() && spatial_scale > 0.0) {
        return Err(Error::invalid(
            op,
            format!("spatial_scale {spatial_scale} must be positive and finite"),
        ));
    }
    plane_fits_u32(op, [h, w])?;
    let v = rois.to_vec_f64();
    let mut out = Vec::with_capacity(k);
    for (i, r) in v.chunks_exact(5).enumerate() {
        let bad = |why: String| {
            Error::invalid(
                op,
                format!(
                    "roi {i} (batch_index, x1, y1, x2, y2) = ({}, {}, {}, {}, {}): {why}",
                    r[0], r[1], r[2], r[3], r[4]
                ),
            )
        };
        if r.iter().any(|v| !v.is_finite()) {
            return Err(bad("its values must be finite (no NaN or infinity)".into()));
        }
        if r[0] < 0.0 || r[0].fract() != 0.0 || r[0] >= n as f64 {
            return Err(bad(format!(
                "batch_index must be an integer in 0..{n} (the input's batch)"
            )));
        }
        if r[3] < r[1] || r[4] < r[2] {
            return Err(bad("x2 < x1 or y2 < y1".into()));
        }
        out.push(Roi {
            batch: r[0] as usize,
            corners: [r[1], r[2], r[3], r[4]],
        });
    }
    Ok(RoiPlan {
        geom: RoiGeometry {
            batch: n,
            channels: c,
            hw: [h, w],
            out: output_size,
            spatial_scale,
        },
        by_image: rois_by_image(&out, n),
        rois: out,
    })
}

/// RoI align of `x` by `plan`; recorded, its backward is [`align_adjoint`].
fn align_apply(x: &Tensor, plan: Arc<RoiPlan>, o: AlignOptions) -> Result<Tensor> {
    const OP: &str = "roi_align";
    fn run<T: Element>(x: &Tensor, p: &RoiPlan, o: AlignOptions) -> Result<Tensor> {
        let shape = p.out_shape();
        let mut out = vec![T::ZERO; shape.iter().product()];
        let tables = align_tables::<T>(&p.rois, &p.geom, o);
        with_data(OP, &[x], |s: &[&[T]]| {
            roi_align_forward(s[0], &p.rois, &tables, &p.geom, &mut out)
        })?;
        Ok(Tensor::from_buffer(T::wrap(out), &shape))
    }
    if x.shape() != plan.map_shape() {
        return Err(Error::shapes(OP, x.shape(), &plan.map_shape(), "map vs the rois' map"));
    }
    let y = dispatch!(x.dtype(), T => run::<T>(x, &plan, o)?);
    Ok(y.record(OP, &[x], move |g, _| Ok(vec![Some(align_adjoint(g, plan.clone(), o)?)])))
}

/// The gradient of RoI align with respect to its map, from `gy` (`[K, C, out_h, out_w]`);
/// recorded, its backward is [`align_apply`].
fn align_adjoint(gy: &Tensor, plan: Arc<RoiPlan>, o: AlignOptions) -> Result<Tensor> {
    const OP: &str = "roi_align_backward";
    fn run<T: Element>(gy: &Tensor, p: &RoiPlan, o: AlignOptions) -> Result<Tensor> {
        let shape = p.map_shape();
        let mut gx = vec![T::ZERO; shape.iter().product()];
        let tables = align_tables::<T>(&p.rois, &p.geom, o);
        with_data(OP, &[gy], |s: &[&[T]]| {
            roi_align_adjoint(s[0], &p.by_image, &tables, &p.geom, &mut gx)
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
    let gx = dispatch!(gy.dtype(), T => run::<T>(gy, &plan, o)?);
    Ok(gx.record(OP, &[gy], move |g, _| Ok(vec![Some(align_apply(g, plan.clone(), o)?)])))
}

impl Tensor {
    /// `torchvision.ops.roi_align`: `self` `[N, C, H, W]`; `rois` `[K, 5]` rows
    /// `(batch_index, x1, y1, x2, y2)` in image coordinates, same dtype as `self`; output
    /// `[K, C, output_size[0], output_size[1]]`. `sampling_ratio ≤ 0` means adaptive
    /// (`ceil(roi_size / output_size)` samples per bin side), as torchvision.
    pub fn roi_align(
        &self,
        rois: &Tensor,
        output_size: [usize; 2],
        spatial_scale: f64,
        sampling_ratio: i64,
        aligned: bool,
    ) -> Result<Tensor> {
        let plan = roi_plan("roi_align", self, rois, output_size, spatial_scale)?;
        let o = AlignOptions {
            sampling_ratio,
            aligned,
        };
        align_apply(self, Arc::new(plan), o)
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv2d::recorded_grads;
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator, Tensor};

    fn rois() -> Tensor {
        // Inside, past the edges, smaller than a bin, zero-size, on the second image.
        let v = vec![
            0.0, 1.0, 0.5, 6.0, 4.0, //
            1.0, -2.0, -1.5, 3.0, 9.0, //
            0.0, 2.2, 2.4, 2.9, 2.6, //
            1.0, 3.0, 3.0, 3.0, 3.0, //
            1.0, 0.0, 0.0, 7.0, 5.0,
        ];
        Tensor::from_vec(v, &[5, 5]).unwrap()
    }

    #[test]
    fn gradients_of_first_and_second_order() {
        let x = Tensor::randn(&[2, 2, 5, 7], DType::F64, &mut Generator::new(3));
        let r = rois();
        for (sr, aligned, scale) in [(2, true, 1.0), (0, false, 0.5), (-1, true, 0.75)] {
            gradcheck(
                |t| t[0].roi_align(&r, [2, 3], scale, sr, aligned),
                std::slice::from_ref(&x),
            )
            .unwrap();
            gradcheck(
                |t| {
                    recorded_grads(t, |t| {
                        t[0].roi_align(&r, [2, 3], scale, sr, aligned)?.square()?.sum_all()
                    })
                    .map(|g| g[0].clone())
                },
                std::slice::from_ref(&x),
            )
            .unwrap();
        }
    }

    #[test]
    fn f32_matches_f64_and_empty_rois_give_empty_output() {
        let x = Tensor::randn(&[2, 3, 6, 5], DType::F64, &mut Generator::new(4));
        let r = rois();
        let y64 = x.roi_align(&r, [3, 2], 0.5, 0, false).unwrap().to_vec_f64();
        let x32 = Tensor::from_vec(x.to_vec_f32(), x.shape()).unwrap();
        let r32 = Tensor::from_vec(r.to_vec_f32(), r.shape()).unwrap();
        let y32 = x32.roi_align(&r32, [3, 2], 0.5, 0, false).unwrap().to_vec_f64();
        assert!(y64.iter().zip(&y32).all(|(a, b)| (a - b).abs() < 1e-5));
        let none = Tensor::zeros(&[0, 5], DType::F64);
        let e = x.roi_align(&none, [3, 2], 1.0, 2, true).unwrap();
        assert_eq!(e.shape(), &[0, 3, 3, 2]);
    }

    #[test]
    fn bad_input_names_the_op_and_the_roi() {
        let x = Tensor::zeros(&[2, 3, 6, 5], DType::F32);
        let roi = |v: [f32; 5]| Tensor::from_vec(v.to_vec(), &[1, 5]).unwrap();
        let ok = roi([1.0, 0.0, 0.0, 2.0, 2.0]);
        type Run = fn(&Tensor, &Tensor, [usize; 2], f64) -> crate::Result<Tensor>;
        let ops: [(&str, Run); 2] = [
            ("roi_align", |x, r, o, s| x.roi_align(r, o, s, 2, true)),
            ("roi_pool", |x, r, o, s| x.roi_pool(r, o, s)),
        ];
        for (op, run) in ops {
            let err = |x: &Tensor, r: &Tensor, o: [usize; 2], s: f64, want: &str| {
                let e = run(x, r, o, s).unwrap_err().to_string();
                assert!(e.starts_with(op) && e.contains(want), "{op}: {e}");
            };
            let two = Tensor::from_vec(vec![0.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 4.0, 1.0, 2.0, 3.0], &[2, 5]).unwrap();
            err(
                &x,
                &two,
                [2, 2],
                1.0,
                "roi 1 (batch_index, x1, y1, x2, y2) = (0, 4, 1, 2, 3): x2 < x1",
            );
            err(
                &x,
                &roi([0.0, 0.0, 3.0, 1.0, 2.0]),
                [2, 2],
                1.0,
                "roi 0 (batch_index, x1, y1, x2, y2) = (0, 0, 3, 1, 2): x2 < x1 or y2 < y1",
            );
            err(
                &x,
                &roi([0.0, f32::NAN, 0.0, 1.0, 1.0]),
                [2, 2],
                1.0,
                "(0, NaN, 0, 1, 1): its values must be finite",
            );
            err(
                &x,
                &roi([2.0, 0.0, 0.0, 1.0, 1.0]),
                [2, 2],
                1.0,
                "(2, 0, 0, 1, 1): batch_index must be an integer in 0..2",
            );
            err(
                &x,
                &roi([0.5, 0.0, 0.0, 1.0, 1.0]),
                [2, 2],
                1.0,
                "batch_index must be an integer",
            );
            err(
                &x,
                &roi([-1.0, 0.0, 0.0, 1.0, 1.0]),
                [2, 2],
                1.0,
                "batch_index must be an integer",
            );
            err(&x, &ok, [2, 2], 0.0, "spatial_scale 0 must be positive");
            err(&x, &ok, [2, 2], -0.5, "spatial_scale -0.5 must be positive");
            err(
                &x,
                &ok,
                [2, 2],
                f64::NAN,
                "spatial_scale NaN must be positive and finite",
            );
            err(&x, &ok, [2, 2], f64::INFINITY, "must be positive and finite");
            err(&x, &ok, [0, 2], 1.0, "output_size [0, 2] must be positive");
            err(
                &x,
                &Tensor::zeros(&[2, 4], DType::F32),
                [2, 2],
                1.0,
                "rois must be [K, 5]",
            );
            err(&x, &Tensor::zeros(&[5], DType::F32), [2, 2], 1.0, "got shape [5]");
            err(
                &Tensor::zeros(&[3, 6, 5], DType::F32),
                &ok,
                [2, 2],
                1.0,
                "input must be 4-D",
            );
            err(&x, &Tensor::zeros(&[1, 5], DType::F64), [2, 2], 1.0, "dtype mismatch");
        }
    }
}
