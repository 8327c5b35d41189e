//! MobileNetV2 (width 1.0) as defined by torchvision: ReLU6 inverted residual blocks with
//! PyTorch's symmetric padding, ImageNet preprocessing.

use burn::config::Config;
use burn::module::{Module, ParamGroup};
use burn::tensor::{Device, Tensor};

use super::blocks::{ConvBn, ConvBnSpec, MbConv, MbConvSpec, Padding};
use crate::weights::{NameMap, ParamLayout};

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

#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// `features.0`: 3×3 stride-2 convolution to 32 channels.
    pub stem: ConvBn,
    /// `features.1` to `features.17`.
    pub blocks: Vec<MbConv>,
    /// `features.18`: the 1×1 convolution to 1280 channels before pooling.
    pub top: ConvBn,
}

impl MobileNetV2Config {
    pub fn init(&self, device: &Device) -> MobileNetV2 {
        let eps = self.bn_epsilon;
        let spec = |channels, kernel, stride| ConvBnSpec {
            channels,
            kernel,
            stride,
            groups: 1,
            padding: Padding::Symmetric,
            bn_epsilon: eps,
        };
        let stem = spec([3, STEM_CHANNELS], 3, 2).init(device);
        let mut blocks = Vec::new();
        let mut in_ch = STEM_CHANNELS;
        for (expand_ratio, out_ch, repeats, first_stride) in STAGES {
            for r in 0..repeats {
                let stride = if r == 0 { first_stride } else { 1 };
                let block = MbConvSpec {
                    channels: [in_ch, out_ch],
                    kernel: 3,
                    stride,
                    expand_ratio,
                    padding: Padding::Symmetric,
                    bn_epsilon: eps,
                };
                blocks.push(block.init(device));
                in_ch = out_ch;
            }
        }
        let top = spec([in_ch, MOBILENET_V2_FEATURES], 1, 1).init(device);
        MobileNetV2 { stem, blocks, top }
    }
}

impl MobileNetV2 {
    /// Units that can be unfrozen one by one from the end: the 17 inverted residual blocks and
    /// the final 1×1 convolution (`top`), which is always the last unit.
    pub const UNITS: usize = 18;

    /// Width of the pooled features, [`MOBILENET_V2_FEATURES`].
    pub fn features(&self) -> usize {
        MOBILENET_V2_FEATURES
    }

    /// Pooled features.
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]`, normalised with the ImageNet mean and std
    /// - output: `[batch, 1280]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        self.forward_tail(self.forward_prefix(input, Self::UNITS - 1), Self::UNITS - 1)
    }

    /// The stem and the units before `first_tail_unit` (0..=17): the part that stays frozen when
    /// the last `18 - first_tail_unit` units are fine-tuned. Its output is what phase 2 caches.
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]`
    /// - output: `[batch, channels, h', w']`, the input of unit `first_tail_unit`
    pub fn forward_prefix(&self, input: Tensor<4>, first_tail_unit: usize) -> Tensor<4> {
        let mut x = self.stem.forward_relu6(input); // [batch, 32, h/2, w/2]
        for block in self.blocks.iter().take(first_tail_unit) {
            x = block.forward(x);
        }
        x
    }

    /// The units from `first_tail_unit` on (always including `top`), then global average pooling.
    /// `forward_tail(forward_prefix(x, k), k) == forward(x)` for every `k`.
    ///
    /// # Shapes
    /// - input: the output of [`forward_prefix`](Self::forward_prefix) with the same `first_tail_unit`
    /// - output: `[batch, 1280]`
    pub fn forward_tail(&self, input: Tensor<4>, first_tail_unit: usize) -> Tensor<2> {
        let mut x = input;
        for block in self.blocks.iter().skip(first_tail_unit) {
            x = block.forward(x);
        }
        let x = self.top.forward_relu6(x); // [batch, 1280, h/32, w/32]
        let [batch, channels, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([batch, channels])
    }

    /// The parameters of the units from `first_tail_unit` on: what phase 2 trains when the
    /// last `18 - first_tail_unit` units are unfrozen. `top` is always included.
    pub fn tail_group(&self, first_tail_unit: usize) -> ParamGroup {
        let blocks = self.blocks[first_tail_unit.min(self.blocks.len())..].to_vec();
        ParamGroup::ids_from_module(blocks).fuse(&ParamGroup::ids_from_module(self.top.clone()))
    }
}

/// Names in torchvision's `mobilenet_v2` (`features.0.0.weight`, `features.3.conv.1.1.bias`,
/// ...). Module paths are relative to the backbone.
pub struct MobileNetV2Names;

impl MobileNetV2Names {
    pub fn file_name(module_path: &str) -> Option<(String, ParamLayout)> {
        let (module, param) = module_path.rsplit_once('.')?;
        let (module, kind) = module.rsplit_once('.')?;
        let torch_param = torch_param(kind, param)?;
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

/// A ConvBn parameter's name in PyTorch (`weight` for both the conv and BN's gamma).
pub(crate) fn torch_param(kind: &str, param: &str) -> Option<&'static str> {
    Some(match (kind, param) {
        ("conv", "weight") => "weight",
        ("bn", "gamma") => "weight",
        ("bn", "beta") => "bias",
        ("bn", "running_mean") => "running_mean",
        ("bn", "running_var") => "running_var",
        _ => return None,
    })
}

/// The backbone alone, from a file that may also hold the ImageNet classifier
/// (`classifier.1`), which is then ignored.
impl NameMap for MobileNetV2Names {
    fn file_name(&self, module_path: &str) -> Option<(String, ParamLayout)> {
        Self::file_name(module_path)
    }
    fn ignorable(&self, file_name: &str) -> bool {
        file_name.ends_with("num_batches_tracked") || file_name.starts_with("classifier.")
    }
}

#[cfg(test)]
mod tests {
    use super::super::blocks::testing::{param_paths, params_in_group};
    use super::*;

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
    fn prefix_then_tail_is_the_whole_forward_at_every_split() {
        let device = Device::flex();
        device.seed(3);
        let model = MobileNetV2Config::new().init(&device);
        let input = Tensor::<4>::random([1, 3, 64, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let whole = model.forward(input.clone()).into_data();
        for split in [0, 1, 2, 9, 16, 17, 18] {
            let parts = model.forward_tail(model.forward_prefix(input.clone(), split), split).into_data();
            assert_eq!(parts, whole, "split at unit {split}");
        }
    }

    #[test]
    fn tail_group_holds_exactly_the_units_from_the_split_on() {
        let model = MobileNetV2Config::new().init(&Device::flex());
        let size = |k| -> usize { params_in_group(&model, &model.tail_group(k)).iter().map(|(_, n)| n).sum() };
        let top = model.top.num_params();
        assert_eq!(size(MobileNetV2::UNITS - 1), top);
        assert_eq!(size(16), top + model.blocks[16].num_params());
        assert_eq!(size(0), model.num_params() - model.stem.num_params());
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
        assert!(MobileNetV2Names.ignorable("classifier.1.weight"));
        assert!(MobileNetV2Names.ignorable("features.3.conv.3.num_batches_tracked"));
        assert!(!MobileNetV2Names.ignorable("features.3.conv.3.weight"));
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
