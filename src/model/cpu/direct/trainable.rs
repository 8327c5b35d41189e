//! The depthwise convolutions of phase 2's trainable tail: the direct kernel forward and a
//! backward of our own, as one operation of burn's autodiff.
//!
//! burn differentiates a depthwise convolution through its generic convolution backward: the
//! input gradient as a transposed convolution and the weight gradient as a convolution with
//! batch and channels swapped, both run by burn-flex plane by plane in scalar code. For
//! EfficientNet-Lite0's last block (1 152 channels on 7×7) that was about a fifth of a phase-2
//! step on one core. At stride 1 the input gradient is itself a depthwise convolution, of the
//! output gradient with every kernel turned by 180° and the padding mirrored, which the direct
//! kernel computes; the weight gradient sums, for every tap, the output gradient times the input
//! under that tap, [`LANES`] pixels at a time.

use std::mem::MaybeUninit;

use burn::backend::{Autodiff, AutodiffBackend, DispatchKindConversion, DispatchTensor};
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Tensor, TensorData};
use burn_autodiff::NodeId;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};

use super::{LANES, Plan, simd};
use crate::model::cpu::contiguous_values;

/// `conv(input)` for an autodiff-tracked `input` on the CPU backend when `conv` is a depthwise
/// convolution at stride 1 our kernel covers ([`Plan::of`]) and everything is f32; otherwise
/// `Err(input)`, untouched, for burn's convolution and its backward.
///
/// # Shapes
/// - input: `[batch, channels, height, width]`
/// - output: `[batch, channels, out_height, out_width]`, as burn's `Conv2d::forward` gives
pub(super) fn try_forward(conv: &Conv2d, input: Tensor<4>) -> Result<Tensor<4>, Tensor<4>> {
    let plan = Plan::of(conv, input.dims());
    // The mirrored padding of the input gradient is `kernel - 1 - padding`.
    let Some(plan) = plan.filter(|p| p.depthwise && p.stride == 1 && p.pad[0] < p.kernel[0] && p.pad[1] < p.kernel[1]) else {
        return Err(input);
    };
    if input.dtype() != DType::F32 || conv.weight.val().dtype() != DType::F32 {
        return Err(input);
    }
    // The device's gradient-checkpointing strategy is a type parameter of its autodiff backend.
    with_strategy::<NoCheckpointing>(plan, conv, input).or_else(|input| with_strategy::<BalancedCheckpointing>(plan, conv, input))
}

fn with_strategy<C: CheckpointStrategy>(plan: Plan, conv: &Conv2d, input: Tensor<4>) -> Result<Tensor<4>, Tensor<4>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let Ok(x) = input.clone().try_into_primitive::<Autodiff<Flex, C>>() else {
        return Err(input);
    };
    let Ok(w) = conv.weight.val().try_into_primitive::<Autodiff<Flex, C>>() else {
        return Err(input);
    };
    let forward = |x, w| plan.convolve(&Autodiff::<Flex, C>::inner(x), &Autodiff::<Flex, C>::inner(w));
    let output = match DepthwiseBackward.prepare::<C>([x.node(), w.node()]).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(&x), prep.checkpoint(&w), plan);
            prep.finish(state, forward(x, w))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x, w)),
    };
    Ok(Tensor::from_primitive::<Autodiff<Flex, C>>(output))
}

#[derive(Debug)]
struct DepthwiseBackward;

impl Backward<Flex, 2> for DepthwiseBackward {
    /// The input's and the weights' nodes, and the forward's plan.
    type State = (NodeId, NodeId, Plan);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (x, w, plan) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x);
        let w: FlexTensor = checkpointer.retrieve_node_output(w);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, input_gradient(&plan, &w, &grad));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, weight_gradient(&plan, &x, &grad));
        }
    }
}

/// The gradient of a stride-1 depthwise convolution's input: the output gradient convolved
/// with each channel's kernel turned by 180°, padded by `kernel - 1 - padding` above and left,
/// to the input's size.
///
/// # Shapes
/// - weights: `[channels, 1, kernel_h, kernel_w]`
/// - grad: `[batch, channels, out_h, out_w]`
/// - output: `[batch, channels, in_h, in_w]`
fn input_gradient(plan: &Plan, weights: &FlexTensor, grad: &FlexTensor) -> FlexTensor {
    let [kernel_h, kernel_w] = plan.kernel;
    let turned: Vec<f32> = contiguous_values(&weights.to_contiguous()).chunks_exact(kernel_h * kernel_w).flat_map(|taps| taps.iter().rev().copied()).collect();
    let channels = weights.layout().shape()[0];
    let turned = FlexTensor::from_data(TensorData::new(turned, [channels, 1, kernel_h, kernel_w]));
    let mirrored = Plan {
        pad: [kernel_h - 1 - plan.pad[0], kernel_w - 1 - plan.pad[1]],
        input: plan.output,
        output: plan.input,
        ..*plan
    };
    mirrored.convolve(grad, &turned)
}

/// The gradient of a depthwise convolution's weights: for every channel and tap, the sum over
/// the batch and the output pixels of the output gradient times the input under that tap.
///
/// # Shapes
/// - x: `[batch, channels, in_h, in_w]`
/// - grad: `[batch, channels, out_h, out_w]`
/// - output: `[channels, 1, kernel_h, kernel_w]`
fn weight_gradient(plan: &Plan, x: &FlexTensor, grad: &FlexTensor) -> FlexTensor {
    let shape = x.layout().shape();
    let (batch, channels) = (shape[0], shape[1]);
    let (in_plane, out_plane) = (plan.input[0] * plan.input[1], plan.output[0] * plan.output[1]);
    let x = x.to_contiguous();
    let (x, grad) = (contiguous_values(&x), contiguous_values(grad));
    let offsets = plan.tap_offsets();
    let taps = offsets.len();
    let [out_h, out_w] = plan.output;
    let (padded_w, row_step) = (out_w.next_multiple_of(LANES), plan.stride * plan.phase_width());
    let channel = |c: usize, sums: &mut [f32], scratch: &mut Vec<f32>, padded: &mut Vec<f32>| {
        scratch.resize(plan.scratch_len(), 0.0);
        // The output gradient with every row zero-padded to whole vectors: the lanes past
        // the row's end multiply inputs outside the output and add nothing.
        padded.resize(out_h * padded_w, 0.0);
        for b in 0..batch {
            let plane = b * channels + c;
            plan.fill_scratch(&x[plane * in_plane..][..in_plane], scratch);
            for (row, g) in padded.chunks_exact_mut(padded_w).zip(grad[plane * out_plane..][..out_plane].chunks_exact(out_w)) {
                row[..out_w].copy_from_slice(g);
            }
            for (sum, &offset) in sums.iter_mut().zip(&offsets) {
                let mut acc = simd::zero();
                for oh in 0..out_h {
                    for ow in (0..out_w).step_by(4) {
                        // SAFETY: the scratch holds every input of the output row's padded width
                        // under every tap (as for the forward, `Plan::rows_fixed`), and `padded`
                        // holds `out_h` rows of `padded_w` (a multiple of 4) values.
                        let (a, g) = unsafe { (simd::load(scratch.as_ptr().add(oh * row_step + ow + offset)), simd::load(padded.as_ptr().add(oh * padded_w + ow))) };
                        acc = simd::mul_add(a, g, acc);
                    }
                }
                let mut lanes = [MaybeUninit::uninit(); 4];
                simd::store(&mut lanes, acc);
                // SAFETY: `store` wrote all 4 lanes.
                *sum += unsafe { lanes.map(|lane| lane.assume_init()) }.iter().sum::<f32>();
            }
        }
    };
    let mut sums = vec![0.0f32; channels * taps];
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        sums.par_chunks_mut(taps).enumerate().for_each_init(|| (Vec::new(), Vec::new()), |(scratch, padded), (c, sums)| channel(c, sums, scratch, padded));
    }
    #[cfg(target_arch = "wasm32")]
    {
        let (mut scratch, mut padded) = (Vec::new(), Vec::new());
        for (c, sums) in sums.chunks_mut(taps).enumerate() {
            channel(c, sums, &mut scratch, &mut padded);
        }
    }
    let [kernel_h, kernel_w] = plan.kernel;
    FlexTensor::from_data(TensorData::new(sums, [channels, 1, kernel_h, kernel_w]))
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution, Tolerance};

    use super::*;

    fn close<const D: usize>(actual: Tensor<D>, expected: Tensor<D>, what: &str) {
        let scale = expected.clone().abs().max().into_scalar::<f32>().max(1.0);
        let (actual, expected) = (actual.into_data(), expected.into_data());
        assert_eq!(actual.shape(), expected.shape(), "{what}");
        actual.assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-4 * scale));
    }

    /// The output and the gradients of the input and the weights against burn's convolution
    /// and its backward: the backbones' depthwise shapes at stride 1 (3×3 and 5×5 with either
    /// padding, on maps as small as the last blocks' and narrower than a vector) and odd ones
    /// (even kernels, no padding, asymmetric padding), with and without gradient
    /// checkpointing.
    #[test]
    fn trains_as_burns_depthwise_convolution() {
        let cases = [
            // kernel, padding, channels, height, width
            (3, PaddingConfig2d::Same, 6, 7, 7),
            (5, PaddingConfig2d::Same, 4, 7, 7),
            (5, PaddingConfig2d::Explicit(2, 2, 2, 2), 3, 14, 9),
            (3, PaddingConfig2d::Explicit(1, 1, 1, 1), 2, 12, 19),
            (4, PaddingConfig2d::Same, 3, 6, 5),
            (3, PaddingConfig2d::Valid, 2, 5, 9),
            (3, PaddingConfig2d::Explicit(0, 2, 1, 0), 2, 6, 7),
        ];
        for device in [Device::flex().autodiff(), Device::flex().autodiff().gradient_checkpointing()] {
            device.seed(9);
            for (kernel, padding, channels, height, width) in cases.clone() {
                let what = format!("{kernel}×{kernel} {padding:?} on {height}×{width}");
                let conv = Conv2dConfig::new([channels, channels], [kernel, kernel]).with_groups(channels).with_padding(padding.clone()).with_bias(false).init(&device);
                let x = Tensor::<4>::random([3, channels, height, width], Distribution::Normal(0.0, 1.0), &device).require_grad();
                let ours = try_forward(&conv, x.clone()).unwrap_or_else(|_| panic!("{what}: not taken"));
                let burns = conv.forward(x.clone());
                close(ours.clone(), burns.clone(), &what);
                // A loss that weighs every output differently.
                let weights = Tensor::<4>::random(burns.dims(), Distribution::Normal(0.0, 1.0), &device);
                let (ours, burns) = ((ours * weights.clone()).sum().backward(), (burns * weights).sum().backward());
                close(x.grad(&ours).unwrap(), x.grad(&burns).unwrap(), &format!("{what}: input gradient"));
                close(conv.weight.grad(&ours).unwrap(), conv.weight.grad(&burns).unwrap(), &format!("{what}: weight gradient"));
            }
        }
    }

    /// Frozen weights or an untracked input: only the gradient asked for.
    #[test]
    fn computes_only_the_gradients_asked_for() {
        let device = Device::flex().autodiff();
        let conv = || Conv2dConfig::new([4, 4], [3, 3]).with_groups(4).with_padding(PaddingConfig2d::Same).with_bias(false).init(&device);
        let x = Tensor::<4>::random([2, 4, 7, 7], Distribution::Default, &device).require_grad();
        let frozen = conv().no_grad();
        let grads = try_forward(&frozen, x.clone()).unwrap_or_else(|_| panic!("not taken")).sum().backward();
        assert!(x.grad(&grads).is_some() && frozen.weight.grad(&grads).is_none());

        let untracked = Tensor::<4>::random([2, 4, 7, 7], Distribution::Default, &device);
        let trained = conv();
        let grads = try_forward(&trained, untracked).unwrap_or_else(|_| panic!("not taken")).sum().backward();
        assert!(trained.weight.grad(&grads).is_some());
    }

    /// Stride 2 and full convolutions keep burn's backward.
    #[test]
    fn leaves_strided_and_full_convolutions_to_burn() {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::random([1, 3, 8, 8], Distribution::Default, &device);
        let strided = Conv2dConfig::new([3, 3], [3, 3]).with_groups(3).with_stride([2, 2]).with_bias(false).init(&device);
        let full = Conv2dConfig::new([3, 4], [3, 3]).with_bias(false).init(&device);
        assert!(try_forward(&strided, x.clone()).is_err());
        assert!(try_forward(&full, x).is_err());
    }

    /// Times a depthwise convolution's forward and backward with our kernel and with burn's,
    /// at batch 16, 1 152 channels on 7×7 (EfficientNet-Lite0's last blocks). A measurement, not
    /// a check: `cargo test --release --features criterion --lib depthwise_timing -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore]
    fn depthwise_timing() {
        use std::time::Instant;
        let device = Device::flex().autodiff();
        for kernel in [3, 5] {
            let conv = Conv2dConfig::new([1152, 1152], [kernel, kernel]).with_groups(1152).with_padding(PaddingConfig2d::Same).with_bias(false).init(&device);
            let x0 = Tensor::<4>::random([16, 1152, 7, 7], Distribution::Normal(0.0, 1.0), &device);
            for round in 0..4 {
                for ours in [true, false] {
                    let x = x0.clone().require_grad();
                    let start = Instant::now();
                    let y = if ours { try_forward(&conv, x.clone()).unwrap_or_else(|_| panic!("not taken")) } else { conv.forward(x.clone()) };
                    let forward = start.elapsed().as_secs_f64() * 1e3;
                    let grads = y.powi_scalar(2).sum().backward();
                    let _ = (conv.weight.grad(&grads).unwrap().into_data(), x.grad(&grads).unwrap().into_data());
                    if round > 0 {
                        let who = if ours { "webtune" } else { "burn" };
                        println!("{kernel}×{kernel} {who}: forward {forward:.1} ms, with backward {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
                    }
                }
            }
        }
    }
}
