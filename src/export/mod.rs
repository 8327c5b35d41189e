//! Exports of a trained classifier to formats other runtimes load. The `.safetensors` weights
//! export lives with the model ([`crate::TrainedModel::to_safetensors`]); this module holds the
//! formats that also carry the computation graph.

pub mod onnx;

pub use onnx::classifier_to_onnx;
