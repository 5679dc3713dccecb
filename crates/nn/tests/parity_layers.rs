//! PyTorch parity of nabla-nn's layers: each reference case (`shared/fixtures/torch`, or
//! `$NABLA_TORCH_FIXTURES`) whose op is a layer is run through the layer's public API in f32,
//! forward and backward (and, for batch norm in training, the updated running statistics),
//! and compared with PyTorch within the case's tolerance.

#[path = "../../core/tests/torch_parity/common.rs"]
mod common;

use common::{compare, Case, OrMsg, Stored};
use nabla_core::{Conv2dOptions, ConvTranspose2dOptions, Pool2dOptions, Tensor};
use nabla_nn::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, BatchNormOptions, Conv2d, ConvTranspose2d, LeakyReLU,
    Linear, LocalResponseNorm, MaxPool2d, MaxUnpool2d, Mode, Module, ReLU, Sigmoid, Softplus, Tanh, Upsample,
    UpsampleMode, ELU, GELU,
};
use std::collections::HashMap;

impl<T> OrMsg<T> for nabla_nn::Result<T> {
    fn msg(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// The layers with parameters, built in one place (their constructors are in flux).
fn linear_layer(weight: Tensor, bias: Option<Tensor>) -> nabla_nn::Result<Linear> {
    Linear::from_parts(weight, bias)
}

/// See [`linear_layer`].
fn conv2d_layer(weight: Tensor, bias: Option<Tensor>, opts: Conv2dOptions) -> nabla_nn::Result<Conv2d> {
    Conv2d::from_parts(weight, bias, opts)
}

/// See [`linear_layer`].
fn conv_transpose2d_layer(
    weight: Tensor,
    bias: Option<Tensor>,
    opts: ConvTranspose2dOptions,
) -> nabla_nn::Result<ConvTranspose2d> {
    ConvTranspose2d::from_parts(weight, bias, opts)
}

/// A case's inputs and the params its manifest lists, read as leaves, so that each layer is
/// built with exactly the params the case has (a conv case with `"bias": false` lists only
/// `weight`) and its gradients are checked for exactly those.
struct Listed {
    inputs: Vec<(String, Tensor)>,
    params: Vec<(String, Tensor)>,
}

impl Listed {
    /// Read the listed tensors. A param the layer does not have (`known`) is an error, as is
    /// an attribute (`bias`, `affine`) that contradicts the params listed.
    fn read(c: &Case, known: &[&str]) -> Result<Listed, String> {
        if let Some(p) = c.params.iter().find(|p| !known.contains(&p.as_str())) {
            return Err(format!("the manifest lists param {p:?}; the layer has {known:?}"));
        }
        for (attr, implies) in [("bias", &["bias"][..]), ("affine", &["weight", "bias"])] {
            let Some(flag) = c.attrs[attr].as_bool() else { continue };
            for name in implies.iter().filter(|n| known.contains(n)) {
                if c.params.iter().any(|p| p == name) != flag {
                    return Err(format!(
                        "attribute {attr:?} is {flag} but params {} {name:?}",
                        if flag { "do not list" } else { "list" }
                    ));
                }
            }
        }
        let read = |names: &[String], get: &dyn Fn(&str) -> Result<Tensor, String>| {
            names
                .iter()
                .map(|n| Ok((n.clone(), get(n)?)))
                .collect::<Result<Vec<_>, String>>()
        };
        Ok(Listed {
            inputs: read(&c.inputs, &|n| c.input(n))?,
            params: read(&c.params, &|n| c.param(n))?,
        })
    }

    /// Input `name`, which the case must list.
    fn input(&self, name: &str) -> Result<Tensor, String> {
        find(&self.inputs, name).ok_or_else(|| format!("the manifest lists no input {name:?}"))
    }

    /// Param `name` if the case lists it.
    fn param(&self, name: &str) -> Option<Tensor> {
        find(&self.params, name)
    }

    /// Param `name`, which the case must list.
    fn required(&self, name: &str) -> Result<Tensor, String> {
        self.param(name)
            .ok_or_else(|| format!("the manifest lists no param {name:?}"))
    }

    /// Every listed tensor by name, for [`Case::check`].
    fn leaves(&self) -> Vec<(&str, &Tensor)> {
        self.inputs
            .iter()
            .chain(&self.params)
            .map(|(n, t)| (n.as_str(), t))
            .collect()
    }
}

fn find(list: &[(String, Tensor)], name: &str) -> Option<Tensor> {
    list.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone())
}

fn linear(c: &Case) -> Result<(), String> {
    let l = Listed::read(c, &["weight", "bias"])?;
    let x = l.input("x")?;
    let layer = linear_layer(l.required("weight")?, l.param("bias")).msg()?;
    let y = layer.forward(&x, Mode::Train).msg()?;
    c.check(&y, &l.leaves())
}

/// The running `(mean, var)` if the case lists them as buffers.
fn running_stats(c: &Case) -> Result<Option<(Tensor, Tensor)>, String> {
    let listed = |n: &str| c.buffers.iter().any(|b| b == n);
    match (listed("running_mean"), listed("running_var")) {
        (true, true) => Ok(Some((
            c.tensor("buffer.running_mean")?,
            c.tensor("buffer.running_var")?,
        ))),
        (false, false) => Ok(None),
        _ => Err(format!(
            "buffers {:?} must list both running_mean and running_var or neither",
            c.buffers
        )),
    }
}

fn batch_norm(c: &Case, two_d: bool) -> Result<(), String> {
    let l = Listed::read(c, &["weight", "bias"])?;
    let x = l.input("x")?;
    let running = running_stats(c)?;
    let training = c.attr_bool("training", false)?;
    let opts = BatchNormOptions {
        eps: c.attr_f64("eps")?,
        momentum: Some(c.attr_f64("momentum")?),
        ..Default::default()
    };
    let (w, b) = (l.param("weight"), l.param("bias"));
    let layer: Box<dyn Module> = if two_d {
        Box::new(BatchNorm2d::from_parts(w, b, running.clone(), opts).msg()?)
    } else {
        Box::new(BatchNorm1d::from_parts(w, b, running.clone(), opts).msg()?)
    };
    let mode = if training { Mode::Train } else { Mode::Eval };
    let y = layer.forward(&x, mode).msg()?;
    let mut errors = Vec::new();
    if let Err(e) = c.check(&y, &l.leaves()) {
        errors.push(e);
    }
    // The layer's buffers share storage with the tensors it was built from.
    if let Some((rm, rv)) = &running {
        for (name, now) in [("running_mean", rm), ("running_var", rv)] {
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
    }
    let count = layer
        .named_buffers()
        .into_iter()
        .find(|(n, _)| n == "num_batches_tracked")
        .map(|(_, t)| t.item())
        .transpose()
        .msg()?;
    let want = running.as_ref().map(|_| if training { 1.0 } else { 0.0 });
    if count != want {
        errors.push(format!(
            "num_batches_tracked is {count:?} after one {mode:?} batch, expected {want:?}"
        ));
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
    let l = Listed::read(c, &["weight", "bias"])?;
    let x = l.input("x")?;
    let opts = Conv2dOptions {
        stride: c.attr_pair("stride")?,
        padding: c.attr_pair("padding")?,
        dilation: c.attr_pair("dilation")?,
        groups: c.attr_ints("groups")?[0] as usize,
    };
    let layer = conv2d_layer(l.required("weight")?, l.param("bias"), opts).msg()?;
    let y = layer.forward(&x, Mode::Train).msg()?;
    c.check(&y, &l.leaves())
}

fn conv_transpose2d(c: &Case) -> Result<(), String> {
    let l = Listed::read(c, &["weight", "bias"])?;
    let x = l.input("x")?;
    let opts = ConvTranspose2dOptions {
        stride: c.attr_pair("stride")?,
        padding: c.attr_pair("padding")?,
        output_padding: c.attr_pair("output_padding")?,
        dilation: c.attr_pair("dilation")?,
        groups: c.attr_ints("groups")?[0] as usize,
    };
    let layer = conv_transpose2d_layer(l.required("weight")?, l.param("bias"), opts).msg()?;
    let y = layer.forward(&x, Mode::Train).msg()?;
    c.check(&y, &l.leaves())
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
    let y = conv2d_layer(w, None, opts).unwrap().forward(&x, Mode::Eval).unwrap();
    let want = c
        .tensor("output")
        .unwrap()
        .sub(&b.reshape([1, -1, 1, 1]).unwrap())
        .unwrap();
    compare("output", &y, &want, c.rtol, c.atol).unwrap();
}

/// `case` as its layer would be without a bias: the manifest says `"bias": false` and lists
/// only `weight`; PyTorch's output less the bias is the output (the gradients of `x` and
/// `weight` do not depend on the bias). With `subtract` false the output keeps the bias.
fn without_bias(case: &Case, subtract: bool) -> Case {
    let mut entry = case.entry.clone();
    entry["name"] = format!("{}_no_bias", case.name).into();
    entry["attrs"]["bias"] = false.into();
    entry["params"] = serde_json::json!(["weight"]);
    entry["differentiable"] = serde_json::json!(["x", "weight"]);
    let out = case.tensor("output").unwrap();
    let b = case.tensor("param.bias").unwrap();
    let shape: [isize; 4] = [1, -1, 1, 1];
    let b = b.reshape(&shape[..out.shape().len()]).unwrap();
    let out = if subtract { out.sub(&b).unwrap() } else { out };
    let mut tensors = HashMap::new();
    let stored = |t: &Tensor| Stored::Float {
        shape: t.shape().to_vec(),
        data: t.to_vec_f64(),
    };
    tensors.insert("output".to_string(), stored(&out));
    for key in ["input.x", "param.weight", "grad_output", "grad.x", "grad.weight"] {
        tensors.insert(key.to_string(), stored(&case.tensor(key).unwrap()));
    }
    Case::from_parts(&entry, tensors).unwrap()
}

#[test]
fn cases_without_a_bias_are_built_from_their_manifest() {
    let cases = common::load_cases().unwrap();
    for name in ["linear", "conv2d_stride2_pad1", "conv_transpose2d_s2"] {
        let case = cases.iter().find(|c| c.name == name).unwrap();
        run(&without_bias(case, true))
            .unwrap()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The layer really has no bias: PyTorch's output with its bias no longer matches.
        let e = run(&without_bias(case, false)).unwrap().unwrap_err();
        assert!(e.contains("output:"), "{name}: {e}");
        // A manifest whose attribute contradicts its params is refused, not guessed at.
        let mut contradicting = without_bias(case, true);
        contradicting.attrs["bias"] = true.into();
        let e = run(&contradicting).unwrap().unwrap_err();
        assert!(e.contains("\"bias\" is true"), "{name}: {e}");
    }
}
