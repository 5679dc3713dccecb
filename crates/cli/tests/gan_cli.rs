//! `nabla gan` end to end on small synthetic data the tests write: training (losses finite
//! and moving, sample grids, FID), bitwise resume, WGAN-GP and minimax steps, `gan sample`,
//! `gan fid`, and bad input.

mod common;

use common::*;
use nabla_nn::checkpoint::Checkpoint;
use std::path::Path;

/// A LeNet-5 trained for one epoch on the fake data: the FID's feature space.
fn fid_model(tmp: &Path) -> std::path::PathBuf {
    let out = tmp.join("lenet");
    let d = s(tmp);
    ok(&[
        "train",
        "--model",
        "lenet5",
        "--data-dir",
        d,
        "--epochs",
        "1",
        "--val-size",
        "32",
        "--threads",
        "2",
        "--out",
        s(&out),
    ]);
    out.join("best.safetensors")
}

/// `nabla gan` on `tmp`'s fake data, 3 epochs of 4 batches of 32, 64 images scored per FID.
fn gan_args<'a>(tmp: &'a str, fid: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "gan",
        "--data-dir",
        tmp,
        "--limit",
        "128",
        "--batch-size",
        "32",
        "--epochs",
        "3",
        "--fid-samples",
        "64",
        "--fid-model",
        fid,
        "--threads",
        "2",
        "--seed",
        "3",
        "--out",
        out,
    ]
}

#[test]
fn gan_trains_draws_samples_and_resumes_bitwise() {
    let tmp = TempDir::new("gan");
    write_fake_fashion(&tmp.0, 160, 64);
    let fid = fid_model(&tmp.0);
    let straight = tmp.0.join("straight");
    let log = ok(&gan_args(s(&tmp.0), s(&fid), s(&straight)));
    assert!(log.contains("loss nonsaturating, K1 = 1, K2 = 1, latent 100"), "{log}");
    assert!(
        log.contains("done; FID") && log.contains("predicted classes of the generated images"),
        "{log}"
    );
    let d_loss = metric(&straight, "train_d_loss");
    let g_loss = metric(&straight, "train_g_loss");
    let fids = metric(&straight, "val_fid");
    assert_eq!((d_loss.len(), g_loss.len(), fids.len()), (3, 3, 3));
    for v in d_loss.iter().chain(&g_loss).chain(&fids) {
        assert!(v.is_finite() && *v > 0.0, "{d_loss:?} {g_loss:?} {fids:?}");
    }
    assert!(
        d_loss[0] != d_loss[2] && g_loss[0] != g_loss[2],
        "{d_loss:?} {g_loss:?}"
    );
    // D's mean probabilities lie in (0, 1).
    for v in metric(&straight, "train_d_x")
        .iter()
        .chain(&metric(&straight, "train_d_g_z"))
    {
        assert!(*v > 0.0 && *v < 1.0, "{v}");
    }
    for e in 1..=3 {
        let img = image::open(straight.join(format!("samples/epoch-{e:03}.png"))).unwrap();
        // An 8 × 8 grid of 56-pixel cells, with a title line above.
        assert!(
            img.width() >= 8 * 56 && img.height() >= 8 * 56,
            "{}x{}",
            img.width(),
            img.height()
        );
    }
    assert!(image::open(straight.join("curves.png")).unwrap().width() > 1000);
    assert!(std::fs::read_to_string(straight.join("config.toml"))
        .unwrap()
        .contains("loss = \"nonsaturating\""));
    // Both players and both optimizers are in the checkpoint.
    let ck = Checkpoint::load(straight.join("last.safetensors")).unwrap();
    assert!(ck.model.iter().any(|(n, _)| n.starts_with("generator.main.")));
    assert!(ck.model.iter().any(|(n, _)| n.starts_with("discriminator.main.")));
    for p in ["opt0.", "opt1."] {
        assert!(ck.optimizer.tensors.iter().any(|(n, _)| n.starts_with(p)), "{p}");
    }

    // Stopped half-way through epoch 2 (step 6 of 12) and resumed: the same bits.
    let split = tmp.0.join("split");
    let mut args = gan_args(s(&tmp.0), s(&fid), s(&split));
    args.extend(["--stop-after-steps", "6"]);
    let log = ok(&args);
    assert!(
        log.contains("stopped as asked; checkpoint saved; continue with: nabla gan --resume"),
        "{log}"
    );
    let last = split.join("last.safetensors");
    let log = ok(&["gan", "--resume", s(&last), "--threads", "2"]);
    assert!(log.contains("resuming at epoch 2 step 6 (batch 2)"), "{log}");
    assert_eq!(bits(&straight.join("last.safetensors")), bits(&last));
    for key in ["train_d_loss", "train_g_loss", "val_fid"] {
        assert_eq!(metric(&straight, key), metric(&split, key), "{key}");
    }
    let same = |f: &str| std::fs::read(straight.join(f)).unwrap() == std::fs::read(split.join(f)).unwrap();
    assert!(same("samples/epoch-003.png"));

    // gan sample: a grid, and a safetensors file that gan fid scores.
    let grid = tmp.0.join("grid.png");
    ok(&[
        "gan",
        "sample",
        "--checkpoint",
        s(&last),
        "-n",
        "16",
        "-o",
        s(&grid),
        "--seed",
        "5",
    ]);
    let img = image::open(&grid).unwrap();
    assert!(img.width() >= 8 * 56 && img.height() >= 2 * 56);
    let file = tmp.0.join("samples.safetensors");
    ok(&["gan", "sample", "--checkpoint", s(&last), "-n", "100", "-o", s(&file)]);
    let out = ok(&[
        "gan",
        "fid",
        "--samples",
        s(&file),
        "--fid-model",
        s(&fid),
        "--data-dir",
        s(&tmp.0),
    ]);
    assert!(
        out.starts_with("FID ") && out.contains("(100 generated vs 64 test images)"),
        "{out}"
    );
    let (tensors, _) = nabla_nn::safetensors_io::load_tensors(&file).unwrap();
    assert_eq!(tensors[0].1.shape(), &[100, 1, 28, 28]);
}

#[test]
fn wgan_gp_and_minimax_steps_run_with_finite_losses() {
    let tmp = TempDir::new("gan-losses");
    write_fake_fashion(&tmp.0, 64, 16);
    for (loss, k1) in [("wgan-gp", "5"), ("minimax", "1")] {
        let out = tmp.0.join(loss);
        // 64 images in batches of 8: 8 steps, so the critic's K1 = 5 leaves one G step.
        let log = ok(&[
            "gan",
            "--loss",
            loss,
            "--data-dir",
            s(&tmp.0),
            "--batch-size",
            "8",
            "--epochs",
            "1",
            "--fid-samples",
            "0",
            "--threads",
            "2",
            "--out",
            s(&out),
        ]);
        assert!(log.contains(&format!("loss {loss}, K1 = {k1}, K2 = 1")), "{log}");
        let (d, g) = (metric(&out, "train_d_loss")[0], metric(&out, "train_g_loss")[0]);
        assert!(d.is_finite() && g.is_finite() && g != 0.0, "{loss}: D {d} G {g}");
        assert!(out.join("samples/epoch-001.png").is_file());
    }
}

#[test]
fn gan_bad_input_is_one_line_without_panics() {
    let tmp = TempDir::new("gan-errors");
    write_fake_fashion(&tmp.0, 40, 10);
    let d = s(&tmp.0);
    let lenet = fid_model(&tmp.0);
    let file = tmp.0.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let blocked = format!("{}/sub", s(&file));
    let grid_blocked = format!("{}/grid.png", s(&file));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["gan", "--loss", "hinge", "--data-dir", d],
            "--loss \"hinge\": unknown loss",
        ),
        (vec!["gan", "--d-steps", "0", "--data-dir", d], "--d-steps 0"),
        (vec!["gan", "--g-steps", "0", "--data-dir", d], "--g-steps 0"),
        (vec!["gan", "--latent", "0", "--data-dir", d], "--latent 0"),
        (
            vec!["gan", "--betas", "0.5", "--data-dir", d],
            "--betas 0.5: give two values",
        ),
        (
            vec!["gan", "--betas", "0.5,1.5", "--data-dir", d],
            "each beta must be in [0, 1)",
        ),
        (vec!["gan", "--latent", "1000", "--data-dir", d], "784"),
        (
            vec!["gan", "--data-dir", d, "--fid-samples", "0", "--out", &blocked],
            "cannot create output directory",
        ),
        (vec!["gan", "--resume", s(&lenet)], "not a GAN checkpoint"),
        (vec!["gan", "--data-dir", d, "--fid-model", s(&file)], "--fid-model"),
        (
            vec!["gan", "sample", "--checkpoint", s(&lenet), "-o", "x.png"],
            "a lenet5 checkpoint; gan sample needs one written by nabla gan",
        ),
        (
            vec!["gan", "sample", "--checkpoint", "/no/such.safetensors", "-o", "x.png"],
            "no such checkpoint",
        ),
        (vec!["gan", "fid", "--samples", "/no/such.safetensors"], "no such file"),
        (vec!["gan", "fid", "--samples", s(&lenet)], "no tensor named \"images\""),
    ];
    for (args, want) in cases {
        let out = nabla(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line:\n{err}");
        assert!(err.starts_with("error: ") && err.contains(want), "{args:?}: {err}");
    }
    // An unwritable sample output: one line, and no file left behind.
    let out = tmp.0.join("run");
    ok(&[
        "gan",
        "--data-dir",
        d,
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--fid-samples",
        "0",
        "--out",
        s(&out),
    ]);
    let res = nabla(&[
        "gan",
        "sample",
        "--checkpoint",
        s(&out.join("last.safetensors")),
        "-o",
        &grid_blocked,
    ]);
    let err = text(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: ") && err.lines().count() == 1, "{err}");
    assert!(std::fs::read_to_string(&file).unwrap() == "x");
}
