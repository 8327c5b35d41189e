//! How close the CPU backend's convolutions come to the machine's 128-bit SIMD peak: the peak
//! itself from a register-only micro-benchmark, and the throughput of the default backbone's main
//! convolution shapes. Shared by the native benchmark (`examples/kernel_benchmark.rs`) and the
//! bench page (`bench/side-by-side.mjs`), so that both report the same measurement. Measurement
//! only: nothing here is used by training.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::{Device, Distribution, Tensor};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{OWN_POINTWISE, POINTWISE_MAX_INPUTS, conv2d};

/// One convolution of EfficientNet-Lite0 at 224 px (no bias, no BatchNorm: the kernel alone).
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    pub name: &'static str,
    /// `[channels, height, width]` of one picture's input.
    pub input: [usize; 3],
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    /// 1 for a full convolution; the channel count for a depthwise one.
    pub groups: usize,
}

impl ConvShape {
    const fn new(name: &'static str, input: [usize; 3], out_channels: usize, kernel: usize, stride: usize, groups: usize) -> Self {
        Self { name, input, out_channels, kernel, stride, groups }
    }

    /// `[height, width]` of the output (padding `(kernel - 1) / 2` on every side).
    pub fn output(&self) -> [usize; 2] {
        let pad = (self.kernel - 1) / 2;
        let side = |n: usize| (n + 2 * pad - self.kernel) / self.stride + 1;
        [side(self.input[1]), side(self.input[2])]
    }

    /// The kernels worth timing for this shape: burn's too where the backbones run another
    /// (the depthwise convolutions, the stem, and in wasm the pointwise ones over at most
    /// [`POINTWISE_MAX_INPUTS`] input channels).
    pub fn kernels(&self) -> &'static [ConvKernel] {
        let own_pointwise = OWN_POINTWISE && self.input[0] <= POINTWISE_MAX_INPUTS;
        if self.kernel > 1 || own_pointwise { &[ConvKernel::Backbone, ConvKernel::Burn] } else { &[ConvKernel::Backbone] }
    }

    /// Multiply-adds for one picture.
    pub fn macs(&self) -> usize {
        let [h, w] = self.output();
        h * w * self.out_channels * (self.input[0] / self.groups) * self.kernel * self.kernel
    }
}

/// The convolutions that carry most of EfficientNet-Lite0's work, one or two per stage: its
/// pointwise (1×1) expansions and projections, its 3×3 and 5×5 depthwise convolutions, the stem
/// and the final 1×1 convolution.
pub const LITE0_SHAPES: &[ConvShape] = &[
    ConvShape::new("stem 3×3 s2, 3→32 @224", [3, 224, 224], 32, 3, 2, 1),
    ConvShape::new("expand 1×1, 16→96 @112", [16, 112, 112], 96, 1, 1, 1),
    ConvShape::new("depthwise 3×3 s2, 96 @112", [96, 112, 112], 96, 3, 2, 96),
    ConvShape::new("expand 1×1, 24→144 @56", [24, 56, 56], 144, 1, 1, 1),
    ConvShape::new("depthwise 3×3, 144 @56", [144, 56, 56], 144, 3, 1, 144),
    ConvShape::new("project 1×1, 144→24 @56", [144, 56, 56], 24, 1, 1, 1),
    ConvShape::new("depthwise 5×5, 240 @28", [240, 28, 28], 240, 5, 1, 240),
    ConvShape::new("project 1×1, 240→40 @28", [240, 28, 28], 40, 1, 1, 1),
    ConvShape::new("expand 1×1, 80→480 @14", [80, 14, 14], 480, 1, 1, 1),
    ConvShape::new("depthwise 5×5, 672 @14", [672, 14, 14], 672, 5, 1, 672),
    ConvShape::new("project 1×1, 1152→192 @7", [1152, 7, 7], 192, 1, 1, 1),
    ConvShape::new("head 1×1, 320→1280 @7", [320, 7, 7], 1280, 1, 1, 1),
];

/// One shape's measured throughput.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConvTiming {
    pub name: &'static str,
    pub kernel: ConvKernel,
    pub batch: usize,
    /// Median milliseconds of one forward of the batch.
    pub median_ms: f64,
    /// Billions of floating-point operations (2 per multiply-add) per second.
    pub gflops: f64,
}

/// Whose convolution [`time_conv`] times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ConvKernel {
    /// As the backbones run it ([`crate::model::conv2d`]: our direct kernel for depthwise convolutions and stems on the CPU backend).
    Backbone,
    /// burn's `Conv2d::forward`, for comparison.
    Burn,
}

/// Median milliseconds of `steps` forwards (after a warm-up) of `shape` on a random batch, each
/// synchronised by reading back one output value.
pub async fn time_conv(shape: &ConvShape, kernel: ConvKernel, batch: usize, steps: usize, device: &Device, now_ms: &dyn Fn() -> f64) -> Result<ConvTiming> {
    let [channels, height, width] = shape.input;
    let pad = (shape.kernel - 1) / 2;
    let conv = Conv2dConfig::new([channels, shape.out_channels], [shape.kernel, shape.kernel])
        .with_stride([shape.stride, shape.stride])
        .with_groups(shape.groups)
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device);
    let input = Tensor::<4>::random([batch, channels, height, width], Distribution::Normal(0.0, 1.0), device);
    let mut times = Vec::new();
    for step in 0..=steps.max(1) {
        let start = now_ms();
        let output = match kernel {
            ConvKernel::Backbone => conv2d(&conv, input.clone()),
            ConvKernel::Burn => conv.forward(input.clone()),
        };
        output.slice([0..1, 0..1, 0..1, 0..1]).into_data_async().await.map_err(|e| Error::read_back("reading tensor data", e))?;
        if step > 0 {
            times.push(now_ms() - start);
        }
    }
    times.sort_by(f64::total_cmp);
    let median_ms = times[times.len() / 2];
    Ok(ConvTiming { name: shape.name, kernel, batch, median_ms, gflops: 2.0 * shape.macs() as f64 * batch as f64 / (median_ms * 1e6) })
}

/// Independent accumulators in [`simd_peak_gflops`]: enough to hide the latency of a multiply
/// followed by an add on current cores (two vector ports, 3–4 cycles each).
const CHAINS: usize = 12;

/// Where each register starts, hidden from the compiler: from a known constant it would work
/// the loop out at compile time (1.0 is even a fixed point of `x · 0.9999 + 0.0001`).
const START: f32 = 1.5;

/// The machine's peak of 128-bit SIMD float arithmetic as this build can use it: billions of
/// operations per second of `x = x · m + a` on [`CHAINS`] independent 4-lane registers (one
/// multiply and one add, i.e. 8 operations, per register and iteration), nothing touching memory.
/// In wasm this is simd128's `f32x4.mul` and `f32x4.add` (no fused multiply-add without
/// relaxed SIMD), the best any wasm kernel can do on one thread; natively, SSE's 128-bit
/// `mulps`/`addps` (x86-64's baseline), the same width, for comparison.
///
/// The loop runs in calls of [`CHUNK`] iterations after a few untimed ones: a browser's wasm
/// engine may first run a function as its baseline compiler made it and use optimised code only
/// for later calls, as it does for the backend's kernels, which are called over and over.
pub fn simd_peak_gflops(iterations: usize, now_ms: &dyn Fn() -> f64) -> f64 {
    let chunks = iterations.div_ceil(CHUNK);
    for _ in 0..chunks.min(20) {
        std::hint::black_box(multiply_add_chains(std::hint::black_box(CHUNK)));
    }
    let start = now_ms();
    for _ in 0..chunks {
        // Each result passes through `black_box` before the clock is read again, so no loop
        // can be moved past it.
        std::hint::black_box(multiply_add_chains(std::hint::black_box(CHUNK)));
    }
    let ms = now_ms() - start;
    // In f64: the count passes 2³² (usize on wasm32) beyond 4.5 million iterations.
    (chunks * CHUNK) as f64 * (CHAINS * 8) as f64 / (ms * 1e6)
}

/// Iterations per call in [`simd_peak_gflops`].
const CHUNK: usize = 100_000;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(never)]
fn multiply_add_chains(iterations: usize) -> f32 {
    use core::arch::wasm32::{f32x4_add, f32x4_extract_lane, f32x4_mul, f32x4_splat};
    let (m, a) = (f32x4_splat(0.999_9), f32x4_splat(1e-4));
    let mut x = [f32x4_splat(std::hint::black_box(START)); CHAINS];
    for _ in 0..iterations {
        for v in &mut x {
            *v = f32x4_add(f32x4_mul(*v, m), a);
        }
    }
    x.iter().map(|v| f32x4_extract_lane::<0>(*v)).sum()
}

#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn multiply_add_chains(iterations: usize) -> f32 {
    use std::arch::x86_64::{_mm_add_ps, _mm_cvtss_f32, _mm_mul_ps, _mm_set1_ps};
    // SAFETY: SSE is part of the x86-64 baseline, so these intrinsics exist on every x86-64 CPU.
    unsafe {
        let (m, a) = (_mm_set1_ps(0.999_9), _mm_set1_ps(1e-4));
        let mut x = [_mm_set1_ps(std::hint::black_box(START)); CHAINS];
        for _ in 0..iterations {
            for v in &mut x {
                *v = _mm_add_ps(_mm_mul_ps(*v, m), a);
            }
        }
        x.iter().map(|v| _mm_cvtss_f32(*v)).sum()
    }
}

/// Elsewhere: 4-lane arrays, which the compiler maps to the target's vectors where it can.
#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
#[inline(never)]
fn multiply_add_chains(iterations: usize) -> f32 {
    let mut x = [[std::hint::black_box(START); 4]; CHAINS];
    for _ in 0..iterations {
        for v in &mut x {
            for lane in v.iter_mut() {
                *lane = *lane * 0.999_9 + 1e-4;
            }
        }
    }
    x.iter().map(|v| v[0]).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_count_their_multiply_adds() {
        let stem = &LITE0_SHAPES[0];
        assert_eq!(stem.output(), [112, 112]);
        assert_eq!(stem.macs(), 112 * 112 * 32 * 3 * 9);
        let depthwise = LITE0_SHAPES.iter().find(|s| s.name.starts_with("depthwise 5×5, 240")).unwrap();
        assert_eq!(depthwise.output(), [28, 28]);
        assert_eq!(depthwise.macs(), 28 * 28 * 240 * 25, "one input channel per group");
    }

    #[test]
    fn every_shape_gives_the_output_its_count_assumes() {
        let clock = std::time::Instant::now();
        let now = || clock.elapsed().as_secs_f64() * 1e3;
        let device = Device::flex();
        for shape in LITE0_SHAPES {
            let pad = (shape.kernel - 1) / 2;
            let conv = Conv2dConfig::new([shape.input[0], shape.out_channels], [shape.kernel, shape.kernel])
                .with_stride([shape.stride, shape.stride])
                .with_groups(shape.groups)
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .init(&device);
            let [c, h, w] = shape.input;
            let [oh, ow] = shape.output();
            assert_eq!(conv.forward(Tensor::<4>::zeros([1, c, h, w], &device)).dims(), [1, shape.out_channels, oh, ow], "{}", shape.name);
        }
        let timing = pollster::block_on(time_conv(&LITE0_SHAPES[11], ConvKernel::Backbone, 2, 1, &device, &now)).unwrap();
        assert!(timing.median_ms > 0.0 && timing.gflops > 0.0 && timing.gflops.is_finite(), "{timing:?}");
    }
}
