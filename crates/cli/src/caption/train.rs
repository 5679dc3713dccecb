//! `nabla caption train`: flags, settings, and the run.

use super::data::{self, Part};
use super::score::{caption_part, score, Decoder};
use super::settings::CaptionSettings;
use super::task::CaptionTask;
use super::tools::{encoder_from, word_vectors};
use crate::error::{CliError, CliResult};
use crate::run_args::{out_help, RunArgs, RESUME_FIXED};
use crate::trainer::folder;
use clap::Args;
use nabla_data::text::Vocab;
use nabla_models::captioner::Captioner;
use nabla_nn::Module;
use nabla_train::FitOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The training flags.
#[derive(Debug, Args)]
#[command(
    mut_arg("out", |a| a.help(out_help("captioner-<data>"))),
    mut_arg("resume", |a| a.help(RESUME_FIXED))
)]
pub struct TrainFlags {
    /// scenes (generated Fashion-MNIST scenes), coco:PATH or flickr8k:PATH [default: scenes]
    #[arg(long, value_name = "SOURCE")]
    data: Option<String>,
    /// Generated training scenes [default: 12000]
    #[arg(long, value_name = "N")]
    scenes: Option<usize>,
    /// Validation images [default: 500]
    #[arg(long, value_name = "N")]
    val_size: Option<usize>,
    /// Test images [default: 1000]
    #[arg(long, value_name = "N")]
    test_size: Option<usize>,
    /// Side images read from files are resized to [default: 64]
    #[arg(long, value_name = "PIXELS")]
    image_size: Option<usize>,
    /// Epochs in total [default: 16]
    #[arg(long, value_name = "N")]
    epochs: Option<u64>,
    /// Images per step [default: 32]
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Adam's learning rate [default: 0.001]
    #[arg(long, value_name = "RATE")]
    lr: Option<f64>,
    /// Clip the gradients' global L2 norm (0: no clipping) [default: 5]
    #[arg(long, value_name = "NORM")]
    clip: Option<f64>,
    /// Word embedding size [default: 64, or the --word-vectors dimension]
    #[arg(long, value_name = "N")]
    embed: Option<usize>,
    /// LSTM hidden size [default: 256]
    #[arg(long, value_name = "N")]
    hidden: Option<usize>,
    /// LSTM layers [default: 1]
    #[arg(long, value_name = "N")]
    layers: Option<usize>,
    /// Image encoder: small (conv net for 64×64 scenes) or resnet18 (small-input stem) [default: small]
    #[arg(long, value_name = "NAME")]
    encoder: Option<String>,
    /// How the image enters the LSTM: first (its first input, Show and Tell) or state (h0 and c0) [default: first]
    #[arg(long, value_name = "HOW")]
    inject: Option<String>,
    /// Load the encoder from a classification checkpoint (tensors named as the encoder's) and freeze it
    #[arg(long, value_name = "CHECKPOINT")]
    encoder_from: Option<PathBuf>,
    /// Initialize the embeddings from word vectors (word2vec text or binary, GloVe text)
    #[arg(long, value_name = "FILE")]
    word_vectors: Option<PathBuf>,
    /// Keep the --word-vectors fixed
    #[arg(long)]
    freeze_embeddings: bool,
    /// Words seen fewer times in the training captions become <unk> [default: 1]
    #[arg(long, value_name = "N")]
    min_count: Option<usize>,
    /// Most words per caption (training captions are cut, decoding stops there) [default: 20]
    #[arg(long, value_name = "N")]
    max_len: Option<usize>,
    /// Seed of the weights, shuffles and reference picks [default: 0]
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Directory searched first for Fashion-MNIST
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
}

/// Settings and vocabulary of a resumed run.
fn resumed(f: &TrainFlags, p: &Path) -> CliResult<(CaptionSettings, Vocab)> {
    let ck = crate::trainer::setup::read_checkpoint(p, "--resume ")?;
    let (mut s, vocab) = super::tools::settings_of(&ck, p, "--resume", "caption train --resume")?;
    let fixed = [
        ("--data", f.data.is_some()),
        ("--scenes", f.scenes.is_some()),
        ("--val-size", f.val_size.is_some()),
        ("--test-size", f.test_size.is_some()),
        ("--image-size", f.image_size.is_some()),
        ("--batch-size", f.batch_size.is_some()),
        ("--lr", f.lr.is_some()),
        ("--clip", f.clip.is_some()),
        ("--embed", f.embed.is_some()),
        ("--hidden", f.hidden.is_some()),
        ("--layers", f.layers.is_some()),
        ("--encoder", f.encoder.is_some()),
        ("--inject", f.inject.is_some()),
        ("--encoder-from", f.encoder_from.is_some()),
        ("--word-vectors", f.word_vectors.is_some()),
        ("--freeze-embeddings", f.freeze_embeddings),
        ("--min-count", f.min_count.is_some()),
        ("--max-len", f.max_len.is_some()),
        ("--seed", f.seed.is_some()),
    ];
    if let Some((flag, _)) = fixed.iter().find(|(_, given)| *given) {
        return Err(CliError::new(format!(
            "{flag} cannot change on --resume (the run continues with its checkpoint's settings)"
        )));
    }
    s.epochs = f.epochs.unwrap_or(s.epochs);
    s.data_dir = f.data_dir.clone().or(s.data_dir);
    Ok((s, vocab))
}

/// The settings of a fresh run: the defaults with the flags on top.
fn fresh(f: &TrainFlags) -> CaptionSettings {
    let d = CaptionSettings::default();
    CaptionSettings {
        data: f.data.clone().unwrap_or(d.data),
        scenes: f.scenes.unwrap_or(d.scenes),
        val_size: f.val_size.unwrap_or(d.val_size),
        test_size: f.test_size.unwrap_or(d.test_size),
        image_size: f.image_size.unwrap_or(d.image_size),
        epochs: f.epochs.unwrap_or(d.epochs),
        batch_size: f.batch_size.unwrap_or(d.batch_size),
        lr: f.lr.unwrap_or(d.lr),
        clip: f.clip.unwrap_or(d.clip),
        embed: f.embed.unwrap_or(d.embed),
        hidden: f.hidden.unwrap_or(d.hidden),
        layers: f.layers.unwrap_or(d.layers),
        encoder: f.encoder.clone().unwrap_or(d.encoder),
        inject: f.inject.clone().unwrap_or(d.inject),
        encoder_from: f.encoder_from.clone(),
        word_vectors: f.word_vectors.clone(),
        freeze_embeddings: f.freeze_embeddings,
        min_count: f.min_count.unwrap_or(d.min_count),
        max_len: f.max_len.unwrap_or(d.max_len),
        seed: f.seed.unwrap_or(d.seed),
        data_dir: f.data_dir.clone(),
        image: d.image,
    }
}

/// Train as the flags say.
pub fn train(f: TrainFlags) -> CliResult<()> {
    let (mut s, vocab) = match &f.run.resume {
        Some(p) => {
            let (s, v) = resumed(&f, p)?;
            (s, Some(v))
        }
        None => (fresh(&f), None),
    };
    data::source(&s.data)?;
    s.validate()?;
    f.run.set_threads();
    let d = data::load(&s)?;
    s.image = d.train.set.image_shape();
    let vocab = match vocab {
        Some(v) => v,
        None => {
            let caps = d.train.index.iter().flat_map(|&i| d.train.set.captions(i).iter());
            Vocab::build(caps, s.min_count)
        }
    };
    // Word vectors fix the embedding size unless --embed says it (then they must match).
    let vectors = match (&s.word_vectors, &f.run.resume) {
        (Some(p), None) => Some(word_vectors(p, &vocab, f.embed, s.seed)?),
        _ => None,
    };
    if let Some(v) = &vectors {
        s.embed = v.matrix.shape()[1];
    }
    let mut model = Captioner::new(&s.model_config(vocab.len())?)?;
    let mut notes = Vec::new();
    if let Some(p) = &s.encoder_from {
        if f.run.resume.is_none() {
            notes.push(encoder_from(&model, p)?);
        }
        model.freeze_encoder();
    }
    if let Some(v) = &vectors {
        model.set_embeddings(&v.matrix, s.freeze_embeddings)?;
        notes.push(v.note.clone());
    } else if s.word_vectors.is_some() && s.freeze_embeddings {
        // Resumed: the checkpoint holds the vectors; only their frozen state is rebuilt.
        model.embed.weight.set_trainable(false);
    }
    let stop = nabla_train::stop_on_ctrl_c()?;
    // Only now that the settings, the data and the model are good.
    let base = match &f.run.resume {
        Some(p) => p
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf(),
        None => super::base_dir(&s.data),
    };
    let out = folder::create_in(f.run.out.as_deref(), &base, f.run.resume.is_some(), f.run.overwrite)?;
    for n in &notes {
        println!("{n}");
    }
    let banner = format!(
        "training a captioner ({}; {} parameters, {} trainable) on {} ({} training, {} validation, {} test images of \
         {}×{}; vocabulary {} words, min count {}); run folder {}",
        model.describe(),
        model.num_parameters(),
        model.num_trainable_parameters(),
        d.origin,
        d.train.index.len(),
        d.val.index.len(),
        d.test.index.len(),
        s.image[1],
        s.image[2],
        vocab.len(),
        s.min_count,
        out.display()
    );
    let loader = nabla_data::DataLoader::from_arc(Arc::new(d.train.clone()), s.batch_size)?;
    let val_loader = nabla_data::DataLoader::from_arc(Arc::new(d.val.clone()), super::score::DECODE_BATCH)?;
    let mut task = CaptionTask::new(
        model,
        s.clone(),
        vocab.clone(),
        &d.train,
        d.val.clone(),
        d.scenes,
        &d.test,
        banner,
    )?;
    let opts = FitOptions {
        epochs: s.epochs,
        seed: s.seed,
        out: out.clone(),
        resume: f.run.resume.clone(),
        stop_after_steps: f.run.stop_after_steps,
        config: Some(s.to_toml(vocab.len())),
        clip_grad_norm: (s.clip > 0.0).then_some(s.clip),
        ..Default::default()
    };
    let best = match nabla_train::fit(&mut task, loader, Some(&val_loader), &opts, &stop)? {
        nabla_train::Outcome::Stopped(ck) => {
            let interrupted = stop.load(Ordering::Relaxed);
            let why = if interrupted { "interrupted" } else { "stopped as asked" };
            println!(
                "{why}; checkpoint saved; continue with: nabla caption train --resume {}",
                ck.display()
            );
            if interrupted {
                use std::io::Write;
                let _ = std::io::stdout().flush();
                std::process::exit(130);
            }
            return Ok(());
        }
        nabla_train::Outcome::Finished { best } => best,
    };
    let chosen = out.join(if best.is_some() {
        "best.safetensors"
    } else {
        "last.safetensors"
    });
    let validated = match best {
        Some((v, epoch)) => format!("best validation BLEU-4 {v:.3} (greedy) at epoch {epoch}"),
        None => "no epoch had a finite validation BLEU-4".into(),
    };
    task.score_on(d.test.clone());
    let test_loader = nabla_data::DataLoader::from_arc(Arc::new(d.test.clone()), super::score::DECODE_BATCH)?;
    let m = nabla_train::test(&mut task, &test_loader, &chosen, &out)?;
    let get = |k: &str| m.iter().find(|(n, _)| n == k).map_or(f64::NAN, |(_, v)| *v);
    let beam = Decoder::Beam(3);
    let which: Vec<usize> = (0..d.test.index.len()).collect();
    let caps = caption_part(task.model(), &vocab, &d.test, beam, s.max_len)?;
    let b = score(&d.test, &which, &caps, d.scenes)?;
    let file = chosen.file_name().map_or("".into(), |n| n.to_string_lossy());
    let extra = match b.exact.zip(b.counts) {
        Some((e, c)) => format!(
            "; exact match {:.1}% greedy, {:.1}% beam; count accuracy {:.1}% greedy, {:.1}% beam",
            100.0 * get("test_exact"),
            100.0 * e,
            100.0 * get("test_counts"),
            100.0 * c
        ),
        None => String::new(),
    };
    println!(
        "done; {validated}; test ({file}): BLEU-4 {:.3} greedy, {:.3} {}{extra}; files in {}",
        get("test_bleu4"),
        b.bleu[3],
        beam.name(),
        out.display()
    );
    Ok(())
}

/// The part a checkpoint's test images come from, rebuilt from its settings.
pub fn test_part(s: &CaptionSettings) -> CliResult<(Part, bool)> {
    let d = data::load(s)?;
    if d.test.set.image_shape() != s.image {
        return Err(CliError::new(format!(
            "the test images are {:?} but the checkpoint's model reads {:?}",
            d.test.set.image_shape(),
            s.image
        )));
    }
    Ok((d.test, d.scenes))
}
