//! One error type for the whole crate. Every message names what the user can act on: the file and
//! the reason, the tensor and the expected shape, the setting and its allowed range.
//!
//! Each error also has a [`ErrorKind`] and, where there is one, the file it is about: the page and
//! the CLI decide what to do from those (drop a picture, restart the engine on the CPU, pick an
//! exit code), never from the message text.

use serde::Serialize;
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
    /// A recipe setting is out of its range (see [`crate::recipe::SETTINGS`]).
    #[error("{message}")]
    Settings {
        /// The setting's key in the recipe, e.g. `head.learningRate`.
        setting: String,
        message: String,
    },
    /// Training was asked for in the wrong order, or diverged.
    #[error("{0}")]
    Training(String),
    /// The compute backend failed (WebGPU missing, a read-back failed).
    #[error("{0}")]
    Backend(String),
    /// The GPU device is gone (lost, or poisoned by a fault): every later call on it fails, so
    /// the caller has to start again on another device.
    #[error("{0}")]
    DeviceLost(String),
    /// A memory budget would be exceeded (the work was refused before allocating).
    #[error("{0}")]
    OutOfMemory(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What kind of failure an [`Error`] is, for callers that act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    /// A user's file (picture, dataset, model) could not be read.
    BadFile,
    /// A weights file does not fit the chosen architecture, or is not a weights file.
    Weights,
    /// The dataset is not trainable as it is.
    Dataset,
    /// A setting is out of range.
    BadSettings,
    /// A call out of order, or training that diverged.
    Training,
    /// The GPU device was lost: start again on another device (the CPU).
    DeviceLost,
    /// A memory budget would be exceeded.
    OutOfMemory,
    /// Anything else: a backend failure or a bug.
    Internal,
}

impl ErrorKind {
    /// The CLI's exit status for this kind (documented in the README; 2 is clap's usage error).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Internal => 1,
            ErrorKind::BadSettings => 2,
            ErrorKind::BadFile => 3,
            ErrorKind::Weights => 4,
            ErrorKind::Dataset => 5,
            ErrorKind::Training => 6,
            ErrorKind::DeviceLost => 7,
            ErrorKind::OutOfMemory => 8,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn weights(message: impl Into<String>) -> Self {
        Error::Weights(message.into())
    }
    pub(crate) fn image(file: &str, reason: impl Into<String>) -> Self {
        Error::Image { file: file.to_string(), reason: reason.into() }
    }

    /// A failed read of tensor data from the device. burn tells a poisoned device (and wgpu a
    /// lost one) only through its error's variant and text; this is the one place that reads
    /// them, so that nothing downstream has to parse messages.
    pub(crate) fn read_back(what: &str, error: impl std::fmt::Debug) -> Self {
        let detail = format!("{error:?}");
        let lower = detail.to_lowercase();
        if detail.starts_with("DevicePoisoned") || lower.contains("device is lost") || lower.contains("device was lost") || lower.contains("device lost") {
            Error::DeviceLost(format!("the GPU device was lost while {what} ({detail})"))
        } else {
            Error::Backend(format!("{what}: {detail}"))
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Image { .. } | Error::Io { .. } => ErrorKind::BadFile,
            Error::Weights(_) => ErrorKind::Weights,
            Error::Dataset(_) => ErrorKind::Dataset,
            Error::Settings { .. } => ErrorKind::BadSettings,
            Error::Training(_) => ErrorKind::Training,
            Error::DeviceLost(_) => ErrorKind::DeviceLost,
            Error::OutOfMemory(_) => ErrorKind::OutOfMemory,
            Error::Backend(_) => ErrorKind::Internal,
        }
    }

    /// The file the error is about, when there is one.
    pub fn file(&self) -> Option<&str> {
        match self {
            Error::Image { file, .. } => Some(file),
            Error::Io { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The message without the file name in front (for a UI that shows the file beside it).
    pub fn reason(&self) -> String {
        match self {
            Error::Image { reason, .. } => reason.clone(),
            Error::Io { source, .. } => source.to_string(),
            other => other.to_string(),
        }
    }

    /// The setting an [`Error::Settings`] is about.
    pub fn setting(&self) -> Option<&str> {
        match self {
            Error::Settings { setting, .. } => Some(setting),
            _ => None,
        }
    }

    /// Puts the error in the context of `file` (a weights file, a model): the kind stays.
    pub fn in_file(self, file: &str) -> Self {
        match self {
            Error::Weights(m) => Error::Weights(format!("{file}: {m}")),
            Error::Dataset(m) => Error::Dataset(format!("{file}: {m}")),
            Error::Training(m) => Error::Training(format!("{file}: {m}")),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_loss_is_told_from_other_read_back_failures() {
        #[derive(Debug)]
        #[allow(dead_code)]
        enum Fake {
            DevicePoisoned { reason: String },
            Generic { reason: String },
        }
        let lost = Error::read_back("reading features", Fake::DevicePoisoned { reason: "trap".into() });
        assert_eq!(lost.kind(), ErrorKind::DeviceLost);
        let lost = Error::read_back("reading features", Fake::Generic { reason: "Parent device is lost".into() });
        assert_eq!(lost.kind(), ErrorKind::DeviceLost);
        let other = Error::read_back("reading features", Fake::Generic { reason: "mapping failed".into() });
        assert_eq!(other.kind(), ErrorKind::Internal);
    }

    #[test]
    fn exit_codes_are_distinct() {
        use ErrorKind::*;
        let kinds = [BadFile, Weights, Dataset, BadSettings, Training, DeviceLost, OutOfMemory, Internal];
        let mut codes: Vec<u8> = kinds.iter().map(|k| k.exit_code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len());
    }
}
