//! What several subcommands share: the backbone and its weights, the backend, file access.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use webtune::backend::{cpu_device, gpu_device};
use webtune::model::BackboneKind;
use webtune::{Error, Result};

/// Which backbone, and where its pretrained weights are.
#[derive(clap::Args)]
pub struct BackboneArgs {
    /// Backbone architecture: efficientnet_lite0, mobilenet_v2, resnet18 or resnet50.
    #[arg(long, default_value = "efficientnet_lite0", value_parser = BackboneKind::from_name)]
    pub backbone: BackboneKind,
    /// Backbone weights: safetensors (torchvision/timm/lukemelas names) or a PyTorch .pth/.pt
    /// state dict [default: <cache>/weights/<backbone>.safetensors, which `webtune weights
    /// fetch` writes; `webtune weights path` prints it].
    #[arg(long, env = "WEBTUNE_WEIGHTS")]
    pub weights: Option<PathBuf>,
}

impl BackboneArgs {
    /// The weights file: `--weights`, `WEBTUNE_WEIGHTS`, else the cache (see `weights.rs`).
    pub fn weights_path(&self) -> Result<PathBuf> {
        match &self.weights {
            Some(path) => Ok(path.clone()),
            None => crate::weights::default_weights(self.backbone),
        }
    }

    /// The weights file's bytes and its path for messages.
    pub fn read_weights(&self) -> Result<(Vec<u8>, String)> {
        let path = self.weights_path()?;
        Ok((read(&path)?, path.display().to_string()))
    }
}

/// Where the computation runs.
#[derive(clap::Args)]
pub struct BackendArgs {
    /// cpu: burn's CPU backend (flex). wgpu: the GPU through wgpu (Vulkan, Metal or DX12); an
    /// error without an adapter. auto: wgpu on a hardware GPU, else the CPU. One GPU per run:
    /// the training loop uses one burn device (README, "Beyond one machine", for more).
    #[arg(long, value_enum, default_value_t = BackendChoice::Cpu)]
    pub backend: BackendChoice,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BackendChoice {
    Cpu,
    Wgpu,
    Auto,
}

impl BackendArgs {
    /// Initialises the chosen device and says which one it is on stderr (stdout may be JSON).
    pub fn device(&self) -> Result<(Device, &'static str)> {
        let one_line = |e: Error| e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        let (device, name, line) = match self.backend {
            BackendChoice::Cpu => (cpu_device(), "cpu", "cpu (flex)".to_string()),
            BackendChoice::Wgpu => {
                let gpu = pollster::block_on(gpu_device())
                    .map_err(|e| Error::Backend(format!("no GPU adapter found for --backend wgpu: {}", one_line(e))))?;
                (gpu.device, "wgpu", format!("wgpu ({})", gpu.adapter))
            }
            // A software adapter (lavapipe, llvmpipe) is several times slower than burn's CPU
            // backend, so auto only takes real hardware; --backend wgpu takes any adapter.
            BackendChoice::Auto => match pollster::block_on(gpu_device()) {
                Ok(gpu) if !gpu.software => (gpu.device, "wgpu", format!("wgpu ({})", gpu.adapter)),
                Ok(gpu) => (cpu_device(), "cpu", format!("cpu (flex; the only GPU adapter, {}, is a software one)", gpu.adapter)),
                Err(e) => (cpu_device(), "cpu", format!("cpu (flex; no GPU adapter: {})", one_line(e))),
            },
        };
        eprintln!("backend: {line}");
        Ok((device, name))
    }
}

pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
    }
    std::fs::write(path, bytes).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

/// An exported model from `path`, on the chosen device.
pub fn load_model(path: &Path, backend: &BackendArgs) -> Result<webtune::TrainedModel> {
    let (device, _) = backend.device()?;
    webtune::TrainedModel::from_safetensors(&read(path)?, &device).map_err(|e| e.in_file(&path.display().to_string()))
}
