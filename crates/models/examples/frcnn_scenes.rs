//! Trains `fasterrcnn_small` on Fashion-MNIST detection scenes (64×64, 1–4 items) for a
//! number of steps and reports mAP on test scenes: a quick check of settings (stride,
//! anchors, RoI mode) away from the CLI.
//!
//! `cargo run --release -p nabla-models --example frcnn_scenes [steps] [stride] [pool|align] [test] [box_batch]`

use nabla_core::{Generator, Tensor};
use nabla_data::scenes::{SceneConfig, Scenes};
use nabla_data::{FashionMnist, Split};
use nabla_models::fasterrcnn::{DetTarget, FasterRcnn, FasterRcnnConfig, RoiMode};
use nabla_nn::optim::{Adam, AdamOptions, Optimizer};
use nabla_nn::Module;
use nabla_vision::{evaluate_detections, Detection, GroundTruth};
use std::time::Instant;

fn batch(set: &Scenes, idx: &[usize]) -> (Tensor, Vec<DetTarget>) {
    let mut px = Vec::new();
    let mut targets = Vec::new();
    for &i in idx {
        let s = set.scene(i).unwrap();
        px.extend_from_slice(&s.image);
        targets.push(DetTarget {
            boxes: s
                .objects
                .iter()
                .map(|o| [o.bbox[0], o.bbox[1], o.bbox[0] + o.bbox[2], o.bbox[1] + o.bbox[3]])
                .collect(),
            labels: s.objects.iter().map(|o| o.class).collect(),
        });
    }
    (Tensor::from_vec(px, &[idx.len(), 1, 64, 64]).unwrap(), targets)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps: usize = args.first().map(|a| a.parse().unwrap()).unwrap_or(300);
    let stride: usize = args.get(1).map(|a| a.parse().unwrap()).unwrap_or(4);
    let roi = match args.get(2).map(String::as_str) {
        Some("pool") => RoiMode::Pool,
        _ => RoiMode::Align,
    };
    let n_test: usize = args.get(3).map(|a| a.parse().unwrap()).unwrap_or(500);
    let box_batch: usize = args.get(4).map(|a| a.parse().unwrap()).unwrap_or(64);
    let bs = 32;
    let fm = FashionMnist::new();
    let train = Scenes::fashion(&fm, Split::Train, SceneConfig::segmentation(), steps * bs).unwrap();
    let test = Scenes::fashion(&fm, Split::Test, SceneConfig::segmentation(), n_test).unwrap();
    let mut g = Generator::new(0);
    let cfg = FasterRcnnConfig {
        small_stride: stride,
        roi,
        box_batch_size_per_image: box_batch,
        ..Default::default()
    };
    let m = FasterRcnn::new(cfg, &mut g).unwrap();
    let mut opt = Adam::new(
        m.trainable_parameters(),
        AdamOptions {
            lr: 1e-3,
            ..Default::default()
        },
    )
    .unwrap();
    let t0 = Instant::now();
    let mut avg = 0.0;
    for s in 0..steps {
        let idx: Vec<usize> = (s * bs..(s + 1) * bs).collect();
        let (x, t) = batch(&train, &idx);
        let l = m.losses(&x, &t, &mut g).unwrap();
        let total = l.total().unwrap();
        avg = if s == 0 {
            total.item().unwrap()
        } else {
            0.95 * avg + 0.05 * total.item().unwrap()
        };
        opt.step(&total.backward().unwrap()).unwrap();
        if s % 25 == 0 || s + 1 == steps {
            println!(
                "step {s}: loss {avg:.4} (rpn {:.3} {:.3}, roi {:.3} {:.3}) {:.0} s",
                l.rpn_objectness.item().unwrap(),
                l.rpn_box_reg.item().unwrap(),
                l.classifier.item().unwrap(),
                l.box_reg.item().unwrap(),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    let train_s = t0.elapsed().as_secs_f64();
    let (mut dets, mut gts) = (Vec::new(), Vec::new());
    let t1 = Instant::now();
    for c in (0..n_test).collect::<Vec<_>>().chunks(bs) {
        let (x, t) = batch(&test, c);
        for (k, (d, t)) in m.detect(&x).unwrap().into_iter().zip(t).enumerate() {
            let image = c[k];
            for ((b, l), s) in d.boxes.iter().zip(&d.labels).zip(&d.scores) {
                dets.push(Detection {
                    image,
                    class: *l,
                    score: *s,
                    bbox: *b,
                });
            }
            for (b, l) in t.boxes.iter().zip(&t.labels) {
                gts.push(GroundTruth {
                    image,
                    class: *l,
                    bbox: *b,
                    difficult: false,
                });
            }
        }
    }
    let r = evaluate_detections(&dets, &gts, 10);
    println!(
        "stride {stride} {roi:?} box batch {box_batch}: {steps} steps in {train_s:.0} s ({:.0} ms/step); test {n_test}: mAP50 {:.3} mAP75 {:.3} COCO {:.3} (eval {:.0} s)",
        train_s * 1e3 / steps as f64,
        r.map50,
        r.map75,
        r.map_coco,
        t1.elapsed().as_secs_f64()
    );
    for c in &r.per_class {
        println!(
            "  class {}: AP50 {:.3} ({} gt, {} dets)",
            c.class, c.ap50, c.ground_truths, c.detections
        );
    }
}
