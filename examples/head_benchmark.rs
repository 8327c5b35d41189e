//! Head-only training speed on the native CPU backend: feature extraction per image and time
//! per epoch, on generated 224 px images. A benchmark, not a test: it asserts nothing.
//!
//! `cargo run --example head_benchmark -- [IMAGES] [EPOCHS]` (defaults 100 and 20); needs the
//! downloaded weights (`scripts/setup` steps in scripts/common.sh).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use burn::tensor::Device;
use webtune::train::HeadOptions;
use webtune::{Event, Phase, Recipe, Session};

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("numbers: IMAGES EPOCHS"));
    let images = args.next().unwrap_or(100);
    let epochs = args.next().unwrap_or(20);
    let weights = std::fs::read(common::legacy_weights()).unwrap();
    let mut session = Session::new(webtune::model::BackboneKind::EfficientNetLite0, &weights, Device::flex()).unwrap();
    let files: Vec<_> = common::generated_dataset(images.div_ceil(common::CLASSES.len()), 1).into_iter().take(images).collect();
    let start = Instant::now();
    for (label, name, bytes) in files {
        session.add_image(&label, &name, &bytes).unwrap();
    }
    let decode = start.elapsed();
    session.start(Recipe { head: HeadOptions { epochs, ..Default::default() }, unfreeze: Some(0), ..Default::default() }).unwrap();
    let start = Instant::now();
    let (mut extract, mut head_start, mut train, mut last, mut head_epochs) = (start.elapsed(), None, start.elapsed(), None, 0);
    loop {
        match pollster::block_on(session.step(8)).unwrap() {
            Event::Features { .. } => extract = start.elapsed(),
            Event::Split { .. } => head_start = Some(Instant::now()),
            Event::Epoch { phase: Phase::Head, report } => {
                train = head_start.expect("split first").elapsed();
                head_epochs += 1;
                last = Some(report);
            }
            Event::Finished { .. } => break,
            _ => {}
        }
    }
    let last = last.unwrap();
    println!("images: {images} (decode + crop {:.1} ms/image)", decode.as_secs_f64() * 1e3 / images as f64);
    println!("feature extraction: {:.2} s ({:.1} ms/image, batches of 8)", extract.as_secs_f64(), extract.as_secs_f64() * 1e3 / images as f64);
    println!("head training: {head_epochs} epochs in {:.3} s ({:.1} ms/epoch)", train.as_secs_f64(), train.as_secs_f64() * 1e3 / head_epochs as f64);
    println!("final: train acc {:.3}, val acc {:?}", last.train_accuracy, last.val_accuracy);
}
