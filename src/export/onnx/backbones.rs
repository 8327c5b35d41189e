//! The four backbones as ONNX nodes, written from their architecture definitions with the tensor
//! names of the original PyTorch code. Each emitter takes the `[batch, 3, 224, 224]` input and
//! returns the last feature map, before global pooling.

use super::graph::{Conv, GraphBuilder, same_pads, symmetric_pads};
use crate::error::Result;
use crate::model::BackboneKind;

/// Side of the square input every exported graph takes.
pub const INPUT_SIZE: usize = 224;

pub(super) fn emit(b: &mut GraphBuilder, kind: BackboneKind, input: &str) -> Result<String> {
    match kind {
        BackboneKind::EfficientNetLite0 => efficientnet_lite0(b, input),
        BackboneKind::MobileNetV2 => mobilenet_v2(b, input),
        BackboneKind::ResNet18 => resnet(b, input, Block::Basic, [2, 2, 2, 2]),
        BackboneKind::ResNet50 => resnet(b, input, Block::Bottleneck, [3, 4, 6, 3]),
    }
}

/// Convolution then BatchNorm; returns the BatchNorm's output.
fn conv_bn(b: &mut GraphBuilder, x: &str, conv: &str, bn: &str, c: Conv, eps: f32) -> Result<String> {
    let out = c.channels[1];
    let x = b.conv(x, conv, c)?;
    b.batch_norm(&x, bn, out, eps)
}

fn conv(channels: [usize; 2], kernel: usize, stride: usize, groups: usize, pads: [usize; 4]) -> Conv {
    Conv { channels, kernel, stride, groups, pads }
}

/// EfficientNet-Lite0 (as EfficientNet-B0): `(kernel, first stride, repeats, out channels,
/// expand ratio)` per stage. Written out again rather than shared with `model::efficientnet_lite`
/// so that the tests comparing the two are comparing independent definitions.
const EFFICIENTNET_LITE0_STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (3, 1, 1, 16, 1),
    (3, 2, 2, 24, 6),
    (5, 2, 2, 40, 6),
    (3, 2, 3, 80, 6),
    (5, 1, 3, 112, 6),
    (5, 2, 4, 192, 6),
    (3, 1, 1, 320, 6),
];

/// lukemelas/EfficientNet-Lite0: TF "SAME" padding (computed here for the 224 input), BN
/// epsilon 1e-3, ReLU6, no expansion in the first block.
fn efficientnet_lite0(b: &mut GraphBuilder, input: &str) -> Result<String> {
    const EPS: f32 = 1e-3;
    let mut size = INPUT_SIZE;
    let stem = conv([3, 32], 3, 2, 1, same_pads(size, 3, 2));
    let mut x = conv_bn(b, input, "_conv_stem", "_bn0", stem, EPS)?;
    x = b.relu6(&x);
    size = size.div_ceil(2);
    let (mut in_ch, mut index) = (32, 0);
    for (kernel, first_stride, repeats, out_ch, expand_ratio) in EFFICIENTNET_LITE0_STAGES {
        for r in 0..repeats {
            let stride = if r == 0 { first_stride } else { 1 };
            let mid = in_ch * expand_ratio;
            let p = format!("_blocks.{index}");
            let block_input = x.clone();
            if expand_ratio != 1 {
                let c = conv([in_ch, mid], 1, 1, 1, [0; 4]);
                x = conv_bn(b, &x, &format!("{p}._expand_conv"), &format!("{p}._bn0"), c, EPS)?;
                x = b.relu6(&x);
            }
            let c = conv([mid, mid], kernel, stride, mid, same_pads(size, kernel, stride));
            x = conv_bn(b, &x, &format!("{p}._depthwise_conv"), &format!("{p}._bn1"), c, EPS)?;
            x = b.relu6(&x);
            size = size.div_ceil(stride);
            let c = conv([mid, out_ch], 1, 1, 1, [0; 4]);
            x = conv_bn(b, &x, &format!("{p}._project_conv"), &format!("{p}._bn2"), c, EPS)?;
            if stride == 1 && in_ch == out_ch {
                x = b.add(&x, &block_input, format!("{p}.add"));
            }
            in_ch = out_ch;
            index += 1;
        }
    }
    let x = conv_bn(b, &x, "_conv_head", "_bn1", conv([in_ch, 1280], 1, 1, 1, [0; 4]), EPS)?;
    Ok(b.relu6(&x))
}

/// torchvision `mobilenet_v2`: `(expand ratio, out channels, repeats, first stride)` per stage.
const MOBILENET_V2_STAGES: [(usize, usize, usize, usize); 7] =
    [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];

/// torchvision `mobilenet_v2`: `features.0` stem, `features.1..=17` inverted residuals
/// (`conv.*`), `features.18` the 1×1 convolution to 1280; symmetric padding, BN epsilon 1e-5.
fn mobilenet_v2(b: &mut GraphBuilder, input: &str) -> Result<String> {
    const EPS: f32 = 1e-5;
    let mut x = conv_bn(b, input, "features.0.0", "features.0.1", conv([3, 32], 3, 2, 1, symmetric_pads(3)), EPS)?;
    x = b.relu6(&x);
    let (mut in_ch, mut index) = (32, 1);
    for (expand_ratio, out_ch, repeats, first_stride) in MOBILENET_V2_STAGES {
        for r in 0..repeats {
            let stride = if r == 0 { first_stride } else { 1 };
            let hidden = in_ch * expand_ratio;
            let p = format!("features.{index}.conv");
            let block_input = x.clone();
            // `conv` is a Sequential: [expand ConvBNReLU6,] depthwise ConvBNReLU6, 1×1 Conv2d, BatchNorm.
            let mut layer = 0;
            if expand_ratio != 1 {
                x = conv_bn(b, &x, &format!("{p}.0.0"), &format!("{p}.0.1"), conv([in_ch, hidden], 1, 1, 1, [0; 4]), EPS)?;
                x = b.relu6(&x);
                layer = 1;
            }
            let c = conv([hidden, hidden], 3, stride, hidden, symmetric_pads(3));
            x = conv_bn(b, &x, &format!("{p}.{layer}.0"), &format!("{p}.{layer}.1"), c, EPS)?;
            x = b.relu6(&x);
            let c = conv([hidden, out_ch], 1, 1, 1, [0; 4]);
            x = conv_bn(b, &x, &format!("{p}.{}", layer + 1), &format!("{p}.{}", layer + 2), c, EPS)?;
            if stride == 1 && in_ch == out_ch {
                x = b.add(&x, &block_input, format!("features.{index}.add"));
            }
            in_ch = out_ch;
            index += 1;
        }
    }
    let x = conv_bn(b, &x, "features.18.0", "features.18.1", conv([in_ch, 1280], 1, 1, 1, [0; 4]), EPS)?;
    Ok(b.relu6(&x))
}

#[derive(Clone, Copy, PartialEq)]
enum Block {
    /// ResNet-18/34: two 3×3 convolutions.
    Basic,
    /// ResNet-50 and up: 1×1, 3×3 (carrying the stride: torchvision's "v1.5"), 1×1 to 4× width.
    Bottleneck,
}

/// torchvision `resnet18` / `resnet50`: `conv1`/`bn1`/max-pool stem, `layer1..=4`, BN epsilon
/// 1e-5; the first block of a stage gets `downsample` (1×1 convolution + BN) when its shape changes.
fn resnet(b: &mut GraphBuilder, input: &str, block: Block, repeats: [usize; 4]) -> Result<String> {
    const EPS: f32 = 1e-5;
    let expansion = if block == Block::Basic { 1 } else { 4 };
    let x = conv_bn(b, input, "conv1", "bn1", conv([3, 64], 7, 2, 1, symmetric_pads(7)), EPS)?;
    let x = b.relu(&x);
    let mut x = b.max_pool(&x, "maxpool".into(), 3, 2, symmetric_pads(3));
    let mut in_ch = 64;
    for (stage, (planes, blocks)) in [64, 128, 256, 512].into_iter().zip(repeats).enumerate() {
        for i in 0..blocks {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let p = format!("layer{}.{i}", stage + 1);
            let out_ch = planes * expansion;
            let identity = if stride != 1 || in_ch != out_ch {
                let c = conv([in_ch, out_ch], 1, stride, 1, [0; 4]);
                conv_bn(b, &x, &format!("{p}.downsample.0"), &format!("{p}.downsample.1"), c, EPS)?
            } else {
                x.clone()
            };
            let names = |n: usize| (format!("{p}.conv{n}"), format!("{p}.bn{n}"));
            let mut y = x.clone();
            let convs = match block {
                Block::Basic => vec![
                    conv([in_ch, planes], 3, stride, 1, symmetric_pads(3)),
                    conv([planes, planes], 3, 1, 1, symmetric_pads(3)),
                ],
                Block::Bottleneck => vec![
                    conv([in_ch, planes], 1, 1, 1, [0; 4]),
                    conv([planes, planes], 3, stride, 1, symmetric_pads(3)),
                    conv([planes, out_ch], 1, 1, 1, [0; 4]),
                ],
            };
            let last = convs.len();
            for (n, c) in (1..).zip(convs) {
                let (conv_name, bn_name) = names(n);
                y = conv_bn(b, &y, &conv_name, &bn_name, c, EPS)?;
                if n < last {
                    y = b.relu(&y);
                }
            }
            let sum = b.add(&y, &identity, format!("{p}.add"));
            x = b.relu(&sum);
            in_ch = out_ch;
        }
    }
    Ok(x)
}
