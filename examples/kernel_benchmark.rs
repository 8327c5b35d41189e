//! The CPU backend's convolutions against the machine's SIMD peak, natively: the 128-bit peak
//! (`simd_peak_gflops`), then each of EfficientNet-Lite0's main convolution shapes
//! (`LITE0_SHAPES`) with its throughput and share of that peak; the depthwise ones and the stem
//! with webtune's kernels (what the backbones run) and burn-flex's (natively the pointwise ones
//! are burn-flex's; in wasm those over few inputs are ours too). The browser's figures, against the wasm simd128 peak, come from
//! `bench/side-by-side.mjs`. A benchmark: it asserts nothing.
//!
//! `cargo run --example kernel_benchmark -- [--batch 8] [--steps 5]`
//! (`RAYON_NUM_THREADS=1` for one core: the peak is one core's.)

use std::time::Instant;

use burn::tensor::Device;
use clap::Parser;
use webtune::train::{ConvKernel, LITE0_SHAPES, simd_peak_gflops, time_conv};

#[derive(Parser)]
struct Args {
    /// Pictures per forward.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Timed forwards per shape (the median is printed), after one warm-up.
    #[arg(long, default_value_t = 5)]
    steps: usize,
}

fn main() {
    let Args { batch, steps } = Args::parse();
    let clock = Instant::now();
    let now_ms = || clock.elapsed().as_secs_f64() * 1e3;
    let peak = (0..3).map(|_| simd_peak_gflops(50_000_000, &now_ms)).fold(0.0, f64::max);
    println!("128-bit SIMD peak, one core (mul + add on 12 independent registers, best of 3): {peak:.1} GFLOP/s");
    println!();
    println!("| shape | kernel | batch | median ms | GFLOP/s | share of one core's peak |");
    println!("|---|---|---|---|---|---|");
    let device = Device::flex();
    for shape in LITE0_SHAPES {
        for &kernel in shape.kernels() {
            let timing = pollster::block_on(time_conv(shape, kernel, batch, steps, &device, &now_ms)).expect("timing");
            let kernel = match kernel {
                ConvKernel::Backbone => "webtune",
                ConvKernel::Burn => "burn-flex",
            };
            println!("| {} | {kernel} | {batch} | {:.2} | {:.1} | {:.0} % |", shape.name, timing.median_ms, timing.gflops, 100.0 * timing.gflops / peak);
        }
    }
}
