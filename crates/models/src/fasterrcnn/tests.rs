use super::*;
use nabla_core::DType;
use nabla_nn::optim::{Adam, AdamOptions, Optimizer};

/// A small detector for 32×32 test images.
fn tiny_config() -> FasterRcnnConfig {
    FasterRcnnConfig {
        num_classes: 2,
        small_channels: 32,
        anchor_sizes: vec![8.0, 12.0, 16.0],
        aspect_ratios: vec![1.0],
        rpn_pre_nms_top_n_train: 100,
        rpn_pre_nms_top_n_test: 100,
        rpn_post_nms_top_n_train: 50,
        rpn_post_nms_top_n_test: 30,
        rpn_batch_size_per_image: 64,
        box_batch_size_per_image: 32,
        representation_size: 64,
        ..Default::default()
    }
}

/// `n` 32×32 black images with 1–2 non-overlapping bright squares of side 8–13 each:
/// class 0 squares are full white, class 1 half grey.
fn squares(n: usize, g: &mut Generator) -> (Tensor, Vec<DetTarget>) {
    let side = 32;
    let mut pixels = vec![0.0f32; n * side * side];
    let mut targets = Vec::new();
    for i in 0..n {
        let mut t = DetTarget {
            boxes: Vec::new(),
            labels: Vec::new(),
        };
        let want = 1 + g.below(2) as usize;
        while t.boxes.len() < want {
            let s = 8 + g.below(6) as usize;
            let x = g.below((side - s) as u64) as usize;
            let y = g.below((side - s) as u64) as usize;
            let b = [x as f32, y as f32, (x + s) as f32, (y + s) as f32];
            // Keep squares apart (a pixel of black between them).
            let apart = t
                .boxes
                .iter()
                .all(|o| b[0] > o[2] + 1.0 || o[0] > b[2] + 1.0 || b[1] > o[3] + 1.0 || o[1] > b[3] + 1.0);
            if !apart {
                continue;
            }
            let class = g.below(2) as usize;
            let v = if class == 0 { 1.0 } else { 0.5 };
            for yy in y..y + s {
                for xx in x..x + s {
                    pixels[i * side * side + yy * side + xx] = v;
                }
            }
            t.boxes.push(b);
            t.labels.push(class);
        }
        targets.push(t);
    }
    (Tensor::from_vec(pixels, &[n, 1, side, side]).unwrap(), targets)
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    matcher::iou_matrix(&[a], &[b])[0]
}

#[test]
fn state_dict_has_torchvision_names() {
    let m = FasterRcnn::new(FasterRcnnConfig::default(), &mut Generator::new(0)).unwrap();
    let names: Vec<String> = m.state_dict().into_iter().map(|(n, _)| n).collect();
    for want in [
        "backbone.features.0.weight",
        "rpn.head.conv.weight",
        "rpn.head.cls_logits.bias",
        "rpn.head.bbox_pred.weight",
        "roi_heads.box_head.fc6.weight",
        "roi_heads.box_head.fc7.bias",
        "roi_heads.box_predictor.cls_score.weight",
        "roi_heads.box_predictor.bbox_pred.bias",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    // 4 sizes × 3 ratios = 12 anchors per cell; 11 classes with background.
    assert_eq!(
        m.parameter("rpn.head.cls_logits.weight").unwrap().shape(),
        &[12, 64, 1, 1]
    );
    assert_eq!(
        m.parameter("rpn.head.bbox_pred.weight").unwrap().shape(),
        &[48, 64, 1, 1]
    );
    assert_eq!(
        m.parameter("roi_heads.box_head.fc6.weight").unwrap().shape(),
        &[256, 64 * 49]
    );
    assert_eq!(
        m.parameter("roi_heads.box_predictor.bbox_pred.weight").unwrap().shape(),
        &[44, 256]
    );
    let r = FasterRcnn::new(
        FasterRcnnConfig {
            backbone: DetBackbone::Resnet18,
            in_channels: 3,
            ..Default::default()
        },
        &mut Generator::new(0),
    )
    .unwrap();
    assert!(r.parameter("backbone.layer2.1.bn2.weight").is_ok());
    assert_eq!(r.parameter("rpn.head.conv.weight").unwrap().shape(), &[128, 128, 3, 3]);
}

#[test]
fn bad_input_is_named() {
    let m = FasterRcnn::new(tiny_config(), &mut Generator::new(0)).unwrap();
    let mut g = Generator::new(1);
    let (x, t) = squares(2, &mut g);
    let err = |r: Result<DetLosses>| r.err().expect("an error").to_string();
    let e = err(m.losses(&x.reshape([2, 32, 32]).unwrap(), &t, &mut g));
    assert!(e.contains("[N, 1, H, W]"), "{e}");
    let e = err(m.losses(&Tensor::zeros(&[2, 3, 32, 32], DType::F32), &t, &mut g));
    assert!(e.contains("[2, 3, 32, 32]"), "{e}");
    let e = err(m.losses(&x, &t[..1], &mut g));
    assert!(e.contains("1 targets for 2 images"), "{e}");
    let mut flipped = t.clone();
    flipped[1].boxes[0] = [20.0, 2.0, 10.0, 9.0];
    let e = err(m.losses(&x, &flipped, &mut g));
    assert!(e.contains("image 1, box 0") && e.contains("x2 > x1"), "{e}");
    let mut nan = t.clone();
    nan[0].boxes[0][3] = f32::NAN;
    let e = err(m.losses(&x, &nan, &mut g));
    assert!(e.contains("image 0, box 0") && e.contains("non-finite"), "{e}");
    let mut label = t.clone();
    label[0].labels[0] = 2;
    let e = err(m.losses(&x, &label, &mut g));
    assert!(e.contains("label 2"), "{e}");
    assert!(m.detect(&Tensor::zeros(&[1, 2, 32, 32], DType::F32)).is_err());
    let bad_cfg = FasterRcnnConfig {
        rpn_fg_iou_thresh: 1.5,
        ..tiny_config()
    };
    assert!(FasterRcnn::new(bad_cfg, &mut g).is_err());
}

#[test]
fn images_without_objects_train_as_background() {
    let m = FasterRcnn::new(tiny_config(), &mut Generator::new(0)).unwrap();
    let mut g = Generator::new(2);
    let (x, mut t) = squares(2, &mut g);
    t[1] = DetTarget {
        boxes: vec![],
        labels: vec![],
    };
    let l = m.losses(&x, &t, &mut g).unwrap();
    let total = l.total().unwrap();
    assert!(total.item().unwrap().is_finite());
    let grads = total.backward().unwrap();
    assert!(grads
        .get(&m.parameter("roi_heads.box_predictor.cls_score.weight").unwrap())
        .is_some());
}

#[test]
fn training_on_squares_lowers_the_loss_and_finds_them() {
    let mut g = Generator::new(7);
    let m = FasterRcnn::new(tiny_config(), &mut g).unwrap();
    let (x, t) = squares(4, &mut g);
    let mut opt = Adam::new(
        m.trainable_parameters(),
        AdamOptions {
            lr: 3e-3,
            ..Default::default()
        },
    )
    .unwrap();
    let mut first = Vec::new();
    let mut last = Vec::new();
    // 150 steps: at 100, a change in the last bits of the bias gradients (2026-12-07) left
    // one square at score 0.43 where the old bits gave over 0.5; at 150 every square scores
    // 0.96 or more, so the check is on learning, not on one trajectory's luck.
    let steps = 150;
    for step in 0..steps {
        let loss = m.losses(&x, &t, &mut g).unwrap().total().unwrap();
        let v = loss.item().unwrap();
        if step < 5 {
            first.push(v);
        }
        if step >= steps - 5 {
            last.push(v);
        }
        opt.step(&loss.backward().unwrap()).unwrap();
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&last) < 0.4 * mean(&first), "loss {first:?} → {last:?}");
    let dets = m.detect(&x).unwrap();
    for (i, (d, t)) in dets.iter().zip(&t).enumerate() {
        for (b, &l) in t.boxes.iter().zip(&t.labels) {
            let hit = d
                .boxes
                .iter()
                .zip(&d.scores)
                .zip(&d.labels)
                .any(|((p, &s), &pl)| s >= 0.5 && pl == l && iou(*p, *b) >= 0.5);
            assert!(hit, "image {i}: square {b:?} (class {l}) not found in {d:?}");
        }
    }
}

#[test]
fn resnet_backbone_and_roi_pooling_train_and_detect() {
    let mut g = Generator::new(3);
    let (x, t) = squares(2, &mut g);
    let rgb = Tensor::cat(&[&x, &x, &x], 1).unwrap();
    for (backbone, roi, images) in [
        (DetBackbone::Resnet18, RoiMode::Align, &rgb),
        (DetBackbone::Small, RoiMode::Pool, &x),
    ] {
        let cfg = FasterRcnnConfig {
            backbone,
            roi,
            in_channels: images.shape()[1],
            ..tiny_config()
        };
        let m = FasterRcnn::new(cfg, &mut g).unwrap();
        let total = m.losses(images, &t, &mut g).unwrap().total().unwrap();
        assert!(total.item().unwrap().is_finite(), "{backbone:?} {roi:?}");
        let grads = total.backward().unwrap();
        let fc6 = m.parameter("roi_heads.box_head.fc6.weight").unwrap();
        let first = m.backbone.named_parameters()[0].1.clone();
        assert!(
            grads.get(&fc6).is_some() && grads.get(&first).is_some(),
            "{backbone:?} {roi:?}"
        );
        let d = m.detect(images).unwrap();
        assert_eq!(d.len(), 2);
        for det in &d {
            assert!(det.boxes.len() <= m.config().box_detections_per_img);
            assert!(det.boxes.iter().flatten().all(|v| (0.0..=32.0).contains(v)), "{det:?}");
            assert!(det.scores.iter().all(|&s| s > m.config().box_score_thresh));
        }
    }
}
