//! `nabla train --task detect` end to end on scenes made from small Fashion-MNIST-shaped
//! data the tests write, and on a tiny Pascal VOC folder cut into tiles: the metrics and
//! pictures appear, resuming is bitwise, `nabla eval` prints the AP table and writes COCO
//! results, `nabla predict` prints and draws detections, and bad input gets one line.

mod common;

use common::*;
use nabla_nn::checkpoint::Checkpoint;
use std::path::Path;

/// The flags of a small detection run on `data` into `out`.
fn small_run(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--task",
        "detect",
        "--data-dir",
        s(data),
        "--limit",
        "24",
        "--val-size",
        "8",
        "--batch-size",
        "8",
        "--epochs",
        "2",
        "--threads",
        "2",
        "--out",
        s(out),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// A grey PNG of `side` pixels: a bright block in its upper left quarter on black.
fn write_scene_png(path: &Path, side: u32) {
    let img = image::GrayImage::from_fn(side, side, |x, y| {
        let (a, b) = (side * 5 / 16, side * 10 / 16);
        image::Luma([if (a..b).contains(&x) && (a / 2..b / 2 + a).contains(&y) {
            220
        } else {
            0
        }])
    });
    img.save(path).unwrap();
}

#[test]
fn detect_trains_resumes_bitwise_evaluates_and_predicts() {
    let tmp = TempDir::new("detect");
    write_fake_fashion(&tmp.0, 120, 40);
    let straight = tmp.0.join("straight");
    let log = ok(&strs(&small_run(&tmp.0, &straight, &["--seed", "3"])));
    assert!(
        log.contains("training fasterrcnn_small (small backbone, RoI align"),
        "{log}"
    );
    assert!(log.contains("test: mAP@0.5") && log.contains("AP[.5:.95]"), "{log}");
    assert!(log.contains("missed (no detection)"), "{log}");
    for key in [
        "train_loss",
        "train_rpn_objectness",
        "train_rpn_box_reg",
        "train_classifier",
        "train_box_reg",
        "val_map50",
        "val_map",
    ] {
        let v = metric(&straight, key);
        assert_eq!(v.len(), 2, "{key}");
        assert!(v.iter().all(|x| x.is_finite()), "{key}: {v:?}");
    }
    let map50 = test_value(&straight, "test_map50");
    assert!((0.0..=1.0).contains(&map50), "{map50}");
    let (w, h) = png_size(&straight.join("detections.png"));
    assert!(w >= 4 * 192 && h > 2 * 192, "{w}×{h}: test scenes at 3×");
    png_size(&straight.join("curves.png"));
    let config = std::fs::read_to_string(straight.join("config.toml")).unwrap();
    assert!(
        config.contains("task = \"detect\"")
            && config.contains("backbone = \"small\"")
            && config.contains("roi = \"align\""),
        "{config}"
    );

    // The same run stopped after 4 steps (one into epoch 2) and resumed ends bit for bit alike.
    let split = tmp.0.join("split");
    let log = ok(&strs(&small_run(
        &tmp.0,
        &split,
        &["--seed", "3", "--stop-after-steps", "4"],
    )));
    assert!(log.contains("stopped as asked"), "{log}");
    let last = split.join("last.safetensors");
    assert_eq!(Checkpoint::load(&last).unwrap().step, 4);
    let log = ok(&["train", "--resume", s(&last)]);
    assert!(log.contains("resuming at epoch 2"), "{log}");
    assert_eq!(bits(&straight.join("last.safetensors")), bits(&last));
    assert_eq!(metric(&straight, "train_loss"), metric(&split, "train_loss"));
    assert_eq!(metric(&straight, "val_map50"), metric(&split, "val_map50"));

    // eval: the table, and the detections as COCO results.
    let best = straight.join("best.safetensors");
    let results = tmp.0.join("results.json");
    let eval = ok(&[
        "eval",
        "--task",
        "detect",
        "--checkpoint",
        s(&best),
        "--data-dir",
        s(&tmp.0),
        "--save-detections",
        s(&results),
    ]);
    for want in ["AP50", "AP75", "Ankle boot", "mAP@0.5", "mAP@[.5:.95]", "wrote"] {
        assert!(eval.contains(want), "{want}: {eval}");
    }
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    let list = json.as_array().expect("a JSON list");
    for r in list {
        let id = r["image_id"].as_u64().unwrap();
        let cat = r["category_id"].as_u64().unwrap();
        let b: Vec<f64> = r["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let score = r["score"].as_f64().unwrap();
        // 8 test scenes numbered as annotations.json numbers them; categories 1..=10.
        assert!(
            id < 8 && (1..=10).contains(&cat) && b.len() == 4 && b[2] >= 0.0 && b[3] >= 0.0,
            "{r}"
        );
        assert!((0.0..=1.0).contains(&score), "{r}");
    }
    let j = ok(&["eval", "--checkpoint", s(&best), "--data-dir", s(&tmp.0), "--json"]);
    let v: serde_json::Value = serde_json::from_str(j.trim()).unwrap();
    assert_eq!(v["task"], "detect");
    assert_eq!(v["per_class"].as_array().unwrap().len(), 10);
    assert!((v["map50"].as_f64().unwrap() - map50).abs() < 1e-9, "{v} vs {map50}");

    // predict: a scene-sized image, and one twice the size (resized, boxes mapped back).
    for (side, resized) in [(64, false), (128, true)] {
        let scene = tmp.0.join(format!("scene{side}.png"));
        write_scene_png(&scene, side);
        let pic = tmp.0.join(format!("scene{side}.boxes.png"));
        let res = nabla(&[
            "predict",
            "--checkpoint",
            s(&best),
            s(&scene),
            "--score-threshold",
            "0.0",
            "-o",
            s(&pic),
        ]);
        let (out, err) = (text(&res.stdout), text(&res.stderr));
        assert!(res.status.success(), "{out}{err}");
        assert!(out.contains("detections with score >= 0"), "{out}");
        assert_eq!(err.contains("resized 128×128 to 64×64"), resized, "{err}");
        assert_eq!(png_size(&pic).0, side * (384 / side) + 8);
        for line in out.lines().skip(1) {
            let v: Vec<f64> = line
                .split_whitespace()
                .rev()
                .take(4)
                .map(|x| x.parse().unwrap())
                .collect();
            assert!(v.iter().all(|&c| (0.0..=side as f64).contains(&c)), "{line}");
        }
    }
    refused(
        &["eval", "--task", "segment", "--checkpoint", s(&best)],
        "a checkpoint of --task detect, not segment",
    );
    refused(
        &[
            "predict",
            "--checkpoint",
            s(&best),
            s(&results),
            "--score-threshold",
            "2",
        ],
        "--score-threshold 2",
    );
}

/// A tiny Pascal VOC folder: `n` RGB images of 96×96, each with two bright squares.
fn write_voc(dir: &Path, n: usize) {
    for i in 0..n {
        let squares = [(8 + 4 * i as u32, 10u32, 20u32), (50, 40 + 3 * i as u32, 24)];
        let img = image::RgbImage::from_fn(96, 96, |x, y| {
            let inside = squares
                .iter()
                .any(|&(sx, sy, d)| (sx..sx + d).contains(&x) && (sy..sy + d).contains(&y));
            image::Rgb(if inside { [230, 200, 40] } else { [20, 60, 20] })
        });
        img.save(dir.join(format!("img{i}.png"))).unwrap();
        let objects: String = squares
            .iter()
            .map(|&(x, y, d)| {
                format!(
                    "<object><name>Tree</name><difficult>0</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>",
                    x + 1,
                    y + 1,
                    x + d,
                    y + d
                )
            })
            .collect();
        let xml = format!(
            "<annotation><filename>img{i}.png</filename><size><width>96</width><height>96</height><depth>3</depth></size>{objects}</annotation>"
        );
        std::fs::write(dir.join(format!("img{i}.xml")), xml).unwrap();
    }
}

#[test]
fn voc_photographs_train_on_tiles_with_one_image_held_out() {
    let tmp = TempDir::new("detect-voc");
    let voc = tmp.0.join("voc");
    std::fs::create_dir_all(&voc).unwrap();
    write_voc(&voc, 3);
    let out = tmp.0.join("run");
    let data = format!("voc:{}", voc.display());
    let log = ok(&[
        "train",
        "--task",
        "detect",
        "--data",
        &data,
        "--tile",
        "48",
        "--holdout",
        "img0",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--threads",
        "2",
        "--out",
        s(&out),
    ]);
    // 96 = two 48-pixel tiles a side: the held-out image gives 4 test tiles; the bottom row
    // of tiles of each other image validates (2 × 2), and the overlapping training tiles lie
    // above it (2 × 1 row × 3).
    assert!(log.contains("48×48 tiles; the tiles of img0 held out to test"), "{log}");
    assert!(
        log.contains("(6 training, 4 validation, 4 test images of 3×48×48)"),
        "{log}"
    );
    assert!((0.0..=1.0).contains(&test_value(&out, "test_map50")));
    png_size(&out.join("detections.png"));
    refused(
        &[
            "train",
            "--task",
            "detect",
            "--data",
            &data,
            "--holdout",
            "img9",
            "--tile",
            "48",
            "--out",
            s(&tmp.0.join("x")),
        ],
        "--holdout img9",
    );
    refused(
        &[
            "train",
            "--task",
            "detect",
            "--data",
            &data,
            "--tile",
            "48",
            "--val-size",
            "2",
            "--out",
            s(&tmp.0.join("x")),
        ],
        "--val-size counts images",
    );
}

#[test]
fn bad_detection_input_gets_one_line() {
    let tmp = TempDir::new("detect-bad");
    let out = tmp.0.join("never");
    let o = s(&out);
    refused(
        &["train", "--task", "detect", "--backbone", "vgg", "--out", o],
        "--backbone vgg",
    );
    refused(&["train", "--task", "detect", "--roi", "max", "--out", o], "--roi max");
    refused(
        &["train", "--task", "detect", "--tile", "0", "--out", o],
        "--tile must be at least 1",
    );
    let missing = format!("voc:{}", tmp.0.join("nowhere").display());
    refused(
        &["train", "--task", "detect", "--data", &missing, "--out", o],
        "no such folder",
    );
    refused(
        &["train", "--task", "detect", "--data", "pascal:x", "--out", o],
        "coco:PATH or voc:PATH",
    );
    refused(
        &["train", "--task", "detect", "--model", "lenet5", "--out", o],
        "--model lenet5 cannot detect",
    );
    refused(
        &["train", "--backbone", "small", "--out", o],
        "--backbone applies to --task detect only",
    );
    refused(
        &[
            "train",
            "--task",
            "detect",
            "--backbone-from",
            s(&tmp.0.join("none.safetensors")),
            "--out",
            o,
        ],
        "no such file",
    );
    assert!(!out.exists(), "a refused run leaves no folder");
}

#[test]
fn a_classifier_checkpoint_is_refused_by_detection_flags() {
    let tmp = TempDir::new("detect-other");
    write_fake_fashion(&tmp.0, 64, 16);
    let out = tmp.0.join("cls");
    ok(&[
        "train",
        "--model",
        "mlp",
        "--data-dir",
        s(&tmp.0),
        "--limit",
        "32",
        "--val-size",
        "8",
        "--epochs",
        "1",
        "--threads",
        "2",
        "--out",
        s(&out),
    ]);
    let ck = out.join("last.safetensors");
    refused(
        &["eval", "--task", "detect", "--checkpoint", s(&ck)],
        "a checkpoint of --task classification, not detect",
    );
    refused(
        &[
            "eval",
            "--checkpoint",
            s(&ck),
            "--save-detections",
            s(&tmp.0.join("r.json")),
        ],
        "--save-detections",
    );
    let png = tmp.0.join("x.png");
    write_scene_png(&png, 28);
    refused(
        &["predict", "--checkpoint", s(&ck), s(&png), "--score-threshold", "0.5"],
        "it applies to detectors",
    );
}
