//! Fixture writers shared by the integration tests: temporary folders, IDX, gzip, CIFAR.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "nabla-data-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An IDX file of unsigned bytes.
pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `n` images of `h`×`w` whose pixel values encode the image index, and labels `i % classes`.
pub fn idx_pair(n: usize, h: usize, w: usize, classes: usize) -> (Vec<u8>, Vec<u8>) {
    let px: Vec<u8> = (0..n * h * w)
        .map(|i| ((i / (h * w)) * 7 + i % (h * w)) as u8)
        .collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % classes) as u8).collect();
    (
        idx_bytes(&[n as u32, h as u32, w as u32], &px),
        idx_bytes(&[n as u32], &labels),
    )
}

/// Write a Fashion-MNIST-named set (`n_train`/`n_test` images of 28×28) into `dir`, gzipped.
pub fn write_fashion_set(dir: &Path, n_train: usize, n_test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for (stem, n) in [("train", n_train), ("t10k", n_test)] {
        let (img, lab) = idx_pair(n, 28, 28, 10);
        std::fs::write(dir.join(format!("{stem}-images-idx3-ubyte.gz")), gzip(&img)).unwrap();
        std::fs::write(dir.join(format!("{stem}-labels-idx1-ubyte.gz")), gzip(&lab)).unwrap();
    }
}

/// CIFAR records: `labels.len()` records with the given label bytes (coarse then fine for 100).
pub fn cifar_bytes(labels: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        v.extend_from_slice(l);
        v.extend((0..3072).map(|p| ((p / 1024) * 50 + i) as u8));
    }
    v
}
