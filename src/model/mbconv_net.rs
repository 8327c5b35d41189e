//! The MobileNet family's layout, shared by EfficientNet-Lite0 and MobileNetV2: a strided 3×3
//! stem, stages of inverted-residual blocks, a 1×1 convolution to the feature width, ReLU6
//! throughout, and global average pooling. The two differ only in their stage table, padding
//! and BatchNorm epsilon ([`MbConvNetSpec`]) and in their file names.

use burn::module::{Module, ParamGroup};
use burn::tensor::{Device, Tensor};

use super::blocks::{ConvBn, ConvBnSpec, MbConv, MbConvSpec, Padding, relu6};

/// One stage: `repeats` blocks, the first with `stride`, all with a `kernel`×`kernel` depthwise
/// convolution, `expand_ratio` and `channels` outputs.
#[derive(Debug, Clone, Copy)]
pub struct Stage {
    pub kernel: usize,
    pub stride: usize,
    pub repeats: usize,
    pub channels: usize,
    pub expand_ratio: usize,
}

/// How to build an [`MbConvNet`].
pub struct MbConvNetSpec<'a> {
    pub stem_channels: usize,
    pub stages: &'a [Stage],
    /// Width of the pooled features (the last 1×1 convolution's outputs).
    pub features: usize,
    pub padding: Padding,
    pub bn_epsilon: f64,
}

impl MbConvNetSpec<'_> {
    pub fn init(&self, device: &Device) -> MbConvNet {
        let conv = |channels, kernel, stride| ConvBnSpec {
            channels,
            kernel,
            stride,
            groups: 1,
            padding: self.padding,
            bn_epsilon: self.bn_epsilon,
        };
        let stem = conv([3, self.stem_channels], 3, 2).init(device);
        let mut blocks = Vec::new();
        let mut in_ch = self.stem_channels;
        for stage in self.stages {
            for r in 0..stage.repeats {
                let block = MbConvSpec {
                    channels: [in_ch, stage.channels],
                    kernel: stage.kernel,
                    stride: if r == 0 { stage.stride } else { 1 },
                    expand_ratio: stage.expand_ratio,
                    padding: self.padding,
                    bn_epsilon: self.bn_epsilon,
                };
                blocks.push(block.init(device));
                in_ch = stage.channels;
            }
        }
        let top = conv([in_ch, self.features], 1, 1).init(device);
        MbConvNet { stem, blocks, top }
    }
}

#[derive(Module, Debug)]
pub struct MbConvNet {
    /// 3×3 stride-2 convolution.
    pub stem: ConvBn,
    pub blocks: Vec<MbConv>,
    /// The 1×1 convolution to the feature width before pooling.
    pub top: ConvBn,
}

impl MbConvNet {
    /// Units that can be unfrozen one by one from the end: every block and the final 1×1
    /// convolution (`top`).
    pub fn units(&self) -> usize {
        self.blocks.len() + 1
    }

    /// Width of the pooled features.
    pub fn features(&self) -> usize {
        self.top.conv.weight.dims()[0]
    }

    /// Every [`ConvBn`] of the network, in forward order.
    pub(crate) fn conv_bns_mut(&mut self) -> Vec<&mut ConvBn> {
        let mut units = vec![&mut self.stem];
        units.extend(self.blocks.iter_mut().flat_map(MbConv::conv_bns_mut));
        units.push(&mut self.top);
        units
    }

    /// Pooled features.
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]`, normalised as the backbone's [`crate::model::BackboneSpec`] says
    /// - output: `[batch, features]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        let last = self.units() - 1;
        self.forward_tail(self.forward_prefix(input, last), last)
    }

    /// The stem and the units before `first_tail_unit` (`0..units()`): the part that stays frozen
    /// when the units from `first_tail_unit` on are fine-tuned. Its output is what phase 2 caches.
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]`
    /// - output: `[batch, channels, h', w']`, the input of unit `first_tail_unit`
    pub fn forward_prefix(&self, input: Tensor<4>, first_tail_unit: usize) -> Tensor<4> {
        let mut x = self.stem.forward_relu6(input); // [batch, stem channels, h/2, w/2]
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
    /// - output: `[batch, features]`
    pub fn forward_tail(&self, input: Tensor<4>, first_tail_unit: usize) -> Tensor<2> {
        let x = self.forward_tail_maps(input, first_tail_unit); // [batch, features, h/32, w/32]
        let [batch, channels, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([batch, channels])
    }

    /// [`forward_tail`](Self::forward_tail) without the pooling: the last convolution's
    /// activation maps (what Grad-CAM weighs).
    ///
    /// # Shapes
    /// - output: `[batch, features, h/32, w/32]`
    pub fn forward_tail_maps(&self, input: Tensor<4>, first_tail_unit: usize) -> Tensor<4> {
        let mut x = input;
        for block in self.blocks.iter().skip(first_tail_unit) {
            x = block.forward_trainable(x);
        }
        relu6(self.top.forward_trainable(x))
    }

    /// The last convolution's activation maps, before global pooling.
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]`
    /// - output: `[batch, features, h/32, w/32]`
    pub fn feature_maps(&self, input: Tensor<4>) -> Tensor<4> {
        let last = self.units() - 1;
        self.forward_tail_maps(self.forward_prefix(input, last), last)
    }

    /// The parameters of the units from `first_tail_unit` on: what phase 2 trains. `top` is
    /// always included.
    pub fn tail_group(&self, first_tail_unit: usize) -> ParamGroup {
        let blocks = self.blocks[first_tail_unit.min(self.blocks.len())..].to_vec();
        ParamGroup::ids_from_module(blocks).fuse(&ParamGroup::ids_from_module(self.top.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::blocks::testing::params_in_group;
    use super::super::{EfficientNetLiteConfig, MobileNetV2Config};
    use super::*;

    /// Both members of the family, seeded: EfficientNet-Lite0 (16 blocks, TF padding) and
    /// MobileNetV2 (17 blocks, symmetric padding).
    fn both(device: &Device) -> [(&'static str, MbConvNet); 2] {
        device.seed(3);
        [("efficientnet_lite0", EfficientNetLiteConfig::new().init(device)), ("mobilenet_v2", MobileNetV2Config::new().init(device))]
    }

    #[test]
    fn prefix_then_tail_is_the_whole_forward_at_every_split() {
        let device = Device::flex();
        for (name, model) in both(&device) {
            let input = Tensor::<4>::random([1, 3, 64, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
            let whole = model.forward(input.clone()).into_data();
            let blocks = model.blocks.len();
            for split in [0, 1, 2, 9, blocks - 1, blocks, blocks + 1] {
                let parts = model.forward_tail(model.forward_prefix(input.clone(), split), split).into_data();
                assert_eq!(parts, whole, "{name}: split at unit {split}");
            }
        }
    }

    #[test]
    fn tail_group_holds_exactly_the_units_from_the_split_on() {
        for (name, model) in both(&Device::flex()) {
            let size = |k| -> usize { params_in_group(&model, &model.tail_group(k)).iter().map(|(_, n)| n).sum() };
            let (blocks, top) = (model.blocks.len(), model.top.num_params());
            assert_eq!(model.units(), blocks + 1, "{name}");
            assert_eq!(size(blocks), top, "{name}: the last unit is the final 1×1 convolution");
            assert_eq!(size(blocks + 1), top, "{name}: past the end is still the last unit");
            assert_eq!(size(blocks - 1), top + model.blocks[blocks - 1].num_params(), "{name}");
            assert_eq!(size(0), model.num_params() - model.stem.num_params(), "{name}: all but the stem");
            let paths: Vec<_> = params_in_group(&model, &model.tail_group(blocks)).into_iter().map(|(p, _)| p).collect();
            assert!(paths.iter().all(|p| p.starts_with("top.")), "{name}: {paths:?}");
        }
    }
}
