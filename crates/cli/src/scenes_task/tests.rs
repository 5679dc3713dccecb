//! The scene tasks on tiny scenes the tests draw: a bright rectangle on black whose class is
//! its width, so both the class and the box can be learned in a few steps.

use super::localize::Localize;
use super::segment::{unit_weights, Segment};
use super::*;
use nabla_core::Tensor;
use nabla_data::{Batch, TensorDataset};
use nabla_train::Task as _;

const S: usize = 16;

/// `n` scenes `[n, 1, S, S]`, with (class, x, y, w, h) in pixels of each rectangle.
fn rectangles(n: usize) -> (Vec<f32>, Vec<(usize, [usize; 4])>) {
    let mut px = vec![0f32; n * S * S];
    let mut boxes = Vec::new();
    for i in 0..n {
        let class = i % 3;
        let (w, h) = (3 + 3 * class, 4 + (i / 3) % 3);
        let (x, y) = ((i * 5) % (S - w), (i * 3) % (S - h));
        for r in y..y + h {
            for c in x..x + w {
                px[i * S * S + r * S + c] = 1.0;
            }
        }
        boxes.push((class, [x, y, w, h]));
    }
    (px, boxes)
}

fn meta(task: Task, model: &str, classes: usize) -> SceneMeta {
    let cfg = TrainConfig {
        task,
        model: model.into(),
        optimizer: "adam".into(),
        lr: 0.01,
        weight_decay: 0.0,
        scheduler: "none".into(),
        ..defaults(task)
    };
    let mc = model_config(&cfg, [S, S], classes);
    SceneMeta {
        run: RunMeta {
            model: model.into(),
            model_config: mc,
            config: cfg,
            classes: (0..classes).map(|k| format!("c{k}")).collect(),
            input_shape: vec![1, S, S],
            normalize: (vec![0.0], vec![1.0]),
            target_scale: None,
            features: vec![],
        },
        size: [S, S],
    }
}

fn batch(ds: &TensorDataset) -> Batch {
    DataLoader::new(ds.clone(), 64)
        .unwrap()
        .epoch(0)
        .next()
        .unwrap()
        .unwrap()
}

#[test]
fn localize_loss_falls_and_validation_scores_the_boxes() {
    let (px, boxes) = rectangles(24);
    let targets: Vec<f32> = boxes
        .iter()
        .flat_map(|(k, b)| {
            [
                *k as f32,
                b[0] as f32 / S as f32,
                b[1] as f32 / S as f32,
                b[2] as f32 / S as f32,
                b[3] as f32 / S as f32,
            ]
        })
        .collect();
    let x = Tensor::from_vec(px, &[24, 1, S, S]).unwrap();
    let ds = TensorDataset::regression(&x, &Tensor::from_vec(targets, &[24, 5]).unwrap()).unwrap();
    let m = meta(Task::Localize, "classloc", 3);
    let model = nabla_models::build_classloc("classloc", &m.run.model_config).unwrap();
    let mut task = Localize::new(model, &m, vec![], "b".into());
    let mut opt = task.configure_optimizers().unwrap();
    let b = batch(&ds);
    let mut losses = Vec::new();
    for step in 0..30 {
        let out = task.training_step(&b, step, &mut opt).unwrap();
        let get = |k: &str| out.sums.iter().find(|(n, _)| *n == k).unwrap().1 / 24.0;
        assert!(
            (get("loss") - get("cls_loss") - 5.0 * get("box_loss")).abs() < 1e-5,
            "λ = 5 weighs the box part"
        );
        losses.push(get("loss"));
    }
    assert!(losses[29] < 0.5 * losses[0], "{losses:?}");
    let _g = nabla_core::no_grad();
    task.validation_step(&b).unwrap();
    let v: std::collections::BTreeMap<String, f64> = task.validation_end().unwrap().into_iter().collect();
    for k in ["loss", "cls_loss", "box_loss", "acc", "iou", "correct"] {
        assert!(v[k].is_finite(), "{k}: {v:?}");
    }
    assert!(v["acc"] > 0.5 && v["iou"] > 0.1, "{v:?}");
}

#[test]
fn segment_loss_falls_and_miou_rises() {
    let (px, boxes) = rectangles(12);
    let mut masks = vec![0f32; 12 * S * S];
    for (i, (k, [x, y, w, h])) in boxes.iter().enumerate() {
        for r in *y..y + h {
            for c in *x..x + w {
                masks[i * S * S + r * S + c] = (1 + k) as f32;
            }
        }
    }
    let x = Tensor::from_vec(px, &[12, 1, S, S]).unwrap();
    let ds = TensorDataset::regression(&x, &Tensor::from_vec(masks, &[12, S * S]).unwrap()).unwrap();
    let m = meta(Task::Segment, "fcn_small", 3);
    let model = nabla_models::build("fcn_small", &m.run.model_config).unwrap();
    let mut task = Segment::new(model, &m, unit_weights(4), vec![], "b".into());
    let mut opt = task.configure_optimizers().unwrap();
    let b = batch(&ds);
    let score = |task: &mut Segment| {
        let _g = nabla_core::no_grad();
        task.validation_step(&b).unwrap();
        let v = task.validation_end().unwrap();
        v.iter().find(|(k, _)| k == "miou").unwrap().1
    };
    let before = score(&mut task);
    let mut losses = Vec::new();
    for step in 0..25 {
        let out = task.training_step(&b, step, &mut opt).unwrap();
        losses.push(out.sums[0].1 / 12.0);
    }
    assert!(losses[24] < 0.5 * losses[0], "{losses:?}");
    let after = score(&mut task);
    assert!(after > before + 0.2, "mIoU {before} → {after}");
    assert_eq!(task.last_confusion().unwrap().classes, 4);
}

#[test]
fn models_that_cannot_do_the_task_are_refused() {
    let cfg = TrainConfig {
        model: "segnet".into(),
        ..defaults(Task::Localize)
    };
    let e = check_model(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("--model segnet cannot localize") && e.contains("classloc"),
        "{e}"
    );
    let cfg = TrainConfig {
        model: "classloc".into(),
        ..defaults(Task::Segment)
    };
    let e = check_model(&cfg).unwrap_err().to_string();
    assert!(e.contains("fcn_small or segnet"), "{e}");
    assert!(check_model(&defaults(Task::Segment)).is_ok());
}
