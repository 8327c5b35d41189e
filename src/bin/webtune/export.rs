//! `webtune export`: an exported model in another format.

use std::path::PathBuf;

use webtune::{Result, TrainedModel};

use crate::args::{read, write};

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The exported model.
    model: PathBuf,
    /// Write the whole inference graph as ONNX (opset 17) to this file.
    #[arg(long, value_name = "FILE", required = true)]
    onnx: PathBuf,
}

pub fn export(a: ExportArgs) -> Result<()> {
    // Writing ONNX is bookkeeping over the weights: the CPU backend is all it needs.
    let model = TrainedModel::from_safetensors(&read(&a.model)?, &webtune::backend::cpu_device())
        .map_err(|e| e.in_file(&a.model.display().to_string()))?;
    let bytes = pollster::block_on(model.to_onnx()).map_err(|e| e.in_file(&a.onnx.display().to_string()))?;
    write(&a.onnx, &bytes)?;
    println!("wrote {} ({:.1} MB)", a.onnx.display(), bytes.len() as f64 / 1e6);
    Ok(())
}
