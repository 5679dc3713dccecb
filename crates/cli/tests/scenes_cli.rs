//! `nabla train --task localize` and `--task segment` end to end on scenes made from small
//! Fashion-MNIST-shaped data the tests write: the metrics and pictures appear (and decode as
//! PNG), resuming is bitwise, `nabla eval` and `nabla predict` take the checkpoints, and bad
//! input gets one line.

mod common;

use common::*;
use nabla_nn::checkpoint::Checkpoint;
use std::path::Path;

/// The flags of a small scene run on `data` into `out`.
fn small_run(task: &str, data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--task",
        task,
        "--data-dir",
        s(data),
        "--limit",
        "48",
        "--val-size",
        "16",
        "--batch-size",
        "16",
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

/// A scene-sized grey PNG: a bright block on black.
fn write_scene_png(path: &Path) {
    let img = image::GrayImage::from_fn(64, 64, |x, y| {
        image::Luma([if (20..40).contains(&x) && (10..30).contains(&y) {
            220
        } else {
            0
        }])
    });
    img.save(path).unwrap();
}

#[test]
fn localize_records_its_metrics_and_pictures_and_predicts_a_box() {
    let tmp = TempDir::new("scenes-loc");
    write_fake_fashion(&tmp.0, 120, 40);
    let out = tmp.0.join("run");
    let log = ok(&strs(&small_run(
        "localize",
        &tmp.0,
        &out,
        &["--box-loss", "smooth-l1", "--box-weight", "5"],
    )));
    assert!(
        log.contains("training classloc to localize (box loss smooth-l1, box weight 5"),
        "{log}"
    );
    assert!(
        log.contains("correct") && log.contains("test: correct localization"),
        "{log}"
    );
    for key in ["train_cls_loss", "train_box_loss", "val_iou", "val_correct", "val_acc"] {
        let v = metric(&out, key);
        assert_eq!(v.len(), 2, "{key}");
        assert!(v.iter().all(|x| x.is_finite()), "{key}: {v:?}");
    }
    assert!((0.0..=1.0).contains(&test_value(&out, "test_correct")));
    let (w, h) = png_size(&out.join("predictions.png"));
    assert!(w > 4 * 192 && h > 3 * 192, "{w}×{h}: a grid of 12 scenes at 3×");
    png_size(&out.join("curves.png"));
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        config.contains("task = \"localize\"") && config.contains("box_loss = \"smooth-l1\""),
        "{config}"
    );

    let best = out.join("best.safetensors");
    let eval = ok(&["eval", "--checkpoint", s(&best), "--data-dir", s(&tmp.0)]);
    assert!(
        eval.contains("correct localization") && eval.contains("mean IoU"),
        "{eval}"
    );
    let scene = tmp.0.join("scene.png");
    write_scene_png(&scene);
    let pic = tmp.0.join("boxed.png");
    let said = ok(&["predict", "--checkpoint", s(&best), s(&scene), "-o", s(&pic)]);
    assert!(
        said.contains("box x") && said.contains(&format!("wrote {}", pic.display())),
        "{said}"
    );
    assert_eq!(png_size(&pic), (64 * 4 + 8, 64 * 4 + 8));
}

#[test]
fn segment_resumes_bitwise_and_eval_shows_every_class() {
    let tmp = TempDir::new("scenes-seg");
    write_fake_fashion(&tmp.0, 120, 40);
    let flags = ["--class-weights", "auto", "--seed", "3"];
    let straight = tmp.0.join("straight");
    let log = ok(&strs(&small_run("segment", &tmp.0, &straight, &flags)));
    assert!(
        log.contains("training fcn_small to segment (class weights auto"),
        "{log}"
    );
    assert!(log.contains("mean IoU") && log.contains("background"), "{log}");
    let split = tmp.0.join("split");
    let log = ok(&strs(&small_run(
        "segment",
        &tmp.0,
        &split,
        &[&flags[..], &["--stop-after-steps", "4"]].concat(),
    )));
    assert!(log.contains("stopped as asked"), "{log}");
    let last = split.join("last.safetensors");
    assert_eq!(Checkpoint::load(&last).unwrap().step, 4);
    let log = ok(&["train", "--resume", s(&last)]);
    assert!(log.contains("resuming at epoch 2"), "{log}");
    assert_eq!(bits(&straight.join("last.safetensors")), bits(&last));
    assert_eq!(metric(&straight, "train_loss"), metric(&split, "train_loss"));
    assert_eq!(metric(&straight, "val_miou"), metric(&split, "val_miou"));
    assert_eq!(test_value(&straight, "test_miou"), test_value(&split, "test_miou"));
    let (w, h) = png_size(&straight.join("segmentation.png"));
    assert!(
        w > 3 * 128 && h > 12 * 128,
        "{w}×{h}: 12 rows of scene | truth | prediction"
    );

    let best = straight.join("best.safetensors");
    let eval = ok(&["eval", "--checkpoint", s(&best), "--data-dir", s(&tmp.0)]);
    for want in ["pixel accuracy", "background", "Ankle boot", "mean IoU"] {
        assert!(eval.contains(want), "{want}: {eval}");
    }
    // One line per label, background first: an IoU, or "absent" for a class in neither.
    let table: Vec<&str> = eval
        .lines()
        .skip_while(|l| !l.starts_with("class "))
        .skip(1)
        .take(11)
        .collect();
    assert_eq!(table.len(), 11, "{eval}");
    assert!(table[0].starts_with("background"), "{eval}");
    for line in &table {
        let last = line.split_whitespace().last().unwrap();
        assert!(
            last == "absent" || last.parse::<f64>().is_ok_and(|v| (0.0..=1.0).contains(&v)),
            "{line}"
        );
    }
    let scene = tmp.0.join("scene.png");
    write_scene_png(&scene);
    let cwd_pic = tmp.0.join("scene.mask.png");
    let res = std::process::Command::new(env!("CARGO_BIN_EXE_nabla"))
        .args(["predict", "--checkpoint", s(&best), s(&scene)])
        .current_dir(&tmp.0)
        .output()
        .unwrap();
    assert!(res.status.success(), "{}", text(&res.stderr));
    assert!(
        text(&res.stdout).contains("of the pixels; wrote scene.mask.png"),
        "{}",
        text(&res.stdout)
    );
    png_size(&cwd_pic);
}

#[test]
fn bad_scene_input_gets_one_line_and_no_folder() {
    let tmp = TempDir::new("scenes-bad");
    write_fake_fashion(&tmp.0, 20, 10);
    let out = tmp.0.join("run");
    let d = s(&tmp.0);
    let o = s(&out);
    refused(
        &[
            "train",
            "--task",
            "localize",
            "--box-weight",
            "-1",
            "--data-dir",
            d,
            "--out",
            o,
        ],
        "--box-weight must be a number ≥ 0, got -1",
    );
    refused(
        &[
            "train",
            "--task",
            "localize",
            "--model",
            "segnet",
            "--data-dir",
            d,
            "--out",
            o,
        ],
        "--model segnet cannot localize",
    );
    refused(
        &[
            "train",
            "--task",
            "segment",
            "--model",
            "lenet5",
            "--data-dir",
            d,
            "--out",
            o,
        ],
        "--task segment trains fcn_small or segnet",
    );
    refused(
        &["train", "--box-loss", "smooth-l1", "--data-dir", d, "--out", o],
        "--box-loss applies to --task localize only",
    );
    refused(
        &[
            "train",
            "--task",
            "localize",
            "--class-weights",
            "auto",
            "--data-dir",
            d,
            "--out",
            o,
        ],
        "--class-weights applies to --task segment only",
    );
    refused(
        &[
            "train",
            "--task",
            "segment",
            "--data",
            "pictures/",
            "--data-dir",
            d,
            "--out",
            o,
        ],
        "reads scenes (generated, the default), coco:PATH or masks:PATH",
    );
    refused(
        &[
            "train",
            "--task",
            "segment",
            "--data",
            "coco:/no/such/place",
            "--out",
            o,
        ],
        "/no/such/place",
    );
    refused(
        &["train", "--task", "segment", "--data-dir", "/no/such/dir", "--out", o],
        "--data-dir /no/such/dir",
    );
    assert!(!out.exists(), "a refused run left a folder");
}

/// Scenes written by `nabla data scenes` train both tasks through the readers: COCO boxes
/// for localization, the mask folder for segmentation.
#[test]
fn a_users_coco_and_mask_folders_train() {
    let tmp = TempDir::new("scenes-files");
    write_fake_fashion(&tmp.0, 60, 10);
    let scenes = tmp.0.join("scenes");
    ok(&[
        "data",
        "scenes",
        "--out",
        s(&scenes),
        "-n",
        "40",
        "--data-dir",
        s(&tmp.0),
    ]);
    let coco = format!("coco:{}", scenes.display());
    let out = tmp.0.join("loc");
    let common = [
        "--val-size",
        "8",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--threads",
        "2",
    ];
    let log = ok(&[
        &["train", "--task", "localize", "--data", &coco, "--out", s(&out)][..],
        &common,
    ]
    .concat());
    assert!(log.contains("32 training, 8 validation, 8 test scenes"), "{log}");
    assert!(log.contains("held out to validate and test"), "{log}");
    let masks = format!("masks:{}", scenes.display());
    let out = tmp.0.join("seg");
    let log = ok(&[
        &["train", "--task", "segment", "--data", &masks, "--out", s(&out)][..],
        &common,
    ]
    .concat());
    assert!(log.contains("test: mIoU"), "{log}");
    png_size(&out.join("segmentation.png"));
    let res = nabla(
        &[
            &[
                "train",
                "--task",
                "localize",
                "--data",
                &masks,
                "--out",
                s(&tmp.0.join("x")),
            ][..],
            &common,
        ]
        .concat(),
    );
    assert_eq!(
        res.status.code(),
        Some(1),
        "masks carry no boxes: {}",
        text(&res.stderr)
    );
}
