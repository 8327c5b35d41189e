//! Choosing the compute device: WebGPU when the browser offers an adapter, burn's CPU
//! backend (`flex`) otherwise.

use burn::tensor::Device;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// Initialises the browser's WebGPU device. Once per wasm instance: burn's runtime refuses a
/// second registration, so the worker creates one `Tuner` and keeps it.
#[cfg(target_arch = "wasm32")]
pub async fn webgpu_device() -> crate::error::Result<Device> {
    Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| crate::error::Error::Backend(format!("WebGPU is not available ({e})")))
}
