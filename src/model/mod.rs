//! Model definitions: backbones, the classifier head, and the two together.

mod backbone;
mod blocks;
mod classifier;
mod cpu;
mod efficientnet_lite;
mod head;
mod kind;
mod mbconv_net;
mod mobilenet_v2;
mod resnet;
mod timm;

pub use backbone::{Backbone, BackboneNames, Convention};
pub use cpu::{batch_norm, conv2d};
pub(crate) use cpu::{OWN_POINTWISE, POINTWISE_MAX_INPUTS, activate};
pub use classifier::{Classifier, ClassifierNames, ImageNetClassifier, ImageNetNames};
pub use efficientnet_lite::{EfficientNetLite, EfficientNetLiteConfig, EfficientNetLiteNames};
pub use head::{DropoutDraw, Head, HeadConfig};
pub use kind::{BackboneKind, IMAGENET_MEAN, IMAGENET_STD};
pub use mbconv_net::{MbConvNet, MbConvNetSpec, Stage};
pub use mobilenet_v2::{MOBILENET_V2_FEATURES, MobileNetV2, MobileNetV2Config, MobileNetV2Names};
pub use resnet::{ResNet, ResNetConfig, ResNetNames, ResidualBlock};
pub use timm::timm_name;

use serde::{Deserialize, Serialize};

/// What a backbone expects of its input, written into every export so that other tools
/// can reproduce the preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackboneSpec {
    pub name: String,
    /// Side of the square input crop.
    pub input_size: u32,
    /// The shorter image side is resized to this before the center crop (evaluation preprocessing).
    pub resize_size: u32,
    /// Per-channel mean and std applied to RGB values in 0..=255: `(x - mean) / std`.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl BackboneSpec {
    /// EfficientNet-Lite0 uses the TensorFlow convention `(x - 127) / 128`.
    pub fn efficientnet_lite0() -> Self {
        BackboneKind::EfficientNetLite0.spec()
    }
}
