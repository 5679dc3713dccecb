//! `nabla info`: what this build runs on: the version, the instruction-set level detected
//! and the one the kernels use (lowered by `NABLA_ISA`), and the thread count.

use crate::error::CliResult;
use clap::Args;
use nabla_core::cpu;
use std::sync::OnceLock;

/// `nabla info` takes no options.
#[derive(Debug, Args)]
pub struct InfoArgs {}

/// The report, one `key: value` line each (stable keys, so scripts can grep them).
pub fn report() -> String {
    let (detected, used) = (cpu::detected(), cpu::process_isa());
    let how = if used == detected {
        "the detected level".to_string()
    } else {
        format!(
            "lowered by NABLA_ISA={}",
            std::env::var("NABLA_ISA").unwrap_or_default().trim()
        )
    };
    let levels: Vec<&str> = cpu::supported().into_iter().map(|l| l.name()).collect();
    format!(
        "nabla {}\narch: {}\nisa detected: {detected}\nisa used: {used} ({how})\nisa levels available: {}\nthreads: {} (hardware threads {})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        levels.join(", "),
        rayon::current_num_threads(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    )
}

/// `nabla --version`'s long form: the version and [`cpu::describe`], built once.
pub fn long_version() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| format!("{} ({})", env!("CARGO_PKG_VERSION"), cpu::describe()))
}

/// Print [`report`].
pub fn run(_: InfoArgs) -> CliResult<()> {
    println!("{}", report());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names_both_levels_and_the_version() {
        let r = report();
        assert!(r.starts_with(&format!("nabla {}", env!("CARGO_PKG_VERSION"))), "{r}");
        assert!(r.contains(&format!("isa detected: {}\n", cpu::detected())), "{r}");
        assert!(r.contains(&format!("isa used: {} (", cpu::process_isa())), "{r}");
        assert!(r.contains("threads: "), "{r}");
        assert!(long_version().contains(&cpu::detected().to_string()));
    }
}
