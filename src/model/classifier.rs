//! A backbone with a classifier on top: the model users train, export and predict with.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::efficientnet_lite::{EfficientNetLite, EfficientNetLiteConfig, EfficientNetLiteNames, FEATURES};
use super::head::{Head, HeadConfig};
use crate::weights::{NameMap, ParamLayout};

/// The fine-tuned model: backbone features → trained head.
#[derive(Module, Debug)]
pub struct Classifier {
    pub backbone: EfficientNetLite,
    pub head: Head,
}

impl Classifier {
    pub fn new(head: &HeadConfig, device: &Device) -> Self {
        Self { backbone: EfficientNetLiteConfig::new().init(device), head: head.init(device) }
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
    pub backbone: EfficientNetLite,
    pub fc: Linear,
}

impl ImageNetClassifier {
    pub fn new(device: &Device) -> Self {
        Self { backbone: EfficientNetLiteConfig::new().init(device), fc: LinearConfig::new(FEATURES, 1000).init(device) }
    }

    /// # Shapes
    /// - input: `[batch, 3, 224, 224]` (normalised)
    /// - output: `[batch, 1000]` (ImageNet logits)
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.backbone.forward(input))
    }
}

/// Maps `backbone.*` to the lukemelas names and the classifier to `_fc`, so an exported file
/// loads into the PyTorch definition. With a hidden layer the head is written as
/// `_fc = nn.Sequential(nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear)`.
pub struct ClassifierNames {
    pub hidden: bool,
}

impl NameMap for ClassifierNames {
    fn file_name(&self, module_path: &str) -> Option<(String, ParamLayout)> {
        if let Some(rest) = module_path.strip_prefix("backbone.") {
            return EfficientNetLiteNames::file_name(rest);
        }
        let (layer, param) = module_path.strip_prefix("head.")?.split_once('.')?;
        let prefix = match (layer, self.hidden) {
            ("output", false) => "_fc".to_string(),
            ("output", true) => "_fc.4".to_string(),
            ("hidden", true) => "_fc.1".to_string(),
            _ => return None,
        };
        match param {
            "weight" => Some((format!("{prefix}.weight"), ParamLayout::Transposed)),
            "bias" => Some((format!("{prefix}.bias"), ParamLayout::AsIs)),
            _ => None,
        }
    }
    fn ignorable(&self, file_name: &str) -> bool {
        file_name.ends_with("num_batches_tracked")
    }
}

/// Backbone plus the ImageNet `_fc`, as in the published file.
pub struct ImageNetNames;

impl NameMap for ImageNetNames {
    fn file_name(&self, module_path: &str) -> Option<(String, ParamLayout)> {
        match module_path {
            "fc.weight" => Some(("_fc.weight".into(), ParamLayout::Transposed)),
            "fc.bias" => Some(("_fc.bias".into(), ParamLayout::AsIs)),
            path => EfficientNetLiteNames::file_name(path.strip_prefix("backbone.")?),
        }
    }
    fn ignorable(&self, file_name: &str) -> bool {
        file_name.ends_with("num_batches_tracked")
    }
}
