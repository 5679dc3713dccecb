//! The detection pictures: `detections.png` (test images with their true boxes in one
//! colour and the predictions above a score threshold in another, each labelled, under a
//! legend), the single image `nabla predict` writes, and `curves.png`.

use crate::error::CliResult;
use crate::plot::{Canvas, Rgb, BLACK};
use crate::scenes_task::pictures::{curves as scene_curves, Panel, PRED_BOX, TRUE_BOX};
use nabla_train::Record;
use std::path::Path;

/// One `C × H × W` image in `[0, 1]` (C = 1 grey or 3 RGB).
pub struct Picture<'a> {
    /// `C · H · W` values, channel-major.
    pub px: &'a [f32],
    /// `[C, H, W]`.
    pub shape: [usize; 3],
}

/// A box to draw: xyxy pixels of the image, class, and the score of a prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Boxed {
    /// `[x1, y1, x2, y2]` in pixels.
    pub bbox: [f32; 4],
    /// 0-based class.
    pub class: usize,
    /// The detector's score (none for a true box).
    pub score: Option<f32>,
}

/// Paint `p` at scale `s` with its top-left corner at `(x0, y0)`.
fn draw_picture(c: &mut Canvas, x0: i64, y0: i64, s: i64, p: &Picture) {
    let [ch, h, w] = p.shape;
    let plane = h * w;
    for y in 0..h {
        for x in 0..w {
            let v = |k: usize| (p.px[k * plane + y * w + x].clamp(0.0, 1.0) * 255.0).round() as u8;
            let col = if ch >= 3 { [v(0), v(1), v(2)] } else { [v(0); 3] };
            let (l, t) = (x0 + x as i64 * s, y0 + y as i64 * s);
            c.fill(l, t, l + s, t + s, col);
        }
    }
}

/// The label of a box: the class name, and the score as a percentage for a prediction.
pub fn label(b: &Boxed, classes: &[String]) -> String {
    let name = classes.get(b.class).map_or(format!("class {}", b.class), |n| n.clone());
    match b.score {
        Some(p) => format!("{name} {:.0}%", 100.0 * p),
        None => name,
    }
}

/// Outline `b` (drawn at scale `s` from `(x0, y0)`, clipped to the `w × h` panel) with its
/// label: above the box for a prediction, inside its bottom edge for a true box, so the two
/// of one object do not cover each other.
fn draw_box(c: &mut Canvas, (x0, y0): (i64, i64), s: f32, [w, h]: [i64; 2], b: &Boxed, classes: &[String], col: Rgb) {
    let f = |v: f32, max: i64| ((v * s).round() as i64).clamp(0, max - 1);
    let (l, t, r, btm) = (
        x0 + f(b.bbox[0], w),
        y0 + f(b.bbox[1], h),
        x0 + f(b.bbox[2], w),
        y0 + f(b.bbox[3], h),
    );
    for (p, q) in [
        ((l, t), (r, t)),
        ((r, t), (r, btm)),
        ((r, btm), (l, btm)),
        ((l, btm), (l, t)),
    ] {
        c.line(p, q, 2, col);
    }
    let text = label(b, classes);
    let th = Canvas::text_height(1) as i64;
    let ty = match b.score {
        Some(_) if t - th - 2 >= y0 => t - th - 2,
        Some(_) => t + 3,
        None => (btm - th - 2).max(t + 3),
    };
    let tw = Canvas::text_width(&text, 1) as i64;
    c.fill(l, ty - 1, l + tw + 2, ty + th + 1, BLACK);
    c.text(l + 1, ty, &text, 1, col);
}

/// Draw one image with its true and predicted boxes at scale `s` from `(x0, y0)`.
fn draw_panel(
    c: &mut Canvas,
    (x0, y0): (i64, i64),
    s: i64,
    img: &Picture,
    truth: &[Boxed],
    pred: &[Boxed],
    classes: &[String],
) {
    draw_picture(c, x0, y0, s, img);
    let size = [img.shape[2] as i64 * s, img.shape[1] as i64 * s];
    for b in truth {
        draw_box(c, (x0, y0), s as f32, size, b, classes, TRUE_BOX);
    }
    for b in pred {
        draw_box(c, (x0, y0), s as f32, size, b, classes, PRED_BOX);
    }
}

/// The scale that draws an image of `[h, w]` about `target` pixels on its longer side.
fn scale_for([h, w]: [usize; 2], target: usize) -> i64 {
    (target / h.max(w).max(1)).max(1) as i64
}

/// Write `detections.png`: a grid of images, each with its true boxes (green) and the
/// predictions at or above `threshold` (red, class and score), under a title and a legend.
pub fn detections_png(
    path: &Path,
    scenes: &[(Picture, Vec<Boxed>, Vec<Boxed>)],
    classes: &[String],
    title: &str,
    threshold: f32,
) -> CliResult<()> {
    let [_, h, w] = scenes.first().map_or([1, 64, 64], |x| x.0.shape);
    let s = scale_for([h, w], 192);
    let (cols, gap, top) = (4usize, 10i64, 62i64);
    let (cw, ch) = (w as i64 * s, h as i64 * s);
    let rows = scenes.len().div_ceil(cols).max(1);
    let width = (cols as i64 * (cw + gap) + gap).max(420);
    let height = top + rows as i64 * (ch + gap) + gap;
    let mut c = Canvas::new(width as usize, height as usize);
    c.text(gap, 8, title, 2, BLACK);
    let legend = [
        (TRUE_BOX, "ground truth".to_string()),
        (
            PRED_BOX,
            format!("detection, score >= {:.0}% (class, score)", 100.0 * threshold),
        ),
    ];
    for (i, (col, text)) in legend.iter().enumerate() {
        let y = 30 + 14 * i as i64;
        c.fill(gap, y, gap + 18, y + 3, *col);
        c.text(gap + 24, y - 2, text, 1, BLACK);
    }
    for (i, (img, truth, pred)) in scenes.iter().enumerate() {
        let x0 = gap + (i % cols) as i64 * (cw + gap);
        let y0 = top + (i / cols) as i64 * (ch + gap);
        let shown: Vec<Boxed> = pred
            .iter()
            .filter(|b| b.score.unwrap_or(1.0) >= threshold)
            .cloned()
            .collect();
        draw_panel(&mut c, (x0, y0), s, img, truth, &shown, classes);
    }
    c.save_png(path)
}

/// Write one image with its detections (what `nabla predict` shows), about 384 pixels wide.
pub fn predicted_png(path: &Path, img: &Picture, boxes: &[Boxed], classes: &[String]) -> CliResult<()> {
    let [_, h, w] = img.shape;
    let s = scale_for([h, w], 384);
    let mut c = Canvas::new(w * s as usize + 8, h * s as usize + 8);
    draw_panel(&mut c, (4, 4), s, img, &[], boxes, classes);
    c.save_png(path)
}

/// Write `curves.png`: the four losses, and validation mAP@0.5 and mAP@[.5:.95].
pub fn curves(dir: &Path, history: &[Record]) -> CliResult<()> {
    let rpn: &[(&str, &str)] = &[
        ("train_rpn_objectness", "objectness"),
        ("train_rpn_box_reg", "box regression"),
    ];
    let heads: &[(&str, &str)] = &[("train_classifier", "classifier"), ("train_box_reg", "box regression")];
    let map: &[(&str, &str)] = &[("val_map50", "mAP@0.5"), ("val_map", "mAP@[.5:.95]")];
    let panels: [Panel; 3] = [
        ("RPN losses (train)", "loss", rpn, 1.0),
        ("RoI head losses (train)", "loss", heads, 1.0),
        ("validation", "%", map, 100.0),
    ];
    scene_curves(dir, history, &panels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detections_decode_at_their_size_with_both_colours() {
        let dir = std::env::temp_dir().join(format!("nabla-det-pics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let px: Vec<f32> = (0..3 * 32 * 32).map(|i| (i % 32) as f32 / 31.0).collect();
        let classes: Vec<String> = (0..3).map(|i| format!("c{i}")).collect();
        let img = || Picture {
            px: &px,
            shape: [3, 32, 32],
        };
        let truth = vec![Boxed {
            bbox: [2.0, 8.0, 14.0, 20.0],
            class: 1,
            score: None,
        }];
        let pred = vec![
            Boxed {
                bbox: [3.0, 9.0, 15.0, 21.0],
                class: 1,
                score: Some(0.9),
            },
            // Below the threshold: not drawn.
            Boxed {
                bbox: [20.0, 20.0, 30.0, 30.0],
                class: 2,
                score: Some(0.2),
            },
        ];
        let p = dir.join("detections.png");
        let scenes: Vec<_> = (0..5).map(|_| (img(), truth.clone(), pred.clone())).collect();
        detections_png(&p, &scenes, &classes, "t", 0.5).unwrap();
        let pic = image::open(&p).expect("a PNG").to_rgb8();
        // 32 px drawn at 6×: 4 columns of 192 + 5 gaps; 2 rows under the 62-pixel header.
        assert_eq!(pic.dimensions(), (4 * 202 + 10, 62 + 2 * 202 + 10));
        let count = |c: Rgb| pic.pixels().filter(|q| q.0 == c).count();
        assert!(count(TRUE_BOX) > 0 && count(PRED_BOX) > 0);
        // The low-scoring box's right edge (x = 30: pixel 180 of the first panel) is absent.
        let red_at = |x: u32| (62..62 + 192).any(|y| pic.get_pixel(10 + x, y).0 == PRED_BOX);
        assert!(red_at(15 * 6) && !red_at(30 * 6));
        let one = dir.join("one.png");
        predicted_png(&one, &img(), &pred, &classes).unwrap();
        let pic = image::open(&one).expect("a PNG").to_rgb8();
        assert_eq!(pic.dimensions(), (32 * 12 + 8, 32 * 12 + 8));
        std::fs::remove_dir_all(&dir).ok();
    }
}
