//! `nabla autoencode` end to end on small Fashion-MNIST-shaped data the tests write: the
//! loss falls, the pictures appear and decode as PNG, the closing scores are written,
//! resuming is bitwise, `encode` and `decode` work, and bad input gets one line.

mod common;

use common::*;
use nabla_nn::checkpoint::Checkpoint;
use std::path::Path;

/// The flags of a small run on `data` into `out`.
fn small_run(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "autoencode",
        "--data-dir",
        s(data),
        "--batch-size",
        "32",
        "--threads",
        "2",
        "--val-size",
        "32",
        "--out",
        s(out),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

#[test]
fn training_lowers_the_loss_draws_pictures_and_scores_the_latent_space() {
    let tmp = TempDir::new("ae");
    write_fake_fashion(&tmp.0, 352, 64);
    let out = tmp.0.join("run");
    let args = small_run(&tmp.0, &out, &["--latent", "4", "--epochs", "3", "--lr", "0.003"]);
    let log = ok(&strs(&args));
    assert!(log.contains("training conv_autoencoder (latent 4, loss mse"), "{log}");
    let (train, val) = (metric(&out, "train_loss"), metric(&out, "val_loss"));
    assert_eq!(train.len(), 3);
    assert!(
        train[2] < 0.95 * train[0] && val[2] < val[0],
        "train {train:?}, val {val:?}"
    );
    for f in ["reconstructions.png", "latent.png", "curves.png"] {
        let (w, h) = png_size(&out.join(f));
        assert!(w > 100 && h > 100, "{f}: {w}×{h}");
    }
    // Two groups of 8 test images above their reconstructions: 4 rows of 8 cells of 56 px.
    let (w, h) = png_size(&out.join("reconstructions.png"));
    assert!(w == 8 * 56 + 9 * 2 && h > 4 * 56 + 5 * 2, "{w}×{h}");
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("latent = 4") && config.contains("model = \"conv_autoencoder\""));
    // The closing scores: the test loss, and kNN on the bars of the fake classes.
    let test_loss = test_value(&out, "test_loss");
    assert!(test_loss > 0.0 && test_loss < train[0], "{test_loss}");
    assert!(
        log.contains("kNN (k = 5) test accuracy, 64 test against 320 training images"),
        "{log}"
    );
    for key in ["knn_latent_acc", "knn_pca_acc", "knn_pixels_acc"] {
        assert!(test_value(&out, key) > 0.5, "{key}: {log}");
    }

    // encode: one row per test image, four codes and the label.
    let best = out.join("best.safetensors");
    let csv = tmp.0.join("z.csv");
    ok(&["autoencode", "encode", "--checkpoint", s(&best), "-o", s(&csv)]);
    let t = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!((lines.len(), lines[0]), (65, "z1,z2,z3,z4,label"));
    assert!(lines[1..]
        .iter()
        .all(|l| l.split(',').count() == 5 && l.split(',').all(|v| v.parse::<f32>().is_ok())));
    // decode one point; the line between two test images as a strip of 5.
    let one = tmp.0.join("x.png");
    ok(&[
        "autoencode",
        "decode",
        "--checkpoint",
        s(&best),
        "--latent",
        "0.1,-2,0,1",
        "-o",
        s(&one),
    ]);
    assert_eq!(png_size(&one), (4 * 28 + 4, 4 * 28 + 4));
    let strip = tmp.0.join("strip.png");
    let ends = ["--interpolate", "0", "1", "--steps", "5", "-o", s(&strip)];
    ok(&[&["autoencode", "decode", "--checkpoint", s(&best)][..], &ends[..]].concat());
    assert_eq!(png_size(&strip).0, 5 * 56 + 6 * 2);

    // Bad input, each in one line, nothing written.
    let dec = ["autoencode", "decode", "--checkpoint", s(&best), "-o"];
    let x = s(&one);
    refused(
        &[&dec[..], &[x, "--latent", "0.1,-2.0"]].concat(),
        "the checkpoint's code has 4",
    );
    refused(&[&dec[..], &[x, "--latent", "0.1,a,0,0"]].concat(), "not a number");
    let missing = tmp.0.join("no/such/x.png");
    refused(
        &[&dec[..], &[s(&missing), "--latent", "0,0,0,0"]].concat(),
        "does not exist",
    );
    refused(
        &[&dec[..], &[x, "--interpolate", "0", "64"]].concat(),
        "no test image 64",
    );
    // A classifier's and a GAN's checkpoint, told apart by their task entry.
    let mut ck = Checkpoint::load(&best).unwrap();
    for (task, want) in [
        ("classification", "a nabla train checkpoint"),
        ("gan", "a nabla gan checkpoint"),
    ] {
        ck.extra.insert("task".into(), task.into());
        let other = tmp.0.join(format!("{task}.safetensors"));
        ck.save(&other).unwrap();
        refused(
            &[
                "autoencode",
                "decode",
                "--checkpoint",
                s(&other),
                "-o",
                x,
                "--latent",
                "0",
            ],
            want,
        );
        refused(&["autoencode", "--resume", s(&other)], want);
    }
    refused(
        &["autoencode", "encode", "--checkpoint", s(&csv), "-o", x],
        "not a nabla checkpoint",
    );
}

#[test]
fn bad_training_settings_get_one_line_and_leave_nothing() {
    let tmp = TempDir::new("ae-bad");
    write_fake_fashion(&tmp.0, 40, 10);
    let out = tmp.0.join("run");
    let cases: [(&[&str], &str); 6] = [
        (&["--loss", "l1"], "unknown loss \"l1\" (known: mse, bce)"),
        (&["--model", "lenet5"], "unknown model \"lenet5\""),
        (&["--latent", "0"], "--latent must be at least 1"),
        (&["--latent", "784"], "must be smaller than the image"),
        (&["--noise", "-0.5"], "--noise"),
        (&["--epochs", "0"], "--epochs"),
    ];
    for (flags, want) in cases {
        refused(&strs(&small_run(&tmp.0, &out, flags)), want);
        assert!(!out.exists(), "{flags:?} left a folder");
    }
    // An --out that is a file.
    let file = tmp.0.join("f");
    std::fs::write(&file, "x").unwrap();
    refused(&strs(&small_run(&tmp.0, &file, &[])), "not a directory");
    // nabla train points autoencoders here.
    for model in ["conv_autoencoder", "mlp_autoencoder"] {
        refused(
            &["train", "--model", model, "--data-dir", s(&tmp.0), "--out", s(&out)],
            "train it with nabla autoencode",
        );
    }
}

/// A denoising MLP autoencoder trained 3 epochs straight, and again stopped part-way
/// through epoch 2 and resumed: the same bits (the noise is drawn per step from the seed).
#[test]
fn resume_is_bitwise_identical() {
    let tmp = TempDir::new("ae-resume");
    write_fake_fashion(&tmp.0, 160 + 32, 32);
    let flags = [
        "--model",
        "mlp_autoencoder",
        "--loss",
        "bce",
        "--noise",
        "0.2",
        "--latent",
        "3",
        "--epochs",
        "3",
        "--seed",
        "5",
    ];
    let straight = tmp.0.join("straight");
    ok(&strs(&small_run(&tmp.0, &straight, &flags)));
    let split = tmp.0.join("split");
    let log = ok(&strs(&small_run(
        &tmp.0,
        &split,
        &[&flags[..], &["--stop-after-steps", "7"]].concat(),
    )));
    assert!(log.contains("stopped as asked"), "{log}");
    let last = split.join("last.safetensors");
    assert_eq!(Checkpoint::load(&last).unwrap().step, 7);
    let log = ok(&["autoencode", "--resume", s(&last)]);
    assert!(log.contains("resuming at epoch 2 step 7 (batch 2)"), "{log}");
    assert_eq!(bits(&straight.join("last.safetensors")), bits(&last));
    assert_eq!(metric(&straight, "train_loss"), metric(&split, "train_loss"));
    assert_eq!(metric(&straight, "val_loss"), metric(&split, "val_loss"));
    assert_eq!(test_value(&straight, "test_loss"), test_value(&split, "test_loss"));
    assert_eq!(
        test_value(&straight, "knn_latent_acc"),
        test_value(&split, "knn_latent_acc")
    );
}
