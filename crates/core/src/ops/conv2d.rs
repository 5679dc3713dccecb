//! 2-D convolution (`F.conv2d`), with backward rules that are convolutions again:
//! the input gradient is a transposed convolution of the upstream gradient with the same
//! weights, the weight gradient is [`conv2d_weight_grad`] (a primitive whose own backward
//! is a convolution and a transposed convolution), so every derivative is differentiable.
//!
//! ```
//! use nabla_core::{Conv2dOptions, DType, Tensor};
//! let x = Tensor::ones(&[1, 2, 5, 5], DType::F32);
//! let w = Tensor::ones(&[4, 2, 3, 3], DType::F32);
//! let y = x.conv2d(&w, None, Conv2dOptions { padding: [1, 1], ..Default::default() })?;
//! assert_eq!(y.shape(), &[1, 4, 5, 5]);
//! assert_eq!(y.to_vec::<f32>()?[6], 18.0); // an interior pixel sees 2 channels × 9 ones
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::access::{same_dtype, with_data};
use super::conv_act::Gate;
use crate::dtype::dispatch;
use crate::kernels::conv::{activate, bias_grad as bias_grad_kernel, conv2d_backward_weight, conv2d_forward, ConvGeom};
use crate::{Activation, Element, Error, Result, Tensor};

/// Hyper-parameters of [`Tensor::conv2d`] as (rows, columns) pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Step between windows.
    pub stride: [usize; 2],
    /// Implicit zeros on each side.
    pub padding: [usize; 2],
    /// Step between kernel taps.
    pub dilation: [usize; 2],
    /// Channel groups: input and output channels are split into this many independent sets.
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

/// Check the options shared by both convolutions: positive stride, dilation and groups.
pub(super) fn check_hyper(op: &'static str, stride: [usize; 2], dilation: [usize; 2], groups: usize) -> Result<()> {
    if stride.contains(&0) {
        return Err(Error::invalid(op, format!("stride must be positive, got {stride:?}")));
    }
    if dilation.contains(&0) {
        return Err(Error::invalid(
            op,
            format!("dilation must be positive, got {dilation:?}"),
        ));
    }
    if groups == 0 {
        return Err(Error::invalid(op, "groups must be positive"));
    }
    Ok(())
}

/// Check ranks of input and weight (`[N, C, H, W]` and `[_, _, kh, kw]`) and dtypes.
pub(super) fn check_operands(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    weight_dims: &str,
) -> Result<()> {
    if x.rank() != 4 {
        return Err(Error::invalid(
            op,
            format!("input must be 4-D [N, C, H, W], got shape {:?}", x.shape()),
        ));
    }
    if w.rank() != 4 {
        return Err(Error::invalid(
            op,
            format!("weight must be 4-D {weight_dims}, got shape {:?}", w.shape()),
        ));
    }
    same_dtype(op, x, w)?;
    if let Some(b) = bias {
        same_dtype(op, x, b)?;
    }
    Ok(())
}

/// Check a bias has one value per output channel.
pub(super) fn check_bias(op: &'static str, bias: Option<&Tensor>, channels: usize) -> Result<()> {
    match bias {
        Some(b) if b.shape() != [channels] => Err(Error::shapes(
            op,
            b.shape(),
            &[channels],
            "bias needs one value per output channel",
        )),
        _ => Ok(()),
    }
}

/// Geometry of `x.conv2d(w, opts)`, with every check that names the offending shape and dim.
pub(super) fn conv2d_geom(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, opts: &Conv2dOptions) -> Result<ConvGeom> {
    const OP: &str = "conv2d";
    check_operands(OP, x, w, bias, "[out_channels, in_channels/groups, kh, kw]")?;
    check_hyper(OP, opts.stride, opts.dilation, opts.groups)?;
    let (xs, ws, groups) = (x.shape(), w.shape(), opts.groups);
    if ws[0] % groups != 0 {
        return Err(Error::invalid(
            OP,
            format!(
                "weight {ws:?} has {} output channels, not divisible by groups {groups}",
                ws[0]
            ),
        ));
    }
    if xs[1] != ws[1] * groups {
        return Err(Error::invalid(
            OP,
            format!(
                "input {xs:?} has {} channels, weight {ws:?} expects {} ({} per group × {groups} groups)",
                xs[1],
                ws[1] * groups,
                ws[1]
            ),
        ));
    }
    check_bias(OP, bias, ws[0])?;
    // The window must fit the padded input; `ConvGeom::new` then sizes the output.
    for d in 0..2 {
        let span = opts.dilation[d] * (ws[2 + d] - 1) + 1;
        let padded = xs[2 + d] + 2 * opts.padding[d];
        if ws[2 + d] == 0 || span > padded {
            return Err(Error::invalid(
                OP,
                format!(
                    "kernel {:?} spans {span} in dim {} (dilation {}), more than the padded input size {padded} (input {xs:?}, padding {})",
                    &ws[2..],
                    2 + d,
                    opts.dilation[d],
                    opts.padding[d]
                ),
            ));
        }
    }
    Ok(ConvGeom::new(
        [xs[0], xs[1], xs[2], xs[3]],
        [ws[0], ws[2], ws[3]],
        opts.stride,
        opts.padding,
        opts.dilation,
        groups,
    ))
}

/// The raw convolution (bias fused into the GEMM), recorded with its backward.
pub(super) fn conv2d_prim(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: ConvGeom) -> Result<Tensor> {
    conv2d_prim_act(x, w, bias, g, Activation::Identity)
}

/// [`conv2d_prim`] with `act` applied to the output in place (see [`super::conv_act`]).
pub(super) fn conv2d_prim_act(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: ConvGeom,
    act: Activation,
) -> Result<Tensor> {
    fn run<T: Element>(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: &ConvGeom, act: Activation) -> Result<Tensor> {
        let mut out = crate::kernels::elementwise::output_vec::<T>(g.n * g.o * g.p());
        let mut ts = vec![x, w];
        ts.extend(bias);
        with_data("conv2d", &ts, |s: &[&[T]]| {
            conv2d_forward(g, s[0], s[1], s.get(2).copied(), &mut out);
            activate(&mut out, act);
        })?;
        Ok(Tensor::from_buffer(T::wrap(out), &[g.n, g.o, g.oh, g.ow]))
    }
    let out = dispatch!(x.dtype(), T => run::<T>(x, w, bias, &g, act)?);
    let gate = Gate::new(&out, act);
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    let (x, w) = (x.clone(), w.clone());
    Ok(out.record(gate.name("conv2d"), &inputs, move |gy, needs| {
        let gy = &gate.apply(gy)?;
        let gx = if needs[0] {
            Some(super::conv_transpose2d::conv_transpose2d_prim(gy, &w, None, g)?)
        } else {
            None
        };
        let gw = if needs[1] {
            Some(conv2d_weight_grad(&x, gy, g)?)
        } else {
            None
        };
        let gb = if needs.get(2) == Some(&true) {
            Some(bias_grad(gy)?)
        } else {
            None
        };
        Ok(vec![gx, gw, gb])
    }))
}

/// Gradient of a convolution's weight from its input `x` (`[n, c, h, w]`) and the
/// gradient `gy` of its output (`[n, o, oh, ow]`): `[o, c/groups, kh, kw]`.
///
/// Bilinear in `x` and `gy`; its backward with upstream `G` is `convᵀ(gy, G)` for `x`
/// and `conv(x, G)` for `gy`.
pub(super) fn conv2d_weight_grad(x: &Tensor, gy: &Tensor, g: ConvGeom) -> Result<Tensor> {
    fn run<T: Element>(x: &Tensor, gy: &Tensor, g: &ConvGeom) -> Result<Tensor> {
        let mut out = crate::kernels::elementwise::output_vec::<T>(g.o * g.k());
        with_data("conv2d_weight_grad", &[x, gy], |s: &[&[T]]| {
            conv2d_backward_weight(g, s[0], s[1], &mut out)
        })?;
        Ok(Tensor::from_buffer(T::wrap(out), &[g.o, g.c / g.groups, g.kh, g.kw]))
    }
    same_dtype("conv2d_weight_grad", x, gy)?;
    let out = dispatch!(x.dtype(), T => run::<T>(x, gy, &g)?);
    let (x2, gy2) = (x.clone(), gy.clone());
    Ok(out.record("conv2d_weight_grad", &[x, gy], move |gw, needs| {
        let gx = if needs[0] {
            Some(super::conv_transpose2d::conv_transpose2d_prim(&gy2, gw, None, g)?)
        } else {
            None
        };
        let ggy = if needs[1] {
            Some(conv2d_prim(&x2, gw, None, g)?)
        } else {
            None
        };
        Ok(vec![gx, ggy])
    }))
}

/// Gradient of a per-channel bias from `gy` (`[n, o, h, w]`): the sum over all but dim 1.
pub(super) fn bias_grad(gy: &Tensor) -> Result<Tensor> {
    fn run<T: Element>(gy: &Tensor) -> Result<Tensor> {
        let s = gy.shape();
        let mut out = vec![T::ZERO; s[1]];
        with_data("conv2d_bias_grad", &[gy], |d: &[&[T]]| {
            bias_grad_kernel(d[0], s[0], s[1], s[2] * s[3], &mut out)
        })?;
        Ok(Tensor::from_buffer(T::wrap(out), &[s[1]]))
    }
    let out = dispatch!(gy.dtype(), T => run::<T>(gy)?);
    let shape = gy.shape().to_vec();
    Ok(out.record("conv2d_bias_grad", &[gy], move |g, _| {
        Ok(vec![Some(g.reshape([1, shape[1], 1, 1])?.expand(&shape)?)])
    }))
}

impl Tensor {
    /// 2-D convolution of `self` (`[N, C, H, W]`) with `weight` (`[O, C/groups, kh, kw]`)
    /// and an optional `bias` (`[O]`), as `F.conv2d`: output `[N, O, H', W']` with
    /// `H' = (H + 2·padding − dilation·(kh − 1) − 1) / stride + 1`.
    pub fn conv2d(&self, weight: &Tensor, bias: Option<&Tensor>, opts: Conv2dOptions) -> Result<Tensor> {
        let g = conv2d_geom(self, weight, bias, &opts)?;
        conv2d_prim(self, weight, bias, g)
    }
}

/// For second-derivative checks: the gradients of `loss(inputs)` with respect to `inputs`,
/// recorded so they can be differentiated again (also inside gradcheck's no-grad probes).
#[cfg(test)]
pub(super) fn recorded_grads(t: &[Tensor], loss: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<Vec<Tensor>> {
    let _on = crate::autograd::enable_grad();
    let leaves: Vec<Tensor> = t
        .iter()
        .map(|x| {
            if x.requires_grad() {
                x.clone()
            } else {
                x.set_requires_grad(true)
            }
        })
        .collect();
    let l = loss(&leaves)?;
    let refs: Vec<&Tensor> = leaves.iter().collect();
    let gs = crate::grad(&[&l], None, &refs, true)?;
    gs.into_iter()
        .map(|g| g.ok_or_else(|| Error::Autograd("input unused".into())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::gradcheck;
    use crate::DType;
    use crate::Generator;

    fn r(shape: &[usize], s: u64) -> Tensor {
        Tensor::randn(shape, DType::F64, &mut Generator::new(s))
    }

    fn opts(stride: [usize; 2], padding: [usize; 2], dilation: [usize; 2], groups: usize) -> Conv2dOptions {
        Conv2dOptions {
            stride,
            padding,
            dilation,
            groups,
        }
    }

    #[test]
    fn hand_computed() {
        // x = 1..16 on a 4×4 grid, w = [[1, 0], [0, -1]]: each output is x[i,j] − x[i+1,j+1] = −5.
        let x = Tensor::from_vec((1..=16).map(|v| v as f64).collect(), &[1, 1, 4, 4]).unwrap();
        let w = Tensor::from_vec(vec![1.0, 0.0, 0.0, -1.0], &[1, 1, 2, 2]).unwrap();
        let b = Tensor::from_vec(vec![0.5], &[1]).unwrap();
        let y = x.conv2d(&w, Some(&b), Conv2dOptions::default()).unwrap();
        assert_eq!(y.shape(), &[1, 1, 3, 3]);
        assert_eq!(y.to_vec::<f64>().unwrap(), vec![-4.5; 9]);
        // stride 2, padding 1: windows at rows/cols −1, 1, 3; taps outside are zeros.
        let y = x.conv2d(&w, None, opts([2, 2], [1, 1], [1, 1], 1)).unwrap();
        assert_eq!(y.shape(), &[1, 1, 3, 3]);
        assert_eq!(
            y.to_vec::<f64>().unwrap(),
            vec![-1.0, -3.0, 0.0, -9.0, -5.0, 8.0, 0.0, 14.0, 16.0]
        );
        // dilation 2 on 1..16: x[i,j] − x[i+2,j+2] = −10.
        let y = x.conv2d(&w, None, opts([1, 1], [0, 0], [2, 2], 1)).unwrap();
        assert_eq!(y.to_vec::<f64>().unwrap(), vec![-10.0; 4]);
    }

    #[test]
    fn gradients() {
        for (i, (o, wshape, xshape)) in [
            (opts([1, 1], [1, 1], [1, 1], 1), [3, 2, 3, 3], [2, 2, 5, 4]),
            (opts([2, 1], [1, 0], [1, 2], 2), [4, 2, 3, 2], [2, 4, 7, 6]),
            (opts([2, 3], [2, 1], [2, 1], 1), [2, 3, 2, 3], [1, 3, 6, 7]),
            (opts([1, 1], [0, 0], [1, 1], 1), [3, 4, 1, 1], [2, 4, 3, 3]),
            (opts([1, 1], [1, 1], [1, 1], 3), [3, 1, 3, 3], [1, 3, 4, 4]),
        ]
        .into_iter()
        .enumerate()
        {
            let s = 10 * i as u64;
            let (x, w, b) = (r(&xshape, s), r(&wshape, s + 1), r(&[wshape[0]], s + 2));
            gradcheck(|t| t[0].conv2d(&t[1], Some(&t[2]), o), &[x, w, b]).unwrap_or_else(|e| panic!("{o:?}: {e}"));
        }
    }

    #[test]
    fn winograd_path_gradients() {
        // 3×3, stride 1, ≥ 16 channels, 16×16: the Winograd kernels, for all three passes.
        let o = opts([1, 1], [1, 1], [1, 1], 1);
        let (x, w, b) = (r(&[1, 16, 16, 16], 1), r(&[16, 16, 3, 3], 2), r(&[16], 3));
        gradcheck(|t| t[0].conv2d(&t[1], Some(&t[2]), o), &[x, w, b]).unwrap();
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        // Big enough for the parallel paths (images split over threads, batch parts).
        let run = |stride: usize| {
            let x = Tensor::randn(&[20, 16, 16, 16], DType::F32, &mut Generator::new(1)).set_requires_grad(true);
            let w = Tensor::randn(&[32, 16, 3, 3], DType::F32, &mut Generator::new(2)).set_requires_grad(true);
            let y = x.conv2d(&w, None, opts([stride; 2], [1, 1], [1, 1], 1)).unwrap();
            let g = y.square().unwrap().sum_all().unwrap().backward().unwrap();
            [
                y.to_vec_f32(),
                g.get(&x).unwrap().to_vec_f32(),
                g.get(&w).unwrap().to_vec_f32(),
            ]
        };
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for stride in [1, 2] {
            assert!(
                one.install(|| run(stride)) == three.install(|| run(stride)),
                "stride {stride}"
            );
        }
    }

    #[test]
    fn empty_batch_and_channels() {
        let w = Tensor::ones(&[4, 3, 3, 3], DType::F32).set_requires_grad(true);
        let x = Tensor::zeros(&[0, 3, 8, 8], DType::F32).set_requires_grad(true);
        let y = x.conv2d(&w, None, opts([1, 1], [1, 1], [1, 1], 1)).unwrap();
        assert_eq!(y.shape(), &[0, 4, 8, 8]);
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&w).unwrap().to_vec_f32(), vec![0.0; 108]);
        let b = Tensor::ones(&[4], DType::F32);
        let x = Tensor::zeros(&[2, 0, 5, 5], DType::F32);
        let y = x
            .conv2d(
                &Tensor::zeros(&[4, 0, 3, 3], DType::F32),
                Some(&b),
                Conv2dOptions::default(),
            )
            .unwrap();
        assert_eq!(y.to_vec_f32(), vec![1.0; 2 * 4 * 9]);
    }

    #[test]
    fn second_derivatives() {
        // Through the gradient's own graph: d/d(x, w) of <∂L/∂x, v> and <∂L/∂w, u>.
        let o = opts([2, 1], [1, 1], [1, 1], 1);
        let (x, w) = (r(&[2, 2, 5, 4], 1), r(&[3, 2, 3, 2], 2));
        let (v, u) = (r(&[2, 2, 5, 4], 3), r(&[3, 2, 3, 2], 4));
        gradcheck(
            |t| {
                let gs = recorded_grads(t, |t| t[0].conv2d(&t[1], None, o)?.square()?.sum_all())?;
                gs[0].mul(&v)?.sum_all()?.add(&gs[1].mul(&u)?.sum_all()?)
            },
            &[x, w],
        )
        .unwrap();
    }

    #[test]
    fn non_contiguous_input_and_bias_gradient() {
        let x = r(&[2, 3, 4, 5], 7);
        let xt = x.transpose(2, 3).unwrap();
        let w = r(&[2, 3, 2, 2], 8);
        let a = xt
            .conv2d(&w, None, Conv2dOptions::default())
            .unwrap()
            .to_vec::<f64>()
            .unwrap();
        let b = xt
            .contiguous()
            .unwrap()
            .conv2d(&w, None, Conv2dOptions::default())
            .unwrap()
            .to_vec::<f64>()
            .unwrap();
        assert_eq!(a, b);
        let bias = Tensor::zeros(&[2], DType::F64).set_requires_grad(true);
        let y = x.conv2d(&w, Some(&bias), Conv2dOptions::default()).unwrap();
        let g = y.backward_with_grad(&Tensor::ones_like(&y)).unwrap();
        assert_eq!(g.get(&bias).unwrap().to_vec::<f64>().unwrap(), vec![2.0 * 3.0 * 4.0; 2]);
    }

    #[test]
    fn f32_matches_f64() {
        let (x, w) = (r(&[3, 4, 9, 9], 1), r(&[5, 4, 3, 3], 2));
        let o = opts([1, 1], [1, 1], [1, 1], 1);
        let y64 = x.conv2d(&w, None, o).unwrap().to_vec::<f64>().unwrap();
        let y32 = x
            .to_dtype(DType::F32)
            .unwrap()
            .conv2d(&w.to_dtype(DType::F32).unwrap(), None, o)
            .unwrap()
            .to_vec_f64();
        assert!(y64.iter().zip(&y32).all(|(a, b)| (a - b).abs() < 1e-4));
    }

    #[test]
    fn errors_name_op_shapes_and_dim() {
        let x = Tensor::zeros(&[8, 32, 56, 56], DType::F32);
        let err = |r: Result<Tensor>| r.unwrap_err().to_string();
        let e = err(x.conv2d(
            &Tensor::zeros(&[64, 64, 3, 3], DType::F32),
            None,
            Conv2dOptions::default(),
        ));
        assert!(
            e.contains("conv2d") && e.contains("[8, 32, 56, 56] has 32 channels") && e.contains("expects 64"),
            "{e}"
        );
        let w = Tensor::zeros(&[64, 32, 3, 3], DType::F32);
        let e = err(Tensor::zeros(&[32, 56, 56], DType::F32).conv2d(&w, None, Conv2dOptions::default()));
        assert!(e.contains("4-D") && e.contains("[32, 56, 56]"), "{e}");
        let e = err(x.conv2d(&Tensor::zeros(&[64, 32], DType::F32), None, Conv2dOptions::default()));
        assert!(e.contains("weight must be 4-D"), "{e}");
        let e = err(x.conv2d(
            &Tensor::zeros(&[6, 8, 3, 3], DType::F32),
            None,
            opts([1, 1], [0, 0], [1, 1], 4),
        ));
        assert!(e.contains("not divisible by groups 4"), "{e}");
        let e = err(x.conv2d(&w, None, opts([0, 1], [0, 0], [1, 1], 1)));
        assert!(e.contains("stride must be positive"), "{e}");
        let e = err(x.conv2d(&w, None, opts([1, 1], [0, 0], [1, 1], 0)));
        assert!(e.contains("groups must be positive"), "{e}");
        let small = Tensor::zeros(&[1, 32, 2, 9], DType::F32);
        let e = err(small.conv2d(&w, None, Conv2dOptions::default()));
        assert!(e.contains("dim 2") && e.contains("padded input size 2"), "{e}");
        let e = err(x.conv2d(&w, Some(&Tensor::zeros(&[63], DType::F32)), Conv2dOptions::default()));
        assert!(e.contains("bias"), "{e}");
        let e = err(x.conv2d(&w.to_dtype(DType::F64).unwrap(), None, Conv2dOptions::default()));
        assert!(e.contains("dtype"), "{e}");
    }
}
