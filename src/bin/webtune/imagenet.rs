//! `webtune imagenet`: the pretrained backbone's own ImageNet top-5.

use std::path::PathBuf;

use serde::Serialize;
use webtune::Result;
use webtune::tools::ImageNetModel;
use webtune::train::softmax;

use crate::args::{BackboneArgs, BackendArgs, read, write};

#[derive(clap::Args)]
pub struct ImageNetArgs {
    /// Images to classify.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    #[command(flatten)]
    backbone: BackboneArgs,
    #[command(flatten)]
    backend: BackendArgs,
    /// Print JSON with all 1000 logits per image instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the preprocessed input batch as raw little-endian f32, NCHW.
    #[arg(long, value_name = "FILE")]
    save_input: Option<PathBuf>,
}

#[derive(Serialize)]
struct ImageNetResult {
    file: String,
    top5: Vec<(usize, f32)>,
    logits: Vec<f32>,
}

pub fn imagenet(a: ImageNetArgs) -> Result<()> {
    let (device, _) = a.backend.device()?;
    let (weights, path) = a.backbone.read_weights()?;
    let model = ImageNetModel::load(a.backbone.backbone, &weights, &device).map_err(|e| e.in_file(&path))?;
    let files = a.images.iter().map(|p| Ok((p.display().to_string(), read(p)?))).collect::<Result<Vec<_>>>()?;
    let input = model.preprocess(&files)?;
    if let Some(path) = &a.save_input {
        let values = input.clone().into_data().try_to_vec::<f32>().map_err(|e| webtune::Error::Backend(format!("reading the input: {e:?}")))?;
        write(path, &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
    }
    let logits = pollster::block_on(model.logits(input))?;
    let results: Vec<ImageNetResult> = files
        .iter()
        .zip(logits.chunks_exact(1000))
        .map(|((file, _), row)| {
            let mut order: Vec<usize> = (0..1000).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            ImageNetResult { file: file.clone(), top5: order[..5].iter().map(|&i| (i, row[i])).collect(), logits: row.to_vec() }
        })
        .collect();
    if a.json {
        println!("{}", serde_json::to_string(&results).expect("plain data serialises"));
        return Ok(());
    }
    for result in &results {
        let probabilities = softmax(&result.logits);
        println!("{}", result.file);
        for (class, logit) in &result.top5 {
            println!("  class {class:>4}  p={:.3}  logit={logit:.3}", probabilities[*class]);
        }
    }
    Ok(())
}
