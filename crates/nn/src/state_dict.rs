//! State dicts: a module's parameters and buffers by PyTorch name, saved to and loaded from
//! safetensors files. A file written by `safetensors.torch.save_file(model.state_dict())`
//! loads into the matching nabla model without renaming.
//!
//! ```
//! use nabla_core::Generator;
//! use nabla_nn::{state_dict, BatchNorm1d, Linear, Module, Sequential};
//! let mut g = Generator::new(0);
//! let make = |g: &mut Generator| Sequential::new().push(Linear::new(3, 4, g)).push(BatchNorm1d::new(4));
//! let (a, b) = (make(&mut g), make(&mut g));
//! let path = std::env::temp_dir().join(format!("nabla-sd-doc-{}.safetensors", std::process::id()));
//! state_dict::save(&a, &path)?;
//! let report = state_dict::load(&b, &path, true)?;
//! assert!(report.missing.is_empty() && report.unexpected.is_empty());
//! assert_eq!(a.parameters()[0].to_vec::<f32>()?, b.parameters()[0].to_vec::<f32>()?);
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::module::{Module, ParamKind};
use crate::safetensors_io::{load_tensors, save_tensors};
use crate::{Error, Result};
use nabla_core::Tensor;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// What a non-strict load left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Model entries the source did not have (left unchanged).
    pub missing: Vec<String>,
    /// Source entries the model does not have (ignored).
    pub unexpected: Vec<String>,
}

/// Copy `source` into the model `entries` (name, stored tensor, kind) by name.
///
/// Every problem is found before anything is written, so the model is untouched on error:
/// a repeated source name, a shape or dtype that differs from the model's, a counter value
/// that is not a whole number, and, when `strict`, missing or unexpected names. Counters
/// ([`ParamKind::Counter`]) accept any dtype, as PyTorch's int64 `num_batches_tracked` does.
pub fn load_into(
    entries: Vec<(String, Tensor, ParamKind)>,
    source: &[(String, Tensor)],
    strict: bool,
) -> Result<LoadReport> {
    let mut by_name: HashMap<&str, &Tensor> = HashMap::with_capacity(source.len());
    let mut problems = Vec::new();
    for (name, t) in source {
        if by_name.insert(name.as_str(), t).is_some() {
            problems.push(format!("{name}: given twice"));
        }
    }
    let model_names: HashSet<&str> = entries.iter().map(|(n, _, _)| n.as_str()).collect();
    let mut report = LoadReport::default();
    let mut writes = Vec::new();
    for (name, dst, kind) in &entries {
        let Some(src) = by_name.get(name.as_str()) else {
            report.missing.push(name.clone());
            continue;
        };
        if src.shape() != dst.shape() {
            problems.push(format!(
                "{name}: shape {:?} in the source, {:?} in the model",
                src.shape(),
                dst.shape()
            ));
            continue;
        }
        let value = if *kind == ParamKind::Counter {
            if src.to_vec_f64().iter().any(|v| v.fract() != 0.0) {
                problems.push(format!("{name}: a count must be a whole number"));
                continue;
            }
            src.detach().to_dtype(dst.dtype())?
        } else if src.dtype() != dst.dtype() {
            problems.push(format!(
                "{name}: dtype {:?} in the source, {:?} in the model",
                src.dtype(),
                dst.dtype()
            ));
            continue;
        } else {
            (*src).clone()
        };
        writes.push((dst, value));
    }
    report.unexpected = source
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !model_names.contains(n.as_str()))
        .cloned()
        .collect();
    if strict {
        if !report.missing.is_empty() {
            problems.push(format!("missing from the source: {}", report.missing.join(", ")));
        }
        if !report.unexpected.is_empty() {
            problems.push(format!("not in the model: {}", report.unexpected.join(", ")));
        }
    }
    if !problems.is_empty() {
        return Err(Error::State(format!("load_state_dict: {}", problems.join("; "))));
    }
    for (dst, value) in writes {
        // Shapes and dtypes were checked above, so this cannot fail halfway.
        dst.assign(&value)?;
    }
    Ok(report)
}

/// Save a module's state dict (parameters and buffers, PyTorch names) to `path`.
pub fn save(module: &dyn Module, path: impl AsRef<Path>) -> Result<()> {
    save_with_metadata(module, path, &BTreeMap::new())
}

/// [`save`] with string metadata in the file's header.
pub fn save_with_metadata(
    module: &dyn Module,
    path: impl AsRef<Path>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    save_tensors(path, &module.state_dict(), metadata)
}

/// Load a state dict file into a module (see [`load_into`]); errors name the file.
pub fn load(module: &dyn Module, path: impl AsRef<Path>, strict: bool) -> Result<LoadReport> {
    let path = path.as_ref();
    let (tensors, _) = load_tensors(path)?;
    module.load_state_dict(&tensors, strict).map_err(|e| match e {
        Error::State(m) => Error::State(format!("{}: {m}", path.display())),
        other => other,
    })
}
