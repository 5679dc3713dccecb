//! What the command-line tests share: temporary folders, synthetic IDX data, running
//! `nabla` and reading what a run left.
#![allow(dead_code)] // each test file uses some of these

use nabla_nn::checkpoint::Checkpoint;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A fresh temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!("nabla-train-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

/// Fashion-MNIST-shaped IDX files: class k is a bright bar at rows 2k+4..2k+6 over noise.
pub fn write_fake_fashion(dir: &Path, train: usize, test: usize) {
    let mut state = 12345u64;
    let mut rand = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for (stem, n) in [("train", train), ("t10k", test)] {
        let mut px = Vec::with_capacity(n * 784);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let k = (i * 7 + rand() as usize) % 10;
            labels.push(k as u8);
            for r in 0..28 {
                for _c in 0..28 {
                    let on = r >= 2 * k + 4 && r < 2 * k + 6;
                    px.push(if on {
                        200 + (rand() % 56) as u8
                    } else {
                        (rand() % 60) as u8
                    });
                }
            }
        }
        idx(&dir.join(format!("{stem}-images-idx3-ubyte")), &[n as u32, 28, 28], &px);
        idx(&dir.join(format!("{stem}-labels-idx1-ubyte")), &[n as u32], &labels);
    }
}

pub fn nabla(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nabla"))
        .args(args)
        .env_remove("NABLA_DATA")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn ok(args: &[&str]) -> String {
    let out = nabla(args);
    assert!(
        out.status.success(),
        "nabla {args:?} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `metrics.jsonl` values of `key`, epoch by epoch.
pub fn metric(dir: &Path, key: &str) -> Vec<f64> {
    let t = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    t.lines()
        .filter(|l| !l.starts_with("{\"split\""))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()[key]
                .as_f64()
                .unwrap()
        })
        .collect()
}

/// The model and optimizer tensors of a checkpoint as raw bits, by name.
pub fn bits(path: &Path) -> Vec<(String, Vec<u64>)> {
    let ck = Checkpoint::load(path).unwrap();
    let mut out: Vec<(String, Vec<u64>)> = ck
        .model
        .iter()
        .chain(&ck.optimizer.tensors)
        .map(|(n, t)| (n.clone(), t.to_vec_f64().iter().map(|v| v.to_bits()).collect()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The strings of `v` as `&str`, for argument lists.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The width and height of a PNG file, which must decode.
pub fn png_size(path: &Path) -> (u32, u32) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (img.width(), img.height())
}

/// The test line of `metrics.jsonl` that holds `key`.
pub fn test_value(dir: &Path, key: &str) -> f64 {
    let t = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    t.lines()
        .filter(|l| l.starts_with("{\"split\":\"test\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()[key].as_f64())
        .next()
        .unwrap_or_else(|| panic!("no {key} in {t}"))
}

/// One error line and exit code 1 for `args`, containing `want`.
pub fn refused(args: &[&str], want: &str) {
    let res = nabla(args);
    let err = text(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(want), "{args:?}: wanted {want:?} in {err}");
}
