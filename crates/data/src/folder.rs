//! Image folders: one subfolder per class holding PNG/JPEG files (torchvision's `ImageFolder`).
//!
//! ```no_run
//! use nabla_data::{ImageFolder, Fit, Dataset};
//! // root/cat/1.png, root/dog/a.jpg, ... → classes ["cat", "dog"], samples 3×64×64 in [0, 1].
//! let ds = ImageFolder::new("root".as_ref(), [64, 64])?.with_fit(Fit::CenterCrop);
//! let s = ds.get(0)?;
//! assert_eq!(s.shape, vec![3, 64, 64]);
//! # Ok::<(), nabla_data::DataError>(())
//! ```
//!
//! Files are decoded when a sample is asked for (by the loader's workers), under size limits.

use crate::dataset::{check_index, read_capped};
use crate::{DataError, Dataset, ReadLimits, Result, Sample, Target};
use image::imageops::FilterType;
use std::path::{Path, PathBuf};

/// How an image is brought to the target size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Resize to exactly the target size, changing the aspect ratio if needed.
    Stretch,
    /// Resize so that the image covers the target, then cut the centre (keeps the aspect ratio).
    CenterCrop,
}

/// Labelled images found in class subfolders, decoded and resized on access.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    items: Vec<(PathBuf, usize)>,
    classes: Vec<String>,
    size: [usize; 2],
    channels: usize,
    fit: Fit,
    limits: ReadLimits,
}

const MAX_DEPTH: usize = 16;

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        out.push(entry.map_err(|e| DataError::io(dir, e))?.path());
    }
    out.sort();
    Ok(out)
}

fn collect_images(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    for p in sorted_entries(dir)? {
        if p.is_dir() && depth < MAX_DEPTH {
            collect_images(&p, depth + 1, out)?;
        } else if p.is_file() && is_image(&p) {
            out.push(p);
        }
    }
    Ok(())
}

impl ImageFolder {
    /// Scan `root` (classes are its subfolders in sorted order); samples are RGB, `size` = [H, W],
    /// fitted with [`Fit::CenterCrop`].
    pub fn new(root: &Path, size: [usize; 2]) -> Result<Self> {
        if size[0] == 0 || size[1] == 0 || size.iter().any(|&s| s > u32::MAX as usize) {
            return Err(DataError::invalid(
                "ImageFolder::new",
                format!("bad target size {size:?}"),
            ));
        }
        let mut classes = Vec::new();
        let mut items = Vec::new();
        for dir in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut files = Vec::new();
            collect_images(&dir, 0, &mut files)?;
            if files.is_empty() {
                return Err(DataError::format(&dir, "class folder holds no .png/.jpg/.jpeg file"));
            }
            items.extend(files.into_iter().map(|f| (f, classes.len())));
            classes.push(name);
        }
        if classes.is_empty() {
            return Err(DataError::format(root, "no class subfolders"));
        }
        Ok(ImageFolder {
            items,
            classes,
            size,
            channels: 3,
            fit: Fit::CenterCrop,
            limits: ReadLimits::default(),
        })
    }

    /// Decode to 1 channel (grayscale) or 3 (RGB).
    pub fn with_channels(mut self, channels: usize) -> Result<Self> {
        if channels != 1 && channels != 3 {
            return Err(DataError::invalid(
                "ImageFolder::with_channels",
                format!("{channels} channels; expected 1 or 3"),
            ));
        }
        self.channels = channels;
        Ok(self)
    }

    /// How images are brought to the target size.
    pub fn with_fit(mut self, fit: Fit) -> Self {
        self.fit = fit;
        self
    }

    /// The caps on file size, decoded size and image sides.
    pub fn with_limits(mut self, limits: ReadLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Images given as (file, label) pairs over `classes`, `channels` (1 or 3) × `size`,
    /// fitted with `fit` (for a caller that has scanned and checked the files itself).
    pub fn from_items(
        items: Vec<(PathBuf, usize)>,
        classes: Vec<String>,
        size: [usize; 2],
        channels: usize,
        fit: Fit,
    ) -> Result<Self> {
        if let Some((p, l)) = items.iter().find(|(_, l)| *l >= classes.len()) {
            return Err(DataError::invalid(
                "ImageFolder::from_items",
                format!("{}: label {l} of {} classes", p.display(), classes.len()),
            ));
        }
        let f = ImageFolder {
            items,
            classes,
            size,
            channels: 3,
            fit,
            limits: ReadLimits::default(),
        };
        f.with_channels(channels)
    }

    /// The image files and their labels, in sample order.
    pub fn items(&self) -> &[(PathBuf, usize)] {
        &self.items
    }
}

/// Decode an image file, refusing files, sides and decoded sizes beyond `limits` before
/// anything is allocated for them.
pub(crate) fn decode_capped(path: &Path, limits: &ReadLimits) -> Result<image::DynamicImage> {
    let bad = |msg: String| DataError::Image {
        path: path.to_path_buf(),
        msg,
    };
    let bytes = read_capped(path, limits.max_file_bytes)?;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?;
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(limits.max_image_side);
    lim.max_image_height = Some(limits.max_image_side);
    lim.max_alloc = Some(limits.max_decoded_bytes);
    reader.limits(lim);
    reader.decode().map_err(|e| bad(e.to_string()))
}

/// Decode an image file under `limits` and bring it to `size` ([H, W]) as C×H×W f32 in [0, 1].
pub fn load_image(path: &Path, size: [usize; 2], channels: usize, fit: Fit, limits: &ReadLimits) -> Result<Vec<f32>> {
    let bytes = load_image_u8(path, size, channels, fit, limits)?;
    // A division, as `ImageDataset` computes it, so cached and decoded samples agree bit for bit.
    Ok(bytes.iter().map(|&b| b as f32 / 255.0).collect())
}

/// Decode an image file under `limits` and bring it to `size` ([H, W]) as C×H×W bytes (the
/// 8-bit values that [`load_image`] divides by 255; what an in-memory cache keeps).
pub fn load_image_u8(path: &Path, size: [usize; 2], channels: usize, fit: Fit, limits: &ReadLimits) -> Result<Vec<u8>> {
    let img = decode_capped(path, limits)?;
    let (th, tw) = (size[0] as u32, size[1] as u32);
    let img = if (img.width(), img.height()) == (tw, th) {
        img
    } else {
        match fit {
            Fit::Stretch => img.resize_exact(tw, th, FilterType::Triangle),
            Fit::CenterCrop => {
                let (w, h) = (img.width().max(1) as f64, img.height().max(1) as f64);
                let scale = (tw as f64 / w).max(th as f64 / h);
                let (rw, rh) = (((w * scale).ceil() as u32).max(tw), ((h * scale).ceil() as u32).max(th));
                let r = img.resize_exact(rw, rh, FilterType::Triangle);
                r.crop_imm((rw - tw) / 2, (rh - th) / 2, tw, th)
            }
        }
    };
    let plane = size[0] * size[1];
    let mut out = vec![0u8; plane * channels];
    if channels == 1 {
        for (o, p) in out.iter_mut().zip(img.to_luma8().pixels()) {
            *o = p.0[0];
        }
    } else {
        for (i, p) in img.to_rgb8().pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = p.0[c];
            }
        }
    }
    Ok(out)
}

/// What an image file's header says: `[H, W]` and whether it is grey (luma, with or
/// without alpha); the pixels are not decoded.
pub fn probe_image(path: &Path, limits: &ReadLimits) -> Result<([usize; 2], bool)> {
    use image::ImageDecoder;
    let bad = |msg: String| DataError::Image {
        path: path.to_path_buf(),
        msg,
    };
    let bytes = read_capped(path, limits.max_file_bytes)?;
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?;
    let dec = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    let (w, h) = dec.dimensions();
    if w == 0 || h == 0 || w > limits.max_image_side || h > limits.max_image_side {
        return Err(bad(format!("{w}×{h} pixels is outside 1..={}", limits.max_image_side)));
    }
    let grey = matches!(
        dec.color_type(),
        image::ColorType::L8 | image::ColorType::La8 | image::ColorType::L16 | image::ColorType::La16
    );
    Ok(([h as usize, w as usize], grey))
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        check_index("ImageFolder::get", index, self.items.len())?;
        let (path, label) = &self.items[index];
        let data = load_image(path, self.size, self.channels, self.fit, &self.limits)?;
        Ok(Sample {
            data,
            shape: vec![self.channels, self.size[0], self.size[1]],
            target: Target::Class(*label),
        })
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }
}
