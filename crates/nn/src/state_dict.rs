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

/// What [`load_transfer`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferReport {
    /// Model entries copied from the source.
    pub loaded: Vec<String>,
    /// Model entries kept as the model has them (a fresh head): name, shape in the source
    /// (if there), shape in the model.
    pub replaced: Vec<(String, Option<Vec<usize>>, Vec<usize>)>,
    /// Source entries the model does not have (ignored).
    pub left_out: Vec<String>,
}

/// At most `n` names, then how many more.
fn some_names(names: &[String], n: usize) -> String {
    let mut s = names.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > n {
        s.push_str(&format!(" and {} more", names.len() - n));
    }
    s
}

/// Load `source` into the model `entries` for transfer learning: the entries under one of
/// the `replace` prefixes (a classifier head) keep the model's own values; every other
/// entry must be in the source with its shape and dtype (checked as [`load_into`] does,
/// before anything changes); source entries the model lacks are left out and reported.
pub fn load_transfer(
    entries: Vec<(String, Tensor, ParamKind)>,
    source: &[(String, Tensor)],
    replace: &[String],
) -> Result<TransferReport> {
    let replaced = |n: &str| replace.iter().any(|p| crate::module::under(n, p));
    let src: HashMap<&str, &Tensor> = source.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let model_names: HashSet<String> = entries.iter().map(|(n, _, _)| n.clone()).collect();
    let mut report = TransferReport::default();
    let mut kept = Vec::new();
    let mut missing = Vec::new();
    for (name, t, kind) in entries {
        if replaced(&name) {
            let old = src.get(name.as_str()).map(|s| s.shape().to_vec());
            report.replaced.push((name, old, t.shape().to_vec()));
        } else if src.contains_key(name.as_str()) {
            report.loaded.push(name.clone());
            kept.push((name, t, kind));
        } else {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        return Err(Error::State(format!(
            "{} of the model's tensors are not in the source: {}",
            missing.len(),
            some_names(&missing, 6)
        )));
    }
    report.left_out = source
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !model_names.contains(n.as_str()))
        .cloned()
        .collect();
    let wanted: Vec<(String, Tensor)> = source
        .iter()
        .filter(|(n, _)| model_names.contains(n.as_str()) && !replaced(n))
        .cloned()
        .collect();
    load_into(kept, &wanted, true)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Linear, Sequential};
    use nabla_core::Generator;

    fn net(classes: usize, seed: u64) -> Sequential {
        let mut g = Generator::new(seed);
        Sequential::new()
            .push(Linear::new(3, 4, &mut g))
            .push(Linear::new(4, classes, &mut g))
    }

    #[test]
    fn transfer_keeps_the_fresh_head_and_copies_the_rest_bit_for_bit() {
        let (src, dst) = (net(5, 1), net(2, 2));
        let fresh_head = dst.state_dict()[2].1.to_vec_f64();
        let mut source = src.state_dict();
        source.push(("extra.weight".into(), Tensor::zeros(&[1], nabla_core::DType::F32)));
        let r = load_transfer(dst.state_entries(), &source, &["1".to_string()]).unwrap();
        assert_eq!(r.loaded, ["0.weight", "0.bias"]);
        assert_eq!(r.replaced[0], ("1.weight".into(), Some(vec![5, 4]), vec![2, 4]));
        assert_eq!(r.left_out, ["extra.weight"]);
        let bits = |t: &Tensor| t.to_vec_f64().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&dst.state_dict()[0].1), bits(&src.state_dict()[0].1));
        assert_eq!(dst.state_dict()[2].1.to_vec_f64(), fresh_head);
    }

    #[test]
    fn transfer_names_what_does_not_fit_and_changes_nothing() {
        let dst = net(2, 2);
        let before = dst.state_dict()[0].1.to_vec_f64();
        let mut g = Generator::new(3);
        let wide = Sequential::new()
            .push(Linear::new(3, 6, &mut g))
            .push(Linear::new(6, 2, &mut g));
        let e = load_transfer(dst.state_entries(), &wide.state_dict(), &["1".to_string()]).unwrap_err();
        assert!(
            e.to_string()
                .contains("0.weight: shape [6, 3] in the source, [4, 3] in the model"),
            "{e}"
        );
        assert_eq!(dst.state_dict()[0].1.to_vec_f64(), before);
        let partial = &net(5, 1).state_dict()[1..];
        let e = load_transfer(dst.state_entries(), partial, &["1".to_string()]).unwrap_err();
        assert!(e.to_string().contains("not in the source: 0.weight"), "{e}");
    }
}
