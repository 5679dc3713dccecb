//! The scene tasks' pictures: `predictions.png` (test scenes with true and predicted boxes,
//! labelled with class names and scores), `segmentation.png` (scene | true mask | predicted
//! mask, with a legend), the single-image pictures of `nabla predict`, and `curves.png`.

use crate::error::CliResult;
use crate::plot::{curves_png, Canvas, Rgb, Series, BLACK};
use nabla_train::Record;
use std::path::Path;

/// Mask colours by label: background black, then matplotlib's `tab10` for the ten classes
/// (cycled past them), fixed so that pictures of different runs compare.
pub const MASK_PALETTE: [Rgb; 11] = [
    [0, 0, 0],
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];
/// True boxes.
pub const TRUE_BOX: Rgb = [44, 200, 44];
/// Predicted boxes.
pub const PRED_BOX: Rgb = [230, 40, 40];

/// The colour of mask label `l` (labels past the palette cycle through the classes').
pub fn mask_colour(l: usize) -> Rgb {
    match l {
        0 => MASK_PALETTE[0],
        l => MASK_PALETTE[1 + (l - 1) % 10],
    }
}

/// One grey `[H, W]` image in `[0, 1]`.
pub struct Gray<'a> {
    /// `H × W` values.
    pub px: &'a [f32],
    /// `[H, W]`.
    pub size: [usize; 2],
}

/// A labelled box: `[x, y, w, h]` in pixels, class, and the score when it is a prediction.
pub struct Labelled {
    /// `[x, y, w, h]` in pixels of the image.
    pub bbox: [f32; 4],
    /// Class index.
    pub class: usize,
    /// The predicted probability (none for a true box).
    pub score: Option<f32>,
}

fn draw_gray(c: &mut Canvas, x0: i64, y0: i64, s: i64, g: &Gray) {
    let [h, w] = g.size;
    for y in 0..h {
        for x in 0..w {
            let v = (g.px[y * w + x].clamp(0.0, 1.0) * 255.0).round() as u8;
            c.fill(
                x0 + x as i64 * s,
                y0 + y as i64 * s,
                x0 + (x as i64 + 1) * s,
                y0 + (y as i64 + 1) * s,
                [v; 3],
            );
        }
    }
}

fn draw_mask(c: &mut Canvas, x0: i64, y0: i64, s: i64, mask: &[usize], [h, w]: [usize; 2]) {
    for y in 0..h {
        for x in 0..w {
            let col = mask_colour(mask[y * w + x]);
            c.fill(
                x0 + x as i64 * s,
                y0 + y as i64 * s,
                x0 + (x as i64 + 1) * s,
                y0 + (y as i64 + 1) * s,
                col,
            );
        }
    }
}

/// Outline `b` (pixels of the image, drawn at scale `s` from `(x0, y0)`), with its label
/// above the box (below its top edge when the box touches the top).
fn draw_box(c: &mut Canvas, x0: i64, y0: i64, s: i64, b: &Labelled, classes: &[String], col: Rgb) {
    let f = |v: f32| (v * s as f32).round() as i64;
    let (l, t, r, btm) = (
        x0 + f(b.bbox[0]),
        y0 + f(b.bbox[1]),
        x0 + f(b.bbox[0] + b.bbox[2]),
        y0 + f(b.bbox[1] + b.bbox[3]),
    );
    for (p, q) in [
        ((l, t), (r, t)),
        ((r, t), (r, btm)),
        ((r, btm), (l, btm)),
        ((l, btm), (l, t)),
    ] {
        c.line(p, q, 2, col);
    }
    let name = classes.get(b.class).map_or(format!("class {}", b.class), |n| n.clone());
    let label = match b.score {
        Some(p) => format!("{name} {:.0}%", 100.0 * p),
        None => name,
    };
    let th = Canvas::text_height(1) as i64;
    let ty = if t - th - 2 >= y0 { t - th - 2 } else { t + 3 };
    let tw = Canvas::text_width(&label, 1) as i64;
    c.fill(l, ty - 1, l + tw + 2, ty + th + 1, BLACK);
    c.text(l + 1, ty, &label, 1, col);
}

/// Write a grid of scenes with their true (green) and predicted (red) boxes.
pub fn predictions_png(
    path: &Path,
    scenes: &[(Gray, Vec<Labelled>, Vec<Labelled>)],
    classes: &[String],
    title: &str,
) -> CliResult<()> {
    let (s, cols, gap, top) = (3i64, 4usize, 10i64, 44i64);
    let [h, w] = scenes.first().map_or([64, 64], |x| x.0.size);
    let (cw, ch) = (w as i64 * s, h as i64 * s);
    let rows = scenes.len().div_ceil(cols).max(1);
    let width = cols as i64 * (cw + gap) + gap;
    let height = top + rows as i64 * (ch + gap) + gap;
    let mut c = Canvas::new(width as usize, height as usize);
    c.text(gap, 8, title, 2, BLACK);
    c.text(
        gap,
        28,
        "green: true box   red: predicted box (class, probability)",
        1,
        BLACK,
    );
    for (i, (img, truth, pred)) in scenes.iter().enumerate() {
        let x0 = gap + (i % cols) as i64 * (cw + gap);
        let y0 = top + (i / cols) as i64 * (ch + gap);
        draw_gray(&mut c, x0, y0, s, img);
        truth
            .iter()
            .for_each(|b| draw_box(&mut c, x0, y0, s, b, classes, TRUE_BOX));
        pred.iter()
            .for_each(|b| draw_box(&mut c, x0, y0, s, b, classes, PRED_BOX));
    }
    c.save_png(path)
}

/// The legend of mask colours (background, then the classes) from `(x, y)` down.
fn legend(c: &mut Canvas, x: i64, y: i64, classes: &[String]) {
    let names = std::iter::once("background".to_string()).chain(classes.iter().cloned());
    for (l, name) in names.enumerate() {
        let yy = y + l as i64 * 16;
        c.fill(x, yy, x + 12, yy + 12, mask_colour(l));
        c.line((x, yy), (x + 11, yy), 1, [160; 3]);
        c.text(x + 18, yy + 2, &name, 1, BLACK);
    }
}

/// Write rows of scene | true mask | predicted mask (labels 0 = background, 1 + class),
/// with the legend beside them.
pub fn segmentation_png(
    path: &Path,
    rows: &[(Gray, Vec<usize>, Vec<usize>)],
    classes: &[String],
    title: &str,
) -> CliResult<()> {
    let (s, gap, top, legend_w) = (2i64, 8i64, 56i64, 130i64);
    let [h, w] = rows.first().map_or([64, 64], |x| x.0.size);
    let (cw, ch) = (w as i64 * s, h as i64 * s);
    let width = 3 * (cw + gap) + gap + legend_w;
    let height = (top + rows.len() as i64 * (ch + gap) + gap).max(top + 16 * (classes.len() as i64 + 1) + gap);
    let mut c = Canvas::new(width as usize, height as usize);
    c.text(gap, 8, title, 2, BLACK);
    for (k, head) in ["scene", "true mask", "predicted"].iter().enumerate() {
        c.text_centered(gap + k as i64 * (cw + gap) + cw / 2, 38, head, 1, BLACK);
    }
    for (i, (img, truth, pred)) in rows.iter().enumerate() {
        let y0 = top + i as i64 * (ch + gap);
        draw_gray(&mut c, gap, y0, s, img);
        draw_mask(&mut c, gap + cw + gap, y0, s, truth, img.size);
        draw_mask(&mut c, gap + 2 * (cw + gap), y0, s, pred, img.size);
    }
    legend(&mut c, 3 * (cw + gap) + gap, top, classes);
    c.save_png(path)
}

/// Write one image with its predicted boxes (what `nabla predict` shows for a localizer).
pub fn boxed_png(path: &Path, img: &Gray, boxes: &[Labelled], classes: &[String]) -> CliResult<()> {
    let s = (256 / img.size[0].max(img.size[1]).max(1)).max(1) as i64;
    let (w, h) = (img.size[1] as i64 * s, img.size[0] as i64 * s);
    let mut c = Canvas::new((w + 8) as usize, (h + 8) as usize);
    draw_gray(&mut c, 4, 4, s, img);
    boxes
        .iter()
        .for_each(|b| draw_box(&mut c, 4, 4, s, b, classes, PRED_BOX));
    c.save_png(path)
}

/// Write one image beside its predicted mask, with the legend (`nabla predict` for a
/// segmenter).
pub fn mask_png(path: &Path, img: &Gray, mask: &[usize], classes: &[String]) -> CliResult<()> {
    let s = (192 / img.size[0].max(img.size[1]).max(1)).max(1) as i64;
    let (w, h) = (img.size[1] as i64 * s, img.size[0] as i64 * s);
    let width = 2 * w + 3 * 8 + 130;
    let height = (h + 16).max(16 * (classes.len() as i64 + 1) + 16);
    let mut c = Canvas::new(width as usize, height as usize);
    draw_gray(&mut c, 8, 8, s, img);
    draw_mask(&mut c, 16 + w, 8, s, mask, img.size);
    legend(&mut c, 24 + 2 * w, 8, classes);
    c.save_png(path)
}

/// One panel of `curves.png`: title, axis label, (record key, series name) pairs, and the
/// factor the values are drawn at (100 for percentages).
pub type Panel<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], f64);

/// Write `curves.png`: one chart per panel, one line per key.
pub fn curves(dir: &Path, records: &[Record], panels: &[Panel]) -> CliResult<()> {
    let colours: [Rgb; 6] = [
        [31, 119, 180],
        [214, 39, 40],
        [44, 160, 44],
        [255, 127, 14],
        [148, 103, 189],
        [140, 86, 75],
    ];
    let built: Vec<(&str, &str, Vec<Series>)> = panels
        .iter()
        .map(|(title, label, keys, scale)| {
            let series = keys
                .iter()
                .enumerate()
                .map(|(i, (key, name))| Series {
                    name: name.to_string(),
                    color: colours[i % colours.len()],
                    points: records.iter().map(|r| (r.epoch as f64, r.get(key) * scale)).collect(),
                })
                .collect();
            (*title, *label, series)
        })
        .collect();
    curves_png(&dir.join("curves.png"), &built)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(path: &Path) -> image::RgbImage {
        image::open(path).expect("a PNG").to_rgb8()
    }

    #[test]
    fn pictures_decode_with_the_colours_drawn() {
        let dir = std::env::temp_dir().join(format!("nabla-scene-pics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let px: Vec<f32> = (0..16 * 16).map(|i| (i % 16) as f32 / 15.0).collect();
        let classes: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        let img = || Gray {
            px: &px,
            size: [16, 16],
        };
        let truth = vec![Labelled {
            bbox: [2.0, 8.0, 6.0, 6.0],
            class: 1,
            score: None,
        }];
        let pred = vec![Labelled {
            bbox: [3.0, 9.0, 6.0, 5.0],
            class: 1,
            score: Some(0.9),
        }];
        let p = dir.join("predictions.png");
        predictions_png(&p, &[(img(), truth, pred)], &classes, "t").unwrap();
        let pic = decode(&p);
        let has = |c: Rgb| pic.pixels().any(|q| q.0 == c);
        assert!(has(TRUE_BOX) && has(PRED_BOX));
        let mask: Vec<usize> = (0..256).map(|i| if i < 128 { 0 } else { 3 }).collect();
        let p = dir.join("segmentation.png");
        segmentation_png(&p, &[(img(), mask.clone(), mask.clone())], &classes, "t").unwrap();
        let pic = decode(&p);
        assert!(pic.pixels().filter(|q| q.0 == mask_colour(3)).count() >= 2 * 128 * 4);
        let p = dir.join("one.png");
        mask_png(&p, &img(), &mask, &classes).unwrap();
        assert!(decode(&p).pixels().any(|q| q.0 == mask_colour(3)));
        boxed_png(&p, &img(), &[], &classes).unwrap();
        assert_eq!(decode(&p).dimensions(), (16 * 16 + 8, 16 * 16 + 8));
        std::fs::remove_dir_all(&dir).ok();
    }
}
