//! End-to-end tests of `nabla train`, `eval`, `predict`, `summary` and `graph` on small
//! synthetic data the tests write (IDX files in a temporary directory, a CSV table).

mod common;

use common::*;
use nabla_nn::checkpoint::Checkpoint;
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn train_writes_the_run_folder_and_learns() {
    let tmp = TempDir::new("basic");
    let data = tmp.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_fake_fashion(&data, 600, 200);
    let out = tmp.0.join("run");
    let log = ok(&[
        "train",
        "--model",
        "mlp",
        "--hidden",
        "32",
        "--data-dir",
        s(&data),
        "--epochs",
        "3",
        "--lr",
        "0.05",
        "--batch-size",
        "32",
        "--out",
        s(&out),
        "--limit",
        "500",
    ]);
    // One twelfth of the 600 training images held out (as 5,000 of Fashion-MNIST's 60,000).
    assert!(log.contains("(500 training, 50 validation, 200 test samples"), "{log}");
    let done = log.lines().last().unwrap();
    assert!(
        done.contains("best validation accuracy")
            && done.contains("test accuracy")
            && done.contains("(best.safetensors)"),
        "{done}"
    );
    let jsonl = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let test_line: serde_json::Value = serde_json::from_str(jsonl.lines().last().unwrap()).unwrap();
    assert_eq!(test_line["split"], "test", "{jsonl}");
    assert_eq!(test_line["checkpoint"], "best.safetensors", "{jsonl}");
    assert!(test_line["test_acc"].as_f64().unwrap() > 0.9, "{jsonl}");
    assert_eq!(log.lines().filter(|l| l.starts_with("epoch ")).count(), 3, "{log}");
    for f in [
        "metrics.jsonl",
        "curves.png",
        "confusion.png",
        "last.safetensors",
        "best.safetensors",
        "config.toml",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let loss = metric(&out, "train_loss");
    assert!(loss[2] < 0.5 * loss[0], "the training loss did not fall: {loss:?}");
    assert!(metric(&out, "val_acc")[2] > 0.9, "{:?}", metric(&out, "val_acc"));
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        config.contains("model = \"mlp\"") && config.contains("limit = 500"),
        "{config}"
    );
    // The PNGs decode as images of a sensible size.
    let img = image::open(out.join("curves.png")).unwrap();
    assert!(img.width() >= 800 && img.height() >= 300);

    let best = out.join("best.safetensors");
    let report = ok(&["eval", "--checkpoint", s(&best), "--data-dir", s(&data)]);
    assert!(
        report.contains("accuracy ") && report.contains("precision") && report.contains("Ankle boot"),
        "{report}"
    );
    assert!(report.contains("(200 samples)"), "{report}");

    // A test image of class 3: its bar at rows 10..12.
    let mut px = image::GrayImage::new(56, 56);
    for (_, y, p) in px.enumerate_pixels_mut() {
        p.0[0] = if (20..24).contains(&y) { 230 } else { 10 };
    }
    let png = tmp.0.join("bar.png");
    px.save(&png).unwrap();
    let pred = ok(&["predict", "--checkpoint", s(&best), s(&png), "-k", "2"]);
    assert!(pred.starts_with(&format!("{}: Dress ", png.display())), "{pred}");
    assert_eq!(pred.matches('%').count(), 2, "{pred}");
    // The same bar dark on light, in colour: converted, inverted (told by its light border)
    // and resized, each said; --json gives the same answer as data.
    let mut rgb = image::RgbImage::new(56, 56);
    for (_, y, p) in rgb.enumerate_pixels_mut() {
        let v = if (20..24).contains(&y) { 20 } else { 240 };
        p.0 = [v, v, v];
    }
    let photo = tmp.0.join("photo.png");
    rgb.save(&photo).unwrap();
    let res = nabla(&["predict", "-c", s(&best), s(&photo)]);
    let (out, err) = (text(&res.stdout), text(&res.stderr));
    assert!(out.contains(": Dress "), "{out}");
    for want in [
        "converted colour to gray",
        "inverted (light border",
        "resized 56×56 to 28×28",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    let j: serde_json::Value = serde_json::from_str(&ok(&["predict", "-c", s(&best), s(&photo), "--json"])).unwrap();
    assert_eq!(j["top"][0]["class"], "Dress", "{j}");
    assert_eq!(j["notes"].as_array().unwrap().len(), 3, "{j}");
    let never = ok(&["predict", "-c", s(&best), s(&photo), "--invert", "never", "--json"]);
    assert!(!never.contains("inverted"), "{never}");
    let e: serde_json::Value =
        serde_json::from_str(&ok(&["eval", "-c", s(&best), "--data-dir", s(&data), "--json"])).unwrap();
    assert_eq!(
        (e["samples"].as_u64(), e["confusion"].as_array().map(Vec::len)),
        (Some(200), Some(10)),
        "{e}"
    );
    assert!(
        e["accuracy"].as_f64().unwrap() > 0.9 && e["per_class"][9]["class"] == "Ankle boot",
        "{e}"
    );
}

#[test]
fn resume_is_bitwise_identical() {
    resume_matches_a_straight_run("lenet5", 320);
}

/// Dropout's masks continue from the checkpoint's generator states (GoogLeNet has dropout
/// in its head and in both auxiliary classifiers).
#[test]
fn resume_is_bitwise_identical_with_dropout() {
    resume_matches_a_straight_run("googlenet", 64);
}

/// Train `model` on `train` images (batch 32) 4 epochs straight, and again stopped half-way
/// through epoch 2 and resumed: the same bits.
fn resume_matches_a_straight_run(model: &str, train: usize) {
    let tmp = TempDir::new(&format!("resume-{model}"));
    // 32 more images than trained on: the validation split.
    write_fake_fashion(&tmp.0, train + 32, 32);
    let (steps, half) = (train / 32, train / 64);
    let common = |out: &Path| -> Vec<String> {
        [
            "train",
            "--model",
            model,
            "--data-dir",
            s(&tmp.0),
            "--epochs",
            "4",
            "--batch-size",
            "32",
            "--lr",
            "0.02",
            "--augment",
            "--threads",
            "2",
            "--seed",
            "7",
            "--val-size",
            "32",
            "--out",
            s(out),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let straight = tmp.0.join("straight");
    let args = common(&straight);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // The same run stopped part-way through epoch 2, then resumed.
    let split = tmp.0.join("split");
    let mut args = common(&split);
    args.extend(["--stop-after-steps".to_string(), (steps + half).to_string()]);
    let log = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(log.contains("stopped as asked"), "{log}");
    let last = split.join("last.safetensors");
    let ck = Checkpoint::load(&last).unwrap();
    let at = (ck.epoch, ck.step, ck.extra["batch"].clone());
    assert_eq!(at, (1, (steps + half) as u64, half.to_string()));
    let log = ok(&["train", "--resume", s(&last)]);
    let resuming = format!("resuming at epoch 2 step {} (batch {half})", steps + half);
    assert!(log.contains(&resuming), "{log}");
    assert_eq!(bits(&straight.join("last.safetensors")), bits(&last));
    assert_eq!(metric(&straight, "train_loss"), metric(&split, "train_loss"));
    assert_eq!(metric(&straight, "val_acc"), metric(&split, "val_acc"));
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_exits() {
    let tmp = TempDir::new("sigint");
    write_fake_fashion(&tmp.0, 2000, 64);
    let out = tmp.0.join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_nabla"))
        .args([
            "train",
            "--model",
            "mlp",
            "--data-dir",
            s(&tmp.0),
            "--epochs",
            "1000",
            "--batch-size",
            "8",
            // All 2000 images train: 250 steps an epoch.
            "--val-size",
            "0",
        ])
        .args(["--out", s(&out)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first epoch to finish, so the run is well under way.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !out.join("metrics.jsonl").is_file() {
        assert!(std::time::Instant::now() < deadline, "no epoch finished");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let res = child.wait_with_output().unwrap();
    assert_eq!(res.status.code(), Some(130), "{}", text(&res.stderr));
    assert!(text(&res.stdout).contains("interrupted; checkpoint saved; continue with: nabla train --resume"));
    assert!(!text(&res.stderr).contains("panicked"));
    let ck = Checkpoint::load(out.join("last.safetensors")).unwrap();
    assert!(ck.step >= 250, "step {}", ck.step);
}

#[test]
fn a_diverging_loss_stops_and_keeps_the_last_good_checkpoint() {
    let tmp = TempDir::new("nan");
    write_fake_fashion(&tmp.0, 200, 50);
    let out = tmp.0.join("run");
    ok(&[
        "train",
        "--model",
        "mlp",
        "--data-dir",
        s(&tmp.0),
        "--epochs",
        "1",
        "--out",
        s(&out),
    ]);
    let last = out.join("last.safetensors");
    let before = std::fs::read(&last).unwrap();
    let res = nabla(&["train", "--resume", s(&last), "--epochs", "3", "--lr", "1e30"]);
    assert_eq!(res.status.code(), Some(1));
    let err = text(&res.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: training stopped: the loss became "), "{err}");
    assert!(
        err.contains("at epoch 2") && err.contains("the last good checkpoint is"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&last).unwrap(),
        before,
        "the last good checkpoint was overwritten"
    );
}

#[test]
fn regression_on_a_csv_reports_rmse_and_r2() {
    let tmp = TempDir::new("csv");
    let mut csv = String::from("a,b,noise,y\n");
    for i in 0..300 {
        let (a, b) = ((i % 17) as f64 / 4.0, (i % 11) as f64 - 5.0);
        csv.push_str(&format!(
            "{a},{b},{},{}\n",
            (i * 37 % 13) as f64,
            3.0 * a - 2.0 * b + 10.0
        ));
    }
    let path = tmp.0.join("table.csv");
    std::fs::write(&path, csv).unwrap();
    let out = tmp.0.join("run");
    let log = ok(&[
        "train",
        "--task",
        "regression",
        "--data",
        s(&path),
        "--target",
        "y",
        "--epochs",
        "40",
        "--hidden",
        "16",
        "--lr",
        "0.01",
        "--batch-size",
        "16",
        "--out",
        s(&out),
    ]);
    assert!(
        log.contains("training mlp") && log.contains("(240 training, 60 validation samples"),
        "{log}"
    );
    let r2 = metric(&out, "val_r2");
    assert!(*r2.last().unwrap() > 0.95, "{r2:?}");
    let rmse = metric(&out, "val_rmse");
    assert!(rmse.last().unwrap() < &(0.3 * rmse[0]), "{rmse:?}");
    let report = ok(&["eval", "--checkpoint", s(&out.join("best.safetensors"))]);
    assert!(report.contains("rmse ") && report.contains("r2 0.9"), "{report}");

    // Predict rows of a new CSV: its columns in another order, without the target.
    let mut rows = String::from("noise,b,a\n");
    let points = [(1.0, -2.0), (3.0, 4.0), (2.5, 0.0)];
    for (a, b) in points {
        rows.push_str(&format!("5,{b},{a}\n"));
    }
    let new = tmp.0.join("new.csv");
    std::fs::write(&new, rows).unwrap();
    let best = out.join("best.safetensors");
    let pred = ok(&["predict", "-c", s(&best), s(&new)]);
    let mut lines = pred.lines();
    assert_eq!(lines.next(), Some("predicted_y"), "{pred}");
    for ((a, b), line) in points.iter().zip(lines) {
        let y: f64 = line.parse().unwrap();
        assert!((y - (3.0 * a - 2.0 * b + 10.0)).abs() < 2.0, "{a},{b}: {y}\n{pred}");
    }
    // With the target column there, it is copied beside the prediction; -o writes a file.
    let written = tmp.0.join("pred.csv");
    let said = ok(&["predict", "-c", s(&best), s(&path), "-o", s(&written)]);
    assert!(said.starts_with("wrote 300 predictions"), "{said}");
    let back = std::fs::read_to_string(&written).unwrap();
    assert!(
        back.starts_with("y,predicted_y\n") && back.lines().count() == 301,
        "{back}"
    );
    std::fs::write(&new, "a,noise\n1,2\n").unwrap();
    let err = text(&nabla(&["predict", "-c", s(&best), s(&new)]).stderr);
    assert!(
        err.contains("no column \"b\" (the model was trained on a, b, noise)"),
        "{err}"
    );
}

#[test]
fn config_file_then_flags() {
    let tmp = TempDir::new("config");
    write_fake_fashion(&tmp.0, 100, 20);
    let cfg = tmp.0.join("run.toml");
    std::fs::write(
        &cfg,
        "model = \"mlp\"\nepochs = 1\nhidden = [8]\nscheduler = \"step\"\n",
    )
    .unwrap();
    let out = tmp.0.join("run");
    ok(&[
        "train",
        "--config",
        s(&cfg),
        "--epochs",
        "2",
        "--data-dir",
        s(&tmp.0),
        "--out",
        s(&out),
    ]);
    assert_eq!(metric(&out, "epoch"), vec![1.0, 2.0]);
    let written = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        written.contains("epochs = 2\n") && written.contains("hidden = [8]\n"),
        "{written}"
    );
    assert!(written.contains("scheduler = \"step\"\n"), "{written}");
}

#[test]
fn summary_and_graph() {
    let table = ok(&["summary", "--model", "lenet5"]);
    for want in [
        "features.0",
        "28×28×6",
        "14×14×6",
        "10×10×16",
        "5×5×16",
        "classifier.4",
        "61,706",
    ] {
        assert!(table.contains(want), "{want} missing:\n{table}");
    }
    // The lecture's AlexNet table: CONV1 55×55×96, POOL1 27×27×96, CONV2 27×27×256, ...
    let table = ok(&[
        "summary",
        "--model",
        "alexnet",
        "--input",
        "3x227x227",
        "--classes",
        "1000",
    ]);
    for want in [
        "55×55×96",
        "27×27×96",
        "27×27×256",
        "13×13×256",
        "13×13×384",
        "6×6×256",
        "4096",
        "62,378,344",
    ] {
        assert!(table.contains(want), "{want} missing:\n{table}");
    }
    let tmp = TempDir::new("graph");
    let dot = tmp.0.join("g.dot");
    ok(&["graph", "--model", "mlp", "--hidden", "8", "-o", s(&dot)]);
    let g = std::fs::read_to_string(&dot).unwrap();
    assert!(
        g.starts_with("digraph") && g.contains("layers.0.weight") && g.contains("layers.2.bias"),
        "{g}"
    );
}

#[test]
fn user_errors_are_one_line_without_panics() {
    let tmp = TempDir::new("errors");
    write_fake_fashion(&tmp.0, 20, 10);
    let file = tmp.0.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let d = s(&tmp.0);
    let blocked = format!("{}/sub", s(&file));
    let empty = tmp.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let empty = s(&empty).to_string();
    let png = tmp.0.join("shoe.png");
    image::GrayImage::new(4, 4).save(&png).unwrap();
    let png = s(&png).to_string();
    // A safetensors file of one tensor and no nabla metadata.
    let header = br#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&1f32.to_le_bytes());
    let foreign = tmp.0.join("other.safetensors");
    std::fs::write(&foreign, bytes).unwrap();
    let foreign = s(&foreign).to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["train", "--model", "nosuch", "--data-dir", d],
            "invalid value 'nosuch' for '--model <NAME>'",
        ),
        (
            vec!["train", "--dataset", "nosuch", "--data-dir", d],
            "invalid value 'nosuch' for '--dataset <NAME>'",
        ),
        (vec!["train", "--data-dir", "/no/such/dir"], "no such directory"),
        // A folder without the data set is an error naming what was looked for, not a
        // silent fallback to another copy.
        (
            vec!["train", "--data-dir", &empty],
            "fashion-mnist is not there (looked in",
        ),
        (
            vec!["train", "--data-dir", &empty],
            "t10k-labels-idx1-ubyte, each raw or .gz",
        ),
        (
            vec!["train", "--threads", "100000", "--data-dir", d],
            "--threads 100000: this machine has",
        ),
        (
            vec!["train", "--workers", "100000", "--data-dir", d],
            "--workers 100000: at most",
        ),
        (vec!["train", "--lr", "fast"], "invalid value 'fast'"),
        (
            vec!["train", "--lr", "-1", "--data-dir", d],
            "--lr must be a positive number, got -1",
        ),
        (
            vec!["train", "--epochs", "0", "--data-dir", d],
            "--epochs must be at least 1",
        ),
        (
            vec!["train", "--optimizer", "lbfgs", "--data-dir", d],
            "invalid value 'lbfgs' for '--optimizer <NAME>' [possible values: sgd, adam, adamw, rmsprop]",
        ),
        (
            vec!["train", "--resume", "/no/such.safetensors"],
            "no such checkpoint file",
        ),
        (
            vec!["train", "--model", "mlp", "--data-dir", d, "--out", &blocked],
            "cannot create output directory",
        ),
        (vec!["train", "--config", "/no/such.toml"], "cannot read config"),
        (
            vec![
                "train",
                "--task",
                "regression",
                "--data",
                "/no/such.csv",
                "--target",
                "y",
            ],
            "no such file",
        ),
        (
            vec!["eval", "--checkpoint", "/no/such.safetensors"],
            "no such checkpoint file",
        ),
        (vec!["eval", "--checkpoint", s(&file)], "a-file"),
        (
            vec!["eval", "-c", &png],
            "shoe.png: not a nabla checkpoint (safetensors) file",
        ),
        (
            vec!["eval", "-c", &foreign],
            "other.safetensors: a safetensors file, but not a nabla checkpoint",
        ),
        (vec!["train", "--init-from", &png, "--data-dir", d], "--init-from"),
        (
            vec!["predict", "--checkpoint", "/no/such.safetensors", "x.png"],
            "no such checkpoint file",
        ),
        (
            vec!["summary", "--model", "nosuch"],
            "invalid value 'nosuch' for '--model <NAME>'",
        ),
        // Clap's own messages: what is missing, and what was probably meant.
        (
            vec!["eval"],
            "the following required arguments were not provided: --checkpoint <FILE>",
        ),
        (
            vec!["trian"],
            "unrecognized subcommand 'trian' tip: a similar subcommand exists: 'train'",
        ),
        (vec!["train", "--epoch", "3"], "a similar argument exists: '--epochs'"),
        (vec!["train", "--model", "lenet"], "a similar value exists: 'lenet5'"),
        (vec!["train", "--optimizer", "adm"], "a similar value exists: 'adam'"),
        (vec!["summary", "--model", "lenet5", "--input", "3x0x4"], "--input"),
        (vec!["graph", "--model", "mlp"], "required arguments were not provided"),
    ];
    for (args, want) in cases {
        let out = nabla(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        // One line, and for a mistake in the arguments clap's usage line after it.
        let lines: Vec<&str> = err.lines().collect();
        let usage = lines.get(1).is_some_and(|l| l.starts_with("Usage: nabla"));
        assert!(
            lines.len() == 1 || (lines.len() == 2 && usage),
            "{args:?}: not one line:\n{err}"
        );
        assert!(err.starts_with("error: ") && err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    for cmd in ["train", "eval", "predict", "summary", "graph"] {
        let out = nabla(&[cmd, "--help"]);
        assert!(
            out.status.success() && text(&out.stdout).contains("Usage: nabla"),
            "{cmd} --help"
        );
    }
}
