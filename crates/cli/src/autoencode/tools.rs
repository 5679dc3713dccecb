//! `nabla autoencode encode` and `decode`: a trained autoencoder's codes of a split as CSV,
//! the image of one latent point, and the images along the line between two test images'
//! codes as one strip.

use super::config::{read_ae_checkpoint, AeMeta};
use super::task::{decode as decode_codes, encode_all, Images};
use crate::error::{CliError, CliResult};
use crate::plot::{grid_png, GridOptions};
use crate::trainer::data;
use clap::Args;
use nabla_core::Tensor;
use nabla_models::autoencoder::{build_autoencoder, Autoencoder};
use nabla_nn::Module;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `nabla autoencode encode`'s flags.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// A checkpoint written by nabla autoencode
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// train, val or test (the run's own split of the data set)
    #[arg(long, value_name = "SPLIT", default_value = "test")]
    split: String,
    /// The CSV file to write: z1..zL and the label, one row per image
    #[arg(long, short = 'o', value_name = "FILE.csv")]
    output: PathBuf,
    /// Directory searched first for the data set [default: the run's]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// `nabla autoencode decode`'s flags.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// A checkpoint written by nabla autoencode
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// A latent point, comma-separated, e.g. "0.1,-2.0"
    #[arg(
        long,
        value_name = "VALUES",
        allow_hyphen_values = true,
        required_unless_present = "interpolate"
    )]
    latent: Option<String>,
    /// Decode the line between the codes of test images I and J instead
    #[arg(long, num_args = 2, value_names = ["I", "J"], conflicts_with = "latent")]
    interpolate: Option<Vec<usize>>,
    /// Images along the line, both ends included
    #[arg(long, value_name = "N", default_value_t = 8)]
    steps: usize,
    /// The PNG file to write
    #[arg(long, short = 'o', value_name = "FILE.png")]
    output: PathBuf,
    /// Directory searched first for the data set (for --interpolate) [default: the run's]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// Refuse an output whose folder does not exist, before any work.
fn check_output(path: &Path) -> CliResult<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(CliError::new(format!(
            "-o {}: the folder {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    if path.is_dir() {
        return Err(CliError::new(format!("-o {}: a folder, not a file", path.display())));
    }
    Ok(())
}

/// The model of an autoencoder checkpoint, with its weights, and what the run was.
fn load(path: &Path) -> CliResult<(Box<dyn Autoencoder>, AeMeta)> {
    let (meta, ck) = read_ae_checkpoint(path, "--checkpoint ")?;
    let cfg = &meta.config;
    cfg.check_latent(&meta.input_shape)?;
    let model = build_autoencoder(&cfg.model, &cfg.model_config(&meta.input_shape))?;
    ck.restore_model(&model.state_dict()).map_err(|e| {
        CliError::new(format!(
            "--checkpoint {}: does not fit {} ({e})",
            path.display(),
            cfg.model
        ))
    })?;
    Ok((model, meta))
}

/// The images of one split (`train`, `val`, `test`) of the run's data.
fn split(meta: &AeMeta, name: &str, data_dir: &Option<PathBuf>) -> CliResult<Images> {
    let mut tc = meta.config.train_config();
    if data_dir.is_some() {
        tc.data_dir = data_dir.clone();
    }
    let d = data::load(&tc)?;
    let ds = match name {
        "train" => Some(d.train),
        "val" => d.val,
        "test" => d.test,
        other => return Err(CliError::new(format!("unknown split {other:?} (train, val or test)"))),
    };
    let ds = ds.ok_or_else(|| CliError::new(format!("the run has no {name} split")))?;
    Images::load(ds)
}

/// Run `nabla autoencode encode`.
pub fn encode(a: EncodeArgs) -> CliResult<()> {
    check_output(&a.output)?;
    let (model, meta) = load(&a.checkpoint)?;
    let images = split(&meta, &a.split, &a.data_dir)?;
    let z = encode_all(model.as_ref(), &images.x)?;
    let l = meta.config.latent;
    let mut csv: String = (1..=l).map(|i| format!("z{i},")).collect();
    csv.push_str("label\n");
    for (row, label) in z.chunks_exact(l).zip(&images.labels) {
        for v in row {
            let _ = write!(csv, "{v},");
        }
        let _ = writeln!(csv, "{label}");
    }
    crate::image_io::write_atomic(&a.output, csv.as_bytes())?;
    println!(
        "wrote the {l}-dim codes of {} {} images to {}",
        images.len(),
        a.split,
        a.output.display()
    );
    Ok(())
}

/// Parse `--latent "0.1,-2.0"` as a point of `l` values.
fn parse_latent(text: &str, l: usize) -> CliResult<Vec<f32>> {
    let values = text
        .split(',')
        .map(|s| {
            let s = s.trim();
            s.parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| CliError::new(format!("--latent {text:?}: {s:?} is not a number")))
        })
        .collect::<CliResult<Vec<f32>>>()?;
    if values.len() != l {
        return Err(CliError::new(format!(
            "--latent {text:?}: {} values, but the checkpoint's code has {l}",
            values.len()
        )));
    }
    Ok(values)
}

/// Run `nabla autoencode decode`.
pub fn decode(a: DecodeArgs) -> CliResult<()> {
    check_output(&a.output)?;
    let (model, meta) = load(&a.checkpoint)?;
    let (l, bce) = (meta.config.latent, meta.config.bce());
    let shape = &meta.input_shape;
    if let Some(text) = &a.latent {
        let z = Tensor::from_vec(parse_latent(text, l)?, &[1, l])?;
        let img = decode_codes(model.as_ref(), &z, shape, bce)?;
        let opts = GridOptions {
            cols: 1,
            scale: 4,
            ..GridOptions::default()
        };
        grid_png(&a.output, &img, &opts)?;
        println!("wrote the decoding of ({text}) to {}", a.output.display());
        return Ok(());
    }
    let (i, j) = match a.interpolate.as_deref() {
        Some(&[i, j]) => (i, j),
        _ => return Err(CliError::new("give --latent VALUES or --interpolate I J")),
    };
    if a.steps < 2 {
        return Err(CliError::new("--steps must be at least 2 (both ends)"));
    }
    let test = split(&meta, "test", &a.data_dir)?;
    if let Some(&k) = [i, j].iter().find(|&&k| k >= test.len()) {
        return Err(CliError::new(format!(
            "--interpolate: no test image {k} (the test split has {})",
            test.len()
        )));
    }
    let ends = Tensor::cat(&[&test.x.narrow(0, i, 1)?, &test.x.narrow(0, j, 1)?], 0)?;
    let z = encode_all(model.as_ref(), &ends)?;
    let (zi, zj) = z.split_at(l);
    let mut line = Vec::with_capacity(a.steps * l);
    for s in 0..a.steps {
        let t = s as f32 / (a.steps - 1) as f32;
        line.extend(zi.iter().zip(zj).map(|(p, q)| (1.0 - t) * p + t * q));
    }
    let z = Tensor::from_vec(line, &[a.steps, l])?;
    let strip = decode_codes(model.as_ref(), &z, shape, bce)?;
    let name = |k: usize| meta.classes.get(test.labels[k]).cloned().unwrap_or_default();
    let opts = GridOptions {
        cols: a.steps,
        scale: 2,
        gap: 2,
        title: format!("test image {i} ({}) to {j} ({})", name(i), name(j)),
    };
    grid_png(&a.output, &strip, &opts)?;
    println!(
        "wrote {} decodings from test image {i} to {j} to {}",
        a.steps,
        a.output.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latent_point_is_parsed_and_checked() {
        assert_eq!(parse_latent("0.1, -2", 2).unwrap(), vec![0.1, -2.0]);
        let e = parse_latent("0.1,-2.0,3", 2).unwrap_err().to_string();
        assert!(e.contains("3 values") && e.contains("has 2"), "{e}");
        assert!(parse_latent("0.1,x", 2).unwrap_err().to_string().contains("\"x\""));
        assert!(parse_latent("nan,1", 2).is_err());
    }
}
