//! Pretrained word vectors: word2vec text and binary formats, GloVe's text format.
//!
//! Formats ([`VectorFormat`]):
//! - word2vec text: a header line `COUNT DIM`, then COUNT lines `WORD V1 ... VDIM`
//!   (whitespace-separated);
//! - word2vec binary: the same header line, then per word: the word's UTF-8 bytes, one space,
//!   DIM little-endian f32s, and an optional newline;
//! - GloVe: no header, lines `WORD V1 ... VDIM`, DIM taken from the first line.
//!
//! [`VectorFormat::detect`]: a `.bin` file is word2vec binary; otherwise a first line of two
//! integers is a word2vec text header, anything else GloVe. Empty lines are skipped; a word
//! seen twice keeps its first vector; values must be finite. Sizes are checked against
//! [`ReadLimits`] (the file against `max_file_bytes`, COUNT·DIM·4 against
//! `max_decoded_bytes`) and DIM against [`MAX_DIM`] before anything is allocated for them.

use crate::dataset::read_capped;
use crate::text::Vocab;
use crate::{DataError, ReadLimits, Result};
use nabla_core::Generator;
use std::collections::HashMap;
use std::path::Path;

/// The largest vector dimension accepted.
pub const MAX_DIM: usize = 10_000;

/// The longest word accepted in a binary file, in bytes (a longer one means a corrupt file).
const MAX_WORD_BYTES: usize = 1 << 12;

/// How a word-vector file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorFormat {
    /// word2vec's text format (header `COUNT DIM`).
    Word2VecText,
    /// word2vec's binary format (header `COUNT DIM`, then raw little-endian f32s).
    Word2VecBinary,
    /// GloVe's text format (no header).
    Glove,
}

impl VectorFormat {
    /// The format of `path`: `.bin` is word2vec binary; else a first line of two integers is
    /// word2vec text, anything else GloVe.
    pub fn detect(path: &Path, bytes: &[u8]) -> VectorFormat {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("bin")) {
            return VectorFormat::Word2VecBinary;
        }
        let first = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let fields: Vec<&str> = std::str::from_utf8(first).unwrap_or("").split_whitespace().collect();
        if fields.len() == 2 && fields.iter().all(|f| f.parse::<usize>().is_ok()) {
            VectorFormat::Word2VecText
        } else {
            VectorFormat::Glove
        }
    }
}

/// Word vectors read from a file.
#[derive(Debug, Clone)]
pub struct WordVectors {
    words: Vec<String>,
    dim: usize,
    data: Vec<f32>,
    index: HashMap<String, usize>,
    lower: HashMap<String, usize>,
}

/// A vocabulary's embedding matrix made from word vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct VocabVectors {
    /// `[vocab.len(), dim]` row-major: row i is word i's vector.
    pub data: Vec<f32>,
    /// The vector dimension.
    pub dim: usize,
    /// How many of the vocabulary's words (specials not counted) the file has.
    pub found: usize,
    /// The vocabulary's words (specials not included) the file lacks, in index order.
    pub missing: Vec<String>,
    /// The standard deviation of the random rows.
    pub std: f32,
}

impl WordVectors {
    /// Read `path` in the format [`VectorFormat::detect`] finds.
    pub fn open(path: &Path, limits: &ReadLimits) -> Result<WordVectors> {
        let bytes = read_capped(path, limits.max_file_bytes)?;
        let format = VectorFormat::detect(path, &bytes);
        WordVectors::parse(path, &bytes, format, limits)
    }

    /// Read `path` in `format`.
    pub fn read(path: &Path, format: VectorFormat, limits: &ReadLimits) -> Result<WordVectors> {
        let bytes = read_capped(path, limits.max_file_bytes)?;
        WordVectors::parse(path, &bytes, format, limits)
    }

    /// Parse a file's bytes (`path` names it in errors).
    pub fn parse(path: &Path, bytes: &[u8], format: VectorFormat, limits: &ReadLimits) -> Result<WordVectors> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(DataError::format(path, "the word-vector file is empty"));
        }
        let mut out = match format {
            VectorFormat::Word2VecBinary => binary(path, bytes, limits)?,
            _ => text(path, bytes, format == VectorFormat::Word2VecText, limits)?,
        };
        for (i, w) in out.words.iter().enumerate() {
            out.lower.entry(w.to_lowercase()).or_insert(i);
        }
        Ok(out)
    }

    /// The vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The number of words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether there are no words (never, for a file that was read).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The vector of `word`: the exact word, else the first word that lower-cases to it.
    pub fn get(&self, word: &str) -> Option<&[f32]> {
        let i = self.index.get(word).or_else(|| self.lower.get(word))?;
        Some(&self.data[i * self.dim..(i + 1) * self.dim])
    }

    /// The standard deviation of all the file's values (about their mean).
    pub fn std(&self) -> f32 {
        let n = self.data.len().max(1) as f64;
        let mean = self.data.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = self.data.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        var.sqrt() as f32
    }

    /// The embedding matrix of `vocab`: `<pad>` zeros; a word the file has ([`WordVectors::get`])
    /// its vector; every other row (`<start>`, `<end>`, `<unk>`, missing words) drawn from
    /// N(0, σ²), σ = [`WordVectors::std`], with `Generator::new(seed)` in index order.
    pub fn vectors_for(&self, vocab: &Vocab, seed: u64) -> VocabVectors {
        let (dim, std) = (self.dim, self.std());
        let mut rng = Generator::new(seed);
        let mut data = Vec::with_capacity(vocab.len() * dim);
        let (mut found, mut missing) = (0, Vec::new());
        for (i, w) in vocab.words().iter().enumerate() {
            if i == Vocab::PAD {
                data.extend(std::iter::repeat_n(0.0, dim));
                continue;
            }
            match self.get(w).filter(|_| i > Vocab::UNK) {
                Some(v) => {
                    data.extend_from_slice(v);
                    found += 1;
                }
                None => {
                    if i > Vocab::UNK {
                        missing.push(w.clone());
                    }
                    data.extend((0..dim).map(|_| (rng.normal() * std as f64) as f32));
                }
            }
        }
        VocabVectors {
            data,
            dim,
            found,
            missing,
            std,
        }
    }
}

/// An empty set of `dim`-wide vectors, room checked against the limits.
fn start(path: &Path, count: usize, dim: usize, limits: &ReadLimits) -> Result<WordVectors> {
    if dim == 0 || dim > MAX_DIM {
        return Err(DataError::format(
            path,
            format!("dimension {dim} is not in 1..={MAX_DIM}"),
        ));
    }
    let need = (count as u64).saturating_mul(dim as u64).saturating_mul(4);
    if need > limits.max_decoded_bytes {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            what: format!("{count} vectors of {dim} values"),
            size: need,
            limit: limits.max_decoded_bytes,
        });
    }
    // The header's count is only a claim: reserve a bounded amount and let the rest grow.
    let reserve = count.min(1 << 16);
    Ok(WordVectors {
        words: Vec::with_capacity(reserve),
        dim,
        data: Vec::with_capacity(reserve * dim),
        index: HashMap::with_capacity(reserve),
        lower: HashMap::new(),
    })
}

impl WordVectors {
    /// Add a word unless it is there already (the first vector wins).
    fn push(&mut self, word: String, v: impl IntoIterator<Item = f32>) {
        if self.index.contains_key(&word) {
            return;
        }
        self.index.insert(word.clone(), self.words.len());
        self.words.push(word);
        self.data.extend(v);
    }
}

/// The header `COUNT DIM` of a word2vec file.
fn header(path: &Path, line: &str) -> Result<(usize, usize)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f[..] {
        [c, d] => match (c.parse(), d.parse()) {
            (Ok(c), Ok(d)) => Ok((c, d)),
            _ => Err(DataError::format(
                path,
                format!("line 1: header {line:?} is not two integers"),
            )),
        },
        _ => Err(DataError::format(
            path,
            format!("line 1: header {line:?} is not \"COUNT DIM\""),
        )),
    }
}

fn text(path: &Path, bytes: &[u8], has_header: bool, limits: &ReadLimits) -> Result<WordVectors> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| DataError::format(path, format!("not UTF-8 text (byte {})", e.valid_up_to())))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let mut declared = None;
    let mut out: Option<WordVectors> = None;
    if has_header {
        let (_, first) = lines.next().unwrap_or((0, ""));
        let (count, dim) = header(path, first)?;
        declared = Some(count);
        out = Some(start(path, count, dim, limits)?);
    }
    let mut rows = 0usize;
    for (n, line) in lines {
        let at = n + 1;
        let mut fields = line.split_whitespace();
        let word = fields.next().unwrap_or_default().to_string();
        let values: Vec<&str> = fields.collect();
        let vecs = match &mut out {
            Some(v) => v,
            None => {
                // GloVe: the first line sets the dimension; the count is checked row by row.
                out.insert(start(path, 0, values.len(), limits)?)
            }
        };
        if values.len() != vecs.dim {
            return Err(DataError::format(
                path,
                format!("line {at}: {word:?} has {} values, expected {}", values.len(), vecs.dim),
            ));
        }
        let mut v = Vec::with_capacity(vecs.dim);
        for (k, s) in values.iter().enumerate() {
            match s.parse::<f32>() {
                Ok(x) if x.is_finite() => v.push(x),
                _ => {
                    return Err(DataError::format(
                        path,
                        format!("line {at}: value {} of {word:?} is not a finite number: {s:?}", k + 1),
                    ))
                }
            }
        }
        rows += 1;
        if declared.is_some_and(|c| rows > c) {
            return Err(DataError::format(
                path,
                format!("line {at}: more words than the header's {}", declared.unwrap_or(0)),
            ));
        }
        if (rows as u64) * (vecs.dim as u64) * 4 > limits.max_decoded_bytes {
            return Err(DataError::TooLarge {
                path: path.to_path_buf(),
                what: format!("{rows} vectors of {} values", vecs.dim),
                size: rows as u64 * vecs.dim as u64 * 4,
                limit: limits.max_decoded_bytes,
            });
        }
        vecs.push(word, v);
    }
    if let Some(c) = declared.filter(|&c| c != rows) {
        return Err(DataError::format(
            path,
            format!("the header says {c} words, the file has {rows}"),
        ));
    }
    out.filter(|v| !v.words.is_empty())
        .ok_or_else(|| DataError::format(path, "the word-vector file has no vectors"))
}

fn binary(path: &Path, bytes: &[u8], limits: &ReadLimits) -> Result<WordVectors> {
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| DataError::format(path, "line 1: no header line \"COUNT DIM\""))?;
    let head = std::str::from_utf8(&bytes[..nl]).unwrap_or("");
    let (count, dim) = header(path, head)?;
    let mut out = start(path, count, dim, limits)?;
    let mut at = nl + 1;
    for k in 0..count {
        // The newline that may end the previous record.
        while at < bytes.len() && bytes[at] == b'\n' {
            at += 1;
        }
        let bad = |msg: String| DataError::format(path, format!("record {} (byte {at}): {msg}", k + 1));
        let rest = &bytes[at..];
        let sp = rest
            .iter()
            .take(MAX_WORD_BYTES + 1)
            .position(|&b| b == b' ')
            .ok_or_else(|| match rest.len() {
                0 => bad(format!(
                    "truncated: the header says {count} words, the file ends after {k}"
                )),
                n if n <= MAX_WORD_BYTES => bad("truncated: no space after the word".into()),
                _ => bad(format!(
                    "no space within {MAX_WORD_BYTES} bytes (not a word2vec binary file?)"
                )),
            })?;
        let word = std::str::from_utf8(&rest[..sp])
            .map_err(|_| bad("the word is not UTF-8".into()))?
            .to_string();
        let body = &rest[sp + 1..];
        if body.len() < dim * 4 {
            return Err(bad(format!(
                "truncated: {word:?} needs {} bytes of values, {} are left",
                dim * 4,
                body.len()
            )));
        }
        let mut v = Vec::with_capacity(dim);
        for c in body[..dim * 4].chunks_exact(4) {
            let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if !x.is_finite() {
                return Err(bad(format!("{word:?} has a value that is not finite")));
            }
            v.push(x);
        }
        out.push(word, v);
        at += sp + 1 + dim * 4;
    }
    if bytes[at.min(bytes.len())..].iter().any(|b| !b.is_ascii_whitespace()) {
        return Err(DataError::format(
            path,
            format!("byte {at}: data after the header's {count} records"),
        ));
    }
    if out.words.is_empty() {
        return Err(DataError::format(path, "the word-vector file has no vectors"));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "vectors_tests.rs"]
mod tests;
