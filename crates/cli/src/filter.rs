//! `nabla filter`: correlate (or convolve) an image with a named or user kernel.

use crate::error::{CliError, CliResult};
use crate::image_io::{self, Format, Pixels};
use clap::{Args, ValueEnum};
use nabla_core::{DType, Tensor};
use nabla_vision::{convolve2d, correlate2d, Border, KernelSpec, Padding};
use std::path::{Path, PathBuf};

/// Filter an image with a kernel (correlation unless --convolve).
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Input image: PNG, JPEG, or a CSV matrix of raw numbers.
    pub input: PathBuf,
    /// Kernel: box:K, gauss:SIGMA[:SIZE], sobel-x, sobel-y, laplacian or sharpen.
    #[arg(long, value_parser = parse_spec, required_unless_present = "kernel_file", conflicts_with = "kernel_file")]
    pub kernel: Option<KernelSpec>,
    /// Kernel weights as a CSV matrix with odd sides.
    #[arg(long)]
    pub kernel_file: Option<PathBuf>,
    /// Convolve (flip the kernel in both axes) instead of correlating.
    #[arg(long)]
    pub convolve: bool,
    /// How pixels past the edge are made up.
    #[arg(long, value_enum, default_value_t = BorderArg::Zero)]
    pub border: BorderArg,
    /// Which output positions to keep.
    #[arg(long, value_enum, default_value_t = PaddingArg::Same)]
    pub mode: PaddingArg,
    /// How results map back to pixel values: clip to the input's range, stretch the
    /// output's min..max, or auto (stretch for kernels summing to 0, like edge filters).
    #[arg(long, value_enum, default_value_t = Scale::Auto)]
    pub scale: Scale,
    /// Output image (.png/.jpg), or .csv for raw numbers.
    #[arg(short, long, required_unless_present = "raw")]
    pub output: Option<PathBuf>,
    /// Also write the unscaled results as CSV.
    #[arg(long)]
    pub raw: Option<PathBuf>,
}

/// `--border` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BorderArg {
    /// Zeros past the edge.
    Zero,
    /// Mirror image without repeating the edge.
    Reflect,
    /// Repeat the edge pixel.
    Replicate,
}

/// `--mode` values: the output [`Padding`] (scipy calls it `mode`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PaddingArg {
    /// Same size as the input, kernel centred.
    Same,
    /// Only where the kernel fits inside.
    Valid,
    /// Every overlap.
    Full,
}

/// `--scale` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scale {
    /// Stretch for zero-sum kernels, clip otherwise.
    Auto,
    /// Clip to the input's value range.
    Clip,
    /// Stretch the output's min..max over the full range.
    Minmax,
}

impl From<BorderArg> for Border {
    fn from(b: BorderArg) -> Border {
        match b {
            BorderArg::Zero => Border::Zero,
            BorderArg::Reflect => Border::Reflect,
            BorderArg::Replicate => Border::Replicate,
        }
    }
}

impl From<PaddingArg> for Padding {
    fn from(m: PaddingArg) -> Padding {
        match m {
            PaddingArg::Same => Padding::Same,
            PaddingArg::Valid => Padding::Valid,
            PaddingArg::Full => Padding::Full,
        }
    }
}

fn parse_spec(s: &str) -> Result<KernelSpec, String> {
    s.parse::<KernelSpec>().map_err(|e| e.to_string())
}

/// Read a kernel file: one channel, non-empty, odd height and width.
pub fn read_kernel_file(path: &Path) -> CliResult<Tensor> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::io("read kernel file", path, e))?;
    let t = image_io::parse_csv(&text).map_err(|e| CliError::new(format!("kernel file {}: {e}", path.display())))?;
    // parse_csv always gives [C, H, W].
    let (c, h, w) = (t.shape()[0], t.shape()[1], t.shape()[2]);
    if c != 1 {
        return Err(CliError::new(format!(
            "kernel file {}: expected one matrix, found {c} blocks",
            path.display()
        )));
    }
    if h % 2 == 0 || w % 2 == 0 {
        return Err(CliError::new(format!(
            "kernel file {}: kernel is {h}×{w}; both sides must be odd so it has a centre",
            path.display()
        )));
    }
    Ok(t.reshape([h, w])?)
}

/// Run the command.
pub fn run(args: FilterArgs) -> CliResult<()> {
    let img = image_io::read_image(&args.input)?;
    let kernel = match (&args.kernel, &args.kernel_file) {
        (_, Some(path)) => read_kernel_file(path)?,
        (Some(spec), None) => spec.build(DType::F64)?,
        (None, None) => return Err(CliError::new("give --kernel NAME or --kernel-file K.csv")),
    };
    let (border, padding) = (Border::from(args.border), Padding::from(args.mode));
    let out = if args.convolve {
        convolve2d(&img.data, &kernel, padding, border)?
    } else {
        correlate2d(&img.data, &kernel, padding, border)?
    };
    if let Some(raw) = &args.raw {
        image_io::write_csv(raw, &out)?;
    }
    if let Some(path) = &args.output {
        if Format::of(path)? == Format::Csv {
            image_io::write_csv(path, &out)?;
        } else {
            let zero_sum = kernel.sum_all()?.item()?.abs() <= 1e-9 * kernel.abs()?.sum_all()?.item()?;
            let stretch = match args.scale {
                Scale::Minmax => true,
                Scale::Clip => false,
                // An edge map is centred on 0, outside any image's range.
                Scale::Auto => zero_sum,
            };
            let v = out.to_vec_f64();
            let (lo, hi) = if stretch { image_io::min_max(&v) } else { img.range() };
            let unit = Tensor::from_vec(image_io::rescale(&v, lo, hi), out.shape())?;
            Pixels::from_unit(&unit)?.save(path)?;
        }
    }
    Ok(())
}
