//! PyTorch reference cases: loading `manifest.json` and each case's safetensors file,
//! running handlers over them, and comparing nabla's results with PyTorch's.
//!
//! Shared by the parity tests of several crates (`#[path = ".../common.rs"] mod common;`),
//! so each of them uses only part of it.
#![allow(dead_code)]

use nabla_core::{DType, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// A handler: `None` when it does not know the case's op, else the outcome of the check.
pub type Handler = fn(&Case) -> Option<Result<(), String>>;

/// One stored tensor: row-major values and a shape.
#[derive(Clone, Debug)]
pub enum Stored {
    /// Floating point values (the fixtures store f32; f64 is accepted too).
    Float { shape: Vec<usize>, data: Vec<f64> },
    /// Integer values (class indices, pooling indices).
    Int { shape: Vec<usize>, data: Vec<i64> },
}

/// One manifest entry with its tensors.
#[derive(Debug)]
pub struct Case {
    /// Case name (also the safetensors file's stem).
    pub name: String,
    /// The operation under test, as the manifest names it.
    pub op: String,
    /// The op's attributes (dims, strides, notes, ...).
    pub attrs: Value,
    /// Names of the `input.<name>` tensors.
    pub inputs: Vec<String>,
    /// Names of the `param.<name>` tensors.
    pub params: Vec<String>,
    /// Names of the `buffer.<name>` tensors.
    pub buffers: Vec<String>,
    /// Inputs and params that have a `grad.<name>` to compare.
    pub differentiable: Vec<String>,
    /// Relative tolerance: |a − b| ≤ atol + rtol·|b|.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// The whole manifest entry (optimizer steps, scheduler metrics, ...).
    pub entry: Value,
    tensors: Result<HashMap<String, Stored>, String>,
}

/// Turns a nabla error into the message a parity failure carries.
pub trait OrMsg<T> {
    /// The value, or the error as a string.
    fn msg(self) -> Result<T, String>;
}

impl<T> OrMsg<T> for nabla_core::Result<T> {
    fn msg(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// The fixture directory: `$NABLA_TORCH_FIXTURES`, else `shared/fixtures/torch` beside the
/// repository (three levels above the crate's manifest dir, for every crate in `crates/`).
pub fn fixture_dir() -> PathBuf {
    match std::env::var_os("NABLA_TORCH_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/torch"),
    }
}

/// Every case of the manifest, with its tensors read. A missing directory or manifest is an
/// error; a case whose file cannot be read still comes back and fails when its tensors are used.
pub fn load_cases() -> Result<Vec<Case>, String> {
    let dir = fixture_dir();
    let manifest = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).map_err(|e| {
        format!(
            "cannot read the PyTorch fixtures' manifest {}: {e}\n\
             (set NABLA_TORCH_FIXTURES to the directory written by shared/fixtures/torch/generate.py)",
            manifest.display()
        )
    })?;
    let root: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let entries = root["cases"]
        .as_array()
        .ok_or_else(|| format!("{}: no \"cases\" array", manifest.display()))?;
    entries.iter().map(|e| Case::from_entry(&dir, e)).collect()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn read_safetensors(path: &std::path::Path) -> Result<HashMap<String, Stored>, String> {
    use safetensors::{Dtype, SafeTensors};
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let raw = view.data();
        let stored = match view.dtype() {
            Dtype::F32 => Stored::Float {
                shape,
                data: raw
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
                    .collect(),
            },
            Dtype::F64 => Stored::Float {
                shape,
                data: raw
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                    .collect(),
            },
            Dtype::I64 => Stored::Int {
                shape,
                data: raw
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                    .collect(),
            },
            other => {
                return Err(format!(
                    "{}: tensor {name} has unsupported dtype {other:?}",
                    path.display()
                ))
            }
        };
        out.insert(name, stored);
    }
    Ok(out)
}

impl Case {
    fn from_entry(dir: &std::path::Path, e: &Value) -> Result<Case, String> {
        let name = e["name"].as_str().ok_or("a manifest case has no name")?;
        let file = dir.join(format!("{name}.safetensors"));
        // Scheduler cases live in the manifest alone.
        let tensors = if file.exists() {
            read_safetensors(&file)
        } else {
            Err(format!("no tensor file {}", file.display()))
        };
        Case::with_tensors(e, tensors)
    }

    /// A case from a manifest entry and its tensors held in memory (for tests that make
    /// their own case, e.g. one PyTorch's fixtures do not have, derived from one they do).
    pub fn from_parts(e: &Value, tensors: HashMap<String, Stored>) -> Result<Case, String> {
        Case::with_tensors(e, Ok(tensors))
    }

    fn with_tensors(e: &Value, tensors: Result<HashMap<String, Stored>, String>) -> Result<Case, String> {
        let name = e["name"].as_str().ok_or("a manifest case has no name")?.to_string();
        Ok(Case {
            op: e["op"].as_str().unwrap_or_default().to_string(),
            attrs: e["attrs"].clone(),
            inputs: names(&e["inputs"]),
            params: names(&e["params"]),
            buffers: names(&e["buffers"]),
            differentiable: names(&e["differentiable"]),
            rtol: e["tolerance"]["rtol"].as_f64().unwrap_or(1e-4),
            atol: e["tolerance"]["atol"].as_f64().unwrap_or(1e-5),
            entry: e.clone(),
            tensors,
            name,
        })
    }

    fn stored(&self, key: &str) -> Result<&Stored, String> {
        let all = self.tensors.as_ref().map_err(|e| e.clone())?;
        all.get(key).ok_or_else(|| {
            let mut have: Vec<&String> = all.keys().collect();
            have.sort();
            format!("no tensor {key:?} (the file has {have:?})")
        })
    }

    /// Whether the case's file holds `key` (e.g. `"grad.bias"`).
    pub fn has(&self, key: &str) -> bool {
        self.tensors.as_ref().is_ok_and(|t| t.contains_key(key))
    }

    /// Shape of the stored tensor `key`.
    pub fn shape(&self, key: &str) -> Result<Vec<usize>, String> {
        match self.stored(key)? {
            Stored::Float { shape, .. } | Stored::Int { shape, .. } => Ok(shape.clone()),
        }
    }

    /// The stored float tensor `key` (e.g. `"output"`) as a constant f32 tensor.
    pub fn tensor(&self, key: &str) -> Result<Tensor, String> {
        self.tensor_as(key, DType::F32)
    }

    /// The stored float tensor `key` as a constant of the given dtype.
    pub fn tensor_as(&self, key: &str, dtype: DType) -> Result<Tensor, String> {
        match self.stored(key)? {
            Stored::Float { shape, data } => match dtype {
                DType::F32 => Tensor::from_vec(data.iter().map(|&v| v as f32).collect(), shape).msg(),
                DType::F64 => Tensor::from_vec(data.clone(), shape).msg(),
            },
            Stored::Int { .. } => Err(format!("{key} holds integers; use indices()")),
        }
    }

    /// The stored int64 tensor `key` as indices, with its shape.
    pub fn indices(&self, key: &str) -> Result<(Vec<usize>, Vec<usize>), String> {
        match self.stored(key)? {
            Stored::Int { shape, data } => {
                let idx = data
                    .iter()
                    .map(|&v| usize::try_from(v).map_err(|_| format!("{key}: negative index {v}")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((idx, shape.clone()))
            }
            Stored::Float { .. } => Err(format!("{key} holds floats, not indices")),
        }
    }

    /// `input.<name>` as f32, a leaf requiring a gradient when the case differentiates it.
    pub fn input(&self, name: &str) -> Result<Tensor, String> {
        self.leaf(&format!("input.{name}"), name)
    }

    /// `param.<name>` as f32, a leaf requiring a gradient when the case differentiates it.
    pub fn param(&self, name: &str) -> Result<Tensor, String> {
        self.leaf(&format!("param.{name}"), name)
    }

    fn leaf(&self, key: &str, name: &str) -> Result<Tensor, String> {
        let t = self.tensor(key)?;
        Ok(if self.differentiable.iter().any(|d| d == name) {
            t.set_requires_grad(true)
        } else {
            t
        })
    }

    /// Attribute `key` as a float.
    pub fn attr_f64(&self, key: &str) -> Result<f64, String> {
        self.attrs[key]
            .as_f64()
            .ok_or_else(|| format!("attribute {key:?} is not a number: {}", self.attrs[key]))
    }

    /// Attribute `key` as a bool, `default` when absent.
    pub fn attr_bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match &self.attrs[key] {
            Value::Null => Ok(default),
            v => v
                .as_bool()
                .ok_or_else(|| format!("attribute {key:?} is not a bool: {v}")),
        }
    }

    /// Attribute `key` as a list of integers; a single integer becomes a one-element list.
    pub fn attr_ints(&self, key: &str) -> Result<Vec<i64>, String> {
        let v = &self.attrs[key];
        let bad = || format!("attribute {key:?} is not an integer or a list of them: {v}");
        match v {
            Value::Array(a) => a.iter().map(|x| x.as_i64().ok_or_else(bad)).collect(),
            _ => Ok(vec![v.as_i64().ok_or_else(bad)?]),
        }
    }

    /// Attribute `key` as dims (`1` or `[0, 2]`).
    pub fn attr_dims(&self, key: &str) -> Result<Vec<isize>, String> {
        Ok(self.attr_ints(key)?.into_iter().map(|d| d as isize).collect())
    }

    /// Attribute `key` as a pair for 2-D ops: `3` means `[3, 3]`, `[2, 1]` stays.
    pub fn attr_pair(&self, key: &str) -> Result<[usize; 2], String> {
        let v = self.attr_ints(key)?;
        let u = |x: i64| usize::try_from(x).map_err(|_| format!("attribute {key:?}: negative value {x}"));
        match v.as_slice() {
            [a] => Ok([u(*a)?, u(*a)?]),
            [a, b] => Ok([u(*a)?, u(*b)?]),
            _ => Err(format!("attribute {key:?} must be one or two integers, got {v:?}")),
        }
    }

    /// Check `out` against `output`, then backpropagate `sum(out * grad_output)` and check the
    /// gradient of every differentiable input and param, found by name in `leaves`.
    /// Every mismatch is reported, not just the first.
    pub fn check(&self, out: &Tensor, leaves: &[(&str, &Tensor)]) -> Result<(), String> {
        let mut errors = Vec::new();
        let want = self.tensor_as("output", out.dtype())?;
        if out.shape() != want.shape() {
            return Err(format!(
                "output: shape {:?}, PyTorch has {:?}",
                out.shape(),
                want.shape()
            ));
        }
        if let Err(e) = compare("output", out, &want, self.rtol, self.atol) {
            errors.push(e);
        }
        if !self.differentiable.is_empty() {
            let go = self.tensor_as("grad_output", out.dtype())?;
            let grads = out.mul(&go).msg()?.sum_all().msg()?.backward().msg()?;
            for name in &self.differentiable {
                let Some((_, leaf)) = leaves.iter().find(|(n, _)| n == name) else {
                    errors.push(format!("grad.{name}: the handler gave no tensor named {name:?}"));
                    continue;
                };
                let want = self.tensor_as(&format!("grad.{name}"), out.dtype())?;
                match grads.get(leaf) {
                    Some(g) => {
                        if let Err(e) = compare(&format!("grad.{name}"), g, &want, self.rtol, self.atol) {
                            errors.push(e);
                        }
                    }
                    None => errors.push(format!("grad.{name}: no gradient reached {name}")),
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Compare `got` with `want` elementwise: |got − want| ≤ atol + rtol·|want|. NaN matches
/// only NaN, an infinity only the same infinity.
pub fn compare(what: &str, got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    compare_values(
        what,
        got.shape(),
        &got.to_vec_f64(),
        want.shape(),
        &want.to_vec_f64(),
        rtol,
        atol,
    )
}

/// [`compare`] on raw values and shapes.
pub fn compare_values(
    what: &str,
    got_shape: &[usize],
    got: &[f64],
    want_shape: &[usize],
    want: &[f64],
    rtol: f64,
    atol: f64,
) -> Result<(), String> {
    if got_shape != want_shape {
        return Err(format!("{what}: shape {got_shape:?}, PyTorch has {want_shape:?}"));
    }
    let mut bad = 0usize;
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() || g.is_nan() {
            w.is_nan() && g.is_nan()
        } else if w.is_infinite() || g.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= atol + rtol * w.abs()
        };
        if !ok {
            bad += 1;
            let excess = (g - w).abs() - (atol + rtol * w.abs());
            let excess = if excess.is_nan() { f64::INFINITY } else { excess };
            if worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((i, excess));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, _)) => Err(format!(
            "{what}: {bad} of {} values differ (worst at flat index {i}: nabla {}, PyTorch {}, |diff| {:.3e}, allowed {:.3e})",
            got.len(),
            got[i],
            want[i],
            (got[i] - want[i]).abs(),
            atol + rtol * want[i].abs()
        )),
    }
}

/// Run every case through the first handler that knows its op; print what ran and what
/// was skipped, and panic listing every mismatch (a panicking handler counts as one).
pub fn run_parity(suite: &str, handlers: &[Handler]) {
    let cases = load_cases().unwrap_or_else(|e| panic!("{suite}: {e}"));
    let (mut ran, mut skipped, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for case in &cases {
        let outcome = catch_unwind(AssertUnwindSafe(|| handlers.iter().find_map(|h| h(case))));
        match outcome {
            Ok(None) => skipped.push(case.name.as_str()),
            Ok(Some(Ok(()))) => ran.push(case.name.as_str()),
            Ok(Some(Err(e))) => {
                ran.push(case.name.as_str());
                failures.push(format!("  {} ({}): {e}", case.name, case.op));
            }
            Err(p) => {
                ran.push(case.name.as_str());
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("  {} ({}): panicked: {msg}", case.name, case.op));
            }
        }
    }
    println!(
        "{suite}: ran {} of {} PyTorch cases ({} passed); skipped {}: {}",
        ran.len(),
        cases.len(),
        ran.len() - failures.len(),
        skipped.len(),
        skipped.join(", ")
    );
    assert!(
        failures.is_empty(),
        "{suite}: {} of {} cases differ from PyTorch:\n{}",
        failures.len(),
        ran.len(),
        failures.join("\n")
    );
    assert!(!ran.is_empty(), "{suite}: no case ran; is the handler list empty?");
}
