//! Choosing the compute device: burn's wgpu runtime when there is an adapter (WebGPU in the
//! browser; Vulkan, Metal or DX12 natively), burn's CPU backend (`flex`) otherwise.

use burn::tensor::Device;
use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Cpu,
    WebGpu,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::WebGpu => "webgpu",
        }
    }
}

pub fn cpu_device() -> Device {
    Device::flex()
}

/// A device on burn's wgpu runtime and the adapter it runs on.
pub struct GpuDevice {
    pub device: Device,
    /// The adapter's name and graphics API, e.g. "llvmpipe (LLVM 15.0.6, 256 bits), Vulkan".
    pub adapter: String,
    /// A software rasteriser (lavapipe, llvmpipe, SwiftShader, WARP): it works, but burn's CPU
    /// backend is several times faster on the same cores.
    pub software: bool,
}

/// Initialises burn's wgpu runtime on the best adapter it finds (a hardware one before a software
/// one; Vulkan, then DX12, then OpenGL natively). Once per process or wasm instance: burn's runtime
/// refuses a second registration, so callers create one device and clone it.
///
/// The error is the runtime's reason, for the caller to put in context.
pub async fn gpu_device() -> Result<GpuDevice> {
    let (device, setup) = Device::wgpu_options().init_with_setup_async().await.map_err(|e| Error::Backend(e.to_string()))?;
    let info = setup.adapter.get_info();
    let name = if info.name.is_empty() { "unnamed adapter".to_string() } else { info.name };
    Ok(GpuDevice {
        device,
        adapter: format!("{name}, {:?}", info.backend),
        software: info.device_type == burn::tensor::wgpu::wgpu::DeviceType::Cpu,
    })
}
