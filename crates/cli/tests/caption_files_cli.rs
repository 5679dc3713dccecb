//! `nabla caption train` on captioned image files the tests write: a tiny COCO folder
//! (train and val captions files) and a tiny Flickr8k folder (token file and split lists)
//! each train and leave checkpoints; `--encoder-from` copies a classification checkpoint's
//! encoder weights into the captioner and keeps them frozen through training.

mod common;

use common::*;
use nabla_models::captioner::{Captioner, CaptionerConfig};
use nabla_nn::checkpoint::Checkpoint;
use nabla_nn::Module;
use serde_json::json;
use std::path::Path;

/// Image `i`'s colour name, after writing it to `path`: a 20×20 RGB square of one of three
/// colours on black.
fn colour_png(path: &Path, i: usize) -> &'static str {
    let (name, rgb) = [
        ("red", [220, 30, 30]),
        ("green", [30, 200, 40]),
        ("blue", [40, 50, 230]),
    ][i % 3];
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let inside = |v: u32| (4..16).contains(&v);
    image::RgbImage::from_fn(20, 20, |x, y| {
        image::Rgb(if inside(x) && inside(y) { rgb } else { [0; 3] })
    })
    .save(path)
    .unwrap();
    name
}

/// A COCO folder: `annotations/captions_{train,val}.json`, the images in `train/` and `val/`,
/// two captions an image.
fn write_coco(dir: &Path, train: usize, val: usize) {
    std::fs::create_dir_all(dir.join("annotations")).unwrap();
    for (split, n) in [("train", train), ("val", val)] {
        let (mut images, mut anns) = (vec![], vec![]);
        for i in 0..n {
            let file = format!("{split}{i}.png");
            let c = colour_png(&dir.join(split).join(&file), i);
            let id = 100 + i;
            images.push(json!({"id": id, "file_name": file}));
            anns.push(json!({"id": 2 * id, "image_id": id, "caption": format!("A {c} square.")}));
            anns.push(json!({"id": 2 * id + 1, "image_id": id, "caption": format!("a {c} block on black")}));
        }
        let ann = json!({"images": images, "annotations": anns}).to_string();
        std::fs::write(dir.join(format!("annotations/captions_{split}.json")), ann).unwrap();
    }
}

/// A Flickr8k folder: `Flickr8k.token.txt` (two captions an image), the split lists beside
/// it, the images in `Flicker8k_Dataset/`.
fn write_flickr8k(dir: &Path, sizes: [usize; 3]) {
    let (mut tokens, mut next) = (String::new(), 0);
    for (split, n) in ["train", "dev", "test"].into_iter().zip(sizes) {
        let mut list = String::new();
        for _ in 0..n {
            let file = format!("{next}.png");
            let c = colour_png(&dir.join("Flicker8k_Dataset").join(&file), next);
            tokens += &format!("{file}#0\tA {c} square .\n{file}#1\ta {c} block on black\n");
            list += &format!("{file}\n");
            next += 1;
        }
        std::fs::write(dir.join(format!("Flickr_8k.{split}Images.txt")), list).unwrap();
    }
    std::fs::write(dir.join("Flickr8k.token.txt"), tokens).unwrap();
}

/// One epoch of a tiny captioner on `data` (16×16 images) into `out`.
fn train_on(data: &str, out: &Path, extra: &[&str]) -> String {
    let flags = [
        "caption",
        "train",
        "--data",
        data,
        "--val-size",
        "3",
        "--test-size",
        "3",
        "--image-size",
        "16",
        "--batch-size",
        "4",
        "--embed",
        "8",
        "--hidden",
        "16",
        "--epochs",
        "1",
        "--threads",
        "2",
        "--out",
        s(out),
    ];
    ok(&[&flags[..], extra].concat())
}

/// The run's checkpoints are there and load, and its first epoch's scores are finite.
fn check_run(out: &Path) {
    for f in ["last.safetensors", "best.safetensors"] {
        let ck = Checkpoint::load(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(ck.epoch, 1, "{f}");
        assert!(ck.model.iter().any(|(n, _)| n.starts_with("encoder.")), "{f}");
    }
    for key in ["train_loss", "val_loss", "val_bleu4"] {
        let v = metric(out, key);
        assert!(v.len() == 1 && v[0].is_finite(), "{key}: {v:?}");
    }
}

#[test]
fn a_tiny_coco_folder_trains() {
    let tmp = TempDir::new("caption-coco");
    let coco = tmp.0.join("coco");
    write_coco(&coco, 12, 6);
    let out = tmp.0.join("run");
    let log = train_on(&format!("coco:{}", coco.display()), &out, &[]);
    assert!(
        log.contains("12 training, 3 validation, 3 test images of 16×16"),
        "{log}"
    );
    assert!(
        log.contains("(train to train; 3 of val to validate, the next 3 to test)"),
        "{log}"
    );
    check_run(&out);
}

#[test]
fn a_tiny_flickr8k_folder_trains() {
    let tmp = TempDir::new("caption-flickr");
    let flickr = tmp.0.join("flickr");
    write_flickr8k(&flickr, [10, 3, 3]);
    let out = tmp.0.join("run");
    let log = train_on(&format!("flickr8k:{}", flickr.display()), &out, &[]);
    assert!(
        log.contains("10 training, 3 validation, 3 test images of 16×16"),
        "{log}"
    );
    assert!(log.contains("(its train, dev and test lists)"), "{log}");
    check_run(&out);
}

#[test]
fn encoder_from_loads_a_classifiers_encoder_and_keeps_it_frozen() {
    let tmp = TempDir::new("caption-encoder-from");
    let coco = tmp.0.join("coco");
    write_coco(&coco, 12, 6);
    // A classification checkpoint whose tensors are named as the small encoder's: one
    // initialized from another seed than the captioner's, so that its weights are told apart.
    let cfg = CaptionerConfig {
        vocab_size: 8,
        in_channels: 3,
        image_size: [16, 16],
        seed: 77,
        ..CaptionerConfig::default()
    };
    let source = Captioner::new(&cfg).unwrap().encoder.state_dict();
    let classifier = tmp.0.join("classifier.safetensors");
    Checkpoint {
        model: source.clone(),
        ..Checkpoint::default()
    }
    .save(&classifier)
    .unwrap();
    let data = format!("coco:{}", coco.display());
    let (plain, loaded) = (tmp.0.join("plain"), tmp.0.join("loaded"));
    train_on(&data, &plain, &[]);
    let log = train_on(&data, &loaded, &["--encoder-from", s(&classifier)]);
    let n = source.len();
    assert!(
        log.contains(&format!(
            "encoder: {n} tensors loaded from {} and frozen",
            classifier.display()
        )),
        "{log}"
    );
    let tensors = |run: &Path| Checkpoint::load(run.join("last.safetensors")).unwrap().model;
    let (plain, loaded) = (tensors(&plain), tensors(&loaded));
    let find = |m: &[(String, nabla_core::Tensor)], name: &str| {
        m.iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .1
            .to_vec_f64()
    };
    for (name, t) in &source {
        let full = format!("encoder.{name}");
        // After an epoch of training, still the classifier's, to the bit: loaded and frozen
        // (batch norm's running statistics included).
        assert_eq!(find(&loaded, &full), t.to_vec_f64(), "{full}");
    }
    let conv = source.iter().find(|(n, _)| n.ends_with("weight")).unwrap();
    let conv = format!("encoder.{}", conv.0);
    assert_ne!(
        find(&plain, &conv),
        find(&loaded, &conv),
        "{conv}: the run without --encoder-from has its own"
    );
    // The rest of the captioner trained.
    let trained = loaded
        .iter()
        .filter(|(n, _)| !n.starts_with("encoder."))
        .any(|(n, t)| find(&plain, n) != t.to_vec_f64());
    assert!(trained, "the decoder did not train");
}
