//! The captioning data: generated Fashion-MNIST scenes with their sentences (training
//! scenes from the training images, validation scenes from them too under another layout
//! seed, test scenes from the test images), or a user's COCO captions / Flickr8k files, whose
//! held-out part validates and tests.

use super::settings::CaptionSettings;
use crate::config::TrainConfig;
use crate::error::{CliError, CliResult};
use nabla_core::Tensor;
use nabla_data::captions::{
    caption_scene_config, coco_layout, flickr8k_layout, read_coco_captions, read_flickr8k, read_name_list, CaptionSet,
    ImageOptions,
};
use nabla_data::scenes::Scenes;
use nabla_data::{Dataset, ImageDataset, Sample, Split};
use std::path::PathBuf;
use std::sync::Arc;

/// The layout seed of training and test scenes (fixed, so runs with different `--seed`s
/// see the same scenes).
pub const SCENE_SEED: u64 = 0;
/// The layout seed of validation scenes: other layouts of the training images.
pub const VAL_SEED: u64 = 1;

/// Some images of a [`CaptionSet`], as a data set (sample `i` is image `index[i]`).
#[derive(Clone)]
pub struct Part {
    /// All images and their references.
    pub set: CaptionSet,
    /// The images of this part, by their index in `set`.
    pub index: Vec<usize>,
}

impl Part {
    /// Every image of `set`.
    pub fn all(set: CaptionSet) -> Part {
        let index = (0..set.len()).collect();
        Part { set, index }
    }

    /// The raw references of sample `i`.
    pub fn captions(&self, i: usize) -> &[String] {
        self.set.captions(self.index[i])
    }

    /// The first `n` samples as one `[n, C, H, W]` tensor (for pictures).
    pub fn images(&self, n: usize) -> CliResult<Tensor> {
        let n = n.min(self.len());
        let shape = self.set.image_shape();
        let mut px = Vec::with_capacity(n * shape.iter().product::<usize>());
        for i in 0..n {
            px.extend(self.set.image(self.index[i])?.0);
        }
        Ok(Tensor::from_vec(px, &[n, shape[0], shape[1], shape[2]])?)
    }
}

impl Dataset for Part {
    fn len(&self) -> usize {
        self.index.len()
    }
    fn get(&self, i: usize) -> nabla_data::Result<Sample> {
        match self.index.get(i) {
            Some(&j) => self.set.get(j),
            None => Err(nabla_data::DataError::invalid(
                "captions",
                format!("index {i} out of range for {} images", self.index.len()),
            )),
        }
    }
    fn classes(&self) -> &[String] {
        self.set.classes()
    }
}

/// The splits of a captioning run.
pub struct CaptionData {
    /// Training images.
    pub train: Part,
    /// Validation images.
    pub val: Part,
    /// Test images.
    pub test: Part,
    /// Where the images come from, for the banner.
    pub origin: String,
    /// Whether they are generated scenes (scored also by exact match and counts).
    pub scenes: bool,
}

/// Where the images come from, as `--data` says.
pub enum Source {
    /// Generated Fashion-MNIST scenes.
    Scenes,
    /// COCO captions JSON (a file, or a folder holding `annotations/captions_*.json`).
    Coco(PathBuf),
    /// Flickr8k: `Flickr8k.token.txt` and the image folder.
    Flickr8k(PathBuf),
}

/// Read `--data`.
pub fn source(data: &str) -> CliResult<Source> {
    if data == "scenes" {
        return Ok(Source::Scenes);
    }
    if let Some(p) = data.strip_prefix("coco:").filter(|p| !p.is_empty()) {
        return Ok(Source::Coco(p.into()));
    }
    if let Some(p) = data.strip_prefix("flickr8k:").filter(|p| !p.is_empty()) {
        return Ok(Source::Flickr8k(p.into()));
    }
    Err(CliError::new(format!(
        "--data {data}: nabla caption reads scenes (generated, the default), coco:PATH or flickr8k:PATH"
    )))
}

/// Load the images and references the settings ask for.
pub fn load(s: &CaptionSettings) -> CliResult<CaptionData> {
    match source(&s.data)? {
        Source::Scenes => scenes(s),
        Source::Coco(p) => coco(s, &p),
        Source::Flickr8k(p) => flickr8k(s, &p),
    }
}

/// The Fashion-MNIST images of both splits.
fn fashion(s: &CaptionSettings) -> CliResult<(Arc<ImageDataset>, Arc<ImageDataset>, PathBuf)> {
    let cfg = TrainConfig {
        dataset: "fashion-mnist".into(),
        data_dir: s.data_dir.clone(),
        ..TrainConfig::default()
    };
    let (train, test, dir) = crate::trainer::data::load_images(&cfg)?;
    Ok((Arc::new(train), Arc::new(test), dir))
}

fn scenes(s: &CaptionSettings) -> CliResult<CaptionData> {
    let (train_src, test_src, dir) = fashion(s)?;
    let sc = caption_scene_config();
    let make = |src: &Arc<ImageDataset>, split, seed, n| -> CliResult<Part> {
        let scenes = Scenes::new(src.clone(), split, nabla_data::scenes::SceneConfig { seed, ..sc }, n)?;
        Ok(Part::all(CaptionSet::scenes(scenes)?))
    };
    Ok(CaptionData {
        train: make(&train_src, Split::Train, SCENE_SEED, s.scenes)?,
        val: make(&train_src, Split::Train, VAL_SEED, s.val_size)?,
        test: make(&test_src, Split::Test, SCENE_SEED, s.test_size)?,
        origin: format!("Fashion-MNIST scenes from {}", dir.display()),
        scenes: true,
    })
}

/// Split a set read from files: the last `test_size` images test, the `val_size` before
/// them validate, the rest train.
fn files(s: &CaptionSettings, set: CaptionSet, origin: String) -> CliResult<CaptionData> {
    let n = set.len();
    let held = s.val_size + s.test_size;
    if held >= n {
        return Err(CliError::new(format!(
            "--data {origin}: {n} images cannot train and hold out {} to validate and {} to test on \
             (set --val-size and --test-size)",
            s.val_size, s.test_size
        )));
    }
    let part = |r: std::ops::Range<usize>| Part {
        set: set.clone(),
        index: r.collect(),
    };
    Ok(CaptionData {
        train: part(0..n - held),
        val: part(n - held..n - s.test_size),
        test: part(n - s.test_size..n),
        origin: format!(
            "{origin} (the last {held} images held out: {} validate, {} test)",
            s.val_size, s.test_size
        ),
        scenes: false,
    })
}

/// Images read from files: RGB, `--image-size` pixels a side.
fn image_options(s: &CaptionSettings) -> ImageOptions {
    ImageOptions::new([s.image_size; 2], 3)
}

/// `coco:PATH`: with a `train` and a `val` captions file, train on the first and take
/// validation then test images from the start of the second (the Karpathy-style use of
/// COCO's val2014 as held-out data); with one file, split it as [`files`] does.
fn coco(s: &CaptionSettings, p: &std::path::Path) -> CliResult<CaptionData> {
    let origin = format!("coco:{}", p.display());
    let layout = coco_layout(p)?;
    let find = |key: &str| layout.iter().find(|(split, _, _)| split.contains(key));
    let read = |(_, json, images): &(String, PathBuf, PathBuf)| read_coco_captions(json, images, &image_options(s));
    match (find("train"), find("val")) {
        (Some(t), Some(v)) if t.1 != v.1 => {
            let train = read(t)?;
            let held = read(v)?;
            let (nv, nt) = (
                s.val_size.min(held.len()),
                s.test_size.min(held.len().saturating_sub(s.val_size)),
            );
            if nv == 0 || nt == 0 {
                return Err(CliError::new(format!(
                    "--data {origin}: {} has {} images, too few to validate on {} and test on {}",
                    v.1.display(),
                    held.len(),
                    s.val_size,
                    s.test_size
                )));
            }
            let part = |r: std::ops::Range<usize>| Part {
                set: held.clone(),
                index: r.collect(),
            };
            Ok(CaptionData {
                train: Part::all(train),
                val: part(0..nv),
                test: part(nv..nv + nt),
                origin: format!(
                    "{origin} ({} to train; {} of {} to validate, the next {nt} to test)",
                    t.0, nv, v.0
                ),
                scenes: false,
            })
        }
        _ => files(s, read(&layout[0])?, origin),
    }
}

/// `flickr8k:PATH`: the split lists when the download has them (validation and test cut to
/// `--val-size` and `--test-size`), else the token file split as [`files`] does.
fn flickr8k(s: &CaptionSettings, p: &std::path::Path) -> CliResult<CaptionData> {
    let origin = format!("flickr8k:{}", p.display());
    let f = flickr8k_layout(p)?;
    let all = read_flickr8k(&f.tokens, &f.images, &image_options(s))?;
    let (Some(tr), Some(dev), Some(test)) = (&f.train, &f.dev, &f.test) else {
        return files(s, all, origin);
    };
    let limits = nabla_data::ReadLimits::default();
    let list = |p: &PathBuf, cap: usize| -> CliResult<CaptionSet> {
        let mut names = read_name_list(p, &limits)?;
        names.truncate(cap);
        Ok(all.select_files(&names)?)
    };
    Ok(CaptionData {
        train: Part::all(list(tr, usize::MAX)?),
        val: Part::all(list(dev, s.val_size)?),
        test: Part::all(list(test, s.test_size)?),
        origin: format!("{origin} (its train, dev and test lists)"),
        scenes: false,
    })
}
