//! Elementwise, activation, broadcasting, matmul, reduction and view cases.

use crate::common::{Case, OrMsg};
use nabla_core::Tensor;

/// Runs the core-op cases; `None` for ops handled elsewhere.
pub fn run(case: &Case) -> Option<Result<(), String>> {
    let f: fn(&Case) -> Result<(), String> = match case.op.as_str() {
        "relu" | "sigmoid" | "tanh" | "leaky_relu" | "elu" | "gelu" | "softplus" | "exp" | "log" | "sqrt" => activation,
        "add_mul_div_sub" => binary_broadcast,
        "matmul" => matmul,
        "sum" | "mean" | "max" | "var" => reduction,
        "permute_reshape" => permute_reshape,
        "cat" => cat,
        "pad" => pad,
        "softmax" | "log_softmax" => softmax,
        _ => return None,
    };
    Some(f(case))
}

fn activation(case: &Case) -> Result<(), String> {
    let x = case.input("x")?;
    let y = match case.op.as_str() {
        "relu" => x.relu(),
        "sigmoid" => x.sigmoid(),
        "tanh" => x.tanh(),
        "leaky_relu" => x.leaky_relu(case.attr_f64("negative_slope")?),
        "elu" => x.elu(case.attr_f64("alpha")?),
        "gelu" => x.gelu(),
        "softplus" => {
            // nabla's softplus is PyTorch's default (beta 1, threshold 20).
            if case.attr_f64("beta")? != 1.0 || case.attr_f64("threshold")? != 20.0 {
                return Err(format!("softplus with attrs {} is not supported", case.attrs));
            }
            x.softplus()
        }
        "exp" => x.exp(),
        // The fixture keeps log and sqrt in their domain: f(|x| + 0.5).
        "log" => x.abs().and_then(|a| a.add_scalar(0.5)).and_then(|a| a.log()),
        "sqrt" => x.abs().and_then(|a| a.add_scalar(0.5)).and_then(|a| a.sqrt()),
        op => return Err(format!("unknown activation {op}")),
    }
    .msg()?;
    case.check(&y, &[("x", &x)])
}

fn binary_broadcast(case: &Case) -> Result<(), String> {
    let (a, b) = (case.input("a")?, case.input("b")?);
    // (a + b) * a / (|b| + 1) - b
    let den = b.abs().msg()?.add_scalar(1.0).msg()?;
    let y = a.add(&b).msg()?.mul(&a).msg()?.div(&den).msg()?.sub(&b).msg()?;
    case.check(&y, &[("a", &a), ("b", &b)])
}

fn matmul(case: &Case) -> Result<(), String> {
    let (a, b) = (case.input("a")?, case.input("b")?);
    let y = a.matmul(&b).msg()?;
    case.check(&y, &[("a", &a), ("b", &b)])
}

fn reduction(case: &Case) -> Result<(), String> {
    let x = case.input("x")?;
    let dims = case.attr_dims("dim")?;
    let keepdim = case.attr_bool("keepdim", false)?;
    let y = match case.op.as_str() {
        "sum" => x.sum(&dims, keepdim),
        "mean" => x.mean(&dims, keepdim),
        "max" => x.max(&dims, keepdim),
        "var" => x.var(&dims, case.attr_bool("unbiased", true)?, keepdim),
        op => return Err(format!("unknown reduction {op}")),
    }
    .msg()?;
    case.check(&y, &[("x", &x)])
}

fn permute_reshape(case: &Case) -> Result<(), String> {
    let x = case.input("x")?;
    // x.permute(2, 0, 1).reshape(5, 12), as the manifest's expr says.
    let y = x.permute(&[2, 0, 1]).msg()?.reshape([5, 12]).msg()?;
    case.check(&y, &[("x", &x)])
}

fn cat(case: &Case) -> Result<(), String> {
    let (a, b) = (case.input("a")?, case.input("b")?);
    let dim = case.attr_dims("dim")?;
    let [dim] = dim.as_slice() else {
        return Err(format!("cat needs one dim, got {dim:?}"));
    };
    let y = Tensor::cat(&[&a, &b], *dim).msg()?;
    case.check(&y, &[("a", &a), ("b", &b)])
}

fn pad(case: &Case) -> Result<(), String> {
    let x = case.input("x")?;
    let pads = case
        .attr_ints("pad")?
        .into_iter()
        .map(|p| usize::try_from(p).map_err(|_| format!("negative pad {p} (cropping) is not supported")))
        .collect::<Result<Vec<_>, _>>()?;
    let y = x.pad(&pads, case.attr_f64("value")?).msg()?;
    case.check(&y, &[("x", &x)])
}

fn softmax(case: &Case) -> Result<(), String> {
    let x = case.input("x")?;
    let dim = case.attr_dims("dim")?;
    let [dim] = dim.as_slice() else {
        return Err(format!("{} needs one dim, got {dim:?}", case.op));
    };
    let y = if case.op == "softmax" {
        x.softmax(*dim)
    } else {
        x.log_softmax(*dim)
    }
    .msg()?;
    case.check(&y, &[("x", &x)])
}
