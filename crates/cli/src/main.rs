//! The `nabla` command line: one subcommand per file, dispatched from the table below.
//!
//! Errors a user can cause print one line, `error: ...`, and exit with code 1.

mod autoencode;
mod caption;
mod completions;
mod config;
mod data_cmd;
mod detect_task;
mod ensemble;
mod error;
mod eval;
mod filter;
mod finetune;
mod gan;
mod graph;
mod image_io;
mod info;
mod matching;
mod metrics;
mod plot;
mod predict;
mod predict_table;
mod run_args;
mod scenes_task;
mod summary;
mod train;
mod trainer;
mod tta;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

/// nabla: a deep-learning framework's command line.
#[derive(Debug, Parser)]
#[command(name = "nabla", version, long_version = info::long_version(), about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each lives in its own module with `Args` and `run`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model (default: LeNet-5 on Fashion-MNIST).
    Train(Box<train::TrainArgs>),
    /// Train an autoencoder (default: conv_autoencoder on Fashion-MNIST), or encode and decode with one.
    Autoencode(Box<autoencode::AutoencodeArgs>),
    /// Train a DCGAN on Fashion-MNIST; sample from it; measure FID.
    Gan(Box<gan::GanArgs>),
    /// Train an image captioner (CNN + LSTM), caption images, score captions.
    Caption(caption::CaptionArgs),
    /// Write data sets in standard formats (Fashion-MNIST scenes as COCO + VOC masks).
    Data(data_cmd::DataArgs),
    /// Fine-tune a classifier from a checkpoint or a torchvision state dict (probe, top, full).
    Finetune(Box<finetune::FinetuneArgs>),
    /// Export a layer's activations (and labels) for a split, from a checkpoint.
    Features(finetune::features::FeaturesArgs),
    /// Score a checkpoint on its test split: accuracy, per-class scores, confusion matrix.
    Eval(eval::EvalArgs),
    /// Classify images with a checkpoint: the top classes and their probabilities.
    Predict(predict::PredictArgs),
    /// Print a model's layers with output shapes and parameter counts.
    Summary(summary::SummaryArgs),
    /// Write the autograd graph of one training step as Graphviz DOT.
    Graph(graph::GraphArgs),
    /// Correlate or convolve an image with a kernel.
    Filter(filter::FilterArgs),
    /// Find a template in an image by normalized cross-correlation.
    Match(matching::MatchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the version, the instruction-set level detected and used, and the thread count.
    Info(info::InfoArgs),
}

fn main() -> ExitCode {
    // Training frees and reallocates the same large buffers every step.
    nabla_core::memory::retain_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return error::usage(e, Cli::command()),
    };
    error::finish(match cli.command {
        Command::Train(args) => train::run(*args),
        Command::Autoencode(args) => autoencode::run(*args),
        Command::Gan(args) => gan::run(*args),
        Command::Caption(args) => caption::run(args),
        Command::Data(args) => data_cmd::run(args),
        Command::Finetune(args) => finetune::run(*args),
        Command::Features(args) => finetune::features::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Summary(args) => summary::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Filter(args) => filter::run(args),
        Command::Match(args) => matching::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Info(args) => info::run(args),
    })
}
