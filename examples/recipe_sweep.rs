//! Whole recipes compared on one folder, with the features extracted once: one [`Session`] holds
//! the pictures and their backbone features, and runs each recipe in turn (phase 1, then phase 2
//! when the recipe or the recommendation asks for it), exactly as `webtune train` and the page do.
//! For tuning phase 2's defaults: each phase-2 epoch's validation accuracy and time go to standard
//! error, one JSON line per recipe to standard output. A benchmark: it prints, asserts nothing.
//!
//! `cargo run --example recipe_sweep -- DATA_DIR ['{"unfreeze": 2}' …]`
//! (each argument a JSON [`Recipe`], camelCase, missing fields at their defaults; none: the
//! defaults). `DATA_DIR` holds one sub-folder of pictures per class. The weights are the
//! published EfficientNet-Lite0 file the tests use.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use burn::tensor::Device;
use webtune::model::BackboneKind;
use webtune::{Event, Phase, Recipe, Session};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: recipe_sweep DATA_DIR [RECIPE_JSON …]")?;
    let recipes: Vec<String> = args.collect();
    let recipes = if recipes.is_empty() { vec!["{}".to_string()] } else { recipes };

    let weights = std::fs::read(common::legacy_weights())?;
    let mut session = Session::new(BackboneKind::EfficientNetLite0, &weights, Device::flex())?;
    let mut classes: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
    classes.sort_by_key(|e| e.file_name());
    for class in classes.iter().filter(|e| e.path().is_dir()) {
        let label = class.file_name().to_string_lossy().into_owned();
        let mut files: Vec<_> = std::fs::read_dir(class.path())?.collect::<Result<_, _>>()?;
        files.sort_by_key(|e| e.file_name());
        for file in files {
            session.add_image(&label, &file.file_name().to_string_lossy(), &std::fs::read(file.path())?)?;
        }
    }
    eprintln!("{} pictures; {}", session.summary().images, session.recommendation().reason);

    for json in recipes {
        let recipe = Recipe::from_json(&json)?;
        let started = session.start(recipe)?;
        let mut stage = Instant::now();
        let mut times = serde_json::Map::new();
        let mut lap = |name: &str| {
            times.insert(name.into(), ((stage.elapsed().as_secs_f64() * 10.0).round() / 10.0).into());
            stage = Instant::now();
        };
        let (mut head, mut fine, mut accuracy) = (None, Vec::new(), None);
        let outcome = loop {
            match pollster::block_on(session.step(16))? {
                Event::Split { .. } => lap("features_s"),
                Event::Epoch { phase: Phase::Head, report } if report.done => {
                    head = report.best_val_accuracy;
                    lap("head_s");
                }
                Event::Cache { done, total, .. } if done == total => lap("cache_s"),
                Event::Epoch { phase: Phase::Fine, report } => {
                    eprintln!("  fine epoch {}: train {:.3}, val {:.3?}", report.epoch, report.train_accuracy, report.val_accuracy);
                    fine.push(report.val_accuracy);
                    if report.done {
                        lap("fine_s");
                    }
                }
                Event::Evaluated { evaluation } => accuracy = Some(evaluation.accuracy),
                Event::Finished { outcome } => break outcome,
                _ => {}
            }
        };
        let line = serde_json::json!({
            "recipe": serde_json::from_str::<serde_json::Value>(&json)?,
            "unfreeze": started.unfreeze,
            "headValAccuracy": head,
            "fineValAccuracy": fine,
            "bestEpoch": outcome.best_epoch,
            "accuracy": accuracy,
            "times": times,
        });
        println!("{line}");
    }
    Ok(())
}
