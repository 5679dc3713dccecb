//! What the latent space is worth to a classifier that only looks at distances: k-nearest
//! neighbours (Euclidean) in latent space, on raw pixels and on the training set's first
//! principal components, and the principal components themselves (also used to draw a
//! latent space of more than two dimensions).
//!
//! Distances come from matrix products, `|q − t|² = |q|² − 2 q·t + |t|²`, over batches of
//! queries, so the heavy part runs in the gemm kernels; `|q|²` is the same for every
//! training row of a query and is left out of the ranking.

use crate::error::{CliError, CliResult};
use nabla_core::Tensor;
use rayon::prelude::*;

/// Queries per product: 500 × 55,000 distances are 110 MB of f32.
const QUERY_BATCH: usize = 500;

/// `rows` (`n × dim`, row-major) transposed to `dim × n`.
fn transpose(rows: &[f32], dim: usize) -> Vec<f32> {
    let n = rows.len() / dim.max(1);
    let mut t = vec![0f32; rows.len()];
    for (i, row) in rows.chunks_exact(dim).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            t[j * n + i] = v;
        }
    }
    t
}

/// The `k` training rows nearest a query, nearest first, from the query's products with
/// every training row (`dots`) and the training rows' squared norms.
fn nearest(dots: &[f32], norms: &[f32], k: usize) -> Vec<(f32, usize)> {
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    for (j, (&d, &n2)) in dots.iter().zip(norms).enumerate() {
        let dist = n2 - 2.0 * d;
        if best.len() == k && dist >= best[k - 1].0 {
            continue;
        }
        let at = best.partition_point(|&(b, _)| b <= dist);
        best.insert(at, (dist, j));
        best.truncate(k);
    }
    best
}

/// The majority label of `neighbours` (nearest first); a tie goes to the tied class whose
/// nearest member is nearest.
fn vote(neighbours: &[(f32, usize)], labels: &[usize]) -> usize {
    let classes: Vec<usize> = neighbours.iter().map(|&(_, j)| labels[j]).collect();
    let count = |c: usize| classes.iter().filter(|&&x| x == c).count();
    let top = classes.iter().map(|&c| count(c)).max().unwrap_or(0);
    classes.iter().copied().find(|&c| count(c) == top).unwrap_or(0)
}

/// The label predicted for each query row by its `k` nearest training rows (`train`:
/// `labels.len() × dim`, `query`: `m × dim`, both row-major).
pub fn knn_classify(train: &[f32], labels: &[usize], query: &[f32], dim: usize, k: usize) -> CliResult<Vec<usize>> {
    let n = labels.len();
    if dim == 0 || k == 0 || n < k || train.len() != n * dim || !query.len().is_multiple_of(dim) {
        return Err(CliError::new(format!(
            "kNN needs at least k = {k} training rows of {dim} values ({n} rows given)"
        )));
    }
    let tt = Tensor::from_vec(transpose(train, dim), &[dim, n])?;
    let norms: Vec<f32> = train.chunks_exact(dim).map(|r| r.iter().map(|v| v * v).sum()).collect();
    let m = query.len() / dim;
    let mut out = Vec::with_capacity(m);
    for start in (0..m).step_by(QUERY_BATCH) {
        let b = QUERY_BATCH.min(m - start);
        let q = Tensor::from_slice(&query[start * dim..(start + b) * dim], &[b, dim])?;
        let dots = q.matmul(&tt)?.contiguous()?;
        let preds = dots.with_slice::<f32, _>(|v| {
            v.par_chunks_exact(n)
                .map(|row| vote(&nearest(row, &norms, k), labels))
                .collect::<Vec<usize>>()
        })?;
        out.extend(preds);
    }
    Ok(out)
}

/// The fraction of `pred` equal to `truth`.
pub fn accuracy(pred: &[usize], truth: &[usize]) -> f64 {
    let hits = pred.iter().zip(truth).filter(|(a, b)| a == b).count();
    hits as f64 / truth.len().max(1) as f64
}

/// The first principal components of a set of rows: its mean and the top eigenvectors of
/// its covariance, largest variance first.
#[derive(Debug, Clone)]
pub struct Pca {
    /// Row length.
    pub dim: usize,
    /// The rows' mean.
    pub mean: Vec<f32>,
    /// The components as columns of a `dim × k` matrix, row-major.
    pub components: Vec<f32>,
    /// Number of components.
    pub k: usize,
    /// The variance along each component.
    pub variance: Vec<f64>,
    /// The variance of the rows in all directions together.
    pub total_variance: f64,
}

impl Pca {
    /// The top `k` components of `rows` (`n × dim`, row-major). Each component's sign is
    /// fixed (its largest entry positive) so the projection is the same from run to run.
    pub fn fit(rows: &[f32], dim: usize, k: usize) -> CliResult<Pca> {
        let n = rows.len() / dim.max(1);
        if n < 2 || k == 0 || k > dim {
            return Err(CliError::new(format!(
                "PCA of {n} rows of {dim} values to {k} components is not defined"
            )));
        }
        let mut mean = vec![0f64; dim];
        for row in rows.chunks_exact(dim) {
            mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
        }
        let mean: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
        let centered: Vec<f32> = rows
            .chunks_exact(dim)
            .flat_map(|r| r.iter().zip(&mean).map(|(v, m)| v - m))
            .collect();
        let xt = Tensor::from_vec(transpose(&centered, dim), &[dim, n])?;
        let x = Tensor::from_vec(centered, &[n, dim])?;
        let cov = xt.matmul(&x)?.to_vec_f64();
        let m = nalgebra::DMatrix::from_row_slice(dim, dim, &cov) / (n as f64 - 1.0);
        let eig = nalgebra::SymmetricEigen::new(m);
        let mut order: Vec<usize> = (0..dim).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let mut components = vec![0f32; dim * k];
        let mut variance = Vec::with_capacity(k);
        for (c, &i) in order.iter().take(k).enumerate() {
            let v = eig.eigenvectors.column(i);
            let big = v
                .iter()
                .copied()
                .fold(0f64, |a, x| if x.abs() > a.abs() { x } else { a });
            let sign = if big < 0.0 { -1.0 } else { 1.0 };
            for r in 0..dim {
                components[r * k + c] = (sign * v[r]) as f32;
            }
            variance.push(eig.eigenvalues[i].max(0.0));
        }
        Ok(Pca {
            dim,
            mean,
            components,
            k,
            variance,
            total_variance: eig.eigenvalues.iter().map(|v| v.max(0.0)).sum(),
        })
    }

    /// `rows` (`n × dim`) projected on the components: `n × k`, row-major.
    pub fn project(&self, rows: &[f32]) -> CliResult<Vec<f32>> {
        let n = rows.len() / self.dim;
        let centered: Vec<f32> = rows
            .chunks_exact(self.dim)
            .flat_map(|r| r.iter().zip(&self.mean).map(|(v, m)| v - m))
            .collect();
        let x = Tensor::from_vec(centered, &[n, self.dim])?;
        let w = Tensor::from_slice(&self.components, &[self.dim, self.k])?;
        Ok(x.matmul(&w)?.to_vec_f32())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::Generator;

    /// The same answer by brute force: every distance in f64, a stable sort.
    fn brute(train: &[f32], labels: &[usize], query: &[f32], dim: usize, k: usize) -> Vec<usize> {
        query
            .chunks_exact(dim)
            .map(|q| {
                let mut d: Vec<(f32, usize)> = train
                    .chunks_exact(dim)
                    .enumerate()
                    .map(|(j, t)| {
                        (
                            q.iter().zip(t).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>() as f32,
                            j,
                        )
                    })
                    .collect();
                d.sort_by(|a, b| a.0.total_cmp(&b.0));
                vote(&d[..k], labels)
            })
            .collect()
    }

    #[test]
    fn knn_by_products_agrees_with_brute_force() {
        let mut g = Generator::new(3);
        let (n, m, dim) = (700, 520, 6);
        let train: Vec<f32> = (0..n * dim).map(|_| g.normal() as f32).collect();
        let labels: Vec<usize> = (0..n).map(|i| i % 4).collect();
        let query: Vec<f32> = (0..m * dim).map(|_| g.normal() as f32).collect();
        let fast = knn_classify(&train, &labels, &query, dim, 5).unwrap();
        assert_eq!(fast, brute(&train, &labels, &query, dim, 5));
        // A query on a training row finds its own label with k = 1.
        let own = knn_classify(&train, &labels, &train[..10 * dim], dim, 1).unwrap();
        assert_eq!(own, labels[..10].to_vec());
        assert!(knn_classify(&train[..3 * dim], &labels[..3], &query, dim, 5).is_err());
    }

    #[test]
    fn a_tie_goes_to_the_class_with_the_nearest_member() {
        let nb = [(0.1, 0), (0.2, 1), (0.3, 2), (0.4, 3)];
        assert_eq!(vote(&nb, &[7, 3, 3, 7]), 7);
        assert_eq!(vote(&nb, &[1, 3, 3, 7]), 3);
        assert_eq!(accuracy(&[1, 2, 3, 4], &[1, 2, 0, 0]), 0.5);
    }

    #[test]
    fn pca_finds_the_direction_of_largest_spread() {
        // Points along (3, 4)/5 with a little spread across it.
        let mut g = Generator::new(1);
        let rows: Vec<f32> = (0..400)
            .flat_map(|_| {
                let (a, b) = (5.0 * g.normal(), 0.1 * g.normal());
                [(1.0 + 0.6 * a - 0.8 * b) as f32, (2.0 + 0.8 * a + 0.6 * b) as f32]
            })
            .collect();
        let p = Pca::fit(&rows, 2, 2).unwrap();
        let c = &p.components; // columns: c[0], c[2] is the first
        assert!((c[0] - 0.6).abs() < 0.01 && (c[2] - 0.8).abs() < 0.01, "{c:?}");
        assert!(p.variance[0] > 20.0 && p.variance[1] < 0.02, "{:?}", p.variance);
        assert!((p.total_variance - p.variance[0] - p.variance[1]).abs() < 1e-9);
        assert!((p.mean[0] - 1.0).abs() < 0.5 && (p.mean[1] - 2.0).abs() < 0.5);
        let z = p.project(&rows[..2]).unwrap();
        // The projection's length is the point's distance from the mean.
        let d2: f32 = rows[..2].iter().zip(&p.mean).map(|(v, m)| (v - m).powi(2)).sum();
        assert!((z[0].powi(2) + z[1].powi(2) - d2).abs() < 1e-3 * d2.max(1.0));
        assert!(Pca::fit(&rows, 2, 3).is_err());
    }
}
