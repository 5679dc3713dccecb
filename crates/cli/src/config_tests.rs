//! Tests of the configuration: the file format, flags over files, validation.
use super::*;

#[test]
fn round_trips_through_the_file_format() {
    let c = TrainConfig {
        model: "mlp".into(),
        data: Some("/tmp/a b.csv".into()),
        target: Some("price".into()),
        task: Task::Regression,
        lr: 0.1 + 0.2,
        hidden: vec![64, 32],
        limit: Some(600),
        early_stop: Some(3),
        min_delta: 0.001,
        clip_grad_norm: Some(1.0),
        label_smoothing: 0.1,
        gamma: Some(0.5),
        milestones: vec![3, 6],
        patience: Some(4),
        warmup_epochs: 2,
        tensorboard: true,
        step_size: Some(2),
        val_size: Some(0),
        val_limit: Some(30),
        augment: true,
        loss: "mse".into(),
        ..TrainConfig::default()
    };
    let back = TrainConfig::from_toml(&c.to_toml(), Path::new("x")).unwrap();
    assert_eq!(back, c);
    assert_eq!(back.lr.to_bits(), (0.1f64 + 0.2).to_bits());
}

#[test]
fn file_values_apply_and_errors_name_the_line() {
    let text = "# comment\nepochs = 3 # trailing\nbatch-size = 1_000\nmodel = \"mlp#1\"\nhidden = [8, 4]\n";
    let mut c = TrainConfig::default();
    c.apply(&parse(text, Path::new("c.toml")).unwrap()).unwrap();
    assert_eq!(
        (c.epochs, c.batch_size, c.model.as_str(), c.hidden),
        (3, 1000, "mlp#1", vec![8, 4])
    );
    let e = parse("epochs = 3\nepocs = 4\n", Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("c.toml line 2: unknown key \"epocs\""), "{e}");
    let e = parse("lr = fast\n", Path::new("c.toml")).unwrap_err().to_string();
    assert!(e.contains("line 1: lr: fast is not a number"), "{e}");
    let mut c = TrainConfig::default();
    let e = c.apply(&parse("epochs = 2.5\n", Path::new("c")).unwrap()).unwrap_err();
    assert!(e.to_string().contains("whole number"), "{e}");
}

#[test]
fn the_old_val_split_key_applies_to_tables_only() {
    let images = TrainConfig::from_toml("dataset = \"mnist\"\nval_split = 0.2\n", Path::new("c")).unwrap();
    assert_eq!(images.val_fraction, None);
    let table = TrainConfig::from_toml("data = \"t.csv\"\nval_split = 0.3\n", Path::new("c")).unwrap();
    assert_eq!(table.val_fraction, Some(0.3));
}

#[test]
fn validation_rejects_bad_values() {
    let ok = TrainConfig::default();
    assert!(ok.validate().is_ok());
    for (c, msg) in [
        (
            TrainConfig {
                epochs: 0,
                ..ok.clone()
            },
            "--epochs",
        ),
        (TrainConfig { lr: -1.0, ..ok.clone() }, "--lr"),
        (
            TrainConfig {
                optimizer: "lbfgs".into(),
                ..ok.clone()
            },
            "unknown optimizer \"lbfgs\"",
        ),
        (
            TrainConfig {
                momentum: 1.5,
                ..ok.clone()
            },
            "--momentum",
        ),
        (
            TrainConfig {
                task: Task::Regression,
                ..ok.clone()
            },
            "--loss mse",
        ),
    ] {
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(msg), "{e}");
    }
    assert_eq!(ok.out_dir(), PathBuf::from("runs/lenet5-fashion-mnist"));
}
