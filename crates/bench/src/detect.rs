//! The detection ops beside torchvision (`crates/bench/torch/detect.py`): RoI align and RoI
//! pooling forward and forward + backward on a detector's map shapes, and NMS on 10,000
//! boxes. Both sides build the same inputs from the same generator ([`Lcg`]).

use crate::measure::median_secs;
use crate::report::Row;
use nabla_core::{Result, Tensor};

/// The 64-bit LCG `detect.py` also uses, so both sides see the same rois and boxes.
struct Lcg(u64);

impl Lcg {
    /// A number in `[0, 1)`.
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Rois per map.
const ROIS: usize = 512;

/// (label, map shape, spatial_scale, image side): a ResNet-like stride-16 map of an 800×800
/// image, and the small detector's stride-4 map of its 64×64 scenes.
const MAPS: [(&str, [usize; 4], f64, f64); 2] = [
    ("2x256x50x50 scale 1/16", [2, 256, 50, 50], 1.0 / 16.0, 800.0),
    ("8x64x16x16 scale 1/4", [8, 64, 16, 16], 1.0 / 4.0, 64.0),
];

/// 512 rois of random sizes (1/50 to 1/2 of the image side), some across the edge.
fn rois_for(n: usize, side: f64, seed: u64) -> Result<Tensor> {
    let mut g = Lcg(seed);
    let mut v = Vec::with_capacity(ROIS * 5);
    for k in 0..ROIS {
        let (w, h) = (side * (0.02 + 0.48 * g.next()), side * (0.02 + 0.48 * g.next()));
        let (x, y) = (g.next() * (side - w / 2.0), g.next() * (side - h / 2.0));
        v.extend([(k % n) as f64, x, y, x + w, y + h].map(|c| c as f32));
    }
    Tensor::from_vec(v, &[ROIS, 5])
}

/// A cheap spread of values in `[0, 1)` (the timings do not depend on them), as `detect.py`.
fn values(shape: &[usize], seed: u64) -> Result<Tensor> {
    let start = Lcg(seed).next();
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|i| ((i as f64 * 0.7548776662 + start) % 1.0) as f32)
        .collect();
    Tensor::from_vec(v, shape)
}

/// One op's rows for both maps: forward alone and forward + backward, in ms.
fn roi_rows(name: &str, run: impl Fn(&Tensor, &Tensor, f64) -> Result<Tensor>) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (label, shape, scale, side) in MAPS {
        let x = values(&shape, 1)?;
        let rois = rois_for(shape[0], side, 2)?;
        let key = if name == "roi_align" {
            format!("roi_align {label} {ROIS} rois 7x7 ratio 2")
        } else {
            format!("roi_pool {label} {ROIS} rois 7x7")
        };
        let gy = values(&[ROIS, shape[1], 7, 7], 3)?;
        run(&x, &rois, scale)?;
        let s = median_secs(20, || drop(run(&x, &rois, scale)));
        rows.push(Row::lower(format!("{key} fwd"), "ms", s * 1e3));
        let xg = x.set_requires_grad(true);
        let both = || -> Result<()> {
            run(&xg, &rois, scale)?.backward_with_grad(&gy)?;
            Ok(())
        };
        both()?;
        let s = median_secs(10, || drop(both()));
        rows.push(Row::lower(format!("{key} fwd+bwd"), "ms", s * 1e3));
    }
    Ok(rows)
}

/// `roi_align`, output 7×7, sampling_ratio 2, `aligned = false` (torchvision's default).
pub fn roi_align() -> Result<Vec<Row>> {
    roi_rows("roi_align", |x, r, s| x.roi_align(r, [7, 7], s, 2, false))
}

/// `roi_pool`, output 7×7.
pub fn roi_pool() -> Result<Vec<Row>> {
    roi_rows("roi_pool", |x, r, s| x.roi_pool(r, [7, 7], s))
}

/// 10,000 boxes: 1,000 objects on an 800×800 image, 10 jittered copies of each, random scores.
fn nms_boxes(seed: u64) -> (Vec<[f32; 4]>, Vec<f32>) {
    let mut g = Lcg(seed);
    let (mut boxes, mut scores) = (Vec::new(), Vec::new());
    for _ in 0..1000 {
        let (w, h) = (20.0 + 180.0 * g.next(), 20.0 + 180.0 * g.next());
        let (cx, cy) = (800.0 * g.next(), 800.0 * g.next());
        for _ in 0..10 {
            let (jx, jy) = ((g.next() - 0.5) * 0.2 * w, (g.next() - 0.5) * 0.2 * h);
            let (sw, sh) = (w * (0.9 + 0.2 * g.next()), h * (0.9 + 0.2 * g.next()));
            let (x, y) = (cx + jx, cy + jy);
            boxes.push([x - sw / 2.0, y - sh / 2.0, x + sw / 2.0, y + sh / 2.0].map(|c| c as f32));
            scores.push(g.next() as f32);
        }
    }
    (boxes, scores)
}

/// `nabla_vision::nms` at IoU 0.5 on [`nms_boxes`], in ms.
pub fn nms() -> Result<Vec<Row>> {
    let (boxes, scores) = nms_boxes(4);
    let kept = nabla_vision::nms(&boxes, &scores, 0.5).len();
    say!("nabla nms 10000 boxes iou 0.5 kept: {kept} boxes");
    let s = median_secs(20, || drop(nabla_vision::nms(&boxes, &scores, 0.5)));
    Ok(vec![Row::lower("nms 10000 boxes iou 0.5", "ms", s * 1e3)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_valid_and_repeatable() {
        // Rois pass the ops' checks (x2 ≥ x1, batch in range) and the generator repeats.
        for (_, shape, scale, side) in MAPS {
            let r = rois_for(shape[0], side, 2).unwrap();
            let x = values(&[shape[0], 2, shape[2], shape[3]], 1).unwrap();
            assert_eq!(
                x.roi_align(&r, [7, 7], scale, 2, false).unwrap().shape(),
                &[ROIS, 2, 7, 7]
            );
            assert_eq!(r.to_vec_f32(), rois_for(shape[0], side, 2).unwrap().to_vec_f32());
        }
        let (b, s) = nms_boxes(4);
        assert_eq!((b.len(), s.len()), (10_000, 10_000));
        assert!(b.iter().all(|b| b[2] > b[0] && b[3] > b[1]));
        // The clusters overlap: NMS keeps far fewer boxes than it gets.
        let kept = nabla_vision::nms(&b, &s, 0.5).len();
        assert!((500..2000).contains(&kept), "{kept}");
    }
}
