//! Transposed 2-D convolution (`F.conv_transpose2d`): the adjoint of a convolution with the
//! same weights, so its input gradient is a convolution and its weight gradient is the
//! convolution weight gradient with the roles of input and output swapped.
//!
//! ```
//! use nabla_core::{ConvTranspose2dOptions, DType, Tensor};
//! let x = Tensor::ones(&[1, 4, 5, 5], DType::F32);
//! let w = Tensor::ones(&[4, 3, 3, 3], DType::F32);
//! let opts = ConvTranspose2dOptions { stride: [2, 2], padding: [1, 1], output_padding: [1, 1], ..Default::default() };
//! assert_eq!(x.conv_transpose2d(&w, None, opts)?.shape(), &[1, 3, 10, 10]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::access::with_data;
use super::conv2d::{bias_grad, check_bias, check_hyper, check_operands, conv2d_prim, conv2d_weight_grad};
use super::conv_act::Gate;
use crate::dtype::dispatch;
use crate::kernels::conv::{activate, conv2d_backward_input, ConvGeom};
use crate::{Activation, Element, Error, Result, Tensor};

/// Hyper-parameters of [`Tensor::conv_transpose2d`] as (rows, columns) pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose2dOptions {
    /// Step between the windows of the matching convolution (the upsampling factor).
    pub stride: [usize; 2],
    /// Rows/columns cropped from each side of the full result.
    pub padding: [usize; 2],
    /// Extra rows/columns added at the bottom/right (smaller than stride or dilation).
    pub output_padding: [usize; 2],
    /// Step between kernel taps.
    pub dilation: [usize; 2],
    /// Channel groups.
    pub groups: usize,
}

impl Default for ConvTranspose2dOptions {
    fn default() -> Self {
        ConvTranspose2dOptions {
            stride: [1, 1],
            padding: [0, 0],
            output_padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

/// Geometry of the convolution whose adjoint `x.conv_transpose2d(w, opts)` is.
pub(super) fn conv_transpose2d_geom(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    opts: &ConvTranspose2dOptions,
) -> Result<ConvGeom> {
    const OP: &str = "conv_transpose2d";
    check_operands(OP, x, w, bias, "[in_channels, out_channels/groups, kh, kw]")?;
    check_hyper(OP, opts.stride, opts.dilation, opts.groups)?;
    let (xs, ws, groups) = (x.shape(), w.shape(), opts.groups);
    if xs[1] != ws[0] {
        return Err(Error::invalid(
            OP,
            format!("input {xs:?} has {} channels, weight {ws:?} expects {}", xs[1], ws[0]),
        ));
    }
    if ws[0] % groups != 0 {
        return Err(Error::invalid(
            OP,
            format!(
                "weight {ws:?} has {} input channels, not divisible by groups {groups}",
                ws[0]
            ),
        ));
    }
    check_bias(OP, bias, ws[1] * groups)?;
    let mut out = [0; 2];
    for d in 0..2 {
        let (s, p, op, dil, k) = (
            opts.stride[d],
            opts.padding[d],
            opts.output_padding[d],
            opts.dilation[d],
            ws[2 + d],
        );
        if op >= s.max(dil) {
            return Err(Error::invalid(
                OP,
                format!(
                    "output_padding {op} in dim {} must be smaller than stride {s} or dilation {dil}",
                    2 + d
                ),
            ));
        }
        if xs[2 + d] == 0 || k == 0 {
            return Err(Error::invalid(
                OP,
                format!("empty input {xs:?} or kernel {ws:?} in dim {}", 2 + d),
            ));
        }
        let full = (xs[2 + d] - 1) * s + dil * (k - 1) + op + 1;
        if full <= 2 * p {
            return Err(Error::invalid(
                OP,
                format!(
                    "padding {p} crops all {full} rows of dim {} (input {xs:?}, weight {ws:?})",
                    2 + d
                ),
            ));
        }
        out[d] = full - 2 * p;
    }
    Ok(ConvGeom {
        n: xs[0],
        c: ws[1] * groups,
        h: out[0],
        w: out[1],
        o: ws[0],
        oh: xs[2],
        ow: xs[3],
        kh: ws[2],
        kw: ws[3],
        stride: opts.stride,
        padding: opts.padding,
        dilation: opts.dilation,
        groups,
    })
}

/// The raw transposed convolution of `x` (the output side of `g`) into the input side of
/// `g`, bias fused; recorded with its backward.
pub(super) fn conv_transpose2d_prim(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: ConvGeom) -> Result<Tensor> {
    conv_transpose2d_prim_act(x, w, bias, g, Activation::Identity)
}

/// [`conv_transpose2d_prim`] with `act` applied to the output in place (see
/// [`super::conv_act`]).
pub(super) fn conv_transpose2d_prim_act(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: ConvGeom,
    act: Activation,
) -> Result<Tensor> {
    fn run<T: Element>(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: &ConvGeom, act: Activation) -> Result<Tensor> {
        let mut out = crate::kernels::elementwise::output_vec::<T>(g.n * g.c * g.h * g.w);
        let mut ts = vec![x, w];
        ts.extend(bias);
        with_data("conv_transpose2d", &ts, |s: &[&[T]]| {
            conv2d_backward_input(g, s[0], s[1], s.get(2).copied(), &mut out);
            activate(&mut out, act);
        })?;
        Ok(Tensor::from_buffer(T::wrap(out), &[g.n, g.c, g.h, g.w]))
    }
    let out = dispatch!(x.dtype(), T => run::<T>(x, w, bias, &g, act)?);
    let gate = Gate::new(&out, act);
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    let (x, w) = (x.clone(), w.clone());
    Ok(out.record(gate.name("conv_transpose2d"), &inputs, move |gy, needs| {
        let gy = &gate.apply(gy)?;
        let gx = if needs[0] {
            Some(conv2d_prim(gy, &w, None, g)?)
        } else {
            None
        };
        let gw = if needs[1] {
            Some(conv2d_weight_grad(gy, &x, g)?)
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

impl Tensor {
    /// Transposed 2-D convolution of `self` (`[N, C_in, H, W]`) with `weight`
    /// (`[C_in, C_out/groups, kh, kw]`) and an optional `bias` (`[C_out]`), as
    /// `F.conv_transpose2d`: output `[N, C_out, H', W']` with
    /// `H' = (H − 1)·stride − 2·padding + dilation·(kh − 1) + output_padding + 1`.
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: ConvTranspose2dOptions,
    ) -> Result<Tensor> {
        let g = conv_transpose2d_geom(self, weight, bias, &opts)?;
        conv_transpose2d_prim(self, weight, bias, g)
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv2d::recorded_grads;
    use super::*;
    use crate::gradcheck::gradcheck;
    use crate::{Conv2dOptions, DType, Generator};

    fn r(shape: &[usize], s: u64) -> Tensor {
        Tensor::randn(shape, DType::F64, &mut Generator::new(s))
    }

    fn opts(
        stride: [usize; 2],
        padding: [usize; 2],
        output_padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> ConvTranspose2dOptions {
        ConvTranspose2dOptions {
            stride,
            padding,
            output_padding,
            dilation,
            groups,
        }
    }

    #[test]
    fn hand_computed() {
        // Each input pixel stamps the kernel [[1, 2], [3, 4]] scaled by itself at 2·(i, j).
        let x = Tensor::from_vec(vec![1.0, 10.0], &[1, 1, 1, 2]).unwrap();
        let w = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2]).unwrap();
        let y = x
            .conv_transpose2d(&w, None, opts([2, 2], [0, 0], [0, 0], [1, 1], 1))
            .unwrap();
        assert_eq!(y.shape(), &[1, 1, 2, 4]);
        assert_eq!(
            y.to_vec::<f64>().unwrap(),
            vec![1.0, 2.0, 10.0, 20.0, 3.0, 4.0, 30.0, 40.0]
        );
        // Stride 1: the stamps overlap and add; padding 1 crops... to nothing left, an error.
        let y = x.conv_transpose2d(&w, None, ConvTranspose2dOptions::default()).unwrap();
        assert_eq!(y.to_vec::<f64>().unwrap(), vec![1.0, 12.0, 20.0, 3.0, 34.0, 40.0]);
        let e = x
            .conv_transpose2d(&w, None, opts([1, 1], [1, 1], [0, 0], [1, 1], 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("crops all 2 rows of dim 2"), "{e}");
    }

    #[test]
    fn is_the_adjoint_of_conv2d() {
        // <conv2d(x, w), y> = <x, conv_transpose2d(y, w)> for matching geometry.
        let (x, w, y) = (r(&[2, 4, 9, 8], 1), r(&[6, 2, 3, 3], 2), r(&[2, 6, 5, 4], 3));
        let c = Conv2dOptions {
            stride: [2, 2],
            padding: [1, 1],
            dilation: [1, 1],
            groups: 2,
        };
        let t = opts([2, 2], [1, 1], [0, 1], [1, 1], 2);
        let cx = x.conv2d(&w, None, c).unwrap();
        assert_eq!(cx.shape(), y.shape());
        let ty = y.conv_transpose2d(&w, None, t).unwrap();
        assert_eq!(ty.shape(), x.shape());
        let a = cx.mul(&y).unwrap().sum_all().unwrap().item().unwrap();
        let b = x.mul(&ty).unwrap().sum_all().unwrap().item().unwrap();
        assert!((a - b).abs() < 1e-9 * a.abs().max(1.0), "{a} vs {b}");
    }

    #[test]
    fn gradients() {
        for (i, (o, wshape, xshape)) in [
            (opts([2, 2], [1, 1], [1, 1], [1, 1], 1), [3, 2, 3, 3], [2, 3, 3, 4]),
            (opts([1, 1], [0, 0], [0, 0], [1, 1], 1), [2, 3, 3, 3], [1, 2, 4, 3]),
            (opts([2, 3], [1, 0], [0, 2], [1, 2], 2), [4, 1, 2, 3], [2, 4, 3, 3]),
            (opts([1, 2], [1, 1], [1, 0], [2, 1], 1), [2, 2, 3, 2], [1, 2, 4, 4]),
            // 4×4 stride 2 with 16 channels: both ways through the phase kernels
            (opts([2, 2], [1, 1], [1, 1], [1, 1], 1), [16, 16, 4, 4], [1, 16, 3, 3]),
        ]
        .into_iter()
        .enumerate()
        {
            let s = 10 * i as u64;
            let (x, w, b) = (r(&xshape, s), r(&wshape, s + 1), r(&[wshape[1] * o.groups], s + 2));
            gradcheck(|t| t[0].conv_transpose2d(&t[1], Some(&t[2]), o), &[x, w, b])
                .unwrap_or_else(|e| panic!("{o:?}: {e}"));
        }
    }

    #[test]
    fn second_derivatives() {
        let o = opts([2, 2], [1, 0], [1, 0], [1, 1], 1);
        let (x, w) = (r(&[1, 2, 3, 3], 1), r(&[2, 2, 3, 2], 2));
        gradcheck(
            |t| {
                let gs = recorded_grads(t, |t| t[0].conv_transpose2d(&t[1], None, o)?.square()?.sum_all())?;
                gs[0].sum_all()?.add(&gs[1].square()?.sum_all()?)
            },
            &[x, w],
        )
        .unwrap();
    }

    #[test]
    fn errors() {
        let x = Tensor::zeros(&[1, 4, 5, 5], DType::F32);
        let err = |r: Result<Tensor>| r.unwrap_err().to_string();
        let e = err(x.conv_transpose2d(
            &Tensor::zeros(&[3, 2, 3, 3], DType::F32),
            None,
            ConvTranspose2dOptions::default(),
        ));
        assert!(
            e.contains("conv_transpose2d") && e.contains("has 4 channels") && e.contains("expects 3"),
            "{e}"
        );
        let w = Tensor::zeros(&[4, 2, 3, 3], DType::F32);
        let e = err(x.conv_transpose2d(&w, None, opts([2, 2], [0, 0], [2, 0], [1, 1], 1)));
        assert!(e.contains("output_padding 2 in dim 2"), "{e}");
        let e = err(x.conv_transpose2d(&w, None, opts([1, 1], [0, 0], [0, 0], [1, 1], 3)));
        assert!(e.contains("not divisible by groups 3"), "{e}");
        let e = err(x.conv_transpose2d(&w, None, opts([1, 0], [0, 0], [0, 0], [1, 1], 1)));
        assert!(e.contains("stride must be positive"), "{e}");
        let e = err(x.conv_transpose2d(
            &w,
            Some(&Tensor::zeros(&[4], DType::F32)),
            ConvTranspose2dOptions::default(),
        ));
        assert!(e.contains("bias"), "{e}");
        let e =
            err(Tensor::zeros(&[4, 5, 5], DType::F32).conv_transpose2d(&w, None, ConvTranspose2dOptions::default()));
        assert!(e.contains("4-D"), "{e}");
    }
}
