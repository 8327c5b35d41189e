//! One error type for the whole crate. Every message names what the user can act on: the file and
//! the reason, the tensor and the expected shape, the setting and its allowed range.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// A file the user gave could not be read as an image.
    #[error("{file}: {reason}")]
    Image { file: String, reason: String },
    /// A weights file is malformed or does not fit the architecture.
    #[error("{0}")]
    Weights(String),
    /// The dataset cannot be trained on as it is (too few classes, an empty class, ...).
    #[error("{0}")]
    Dataset(String),
    /// A training setting is out of range, or training was asked for in the wrong order.
    #[error("{0}")]
    Training(String),
    /// The compute backend failed (WebGPU missing or lost, a read-back failed).
    #[error("{0}")]
    Backend(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn weights(message: impl Into<String>) -> Self {
        Error::Weights(message.into())
    }
    pub(crate) fn image(file: &str, reason: impl Into<String>) -> Self {
        Error::Image { file: file.to_string(), reason: reason.into() }
    }
}
