//! `nabla summary`: run one sample through a model and print each layer's output shape and
//! parameter count, with the totals (see [`nabla_nn::summary`]).

use crate::error::{CliError, CliResult};
use crate::trainer::setup::build_model;
use clap::builder::PossibleValuesParser;
use clap::Args;
use nabla_core::{no_grad, DType, Tensor};
use nabla_models::ModelConfig;
use nabla_nn::{Mode, Module};

/// Which model to build, and for what input.
#[derive(Debug, Args)]
pub struct ShapeArgs {
    /// Model from the zoo (mlp, lenet5, ... see the error for a wrong name)
    #[arg(long, short = 'm', value_name = "NAME", value_parser = PossibleValuesParser::new(nabla_models::names()), hide_possible_values = true)]
    model: String,
    /// Shape of one input: CxHxW (e.g. 3x227x227), or a feature count for tables
    #[arg(long, value_name = "CxHxW", default_value = "1x28x28")]
    input: String,
    /// Number of output classes
    #[arg(long, value_name = "N", default_value_t = 10)]
    classes: usize,
    /// Hidden layer sizes of an MLP, comma-separated
    #[arg(long, value_name = "SIZES", value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Activation of an MLP
    #[arg(long, value_name = "NAME")]
    activation: Option<String>,
    /// Model variant (lenet5: modern or classic)
    #[arg(long, value_name = "NAME")]
    variant: Option<String>,
}

/// Parse `CxHxW` (or `HxW`, one channel; or `F` features).
pub fn parse_input(s: &str) -> CliResult<Vec<usize>> {
    let dims: Option<Vec<usize>> = s
        .split(['x', 'X', '×', ','])
        .map(|d| d.trim().parse().ok().filter(|&v: &usize| v > 0))
        .collect();
    match dims {
        Some(d) if d.len() == 3 || d.len() == 1 => Ok(d),
        Some(d) if d.len() == 2 => Ok(vec![1, d[0], d[1]]),
        _ => Err(CliError::new(format!(
            "--input {s:?}: expected CxHxW with positive sizes, e.g. 3x227x227"
        ))),
    }
}

/// Build the model the arguments describe; returns it with the shape of one of its inputs
/// (the generator's: a latent vector) and the class count.
pub fn model_for(a: &ShapeArgs) -> CliResult<(Box<dyn Module>, Vec<usize>, usize)> {
    let input = parse_input(&a.input)?;
    if a.classes == 0 {
        return Err(CliError::new("--classes must be at least 1"));
    }
    let (in_channels, input_size) = match input[..] {
        [c, h, w] => (c, [h, w]),
        [f] => (1, [1, f]),
        _ => return Err(CliError::new(format!("--input {:?}: expected CxHxW", a.input))),
    };
    let mut mc = ModelConfig {
        num_classes: a.classes,
        in_channels,
        input_size,
        small_input: input_size[0] <= 64 && input_size[1] <= 64,
        variant: a.variant.clone(),
        ..ModelConfig::default()
    };
    if let Some(h) = &a.hidden {
        mc.hidden = h.clone();
    }
    if let Some(act) = &a.activation {
        mc.activation = act.clone();
    }
    if a.model == "generator" {
        // It makes an image of --input's shape from a latent vector (of --hidden's first
        // size, else the registry's 100): that vector is its input.
        if a.hidden.is_none() {
            mc.hidden = vec![];
        }
        let g = nabla_models::build_dcgan_generator(&a.model, &mc)?;
        let latent = vec![g.latent()];
        return Ok((Box::new(g), latent, a.classes));
    }
    Ok((build_model(&a.model, &mc)?, input, a.classes))
}

/// Print every layer's output shape and parameters for one input sample.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  nabla summary --model lenet5\n  nabla summary --model alexnet --input 3x227x227 --classes 1000"
)]
pub struct SummaryArgs {
    #[command(flatten)]
    shape: ShapeArgs,
}

/// An output shape as the lecture tables write it: `H×W×C` for images, else the sizes.
fn shape_text(shape: &[usize]) -> String {
    let per = shape.get(1..).unwrap_or(&[]);
    match per {
        [c, h, w] => format!("{h}×{w}×{c}"),
        _ => per.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×"),
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Run `nabla summary`.
pub fn run(args: SummaryArgs) -> CliResult<()> {
    let (model, input, _) = model_for(&args.shape)?;
    let mut shape = vec![1];
    shape.extend(&input);
    let x = Tensor::zeros(&shape, DType::F32);
    let _guard = no_grad();
    let (out, layers) = nabla_nn::summary::record(|| model.forward(&x, Mode::Eval));
    let out = out?;
    let rows: Vec<[String; 4]> = layers
        .iter()
        .map(|l| {
            [
                format!("{}{}", "  ".repeat(l.depth), l.path),
                l.describe.clone(),
                shape_text(&l.output_shape),
                thousands(l.params),
            ]
        })
        .collect();
    let head = ["layer", "type", "output", "params"];
    let width = |k: usize| {
        rows.iter()
            .map(|r| r[k].chars().count())
            .chain([head[k].len()])
            .max()
            .unwrap_or(0)
    };
    let w = [width(0), width(1), width(2), width(3)];
    println!(
        "{} for input {} (output shapes H×W×C per sample)",
        model.describe(),
        shape_text(&shape)
    );
    let line = |r: &[String; 4]| {
        let pad = |s: &str, n: usize| format!("{s}{}", " ".repeat(n.saturating_sub(s.chars().count())));
        println!(
            "{}  {}  {}  {:>p$}",
            pad(&r[0], w[0]),
            pad(&r[1], w[1]),
            pad(&r[2], w[2]),
            r[3],
            p = w[3]
        );
    };
    line(&head.map(String::from));
    println!("{}", "-".repeat(w.iter().sum::<usize>() + 6));
    rows.iter().for_each(line);
    println!("{}", "-".repeat(w.iter().sum::<usize>() + 6));
    let total = model.num_parameters();
    println!("output {}", shape_text(out.shape()));
    println!(
        "total parameters {} (trainable {}), {:.1} MiB as f32",
        thousands(total),
        thousands(model.num_trainable_parameters()),
        total as f64 * 4.0 / (1024.0 * 1024.0)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_and_numbers_format() {
        assert_eq!(parse_input("3x227x227").unwrap(), vec![3, 227, 227]);
        assert_eq!(parse_input("28x28").unwrap(), vec![1, 28, 28]);
        assert_eq!(parse_input("13").unwrap(), vec![13]);
        assert!(parse_input("3x0x4").is_err() && parse_input("big").is_err());
        assert_eq!(shape_text(&[1, 96, 55, 55]), "55×55×96");
        assert_eq!(shape_text(&[1, 4096]), "4096");
        assert_eq!(
            (thousands(61706), thousands(999), thousands(1000)),
            ("61,706".into(), "999".into(), "1,000".into())
        );
    }
}
