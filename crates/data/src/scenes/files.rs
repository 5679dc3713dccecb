//! Scenes on disk: the writer (PNG images, COCO `annotations.json`, Pascal-VOC palette masks),
//! the mask-folder reader, and [`SceneFiles`], what both readers produce.

use super::coco;
use super::{LocalizeScenes, Scene, SceneObject, SceneSet, SegmentScenes};
use crate::dataset::{check_index, read_capped};
use crate::{DataError, ReadLimits, Result};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Scenes read from files (`coco:PATH` or `masks:PATH`): grey images of one size, their items
/// (from COCO annotations; none for a mask folder) and their semantic masks (when there are
/// masks). Instance masks are not stored in either format, so `Scene::instance` comes out empty.
#[derive(Clone)]
pub struct SceneFiles {
    pub(super) origin: PathBuf,
    pub(super) size: [usize; 2],
    pub(super) classes: Vec<String>,
    pub(super) files: Vec<PathBuf>,
    pub(super) pixels: Vec<u8>,
    pub(super) objects: Vec<Vec<SceneObject>>,
    pub(super) masks: Option<Vec<u8>>,
    /// COCO's image id of each scene (its position for a mask folder).
    pub(super) image_ids: Vec<u64>,
    /// COCO's category id of each class (class + 1 for a mask folder).
    pub(super) category_ids: Vec<u64>,
}

impl SceneFiles {
    /// The image files, in scene order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// COCO's `image_id` of each scene, in scene order (the position for a mask folder), for
    /// results files that match the annotations read.
    pub fn image_ids(&self) -> &[u64] {
        &self.image_ids
    }

    /// COCO's `category_id` of each class (class + 1 for a mask folder).
    pub fn category_ids(&self) -> &[u64] {
        &self.category_ids
    }

    /// Whether every scene has a semantic mask.
    pub fn has_masks(&self) -> bool {
        self.masks.is_some()
    }

    /// The localization view (each scene's first annotation, in file order); every image needs
    /// at least one annotation.
    pub fn localize(self) -> Result<LocalizeScenes> {
        if let Some(i) = self.objects.iter().position(|o| o.is_empty()) {
            return Err(DataError::format(
                &self.origin,
                format!("{} has no annotation to localize", self.files[i].display()),
            ));
        }
        Ok(LocalizeScenes::new(Arc::new(self)))
    }

    /// The segmentation view; the scenes need masks.
    pub fn segment(self) -> Result<SegmentScenes> {
        if self.masks.is_none() {
            return Err(DataError::format(
                &self.origin,
                "no masks/ folder beside the images; segmentation needs masks",
            ));
        }
        Ok(SegmentScenes::new(Arc::new(self)))
    }
}

impl std::fmt::Debug for SceneFiles {
    /// The origin, counts and size, not the pixels.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SceneFiles")
            .field("origin", &self.origin)
            .field("scenes", &self.files.len())
            .field("size", &self.size)
            .field("classes", &self.classes)
            .field("masks", &self.masks.is_some())
            .finish()
    }
}

impl SceneSet for SceneFiles {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn size(&self) -> [usize; 2] {
        self.size
    }
    fn scene(&self, index: usize) -> Result<Scene> {
        check_index("SceneFiles::scene", index, self.files.len())?;
        let plane = self.size[0] * self.size[1];
        let px = &self.pixels[index * plane..(index + 1) * plane];
        Ok(Scene {
            size: self.size,
            image: px.iter().map(|&b| b as f32 / 255.0).collect(),
            objects: self.objects[index].clone(),
            semantic: self
                .masks
                .as_ref()
                .map_or_else(Vec::new, |m| m[index * plane..(index + 1) * plane].to_vec()),
            instance: Vec::new(),
        })
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
}

/// The Pascal VOC colour map: entry i spreads the bits of i over the high bits of red, green
/// and blue in turn, so small labels get distinct, saturated colours (0 is black).
pub fn voc_palette() -> [[u8; 3]; 256] {
    let mut map = [[0u8; 3]; 256];
    for (i, rgb) in map.iter_mut().enumerate() {
        let mut c = i;
        for j in 0..8 {
            for (k, ch) in rgb.iter_mut().enumerate() {
                *ch |= (((c >> k) & 1) as u8) << (7 - j);
            }
            c >>= 3;
        }
    }
    map
}

/// The scene's image quantized to bytes as the PNG stores it (round to nearest).
pub fn quantize(image: &[f32]) -> Vec<u8> {
    image
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}

/// Write `set` to `out` in the formats other tools read: `images/000000.png` (8-bit grey),
/// `masks/000000.png` (8-bit palette PNG, index = semantic label, VOC colours),
/// `annotations.json` (COCO detection: category ids are class + 1, as COCO counts from 1) and
/// `classes.txt` (one class name a line, for `masks:` readers). Everything goes into a
/// temporary folder beside `out` that is renamed to `out` at the end, so `out` never holds a
/// half-written set; `out` must not exist or be an empty folder. `written(i)` is called after
/// each scene (for a progress bar).
pub fn write_scenes(set: &dyn SceneSet, out: &Path, written: &mut dyn FnMut(usize)) -> Result<()> {
    if out.exists() {
        let empty = std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !empty {
            return Err(DataError::format(out, "already exists and is not an empty folder"));
        }
    }
    let name = out
        .file_name()
        .ok_or_else(|| DataError::format(out, "is not a folder name"))?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| DataError::io(&parent, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = parent.join(format!(".{name}.part-{}-{nanos}", std::process::id()));
    let result = write_into(set, &tmp, written).and_then(|()| {
        if out.exists() {
            std::fs::remove_dir(out).map_err(|e| DataError::io(out, e))?;
        }
        std::fs::rename(&tmp, out).map_err(|e| DataError::io(out, e))
    });
    if result.is_err() {
        // Only our own temporary folder is removed.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn write_into(set: &dyn SceneSet, dir: &Path, written: &mut dyn FnMut(usize)) -> Result<()> {
    let (images, masks) = (dir.join("images"), dir.join("masks"));
    for d in [&images, &masks] {
        std::fs::create_dir_all(d).map_err(|e| DataError::io(d, e))?;
    }
    let mut coco = coco::CocoWriter::new(set.classes());
    for i in 0..set.len() {
        let scene = set.scene(i)?;
        let file = format!("{i:06}.png");
        let [h, w] = scene.size;
        write_png(&images.join(&file), w, h, &quantize(&scene.image), None)?;
        write_png(&masks.join(&file), w, h, &scene.semantic, Some(&voc_palette()))?;
        coco.add(&file, &scene);
        written(i);
    }
    let json = dir.join("annotations.json");
    std::fs::write(&json, coco.finish()).map_err(|e| DataError::io(&json, e))?;
    let names = dir.join("classes.txt");
    let text: String = set.classes().iter().map(|c| format!("{c}\n")).collect();
    std::fs::write(&names, text).map_err(|e| DataError::io(&names, e))?;
    Ok(())
}

/// An 8-bit PNG: grey, or indexed with `palette`.
fn write_png(path: &Path, w: usize, h: usize, data: &[u8], palette: Option<&[[u8; 3]; 256]>) -> Result<()> {
    let fail = |e: png::EncodingError| DataError::format(path, format!("writing PNG: {e}"));
    let file = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    enc.set_depth(png::BitDepth::Eight);
    match palette {
        Some(p) => {
            enc.set_color(png::ColorType::Indexed);
            enc.set_palette(p.iter().flatten().copied().collect::<Vec<u8>>());
        }
        None => enc.set_color(png::ColorType::Grayscale),
    }
    let mut writer = enc.write_header().map_err(fail)?;
    writer.write_image_data(data).map_err(fail)?;
    writer.finish().map_err(fail)
}

/// Decode an image file to 8-bit grey (colour images through their luma), within `limits`.
pub(super) fn read_grey(path: &Path, limits: &ReadLimits) -> Result<([usize; 2], Vec<u8>)> {
    let img = crate::folder::decode_capped(path, limits)?.to_luma8();
    Ok(([img.height() as usize, img.width() as usize], img.into_raw()))
}

/// Decode a mask PNG (8-bit palette or 8-bit grey; the stored index or value is the label)
/// that must be `size` and hold labels up to `classes`.
pub(super) fn read_mask(path: &Path, size: [usize; 2], classes: usize, limits: &ReadLimits) -> Result<Vec<u8>> {
    let bad = |msg: String| DataError::Image {
        path: path.to_path_buf(),
        msg,
    };
    let bytes = read_capped(path, limits.max_file_bytes)?;
    let lim = png::Limits {
        bytes: usize::try_from(limits.max_decoded_bytes).unwrap_or(usize::MAX),
    };
    let mut reader = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), lim)
        .read_info()
        .map_err(|e| bad(format!("mask PNG: {e}")))?;
    let info = reader.info();
    let (w, h) = info.size();
    if [h as usize, w as usize] != size {
        return Err(bad(format!("mask is {h}x{w} but its image is {}x{}", size[0], size[1])));
    }
    if info.bit_depth != png::BitDepth::Eight
        || !matches!(info.color_type, png::ColorType::Indexed | png::ColorType::Grayscale)
    {
        return Err(bad(format!(
            "mask is {:?} at {:?} bits; masks are 8-bit palette or grey PNGs",
            info.color_type, info.bit_depth
        )));
    }
    let mut labels = vec![0u8; size[0] * size[1]];
    reader
        .next_frame(&mut labels)
        .map_err(|e| bad(format!("mask PNG: {e}")))?;
    if let Some((p, &l)) = labels.iter().enumerate().find(|(_, &l)| l as usize > classes) {
        return Err(bad(format!(
            "label {l} at row {}, column {} is above the {classes} classes (0 is background)",
            p / size[1],
            p % size[1]
        )));
    }
    Ok(labels)
}

/// A relative file name that stays inside its folder (no root, no `..`).
pub(super) fn inside(name: &str) -> bool {
    !name.is_empty()
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Check that `n` images of `size` fit the decoded-bytes limit before reserving them.
pub(super) fn reserve(origin: &Path, n: usize, size: [usize; 2], limits: &ReadLimits) -> Result<Vec<u8>> {
    let total = (n as u64)
        .checked_mul(size[0] as u64)
        .and_then(|v| v.checked_mul(size[1] as u64))
        .filter(|&t| t <= limits.max_decoded_bytes)
        .ok_or_else(|| DataError::TooLarge {
            path: origin.to_path_buf(),
            what: format!("{n} images of {}x{}", size[0], size[1]),
            size: (n as u64).saturating_mul(size[0] as u64).saturating_mul(size[1] as u64),
            limit: limits.max_decoded_bytes,
        })?;
    Ok(Vec::with_capacity(total as usize))
}

/// Read `PATH/images/*` (PNG or JPEG, sorted by name) with `PATH/masks/<stem>.png` for each and
/// the class names in `PATH/classes.txt` (one a line, label 1 first): the `masks:PATH` format.
pub fn read_masks(path: &Path) -> Result<SceneFiles> {
    read_masks_with(path, &ReadLimits::default())
}

/// [`read_masks`] within explicit limits.
pub fn read_masks_with(path: &Path, limits: &ReadLimits) -> Result<SceneFiles> {
    let names = path.join("classes.txt");
    let text = read_capped(&names, 1 << 20)?;
    let text = String::from_utf8(text).map_err(|_| DataError::format(&names, "is not UTF-8 text"))?;
    let classes: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if classes.is_empty() || classes.len() > 254 {
        return Err(DataError::format(
            &names,
            format!("{} class names; 1 to 254 are needed (one a line)", classes.len()),
        ));
    }
    let dir = path.join("images");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| DataError::io(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::format(&dir, "holds no .png or .jpg images"));
    }
    let mut size = None;
    let (mut pixels, mut masks) = (Vec::new(), Vec::new());
    for (i, f) in files.iter().enumerate() {
        let (s, px) = read_grey(f, limits)?;
        let size = *size.get_or_insert(s);
        if s != size {
            return Err(DataError::format(
                f,
                format!(
                    "is {}x{} but the first image is {}x{}; all must match",
                    s[0], s[1], size[0], size[1]
                ),
            ));
        }
        if i == 0 {
            pixels = reserve(path, files.len(), size, limits)?;
            masks = Vec::with_capacity(pixels.capacity());
        }
        let stem = f.file_stem().unwrap_or_default();
        let mask = path.join("masks").join(stem).with_extension("png");
        if !mask.is_file() {
            return Err(DataError::format(
                &mask,
                format!("missing: the mask of {}", f.display()),
            ));
        }
        pixels.extend_from_slice(&px);
        masks.extend(read_mask(&mask, size, classes.len(), limits)?);
    }
    Ok(SceneFiles {
        origin: path.to_path_buf(),
        size: size.unwrap_or([0, 0]),
        objects: vec![Vec::new(); files.len()],
        image_ids: (0..files.len() as u64).collect(),
        category_ids: (1..=classes.len() as u64).collect(),
        classes,
        files,
        pixels,
        masks: Some(masks),
    })
}
