//! Phase-2 step throughput on the native CPU backend at 224 px: cached prefix against the plain
//! full forward, for 2 and 4 unfrozen units. A benchmark: it prints numbers, asserts nothing.
//!
//! `cargo run --example fine_tune_benchmark -- [BATCH] [STEPS]` (defaults 16 and 5); needs the
//! downloaded weights (see scripts/common.sh).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use burn::tensor::Device;
use webtune::model::{Backbone, BackboneKind, Classifier, HeadConfig};
use webtune::train::{UnfreezePlan, time_fine_tune_steps};
use webtune::weights::read_weights_file;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("numbers: BATCH STEPS"));
    let batch = args.next().unwrap_or(16);
    let steps = args.next().unwrap_or(5);
    let device = Device::flex();
    let tensors = read_weights_file(&std::fs::read(common::legacy_weights()).unwrap()).unwrap();
    let kind = BackboneKind::EfficientNetLite0;
    let backbone = Backbone::import(kind, &tensors, &device).unwrap();
    let classifier = Classifier { backbone, head: HeadConfig::new(kind.features(), 2).init_seeded(&device, 1) };
    let clock = Instant::now();
    let now_ms = || clock.elapsed().as_secs_f64() * 1e3;
    for unfreeze in [2, 4] {
        for cached in [true, false] {
            let plan = UnfreezePlan::new(kind, unfreeze).unwrap();
            let t = pollster::block_on(time_fine_tune_steps(&classifier, plan, cached, batch, 224, steps, &device, &now_ms)).unwrap();
            println!(
                "native cpu | unfreeze {unfreeze} | {:<8} | batch {batch} | {:.0} ms/step | {:.1} images/s",
                if cached { "cached" } else { "uncached" },
                t.median_ms,
                t.images_per_second
            );
        }
    }
}
