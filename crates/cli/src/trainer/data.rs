//! The data of a run: the training and validation sets, their class names, the input shape
//! and the normalization, for image data sets (IDX family) and CSV tables.

use crate::config::{Task, TrainConfig};
use crate::error::{CliError, CliResult};
use nabla_core::{Generator, Tensor};
use nabla_data::cifar::Cifar;
use nabla_data::{CsvDataset, CsvOptions, Dataset, FashionMnist, ImageDataset, MnistFamily, Split, Target};
use nabla_data::{ReadLimits, TensorDataset};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a run trains and validates on.
pub struct Data {
    /// The training samples (after `--limit`).
    pub train: Arc<dyn Dataset>,
    /// The validation samples, held out of the training split (or the table's rows) with a
    /// seeded shuffle; none with `--val-size 0`.
    pub val: Option<Arc<dyn Dataset>>,
    /// The test split of an image set, scored once at the end and by `nabla eval` (a table
    /// has none: its held-out rows are what `eval` scores).
    pub test: Option<Arc<dyn Dataset>>,
    /// Class names by label (empty for regression).
    pub classes: Vec<String>,
    /// Shape of one sample: `[C, H, W]` or `[features]`.
    pub input_shape: Vec<usize>,
    /// Per-channel mean and std that image samples are normalized with by the loader (the
    /// rows of a table come standardized already, with these per-feature values).
    pub normalize: (Vec<f32>, Vec<f32>),
    /// Regression targets are trained as `(y − mean) / std`.
    pub target_scale: Option<(f32, f32)>,
    /// Where the data was found.
    pub origin: PathBuf,
    /// A table's feature columns, in the order the model takes them (empty for images).
    pub features: Vec<String>,
}

/// The image data sets `--dataset` accepts.
pub const IMAGE_DATASETS: &[&str] = &["fashion-mnist", "mnist", "kmnist", "imagefolder", "cifar10", "cifar100"];

fn family(name: &str) -> Option<MnistFamily> {
    match name {
        "fashion-mnist" => Some(MnistFamily::Fashion),
        "mnist" => Some(MnistFamily::Mnist),
        "kmnist" => Some(MnistFamily::Kmnist),
        _ => None,
    }
}

/// Find and load both splits of an IDX image data set.
pub(crate) fn load_images(cfg: &TrainConfig) -> CliResult<(ImageDataset, ImageDataset, PathBuf)> {
    let name = cfg.dataset.as_str();
    if let Some(kind) = cifar(name) {
        return load_cifar(cfg, kind);
    }
    let fam = family(name).ok_or_else(|| {
        CliError::new(format!(
            "unknown dataset {name:?} (known: {}, or csv with --data FILE.csv)",
            IMAGE_DATASETS.join(", ")
        ))
    })?;
    let dir = if let Some(d) = &cfg.data_dir {
        // A folder named on the command line holds the data, or the run stops: no fallback.
        if !d.is_dir() {
            return Err(CliError::new(format!("--data-dir {}: no such directory", d.display())));
        }
        let inside = d.join(name);
        let files: Vec<String> = [Split::Train, Split::Test]
            .iter()
            .flat_map(|&s| fam.file_names(s))
            .collect();
        [d.clone(), inside.clone()]
            .into_iter()
            .find(|c| fam.is_in(c))
            .ok_or_else(|| {
                CliError::new(format!(
                    "--data-dir {}: {name} is not there (looked in {} and {} for {}, each raw or .gz)",
                    d.display(),
                    d.display(),
                    inside.display(),
                    files.join(", ")
                ))
            })?
    } else if fam == MnistFamily::Fashion {
        FashionMnist::new().locate()?
    } else {
        let mut dirs = Vec::new();
        let env = std::env::var_os("NABLA_DATA")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        for root in env.iter() {
            dirs.push(root.clone());
            dirs.push(root.join(name));
        }
        dirs.push(Path::new("/usr/share/datasets").join(name));
        dirs.iter().find(|d| fam.is_in(d)).cloned().ok_or_else(|| {
            let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            CliError::new(format!("{name}: not found in {} (pass --data-dir)", list.join(", ")))
        })?
    };
    let limits = ReadLimits::default();
    let load = |s| fam.load_dir(&dir, s, &limits);
    Ok((load(Split::Train)?, load(Split::Test)?, dir))
}

/// Running per-channel sums of 8-bit pixels, for their mean and population std.
pub(crate) struct ByteStats {
    plane: usize,
    images: usize,
    sum: Vec<f64>,
    sq: Vec<f64>,
}

impl ByteStats {
    /// Empty sums for images of `[C, H, W]`.
    pub(crate) fn new([c, h, w]: [usize; 3]) -> ByteStats {
        ByteStats {
            plane: h * w,
            images: 0,
            sum: vec![0f64; c],
            sq: vec![0f64; c],
        }
    }

    /// Add one image's C×H×W bytes.
    pub(crate) fn add(&mut self, px: &[u8]) {
        for (ch, plane) in px.chunks_exact(self.plane).enumerate() {
            let (s, q) = plane
                .iter()
                .fold((0u64, 0u64), |(s, q), &b| (s + b as u64, q + (b as u64) * (b as u64)));
            self.sum[ch] += s as f64;
            self.sq[ch] += q as f64;
        }
        self.images += 1;
    }

    /// Mean and population std per channel, as values in [0, 1] (std 1 for a constant channel).
    pub(crate) fn finish(&self) -> (Vec<f32>, Vec<f32>) {
        let n = (self.images * self.plane).max(1) as f64;
        let mean: Vec<f64> = self.sum.iter().map(|s| s / n / 255.0).collect();
        let std = self
            .sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| {
                let var = (q / n / (255.0 * 255.0) - m * m).max(0.0);
                if var.sqrt() > 1e-6 {
                    var.sqrt() as f32
                } else {
                    1.0
                }
            })
            .collect();
        (mean.into_iter().map(|m| m as f32).collect(), std)
    }
}

fn cifar(name: &str) -> Option<Cifar> {
    match name {
        "cifar10" => Some(Cifar::Ten),
        "cifar100" => Some(Cifar::HundredFine),
        _ => None,
    }
}

/// Both splits of CIFAR-10 or CIFAR-100 (fine labels), the binary versions, from
/// `--data-dir` (or its `cifar-10-batches-bin` / `cifar-100-binary` folder), else
/// `$NABLA_DATA/<name>` or `/usr/share/datasets/<name>`.
fn load_cifar(cfg: &TrainConfig, kind: Cifar) -> CliResult<(ImageDataset, ImageDataset, PathBuf)> {
    let name = cfg.dataset.as_str();
    let mut dirs = Vec::new();
    if let Some(d) = &cfg.data_dir {
        if !d.is_dir() {
            return Err(CliError::new(format!("--data-dir {}: no such directory", d.display())));
        }
        dirs.push(d.clone());
    } else {
        if let Some(root) = std::env::var_os("NABLA_DATA").filter(|v| !v.is_empty()) {
            dirs.push(PathBuf::from(&root).join(name));
        }
        dirs.push(Path::new("/usr/share/datasets").join(name));
    }
    let limits = ReadLimits::default();
    let mut last = None;
    for dir in &dirs {
        match kind.load_dir(dir, Split::Train, &limits) {
            Ok(train) => return Ok((train, kind.load_dir(dir, Split::Test, &limits)?, dir.clone())),
            // A missing file tries the next folder; a damaged one is said.
            Err(nabla_data::DataError::NotFound { .. }) => {}
            Err(e) => last = Some(e),
        }
    }
    let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(CliError::new(format!(
        "{name}: the binary version ({}) is not in {} ({}{})",
        kind.file_names(Split::Train).join(", "),
        list.join(" or "),
        match cfg.data_dir {
            Some(_) => "nor in its folder from the official archive",
            None => "pass --data-dir",
        },
        last.map_or(String::new(), |e| format!("; {e}"))
    )))
}

/// Per-channel mean and population std of the pixels (as values in [0, 1]).
pub(crate) fn channel_stats(ds: &ImageDataset) -> CliResult<(Vec<f32>, Vec<f32>)> {
    let mut st = ByteStats::new(ds.image_shape());
    for i in 0..ds.len() {
        st.add(ds.pixels(i)?);
    }
    Ok(st.finish())
}

/// The normalization `--normalize` asks for over `channels` channels; `auto` computes it
/// with `auto` (the training images' statistics).
pub(crate) fn normalization(
    cfg: &TrainConfig,
    channels: usize,
    auto: impl FnOnce() -> CliResult<(Vec<f32>, Vec<f32>)>,
) -> CliResult<(Vec<f32>, Vec<f32>)> {
    use crate::config::images::{IMAGENET_MEAN, IMAGENET_STD};
    Ok(match cfg.images.normalize() {
        "none" => (vec![0.0; channels], vec![1.0; channels]),
        // Grey images take the mean of the three channels' statistics.
        "imagenet" if channels == 1 => (
            vec![IMAGENET_MEAN.iter().sum::<f32>() / 3.0],
            vec![IMAGENET_STD.iter().sum::<f32>() / 3.0],
        ),
        "imagenet" => (IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec()),
        _ => auto()?,
    })
}

/// Load the data a configuration names.
pub fn load(cfg: &TrainConfig) -> CliResult<Data> {
    load_for(cfg, None)
}

/// Load the data a configuration names; `fixed` (`[C, H, W]`, from a checkpoint) fixes an
/// image folder's input shape, and then its images are decoded on access and its
/// normalization is left to the checkpoint (what `nabla eval` needs).
pub fn load_for(cfg: &TrainConfig, fixed: Option<[usize; 3]>) -> CliResult<Data> {
    if cfg.data.is_some() || cfg.dataset == "csv" {
        return load_csv(cfg);
    }
    if cfg.dataset == "imagefolder" {
        return super::imagefolder::load(cfg, fixed);
    }
    let ic = &cfg.images;
    for (flag, given) in [("--image-size", ic.image_size.is_some()), ("--strict", ic.strict)] {
        if given {
            return Err(CliError::new(format!(
                "{flag} applies to --dataset imagefolder (here {})",
                cfg.dataset
            )));
        }
    }
    if cfg.task == Task::Regression {
        return Err(CliError::new(
            "--task regression needs a table: --data FILE.csv --target COLUMN",
        ));
    }
    let (full, test, dir) = load_images(cfg)?;
    let classes = full.classes().to_vec();
    let shape = full.image_shape().to_vec();
    let n = full.len();
    let n_val = held_out(cfg, n, 1.0 / 12.0);
    if n_val >= n {
        return Err(CliError::new(format!(
            "{}: {n} training images are too few to hold out {n_val} for validation (--val-size)",
            dir.display()
        )));
    }
    let (mut val_idx, mut train_idx) = split_indices(n, n_val, cfg.seed);
    if let Some(l) = cfg.limit {
        train_idx.truncate(l);
    }
    if let Some(l) = cfg.val_limit {
        val_idx.truncate(l);
    }
    let train = subset(&full, &train_idx, &dir)?;
    let val = (!val_idx.is_empty())
        .then(|| subset(&full, &val_idx, &dir))
        .transpose()?;
    let normalize = normalization(cfg, shape[0], || channel_stats(&train))?;
    Ok(Data {
        train: Arc::new(train),
        val: val.map(|v| Arc::new(v) as Arc<dyn Dataset>),
        test: Some(Arc::new(test)),
        classes,
        input_shape: shape,
        normalize,
        target_scale: None,
        origin: dir,
        features: vec![],
    })
}

/// How many of `n` training samples to hold out: `--val-size`, else `--val-fraction`,
/// else `default_fraction` of them.
pub(crate) fn held_out(cfg: &TrainConfig, n: usize, default_fraction: f64) -> usize {
    match (cfg.val_size, cfg.val_fraction) {
        (Some(k), _) => k,
        (None, f) => (n as f64 * f.unwrap_or(default_fraction)).round() as usize,
    }
}

/// A seeded split of `0..n` into `n_val` validation indices and the training rest, each in
/// ascending order (the same seed gives the same split, whatever `--limit` asks).
pub(crate) fn split_indices(n: usize, n_val: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    Generator::new(seed ^ 0x5EED_5B11).shuffle(&mut order);
    let (val, train) = order.split_at(n_val.min(n));
    let (mut val, mut train) = (val.to_vec(), train.to_vec());
    val.sort_unstable();
    train.sort_unstable();
    (val, train)
}

/// The images of `ds` at `idx`, in that order.
fn subset(ds: &ImageDataset, idx: &[usize], dir: &Path) -> CliResult<ImageDataset> {
    let mut pixels = Vec::with_capacity(idx.len() * ds.image_shape().iter().product::<usize>());
    for &i in idx {
        pixels.extend_from_slice(ds.pixels(i)?);
    }
    let labels = idx.iter().map(|&i| ds.labels()[i]).collect();
    Ok(ImageDataset::new(
        pixels,
        labels,
        ds.image_shape(),
        ds.classes().to_vec(),
        dir,
    )?)
}

/// Load a CSV table, split it into training and held-out rows (seeded), and standardize
/// features (and regression targets) with the training rows' statistics.
fn load_csv(cfg: &TrainConfig) -> CliResult<Data> {
    let path = cfg
        .data
        .as_ref()
        .ok_or_else(|| CliError::new("--dataset csv needs --data FILE.csv"))?;
    let target = cfg
        .target
        .as_deref()
        .ok_or_else(|| CliError::new("--data FILE.csv needs --target COLUMN"))?;
    if !path.is_file() {
        return Err(CliError::new(format!("--data {}: no such file", path.display())));
    }
    let opts = match cfg.task {
        Task::Regression => CsvOptions::regression(target),
        // The scene tasks never read a table (scenes_task loads their data).
        _ => CsvOptions::classification(target),
    };
    let table = CsvDataset::load(path, &opts)?;
    let n = table.len();
    let width = table.feature_names().len();
    let n_val = held_out(cfg, n, 0.2);
    if n < 2 || n_val >= n || width == 0 {
        return Err(CliError::new(format!(
            "{}: {n} rows and {width} feature columns are too few to train and hold out {n_val}",
            path.display(),
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    Generator::new(cfg.seed ^ 0x5EED_5B11).shuffle(&mut order);
    let (val_idx, train_idx) = order.split_at(n_val);
    let (mut train_idx, mut val_idx) = (train_idx.to_vec(), val_idx.to_vec());
    if let Some(l) = cfg.limit {
        train_idx.truncate(l);
    }
    if let Some(l) = cfg.val_limit {
        val_idx.truncate(l);
    }
    let rows = |idx: &[usize]| -> CliResult<(Vec<f32>, Vec<f32>, Vec<usize>)> {
        let (mut x, mut y, mut c) = (Vec::with_capacity(idx.len() * width), Vec::new(), Vec::new());
        for &i in idx {
            let s = table.get(i)?;
            x.extend_from_slice(&s.data);
            match s.target {
                Target::Values(v) => y.extend_from_slice(&v),
                Target::Class(k) => c.push(k),
            }
        }
        Ok((x, y, c))
    };
    let (mut xt, mut yt, ct) = rows(&train_idx)?;
    let (mut xv, mut yv, cv) = rows(&val_idx)?;
    let (mean, std) = column_stats(&xt, width);
    for x in [&mut xt, &mut xv] {
        for row in x.chunks_exact_mut(width) {
            for ((v, m), s) in row.iter_mut().zip(&mean).zip(&std) {
                *v = (*v - m) / s;
            }
        }
    }
    let tensor = |x: Vec<f32>, rows: usize, cols: usize| Tensor::from_vec(x, &[rows, cols]);
    let (nt, nv) = (train_idx.len(), val_idx.len());
    let (train, val, target_scale): (TensorDataset, Option<TensorDataset>, _) = match cfg.task {
        Task::Regression => {
            let (m, s) = column_stats(&yt, 1);
            for y in [&mut yt, &mut yv] {
                y.iter_mut().for_each(|v| *v = (*v - m[0]) / s[0]);
            }
            let t = TensorDataset::regression(&tensor(xt, nt, width)?, &tensor(yt, nt, 1)?)?;
            let v = (nv > 0)
                .then(|| TensorDataset::regression(&tensor(xv, nv, width)?, &tensor(yv, nv, 1)?))
                .transpose()?;
            (t, v, Some((m[0], s[0])))
        }
        _ => {
            let classes = table.classes().to_vec();
            let t = TensorDataset::new(&tensor(xt, nt, width)?, ct).and_then(|d| d.with_classes(classes.clone()));
            let v = (nv > 0)
                .then(|| TensorDataset::new(&tensor(xv, nv, width)?, cv).and_then(|d| d.with_classes(classes)))
                .transpose()?;
            (t?, v, None)
        }
    };
    Ok(Data {
        classes: table.classes().to_vec(),
        train: Arc::new(train),
        val: val.map(|v| Arc::new(v) as Arc<dyn Dataset>),
        test: None,
        input_shape: vec![width],
        normalize: (mean, std),
        target_scale,
        origin: path.clone(),
        features: table.feature_names().to_vec(),
    })
}

/// Mean and population std of each of `width` columns (std 1 for a constant column).
fn column_stats(x: &[f32], width: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = (x.len() / width.max(1)).max(1) as f64;
    let mut mean = vec![0f64; width];
    for row in x.chunks_exact(width) {
        mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
    }
    mean.iter_mut().for_each(|m| *m /= rows);
    let mut var = vec![0f64; width];
    for row in x.chunks_exact(width) {
        var.iter_mut()
            .zip(row)
            .zip(&mean)
            .for_each(|((s, &v), m)| *s += (v as f64 - m).powi(2));
    }
    let std = var
        .iter()
        .map(|v| (v / rows).sqrt())
        .map(|s| if s > 1e-12 { s as f32 } else { 1.0 })
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Images of the training split carry their index in their first two pixels, test
    /// images a 255 in the third; the splits are told apart by those.
    #[test]
    fn validation_is_held_out_of_training_and_apart_from_test() {
        let dir = std::env::temp_dir().join(format!("nabla-split-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |stem: &str, n: usize, test: bool| {
            let mut px = vec![0u8; n * 784];
            for (i, img) in px.chunks_exact_mut(784).enumerate() {
                (img[0], img[1], img[2]) = ((i % 256) as u8, (i / 256) as u8, if test { 255 } else { 0 });
            }
            let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
            let header = |dims: &[u32]| {
                let mut h = vec![0, 0, 8, dims.len() as u8];
                dims.iter().for_each(|d| h.extend_from_slice(&d.to_be_bytes()));
                h
            };
            let images = [header(&[n as u32, 28, 28]), px].concat();
            std::fs::write(dir.join(format!("{stem}-images-idx3-ubyte")), images).unwrap();
            std::fs::write(
                dir.join(format!("{stem}-labels-idx1-ubyte")),
                [header(&[n as u32]), labels].concat(),
            )
            .unwrap();
        };
        write("train", 300, false);
        write("t10k", 40, true);
        let ids = |ds: &Arc<dyn Dataset>| -> Vec<(usize, u8)> {
            (0..ds.len())
                .map(|i| {
                    let x = ds.get(i).unwrap().data;
                    // Normalized to [0, 1] by the dataset; back to bytes.
                    let b = |v: f32| (v * 255.0).round() as usize;
                    (b(x[0]) + 256 * b(x[1]), b(x[2]) as u8)
                })
                .collect()
        };
        let cfg = TrainConfig {
            data_dir: Some(dir.clone()),
            limit: Some(200),
            ..TrainConfig::default()
        };
        let d = load(&cfg).unwrap();
        let (train, val, test) = (
            ids(&d.train),
            ids(d.val.as_ref().unwrap()),
            ids(d.test.as_ref().unwrap()),
        );
        // Default: one twelfth held out (5,000 of 60,000); --limit shrinks training only.
        assert_eq!((train.len(), val.len(), test.len()), (200, 25, 40));
        assert!(train.iter().chain(&val).all(|&(_, t)| t == 0) && test.iter().all(|&(_, t)| t == 255));
        let tr: std::collections::BTreeSet<usize> = train.iter().map(|p| p.0).collect();
        assert!(val.iter().all(|(i, _)| !tr.contains(i)), "validation overlaps training");
        // The same seed holds out the same images, whatever --limit says; another seed others.
        let again = load(&TrainConfig {
            limit: None,
            val_limit: Some(10),
            ..cfg.clone()
        })
        .unwrap();
        assert_eq!(ids(again.val.as_ref().unwrap()), val[..10].to_vec());
        assert_eq!(again.train.len(), 275);
        let other = load(&TrainConfig { seed: 1, ..cfg.clone() }).unwrap();
        assert_ne!(ids(other.val.as_ref().unwrap()), val);
        let none = load(&TrainConfig {
            val_size: Some(0),
            ..cfg.clone()
        })
        .unwrap();
        assert!(none.val.is_none() && none.train.len() == 200);
        let e = load(&TrainConfig {
            val_size: Some(300),
            ..cfg
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("too few"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cifar10_binaries_load_with_the_asked_normalization() {
        let dir = std::env::temp_dir().join(format!("nabla-cifar-{}", std::process::id()));
        let bin = dir.join("cifar-10-batches-bin");
        std::fs::create_dir_all(&bin).unwrap();
        // Record r: label r % 10, every pixel of channel c equal to 10·c + r.
        let batch = |n: usize| -> Vec<u8> {
            (0..n)
                .flat_map(|r| {
                    let px = (0..3).flat_map(move |c| std::iter::repeat_n((10 * c + r) as u8, 1024));
                    std::iter::once((r % 10) as u8).chain(px)
                })
                .collect()
        };
        for i in 1..=5 {
            std::fs::write(bin.join(format!("data_batch_{i}.bin")), batch(4)).unwrap();
        }
        std::fs::write(bin.join("test_batch.bin"), batch(3)).unwrap();
        let cfg = TrainConfig {
            dataset: "cifar10".into(),
            data_dir: Some(dir.clone()),
            val_size: Some(2),
            ..TrainConfig::default()
        };
        let d = load(&cfg).unwrap();
        assert_eq!(
            (d.train.len(), d.test.as_ref().unwrap().len(), d.classes[3].as_str()),
            (18, 3, "cat")
        );
        assert_eq!(d.input_shape, [3, 32, 32]);
        let mut none = cfg.clone();
        none.images.normalize = Some("none".into());
        assert_eq!(load(&none).unwrap().normalize, (vec![0.0; 3], vec![1.0; 3]));
        let mut sized = cfg.clone();
        sized.images.image_size = Some([8, 8]);
        let e = load(&sized).err().unwrap().to_string();
        assert!(e.contains("--image-size applies to --dataset imagefolder"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn column_stats_match_hand_values() {
        let (m, s) = column_stats(&[1.0, 5.0, 3.0, 5.0], 2);
        assert_eq!((m, s), (vec![2.0, 5.0], vec![1.0, 1.0]));
    }

    #[test]
    fn channel_stats_of_a_two_pixel_image() {
        let ds = ImageDataset::new(vec![0, 255], vec![0], [1, 1, 2], vec!["a".into()], Path::new("m")).unwrap();
        let (m, s) = channel_stats(&ds).unwrap();
        assert!((m[0] - 0.5).abs() < 1e-6 && (s[0] - 0.5).abs() < 1e-6, "{m:?} {s:?}");
    }
}
