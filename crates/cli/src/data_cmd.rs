//! `nabla data`: write data sets to disk in the formats other tools read.
//!
//! `nabla data scenes --out DIR -n N` draws N Fashion-MNIST scenes (see `nabla_data::scenes`)
//! and writes them as PNG images, a COCO `annotations.json`, Pascal-VOC palette masks and
//! `classes.txt`, which `--data coco:DIR` and `--data masks:DIR` read back.

use crate::error::{CliError, CliResult};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nabla_data::scenes::{write_scenes, Background, SceneConfig, Scenes};
use nabla_data::{FashionMnist, MnistFamily, ReadLimits, Split};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

/// The most scenes one command writes: the readers hold a whole set in memory (200,000
/// default scenes are 820 MB of images and as much of masks, and a 70 MB annotations.json).
const MAX_SCENES: usize = 200_000;

/// The largest canvas side.
const MAX_SIDE: usize = 4096;

/// `nabla data` and its subcommands.
#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

/// What `nabla data` can write.
#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Write Fashion-MNIST scenes: images/*.png, annotations.json (COCO), masks/*.png (VOC palette).
    Scenes(ScenesArgs),
}

/// `nabla data scenes` flags.
#[derive(Debug, Args)]
pub struct ScenesArgs {
    /// The folder to create (it must not exist, or be empty).
    #[arg(long)]
    out: PathBuf,
    /// How many scenes.
    #[arg(short = 'n', long = "count")]
    count: usize,
    /// Which Fashion-MNIST images the items come from.
    #[arg(long, value_enum, default_value_t = SplitArg::Train)]
    split: SplitArg,
    /// The most items in a scene (each scene holds 1 to N, uniformly).
    #[arg(long, default_value_t = 4)]
    max_objects: usize,
    /// The canvas, H or HxW pixels.
    #[arg(long, default_value = "64", value_parser = parse_size)]
    size: [usize; 2],
    /// What lies behind the items: black, or seeded noise uniform in [0, 0.25).
    #[arg(long, value_enum, default_value_t = BackgroundArg::Black)]
    background: BackgroundArg,
    /// The seed the scenes are drawn with (same seed, same scenes).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The folder holding Fashion-MNIST (default: $NABLA_DATA, the system copy, the cache, or a download).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// `--split` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum SplitArg {
    /// The 60,000 training images.
    Train,
    /// The 10,000 test images.
    Test,
}

/// `--background` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackgroundArg {
    /// Zeros.
    Black,
    /// Seeded noise.
    Noise,
}

/// `H` or `HxW`, each side in 1..=4096.
fn parse_size(s: &str) -> Result<[usize; 2], String> {
    let side = |t: &str| -> Result<usize, String> {
        match t.trim().parse::<usize>() {
            Ok(v) if (1..=MAX_SIDE).contains(&v) => Ok(v),
            _ => Err(format!(
                "{t:?} is not a side in 1..={MAX_SIDE} (write H or HxW, e.g. 64 or 48x64)"
            )),
        }
    };
    match s.split_once(['x', 'X']) {
        Some((h, w)) => Ok([side(h)?, side(w)?]),
        None => side(s).map(|v| [v, v]),
    }
}

/// Run `nabla data`.
pub fn run(args: DataArgs) -> CliResult<()> {
    match args.command {
        DataCommand::Scenes(a) => scenes(a),
    }
}

fn scenes(a: ScenesArgs) -> CliResult<()> {
    if a.max_objects == 0 || a.max_objects > 254 {
        return Err(CliError::new(format!(
            "--max-objects {}: a scene holds 1 to 254 items",
            a.max_objects
        )));
    }
    if a.count == 0 || a.count > MAX_SCENES {
        return Err(CliError::new(format!("-n {}: write 1 to {MAX_SCENES} scenes", a.count)));
    }
    let cfg = SceneConfig {
        size: a.size,
        max_objects: a.max_objects,
        background: match a.background {
            BackgroundArg::Black => Background::Black,
            BackgroundArg::Noise => Background::Noise,
        },
        seed: a.seed,
        ..SceneConfig::default()
    };
    let split = match a.split {
        SplitArg::Train => Split::Train,
        SplitArg::Test => Split::Test,
    };
    // Check the canvas before loading 60,000 images: a 28×28 item at the smallest scale.
    cfg.validate([28, 28])
        .map_err(|e| CliError::new(format!("--size {}x{}: {e}", a.size[0], a.size[1])))?;
    let source = match &a.data_dir {
        Some(d) => {
            let dir = [d.clone(), d.join("fashion-mnist")]
                .into_iter()
                .find(|c| MnistFamily::Fashion.is_in(c))
                .ok_or_else(|| {
                    CliError::new(format!(
                        "--data-dir {}: Fashion-MNIST is not there (nor in its fashion-mnist/ folder)",
                        d.display()
                    ))
                })?;
            MnistFamily::Fashion.load_dir(&dir, split, &ReadLimits::default())?
        }
        None => FashionMnist::new().load(split)?,
    };
    let set = Scenes::new(source, split, cfg, a.count)?;
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr_with_hz(8)
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(a.count as u64), target);
    let style = ProgressStyle::with_template("scenes [{bar:28.cyan/blue}] {pos}/{len} ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    let start = Instant::now();
    let written = write_scenes(&set, &a.out, &mut |_| bar.inc(1));
    bar.finish_and_clear();
    written?;
    println!(
        "wrote {} {} scenes ({}x{}, 1 to {} items) to {} in {:.1} s: images/, masks/, annotations.json, classes.txt",
        a.count,
        match split {
            Split::Train => "train",
            Split::Test => "test",
        },
        a.size[0],
        a.size[1],
        a.max_objects,
        a.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
