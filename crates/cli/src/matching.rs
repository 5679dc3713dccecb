//! `nabla match`: find a template in an image by normalized cross-correlation.

use crate::error::{CliError, CliResult};
use crate::image_io::{self, Format, Pixels};
use clap::Args;
use nabla_core::{DType, Tensor};
use nabla_vision::{match_template, Match};
use std::path::PathBuf;

/// Find where a template appears in an image.
#[derive(Debug, Args)]
pub struct MatchArgs {
    /// Image to search: PNG, JPEG, or a CSV matrix of raw numbers.
    pub image: PathBuf,
    /// Template to look for (same kinds of file).
    pub template: PathBuf,
    /// How many non-overlapping matches to report.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Centre patch and template first: scores ignore brightness and contrast.
    #[arg(long)]
    pub zero_mean: bool,
    /// Heatmap of the scores over the image with the best boxes drawn (.png/.jpg).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// The unscaled score map as CSV (row y, column x: the box's top-left corner).
    #[arg(long)]
    pub raw: Option<PathBuf>,
}

/// Run the command.
pub fn run(args: MatchArgs) -> CliResult<()> {
    let img = image_io::read_image(&args.image)?;
    let tpl = image_io::read_image(&args.template)?;
    let (ih, iw) = (img.data.shape()[1], img.data.shape()[2]);
    let (th, tw) = (tpl.data.shape()[1], tpl.data.shape()[2]);
    if th > ih || tw > iw {
        return Err(CliError::new(format!(
            "template {} ({tw}×{th}) is larger than the image {} ({iw}×{ih})",
            args.template.display(),
            args.image.display()
        )));
    }
    // Same channels: match whole colour vectors; otherwise compare brightness alone.
    let (x, t) = if img.data.shape()[0] == tpl.data.shape()[0] {
        (img.data.clone(), tpl.data.clone())
    } else {
        (
            image_io::to_gray(&img.data)?.unsqueeze(0)?,
            image_io::to_gray(&tpl.data)?.unsqueeze(0)?,
        )
    };
    // Single precision halves the work; the scores only need a few digits.
    let (scores, found) = match_template(
        &x.to_dtype(DType::F32)?,
        &t.to_dtype(DType::F32)?,
        args.top,
        args.zero_mean,
    )?;
    for (i, m) in found.iter().enumerate() {
        println!("#{} x={} y={} w={tw} h={th} score={:.6}", i + 1, m.x, m.y, m.score);
    }
    if found.is_empty() {
        println!("no matches");
    }
    if let Some(raw) = &args.raw {
        image_io::write_csv(raw, &scores)?;
    }
    if let Some(path) = &args.output {
        if Format::of(path)? == Format::Csv {
            image_io::write_csv(path, &scores)?;
        } else {
            heatmap(&img, &scores, &found, [th, tw])?.save(path)?;
        }
    }
    Ok(())
}

/// Colour ramp from dark blue (low) through cyan and yellow to red (high); `s` in [0, 1].
fn ramp(s: f64) -> [f64; 3] {
    const STOPS: [[f64; 3]; 5] = [
        [0.05, 0.0, 0.35],
        [0.1, 0.25, 0.95],
        [0.1, 0.85, 0.85],
        [0.95, 0.9, 0.1],
        [0.9, 0.1, 0.05],
    ];
    let p = s.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (p.floor() as usize).min(STOPS.len() - 2);
    let f = p - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    // Weights (1 − f, f) land exactly on the stops at both ends.
    [0, 1, 2].map(|c| a[c] * (1.0 - f) + b[c] * f)
}

/// The image in gray, tinted by the score of the box centred on each pixel, with the
/// found boxes outlined in green.
fn heatmap(img: &image_io::Loaded, scores: &Tensor, found: &[Match], tbox: [usize; 2]) -> CliResult<Pixels> {
    let gray = image_io::to_gray(&img.data)?;
    let (h, w) = (gray.shape()[0], gray.shape()[1]);
    let (lo, hi) = img.range();
    let base = image_io::rescale(&gray.to_vec_f64(), lo, hi);
    let (sh, sw) = (scores.shape()[0], scores.shape()[1]);
    let sv = scores.to_vec_f64();
    let (smin, smax) = image_io::min_max(&sv);
    let norm = image_io::rescale(&sv, smin, smax);
    let (cy, cx) = (tbox[0] / 2, tbox[1] / 2);
    let mut rgb = vec![0.0f64; 3 * h * w];
    for r in 0..h {
        for c in 0..w {
            let g = base[r * w + c].clamp(0.0, 1.0);
            let (sr, sc) = (r.wrapping_sub(cy), c.wrapping_sub(cx));
            let px = if sr < sh && sc < sw {
                let col = ramp(norm[sr * sw + sc]);
                [
                    0.35 * g + 0.65 * col[0],
                    0.35 * g + 0.65 * col[1],
                    0.35 * g + 0.65 * col[2],
                ]
            } else {
                [0.5 * g; 3]
            };
            for (ch, v) in px.iter().enumerate() {
                rgb[ch * h * w + r * w + c] = *v;
            }
        }
    }
    let mut pixels = Pixels::from_unit(&Tensor::from_vec(rgb, &[3, h, w])?)?;
    for m in found {
        draw_box(&mut pixels, m.x, m.y, tbox[1], tbox[0], [0, 255, 0]);
    }
    Ok(pixels)
}

/// Outline the `bw×bh` box at `(x, y)`, two pixels thick where it fits.
fn draw_box(p: &mut Pixels, x: usize, y: usize, bw: usize, bh: usize, color: [u8; 3]) {
    let (x1, y1) = ((x + bw).min(p.width), (y + bh).min(p.height));
    let thick = 2.min(bw.div_ceil(2)).min(bh.div_ceil(2)).max(1);
    let mut set = |r: usize, c: usize| {
        let i = (r * p.width + c) * p.channels;
        p.data[i..i + 3].copy_from_slice(&color);
    };
    for r in y..y1 {
        for c in x..x1 {
            let edge = r < y + thick || r + thick >= y + bh || c < x + thick || c + thick >= x + bw;
            if edge {
                set(r, c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_ends_and_boxes() {
        assert_eq!(ramp(0.0), [0.05, 0.0, 0.35]);
        assert_eq!(ramp(1.0), [0.9, 0.1, 0.05]);
        let mut p = Pixels {
            width: 6,
            height: 5,
            channels: 3,
            data: vec![0; 90],
        };
        draw_box(&mut p, 1, 1, 4, 3, [0, 255, 0]);
        let green = |r: usize, c: usize| p.data[(r * 6 + c) * 3 + 1] == 255;
        assert!(green(1, 1) && green(3, 4) && green(2, 1));
        assert!(!green(0, 0) && !green(4, 4) && !green(1, 5));
    }
}
