//! The native `webtune` command: the same core as the page, on the command line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;
use webtune::backend::cpu_device;
use webtune::data::{decode_image, resize_and_center_crop, to_input_tensor};
use webtune::model::{BackboneSpec, ImageNetClassifier, ImageNetNames};
use webtune::train::softmax;
use webtune::weights::{load_params, read_weights_file, write_safetensors};
use webtune::{Error, Result, TrainedModel};

const DEFAULT_WEIGHTS: &str = "www/public/weights/efficientnet_lite0.safetensors";

#[derive(Parser)]
#[command(name = "webtune", version, about = "Fine-tune image classifiers on your own pictures")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert backbone weights (legacy PyTorch .pth or safetensors) into the safetensors file
    /// the page loads, checking that every tensor fits EfficientNet-Lite0.
    Convert {
        /// Input weights file.
        input: PathBuf,
        /// Output .safetensors file.
        output: PathBuf,
    },
    /// ImageNet top-5 of the pretrained backbone for each image (evaluation preprocessing:
    /// shorter side to 256, center crop 224).
    Imagenet {
        /// Images to classify.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Backbone weights (as written by `webtune convert`).
        #[arg(long, env = "WEBTUNE_WEIGHTS", default_value = DEFAULT_WEIGHTS)]
        weights: PathBuf,
        /// Print JSON with all 1000 logits per image instead of a table.
        #[arg(long)]
        json: bool,
        /// Also write the preprocessed input batch as raw little-endian f32, NCHW.
        #[arg(long, value_name = "FILE")]
        save_input: Option<PathBuf>,
    },
    /// Classify images with a model exported by webtune (.safetensors).
    Predict {
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
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webtune: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
    }
    std::fs::write(path, bytes).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Convert { input, output } => convert(&input, &output),
        Command::Imagenet { images, weights, json, save_input } => imagenet(&images, &weights, json, save_input.as_deref()),
        Command::Predict { model, images, top, json } => predict(&model, &images, top, json),
    }
}

fn convert(input: &Path, output: &Path) -> Result<()> {
    let tensors = read_weights_file(&read(input)?)?;
    // Loading proves the file fits the architecture before anything is written.
    load_params(ImageNetClassifier::new(&cpu_device()), &tensors, &ImageNetNames)?;
    let spec = BackboneSpec::efficientnet_lite0();
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("backbone".to_string(), spec.name.clone()),
        ("source".to_string(), input.file_name().unwrap_or_default().to_string_lossy().into_owned()),
    ]);
    let bytes = write_safetensors(&tensors, metadata)?;
    write(output, &bytes)?;
    println!("wrote {} ({} tensors, {:.1} MB)", output.display(), tensors.len(), bytes.len() as f64 / 1e6);
    Ok(())
}

#[derive(Serialize)]
struct ImageNetResult {
    file: String,
    top5: Vec<(usize, f32)>,
    logits: Vec<f32>,
}

fn imagenet(images: &[PathBuf], weights: &Path, json: bool, save_input: Option<&Path>) -> Result<()> {
    let device = cpu_device();
    let tensors = read_weights_file(&read(weights)?)?;
    let model = load_params(ImageNetClassifier::new(&device), &tensors, &ImageNetNames)?;
    let spec = BackboneSpec::efficientnet_lite0();
    let crops = images
        .iter()
        .map(|path| Ok(resize_and_center_crop(&decode_image(&path.display().to_string(), &read(path)?)?, &spec)))
        .collect::<Result<Vec<_>>>()?;
    let input = to_input_tensor(&crops.iter().collect::<Vec<_>>(), &spec, &device);
    if let Some(path) = save_input {
        let values = input.clone().into_data().try_to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))?;
        write(path, &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
    }
    let logits = model.forward(input).into_data().try_to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))?;
    let results: Vec<ImageNetResult> = images
        .iter()
        .zip(logits.chunks_exact(1000))
        .map(|(path, row)| {
            let mut order: Vec<usize> = (0..1000).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            ImageNetResult { file: path.display().to_string(), top5: order[..5].iter().map(|&i| (i, row[i])).collect(), logits: row.to_vec() }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string(&results).expect("plain data serialises"));
    } else {
        for result in &results {
            let probabilities = softmax(&result.logits);
            println!("{}", result.file);
            for (class, logit) in &result.top5 {
                println!("  class {class:>4}  p={:.3}  logit={logit:.3}", probabilities[*class]);
            }
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct PredictResult {
    file: String,
    predictions: Vec<webtune::Prediction>,
}

fn predict(model_path: &Path, images: &[PathBuf], top: usize, json: bool) -> Result<()> {
    let model = TrainedModel::from_safetensors(&read(model_path)?, &cpu_device())
        .map_err(|e| Error::Weights(format!("{}: {e}", model_path.display())))?;
    let mut results = Vec::new();
    for path in images {
        let predictions = pollster::block_on(model.predict_file(&path.display().to_string(), &read(path)?))?;
        results.push(PredictResult { file: path.display().to_string(), predictions });
    }
    if json {
        println!("{}", serde_json::to_string(&results).expect("plain data serialises"));
    } else {
        for result in results {
            let shown: Vec<String> =
                result.predictions.iter().take(top).map(|p| format!("{} {:.3}", p.label, p.probability)).collect();
            println!("{}: {}", result.file, shown.join(", "));
        }
    }
    Ok(())
}
