//! IDX files (the MNIST family: MNIST, Fashion-MNIST, KMNIST, EMNIST), raw or gzipped.
//!
//! ```
//! use nabla_data::idx::{idx_from_bytes, IdxArray};
//! use nabla_data::ReadLimits;
//! // magic 00 00 08 01 (unsigned bytes, one dim), dim 3, then the data.
//! let bytes = [0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9];
//! let a = idx_from_bytes(&bytes, "labels.idx".as_ref(), &ReadLimits::default())?;
//! assert_eq!(a, IdxArray { dims: vec![3], data: vec![7, 8, 9] });
//! # Ok::<(), nabla_data::DataError>(())
//! ```
//!
//! Every header field is checked against the bytes present before anything is allocated from it;
//! gzip input is read through a limit, its CRC and length are verified, and a second member or
//! trailing garbage is refused.

use crate::dataset::read_capped;
use crate::{DataError, ImageDataset, ReadLimits, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The IDX type byte for unsigned bytes, the only element type the MNIST family uses.
const TYPE_U8: u8 = 0x08;
/// The most dimensions accepted (MNIST uses 1 and 3).
const MAX_DIMS: u8 = 4;
/// Deflate cannot expand data by more than about 1032:1, so a declared size beyond this
/// multiple of the compressed size is a lie, found without reading.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// The contents of one IDX file: its dimensions and its bytes in row-major order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions from the header, none of them zero.
    pub dims: Vec<usize>,
    /// `dims.iter().product()` bytes.
    pub data: Vec<u8>,
}

/// Read an IDX file of unsigned bytes, gzipped (detected by its magic) or raw.
pub fn read_idx(path: &Path, limits: &ReadLimits) -> Result<IdxArray> {
    let raw = read_capped(path, limits.max_file_bytes)?;
    idx_from_bytes(&raw, path, limits)
}

/// Parse IDX content held in memory; `origin` names it in errors.
pub fn idx_from_bytes(raw: &[u8], origin: &Path, limits: &ReadLimits) -> Result<IdxArray> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let bound = (raw.len() as u64)
            .saturating_mul(MAX_DEFLATE_RATIO)
            .saturating_add(4096)
            .min(limits.max_decoded_bytes);
        let mut dec = flate2::bufread::GzDecoder::new(raw);
        let arr = parse(&mut dec, origin, bound, true)?;
        let rest = dec.into_inner();
        if !rest.is_empty() {
            return Err(DataError::Gzip {
                path: origin.to_path_buf(),
                msg: format!(
                    "{} bytes follow the first gzip member (several members or trailing data)",
                    rest.len()
                ),
            });
        }
        Ok(arr)
    } else {
        let bound = (raw.len() as u64).min(limits.max_decoded_bytes);
        let mut r = raw;
        parse(&mut r, origin, bound, false)
    }
}

fn read_err(origin: &Path, gz: bool, e: std::io::Error) -> DataError {
    if gz {
        DataError::Gzip {
            path: origin.to_path_buf(),
            msg: format!("corrupt or truncated stream: {e}"),
        }
    } else {
        DataError::io(origin, e)
    }
}

/// Fill `buf` completely, or report how many bytes there were.
fn read_full(r: &mut impl Read, buf: &mut [u8], origin: &Path, gz: bool) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_err(origin, gz, e)),
        }
    }
    Ok(got)
}

/// Parse a header and its data from a stream holding at most `bound` bytes of content.
fn parse(r: &mut impl Read, origin: &Path, bound: u64, gz: bool) -> Result<IdxArray> {
    let fmt = |msg: String| DataError::format(origin, msg);
    let mut magic = [0u8; 4];
    let got = read_full(r, &mut magic, origin, gz)?;
    if got < 4 {
        return Err(fmt(format!(
            "truncated: {got} bytes, shorter than the 4-byte IDX magic"
        )));
    }
    if magic[0] != 0 || magic[1] != 0 {
        return Err(fmt(format!(
            "bad magic {:02x} {:02x} {:02x} {:02x}: an IDX file starts with 00 00",
            magic[0], magic[1], magic[2], magic[3]
        )));
    }
    let ty = magic[2];
    if ty != TYPE_U8 {
        let known = matches!(ty, 0x09 | 0x0B | 0x0C | 0x0D | 0x0E);
        return Err(fmt(format!(
            "type byte 0x{ty:02x} is {}; only 0x08 (unsigned byte) is supported",
            if known { "a valid IDX type" } else { "not an IDX type" }
        )));
    }
    let nd = magic[3];
    if nd == 0 || nd > MAX_DIMS {
        return Err(fmt(format!("{nd} dimensions; expected 1 to {MAX_DIMS}")));
    }
    let mut hdr = vec![0u8; 4 * nd as usize];
    let got = read_full(r, &mut hdr, origin, gz)?;
    if got < hdr.len() {
        return Err(fmt(format!(
            "truncated header: {nd} dimensions need {} bytes, found {got}",
            hdr.len()
        )));
    }
    let mut dims = Vec::with_capacity(nd as usize);
    let mut total: u64 = 1;
    for (k, chunk) in hdr.chunks_exact(4).enumerate() {
        let d = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        if d == 0 {
            return Err(fmt(format!("dimension {k} is zero")));
        }
        total = total
            .checked_mul(d as u64)
            .ok_or_else(|| fmt(format!("dimensions {dims:?} × {d}: the product overflows")))?;
        dims.push(d as usize);
    }
    let header_len = 4 + hdr.len() as u64;
    if total.saturating_add(header_len) > bound {
        return Err(if gz {
            DataError::TooLarge {
                path: origin.to_path_buf(),
                what: format!("the data declared by dimensions {dims:?}"),
                size: total,
                limit: bound.saturating_sub(header_len),
            }
        } else {
            fmt(format!(
                "dimensions {dims:?} declare {total} bytes of data but only {} are present",
                bound.saturating_sub(header_len)
            ))
        });
    }
    let total = usize::try_from(total).map_err(|_| fmt(format!("{total} bytes do not fit memory")))?;
    // Raw input was checked against the bytes present; a gzip stream is only bounded by the
    // deflate ratio, so there the buffer grows with the data actually inflated.
    let mut data = Vec::with_capacity(if gz { total.min(1 << 20) } else { total });
    r.take(total as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| read_err(origin, gz, e))?;
    if data.len() < total {
        return Err(fmt(format!(
            "truncated: dimensions {dims:?} declare {total} bytes of data, found {}",
            data.len()
        )));
    }
    if data.len() > total {
        return Err(fmt(format!(
            "trailing bytes after the {total} bytes declared by dimensions {dims:?}"
        )));
    }
    Ok(IdxArray { dims, data })
}

/// Images from an N×H×W IDX file and labels from an N IDX file, checked against each other.
///
/// `transpose` swaps H and W of each image (EMNIST stores images column-major).
pub fn load_idx_pair(
    images: &Path,
    labels: &Path,
    classes: Vec<String>,
    transpose: bool,
    limits: &ReadLimits,
) -> Result<ImageDataset> {
    let img = read_idx(images, limits)?;
    let (n, h, w) = match img.dims[..] {
        [n, h, w] => (n, h, w),
        _ => {
            return Err(DataError::format(
                images,
                format!("expected images of 3 dimensions (N, H, W), found {:?}", img.dims),
            ))
        }
    };
    let lab = read_idx(labels, limits)?;
    if lab.dims.len() != 1 {
        return Err(DataError::format(
            labels,
            format!("expected labels of 1 dimension (N), found {:?}", lab.dims),
        ));
    }
    if lab.dims[0] != n {
        return Err(DataError::CountMismatch {
            left_path: images.to_path_buf(),
            left: n,
            right_path: labels.to_path_buf(),
            right: lab.dims[0],
        });
    }
    let mut pixels = img.data;
    let (h, w) = if transpose {
        let mut t = vec![0u8; pixels.len()];
        for (src, dst) in pixels.chunks_exact(h * w).zip(t.chunks_exact_mut(h * w)) {
            for y in 0..h {
                for x in 0..w {
                    dst[x * h + y] = src[y * w + x];
                }
            }
        }
        pixels = t;
        (w, h)
    } else {
        (h, w)
    };
    let labels_v = lab.data.iter().map(|&b| b as usize).collect();
    ImageDataset::new(pixels, labels_v, [1, h, w], classes, labels)
}

/// Which half of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

/// The EMNIST splits (each with its own file prefix and classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmnistSplit {
    /// 47 classes: digits, upper case and 11 lower-case letters.
    Balanced,
    /// 62 classes: digits, upper and lower case.
    ByClass,
    /// 47 classes, merged like `Balanced`.
    ByMerge,
    /// 10 digits.
    Digits,
    /// 26 letters, labels 1..=26 (label 0 unused, named "N/A" as torchvision does).
    Letters,
    /// 10 digits, the MNIST subset.
    Mnist,
}

/// The data sets stored as IDX files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MnistFamily {
    /// Zalando's Fashion-MNIST.
    Fashion,
    /// LeCun's handwritten digits.
    Mnist,
    /// Kuzushiji-MNIST (cursive Japanese).
    Kmnist,
    /// Extended MNIST.
    Emnist(EmnistSplit),
}

/// Fashion-MNIST's class names, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

impl MnistFamily {
    /// The image and label file names of a split, without the `.gz` suffix.
    pub fn file_names(&self, split: Split) -> [String; 2] {
        let stem = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let prefix = match self {
            MnistFamily::Emnist(s) => format!("emnist-{}-", emnist_name(*s)),
            _ => String::new(),
        };
        let stem = match (self, split) {
            (MnistFamily::Emnist(_), Split::Test) => "test",
            _ => stem,
        };
        [
            format!("{prefix}{stem}-images-idx3-ubyte"),
            format!("{prefix}{stem}-labels-idx1-ubyte"),
        ]
    }

    /// The class names, by label.
    pub fn classes(&self) -> Vec<String> {
        let digits = || (0..10).map(|d| d.to_string());
        let upper = || ('A'..='Z').map(String::from);
        match self {
            MnistFamily::Fashion => FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect(),
            MnistFamily::Mnist => [
                "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
            ]
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{i} - {n}"))
            .collect(),
            MnistFamily::Kmnist => ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            MnistFamily::Emnist(EmnistSplit::Digits | EmnistSplit::Mnist) => digits().collect(),
            MnistFamily::Emnist(EmnistSplit::Letters) => std::iter::once("N/A".to_string())
                .chain(('a'..='z').map(String::from))
                .collect(),
            MnistFamily::Emnist(EmnistSplit::ByClass) => {
                digits().chain(upper()).chain(('a'..='z').map(String::from)).collect()
            }
            MnistFamily::Emnist(EmnistSplit::Balanced | EmnistSplit::ByMerge) => digits()
                .chain(upper())
                .chain("abdefghnqrt".chars().map(String::from))
                .collect(),
        }
    }

    /// The file holding `name` in `dir`: `name` raw, or else `name.gz`.
    pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
        [dir.join(name), dir.join(format!("{name}.gz"))]
            .into_iter()
            .find(|p| p.is_file())
    }

    /// Whether `dir` holds both splits (raw or gzipped files).
    pub fn is_in(&self, dir: &Path) -> bool {
        [Split::Train, Split::Test]
            .iter()
            .all(|&s| self.file_names(s).iter().all(|n| Self::find_file(dir, n).is_some()))
    }

    /// Load a split from the files in `dir`.
    pub fn load_dir(&self, dir: &Path, split: Split, limits: &ReadLimits) -> Result<ImageDataset> {
        let [img, lab] = self.file_names(split);
        let find = |name: &str| {
            Self::find_file(dir, name).ok_or_else(|| DataError::NotFound {
                name: format!("{name}[.gz]"),
                searched: vec![dir.to_path_buf()],
                hint: String::new(),
            })
        };
        let (img, lab) = (find(&img)?, find(&lab)?);
        let transpose = matches!(self, MnistFamily::Emnist(_));
        load_idx_pair(&img, &lab, self.classes(), transpose, limits)
    }
}

fn emnist_name(s: EmnistSplit) -> &'static str {
    match s {
        EmnistSplit::Balanced => "balanced",
        EmnistSplit::ByClass => "byclass",
        EmnistSplit::ByMerge => "bymerge",
        EmnistSplit::Digits => "digits",
        EmnistSplit::Letters => "letters",
        EmnistSplit::Mnist => "mnist",
    }
}
