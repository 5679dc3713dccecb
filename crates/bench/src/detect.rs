//! The detection ops beside torchvision (`crates/bench/torch/detect.py`): RoI align and RoI
//! pooling forward and forward + backward on a detector's map shapes, and NMS on 10,000
//! boxes. Both sides build the same inputs from the same generator ([`Lcg`]).
//!
//! And the whole detector ([`detector`]): `fasterrcnn_small` (small backbone, RoI align, the
//! model's defaults) trained for an epoch beside its torchvision twin
//! (`crates/bench/torch/frcnn.py detector`), as `nabla train --task detect` trains it: batch
//! 16, Adam lr 1e-3 (the cosine schedule steps per epoch, so the first epoch runs at 1e-3),
//! on the CLI's scenes (seed 0, 64×64, 1–4 Fashion-MNIST items). [`prepare_detector`] writes
//! the scenes and nabla's initial weights to one file; the twin loads both, so the two sides
//! start from the same weights and step through the same batches in the same order (the RPN's
//! and box head's sampling draw from each side's own generator).

use crate::generative::{load, wrap, Timer};
use crate::measure::median_secs;
use crate::report::Row;
use crate::Settings;
use nabla_core::{DType, Generator, Result, Tensor};
use nabla_data::detection::{decode_target, DetectionView, SceneDetections};
use nabla_data::scenes::{SceneConfig, Scenes};
use nabla_data::{Dataset, Split, Target};
use nabla_models::fasterrcnn::{DetTarget, FasterRcnn, FasterRcnnConfig};
use nabla_nn::optim::{Adam, AdamOptions, Optimizer};
use nabla_nn::Module;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Scenes of one detector epoch when `--batches` does not say: 16 batches of [`DET_BATCH`].
pub const DET_SCENES: usize = 256;
/// The CLI's default detection batch.
pub const DET_BATCH: usize = 16;
/// At most this many items in a scene (`SceneConfig::segmentation()`), the targets' width.
const DET_MAX_OBJECTS: usize = 4;
/// Prefix of the initial weights' names in the prepared file.
pub const INIT_PREFIX: &str = "init.";

/// Scenes the detector section trains on: [`DET_SCENES`], or `--batches B` batches.
pub fn detector_scenes(s: &Settings) -> usize {
    s.batches.map_or(DET_SCENES, |b| b * DET_BATCH)
}

/// The detector both sides train, initialized from seed 0.
fn detector_model() -> Result<FasterRcnn> {
    FasterRcnn::new(FasterRcnnConfig::default(), &mut Generator::new(0)).map_err(wrap)
}

/// Write the scenes (`images` [N,1,64,64], `targets` [N, 1 + 5·4] as `DetectionView` pads
/// them) and the detector's initial f32 weights (`init.` + their torchvision names) to `path`.
pub fn write_detector_data(ds: &dyn Dataset, n: usize, model: &FasterRcnn, path: &Path) -> Result<()> {
    let (mut images, mut rows, mut shape) = (Vec::new(), Vec::new(), vec![]);
    for i in 0..n {
        let s = ds.get(i).map_err(wrap)?;
        let Target::Values(v) = s.target else {
            return Err(wrap("a detection scene without box targets"));
        };
        images.extend_from_slice(&s.data);
        rows.extend_from_slice(&v);
        shape = s.shape;
    }
    let &[c, h, w] = &shape[..] else {
        return Err(wrap(format!("scenes must be [C, H, W], got {shape:?}")));
    };
    let width = rows.len() / n.max(1);
    let mut tensors = vec![
        ("images".to_string(), Tensor::from_vec(images, &[n, c, h, w])?),
        ("targets".to_string(), Tensor::from_vec(rows, &[n, width])?),
    ];
    // The BatchNorm counters are integers the twin's own layers keep; the rest is f32.
    tensors.extend(
        model
            .state_dict()
            .into_iter()
            .filter(|(_, t)| t.dtype() == DType::F32)
            .map(|(k, t)| (format!("{INIT_PREFIX}{k}"), t)),
    );
    nabla_nn::save_tensors(path, &tensors, &Default::default()).map_err(wrap)
}

/// Generate the detector section's scenes and write them with the initial weights to a file in
/// the temporary folder, which the caller removes when the section is done.
pub fn prepare_detector(s: &Settings) -> Result<PathBuf> {
    let n = detector_scenes(s);
    let sc = SceneConfig {
        seed: 0,
        ..SceneConfig::segmentation()
    };
    let scenes = Scenes::new(load(Split::Train)?, Split::Train, sc, n).map_err(wrap)?;
    let view = DetectionView::new(Arc::new(SceneDetections::new(Arc::new(scenes))), DET_MAX_OBJECTS).map_err(wrap)?;
    let path = std::env::temp_dir().join(format!("nabla-bench-{}-detector-{n}.safetensors", std::process::id()));
    write_detector_data(&view, n, &detector_model()?, &path)?;
    Ok(path)
}

/// The label of the timed stretch, as the script prints it.
fn detector_key(s: &Settings) -> String {
    match s.batches {
        Some(b) => format!("fasterrcnn_small first {b} batches"),
        None => "fasterrcnn_small epoch".to_string(),
    }
}

/// `--epochs` epochs of `fasterrcnn_small` on the prepared scenes, batches in file order; the
/// rows: mean wall s, img/s, CPU s per epoch, the median step in ms, and the last epoch's mean
/// training loss (the sum of the four losses).
pub fn detector(s: &Settings) -> Result<Vec<Row>> {
    let path = s
        .data
        .as_deref()
        .ok_or_else(|| wrap("the scene file was not prepared"))?;
    let (tensors, _) = nabla_nn::load_tensors(path).map_err(wrap)?;
    let get = |name: &str| {
        tensors
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| wrap(format!("{}: no tensor {name:?}", path.display())))
    };
    let (images, targets) = (get("images")?, get("targets")?);
    let n = images.shape()[0];
    let width = targets.shape()[1];
    let rows = targets.to_vec_f32();
    let model = detector_model()?;
    let mut opt = Adam::new(
        model.trainable_parameters(),
        AdamOptions {
            lr: 1e-3,
            ..Default::default()
        },
    )
    .map_err(wrap)?;
    let key = detector_key(s);
    let (mut secs, mut cpu, mut mean, mut steps) = (0.0, 0.0, f64::NAN, Vec::new());
    let mut step = 0u64;
    for ep in 0..s.epochs {
        let t0 = Timer::start();
        let mut sum = 0.0;
        for lo in (0..n).step_by(DET_BATCH) {
            let hi = (lo + DET_BATCH).min(n);
            let ts = std::time::Instant::now();
            let x = images.narrow(0, lo, hi - lo)?.contiguous()?;
            let t: Vec<DetTarget> = rows[lo * width..hi * width]
                .chunks(width)
                .map(|r| {
                    let (boxes, labels) = decode_target(r);
                    DetTarget { boxes, labels }
                })
                .collect();
            // The CLI's sampling generator: one per step from the seed.
            let mut g = Generator::new(step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let l = model.losses(&x, &t, &mut g).map_err(wrap)?.total().map_err(wrap)?;
            opt.step(&l.backward()?).map_err(wrap)?;
            sum += l.item()? * (hi - lo) as f64;
            steps.push(ts.elapsed().as_secs_f64());
            step += 1;
        }
        let (dt, dc) = t0.stop();
        (secs, cpu, mean) = (secs + dt, cpu + dc, sum / n.max(1) as f64);
        eprintln!(
            "nabla fasterrcnn_small epoch {} of {}: {dt:.2} s, mean train loss {mean:.4}",
            ep + 1,
            s.epochs
        );
    }
    let (secs, cpu) = (secs / s.epochs as f64, cpu / s.epochs as f64);
    steps.sort_by(f64::total_cmp);
    let median = steps.get(steps.len() / 2).copied().unwrap_or(f64::NAN) * 1e3;
    say!(
        "nabla {key}: {secs:.2} s ({:.0} img/s), {cpu:.2} cpu-s",
        n as f64 / secs
    );
    say!("nabla fasterrcnn_small train step batch {DET_BATCH}: {median:.1} ms (median)");
    let loss_key = format!("fasterrcnn_small mean train loss in epoch {}", s.epochs);
    say!("nabla {loss_key}: {mean:.4} loss");
    Ok(vec![
        Row::lower(&key, "s", secs),
        Row::higher(&key, "img/s", n as f64 / secs),
        Row::lower(&key, "cpu-s", cpu),
        Row::lower(format!("fasterrcnn_small train step batch {DET_BATCH}"), "ms", median),
        Row::lower(loss_key, "loss", mean),
    ])
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

    #[test]
    fn the_detector_file_holds_the_scenes_targets_and_initial_weights() {
        use nabla_data::detection::{DetectionImage, MemoryDetections};
        let image = |id: u64, k: usize| DetectionImage {
            id,
            channels: 1,
            size: [64, 64],
            image: (0..4096).map(|i| ((i + k) % 7) as f32 / 7.0).collect(),
            boxes: vec![[1.0, 2.0, 30.0, 40.0]; k],
            labels: (0..k).collect(),
        };
        let classes = (0..10).map(|c| format!("c{c}")).collect();
        let set = MemoryDetections::new(vec![image(0, 1), image(1, 3)], classes).unwrap();
        let view = DetectionView::new(Arc::new(set), DET_MAX_OBJECTS).unwrap();
        let path = std::env::temp_dir().join(format!("nabla-bench-det-test-{}.safetensors", std::process::id()));
        let model = detector_model().unwrap();
        write_detector_data(&view, 2, &model, &path).unwrap();
        let (t, _) = nabla_nn::load_tensors(&path).unwrap();
        std::fs::remove_file(&path).ok();
        let get = |n: &str| t.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("images").shape(), &[2, 1, 64, 64]);
        let rows = get("targets");
        assert_eq!(rows.shape(), &[2, 1 + 5 * DET_MAX_OBJECTS]);
        let (boxes, labels) = decode_target(&rows.to_vec_f32()[21..]);
        assert_eq!((boxes.len(), labels), (3, vec![0, 1, 2]));
        // Every f32 tensor of the model, by its name, with its values; no counters.
        let sd: Vec<_> = model
            .state_dict()
            .into_iter()
            .filter(|(_, v)| v.dtype() == DType::F32)
            .collect();
        assert!(sd.len() > 10);
        for (k, v) in &sd {
            assert_eq!(get(&format!("{INIT_PREFIX}{k}")).to_vec_f32(), v.to_vec_f32(), "{k}");
        }
        assert_eq!(t.len(), 2 + sd.len());
        // The model is the same every time it is built (the nabla side rebuilds it).
        let again = detector_model().unwrap().state_dict();
        assert_eq!(again[0].1.to_vec_f32(), model.state_dict()[0].1.to_vec_f32());
        let s = |batches| Settings {
            epochs: 1,
            samples: None,
            batches,
            data: None,
        };
        assert_eq!((detector_scenes(&s(None)), detector_scenes(&s(Some(3)))), (256, 48));
        assert_eq!(detector_key(&s(Some(3))), "fasterrcnn_small first 3 batches");
    }
}
