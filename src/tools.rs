//! The native tools beside training, on the same core: backbone weights for the page, random
//! weights for trying a backbone, the pretrained backbone's ImageNet logits, and evaluating an
//! exported model on labelled files. The CLI is a thin shell over these and [`crate::Session`].

use std::collections::HashMap;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::data::{decode_image, resize_and_center_crop, to_input_tensor};
use crate::error::{Error, Result};
use crate::inference::TrainedModel;
use crate::model::{Backbone, BackboneKind, BackboneSpec, ImageNetClassifier, ImageNetNames};
use crate::train::{Evaluation, evaluate};
use crate::weights::{load_params, read_weights_file, write_safetensors};

/// Checks that a weights file (any supported format) fits `kind` and rewrites it as the
/// safetensors file the page loads. Returns the bytes and the number of tensors.
pub fn convert_weights(kind: BackboneKind, bytes: &[u8], source: &str) -> Result<(Vec<u8>, usize)> {
    let tensors = read_weights_file(bytes)?;
    // Loading proves the file fits the architecture before anything is written.
    Backbone::import(kind, &tensors, &Device::flex())?;
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("backbone".to_string(), kind.name().to_string()),
        ("source".to_string(), source.to_string()),
    ]);
    Ok((write_safetensors(&tensors, metadata)?, tensors.len()))
}

/// Randomly initialised `kind` weights (burn's default initialisation) with the original
/// PyTorch names: for trying the pipeline or benchmarking a backbone without its pretrained file.
pub async fn random_weights(kind: BackboneKind, seed: u64) -> Result<(Vec<u8>, usize)> {
    let device = Device::flex();
    device.seed(seed);
    let tensors = Backbone::init(kind, &device).to_tensors().await?;
    let metadata = HashMap::from([("backbone".to_string(), kind.name().to_string()), ("source".to_string(), "random".to_string())]);
    Ok((write_safetensors(&tensors, metadata)?, tensors.len()))
}

/// A pretrained backbone with its ImageNet classifier, as the weights file has it.
pub struct ImageNetModel {
    model: ImageNetClassifier,
    spec: BackboneSpec,
    device: Device,
}

impl ImageNetModel {
    pub fn load(kind: BackboneKind, weights: &[u8], device: &Device) -> Result<Self> {
        let tensors = read_weights_file(weights)?;
        let model = load_params(ImageNetClassifier::new(kind, device), &tensors, &ImageNetNames { kind })?;
        Ok(Self { model, spec: kind.spec(), device: device.clone() })
    }

    /// The evaluation input of each `(file name, bytes)`: shorter side resized, center crop,
    /// normalised; `[images, 3, size, size]`.
    pub fn preprocess(&self, files: &[(String, Vec<u8>)]) -> Result<Tensor<4>> {
        let crops = files.iter().map(|(name, bytes)| Ok(resize_and_center_crop(&decode_image(name, bytes)?, &self.spec))).collect::<Result<Vec<_>>>()?;
        Ok(to_input_tensor(&crops.iter().collect::<Vec<_>>(), &self.spec, &self.device))
    }

    /// `[images, 1000]` logits, row-major, for an input from [`preprocess`](Self::preprocess).
    pub async fn logits(&self, input: Tensor<4>) -> Result<Vec<f32>> {
        let data = self.model.forward(input).into_data_async().await.map_err(|e| Error::read_back("reading logits", e))?;
        data.try_to_vec::<f32>().map_err(|e| Error::read_back("reading logits", e))
    }
}

/// One labelled file to evaluate on.
pub struct LabelledBytes {
    pub label: String,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Evaluates `model` on labelled files whose labels must be among the model's. Files that do not
/// decode are skipped and returned with their error.
pub async fn evaluate_files(model: &TrainedModel, files: Vec<LabelledBytes>) -> Result<(Evaluation, Vec<Error>)> {
    let (mut logits, mut targets, mut names, mut skipped) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for file in files {
        let Some(target) = model.labels.iter().position(|l| *l == file.label) else {
            return Err(Error::Dataset(format!("class \"{}\" is not one of the model's ({})", file.label, model.labels.join(", "))));
        };
        match decode_image(&file.name, &file.bytes) {
            Ok(image) => {
                let crop = resize_and_center_crop(&image, &model.spec);
                logits.extend(model.logits(&[&crop]).await?);
                targets.push(target);
                names.push((names.len() as u32, file.name));
            }
            Err(e) => skipped.push(e),
        }
    }
    Ok((evaluate(&logits, &model.labels, &targets, &names), skipped))
}

impl TrainedModel {
    /// The classifier in burn's own record format (burnpack), for Rust users. Reads tensors
    /// synchronously: native only (the browser's WebGPU cannot).
    pub fn to_burn_record(&self) -> Result<Vec<u8>> {
        self.classifier.clone().into_record().into_bytes().map(|bytes| bytes.to_vec()).map_err(|e| Error::Weights(format!("burn record: {e}")))
    }
}
