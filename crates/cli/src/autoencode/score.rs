//! The closing table of a run: k-nearest-neighbour (k = 5) test accuracy with the trained
//! encoder's latent codes, with PCA to as many dimensions (the training images' principal
//! components), and with the raw pixels, each against the training images; printed and
//! appended to `metrics.jsonl` as a test line.

use super::knn::{accuracy, knn_classify, Pca};
use super::task::{encode_all, Autoencode, Images};
use crate::error::CliResult;
use nabla_data::Dataset;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Neighbours that vote.
pub const K: usize = 5;

/// Print the kNN table of the weights `task` holds (the checkpoint `file`, of `epoch`) and
/// append it to `out`'s `metrics.jsonl`.
pub fn knn_table(task: &Autoencode, train: &Arc<dyn Dataset>, out: &Path, file: &str, epoch: u64) -> CliResult<()> {
    let train = Images::load(train.clone())?;
    let test = task.test();
    let model = task.model();
    let l = task.latent();
    let d: usize = train.x.shape()[1..].iter().product();
    let (n, m) = (train.len(), test.len());
    println!("kNN (k = {K}) test accuracy, {m} test against {n} training images:");
    let row = |name: &str, dims: usize, acc: f64, secs: f64| {
        println!("  {name:<10} {dims:>4} dims  {:>6.2}%  ({secs:.1} s)", 100.0 * acc);
    };
    let t = Instant::now();
    let (zt, zq) = (encode_all(model, &train.x)?, encode_all(model, &test.x)?);
    let latent = accuracy(&knn_classify(&zt, &train.labels, &zq, l, K)?, &test.labels);
    row("latent", l, latent, t.elapsed().as_secs_f64());
    let (pt, pq) = (train.x.to_vec_f32(), test.x.to_vec_f32());
    let t = Instant::now();
    let pca = Pca::fit(&pt, d, l)?;
    let (at, aq) = (pca.project(&pt)?, pca.project(&pq)?);
    let pca_acc = accuracy(&knn_classify(&at, &train.labels, &aq, l, K)?, &test.labels);
    row("PCA", l, pca_acc, t.elapsed().as_secs_f64());
    let t = Instant::now();
    let pixels = accuracy(&knn_classify(&pt, &train.labels, &pq, d, K)?, &test.labels);
    row("pixels", d, pixels, t.elapsed().as_secs_f64());
    let metrics = [
        ("knn_latent_acc".to_string(), latent),
        ("knn_pca_acc".to_string(), pca_acc),
        ("knn_pixels_acc".to_string(), pixels),
    ];
    Ok(nabla_train::record::write_test_line(out, file, epoch, &metrics)?)
}
