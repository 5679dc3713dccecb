//! The detection task's parts on hand-made cases: the AP table, the error analysis and
//! the flags' validation.

use super::report::{analyse, ap_table, upper_body};
use super::*;
use nabla_vision::{ApReport, ClassAp, Detection, GroundTruth};

fn classes() -> Vec<String> {
    ["T-shirt/top", "Trouser", "Pullover", "Shirt"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn gt(image: usize, class: usize, bbox: [f32; 4]) -> GroundTruth {
    GroundTruth {
        image,
        class,
        bbox,
        difficult: false,
    }
}

fn det(image: usize, class: usize, score: f32, bbox: [f32; 4]) -> Detection {
    Detection {
        image,
        class,
        score,
        bbox,
    }
}

#[test]
fn the_table_lists_every_class_and_the_means() {
    let r = ApReport {
        per_class: vec![
            ClassAp {
                class: 0,
                ap50: 0.75,
                ap75: 0.5,
                ap_coco: 0.4,
                ground_truths: 4,
                detections: 9,
            },
            ClassAp {
                class: 1,
                ap50: 0.0,
                ap75: 0.0,
                ap_coco: 0.0,
                ground_truths: 0,
                detections: 2,
            },
        ],
        map50: 0.75,
        map75: 0.5,
        map_coco: 0.4,
    };
    let t = ap_table(&r, &classes());
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("class") && lines[0].contains("AP[.5:.95]"), "{t}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row, ["T-shirt/top", "0.750", "0.500", "0.400", "4", "9"]);
    // A class without objects has no AP (it is left out of the means).
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(row, ["Trouser", "-", "-", "-", "0", "2"]);
    assert!(t.contains("mAP@0.5 0.7500, mAP@[.5:.95] 0.4000"), "{t}");
}

#[test]
fn errors_split_into_found_confused_missed_and_on_nothing() {
    let g = vec![
        gt(0, 0, [0.0, 0.0, 10.0, 10.0]),   // found
        gt(0, 3, [20.0, 20.0, 30.0, 30.0]), // a shirt detected as a T-shirt: similar
        gt(1, 1, [0.0, 0.0, 10.0, 10.0]),   // a trouser detected as a pullover
        gt(1, 2, [20.0, 20.0, 30.0, 30.0]), // missed: only a low-scoring detection covers it
        gt(2, 3, [0.0, 0.0, 10.0, 10.0]),   // missed: the detection beside it has IoU < 0.5
    ];
    let d = vec![
        det(0, 0, 0.9, [0.0, 0.0, 10.0, 11.0]),
        det(0, 0, 0.8, [21.0, 20.0, 30.0, 30.0]),
        det(1, 2, 0.7, [0.0, 0.0, 10.0, 10.0]),
        det(1, 2, 0.3, [20.0, 20.0, 30.0, 30.0]),
        det(2, 3, 0.9, [6.0, 0.0, 16.0, 10.0]),
        det(3, 1, 0.6, [0.0, 0.0, 5.0, 5.0]), // an image without objects
    ];
    let r = analyse(&d, &g, 4, 0.5);
    assert_eq!((r.objects, r.found, r.detections), (5, 1, 5));
    assert_eq!(r.confused.get(&(3, 0)), Some(&1));
    assert_eq!(r.confused.get(&(1, 2)), Some(&1));
    assert_eq!(r.confused_total(), 2);
    assert_eq!(r.confused_similar(&classes()), 1);
    assert_eq!(r.missed, vec![0, 0, 1, 1]);
    // The box beside the shirt of image 2, and the one in the empty image.
    assert_eq!(r.on_nothing, 2);
    let t = r.text(&classes());
    assert!(t.contains("Shirt as T-shirt/top 1") && t.contains("missed most"), "{t}");
    // At a lower threshold the pullover is found.
    assert_eq!(analyse(&d, &g, 4, 0.2).found, 2);
}

#[test]
fn upper_body_garments_are_the_similar_ones() {
    let names = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ];
    let similar: Vec<&str> = names.iter().copied().filter(|n| upper_body(n)).collect();
    assert_eq!(similar, ["T-shirt/top", "Pullover", "Coat", "Shirt"]);
}

#[test]
fn detection_settings_are_checked() {
    let mut c = defaults();
    assert!(c.validate().is_ok());
    c.detect.backbone = "vgg".into();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("--backbone vgg") && e.contains("small, resnet18"), "{e}");
    c.detect.backbone = "resnet18".into();
    c.detect.tile = Some(0);
    assert!(c.validate().unwrap_err().to_string().contains("--tile"));
    c.detect.tile = Some(64);
    c.detect.roi = "max".into();
    assert!(c.validate().unwrap_err().to_string().contains("--roi max"));
    c.detect.roi = "pool".into();
    let text = c.to_toml();
    assert!(
        text.contains("backbone = \"resnet18\"") && text.contains("tile = 64"),
        "{text}"
    );
    let back = TrainConfig::from_toml(&text, "x".as_ref()).unwrap();
    assert_eq!(back.detect, c.detect);
    assert_eq!(back.task, Task::Detect);
}

#[test]
fn coco_results_carry_the_image_and_category_ids() {
    let d = vec![
        det(1, 0, 0.9, [2.0, 3.0, 12.0, 7.0]),
        det(0, 2, 0.25, [0.0, 0.0, 4.0, 4.0]),
    ];
    // Image positions 0 and 1 are COCO images 40 and 41; classes 0..3 are categories 5, 7, 9.
    let r = super::tools::coco_results(&d, &[40, 41], &[5, 7, 9]);
    let path = std::env::temp_dir().join(format!("nabla-det-results-{}.json", std::process::id()));
    nabla_data::detection::write_coco_results(&path, &r).unwrap();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).ok();
    let first = &v[0];
    assert_eq!(
        (first["image_id"].as_u64(), first["category_id"].as_u64()),
        (Some(41), Some(5))
    );
    let bbox: Vec<f64> = first["bbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(bbox, [2.0, 3.0, 10.0, 4.0], "[x, y, w, h]");
    assert!((first["score"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    assert_eq!(
        (v[1]["image_id"].as_u64(), v[1]["category_id"].as_u64()),
        (Some(40), Some(9))
    );
    assert_eq!(v.as_array().unwrap().len(), 2);
}

#[test]
fn step_generators_differ_by_step_and_repeat_by_seed() {
    use super::task::step_generator;
    let draw = |seed, step| step_generator(seed, step).next_u64();
    assert_eq!(draw(3, 7), draw(3, 7));
    assert_ne!(draw(3, 7), draw(3, 8));
    assert_ne!(draw(3, 7), draw(4, 7));
}

#[test]
fn photo_validation_is_a_band_of_the_training_images_apart_from_their_tiles() {
    use super::voc::{band_start, split_tiles};
    use nabla_data::detection::{DetectionImage, DetectionSet, MemoryDetections};
    // The bottom eighth of 200 rows in 40-pixel tiles rounds to one row (at least one); an
    // image not two tiles taller than the band gives none.
    assert_eq!(band_start(200, 40, 0.125), Some(160));
    assert_eq!(band_start(400, 40, 0.2), Some(320));
    assert_eq!(band_start(79, 40, 0.125), None);
    assert_eq!(band_start(80, 40, 0.125), Some(40));
    // Two 200×100 images whose pixels hold their row, a box in the band and one above it.
    let image = |id| DetectionImage {
        id,
        channels: 1,
        size: [200, 100],
        image: (0..200 * 100).map(|i| (i / 100) as f32).collect(),
        boxes: vec![[10.0, 20.0, 30.0, 50.0], [50.0, 170.0, 70.0, 190.0]],
        labels: vec![0, 0],
    };
    let set: Arc<dyn DetectionSet> =
        Arc::new(MemoryDetections::new(vec![image(0), image(1)], vec!["tree".into()]).unwrap());
    let (train, val) = split_tiles(set.clone(), 40, 0.125).unwrap();
    // Training tiles every 20 pixels wholly above row 160: rows 0..=120 (7) × columns 0, 20,
    // 40, 60 (4), per image; validation tiles every 40 pixels inside the band: columns 0, 40, 60.
    assert_eq!((train.len(), val.len()), (2 * 7 * 4, 2 * 3));
    let rows = |s: &Arc<dyn DetectionSet>, k| {
        let t = s.get(k).unwrap();
        (t.image[0], t.image[t.image.len() - 1], t.boxes.len())
    };
    for k in 0..train.len() {
        let (top, bottom, _) = rows(&train, k);
        assert!(top <= 120.0 && bottom < 160.0, "training tile {k} reaches row {bottom}");
    }
    let mut boxes = 0;
    for k in 0..val.len() {
        let (top, bottom, n) = rows(&val, k);
        assert!(
            top >= 160.0 && bottom < 200.0,
            "validation tile {k} starts at row {top}"
        );
        boxes += n;
    }
    // The box at rows 170–190, columns 50–70 lies in the tiles at columns 40 and 60 of each image.
    assert_eq!(boxes, 2 * 2);
    // An image too short for a band leaves nothing to validate on: one clear line.
    let short: Arc<dyn DetectionSet> = Arc::new(
        MemoryDetections::new(
            vec![DetectionImage {
                size: [60, 100],
                image: vec![0.0; 6000],
                ..image(0)
            }],
            vec!["tree".into()],
        )
        .unwrap(),
    );
    let e = split_tiles(short, 40, 0.125).err().unwrap().to_string();
    assert!(e.contains("--val-size 0"), "{e}");
}

#[test]
fn flips_move_the_pixels_and_boxes_together() {
    use super::task::flip_batch;
    use nabla_core::{Generator, Tensor};
    use nabla_models::fasterrcnn::DetTarget;
    // 16 images of 2×4×6 whose pixels hold (channel, row, column), one box each.
    let (n, c, h, w) = (16, 2, 4, 6);
    let px: Vec<f32> = (0..n * c * h * w)
        .map(|i| (100 * ((i / (h * w)) % c) + 10 * ((i / w) % h) + i % w) as f32)
        .collect();
    let x = Tensor::from_vec(px.clone(), &[n, c, h, w]).unwrap();
    let box0 = [1.0, 0.5, 3.0, 2.0];
    let fresh = || -> Vec<DetTarget> {
        (0..n)
            .map(|_| DetTarget {
                boxes: vec![box0],
                labels: vec![0],
            })
            .collect()
    };
    let (mut seen_h, mut seen_v) = (0, 0);
    for vertical in [false, true] {
        let mut t = fresh();
        let y = flip_batch(&x, &mut t, vertical, &mut Generator::new(5)).unwrap();
        let out = y.to_vec_f32();
        for (i, t) in t.iter().enumerate() {
            let img = &out[i * c * h * w..(i + 1) * c * h * w];
            // The first pixel tells which flips happened: its row and column.
            let (row, col) = ((img[0] as usize / 10) % 10, img[0] as usize % 10);
            let (fx, fy) = (col == w - 1, row == h - 1);
            assert!(vertical || !fy, "an up-down flip without vertical");
            seen_h += fx as usize;
            seen_v += fy as usize;
            for ch in 0..c {
                for r in 0..h {
                    for q in 0..w {
                        let (sr, sq) = (if fy { h - 1 - r } else { r }, if fx { w - 1 - q } else { q });
                        assert_eq!(img[ch * h * w + r * w + q], (100 * ch + 10 * sr + sq) as f32);
                    }
                }
            }
            let want = [
                if fx { 6.0 - box0[2] } else { box0[0] },
                if fy { 4.0 - box0[3] } else { box0[1] },
                if fx { 6.0 - box0[0] } else { box0[2] },
                if fy { 4.0 - box0[1] } else { box0[3] },
            ];
            assert_eq!(t.boxes[0], want);
        }
    }
    // About half of 32 draws flip left-right, about half of 16 up-down.
    assert!(
        (6..=26).contains(&seen_h) && (3..=13).contains(&seen_v),
        "{seen_h} {seen_v}"
    );
}

#[test]
fn anchor_and_count_flags_are_checked_and_reach_the_detector() {
    let mut c = defaults();
    c.detect.anchor_sizes = Some("12, 16,24".into());
    c.detect.aspect_ratios = Some("1".into());
    c.detect.proposals = Some(500);
    c.detect.detections = Some(200);
    c.detect.flip = "hv".into();
    c.detect.small_stride = Some(8);
    assert!(c.validate().is_ok());
    let d = detector_config(&c, 3, 1);
    assert_eq!((d.anchor_sizes, d.aspect_ratios), (vec![12.0, 16.0, 24.0], vec![1.0]));
    assert_eq!(
        (
            d.rpn_pre_nms_top_n_train,
            d.rpn_post_nms_top_n_train,
            d.rpn_pre_nms_top_n_test,
            d.rpn_post_nms_top_n_test
        ),
        (1000, 500, 1000, 500)
    );
    assert_eq!((d.box_detections_per_img, d.small_stride), (200, 8));
    let back = TrainConfig::from_toml(&c.to_toml(), "x".as_ref()).unwrap();
    assert_eq!(back.detect, c.detect);
    // Without the flags the detector is the model's default one (the scenes' results stand).
    let plain = detector_config(&defaults(), 1, 10);
    assert_eq!(plain, nabla_models::fasterrcnn::FasterRcnnConfig::default());
    for (bad, want) in [
        (Some("16,x"), "--anchor-sizes 16,x"),
        (Some("16,-2"), "--anchor-sizes 16,-2"),
        (Some(""), "--anchor-sizes "),
    ] {
        let mut c = defaults();
        c.detect.anchor_sizes = bad.map(Into::into);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(want) && e.contains("commas"), "{e}");
    }
    let mut c = defaults();
    c.detect.flip = "diagonal".into();
    assert!(c.validate().unwrap_err().to_string().contains("--flip diagonal"));
    c.detect.flip = "h".into();
    c.detect.proposals = Some(0);
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("--proposals must be at least 1"));
}
