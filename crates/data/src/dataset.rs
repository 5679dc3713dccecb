//! The [`Dataset`] trait and the in-memory data sets that the file readers produce.
//!
//! A data set has a [`dtype`](Dataset::dtype) (f32 unless it stores another, as a
//! [`TensorDataset`] of f64 tensors does), and batches come out in it. [`Dataset::get`] gives
//! one sample in f32 for the per-sample uses (transforms, inspection).
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

use crate::buffers::{buffer_as, extend_f32, extend_range, to_f32};
use crate::{BatchBuffers, DataError, Result};
use nabla_core::{Buffer, DType, Tensor};
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

    /// The dtype of the features and regression targets the data set holds; a loader's
    /// batches come out in it.
    fn dtype(&self) -> DType {
        DType::F32
    }

    /// Append sample `index` to `batch` (its features, and its label or target values) and
    /// return the features' shape: how a loader fills a batch with no vector per sample.
    /// The default goes through [`get`](Self::get) (f32, converted to the batch's dtype);
    /// in-memory data sets copy straight from their storage.
    fn append_to(&self, index: usize, batch: &mut BatchBuffers) -> Result<Cow<'_, [usize]>> {
        let s = self.get(index)?;
        batch.push(&s);
        Ok(Cow::Owned(s.shape))
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
    fn dtype(&self) -> DType {
        (**self).dtype()
    }
    fn append_to(&self, index: usize, batch: &mut BatchBuffers) -> Result<Cow<'_, [usize]>> {
        (**self).append_to(index, batch)
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

/// Samples held as one block of the inputs' dtype (f32 or f64) with labels or regression
/// targets (PyTorch's `TensorDataset`); batches come out in that dtype.
#[derive(Debug, Clone)]
pub struct TensorDataset {
    data: Buffer,
    item_shape: Vec<usize>,
    labels: Vec<usize>,
    values: Buffer,
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
            values: Buffer::F32(Vec::new()),
            data,
            item_shape,
            rows: labels.len(),
            labels,
            value_width: 0,
            regression: false,
            classes: (0..classes).map(|c| c.to_string()).collect(),
        })
    }

    /// Samples from the rows of `inputs` with regression targets from the rows of `targets`
    /// (held in the inputs' dtype, so that a batch has one dtype).
    pub fn regression(inputs: &Tensor, targets: &Tensor) -> Result<Self> {
        let n = targets.shape().first().copied().unwrap_or(0);
        let (data, item_shape) = rows_of("TensorDataset::regression", inputs, n)?;
        let values = buffer_as(targets, inputs.dtype())?;
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

    fn width(&self) -> usize {
        self.item_shape.iter().product()
    }

    /// The rows of sample `index`'s values, when the set is for regression.
    fn value_rows(&self, index: usize) -> Option<std::ops::Range<usize>> {
        let w = self.value_width;
        self.regression.then(|| index * w..(index + 1) * w)
    }
}

fn rows_of(op: &'static str, inputs: &Tensor, n: usize) -> Result<(Buffer, Vec<usize>)> {
    let shape = inputs.shape();
    if shape.first() != Some(&n) {
        return Err(DataError::invalid(
            op,
            format!("inputs of shape {shape:?} do not have {n} rows (one per target)"),
        ));
    }
    Ok((buffer_as(inputs, inputs.dtype())?, shape[1..].to_vec()))
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.rows
    }

    fn get(&self, index: usize) -> Result<Sample> {
        check_index("TensorDataset::get", index, self.len())?;
        let width = self.width();
        let target = match self.value_rows(index) {
            Some(r) => Target::Values(to_f32(&self.values, r)),
            None => Target::Class(self.labels[index]),
        };
        Ok(Sample {
            data: to_f32(&self.data, index * width..(index + 1) * width),
            shape: self.item_shape.clone(),
            target,
        })
    }

    fn dtype(&self) -> DType {
        self.data.dtype()
    }

    fn append_to(&self, index: usize, batch: &mut BatchBuffers) -> Result<Cow<'_, [usize]>> {
        check_index("TensorDataset::get", index, self.len())?;
        let width = self.width();
        extend_range(&mut batch.data, &self.data, index * width..(index + 1) * width);
        match self.value_rows(index) {
            Some(r) => extend_range(&mut batch.values, &self.values, r),
            None => batch.labels.push(self.labels[index]),
        }
        Ok(Cow::Borrowed(&self.item_shape))
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
    if nabla_core::cpu::isa() == nabla_core::cpu::Isa::Avx512 {
        #[target_feature(enable = "avx512f")]
        fn wide(bytes: &[u8], out: &mut Vec<f32>) {
            out.extend(bytes.iter().map(|&b| b as f32 / 255.0));
        }
        // SAFETY: `cpu` grants the AVX-512 level only on a CPU that has AVX-512F.
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

    fn append_to(&self, index: usize, batch: &mut BatchBuffers) -> Result<Cow<'_, [usize]>> {
        let px = self.pixels(index)?;
        match &mut batch.data {
            Buffer::F32(data) => append_unit(px, data),
            other => {
                let mut unit = Vec::with_capacity(px.len());
                append_unit(px, &mut unit);
                extend_f32(other, &unit);
            }
        }
        batch.labels.push(self.labels[index]);
        Ok(Cow::Borrowed(&self.shape))
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
        let f32s = |b: &Buffer| <f32 as nabla_core::Element>::slice(b).unwrap().to_vec();
        for d in [&ds as &dyn Dataset, &labelled, &regression] {
            // The same batch gathered by append_to and from get's samples, after a first value.
            let (mut batch, mut via_get) = (BatchBuffers::new(DType::F32), BatchBuffers::new(DType::F32));
            for b in [&mut batch, &mut via_get] {
                b.data = Buffer::F32(vec![-1.0]);
            }
            for i in 0..d.len() {
                let shape = d.append_to(i, &mut batch).unwrap();
                let s = d.get(i).unwrap();
                via_get.push(&s);
                assert_eq!(shape.into_owned(), s.shape);
                assert_eq!(f32s(&batch.data), f32s(&via_get.data));
                assert_eq!(batch.labels, via_get.labels);
                assert_eq!(f32s(&batch.values), f32s(&via_get.values));
            }
            assert!(d.append_to(d.len(), &mut batch).is_err());
        }
        // Pixels are b / 255 rounded once, as torchvision's ToTensor.
        let px = ds.get(0).unwrap().data;
        assert!(px.iter().enumerate().all(|(b, &v)| v == b as f32 / 255.0));
        assert_eq!((px[0], px[255]), (0.0, 1.0));
    }
}
