//! The MobileNet family's layout, shared by EfficientNet-Lite0 and MobileNetV2: a strided 3×3
//! stem, stages of inverted-residual blocks, a 1×1 convolution to the feature width, ReLU6
//! throughout, and global average pooling. The two differ only in their stage table, padding
//! and BatchNorm epsilon ([`MbConvNetSpec`]) and in their file names.

use burn::module::{Module, ParamGroup};
use burn::tensor::{Device, Tensor};

use super::blocks::{ConvBn, ConvBnSpec, MbConv, MbConvSpec, Padding};

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
        let mut x = input;
        for block in self.blocks.iter().skip(first_tail_unit) {
            x = block.forward(x);
        }
        let x = self.top.forward_relu6(x); // [batch, features, h/32, w/32]
        let [batch, channels, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([batch, channels])
    }

    /// The parameters of the units from `first_tail_unit` on: what phase 2 trains. `top` is
    /// always included.
    pub fn tail_group(&self, first_tail_unit: usize) -> ParamGroup {
        let blocks = self.blocks[first_tail_unit.min(self.blocks.len())..].to_vec();
        ParamGroup::ids_from_module(blocks).fuse(&ParamGroup::ids_from_module(self.top.clone()))
    }
}
