//! A trained classifier: predicting, and the exports that carry everything needed to use it
//! elsewhere (labels, backbone, preprocessing) in their metadata: `.safetensors` weights in
//! `__metadata__`, the ONNX graph in `metadata_props`.

use std::collections::HashMap;

use burn::tensor::Device;
use image::RgbImage;
use serde::Serialize;

use crate::data::{decode_image, resize_and_center_crop, to_input_tensor};
use crate::error::{Error, Result};
use crate::export::classifier_to_onnx;
use crate::model::{BackboneKind, BackboneSpec, Classifier, ClassifierNames, HeadConfig};
use crate::train::softmax;
use crate::weights::{TensorEntry, TensorMap, TensorValues, collect_params, load_params, read_safetensors, write_safetensors};

/// Metadata keys written into exports.
pub mod meta {
    pub const LABELS: &str = "labels";
    pub const BACKBONE: &str = "backbone";
    pub const INPUT_SIZE: &str = "input_size";
    pub const RESIZE_SIZE: &str = "resize_size";
    pub const NORMALIZATION: &str = "normalization";
    pub const HIDDEN_UNITS: &str = "head_hidden_units";
    pub const TRAINING: &str = "training";
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Prediction {
    pub label: String,
    pub probability: f32,
}

#[derive(Clone)]
pub struct TrainedModel {
    pub classifier: Classifier,
    pub labels: Vec<String>,
    pub spec: BackboneSpec,
    pub hidden_units: usize,
    /// How it was trained (settings and split sizes), as JSON; recorded in exports.
    pub training: serde_json::Value,
}

impl TrainedModel {
    /// Row-major `[images, classes]` logits for images already cropped to the input size.
    pub async fn logits(&self, images: &[&RgbImage]) -> Result<Vec<f32>> {
        let device = self.classifier.backbone.device();
        let logits = self.classifier.forward(to_input_tensor(images, &self.spec, &device));
        let data = logits.into_data_async().await.map_err(|e| Error::read_back("reading logits", e))?;
        data.try_to_vec_as::<f32>().map_err(|e| Error::read_back("reading tensor data", e))
    }

    /// Class probabilities for images already cropped to the input size, one row per image.
    pub async fn probabilities(&self, images: &[&RgbImage]) -> Result<Vec<Vec<f32>>> {
        Ok(self.logits(images).await?.chunks_exact(self.labels.len()).map(softmax).collect())
    }

    /// Decodes one file and returns every class with its probability, most likely first.
    pub async fn predict_file(&self, file_name: &str, bytes: &[u8]) -> Result<Vec<Prediction>> {
        let crop = resize_and_center_crop(&decode_image(file_name, bytes)?, &self.spec);
        let probabilities = self.probabilities(&[&crop]).await?.remove(0);
        Ok(self.ranked(&probabilities))
    }

    pub fn ranked(&self, probabilities: &[f32]) -> Vec<Prediction> {
        let mut ranked: Vec<Prediction> = self
            .labels
            .iter()
            .zip(probabilities)
            .map(|(label, &probability)| Prediction { label: label.clone(), probability })
            .collect();
        ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        ranked
    }

    pub fn kind(&self) -> BackboneKind {
        self.classifier.backbone.kind()
    }

    fn names(&self) -> ClassifierNames {
        ClassifierNames { kind: self.kind(), hidden: self.hidden_units > 0 }
    }

    /// The metadata every export carries, as `(key, value)` pairs sorted by key: labels (JSON
    /// list, in logit order), backbone, preprocessing, head and training settings.
    pub fn export_metadata(&self) -> Vec<(String, String)> {
        let json = |v: serde_json::Value| v.to_string();
        let normalization = serde_json::json!({"mean": self.spec.mean, "std": self.spec.std, "input_range": [0, 255], "channels": "RGB"});
        let mut metadata = vec![
            ("webtune_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
            (meta::LABELS.to_string(), json(serde_json::json!(self.labels))),
            (meta::BACKBONE.to_string(), self.spec.name.clone()),
            (meta::INPUT_SIZE.to_string(), self.spec.input_size.to_string()),
            (meta::RESIZE_SIZE.to_string(), self.spec.resize_size.to_string()),
            (meta::NORMALIZATION.to_string(), json(normalization)),
            (meta::HIDDEN_UNITS.to_string(), self.hidden_units.to_string()),
            (meta::TRAINING.to_string(), json(self.training.clone())),
        ];
        metadata.sort();
        metadata
    }

    /// The whole classifier as safetensors with the original PyTorch definition's tensor names
    /// (lukemelas for EfficientNet-Lite0, torchvision for the others).
    pub async fn to_safetensors(&self) -> Result<Vec<u8>> {
        let mut tensors = collect_params(&self.classifier, &self.names()).await?;
        add_batch_norm_counters(&mut tensors);
        let mut metadata: HashMap<String, String> = self.export_metadata().into_iter().collect();
        metadata.insert("format".to_string(), "pt".to_string());
        write_safetensors(&tensors, metadata)
    }

    /// The whole inference graph as ONNX (opset 17): input `input` `[batch, 3, 224, 224]`
    /// normalised, outputs `logits` and `probabilities`; initializers carry the same names as
    /// [`to_safetensors`](Self::to_safetensors) and `metadata_props` the same metadata.
    pub async fn to_onnx(&self) -> Result<Vec<u8>> {
        let tensors = collect_params(&self.classifier, &self.names()).await?;
        classifier_to_onnx(self.kind(), &tensors, self.hidden_units > 0, self.labels.len(), &self.export_metadata())
    }

    /// Reloads an export written by [`to_safetensors`](Self::to_safetensors).
    pub fn from_safetensors(bytes: &[u8], device: &Device) -> Result<Self> {
        let (tensors, metadata) = read_safetensors(bytes)?;
        let field = |key: &str| {
            metadata.get(key).ok_or_else(|| Error::weights(format!("not a webtune export: metadata has no \"{key}\"")))
        };
        let labels: Vec<String> = serde_json::from_str(field(meta::LABELS)?)
            .map_err(|e| Error::weights(format!("metadata \"labels\" is not a list of names: {e}")))?;
        if labels.is_empty() {
            return Err(Error::weights("metadata \"labels\" is empty: a classifier needs at least one class"));
        }
        let kind = BackboneKind::from_name(field(meta::BACKBONE)?)?;
        let spec = kind.spec();
        let hidden_units: usize = field(meta::HIDDEN_UNITS)?
            .trim()
            .parse()
            .map_err(|_| Error::weights("metadata \"head_hidden_units\" is not a non-negative whole number"))?;
        // The metadata sizes the head that is allocated next: it must agree with the tensors the
        // file actually holds, or a few bytes of JSON could ask for gigabytes.
        check_head_shapes(kind, hidden_units, labels.len(), &tensors)?;
        let training = metadata.get(meta::TRAINING).and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
        let config = HeadConfig::new(kind.features(), labels.len()).with_hidden(hidden_units);
        let names = ClassifierNames { kind, hidden: hidden_units > 0 };
        let classifier = load_params(Classifier::new(kind, &config, device), &tensors, &names)?;
        Ok(Self { classifier, labels, spec, hidden_units, training })
    }
}

/// Checks the head tensors of an export against the sizes its metadata declares: the output
/// layer `[classes, inputs]` and, with hidden units, the hidden layer `[hidden, features]`.
fn check_head_shapes(kind: BackboneKind, hidden: usize, classes: usize, tensors: &TensorMap) -> Result<()> {
    let (hidden_name, output_name) = kind.head_names(hidden > 0);
    let expect = |name: &str, rows: usize, cols: usize, what: &str| {
        let found = tensors.get(&format!("{name}.weight")).map(|t| t.shape.as_slice());
        match found {
            Some([r, c]) if *r == rows && *c == cols => Ok(()),
            Some(shape) => Err(Error::weights(format!(
                "{name}.weight is {shape:?}, but the metadata says {what} ([{rows}, {cols}]): the export is inconsistent"
            ))),
            None => Err(Error::weights(format!("{name}.weight is missing: not a {kind} export with {what}"))),
        }
    };
    if hidden > 0 {
        expect(&hidden_name, hidden, kind.features(), &format!("{hidden} hidden units"))?;
    }
    let inputs = if hidden > 0 { hidden } else { kind.features() };
    expect(&output_name, classes, inputs, &format!("{classes} labels"))
}

/// PyTorch's `BatchNorm2d` has an int64 `num_batches_tracked` buffer beside its running
/// statistics, and `load_state_dict(strict=True)` wants it. webtune never updates BatchNorm
/// statistics (they stay in inference mode), so the counter is written as 0; it only matters
/// to PyTorch when `momentum=None`.
fn add_batch_norm_counters(tensors: &mut TensorMap) {
    let prefixes: Vec<String> =
        tensors.keys().filter_map(|name| name.strip_suffix(".running_mean").map(str::to_string)).collect();
    for prefix in prefixes {
        tensors.insert(format!("{prefix}.num_batches_tracked"), TensorEntry { shape: vec![], values: TensorValues::I64(vec![0]) });
    }
}

