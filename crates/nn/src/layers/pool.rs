//! Pooling layers: MaxPool2d (optionally with indices), MaxUnpool2d, AvgPool2d and
//! AdaptiveAvgPool2d, around the core ops. No parameters.

use crate::module::{expect_rank, Mode, Module};
use crate::Result;
use nabla_core::{Pool2dOptions, Tensor};

/// Maximum over each `kernel` window, moved by `stride` (PyTorch's default: the kernel
/// size), over an input padded with −∞. Input `[N, C, H, W]`.
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d {
    /// Window, stride, padding and ceil mode.
    pub opts: Pool2dOptions,
}

impl MaxPool2d {
    /// A `k×k` pool with stride `stride` and no padding.
    pub fn new(k: usize, stride: usize) -> Self {
        MaxPool2d::with_options(Pool2dOptions {
            stride: [stride, stride],
            ..Pool2dOptions::new([k, k])
        })
    }

    /// A pool with every option given.
    pub fn with_options(opts: Pool2dOptions) -> Self {
        MaxPool2d { opts }
    }

    /// The pooled tensor and, per output element, the flat index of the maximum within its
    /// `(n, c)` plane (PyTorch's `return_indices=True`), for [`MaxUnpool2d`].
    pub fn forward_with_indices(&self, x: &Tensor) -> Result<(Tensor, Vec<usize>)> {
        expect_rank("MaxPool2d", x, &[4])?;
        Ok(x.max_pool2d_with_indices(self.opts)?)
    }
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        expect_rank("MaxPool2d", x, &[4])?;
        Ok(x.max_pool2d(self.opts)?)
    }
    fn describe(&self) -> String {
        format!("MaxPool2d {:?}/{:?}", self.opts.kernel, self.opts.stride)
    }
}

/// The partial inverse of [`MaxPool2d`]: puts each value back at the index its maximum came
/// from, zeros elsewhere. Not a [`Module`]: its forward pass needs the indices.
#[derive(Debug, Clone, Copy)]
pub struct MaxUnpool2d {
    /// Window size of the pooling being undone.
    pub kernel: [usize; 2],
    /// Stride of the pooling being undone.
    pub stride: [usize; 2],
    /// Padding of the pooling being undone.
    pub padding: [usize; 2],
}

impl MaxUnpool2d {
    /// Undo a `k×k` pool with stride `stride` and no padding.
    pub fn new(k: usize, stride: usize) -> Self {
        MaxUnpool2d {
            kernel: [k, k],
            stride: [stride, stride],
            padding: [0, 0],
        }
    }

    /// Scatter `x` (`[N, C, h, w]`) to `indices` in planes of `output_size`, by default
    /// `(h − 1)·stride − 2·padding + kernel` per side, as PyTorch.
    pub fn forward(&self, x: &Tensor, indices: &[usize], output_size: Option<[usize; 2]>) -> Result<Tensor> {
        expect_rank("MaxUnpool2d", x, &[4])?;
        let size = match output_size {
            Some(s) => s,
            None => {
                let side = |d: usize| {
                    ((x.shape()[2 + d].max(1) - 1) * self.stride[d] + self.kernel[d]).checked_sub(2 * self.padding[d])
                };
                match (side(0), side(1)) {
                    (Some(h), Some(w)) => [h, w],
                    _ => {
                        return Err(nabla_core::Error::invalid(
                            "MaxUnpool2d",
                            format!("padding {:?} is too large for input {:?}", self.padding, x.shape()),
                        )
                        .into())
                    }
                }
            }
        };
        Ok(x.max_unpool2d(indices, size)?)
    }
}

/// Mean over each `kernel` window; `count_include_pad` says whether padded zeros count in
/// the divisor (PyTorch's default: true). Input `[N, C, H, W]`.
#[derive(Debug, Clone, Copy)]
pub struct AvgPool2d {
    /// Window, stride, padding and ceil mode.
    pub opts: Pool2dOptions,
    /// Whether padding counts in the divisor.
    pub count_include_pad: bool,
}

impl AvgPool2d {
    /// A `k×k` average with stride `stride`, no padding.
    pub fn new(k: usize, stride: usize) -> Self {
        AvgPool2d::with_options(
            Pool2dOptions {
                stride: [stride, stride],
                ..Pool2dOptions::new([k, k])
            },
            true,
        )
    }

    /// A pool with every option given.
    pub fn with_options(opts: Pool2dOptions, count_include_pad: bool) -> Self {
        AvgPool2d {
            opts,
            count_include_pad,
        }
    }
}

impl Module for AvgPool2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        expect_rank("AvgPool2d", x, &[4])?;
        Ok(x.avg_pool2d(self.opts, self.count_include_pad)?)
    }
    fn describe(&self) -> String {
        format!("AvgPool2d {:?}/{:?}", self.opts.kernel, self.opts.stride)
    }
}

/// Averages over windows chosen to give a fixed `output` size whatever the input size
/// (window `i` spans `floor(i·H/h)..ceil((i+1)·H/h)`). Input `[N, C, H, W]`.
#[derive(Debug, Clone, Copy)]
pub struct AdaptiveAvgPool2d {
    /// Output height and width.
    pub output: [usize; 2],
}

impl AdaptiveAvgPool2d {
    /// A pool to `output` = `[h, w]` (`[1, 1]`: global average pooling).
    pub fn new(output: [usize; 2]) -> Self {
        AdaptiveAvgPool2d { output }
    }
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        expect_rank("AdaptiveAvgPool2d", x, &[4])?;
        Ok(x.adaptive_avg_pool2d(self.output)?)
    }
    fn describe(&self) -> String {
        format!("AdaptiveAvgPool2d {:?}", self.output)
    }
}
