//! The wasm-bindgen surface: the only place that knows about JavaScript. The page's worker
//! creates one `Trainer` and calls it one request at a time.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::backend::{BackendKind, cpu_device, gpu_device};
use crate::error::Error;
use crate::data::Augmentation;
use crate::model::BackboneKind;
use crate::train::{FineTuneOptions, HeadOptions};
use crate::tuner::Tuner;

#[wasm_bindgen(js_name = initPanicHook)]
pub fn init_panic_hook() {
    console_error_panic_hook::set_once();
}

fn js_error(error: Error) -> JsError {
    JsError::new(&error.to_string())
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&format!("cannot pass result to JavaScript: {e}")))
}

/// The browser's WebGPU device, on whatever adapter the browser offers (the page asked for WebGPU,
/// so a software one counts too).
async fn webgpu_device() -> crate::error::Result<burn::tensor::Device> {
    gpu_device().await.map(|gpu| gpu.device).map_err(|e| Error::Backend(format!("WebGPU is not available ({e})")))
}

fn from_js_or_default<T: serde::de::DeserializeOwned + Default>(value: JsValue, what: &str) -> Result<T, JsError> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(value).map_err(|e| JsError::new(&format!("bad {what}: {e}")))
}

#[wasm_bindgen]
pub struct Trainer {
    tuner: Tuner,
    backend: BackendKind,
    backend_note: Option<String>,
}

#[wasm_bindgen]
impl Trainer {
    /// `backbone`: an architecture name (`efficientnet_lite0`, `mobilenet_v2`, `resnet18`,
    /// `resnet50`) whose weights `backbone_bytes` holds (safetensors or PyTorch `.pth`/`.pt`).
    /// `backend`: "auto" (WebGPU if the browser gives an adapter, else CPU), "webgpu" or "cpu".
    pub async fn create(backbone: String, backbone_bytes: Vec<u8>, backend: String) -> Result<Trainer, JsError> {
        let backbone = BackboneKind::from_name(&backbone).map_err(js_error)?;
        let (device, kind, note) = match backend.as_str() {
            "cpu" => (cpu_device(), BackendKind::Cpu, None),
            "webgpu" => (webgpu_device().await.map_err(js_error)?, BackendKind::WebGpu, None),
            "auto" => match webgpu_device().await {
                Ok(device) => (device, BackendKind::WebGpu, None),
                Err(e) => (cpu_device(), BackendKind::Cpu, Some(format!("{e}; using the CPU"))),
            },
            other => return Err(JsError::new(&format!("unknown backend \"{other}\" (auto, webgpu or cpu)"))),
        };
        let tuner = Tuner::new(backbone, &backbone_bytes, device).map_err(js_error)?;
        Ok(Trainer { tuner, backend: kind, backend_note: note })
    }

    /// "webgpu" or "cpu": the backend actually in use.
    pub fn backend(&self) -> String {
        self.backend.name().to_string()
    }

    /// Why "auto" fell back to the CPU, if it did.
    #[wasm_bindgen(js_name = backendNote)]
    pub fn backend_note(&self) -> Option<String> {
        self.backend_note.clone()
    }

    #[wasm_bindgen(js_name = backboneName)]
    pub fn backbone_name(&self) -> String {
        self.tuner.spec().name.clone()
    }

    /// How many units phase 2 can unfreeze on this backbone, and what a unit is.
    #[wasm_bindgen(js_name = maxUnfreeze)]
    pub fn max_unfreeze(&self) -> usize {
        self.tuner.backbone_kind().units()
    }

    #[wasm_bindgen(js_name = unitsDescription)]
    pub fn units_description(&self) -> String {
        self.tuner.backbone_kind().units_description().to_string()
    }

    #[wasm_bindgen(js_name = inputSize)]
    pub fn input_size(&self) -> u32 {
        self.tuner.spec().input_size
    }

    /// Decodes one image now; throws naming the file and the reason. Returns the image id.
    #[wasm_bindgen(js_name = addImage)]
    pub fn add_image(&mut self, label: &str, file_name: &str, bytes: &[u8]) -> Result<u32, JsError> {
        self.tuner.add_image(label, file_name, bytes).map_err(js_error)
    }

    /// Adds a class with no images (an empty folder), so the page can say it is empty.
    #[wasm_bindgen(js_name = addClass)]
    pub fn add_class(&mut self, label: &str) -> Result<(), JsError> {
        self.tuner.add_class(label).map_err(js_error)
    }

    #[wasm_bindgen(js_name = removeImage)]
    pub fn remove_image(&mut self, id: u32) {
        self.tuner.remove_image(id);
    }

    #[wasm_bindgen(js_name = removeClass)]
    pub fn remove_class(&mut self, label: &str) {
        self.tuner.remove_class(label);
    }

    /// `{classes: [{label, count}], images, trainable, problem}`.
    pub fn summary(&self) -> Result<JsValue, JsError> {
        to_js(&self.tuner.summary())
    }

    #[wasm_bindgen(js_name = pendingFeatures)]
    pub fn pending_features(&self) -> usize {
        self.tuner.pending_features()
    }

    /// Runs the frozen backbone on up to `max_images` images; resolves to how many remain.
    #[wasm_bindgen(js_name = extractFeatures)]
    pub async fn extract_features(&mut self, max_images: usize) -> Result<usize, JsError> {
        self.tuner.extract_features(max_images).await.map_err(js_error)
    }

    /// Options as in `HeadOptions` (camelCase); missing fields take the defaults.
    #[wasm_bindgen(js_name = startHead)]
    pub fn start_head(&mut self, options: JsValue) -> Result<JsValue, JsError> {
        let options: HeadOptions = from_js_or_default(options, "training options")?;
        to_js(&self.tuner.start_head(options).map_err(js_error)?)
    }

    /// One epoch: `{epoch, epochs, trainLoss, trainAccuracy, valLoss, valAccuracy, done}`.
    #[wasm_bindgen(js_name = trainEpoch)]
    pub async fn train_epoch(&mut self) -> Result<JsValue, JsError> {
        to_js(&self.tuner.train_epoch().await.map_err(js_error)?)
    }

    /// `{unfreeze, reason}`: the recipe the data size calls for (0 = head only).
    pub fn recommendation(&self) -> Result<JsValue, JsError> {
        to_js(&self.tuner.recommendation())
    }

    /// Starts phase 2 after the head: `options` as `FineTuneOptions` (camelCase: unfreeze,
    /// epochs, learningRate, backboneLrFactor, warmupEpochs, labelSmoothing, patience,
    /// batchSize, seed), `augmentation` as `Augmentation` (enabled, minCropArea,
    /// horizontalFlip, colorJitter); missing fields take the defaults. Returns
    /// `{done, total, bytes}` for the views to cache.
    #[wasm_bindgen(js_name = startFineTune)]
    pub fn start_fine_tune(&mut self, options: JsValue, augmentation: JsValue, views_per_image: usize) -> Result<JsValue, JsError> {
        let options: FineTuneOptions = from_js_or_default(options, "fine-tuning options")?;
        let augmentation: Augmentation = from_js_or_default(augmentation, "augmentation")?;
        to_js(&self.tuner.start_fine_tune(options, augmentation, views_per_image).map_err(js_error)?)
    }

    /// Runs the frozen prefix on up to `max_views` views: `{done, total, bytes}`.
    #[wasm_bindgen(js_name = cacheViews)]
    pub async fn cache_views(&mut self, max_views: usize) -> Result<JsValue, JsError> {
        to_js(&self.tuner.cache_views(max_views).await.map_err(js_error)?)
    }

    /// One fine-tuning epoch, reported like `trainEpoch` (`done` also on early stopping).
    #[wasm_bindgen(js_name = fineTuneEpoch)]
    pub async fn fine_tune_epoch(&mut self) -> Result<JsValue, JsError> {
        to_js(&self.tuner.fine_tune_epoch().await.map_err(js_error)?)
    }

    /// Validation metrics of the current model: `{images, loss, accuracy, classes: [{label,
    /// precision, recall, support}], confusion, misclassified: [{imageId, fileName, trueLabel,
    /// predictedLabel, probability}]}`.
    pub async fn evaluate(&self) -> Result<JsValue, JsError> {
        to_js(&self.tuner.evaluate().await.map_err(js_error)?)
    }

    /// Benchmark: median phase-2 step time at the input size on random data,
    /// `{unfreeze, cached, batch, steps, medianMs, imagesPerSecond}`.
    #[wasm_bindgen(js_name = timeFineTuneSteps)]
    pub async fn time_fine_tune_steps(&self, unfreeze: usize, cached: bool, batch: usize, steps: usize) -> Result<JsValue, JsError> {
        let now = || js_sys::Date::now();
        to_js(&self.tuner.time_fine_tune_steps(unfreeze, cached, batch, steps, &now).await.map_err(js_error)?)
    }

    /// Benchmark: median milliseconds of a backbone forward (features read back) on random
    /// input at the input size.
    #[wasm_bindgen(js_name = timeForward)]
    pub async fn time_forward(&self, batch: usize, steps: usize) -> Result<f64, JsError> {
        let now = || js_sys::Date::now();
        self.tuner.time_forward(batch, steps, &now).await.map_err(js_error)
    }

    /// Parameters of the backbone (BatchNorm running statistics included, as burn counts them).
    #[wasm_bindgen(js_name = backboneParameters)]
    pub fn backbone_parameters(&self) -> usize {
        self.tuner.backbone_parameters()
    }

    /// The trained classifier as `.safetensors` bytes.
    #[wasm_bindgen(js_name = exportSafetensors)]
    pub async fn export_safetensors(&self) -> Result<Vec<u8>, JsError> {
        let model = self.tuner.trained_model().map_err(js_error)?;
        model.to_safetensors().await.map_err(js_error)
    }

    /// The trained classifier as `.onnx` bytes (opset 17): input `input` `[batch, 3, 224, 224]`
    /// normalised as its metadata says, outputs `logits` and `probabilities`.
    #[wasm_bindgen(js_name = exportOnnx)]
    pub async fn export_onnx(&self) -> Result<Vec<u8>, JsError> {
        let model = self.tuner.trained_model().map_err(js_error)?;
        model.to_onnx().await.map_err(js_error)
    }

    /// `[{label, probability}]`, most likely first.
    pub async fn predict(&self, file_name: String, bytes: Vec<u8>) -> Result<JsValue, JsError> {
        to_js(&self.tuner.predict(&file_name, &bytes).await.map_err(js_error)?)
    }
}
