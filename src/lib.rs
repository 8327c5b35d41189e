//! webtune: fine-tune an ImageNet-pretrained image classifier on your own pictures, in the
//! browser (wasm + WebGPU or CPU) or natively, from the same code.
//!
//! The layout follows the pipeline: [`weights`] reads and writes weight files, [`model`] holds
//! the backbone and head, [`data`] decodes and splits images, [`train`] caches features and
//! trains both phases, [`export`] writes the whole graph as ONNX. [`Recipe`] declares every
//! setting with its default and range once; a [`Session`] owns the run of a recipe, and the
//! page (`web`) and the CLI only drive it and show its [`Event`]s.

pub mod backend;
pub mod boundary;
pub mod data;
pub mod error;
pub mod explain;
pub mod export;
pub mod inference;
pub mod model;
pub mod train;
pub mod recipe;
mod session;
#[cfg(not(target_arch = "wasm32"))]
pub mod tools;
pub mod weights;

#[cfg(target_arch = "wasm32")]
mod web;
// The bench page's side-by-side exports (BatchNorm folding, against TF.js); not the page's API,
// so only in builds with the `bench` feature.
#[cfg(all(target_arch = "wasm32", feature = "bench"))]
mod bench_web;

pub use error::{Error, ErrorKind, Result};
pub use inference::{Prediction, TrainedModel};
pub use recipe::Recipe;
pub use session::{Event, Outcome, Phase, Session, Stage, Started};
