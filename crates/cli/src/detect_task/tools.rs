//! `nabla eval` and `nabla predict` for detection checkpoints: the per-class AP table,
//! mAP@0.5 and mAP@[.5:.95], where the errors are, the detections in COCO's results format;
//! and per image the detections above a score threshold, printed and drawn.

use super::pictures::{predicted_png, Boxed, Picture};
use super::report::{analyse, ap_table};
use super::task::PICTURE_THRESHOLD;
use super::{build_detector, data, EVAL_BATCH};
use crate::error::{CliError, CliResult};
use crate::trainer::setup::RunMeta;
use nabla_core::{no_grad, Tensor};
use nabla_data::detection::{write_coco_results, CocoResult, DetectionSet};
use nabla_models::fasterrcnn::FasterRcnn;
use nabla_nn::checkpoint::Checkpoint;
use nabla_nn::Module;
use nabla_vision::{evaluate_detections, Detection, GroundTruth};
use serde_json::json;
use std::path::{Path, PathBuf};

/// The detector of a detection checkpoint, with its weights.
pub fn load_detector(meta: &RunMeta, ck: &Checkpoint) -> CliResult<FasterRcnn> {
    let c = meta.input_shape.first().copied().unwrap_or(1);
    let model = build_detector(&meta.config, c, meta.classes.len())?;
    ck.restore_model(&model.state_dict())?;
    Ok(model)
}

/// Every detection of `model` on `set`, with the ground truths (image = position in the set)
/// and the images' own ids.
pub fn detect_all(
    model: &FasterRcnn,
    set: &dyn DetectionSet,
    batch: usize,
) -> CliResult<(Vec<Detection>, Vec<GroundTruth>, Vec<u64>)> {
    let _g = no_grad();
    let (mut dets, mut gts, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    let [h, w] = set.size();
    let c = set.channels();
    let mut start = 0;
    while start < set.len() {
        let end = (start + batch.max(1)).min(set.len());
        let mut x = Vec::with_capacity((end - start) * c * h * w);
        for i in start..end {
            let im = set.get(i)?;
            x.extend_from_slice(&im.image);
            ids.push(im.id);
            for (b, &k) in im.boxes.iter().zip(&im.labels) {
                gts.push(GroundTruth {
                    image: i,
                    class: k,
                    bbox: *b,
                    difficult: false,
                });
            }
        }
        let x = Tensor::from_vec(x, &[end - start, c, h, w])?;
        for (j, d) in model.detect(&x)?.into_iter().enumerate() {
            for k in 0..d.boxes.len() {
                dets.push(Detection {
                    image: start + j,
                    class: d.labels[k],
                    score: d.scores[k],
                    bbox: d.boxes[k],
                });
            }
        }
        start = end;
    }
    Ok((dets, gts, ids))
}

/// Detections in COCO's results format: the images' ids, the classes' category ids (class
/// + 1 for the scenes' `annotations.json`, a COCO file's own), `[x, y, w, h]` boxes.
pub fn coco_results(dets: &[Detection], ids: &[u64], categories: &[u64]) -> Vec<CocoResult> {
    dets.iter()
        .map(|d| {
            let mut r = CocoResult::from_xyxy(ids[d.image], d.class, d.bbox, d.score);
            r.category_id = categories.get(d.class).copied().unwrap_or(r.category_id);
            r
        })
        .collect()
}

/// What `nabla eval` does with a detection checkpoint.
pub struct EvalRequest<'a> {
    /// The checkpoint file.
    pub checkpoint: &'a Path,
    /// Where to look for the data set first.
    pub data_dir: Option<PathBuf>,
    /// Images per forward pass.
    pub batch: usize,
    /// One JSON object instead of text.
    pub json: bool,
    /// Write the detections here in COCO's results format.
    pub save: Option<&'a Path>,
}

/// `nabla eval` of a detection checkpoint on its run's test images.
pub fn eval(meta: &RunMeta, ck: &Checkpoint, req: &EvalRequest) -> CliResult<()> {
    let model = load_detector(meta, ck)?;
    let mut cfg = meta.config.clone();
    if req.data_dir.is_some() {
        cfg.data_dir = req.data_dir.clone();
    }
    let data = data::load(&cfg)?;
    let batch = if req.batch == 0 { EVAL_BATCH } else { req.batch };
    let (dets, gts, ids) = detect_all(&model, data.test.as_ref(), batch)?;
    let r = evaluate_detections(&dets, &gts, meta.classes.len());
    let errors = analyse(&dets, &gts, meta.classes.len(), PICTURE_THRESHOLD);
    if let Some(p) = req.save {
        write_coco_results(p, &coco_results(&dets, &ids, &data.category_ids))?;
    }
    if req.json {
        let per: Vec<_> = r
            .per_class
            .iter()
            .map(|c| {
                json!({"class": meta.classes.get(c.class), "ap50": c.ap50, "ap75": c.ap75, "ap": c.ap_coco,
                       "objects": c.ground_truths, "detections": c.detections})
            })
            .collect();
        let v = json!({"checkpoint": req.checkpoint.to_string_lossy(), "model": meta.model, "task": "detect",
            "epoch": ck.epoch, "images": data.test.len(), "map50": r.map50, "map75": r.map75, "map": r.map_coco,
            "per_class": per, "errors": {"threshold": errors.threshold, "objects": errors.objects, "found": errors.found,
            "confused": errors.confused_total(), "confused_similar": errors.confused_similar(&meta.classes),
            "missed": errors.missed_total(), "on_nothing": errors.on_nothing},
            "detections_file": req.save.map(|p| p.to_string_lossy())});
        println!("{v}");
        return Ok(());
    }
    println!(
        "{}: {} (detect) after epoch {} on {} ({} test images)",
        req.checkpoint.display(),
        meta.model,
        ck.epoch,
        data.origin,
        data.test.len()
    );
    print!("{}", ap_table(&r, &meta.classes));
    print!("{}", errors.text(&meta.classes));
    // At any score: is an object covered at all, whatever the detector's confidence.
    print!("{}", analyse(&dets, &gts, meta.classes.len(), 0.0).text(&meta.classes));
    if let Some(p) = req.save {
        println!(
            "wrote {} detections to {} (COCO results: the images' ids, category ids as the annotations number them)",
            dets.len(),
            p.display()
        );
    }
    Ok(())
}

/// Where the picture of `image`'s detections goes: `-o` (one image), else
/// `<stem>.detections.png` in the current folder.
fn picture_path(image: &Path, output: Option<&Path>) -> PathBuf {
    match output {
        Some(o) => o.to_path_buf(),
        None => {
            let stem = image
                .file_stem()
                .map_or("image".into(), |s| s.to_string_lossy().into_owned());
            PathBuf::from(format!("{stem}.detections.png"))
        }
    }
}

/// What `nabla predict` does with a detection checkpoint.
pub struct PredictRequest<'a> {
    /// The images.
    pub images: &'a [PathBuf],
    /// The picture of a single image.
    pub output: Option<&'a Path>,
    /// `auto`, `always` or `never` (as `nabla predict --invert`).
    pub invert: &'a str,
    /// Detections scoring below this are left out.
    pub threshold: f32,
    /// One JSON object per image instead of text.
    pub json: bool,
}

/// `nabla predict` with a detection checkpoint: per image the detections at or above the
/// threshold (class, score, box in the image's own pixels), and a picture of them.
pub fn predict(meta: &RunMeta, ck: &Checkpoint, req: &PredictRequest) -> CliResult<()> {
    if req.output.is_some() && req.images.len() != 1 {
        return Err(CliError::new(format!(
            "-o names one picture, but {} images were given; leave it out to write <name>.detections.png each",
            req.images.len()
        )));
    }
    if let Some(o) = req.output {
        if o.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()) != Some("png".into()) {
            return Err(CliError::new(format!(
                "-o {}: the picture is written as PNG; name it .png",
                o.display()
            )));
        }
    }
    let model = load_detector(meta, ck)?;
    let [c, h, w] = match meta.input_shape[..] {
        [c, h, w] => [c, h, w],
        _ => return Err(CliError::new("the checkpoint's input shape is not [C, H, W]")),
    };
    let _g = no_grad();
    for path in req.images {
        let (px, notes) = crate::predict::prepare(path, [c, h, w], req.invert)?;
        let original = crate::image_io::read_image(path)?.data;
        let [ih, iw] = [original.shape()[1], original.shape()[2]];
        let (sx, sy) = (iw as f32 / w as f32, ih as f32 / h as f32);
        let mut notes = notes;
        if (ih, iw) != (h, w) {
            notes.push(format!("boxes mapped back to the {iw}×{ih} original"));
        }
        if !notes.is_empty() && !req.json {
            eprintln!("note: {}: {}", path.display(), notes.join(", "));
        }
        let x = Tensor::from_vec(px, &[1, c, h, w])?;
        let d = model.detect(&x)?.remove(0);
        let found: Vec<Boxed> = (0..d.boxes.len())
            .filter(|&k| d.scores[k] >= req.threshold)
            .map(|k| {
                let [x1, y1, x2, y2] = d.boxes[k];
                Boxed {
                    bbox: [x1 * sx, y1 * sy, x2 * sx, y2 * sy],
                    class: d.labels[k],
                    score: Some(d.scores[k]),
                }
            })
            .collect();
        let pic = picture_path(path, req.output);
        let shown = original.to_vec_f32();
        let channels = original.shape()[0];
        predicted_png(
            &pic,
            &Picture {
                px: &shown,
                shape: [channels, ih, iw],
            },
            &found,
            &meta.classes,
        )?;
        let name = |k: usize| meta.classes.get(k).cloned().unwrap_or_else(|| k.to_string());
        if req.json {
            let f: Vec<_> = found
                .iter()
                .map(|b| json!({"class": name(b.class), "index": b.class, "score": b.score, "box": b.bbox}))
                .collect();
            let v = json!({"image": path.to_string_lossy(), "detections": f, "score_threshold": req.threshold,
                           "picture": pic.to_string_lossy(), "notes": notes});
            println!("{v}");
            continue;
        }
        println!(
            "{}: {} detections with score >= {} (boxes x1 y1 x2 y2 in pixels of the {iw}×{ih} image); wrote {}",
            path.display(),
            found.len(),
            req.threshold,
            pic.display()
        );
        for b in &found {
            let [x1, y1, x2, y2] = b.bbox;
            println!(
                "  {:<14} {:.3}  {x1:.1} {y1:.1} {x2:.1} {y2:.1}",
                name(b.class),
                b.score.unwrap_or(0.0)
            );
        }
    }
    Ok(())
}
