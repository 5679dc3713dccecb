//! torchvision parity: every model the fixture manifest lists is built by name, loaded
//! strictly from torchvision's own state dict, run in eval mode on the stored batch, and its
//! logits and parameter gradients (of `sum(logits · grad_output)`) compared with
//! torchvision's (computed in float64) within the manifest's tolerance.
//!
//! The fixtures come from `generate.py` beside the manifest. Their directory is
//! `$NABLA_TORCHVISION_FIXTURES`, or `shared/fixtures/torchvision` beside the repository.

use nabla_core::{DType, Tensor};
use nabla_models::{build, ModelConfig};
use nabla_nn::{load_tensors, state_dict, Mode, Module};
use std::path::PathBuf;

/// The fixture directory, and whether the caller named it (then it must exist).
fn fixture_dir() -> (PathBuf, bool) {
    match std::env::var_os("NABLA_TORCHVISION_FIXTURES") {
        Some(d) => (PathBuf::from(d), true),
        None => (
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/torchvision"),
            false,
        ),
    }
}

/// The zoo's name of a torchvision model (`alexnet` is the lecture's AlexNet here).
fn registry_name(torchvision: &str) -> &str {
    match torchvision {
        "alexnet" => "alexnet_torchvision",
        other => other,
    }
}

/// Indices where `got` and `want` differ by more than `atol + rtol·|want|`, with the worst.
fn mismatches(got: &[f64], want: &[f64], rtol: f64, atol: f64) -> (usize, f64) {
    assert_eq!(got.len(), want.len());
    let mut bad = 0;
    let mut worst = 0f64;
    for (g, w) in got.iter().zip(want) {
        let excess = (g - w).abs() / (atol + rtol * w.abs());
        worst = worst.max(excess);
        if excess > 1.0 || !g.is_finite() {
            bad += 1;
        }
    }
    (bad, worst)
}

fn get<'a>(io: &'a [(String, Tensor)], name: &str) -> &'a Tensor {
    &io.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("fixture lacks {name}"))
        .1
}

/// Check one manifest entry in `dtype`; `tol` is (rtol, atol). Returns the worst ratio of
/// error to tolerance over logits and gradients.
fn check_model(dir: &std::path::Path, name: &str, spec: &serde_json::Value, dtype: DType, tol: (f64, f64)) -> f64 {
    let shape: Vec<usize> = spec["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let out_shape: Vec<usize> = spec["output_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let cfg = ModelConfig {
        num_classes: out_shape[1],
        in_channels: shape[1],
        input_size: [shape[2], shape[3]],
        ..Default::default()
    };
    let model = build(registry_name(name), &cfg).unwrap();
    assert_eq!(
        model.num_parameters() as u64,
        spec["parameters"].as_u64().unwrap(),
        "{name}: parameter count"
    );
    assert_eq!(
        model.state_dict().len() as u64,
        spec["state_dict_entries"].as_u64().unwrap(),
        "{name}: state dict entries"
    );
    let report = state_dict::load(&*model, dir.join(format!("{name}.safetensors")), true)
        .unwrap_or_else(|e| panic!("{name}: strict load: {e}"));
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    model.to_dtype(dtype).unwrap();

    let (io, _) = load_tensors(dir.join(format!("{name}_io.safetensors"))).unwrap();
    let x = get(&io, "input").to_dtype(dtype).unwrap();
    assert_eq!(x.shape(), &shape[..]);
    let y = model.forward(&x, Mode::Eval).unwrap();
    assert_eq!(y.shape(), &out_shape[..]);
    let (rtol, atol) = tol;
    let want = get(&io, "output").to_vec_f64();
    let (bad, mut worst) = mismatches(&y.to_vec_f64(), &want, rtol, atol);
    assert_eq!(
        bad, 0,
        "{name} ({dtype:?}): {bad} logits out of tolerance (worst {worst:.2}× the tolerance)"
    );

    let go = get(&io, "grad_output").to_dtype(dtype).unwrap();
    let grads = y.mul(&go).unwrap().sum_all().unwrap().backward().unwrap();
    let params = model.named_parameters();
    for g in spec["grads"].as_array().unwrap() {
        let pname = g.as_str().unwrap();
        let p = &params
            .iter()
            .find(|(n, _)| n == pname)
            .unwrap_or_else(|| panic!("{name} has no parameter {pname}"))
            .1;
        let got = grads.get(p).unwrap_or_else(|| panic!("{pname}: no gradient"));
        let want = get(&io, &format!("grad.{pname}"));
        assert_eq!(got.shape(), want.shape(), "{pname}");
        let (bad, w) = mismatches(&got.to_vec_f64(), &want.to_vec_f64(), rtol, atol);
        assert_eq!(
            bad, 0,
            "{name} ({dtype:?}): gradient of {pname}: {bad} entries out of tolerance (worst {w:.2}×)"
        );
        worst = worst.max(w);
    }
    worst
}

#[test]
fn torchvision_models_match_their_fixtures() {
    let (dir, named) = fixture_dir();
    let manifest = dir.join("manifest.json");
    if !manifest.exists() {
        assert!(!named, "{} does not exist", manifest.display());
        eprintln!(
            "skipped: no torchvision fixtures at {} (set NABLA_TORCHVISION_FIXTURES)",
            dir.display()
        );
        return;
    }
    let text = std::fs::read_to_string(&manifest).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    let models = manifest.as_object().unwrap();
    assert!(!models.is_empty(), "the manifest lists no model");
    for (name, spec) in models {
        let rtol = spec["tolerance"]["rtol"].as_f64().unwrap();
        let atol = spec["tolerance"]["atol"].as_f64().unwrap();
        // f32, what models run in, within the manifest's tolerance; and f64, which must agree
        // with torchvision's float64 run up to the fixtures' float32 rounding (the input and
        // grad_output were rounded to f32 after torchvision used them: about 1e-7 relative).
        let w32 = check_model(&dir, name, spec, DType::F32, (rtol, atol));
        let w64 = check_model(&dir, name, spec, DType::F64, (1e-5, 1e-6));
        eprintln!(
            "{name}: worst error / tolerance: f32 {w32:.3} (rtol {rtol}, atol {atol}), \
             f64 {w64:.3} (rtol 1e-5, atol 1e-6)"
        );
    }
}
