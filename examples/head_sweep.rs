//! Phase 1 alone on features written by the `features` example, for comparing head settings in
//! milliseconds instead of re-extracting features for each: prints one JSON line per settings
//! object with the kept head's validation accuracy, the epochs run and the time.
//!
//! `cargo run --example head_sweep -- FEATURES.csv ['{"learningRate": 0.01}' …]`
//! (each argument is a JSON `HeadOptions`, camelCase, missing fields at their defaults; none:
//! the defaults). The split is the CSV's; `valFraction` is ignored.

use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use webtune::train::{HeadOptions, HeadTrainer, LabelledFeatures, loss_and_accuracy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: head_sweep FEATURES.csv [OPTIONS_JSON …]")?;
    let (mut train, mut val, mut classes, mut dim) = (LabelledFeatures::default(), LabelledFeatures::default(), 0, 0);
    for line in std::fs::read_to_string(&path)?.lines() {
        let mut fields = line.split(',');
        let part = fields.next().ok_or("empty line")?;
        let class: usize = fields.next().ok_or("no class")?.parse()?;
        let row = fields.map(str::parse::<f32>).collect::<Result<Vec<_>, _>>()?;
        (classes, dim) = (classes.max(class + 1), row.len());
        if part == "val" { &mut val } else { &mut train }.push(&row, class);
    }
    let settings: Vec<String> = args.collect();
    let settings = if settings.is_empty() { vec!["{}".to_string()] } else { settings };
    let device = Device::flex();
    for json in settings {
        let options: HeadOptions = serde_json::from_str(&json)?;
        let start = Instant::now();
        let mut trainer = HeadTrainer::new(options, classes, dim, train.clone(), val.clone(), &device)?;
        let mut last = None;
        while !trainer.is_done() {
            last = Some(pollster::block_on(trainer.train_epoch())?);
        }
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let last = last.expect("at least one epoch");
        let x = Tensor::<2>::from_data(TensorData::new(val.rows.clone(), [val.len(), dim]), &device);
        let logits = trainer.head().forward(x).into_data().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        let (loss, accuracy) = loss_and_accuracy(&logits, classes, &val.targets);
        let result = serde_json::json!({
            "settings": serde_json::from_str::<serde_json::Value>(&json)?,
            "valAccuracy": accuracy, "valLoss": loss, "epochsRun": last.epoch, "bestEpoch": last.best_epoch,
            "trainAccuracy": last.train_accuracy, "ms": ms,
        });
        println!("{result}");
    }
    Ok(())
}
