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

mod core_ops;
mod measure;
mod report;
mod torch;
mod train_bench;
mod zoo_bench;

use report::Row;
use std::process::ExitCode;
use torch::Torch;

/// A group of benchmarks: its name on the command line, what it measures, the reference
/// script's matching sections and the function that measures nabla.
struct Section {
    name: &'static str,
    about: &'static str,
    torch: &'static [&'static str],
    run: fn() -> nabla_core::Result<Vec<Row>>,
}

const SECTIONS: &[Section] = &[
    Section {
        name: "core",
        about: "matmul, elementwise and overhead together",
        torch: core_ops::TORCH_SECTIONS,
        run: core_ops::run,
    },
    Section {
        name: "matmul",
        about: "f32 square matmul 256, 1024, 2048",
        torch: &["matmul"],
        run: core_ops::matmul,
    },
    Section {
        name: "elementwise",
        about: "add and relu on 1M and 16M elements, sum over 16M",
        torch: &["elementwise"],
        run: core_ops::elementwise,
    },
    Section {
        name: "overhead",
        about: "one tiny add that records the graph",
        torch: &["overhead"],
        run: || Ok(vec![core_ops::overhead()?]),
    },
    Section {
        name: "lenet",
        about: "LeNet-5, one Fashion-MNIST epoch, batch 64, SGD momentum",
        torch: &["lenet"],
        run: train_bench::lenet,
    },
    Section {
        name: "mlp",
        about: "784-256-10 MLP, one Fashion-MNIST epoch, batch 64, SGD momentum",
        torch: &["mlp"],
        run: train_bench::mlp,
    },
    Section {
        name: "resnet18",
        about: "small-input ResNet-18 training step, batch 32 of 3x32x32",
        torch: &["resnet18"],
        run: zoo_bench::resnet18,
    },
    Section {
        name: "alexnet",
        about: "torchvision AlexNet forward, batch 8 of 3x227x227",
        torch: &["alexnet"],
        run: zoo_bench::alexnet,
    },
];

fn usage() -> String {
    let mut s = String::from(
        "usage: nabla-bench [SECTION...] [--no-torch] [--rounds N]\n\
         Runs each SECTION (default: core) and, unless --no-torch, PyTorch on the same work;\n\
         with --rounds N, both sides run N times in turn and each keeps its best figure.\n\
         PyTorch: NABLA_TORCH_PYTHON, else ./venv/bin/python, else python3 with torch;\n\
         script: NABLA_TORCH_SCRIPT, else ../shared/bench/torch_reference.py.\nsections:\n",
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
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        sections: Vec::new(),
        torch: true,
        rounds: 1,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-torch" => opts.torch = false,
            "--rounds" => {
                let v = it.next().ok_or("--rounds needs a number")?;
                opts.rounds = v.parse().ok().filter(|&r| r > 0).ok_or(format!("bad --rounds {v:?}"))?;
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
        let mut figures = Vec::new();
        let mut rounds = Vec::new();
        for r in 0..opts.rounds {
            if opts.rounds > 1 {
                eprintln!("{}: round {} of {}", sec.name, r + 1, opts.rounds);
            }
            // PyTorch runs first, in its own process, so the two never share the cores.
            if let Some(t) = torch.as_mut() {
                match t.run(sec.torch) {
                    Ok(f) => figures.push(f),
                    Err(e) => say!("PyTorch run failed: {e}"),
                }
            }
            match (sec.run)() {
                Ok(rows) => rounds.push(rows),
                Err(e) => {
                    say!("nabla failed: {e}");
                    failed = true;
                    break;
                }
            }
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
