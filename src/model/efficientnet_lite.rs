//! EfficientNet-Lite0: EfficientNet-B0 without squeeze-excite, with ReLU6 and a fixed stem and
//! head, as published for TFLite. The default backbone.

use burn::config::Config;
use burn::tensor::Device;

use super::blocks::{ConvBn, Padding};
use super::mbconv_net::{MbConvNet, MbConvNetSpec, Stage};
use crate::weights::ParamLayout;

/// One stage of MBConv blocks: `(kernel, stride of its first block, repeats, out channels, expand ratio)`.
pub(crate) const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (3, 1, 1, 16, 1),
    (3, 2, 2, 24, 6),
    (5, 2, 2, 40, 6),
    (3, 2, 3, 80, 6),
    (5, 1, 3, 112, 6),
    (5, 2, 4, 192, 6),
    (3, 1, 1, 320, 6),
];
const STEM_CHANNELS: usize = 32;
/// Width of the pooled feature vector the classifier head sees.
pub const FEATURES: usize = 1280;

#[derive(Config, Debug)]
pub struct EfficientNetLiteConfig {
    /// BatchNorm epsilon. The weights come from TensorFlow, whose default is 1e-3; several
    /// running variances are exactly zero, so using PyTorch's 1e-5 would change the outputs.
    #[config(default = 1e-3)]
    pub bn_epsilon: f64,
}

/// EfficientNet-Lite0 is an [`MbConvNet`] with TF "SAME" padding.
pub type EfficientNetLite = MbConvNet;

impl EfficientNetLiteConfig {
    pub fn init(&self, device: &Device) -> EfficientNetLite {
        let stages: Vec<Stage> = STAGES
            .iter()
            .map(|&(kernel, stride, repeats, channels, expand_ratio)| Stage { kernel, stride, repeats, channels, expand_ratio })
            .collect();
        MbConvNetSpec { stem_channels: STEM_CHANNELS, stages: &stages, features: FEATURES, padding: Padding::TfSame, bn_epsilon: self.bn_epsilon }
            .init(device)
    }
}

/// Names in the lukemelas/efficientnet-lite PyTorch definition (`_conv_stem`, `_blocks.N._bn1`,
/// ...), the layout the published weights and our exports use. Module paths are relative to
/// the backbone (`prefix` strips e.g. `backbone.` first).
pub struct EfficientNetLiteNames;

impl EfficientNetLiteNames {
    pub fn file_name(module_path: &str) -> Option<(String, ParamLayout)> {
        let (module, param) = module_path.rsplit_once('.')?;
        let (module, kind) = module.rsplit_once('.')?;
        let torch_param = ConvBn::torch_param(kind, param)?;
        let torch_module = match (module, kind) {
            ("stem", "conv") => "_conv_stem".to_string(),
            ("stem", "bn") => "_bn0".to_string(),
            ("top", "conv") => "_conv_head".to_string(),
            ("top", "bn") => "_bn1".to_string(),
            (block, kind) => {
                let (index, part) = block.strip_prefix("blocks.")?.split_once('.')?;
                let name = match (part, kind) {
                    ("expand", "conv") => "_expand_conv",
                    ("expand", "bn") => "_bn0",
                    ("depthwise", "conv") => "_depthwise_conv",
                    ("depthwise", "bn") => "_bn1",
                    ("project", "conv") => "_project_conv",
                    ("project", "bn") => "_bn2",
                    _ => return None,
                };
                format!("_blocks.{index}.{name}")
            }
        };
        Some((format!("{torch_module}.{torch_param}"), ParamLayout::AsIs))
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::tensor::Tensor;

    #[test]
    fn architecture_has_the_published_parameter_count() {
        let model = EfficientNetLiteConfig::new().init(&Device::flex());
        assert_eq!(model.blocks.len(), 16);
        // The published file: 4,694,024 values (4,652,008 learnable plus 42,016 BatchNorm running
        // statistics, which burn counts too) including the 1280→1000 classifier (1,281,000).
        assert_eq!(model.num_params(), 4_694_024 - 1_281_000);
        assert!(model.blocks[0].expand.is_none());
        let residuals: Vec<bool> = model.blocks.iter().map(|b| b.residual).collect();
        assert_eq!(residuals.iter().filter(|r| **r).count(), 9);
    }

    #[test]
    fn forward_shape_follows_input_size() {
        let device = Device::flex();
        let model = EfficientNetLiteConfig::new().init(&device);
        let out = model.forward(Tensor::zeros([2, 3, 64, 64], &device));
        assert_eq!(out.dims(), [2, FEATURES]);
    }

    #[test]
    fn names_follow_the_pytorch_definition() {
        let name = |p| EfficientNetLiteNames::file_name(p).map(|(n, _)| n);
        assert_eq!(name("stem.conv.weight").as_deref(), Some("_conv_stem.weight"));
        assert_eq!(name("stem.bn.gamma").as_deref(), Some("_bn0.weight"));
        assert_eq!(name("blocks.3.expand.bn.running_var").as_deref(), Some("_blocks.3._bn0.running_var"));
        assert_eq!(name("blocks.15.depthwise.conv.weight").as_deref(), Some("_blocks.15._depthwise_conv.weight"));
        assert_eq!(name("blocks.0.project.bn.beta").as_deref(), Some("_blocks.0._bn2.bias"));
        assert_eq!(name("top.bn.running_mean").as_deref(), Some("_bn1.running_mean"));
        assert_eq!(name("top.bn.training"), None);
    }
}
