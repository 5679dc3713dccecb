//! The detection task's data: Fashion-MNIST scenes of 1 to 4 items generated from a fixed
//! seed (training and validation scenes from the training images, test scenes from the test
//! images, as the other scene tasks), a COCO folder (`--data coco:PATH`, its last scenes
//! held out), or Pascal VOC photographs (`--data voc:PATH`, one image held out, optionally
//! cut into `--tile N` tiles).

use crate::config::TrainConfig;
use crate::error::{CliError, CliResult};
use crate::scenes_task::data::{data_source, DataSource, DEFAULT_VAL, SCENE_SEED};
use nabla_data::detection::{read_coco_detections, DetectionImage, DetectionSet, SceneDetections};
use nabla_data::scenes::{SceneConfig, Scenes};
use nabla_data::{Dataset, Split};
use std::sync::Arc;

/// Training scenes generated when `--limit` does not say.
pub const DEFAULT_TRAIN: usize = 8_000;

/// The splits of a detection run.
pub struct DetData {
    /// Training images.
    pub train: Arc<dyn DetectionSet>,
    /// Validation images (none with `--val-size 0`).
    pub val: Option<Arc<dyn DetectionSet>>,
    /// Test images.
    pub test: Arc<dyn DetectionSet>,
    /// The object classes (no background).
    pub classes: Vec<String>,
    /// COCO's `category_id` of each class: a COCO file's own, else class + 1 (as
    /// `nabla data scenes` numbers them).
    pub category_ids: Vec<u64>,
    /// `[C, H, W]` of every image.
    pub shape: [usize; 3],
    /// The most objects in one image of any split (the targets' width).
    pub max_objects: usize,
    /// Where the images come from, for the banner.
    pub origin: String,
}

/// Images `index[i]` of another set.
pub struct Pick {
    inner: Arc<dyn DetectionSet>,
    index: Vec<usize>,
}

impl Pick {
    /// The images of `inner` at `index`, in that order.
    pub fn of(inner: Arc<dyn DetectionSet>, index: Vec<usize>) -> Arc<dyn DetectionSet> {
        Arc::new(Pick { inner, index })
    }

    /// Images `start..start + len` of `inner`.
    pub fn range(inner: &Arc<dyn DetectionSet>, start: usize, len: usize) -> Arc<dyn DetectionSet> {
        Pick::of(inner.clone(), (start..start + len).collect())
    }

    fn at(&self, index: usize) -> nabla_data::Result<usize> {
        self.index.get(index).copied().ok_or_else(|| {
            nabla_data::DataError::invalid(
                "detect",
                format!("image {index} out of range for {} images", self.index.len()),
            )
        })
    }
}

impl DetectionSet for Pick {
    fn len(&self) -> usize {
        self.index.len()
    }
    fn channels(&self) -> usize {
        self.inner.channels()
    }
    fn size(&self) -> [usize; 2] {
        self.inner.size()
    }
    fn image_size(&self, index: usize) -> nabla_data::Result<[usize; 2]> {
        self.inner.image_size(self.at(index)?)
    }
    fn get(&self, index: usize) -> nabla_data::Result<DetectionImage> {
        self.inner.get(self.at(index)?)
    }
    fn classes(&self) -> &[String] {
        self.inner.classes()
    }
}

/// Load the images a configuration asks for.
pub fn load(cfg: &TrainConfig) -> CliResult<DetData> {
    let src = data_source(cfg.data.as_deref(), "detect", &["coco", "voc"])?;
    let voc = matches!(src, DataSource::File("voc", _));
    if cfg.detect.tile.is_some() && !voc {
        return Err(CliError::new(
            "--tile cuts photographs of --data voc:PATH; scenes are already the model's size",
        ));
    }
    if cfg.detect.holdout.is_some() && !voc {
        return Err(CliError::new("--holdout names an image of --data voc:PATH"));
    }
    match src {
        DataSource::Generated => generated(cfg),
        DataSource::File("coco", p) => {
            if !p.exists() {
                return Err(CliError::new(format!(
                    "--data coco:{}: no such file or folder",
                    p.display()
                )));
            }
            let read = read_coco_detections(&p)?;
            let ids = (0..read.classes().len()).map(|k| read.category_id(k)).collect();
            let mut d = held_out(cfg, Arc::new(read), format!("coco:{}", p.display()))?;
            d.category_ids = ids;
            Ok(d)
        }
        // The only other prefix accepted.
        DataSource::File(_, p) => super::voc::load(cfg, &p),
    }
}

/// The most objects any image of `sets` holds (reading every image: the scenes draw their
/// items from the seed, so this is a pass over their boxes, not a training cost).
fn max_objects(sets: &[&Arc<dyn DetectionSet>]) -> CliResult<usize> {
    let mut m = 1;
    for s in sets {
        for i in 0..s.len() {
            m = m.max(s.get(i)?.boxes.len());
        }
    }
    Ok(m)
}

fn generated(cfg: &TrainConfig) -> CliResult<DetData> {
    let fashion = TrainConfig {
        dataset: "fashion-mnist".into(),
        ..cfg.clone()
    };
    let (train_src, test_src, dir) = crate::trainer::data::load_images(&fashion)?;
    let sc = SceneConfig {
        seed: SCENE_SEED,
        ..SceneConfig::segmentation()
    };
    let n_train = cfg.limit.unwrap_or(DEFAULT_TRAIN);
    let n_val = match (cfg.val_size, cfg.val_fraction) {
        (Some(k), _) => k,
        (None, Some(f)) => (n_train as f64 * f).round() as usize,
        (None, None) => DEFAULT_VAL,
    };
    let n_val = cfg.val_limit.map_or(n_val, |l| l.min(n_val));
    let n_test = if n_val > 0 { n_val } else { DEFAULT_VAL };
    let classes = train_src.classes().to_vec();
    let all: Arc<dyn DetectionSet> = Arc::new(SceneDetections::new(Arc::new(Scenes::new(
        train_src,
        Split::Train,
        sc,
        n_train + n_val,
    )?)));
    let test: Arc<dyn DetectionSet> = Arc::new(SceneDetections::new(Arc::new(Scenes::new(
        test_src,
        Split::Test,
        sc,
        n_test,
    )?)));
    Ok(DetData {
        train: Pick::range(&all, 0, n_train),
        val: (n_val > 0).then(|| Pick::range(&all, n_train, n_val)),
        test,
        category_ids: (1..=classes.len() as u64).collect(),
        classes,
        shape: [1, sc.size[0], sc.size[1]],
        // A scene holds at most `max_objects` items.
        max_objects: sc.max_objects,
        origin: format!(
            "Fashion-MNIST scenes of 1 to {} items from {}",
            sc.max_objects,
            dir.display()
        ),
    })
}

/// A read set whose last images (`--val-size`, default one twelfth) validate and test.
pub fn held_out(cfg: &TrainConfig, all: Arc<dyn DetectionSet>, origin: String) -> CliResult<DetData> {
    let n = all.len();
    let n_val = match (cfg.val_size, cfg.val_fraction) {
        (Some(k), _) => k,
        (None, f) => (n as f64 * f.unwrap_or(1.0 / 12.0)).round().max(1.0) as usize,
    };
    if n_val == 0 || n_val >= n {
        return Err(CliError::new(format!(
            "--data {origin}: {n} images cannot train and hold out {n_val} to validate and test on (set --val-size)"
        )));
    }
    let n_train = cfg.limit.map_or(n - n_val, |l| l.min(n - n_val));
    let val = Pick::range(&all, n - n_val, n_val);
    let train = Pick::range(&all, 0, n_train);
    finish(
        train,
        Some(val.clone()),
        val,
        origin,
        format!("the last {n_val} images held out to validate and test"),
    )
}

/// The splits of a read set (validation optional); checks the images have one size.
pub fn finish(
    train: Arc<dyn DetectionSet>,
    val: Option<Arc<dyn DetectionSet>>,
    test: Arc<dyn DetectionSet>,
    origin: String,
    how: String,
) -> CliResult<DetData> {
    let [h, w] = train.size();
    if h == 0 || w == 0 {
        return Err(CliError::new(format!(
            "--data {origin}: the images differ in size; cut them into tiles with --tile N"
        )));
    }
    let mut sets = vec![&train, &test];
    sets.extend(val.as_ref());
    let max_objects = max_objects(&sets)?;
    Ok(DetData {
        classes: train.classes().to_vec(),
        category_ids: (1..=train.classes().len() as u64).collect(),
        shape: [train.channels(), h, w],
        max_objects,
        train,
        val,
        test,
        origin: format!("{origin} ({how})"),
    })
}
