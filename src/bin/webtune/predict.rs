//! `webtune predict`: classify pictures with an exported model.

use std::path::PathBuf;

use serde::Serialize;
use webtune::{Error, Result, TrainedModel};
use webtune::data::{decode_image, resize_and_center_crop};

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
    /// Also write each image's Grad-CAM heatmap of its predicted class, over the center crop
    /// the model sees, as `DIR/<image name>.gradcam.png`.
    #[arg(long, value_name = "DIR")]
    gradcam: Option<PathBuf>,
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
        let bytes = read(path)?;
        let predictions = pollster::block_on(model.predict_file(&path.display().to_string(), &bytes))?;
        if let Some(dir) = &a.gradcam {
            write_grad_cam(&model, path, &bytes, dir)?;
        }
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

fn write_grad_cam(model: &TrainedModel, path: &std::path::Path, bytes: &[u8], dir: &std::path::Path) -> Result<()> {
    let crop = resize_and_center_crop(&decode_image(&path.display().to_string(), bytes)?, &model.spec);
    let cam = pollster::block_on(model.grad_cam(&crop, None))?;
    let size = cam.size as u32;
    let image = image::RgbaImage::from_raw(size, size, cam.overlay(&crop)).expect("the overlay is size² RGBA pixels");
    let name = path.file_name().map_or("image".into(), |n| n.to_string_lossy().into_owned());
    let out = dir.join(format!("{name}.gradcam.png"));
    std::fs::create_dir_all(dir)
        .and_then(|_| image.save(&out).map_err(std::io::Error::other))
        .map_err(|source| Error::Io { path: out.display().to_string(), source })
}
