//! MobileNetV2 (width 1.0) as defined by torchvision: ReLU6 inverted residual blocks with
//! PyTorch's symmetric padding, ImageNet preprocessing.

use burn::config::Config;
use burn::tensor::Device;

use super::blocks::{ConvBn, Padding};
use super::mbconv_net::{MbConvNet, MbConvNetSpec, Stage};
use crate::weights::ParamLayout;

/// One stage of inverted residual blocks: `(expand ratio, out channels, repeats, stride of its
/// first block)`, torchvision's `t, c, n, s`. Every depthwise kernel is 3×3.
pub(crate) const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];
const STEM_CHANNELS: usize = 32;
/// Width of the pooled feature vector the classifier head sees.
pub const MOBILENET_V2_FEATURES: usize = 1280;

#[derive(Config, Debug)]
pub struct MobileNetV2Config {
    /// BatchNorm epsilon: PyTorch's default, which torchvision's weights were trained with.
    #[config(default = 1e-5)]
    pub bn_epsilon: f64,
}

/// torchvision's MobileNetV2 is an [`MbConvNet`] with symmetric padding: `features.0` is the
/// stem, `features.1` to `features.17` the blocks, `features.18` the final 1×1 convolution.
pub type MobileNetV2 = MbConvNet;

impl MobileNetV2Config {
    pub fn init(&self, device: &Device) -> MobileNetV2 {
        let stages: Vec<Stage> = STAGES
            .iter()
            .map(|&(expand_ratio, channels, repeats, stride)| Stage { kernel: 3, stride, repeats, channels, expand_ratio })
            .collect();
        let spec = MbConvNetSpec {
            stem_channels: STEM_CHANNELS,
            stages: &stages,
            features: MOBILENET_V2_FEATURES,
            padding: Padding::Symmetric,
            bn_epsilon: self.bn_epsilon,
        };
        spec.init(device)
    }
}

/// Names in torchvision's `mobilenet_v2` (`features.0.0.weight`, `features.3.conv.1.1.bias`,
/// ...). Module paths are relative to the backbone.
pub struct MobileNetV2Names;

impl MobileNetV2Names {
    pub fn file_name(module_path: &str) -> Option<(String, ParamLayout)> {
        let (module, param) = module_path.rsplit_once('.')?;
        let (module, kind) = module.rsplit_once('.')?;
        let torch_param = ConvBn::torch_param(kind, param)?;
        // torchvision's `Conv2dNormActivation` is `Sequential(conv, bn, ReLU6)`.
        let index = if kind == "conv" { 0 } else { 1 };
        let torch_module = match module {
            "stem" => format!("features.0.{index}"),
            "top" => format!("features.18.{index}"),
            block => {
                let (block, part) = block.strip_prefix("blocks.")?.split_once('.')?;
                let block: usize = block.parse().ok()?;
                // The first block has no expansion, so its layers sit one position earlier; the
                // projection is a bare conv and BN, not a `Conv2dNormActivation`.
                let expands = block != 0;
                let inner = match (part, expands) {
                    ("expand", true) => format!("conv.0.{index}"),
                    ("depthwise", true) => format!("conv.1.{index}"),
                    ("depthwise", false) => format!("conv.0.{index}"),
                    ("project", true) => format!("conv.{}", 2 + index),
                    ("project", false) => format!("conv.{}", 1 + index),
                    _ => return None,
                };
                format!("features.{}.{inner}", block + 1)
            }
        };
        Some((format!("{torch_module}.{torch_param}"), ParamLayout::AsIs))
    }
}


#[cfg(test)]
mod tests {
    use super::super::blocks::testing::param_paths;
    use super::*;
    use burn::module::Module;
    use burn::tensor::Tensor;

    #[test]
    fn architecture_has_the_published_parameter_count() {
        let model = MobileNetV2Config::new().init(&Device::flex());
        assert_eq!(model.blocks.len(), 17);
        // torchvision's published total is 3,504,872 learnable parameters, including the
        // 1280→1000 classifier (1,281,000): 2,223,872 in the backbone. burn also counts the
        // BatchNorm running mean and variance, two per BN channel; the backbone's BNs have
        // 17,056 channels (32 stem, 1280 top, and the blocks' expand, depthwise and project).
        assert_eq!(model.num_params(), 3_504_872 - 1_281_000 + 2 * 17_056);
        assert!(model.blocks[0].expand.is_none());
        assert!(model.blocks[1..].iter().all(|b| b.expand.is_some()));
        // Residual where stride is 1 and channels repeat: n - 1 per stage, and none in the first.
        assert_eq!(model.blocks.iter().filter(|b| b.residual).count(), 10);
    }

    #[test]
    fn forward_shape_follows_input_size() {
        let device = Device::flex();
        let model = MobileNetV2Config::new().init(&device);
        assert_eq!(model.features(), 1280);
        let out = model.forward(Tensor::zeros([2, 3, 64, 64], &device));
        assert_eq!(out.dims(), [2, MOBILENET_V2_FEATURES]);
        // An odd size: the stem (3×3, stride 2, padding 1) maps 65 to 33.
        assert_eq!(model.forward_prefix(Tensor::zeros([1, 3, 65, 65], &device), 1).dims(), [1, 16, 33, 33]);
    }

    #[test]
    fn names_follow_torchvision() {
        let name = |p| MobileNetV2Names::file_name(p).map(|(n, _)| n);
        assert_eq!(name("stem.conv.weight").as_deref(), Some("features.0.0.weight"));
        assert_eq!(name("stem.bn.gamma").as_deref(), Some("features.0.1.weight"));
        assert_eq!(name("blocks.0.depthwise.conv.weight").as_deref(), Some("features.1.conv.0.0.weight"));
        assert_eq!(name("blocks.0.depthwise.bn.beta").as_deref(), Some("features.1.conv.0.1.bias"));
        assert_eq!(name("blocks.0.project.conv.weight").as_deref(), Some("features.1.conv.1.weight"));
        assert_eq!(name("blocks.0.project.bn.running_var").as_deref(), Some("features.1.conv.2.running_var"));
        assert_eq!(name("blocks.1.expand.conv.weight").as_deref(), Some("features.2.conv.0.0.weight"));
        assert_eq!(name("blocks.1.expand.bn.running_mean").as_deref(), Some("features.2.conv.0.1.running_mean"));
        assert_eq!(name("blocks.16.depthwise.conv.weight").as_deref(), Some("features.17.conv.1.0.weight"));
        assert_eq!(name("blocks.16.project.conv.weight").as_deref(), Some("features.17.conv.2.weight"));
        assert_eq!(name("blocks.16.project.bn.gamma").as_deref(), Some("features.17.conv.3.weight"));
        assert_eq!(name("top.conv.weight").as_deref(), Some("features.18.0.weight"));
        assert_eq!(name("top.bn.beta").as_deref(), Some("features.18.1.bias"));
        assert_eq!(name("blocks.0.expand.conv.weight"), None);
        assert_eq!(name("top.bn.training"), None);
        let loading = super::super::BackboneNames::original(crate::model::BackboneKind::MobileNetV2);
        assert!(crate::weights::NameMap::ignorable(&loading, "classifier.1.weight"));
        assert!(crate::weights::NameMap::ignorable(&loading, "features.3.conv.3.num_batches_tracked"));
        assert!(!crate::weights::NameMap::ignorable(&loading, "features.3.conv.3.weight"));
    }

    #[test]
    fn every_parameter_has_its_own_file_name() {
        let model = MobileNetV2Config::new().init(&Device::flex());
        let mut names: Vec<_> = param_paths(&model).iter().map(|p| MobileNetV2Names::file_name(p).unwrap().0).collect();
        // 52 convolutions and 52 BatchNorms with four tensors each.
        assert_eq!(names.len(), 52 * 5);
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 52 * 5);
    }
}
