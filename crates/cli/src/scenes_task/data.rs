//! The scene tasks' data: Fashion-MNIST scenes generated from a fixed seed (training and
//! validation scenes from the training images, test scenes from the test images), or a
//! user's own scenes read from COCO files (`--data coco:PATH`) or an image and mask folder
//! (`--data masks:PATH`), whose held-out part validates and tests.

use crate::config::{Task, TrainConfig};
use crate::error::{CliError, CliResult};
use nabla_data::scenes::{read_coco, read_masks, SceneConfig, SceneFiles, Scenes};
use nabla_data::{Dataset, Sample, Split};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Training scenes generated when `--limit` does not say: localization, segmentation.
pub const DEFAULT_TRAIN: [usize; 2] = [50_000, 8_000];
/// Validation scenes, and as many test scenes, when `--val-size` does not say.
pub const DEFAULT_VAL: usize = 1_000;
/// The seed of the generated scenes: fixed, so that runs with different `--seed`s train and
/// are scored on the same scenes.
pub const SCENE_SEED: u64 = 0;

/// The splits of a scene run.
pub struct SceneData {
    /// Training scenes.
    pub train: Arc<dyn Dataset>,
    /// Validation scenes (none with `--val-size 0`).
    pub val: Option<Arc<dyn Dataset>>,
    /// Test scenes.
    pub test: Arc<dyn Dataset>,
    /// The item classes (without the background).
    pub classes: Vec<String>,
    /// `[H, W]` of every scene.
    pub size: [usize; 2],
    /// Where the scenes come from, for the banner.
    pub origin: String,
}

/// Samples `start..start + len` of another data set.
struct Part {
    inner: Arc<dyn Dataset>,
    start: usize,
    len: usize,
}

impl Dataset for Part {
    fn len(&self) -> usize {
        self.len
    }
    fn get(&self, index: usize) -> nabla_data::Result<Sample> {
        if index >= self.len {
            return Err(nabla_data::DataError::invalid(
                "scenes",
                format!("index {index} out of range for {} scenes", self.len),
            ));
        }
        self.inner.get(self.start + index)
    }
    fn classes(&self) -> &[String] {
        self.inner.classes()
    }
}

fn part(inner: &Arc<dyn Dataset>, start: usize, len: usize) -> Arc<dyn Dataset> {
    Arc::new(Part {
        inner: inner.clone(),
        start,
        len,
    })
}

/// Where a task's scenes or images come from, as `--data` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// Scenes generated from the seed (no `--data`, or `--data scenes`).
    Generated,
    /// `PREFIX:PATH` for one of the prefixes the task reads: the prefix (no colon), the path.
    File(&'static str, PathBuf),
}

/// Parse `--data` for `--task task`, which reads generated scenes or `PREFIX:PATH` for each
/// of `prefixes` (`["coco", "masks"]`); anything else is one line naming what is read.
pub fn data_source(data: Option<&Path>, task: &str, prefixes: &[&'static str]) -> CliResult<DataSource> {
    let Some(d) = data else {
        return Ok(DataSource::Generated);
    };
    let s = d.to_string_lossy();
    if s == "scenes" {
        return Ok(DataSource::Generated);
    }
    for &p in prefixes {
        if let Some(path) = s.strip_prefix(p).and_then(|r| r.strip_prefix(':')) {
            return Ok(DataSource::File(p, path.into()));
        }
    }
    let forms: Vec<String> = prefixes.iter().map(|p| format!("{p}:PATH")).collect();
    let read = match forms.split_last() {
        Some((last, [])) => format!(" or {last}"),
        Some((last, rest)) => format!(", {} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(CliError::new(format!(
        "--data {s}: --task {task} reads scenes (generated, the default){read}"
    )))
}

/// The view a task trains on.
fn view(cfg: &TrainConfig, set: Scenes) -> Arc<dyn Dataset> {
    match cfg.task {
        Task::Localize => Arc::new(set.localize()),
        _ => Arc::new(set.segment()),
    }
}

/// Load the scenes a configuration asks for.
pub fn load(cfg: &TrainConfig) -> CliResult<SceneData> {
    match data_source(cfg.data.as_deref(), cfg.task.name(), &["coco", "masks"])? {
        DataSource::Generated => generated(cfg),
        DataSource::File("coco", p) => from_files(cfg, read_coco(&p)?, format!("coco:{}", p.display())),
        // The only other prefix accepted.
        DataSource::File(_, p) => from_files(cfg, read_masks(&p)?, format!("masks:{}", p.display())),
    }
}

fn generated(cfg: &TrainConfig) -> CliResult<SceneData> {
    let fashion = TrainConfig {
        dataset: "fashion-mnist".into(),
        ..cfg.clone()
    };
    let (train_src, test_src, dir) = crate::trainer::data::load_images(&fashion)?;
    let sc = SceneConfig {
        seed: SCENE_SEED,
        ..match cfg.task {
            Task::Localize => SceneConfig::default(),
            _ => SceneConfig::segmentation(),
        }
    };
    let n_train = cfg.limit.unwrap_or(DEFAULT_TRAIN[(cfg.task == Task::Segment) as usize]);
    let n_val = match (cfg.val_size, cfg.val_fraction) {
        (Some(k), _) => k,
        (None, Some(f)) => (n_train as f64 * f).round() as usize,
        (None, None) => DEFAULT_VAL,
    };
    let n_val = cfg.val_limit.map_or(n_val, |l| l.min(n_val));
    let n_test = if n_val > 0 { n_val } else { DEFAULT_VAL };
    let classes = train_src.classes().to_vec();
    let all = view(cfg, Scenes::new(train_src, Split::Train, sc, n_train + n_val)?);
    let test = view(cfg, Scenes::new(test_src, Split::Test, sc, n_test)?);
    Ok(SceneData {
        train: part(&all, 0, n_train),
        val: (n_val > 0).then(|| part(&all, n_train, n_val)),
        test,
        classes,
        size: sc.size,
        origin: format!("Fashion-MNIST scenes from {}", dir.display()),
    })
}

fn from_files(cfg: &TrainConfig, files: SceneFiles, origin: String) -> CliResult<SceneData> {
    use nabla_data::scenes::SceneSet;
    let (size, classes) = (files.size(), files.classes().to_vec());
    let all: Arc<dyn Dataset> = match cfg.task {
        Task::Localize => Arc::new(files.localize()?),
        _ => Arc::new(files.segment()?),
    };
    let n = all.len();
    let n_val = match (cfg.val_size, cfg.val_fraction) {
        (Some(k), _) => k,
        (None, f) => (n as f64 * f.unwrap_or(1.0 / 12.0)).round().max(1.0) as usize,
    };
    if n_val == 0 || n_val >= n {
        return Err(CliError::new(format!(
            "--data {origin}: {n} scenes cannot train and hold out {n_val} to validate and test on (set --val-size)"
        )));
    }
    let n_train = cfg.limit.map_or(n - n_val, |l| l.min(n - n_val));
    let val = part(&all, n - n_val, n_val);
    Ok(SceneData {
        train: part(&all, 0, n_train),
        val: Some(val.clone()),
        test: val,
        classes,
        size,
        origin: format!("{origin} (the last {n_val} scenes held out to validate and test)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_sources_parse_by_prefix_and_name_what_a_task_reads() {
        let parse = |d: Option<&str>, prefixes| data_source(d.map(Path::new), "segment", prefixes);
        let two: &[&'static str] = &["coco", "masks"];
        assert_eq!(parse(None, two).unwrap(), DataSource::Generated);
        assert_eq!(parse(Some("scenes"), two).unwrap(), DataSource::Generated);
        assert_eq!(
            parse(Some("coco:/a/b.json"), two).unwrap(),
            DataSource::File("coco", "/a/b.json".into())
        );
        assert_eq!(
            parse(Some("masks:dir:with:colons"), two).unwrap(),
            DataSource::File("masks", "dir:with:colons".into())
        );
        // A prefix the task does not read, a prefix without its colon, a bare path.
        for bad in ["voc:x", "cocox", "/data/set"] {
            let e = parse(Some(bad), two).unwrap_err().to_string();
            assert_eq!(
                e,
                format!("--data {bad}: --task segment reads scenes (generated, the default), coco:PATH or masks:PATH")
            );
        }
        let three: &[&'static str] = &["coco", "masks", "voc"];
        let e = parse(Some("x"), three).unwrap_err().to_string();
        assert!(e.ends_with("the default), coco:PATH, masks:PATH or voc:PATH"), "{e}");
        let e = parse(Some("x"), &["voc"]).unwrap_err().to_string();
        assert!(e.ends_with("the default) or voc:PATH"), "{e}");
    }
}
