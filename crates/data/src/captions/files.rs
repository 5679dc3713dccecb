//! Caption files: COCO captions JSON and Flickr8k's token file, each with an image folder.

use super::CaptionSet;
use crate::dataset::read_capped;
use crate::text::tokenize;
use crate::{DataError, ReadLimits, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// How images read from files are brought to one shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageOptions {
    /// `[H, W]` every image is resized to (stretched, aspect ratio not kept).
    pub size: [usize; 2],
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Caps on file sizes and image sides.
    pub limits: ReadLimits,
}

impl ImageOptions {
    /// `size` with `channels` channels and the default limits.
    pub fn new(size: [usize; 2], channels: usize) -> ImageOptions {
        ImageOptions {
            size,
            channels,
            limits: ReadLimits::default(),
        }
    }

    fn check(&self) -> Result<()> {
        if self.channels != 1 && self.channels != 3 {
            return Err(DataError::invalid(
                "captions",
                format!(
                    "{} channels asked; images are read as 1 (grey) or 3 (RGB)",
                    self.channels
                ),
            ));
        }
        if self.size.contains(&0) {
            return Err(DataError::invalid(
                "captions",
                format!("image size {:?} has a zero side", self.size),
            ));
        }
        Ok(())
    }
}

/// `images/name`, refusing a name that could leave the folder (absolute, `..`).
fn image_path(images: &Path, name: &str) -> Option<PathBuf> {
    let rel = Path::new(name);
    let plain = !name.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| images.join(rel))
}

fn text_of(path: &Path, limits: &ReadLimits) -> Result<String> {
    let bytes = read_capped(path, limits.max_file_bytes)?;
    String::from_utf8(bytes)
        .map_err(|e| DataError::format(path, format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to())))
}

/// COCO captions: `json` (`images` with `id` and `file_name`, `annotations` with `image_id`
/// and `caption`) and the folder the file names are relative to. Images keep the JSON's order
/// and captions the annotations' order; images with no caption are left out.
pub fn read_coco_captions(json: &Path, images: &Path, opts: &ImageOptions) -> Result<CaptionSet> {
    opts.check()?;
    let bad = |msg: String| DataError::format(json, msg);
    let root: Value =
        serde_json::from_str(&text_of(json, &opts.limits)?).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let list = |key: &str| {
        root.get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("not COCO captions JSON: no {key:?} list at the top level")))
    };
    let (imgs, anns) = (list("images")?, list("annotations")?);
    let mut by_id: HashMap<u64, usize> = HashMap::with_capacity(imgs.len());
    let mut items: Vec<(PathBuf, u64, String, Vec<String>)> = Vec::with_capacity(imgs.len());
    for (k, im) in imgs.iter().enumerate() {
        let id = im
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad(format!("images[{k}]: no \"id\" (a non-negative integer)")))?;
        let name = im
            .get("file_name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("images[{k}] (id {id}): no \"file_name\" string")))?;
        let path = image_path(images, name).ok_or_else(|| {
            bad(format!(
                "images[{k}] (id {id}): file_name {name:?} is not a plain relative path"
            ))
        })?;
        if by_id.insert(id, k).is_some() {
            return Err(bad(format!("images[{k}]: id {id} appears twice")));
        }
        items.push((path, id, name.to_string(), Vec::new()));
    }
    for (k, a) in anns.iter().enumerate() {
        let id = a
            .get("image_id")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad(format!("annotations[{k}]: no \"image_id\" (a non-negative integer)")))?;
        let caption = a
            .get("caption")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("annotations[{k}] (image {id}): no \"caption\" string")))?;
        if tokenize(caption).is_empty() {
            return Err(bad(format!("annotations[{k}] (image {id}): empty caption {caption:?}")));
        }
        let at = *by_id
            .get(&id)
            .ok_or_else(|| bad(format!("annotations[{k}]: image_id {id} is not in \"images\"")))?;
        items[at].3.push(caption.trim().to_string());
    }
    items.retain(|it| !it.3.is_empty());
    if items.is_empty() {
        return Err(bad("no image has a caption".into()));
    }
    for (k, it) in items.iter().enumerate() {
        if !it.0.is_file() {
            return Err(bad(format!(
                "image {} (id {}, captioned image {k}): {} not found",
                it.2,
                it.1,
                it.0.display()
            )));
        }
    }
    Ok(CaptionSet::files(items, opts))
}

/// Flickr8k: `tokens` (lines `NAME.jpg#K<TAB>caption`, K the caption's number) and the image
/// folder. Images keep the order of their first caption; image ids count from 0 in that order.
pub fn read_flickr8k(tokens: &Path, images: &Path, opts: &ImageOptions) -> Result<CaptionSet> {
    opts.check()?;
    let text = text_of(tokens, &opts.limits)?;
    let bad = |line: usize, msg: String| DataError::format(tokens, format!("line {line}: {msg}"));
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut items: Vec<(PathBuf, u64, String, Vec<String>)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let (key, caption) = line
            .split_once('\t')
            .ok_or_else(|| bad(line_no, "no tab between \"NAME#K\" and the caption".into()))?;
        let (name, k) = key
            .rsplit_once('#')
            .ok_or_else(|| bad(line_no, format!("{key:?} is not \"NAME#K\"")))?;
        if k.parse::<u32>().is_err() {
            return Err(bad(
                line_no,
                format!("{key:?}: the caption number {k:?} is not an integer"),
            ));
        }
        if tokenize(caption).is_empty() {
            return Err(bad(line_no, format!("{name}: empty caption")));
        }
        let i = match at.get(name) {
            Some(&i) => i,
            None => {
                let path = image_path(images, name)
                    .ok_or_else(|| bad(line_no, format!("{name:?} is not a plain relative path")))?;
                if !path.is_file() {
                    return Err(bad(line_no, format!("image {name} not found in {}", images.display())));
                }
                at.insert(name.to_string(), items.len());
                items.push((path, items.len() as u64, name.to_string(), Vec::new()));
                items.len() - 1
            }
        };
        items[i].3.push(caption.trim().to_string());
    }
    if items.is_empty() {
        return Err(DataError::format(tokens, "no captions (the file is empty)"));
    }
    Ok(CaptionSet::files(items, opts))
}

/// The names listed one a line in `path` (Flickr8k's `Flickr_8k.trainImages.txt`), empty lines
/// skipped.
pub fn read_name_list(path: &Path, limits: &ReadLimits) -> Result<Vec<String>> {
    let text = text_of(path, limits)?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Err(DataError::format(path, "the list of images is empty"));
    }
    Ok(names)
}

/// The first of `candidates` that exists (for error messages, all of them are named).
fn first_existing(candidates: Vec<PathBuf>, what: &str, dir: bool) -> Result<PathBuf> {
    candidates
        .iter()
        .find(|p| if dir { p.is_dir() } else { p.is_file() })
        .cloned()
        .ok_or_else(|| DataError::NotFound {
            name: what.to_string(),
            searched: candidates,
            hint: String::new(),
        })
}

/// The (split, captions JSON, image folder) triples of `coco:PATH`: PATH a captions JSON (its
/// images in `images/` beside it, or, for `annotations/captions_SPLIT.json`, in `../SPLIT/` or
/// `../images/`), or a folder whose `annotations/captions_*.json` are taken in name order, each
/// with `PATH/SPLIT/` or `PATH/images/`. SPLIT is the file stem after `captions_`.
pub fn coco_layout(path: &Path) -> Result<Vec<(String, PathBuf, PathBuf)>> {
    let split_of = |json: &Path| {
        let stem = json.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        stem.strip_prefix("captions_").unwrap_or(stem).to_string()
    };
    if path.is_file() {
        let split = split_of(path);
        let dir = path.parent().unwrap_or(Path::new("."));
        let up = dir.parent().unwrap_or(Path::new("."));
        let images = first_existing(
            vec![dir.join("images"), up.join(&split), up.join("images")],
            "COCO image folder",
            true,
        )?;
        return Ok(vec![(split, path.to_path_buf(), images)]);
    }
    let ann = path.join("annotations");
    if !ann.is_dir() {
        return Err(DataError::format(
            path,
            "neither a COCO captions JSON nor a folder with annotations/captions_*.json",
        ));
    }
    let rd = std::fs::read_dir(&ann).map_err(|e| DataError::io(&ann, e))?;
    let mut jsons = Vec::new();
    for e in rd {
        let p = e.map_err(|e| DataError::io(&ann, e))?.path();
        let name = p.file_name().and_then(|s| s.to_str()).unwrap_or("");
        if name.starts_with("captions_") && name.ends_with(".json") {
            jsons.push(p);
        }
    }
    jsons.sort();
    if jsons.is_empty() {
        return Err(DataError::format(&ann, "no captions_*.json file"));
    }
    jsons
        .into_iter()
        .map(|j| {
            let split = split_of(&j);
            let images = first_existing(vec![path.join(&split), path.join("images")], "COCO image folder", true)?;
            Ok((split, j, images))
        })
        .collect()
}

/// The files of a Flickr8k download ([`flickr8k_layout`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Flickr8kFiles {
    /// `Flickr8k.token.txt`.
    pub tokens: PathBuf,
    /// The image folder.
    pub images: PathBuf,
    /// `Flickr_8k.trainImages.txt`, when present.
    pub train: Option<PathBuf>,
    /// `Flickr_8k.devImages.txt`, when present.
    pub dev: Option<PathBuf>,
    /// `Flickr_8k.testImages.txt`, when present.
    pub test: Option<PathBuf>,
}

/// The files of `flickr8k:PATH`: `Flickr8k.token.txt` in PATH or `PATH/Flickr8k_text/`, the
/// split lists `Flickr_8k.{train,dev,test}Images.txt` beside it (each optional), the images in
/// `PATH/Flicker8k_Dataset/` (the download's spelling), `PATH/Flickr8k_Dataset/` or
/// `PATH/images/`.
pub fn flickr8k_layout(path: &Path) -> Result<Flickr8kFiles> {
    let text_dir = path.join("Flickr8k_text");
    let tokens = first_existing(
        vec![path.join("Flickr8k.token.txt"), text_dir.join("Flickr8k.token.txt")],
        "Flickr8k.token.txt",
        false,
    )?;
    let images = first_existing(
        ["Flicker8k_Dataset", "Flickr8k_Dataset", "images"]
            .iter()
            .map(|d| path.join(d))
            .collect(),
        "Flickr8k image folder",
        true,
    )?;
    let dir = tokens.parent().unwrap_or(path).to_path_buf();
    let list = |s: &str| Some(dir.join(format!("Flickr_8k.{s}Images.txt"))).filter(|p| p.is_file());
    Ok(Flickr8kFiles {
        tokens,
        images,
        train: list("train"),
        dev: list("dev"),
        test: list("test"),
    })
}
