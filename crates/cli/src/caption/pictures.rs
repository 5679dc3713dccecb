//! The captioning pictures: `captions.png` (test images with the greedy and beam captions
//! and a reference written under each) and `curves.png` (losses and validation BLEU).

use crate::error::CliResult;
use crate::plot::{Canvas, Rgb, BLACK};
use crate::scenes_task::pictures::curves as draw_curves;
use nabla_core::Tensor;
use nabla_train::Record;
use std::path::Path;

/// Columns of `captions.png`.
const COLS: usize = 2;
/// Width of one cell.
const CELL_W: usize = 500;
/// Side the images are drawn at (at least).
const SHOWN_SIDE: usize = 128;
/// Text colours: greedy, beam, reference.
const COLOURS: [Rgb; 3] = [[31, 90, 180], [200, 40, 40], [40, 130, 40]];

/// `text` cut into lines of at most `width` characters at spaces (a longer word is cut; no
/// line for empty text).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("one line at least");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > width {
            lines.push(String::new());
        }
        let last = lines.last_mut().expect("one line at least");
        if !last.is_empty() {
            last.push(' ');
        }
        last.push_str(word);
    }
    lines
        .into_iter()
        .flat_map(|l| {
            let c: Vec<char> = l.chars().collect();
            c.chunks(width.max(1))
                .map(|p| p.iter().collect::<String>())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Draw `images` `[N, C, H, W]` in [0, 1] (grey or RGB) with, under each, its greedy and
/// beam captions and its first reference.
pub fn captions_png(
    path: &Path,
    images: &Tensor,
    greedy: &[String],
    beam: &[String],
    refs: &[Vec<String>],
    title: &str,
) -> CliResult<()> {
    let s = images.shape().to_vec();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let px = images.to_vec_f32();
    let scale = (SHOWN_SIDE / h.max(w)).max(1);
    let chars = (CELL_W - 16) / 6;
    let line_h = Canvas::text_height(1) as i64 + 4;
    let texts: Vec<Vec<(Rgb, String)>> = (0..n)
        .map(|i| {
            let reference = refs.get(i).and_then(|r| r.first()).cloned().unwrap_or_default();
            let parts = [
                format!("greedy: {}", greedy.get(i).map_or("", String::as_str)),
                format!("beam 3: {}", beam.get(i).map_or("", String::as_str)),
                format!("reference: {reference}"),
            ];
            parts
                .iter()
                .zip(COLOURS)
                .flat_map(|(t, col)| wrap(t, chars).into_iter().map(move |l| (col, l)))
                .collect()
        })
        .collect();
    let most_lines = texts.iter().map(Vec::len).max().unwrap_or(0) as i64;
    let cell_h = (h * scale) as i64 + 12 + most_lines * line_h + 16;
    let rows = n.div_ceil(COLS);
    let top = 36;
    let mut canvas = Canvas::new(CELL_W * COLS.min(n.max(1)), top as usize + rows * cell_h as usize);
    canvas.text_centered(canvas_width(n) as i64 / 2, 10, title, 2, BLACK);
    for (i, lines) in texts.iter().enumerate() {
        let (x0, y0) = (((i % COLS) * CELL_W) as i64, top + (i / COLS) as i64 * cell_h);
        let left = x0 + (CELL_W - w * scale) as i64 / 2;
        for y in 0..h {
            for x in 0..w {
                let at = |ch: usize| (px[((i * c + ch) * h + y) * w + x].clamp(0.0, 1.0) * 255.0).round() as u8;
                let rgb = if c >= 3 { [at(0), at(1), at(2)] } else { [at(0); 3] };
                let (sx, sy) = (left + (x * scale) as i64, y0 + (y * scale) as i64);
                canvas.fill(sx, sy, sx + scale as i64, sy + scale as i64, rgb);
            }
        }
        let mut ty = y0 + (h * scale) as i64 + 8;
        for (col, l) in lines {
            canvas.text(x0 + 8, ty, l, 1, *col);
            ty += line_h;
        }
    }
    canvas.save_png(path)
}

fn canvas_width(n: usize) -> usize {
    CELL_W * COLS.min(n.max(1))
}

/// `curves.png`: training and validation loss, and validation BLEU-1..4.
pub fn curves(dir: &Path, history: &[Record]) -> CliResult<()> {
    let loss: &[(&str, &str)] = &[("train_loss", "train"), ("val_loss", "validation")];
    let bleu: &[(&str, &str)] = &[
        ("val_bleu1", "BLEU-1"),
        ("val_bleu2", "BLEU-2"),
        ("val_bleu3", "BLEU-3"),
        ("val_bleu4", "BLEU-4"),
    ];
    draw_curves(
        dir,
        history,
        &[
            ("loss", "cross-entropy per word", loss, 1.0),
            ("validation (greedy)", "BLEU", bleu, 1.0),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_whole_and_lines_short() {
        assert_eq!(
            wrap("a bag to the left of a shirt", 10),
            ["a bag to", "the left", "of a shirt"]
        );
        assert_eq!(wrap("abcdefghijkl", 5), ["abcde", "fghij", "kl"]);
        assert!(wrap("", 5).is_empty());
    }
}
