//! The COCO captioning formats: results (what a model wrote) and references.

use super::CaptionSet;
use crate::atomic::write_atomic;
use crate::Result;
use serde_json::{json, Value};
use std::path::Path;

/// COCO captioning results: a JSON list of `{"image_id": ID, "caption": "..."}`, written
/// atomically (a temporary file beside `path` renamed over it), so an interrupted write never
/// leaves half a file.
pub fn write_coco_caption_results(path: &Path, results: &[(u64, String)]) -> Result<()> {
    let list: Vec<Value> = results
        .iter()
        .map(|(id, caption)| json!({"image_id": id, "caption": caption}))
        .collect();
    write_json(path, &Value::Array(list))
}

/// The references of `set` as a COCO captions JSON (`info`, `licenses`, `type`, `images` with
/// `id` and `file_name`, `annotations` with `id` counting from 1, `image_id` and `caption`),
/// written atomically: with [`write_coco_caption_results`]'s file, what pycocoevalcap scores.
pub fn write_coco_captions(path: &Path, set: &CaptionSet) -> Result<()> {
    let mut images = Vec::with_capacity(set.len());
    let mut annotations = Vec::new();
    for i in 0..set.len() {
        let id = set.image_id(i);
        images.push(json!({"id": id, "file_name": set.file_name(i)}));
        for c in set.captions(i) {
            annotations.push(json!({"id": annotations.len() + 1, "image_id": id, "caption": c}));
        }
    }
    let doc = json!({
        "info": {"description": "reference captions written by nabla"},
        "licenses": [],
        "type": "captions",
        "images": images,
        "annotations": annotations,
    });
    write_json(path, &doc)
}

/// `value` as one line of JSON to `path`, atomically.
fn write_json(path: &Path, value: &Value) -> Result<()> {
    let mut bytes = value.to_string().into_bytes();
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}
