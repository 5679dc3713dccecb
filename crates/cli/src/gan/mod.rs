//! `nabla gan`: a DCGAN trained on Fashion-MNIST by the training engine of `nabla_train`
//! (a two-player [`task::GanTask`]), with `nabla train`'s data loading, run folders,
//! `config.toml`, Ctrl-C and bitwise `--resume`; `gan sample` draws from a checkpoint and
//! `gan fid` scores a file of generated images.

pub mod fid;
pub mod report;
pub mod settings;
pub mod task;
mod tools;

use crate::config::TrainConfig;
use crate::error::{CliError, CliResult};
use crate::run_args::{out_help, RunArgs, RESUME_FIXED};
use crate::trainer::{self, data, folder};
use clap::{Args, Subcommand};
use fid::FidModel;
use nabla_nn::loss::GanLoss;
use nabla_nn::Module;
use nabla_train::FitOptions;
use settings::{GanSettings, EXTRA_KEY};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Train a DCGAN on Fashion-MNIST (default: nonsaturating loss, K1 = K2 = 1, latent 100,
/// Adam 2e-4 betas (0.5, 0.999) for each player, batch 128, 5 epochs).
///
/// Each step is one discriminator step on a real batch; after every --d-steps of them come
/// --g-steps generator steps. Writes to the run folder (--out, default a new
/// runs/dcgan-fashion-mnist/version_N): samples/epoch-NNN.png (the same noise every
/// epoch), curves.png, metrics.jsonl, last.safetensors, best.safetensors (lowest FID) and
/// config.toml. Ctrl-C saves last.safetensors and exits (code 130); continue with --resume.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  nabla gan\n  nabla gan --loss wgan-gp --epochs 10\n  \
                  nabla gan sample --checkpoint runs/dcgan-fashion-mnist/version_0/last.safetensors -n 64 -o grid.png\n  \
                  nabla gan fid --samples samples.safetensors"
)]
pub struct GanArgs {
    #[command(subcommand)]
    action: Option<GanAction>,
    #[command(flatten)]
    train: TrainFlags,
}

/// What `nabla gan` does besides training.
#[derive(Debug, Subcommand)]
enum GanAction {
    /// Draw images from a GAN checkpoint: a grid PNG, or a safetensors file (tensor `images`)
    Sample(tools::SampleArgs),
    /// FID of generated images (safetensors `images` [N,1,28,28] in [-1,1]) against the test set
    Fid(tools::FidArgs),
}

/// The training flags.
#[derive(Debug, Args)]
#[command(
    mut_arg("out", |a| a.help(out_help("dcgan-fashion-mnist"))),
    mut_arg("resume", |a| a.help(RESUME_FIXED))
)]
struct TrainFlags {
    /// minimax, nonsaturating or wgan-gp [default: nonsaturating]
    #[arg(long, value_name = "NAME")]
    loss: Option<String>,
    /// Discriminator (critic) steps per round, K1 [default: 1; 5 for wgan-gp]
    #[arg(long, value_name = "K1")]
    d_steps: Option<u64>,
    /// Generator steps per round, K2 [default: 1]
    #[arg(long, value_name = "K2")]
    g_steps: Option<u64>,
    /// Size of the noise vector [default: 100]
    #[arg(long, value_name = "N")]
    latent: Option<usize>,
    /// Learning rate of the discriminator [default: 0.0002]
    #[arg(long, value_name = "RATE")]
    lr_d: Option<f64>,
    /// Learning rate of the generator [default: 0.0002]
    #[arg(long, value_name = "RATE")]
    lr_g: Option<f64>,
    /// Adam's betas of both players, as B1,B2 [default: 0.5,0.999]
    #[arg(long, value_name = "B1,B2", value_delimiter = ',', allow_negative_numbers = true)]
    betas: Option<Vec<f64>>,
    /// WGAN-GP's penalty weight λ [default: 10]
    #[arg(long, value_name = "LAMBDA")]
    gp_lambda: Option<f64>,
    /// Epochs in total [default: 5]
    #[arg(long, value_name = "N")]
    epochs: Option<u64>,
    /// Real images per discriminator step [default: 128]
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Seed of the weights, shuffles and noise [default: 0]
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Directory searched first for Fashion-MNIST
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Train on the first N training images only
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    #[command(flatten)]
    run: RunArgs,
    /// LeNet-5 checkpoint whose 84-wide penultimate layer the FID is measured in [default:
    /// runs/fid-lenet5/best.safetensors, trained first if missing]
    #[arg(long, value_name = "CKPT")]
    fid_model: Option<PathBuf>,
    /// Generated images the FID is measured on after each epoch (0: no FID) [default: 10000]
    #[arg(long, value_name = "N")]
    fid_samples: Option<usize>,
}

/// Where the default FID classifier is trained and found again.
pub const DEFAULT_FID_DIR: &str = "runs/fid-lenet5";

/// Run `nabla gan`.
pub fn run(args: GanArgs) -> CliResult<()> {
    match args.action {
        Some(GanAction::Sample(a)) => tools::sample(a),
        Some(GanAction::Fid(a)) => tools::fid(a),
        None => train(args.train),
    }
}

/// The settings the flags ask for: the defaults, or the resumed run's.
fn resolve(f: &TrainFlags) -> CliResult<GanSettings> {
    if let Some(p) = &f.run.resume {
        let ck = trainer::setup::read_checkpoint(p, "--resume ")?;
        let text = ck.extra.get(EXTRA_KEY).ok_or_else(|| {
            CliError::new(format!(
                "--resume {}: not a GAN checkpoint (nabla gan writes last.safetensors in its run folder)",
                p.display()
            ))
        })?;
        let mut s = GanSettings::from_json(text, p)?;
        let fixed = [
            ("--loss", f.loss.is_some()),
            ("--d-steps", f.d_steps.is_some()),
            ("--g-steps", f.g_steps.is_some()),
            ("--latent", f.latent.is_some()),
            ("--lr-d", f.lr_d.is_some()),
            ("--lr-g", f.lr_g.is_some()),
            ("--betas", f.betas.is_some()),
            ("--gp-lambda", f.gp_lambda.is_some()),
            ("--batch-size", f.batch_size.is_some()),
            ("--seed", f.seed.is_some()),
            ("--limit", f.limit.is_some()),
            ("--fid-samples", f.fid_samples.is_some()),
            ("--fid-model", f.fid_model.is_some()),
        ];
        if let Some((flag, _)) = fixed.iter().find(|(_, given)| *given) {
            return Err(CliError::new(format!(
                "{flag} cannot change on --resume (the run continues with its checkpoint's settings)"
            )));
        }
        s.epochs = f.epochs.unwrap_or(s.epochs);
        s.data_dir = f.data_dir.clone().or(s.data_dir);
        return Ok(s);
    }
    let mut s = GanSettings::default();
    if let Some(name) = &f.loss {
        s.loss = GanLoss::parse(name).ok_or_else(|| {
            CliError::new(format!(
                "--loss {name:?}: unknown loss (known: minimax, nonsaturating, wgan-gp)"
            ))
        })?;
    }
    s.d_steps = f.d_steps.unwrap_or(if s.loss == GanLoss::WganGp { 5 } else { 1 });
    s.g_steps = f.g_steps.unwrap_or(s.g_steps);
    s.latent = f.latent.unwrap_or(s.latent);
    s.lr_d = f.lr_d.unwrap_or(s.lr_d);
    s.lr_g = f.lr_g.unwrap_or(s.lr_g);
    if let Some(b) = &f.betas {
        let [b1, b2] = b[..] else {
            return Err(CliError::new(format!(
                "--betas {}: give two values, B1,B2",
                b.iter().map(f64::to_string).collect::<Vec<_>>().join(",")
            )));
        };
        s.betas = (b1, b2);
    }
    s.gp_lambda = f.gp_lambda.unwrap_or(s.gp_lambda);
    s.epochs = f.epochs.unwrap_or(s.epochs);
    s.batch_size = f.batch_size.unwrap_or(s.batch_size);
    s.seed = f.seed.unwrap_or(s.seed);
    s.limit = f.limit;
    s.fid_samples = f.fid_samples.unwrap_or(s.fid_samples);
    s.data_dir = f.data_dir.clone();
    Ok(s)
}

/// The `nabla train` configuration that loads Fashion-MNIST for a GAN: every training
/// image (no validation split), the test set for the FID.
fn data_config(s: &GanSettings) -> TrainConfig {
    TrainConfig {
        data_dir: s.data_dir.clone(),
        val_size: Some(0),
        limit: s.limit,
        seed: s.seed,
        ..TrainConfig::default()
    }
}

/// The FID classifier and its checkpoint's absolute path: `--fid-model`, or the default
/// one, trained first if missing.
fn fid_model(path: Option<&Path>, data_dir: Option<&Path>, stop: &AtomicBool) -> CliResult<(FidModel, PathBuf)> {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    if let Some(p) = path {
        return Ok((FidModel::load(p, "--fid-model ")?, absolute(p)));
    }
    let dir = PathBuf::from(DEFAULT_FID_DIR);
    let ck = dir.join("best.safetensors");
    if !ck.is_file() {
        println!(
            "no --fid-model given and {} is missing: training the default LeNet-5 (nabla train) into {} first",
            ck.display(),
            dir.display()
        );
        let cfg = TrainConfig {
            data_dir: data_dir.map(Path::to_path_buf),
            out: Some(dir.clone()),
            ..TrainConfig::default()
        };
        let opts = trainer::Options {
            cfg,
            resume: None,
            init_from: None,
            overwrite: true,
            stop_after_steps: None,
            lr_override: None,
        };
        if let trainer::Outcome::Stopped(_) = trainer::run(opts, stop)? {
            return Err(CliError::new("interrupted while training the FID classifier"));
        }
    }
    println!("FID classifier: {}", ck.display());
    Ok((FidModel::load(&ck, "")?, absolute(&ck)))
}

/// Train as the flags say.
fn train(f: TrainFlags) -> CliResult<()> {
    let mut s = resolve(&f)?;
    f.run.set_threads();
    let d = data::load(&data_config(&s))?;
    let [c, h, w] = match d.input_shape[..] {
        [c, h, w] => [c, h, w],
        _ => return Err(CliError::new("nabla gan trains on images")),
    };
    s.image = [c, h, w];
    s.validate()?;
    let players = s.build()?;
    let stop = nabla_train::stop_on_ctrl_c()?;
    let fid = match s.fid_samples {
        0 => None,
        _ => {
            // A resumed run measures in the feature space it started with.
            let given = s.fid_model.clone().or(f.fid_model.clone());
            let (model, path) = fid_model(given.as_deref(), s.data_dir.as_deref(), &stop)?;
            s.fid_model = Some(path);
            Some(model)
        }
    };
    // Only now that the settings, the data and the models are good.
    let base = match &f.run.resume {
        Some(p) => p
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf(),
        None => PathBuf::from("runs/dcgan-fashion-mnist"),
    };
    let out = folder::create_in(f.run.out.as_deref(), &base, f.run.resume.is_some(), f.run.overwrite)?;
    let banner = format!(
        "training a DCGAN ({} + {} parameters, loss {}, K1 = {}, K2 = {}, latent {}) on {} training images from {}; \
         run folder {}",
        players.0.num_parameters(),
        players.1.num_parameters(),
        s.loss.name(),
        s.d_steps,
        s.g_steps,
        s.latent,
        d.train.len(),
        d.origin.display(),
        out.display()
    );
    let unit = (vec![0.5; c], vec![0.5; c]);
    let loader = trainer::make_loader(d.train.clone(), s.batch_size, &d.input_shape, &unit, false)?;
    let test = d.test.clone().filter(|_| fid.is_some());
    let val = test
        .map(|t: Arc<dyn nabla_data::Dataset>| trainer::make_loader(t, 500, &d.input_shape, &unit, false))
        .transpose()?;
    let classes = d.classes.clone();
    let mut task = task::GanTask::new(s.clone(), players, fid, banner);
    let opts = FitOptions {
        epochs: s.epochs,
        seed: s.seed,
        out: out.clone(),
        resume: f.run.resume.clone(),
        stop_after_steps: f.run.stop_after_steps,
        config: Some(s.to_toml()),
        ..Default::default()
    };
    match nabla_train::fit(&mut task, loader, val.as_ref(), &opts, &stop)? {
        nabla_train::Outcome::Stopped(ck) => {
            let why = if stop.load(Ordering::Relaxed) {
                "interrupted"
            } else {
                "stopped as asked"
            };
            println!(
                "{why}; checkpoint saved; continue with: nabla gan --resume {}",
                ck.display()
            );
            if stop.load(Ordering::Relaxed) {
                use std::io::Write;
                let _ = std::io::stdout().flush();
                std::process::exit(130);
            }
        }
        nabla_train::Outcome::Finished { .. } => match &task.last_fid {
            Some(score) => println!(
                "done; FID {:.2} ({} generated vs {} test images); predicted classes of the generated images: {}; \
                     files in {}",
                score.fid,
                score.samples,
                score.real,
                score.histogram_line(&classes),
                out.display()
            ),
            None => println!("done; files in {}", out.display()),
        },
    }
    Ok(())
}
