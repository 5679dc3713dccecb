//! Errors of the nn crate: tensor errors with the module path added, and file errors.

/// Everything that can go wrong building, running, saving or loading models.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor op failed; `context` names the module path and layer (may be empty).
    #[error("{}{source}", if .context.is_empty() { String::new() } else { format!("{}: ", .context) })]
    Tensor {
        /// Dotted module path and layer, outermost first (`features.3 (Conv2d 64→128)`).
        context: String,
        /// The op's error.
        #[source]
        source: nabla_core::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint or state dict that does not fit (missing/unknown names, shapes, corrupt file).
    #[error("{0}")]
    State(String),
    /// A bad configuration value (e.g. a learning rate below zero).
    #[error("{0}")]
    Config(String),
}

impl From<nabla_core::Error> for Error {
    fn from(source: nabla_core::Error) -> Self {
        Error::Tensor {
            context: String::new(),
            source,
        }
    }
}

impl Error {
    /// Prefix a tensor error with the module path it happened in (`features.3 (Conv2d 64→128)`).
    pub fn context(self, ctx: impl std::fmt::Display) -> Self {
        match self {
            Error::Tensor { context, source } => Error::Tensor {
                context: if context.is_empty() {
                    ctx.to_string()
                } else {
                    format!("{ctx}.{context}")
                },
                source,
            },
            other => other,
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
