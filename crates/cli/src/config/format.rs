//! The file format of configurations: one `key = value` per line, `#` comments, values that
//! are numbers, `true`/`false`, "strings" or `[1, 2]` lists (the subset of TOML a flat
//! configuration needs), and the typed readers of its values. `nabla train` and
//! `nabla autoencode` each check their own keys.

use crate::error::{CliError, CliResult};
use std::collections::BTreeMap;
use std::path::Path;

/// One value of the file format.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A quoted string.
    Str(String),
    /// A number (integers too).
    Num(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `[a, b, ...]` of numbers.
    List(Vec<f64>),
}

fn parse_value(raw: &str) -> Result<Value, String> {
    let raw = raw.trim();
    if let Some(inner) = raw.strip_prefix('"') {
        let s = inner.strip_suffix('"').ok_or("unterminated string")?;
        if s.contains('"') {
            return Err("quotes inside strings are not supported".into());
        }
        return Ok(Value::Str(s.replace("\\\\", "\\")));
    }
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("unterminated list")?;
        let items: Result<Vec<f64>, _> = inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.replace('_', "").parse::<f64>())
            .collect();
        return items
            .map(Value::List)
            .map_err(|_| format!("{raw} is not a list of numbers"));
    }
    match raw {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    raw.replace('_', "")
        .parse::<f64>()
        .map(Value::Num)
        .map_err(|_| format!("{raw} is not a number, true/false, a \"string\" or a [list]"))
}

/// Parse `key = value` text into values by key, refusing keys not in `keys`.
pub fn parse_keys(text: &str, origin: &Path, keys: &[&str]) -> CliResult<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |msg: String| CliError::new(format!("{} line {}: {msg}", origin.display(), n + 1));
        // A `#` inside a string is kept; outside one it starts a comment.
        let mut in_str = false;
        let end = line
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    in_str = !in_str;
                }
                c == '#' && !in_str
            })
            .map_or(line.len(), |(i, _)| i);
        let line = line[..end].trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            return Err(bad("tables ([section]) are not used; write key = value lines".into()));
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| bad(format!("expected key = value, got {line:?}")))?;
        let key = k.trim().trim_matches('"').replace('-', "_");
        if !keys.contains(&key.as_str()) {
            return Err(bad(format!("unknown key {key:?} (known: {})", keys.join(", "))));
        }
        let value = parse_value(v).map_err(|e| bad(format!("{key}: {e}")))?;
        if out.insert(key.clone(), value).is_some() {
            return Err(bad(format!("{key} is given twice")));
        }
    }
    Ok(out)
}

/// A string value, or an error naming `key`.
pub(crate) fn want_str(key: &str, v: &Value) -> CliResult<String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(CliError::new(format!("config: {key} must be a \"string\""))),
    }
}

/// A finite number, or an error naming `key`.
pub(crate) fn want_num(key: &str, v: &Value) -> CliResult<f64> {
    match v {
        Value::Num(x) if x.is_finite() => Ok(*x),
        _ => Err(CliError::new(format!("config: {key} must be a number"))),
    }
}

/// A whole number ≥ 0, or an error naming `key`.
pub(crate) fn want_count(key: &str, v: &Value) -> CliResult<usize> {
    let x = want_num(key, v)?;
    if x < 0.0 || x.fract() != 0.0 || x > 1e15 {
        return Err(CliError::new(format!(
            "config: {key} must be a whole number ≥ 0, got {x}"
        )));
    }
    Ok(x as usize)
}
