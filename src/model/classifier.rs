//! A backbone with a classifier on top: the model users train, export and predict with.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::backbone::{Backbone, BackboneNames};
use super::head::{Head, HeadConfig};
use super::kind::BackboneKind;
use crate::weights::{NameMap, ParamLayout};

/// The fine-tuned model: backbone features → trained head.
#[derive(Module, Debug)]
pub struct Classifier {
    pub backbone: Backbone,
    pub head: Head,
}

impl Classifier {
    /// A freshly initialised backbone of `kind` with a new head (`head.features` must be the
    /// kind's feature width).
    pub fn new(kind: BackboneKind, head: &HeadConfig, device: &Device) -> Self {
        Self { backbone: Backbone::init(kind, device), head: head.init(device) }
    }

    /// # Shapes
    /// - input: `[batch, 3, size, size]` (normalised)
    /// - output: `[batch, classes]` (logits)
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.backbone.forward(input))
    }
}

/// The backbone with its original 1000-class ImageNet classifier, for checking that imported
/// weights work (`webtune imagenet`).
#[derive(Module, Debug)]
pub struct ImageNetClassifier {
    pub backbone: Backbone,
    pub fc: Linear,
}

impl ImageNetClassifier {
    pub fn new(kind: BackboneKind, device: &Device) -> Self {
        Self { backbone: Backbone::init(kind, device), fc: LinearConfig::new(kind.features(), 1000).init(device) }
    }

    /// # Shapes
    /// - input: `[batch, 3, 224, 224]` (normalised)
    /// - output: `[batch, 1000]` (ImageNet logits)
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.backbone.forward(input))
    }
}

/// A `Linear`'s parameters under a PyTorch module prefix (weights stored `[out, in]`).
fn linear_name(prefix: &str, param: &str) -> Option<(String, ParamLayout)> {
    match param {
        "weight" => Some((format!("{prefix}.weight"), ParamLayout::Transposed)),
        "bias" => Some((format!("{prefix}.bias"), ParamLayout::AsIs)),
        _ => None,
    }
}

/// Maps `backbone.*` to the original definition's names and the head to its classifier
/// (see [`BackboneKind::head_names`]), so an exported file loads into the PyTorch model.
pub struct ClassifierNames {
    pub kind: BackboneKind,
    pub hidden: bool,
}

impl NameMap for ClassifierNames {
    fn file_name(&self, module_path: &str) -> Option<(String, ParamLayout)> {
        if let Some(rest) = module_path.strip_prefix("backbone.") {
            return BackboneNames::original(self.kind).file_name(rest);
        }
        let (layer, param) = module_path.strip_prefix("head.")?.split_once('.')?;
        let (hidden, output) = self.kind.head_names(self.hidden);
        match (layer, self.hidden) {
            ("output", _) => linear_name(&output, param),
            ("hidden", true) => linear_name(&hidden, param),
            _ => None,
        }
    }
    fn ignorable(&self, file_name: &str) -> bool {
        file_name.ends_with("num_batches_tracked")
    }
}

/// Backbone plus the original ImageNet classifier, as in a published file.
pub struct ImageNetNames {
    pub kind: BackboneKind,
}

impl NameMap for ImageNetNames {
    fn file_name(&self, module_path: &str) -> Option<(String, ParamLayout)> {
        match module_path.split_once('.')? {
            ("fc", param) => linear_name(&self.kind.head_names(false).1, param),
            ("backbone", rest) => BackboneNames::original(self.kind).file_name(rest),
            _ => None,
        }
    }
    fn ignorable(&self, file_name: &str) -> bool {
        file_name.ends_with("num_batches_tracked")
    }
}
