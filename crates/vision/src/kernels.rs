//! Ready-made filter kernels, and a parser for their names on a command line.
//!
//! ```
//! use nabla_core::DType;
//! use nabla_vision::KernelSpec;
//! let k = "gauss:1.0".parse::<KernelSpec>()?.build(DType::F64)?;
//! assert_eq!(k.shape(), &[7, 7]);
//! assert!((k.sum_all()?.item()? - 1.0).abs() < 1e-12);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use nabla_core::{DType, Error, Result, Tensor};

/// `k×k` moving average: every weight `1/k²`.
pub fn box_kernel(k: usize, dtype: DType) -> Result<Tensor> {
    if k == 0 {
        return Err(Error::invalid("box_kernel", "size must be at least 1"));
    }
    Ok(Tensor::full(&[k, k], 1.0 / (k * k) as f64, dtype))
}

/// Odd size that holds ±3σ of a Gaussian: `2⌈3σ⌉ + 1`.
pub fn gaussian_size(sigma: f64) -> usize {
    2 * (3.0 * sigma).ceil().max(0.0) as usize + 1
}

/// `size×size` Gaussian weights `exp(−(x²+y²)/2σ²)` about the centre, scaled to sum to 1.
pub fn gaussian_kernel(sigma: f64, size: usize, dtype: DType) -> Result<Tensor> {
    if !(sigma > 0.0 && sigma.is_finite()) {
        return Err(Error::invalid(
            "gaussian_kernel",
            format!("sigma must be positive and finite, got {sigma}"),
        ));
    }
    if size == 0 {
        return Err(Error::invalid("gaussian_kernel", "size must be at least 1"));
    }
    let c = (size as f64 - 1.0) / 2.0;
    let g: Vec<f64> = (0..size)
        .map(|i| (-(i as f64 - c).powi(2) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = g.iter().sum();
    let mut v = Vec::with_capacity(size * size);
    for a in &g {
        for b in &g {
            v.push(a * b / (s * s));
        }
    }
    Tensor::from_vec(v, &[size, size])?.to_dtype(dtype)
}

fn three(v: [f64; 9], dtype: DType) -> Result<Tensor> {
    Tensor::from_vec(v.to_vec(), &[3, 3])?.to_dtype(dtype)
}

/// Sobel derivative along x (columns): positive where brightness grows to the right
/// under correlation.
pub fn sobel_x(dtype: DType) -> Result<Tensor> {
    three([-1.0, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0], dtype)
}

/// Sobel derivative along y (rows): positive where brightness grows downwards.
pub fn sobel_y(dtype: DType) -> Result<Tensor> {
    three([-1.0, -2.0, -1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 1.0], dtype)
}

/// The 4-neighbour Laplacian `[[0,1,0],[1,−4,1],[0,1,0]]`.
pub fn laplacian(dtype: DType) -> Result<Tensor> {
    three([0.0, 1.0, 0.0, 1.0, -4.0, 1.0, 0.0, 1.0, 0.0], dtype)
}

/// Sharpening: the image minus its Laplacian, `[[0,−1,0],[−1,5,−1],[0,−1,0]]`.
pub fn sharpen(dtype: DType) -> Result<Tensor> {
    three([0.0, -1.0, 0.0, -1.0, 5.0, -1.0, 0.0, -1.0, 0.0], dtype)
}

/// A named kernel, as written on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelSpec {
    /// `box:K`
    Box(usize),
    /// `gauss:SIGMA` or `gauss:SIGMA:SIZE`
    Gauss {
        /// Standard deviation in pixels.
        sigma: f64,
        /// Side length; `None` picks [`gaussian_size`].
        size: Option<usize>,
    },
    /// `sobel-x`
    SobelX,
    /// `sobel-y`
    SobelY,
    /// `laplacian`
    Laplacian,
    /// `sharpen`
    Sharpen,
}

impl KernelSpec {
    /// The kernel's weights.
    pub fn build(&self, dtype: DType) -> Result<Tensor> {
        match *self {
            KernelSpec::Box(k) => box_kernel(k, dtype),
            KernelSpec::Gauss { sigma, size } => {
                gaussian_kernel(sigma, size.unwrap_or_else(|| gaussian_size(sigma)), dtype)
            }
            KernelSpec::SobelX => sobel_x(dtype),
            KernelSpec::SobelY => sobel_y(dtype),
            KernelSpec::Laplacian => laplacian(dtype),
            KernelSpec::Sharpen => sharpen(dtype),
        }
    }
}

impl std::str::FromStr for KernelSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<KernelSpec> {
        let bad = |why: &str| Error::invalid("kernel", format!("{s:?}: {why}"));
        let parts: Vec<&str> = s.split(':').collect();
        let int = |p: &str| p.parse::<usize>().ok().filter(|&k| k > 0);
        match parts.as_slice() {
            ["box", k] => int(k)
                .map(KernelSpec::Box)
                .ok_or_else(|| bad("box needs a positive size, e.g. box:3")),
            ["gauss" | "gaussian", rest @ ..] if !rest.is_empty() && rest.len() <= 2 => {
                let sigma = rest[0].parse::<f64>().ok().filter(|v| *v > 0.0 && v.is_finite());
                let sigma = sigma.ok_or_else(|| bad("gauss needs a positive sigma, e.g. gauss:1.5"))?;
                let size = match rest.get(1) {
                    Some(p) => Some(int(p).ok_or_else(|| bad("the Gaussian size must be a positive integer"))?),
                    None => None,
                };
                Ok(KernelSpec::Gauss { sigma, size })
            }
            ["sobel-x"] => Ok(KernelSpec::SobelX),
            ["sobel-y"] => Ok(KernelSpec::SobelY),
            ["laplacian"] => Ok(KernelSpec::Laplacian),
            ["sharpen"] => Ok(KernelSpec::Sharpen),
            _ => Err(bad(
                "use box:K, gauss:SIGMA[:SIZE], sobel-x, sobel-y, laplacian or sharpen",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_is_normalised_symmetric_and_peaked() {
        let k = gaussian_kernel(1.5, 5, DType::F64).unwrap().to_vec_f64();
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(k[0], k[24]);
        assert_eq!(k[1], k[5]);
        assert!(k.iter().all(|&v| v <= k[12]));
        // Neighbour/centre ratio is exp(−1/2σ²).
        assert!((k[13] / k[12] - (-1.0 / 4.5f64).exp()).abs() < 1e-12);
        assert_eq!(gaussian_size(1.5), 11);
        assert!(gaussian_kernel(0.0, 3, DType::F64).is_err());
    }

    #[test]
    fn fixed_kernels() {
        assert_eq!(box_kernel(2, DType::F64).unwrap().to_vec_f64(), vec![0.25; 4]);
        assert_eq!(sobel_x(DType::F64).unwrap().sum_all().unwrap().item().unwrap(), 0.0);
        assert_eq!(laplacian(DType::F32).unwrap().to_vec_f32()[4], -4.0);
        assert_eq!(sharpen(DType::F64).unwrap().sum_all().unwrap().item().unwrap(), 1.0);
        let sy = sobel_y(DType::F64).unwrap().to_vec_f64();
        assert_eq!(sy[1], -2.0);
        assert_eq!(sy[7], 2.0);
    }

    #[test]
    fn parses_names() {
        assert_eq!("box:3".parse::<KernelSpec>().unwrap(), KernelSpec::Box(3));
        assert_eq!(
            "gauss:1.5".parse::<KernelSpec>().unwrap(),
            KernelSpec::Gauss { sigma: 1.5, size: None }
        );
        assert_eq!(
            "gauss:2:5".parse::<KernelSpec>().unwrap(),
            KernelSpec::Gauss {
                sigma: 2.0,
                size: Some(5)
            }
        );
        assert_eq!("sobel-y".parse::<KernelSpec>().unwrap(), KernelSpec::SobelY);
        for bad in [
            "box",
            "box:0",
            "box:x",
            "gauss:-1",
            "gauss:1:0",
            "blur",
            "gauss:1:2:3",
            "",
        ] {
            assert!(bad.parse::<KernelSpec>().is_err(), "{bad}");
        }
        assert_eq!(
            "box:3"
                .parse::<KernelSpec>()
                .unwrap()
                .build(DType::F32)
                .unwrap()
                .shape(),
            &[3, 3]
        );
    }
}
