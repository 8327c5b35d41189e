//! `webtune convert` and `webtune init-weights`: backbone weights files.

use std::path::PathBuf;

use webtune::Result;
use webtune::model::BackboneKind;
use webtune::tools::{convert_weights, random_weights};
use webtune::weights::FloatStorage;

use crate::args::{read, write};

#[derive(clap::Args)]
pub struct ConvertArgs {
    /// Backbone architecture the file is for.
    #[arg(long, default_value = "efficientnet_lite0", value_parser = BackboneKind::from_name)]
    backbone: BackboneKind,
    /// Input weights file.
    input: PathBuf,
    /// Output .safetensors file.
    output: PathBuf,
    /// Store the weights in half precision (f16): half the file, each weight rounded to 11
    /// significant bits. What the page bundles, so that its first load downloads less.
    #[arg(long)]
    half: bool,
}

pub fn convert(a: ConvertArgs) -> Result<()> {
    let source = a.input.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let (bytes, tensors) = convert_weights(a.backbone, &read(&a.input)?, &source, if a.half { FloatStorage::F16 } else { FloatStorage::F32 }).map_err(|e| e.in_file(&a.input.display().to_string()))?;
    write(&a.output, &bytes)?;
    println!("wrote {} ({tensors} tensors, {:.1} MB)", a.output.display(), bytes.len() as f64 / 1e6);
    Ok(())
}

#[derive(clap::Args)]
pub struct InitWeightsArgs {
    /// Backbone architecture.
    #[arg(long, value_parser = BackboneKind::from_name)]
    backbone: BackboneKind,
    /// Output .safetensors file.
    output: PathBuf,
    /// Seed of the initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn init_weights(a: InitWeightsArgs) -> Result<()> {
    let (bytes, tensors) = pollster::block_on(random_weights(a.backbone, a.seed))?;
    write(&a.output, &bytes)?;
    println!("wrote {} (random {}, {tensors} tensors)", a.output.display(), a.backbone);
    Ok(())
}
