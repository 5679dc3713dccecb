//! Detections in the COCO results format, the file `pycocotools`' `COCO.loadRes` reads.

use crate::atomic::write_atomic;
use crate::{DataError, Result};
use serde_json::json;
use std::path::Path;

/// One detection as COCO results list it: `bbox` is `[x, y, w, h]` in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CocoResult {
    /// The image's COCO id.
    pub image_id: u64,
    /// The COCO category id (class + 1 for the files nabla writes).
    pub category_id: u64,
    /// `[x, y, w, h]`, COCO's box.
    pub bbox: [f32; 4],
    /// The detector's confidence.
    pub score: f32,
}

impl CocoResult {
    /// A detection of 0-based `class` with an `xyxy` box, numbered as `annotations.json` of
    /// `nabla data scenes` numbers categories (class + 1).
    pub fn from_xyxy(image_id: u64, class: usize, xyxy: [f32; 4], score: f32) -> Self {
        let [x1, y1, x2, y2] = xyxy;
        CocoResult {
            image_id,
            category_id: class as u64 + 1,
            bbox: [x1, y1, x2 - x1, y2 - y1],
            score,
        }
    }
}

/// COCO results JSON: [{"image_id", "category_id", "bbox": [x, y, w, h], "score"}], written atomically.
///
/// The text goes to a temporary file beside `path` that is renamed over it at the end, so
/// `path` is never half-written. A score or coordinate that is not finite (JSON has no NaN) is
/// an error naming the entry, and nothing is written.
pub fn write_coco_results(path: &Path, results: &[CocoResult]) -> Result<()> {
    let mut text = String::with_capacity(results.len() * 96 + 4);
    text.push('[');
    for (i, r) in results.iter().enumerate() {
        if !r.score.is_finite() || !r.bbox.iter().all(|v| v.is_finite()) {
            return Err(DataError::format(
                path,
                format!(
                    "result {i} (image {}, category {}): score {} or bbox {:?} is not finite",
                    r.image_id, r.category_id, r.score, r.bbox
                ),
            ));
        }
        if i > 0 {
            text.push_str(",\n");
        }
        let entry = json!({
            "image_id": r.image_id,
            "category_id": r.category_id,
            "bbox": r.bbox.map(|v| v as f64),
            "score": r.score as f64,
        });
        text.push_str(&entry.to_string());
    }
    text.push_str("]\n");
    write_atomic(path, text.as_bytes())
}
