//! The COCO captioning formats: results (what a model wrote) and references.

use super::CaptionSet;
use crate::{DataError, Result};
use serde_json::{json, Value};
use std::io::Write;
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

/// `value` to `path` through a temporary file in the same folder and a rename.
fn write_json(path: &Path, value: &Value) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| DataError::format(path, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer(&mut f, value)?;
        f.write_all(b"\n")?;
        f.sync_all()
    })();
    let done = written.and_then(|()| std::fs::rename(&tmp, path));
    done.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DataError::io(path, e)
    })
}
