//! Errors: each names the file (or URL) and what was wrong with it.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while finding, reading or batching data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused a read, write or listing.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file (or folder) concerned.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file's contents break its format (bad magic, wrong length, trailing bytes, ...).
    #[error("{}: {msg}", .path.display())]
    Format {
        /// The file (or folder) concerned.
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
    /// A gzip stream that is truncated, corrupt (CRC/length) or made of several members.
    #[error("{}: gzip: {msg}", .path.display())]
    Gzip {
        /// The file (or folder) concerned.
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
    /// A file or a declared size above the configured limit.
    #[error("{}: {what} is {size} bytes, over the limit of {limit}", .path.display())]
    TooLarge {
        /// The file (or folder) concerned.
        path: PathBuf,
        /// What was measured (the file, a declared size).
        what: String,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// A label outside `0..classes`.
    #[error("{}: label {label} at index {index} is out of range for {classes} classes", .path.display())]
    LabelOutOfRange {
        /// The file (or folder) concerned.
        path: PathBuf,
        /// The item's index.
        index: usize,
        /// The label found.
        label: usize,
        /// The number of classes.
        classes: usize,
    },
    /// Two files that must describe the same items disagree on their number.
    #[error("{} has {left} items but {} has {right}", .left_path.display(), .right_path.display())]
    CountMismatch {
        /// The first file.
        left_path: PathBuf,
        /// Items in the first file.
        left: usize,
        /// The second file.
        right_path: PathBuf,
        /// Items in the second file.
        right: usize,
    },
    /// An image that cannot be decoded (unreadable, truncated, over the size limits).
    #[error("{}: image: {msg}", .path.display())]
    Image {
        /// The file (or folder) concerned.
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
    /// A CSV header that lacks a requested column.
    #[error("{}: no column named {column:?} (columns: {available:?})", .path.display())]
    MissingColumn {
        /// The file (or folder) concerned.
        path: PathBuf,
        /// The column concerned.
        column: String,
        /// The columns the header has.
        available: Vec<String>,
    },
    /// A CSV cell or row that cannot be used (`line` counts from 1, the header is line 1).
    #[error("{}: line {line}, column {column:?}: {msg}", .path.display())]
    Csv {
        /// The file (or folder) concerned.
        path: PathBuf,
        /// The line, counting the header as line 1.
        line: usize,
        /// The column concerned.
        column: String,
        /// What was wrong.
        msg: String,
    },
    /// A data set that is in none of the searched places and could not be downloaded.
    #[error("{name} not found; searched {searched:?}{}", fmt_hint(.hint))]
    NotFound {
        /// The data set's name.
        name: String,
        /// The places searched.
        searched: Vec<PathBuf>,
        /// How to get it (empty when there is none).
        hint: String,
    },
    /// A download that failed (connection, HTTP status, cut transfer).
    #[error("download {url}: {msg}")]
    Download {
        /// The address downloaded from.
        url: String,
        /// What was wrong.
        msg: String,
    },
    /// Downloaded or cached bytes whose SHA-256 is not the expected one.
    #[error("{}: SHA-256 {actual} does not match the expected {expected}", .path.display())]
    Checksum {
        /// The file (or folder) concerned.
        path: PathBuf,
        /// The expected digest (hex).
        expected: String,
        /// The digest computed (hex).
        actual: String,
    },
    /// An index outside `0..len`.
    #[error("{op}: index {index} out of range for length {len}")]
    Index {
        /// The operation that refused.
        op: &'static str,
        /// The item's index.
        index: usize,
        /// The length indexed into.
        len: usize,
    },
    /// A wrong argument (a zero batch size, a crop larger than the image, ...).
    #[error("{op}: {msg}")]
    Invalid {
        /// The operation that refused.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
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
