//! Finding Fashion-MNIST on disk, or downloading it into a per-user cache.
//!
//! ```no_run
//! use nabla_data::{FashionMnist, Split, Dataset};
//! // Searches --data-dir, $NABLA_DATA, /usr/share/datasets/fashion-mnist, then the cache,
//! // and downloads (SHA-256 checked) only when it is nowhere.
//! let train = FashionMnist::new().load(Split::Train)?;
//! assert_eq!(train.len(), 60_000);
//! # Ok::<(), nabla_data::DataError>(())
//! ```

use crate::idx::{MnistFamily, Split};
use crate::{http, DataError, ImageDataset, ReadLimits, Result};
use sha2::{Digest, Sha256};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The official mirror (plain HTTP; every file is checked against its SHA-256).
pub const FASHION_MNIST_MIRROR: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";

/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// A file to download and the SHA-256 (lower-case hex) it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// The file name, both on the mirror and in the cache.
    pub name: String,
    /// The expected SHA-256, lower-case hex.
    pub sha256: String,
}

/// The four gzipped files of the official release and their SHA-256 digests.
pub fn fashion_mnist_files() -> Vec<RemoteFile> {
    [
        (
            "train-images-idx3-ubyte.gz",
            "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        ),
    ]
    .iter()
    .map(|(n, h)| RemoteFile {
        name: n.to_string(),
        sha256: h.to_string(),
    })
    .collect()
}

/// Where to look for Fashion-MNIST, in order, and how to fetch it when it is nowhere.
#[derive(Debug, Clone)]
pub struct FashionMnist {
    /// An explicit directory (a `--data-dir` flag); searched first.
    pub data_dir: Option<PathBuf>,
    /// The `NABLA_DATA` directory; searched second.
    pub env_dir: Option<PathBuf>,
    /// The system-wide install (Debian's package); searched third.
    pub system_dir: Option<PathBuf>,
    /// The per-user cache; searched last, and where downloads go.
    pub cache_dir: Option<PathBuf>,
    /// The base URL the files are fetched from.
    pub mirror: String,
    /// The files to fetch and their digests.
    pub files: Vec<RemoteFile>,
    /// Whether a missing data set may be downloaded.
    pub download: bool,
    /// Whether to draw a progress line on stderr while downloading (only on a terminal).
    pub progress: bool,
    /// Caps applied while reading.
    pub limits: ReadLimits,
}

impl Default for FashionMnist {
    fn default() -> Self {
        Self::new()
    }
}

impl FashionMnist {
    /// The search order from the environment: `NABLA_DATA`, the system directory, the user cache
    /// (`$XDG_CACHE_HOME/nabla` or `~/.cache/nabla`); the mirror can be overridden with
    /// `NABLA_FASHION_MNIST_MIRROR`.
    pub fn new() -> Self {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let cache = env("XDG_CACHE_HOME")
            .or_else(|| env("HOME").map(|h| h.join(".cache")))
            .or_else(|| env("LOCALAPPDATA"))
            .map(|c| c.join("nabla").join("fashion-mnist"));
        FashionMnist {
            data_dir: None,
            env_dir: env("NABLA_DATA"),
            system_dir: Some(PathBuf::from(SYSTEM_DIR)),
            cache_dir: cache,
            mirror: std::env::var("NABLA_FASHION_MNIST_MIRROR")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| FASHION_MNIST_MIRROR.to_string()),
            files: fashion_mnist_files(),
            download: true,
            progress: true,
            limits: ReadLimits::default(),
        }
    }

    /// The same search with an explicit directory tried first.
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The directories searched, in order (a data root is tried as is and with `fashion-mnist/`).
    pub fn search_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for root in [&self.data_dir, &self.env_dir].into_iter().flatten() {
            dirs.push(root.clone());
            dirs.push(root.join("fashion-mnist"));
        }
        dirs.extend(self.system_dir.iter().cloned());
        dirs.extend(self.cache_dir.iter().cloned());
        dirs
    }

    /// The first directory that holds all the files, downloading into the cache if none does.
    pub fn locate(&self) -> Result<PathBuf> {
        let searched = self.search_dirs();
        if let Some(d) = searched.iter().find(|d| MnistFamily::Fashion.is_in(d)) {
            return Ok(d.clone());
        }
        let not_found = |hint: &str| DataError::NotFound {
            name: "Fashion-MNIST".into(),
            searched: searched.clone(),
            hint: hint.into(),
        };
        if !self.download {
            return Err(not_found("downloading is off; set NABLA_DATA or pass a data directory"));
        }
        let cache = self
            .cache_dir
            .as_ref()
            .ok_or_else(|| not_found("no cache directory (set HOME or XDG_CACHE_HOME) to download into"))?;
        std::fs::create_dir_all(cache).map_err(|e| DataError::io(cache, e))?;
        for f in &self.files {
            let dest = cache.join(&f.name);
            if dest.is_file() {
                continue;
            }
            let url = format!("{}/{}", self.mirror.trim_end_matches('/'), f.name);
            download_verified(&url, &dest, &f.sha256, self.progress)?;
        }
        if MnistFamily::Fashion.is_in(cache) {
            Ok(cache.clone())
        } else {
            Err(not_found("the downloaded files do not complete the data set"))
        }
    }

    /// Locate (or download) the data set and load one split.
    pub fn load(&self, split: Split) -> Result<ImageDataset> {
        let dir = self.locate()?;
        MnistFamily::Fashion.load_dir(&dir, split, &self.limits)
    }
}

/// Download `url` to `dest`, atomically: the bytes go to a temporary file beside `dest`, are
/// checked against `sha256` and synced, and only then renamed; a failure removes the
/// temporary file, so `dest` never exists half-written.
pub fn download_verified(url: &str, dest: &Path, sha256: &str, progress: bool) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".{name}.part-{}-{nanos}", std::process::id()));
    let result = fetch_to(url, &tmp, dest, sha256, progress, &name);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn fetch_to(url: &str, tmp: &Path, dest: &Path, sha256: &str, progress: bool, name: &str) -> Result<()> {
    let file = std::fs::File::create(tmp).map_err(|e| DataError::io(tmp, e))?;
    let mut sink = HashingWriter {
        inner: std::io::BufWriter::new(file),
        hasher: Sha256::new(),
    };
    let mut bar = Progress::new(name, progress && std::io::stderr().is_terminal());
    let got = http::get(url, &mut sink, &mut |done, total| bar.update(done, total));
    bar.finish();
    got?;
    let file = sink
        .inner
        .into_inner()
        .map_err(|e| DataError::io(tmp, e.into_error()))?;
    let actual = hex(&sink.hasher.finalize());
    if !actual.eq_ignore_ascii_case(sha256) {
        return Err(DataError::Checksum {
            path: dest.to_path_buf(),
            expected: sha256.to_string(),
            actual,
        });
    }
    file.sync_all().map_err(|e| DataError::io(tmp, e))?;
    drop(file);
    std::fs::rename(tmp, dest).map_err(|e| DataError::io(dest, e))?;
    // Make the rename itself durable; not every platform can open a directory, hence `if let`.
    if let Ok(d) = std::fs::File::open(dest.parent().unwrap_or(Path::new("."))) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| DataError::io(path, e))?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A byte count for people: kB below a megabyte, MB above.
fn human(b: u64) -> String {
    if b < 1_000_000 {
        format!("{:.1} kB", b as f64 / 1e3)
    } else {
        format!("{:.1} MB", b as f64 / 1e6)
    }
}

/// A one-line stderr progress display, redrawn at most ten times a second.
struct Progress {
    name: String,
    on: bool,
    last: Option<Instant>,
    state: Option<(u64, Option<u64>)>,
}

impl Progress {
    fn new(name: &str, on: bool) -> Self {
        Progress {
            name: name.to_string(),
            on,
            last: None,
            state: None,
        }
    }

    fn update(&mut self, done: u64, total: Option<u64>) {
        if !self.on {
            return;
        }
        self.state = Some((done, total));
        if self.last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return;
        }
        self.last = Some(Instant::now());
        self.draw(done, total);
    }

    fn draw(&self, done: u64, total: Option<u64>) {
        let line = match total {
            Some(t) if t > 0 => format!(
                "downloading {}: {}/{} ({:.0}%)",
                self.name,
                human(done),
                human(t),
                100.0 * done as f64 / t as f64
            ),
            _ => format!("downloading {}: {}", self.name, human(done)),
        };
        eprint!("\r{line}\x1b[K");
    }

    /// Draw the final count (the last update may have been skipped) and end the line.
    fn finish(&mut self) {
        if let Some((done, total)) = self.state {
            self.draw(done, total);
            eprintln!();
        }
    }
}
