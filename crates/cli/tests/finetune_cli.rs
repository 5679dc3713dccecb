//! End-to-end tests of `nabla finetune` and `nabla features`: loading with a replaced head,
//! what each strategy trains and freezes, probing on cached features, and bad input.

mod common;

use common::*;
use nabla_core::Tensor;
use nabla_nn::checkpoint::Checkpoint;
use nabla_nn::Module;
use std::collections::BTreeMap;
use std::path::Path;

/// A checkpoint's model tensors by name, as raw bits.
fn model_bits(path: &Path) -> BTreeMap<String, Vec<u64>> {
    let ck = Checkpoint::load(path).unwrap();
    ck.model
        .iter()
        .map(|(n, t)| (n.clone(), t.to_vec_f64().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

const SMALL: [&str; 6] = ["--epochs", "1", "--val-size", "20", "--batch-size", "16"];

/// A LeNet-5 trained for one epoch on fake Fashion-MNIST in `dir`, its best checkpoint.
fn source(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("source");
    ok(&[&["train", "--data-dir", s(dir), "-o", s(&out)], &SMALL[..]].concat());
    out.join("best.safetensors")
}

fn finetune(dir: &Path, from: &Path, out: &str, extra: &[&str]) -> (std::path::PathBuf, String) {
    let o = dir.join(out);
    let text = ok(&[
        &["finetune", "--from", s(from), "--data-dir", s(dir), "-o", s(&o)],
        &SMALL[..],
        extra,
    ]
    .concat());
    (o.join("last.safetensors"), text)
}

/// Probe trains the new head only, top the classifier too, full everything: what is frozen
/// stays bit for bit the source's over the training steps, what trains moves.
#[test]
fn frozen_layers_stay_bit_identical_while_trained_ones_change() {
    let tmp = TempDir::new("ft-freeze");
    write_fake_fashion(&tmp.0, 120, 20);
    let src = source(&tmp.0);
    let before = model_bits(&src);
    for (strategy, trained) in [
        ("probe", &["classifier.4"][..]),
        ("top", &["classifier.0", "classifier.2", "classifier.4"][..]),
        (
            "full",
            &[
                "features.0",
                "features.3",
                "classifier.0",
                "classifier.2",
                "classifier.4",
            ][..],
        ),
    ] {
        let (last, text) = finetune(&tmp.0, &src, strategy, &["--strategy", strategy, "--scheduler", "none"]);
        assert!(
            text.contains("replaced (fresh, seeded): classifier.4.weight [10, 84]→[10, 84]"),
            "{text}"
        );
        let after = model_bits(&last);
        assert_eq!(after.len(), before.len());
        for (name, bits) in &before {
            let moved = after[name] != *bits;
            let should = trained.iter().any(|t| name.starts_with(&format!("{t}.")));
            assert_eq!(moved, should, "{strategy}: {name} moved {moved}");
        }
        // Two parameter groups: the body at a tenth of the head's rate (the default).
        let sc = Checkpoint::load(&last).unwrap().optimizer.scalars;
        let (head, body) = (sc["group.0.lr"], sc.get("group.1.lr").copied());
        if strategy == "probe" {
            assert_eq!(body, None);
        } else {
            assert!(
                (body.unwrap() / head - 0.1).abs() < 1e-12,
                "{strategy}: {head} {body:?}"
            );
        }
    }
    // --train-layers: exactly the named layers and the new head.
    let (last, _) = finetune(&tmp.0, &src, "layers", &["--train-layers", "features.3"]);
    let after = model_bits(&last);
    for (name, bits) in &before {
        let should = name.starts_with("features.3.") || name.starts_with("classifier.4.");
        assert_eq!(after[name] != *bits, should, "--train-layers: {name}");
    }
}

/// A plain state dict (torchvision's layout: no nabla metadata) with another class count:
/// the head is replaced, the rest loaded bit for bit, extra names reported as left out.
#[test]
fn a_plain_state_dict_loads_with_a_replaced_head() {
    let tmp = TempDir::new("ft-plain");
    write_fake_fashion(&tmp.0, 120, 20);
    let mc = nabla_models::ModelConfig {
        num_classes: 3,
        hidden: vec![8],
        seed: 42,
        ..Default::default()
    };
    let net = nabla_models::build("mlp", &mc).unwrap();
    let mut tensors = net.state_dict();
    tensors.push(("aux.weight".into(), Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap()));
    let file = tmp.0.join("plain.safetensors");
    nabla_nn::save_tensors(&file, &tensors, &BTreeMap::new()).unwrap();
    let args = ["--model", "mlp", "--hidden", "8", "--strategy", "probe"];
    let (last, text) = finetune(&tmp.0, &file, "plain", &args);
    assert!(text.contains("loaded 2 tensors"), "{text}");
    assert!(
        text.contains("layers.2.weight [3, 8]→[10, 8], layers.2.bias [3]→[10]"),
        "{text}"
    );
    assert!(text.contains("left out (not in the model): aux.weight"), "{text}");
    let after = model_bits(&last);
    for (name, t) in net.state_dict() {
        let bits: Vec<u64> = t.to_vec_f64().iter().map(|v| v.to_bits()).collect();
        if name.starts_with("layers.0.") {
            assert_eq!(after[&name], bits, "{name}");
        } else {
            assert_eq!(after[&name].len(), bits.len() / 3 * 10, "{name}");
        }
    }
}

/// Training the head on cached features gives the head that probing through the frozen
/// network gives (same seed, no augmentation), on the top and on an earlier stage.
#[test]
fn probe_features_give_the_head_that_probing_through_the_network_gives() {
    let tmp = TempDir::new("ft-cache");
    write_fake_fashion(&tmp.0, 120, 20);
    let src = source(&tmp.0);
    for (tag, extra, head) in [
        ("top", &[][..], "classifier.4"),
        ("stage", &["--probe-layer", "features.5"][..], "probe"),
        (
            "pooled",
            &["--probe-layer", "features.2", "--probe-pool", "2"][..],
            "probe",
        ),
    ] {
        let probe = [&["--strategy", "probe"][..], extra].concat();
        let (through, _) = finetune(&tmp.0, &src, &format!("{tag}-net"), &probe);
        let cached_args = [&probe[..], &["--probe-features"]].concat();
        let (cached, text) = finetune(&tmp.0, &src, &format!("{tag}-cached"), &cached_args);
        assert!(text.contains("cached the frozen network's"), "{text}");
        let (a, b) = (Checkpoint::load(&through).unwrap(), Checkpoint::load(&cached).unwrap());
        let mut compared = 0;
        for ((na, ta), (nb, tb)) in a.model.iter().zip(&b.model) {
            assert_eq!(na, nb);
            let (va, vb) = (ta.to_vec_f64(), tb.to_vec_f64());
            if na.starts_with(&format!("{head}.")) {
                compared += 1;
                let start = Checkpoint::load(&src).unwrap();
                if let Some((_, s0)) = start.model.iter().find(|(n, _)| n == na) {
                    assert_ne!(s0.to_vec_f64(), va, "{tag}: {na} did not train");
                }
            }
            for (x, y) in va.iter().zip(&vb) {
                assert!((x - y).abs() <= 1e-4 * (1.0 + x.abs()), "{tag}: {na}: {x} vs {y}");
            }
        }
        assert_eq!(compared, 2, "{tag}");
    }
}

/// A probe on a stage is saved with its stage and pooling: `nabla eval` scores the checkpoint
/// as finetune's own test did, and `nabla predict` reads it.
#[test]
fn a_probe_checkpoint_loads_in_eval_and_predict() {
    let tmp = TempDir::new("ft-probe-eval");
    write_fake_fashion(&tmp.0, 120, 20);
    let src = source(&tmp.0);
    let probe = [
        "--strategy",
        "probe",
        "--probe-layer",
        "features.2",
        "--probe-pool",
        "2",
    ];
    let (last, _) = finetune(&tmp.0, &src, "probe", &probe);
    let run = last.parent().unwrap();
    let best = run.join("best.safetensors");
    let e: serde_json::Value =
        serde_json::from_str(&ok(&["eval", "-c", s(&best), "--data-dir", s(&tmp.0), "--json"])).unwrap();
    assert_eq!(e["samples"].as_u64(), Some(20), "{e}");
    let acc = e["accuracy"].as_f64().unwrap();
    assert!((acc - test_value(run, "test_acc")).abs() < 1e-9, "{e}");
    let png = tmp.0.join("item.png");
    image::GrayImage::from_fn(28, 28, |x, _| image::Luma([if x > 10 && x < 18 { 200 } else { 0 }]))
        .save(&png)
        .unwrap();
    let pred = ok(&["predict", "-c", s(&best), s(&png), "-k", "2"]);
    assert!(pred.starts_with(&format!("{}: ", png.display())), "{pred}");
    assert_eq!(pred.matches('%').count(), 2, "{pred}");
}

/// `finetune --help` lists the flags that apply to finetuning, not other tasks' or resuming.
#[test]
fn finetune_help_shows_only_its_flags() {
    let help = ok(&["finetune", "--help"]);
    let listed = |flag: &str| {
        help.lines().any(|l| {
            l.trim_start()
                .trim_start_matches("-o, ")
                .starts_with(&format!("{flag} "))
        })
    };
    for shown in [
        "--from",
        "--probe-layer",
        "--epochs",
        "--lr",
        "--out",
        "--threads",
        "--stop-after-steps",
    ] {
        assert!(listed(shown), "{shown} missing:\n{help}");
    }
    for hidden in [
        "--resume",
        "--init-from",
        "--task",
        "--box-loss",
        "--anchor-sizes",
        "--sync-bn",
        "--backbone",
    ] {
        assert!(!listed(hidden), "{hidden} shown:\n{help}");
    }
    assert!(!help.contains("--resume"), "{help}");
}

/// `nabla features` writes a stage's pooled activations and the labels of a split.
#[test]
fn features_exports_a_stage_and_the_labels() {
    let tmp = TempDir::new("ft-features");
    write_fake_fashion(&tmp.0, 120, 20);
    let src = source(&tmp.0);
    let out = tmp.0.join("f.safetensors");
    let text = ok(&[
        "features",
        "--checkpoint",
        s(&src),
        "--layer",
        "features.5",
        "--split",
        "test",
        "-o",
        s(&out),
    ]);
    assert!(
        text.contains("wrote 16 features.5 features of 20 test samples"),
        "{text}"
    );
    let (t, meta) = nabla_nn::load_tensors(&out).unwrap();
    let get = |k: &str| t.iter().find(|(n, _)| n == k).map(|(_, t)| t.clone()).unwrap();
    assert_eq!(get("features").shape(), &[20, 16]);
    assert_eq!(get("labels").shape(), &[20]);
    assert!(get("labels")
        .to_vec_f64()
        .iter()
        .all(|&l| (0.0..10.0).contains(&l) && l.fract() == 0.0));
    // Pooled activations after a ReLU and max pooling: non-negative, and not all zero.
    let f = get("features").to_vec_f64();
    assert!(f.iter().all(|&v| v >= 0.0) && f.iter().any(|&v| v > 0.0));
    assert_eq!(meta["layer"], "features.5");
    let bad = nabla(&[
        "features",
        "--checkpoint",
        s(&src),
        "--layer",
        "features.1",
        "-o",
        s(&out),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text_of(&bad).contains("stages: features.2, features.5"),
        "{}",
        text_of(&bad)
    );
}

fn text_of(o: &std::process::Output) -> String {
    text(&o.stderr)
}

/// Names or shapes that do not fit, another class count without a strategy, layers that
/// name nothing, flags that do not go together: one line, exit 1, no run folder.
#[test]
fn bad_input_gets_one_line_naming_it() {
    let tmp = TempDir::new("ft-bad");
    write_fake_fashion(&tmp.0, 120, 20);
    let src = source(&tmp.0);
    let mc = nabla_models::ModelConfig {
        num_classes: 3,
        hidden: vec![8],
        ..Default::default()
    };
    let plain = tmp.0.join("plain.safetensors");
    nabla_nn::state_dict::save(nabla_models::build("mlp", &mc).unwrap().as_ref(), &plain).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--from",
                s(&plain),
                "--model",
                "mlp",
                "--hidden",
                "16",
                "--strategy",
                "probe",
            ],
            "layers.0.weight: shape [8, 784] in the source, [16, 784] in the model",
        ),
        (
            vec!["--from", s(&plain), "--model", "mlp", "--hidden", "8"],
            "its head layers.2.weight is [3, 8] (3 classes) but the data has 10 classes",
        ),
        (
            vec!["--from", s(&plain), "--strategy", "probe"],
            "a plain state dict does not say its model; pass --model NAME",
        ),
        (
            vec!["--from", s(&src), "--model", "mlp", "--strategy", "probe"],
            "not in the source: layers.0.weight",
        ),
        (
            vec!["--from", s(&src), "--train-layers", "features.9"],
            "--train-layers features.9: names no layer of lenet5",
        ),
        (
            vec!["--from", s(&src), "--strategy", "full", "--probe-layer", "features.5"],
            "goes with --strategy probe",
        ),
        (
            vec![
                "--from",
                s(&src),
                "--strategy",
                "probe",
                "--probe-features",
                "--augment",
            ],
            "drop --augment",
        ),
        (vec!["--from", s(&tmp.0)], "no such file"),
        (
            vec!["--from", s(&src), "--train-layers", "features.3,"],
            "an empty layer name",
        ),
        (
            vec!["--from", s(&src), "--strategy", "probe", "--sync-bn"],
            "--sync-bn: finetune trains in one process",
        ),
        (
            vec!["--from", s(&src), "--bucket-mb", "50"],
            "--bucket-mb: finetune trains in one process",
        ),
    ];
    for (i, (args, want)) in cases.iter().enumerate() {
        let out = tmp.0.join(format!("bad{i}"));
        let o = nabla(&[&["finetune", "--data-dir", s(&tmp.0), "-o", s(&out)], &args[..]].concat());
        let err = text_of(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(!text(&o.stdout).contains("loaded"), "{args:?}");
        assert!(!out.exists(), "{args:?} left a run folder");
    }
}
