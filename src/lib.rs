//! webtune: fine-tune an ImageNet-pretrained image classifier on your own pictures, in the
//! browser (wasm + WebGPU or CPU) or natively, from the same code.
//!
//! The layout follows the pipeline: [`weights`] reads and writes weight files, [`model`] holds
//! the backbone and head, [`data`] decodes and splits images, [`train`] caches features and
//! trains the head, [`export`] writes the whole graph as ONNX, [`Tuner`] ties them together for
//! the page (`web`) and the CLI.

pub mod backend;
pub mod data;
pub mod error;
pub mod export;
pub mod inference;
pub mod model;
pub mod train;
mod tuner;
pub mod weights;

#[cfg(target_arch = "wasm32")]
mod web;
// The bench page's side-by-side exports (BatchNorm folding, against TF.js); not the page's API.
#[cfg(target_arch = "wasm32")]
mod bench_web;

pub use error::{Error, Result};
pub use inference::{Prediction, TrainedModel};
pub use tuner::{CacheProgress, SplitSummary, Tuner};
