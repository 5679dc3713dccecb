//! The data of a run: the training and validation sets, their class names, the input shape
//! and the normalization, for image data sets (IDX family) and CSV tables.

use crate::config::{Task, TrainConfig};
use crate::error::{CliError, CliResult};
use nabla_core::{Generator, Tensor};
use nabla_data::{CsvDataset, CsvOptions, Dataset, FashionMnist, ImageDataset, MnistFamily, Split, Target};
use nabla_data::{ReadLimits, TensorDataset};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a run trains and validates on.
pub struct Data {
    /// The training samples (after `--limit`).
    pub train: Arc<dyn Dataset>,
    /// The validation samples: the test split of an image set, the held-out rows of a table.
    pub val: Arc<dyn Dataset>,
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
}

/// The image data sets `--dataset` accepts.
pub const IMAGE_DATASETS: &[&str] = &["fashion-mnist", "mnist", "kmnist"];

fn family(name: &str) -> Option<MnistFamily> {
    match name {
        "fashion-mnist" => Some(MnistFamily::Fashion),
        "mnist" => Some(MnistFamily::Mnist),
        "kmnist" => Some(MnistFamily::Kmnist),
        _ => None,
    }
}

/// Find and load both splits of an IDX image data set.
fn load_images(cfg: &TrainConfig) -> CliResult<(ImageDataset, ImageDataset, PathBuf)> {
    let name = cfg.dataset.as_str();
    let fam = family(name).ok_or_else(|| {
        CliError::new(format!(
            "unknown dataset {name:?} (known: {}, or csv with --data FILE.csv)",
            IMAGE_DATASETS.join(", ")
        ))
    })?;
    if let Some(d) = &cfg.data_dir {
        if !d.is_dir() {
            return Err(CliError::new(format!("--data-dir {}: no such directory", d.display())));
        }
    }
    let dir = if fam == MnistFamily::Fashion {
        let mut f = FashionMnist::new();
        if let Some(d) = &cfg.data_dir {
            f = f.with_data_dir(d);
        }
        f.locate()?
    } else {
        let mut dirs = Vec::new();
        let env = std::env::var_os("NABLA_DATA")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        for root in cfg.data_dir.iter().chain(env.iter()) {
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

/// Per-channel mean and population std of the pixels (as values in [0, 1]).
fn channel_stats(ds: &ImageDataset) -> CliResult<(Vec<f32>, Vec<f32>)> {
    let [c, h, w] = ds.image_shape();
    let (mut sum, mut sq) = (vec![0f64; c], vec![0f64; c]);
    for i in 0..ds.len() {
        let px = ds.pixels(i)?;
        for (ch, plane) in px.chunks_exact(h * w).enumerate() {
            let (s, q) = plane
                .iter()
                .fold((0u64, 0u64), |(s, q), &b| (s + b as u64, q + (b as u64) * (b as u64)));
            sum[ch] += s as f64;
            sq[ch] += q as f64;
        }
    }
    let n = (ds.len() * h * w).max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n / 255.0).collect();
    let std = sq
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
    Ok((mean.into_iter().map(|m| m as f32).collect(), std))
}

/// Load the data a configuration names.
pub fn load(cfg: &TrainConfig) -> CliResult<Data> {
    if cfg.data.is_some() || cfg.dataset == "csv" {
        return load_csv(cfg);
    }
    if cfg.task == Task::Regression {
        return Err(CliError::new(
            "--task regression needs a table: --data FILE.csv --target COLUMN",
        ));
    }
    let (train, test, dir) = load_images(cfg)?;
    let classes = train.classes().to_vec();
    let shape = train.image_shape().to_vec();
    let train = match cfg.limit {
        Some(n) if n < train.len() => {
            let pixels: Vec<u8> = (0..n)
                .map(|i| train.pixels(i).map(<[u8]>::to_vec))
                .collect::<Result<Vec<_>, _>>()?
                .concat();
            ImageDataset::new(
                pixels,
                train.labels()[..n].to_vec(),
                train.image_shape(),
                classes.clone(),
                &dir,
            )?
        }
        _ => train,
    };
    let normalize = channel_stats(&train)?;
    let train: Arc<dyn Dataset> = Arc::new(train);
    Ok(Data {
        train,
        val: Arc::new(test),
        classes,
        input_shape: shape,
        normalize,
        target_scale: None,
        origin: dir,
    })
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
        Task::Classification => CsvOptions::classification(target),
    };
    let table = CsvDataset::load(path, &opts)?;
    let n = table.len();
    let width = table.feature_names().len();
    let n_val = ((n as f64 * cfg.val_split).round() as usize).max(1);
    if n < 2 || n_val >= n || width == 0 {
        return Err(CliError::new(format!(
            "{}: {n} rows and {width} feature columns are too few to train and hold out {:.0}%",
            path.display(),
            cfg.val_split * 100.0
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    Generator::new(cfg.seed ^ 0x5EED_5B11).shuffle(&mut order);
    let (val_idx, train_idx) = order.split_at(n_val);
    let mut train_idx = train_idx.to_vec();
    if let Some(l) = cfg.limit {
        train_idx.truncate(l);
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
    let (mut xv, mut yv, cv) = rows(val_idx)?;
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
    let (train, val, target_scale): (TensorDataset, TensorDataset, _) = match cfg.task {
        Task::Regression => {
            let (m, s) = column_stats(&yt, 1);
            for y in [&mut yt, &mut yv] {
                y.iter_mut().for_each(|v| *v = (*v - m[0]) / s[0]);
            }
            let t = TensorDataset::regression(&tensor(xt, nt, width)?, &tensor(yt, nt, 1)?)?;
            let v = TensorDataset::regression(&tensor(xv, nv, width)?, &tensor(yv, nv, 1)?)?;
            (t, v, Some((m[0], s[0])))
        }
        Task::Classification => {
            let classes = table.classes().to_vec();
            let t = TensorDataset::new(&tensor(xt, nt, width)?, ct).and_then(|d| d.with_classes(classes.clone()));
            let v = TensorDataset::new(&tensor(xv, nv, width)?, cv).and_then(|d| d.with_classes(classes));
            (t?, v?, None)
        }
    };
    Ok(Data {
        classes: table.classes().to_vec(),
        train: Arc::new(train),
        val: Arc::new(val),
        input_shape: vec![width],
        normalize: (mean, std),
        target_scale,
        origin: path.clone(),
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
