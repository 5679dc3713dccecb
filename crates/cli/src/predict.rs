//! `nabla predict`: classify PNG/JPEG images with a checkpoint, printing the top-k classes
//! and their probabilities. Each image is converted to the model's channels (gray ↔ RGB),
//! inverted when it is dark on light (`--invert auto`, by its border), resized to its input
//! size (area averaging when shrinking, bilinear when growing) and normalized as the
//! training images were; each of those steps is said in a note (stderr, or the JSON).

use crate::error::{CliError, CliResult};
use crate::image_io::read_image;
use crate::trainer::setup::load_trained;
use crate::trainer::setup::RunMeta;
use clap::Args;
use nabla_core::{no_grad, Generator, Tensor};
use nabla_data::transforms::{Image, Resize, Transform};
use nabla_data::{load_image, Fit, ReadLimits};
use nabla_nn::Mode;
use serde_json::json;
use std::path::Path;
use std::path::PathBuf;

/// Classify images with a checkpoint written by `nabla train`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  nabla predict --checkpoint runs/lenet5-fashion-mnist/version_0/best.safetensors shoe.png\n\n\
                        Fashion-MNIST items are light on a black background: dark-on-light photos are inverted\n\
                        (--invert auto, the default, tells them by their border)."
)]
pub struct PredictArgs {
    /// The checkpoint (best.safetensors or last.safetensors of a run folder); several make
    /// an ensemble (image classifiers, each with its own preprocessing)
    #[arg(long, short = 'c', value_name = "FILE", required = true)]
    checkpoint: Vec<PathBuf>,
    /// With several --checkpoint: how the members' outputs make one prediction, mean-prob
    /// (the highest mean probability) or vote (the class most members put first; ties go
    /// to the higher mean probability) [default: mean-prob]
    #[arg(long, value_name = "HOW", value_parser = ["mean-prob", "vote"])]
    combine: Option<String>,
    /// Test-time augmentation, the softmax averaged over views of each image: flips (the
    /// image and its mirror), ten-crop (AlexNet's four corners and centre of a 256/224
    /// enlargement, and their mirrors) or multiscale (scales 0.875, 1, 1.125, padded or
    /// cropped back) [default: none]
    #[arg(long, value_name = "HOW", default_value = "none", value_parser = ["none", "flips", "ten-crop", "multiscale"])]
    tta: String,
    /// PNG or JPEG images; for a model trained on a table, one CSV file of rows with its
    /// columns (predictions are written as CSV)
    #[arg(value_name = "IMAGE|FILE.csv", required = true)]
    images: Vec<PathBuf>,
    /// Write a table's predictions to this CSV file instead of stdout
    #[arg(long, short = 'o', value_name = "FILE.csv")]
    output: Option<PathBuf>,
    /// How many classes to print per image
    #[arg(long, short = 'k', value_name = "K", default_value_t = 3)]
    top: usize,
    /// Invert the images first (1 − value): auto inverts images whose border is light
    /// (dark-on-light photos, where the training images were light on black; never for
    /// models trained on image folders or CIFAR) [default: auto]
    #[arg(long, value_name = "WHEN", num_args = 0..=1, default_value = "auto", default_missing_value = "always",
          value_parser = ["auto", "always", "never"])]
    invert: String,
    /// One JSON object per image on stdout (image, top classes, notes) instead of text
    #[arg(long)]
    json: bool,
    /// A detector's checkpoint: leave out detections scoring below this [default: 0.5]
    #[arg(long, value_name = "P")]
    score_threshold: Option<f32>,
}

/// The mean of the outermost ring of pixels of `[C, H, W]` values in [0, 1].
fn border_mean(v: &[f32], [c, h, w]: [usize; 3]) -> f64 {
    let (mut sum, mut n) = (0f64, 0usize);
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                if y == 0 || x == 0 || y + 1 == h || x + 1 == w {
                    sum += v[ch * h * w + y * w + x] as f64;
                    n += 1;
                }
            }
        }
    }
    sum / n.max(1) as f64
}

/// Shrink `[C, H, W]` values to `h × w` by averaging the source area under each output pixel.
fn area_resize(v: &[f32], [c, sh, sw]: [usize; 3], [h, w]: [usize; 2]) -> Vec<f32> {
    let mut out = vec![0f32; c * h * w];
    let span = |i: usize, n: usize, src: usize| (i * src / n, ((i + 1) * src).div_ceil(n).min(src));
    for ch in 0..c {
        for y in 0..h {
            let (y0, y1) = span(y, h, sh);
            for x in 0..w {
                let (x0, x1) = span(x, w, sw);
                let mut sum = 0f64;
                for yy in y0..y1 {
                    sum += v[ch * sh * sw + yy * sw + x0..ch * sh * sw + yy * sw + x1]
                        .iter()
                        .map(|&p| p as f64)
                        .sum::<f64>();
                }
                out[ch * h * w + y * w + x] = (sum / ((y1 - y0) * (x1 - x0)).max(1) as f64) as f32;
            }
        }
    }
    out
}

/// An image as the model takes it: `[C, H, W]` f32, channels converted, inverted as `invert`
/// says and resized; with a note for each change.
pub(crate) fn prepare(
    path: &std::path::Path,
    [c, h, w]: [usize; 3],
    invert: &str,
) -> CliResult<(Vec<f32>, Vec<String>)> {
    let img = read_image(path)?;
    if !img.picture {
        return Err(CliError::new(format!(
            "{}: predict takes PNG or JPEG images",
            path.display()
        )));
    }
    let shape = img.data.shape().to_vec();
    let (ic, ih, iw) = (shape[0], shape[1], shape[2]);
    let v = img.data.to_vec_f32();
    let plane = ih * iw;
    let mut notes = Vec::new();
    let colour = |n: usize| if n == 1 { "gray" } else { "colour" };
    if ic != c {
        notes.push(format!("converted {} to {}", colour(ic), colour(c)));
    }
    let mut px: Vec<f32> = match (ic, c) {
        (a, b) if a == b => v,
        // ITU-R BT.601 luma, as most grayscale conversions.
        (3, 1) => (0..plane)
            .map(|i| 0.299 * v[i] + 0.587 * v[plane + i] + 0.114 * v[2 * plane + i])
            .collect(),
        (1, 3) => v.iter().chain(&v).chain(&v).copied().collect(),
        _ => {
            return Err(CliError::new(format!(
                "{}: {ic} channels cannot be converted to the model's {c}",
                path.display()
            )))
        }
    };
    let border = border_mean(&px, [c, ih, iw]);
    let flip = match invert {
        "always" => true,
        "never" => false,
        _ => border > 0.5,
    };
    if flip {
        px.iter_mut().for_each(|p| *p = 1.0 - *p);
        let why = if invert == "auto" {
            format!(" (light border, mean {border:.2}: dark on light; --invert never keeps it)")
        } else {
            String::new()
        };
        notes.push(format!("inverted{why}"));
    }
    if (ih, iw) != (h, w) {
        notes.push(format!("resized {iw}×{ih} to {w}×{h}"));
    }
    if ih >= h && iw >= w {
        return Ok((area_resize(&px, [c, ih, iw], [h, w]), notes));
    }
    let img = Image::new(px, [c, ih, iw])?;
    let out = Resize::new([h, w]).apply(img, &mut Generator::new(0))?;
    Ok((out.data, notes))
}

/// Whether a checkpoint was trained on the user's own images or CIFAR: those are read as
/// training read them (resized to cover, centre-cropped, no inversion unless asked).
pub(crate) fn own_images(meta: &RunMeta) -> bool {
    matches!(meta.config.dataset.as_str(), "imagefolder" | "cifar10" | "cifar100")
}

/// An image as `meta`'s model takes it, normalized with the checkpoint's own statistics:
/// `[C, H, W]` values and a note for each change made.
pub(crate) fn model_input(meta: &RunMeta, path: &Path, invert: &str) -> CliResult<(Vec<f32>, Vec<String>)> {
    let [c, h, w] = match meta.input_shape[..] {
        [c, h, w] => [c, h, w],
        _ => {
            return Err(CliError::new(format!(
                "{}: the model does not take images",
                path.display()
            )))
        }
    };
    let (mut px, notes) = if own_images(meta) {
        let ([ih, iw], _) = nabla_data::probe_image(path, &ReadLimits::default())?;
        let mut px = load_image(path, [h, w], c, Fit::CenterCrop, &ReadLimits::default())?;
        let mut notes = Vec::new();
        if (ih, iw) != (h, w) {
            notes.push(format!("resized {iw}×{ih} to cover {w}×{h} and centre-cropped"));
        }
        if invert == "always" {
            px.iter_mut().for_each(|p| *p = 1.0 - *p);
            notes.push("inverted".into());
        }
        (px, notes)
    } else {
        prepare(path, [c, h, w], invert)?
    };
    let (mean, std) = &meta.normalize;
    for (ch, plane) in px.chunks_exact_mut(h * w).enumerate() {
        let (m, s) = (
            mean.get(ch).copied().unwrap_or(0.0),
            std.get(ch).copied().unwrap_or(1.0),
        );
        plane.iter_mut().for_each(|p| *p = (*p - m) / s);
    }
    Ok((px, notes))
}

/// Run `nabla predict`.
pub fn run(args: PredictArgs) -> CliResult<()> {
    if crate::ensemble::wanted(&args.checkpoint, &args.tta) {
        if args.output.is_some() || args.score_threshold.is_some() {
            return Err(CliError::new(
                "--output and --score-threshold take one checkpoint without --tta (ensembles and --tta classify images)",
            ));
        }
        let req = crate::ensemble::PredictRequest {
            checkpoints: &args.checkpoint,
            images: &args.images,
            combine: args.combine.as_deref().unwrap_or("mean-prob"),
            tta: crate::tta::Tta::parse(&args.tta)?,
            top: args.top,
            invert: &args.invert,
            json: args.json,
        };
        return crate::ensemble::predict(&req);
    }
    if args.combine.is_some() {
        return Err(CliError::new("--combine needs several --checkpoint (an ensemble)"));
    }
    let checkpoint = args.checkpoint[0].clone();
    let ck = crate::trainer::setup::read_checkpoint(&checkpoint, "")?;
    let meta = crate::trainer::setup::RunMeta::from_checkpoint(&ck, &checkpoint)?;
    if meta.config.task == crate::config::Task::Detect {
        let threshold = args.score_threshold.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&threshold) {
            return Err(CliError::new(format!(
                "--score-threshold {threshold}: a score in [0, 1]"
            )));
        }
        let req = crate::detect_task::tools::PredictRequest {
            images: &args.images,
            output: args.output.as_deref(),
            invert: &args.invert,
            threshold,
            json: args.json,
        };
        return crate::detect_task::tools::predict(&meta, &ck, &req);
    }
    if args.score_threshold.is_some() {
        return Err(CliError::new(format!(
            "--score-threshold: {} is a checkpoint of --task {}; it applies to detectors (--task detect)",
            checkpoint.display(),
            meta.config.task.name()
        )));
    }
    drop(ck);
    let (model, meta, _) = load_trained(&checkpoint)?;
    if meta.config.task.on_scenes() {
        let out = args.output.as_deref();
        return crate::scenes_task::tools::predict(model.as_ref(), &meta, &args.images, out, &args.invert, args.json);
    }
    let [c, h, w] = match meta.input_shape[..] {
        [c, h, w] => [c, h, w],
        _ => {
            let [file] = &args.images[..] else {
                return Err(CliError::new(format!(
                    "{}: a table model predicts the rows of one CSV file, got {} files",
                    checkpoint.display(),
                    args.images.len()
                )));
            };
            let csv = crate::predict_table::predict_csv(model.as_ref(), &meta, file)?;
            return match &args.output {
                Some(o) => {
                    crate::image_io::write_atomic(o, csv.as_bytes())?;
                    println!("wrote {} predictions to {}", csv.lines().count() - 1, o.display());
                    Ok(())
                }
                None => {
                    print!("{csv}");
                    Ok(())
                }
            };
        }
    };
    let _guard = no_grad();
    for path in &args.images {
        let (px, notes) = model_input(&meta, path, &args.invert)?;
        let x = Tensor::from_vec(px, &[1, c, h, w])?;
        let logits = model.forward(&x, Mode::Eval)?;
        let probs = logits.softmax(1)?.to_vec_f64();
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let top: Vec<(usize, String, f64)> = order
            .iter()
            .take(args.top.max(1))
            .map(|&k| {
                (
                    k,
                    meta.classes.get(k).cloned().unwrap_or_else(|| k.to_string()),
                    probs[k],
                )
            })
            .collect();
        if args.json {
            let top: Vec<_> = top
                .iter()
                .map(|(k, name, p)| json!({"class": name, "index": k, "probability": p}))
                .collect();
            println!(
                "{}",
                json!({"image": path.to_string_lossy(), "top": top, "notes": notes})
            );
            continue;
        }
        if !notes.is_empty() {
            eprintln!("note: {}: {}", path.display(), notes.join(", "));
        }
        let shown: Vec<String> = top
            .iter()
            .map(|(_, name, p)| format!("{name} {:.2}%", 100.0 * p))
            .collect();
        println!("{}: {}", path.display(), shown.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_folder_model_reads_pictures_with_its_own_normalization() {
        let path = std::env::temp_dir().join(format!("nabla-own-{}.png", std::process::id()));
        // 6×4 (W×H) grey: centre-cropped to 4×4, columns 1..5 kept.
        image::GrayImage::from_fn(6, 4, |x, y| image::Luma([(x * 40 + y) as u8]))
            .save(&path)
            .unwrap();
        let config = crate::config::TrainConfig {
            dataset: "imagefolder".into(),
            ..Default::default()
        };
        let meta = RunMeta {
            model: "mlp".into(),
            model_config: Default::default(),
            config,
            classes: vec!["a".into(), "b".into()],
            input_shape: vec![1, 4, 4],
            normalize: (vec![0.5], vec![0.25]),
            target_scale: None,
            features: vec![],
        };
        let (px, notes) = model_input(&meta, &path, "auto").unwrap();
        let want: Vec<f32> = (0..16)
            .map(|i| (((i % 4 + 1) * 40 + i / 4) as f32 / 255.0 - 0.5) / 0.25)
            .collect();
        assert_eq!(px, want);
        assert_eq!(notes, ["resized 6×4 to cover 4×4 and centre-cropped"]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_border_tells_dark_on_light() {
        // 1×3×3: a light frame around a dark centre.
        let v = [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.5];
        assert!((border_mean(&v, [1, 3, 3]) - 7.5 / 8.0).abs() < 1e-9);
    }

    #[test]
    fn area_resize_averages_blocks() {
        // 1×2×4 → 1×1×2: the left 2×2 block and the right one.
        let v = [0.0, 1.0, 4.0, 4.0, 1.0, 2.0, 4.0, 8.0];
        assert_eq!(area_resize(&v, [1, 2, 4], [1, 2]), vec![1.0, 5.0]);
    }
}
