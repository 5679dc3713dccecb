//! `nabla predict`: classify PNG/JPEG images with a checkpoint, printing the top-k classes
//! and their probabilities. Each image is converted to the model's channels (gray ↔ RGB),
//! resized to its input size (area averaging when shrinking, bilinear when growing) and
//! normalized as the training images were.

use crate::error::{CliError, CliResult};
use crate::image_io::read_image;
use crate::trainer::setup::load_trained;
use clap::Args;
use nabla_core::{no_grad, Generator, Tensor};
use nabla_data::transforms::{Image, Resize, Transform};
use nabla_nn::Mode;
use std::path::PathBuf;

/// Classify images with a checkpoint written by `nabla train`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  nabla predict --checkpoint runs/lenet5-fashion-mnist/version_0/best.safetensors shoe.png\n\n\
                        Fashion-MNIST items are light on a black background: use --invert for dark-on-light photos."
)]
pub struct PredictArgs {
    /// The checkpoint (best.safetensors or last.safetensors of a run folder)
    #[arg(long, short = 'c', value_name = "FILE")]
    checkpoint: PathBuf,
    /// PNG or JPEG images
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<PathBuf>,
    /// How many classes to print per image
    #[arg(long, short = 'k', value_name = "K", default_value_t = 3)]
    top: usize,
    /// Invert the images first (1 − value)
    #[arg(long)]
    invert: bool,
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

/// An image as the model takes it: `[C, H, W]` f32, channels converted and resized.
fn prepare(path: &std::path::Path, [c, h, w]: [usize; 3], invert: bool) -> CliResult<Vec<f32>> {
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
    if invert {
        px.iter_mut().for_each(|p| *p = 1.0 - *p);
    }
    if ih >= h && iw >= w {
        return Ok(area_resize(&px, [c, ih, iw], [h, w]));
    }
    let img = Image::new(px, [c, ih, iw])?;
    let out = Resize::new([h, w]).apply(img, &mut Generator::new(0))?;
    Ok(out.data)
}

/// Run `nabla predict`.
pub fn run(args: PredictArgs) -> CliResult<()> {
    let (model, meta, _) = load_trained(&args.checkpoint)?;
    let [c, h, w] = match meta.input_shape[..] {
        [c, h, w] => [c, h, w],
        _ => {
            return Err(CliError::new(format!(
                "{}: this model takes {:?} features, not images; use nabla eval",
                args.checkpoint.display(),
                meta.input_shape
            )))
        }
    };
    let (mean, std) = &meta.normalize;
    let _guard = no_grad();
    for path in &args.images {
        let mut px = prepare(path, [c, h, w], args.invert)?;
        for (ch, plane) in px.chunks_exact_mut(h * w).enumerate() {
            let (m, s) = (
                mean.get(ch).copied().unwrap_or(0.0),
                std.get(ch).copied().unwrap_or(1.0),
            );
            plane.iter_mut().for_each(|p| *p = (*p - m) / s);
        }
        let x = Tensor::from_vec(px, &[1, c, h, w])?;
        let logits = model.forward(&x, Mode::Eval)?;
        let probs = logits.softmax(1)?.to_vec_f64();
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let top: Vec<String> = order
            .iter()
            .take(args.top.max(1))
            .map(|&k| {
                let name = meta.classes.get(k).cloned().unwrap_or_else(|| k.to_string());
                format!("{name} {:.2}%", 100.0 * probs[k])
            })
            .collect();
        println!("{}: {}", path.display(), top.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_resize_averages_blocks() {
        // 1×2×4 → 1×1×2: the left 2×2 block and the right one.
        let v = [0.0, 1.0, 4.0, 4.0, 1.0, 2.0, 4.0, 8.0];
        assert_eq!(area_resize(&v, [1, 2, 4], [1, 2]), vec![1.0, 5.0]);
    }
}
