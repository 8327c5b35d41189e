//! Building blocks shared by the convolutional backbones.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

/// Convolution without bias followed by BatchNorm: the unit every backbone here is made of.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

/// How to build a [`ConvBn`]. Padding is TensorFlow's "SAME" (burn's `Same`): for stride 2 the
/// extra pixel goes bottom/right, which is what the EfficientNet-Lite weights were trained with.
pub struct ConvBnSpec {
    pub channels: [usize; 2],
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
    pub bn_epsilon: f64,
}

impl ConvBnSpec {
    pub fn init(&self, device: &Device) -> ConvBn {
        let conv = Conv2dConfig::new(self.channels, [self.kernel, self.kernel])
            .with_stride([self.stride, self.stride])
            .with_groups(self.groups)
            .with_padding(PaddingConfig2d::Same)
            .with_bias(false)
            .init(device);
        let bn = BatchNormConfig::new(self.channels[1]).with_epsilon(self.bn_epsilon).init(device);
        ConvBn { conv, bn }
    }
}

impl ConvBn {
    /// # Shapes
    /// - input: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height / stride, width / stride]` (rounded up)
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(input))
    }

    /// [`forward`](Self::forward) followed by ReLU6, the activation of the Lite and MobileNet families.
    pub fn forward_relu6(&self, input: Tensor<4>) -> Tensor<4> {
        relu6(self.forward(input))
    }
}

pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clamp(0.0, 6.0)
}
