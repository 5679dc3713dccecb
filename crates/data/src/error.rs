//! Errors: each names the file (or URL) and what was wrong with it.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while finding, reading or batching data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused a read, write or listing.
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A file's contents break its format (bad magic, wrong length, trailing bytes, ...).
    #[error("{}: {msg}", .path.display())]
    Format { path: PathBuf, msg: String },
    /// A gzip stream that is truncated, corrupt (CRC/length) or made of several members.
    #[error("{}: gzip: {msg}", .path.display())]
    Gzip { path: PathBuf, msg: String },
    /// A file or a declared size above the configured limit.
    #[error("{}: {what} is {size} bytes, over the limit of {limit}", .path.display())]
    TooLarge {
        path: PathBuf,
        what: String,
        size: u64,
        limit: u64,
    },
    /// A label outside `0..classes`.
    #[error("{}: label {label} at index {index} is out of range for {classes} classes", .path.display())]
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        label: usize,
        classes: usize,
    },
    /// Two files that must describe the same items disagree on their number.
    #[error("{} has {left} items but {} has {right}", .left_path.display(), .right_path.display())]
    CountMismatch {
        left_path: PathBuf,
        left: usize,
        right_path: PathBuf,
        right: usize,
    },
    /// An image that cannot be decoded (unreadable, truncated, over the size limits).
    #[error("{}: image: {msg}", .path.display())]
    Image { path: PathBuf, msg: String },
    /// A CSV header that lacks a requested column.
    #[error("{}: no column named {column:?} (columns: {available:?})", .path.display())]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: Vec<String>,
    },
    /// A CSV cell or row that cannot be used (`line` counts from 1, the header is line 1).
    #[error("{}: line {line}, column {column:?}: {msg}", .path.display())]
    Csv {
        path: PathBuf,
        line: usize,
        column: String,
        msg: String,
    },
    /// A data set that is in none of the searched places and could not be downloaded.
    #[error("{name} not found; searched {searched:?}{}", fmt_hint(.hint))]
    NotFound {
        name: String,
        searched: Vec<PathBuf>,
        hint: String,
    },
    /// A download that failed (connection, HTTP status, cut transfer).
    #[error("download {url}: {msg}")]
    Download { url: String, msg: String },
    /// Downloaded or cached bytes whose SHA-256 is not the expected one.
    #[error("{}: SHA-256 {actual} does not match the expected {expected}", .path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// An index outside `0..len`.
    #[error("{op}: index {index} out of range for length {len}")]
    Index { op: &'static str, index: usize, len: usize },
    /// A wrong argument (a zero batch size, a crop larger than the image, ...).
    #[error("{op}: {msg}")]
    Invalid { op: &'static str, msg: String },
    /// An error from building a tensor.
    #[error(transparent)]
    Tensor(#[from] nabla_core::Error),
}

fn fmt_hint(h: &str) -> String {
    if h.is_empty() {
        String::new()
    } else {
        format!(" ({h})")
    }
}

impl DataError {
    /// Shorthand for [`DataError::Io`].
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Shorthand for [`DataError::Format`].
    pub fn format(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        DataError::Format {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    /// Shorthand for [`DataError::Invalid`].
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        DataError::Invalid { op, msg: msg.into() }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, DataError>;
