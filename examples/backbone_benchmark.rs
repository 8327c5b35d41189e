//! Per-backbone numbers on the native CPU backend: parameter count, import time of a weights
//! file, and forward time at 224 px. A benchmark, not a test: it asserts nothing.
//!
//! `cargo run --example backbone_benchmark -- [--batch N] [--steps N] [--write-weights DIR]`
//!
//! EfficientNet-Lite0 uses the downloaded pretrained file when it is there; the others (and
//! Lite0 otherwise) get randomly initialised weights with their original PyTorch names, which
//! cost the same to import and run. `--write-weights DIR` saves each file as
//! `DIR/<backbone>.safetensors` for the browser benchmark (`bench/browser-backbones.mjs`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use webtune::model::{Backbone, BackboneKind};
use webtune::train::time_forward;
use webtune::weights::{read_weights_file, write_safetensors};

fn main() {
    let mut batch = 1;
    let mut steps = 5;
    let mut write_dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--batch" => batch = value().parse().expect("--batch N"),
            "--steps" => steps = value().parse().expect("--steps N"),
            "--write-weights" => write_dir = Some(value().into()),
            other => panic!("unknown argument {other}"),
        }
    }
    let device = Device::flex();
    let clock = Instant::now();
    let now_ms = || clock.elapsed().as_secs_f64() * 1e3;
    println!("| backbone | weights | file MB | parameters | import ms | forward ms (batch {batch}, 224 px, median of {steps}) |");
    println!("|---|---|---|---|---|---|");
    for kind in BackboneKind::ALL {
        let pretrained = (kind == BackboneKind::EfficientNetLite0).then(common::legacy_weights).filter(|p| p.exists());
        let (bytes, source) = match &pretrained {
            Some(path) => (std::fs::read(path).unwrap(), "pretrained .pth"),
            None => {
                let tensors = pollster::block_on(Backbone::init(kind, &device).to_tensors()).unwrap();
                (write_safetensors(&tensors, Default::default()).unwrap(), "random .safetensors")
            }
        };
        if let Some(dir) = &write_dir {
            std::fs::create_dir_all(dir).unwrap();
            let tensors = read_weights_file(&bytes).unwrap();
            std::fs::write(dir.join(format!("{kind}.safetensors")), write_safetensors(&tensors, Default::default()).unwrap()).unwrap();
        }
        let start = now_ms();
        let backbone = Backbone::import(kind, &read_weights_file(&bytes).unwrap(), &device).unwrap();
        let import_ms = now_ms() - start;
        let forward = pollster::block_on(time_forward(&backbone, batch, 224, steps, &now_ms)).unwrap();
        println!(
            "| {kind} | {source} | {:.1} | {} | {import_ms:.0} | {:.0} |",
            bytes.len() as f64 / 1e6,
            backbone.num_params(),
            forward
        );
    }
}
