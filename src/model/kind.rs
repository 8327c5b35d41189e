//! The backbones webtune can fine-tune, and what each one declares about itself: its input
//! preprocessing, feature width, the units phase 2 may unfreeze, and the names its classifier
//! has in the original PyTorch definition (which exports reproduce).

use serde::{Deserialize, Serialize};

use super::BackboneSpec;
use crate::error::{Error, Result};

/// ImageNet channel statistics used by torchvision (and timm's non-TF models), on 0..=255 values.
pub const IMAGENET_MEAN: [f32; 3] = [0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0];
pub const IMAGENET_STD: [f32; 3] = [0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackboneKind {
    /// The default: lukemelas/EfficientNet-Lite0 (TF "SAME" padding, `(x-127)/128`).
    EfficientNetLite0,
    /// torchvision `mobilenet_v2`.
    MobileNetV2,
    /// torchvision `resnet18`.
    ResNet18,
    /// torchvision `resnet50` (v1.5: stride on the 3×3 convolution).
    ResNet50,
}

impl BackboneKind {
    pub const ALL: [BackboneKind; 4] = [Self::EfficientNetLite0, Self::MobileNetV2, Self::ResNet18, Self::ResNet50];

    /// The name used in exports' metadata, the CLI and the page.
    pub fn name(self) -> &'static str {
        match self {
            Self::EfficientNetLite0 => "efficientnet_lite0",
            Self::MobileNetV2 => "mobilenet_v2",
            Self::ResNet18 => "resnet18",
            Self::ResNet50 => "resnet50",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
            let known: Vec<_> = Self::ALL.iter().map(|k| k.name()).collect();
            Error::weights(format!("unknown backbone \"{name}\" (supported: {})", known.join(", ")))
        })
    }

    /// Input size, resize and normalisation the pretrained weights expect.
    pub fn spec(self) -> BackboneSpec {
        let (mean, std) = match self {
            Self::EfficientNetLite0 => ([127.0; 3], [128.0; 3]),
            _ => (IMAGENET_MEAN, IMAGENET_STD),
        };
        BackboneSpec { name: self.name().into(), input_size: 224, resize_size: 256, mean, std }
    }

    /// Width of the pooled features the head sees.
    pub fn features(self) -> usize {
        match self {
            Self::EfficientNetLite0 | Self::MobileNetV2 => 1280,
            Self::ResNet18 => 512,
            Self::ResNet50 => 2048,
        }
    }

    /// How many units phase 2 can unfreeze, counted from the end.
    pub fn units(self) -> usize {
        match self {
            Self::EfficientNetLite0 => 17,
            Self::MobileNetV2 => 18,
            Self::ResNet18 | Self::ResNet50 => 4,
        }
    }

    /// What one unit is, for messages and the page.
    pub fn units_description(self) -> &'static str {
        match self {
            Self::EfficientNetLite0 => "16 MBConv blocks and the final 1×1 convolution",
            Self::MobileNetV2 => "17 inverted-residual blocks and the final 1×1 convolution",
            Self::ResNet18 | Self::ResNet50 => "the stages layer1..layer4 (1 = layer4, 2 = layer3 and layer4, ...)",
        }
    }

    /// Units to unfreeze for a medium and for a larger dataset.
    pub fn recommended_units(self) -> (usize, usize) {
        match self {
            Self::ResNet18 | Self::ResNet50 => (1, 2),
            _ => (2, 4),
        }
    }

    /// Module path of the classifier in the PyTorch definition, as `(hidden, output)` prefixes.
    /// A head without hidden layer replaces the original `Linear`; with one, the classifier
    /// becomes `Sequential(Dropout, Linear, ReLU, Dropout, Linear)`.
    pub fn head_names(self, hidden: bool) -> (String, String) {
        let (root, single) = match self {
            Self::EfficientNetLite0 => ("_fc", "_fc"),
            Self::MobileNetV2 => ("classifier", "classifier.1"),
            Self::ResNet18 | Self::ResNet50 => ("fc", "fc"),
        };
        if hidden { (format!("{root}.1"), format!("{root}.4")) } else { (String::new(), single.to_string()) }
    }
}

impl std::fmt::Display for BackboneKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_refused() {
        for kind in BackboneKind::ALL {
            assert_eq!(BackboneKind::from_name(kind.name()).unwrap(), kind);
        }
        let err = BackboneKind::from_name("vgg16").unwrap_err().to_string();
        assert!(err.contains("vgg16") && err.contains("resnet50"), "{err}");
    }

    #[test]
    fn declared_units_and_features_are_the_models_own() {
        use super::super::{EfficientNetLiteConfig, MobileNetV2Config, ResNet, ResNetConfig};
        let device = burn::tensor::Device::flex();
        let declared = |kind: BackboneKind| (kind.units(), kind.features());
        let lite = EfficientNetLiteConfig::new().init(&device);
        assert_eq!(declared(BackboneKind::EfficientNetLite0), (lite.units(), lite.features()));
        let mobilenet = MobileNetV2Config::new().init(&device);
        assert_eq!(declared(BackboneKind::MobileNetV2), (mobilenet.units(), mobilenet.features()));
        for (kind, depth) in [(BackboneKind::ResNet18, 18), (BackboneKind::ResNet50, 50)] {
            let resnet = ResNetConfig::new().with_depth(depth).init(&device);
            assert_eq!(declared(kind), (ResNet::UNITS, resnet.features()), "{kind}");
        }
    }

    #[test]
    fn head_names_follow_each_definition() {
        assert_eq!(BackboneKind::ResNet18.head_names(false).1, "fc");
        assert_eq!(BackboneKind::MobileNetV2.head_names(false).1, "classifier.1");
        assert_eq!(BackboneKind::MobileNetV2.head_names(true), ("classifier.1".into(), "classifier.4".into()));
        assert_eq!(BackboneKind::EfficientNetLite0.head_names(true), ("_fc.1".into(), "_fc.4".into()));
    }
}
