//! End-to-end tests of what `nabla train` offers around the loop: run folders, refused
//! models, training knobs, TensorBoard logs, completions, summaries of every zoo model.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Runs without --out go to runs/<model>-<data>/version_N and keep each other; --out takes
/// an empty folder only (or --overwrite); a failed start leaves no folder; --val-size 0
/// keeps no best and scores the last weights on the test split.
#[test]
fn runs_get_their_own_folders() {
    let tmp = TempDir::new("versions");
    write_fake_fashion(&tmp.0, 120, 20);
    let d = s(&tmp.0);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nabla"))
            .args(args)
            .current_dir(&tmp.0)
            .env_remove("NABLA_DATA")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let base = [
        "train",
        "--model",
        "mlp",
        "--hidden",
        "8",
        "--epochs",
        "1",
        "--data-dir",
        d,
    ];
    // A typo stops the run before any folder exists.
    let bad = run(&[&base[..], &["--optimizer", "nosuch"]].concat());
    assert_eq!(bad.status.code(), Some(1));
    assert!(!tmp.0.join("runs").exists(), "a failed start left a folder");
    for _ in 0..2 {
        assert!(run(&base).status.success());
    }
    let runs = tmp.0.join("runs/mlp-fashion-mnist");
    for v in ["version_0", "version_1"] {
        assert!(runs.join(v).join("best.safetensors").is_file(), "{v}");
        assert_eq!(metric(&runs.join(v), "epoch"), vec![1.0], "{v}");
    }
    // --out: an existing non-empty folder is refused, unless --overwrite.
    let out = runs.join("version_0");
    let before = std::fs::read(out.join("last.safetensors")).unwrap();
    let refused = run(&[&base[..], &["--out", s(&out), "--seed", "3"]].concat());
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("not empty"), "{}", text(&refused.stderr));
    assert_eq!(std::fs::read(out.join("last.safetensors")).unwrap(), before);
    let no_val = [&base[..], &["--out", s(&out), "--overwrite", "--val-size", "0"]].concat();
    let again = run(&no_val);
    let log = text(&again.stdout);
    assert!(again.status.success(), "{log}{}", text(&again.stderr));
    assert!(
        !out.join("best.safetensors").exists(),
        "no validation, yet a best checkpoint"
    );
    let done = log.lines().last().unwrap();
    assert!(
        done.contains("no best checkpoint") && done.contains("test accuracy"),
        "{done}"
    );
    assert!(done.contains("(last.safetensors)"), "{done}");
    // Resuming continues in the checkpoint's folder; --init-from starts a new one afresh.
    let last = runs.join("version_1/last.safetensors");
    assert!(run(&["train", "--resume", s(&last), "--epochs", "2"]).status.success());
    assert_eq!(metric(&runs.join("version_1"), "epoch"), vec![1.0, 2.0]);
    let tuned = run(&[&base[..], &["--init-from", s(&last)]].concat());
    assert!(tuned.status.success(), "{}", text(&tuned.stderr));
    assert!(runs.join("version_2/best.safetensors").is_file());
}

/// --early-stop (kept in config.toml and on resume), --clip-grad-norm and --label-smoothing
/// each change what training does.
#[test]
fn early_stopping_clipping_and_label_smoothing() {
    let tmp = TempDir::new("knobs");
    write_fake_fashion(&tmp.0, 400, 50);
    let d = s(&tmp.0);
    let base = [
        "train",
        "--model",
        "mlp",
        "--hidden",
        "16",
        "--data-dir",
        d,
        "--batch-size",
        "32",
        "--epochs",
        "5",
    ];
    let stop = tmp.0.join("stop");
    // No accuracy can improve by more than 1: the run stops after its patience of 1 epoch.
    let log = ok(&[&base[..], &["--early-stop", "1", "--min-delta", "1", "--out", s(&stop)]].concat());
    assert!(log.contains("early stop: val_acc has not improved"), "{log}");
    assert_eq!(metric(&stop, "epoch"), vec![1.0, 2.0]);
    let config = std::fs::read_to_string(stop.join("config.toml")).unwrap();
    assert!(
        config.contains("early_stop = 1\n") && config.contains("min_delta = 1.0\n"),
        "{config}"
    );
    let log = ok(&["train", "--resume", s(&stop.join("last.safetensors"))]);
    assert!(log.contains("early stop"), "{log}");
    assert_eq!(metric(&stop, "epoch"), vec![1.0, 2.0, 3.0]);

    // Gradients clipped to almost nothing leave the weights (and so the loss) where they were.
    let (clip, free) = (tmp.0.join("clip"), tmp.0.join("free"));
    let no_decay = ["--weight-decay", "0", "--scheduler", "none"];
    ok(&[&base[..], &no_decay, &["--clip-grad-norm", "1e-9", "--out", s(&clip)]].concat());
    ok(&[&base[..], &no_decay, &["--out", s(&free)]].concat());
    let (c, f) = (metric(&clip, "val_loss"), metric(&free, "val_loss"));
    let still = c.iter().all(|v| (v - c[0]).abs() < 1e-4);
    assert!(still && c[0] > 2.0 && f[0] < 1.0, "clipped {c:?}, free {f:?}");

    // Schedule parameters: halving every 2 epochs, as a step and as milestones.
    for (name, sched) in [
        ("step", ["--scheduler", "step", "--step-size", "2"]),
        ("multistep", ["--scheduler", "multistep", "--milestones", "2,4"]),
    ] {
        let out = tmp.0.join(name);
        ok(&[&base[..], &sched, &["--gamma", "0.5", "--lr", "0.04", "--out", s(&out)]].concat());
        assert_eq!(metric(&out, "lr"), vec![0.04, 0.04, 0.02, 0.02, 0.01], "{name}");
    }

    // Warm-up scales the first epochs' rates, also across a stop and resume mid-warm-up.
    let (warm, split) = (tmp.0.join("warm"), tmp.0.join("warm-split"));
    let w = [
        "--scheduler",
        "none",
        "--lr",
        "0.03",
        "--warmup-epochs",
        "2",
        "--seed",
        "5",
    ];
    ok(&[&base[..], &w, &["--out", s(&warm)]].concat());
    let lr = metric(&warm, "lr");
    let want = [0.01, 0.02, 0.03, 0.03, 0.03];
    assert!(lr.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12), "{lr:?}");
    // 367 training images (33 of 400 held out), batch 32: 12 steps an epoch; stop in the second.
    ok(&[&base[..], &w, &["--out", s(&split), "--stop-after-steps", "15"]].concat());
    ok(&["train", "--resume", s(&split.join("last.safetensors"))]);
    assert_eq!(metric(&split, "lr"), lr);
    assert_eq!(metric(&split, "train_loss"), metric(&warm, "train_loss"));

    // Smoothed targets keep the training loss above their entropy (1.68 for 0.5 over 10
    // classes) while the plain validation loss goes below it.
    let smooth = tmp.0.join("smooth");
    ok(&[&base[..], &["--label-smoothing", "0.5", "--out", s(&smooth)]].concat());
    let (t, v) = (metric(&smooth, "train_loss"), metric(&smooth, "val_loss"));
    assert!(t[4] > 1.6 && v[4] < 1.2, "train {t:?}, val {v:?}");
}

/// Models of other tasks are refused before anything is loaded or written, each in one line
/// that says what it is and what trains it; a table trains an MLP only.
#[test]
fn train_refuses_models_of_other_tasks() {
    let tmp = TempDir::new("tasks");
    write_fake_fashion(&tmp.0, 20, 10);
    let out = tmp.0.join("run");
    let cases = [
        ("conv_autoencoder", "an autoencoder", "train it with nabla autoencode"),
        ("mlp_autoencoder", "an autoencoder", "train it with nabla autoencode"),
        ("generator", "GAN's generator", "train it with nabla gan"),
        ("discriminator", "GAN's discriminator", "train it with nabla gan"),
        (
            "segnet",
            "segmentation",
            "train it with nabla train --task segment --model segnet",
        ),
        (
            "fcn_small",
            "segmentation",
            "train it with nabla train --task segment --model fcn_small",
        ),
        ("classloc", "bounding-box", "train it with nabla train --task localize"),
    ];
    for (model, what, trains) in cases {
        let res = nabla(&["train", "--model", model, "--data-dir", s(&tmp.0), "--out", s(&out)]);
        let err = text(&res.stderr);
        assert_eq!(res.status.code(), Some(1), "{model}: {err}");
        assert_eq!(err.lines().count(), 1, "{model}: {err}");
        assert!(err.contains(what) && err.contains(trains), "{model}: {err}");
        assert!(!out.exists(), "{model}: a refused run left a folder");
    }
    let csv = tmp.0.join("t.csv");
    std::fs::write(&csv, "a,y\n1,2\n2,4\n3,6\n4,8\n").unwrap();
    let res = nabla(&["train", "--data", s(&csv), "--target", "y", "--model", "lenet5"]);
    assert!(
        text(&res.stderr).contains("trains with --model mlp"),
        "{}",
        text(&res.stderr)
    );
}

/// Every zoo model summarizes with its natural input (the generator: a latent vector).
#[test]
fn summary_takes_every_zoo_model() {
    for m in nabla_models::names() {
        let table = ok(&["summary", "--model", m]);
        assert!(table.contains("total parameters"), "{m}:\n{table}");
    }
    let g = ok(&["summary", "--model", "generator", "--hidden", "64"]);
    assert!(g.contains("z=64 for input 64") && g.contains("output 28×28×1"), "{g}");
}

/// --tensorboard writes an event file that TensorBoard's own reader reads back (when a
/// Python with the tensorboard package is there: $NABLA_TEST_PYTHON, else python3).
#[test]
fn tensorboard_event_files_read_back() {
    let tmp = TempDir::new("tensorboard");
    write_fake_fashion(&tmp.0, 120, 20);
    let out = tmp.0.join("run");
    ok(&[
        "train",
        "--model",
        "mlp",
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--data-dir",
        s(&tmp.0),
        "--tensorboard",
        "--out",
        s(&out),
    ]);
    let events: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let bytes = std::fs::read(&events[0]).unwrap();
    assert!(bytes.windows(7).any(|w| w == b"val/acc") && bytes.windows(13).any(|w| w == b"brain.Event:2"));
    let python = std::env::var("NABLA_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = [
        "import sys",
        "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator",
        "ea = EventAccumulator(sys.argv[1]); ea.Reload()",
        "for tag in sorted(ea.Tags()['scalars']):",
        "    print(tag, ' '.join('%d:%.6f' % (e.step, e.value) for e in ea.Scalars(tag)))",
    ]
    .join("\n");
    let has = Command::new(&python)
        .args(["-c", "import tensorboard"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        eprintln!("skipped reading back with TensorBoard: {python} has no tensorboard package");
        return;
    }
    let res = Command::new(&python).args(["-c", &script, s(&out)]).output().unwrap();
    let read = text(&res.stdout);
    assert!(res.status.success(), "{read}{}", text(&res.stderr));
    let acc = metric(&out, "val_acc");
    let line = read
        .lines()
        .find(|l| l.starts_with("val/acc "))
        .unwrap_or_else(|| panic!("{read}"));
    assert_eq!(
        line,
        format!("val/acc 1:{:.6} 2:{:.6}", acc[0] as f32, acc[1] as f32),
        "{read}"
    );
    for tag in ["lr ", "train/loss ", "val/loss "] {
        assert!(read.lines().any(|l| l.starts_with(tag)), "{tag}: {read}");
    }
}

/// Completion scripts name the subcommands, the flags and the names flags accept.
#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&["completions", shell]);
        for want in ["train", "early-stop", "val-size", "resnet18"] {
            assert!(script.contains(want), "{shell}: {want} missing");
        }
    }
    let bash = ok(&["completions", "bash"]);
    assert!(bash.contains("complete -F") && bash.contains("nabla"), "{bash}");
    let bad = nabla(&["completions", "tcsh"]);
    assert!(
        text(&bad.stderr).contains("invalid value 'tcsh'"),
        "{}",
        text(&bad.stderr)
    );
}
