//! Pointwise (1×1) convolutions over few input channels for inference forwards on the CPU
//! backend in wasm, with a kernel of our own: the MobileNet family's early expansions
//! ([`super::OWN_POINTWISE`] says why not natively).
//!
//! burn-flex runs a 1×1 convolution as a matrix product (the `gemm` crate) of the weights,
//! `[out_channels, in_channels]`, and the picture, `[in_channels, pixels]`, whose inner dimension
//! is the input channels: 16–32 for the early expansions, too short to pay for the product's
//! packing. Here [`CHANNELS`] output channels × [`LANES`] pixels are summed in registers
//! straight from the picture: for each input channel, its [`LANES`] pixels are loaded once and
//! multiplied by the weight of each output channel, splatted where it is used. No packing, no
//! copy of the input. In Chromium (one thread, batch 8) 16 → 96 channels at 112 px took 11.8–12.1
//! ms against burn-flex's 15.0–15.7, 24 → 144 at 56 px 6.3–6.5 against 7.2–7.4; with 144 inputs
//! the two were even and with 240 burn-flex was ahead, hence [`MAX_INPUTS`].

use std::mem::MaybeUninit;

use burn::nn::conv::Conv2d;
use burn::tensor::{Tensor, TensorData};
use burn_flex::{Flex, FlexTensor};

use super::simd::{self, LANES, store_lanes};
use super::{contiguous_values, flex_operands};
use crate::model::blocks::conv_padding;

/// Output channels summed together: `2 · CHANNELS` vector registers of sums, two for the
/// pixels loaded and one for a weight fit the 16 registers of x86-64 (where V8 and our native
/// build run).
const CHANNELS: usize = 4;

/// Most input channels of a 1×1 convolution that takes our kernel (see the module's doc); the
/// later expansions, the projections and the final 1×1 convolution keep burn's.
pub(crate) const MAX_INPUTS: usize = 32;

/// `conv(input)` with our kernel when `conv` is a 1×1 convolution at stride 1 without padding,
/// dilation, groups or bias, over at most [`MAX_INPUTS`] input channels into a multiple of
/// [`CHANNELS`] output channels, and `input` a plain f32 flex tensor; otherwise `Err(input)`,
/// untouched, for burn's convolution.
///
/// # Shapes
/// - input: `[batch, in_channels, height, width]`
/// - output: `[batch, out_channels, height, width]`
pub fn try_forward(conv: &Conv2d, input: Tensor<4>) -> Result<Tensor<4>, Tensor<4>> {
    let [out_channels, in_channels, kernel_h, kernel_w] = conv.weight.dims();
    let [batch, channels, height, width] = input.dims();
    let covered = [kernel_h, kernel_w] == [1, 1]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && conv.bias.is_none()
        && channels == in_channels
        && (1..=MAX_INPUTS).contains(&in_channels)
        && out_channels % CHANNELS == 0
        && conv_padding(&conv.padding, [height, width], [1, 1], [1, 1]) == [0; 4]
        && batch * height * width > 0;
    let Some((x, w)) = flex_operands(conv, &input).filter(|_| covered) else {
        return Err(input);
    };
    let (x, w) = (x.to_contiguous(), w.to_contiguous());
    let pixels = height * width;
    let total = batch * out_channels * pixels;
    let mut output = Vec::with_capacity(total);
    convolve(contiguous_values(&x), contiguous_values(&w), [in_channels, out_channels, pixels], &mut output.spare_capacity_mut()[..total]);
    // SAFETY: `convolve` writes every one of the `total` outputs (each block's pixels).
    unsafe { output.set_len(total) };
    Ok(Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(output, [batch, out_channels, height, width]))))
}

/// `output` (`[pictures, out_channels, pixels]`) from `input` (`[pictures, in_channels,
/// pixels]`) and `weights` (`[out_channels, in_channels]`), [`CHANNELS`] output channels of one
/// picture at a time; on every core natively.
fn convolve(input: &[f32], weights: &[f32], [inputs, outputs, pixels]: [usize; 3], output: &mut [MaybeUninit<f32>]) {
    let blocks = outputs / CHANNELS;
    let block = |(index, out): (usize, &mut [MaybeUninit<f32>])| {
        let (picture, block) = (index / blocks, index % blocks);
        channel_block(&input[picture * inputs * pixels..][..inputs * pixels], &weights[block * CHANNELS * inputs..][..CHANNELS * inputs], pixels, out);
    };
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        output.par_chunks_mut(CHANNELS * pixels).enumerate().for_each(block);
    }
    #[cfg(target_arch = "wasm32")]
    output.chunks_mut(CHANNELS * pixels).enumerate().for_each(block);
}

/// [`CHANNELS`] output planes (`out`: `[CHANNELS, pixels]`) of one picture (`picture`:
/// `[inputs, pixels]`) with their `weights` (`[CHANNELS, inputs]`), [`LANES`] pixels at a
/// time; the last pixels of a plane that does not divide into [`LANES`] from a zero-padded
/// copy.
fn channel_block(picture: &[f32], weights: &[f32], pixels: usize, out: &mut [MaybeUninit<f32>]) {
    let inputs = picture.len() / pixels;
    let whole = pixels - pixels % LANES;
    for p in (0..whole).step_by(LANES) {
        let sums = pixel_sums(&picture[p..], pixels, inputs, weights);
        store_block(out, pixels, p, sums);
    }
    if whole < pixels {
        let mut tail = vec![0.0; inputs * LANES];
        for (tail, row) in tail.chunks_exact_mut(LANES).zip(picture.chunks_exact(pixels)) {
            tail[..pixels - whole].copy_from_slice(&row[whole..]);
        }
        let sums = pixel_sums(&tail, LANES, inputs, weights);
        store_block(out, pixels, whole, sums);
    }
}

/// The sums of [`LANES`] pixels for [`CHANNELS`] output channels: `values` holds the pixels of
/// each of the `inputs` channels `row_step` apart.
#[inline(always)]
fn pixel_sums(values: &[f32], row_step: usize, inputs: usize, weights: &[f32]) -> [[simd::V; 2]; CHANNELS] {
    // Every load below lies in these values (checked once, here).
    let values = &values[..(inputs - 1) * row_step + LANES];
    let weights = &weights[..CHANNELS * inputs];
    let mut acc = [[simd::zero(); 2]; CHANNELS];
    for i in 0..inputs {
        // SAFETY: i · row_step + LANES <= (inputs - 1) · row_step + LANES = values.len().
        let (a, b) = unsafe { (simd::load(values.as_ptr().add(i * row_step)), simd::load(values.as_ptr().add(i * row_step + 4))) };
        for (c, acc) in acc.iter_mut().enumerate() {
            let w = simd::splat(weights[c * inputs + i]);
            acc[0] = simd::mul_add(a, w, acc[0]);
            acc[1] = simd::mul_add(b, w, acc[1]);
        }
    }
    acc
}

/// Stores the sums of pixels `p..` (at most [`LANES`], fewer at the end) of each of the block's
/// planes.
#[inline(always)]
fn store_block(out: &mut [MaybeUninit<f32>], pixels: usize, p: usize, sums: [[simd::V; 2]; CHANNELS]) {
    let n = LANES.min(pixels - p);
    for (c, sums) in sums.into_iter().enumerate() {
        store_lanes(&mut out[c * pixels + p..][..n], sums);
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution, Tolerance};

    use super::*;

    /// Against burn's convolution: the backbones' shapes in small (few and many input channels,
    /// maps whose pixels divide into 8 and that leave a tail: 7×7, 3×5, 1×1), batch 1 and 3.
    #[test]
    fn matches_burns_convolution() {
        let device = Device::flex();
        for batch in [1, 3] {
            for ([inputs, outputs], [height, width]) in [([16, 96], [12, 12]), ([24, 8], [7, 7]), ([3, 4], [3, 5]), ([MAX_INPUTS, 12], [4, 4]), ([5, 4], [1, 1])] {
                let conv = Conv2dConfig::new([inputs, outputs], [1, 1]).with_bias(false).init(&device);
                let input = Tensor::<4>::random([batch, inputs, height, width], Distribution::Normal(0.0, 1.0), &device);
                let expected = conv.forward(input.clone());
                let actual = try_forward(&conv, input).unwrap_or_else(|_| panic!("{inputs} → {outputs}: not taken"));
                assert_eq!(actual.dims(), expected.dims());
                actual.into_data().assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-4));
            }
        }
    }

    /// What the kernel does not cover goes back to burn untouched: more input channels, output
    /// channels that do not divide into blocks, a bias, a stride, padding, groups, a larger
    /// kernel, an autodiff-tracked input.
    #[test]
    fn leaves_other_convolutions_to_burn() {
        let device = Device::flex();
        let input = |channels| Tensor::<4>::random([1, channels, 6, 6], Distribution::Default, &device);
        let pointwise = |channels: [usize; 2]| Conv2dConfig::new(channels, [1, 1]).with_bias(false);
        let refused = [
            (pointwise([MAX_INPUTS + 1, 4]).init(&device), MAX_INPUTS + 1),
            (pointwise([8, 6]).init(&device), 8),
            (pointwise([8, 4]).with_bias(true).init(&device), 8),
            (pointwise([8, 4]).with_stride([2, 2]).init(&device), 8),
            (pointwise([8, 4]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&device), 8),
            (pointwise([8, 4]).with_groups(2).init(&device), 8),
            (Conv2dConfig::new([8, 4], [3, 3]).with_bias(false).init(&device), 8),
        ];
        for (conv, channels) in &refused {
            assert!(try_forward(conv, input(*channels)).is_err(), "{:?}", conv.weight.dims());
        }
        assert!(try_forward(&pointwise([8, 4]).init(&device), input(8)).is_ok());
        let tracking = device.clone().autodiff();
        let tracked = Tensor::<4>::random([1, 8, 6, 6], Distribution::Default, &tracking);
        assert!(try_forward(&pointwise([8, 4]).init(&tracking), tracked).is_err(), "autodiff: burn's");
    }
}
