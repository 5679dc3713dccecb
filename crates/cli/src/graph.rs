//! `nabla graph`: the autograd graph of one training step (cross-entropy loss of a small
//! random batch, back to every parameter) as Graphviz DOT.

use crate::error::CliResult;
use crate::image_io::write_atomic;
use crate::summary::{model_for, ShapeArgs};
use clap::Args;
use nabla_core::{DType, Generator, Tensor};
use nabla_nn::loss::{cross_entropy, CrossEntropyOptions};
use nabla_nn::Mode;
use std::path::PathBuf;

/// Write the autograd graph of one training step of a model as Graphviz DOT.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  nabla graph --model lenet5 -o graph.dot && dot -Tsvg graph.dot -o graph.svg")]
pub struct GraphArgs {
    #[command(flatten)]
    shape: ShapeArgs,
    /// The DOT file to write
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
    /// Samples in the batch
    #[arg(long, value_name = "N", default_value_t = 2)]
    batch: usize,
}

/// Run `nabla graph`.
pub fn run(args: GraphArgs) -> CliResult<()> {
    let (model, input, classes) = model_for(&args.shape)?;
    let mut shape = vec![args.batch.max(1)];
    shape.extend(&input);
    let x = Tensor::randn(&shape, DType::F32, &mut Generator::new(0));
    let out = model.forward(&x, Mode::Train)?;
    let labels: Vec<usize> = (0..shape[0]).map(|i| i % classes.max(1)).collect();
    let loss = cross_entropy(&out, &labels[..], &CrossEntropyOptions::default())?;
    let params = model.named_parameters();
    let names: Vec<(&str, &Tensor)> = params.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let dot = nabla_core::autograd::to_dot(&loss, &names);
    write_atomic(&args.output, dot.as_bytes())?;
    let ops = dot.lines().filter(|l| l.contains("shape=box")).count();
    println!(
        "wrote {} ({} ops, {} parameters); render with: dot -Tsvg {} -o graph.svg",
        args.output.display(),
        ops,
        params.len(),
        args.output.display()
    );
    Ok(())
}
