//! CIFAR-10 and CIFAR-100 in their binary format (32×32×3 images, channel planes R, G, B).
//!
//! ```
//! use nabla_data::cifar::{cifar_from_bytes, Cifar};
//! use nabla_data::Dataset;
//! // One CIFAR-10 record: a label byte, then 3072 pixel bytes.
//! let mut rec = vec![3u8];
//! rec.extend(std::iter::repeat(255u8).take(3072));
//! let ds = cifar_from_bytes(&rec, "batch.bin".as_ref(), Cifar::Ten)?;
//! assert_eq!((ds.len(), ds.classes()[3].as_str()), (1, "cat"));
//! # Ok::<(), nabla_data::DataError>(())
//! ```

use crate::dataset::read_capped;
use crate::idx::Split;
use crate::{DataError, ImageDataset, ReadLimits, Result};
use std::path::{Path, PathBuf};

const PIXELS: usize = 3 * 32 * 32;

/// CIFAR-10's class names, by label.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Which CIFAR and, for CIFAR-100, which labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cifar {
    /// CIFAR-10: records of 1 label byte + 3072 pixels.
    Ten,
    /// CIFAR-100 with its 100 fine labels: records of coarse byte, fine byte, 3072 pixels.
    HundredFine,
    /// CIFAR-100 with its 20 coarse (superclass) labels.
    HundredCoarse,
}

impl Cifar {
    fn record_len(self) -> usize {
        match self {
            Cifar::Ten => 1 + PIXELS,
            _ => 2 + PIXELS,
        }
    }

    fn label_offset(self) -> usize {
        match self {
            Cifar::HundredFine => 1,
            _ => 0,
        }
    }

    fn num_classes(self) -> usize {
        match self {
            Cifar::Ten => 10,
            Cifar::HundredFine => 100,
            Cifar::HundredCoarse => 20,
        }
    }

    /// The binary files of a split, as the official archives name them.
    pub fn file_names(self, split: Split) -> Vec<&'static str> {
        match (self, split) {
            (Cifar::Ten, Split::Train) => vec![
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
            ],
            (Cifar::Ten, Split::Test) => vec!["test_batch.bin"],
            (_, Split::Train) => vec!["train.bin"],
            (_, Split::Test) => vec!["test.bin"],
        }
    }

    fn meta_file(self) -> &'static str {
        match self {
            Cifar::Ten => "batches.meta.txt",
            Cifar::HundredFine => "fine_label_names.txt",
            Cifar::HundredCoarse => "coarse_label_names.txt",
        }
    }

    fn archive_dir(self) -> &'static str {
        match self {
            Cifar::Ten => "cifar-10-batches-bin",
            _ => "cifar-100-binary",
        }
    }

    fn default_classes(self) -> Vec<String> {
        match self {
            Cifar::Ten => CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
            _ => (0..self.num_classes()).map(|i| i.to_string()).collect(),
        }
    }

    /// Load a split from `dir` (or from the archive's folder inside it), with class names
    /// from the meta file when present.
    pub fn load_dir(self, dir: &Path, split: Split, limits: &ReadLimits) -> Result<ImageDataset> {
        let names = self.file_names(split);
        let dir = [dir.to_path_buf(), dir.join(self.archive_dir())]
            .into_iter()
            .find(|d| d.join(names[0]).is_file())
            .ok_or_else(|| DataError::NotFound {
                name: format!("{} ({:?})", names[0], self),
                searched: vec![dir.to_path_buf(), dir.join(self.archive_dir())],
                hint: String::new(),
            })?;
        let classes = self.read_classes(&dir.join(self.meta_file()))?;
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for name in names {
            let path = dir.join(name);
            let raw = read_capped(&path, limits.max_file_bytes)?;
            let (p, l) = parse_records(&raw, &path, self)?;
            let total = pixels.len() as u64 + p.len() as u64;
            if total > limits.max_decoded_bytes {
                return Err(DataError::TooLarge {
                    path,
                    what: "the images read so far".into(),
                    size: total,
                    limit: limits.max_decoded_bytes,
                });
            }
            pixels.extend_from_slice(&p);
            labels.extend(l);
        }
        let origin: PathBuf = dir.join(self.file_names(split)[0]);
        ImageDataset::new(pixels, labels, [3, 32, 32], classes, &origin)
    }

    fn read_classes(self, meta: &Path) -> Result<Vec<String>> {
        if !meta.is_file() {
            return Ok(self.default_classes());
        }
        let raw = read_capped(meta, 1 << 20)?;
        let text = String::from_utf8_lossy(&raw);
        let names: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if names.len() != self.num_classes() {
            return Err(DataError::format(
                meta,
                format!("{} class names, expected {}", names.len(), self.num_classes()),
            ));
        }
        Ok(names)
    }
}

/// Split a binary CIFAR file into C×H×W pixels and labels, checking length and labels.
fn parse_records(raw: &[u8], origin: &Path, kind: Cifar) -> Result<(Vec<u8>, Vec<usize>)> {
    let rec = kind.record_len();
    if raw.is_empty() || !raw.len().is_multiple_of(rec) {
        return Err(DataError::format(
            origin,
            format!(
                "{} bytes is not a whole number of {rec}-byte records ({} whole, {} bytes left over)",
                raw.len(),
                raw.len() / rec,
                raw.len() % rec
            ),
        ));
    }
    let n = raw.len() / rec;
    let mut pixels = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    let off = kind.label_offset();
    let classes = kind.num_classes();
    for (index, r) in raw.chunks_exact(rec).enumerate() {
        let label = r[off] as usize;
        if label >= classes {
            return Err(DataError::LabelOutOfRange {
                path: origin.to_path_buf(),
                index,
                label,
                classes,
            });
        }
        labels.push(label);
        pixels.extend_from_slice(&r[rec - PIXELS..]);
    }
    Ok((pixels, labels))
}

/// Parse one CIFAR binary file held in memory (default class names); `origin` names it in errors.
pub fn cifar_from_bytes(raw: &[u8], origin: &Path, kind: Cifar) -> Result<ImageDataset> {
    let (pixels, labels) = parse_records(raw, origin, kind)?;
    ImageDataset::new(pixels, labels, [3, 32, 32], kind.default_classes(), origin)
}
