//! The scene sections, as `torch/scenes.py localize|segment|segnet` runs them, with the
//! recipes `nabla train --task localize` and `--task segment` default to
//! (crates/cli/src/scenes_task): batch 32, Adam lr 1e-3 betas (0.9, 0.999) no weight decay
//! (the cosine schedule steps per epoch, so one epoch runs at lr 1e-3), PyTorch's default
//! initialization on both sides, on the CLI's training scenes (`nabla_data::scenes`, scene
//! seed 0, 64×64, from Fashion-MNIST training images; 50,000 to localize, 8,000 to segment):
//!
//! - `localize`: `classloc` with its `spatial` backbone (the CLI's default), loss
//!   cross-entropy + 5.0 · MSE on the normalized `[x, y, w, h]` box, one item per scene.
//! - `segment`: `fcn_small` (the CLI's default segmentation model), per-pixel
//!   cross-entropy (class weights `none`: all ones), up to 4 items per scene.
//! - `segnet`: the same task with `segnet` (max-pool indices reused by max-unpooling).
//!
//! Before the timed epochs, [`prepare`] generates the scenes once and writes them to a
//! safetensors file (`images` [N,1,H,W]; `labels` [N] and `boxes` [N,4] for localization,
//! `masks` [N,H,W] for segmentation, all f32); both sides read that file, so they train on
//! the same bits from memory. Timed: the epoch's batches (gathering a shuffled batch,
//! forward, loss, backward, optimizer step); with `--batches B` only the first B·32 scenes
//! are generated and one epoch is those B batches.

use crate::generative::{load, wrap, Timer};
use crate::report::Row;
use crate::Settings;
use nabla_core::{Generator, Result, Tensor};
use nabla_data::scenes::{SceneConfig, Scenes};
use nabla_data::{Dataset, Split, Target};
use nabla_models::{build, build_classloc, ModelConfig};
use nabla_nn::loss::{cross_entropy, cross_entropy_weighted, mse_loss, CrossEntropyOptions, Reduction};
use nabla_nn::optim::{Adam, AdamOptions, Optimizer};
use nabla_nn::{Mode, Module};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Training scenes of the CLI's default runs (`scenes_task::data::DEFAULT_TRAIN`):
/// localization, segmentation.
pub const N_TRAIN: [usize; 2] = [50_000, 8_000];
/// Batch size of both scene tasks' defaults.
pub const BATCH: usize = 32;
/// The CLI's default Adam learning rate (betas and ε PyTorch's defaults, no weight decay).
const LR: f64 = 1e-3;
/// The CLI's default λ of the box loss when localizing (`--box-weight`).
const BOX_WEIGHT: f64 = 5.0;
/// The CLI's fixed scene seed (`scenes_task::data::SCENE_SEED`).
const SCENE_SEED: u64 = 0;
/// Item classes (Fashion-MNIST's); segmentation adds the background.
const CLASSES: usize = 10;

/// Which scene task a section trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SceneTask {
    /// Class + box of one item.
    Localize,
    /// A class per pixel.
    Segment,
}

impl SceneTask {
    /// Training scenes of the CLI's default run.
    fn n_train(self) -> usize {
        N_TRAIN[(self == SceneTask::Segment) as usize]
    }

    fn name(self) -> &'static str {
        match self {
            SceneTask::Localize => "localize",
            SceneTask::Segment => "segment",
        }
    }
}

/// Scenes held in memory: what the safetensors file carries.
#[derive(Debug, PartialEq)]
pub struct SceneSet {
    /// Pixels, N×1×H×W in [0, 1].
    pub images: Vec<f32>,
    /// `[H, W]`.
    pub size: [usize; 2],
    /// Class of each scene's item (localization).
    pub labels: Vec<usize>,
    /// Normalized `[x, y, w, h]` of each scene's item (localization), N×4.
    pub boxes: Vec<f32>,
    /// Label of every pixel, 0 the background (segmentation), N×H×W.
    pub masks: Vec<usize>,
}

impl SceneSet {
    /// Number of scenes.
    pub fn len(&self) -> usize {
        self.images.len() / (self.size[0] * self.size[1]).max(1)
    }
}

/// Scenes a run trains on: the whole default set, or `--batches B` batches of it.
pub fn scene_count(task: SceneTask, s: &Settings) -> usize {
    s.batches.map_or(task.n_train(), |b| task.n_train().min(b * BATCH))
}

/// Write the first `n` scenes of `ds` (a localize or segment view) to `path`.
pub fn write_scenes(ds: &dyn Dataset, task: SceneTask, n: usize, path: &Path) -> Result<()> {
    let samples = (0..n)
        .into_par_iter()
        .map(|i| ds.get(i).map_err(wrap))
        .collect::<Result<Vec<_>>>()?;
    let Some(first) = samples.first() else {
        return Err(wrap("no scenes to write"));
    };
    let [h, w] = match first.shape[..] {
        [1, h, w] => [h, w],
        ref s => return Err(wrap(format!("scenes must be [1, H, W], got {s:?}"))),
    };
    let mut images = Vec::with_capacity(n * h * w);
    let mut targets = Vec::new();
    for s in &samples {
        images.extend_from_slice(&s.data);
        match &s.target {
            Target::Values(v) => targets.extend_from_slice(v),
            Target::Class(_) => return Err(wrap("scene without values as its target")),
        }
    }
    let mut tensors = vec![("images".to_string(), Tensor::from_vec(images, &[n, 1, h, w])?)];
    match task {
        SceneTask::Localize => {
            // Each target is (class, x, y, w, h).
            if targets.len() != 5 * n {
                return Err(wrap("localization targets must be (class, x, y, w, h)"));
            }
            let labels = targets.iter().step_by(5).copied().collect();
            let boxes = targets.chunks(5).flat_map(|t| t[1..].to_vec()).collect();
            tensors.push(("labels".into(), Tensor::from_vec(labels, &[n])?));
            tensors.push(("boxes".into(), Tensor::from_vec(boxes, &[n, 4])?));
        }
        SceneTask::Segment => tensors.push(("masks".into(), Tensor::from_vec(targets, &[n, h, w])?)),
    }
    let meta = BTreeMap::from([("task".to_string(), task.name().to_string())]);
    nabla_nn::save_tensors(path, &tensors, &meta).map_err(wrap)
}

/// Read back what [`write_scenes`] wrote.
pub fn read_scenes(path: &Path, task: SceneTask) -> Result<SceneSet> {
    let (tensors, _) = nabla_nn::load_tensors(path).map_err(wrap)?;
    let get = |name: &str| {
        tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| wrap(format!("{}: no tensor {name:?}", path.display())))
    };
    let images = get("images")?;
    let size = match images.shape() {
        [_, 1, h, w] => [*h, *w],
        s => {
            return Err(wrap(format!(
                "{}: images must be [N, 1, H, W], got {s:?}",
                path.display()
            )))
        }
    };
    let as_labels = |t: &Tensor| t.to_vec_f32().iter().map(|&v| v as usize).collect::<Vec<_>>();
    let mut set = SceneSet {
        images: images.to_vec_f32(),
        size,
        labels: vec![],
        boxes: vec![],
        masks: vec![],
    };
    match task {
        SceneTask::Localize => {
            set.labels = as_labels(get("labels")?);
            set.boxes = get("boxes")?.to_vec_f32();
        }
        SceneTask::Segment => set.masks = as_labels(get("masks")?),
    }
    Ok(set)
}

/// Generate the scenes `task` trains on (as many as the settings ask for) and write them to a
/// file in the temporary folder, which the caller removes when the section is done.
pub fn prepare(task: SceneTask, s: &Settings) -> Result<PathBuf> {
    let n = scene_count(task, s);
    let sc = SceneConfig {
        seed: SCENE_SEED,
        ..match task {
            SceneTask::Localize => SceneConfig::default(),
            SceneTask::Segment => SceneConfig::segmentation(),
        }
    };
    let scenes = Scenes::new(load(Split::Train)?, Split::Train, sc, n).map_err(wrap)?;
    let ds: Box<dyn Dataset> = match task {
        SceneTask::Localize => Box::new(scenes.localize()),
        SceneTask::Segment => Box::new(scenes.segment()),
    };
    let path = std::env::temp_dir().join(format!(
        "nabla-bench-{}-{}-{n}.safetensors",
        std::process::id(),
        task.name()
    ));
    write_scenes(ds.as_ref(), task, n, &path)?;
    Ok(path)
}

/// The model config the CLI builds for a scene task on 64×64 grey scenes.
fn model_config(task: SceneTask, size: [usize; 2]) -> ModelConfig {
    ModelConfig {
        num_classes: CLASSES + (task == SceneTask::Segment) as usize,
        in_channels: 1,
        input_size: size,
        small_input: true,
        seed: 0,
        variant: (task == SceneTask::Localize).then(|| "spatial".to_string()),
        ..ModelConfig::default()
    }
}

fn adam(params: Vec<Tensor>) -> Result<Adam> {
    let opts = AdamOptions {
        lr: LR,
        ..Default::default()
    };
    Adam::new(params, opts).map_err(wrap)
}

/// The label of the timed stretch, as the script prints it.
fn epoch_key(model: &str, task: SceneTask, s: &Settings) -> String {
    match s.batches {
        Some(b) if b * BATCH < task.n_train() => format!("{model} first {b} batches"),
        _ => format!("{model} epoch"),
    }
}

/// The scenes of a section, read back from the file [`prepare`] wrote.
fn scenes(task: SceneTask, s: &Settings) -> Result<SceneSet> {
    let path = s
        .data
        .as_deref()
        .ok_or_else(|| wrap("the scene file was not prepared"))?;
    read_scenes(path, task)
}

/// Train `--epochs` epochs, `step` doing one batch (the scene indices) and giving its loss;
/// the rows: mean wall s, img/s, CPU s per epoch, and the last epoch's mean loss.
fn train(
    model: &str,
    task: SceneTask,
    s: &Settings,
    n: usize,
    mut step: impl FnMut(&[usize]) -> Result<f64>,
) -> Result<Vec<Row>> {
    let key = epoch_key(model, task, s);
    let mut order: Vec<usize> = (0..n).collect();
    let mut g = Generator::new(0);
    let (mut secs, mut cpu, mut mean) = (0.0, 0.0, f64::NAN);
    for ep in 0..s.epochs {
        g.shuffle(&mut order);
        let t0 = Timer::start();
        let (mut sum, mut count) = (0.0, 0);
        for idx in order.chunks(BATCH) {
            sum += step(idx)? * idx.len() as f64;
            count += idx.len();
        }
        let (dt, dc) = t0.stop();
        (secs, cpu, mean) = (secs + dt, cpu + dc, sum / count.max(1) as f64);
        eprintln!(
            "nabla {model} epoch {} of {}: {dt:.2} s, mean train loss {mean:.4}",
            ep + 1,
            s.epochs
        );
    }
    let (secs, cpu) = (secs / s.epochs as f64, cpu / s.epochs as f64);
    say!(
        "nabla {key}: {secs:.2} s ({:.0} img/s), {cpu:.2} cpu-s",
        n as f64 / secs
    );
    let loss_key = format!("{model} mean train loss in epoch {}", s.epochs);
    say!("nabla {loss_key}: {mean:.4} loss");
    Ok(vec![
        Row::lower(&key, "s", secs),
        Row::higher(&key, "img/s", n as f64 / secs),
        Row::lower(&key, "cpu-s", cpu),
        Row::lower(loss_key, "loss", mean),
    ])
}

/// The images of scenes `idx` as one batch `[B, 1, H, W]`.
fn gather_images(set: &SceneSet, idx: &[usize]) -> Result<Tensor> {
    let [h, w] = set.size;
    let mut x = Vec::with_capacity(idx.len() * h * w);
    for &i in idx {
        x.extend_from_slice(&set.images[i * h * w..(i + 1) * h * w]);
    }
    Tensor::from_vec(x, &[idx.len(), 1, h, w])
}

/// `--epochs` epochs of `classloc` (spatial backbone) on one-item scenes.
pub fn localize(s: &Settings) -> Result<Vec<Row>> {
    let set = scenes(SceneTask::Localize, s)?;
    let model = build_classloc("classloc", &model_config(SceneTask::Localize, set.size)).map_err(wrap)?;
    let mut opt = adam(model.trainable_parameters())?;
    train("classloc", SceneTask::Localize, s, set.len(), |idx| {
        let x = gather_images(&set, idx)?;
        let labels: Vec<usize> = idx.iter().map(|&i| set.labels[i]).collect();
        let boxes: Vec<f32> = idx.iter().flat_map(|&i| set.boxes[4 * i..4 * i + 4].to_vec()).collect();
        let target = Tensor::from_vec(boxes, &[idx.len(), 4])?;
        let (logits, boxes) = model.forward2(&x, Mode::Train).map_err(wrap)?;
        let ce = cross_entropy(&logits, &labels[..], &CrossEntropyOptions::default()).map_err(wrap)?;
        // The L2 box loss (`--box-loss l2`) weighted by the default λ.
        let bl = mse_loss(&boxes, &target, Reduction::Mean).map_err(wrap)?;
        let loss = ce.add(&bl.mul_scalar(BOX_WEIGHT)?)?;
        opt.step(&loss.backward()?).map_err(wrap)?;
        loss.item()
    })
}

/// `--epochs` epochs of a segmentation model (`fcn_small` or `segnet`) on scenes of up to
/// four items.
fn segment_with(model_name: &str, s: &Settings) -> Result<Vec<Row>> {
    let set = scenes(SceneTask::Segment, s)?;
    let cfg = model_config(SceneTask::Segment, set.size);
    let model = build(model_name, &cfg).map_err(wrap)?;
    let mut opt = adam(model.trainable_parameters())?;
    // `--class-weights none`: the CLI passes unit weights to the weighted loss.
    let weight = Tensor::ones(&[cfg.num_classes], nabla_core::DType::F32);
    let per = set.size[0] * set.size[1];
    train(model_name, SceneTask::Segment, s, set.len(), |idx| {
        let x = gather_images(&set, idx)?;
        let labels: Vec<usize> = idx
            .iter()
            .flat_map(|&i| set.masks[i * per..(i + 1) * per].iter().copied())
            .collect();
        let scores = model.forward(&x, Mode::Train).map_err(wrap)?;
        let loss = cross_entropy_weighted(&scores, &labels, &weight, &CrossEntropyOptions::default()).map_err(wrap)?;
        opt.step(&loss.backward()?).map_err(wrap)?;
        loss.item()
    })
}

/// `--epochs` epochs of `fcn_small`, the CLI's default segmentation model.
pub fn segment(s: &Settings) -> Result<Vec<Row>> {
    segment_with("fcn_small", s)
}

/// `--epochs` epochs of `segnet`.
pub fn segnet(s: &Settings) -> Result<Vec<Row>> {
    segment_with("segnet", s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_data::ImageDataset;

    /// Ten 28×28 grey items, a filled rectangle each, class i.
    fn items() -> ImageDataset {
        let mut px = vec![0u8; 10 * 784];
        for (i, img) in px.chunks_mut(784).enumerate() {
            for y in 4..14 + i {
                for x in 6..22 {
                    img[y * 28 + x] = 200;
                }
            }
        }
        let classes = (0..10).map(|c| format!("c{c}")).collect();
        ImageDataset::new(px, (0..10).collect(), [1, 28, 28], classes, Path::new("test")).unwrap()
    }

    #[test]
    fn scenes_go_through_the_file_unchanged() {
        let dir = std::env::temp_dir().join(format!("nabla-bench-scenes-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for task in [SceneTask::Localize, SceneTask::Segment] {
            let sc = SceneConfig {
                size: [40, 36],
                max_objects: if task == SceneTask::Segment { 3 } else { 1 },
                ..SceneConfig::default()
            };
            let scenes = Scenes::new(items(), Split::Train, sc, 5).unwrap();
            let ds: Box<dyn Dataset> = match task {
                SceneTask::Localize => Box::new(scenes.localize()),
                SceneTask::Segment => Box::new(scenes.segment()),
            };
            let path = dir.join(format!("{}.safetensors", task.name()));
            write_scenes(ds.as_ref(), task, 4, &path).unwrap();
            let set = read_scenes(&path, task).unwrap();
            assert_eq!((set.len(), set.size), (4, [40, 36]));
            for i in 0..4 {
                let s = ds.get(i).unwrap();
                assert_eq!(&set.images[i * 1440..(i + 1) * 1440], &s.data[..]);
                let Target::Values(v) = s.target else {
                    panic!("scenes have values")
                };
                match task {
                    SceneTask::Localize => {
                        assert_eq!(set.labels[i], v[0] as usize);
                        assert_eq!(&set.boxes[4 * i..4 * i + 4], &v[1..]);
                    }
                    SceneTask::Segment => {
                        let mask: Vec<usize> = v.iter().map(|&l| l as usize).collect();
                        assert_eq!(&set.masks[i * 1440..(i + 1) * 1440], &mask[..]);
                        assert!(mask.iter().any(|&l| l > 0) && mask.contains(&0));
                    }
                }
            }
            // A file of the other task lacks that task's targets: one clear error.
            let other = match task {
                SceneTask::Localize => SceneTask::Segment,
                SceneTask::Segment => SceneTask::Localize,
            };
            let e = read_scenes(&path, other).unwrap_err().to_string();
            assert!(e.contains("no tensor"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_scene_count_follows_batches() {
        let s = |batches| Settings {
            epochs: 1,
            samples: None,
            batches,
            data: None,
        };
        let (loc, seg) = (SceneTask::Localize, SceneTask::Segment);
        assert_eq!(
            (scene_count(loc, &s(None)), scene_count(seg, &s(None))),
            (50_000, 8_000)
        );
        assert_eq!(scene_count(seg, &s(Some(3))), 96);
        assert_eq!(scene_count(seg, &s(Some(100_000))), 8_000);
        assert_eq!(epoch_key("fcn_small", seg, &s(Some(3))), "fcn_small first 3 batches");
        assert_eq!(epoch_key("fcn_small", seg, &s(Some(250))), "fcn_small epoch");
        assert_eq!(epoch_key("classloc", loc, &s(Some(250))), "classloc first 250 batches");
        assert_eq!(epoch_key("fcn_small", seg, &s(None)), "fcn_small epoch");
    }
}
