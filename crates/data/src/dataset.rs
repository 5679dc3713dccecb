//! The [`Dataset`] trait and the in-memory data sets that the file readers produce.
//!
//! ```
//! use nabla_data::{Dataset, TensorDataset, Target};
//! use nabla_core::Tensor;
//! let x = Tensor::from_vec(vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0], &[3, 2])?;
//! let ds = TensorDataset::new(&x, vec![0, 1, 0])?;
//! let s = ds.get(1)?;
//! assert_eq!((s.data, s.shape, s.target), (vec![2.0, 3.0], vec![2], Target::Class(1)));
//! # Ok::<(), nabla_data::DataError>(())
//! ```

use crate::{DataError, Result};
use nabla_core::Tensor;
use std::borrow::Cow;
use std::path::Path;

/// What a sample is to be predicted as.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A class index in `0..classes().len()`.
    Class(usize),
    /// Regression values.
    Values(Vec<f32>),
}

/// One item of a data set: features as f32 in row-major order, their shape, and the target.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The features (for images: C×H×W in [0, 1]).
    pub data: Vec<f32>,
    /// The shape of `data` (for images `[C, H, W]`).
    pub shape: Vec<usize>,
    /// What the sample is labelled with.
    pub target: Target,
}

/// A random-access collection of samples (PyTorch's map-style `Dataset`).
///
/// Implementations must be shareable across loader threads.
pub trait Dataset: Send + Sync {
    /// The number of samples.
    fn len(&self) -> usize;

    /// Whether the data set has no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sample at `index` (`0..len()`).
    fn get(&self, index: usize) -> Result<Sample>;

    /// Append the features of sample `index` to `data` and return their shape and the
    /// target: how a loader fills a batch with no vector per sample. The default goes
    /// through [`get`](Self::get); in-memory data sets copy straight from their storage.
    fn append_to(&self, index: usize, data: &mut Vec<f32>) -> Result<(Cow<'_, [usize]>, Target)> {
        let s = self.get(index)?;
        data.extend_from_slice(&s.data);
        Ok((Cow::Owned(s.shape), s.target))
    }

    /// The class names, indexed by label (empty for regression).
    fn classes(&self) -> &[String] {
        &[]
    }
}

impl<D: Dataset + ?Sized> Dataset for std::sync::Arc<D> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn get(&self, index: usize) -> Result<Sample> {
        (**self).get(index)
    }
    fn append_to(&self, index: usize, data: &mut Vec<f32>) -> Result<(Cow<'_, [usize]>, Target)> {
        (**self).append_to(index, data)
    }
    fn classes(&self) -> &[String] {
        (**self).classes()
    }
}

pub(crate) fn check_index(op: &'static str, index: usize, len: usize) -> Result<()> {
    if index >= len {
        return Err(DataError::Index { op, index, len });
    }
    Ok(())
}

/// Samples held as one f32 block with labels or regression targets (PyTorch's `TensorDataset`).
#[derive(Debug, Clone)]
pub struct TensorDataset {
    data: Vec<f32>,
    item_shape: Vec<usize>,
    labels: Vec<usize>,
    values: Vec<f32>,
    value_width: usize,
    rows: usize,
    regression: bool,
    classes: Vec<String>,
}

impl TensorDataset {
    /// Samples from the rows (first dim) of `inputs`, labelled for classification.
    pub fn new(inputs: &Tensor, labels: Vec<usize>) -> Result<Self> {
        let (data, item_shape) = rows_of("TensorDataset::new", inputs, labels.len())?;
        let classes = labels.iter().max().map_or(0, |m| m + 1);
        Ok(TensorDataset {
            data,
            item_shape,
            rows: labels.len(),
            labels,
            values: Vec::new(),
            value_width: 0,
            regression: false,
            classes: (0..classes).map(|c| c.to_string()).collect(),
        })
    }

    /// Samples from the rows of `inputs` with regression targets from the rows of `targets`.
    pub fn regression(inputs: &Tensor, targets: &Tensor) -> Result<Self> {
        let n = targets.shape().first().copied().unwrap_or(0);
        let (data, item_shape) = rows_of("TensorDataset::regression", inputs, n)?;
        let values = targets.contiguous()?.to_vec_f32();
        let value_width = values.len().checked_div(n).unwrap_or(0);
        Ok(TensorDataset {
            data,
            item_shape,
            labels: Vec::new(),
            values,
            value_width,
            rows: n,
            regression: true,
            classes: Vec::new(),
        })
    }

    /// Replace the class names (one per label value).
    pub fn with_classes(mut self, classes: Vec<String>) -> Result<Self> {
        if let Some(&m) = self.labels.iter().max() {
            if m >= classes.len() {
                return Err(DataError::invalid(
                    "TensorDataset::with_classes",
                    format!("label {m} needs at least {} class names, got {}", m + 1, classes.len()),
                ));
            }
        }
        self.classes = classes;
        Ok(self)
    }
}

fn rows_of(op: &'static str, inputs: &Tensor, n: usize) -> Result<(Vec<f32>, Vec<usize>)> {
    let shape = inputs.shape();
    if shape.first() != Some(&n) {
        return Err(DataError::invalid(
            op,
            format!("inputs of shape {shape:?} do not have {n} rows (one per target)"),
        ));
    }
    Ok((inputs.contiguous()?.to_vec_f32(), shape[1..].to_vec()))
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.rows
    }

    fn get(&self, index: usize) -> Result<Sample> {
        check_index("TensorDataset::get", index, self.len())?;
        let width: usize = self.item_shape.iter().product();
        let target = if self.regression {
            let w = self.value_width;
            Target::Values(self.values[index * w..(index + 1) * w].to_vec())
        } else {
            Target::Class(self.labels[index])
        };
        Ok(Sample {
            data: self.data[index * width..(index + 1) * width].to_vec(),
            shape: self.item_shape.clone(),
            target,
        })
    }

    fn append_to(&self, index: usize, data: &mut Vec<f32>) -> Result<(Cow<'_, [usize]>, Target)> {
        check_index("TensorDataset::get", index, self.len())?;
        let width: usize = self.item_shape.iter().product();
        data.extend_from_slice(&self.data[index * width..(index + 1) * width]);
        let target = if self.regression {
            let w = self.value_width;
            Target::Values(self.values[index * w..(index + 1) * w].to_vec())
        } else {
            Target::Class(self.labels[index])
        };
        Ok((Cow::Borrowed(&self.item_shape), target))
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }
}

/// Labelled 8-bit images held in memory as N×C×H×W bytes; samples come out as f32 in [0, 1].
///
/// The IDX (MNIST family) and CIFAR readers produce this.
#[derive(Debug, Clone)]
pub struct ImageDataset {
    pixels: Vec<u8>,
    labels: Vec<usize>,
    /// `[C, H, W]`.
    shape: [usize; 3],
    classes: Vec<String>,
}

impl ImageDataset {
    /// Images from `pixels` (N×C×H×W) and one label per image; every label must name a class.
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<usize>,
        chw: [usize; 3],
        classes: Vec<String>,
        origin: &Path,
    ) -> Result<Self> {
        let [channels, height, width] = chw;
        let per = channels
            .checked_mul(height)
            .and_then(|v| v.checked_mul(width))
            .filter(|&v| v > 0)
            .ok_or_else(|| DataError::format(origin, format!("bad image size {chw:?}")))?;
        if per.checked_mul(labels.len()) != Some(pixels.len()) {
            return Err(DataError::format(
                origin,
                format!(
                    "{} bytes of pixels do not hold {} images of {chw:?}",
                    pixels.len(),
                    labels.len()
                ),
            ));
        }
        if let Some((index, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= classes.len()) {
            return Err(DataError::LabelOutOfRange {
                path: origin.to_path_buf(),
                index,
                label,
                classes: classes.len(),
            });
        }
        Ok(ImageDataset {
            pixels,
            labels,
            shape: chw,
            classes,
        })
    }

    /// `[C, H, W]` of every image.
    pub fn image_shape(&self) -> [usize; 3] {
        self.shape
    }

    /// All labels, in order.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The raw bytes of image `index` (C×H×W).
    pub fn pixels(&self, index: usize) -> Result<&[u8]> {
        check_index("ImageDataset::pixels", index, self.labels.len())?;
        let per: usize = self.shape.iter().product();
        Ok(&self.pixels[index * per..(index + 1) * per])
    }

    /// The number of images of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }
}

/// `b / 255` for every byte, as torchvision's `ToTensor` computes it (a division, not a
/// multiplication by 1/255, which rounds differently), appended to `out`. A plain loop the
/// compiler vectorizes (a table lookup would stay scalar).
fn append_unit(bytes: &[u8], out: &mut Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        #[target_feature(enable = "avx512f")]
        fn wide(bytes: &[u8], out: &mut Vec<f32>) {
            out.extend(bytes.iter().map(|&b| b as f32 / 255.0));
        }
        // SAFETY: AVX-512F was detected just above.
        return unsafe { wide(bytes, out) };
    }
    out.extend(bytes.iter().map(|&b| b as f32 / 255.0));
}

impl Dataset for ImageDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        let px = self.pixels(index)?;
        let mut data = Vec::with_capacity(px.len());
        append_unit(px, &mut data);
        Ok(Sample {
            data,
            shape: self.shape.to_vec(),
            target: Target::Class(self.labels[index]),
        })
    }

    fn append_to(&self, index: usize, data: &mut Vec<f32>) -> Result<(Cow<'_, [usize]>, Target)> {
        append_unit(self.pixels(index)?, data);
        Ok((Cow::Borrowed(&self.shape), Target::Class(self.labels[index])))
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }
}

/// Caps on what the file readers accept, so that a hostile file cannot exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// The largest file read into memory, in bytes.
    pub max_file_bytes: u64,
    /// The largest decompressed (gzip) or decoded content, in bytes.
    pub max_decoded_bytes: u64,
    /// The largest image width or height accepted by the image decoder.
    pub max_image_side: u32,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_file_bytes: 1 << 30,
            max_decoded_bytes: 1 << 30,
            max_image_side: 16_384,
        }
    }
}

/// Read a whole file whose size is at most `limit` bytes, checking the size before allocating.
pub(crate) fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    if len > limit {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            what: "the file".into(),
            size: len,
            limit,
        });
    }
    let mut buf = Vec::with_capacity(len as usize);
    // `take` guards against a file that grows while it is read.
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| DataError::io(path, e))?;
    if buf.len() as u64 > limit {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            what: "the file".into(),
            size: buf.len() as u64,
            limit,
        });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_to_matches_get() {
        let pixels: Vec<u8> = (0..=255).chain(0..=255).collect();
        let classes = vec!["a".into(), "b".into()];
        let ds = ImageDataset::new(pixels, vec![1, 0], [1, 16, 16], classes, Path::new("t")).unwrap();
        let x = Tensor::from_vec((0..12).map(|v| v as f32).collect::<Vec<_>>(), &[3, 2, 2]).unwrap();
        let labelled = TensorDataset::new(&x, vec![2, 0, 1]).unwrap();
        let y = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]).unwrap();
        let regression = TensorDataset::regression(&x, &y).unwrap();
        for d in [&ds as &dyn Dataset, &labelled, &regression] {
            let mut data = vec![-1.0];
            for i in 0..d.len() {
                let (shape, target) = d.append_to(i, &mut data).unwrap();
                let s = d.get(i).unwrap();
                assert_eq!((shape.into_owned(), target), (s.shape, s.target));
                assert_eq!(data[data.len() - s.data.len()..], s.data[..]);
            }
            assert!(d.append_to(d.len(), &mut data).is_err());
        }
        // Pixels are b / 255 rounded once, as torchvision's ToTensor.
        let px = ds.get(0).unwrap().data;
        assert!(px.iter().enumerate().all(|(b, &v)| v == b as f32 / 255.0));
        assert_eq!((px[0], px[255]), (0.0, 1.0));
    }
}
