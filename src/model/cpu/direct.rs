//! Direct convolutions (no matrix product) for inference forwards on the CPU backend, with a
//! kernel of our own: depthwise convolutions, and full convolutions over few input channels
//! (the stems' 3 colour channels).
//!
//! burn-flex runs a depthwise convolution one (picture, channel) plane at a time, adding each
//! kernel tap into a whole output row: every multiply-add loads and stores the output, the short
//! rows of a backbone's later blocks (7–28 px) fill little of a SIMD register, and stride 2 is
//! scalar code. That is 8–15 % of one core's wasm SIMD peak, against 28–47 % for the pointwise
//! convolutions (README, Speed). A stem goes through its general path, a matrix product whose
//! inner dimension is only `3 · kernel²` after an im2col copy of the picture (15 %). Here each
//! input plane is copied once, zero-padded and split into `stride` column phases, so that for
//! every tap the inputs of [`LANES`] neighbouring outputs are consecutive values whatever the
//! stride; those outputs are summed over all taps (of every input plane) in registers and
//! stored once. A full convolution over few inputs sums [`CHANNEL_BLOCK`] output channels at
//! once from each input vector loaded. A 3×3 depthwise convolution at stride 2 skips the copy:
//! it deals each input row's even and odd columns into vectors with shuffles as it reads them.

use std::mem::MaybeUninit;

use burn::nn::conv::Conv2d;
use burn::tensor::{Tensor, TensorData};
use burn_flex::{Flex, FlexTensor};

use super::simd::{self, LANES, store_lanes};
use super::{contiguous_values, flex_operands};
use crate::model::blocks::conv_padding;

mod trainable;

/// Output rows accumulated together by the generic kernel ([`Plan::accumulate`]).
const ROWS: usize = 4;

/// Output rows accumulated together by the kernels of fixed size ([`Plan::accumulate_fixed`]):
/// their `2 · FIXED_ROWS` sums and a 3×3 kernel's 9 weights fit x86-64's 16 vector registers,
/// where V8 compiles the page's wasm (with 4 rows they did not, and spilled: 3×3 stride 1 at 56
/// px took 4.8 ms a batch of 8 in Chromium against 4.1 ms now).
const FIXED_ROWS: usize = 2;

/// Output channels of a full convolution over few inputs computed together: every input vector
/// loaded feeds all of them (`2 · CHANNEL_BLOCK` sums in registers), so a stem's 27 taps cost two
/// loads each for four channels instead of for one.
const CHANNEL_BLOCK: usize = 4;

/// Inputs of one input row that [`LANES`] outputs of a 3×3 convolution at stride 2 read: every
/// other column from the first output's first tap, and the third tap of the last output.
const STRIDE_2_REACH: usize = 2 * LANES + 1;

/// Most input channels of a full (one-group) convolution that takes our kernel: the MobileNet
/// family's 3×3 stems, whose 3 colour channels make a poorly shaped matrix product for burn-flex
/// (15 % of the SIMD peak).
const MAX_PLANES: usize = 4;

/// `conv(input)` with our kernel when `conv` is a depthwise convolution (one input and one
/// output channel per group) or a full one over at most [`MAX_PLANES`] input channels, without
/// dilation or bias, and `input` a plain f32 flex tensor; otherwise `Err(input)`, untouched,
/// for burn's convolution.
///
/// # Shapes
/// - input: `[batch, channels, height, width]`
/// - output: `[batch, out_channels, out_height, out_width]`, as burn's `Conv2d::forward` gives
pub fn try_forward(conv: &Conv2d, input: Tensor<4>) -> Result<Tensor<4>, Tensor<4>> {
    if input.device().is_autodiff() {
        return trainable::try_forward(conv, input);
    }
    let Some((plan, (x, w))) = Plan::of(conv, input.dims()).zip(flex_operands(conv, &input)) else {
        return Err(input);
    };
    Ok(Tensor::from_primitive::<Flex>(plan.convolve(&x, &w)))
}

fn output_size(input: usize, padding: usize, kernel: usize, stride: usize) -> Option<usize> {
    (input + padding).checked_sub(kernel).map(|span| span / stride + 1)
}

/// One convolution's geometry.
#[derive(Debug, Clone, Copy)]
struct Plan {
    kernel: [usize; 2],
    stride: usize,
    /// Zero rows above and columns left of the input; those below and right are implicit.
    pad: [usize; 2],
    input: [usize; 2],
    output: [usize; 2],
    /// Input planes summed into each output plane: 1 for a depthwise convolution, the input
    /// channels (at most [`MAX_PLANES`]) for a convolution over few of them.
    planes: usize,
    /// Each output plane from the input plane of its own channel (else from all the picture's).
    depthwise: bool,
}

impl Plan {
    /// The plan of `conv` on an input of `[batch, channels, height, width]` when our kernel
    /// covers it: a depthwise convolution (one input and one output channel per group) or a
    /// full one over at most [`MAX_PLANES`] input channels, without dilation or bias, with the
    /// same stride both ways, on a non-empty input.
    fn of(conv: &Conv2d, [batch, in_channels, in_h, in_w]: [usize; 4]) -> Option<Plan> {
        let [channels, per_group, kernel_h, kernel_w] = conv.weight.dims();
        let depthwise = per_group == 1 && conv.groups == channels && in_channels == channels && channels > 1;
        // Over few inputs only with a kernel of a fixed path: ResNet's 7×7 stem (64 outputs, 147
        // taps) runs faster as burn-flex's matrix product than through the generic path.
        let fixed = matches!(([kernel_h, kernel_w], conv.stride[0]), ([3, 3] | [5, 5], 1 | 2));
        let few_inputs = conv.groups == 1 && per_group == in_channels && in_channels <= MAX_PLANES && fixed;
        let empty = batch * in_h * in_w == 0;
        if !(depthwise || few_inputs) || empty || conv.dilation != [1, 1] || conv.bias.is_some() || conv.stride[0] != conv.stride[1] {
            return None;
        }
        let [pad_top, pad_left, pad_bottom, pad_right] = conv_padding(&conv.padding, [in_h, in_w], [kernel_h, kernel_w], conv.stride);
        let stride = conv.stride[0];
        let out_h = output_size(in_h, pad_top + pad_bottom, kernel_h, stride)?;
        let out_w = output_size(in_w, pad_left + pad_right, kernel_w, stride)?;
        Some(Plan { kernel: [kernel_h, kernel_w], stride, pad: [pad_top, pad_left], input: [in_h, in_w], output: [out_h, out_w], planes: per_group, depthwise })
    }

    /// The convolution of `x` (`[batch, channels, in_h, in_w]`, f32) with `weights`
    /// (`[out_channels, planes, kernel_h, kernel_w]`, f32), as `[batch, out_channels, out_h, out_w]`.
    fn convolve(&self, x: &FlexTensor, weights: &FlexTensor) -> FlexTensor {
        let (batch, channels) = (x.layout().shape()[0], weights.layout().shape()[0]);
        let [out_h, out_w] = self.output;
        let (x, w) = (x.to_contiguous(), weights.to_contiguous());
        let total = batch * channels * out_h * out_w;
        let mut output = Vec::with_capacity(total);
        let (x, w, out) = (contiguous_values(&x), contiguous_values(&w), &mut output.spare_capacity_mut()[..total]);
        if self.depthwise { self.run(x, w, channels, out) } else { self.run_few_inputs(x, w, channels, out) }
        // SAFETY: `run` and `run_few_inputs` write every one of the `total` outputs (each
        // plane's rows, every column).
        unsafe { output.set_len(total) };
        FlexTensor::from_data(TensorData::new(output, [batch, channels, out_h, out_w]))
    }

    /// Padded input rows the output needs.
    fn rows(&self) -> usize {
        (self.output[0] - 1) * self.stride + self.kernel[0]
    }

    /// Width of one column phase: every output column rounded up to [`LANES`], plus the taps'
    /// reach, so that every load of `LANES` values stays inside the phase.
    fn phase_width(&self) -> usize {
        self.output[1].next_multiple_of(LANES) + (self.kernel[1] - 1) / self.stride
    }

    /// Where each tap's inputs start in the scratch, relative to its output's: tap `(kh, kw)`
    /// reads phase `kw % stride`, `kh` rows down and `kw / stride` columns right.
    /// With several input planes, the taps of plane `p` read [`scratch_len`](Self::scratch_len)
    /// `· p` further on, in the order of the weights (`[planes, kernel_h, kernel_w]`).
    fn tap_offsets(&self) -> Vec<usize> {
        let (rows, width, stride, plane) = (self.rows(), self.phase_width(), self.stride, self.scratch_len());
        let [kernel_h, kernel_w] = self.kernel;
        let taps = move |p| (0..kernel_h).flat_map(move |kh| (0..kernel_w).map(move |kw| p * plane + scratch_offset(stride, rows, width, kh, kw)));
        (0..self.planes).flat_map(taps).collect()
    }

    /// Length of one input plane's scratch (see [`fill_scratch`](Self::fill_scratch)).
    fn scratch_len(&self) -> usize {
        self.stride * self.rows() * self.phase_width()
    }

    /// `output` (`[pictures·channels, out_h, out_w]`) from `input` (`[pictures·channels, in_h,
    /// in_w]`) and `weights` (`[channels, kernel_h, kernel_w]`), plane by plane; on every core
    /// natively.
    fn run(&self, input: &[f32], weights: &[f32], channels: usize, output: &mut [MaybeUninit<f32>]) {
        let (in_plane, out_plane) = (self.input[0] * self.input[1], self.output[0] * self.output[1]);
        let offsets = self.tap_offsets();
        let taps = offsets.len();
        let plane = |index: usize, out: &mut [MaybeUninit<f32>], scratch: &mut Vec<f32>| {
            let c = index % channels;
            if (self.kernel, self.stride) == ([3, 3], 2) {
                return self.plane_3x3_stride_2(&input[index * in_plane..][..in_plane], &weights[c * taps..][..taps], out);
            }
            scratch.resize(self.scratch_len(), 0.0);
            self.fill_scratch(&input[index * in_plane..][..in_plane], scratch);
            self.output_plane(&offsets, &weights[c * taps..][..taps], scratch, out);
        };
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            output.par_chunks_mut(out_plane).enumerate().for_each_init(Vec::new, |scratch, (index, out)| plane(index, out, scratch));
        }
        #[cfg(target_arch = "wasm32")]
        {
            let mut scratch = Vec::new();
            for (index, out) in output.chunks_mut(out_plane).enumerate() {
                plane(index, out, &mut scratch);
            }
        }
    }

    /// `output` (`[pictures·out_channels, out_h, out_w]`) of a full convolution over
    /// [`planes`](Self::planes) input channels, from `input` (`[pictures·planes, in_h, in_w]`)
    /// and `weights` (`[out_channels, planes, kernel_h, kernel_w]`): each picture's planes are
    /// copied into one scratch once, then its output planes are computed from it, on every core
    /// natively.
    fn run_few_inputs(&self, input: &[f32], weights: &[f32], out_channels: usize, output: &mut [MaybeUninit<f32>]) {
        let (in_plane, out_plane, len) = (self.input[0] * self.input[1], self.output[0] * self.output[1], self.scratch_len());
        let offsets = self.tap_offsets();
        let taps = offsets.len();
        // Zeroed once: every picture then writes the same positions, the padding stays zero.
        let mut scratch = vec![0.0; self.planes * len];
        for (picture, out) in output.chunks_mut(out_channels * out_plane).enumerate() {
            let planes = input[picture * self.planes * in_plane..][..self.planes * in_plane].chunks_exact(in_plane);
            for (plane, scratch) in planes.zip(scratch.chunks_exact_mut(len)) {
                self.fill_scratch(plane, scratch);
            }
            // Output channels CHANNEL_BLOCK at a time, those left over one by one.
            let in_blocks = out_channels / CHANNEL_BLOCK * CHANNEL_BLOCK;
            let (blocked, rest) = out.split_at_mut(in_blocks * out_plane);
            let block = |(b, out): (usize, &mut [MaybeUninit<f32>])| {
                let weights = &weights[b * CHANNEL_BLOCK * taps..][..CHANNEL_BLOCK * taps];
                match (self.kernel, self.stride) {
                    ([3, 3], 1) => self.channels_fixed::<3, 3, 1>(weights, &scratch, out),
                    ([3, 3], 2) => self.channels_fixed::<3, 3, 2>(weights, &scratch, out),
                    ([5, 5], 1) => self.channels_fixed::<5, 5, 1>(weights, &scratch, out),
                    ([5, 5], 2) => self.channels_fixed::<5, 5, 2>(weights, &scratch, out),
                    _ => out.chunks_mut(out_plane).zip(weights.chunks(taps)).for_each(|(out, weights)| self.output_plane(&offsets, weights, &scratch, out)),
                }
            };
            let plane = |(o, out): (usize, &mut [MaybeUninit<f32>])| self.output_plane(&offsets, &weights[(in_blocks + o) * taps..][..taps], &scratch, out);
            #[cfg(not(target_arch = "wasm32"))]
            {
                use rayon::prelude::*;
                blocked.par_chunks_mut(CHANNEL_BLOCK * out_plane).enumerate().for_each(block);
                rest.par_chunks_mut(out_plane).enumerate().for_each(plane);
            }
            #[cfg(target_arch = "wasm32")]
            {
                blocked.chunks_mut(CHANNEL_BLOCK * out_plane).enumerate().for_each(block);
                rest.chunks_mut(out_plane).enumerate().for_each(plane);
            }
        }
    }

    /// [`CHANNEL_BLOCK`] output planes of a full convolution over few inputs (`out`:
    /// `[CHANNEL_BLOCK, out_h, out_w]`), from the scratch of all its input planes and their
    /// `weights` (`[CHANNEL_BLOCK, planes, KH, KW]`), for a `KH × KW` kernel at stride `S`: for
    /// every tap, the inputs of [`LANES`] outputs are loaded once and multiplied by each channel's
    /// weight, splatted where it is used (a stem's 4 · 27 weights would not stay in registers).
    #[inline(always)]
    fn channels_fixed<const KH: usize, const KW: usize, const S: usize>(&self, weights: &[f32], scratch: &[f32], out: &mut [MaybeUninit<f32>]) {
        let (rows, width, len) = (self.rows(), self.phase_width(), self.scratch_len());
        let [out_h, out_w] = self.output;
        let (taps, out_plane) = (self.planes * KH * KW, out_h * out_w);
        let weights = &weights[..CHANNEL_BLOCK * taps];
        // Input rows oh·S .. oh·S + KH of every phase feed output row oh.
        let reach = ((S - 1) * rows + KH - 1) * width + (KW - 1) / S + LANES;
        for oh in 0..out_h {
            for ow in (0..out_w).step_by(LANES) {
                let mut acc = [[simd::zero(); 2]; CHANNEL_BLOCK];
                for p in 0..self.planes {
                    // Every load below lies in this window (checked once per plane, here).
                    let window = &scratch[p * len + oh * S * width + ow..][..reach];
                    for kh in 0..KH {
                        for kw in 0..KW {
                            let at = scratch_offset(S, rows, width, kh, kw);
                            // SAFETY: at + LANES <= reach = window.len(), as kh < KH and kw < KW.
                            let (a, b) = unsafe { (simd::load(window.as_ptr().add(at)), simd::load(window.as_ptr().add(at + 4))) };
                            let tap = (p * KH + kh) * KW + kw;
                            for (c, acc) in acc.iter_mut().enumerate() {
                                let w = simd::splat(weights[c * taps + tap]);
                                acc[0] = simd::mul_add(a, w, acc[0]);
                                acc[1] = simd::mul_add(b, w, acc[1]);
                            }
                        }
                    }
                }
                let n = LANES.min(out_w - ow);
                for (c, acc) in acc.iter().enumerate() {
                    store_lanes(&mut out[c * out_plane + oh * out_w + ow..][..n], *acc);
                }
            }
        }
    }

    /// One output plane of a 3×3 depthwise convolution at stride 2, straight from its input
    /// plane (no scratch): for each chunk of [`LANES`] outputs, each of the three input rows
    /// under it is loaded once and its even and odd columns dealt into vectors with shuffles
    /// ([`stride_2_chunk`]). Copying the plane into column phases first, as the other shapes
    /// do, cost as much as the arithmetic here, and read the input (which seldom fits the
    /// cache at 112 px) in a pass of its own. Chunks that reach into the padding are copied
    /// into a small zero-padded window first.
    ///
    /// Kept out of line: inlined into [`run`](Self::run), the stride-1 kernels there ran at two
    /// thirds of their speed in Chromium (3×3 at 56 px: 7.4 against 4.8 ms a batch of 8).
    #[inline(never)]
    fn plane_3x3_stride_2(&self, input: &[f32], weights: &[f32], out: &mut [MaybeUninit<f32>]) {
        let ([in_h, in_w], [out_h, out_w], [pad_top, pad_left]) = (self.input, self.output, self.pad);
        let weights: [[simd::V; 3]; 3] = std::array::from_fn(|kh| std::array::from_fn(|kw| simd::splat(weights[kh * 3 + kw])));
        let mut edge = [0.0; 3 * STRIDE_2_REACH];
        for oh in 0..out_h {
            // The input rows under output row oh, and whether all three lie inside the input.
            let top = (2 * oh).checked_sub(pad_top).filter(|top| top + 3 <= in_h);
            for ow in (0..out_w).step_by(LANES) {
                let left = (2 * ow).checked_sub(pad_left).filter(|left| left + STRIDE_2_REACH <= in_w);
                let sums = match (top, left) {
                    (Some(top), Some(left)) => stride_2_chunk(&input[top * in_w + left..][..2 * in_w + STRIDE_2_REACH], in_w, &weights),
                    _ => {
                        // Padded columns 2·ow .. 2·ow + STRIDE_2_REACH; those of the input are
                        // `first..end` (input column c is padded column c + pad_left).
                        let (first, end) = ((2 * ow).max(pad_left), (2 * ow + STRIDE_2_REACH).min(in_w + pad_left));
                        edge.fill(0.0);
                        for (i, row) in edge.chunks_exact_mut(STRIDE_2_REACH).enumerate() {
                            let r = (2 * oh + i).wrapping_sub(pad_top);
                            if r < in_h && first < end {
                                row[first - 2 * ow..end - 2 * ow].copy_from_slice(&input[r * in_w + first - pad_left..][..end - first]);
                            }
                        }
                        stride_2_chunk(&edge, STRIDE_2_REACH, &weights)
                    }
                };
                store_lanes(&mut out[oh * out_w + ow..][..LANES.min(out_w - ow)], sums);
            }
        }
    }

    /// One output plane from the scratch of its input planes, with its `weights` (in the order
    /// of `offsets`, [`tap_offsets`](Self::tap_offsets)).
    fn output_plane(&self, offsets: &[usize], weights: &[f32], scratch: &[f32], out: &mut [MaybeUninit<f32>]) {
        match (self.kernel, self.stride) {
            ([3, 3], 1) => self.accumulate_fixed::<3, 3, 1>(weights, scratch, out),
            ([3, 3], 2) => self.accumulate_fixed::<3, 3, 2>(weights, scratch, out),
            ([5, 5], 1) => self.accumulate_fixed::<5, 5, 1>(weights, scratch, out),
            ([5, 5], 2) => self.accumulate_fixed::<5, 5, 2>(weights, scratch, out),
            _ => self.accumulate(offsets, weights, scratch, out),
        }
    }

    /// `scratch` ([`scratch_len`](Self::scratch_len) values, zero where nothing is written):
    /// one input plane, zero-padded, its padded columns dealt into `stride` phases (column `c`
    /// goes to phase `c % stride`, index `c / stride`). Every plane of a convolution writes the
    /// same positions, so a scratch zeroed once keeps its padding zero for all of them.
    fn fill_scratch(&self, input: &[f32], scratch: &mut [f32]) {
        let (rows, width, stride) = (self.rows(), self.phase_width(), self.stride);
        let [pad_top, pad_left] = self.pad;
        for (i, row) in input.chunks_exact(self.input[1]).enumerate() {
            let r = i + pad_top;
            if r >= rows {
                break;
            }
            if stride == 2 {
                // Pairs of input columns: the first of each pair goes to one phase, the second to
                // the other, at the same index (a padded column c is at c / 2 of phase c % 2).
                let (even, odd) = scratch.split_at_mut(rows * width);
                let (even, odd) = (&mut even[r * width..][..width], &mut odd[r * width..][..width]);
                let (first, second) = if pad_left % 2 == 0 { (even, odd) } else { (odd, even) };
                let (first, second) = (&mut first[(pad_left / 2).min(width)..], &mut second[(pad_left.div_ceil(2)).min(width)..]);
                let pairs = row.chunks_exact(2);
                if let ([last], Some(slot)) = (pairs.remainder(), first.get_mut(row.len() / 2)) {
                    *slot = *last;
                }
                // `first` may have room for one more pair's first column than `second` for its second.
                let n = first.len().min(second.len());
                if let (Some(pair), Some(slot)) = (pairs.clone().nth(n), first.get_mut(n)) {
                    *slot = pair[0];
                }
                for ((a, b), pair) in first[..n].iter_mut().zip(&mut second[..n]).zip(pairs) {
                    (*a, *b) = (pair[0], pair[1]);
                }
                continue;
            }
            for phase in 0..stride {
                // The first input column whose padded column falls in this phase.
                let first = (phase + stride - pad_left % stride) % stride;
                let start = (first + pad_left) / stride;
                if first >= row.len() || start >= width {
                    continue;
                }
                let dst = &mut scratch[(phase * rows + r) * width..][start..width];
                if stride == 1 {
                    let n = dst.len().min(row.len());
                    dst[..n].copy_from_slice(&row[..n]);
                } else {
                    for (d, &value) in dst.iter_mut().zip(row[first..].iter().step_by(stride)) {
                        *d = value;
                    }
                }
            }
        }
    }

    /// The outputs of one plane from its scratch, [`LANES`] columns of [`ROWS`] rows at a
    /// time (the last rows one at a time): summed over every tap in `2·ROWS` vector registers,
    /// enough independent sums to hide the latency of each add, and stored once. For any kernel;
    /// [`accumulate_fixed`](Self::accumulate_fixed) does the backbones' own.
    fn accumulate(&self, offsets: &[usize], weights: &[f32], scratch: &[f32], out: &mut [MaybeUninit<f32>]) {
        let furthest = offsets.iter().max().copied().unwrap_or(0);
        self.row_blocks::<ROWS>(
            out,
            |oh, out| self.accumulate_rows::<ROWS>(oh, offsets, furthest, weights, scratch, out),
            |oh, out| self.accumulate_rows::<1>(oh, offsets, furthest, weights, scratch, out),
        );
    }

    /// Runs `block` on the plane's output rows `R` at a time from row 0, then `single` on
    /// each row left over; both are given the first row and the plane's outputs.
    #[inline(always)]
    fn row_blocks<const R: usize>(&self, out: &mut [MaybeUninit<f32>], block: impl Fn(usize, &mut [MaybeUninit<f32>]), single: impl Fn(usize, &mut [MaybeUninit<f32>])) {
        let out_h = self.output[0];
        let whole = out_h - out_h % R;
        for oh in (0..whole).step_by(R) {
            block(oh, out);
        }
        for oh in whole..out_h {
            single(oh, out);
        }
    }

    /// Output rows `oh..oh + R` of one plane; `furthest` is the largest of `offsets`.
    #[inline(always)]
    fn accumulate_rows<const R: usize>(&self, oh: usize, offsets: &[usize], furthest: usize, weights: &[f32], scratch: &[f32], out: &mut [MaybeUninit<f32>]) {
        let (row_step, out_w) = (self.stride * self.phase_width(), self.output[1]);
        let reach = (R - 1) * row_step + furthest + LANES;
        for ow in (0..out_w).step_by(LANES) {
            // Every tap's inputs for these outputs lie in this window (checked once, here).
            let window = &scratch[oh * row_step + ow..][..reach];
            let mut acc = [[simd::zero(); 2]; R];
            for (&offset, &w) in offsets.iter().zip(weights) {
                let w = simd::splat(w);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let at = r * row_step + offset;
                    // SAFETY: at + LANES <= (R - 1) · row_step + max(offsets) + LANES = window.len().
                    let (a, b) = unsafe { (simd::load(window.as_ptr().add(at)), simd::load(window.as_ptr().add(at + 4))) };
                    acc[0] = simd::mul_add(a, w, acc[0]);
                    acc[1] = simd::mul_add(b, w, acc[1]);
                }
            }
            let n = LANES.min(out_w - ow);
            for (r, acc) in acc.iter().enumerate() {
                store_lanes(&mut out[(oh + r) * out_w + ow..][..n], *acc);
            }
        }
    }

    /// [`accumulate`](Self::accumulate) for a `KH × KW` kernel at stride `S`, known at compile
    /// time: every loop unrolls, and each input vector is loaded once for all the output rows
    /// it feeds (a 3×3 kernel at stride 1 loads 4 rows for [`FIXED_ROWS`] = 2 output rows
    /// instead of 6).
    #[inline(always)]
    fn accumulate_fixed<const KH: usize, const KW: usize, const S: usize>(&self, weights: &[f32], scratch: &[f32], out: &mut [MaybeUninit<f32>]) {
        let weights: [[[simd::V; KW]; KH]; MAX_PLANES] = std::array::from_fn(|p| {
            std::array::from_fn(|kh| std::array::from_fn(|kw| simd::splat(weights.get((p * KH + kh) * KW + kw).copied().unwrap_or(0.0))))
        });
        let weights = &weights[..self.planes];
        self.row_blocks::<FIXED_ROWS>(
            out,
            |oh, out| self.rows_fixed::<KH, KW, S, FIXED_ROWS>(oh, weights, scratch, out),
            |oh, out| self.rows_fixed::<KH, KW, S, 1>(oh, weights, scratch, out),
        );
    }

    /// Output rows `oh..oh + R` of one plane, for [`accumulate_fixed`](Self::accumulate_fixed);
    /// `weights` holds one kernel per input plane.
    #[inline(always)]
    fn rows_fixed<const KH: usize, const KW: usize, const S: usize, const R: usize>(&self, oh: usize, weights: &[[[simd::V; KW]; KH]], scratch: &[f32], out: &mut [MaybeUninit<f32>]) {
        let (rows, width, out_w, len) = (self.rows(), self.phase_width(), self.output[1], self.scratch_len());
        // Input rows oh·S .. oh·S + (R - 1)·S + KH of every phase feed these outputs.
        let span = (R - 1) * S + KH;
        let reach = ((S - 1) * rows + span - 1) * width + (KW - 1) / S + LANES;
        for ow in (0..out_w).step_by(LANES) {
            let mut acc = [[simd::zero(); 2]; R];
            for (p, weights) in weights.iter().enumerate() {
                // Every load below lies in this window (checked once per plane, here).
                let window = &scratch[p * len + oh * S * width + ow..][..reach];
                for i in 0..span {
                    for kw in 0..KW {
                        let at = scratch_offset(S, rows, width, i, kw);
                        // SAFETY: at + LANES <= reach = window.len(), as i < span and kw < KW.
                        let (a, b) = unsafe { (simd::load(window.as_ptr().add(at)), simd::load(window.as_ptr().add(at + 4))) };
                        for (r, acc) in acc.iter_mut().enumerate() {
                            // Output row r reads input row i with kernel row i - r·S.
                            let kh = i.wrapping_sub(r * S);
                            if kh < KH {
                                acc[0] = simd::mul_add(a, weights[kh][kw], acc[0]);
                                acc[1] = simd::mul_add(b, weights[kh][kw], acc[1]);
                            }
                        }
                    }
                }
            }
            let n = LANES.min(out_w - ow);
            for (r, acc) in acc.iter().enumerate() {
                store_lanes(&mut out[(oh + r) * out_w + ow..][..n], *acc);
            }
        }
    }
}

/// [`LANES`] outputs of a 3×3 convolution at stride 2 from the three input rows under them, in
/// `window` `row_step` apart, each from the column under the first output's first tap
/// ([`STRIDE_2_REACH`] values a row). Output `j` reads columns `2j`, `2j + 1` and `2j + 2`: the
/// even columns of a row's first 16 values, its odd ones, and the even ones shifted in by one
/// (with the 17th value) feed the three kernel columns.
#[inline(always)]
fn stride_2_chunk(window: &[f32], row_step: usize, weights: &[[simd::V; 3]; 3]) -> [simd::V; 2] {
    let mut acc = [simd::zero(); 2];
    for (kh, weights) in weights.iter().enumerate() {
        let row = &window[kh * row_step..][..STRIDE_2_REACH];
        // SAFETY: the four loads read row[0..16], inside its STRIDE_2_REACH = 17 values.
        let [v0, v1, v2, v3] = std::array::from_fn(|i| unsafe { simd::load(row.as_ptr().add(4 * i)) });
        let (even, odd) = ([simd::evens(v0, v1), simd::evens(v2, v3)], [simd::odds(v0, v1), simd::odds(v2, v3)]);
        let next = [simd::shift_in(even[0], even[1]), simd::shift_in(even[1], simd::splat(row[2 * LANES]))];
        for (inputs, &w) in [even, odd, next].iter().zip(weights) {
            acc[0] = simd::mul_add(inputs[0], w, acc[0]);
            acc[1] = simd::mul_add(inputs[1], w, acc[1]);
        }
    }
    acc
}

/// Where input row `row` of a plane's scratch holds the input under kernel column `kw` of its
/// first output column (stride `stride`, `rows` rows and `width` columns a phase): phase
/// `kw % stride`, `kw / stride` columns in.
#[inline(always)]
fn scratch_offset(stride: usize, rows: usize, width: usize, row: usize, kw: usize) -> usize {
    ((kw % stride) * rows + row) * width + kw / stride
}

#[cfg(test)]
mod tests {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution, Tolerance};

    use super::*;

    /// Every depthwise shape the backbones use, and odd ones (even kernels, stride 3, maps
    /// narrower than the kernel, widths around a multiple of 8), against burn's convolution.
    #[test]
    fn matches_burns_convolution() {
        let device = Device::flex();
        let cases = [
            // kernel, stride, padding, channels, height, width
            (3, 1, PaddingConfig2d::Explicit(1, 1, 1, 1), 4, 14, 14),
            (3, 2, PaddingConfig2d::Explicit(1, 1, 1, 1), 3, 15, 17),
            (3, 2, PaddingConfig2d::Same, 5, 112, 112),
            (5, 1, PaddingConfig2d::Same, 6, 7, 7),
            (5, 2, PaddingConfig2d::Same, 2, 28, 28),
            (3, 1, PaddingConfig2d::Same, 2, 8, 9),
            (3, 1, PaddingConfig2d::Valid, 2, 5, 16),
            (4, 3, PaddingConfig2d::Explicit(0, 2, 1, 3), 3, 11, 10),
            (7, 1, PaddingConfig2d::Same, 2, 3, 4),
            (2, 2, PaddingConfig2d::Valid, 3, 2, 2),
            (3, 2, PaddingConfig2d::Explicit(1, 1, 1, 1), 2, 16, 16),
            (4, 2, PaddingConfig2d::Explicit(0, 1, 1, 0), 2, 9, 16),
            (4, 2, PaddingConfig2d::Explicit(1, 3, 0, 2), 2, 9, 15),
            // 3×3 at stride 2 reads its rows directly: chunks inside the input and at its edges,
            // either padding parity, no padding, more padding than the kernel's reach.
            (3, 2, PaddingConfig2d::Same, 2, 57, 58),
            (3, 2, PaddingConfig2d::Valid, 2, 37, 50),
            (3, 2, PaddingConfig2d::Explicit(2, 0, 0, 2), 2, 40, 41),
            (3, 2, PaddingConfig2d::Explicit(0, 3, 3, 1), 2, 19, 35),
            (3, 2, PaddingConfig2d::Explicit(1, 1, 1, 1), 2, 1, 1),
        ];
        for (kernel, stride, padding, channels, height, width) in cases {
            let conv = Conv2dConfig::new([channels, channels], [kernel, kernel])
                .with_stride([stride, stride])
                .with_groups(channels)
                .with_padding(padding.clone())
                .with_bias(false)
                .init(&device);
            let input = Tensor::<4>::random([2, channels, height, width], Distribution::Normal(0.0, 1.0), &device);
            let expected = conv.forward(input.clone());
            let actual = try_forward(&conv, input).unwrap_or_else(|_| panic!("kernel {kernel}, stride {stride}: not taken"));
            assert_eq!(actual.dims(), expected.dims(), "kernel {kernel}, stride {stride}, {padding:?}, {height}×{width}");
            actual.into_data().assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
        }
    }

    /// Full convolutions over 1 to [`MAX_PLANES`] input channels with 3×3 and 5×5 kernels at
    /// stride 1 and 2 (the MobileNet family's stem: 3×3 stride 2 with TensorFlow's padding; and
    /// odd ones), against burn's convolution, at batch 1 and 3; other kernels (ResNet's 7×7
    /// stem) and more channels stay burn's.
    #[test]
    fn few_input_channels_match_burns_convolution() {
        let device = Device::flex();
        let cases = [
            // kernel, stride, padding, channels in → out, height, width
            (3, 2, PaddingConfig2d::Same, [3, 32], 33, 31),
            (3, 1, PaddingConfig2d::Explicit(1, 1, 1, 1), [1, 5], 9, 17),
            (5, 1, PaddingConfig2d::Valid, [4, 3], 12, 8),
            (5, 2, PaddingConfig2d::Same, [2, 4], 16, 16),
            (3, 2, PaddingConfig2d::Explicit(0, 2, 1, 0), [2, 6], 11, 10),
            // Channel blocks and channels left over (9 = 2 · 4 + 1), wide enough for several chunks.
            (3, 2, PaddingConfig2d::Same, [3, 9], 20, 45),
            (5, 1, PaddingConfig2d::Same, [2, 6], 9, 21),
        ];
        for batch in [1, 3] {
            for (kernel, stride, padding, channels, height, width) in cases.clone() {
                let conv = Conv2dConfig::new(channels, [kernel, kernel]).with_stride([stride, stride]).with_padding(padding.clone()).with_bias(false).init(&device);
                let input = Tensor::<4>::random([batch, channels[0], height, width], Distribution::Normal(0.0, 1.0), &device);
                let expected = conv.forward(input.clone());
                let actual = try_forward(&conv, input).unwrap_or_else(|_| panic!("kernel {kernel}, stride {stride}, {channels:?}: not taken"));
                assert_eq!(actual.dims(), expected.dims(), "kernel {kernel}, stride {stride}, {padding:?}, {channels:?}");
                actual.into_data().assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-4));
            }
        }
        let wide = Conv2dConfig::new([MAX_PLANES + 1, 4], [3, 3]).with_bias(false).init(&device);
        assert!(try_forward(&wide, Tensor::<4>::random([1, MAX_PLANES + 1, 8, 8], Distribution::Default, &device)).is_err(), "more input channels: burn's");
        let resnet_stem = Conv2dConfig::new([3, 8], [7, 7]).with_stride([2, 2]).with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3)).with_bias(false).init(&device);
        assert!(try_forward(&resnet_stem, Tensor::<4>::random([1, 3, 20, 21], Distribution::Default, &device)).is_err(), "a 7×7 stem: burn's");
    }

    /// What the kernel does not cover goes back to burn untouched: a grouped convolution with
    /// several channels per group, a bias, dilation. (Autodiff-tracked inputs: [`trainable`].)
    #[test]
    fn leaves_other_convolutions_to_burn() {
        let device = Device::flex();
        let input = Tensor::<4>::random([1, 4, 8, 8], Distribution::Default, &device);
        let depthwise = || Conv2dConfig::new([4, 4], [3, 3]).with_groups(4).with_bias(false);
        let refused = [
            Conv2dConfig::new([4, 4], [3, 3]).with_groups(2).with_bias(false).init(&device),
            depthwise().with_bias(true).init(&device),
            depthwise().with_dilation([2, 2]).init(&device),
        ];
        for conv in &refused {
            assert!(try_forward(conv, input.clone()).is_err());
        }
        assert!(try_forward(&depthwise().init(&device), Tensor::<4>::random([1, 4, 8, 8], Distribution::Default, &device)).is_ok());
    }
}
