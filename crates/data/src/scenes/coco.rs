//! COCO detection JSON: writing the scenes' `annotations.json` and reading a user's
//! (`coco:PATH`).

use super::files::{inside, read_grey, read_mask, reserve, SceneFiles};
use super::{Scene, SceneObject};
use crate::dataset::read_capped;
use crate::{DataError, ReadLimits, Result};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The largest `annotations.json` read: parsed JSON takes several times its bytes in memory.
const MAX_JSON_BYTES: u64 = 256 << 20;

/// Builds `annotations.json` one scene at a time, keeping each entry as its JSON text (about
/// 100 bytes an annotation, not a tree of values).
pub(super) struct CocoWriter {
    categories: Vec<u8>,
    images: Vec<u8>,
    annotations: Vec<u8>,
    image_count: usize,
    annotation_count: usize,
}

/// Append `value` to a JSON list's text, with a comma after the first.
fn push(list: &mut Vec<u8>, value: &Value) {
    if !list.is_empty() {
        list.push(b',');
    }
    list.extend_from_slice(value.to_string().as_bytes());
}

impl CocoWriter {
    /// A file whose categories are `classes`, with ids 1..=K (class + 1).
    pub(super) fn new(classes: &[String]) -> Self {
        let mut categories = Vec::new();
        for (c, name) in classes.iter().enumerate() {
            push(&mut categories, &json!({"id": c + 1, "name": name}));
        }
        CocoWriter {
            categories,
            images: Vec::new(),
            annotations: Vec::new(),
            image_count: 0,
            annotation_count: 0,
        }
    }

    /// Add a scene stored as `images/{file}`: image id = its position, annotation ids count
    /// from 1 over the whole file, `area` = the item's visible pixels in the instance mask.
    pub(super) fn add(&mut self, file: &str, scene: &Scene) {
        let id = self.image_count;
        self.image_count += 1;
        let [h, w] = scene.size;
        push(
            &mut self.images,
            &json!({"id": id, "file_name": file, "width": w, "height": h}),
        );
        let mut area = vec![0usize; scene.objects.len()];
        for &k in &scene.instance {
            if k > 0 && (k as usize) <= area.len() {
                area[k as usize - 1] += 1;
            }
        }
        for (k, o) in scene.objects.iter().enumerate() {
            self.annotation_count += 1;
            let ann = json!({
                "id": self.annotation_count,
                "image_id": id,
                "category_id": o.class + 1,
                "bbox": o.bbox.map(|v| v as f64),
                "area": area[k],
                "iscrowd": 0,
            });
            push(&mut self.annotations, &ann);
        }
    }

    /// The JSON text.
    pub(super) fn finish(self) -> Vec<u8> {
        let info = json!({"description": "Fashion-MNIST scenes written by nabla (category id = class + 1)"});
        let mut text = Vec::with_capacity(self.images.len() + self.annotations.len() + self.categories.len() + 200);
        text.extend_from_slice(format!("{{\"info\":{info},\"images\":[").as_bytes());
        text.extend_from_slice(&self.images);
        text.extend_from_slice(b"],\"annotations\":[");
        text.extend_from_slice(&self.annotations);
        text.extend_from_slice(b"],\"categories\":[");
        text.extend_from_slice(&self.categories);
        text.extend_from_slice(b"]}\n");
        text
    }
}

/// Read a COCO detection set: `PATH` is a folder holding `annotations.json` and `images/`, or
/// the JSON file itself (its images then in `images/` beside it). Classes are the categories
/// in ascending id order; each scene's objects are its annotations in file order (the first is
/// what localization predicts). A `masks/` folder beside the images, when present, gives each
/// image its semantic mask (`masks/<stem>.png`). All images must have one size (batches need
/// it); `iscrowd` and `area` are not used.
pub fn read_coco(path: &Path) -> Result<SceneFiles> {
    read_coco_with(path, &ReadLimits::default())
}

/// [`read_coco`] within explicit limits.
pub fn read_coco_with(path: &Path, limits: &ReadLimits) -> Result<SceneFiles> {
    let json = if path.is_dir() {
        path.join("annotations.json")
    } else {
        path.to_path_buf()
    };
    let root = match json.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let bytes = read_capped(&json, limits.max_file_bytes.min(MAX_JSON_BYTES))?;
    let doc: Value =
        serde_json::from_slice(&bytes).map_err(|e| DataError::format(&json, format!("not valid JSON: {e}")))?;
    drop(bytes);
    parse(&doc, &json, &root, limits)
}

type Msg<T> = std::result::Result<T, String>;

fn list<'a>(doc: &'a Value, key: &str) -> Msg<&'a Vec<Value>> {
    doc.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no \"{key}\" list at the top level"))
}

fn object<'a>(v: &'a Value, entry: &str) -> Msg<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| format!("{entry} is not an object"))
}

fn uint(o: &Map<String, Value>, key: &str, entry: &str) -> Msg<u64> {
    match o.get(key) {
        None => Err(format!("{entry} has no \"{key}\"")),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("{entry}: \"{key}\" is {v}, not a whole number ≥ 0")),
    }
}

fn text<'a>(o: &'a Map<String, Value>, key: &str, entry: &str) -> Msg<&'a str> {
    o.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{entry}: \"{key}\" is missing or not a string"))
}

/// One image entry: its id, file name and `[H, W]`.
struct ImageEntry {
    id: u64,
    file: String,
    size: [usize; 2],
}

fn parse(doc: &Value, json: &Path, root: &Path, limits: &ReadLimits) -> Result<SceneFiles> {
    let bad = |msg: String| DataError::format(json, msg);
    let (classes, class_of) = categories(doc).map_err(bad)?;
    let images = image_entries(doc, limits).map_err(bad)?;
    let objects = annotations(doc, &images, &class_of).map_err(bad)?;
    let size = images.first().map_or([0, 0], |e| e.size);
    let mut pixels = reserve(json, images.len(), size, limits)?;
    let mask_dir = root.join("masks");
    let with_masks = mask_dir.is_dir();
    let mut masks = Vec::with_capacity(if with_masks { pixels.capacity() } else { 0 });
    let mut files = Vec::with_capacity(images.len());
    for (i, e) in images.iter().enumerate() {
        let file = root.join("images").join(&e.file);
        if !file.is_file() {
            return Err(bad(format!(
                "images[{i}] (id {}): image file {} not found",
                e.id,
                file.display()
            )));
        }
        let (got, px) = read_grey(&file, limits)?;
        if got != e.size {
            return Err(bad(format!(
                "images[{i}] (id {}): {} is {}x{} but the entry says {}x{}",
                e.id,
                file.display(),
                got[0],
                got[1],
                e.size[0],
                e.size[1]
            )));
        }
        pixels.extend_from_slice(&px);
        if with_masks {
            let stem = Path::new(&e.file).file_stem().unwrap_or_default();
            let mask = mask_dir.join(stem).with_extension("png");
            if !mask.is_file() {
                return Err(bad(format!(
                    "images[{i}] (id {}): mask {} not found",
                    e.id,
                    mask.display()
                )));
            }
            masks.extend(read_mask(&mask, e.size, classes.len(), limits)?);
        }
        files.push(file);
    }
    let mut category_ids = vec![0; classes.len()];
    for (&id, &class) in &class_of {
        category_ids[class] = id;
    }
    Ok(SceneFiles {
        image_ids: images.iter().map(|e| e.id).collect(),
        category_ids,
        origin: json.to_path_buf(),
        size,
        classes,
        files,
        pixels,
        objects,
        masks: with_masks.then_some(masks),
    })
}

/// Class names in ascending id order, and each category id's class.
fn categories(doc: &Value) -> Msg<(Vec<String>, HashMap<u64, usize>)> {
    let mut cats = Vec::new();
    for (i, c) in list(doc, "categories")?.iter().enumerate() {
        let entry = format!("categories[{i}]");
        let o = object(c, &entry)?;
        cats.push((uint(o, "id", &entry)?, text(o, "name", &entry)?.to_string()));
    }
    if cats.is_empty() || cats.len() > 254 {
        return Err(format!("{} categories; 1 to 254 are needed", cats.len()));
    }
    cats.sort_by_key(|c| c.0);
    if let Some(w) = cats.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("category id {} appears twice", w[0].0));
    }
    let class_of = cats.iter().enumerate().map(|(k, c)| (c.0, k)).collect();
    Ok((cats.into_iter().map(|c| c.1).collect(), class_of))
}

fn image_entries(doc: &Value, limits: &ReadLimits) -> Msg<Vec<ImageEntry>> {
    let list = list(doc, "images")?;
    if list.is_empty() {
        return Err("the \"images\" list is empty".into());
    }
    let mut out: Vec<ImageEntry> = Vec::with_capacity(list.len());
    let mut ids = HashMap::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let o = object(v, &format!("images[{i}]"))?;
        let id = uint(o, "id", &format!("images[{i}]"))?;
        let entry = format!("images[{i}] (id {id})");
        let file = text(o, "file_name", &entry)?;
        if !inside(file) {
            return Err(format!(
                "{entry}: file_name {file:?} must be a relative path inside images/"
            ));
        }
        let mut size = [0usize; 2];
        for (s, key) in size.iter_mut().zip(["height", "width"]) {
            let v = uint(o, key, &entry)?;
            if v == 0 || v > limits.max_image_side as u64 {
                return Err(format!("{entry}: {key} {v} is outside 1..={}", limits.max_image_side));
            }
            *s = v as usize;
        }
        if let Some(first) = out.first() {
            if first.size != size {
                return Err(format!(
                    "{entry} is {}x{} but images[0] is {}x{}; all images must have one size",
                    size[0], size[1], first.size[0], first.size[1]
                ));
            }
        }
        if ids.insert(id, i).is_some() {
            return Err(format!("{entry}: image id {id} appears twice"));
        }
        out.push(ImageEntry {
            id,
            file: file.to_string(),
            size,
        });
    }
    Ok(out)
}

/// Each image's objects, annotations in file order.
fn annotations(doc: &Value, images: &[ImageEntry], class_of: &HashMap<u64, usize>) -> Msg<Vec<Vec<SceneObject>>> {
    let index: HashMap<u64, usize> = images.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
    let mut objects = vec![Vec::new(); images.len()];
    for (i, v) in list(doc, "annotations")?.iter().enumerate() {
        let o = object(v, &format!("annotations[{i}]"))?;
        let entry = match o.get("id") {
            Some(id) => format!("annotations[{i}] (id {id})"),
            None => format!("annotations[{i}]"),
        };
        let image_id = uint(o, "image_id", &entry)?;
        let &img = index
            .get(&image_id)
            .ok_or_else(|| format!("{entry}: image_id {image_id} is not among the images"))?;
        let cat = uint(o, "category_id", &entry)?;
        let &class = class_of
            .get(&cat)
            .ok_or_else(|| format!("{entry}: unknown category id {cat}"))?;
        let bbox = o
            .get("bbox")
            .and_then(Value::as_array)
            .filter(|b| b.len() == 4)
            .ok_or_else(|| format!("{entry}: \"bbox\" is missing or not [x, y, w, h]"))?;
        let mut b = [0f64; 4];
        for (d, v) in b.iter_mut().zip(bbox) {
            *d = v
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("{entry}: bbox value {v} is not a number"))?;
        }
        let [x, y, w, h] = b;
        if w <= 0.0 || h <= 0.0 {
            return Err(format!(
                "{entry}: bbox {b:?} has a width or height ≤ 0 (negative or empty)"
            ));
        }
        let [ih, iw] = images[img].size.map(|s| s as f64);
        if x < 0.0 || y < 0.0 || x + w > iw || y + h > ih {
            return Err(format!(
                "{entry}: bbox {b:?} lies outside its image ({}, {}x{})",
                images[img].file, ih, iw
            ));
        }
        objects[img].push(SceneObject {
            class,
            bbox: b.map(|v| v as f32),
        });
    }
    Ok(objects)
}
