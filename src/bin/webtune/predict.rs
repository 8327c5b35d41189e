//! `webtune predict`: classify pictures with an exported model.

use std::path::PathBuf;

use serde::Serialize;
use webtune::Result;

use crate::args::{BackendArgs, load_model, read};

#[derive(clap::Args)]
pub struct PredictArgs {
    /// The exported model.
    model: PathBuf,
    /// Images to classify.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Print JSON: [{file, predictions: [{label, probability}]}] with every class.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(Serialize)]
struct PredictResult {
    file: String,
    predictions: Vec<webtune::Prediction>,
}

pub fn predict(a: PredictArgs) -> Result<()> {
    let model = load_model(&a.model, &a.backend)?;
    let mut results = Vec::new();
    for path in &a.images {
        let predictions = pollster::block_on(model.predict_file(&path.display().to_string(), &read(path)?))?;
        results.push(PredictResult { file: path.display().to_string(), predictions });
    }
    if a.json {
        println!("{}", serde_json::to_string(&results).expect("plain data serialises"));
        return Ok(());
    }
    for result in results {
        let shown: Vec<String> = result.predictions.iter().take(a.top).map(|p| format!("{} {:.3}", p.label, p.probability)).collect();
        println!("{}: {}", result.file, shown.join(", "));
    }
    Ok(())
}
