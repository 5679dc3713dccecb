//! `nabla-bench`: nabla's figures beside PyTorch's from the same machine and run.
//!
//! `cargo run --release -p nabla-bench -- core` measures the core kernels and, when a
//! Python with torch is found (`NABLA_TORCH_PYTHON`, `./venv/bin/python`, `python3`),
//! runs `torch_reference.py` for the same work and prints both with their ratio.
//!
//! Each section lives in its own file and is one entry of [`SECTIONS`].

/// `println!` that ends the program quietly when stdout is closed (`nabla-bench | head`).
macro_rules! say {
    ($($t:tt)*) => { $crate::emit(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` with the same closed-pipe handling as [`say!`].
macro_rules! say_raw {
    ($($t:tt)*) => { $crate::emit(format_args!($($t)*)) };
}

mod allreduce;
mod core_ops;
mod detect;
mod generative;
mod measure;
mod report;
mod rnn;
mod scenes;
mod torch;
mod train_bench;
mod zoo_bench;

use report::Row;
use std::path::PathBuf;
use std::process::ExitCode;
use torch::{Script, Torch};

/// What the command line sets for the sections that read it (`autoencoder`, `dcgan`).
pub struct Settings {
    /// Epochs of each training run (`--epochs`, default 1).
    pub epochs: usize,
    /// Folder for the DCGAN samples of both sides (`--samples DIR`), if asked for.
    pub samples: Option<PathBuf>,
    /// Batches per epoch when not all (`--batches B`).
    pub batches: Option<usize>,
    /// The file a section's `prepare` step wrote for both sides to train on (the scenes).
    pub data: Option<PathBuf>,
}

/// A group of benchmarks: its name on the command line, what it measures, the PyTorch
/// script and its matching sections, and the function that measures nabla.
struct Section {
    name: &'static str,
    about: &'static str,
    script: Script,
    torch: &'static [&'static str],
    run: fn(&Settings) -> nabla_core::Result<Vec<Row>>,
    /// Writes the data both sides train on before either runs (removed after the section).
    prepare: Option<fn(&Settings) -> nabla_core::Result<PathBuf>>,
}

const SECTIONS: &[Section] = &[
    Section {
        name: "core",
        about: "matmul, elementwise and overhead together",
        script: Script::Reference,
        torch: core_ops::TORCH_SECTIONS,
        run: |_| core_ops::run(),
        prepare: None,
    },
    Section {
        name: "matmul",
        about: "f32 square matmul 256, 1024, 2048",
        script: Script::Reference,
        torch: &["matmul"],
        run: |_| core_ops::matmul(),
        prepare: None,
    },
    Section {
        name: "elementwise",
        about: "add and relu on 1M and 16M elements, sum over 16M",
        script: Script::Reference,
        torch: &["elementwise"],
        run: |_| core_ops::elementwise(),
        prepare: None,
    },
    Section {
        name: "overhead",
        about: "one tiny add that records the graph",
        script: Script::Reference,
        torch: &["overhead"],
        run: |_| Ok(vec![core_ops::overhead()?]),
        prepare: None,
    },
    Section {
        name: "conv",
        about: "3x3 convolution 64->64 on 32x32, batch 64, padding 1: forward + backward",
        script: Script::Reference,
        torch: &["conv"],
        run: |_| core_ops::conv(),
        prepare: None,
    },
    Section {
        name: "lenet",
        about: "LeNet-5, one Fashion-MNIST epoch, batch 64, SGD momentum",
        script: Script::Reference,
        torch: &["lenet"],
        run: |_| train_bench::lenet(),
        prepare: None,
    },
    Section {
        name: "mlp",
        about: "784-256-10 MLP, one Fashion-MNIST epoch, batch 64, SGD momentum",
        script: Script::Reference,
        torch: &["mlp"],
        run: |_| train_bench::mlp(),
        prepare: None,
    },
    Section {
        name: "resnet18",
        about: "small-input ResNet-18 training step, batch 32 of 3x32x32",
        script: Script::Reference,
        torch: &["resnet18"],
        run: |_| zoo_bench::resnet18(),
        prepare: None,
    },
    Section {
        name: "alexnet",
        about: "torchvision AlexNet forward, batch 8 of 3x227x227",
        script: Script::Reference,
        torch: &["alexnet"],
        run: |_| zoo_bench::alexnet(),
        prepare: None,
    },
    Section {
        name: "autoencoder",
        about: "conv autoencoder, Adam on MSE, batch 128: s/epoch, test MSE",
        script: Script::Generative,
        torch: &["autoencoder"],
        run: generative::autoencoder,
        prepare: None,
    },
    Section {
        name: "dcgan",
        about: "DCGAN 1x28x28, two Adams, nonsaturating BCE, batch 128: s/epoch",
        script: Script::Generative,
        torch: &["dcgan"],
        run: generative::dcgan,
        prepare: None,
    },
    Section {
        name: "localize",
        about: "classloc (spatial), 64x64 scenes, CE + 5 L2 box, Adam, batch 32: s/epoch",
        script: Script::Scenes,
        torch: &["localize"],
        run: scenes::localize,
        prepare: Some(|s| scenes::prepare(scenes::SceneTask::Localize, s)),
    },
    Section {
        name: "segment",
        about: "fcn_small, 64x64 scenes of up to 4 items, per-pixel CE, Adam, batch 32: s/epoch",
        script: Script::Scenes,
        torch: &["segment"],
        run: scenes::segment,
        prepare: Some(|s| scenes::prepare(scenes::SceneTask::Segment, s)),
    },
    Section {
        name: "segnet",
        about: "segnet on the segment section's scenes and recipe: s/epoch",
        script: Script::Scenes,
        torch: &["segnet"],
        run: scenes::segnet,
        prepare: Some(|s| scenes::prepare(scenes::SceneTask::Segment, s)),
    },
    Section {
        name: "roi_align",
        about: "RoI align 7x7 (ratio 2), 512 rois on [2,256,50,50] /16 and [8,64,16,16] /4: fwd, fwd+bwd",
        script: Script::Detect,
        torch: &["roi_align"],
        run: |_| detect::roi_align(),
        prepare: None,
    },
    Section {
        name: "roi_pool",
        about: "RoI max pooling 7x7 on roi_align's maps and rois: fwd, fwd+bwd",
        script: Script::Detect,
        torch: &["roi_pool"],
        run: |_| detect::roi_pool(),
        prepare: None,
    },
    Section {
        name: "nms",
        about: "NMS at IoU 0.5 on 10,000 boxes (1,000 clusters of 10)",
        script: Script::Detect,
        torch: &["nms"],
        run: |_| detect::nms(),
        prepare: None,
    },
    Section {
        name: "detector",
        about: "fasterrcnn_small (RoI align) on 256 64x64 scenes, batch 16, Adam: s/epoch",
        script: Script::Frcnn,
        torch: &["detector"],
        run: detect::detector,
        prepare: Some(detect::prepare_detector),
    },
    Section {
        name: "lstm",
        about: "LSTM forward+backward, batch 64, sequence 32, input 128, hidden 256, 1 and 2 layers",
        script: Script::Rnn,
        torch: &["lstm"],
        run: |_| rnn::lstm(),
        prepare: None,
    },
    Section {
        name: "allreduce",
        about: "MPI all-reduce of f32 between local ranks, 4 B to 64 MB (mpirun -n 2, --features mpi)",
        script: Script::Reference,
        torch: allreduce::TORCH_SECTIONS,
        run: |_| allreduce::run(),
        prepare: None,
    },
];

fn usage() -> String {
    let mut s = String::from(
        "usage: nabla-bench [SECTION...] [--no-torch] [--rounds N] [--epochs N] [--batches B]\n\
         \x20                  [--samples DIR]\n\
         Runs each SECTION (default: core) and, unless --no-torch, PyTorch on the same work;\n\
         with --rounds N, both sides run N times in turn and each keeps its best figure.\n\
         autoencoder and dcgan train --epochs N epochs (default 1) on the first 55,000\n\
         Fashion-MNIST training images and report the mean seconds per epoch (wall and CPU);\n\
         --batches B stops each epoch after B batches (labelled so) for quicker figures; with\n\
         --samples DIR, dcgan writes 10,000 generated images of each side to\n\
         DIR/nabla-dcgan.safetensors and DIR/torch-dcgan.safetensors (tensor `images`,\n\
         [N,1,28,28], values in [-1,1]) for `nabla gan fid --samples FILE`.\n\
         localize, segment and segnet train --epochs N epochs (default 1) on the training scenes\n\
         `nabla train --task localize|segment` defaults to (50,000; 8,000), generated once, written\n\
         to a temporary safetensors file that both sides read; --batches B generates B\n\
         batches of 32 and times those.\n\
         detector trains 256 scenes (--batches B: B batches of 16) from the same initial\n\
         weights on both sides (PyTorch: crates/bench/torch/frcnn.py, torchvision's parts).\n\
         PyTorch: NABLA_TORCH_PYTHON, else ./venv/bin/python, else python3 with torch;\n\
         script: NABLA_TORCH_SCRIPT, else ../shared/bench/torch_reference.py\n\
         (autoencoder and dcgan: crates/bench/torch/generative.py; localize, segment and\n\
         segnet: crates/bench/torch/scenes.py; roi_align, roi_pool and nms:\n\
         crates/bench/torch/detect.py, torchvision.ops on the same inputs;\n\
         lstm: crates/bench/torch/rnn.py).\nsections:\n",
    );
    for sec in SECTIONS {
        s.push_str(&format!("  {:<12} {}\n", sec.name, sec.about));
    }
    s
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{cpu}, {} hardware threads, rayon threads {}, ISA: {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        rayon::current_num_threads(),
        nabla_core::cpu::describe()
    )
}

/// Command-line options.
struct Options {
    sections: Vec<&'static Section>,
    torch: bool,
    rounds: usize,
    settings: Settings,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        sections: Vec::new(),
        torch: true,
        rounds: 1,
        settings: Settings {
            epochs: 1,
            samples: None,
            batches: None,
            data: None,
        },
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-torch" => opts.torch = false,
            "--rounds" => {
                let v = it.next().ok_or("--rounds needs a number")?;
                opts.rounds = v.parse().ok().filter(|&r| r > 0).ok_or(format!("bad --rounds {v:?}"))?;
            }
            "--epochs" => {
                let v = it.next().ok_or("--epochs needs a number")?;
                opts.settings.epochs = v
                    .parse()
                    .ok()
                    .filter(|&e| e > 0)
                    .ok_or(format!("bad --epochs {v:?} (a whole number of at least 1)"))?;
            }
            "--batches" => {
                let v = it.next().ok_or("--batches needs a number")?;
                let b = v
                    .parse()
                    .ok()
                    .filter(|&b| b > 0)
                    .ok_or(format!("bad --batches {v:?} (a whole number of at least 1)"))?;
                opts.settings.batches = Some(b);
            }
            "--samples" => {
                let v = it.next().ok_or("--samples needs a folder")?;
                let dir = PathBuf::from(v);
                if !dir.is_dir() {
                    return Err(format!("--samples {v:?} is not an existing folder"));
                }
                opts.settings.samples = Some(dir);
            }
            name => match SECTIONS.iter().find(|s| s.name == name) {
                Some(s) => opts.sections.push(s),
                None => return Err(format!("unknown section or option {name:?}")),
            },
        }
    }
    if opts.sections.is_empty() {
        opts.sections.push(&SECTIONS[0]);
    }
    Ok(opts)
}

/// The 1-minute load average: other work on the machine skews every figure.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Write to stdout; a reader that went away (broken pipe) ends the run quietly, as for any
/// Unix filter, and any other write error ends it with a message.
fn emit(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("nabla-bench: cannot write to stdout: {e}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
}

fn main() -> ExitCode {
    // As the `nabla` binary does (PyTorch's side runs in its own process).
    nabla_core::memory::retain_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        say_raw!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprint!("{e}\n{}", usage());
            return ExitCode::FAILURE;
        }
    };
    say!("machine: {}", machine());
    if let Some(l) = load_average() {
        say!(
            "load average at start: {l:.2}{}",
            if l > 0.5 {
                " (other work is running: figures are noisy)"
            } else {
                ""
            }
        );
    }
    let mut torch = if opts.torch {
        match Torch::find() {
            Ok(t) => Some(t),
            Err(e) => {
                say!("PyTorch not found: {e}; printing nabla's figures only");
                None
            }
        }
    } else {
        None
    };
    let mut failed = false;
    for sec in &opts.sections {
        say!("\n## {} ({})", sec.name, sec.about);
        let mut settings = Settings {
            data: None,
            samples: opts.settings.samples.clone(),
            ..opts.settings
        };
        if let Some(prepare) = sec.prepare {
            match prepare(&settings) {
                Ok(path) => settings.data = Some(path),
                Err(e) => {
                    say!("nabla failed to prepare the data: {e}");
                    failed = true;
                    continue;
                }
            }
        }
        let mut figures = Vec::new();
        let mut rounds = Vec::new();
        for r in 0..opts.rounds {
            if opts.rounds > 1 {
                eprintln!("{}: round {} of {}", sec.name, r + 1, opts.rounds);
            }
            // PyTorch runs first, in its own process, so the two never share the cores.
            if let Some(t) = torch.as_mut() {
                match t.run(sec.script, sec.torch, &settings) {
                    Ok(f) => figures.push(f),
                    Err(e) => say!("PyTorch run failed: {e}"),
                }
            }
            match (sec.run)(&settings) {
                Ok(rows) => rounds.push(rows),
                Err(e) => {
                    say!("nabla failed: {e}");
                    failed = true;
                    break;
                }
            }
        }
        if let Some(path) = &settings.data {
            // Best effort: a leftover file in the temporary folder harms nothing.
            let _ = std::fs::remove_file(path);
        }
        if let Some(v) = torch.as_ref().and_then(|t| t.version.as_deref()) {
            say!("PyTorch: {v}");
        }
        if opts.rounds > 1 {
            say!("best of {} rounds for each side", opts.rounds);
        }
        if !rounds.is_empty() {
            let torch_figures = torch.is_some().then_some(&figures[..]);
            say_raw!("\n{}", report::table(&report::best_rows(rounds), torch_figures));
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn epochs_and_samples_are_read_and_checked() {
        let dir = std::env::temp_dir();
        let d = dir.to_str().unwrap();
        let o = parse(&args(&["autoencoder", "dcgan", "--epochs", "5", "--samples", d])).unwrap();
        let names: Vec<&str> = o.sections.iter().map(|s| s.name).collect();
        assert_eq!(names, ["autoencoder", "dcgan"]);
        assert_eq!(o.settings.epochs, 5);
        assert_eq!(o.settings.samples.as_deref(), Some(dir.as_path()));
        assert_eq!(parse(&args(&["dcgan"])).unwrap().settings.epochs, 1);
        assert_eq!(
            parse(&args(&["dcgan", "--batches", "20"])).unwrap().settings.batches,
            Some(20)
        );
        for (bad, says) in [
            (&["dcgan", "--epochs", "0"][..], "bad --epochs"),
            (&["dcgan", "--epochs"][..], "--epochs needs"),
            (&["dcgan", "--batches", "x"][..], "bad --batches"),
            (&["dcgan", "--samples", "/no/such/folder"][..], "not an existing folder"),
        ] {
            let e = parse(&args(bad)).err().unwrap();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn scene_sections_prepare_their_data_and_take_batches() {
        let o = parse(&args(&[
            "localize",
            "segment",
            "segnet",
            "--batches",
            "3",
            "--epochs",
            "2",
        ]))
        .unwrap();
        let names: Vec<&str> = o.sections.iter().map(|s| s.name).collect();
        assert_eq!(names, ["localize", "segment", "segnet"]);
        assert_eq!((o.settings.batches, o.settings.epochs), (Some(3), 2));
        for s in &o.sections {
            assert!(s.prepare.is_some() && s.script == Script::Scenes, "{}", s.name);
            assert_eq!(s.torch, [s.name]);
        }
        // The other sections read no prepared file, but the detector's (scenes and weights).
        assert!(SECTIONS
            .iter()
            .filter(|s| !matches!(s.script, Script::Scenes | Script::Frcnn))
            .all(|s| s.prepare.is_none()));
        let e = parse(&args(&["segment", "--batches", "0"])).err().unwrap();
        assert!(e.contains("bad --batches"), "{e}");
    }
}
