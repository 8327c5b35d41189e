//! Benchmark-only wasm exports, for the bench page's side-by-side mode (www/bench.html
//! `?mode=side-by-side`, driven by bench/side-by-side.mjs). Kept apart from the page's API in
//! `web.rs` so that the benchmark measures the model code itself (the backbone forward with and
//! without BatchNorm folded, the phase-2 step) whatever the page's API looks like. CPU only:
//! the comparison it serves is against TF.js's wasm backend.

use wasm_bindgen::prelude::*;

use crate::backend::cpu_device;
use crate::model::{Backbone, BackboneKind, Classifier, HeadConfig};
use crate::train::{LITE0_SHAPES, UnfreezePlan, simd_peak_gflops, time_conv, time_fine_tune_steps, time_forward};
use crate::weights::read_weights_file;

fn js_error(error: impl std::fmt::Display) -> JsError {
    JsError::new(&error.to_string())
}

/// `performance.now()` of the page or worker: `Date.now()` has only millisecond steps.
fn now_ms() -> f64 {
    let global = js_sys::global();
    let performance = js_sys::Reflect::get(&global, &"performance".into()).expect("performance");
    let now: js_sys::Function = js_sys::Reflect::get(&performance, &"now".into()).expect("performance.now").into();
    now.call0(&performance).expect("performance.now()").as_f64().expect("a number")
}

/// One backbone on the CPU backend, as imported from a weights file and with its BatchNorm
/// folded (`Backbone::fold_batch_norm`).
#[wasm_bindgen]
pub struct BenchBackbone {
    kind: BackboneKind,
    backbone: Backbone,
    folded: Backbone,
    fold_ms: f64,
}

#[wasm_bindgen]
impl BenchBackbone {
    /// `name`: `efficientnet_lite0`, `mobilenet_v2`, `resnet18` or `resnet50`; `bytes`: its
    /// weights (safetensors or PyTorch), e.g. from `webtune init-weights`.
    pub fn create(name: &str, bytes: &[u8]) -> Result<BenchBackbone, JsError> {
        let kind = BackboneKind::from_name(name).map_err(js_error)?;
        let backbone = Backbone::import(kind, &read_weights_file(bytes).map_err(js_error)?, &cpu_device()).map_err(js_error)?;
        let start = now_ms();
        let folded = backbone.fold_batch_norm();
        Ok(BenchBackbone { kind, backbone, folded, fold_ms: now_ms() - start })
    }

    /// Milliseconds `fold_batch_norm` took.
    #[wasm_bindgen(js_name = foldMs)]
    pub fn fold_ms(&self) -> f64 {
        self.fold_ms
    }

    /// Median milliseconds of `steps` forwards at the input size (after a warm-up), features
    /// read back; `folded` picks the folded copy.
    #[wasm_bindgen(js_name = timeForward)]
    pub async fn time_forward(&self, batch: usize, steps: usize, folded: bool) -> Result<f64, JsError> {
        let backbone = if folded { &self.folded } else { &self.backbone };
        time_forward(backbone, batch, self.kind.spec().input_size as usize, steps, &now_ms).await.map_err(js_error)
    }

    /// Median milliseconds of `steps` phase-2 steps from the cached prefix (after a warm-up
    /// step), `unfreeze` units trained, a 2-class head.
    #[wasm_bindgen(js_name = timeFineTuneSteps)]
    pub async fn time_fine_tune_steps(&self, unfreeze: usize, batch: usize, steps: usize) -> Result<f64, JsError> {
        let plan = UnfreezePlan::new(self.kind, unfreeze).map_err(js_error)?;
        let device = cpu_device();
        let classifier = Classifier { backbone: self.backbone.clone(), head: HeadConfig::new(self.kind.features(), 2).init_seeded(&device, 1) };
        let size = self.kind.spec().input_size as usize;
        let timing = time_fine_tune_steps(&classifier, plan, true, batch, size, steps, &device, &now_ms).await.map_err(js_error)?;
        Ok(timing.median_ms)
    }
}

/// This thread's simd128 peak in GFLOP/s (`simd_peak_gflops`: multiplies and adds on
/// independent registers, nothing from memory), the best of `tries` runs of `iterations`.
#[wasm_bindgen(js_name = simdPeakGflops)]
pub fn simd_peak(iterations: usize, tries: usize) -> f64 {
    (0..tries.max(1)).map(|_| simd_peak_gflops(iterations, &now_ms)).fold(0.0, f64::max)
}

/// EfficientNet-Lite0's main convolution shapes on the CPU backend (`LITE0_SHAPES`), each
/// timed at `batch` (median of `steps`) as the backbones run it, and the depthwise ones and the
/// stem with burn's kernel too: `[{ name, kernel: "backbone" | "burn", batch, medianMs, gflops }]`.
#[wasm_bindgen(js_name = timeConvShapes)]
pub async fn time_conv_shapes(batch: usize, steps: usize) -> Result<JsValue, JsError> {
    let device = cpu_device();
    let mut timings = Vec::new();
    for shape in LITE0_SHAPES {
        for &kernel in shape.kernels() {
            timings.push(time_conv(shape, kernel, batch, steps, &device, &now_ms).await.map_err(js_error)?);
        }
    }
    serde_wasm_bindgen::to_value(&timings).map_err(js_error)
}
