//! `nabla caption` end to end on scenes made from small Fashion-MNIST-shaped data the tests
//! write: a run leaves its checkpoints, metrics and pictures, resuming is bitwise,
//! `predict` prints a caption, `eval` writes valid COCO JSON, and bad input gets one line.

mod common;

use common::*;
use nabla_nn::checkpoint::Checkpoint;
use std::path::Path;

/// The flags of a tiny caption run on `data` into `out`.
fn tiny_run(data: &Path, out: &Path, epochs: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "caption",
        "train",
        "--data-dir",
        s(data),
        "--scenes",
        "24",
        "--val-size",
        "8",
        "--test-size",
        "8",
        "--batch-size",
        "8",
        "--embed",
        "8",
        "--hidden",
        "16",
        "--epochs",
        epochs,
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

/// A grey PNG of `w`×`h`: a bright block on black.
fn write_png(path: &Path, w: u32, h: u32) {
    let img = image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([if x > w / 3 && x < w / 2 && y > h / 4 && y < h / 2 {
            220
        } else {
            0
        }])
    });
    img.save(path).unwrap();
}

#[test]
fn a_tiny_run_leaves_its_files_and_predict_and_eval_use_them() {
    let tmp = TempDir::new("caption-run");
    write_fake_fashion(&tmp.0, 120, 40);
    let out = tmp.0.join("run");
    let vectors = tmp.0.join("vectors.txt");
    let row = |w: &str, v: f32| format!("{w} {}\n", vec![v.to_string(); 8].join(" "));
    std::fs::write(&vectors, row("bag", 0.5) + &row("shirt", -0.25) + &row("zebra", 1.0)).unwrap();
    let flags = ["--word-vectors", s(&vectors), "--freeze-embeddings"];
    let log = ok(&strs(&tiny_run(&tmp.0, &out, "1", &flags)));
    assert!(
        log.contains("training a captioner") && log.contains("24 training, 8 validation, 8 test"),
        "{log}"
    );
    assert!(
        log.contains("word vectors: ") && log.contains(" missing, initialized from N(0, "),
        "{log}"
    );
    assert!(log.contains("test (best.safetensors): BLEU-4"), "{log}");
    for f in ["last.safetensors", "best.safetensors", "metrics.jsonl", "config.toml"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    for key in [
        "train_loss",
        "val_loss",
        "val_bleu1",
        "val_bleu4",
        "val_exact",
        "val_counts",
    ] {
        let v = metric(&out, key);
        assert_eq!(v.len(), 1, "{key}");
        assert!(v[0].is_finite(), "{key}: {v:?}");
    }
    let (w, h) = png_size(&out.join("captions.png"));
    assert!(
        w >= 1000 && h > 4 * 128,
        "{w}×{h}: 8 images at 2× in two columns with text"
    );
    png_size(&out.join("curves.png"));
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        config.contains("data = \"scenes\"") && config.contains("hidden = 16"),
        "{config}"
    );

    let best = out.join("best.safetensors");
    let pic = tmp.0.join("scene.png");
    write_png(&pic, 64, 64);
    let said = ok(&["caption", "predict", "--checkpoint", s(&best), s(&pic)]);
    assert!(
        said.starts_with(&format!("{}: ", pic.display())) && !said.contains("resized"),
        "{said}"
    );
    let big = tmp.0.join("big.png");
    write_png(&big, 100, 80);
    let said = ok(&["caption", "predict", "--checkpoint", s(&best), s(&big), "--beam", "1"]);
    assert!(said.trim_end().ends_with("(resized 100×80 to 64×64)"), "{said}");

    let results = tmp.0.join("results.json");
    let eval = ok(&[
        "caption",
        "eval",
        "--checkpoint",
        s(&best),
        "--data-dir",
        s(&tmp.0),
        "--beam",
        "2",
        "--save-captions",
        s(&results),
    ]);
    assert!(
        eval.contains("greedy") && eval.contains("beam 2") && eval.contains("BLEU-4"),
        "{eval}"
    );
    // The table: a header, then a row per decoder, each number ending under its label.
    let line = |start: &str| {
        eval.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("{eval}"))
    };
    let header = line("decoder");
    for row in [line("greedy "), line("beam 2 ")] {
        assert_eq!(row.len(), header.len(), "{eval}");
        let bleu4 = header.find("BLEU-4").unwrap() + "BLEU-4".len();
        assert!(
            row[..bleu4].ends_with(|c: char| c.is_ascii_digit()) && row[bleu4..].starts_with(' '),
            "{eval}"
        );
    }
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    let r = r.as_array().unwrap();
    assert_eq!(r.len(), 8);
    assert!(r.iter().all(|e| e["image_id"].is_u64() && e["caption"].is_string()));
    let refs = tmp.0.join("results.references.json");
    let refs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(refs).unwrap()).unwrap();
    assert_eq!(refs["images"].as_array().unwrap().len(), 8);
    assert_eq!(refs["annotations"].as_array().unwrap().len(), 8 * 5);
}

#[test]
fn a_resumed_run_matches_a_straight_one_bit_for_bit() {
    let tmp = TempDir::new("caption-resume");
    write_fake_fashion(&tmp.0, 120, 40);
    let straight = tmp.0.join("straight");
    ok(&strs(&tiny_run(&tmp.0, &straight, "2", &["--seed", "3"])));
    let split = tmp.0.join("split");
    let log = ok(&strs(&tiny_run(
        &tmp.0,
        &split,
        "2",
        &["--seed", "3", "--stop-after-steps", "4"],
    )));
    assert!(log.contains("stopped as asked"), "{log}");
    let last = split.join("last.safetensors");
    assert_eq!(Checkpoint::load(&last).unwrap().step, 4);
    let log = ok(&["caption", "train", "--resume", s(&last)]);
    assert!(log.contains("resuming at epoch 2"), "{log}");
    assert_eq!(bits(&straight.join("last.safetensors")), bits(&last));
    assert_eq!(metric(&straight, "train_loss"), metric(&split, "train_loss"));
    assert_eq!(metric(&straight, "val_bleu4"), metric(&split, "val_bleu4"));
    refused(
        &["caption", "train", "--resume", s(&last), "--hidden", "32"],
        "--hidden cannot change on --resume",
    );
}

#[test]
fn bad_caption_input_gets_one_line() {
    let tmp = TempDir::new("caption-bad");
    write_fake_fashion(&tmp.0, 20, 10);
    let d = s(&tmp.0);
    let out = tmp.0.join("run");
    refused(
        &[
            "caption",
            "train",
            "--data",
            "voc:/x",
            "--data-dir",
            d,
            "--out",
            s(&out),
        ],
        "--data voc:/x: nabla caption reads scenes",
    );
    refused(
        &["caption", "train", "--hidden", "0", "--data-dir", d, "--out", s(&out)],
        "--hidden 0: must be at least 1",
    );
    let vectors = tmp.0.join("vectors.txt");
    std::fs::write(&vectors, "bag 0.1 0.2 0.3\nshirt 0.3 0.2 0.1\n").unwrap();
    refused(
        &strs(&tiny_run(&tmp.0, &out, "1", &["--word-vectors", s(&vectors)])),
        "the vectors have 3 dimensions but --embed is 8",
    );
    assert!(!out.exists(), "a refused run leaves no folder");
    let missing = tmp.0.join("none.safetensors");
    let pic = tmp.0.join("p.png");
    write_png(&pic, 64, 64);
    refused(
        &["caption", "predict", "--checkpoint", s(&missing), s(&pic)],
        "no such checkpoint file",
    );
    // A checkpoint of another task.
    let other = tmp.0.join("other.safetensors");
    let mut ck = Checkpoint {
        model: vec![],
        optimizer: Default::default(),
        scheduler: Default::default(),
        epoch: 1,
        step: 1,
        rng: None,
        extra: Default::default(),
    };
    ck.extra.insert("model".into(), "lenet5".into());
    ck.save(&other).unwrap();
    refused(
        &["caption", "predict", "--checkpoint", s(&other), s(&pic)],
        "a lenet5 checkpoint, not a captioner's",
    );
    refused(
        &["caption", "eval", "--checkpoint", s(&other), "--beam", "0"],
        "--beam 0",
    );
}
