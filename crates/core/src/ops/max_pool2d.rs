//! Max pooling (`F.max_pool2d`), optionally with the argmax of each window as a flat index
//! into its `(n, c)` plane (PyTorch's `return_indices`). The backward scatters the
//! gradient to those indices; its own backward gathers from them, so both are recorded ops.
//!
//! ```
//! use nabla_core::{Pool2dOptions, Tensor};
//! let x = Tensor::from_vec((0..16).map(|v| v as f32).collect(), &[1, 1, 4, 4])?;
//! let (y, idx) = x.max_pool2d_with_indices(Pool2dOptions::new([2, 2]))?;
//! assert_eq!(y.to_vec::<f32>()?, vec![5.0, 7.0, 13.0, 15.0]);
//! assert_eq!(idx, vec![5, 7, 13, 15]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::access::{map_kernel, with_data};
use crate::dtype::dispatch;
use crate::kernels::conv::out_size;
use crate::kernels::elementwise::map_vec;
use crate::kernels::pool::{
    filled, gather_into, max_pool, max_pool_tiled, max_pool_tiled_backward, pool_windows, scatter_into, Sweep, Tiles,
    Windows,
};
use crate::{Element, Error, Result, Tensor};
use std::sync::Arc;

/// Window, step and padding of a 2-D pooling, as (rows, columns) pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2dOptions {
    /// Window size.
    pub kernel: [usize; 2],
    /// Step between windows (PyTorch's default is the window size: see [`Pool2dOptions::new`]).
    pub stride: [usize; 2],
    /// Implicit padding on each side (at most half the window); never selected by max pooling.
    pub padding: [usize; 2],
    /// Round the output size up, keeping a last partial window that starts inside the input.
    pub ceil_mode: bool,
}

impl Default for Pool2dOptions {
    fn default() -> Self {
        Pool2dOptions {
            kernel: [1, 1],
            stride: [1, 1],
            padding: [0, 0],
            ceil_mode: false,
        }
    }
}

impl Pool2dOptions {
    /// Non-overlapping windows of `kernel` (stride = kernel, no padding), PyTorch's default.
    pub fn new(kernel: [usize; 2]) -> Self {
        Pool2dOptions {
            kernel,
            stride: kernel,
            ..Default::default()
        }
    }
}

/// A checked pooling geometry: input sizes, and the windows of the output rows and columns.
pub(super) struct PoolPlan {
    /// Input shape `[N, C, H, W]`.
    pub shape: [usize; 4],
    /// Clipped input rows of each output row.
    pub rows: Windows,
    /// Clipped input columns of each output column.
    pub cols: Windows,
    /// Window height and width counting padding (what `count_include_pad` divides by).
    pub padded: [Vec<usize>; 2],
    /// The columns as a regular sweep.
    pub col_sweep: Sweep,
}

impl PoolPlan {
    /// Output shape `[N, C, H', W']`.
    pub fn out_shape(&self) -> [usize; 4] {
        [self.shape[0], self.shape[1], self.rows.len(), self.cols.len()]
    }
}

/// Check a 4-D input, as pooling and resampling ops need.
pub(super) fn check_4d(op: &'static str, x: &Tensor) -> Result<[usize; 4]> {
    match *x.shape() {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(Error::invalid(
            op,
            format!("input must be 4-D [N, C, H, W], got shape {:?}", x.shape()),
        )),
    }
}

/// Validate `opts` against `x` and lay out the windows, with PyTorch's rules.
pub(super) fn pool_plan(op: &'static str, x: &Tensor, opts: &Pool2dOptions) -> Result<PoolPlan> {
    let shape = check_4d(op, x)?;
    let (k, s, p) = (opts.kernel, opts.stride, opts.padding);
    if k.contains(&0) || s.contains(&0) {
        return Err(Error::invalid(
            op,
            format!("kernel {k:?} and stride {s:?} must be positive"),
        ));
    }
    let mut axes = Vec::with_capacity(2);
    for d in 0..2 {
        if 2 * p[d] > k[d] {
            return Err(Error::invalid(
                op,
                format!("padding {p:?} must be at most half the kernel {k:?} (dim {})", 2 + d),
            ));
        }
        let size = shape[2 + d];
        let out = out_size(size, k[d], s[d], p[d], 1, opts.ceil_mode)
            .filter(|&o| o > 0 && size > 0)
            .ok_or_else(|| {
                Error::invalid(
                    op,
                    format!(
                        "kernel {k:?} is larger than the padded input {:?} in dim {} (padding {p:?})",
                        x.shape(),
                        2 + d
                    ),
                )
            })?;
        axes.push(pool_windows(size, out, k[d], s[d], p[d]));
    }
    let (cols, pw) = axes.pop().unwrap_or_default();
    let (rows, ph) = axes.pop().unwrap_or_default();
    let col_sweep = Sweep {
        out: cols.len(),
        kernel: k[1],
        stride: s[1],
        pad: p[1],
    };
    Ok(PoolPlan {
        shape,
        rows,
        cols,
        padded: [ph, pw],
        col_sweep,
    })
}

/// Flat per-plane indices, checked to fit the `u32` the kernels store.
pub(super) fn plane_fits_u32(op: &'static str, plane: [usize; 2]) -> Result<()> {
    if plane[0].saturating_mul(plane[1]) > u32::MAX as usize {
        return Err(Error::invalid(
            op,
            format!("plane {plane:?} has more elements than 32-bit indices can address"),
        ));
    }
    Ok(())
}

/// `out[n, c, q] = x[n, c, idx[n, c, q]]` with output planes `out_hw`; recorded, its
/// backward is [`scatter_planes`] (accumulating).
pub(super) fn gather_planes(x: &Tensor, idx: Arc<Vec<u32>>, out_hw: [usize; 2]) -> Result<Tensor> {
    const OP: &str = "max_pool2d_gather";
    let [n, c, h, w] = check_4d(OP, x)?;
    let shape = [n, c, out_hw[0], out_hw[1]];
    let plane = h * w;
    fn run<T: Element>(x: &Tensor, idx: &[u32], plane: usize, shape: &[usize]) -> Result<Tensor> {
        let len = shape.iter().product();
        // Every element is gathered: no zero-fill first.
        let out = with_data(OP, &[x], |s: &[&[T]]| filled(len, |o| gather_into(s[0], plane, idx, o)))?;
        Ok(Tensor::from_buffer(T::wrap(out), shape))
    }
    let out = dispatch!(x.dtype(), T => run::<T>(x, &idx, plane, &shape))?;
    Ok(out.record(OP, &[x], move |g, _| {
        Ok(vec![Some(scatter_planes(g, idx.clone(), [h, w], true)?)])
    }))
}

/// `out[n, c, idx[n, c, q]] += y[n, c, q]` (or `=` without `accumulate`, as max-unpooling)
/// into zero planes `out_hw`; recorded, its backward is [`gather_planes`]. An index outside
/// the plane is an error.
pub(super) fn scatter_planes(y: &Tensor, idx: Arc<Vec<u32>>, out_hw: [usize; 2], accumulate: bool) -> Result<Tensor> {
    let name = if accumulate {
        "max_pool2d_backward"
    } else {
        "max_unpool2d"
    };
    let [n, c, h, w] = check_4d(name, y)?;
    let shape = [n, c, out_hw[0], out_hw[1]];
    let plane = out_hw[0] * out_hw[1];
    fn run<T: Element>(
        name: &'static str,
        y: &Tensor,
        idx: &[u32],
        plane: usize,
        shape: &[usize],
        accumulate: bool,
    ) -> Result<Tensor> {
        let len = shape.iter().product();
        let mut fits = true;
        // The kernel zeroes each plane just before scattering into it: one pass, no fill first.
        let out = with_data(name, &[y], |s: &[&[T]]| {
            filled(len, |o| fits = scatter_into(s[0], idx, plane, o, accumulate))
        })?;
        if !fits {
            return Err(Error::invalid(
                name,
                format!("an index is outside the output plane of {plane} elements"),
            ));
        }
        Ok(Tensor::from_buffer(T::wrap(out), shape))
    }
    let out = dispatch!(y.dtype(), T => run::<T>(name, y, &idx, plane, &shape, accumulate))?;
    Ok(out.record(name, &[y], move |g, _| {
        Ok(vec![Some(gather_planes(g, idx.clone(), [h, w])?)])
    }))
}

/// The windows of `plan` as tiles when they tile the plane: kernel = stride, no padding,
/// and no partial window (which `ceil_mode` may add).
fn tiles_of(plan: &PoolPlan, opts: &Pool2dOptions) -> Option<Tiles> {
    let [_, _, h, w] = plan.shape;
    let [oh, ow] = [plan.rows.len(), plan.cols.len()];
    let fits = oh * opts.kernel[0] <= h && ow * opts.kernel[1] <= w;
    (opts.stride == opts.kernel && opts.padding == [0, 0] && fits).then_some(Tiles {
        hw: [h, w],
        k: opts.kernel,
        out: [oh, ow],
    })
}

/// Tiled max pooling: the output and, when `keep`, the argmax indices, each written once.
fn tiled_forward(x: &Tensor, t: Tiles, out_shape: &[usize], keep: bool) -> Result<(Tensor, Vec<u32>)> {
    fn run<T: Element>(x: &Tensor, t: Tiles, shape: &[usize], keep: bool) -> Result<(Tensor, Vec<u32>)> {
        let n: usize = shape.iter().product();
        let mut y = Vec::new();
        let idx = with_data("max_pool2d", &[x], |s: &[&[T]]| {
            filled(if keep { n } else { 0 }, |i| {
                y = filled(n, |o| max_pool_tiled(s[0], &t, o, i))
            })
        })?;
        Ok((Tensor::from_buffer(T::wrap(y), shape), idx))
    }
    dispatch!(x.dtype(), T => run::<T>(x, t, out_shape, keep))
}

/// Gradient of tiled max pooling, `[N, C, H, W]` from `gy` (`[N, C, H', W']`): each input
/// gets its window's gradient where it was the maximum, else 0. Recorded; its backward is
/// [`gather_planes`].
fn tiled_backward(gy: &Tensor, idx: Arc<Vec<u32>>, t: Tiles) -> Result<Tensor> {
    const OP: &str = "max_pool2d_backward";
    fn run<T: Element>(gy: &Tensor, idx: &[u32], t: Tiles, shape: &[usize]) -> Result<Tensor> {
        let n = shape.iter().product();
        let gx = with_data(OP, &[gy], |s: &[&[T]]| {
            filled(n, |o| max_pool_tiled_backward(s[0], idx, &t, o))
        })?;
        Ok(Tensor::from_buffer(T::wrap(gx), shape))
    }
    let [n, c, oh, ow] = check_4d(OP, gy)?;
    if [oh, ow] != t.out || n * c * oh * ow != idx.len() {
        return Err(Error::invalid(
            OP,
            format!("gradient {:?} does not match the pooled shape {:?}", gy.shape(), t.out),
        ));
    }
    let shape = [n, c, t.hw[0], t.hw[1]];
    let gx = dispatch!(gy.dtype(), T => run::<T>(gy, &idx, t, &shape)?);
    Ok(gx.record(OP, &[gy], move |g, _| {
        Ok(vec![Some(gather_planes(g, idx.clone(), t.out)?)])
    }))
}

/// Max pooling that keeps the argmax indices when asked or when a gradient needs them.
fn max_pool2d_impl(x: &Tensor, opts: &Pool2dOptions, want_indices: bool) -> Result<(Tensor, Option<Arc<Vec<u32>>>)> {
    const OP: &str = "max_pool2d";
    let plan = pool_plan(OP, x, opts)?;
    let [_, _, h, w] = plan.shape;
    let out_shape = plan.out_shape();
    let keep = want_indices || (x.requires_grad() && crate::autograd::is_grad_enabled());
    if keep {
        plane_fits_u32(OP, [h, w])?;
    }
    if let Some(t) = tiles_of(&plan, opts) {
        let (y, idx) = tiled_forward(x, t, &out_shape, keep)?;
        if !keep {
            return Ok((y, None));
        }
        let idx = Arc::new(idx);
        let saved = idx.clone();
        let y = y.record(OP, &[x], move |g, _| {
            Ok(vec![Some(tiled_backward(g, saved.clone(), t)?)])
        });
        return Ok((y, Some(idx)));
    }
    if !keep {
        let (r, c) = (&plan.rows, &plan.col_sweep);
        let y =
            dispatch!(x.dtype(), T => map_kernel::<T>(OP, x, &out_shape, |s, o| max_pool(s, [h, w], r, c, o, None)))?;
        return Ok((y, None));
    }
    let mut idx = vec![0u32; out_shape.iter().product()];
    let (r, c) = (&plan.rows, &plan.col_sweep);
    let y = dispatch!(x.dtype(), T => map_kernel::<T>(OP, x, &out_shape, |s, o| max_pool(s, [h, w], r, c, o, Some(&mut idx))))?;
    let idx = Arc::new(idx);
    let saved = idx.clone();
    let y = y.record(OP, &[x], move |g, _| {
        Ok(vec![Some(scatter_planes(g, saved.clone(), [h, w], true)?)])
    });
    Ok((y, Some(idx)))
}

impl Tensor {
    /// Max over `opts.kernel` windows of each `[H, W]` plane of `[N, C, H, W]`, as
    /// `F.max_pool2d`. NaN in a window wins. The gradient goes to each window's maximum.
    pub fn max_pool2d(&self, opts: Pool2dOptions) -> Result<Tensor> {
        Ok(max_pool2d_impl(self, &opts, false)?.0)
    }

    /// [`Tensor::max_pool2d`] and the flat index (`h·W + w`) of each maximum in its
    /// `(n, c)` plane, as `F.max_pool2d(return_indices=True)`; for [`Tensor::max_unpool2d`].
    pub fn max_pool2d_with_indices(&self, opts: Pool2dOptions) -> Result<(Tensor, Vec<usize>)> {
        let (y, idx) = max_pool2d_impl(self, &opts, true)?;
        // Widened on all threads: a serial loop here cost a quarter of the pooling itself.
        let idx = idx.map(|i| map_vec(&i, |v| v as usize)).unwrap_or_default();
        Ok((y, idx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::gradcheck;
    use crate::DType;
    use crate::Generator;

    fn opts(kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2], ceil_mode: bool) -> Pool2dOptions {
        Pool2dOptions {
            kernel,
            stride,
            padding,
            ceil_mode,
        }
    }

    #[test]
    fn hand_computed_with_padding_and_ceil_mode() {
        // 1..25 on 5×5, kernel 3, stride 2, padding 1, ceil: windows start at −1, 1, 3 and
        // (ceil) 5 would start in the right padding, so 3 outputs per axis.
        let x = Tensor::from_vec((1..=25).map(|v| v as f64).collect(), &[1, 1, 5, 5]).unwrap();
        let (y, idx) = x.max_pool2d_with_indices(opts([3, 3], [2, 2], [1, 1], true)).unwrap();
        assert_eq!(y.shape(), &[1, 1, 3, 3]);
        assert_eq!(
            y.to_vec::<f64>().unwrap(),
            vec![7.0, 9.0, 10.0, 17.0, 19.0, 20.0, 22.0, 24.0, 25.0]
        );
        assert_eq!(idx, vec![6, 8, 9, 16, 18, 19, 21, 23, 24]);
        // ceil mode keeps a partial last window: 5 → 3 with kernel 2
        let y = x.max_pool2d(opts([2, 2], [2, 2], [0, 0], true)).unwrap();
        assert_eq!(
            y.to_vec::<f64>().unwrap(),
            vec![7.0, 9.0, 10.0, 17.0, 19.0, 20.0, 22.0, 24.0, 25.0]
        );
        assert_eq!(x.max_pool2d(Pool2dOptions::new([2, 2])).unwrap().shape(), &[1, 1, 2, 2]);
    }

    #[test]
    fn nan_wins_and_gradient_goes_to_it() {
        let x = Tensor::from_vec(vec![1.0f32, f32::NAN, 3.0, 2.0], &[1, 1, 2, 2])
            .unwrap()
            .set_requires_grad(true);
        let (y, idx) = x.max_pool2d_with_indices(Pool2dOptions::new([2, 2])).unwrap();
        assert!(y.item().unwrap().is_nan());
        assert_eq!(idx, vec![1]);
        let g = y.backward_with_grad(&Tensor::ones_like(&y)).unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec::<f32>().unwrap(), vec![0.0, 1.0, 0.0, 0.0]);
        let inf = Tensor::full(&[1, 1, 2, 2], f64::NEG_INFINITY, DType::F64);
        assert_eq!(
            inf.max_pool2d_with_indices(Pool2dOptions::new([2, 2])).unwrap().1,
            vec![0]
        );
    }

    #[test]
    fn gradients() {
        // Distinct values (a shuffled ramp) so no window has a tie and differences are smooth.
        let mut g = Generator::new(3);
        for (shape, o) in [
            ([2, 2, 6, 6], opts([2, 2], [2, 2], [0, 0], false)),
            ([1, 2, 7, 6], opts([3, 3], [2, 2], [1, 1], true)),
            ([1, 1, 5, 7], opts([3, 2], [1, 2], [1, 0], false)),
            ([1, 1, 7, 7], opts([2, 3], [3, 2], [1, 1], true)),
        ] {
            let n: usize = shape.iter().product();
            let mut v: Vec<f64> = (0..n).map(|i| i as f64 * 0.1).collect();
            g.shuffle(&mut v);
            let x = Tensor::from_vec(v, &shape).unwrap();
            gradcheck(|t| t[0].max_pool2d(o), std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("{o:?}: {e}"));
            // second order: the backward (a scatter) differentiated again (a gather)
            gradcheck(
                |t| {
                    super::super::conv2d::recorded_grads(t, |t| t[0].max_pool2d(o)?.square()?.sum_all())
                        .map(|g| g[0].clone())
                },
                &[x],
            )
            .unwrap_or_else(|e| panic!("{o:?}: {e}"));
        }
    }

    #[test]
    fn overlapping_windows_sum_gradients() {
        // The centre of a 3×3 plane is the max of all four 2×2 stride-1 windows.
        let x = Tensor::from_vec(vec![0.0f64, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0], &[1, 1, 3, 3])
            .unwrap()
            .set_requires_grad(true);
        let y = x.max_pool2d(opts([2, 2], [1, 1], [0, 0], false)).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec::<f64>().unwrap()[4], 4.0);
    }

    #[test]
    fn empty_batch() {
        let x = Tensor::zeros(&[0, 3, 4, 4], DType::F32).set_requires_grad(true);
        let y = x.max_pool2d(Pool2dOptions::new([2, 2])).unwrap();
        assert_eq!(y.shape(), &[0, 3, 2, 2]);
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().shape(), &[0, 3, 4, 4]);
        assert_eq!(
            x.avg_pool2d(Pool2dOptions::new([2, 2]), true).unwrap().shape(),
            &[0, 3, 2, 2]
        );
        assert_eq!(x.upsample_bilinear2d([3, 5], false).unwrap().shape(), &[0, 3, 3, 5]);
    }

    #[test]
    fn errors() {
        let x = Tensor::zeros(&[1, 1, 4, 4], DType::F32);
        let err = |o: Pool2dOptions| x.max_pool2d(o).unwrap_err().to_string();
        assert!(err(opts([2, 2], [0, 2], [0, 0], false)).contains("stride [0, 2]"));
        let e = err(opts([2, 2], [2, 2], [2, 0], false));
        assert!(
            e.contains("max_pool2d") && e.contains("at most half") && e.contains("dim 2"),
            "{e}"
        );
        let e = err(opts([3, 6], [1, 1], [0, 0], false));
        assert!(e.contains("larger than the padded input") && e.contains("dim 3"), "{e}");
        let e = Tensor::zeros(&[4, 4], DType::F32)
            .max_pool2d(Pool2dOptions::new([2, 2]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("4-D") && e.contains("[4, 4]"), "{e}");
    }
}

/// Timings at LeNet-5's shapes: `cargo test --release -p nabla-core pool_bench -- --ignored --nocapture`.
#[cfg(test)]
mod bench {
    use crate::{BackwardOptions, DType, Generator, Pool2dOptions, Tensor};
    use std::time::Instant;

    /// Best of `reps` runs of `f`, in microseconds.
    fn best_us(reps: usize, mut f: impl FnMut()) -> f64 {
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e6
            })
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    #[ignore]
    fn pool_bench() {
        let reps = std::env::var("BENCH_REPS").map_or(200, |v| v.parse().unwrap());
        for shape in [[64, 6, 28, 28], [64, 16, 10, 10], [1, 1, 2, 2]] {
            let x = Tensor::randn(&shape, DType::F32, &mut Generator::new(1)).set_requires_grad(true);
            let o = Pool2dOptions::new([2, 2]);
            let y = x.max_pool2d(o).unwrap();
            let gy = Tensor::randn(y.shape(), DType::F32, &mut Generator::new(2));
            let fwd = best_us(reps, || drop(x.max_pool2d(o).unwrap()));
            let eval = best_us(reps, || drop(x.detach().max_pool2d(o).unwrap()));
            let keep = BackwardOptions {
                retain_graph: true,
                ..Default::default()
            };
            let bwd = best_us(reps, || drop(y.backward_with(&gy, keep).unwrap()));
            println!(
                "max_pool2d {shape:?}: forward+indices {fwd:.1} us, forward only {eval:.1} us, backward {bwd:.1} us"
            );
        }
    }
}
