//! `nabla autoencode`: train an autoencoder on an image data set with the training engine
//! (the same data, validation split, run folders, checkpoints, Ctrl-C and `--resume` as
//! `nabla train`), then score it: the test reconstruction loss, and k-nearest-neighbour
//! accuracy in latent space beside raw pixels and PCA. `encode` and `decode` use a trained
//! checkpoint.
//!
//! Training is what the command does without a subcommand, so `nabla autoencode` alone runs
//! the default recipe.

mod config;
mod knn;
mod pictures;
mod score;
mod task;
mod tools;

use crate::error::{CliError, CliResult};
use crate::run_args::RunArgs;
use crate::trainer::{data, folder};
use clap::{Args, Subcommand};
use config::{read_ae_checkpoint, AeConfig, AeMeta};
use nabla_data::DataLoader;
use nabla_models::autoencoder::build_autoencoder;
use nabla_nn::Module;
use nabla_train::FitOptions;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use task::{Autoencode, Images};

/// Train an autoencoder (default: conv_autoencoder, latent 16, MSE, Adam 1e-3, 10 epochs).
///
/// Writes to the run folder (--out, default a new runs/<model>-<dataset>/version_N):
/// metrics.jsonl, reconstructions.png, latent.png, curves.png, last.safetensors,
/// best.safetensors and config.toml. At the end: the test reconstruction loss and kNN (k = 5)
/// test accuracy in latent space, on PCA with as many components, and on raw pixels.
/// Ctrl-C saves last.safetensors and exits (code 130); continue with --resume.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  nabla autoencode\n  nabla autoencode --latent 2 --epochs 5\n  \
                  nabla autoencode --model mlp_autoencoder --loss bce --noise 0.3\n  \
                  nabla autoencode encode --checkpoint runs/conv_autoencoder-fashion-mnist/version_0/best.safetensors -o z.csv\n  \
                  nabla autoencode decode --checkpoint C --interpolate 0 1 --steps 10 -o strip.png"
)]
pub struct AutoencodeArgs {
    #[command(subcommand)]
    command: Option<AeCommand>,
    #[command(flatten)]
    train: TrainFlags,
}

/// What to do with a trained autoencoder.
#[derive(Debug, Subcommand)]
enum AeCommand {
    /// Write the latent code of every image of a split as CSV (latent values, label).
    Encode(tools::EncodeArgs),
    /// Decode a latent point, or the line between two test images' codes, to a PNG.
    Decode(tools::DecodeArgs),
}

/// The training flags.
#[derive(Debug, Args)]
struct TrainFlags {
    /// conv_autoencoder or mlp_autoencoder (784-256-L-256-784) [default: conv_autoencoder]
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// Size of the latent code [default: 16]
    #[arg(long, value_name = "L")]
    latent: Option<usize>,
    /// mse (on the output as it is) or bce (the output taken as logits) [default: mse]
    #[arg(long, value_name = "NAME")]
    loss: Option<String>,
    /// Train a denoising autoencoder: Gaussian noise of this std on the input (clipped to
    /// [0, 1]), the clean image as the target [default: 0]
    #[arg(long, value_name = "SIGMA", allow_negative_numbers = true)]
    noise: Option<f64>,
    /// Data set: fashion-mnist, mnist or kmnist [default: fashion-mnist]
    #[arg(long, value_name = "NAME", value_parser = ["fashion-mnist", "mnist", "kmnist"])]
    dataset: Option<String>,
    /// Directory searched first for the data set
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Epochs in total [default: 10]
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Images per step [default: 128]
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Adam's learning rate [default: 0.001]
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Seed of the initialization, the shuffles and the noise [default: 0]
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Train on the first N training images only
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Training images held out for validation [default: one twelfth, 5,000 of 60,000]
    #[arg(long, value_name = "N")]
    val_size: Option<usize>,
    #[command(flatten)]
    run: RunArgs,
}

/// The settings the flags ask for: the defaults (or the resumed run's), then the flags.
fn resolve(a: &TrainFlags) -> CliResult<AeConfig> {
    let mut c = match &a.run.resume {
        Some(p) => read_ae_checkpoint(p, "--resume ")?.0.config,
        None => AeConfig::default(),
    };
    macro_rules! set {
        ($($field:ident),*) => {$(
            if let Some(v) = &a.$field {
                c.$field = v.clone().into();
            }
        )*};
    }
    set!(model, latent, loss, noise, dataset, data_dir, epochs, batch_size, lr, seed);
    set!(limit, val_size);
    if let Some(t) = a.run.threads {
        c.threads = t;
    }
    if let Some(o) = &a.run.out {
        c.out = Some(o.clone());
    }
    // Saved in checkpoints: `encode` and `decode` may run from another folder.
    c.data_dir = c.data_dir.map(|d| std::path::absolute(&d).unwrap_or(d));
    if let Some(p) = &a.run.resume {
        // Continue in the folder the checkpoint lies in.
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
        c.out = Some(dir.map_or(PathBuf::from("."), PathBuf::from));
    }
    Ok(c)
}

/// Run `nabla autoencode`.
pub fn run(args: AutoencodeArgs) -> CliResult<()> {
    match args.command {
        Some(AeCommand::Encode(a)) => tools::encode(a),
        Some(AeCommand::Decode(a)) => tools::decode(a),
        None => train(args.train),
    }
}

/// Train, test and score as the flags say.
fn train(a: TrainFlags) -> CliResult<()> {
    let cfg = resolve(&a)?;
    cfg.validate()?;
    if cfg.threads > 0 {
        // Fails only if the pool already exists, which it cannot before any work.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(cfg.threads).build_global();
    }
    let tc = cfg.train_config();
    let data = data::load(&tc)?;
    if data.input_shape.len() != 3 {
        return Err(CliError::new("nabla autoencode trains on images"));
    }
    cfg.check_latent(&data.input_shape)?;
    let model = build_autoencoder(&cfg.model, &cfg.model_config(&data.input_shape))?;
    let test_ds = data
        .test
        .clone()
        .ok_or_else(|| CliError::new("the data set has no test split"))?;
    let test = Images::load(test_ds.clone())?;
    let stop = nabla_train::stop_on_ctrl_c()?;
    // Only now that the arguments, the data and the model are good.
    let out = folder::create(&tc, a.run.resume.is_some(), a.run.overwrite)?;
    let banner = format!(
        "training {} (latent {}, loss {}{}; {} parameters) on {} ({} training, {} validation, {} test images from {}); run folder {}",
        cfg.model,
        cfg.latent,
        cfg.loss,
        match cfg.noise > 0.0 {
            true => format!(", denoising sigma {}", cfg.noise),
            false => String::new(),
        },
        model.num_parameters(),
        cfg.dataset,
        data.train.len(),
        data.val.as_ref().map_or(0, |v| v.len()),
        test.len(),
        data.origin.display(),
        out.display()
    );
    let meta = AeMeta {
        config: cfg.clone(),
        input_shape: data.input_shape.clone(),
        classes: data.classes.clone(),
    };
    let mut task = Autoencode::new(model, &meta, test, banner);
    let loader = DataLoader::from_arc(data.train.clone(), cfg.batch_size)?;
    let val_loader = data.val.clone().map(|v| DataLoader::from_arc(v, 500)).transpose()?;
    let fit = FitOptions {
        epochs: cfg.epochs as u64,
        seed: cfg.seed,
        out: out.clone(),
        resume: a.run.resume.clone(),
        stop_after_steps: a.run.stop_after_steps,
        config: Some(cfg.to_toml()),
        ..FitOptions::default()
    };
    let best = match nabla_train::fit(&mut task, loader, val_loader.as_ref(), &fit, &stop)? {
        nabla_train::Outcome::Stopped(last) => return stopped(&last, &stop),
        nabla_train::Outcome::Finished { best } => best,
    };
    let chosen = out.join(match best {
        Some(_) => "best.safetensors",
        None => "last.safetensors",
    });
    let test_loader = DataLoader::from_arc(test_ds, 500)?;
    let metrics = nabla_train::test(&mut task, &test_loader, &chosen, &out)?;
    let test_loss = metrics.iter().find(|(k, _)| k == "test_loss").map_or(f64::NAN, |m| m.1);
    let file = chosen.file_name().map_or("".into(), |n| n.to_string_lossy());
    let epoch = best.map_or(cfg.epochs as u64, |(_, e)| e);
    println!("test {} {test_loss:.5} ({file}, epoch {epoch})", cfg.loss);
    score::knn_table(&task, &data.train, &out, &file, epoch)?;
    println!("done; files in {}", out.display());
    Ok(())
}

/// Report a run stopped by Ctrl-C or `--stop-after-steps`; Ctrl-C exits with code 130.
fn stopped(last: &std::path::Path, stop: &std::sync::atomic::AtomicBool) -> CliResult<()> {
    let interrupted = stop.load(Ordering::Relaxed);
    let why = if interrupted { "interrupted" } else { "stopped as asked" };
    println!(
        "{why}; checkpoint saved; continue with: nabla autoencode --resume {}",
        last.display()
    );
    if interrupted {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(130);
    }
    Ok(())
}
