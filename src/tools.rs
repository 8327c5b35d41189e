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
use crate::weights::{FloatStorage, load_params, read_weights_file, write_safetensors, write_safetensors_as};

/// Checks that a weights file (any supported format) fits `kind` and rewrites it as the
/// safetensors file the page loads, floats stored as `storage` says (the page bundles its default
/// backbone in f16). Returns the bytes and the number of tensors.
pub fn convert_weights(kind: BackboneKind, bytes: &[u8], source: &str, storage: FloatStorage) -> Result<(Vec<u8>, usize)> {
    let tensors = read_weights_file(bytes)?;
    // Loading proves the file fits the architecture before anything is written.
    Backbone::import(kind, &tensors, &Device::flex())?;
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("backbone".to_string(), kind.name().to_string()),
        ("source".to_string(), source.to_string()),
    ]);
    Ok((write_safetensors_as(&tensors, metadata, storage)?, tensors.len()))
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

/// An exported model's evaluation on labelled files, given one at a time so that a dataset of any
/// size is never held in memory: only each file's logits are kept. Files that do not decode are
/// skipped and returned with their error by [`Self::finish`].
pub struct FileEvaluation<'a> {
    model: &'a TrainedModel,
    logits: Vec<f32>,
    targets: Vec<usize>,
    names: Vec<(u32, String)>,
    skipped: Vec<Error>,
}

impl<'a> FileEvaluation<'a> {
    pub fn new(model: &'a TrainedModel) -> Self {
        Self { model, logits: Vec::new(), targets: Vec::new(), names: Vec::new(), skipped: Vec::new() }
    }

    /// Classifies one file of class `label`, which must be one of the model's.
    pub async fn add(&mut self, label: &str, name: &str, bytes: &[u8]) -> Result<()> {
        let model = self.model;
        let Some(target) = model.labels.iter().position(|l| l == label) else {
            return Err(Error::Dataset(format!("class \"{label}\" is not one of the model's ({})", model.labels.join(", "))));
        };
        match decode_image(name, bytes) {
            Ok(image) => {
                let crop = resize_and_center_crop(&image, &model.spec);
                drop(image);
                self.logits.extend(model.logits(&[&crop]).await?);
                self.targets.push(target);
                self.names.push((self.names.len() as u32, name.to_string()));
            }
            Err(e) => self.skipped.push(e),
        }
        Ok(())
    }

    /// The evaluation of every file that decoded, and the errors of those that did not.
    pub fn finish(self) -> (Evaluation, Vec<Error>) {
        (evaluate(&self.logits, &self.model.labels, &self.targets, &self.names), self.skipped)
    }
}

impl TrainedModel {
    /// The classifier in burn's own record format (burnpack), for Rust users. Reads tensors
    /// synchronously: native only (the browser's WebGPU cannot).
    pub fn to_burn_record(&self) -> Result<Vec<u8>> {
        self.classifier.clone().into_record().into_bytes().map(|bytes| bytes.to_vec()).map_err(|e| Error::Weights(format!("burn record: {e}")))
    }
}
