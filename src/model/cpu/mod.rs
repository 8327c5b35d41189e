//! Kernels of our own for the CPU backend, where burn-flex's are slow for the backbones' shapes:
//! depthwise convolutions and the stems ([`direct`]), forward and (depthwise, stride 1) backward,
//! pointwise convolutions over up to 32 input channels in wasm ([`pointwise`]), and BatchNorm on running
//! statistics fused with the activation after it ([`batch_norm`]). [`simd`] holds the 4-lane
//! vector operations they share.
//!
//! Reached through burn's backend-extension API (`Tensor::try_into_primitive::<Flex>`), for plain
//! flex tensors: the frozen backbone's forwards (feature extraction, the prefix cache,
//! evaluation and prediction). Phase 2's trainable tail runs on autodiff-tracked flex tensors;
//! there the stride-1 depthwise convolutions take the direct kernel and a backward of our own as
//! one autodiff operation ([`direct`]'s `trainable`), BatchNorm a scale and shift of burn's
//! operations, and the rest burn's. Other backends (WebGPU, Vulkan) keep burn's operations
//! (BatchNorm as that scale and shift too). The page and the CLI run the same code (wasm
//! simd128 and x86-64 SSE do the same float operations in the same order).

mod batch_norm;
mod direct;
mod pointwise;
mod simd;

pub(crate) use pointwise::MAX_INPUTS as POINTWISE_MAX_INPUTS;

/// Whether 1×1 convolutions over at most [`POINTWISE_MAX_INPUTS`] input channels take our
/// kernel ([`pointwise`]): in wasm, where burn-flex's matrix product is 4 lanes wide without a
/// fused multiply-add as ours is. Natively it picks AVX2 and FMA at run time, twice the width and
/// one instruction for two, and beat our SSE kernel on every such shape (x86-64, one core: 16 → 96
/// channels at 112 px 24–27 against 30–31 ms, 24 → 144 at 56 px 2.3–3.5 against 6.2–9.3 ms).
pub(crate) const OWN_POINTWISE: bool = cfg!(target_arch = "wasm32");

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Tensor};
use burn_flex::{Flex, FlexTensor};

use super::blocks::inference_scale_shift;

/// `conv(input)` as the backbones run it: with our direct kernel where that applies (depthwise
/// convolutions and stems, [`direct::try_forward`]), our pointwise one for 1×1 convolutions
/// over few enough inputs in wasm ([`pointwise::try_forward`], [`OWN_POINTWISE`]), burn's
/// convolution otherwise.
///
/// # Shapes
/// - input: `[batch, in_channels, height, width]`
/// - output: `[batch, out_channels, out_height, out_width]`, as burn's `Conv2d::forward` gives
pub fn conv2d(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    direct::try_forward(conv, input)
        .or_else(|input| if OWN_POINTWISE { pointwise::try_forward(conv, input) } else { Err(input) })
        .unwrap_or_else(|input| conv.forward(input))
}

/// `bn(x)` as the backbones run it, clamped to `[0, max]` after when `max` is given (ReLU6 is
/// `Some(6.0)`, ReLU `Some(f32::INFINITY)`): one pass of our own over a plain flex tensor
/// ([`batch_norm::try_forward`]); otherwise (autodiff, WebGPU) BatchNorm on running statistics as
/// one per-channel scale and shift, `x · γ/√(σ² + ε) + (β − μ · γ/√(σ² + ε))`, and burn's clamp
/// (or ReLU). The scale and shift are
/// computed from `γ` and `β` as tensors, so they train: phase 2's tail keeps BatchNorm in
/// inference mode with its affine parameters learning. burn's BatchNorm takes four broadcast
/// operations (`x − μ`, `/ √(σ² + ε)`, `· γ`, `+ β`), each a pass over the activation forward
/// and most of them one or two backward; this takes two. A BatchNorm that trains on batch
/// statistics (autodiff with its training switch on) keeps burn's.
///
/// # Shapes
/// - x: `[batch, channels, height, width]`
/// - output: the same
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>, max: Option<f32>) -> Tensor<4> {
    batch_norm::try_forward(bn, x, max).unwrap_or_else(|x| {
        let x = if x.device().is_autodiff() && bn.training.is_enabled() { bn.forward(x) } else { scale_shift(bn, x) };
        activate(x, max)
    })
}

/// `x` clamped to `[0, max]` when `max` is given: ReLU for an infinite `max` (burn's, for its
/// gradient), ReLU6 for 6; `x` itself without.
pub(crate) fn activate(x: Tensor<4>, max: Option<f32>) -> Tensor<4> {
    match max {
        Some(f32::INFINITY) => burn::tensor::activation::relu(x),
        Some(max) => x.clamp(0.0, max),
        None => x,
    }
}

/// BatchNorm on running statistics as `x · scale + shift` per channel (see [`batch_norm`]).
///
/// # Shapes
/// - x: `[batch, channels, height, width]`
/// - output: the same
fn scale_shift(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let [channels] = bn.gamma.dims();
    let (scale, shift) = inference_scale_shift(bn, &x.device());
    x * scale.reshape([1, channels, 1, 1]) + shift.reshape([1, channels, 1, 1])
}

/// `input` and `conv`'s weights as plain flex tensors when both are f32 ones (what our kernels
/// take); `None` otherwise (autodiff, another backend or dtype).
fn flex_operands(conv: &Conv2d, input: &Tensor<4>) -> Option<(FlexTensor, FlexTensor)> {
    let x = input.clone().try_into_primitive::<Flex>().ok()?;
    let w = conv.weight.val().try_into_primitive::<Flex>().ok()?;
    (x.dtype() == DType::F32 && w.dtype() == DType::F32).then_some((x, w))
}

/// The values of a contiguous f32 tensor, from its first element.
fn contiguous_values(tensor: &FlexTensor) -> &[f32] {
    let layout = tensor.layout();
    let start = layout.start_offset();
    &tensor.storage::<f32>()[start..start + layout.num_elements()]
}

#[cfg(test)]
pub(crate) mod tests {
    use burn::module::{Module, Param, RunningState};
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Device, Distribution, Tolerance};

    use super::*;

    /// Random statistics and affine parameters for `bn` (a fresh BatchNorm is the identity up
    /// to ε, which would hide a wrong scale or shift).
    pub(crate) fn randomise_batch_norm(bn: &mut BatchNorm) {
        let ([channels], device) = (bn.gamma.dims(), bn.gamma.val().device());
        let random = |low: f64, high: f64| Tensor::<1>::random([channels], Distribution::Uniform(low, high), &device);
        bn.gamma = Param::from_tensor(random(0.5, 2.0));
        bn.beta = Param::from_tensor(random(-1.0, 1.0));
        bn.running_mean = RunningState::new(random(-1.0, 1.0));
        bn.running_var = RunningState::new(random(0.1, 3.0));
    }

    /// A BatchNorm with random statistics and affine parameters on `device`.
    pub(super) fn random_batch_norm(channels: usize, device: &Device) -> BatchNorm {
        let mut bn = BatchNormConfig::new(channels).with_epsilon(1e-3).init(device);
        randomise_batch_norm(&mut bn);
        bn
    }

    /// On an autodiff device a frozen BatchNorm runs as one scale and shift: the same values as
    /// burn's inference BatchNorm, and the same gradients for the input, γ and β.
    #[test]
    fn scale_and_shift_train_as_burns_inference_batch_norm() {
        let device = Device::flex().autodiff();
        device.seed(11);
        let bn = random_batch_norm(6, &device).freeze().set_require_grad(true);
        assert!(!bn.training.is_enabled());
        let x = Tensor::<4>::random([3, 6, 5, 4], Distribution::Normal(0.0, 2.0), &device).require_grad();
        let weights = Tensor::<4>::random([3, 6, 5, 4], Distribution::Normal(0.0, 1.0), &device);
        let reference = burn::tensor::module::batch_norm(x.clone(), bn.gamma.val(), bn.beta.val(), bn.running_mean.value(), bn.running_var.value(), bn.epsilon);
        let ours = batch_norm(&bn, x.clone(), None);
        ours.clone().inner().into_data().assert_approx_eq::<f32>(&reference.clone().inner().into_data(), Tolerance::absolute(1e-5));

        let (g_ref, g_ours) = ((reference * weights.clone()).sum().backward(), (ours * weights).sum().backward());
        let close = |a: Tensor<1>, b: Tensor<1>| a.into_data().assert_approx_eq::<f32>(&b.into_data(), Tolerance::absolute(1e-4));
        close(bn.gamma.grad(&g_ours).unwrap(), bn.gamma.grad(&g_ref).unwrap());
        close(bn.beta.grad(&g_ours).unwrap(), bn.beta.grad(&g_ref).unwrap());
        x.grad(&g_ours).unwrap().into_data().assert_approx_eq::<f32>(&x.grad(&g_ref).unwrap().into_data(), Tolerance::absolute(1e-4));
    }

    /// A BatchNorm that trains (autodiff, training switch on) normalises with the batch's own
    /// statistics, as burn's does: every channel of the output has mean β = 0 and variance ≈ 1.
    #[test]
    fn a_training_batch_norm_keeps_batch_statistics() {
        let device = Device::flex().autodiff();
        let bn = BatchNormConfig::new(4).init(&device);
        assert!(bn.training.is_enabled());
        let x = Tensor::<4>::random([8, 4, 3, 3], Distribution::Normal(5.0, 3.0), &device);
        let y = batch_norm(&bn, x, None).inner();
        let means = y.clone().mean_dims(&[0, 2, 3]).into_data();
        means.assert_approx_eq::<f32>(&Tensor::<4>::zeros([1, 4, 1, 1], &y.device()).into_data(), Tolerance::absolute(1e-4));
    }
}
