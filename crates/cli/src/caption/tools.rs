//! `nabla caption predict` and `eval`, and what they share with training: reading a
//! captioning checkpoint back, loading an encoder from a classification checkpoint, word
//! vectors.

use super::score::{caption, caption_part, score, table_header, table_row, Decoder};
use super::settings::{CaptionSettings, EXTRA_KEY, VOCAB_KEY};
use crate::error::{CliError, CliResult};
use crate::trainer::setup::read_checkpoint;
use clap::Args;
use nabla_core::Tensor;
use nabla_data::captions::{write_coco_caption_results, write_coco_captions};
use nabla_data::text::{Vocab, WordVectors};
use nabla_data::{load_image, Fit, ReadLimits};
use nabla_models::captioner::Captioner;
use nabla_nn::checkpoint::Checkpoint;
use nabla_nn::Module;
use std::path::{Path, PathBuf};

/// Caption image files with a checkpoint of `nabla caption train`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The checkpoint (best.safetensors or last.safetensors of a caption run)
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Images to caption (PNG or JPEG; resized to the model's input when their size differs)
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// Beam width (1: greedy decoding)
    #[arg(long, value_name = "K", default_value_t = 3)]
    beam: usize,
}

/// Score a checkpoint on its test images.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The checkpoint (best.safetensors or last.safetensors of a caption run)
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Beam width scored beside greedy decoding
    #[arg(long, value_name = "K", default_value_t = 3)]
    beam: usize,
    /// Write the beam captions as COCO captioning results (image_id, caption) to this JSON
    /// file, and the references as COCO captions JSON beside it (NAME.references.json)
    #[arg(long, value_name = "FILE")]
    save_captions: Option<PathBuf>,
    /// Directory searched first for Fashion-MNIST
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// The settings and vocabulary of a captioning checkpoint `ck` read from `path` (`flag`
/// names it in messages, `command` is what needs it).
pub fn settings_of(ck: &Checkpoint, path: &Path, flag: &str, command: &str) -> CliResult<(CaptionSettings, Vocab)> {
    let Some(text) = ck.extra.get(EXTRA_KEY) else {
        let what = match ck.extra.get("model") {
            Some(m) => format!("a {m} checkpoint, not a captioner's"),
            None => "not a captioning checkpoint".to_string(),
        };
        return Err(CliError::new(format!(
            "{flag} {}: {what}; {command} needs one written by nabla caption train",
            path.display()
        )));
    };
    let s = CaptionSettings::from_json(text, path)?;
    let v = ck
        .extra
        .get(VOCAB_KEY)
        .ok_or_else(|| CliError::new(format!("{flag} {}: the checkpoint has no vocabulary", path.display())))?;
    let vocab = Vocab::from_metadata(v).map_err(|e| CliError::new(format!("{flag} {}: {e}", path.display())))?;
    Ok((s, vocab))
}

/// The trained captioner of a checkpoint, its settings and vocabulary.
pub fn load(path: &Path, command: &str) -> CliResult<(Captioner, CaptionSettings, Vocab)> {
    let ck = read_checkpoint(path, "--checkpoint ")?;
    let (s, vocab) = settings_of(&ck, path, "--checkpoint", command)?;
    let model = Captioner::new(&s.model_config(vocab.len())?)?;
    ck.restore_model(&model.state_dict())
        .map_err(|e| CliError::new(format!("--checkpoint {}: {e}", path.display())))?;
    Ok((model, s, vocab))
}

/// Copy the encoder's tensors from the classification checkpoint at `path` (named as the
/// encoder's, or under `encoder.` as in a captioner's); a line saying what was loaded.
pub fn encoder_from(model: &Captioner, path: &Path) -> CliResult<String> {
    let ck = read_checkpoint(path, "--encoder-from ")?;
    let mut wanted = Vec::new();
    for (name, dst) in model.encoder.state_dict() {
        let src = ck
            .model
            .iter()
            .find(|(n, _)| *n == name || n.strip_prefix("encoder.") == Some(name.as_str()))
            .map(|(_, t)| t);
        match src {
            Some(t) if t.shape() == dst.shape() => wanted.push((name, t.to_dtype(dst.dtype())?)),
            Some(t) => {
                return Err(CliError::new(format!(
                    "--encoder-from {}: {name} is {:?} there but {:?} in the {} encoder",
                    path.display(),
                    t.shape(),
                    dst.shape(),
                    model.config().encoder.name()
                )))
            }
            None => {
                return Err(CliError::new(format!(
                    "--encoder-from {}: no tensor {name}: not a checkpoint of the {} encoder's network \
                     (for --encoder resnet18, one of nabla train --model resnet18)",
                    path.display(),
                    model.config().encoder.name()
                )))
            }
        }
    }
    let n = wanted.len();
    model.encoder.load_state_dict(&wanted, true)?;
    Ok(format!(
        "encoder: {n} tensors loaded from {} and frozen",
        path.display()
    ))
}

/// An embedding matrix from word vectors, and the line that reports it.
pub struct Vectors {
    /// `[vocabulary, dimension]`.
    pub matrix: Tensor,
    /// How many words were found.
    pub note: String,
}

/// The embedding matrix of `vocab` from the word vectors in `path`.
/// `embed` (when `--embed` was given) must equal the vectors' dimension; words the file lacks
/// start random (as [`WordVectors::vectors_for`] draws them) and are counted in the note.
pub fn word_vectors(path: &Path, vocab: &Vocab, embed: Option<usize>, seed: u64) -> CliResult<Vectors> {
    let wv = WordVectors::open(path, &ReadLimits::default())
        .map_err(|e| CliError::new(format!("--word-vectors {}: {e}", path.display())))?;
    if let Some(e) = embed.filter(|&e| e != wv.dim()) {
        return Err(CliError::new(format!(
            "--word-vectors {}: the vectors have {} dimensions but --embed is {e} (leave --embed out to use {})",
            path.display(),
            wv.dim(),
            wv.dim()
        )));
    }
    let v = wv.vectors_for(vocab, seed);
    let words = vocab.len().saturating_sub(4);
    let shown: Vec<&str> = v.missing.iter().take(8).map(String::as_str).collect();
    let more = if v.missing.len() > shown.len() { ", ..." } else { "" };
    let note = format!(
        "word vectors: {} of the {words} vocabulary words found in {} ({} dimensions); {} missing, initialized \
         from N(0, {:.3}²){}",
        v.found,
        path.display(),
        v.dim,
        v.missing.len(),
        v.std,
        if shown.is_empty() {
            String::new()
        } else {
            format!(": {}{more}", shown.join(", "))
        }
    );
    Ok(Vectors {
        matrix: Tensor::from_vec(v.data, &[vocab.len(), v.dim])?,
        note,
    })
}

/// The image at `path` as `[1, C, H, W]` for a model reading `image`, and a note when it was
/// resized.
fn read(path: &Path, image: [usize; 3]) -> CliResult<(Tensor, Option<String>)> {
    let [c, h, w] = image;
    let (iw, ih) = image::image_dimensions(path).map_err(|e| CliError::io("read image", path, e))?;
    let px = load_image(path, [h, w], c, Fit::Stretch, &ReadLimits::default())?;
    let note = (iw as usize != w || ih as usize != h).then(|| format!("resized {iw}×{ih} to {w}×{h}"));
    Ok((Tensor::from_vec(px, &[1, c, h, w])?, note))
}

fn decoder(beam: usize) -> CliResult<Decoder> {
    match beam {
        0 => Err(CliError::new(
            "--beam 0: the beam needs a width of at least 1 (1 is greedy decoding)",
        )),
        1 => Ok(Decoder::Greedy),
        k => Ok(Decoder::Beam(k)),
    }
}

/// Run `nabla caption predict`.
pub fn predict(a: PredictArgs) -> CliResult<()> {
    let how = decoder(a.beam)?;
    let (model, s, vocab) = load(&a.checkpoint, "caption predict")?;
    for p in &a.images {
        let (x, note) = read(p, s.image)?;
        let text = caption(&model, &vocab, &x, how, s.max_len)?.remove(0);
        match note {
            Some(n) => println!("{}: {text} ({n})", p.display()),
            None => println!("{}: {text}", p.display()),
        }
    }
    Ok(())
}

/// Run `nabla caption eval`.
pub fn eval(a: EvalArgs) -> CliResult<()> {
    let beam = decoder(a.beam)?;
    let (model, mut s, vocab) = load(&a.checkpoint, "caption eval")?;
    s.data_dir = a.data_dir.clone().or(s.data_dir);
    let (test, scenes) = super::train::test_part(&s)?;
    let which: Vec<usize> = (0..test.index.len()).collect();
    println!("{} test images", test.index.len());
    println!("{}", table_header(scenes));
    let mut last = Vec::new();
    let hows = if beam == Decoder::Greedy {
        vec![beam]
    } else {
        vec![Decoder::Greedy, beam]
    };
    for how in hows {
        let caps = caption_part(&model, &vocab, &test, how, s.max_len)?;
        let sc = score(&test, &which, &caps, scenes)?;
        println!("{}", table_row(&how.name(), &sc));
        last = caps;
    }
    if let Some(p) = &a.save_captions {
        let refs = p.with_extension("references.json");
        let results: Vec<(u64, String)> = test
            .index
            .iter()
            .zip(last)
            .map(|(&j, c)| (test.set.image_id(j), c))
            .collect();
        write_coco_caption_results(p, &results)?;
        write_coco_captions(&refs, &test.set.subset(&test.index)?)?;
        println!(
            "captions ({}) in {}, references in {}",
            beam.name(),
            p.display(),
            refs.display()
        );
    }
    Ok(())
}
