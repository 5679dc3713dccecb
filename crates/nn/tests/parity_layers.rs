//! PyTorch parity of nabla-nn's layers: each reference case (`shared/fixtures/torch`, or
//! `$NABLA_TORCH_FIXTURES`) whose op is a layer is run through the layer's public API in f32,
//! forward and backward (and, for batch norm in training, the updated running statistics),
//! and compared with PyTorch within the case's tolerance.

#[path = "../../core/tests/torch_parity/common.rs"]
mod common;

use common::{compare, Case, OrMsg};
use nabla_core::{Conv2dOptions, ConvTranspose2dOptions, Pool2dOptions};
use nabla_nn::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, BatchNormOptions, Conv2d, ConvTranspose2d, LeakyReLU,
    Linear, LocalResponseNorm, MaxPool2d, MaxUnpool2d, Mode, Module, ReLU, Sigmoid, Softplus, Tanh, Upsample,
    UpsampleMode, ELU, GELU,
};

impl<T> OrMsg<T> for nabla_nn::Result<T> {
    fn msg(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

fn linear(c: &Case) -> Result<(), String> {
    let (x, w, b) = (c.input("x")?, c.param("weight")?, c.param("bias")?);
    let layer = Linear::from_parts(w.clone(), Some(b.clone())).msg()?;
    let y = layer.forward(&x, Mode::Train).msg()?;
    c.check(&y, &[("x", &x), ("weight", &w), ("bias", &b)])
}

fn batch_norm(c: &Case, two_d: bool) -> Result<(), String> {
    let (x, w, b) = (c.input("x")?, c.param("weight")?, c.param("bias")?);
    let (rm, rv) = (c.tensor("buffer.running_mean")?, c.tensor("buffer.running_var")?);
    let training = c.attr_bool("training", false)?;
    let opts = BatchNormOptions {
        eps: c.attr_f64("eps")?,
        momentum: Some(c.attr_f64("momentum")?),
        ..Default::default()
    };
    let parts = (Some(w.clone()), Some(b.clone()), Some((rm.clone(), rv.clone())));
    let layer: Box<dyn Module> = if two_d {
        Box::new(BatchNorm2d::from_parts(parts.0, parts.1, parts.2, opts).msg()?)
    } else {
        Box::new(BatchNorm1d::from_parts(parts.0, parts.1, parts.2, opts).msg()?)
    };
    let mode = if training { Mode::Train } else { Mode::Eval };
    let y = layer.forward(&x, mode).msg()?;
    let mut errors = Vec::new();
    if let Err(e) = c.check(&y, &[("x", &x), ("weight", &w), ("bias", &b)]) {
        errors.push(e);
    }
    // The layer's buffers share storage with the tensors it was built from.
    for (name, now) in [("running_mean", &rm), ("running_var", &rv)] {
        let key = format!("buffer_after.{name}");
        let want = if c.has(&key) {
            c.tensor(&key)?
        } else {
            c.tensor(&format!("buffer.{name}"))?
        };
        if let Err(e) = compare(&key, now, &want, c.rtol, c.atol) {
            errors.push(e);
        }
    }
    let count = layer.named_buffers()[2].1.item().msg()?;
    if count != if training { 1.0 } else { 0.0 } {
        errors.push(format!("num_batches_tracked is {count} after one {mode:?} batch"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn local_response_norm(c: &Case) -> Result<(), String> {
    let x = c.input("x")?;
    let size = c.attr_ints("size")?[0] as usize;
    let (alpha, beta, k) = (c.attr_f64("alpha")?, c.attr_f64("beta")?, c.attr_f64("k")?);
    let y = LocalResponseNorm::with_params(size, alpha, beta, k)
        .forward(&x, Mode::Train)
        .msg()?;
    c.check(&y, &[("x", &x)])
}

fn conv2d(c: &Case) -> Result<(), String> {
    let (x, w, b) = (c.input("x")?, c.param("weight")?, c.param("bias")?);
    let opts = Conv2dOptions {
        stride: c.attr_pair("stride")?,
        padding: c.attr_pair("padding")?,
        dilation: c.attr_pair("dilation")?,
        groups: c.attr_ints("groups")?[0] as usize,
    };
    let layer = Conv2d::from_parts(w.clone(), Some(b.clone()), opts).msg()?;
    let y = layer.forward(&x, Mode::Train).msg()?;
    c.check(&y, &[("x", &x), ("weight", &w), ("bias", &b)])
}

fn conv_transpose2d(c: &Case) -> Result<(), String> {
    let (x, w, b) = (c.input("x")?, c.param("weight")?, c.param("bias")?);
    let opts = ConvTranspose2dOptions {
        stride: c.attr_pair("stride")?,
        padding: c.attr_pair("padding")?,
        output_padding: c.attr_pair("output_padding")?,
        dilation: c.attr_pair("dilation")?,
        groups: c.attr_ints("groups")?[0] as usize,
    };
    let layer = ConvTranspose2d::from_parts(w.clone(), Some(b.clone()), opts).msg()?;
    let y = layer.forward(&x, Mode::Train).msg()?;
    c.check(&y, &[("x", &x), ("weight", &w), ("bias", &b)])
}

fn pool_options(c: &Case) -> Result<Pool2dOptions, String> {
    Ok(Pool2dOptions {
        kernel: c.attr_pair("kernel_size")?,
        stride: c.attr_pair("stride")?,
        padding: c.attr_pair("padding")?,
        ceil_mode: c.attr_bool("ceil_mode", false)?,
    })
}

/// A parameter-free layer applied to `input.x`.
fn stateless(c: &Case, m: &dyn Module) -> Result<(), String> {
    let x = c.input("x")?;
    let y = m.forward(&x, Mode::Train).msg()?;
    c.check(&y, &[("x", &x)])
}

fn max_unpool2d(c: &Case) -> Result<(), String> {
    let x = c.input("x")?;
    let (indices, shape) = c.indices("input.indices")?;
    if shape != x.shape() {
        return Err(format!("indices have shape {shape:?}, x {:?}", x.shape()));
    }
    let [k, s] = [c.attr_ints("kernel_size")?[0], c.attr_ints("stride")?[0]].map(|v| v as usize);
    let y = MaxUnpool2d::new(k, s).forward(&x, &indices, None).msg()?;
    c.check(&y, &[("x", &x)])
}

fn activation(c: &Case, m: &dyn Module) -> Result<(), String> {
    let x = c.input("x")?;
    let y = m.forward(&x, Mode::Train).msg()?;
    c.check(&y, &[("x", &x)])
}

/// The layer cases; `None` for ops that are not layers of this crate.
fn run(c: &Case) -> Option<Result<(), String>> {
    Some(match c.op.as_str() {
        "linear" => linear(c),
        "batch_norm2d" => batch_norm(c, true),
        "batch_norm1d" => batch_norm(c, false),
        "local_response_norm" => local_response_norm(c),
        "conv2d" => conv2d(c),
        "conv_transpose2d" => conv_transpose2d(c),
        "max_pool2d" => pool_options(c).and_then(|o| stateless(c, &MaxPool2d::with_options(o))),
        "avg_pool2d" => pool_options(c).and_then(|o| {
            let include = c.attr_bool("count_include_pad", true)?;
            stateless(c, &AvgPool2d::with_options(o, include))
        }),
        "adaptive_avg_pool2d" => c
            .attr_pair("output_size")
            .and_then(|o| stateless(c, &AdaptiveAvgPool2d::new(o))),
        "upsample_nearest2d" => c
            .attr_f64("scale_factor")
            .and_then(|f| stateless(c, &Upsample::with_scale(f, UpsampleMode::Nearest))),
        "upsample_bilinear2d" => c.attr_f64("scale_factor").and_then(|f| {
            let mode = UpsampleMode::Bilinear {
                align_corners: c.attr_bool("align_corners", false)?,
            };
            stateless(c, &Upsample::with_scale(f, mode))
        }),
        "max_unpool2d" => max_unpool2d(c),
        "relu" => activation(c, &ReLU),
        "sigmoid" => activation(c, &Sigmoid),
        "tanh" => activation(c, &Tanh),
        "leaky_relu" => match c.attr_f64("negative_slope") {
            Ok(s) => activation(c, &LeakyReLU::new(s)),
            Err(e) => Err(e),
        },
        "elu" => match c.attr_f64("alpha") {
            Ok(a) => activation(c, &ELU::new(a)),
            Err(e) => Err(e),
        },
        "gelu" => activation(c, &GELU::default()),
        "softplus" => match (c.attr_f64("beta"), c.attr_f64("threshold")) {
            (Ok(b), Ok(t)) => activation(c, &Softplus::new(b, t)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        _ => return None,
    })
}

#[test]
fn torch_parity_layers() {
    common::run_parity("nabla-nn layers", &[run]);
}

#[test]
fn bias_free_layers_match_the_case_minus_its_bias() {
    // The conv case with its bias subtracted from PyTorch's output checks bias = false.
    let cases = common::load_cases().unwrap();
    let c = cases.iter().find(|c| c.name == "conv2d_stride2_pad1").unwrap();
    let (x, w, b) = (
        c.tensor("input.x").unwrap(),
        c.tensor("param.weight").unwrap(),
        c.tensor("param.bias").unwrap(),
    );
    let opts = Conv2dOptions {
        stride: [2, 2],
        padding: [1, 1],
        ..Default::default()
    };
    let y = Conv2d::from_parts(w, None, opts)
        .unwrap()
        .forward(&x, Mode::Eval)
        .unwrap();
    let want = c
        .tensor("output")
        .unwrap()
        .sub(&b.reshape([1, -1, 1, 1]).unwrap())
        .unwrap();
    compare("output", &y, &want, c.rtol, c.atol).unwrap();
}
