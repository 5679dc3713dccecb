//! Reading and writing named tensors in the safetensors format (the file PyTorch's
//! `safetensors.torch.save_file` writes).
//!
//! Writes are atomic: a temporary file in the same directory is written, synced, renamed
//! over the target, and the directory synced, so a crash leaves the old file or the new
//! one, never a partial file under the final name. Reads check the whole header before
//! converting anything and never allocate more than the file holds (twice that for f16 and
//! bf16, which are widened to f32; integer tensors, such as PyTorch's `num_batches_tracked`,
//! become f64).
//!
//! ```
//! use nabla_core::Tensor;
//! use nabla_nn::{load_tensors, save_tensors};
//! use std::collections::BTreeMap;
//! let path = std::env::temp_dir().join(format!("nabla-doc-{}.safetensors", std::process::id()));
//! let w = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3])?;
//! let meta = BTreeMap::from([("epoch".to_string(), "3".to_string())]);
//! save_tensors(&path, &[("w".to_string(), w)], &meta)?;
//! let (tensors, meta2) = load_tensors(&path)?;
//! assert_eq!(tensors[0].0, "w");
//! assert_eq!(tensors[0].1.to_vec::<f32>()?, vec![1.0, 2.0, 3.0]);
//! assert_eq!(meta2, meta);
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::{Error, Result};
use nabla_core::{Buffer, DType, Tensor};
use safetensors::tensor::{Dtype, View};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest header accepted, in bytes (the safetensors crate's own limit).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Named tensors, in order.
pub type NamedTensors = Vec<(String, Tensor)>;

/// A file's string metadata (the header's `__metadata__`).
pub type Metadata = BTreeMap<String, String>;

/// Largest integer an f64 holds exactly; integer tensors beyond it are refused.
const F64_EXACT: u64 = 1 << 53;

fn state_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::State(format!("{}: {msg}", path.display()))
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn to_raw(t: &Tensor) -> Result<Raw> {
    let (dtype, data) = match t.dtype() {
        DType::F32 => (
            Dtype::F32,
            t.to_vec::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        DType::F64 => (
            Dtype::F64,
            t.to_vec::<f64>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    };
    Ok(Raw {
        dtype,
        shape: t.shape().to_vec(),
        data,
    })
}

/// Write `tensors` and string `metadata` to `path` as safetensors, atomically.
/// Names must be unique and not `__metadata__`.
pub fn save_tensors(
    path: impl AsRef<Path>,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let mut seen = HashSet::new();
    let mut raws = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if name == "__metadata__" {
            return Err(state_err(path, "\"__metadata__\" is reserved and cannot name a tensor"));
        }
        if !seen.insert(name.as_str()) {
            return Err(state_err(path, format!("tensor name {name:?} appears twice")));
        }
        raws.push((name.as_str(), to_raw(t)?));
    }
    let info: Option<HashMap<String, String>> =
        (!metadata.is_empty()).then(|| metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    let views = raws.iter().map(|(n, r)| (*n, r));
    write_atomic(path, |tmp| {
        safetensors::serialize_to_file(views, &info, tmp).map_err(|e| state_err(path, format!("cannot serialize: {e}")))
    })
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write a file through `write(tmp)`, then sync, rename over `path` and sync the directory.
fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = path.file_name().ok_or_else(|| state_err(path, "not a file path"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        write(&tmp)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_err(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: the temporary file is garbage either way.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

/// One tensor's entry in the header, checked.
struct Entry {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

/// Read every tensor and the string metadata of a safetensors file, in file order.
///
/// F32 and F64 load as they are; F16 and BF16 become F32; integer and bool tensors become
/// F64 (values beyond 2⁵³ are refused). Any fault in the file is an error naming the file and
/// the tensor: a truncated file, a header length past the end or over [`MAX_HEADER_BYTES`],
/// a header that is not a JSON object, duplicate names, unknown dtypes, shapes whose product
/// overflows, byte ranges that do not match the shape, fall outside the data, overlap or
/// leave gaps.
pub fn load_tensors(path: impl AsRef<Path>) -> Result<(NamedTensors, Metadata)> {
    let path = path.as_ref();
    let mut file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let len = file.metadata().map_err(|e| io_err(path, e))?.len();
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(|e| io_err(path, e))?;
    parse(&bytes).map_err(|msg| state_err(path, msg))
}

/// Parse a whole safetensors file held in memory; errors are plain messages.
pub(crate) fn parse(bytes: &[u8]) -> std::result::Result<(NamedTensors, Metadata), String> {
    let (entries, metadata, data) = parse_header(bytes)?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let t = decode(&e, &data[e.begin..e.end]).map_err(|m| format!("tensor {:?}: {m}", e.name))?;
        out.push((e.name, t));
    }
    Ok((out, metadata))
}

type Header<'a> = (Vec<Entry>, BTreeMap<String, String>, &'a [u8]);

fn parse_header(bytes: &[u8]) -> std::result::Result<Header<'_>, String> {
    let Some(len_bytes) = bytes.get(..8) else {
        return Err(format!(
            "truncated: {} bytes, but a safetensors file starts with an 8-byte header length",
            bytes.len()
        ));
    };
    let mut le = [0u8; 8];
    le.copy_from_slice(len_bytes);
    let n = u64::from_le_bytes(le);
    if n > MAX_HEADER_BYTES {
        return Err(format!("header length {n} is over the {MAX_HEADER_BYTES}-byte limit"));
    }
    let rest = (bytes.len() - 8) as u64;
    if n > rest {
        return Err(format!(
            "header length {n} runs past the end of the file ({rest} bytes follow it)"
        ));
    }
    let n = n as usize;
    let text = std::str::from_utf8(&bytes[8..8 + n]).map_err(|e| format!("header is not UTF-8: {e}"))?;
    let data = &bytes[8 + n..];
    let root: Value = serde_json::from_str(text).map_err(|e| format!("header is not JSON: {e}"))?;
    let Value::Object(map) = root else {
        return Err("header is not a JSON object".into());
    };
    let mut keys = HashSet::new();
    for k in top_level_keys(text) {
        if !keys.insert(k.clone()) {
            return Err(format!("tensor {k:?} appears twice in the header"));
        }
    }
    let mut metadata = BTreeMap::new();
    let mut entries = Vec::new();
    for (name, v) in map {
        if name == "__metadata__" {
            let Value::Object(m) = v else {
                return Err("__metadata__ is not a JSON object".into());
            };
            for (k, v) in m {
                let Value::String(s) = v else {
                    return Err(format!("__metadata__ entry {k:?} is not a string"));
                };
                metadata.insert(k, s);
            }
            continue;
        }
        entries.push(entry(&name, &v).map_err(|m| format!("tensor {name:?}: {m}"))?);
    }
    entries.sort_by_key(|e| (e.begin, e.end));
    let mut at = 0;
    for e in &entries {
        if e.end > data.len() {
            return Err(format!(
                "tensor {:?}: bytes {}..{} fall outside the {}-byte data section",
                e.name,
                e.begin,
                e.end,
                data.len()
            ));
        }
        if e.begin < at {
            return Err(format!(
                "tensor {:?}: bytes {}..{} overlap the previous tensor, which ends at {at}",
                e.name, e.begin, e.end
            ));
        }
        if e.begin > at {
            return Err(format!(
                "tensor {:?}: bytes {}..{} leave a gap after byte {at}",
                e.name, e.begin, e.end
            ));
        }
        at = e.end;
    }
    if at != data.len() {
        return Err(format!(
            "the tensors cover {at} bytes but the data section holds {} (truncated or trailing bytes)",
            data.len()
        ));
    }
    Ok((entries, metadata, data))
}

fn entry(name: &str, v: &Value) -> std::result::Result<Entry, String> {
    let Value::Object(o) = v else {
        return Err("entry is not a JSON object".into());
    };
    let dtype_name = o.get("dtype").and_then(Value::as_str).ok_or("no string \"dtype\"")?;
    let dtype: Dtype = serde_json::from_value(Value::String(dtype_name.to_string()))
        .map_err(|_| format!("unknown dtype {dtype_name:?}"))?;
    let as_index = |x: &Value| x.as_u64().and_then(|u| usize::try_from(u).ok());
    let shape = o
        .get("shape")
        .and_then(Value::as_array)
        .ok_or("no \"shape\" array")?
        .iter()
        .map(|d| as_index(d).ok_or(format!("shape entry {d} is not a size")))
        .collect::<std::result::Result<Vec<usize>, String>>()?;
    let offsets = o
        .get("data_offsets")
        .and_then(Value::as_array)
        .ok_or("no \"data_offsets\" array")?;
    let [b, e] = offsets.as_slice() else {
        return Err(format!("data_offsets has {} entries, not 2", offsets.len()));
    };
    let (Some(begin), Some(end)) = (as_index(b), as_index(e)) else {
        return Err(format!("data_offsets [{b}, {e}] are not byte positions"));
    };
    if end < begin {
        return Err(format!("data_offsets [{begin}, {end}] end before they begin"));
    }
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} has more elements than memory can index"))?;
    let nbytes = numel
        .checked_mul(dtype.size())
        .ok_or_else(|| format!("shape {shape:?} of {dtype:?} overflows a byte count"))?;
    if end - begin != nbytes {
        return Err(format!(
            "shape {shape:?} of {dtype:?} needs {nbytes} bytes, data_offsets give {}",
            end - begin
        ));
    }
    Ok(Entry {
        name: name.to_string(),
        dtype,
        shape,
        begin,
        end,
    })
}

/// The keys of the top-level object of a valid JSON text, unescaped, with repeats (which a
/// JSON map would silently merge).
fn top_level_keys(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let (mut depth, mut i, mut keys) = (0usize, 0usize, Vec::new());
    while i < b.len() {
        match b[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                let end = i.min(b.len() - 1);
                let mut j = end + 1;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if depth == 1 && b.get(j) == Some(&b':') {
                    if let Ok(k) = serde_json::from_str::<String>(&text[start..=end]) {
                        keys.push(k);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    keys
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    match exp {
        // Subnormal or zero: mant · 2⁻²⁴, exact in f32.
        0 => sign * mant as f32 * (1.0 / 16_777_216.0),
        31 => f32::from_bits((u32::from(h & 0x8000) << 16) | 0x7f80_0000 | (mant << 13)),
        _ => f32::from_bits((u32::from(h & 0x8000) << 16) | ((exp + 112) << 23) | (mant << 13)),
    }
}

fn decode(e: &Entry, raw: &[u8]) -> std::result::Result<Tensor, String> {
    fn words<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        raw.chunks_exact(N).map(|c| {
            let mut w = [0u8; N];
            w.copy_from_slice(c);
            w
        })
    }
    fn exact(v: i128) -> std::result::Result<f64, String> {
        if v.unsigned_abs() > u128::from(F64_EXACT) {
            return Err(format!("integer {v} cannot be held exactly as f64"));
        }
        Ok(v as f64)
    }
    fn bool_value(b: u8) -> std::result::Result<f64, String> {
        match b {
            0 | 1 => Ok(f64::from(b)),
            _ => Err(format!("bool byte {b} is neither 0 nor 1")),
        }
    }
    type Ints = std::result::Result<Vec<f64>, String>;
    let values = match e.dtype {
        Dtype::F32 => Buffer::F32(words::<4>(raw).map(f32::from_le_bytes).collect()),
        Dtype::F64 => Buffer::F64(words::<8>(raw).map(f64::from_le_bytes).collect()),
        Dtype::F16 => Buffer::F32(words::<2>(raw).map(|w| f16_to_f32(u16::from_le_bytes(w))).collect()),
        Dtype::BF16 => Buffer::F32(
            words::<2>(raw)
                .map(|w| f32::from_bits(u32::from(u16::from_le_bytes(w)) << 16))
                .collect(),
        ),
        Dtype::BOOL => Buffer::F64(raw.iter().map(|&b| bool_value(b)).collect::<Ints>()?),
        Dtype::U8 => Buffer::F64(raw.iter().map(|&b| f64::from(b)).collect()),
        Dtype::I8 => Buffer::F64(raw.iter().map(|&b| f64::from(b as i8)).collect()),
        Dtype::I16 => Buffer::F64(words(raw).map(|w| f64::from(i16::from_le_bytes(w))).collect()),
        Dtype::U16 => Buffer::F64(words(raw).map(|w| f64::from(u16::from_le_bytes(w))).collect()),
        Dtype::I32 => Buffer::F64(words(raw).map(|w| f64::from(i32::from_le_bytes(w))).collect()),
        Dtype::U32 => Buffer::F64(words(raw).map(|w| f64::from(u32::from_le_bytes(w))).collect()),
        Dtype::I64 => Buffer::F64(
            words(raw)
                .map(|w| exact(i64::from_le_bytes(w).into()))
                .collect::<Ints>()?,
        ),
        Dtype::U64 => Buffer::F64(
            words(raw)
                .map(|w| exact(u64::from_le_bytes(w).into()))
                .collect::<Ints>()?,
        ),
        other => return Err(format!("dtype {other:?} is not supported")),
    };
    match values {
        Buffer::F32(v) => Tensor::from_vec(v, &e.shape),
        Buffer::F64(v) => Tensor::from_vec(v, &e.shape),
    }
    .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_widens_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn finds_repeated_top_level_keys() {
        let keys = top_level_keys(r#"{"a":{"dtype":"F32","x":[1,{"a":2}]},"b\"":"q","a":1}"#);
        assert_eq!(keys, vec!["a", "b\"", "a"]);
    }
}
