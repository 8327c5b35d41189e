//! Kernels of our own for the CPU backend's inference forwards, where burn-flex's are slow for
//! the backbones' shapes: depthwise convolutions and the stems ([`direct`]), and BatchNorm on
//! running statistics fused with the activation after it ([`batch_norm`]).
//!
//! Reached through burn's backend-extension API (`Tensor::try_into_primitive::<Flex>`), and only
//! for plain flex tensors: autodiff-tracked ones (phase 2's trainable tail) and other backends
//! (WebGPU, Vulkan) keep burn's operations. So they serve the frozen backbone's forwards:
//! feature extraction, the prefix cache, evaluation and prediction. The page and the CLI run the
//! same code (wasm simd128 and x86-64 SSE do the same float operations in the same order).

mod batch_norm;
mod direct;

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;

/// `conv(input)` as the backbones run it: with our direct kernel where that applies (depthwise
/// convolutions and stems, [`direct::try_forward`]), burn's convolution otherwise.
///
/// # Shapes
/// - input: `[batch, in_channels, height, width]`
/// - output: `[batch, out_channels, out_height, out_width]`, as burn's `Conv2d::forward` gives
pub fn conv2d(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    direct::try_forward(conv, input).unwrap_or_else(|input| conv.forward(input))
}

/// `bn(x)` as the backbones run it, clamped to `[0, max]` after when `max` is given (ReLU6 is
/// `Some(6.0)`): one pass of our own over a plain flex tensor ([`batch_norm::try_forward`]),
/// burn's BatchNorm and clamp otherwise.
///
/// # Shapes
/// - x: `[batch, channels, height, width]`
/// - output: the same
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>, max: Option<f32>) -> Tensor<4> {
    batch_norm::try_forward(bn, x, max).unwrap_or_else(|x| {
        let x = bn.forward(x);
        match max {
            Some(max) => x.clamp(0.0, max),
            None => x,
        }
    })
}

/// The values of a contiguous f32 tensor, from its first element.
fn contiguous_values(tensor: &FlexTensor) -> &[f32] {
    let layout = tensor.layout();
    let start = layout.start_offset();
    &tensor.storage::<f32>()[start..start + layout.num_elements()]
}
