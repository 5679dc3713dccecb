//! Convolution, pooling, unpooling and upsampling cases, run in f32 and compared with
//! PyTorch forward and backward.

use crate::common::{Case, OrMsg};
use nabla_core::{Conv2dOptions, ConvTranspose2dOptions, Pool2dOptions, Tensor};

/// Runs the convolution and pooling cases; `None` for every other op.
pub fn run(case: &Case) -> Option<Result<(), String>> {
    let f: fn(&Case) -> Result<(), String> = match case.op.as_str() {
        "conv2d" => conv2d,
        "conv_transpose2d" => conv_transpose2d,
        "max_pool2d" => max_pool2d,
        "avg_pool2d" => avg_pool2d,
        "adaptive_avg_pool2d" => adaptive_avg_pool2d,
        "max_unpool2d" => max_unpool2d,
        "upsample_nearest2d" | "upsample_bilinear2d" => upsample,
        _ => return None,
    };
    Some(f(case))
}

/// The optional `param.bias`.
fn bias(case: &Case) -> Result<Option<Tensor>, String> {
    if case.params.iter().any(|p| p == "bias") {
        Ok(Some(case.param("bias")?))
    } else {
        Ok(None)
    }
}

/// Check `out` against the case with the usual leaves: `x`, `weight`, `bias`.
fn check(case: &Case, out: &Tensor, x: &Tensor, w: Option<&Tensor>, b: Option<&Tensor>) -> Result<(), String> {
    let mut leaves = vec![("x", x)];
    leaves.extend(w.map(|w| ("weight", w)));
    leaves.extend(b.map(|b| ("bias", b)));
    case.check(out, &leaves)
}

fn conv2d(case: &Case) -> Result<(), String> {
    let (x, w, b) = (case.input("x")?, case.param("weight")?, bias(case)?);
    let opts = Conv2dOptions {
        stride: case.attr_pair("stride")?,
        padding: case.attr_pair("padding")?,
        dilation: case.attr_pair("dilation")?,
        groups: case.attr_pair("groups")?[0],
    };
    let out = x.conv2d(&w, b.as_ref(), opts).msg()?;
    check(case, &out, &x, Some(&w), b.as_ref())
}

fn conv_transpose2d(case: &Case) -> Result<(), String> {
    let (x, w, b) = (case.input("x")?, case.param("weight")?, bias(case)?);
    let opts = ConvTranspose2dOptions {
        stride: case.attr_pair("stride")?,
        padding: case.attr_pair("padding")?,
        output_padding: case.attr_pair("output_padding")?,
        dilation: case.attr_pair("dilation")?,
        groups: case.attr_pair("groups")?[0],
    };
    let out = x.conv_transpose2d(&w, b.as_ref(), opts).msg()?;
    check(case, &out, &x, Some(&w), b.as_ref())
}

/// Pooling options from `kernel_size`, `stride` (the kernel when absent), `padding` and
/// `ceil_mode` (0 and false when absent).
fn pool_opts(case: &Case) -> Result<Pool2dOptions, String> {
    let kernel = case.attr_pair("kernel_size")?;
    let present = |k: &str| !case.attrs[k].is_null();
    Ok(Pool2dOptions {
        kernel,
        stride: if present("stride") {
            case.attr_pair("stride")?
        } else {
            kernel
        },
        padding: if present("padding") {
            case.attr_pair("padding")?
        } else {
            [0, 0]
        },
        ceil_mode: case.attr_bool("ceil_mode", false)?,
    })
}

fn max_pool2d(case: &Case) -> Result<(), String> {
    let x = case.input("x")?;
    let opts = pool_opts(case)?;
    let out = x.max_pool2d(opts).msg()?;
    // The indices variant must agree with the plain one and point at the maxima.
    let (same, idx) = x.max_pool2d_with_indices(opts).msg()?;
    if same.to_vec_f32() != out.to_vec_f32() {
        return Err("max_pool2d_with_indices values differ from max_pool2d".into());
    }
    let [h, w] = [x.shape()[2], x.shape()[3]];
    let (xs, ys) = (x.to_vec_f32(), out.to_vec_f32());
    let per = ys.len() / (x.shape()[0] * x.shape()[1]).max(1);
    for (q, (&i, &y)) in idx.iter().zip(&ys).enumerate() {
        if i >= h * w || xs[(q / per) * h * w + i] != y {
            return Err(format!("index {i} of output {q} does not point at its maximum {y}"));
        }
    }
    check(case, &out, &x, None, None)
}

fn avg_pool2d(case: &Case) -> Result<(), String> {
    let x = case.input("x")?;
    let out = x
        .avg_pool2d(pool_opts(case)?, case.attr_bool("count_include_pad", true)?)
        .msg()?;
    check(case, &out, &x, None, None)
}

fn adaptive_avg_pool2d(case: &Case) -> Result<(), String> {
    let x = case.input("x")?;
    let out = x.adaptive_avg_pool2d(case.attr_pair("output_size")?).msg()?;
    check(case, &out, &x, None, None)
}

fn max_unpool2d(case: &Case) -> Result<(), String> {
    let x = case.input("x")?;
    let (idx, idx_shape) = case.indices("input.indices")?;
    if idx_shape != x.shape() {
        return Err(format!(
            "indices shape {idx_shape:?} differs from the input's {:?}",
            x.shape()
        ));
    }
    let (k, s) = (case.attr_pair("kernel_size")?, pool_opts(case)?.stride);
    // F.max_unpool2d's default output size: (in − 1)·stride + kernel.
    let size = |d: usize| (x.shape()[2 + d] - 1) * s[d] + k[d];
    let out = x.max_unpool2d(&idx, [size(0), size(1)]).msg()?;
    check(case, &out, &x, None, None)
}

fn upsample(case: &Case) -> Result<(), String> {
    let x = case.input("x")?;
    // `size` when given (F.interpolate(size=...)), else floor(in · scale_factor).
    let output = if case.attrs["size"].is_null() {
        let scale = case.attr_f64("scale_factor")?;
        let size = |d: usize| (x.shape()[2 + d] as f64 * scale).floor() as usize;
        [size(0), size(1)]
    } else {
        case.attr_pair("size")?
    };
    let out = if case.op == "upsample_nearest2d" {
        x.upsample_nearest2d(output)
    } else {
        x.upsample_bilinear2d(output, case.attr_bool("align_corners", false)?)
    }
    .msg()?;
    check(case, &out, &x, None, None)
}
