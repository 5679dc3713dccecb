//! End-to-end tests of `nabla train --dataset imagefolder`, `eval` and `predict` on small
//! image folders the tests write (PNG and JPEG files, one folder per class).

mod common;

use common::*;
use image::RgbImage;
use std::path::Path;

/// `n` 20×20 colour images per class in `dir/<class>/`: class k has a bright bar in
/// channel k; every fifth is a JPEG.
fn write_rgb(dir: &Path, n: usize) {
    for (k, c) in ["red", "green", "blue"].iter().enumerate() {
        std::fs::create_dir_all(dir.join(c)).unwrap();
        for i in 0..n {
            let img = RgbImage::from_fn(20, 20, |x, y| {
                let mut p = [((x * 5 + y * 3 + i as u32 * 7) % 60) as u8; 3];
                if (6..14).contains(&y) {
                    p[k] = 220;
                }
                image::Rgb(p)
            });
            let ext = if i % 5 == 4 { "jpg" } else { "png" };
            img.save(dir.join(c).join(format!("{i}.{ext}"))).unwrap();
        }
    }
}

#[test]
fn train_eval_and_predict_on_an_image_folder() {
    let tmp = TempDir::new("imagefolder");
    let data = tmp.0.join("pics");
    write_rgb(&data.join("train"), 24);
    write_rgb(&data.join("val"), 6);
    let out = tmp.0.join("run");
    let res = nabla(&[
        "train",
        "--dataset",
        "imagefolder",
        "--data-dir",
        s(&data),
        "--image-size",
        "16",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--lr",
        "0.02",
        "--out",
        s(&out),
    ]);
    let (log, err) = (text(&res.stdout), text(&res.stderr));
    assert!(res.status.success(), "{log}\n{err}");
    assert!(log.contains("(72 training, 18 validation, 18 test samples"), "{log}");
    assert!(err.contains("no test/ folder: val/ double as the test split"), "{err}");
    assert!(err.contains("each is resized to cover 16×16"), "{err}");
    assert!(err.contains("cached in memory"), "{err}");
    let best = out.join("best.safetensors");
    let ev = ok(&["eval", "-c", s(&best)]);
    assert!(ev.contains("18 samples") && ev.contains("accuracy"), "{ev}");
    let acc = metric(&out, "val_acc");
    assert!(acc.iter().cloned().fold(0.0, f64::max) > 0.6, "{acc:?}");
    // A training picture of class "green", at another size: read as training read it.
    let png = data.join("train").join("green").join("0.png");
    let j: serde_json::Value = serde_json::from_str(&ok(&["predict", "-c", s(&best), s(&png), "--json"])).unwrap();
    assert_eq!(j["top"].as_array().unwrap().len(), 3, "{j}");
    let note = j["notes"].to_string();
    assert!(note.contains("resized 20×20 to cover 16×16"), "{note}");
    // Without --image-size the first image's size is kept; RGB is inferred.
    let strict = nabla(&[
        "train",
        "--dataset",
        "imagefolder",
        "--data-dir",
        s(&data.join("train")),
        "--strict",
        "--epochs",
        "1",
        "--out",
        s(&tmp.0.join("r2")),
    ]);
    assert!(strict.status.success(), "{}", text(&strict.stderr));
    std::fs::write(data.join("train").join("red").join("bad.jpg"), b"\xff\xd8 nope").unwrap();
    let strict = nabla(&[
        "train",
        "--dataset",
        "imagefolder",
        "--data-dir",
        s(&data),
        "--strict",
        "--out",
        s(&tmp.0.join("r3")),
    ]);
    let e = text(&strict.stderr);
    assert!(
        !strict.status.success() && e.contains("bad.jpg") && e.lines().count() == 1,
        "{e}"
    );
    let missing = nabla(&["train", "--dataset", "imagefolder", "--data-dir", "/no/such/dir"]);
    let e = text(&missing.stderr);
    assert_eq!(missing.status.code(), Some(1), "{e}");
    assert!(e.contains("no such directory") && e.lines().count() == 1, "{e}");
}

#[test]
fn ensembles_of_different_architectures_and_sizes_with_tta() {
    let tmp = TempDir::new("ensemble");
    let data = tmp.0.join("pics");
    write_rgb(&data.join("train"), 12);
    write_rgb(&data.join("val"), 4);
    let train = |name: &str, extra: &[&str]| {
        let out = tmp.0.join(name);
        let mut a = vec![
            "train",
            "--dataset",
            "imagefolder",
            "--data-dir",
            s(&data),
            "--epochs",
            "2",
            "--batch-size",
            "6",
        ];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--out", s(&out)]);
        ok(&a);
        out.join("best.safetensors")
    };
    let a = train("lenet", &["--image-size", "16", "--lr", "0.02"]);
    let b = train(
        "mlp",
        &["--model", "mlp", "--image-size", "12", "--hidden", "16", "--lr", "0.05"],
    );
    for combine in ["mean-prob", "vote"] {
        let j: serde_json::Value =
            serde_json::from_str(&ok(&["eval", "-c", s(&a), "-c", s(&b), "--combine", combine, "--json"])).unwrap();
        let members = j["members"].as_array().unwrap();
        assert_eq!(
            (members.len(), j["samples"].as_u64(), j["combine"].as_str()),
            (2, Some(12), Some(combine)),
            "{j}"
        );
        assert!(
            j["accuracy"].as_f64().unwrap() >= 0.0 && members[1]["model"] == "mlp",
            "{j}"
        );
    }
    let text_out = ok(&["eval", "-c", s(&a), "-c", s(&b), "--tta", "ten-crop"]);
    assert!(
        text_out.contains("ensemble (mean-prob)") && text_out.contains("--tta ten-crop"),
        "{text_out}"
    );
    assert_eq!(text_out.lines().filter(|l| l.contains('%')).count(), 3, "{text_out}");
    let png = data.join("val").join("blue").join("1.png");
    let p = ok(&[
        "predict",
        "-c",
        s(&a),
        "-c",
        s(&b),
        s(&png),
        "--combine",
        "vote",
        "--tta",
        "flips",
        "-k",
        "1",
    ]);
    assert!(p.contains("/2 votes"), "{p}");
    // Another class list: refused, naming both lists.
    let two = tmp.0.join("two");
    for c in ["blue", "red"] {
        let from = data.join("train").join(c);
        std::fs::create_dir_all(two.join(c)).unwrap();
        for f in std::fs::read_dir(&from).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, two.join(c).join(f.file_name().unwrap())).unwrap();
        }
    }
    let out = tmp.0.join("two-run");
    ok(&[
        "train",
        "--dataset",
        "imagefolder",
        "--data-dir",
        s(&two),
        "--epochs",
        "1",
        "--out",
        s(&out),
    ]);
    let res = nabla(&["eval", "-c", s(&a), "-c", s(&out.join("best.safetensors"))]);
    let e = text(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{e}");
    assert!(
        e.contains("[blue, red]") && e.contains("[blue, green, red]") && e.lines().count() == 1,
        "{e}"
    );
}
