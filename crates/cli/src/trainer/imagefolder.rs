//! `--dataset imagefolder`: the user's own PNG/JPEG images, one folder per class
//! (torchvision's `ImageFolder` convention).
//!
//! Layout: `DIR/train/<class>/…` with `DIR/val/<class>/…` and `DIR/test/<class>/…` when
//! present, or the class folders straight in `DIR`. Without `val/`, a seeded `--val-fraction`
//! (default 0.1) of the training images is held out. Without `test/`, the validation
//! images (`val/`, or the held-out ones) double as the test split that `nabla train` scores
//! at the end and `nabla eval` scores, and the run says so.
//!
//! Every image is brought to `--image-size` (default: the first training image's size) by
//! resizing it to cover and cutting the centre; channels are grey when every image is grey,
//! else RGB. Unreadable files are skipped with a warning naming each (an error with
//! `--strict`). The decoded images are kept in memory when they fit under [`CACHE_CAP`]
//! (decoded once, before the first epoch), else decoded on every access.

use super::data::{held_out, normalization, split_indices, ByteStats, Data};
use crate::config::TrainConfig;
use crate::error::{CliError, CliResult};
use nabla_data::{load_image_u8, probe_image, Dataset, Fit, ImageDataset, ImageFolder, ReadLimits};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The most decoded bytes (8-bit pixels) kept in memory: 2 GiB.
pub const CACHE_CAP: u64 = 2 << 30;

/// A split's image files and labels.
type Items = Vec<(PathBuf, usize)>;

/// The class folders of `root` and their images (each class folder must hold some).
fn scan(root: &Path) -> CliResult<(Items, Vec<String>)> {
    let f = ImageFolder::new(root, [1, 1]).map_err(|e| {
        CliError::new(format!(
            "--data-dir: {e} (expected one folder of PNG/JPEG images per class)"
        ))
    })?;
    Ok((f.items().to_vec(), f.classes().to_vec()))
}

/// Report an unreadable image: a warning (counted by the caller), or the error with `--strict`.
fn unreadable(cfg: &TrainConfig, path: &Path, e: &dyn std::fmt::Display) -> CliResult<()> {
    if cfg.images.strict {
        return Err(CliError::new(format!("unreadable image (--strict): {e}")));
    }
    eprintln!("warning: skipping unreadable image {}: {e}", path.display());
    Ok(())
}

/// Decode `items` to bytes on all cores, in order; `None` for a file that fails.
fn decode_all(items: &[(PathBuf, usize)], size: [usize; 2], c: usize) -> Vec<Result<Vec<u8>, String>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).max(1);
    let chunk = items.len().div_ceil(threads).max(1);
    let limits = ReadLimits::default();
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(p, _)| load_image_u8(p, size, c, Fit::CenterCrop, &limits).map_err(|e| e.to_string()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| vec![Err("decoder thread panicked".into())]))
            .collect()
    })
}

/// A split held in memory or decoded on access.
enum Split {
    Cached(ImageDataset),
    Lazy(ImageFolder, [usize; 3]),
}

impl Split {
    fn len(&self) -> usize {
        match self {
            Split::Cached(d) => d.len(),
            Split::Lazy(d, _) => d.len(),
        }
    }

    /// The images at `idx`, in that order.
    fn subset(&self, idx: &[usize], root: &Path) -> CliResult<Split> {
        Ok(match self {
            Split::Cached(d) => {
                let per: usize = d.image_shape().iter().product();
                let mut px = Vec::with_capacity(idx.len() * per);
                for &i in idx {
                    px.extend_from_slice(d.pixels(i)?);
                }
                let labels = idx.iter().map(|&i| d.labels()[i]).collect();
                Split::Cached(ImageDataset::new(
                    px,
                    labels,
                    d.image_shape(),
                    d.classes().to_vec(),
                    root,
                )?)
            }
            Split::Lazy(f, [c, h, w]) => {
                let items = idx.iter().map(|&i| f.items()[i].clone()).collect();
                let sub = ImageFolder::from_items(items, f.classes().to_vec(), [*h, *w], *c, Fit::CenterCrop)?;
                Split::Lazy(sub, [*c, *h, *w])
            }
        })
    }

    fn arc(self) -> Arc<dyn Dataset> {
        match self {
            Split::Cached(d) => Arc::new(d),
            Split::Lazy(d, _) => Arc::new(d),
        }
    }
}

/// Load an image folder as `cfg` says (`fixed`: the `[C, H, W]` of a checkpoint; then
/// nothing is cached and the normalization is left to the checkpoint).
pub fn load(cfg: &TrainConfig, fixed: Option<[usize; 3]>) -> CliResult<Data> {
    let root = cfg.data_dir.clone().ok_or_else(|| {
        CliError::new("--dataset imagefolder needs --data-dir DIR (one folder of images per class, or train/ and val/ folders of them)")
    })?;
    if !root.is_dir() {
        return Err(CliError::new(format!(
            "--data-dir {}: no such directory",
            root.display()
        )));
    }
    let sub = |n: &str| Some(root.join(n)).filter(|p| p.is_dir());
    let train_root = sub("train").unwrap_or_else(|| root.clone());
    let (mut train_items, classes) = scan(&train_root)?;
    if classes.len() < 2 {
        return Err(CliError::new(format!(
            "{}: one class folder ({}); a classifier needs at least two",
            train_root.display(),
            classes.join(", ")
        )));
    }
    let other = |name: &str| -> CliResult<Option<Items>> {
        let Some(dir) = sub(name).filter(|_| train_root != root) else {
            return Ok(None);
        };
        let (items, c) = scan(&dir)?;
        if c != classes {
            return Err(CliError::new(format!(
                "{}: classes [{}] differ from {}'s [{}]; every split needs the same class folders",
                dir.display(),
                c.join(", "),
                train_root.display(),
                classes.join(", ")
            )));
        }
        Ok(Some(items))
    };
    let (mut val_items, mut test_items) = (other("val")?, other("test")?);
    // The headers: sizes, colour, and the files that are not images at all.
    let mut skipped = 0usize;
    let mut sizes = Vec::new();
    let mut all_grey = true;
    for items in [Some(&mut train_items), val_items.as_mut(), test_items.as_mut()]
        .into_iter()
        .flatten()
    {
        let mut keep = Vec::with_capacity(items.len());
        for (p, l) in items.drain(..) {
            match probe_image(&p, &ReadLimits::default()) {
                Ok((hw, grey)) => {
                    sizes.push(hw);
                    all_grey &= grey;
                    keep.push((p, l));
                }
                Err(e) => {
                    unreadable(cfg, &p, &e)?;
                    skipped += 1;
                }
            }
        }
        *items = keep;
    }
    if train_items.is_empty() {
        return Err(CliError::new(format!(
            "{}: no readable training image",
            train_root.display()
        )));
    }
    let [c, h, w] = fixed.unwrap_or_else(|| {
        let [h, w] = cfg.images.image_size.unwrap_or(sizes[0]);
        [if all_grey { 1 } else { 3 }, h, w]
    });
    let other_size = sizes.iter().filter(|&&s| s != [h, w]).count();
    if other_size > 0 {
        eprintln!(
            "note: {other_size} of {} images are not {h}×{w} pixels; each is resized to cover {h}×{w} and centre-cropped",
            sizes.len()
        );
    }
    let total = train_items.len() + val_items.as_ref().map_or(0, Vec::len) + test_items.as_ref().map_or(0, Vec::len);
    let bytes = (total * c * h * w) as u64;
    let cache = fixed.is_none() && bytes <= CACHE_CAP;
    let mut make = |items: Items| -> CliResult<Split> {
        if !cache {
            let f = ImageFolder::from_items(items, classes.clone(), [h, w], c, Fit::CenterCrop)?;
            return Ok(Split::Lazy(f, [c, h, w]));
        }
        let (mut px, mut labels) = (Vec::with_capacity(items.len() * c * h * w), Vec::new());
        for ((p, l), r) in items.iter().zip(decode_all(&items, [h, w], c)) {
            match r {
                Ok(b) => {
                    px.extend_from_slice(&b);
                    labels.push(*l);
                }
                Err(e) => {
                    unreadable(cfg, p, &e)?;
                    skipped += 1;
                }
            }
        }
        Ok(Split::Cached(ImageDataset::new(
            px,
            labels,
            [c, h, w],
            classes.clone(),
            &root,
        )?))
    };
    let full = make(train_items)?;
    let val = val_items.map(&mut make).transpose()?;
    let test = test_items.map(&mut make).transpose()?;
    if skipped > 0 {
        eprintln!("warning: skipped {skipped} unreadable image(s) (--strict stops at the first)");
    }
    let mib = bytes as f64 / (1 << 20) as f64;
    if cache {
        eprintln!(
            "note: {total} decoded images cached in memory ({mib:.1} MiB of the {} GiB cap): later epochs do not decode again",
            CACHE_CAP >> 30
        );
    } else if fixed.is_none() {
        eprintln!(
            "note: {total} decoded images need {mib:.0} MiB, over the {} GiB cache cap: decoded on every access",
            CACHE_CAP >> 30
        );
    }
    // Validation: val/, else a seeded share of train/ (held out before --limit).
    let (train, val, held) = match val {
        Some(v) => (full, Some(v), false),
        None => {
            let n = full.len();
            let n_val = held_out(cfg, n, 0.1);
            if n_val >= n {
                return Err(CliError::new(format!(
                    "{}: {n} training images are too few to hold out {n_val} for validation (--val-fraction, --val-size)",
                    train_root.display()
                )));
            }
            let (v, t) = split_indices(n, n_val, cfg.seed);
            let val = (!v.is_empty()).then(|| full.subset(&v, &root)).transpose()?;
            (full.subset(&t, &root)?, val, true)
        }
    };
    let train = match cfg.limit {
        Some(l) if l < train.len() => train.subset(&(0..l).collect::<Vec<_>>(), &root)?,
        _ => train,
    };
    let val = match (val, cfg.val_limit) {
        (Some(v), Some(l)) if l < v.len() => Some(v.subset(&(0..l).collect::<Vec<_>>(), &root)?),
        (v, _) => v,
    };
    let test = match test {
        Some(t) => Some(t),
        None if fixed.is_none() => {
            let which = if held { "the held-out training images" } else { "val/" };
            eprintln!("note: no test/ folder: {which} double as the test split");
            None
        }
        None => None,
    };
    let normalize = match fixed {
        Some(_) => (vec![0.0; c], vec![1.0; c]),
        None => normalization(cfg, c, || stats(&train, [c, h, w]))?,
    };
    let val = val.map(Split::arc);
    Ok(Data {
        test: test.map(Split::arc).or_else(|| val.clone()),
        train: train.arc(),
        val,
        classes,
        input_shape: vec![c, h, w],
        normalize,
        target_scale: None,
        origin: root,
        features: vec![],
    })
}

/// Per-channel mean and std of a training split (decoding it once if it is not cached).
fn stats(train: &Split, shape: [usize; 3]) -> CliResult<(Vec<f32>, Vec<f32>)> {
    match train {
        Split::Cached(d) => super::data::channel_stats(d),
        Split::Lazy(f, _) => {
            let mut st = ByteStats::new(shape);
            for (p, _) in f.items() {
                st.add(&load_image_u8(
                    p,
                    [shape[1], shape[2]],
                    shape[0],
                    Fit::CenterCrop,
                    &ReadLimits::default(),
                )?);
            }
            Ok(st.finish())
        }
    }
}

#[cfg(test)]
#[path = "imagefolder_tests.rs"]
mod tests;
