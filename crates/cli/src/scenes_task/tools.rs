//! `nabla eval` and `nabla predict` for checkpoints of the scene tasks: the test scores
//! (per-class IoU in full for segmentation), and a picture per image of the predicted box
//! or mask.

use super::localize::{decode, loc_loss};
use super::metrics::{LocSums, PixelConfusion};
use super::pictures::{self, Gray, Labelled};
use super::segment::{mask_labels, seg_loss, unit_weights};
use crate::config::Task;
use crate::error::{CliError, CliResult};
use crate::trainer::setup::RunMeta;
use nabla_core::{no_grad, Tensor};
use nabla_data::DataLoader;
use nabla_models::classloc::split_outputs;
use nabla_nn::{Mode, Module};
use serde_json::json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The per-class IoU lines of a segmentation score (background first), then the mean.
pub fn iou_table(m: &PixelConfusion, classes: &[String]) -> String {
    let mut s = String::from("class          IoU\n");
    let names = std::iter::once("background".to_string()).chain(classes.iter().cloned());
    for (c, name) in names.enumerate().take(m.classes) {
        let v = m.iou(c).map_or("absent".to_string(), |v| format!("{v:.3}"));
        let _ = writeln!(s, "{name:<14} {v}");
    }
    let _ = writeln!(s, "mean IoU       {:.3} (over the classes present)", m.mean_iou());
    s
}

/// What `nabla eval` measured on a scene run's test split.
pub enum SceneScore {
    /// Localization: the sums and the mean loss.
    Localize(LocSums, f64),
    /// Segmentation: the pixel confusion and the mean loss (unweighted).
    Segment(PixelConfusion, f64),
}

/// Score `model` (of the run `meta`) on every batch of `loader`.
pub fn score(model: &dyn Module, meta: &RunMeta, loader: &DataLoader) -> CliResult<SceneScore> {
    let _g = no_grad();
    let cfg = &meta.config;
    let classes = meta.model_config.num_classes;
    let (mut loss, mut n) = (0.0, 0usize);
    let mut loc = LocSums::default();
    let mut conf = PixelConfusion::new(classes);
    let weight = Tensor::from_vec(unit_weights(classes), &[classes])?;
    for b in loader.epoch(0) {
        let b = b?;
        let out = model.forward(&b.inputs, Mode::Eval)?;
        let rows = b.inputs.shape()[0];
        n += rows;
        if cfg.task == Task::Localize {
            let (logits, boxes) = split_outputs(&out, classes)?;
            loss += loc_loss(&logits, &boxes, &b, &cfg.box_loss, cfg.box_weight)?
                .total
                .item()?
                * rows as f64;
            let (labels, target) = super::localize::split_targets(&b)?;
            let t = target.to_vec_f32();
            for (i, (k, _, bx)) in decode(&logits, &boxes)?.into_iter().enumerate() {
                loc.add(k, labels[i], bx, [t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]]);
            }
        } else {
            let labels = mask_labels(&b)?;
            loss += seg_loss(&out, &labels, &weight, cfg.ignore_index)?.item()? * rows as f64;
            conf.add(&out.argmax(1, false)?, &labels, cfg.ignore_index);
        }
    }
    let loss = loss / n.max(1) as f64;
    Ok(match cfg.task {
        Task::Localize => SceneScore::Localize(loc, loss),
        _ => SceneScore::Segment(conf, loss),
    })
}

/// `nabla eval` of a scene checkpoint: the test scores, as text or one JSON object.
pub fn eval(
    model: &dyn Module,
    meta: &RunMeta,
    epoch: u64,
    checkpoint: &Path,
    data_dir: Option<PathBuf>,
    batch: usize,
    as_json: bool,
) -> CliResult<()> {
    let mut cfg = meta.config.clone();
    if data_dir.is_some() {
        cfg.data_dir = data_dir;
    }
    let data = super::data::load(&cfg)?;
    let loader = DataLoader::from_arc(data.test.clone(), batch.max(1))?;
    let sc = score(model, meta, &loader)?;
    let head = format!(
        "{}: {} ({}) after epoch {epoch} on {} ({} test scenes)",
        checkpoint.display(),
        meta.model,
        cfg.task.name(),
        data.origin,
        data.test.len()
    );
    match sc {
        SceneScore::Localize(s, loss) => {
            if as_json {
                let v = json!({"checkpoint": checkpoint.to_string_lossy(), "model": meta.model, "task": "localize",
                    "epoch": epoch, "scenes": s.n, "loss": loss, "class_accuracy": s.accuracy(),
                    "mean_iou": s.mean_iou(), "correct_localization": s.correct()});
                println!("{v}");
                return Ok(());
            }
            println!("{head}");
            println!(
                "loss {loss:.4}\nclass accuracy {:.2}%\nmean IoU {:.3}\ncorrect localization (IoU ≥ 0.5, class right) {:.2}%",
                100.0 * s.accuracy(),
                s.mean_iou(),
                100.0 * s.correct()
            );
        }
        SceneScore::Segment(m, loss) => {
            if as_json {
                let names: Vec<String> = std::iter::once("background".to_string())
                    .chain(meta.classes.iter().cloned())
                    .collect();
                let per: Vec<_> = (0..m.classes)
                    .map(|c| json!({"class": names.get(c), "iou": m.iou(c)}))
                    .collect();
                let v = json!({"checkpoint": checkpoint.to_string_lossy(), "model": meta.model, "task": "segment",
                    "epoch": epoch, "loss": loss, "pixel_accuracy": m.pixel_accuracy(), "mean_iou": m.mean_iou(),
                    "per_class": per});
                println!("{v}");
                return Ok(());
            }
            println!("{head}");
            println!("loss {loss:.4}\npixel accuracy {:.2}%", 100.0 * m.pixel_accuracy());
            print!("{}", iou_table(&m, &meta.classes));
        }
    }
    Ok(())
}

/// Where the picture of `image`'s prediction goes: `-o` (one image), else `<stem>.<what>.png`
/// in the current folder.
fn picture_path(image: &Path, output: Option<&Path>, what: &str) -> PathBuf {
    match output {
        Some(o) => o.to_path_buf(),
        None => {
            let stem = image
                .file_stem()
                .map_or("image".into(), |s| s.to_string_lossy().into_owned());
            PathBuf::from(format!("{stem}.{what}.png"))
        }
    }
}

/// `nabla predict` with a scene checkpoint: per image, the class and box (localize) or the
/// share of pixels per class (segment), and a picture of it.
pub fn predict(
    model: &dyn Module,
    meta: &RunMeta,
    images: &[PathBuf],
    output: Option<&Path>,
    invert: &str,
    as_json: bool,
) -> CliResult<()> {
    if output.is_some() && images.len() != 1 {
        return Err(CliError::new(format!(
            "-o names one picture, but {} images were given; leave it out to write <name>.boxes.png / <name>.mask.png each",
            images.len()
        )));
    }
    if let Some(o) = output {
        if o.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()) != Some("png".into()) {
            return Err(CliError::new(format!(
                "-o {}: the picture is written as PNG; name it .png",
                o.display()
            )));
        }
    }
    let [h, w] = [meta.input_shape[1], meta.input_shape[2]];
    let _g = no_grad();
    for path in images {
        let (px, notes) = crate::predict::prepare(path, [1, h, w], invert)?;
        if !notes.is_empty() && !as_json {
            eprintln!("note: {}: {}", path.display(), notes.join(", "));
        }
        let x = Tensor::from_vec(px.clone(), &[1, 1, h, w])?;
        let out = model.forward(&x, Mode::Eval)?;
        let img = Gray { px: &px, size: [h, w] };
        let name = |k: usize| meta.classes.get(k).cloned().unwrap_or_else(|| k.to_string());
        if meta.config.task == Task::Localize {
            let (logits, boxes) = split_outputs(&out, meta.classes.len())?;
            let (k, p, b) = decode(&logits, &boxes)?[0];
            let bx = [b[0] * w as f32, b[1] * h as f32, b[2] * w as f32, b[3] * h as f32];
            let pic = picture_path(path, output, "boxes");
            pictures::boxed_png(
                &pic,
                &img,
                &[Labelled {
                    bbox: bx,
                    class: k,
                    score: Some(p),
                }],
                &meta.classes,
            )?;
            if as_json {
                let v = json!({"image": path.to_string_lossy(), "class": name(k), "index": k, "probability": p,
                    "box": bx, "picture": pic.to_string_lossy(), "notes": notes});
                println!("{v}");
            } else {
                println!(
                    "{}: {} {:.2}%, box x {:.1} y {:.1} w {:.1} h {:.1} (pixels of the {w}×{h} input); wrote {}",
                    path.display(),
                    name(k),
                    100.0 * p,
                    bx[0],
                    bx[1],
                    bx[2],
                    bx[3],
                    pic.display()
                );
            }
        } else {
            let mask = out.argmax(1, false)?;
            let pic = picture_path(path, output, "mask");
            pictures::mask_png(&pic, &img, &mask, &meta.classes)?;
            let mut counts = vec![0usize; meta.model_config.num_classes];
            mask.iter().for_each(|&l| counts[l] += 1);
            let found: Vec<(String, f64)> = counts
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, &c)| c > 0)
                .map(|(l, &c)| (name(l - 1), c as f64 / mask.len() as f64))
                .collect();
            if as_json {
                let f: Vec<_> = found.iter().map(|(n, s)| json!({"class": n, "share": s})).collect();
                let v = json!({"image": path.to_string_lossy(), "classes": f, "picture": pic.to_string_lossy(), "notes": notes});
                println!("{v}");
            } else {
                let shown: Vec<String> = found.iter().map(|(n, s)| format!("{n} {:.1}%", 100.0 * s)).collect();
                let shown = if shown.is_empty() {
                    "background only".to_string()
                } else {
                    shown.join(", ")
                };
                println!("{}: {shown} of the pixels; wrote {}", path.display(), pic.display());
            }
        }
    }
    Ok(())
}
