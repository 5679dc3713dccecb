//! Reading and writing images for commands: PNG/JPEG pictures and CSV matrices of raw
//! numbers, as `[C, H, W]` f64 tensors; every output is written atomically.
//!
//! CSV form: one image row per line, comma-separated numbers (negative allowed); a blank
//! line separates channels. Pictures read as values in `[0, 1]`: gray (and gray+alpha)
//! as one channel, colour as three (alpha is dropped).

use crate::error::{CliError, CliResult};
use image::{DynamicImage, ExtendedColorType, ImageEncoder};
use nabla_core::Tensor;
use std::path::Path;

/// File kinds, told apart by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.png`
    Png,
    /// `.jpg` / `.jpeg`
    Jpeg,
    /// `.csv`: raw numbers.
    Csv,
}

impl Format {
    /// The format a path's extension names, or an error listing the known ones.
    pub fn of(path: &Path) -> CliResult<Format> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("jpg" | "jpeg") => Ok(Format::Jpeg),
            Some("csv") => Ok(Format::Csv),
            _ => Err(CliError::new(format!(
                "{}: unknown file type (use .png, .jpg, .jpeg or .csv)",
                path.display()
            ))),
        }
    }
}

/// An image as read: the `[C, H, W]` values and whether they are a picture in `[0, 1]`.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// `[C, H, W]`, f64.
    pub data: Tensor,
    /// True for PNG/JPEG (range `[0, 1]`), false for raw CSV numbers.
    pub picture: bool,
}

impl Loaded {
    /// The value range the image lives in: `[0, 1]` for pictures, the data's own for CSV.
    pub fn range(&self) -> (f64, f64) {
        if self.picture {
            (0.0, 1.0)
        } else {
            min_max(&self.data.to_vec_f64())
        }
    }
}

/// Read a picture or CSV matrix.
pub fn read_image(path: &Path) -> CliResult<Loaded> {
    let format = Format::of(path)?;
    let bytes = std::fs::read(path).map_err(|e| CliError::io("read image", path, e))?;
    if format == Format::Csv {
        let text =
            String::from_utf8(bytes).map_err(|_| CliError::new(format!("{}: not a text CSV file", path.display())))?;
        return Ok(Loaded {
            data: parse_csv(&text).map_err(|e| CliError::new(format!("{}: {e}", path.display())))?,
            picture: false,
        });
    }
    let img = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| CliError::io("read image", path, e))?
        .decode()
        .map_err(|e| CliError::io("read image", path, e))?;
    Ok(Loaded {
        data: picture_tensor(&img)?,
        picture: true,
    })
}

fn picture_tensor(img: &DynamicImage) -> CliResult<Tensor> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if img.color().has_color() {
        let rgb = img.to_rgb32f();
        let px = rgb.as_raw();
        let mut v = vec![0.0f64; 3 * h * w];
        for (i, p) in px.chunks_exact(3).enumerate() {
            for c in 0..3 {
                v[c * h * w + i] = f64::from(p[c]);
            }
        }
        Ok(Tensor::from_vec(v, &[3, h, w])?)
    } else {
        let v = img.to_luma32f().as_raw().iter().map(|&p| f64::from(p)).collect();
        Ok(Tensor::from_vec(v, &[1, h, w])?)
    }
}

/// Parse the CSV form into `[C, H, W]`.
pub fn parse_csv(text: &str) -> Result<Tensor, String> {
    let mut channels: Vec<Vec<Vec<f64>>> = vec![vec![]];
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            if channels.last().is_some_and(|c| !c.is_empty()) {
                channels.push(vec![]);
            }
            continue;
        }
        let row = line
            .split(',')
            .enumerate()
            .map(|(col, s)| match s.trim().parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(format!(
                    "line {}, column {}: {:?} is not a finite number",
                    n + 1,
                    col + 1,
                    s.trim()
                )),
            })
            .collect::<Result<Vec<f64>, String>>()?;
        if let Some(c) = channels.last_mut() {
            c.push(row);
        }
    }
    if channels.last().is_some_and(|c| c.is_empty()) {
        channels.pop();
    }
    let first = channels.first().ok_or("empty file: no numbers")?;
    let (h, w) = (first.len(), first[0].len());
    for (c, ch) in channels.iter().enumerate() {
        if ch.len() != h || ch.iter().any(|r| r.len() != w) {
            return Err(format!(
                "rows of different lengths or channels of different sizes (channel {} is not {h}×{w})",
                c + 1
            ));
        }
    }
    let flat: Vec<f64> = channels.into_iter().flatten().flatten().collect();
    let c = flat.len() / (h * w);
    Tensor::from_vec(flat, &[c, h, w]).map_err(|e| e.to_string())
}

/// The CSV form of a `[H, W]` or `[C, H, W]` tensor (f32 values print at f32 precision).
pub fn to_csv(t: &Tensor) -> CliResult<String> {
    let (c, h, w) = match *t.shape() {
        [h, w] => (1, h, w),
        [c, h, w] => (c, h, w),
        _ => {
            return Err(CliError::new(format!(
                "cannot write a tensor of shape {:?} as CSV",
                t.shape()
            )))
        }
    };
    let single = t.dtype() == nabla_core::DType::F32;
    let v = t.to_vec_f64();
    let mut s = String::with_capacity(v.len() * 8);
    for ch in 0..c {
        if ch > 0 {
            s.push('\n');
        }
        for r in 0..h {
            let row = &v[(ch * h + r) * w..(ch * h + r + 1) * w];
            let cells: Vec<String> = row
                .iter()
                .map(|&x| {
                    if single {
                        format!("{}", x as f32)
                    } else {
                        format!("{x}")
                    }
                })
                .collect();
            s.push_str(&cells.join(","));
            s.push('\n');
        }
    }
    Ok(s)
}

/// Write `bytes` to `path` through a temporary file in the same folder and a rename, so
/// the file is either the old one or complete, never half-written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> CliResult<()> {
    Ok(nabla_train::write_atomic(path, bytes)?)
}

/// Write raw numbers as CSV.
pub fn write_csv(path: &Path, t: &Tensor) -> CliResult<()> {
    write_atomic(path, to_csv(t)?.as_bytes())
}

/// 8-bit pixels, interleaved, row-major: 1 channel (gray) or 3 (RGB).
#[derive(Debug, Clone)]
pub struct Pixels {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// 1 or 3.
    pub channels: usize,
    /// `height × width × channels` bytes.
    pub data: Vec<u8>,
}

impl Pixels {
    /// Quantise a `[C, H, W]` tensor with values in `[0, 1]` (clipped); C is 1 or 3.
    pub fn from_unit(t: &Tensor) -> CliResult<Pixels> {
        let (c, h, w) = match *t.shape() {
            [h, w] => (1, h, w),
            [c, h, w] if c == 1 || c == 3 => (c, h, w),
            _ => {
                return Err(CliError::new(format!(
                    "cannot store shape {:?} as a picture (need 1 or 3 channels)",
                    t.shape()
                )))
            }
        };
        let v = t.to_vec_f64();
        let mut data = vec![0u8; c * h * w];
        for ch in 0..c {
            for i in 0..h * w {
                data[i * c + ch] = (v[ch * h * w + i].clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
        Ok(Pixels {
            width: w,
            height: h,
            channels: c,
            data,
        })
    }

    /// Encode as PNG or JPEG (by `path`'s extension) and write atomically.
    pub fn save(&self, path: &Path) -> CliResult<()> {
        let color = if self.channels == 3 {
            ExtendedColorType::Rgb8
        } else {
            ExtendedColorType::L8
        };
        let (w, h) = (self.width as u32, self.height as u32);
        let mut buf = Vec::new();
        let encoded = match Format::of(path)? {
            Format::Png => image::codecs::png::PngEncoder::new(&mut buf).write_image(&self.data, w, h, color),
            Format::Jpeg => {
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 95).write_image(&self.data, w, h, color)
            }
            Format::Csv => {
                return Err(CliError::new(format!(
                    "{}: a picture cannot be saved as CSV",
                    path.display()
                )))
            }
        };
        encoded.map_err(|e| CliError::io("encode", path, e))?;
        write_atomic(path, &buf)
    }
}

/// Smallest and largest of `v` (`(0, 0)` when empty).
pub fn min_max(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
        (lo.min(x), hi.max(x))
    })
}

/// Map `[lo, hi]` linearly onto `[0, 1]` (a flat range maps to 0).
pub fn rescale(v: &[f64], lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    v.iter()
        .map(|&x| if span > 0.0 { (x - lo) / span } else { 0.0 })
        .collect()
}

/// One gray channel `[H, W]` of a `[C, H, W]` image: Rec. 601 luma for 3 channels,
/// the channel mean otherwise.
pub fn to_gray(t: &Tensor) -> CliResult<Tensor> {
    let c = t.shape()[0];
    let g = if c == 3 {
        let w = Tensor::from_vec(vec![0.299f64, 0.587, 0.114], &[3, 1, 1])?.to_dtype(t.dtype())?;
        t.mul(&w)?.sum(&[0], false)?
    } else {
        t.mean(&[0], false)?
    };
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_with_channels_and_negatives() {
        let t = parse_csv("1, -2.5,3\n4,5e-3,6\n\n7,8,9\n10,11,12\n\n").unwrap();
        assert_eq!(t.shape(), &[2, 2, 3]);
        assert_eq!(t.to_vec_f64()[1], -2.5);
        let text = to_csv(&t).unwrap();
        assert_eq!(text, "1,-2.5,3\n4,0.005,6\n\n7,8,9\n10,11,12\n");
        assert_eq!(parse_csv(&text).unwrap().to_vec_f64(), t.to_vec_f64());
    }

    #[test]
    fn csv_errors_name_the_place() {
        assert!(parse_csv("").unwrap_err().contains("empty"));
        assert!(parse_csv("1,2\n3\n").unwrap_err().contains("different lengths"));
        assert!(parse_csv("1,x\n").unwrap_err().contains("line 1, column 2"));
        assert!(parse_csv("1,NaN\n").is_err());
        assert!(parse_csv("1,2\n\n3\n").is_err());
    }

    #[test]
    fn formats_and_scaling() {
        assert_eq!(Format::of(Path::new("a/B.PNG")).unwrap(), Format::Png);
        assert_eq!(Format::of(Path::new("k.csv")).unwrap(), Format::Csv);
        assert!(Format::of(Path::new("x.gif")).is_err());
        assert_eq!(rescale(&[1.0, 3.0, 2.0], 1.0, 3.0), vec![0.0, 1.0, 0.5]);
        assert_eq!(min_max(&[2.0, -1.0, 5.0]), (-1.0, 5.0));
        let p = Pixels::from_unit(&Tensor::from_vec(vec![0.0f64, 0.5, 1.2, -1.0], &[1, 2, 2]).unwrap()).unwrap();
        assert_eq!(p.data, vec![0, 128, 255, 0]);
    }
}
