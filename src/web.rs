//! The wasm-bindgen surface: the only place that knows about JavaScript. The page's worker
//! creates one `Trainer` (a [`Session`] on a device) and drives it: `start(recipe)`, then
//! `step(budget)` until the event says `finished`, posting each event to the page.
//!
//! Errors reach JavaScript as `Error` objects carrying the [`ErrorInfo`] fields (`kind`, `reason`,
//! `file`, `setting`), so the page acts on the kind and never parses a message.

use std::rc::Rc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::backend::{BackendKind, cpu_device, gpu_device};
use crate::boundary::{EngineInfo, ErrorInfo, Overview};
use crate::data::{Augmentation, decode_image, resize_shorter_side};
use crate::error::Error;
use crate::model::BackboneKind;
use crate::recipe::Recipe;
use crate::session::Session;
use crate::train::{Helper, Replica, Reply};

unsafe extern "C" {
    /// wasm-ld's function that runs the static constructors: cubecl's IR (`pliron`) registers
    /// about 4000 items through `inventory`.
    fn __wasm_call_ctors();
}

/// Runs the static constructors once, when the module is instantiated. A module that never calls
/// `__wasm_call_ctors` itself gets every export wrapped in a call to it (wasm-ld takes it for a
/// one-call "command"), so each call into the engine, and each JavaScript value crossing the
/// boundary (an allocation in the externref table is an export too), re-ran them all: 0.2–1 ms
/// each time, about 90 ms of the worker's CPU per added picture, most of the time to add many.
#[wasm_bindgen(start)]
fn run_constructors() {
    // SAFETY: the start function runs once per instance, before any other export.
    unsafe { __wasm_call_ctors() };
}

#[wasm_bindgen(js_name = initPanicHook)]
pub fn init_panic_hook() {
    console_error_panic_hook::set_once();
}

/// A JavaScript `Error` with the [`ErrorInfo`] fields as properties.
fn js_error(error: Error) -> JsValue {
    let info = ErrorInfo::from(&error);
    let object = js_sys::Error::new(&info.message);
    if let Ok(fields) = info.serialize(&serde_wasm_bindgen::Serializer::json_compatible()) {
        js_sys::Object::assign(&object, &fields.unchecked_into());
    }
    object.into()
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| js_error(Error::Backend(format!("cannot pass a result to JavaScript: {e}"))))
}

fn from_js<T: serde::de::DeserializeOwned + Default>(value: JsValue, what: &str) -> Result<T, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| js_error(Error::Settings { setting: String::new(), message: format!("bad {what}: {e}") }))
}

/// A Grad-CAM as a JavaScript object, with its overlay as a `Uint8Array`.
fn with_overlay(cam: &crate::explain::GradCam, crop: &image::RgbImage) -> Result<JsValue, JsValue> {
    let object = to_js(cam)?;
    let overlay = js_sys::Uint8Array::from(cam.overlay(crop).as_slice());
    js_sys::Reflect::set(&object, &"overlay".into(), &overlay)
        .map_err(|_| js_error(Error::Backend("cannot pass the Grad-CAM overlay to JavaScript".into())))?;
    Ok(object)
}

#[wasm_bindgen]
pub struct Trainer {
    session: Session,
    backend: BackendKind,
    backend_note: Option<String>,
}

#[wasm_bindgen]
impl Trainer {
    /// `backbone`: an architecture name (`efficientnet_lite0`, `mobilenet_v2`, `resnet18`,
    /// `resnet50`) whose weights `backbone_bytes` holds (safetensors or PyTorch `.pth`/`.pt`).
    /// `backend`: "auto" (WebGPU if the browser gives an adapter, else CPU), "webgpu" or "cpu".
    pub async fn create(backbone: String, backbone_bytes: Vec<u8>, backend: String) -> Result<Trainer, JsValue> {
        let kind = BackboneKind::from_name(&backbone).map_err(js_error)?;
        let webgpu = || async { gpu_device().await.map(|gpu| gpu.device).map_err(|e| Error::Backend(format!("WebGPU is not available ({e})"))) };
        let (device, backend, backend_note) = match backend.as_str() {
            "cpu" => (cpu_device(), BackendKind::Cpu, None),
            "webgpu" => (webgpu().await.map_err(js_error)?, BackendKind::WebGpu, None),
            "auto" => match webgpu().await {
                Ok(device) => (device, BackendKind::WebGpu, None),
                Err(e) => (cpu_device(), BackendKind::Cpu, Some(format!("{e}; using the CPU"))),
            },
            other => {
                let message = format!("unknown backend \"{other}\" (auto, webgpu or cpu)");
                return Err(js_error(Error::Settings { setting: "backend".into(), message }));
            }
        };
        let session = Session::new(kind, &backbone_bytes, device).map_err(js_error)?;
        Ok(Trainer { session, backend, backend_note })
    }

    /// [`EngineInfo`]: the backend in use, the backbone and its limits.
    pub fn info(&self) -> Result<JsValue, JsValue> {
        let kind = self.session.backbone_kind();
        to_js(&EngineInfo {
            backend: self.backend,
            backend_note: self.backend_note.clone(),
            backbone: kind.name().to_string(),
            input_size: self.session.spec().input_size,
            max_unfreeze: kind.units(),
            units_description: kind.units_description().to_string(),
            continues_from: self.session.continues_from().map(<[String]>::to_vec),
        })
    }

    /// [`Overview`]: the classes and counts, whether training is possible, the recommendation.
    pub fn overview(&self) -> Result<JsValue, JsValue> {
        to_js(&Overview::of(&self.session))
    }

    /// Decodes one image now; throws naming the file and the reason. Returns the image id.
    #[wasm_bindgen(js_name = addImage)]
    pub fn add_image(&mut self, label: &str, file_name: &str, bytes: &[u8]) -> Result<u32, JsValue> {
        self.session.add_image(label, file_name, bytes).map_err(js_error)
    }

    /// Adds a picture given as the bytes `compactImage` returned for it (from this engine or an
    /// earlier one): those bytes are kept as they are when they still fit, so re-adding is a few
    /// milliseconds and the picture is exactly the one it was. Anything else is decoded as
    /// `addImage` does. Returns the image id.
    #[wasm_bindgen(js_name = addCompactImage)]
    pub fn add_compact_image(&mut self, label: &str, file_name: &str, bytes: &[u8]) -> Result<u32, JsValue> {
        self.session.add_compact_image(label, file_name, bytes).map_err(js_error)
    }

    /// The picture `id` as the engine keeps it: resized to the backbone's resize size and
    /// JPEG-compressed, a few tens of kilobytes. The page keeps it instead of the original.
    #[wasm_bindgen(js_name = compactImage)]
    pub fn compact_image(&self, id: u32) -> Result<Vec<u8>, JsValue> {
        self.session.compact_image(id).map(<[u8]>::to_vec).map_err(js_error)
    }

    /// Adds a class with no images (an empty folder), so the page can say it is empty.
    #[wasm_bindgen(js_name = addClass)]
    pub fn add_class(&mut self, label: &str) -> Result<(), JsValue> {
        self.session.add_class(label).map_err(js_error)
    }

    #[wasm_bindgen(js_name = removeClass)]
    pub fn remove_class(&mut self, label: &str) -> Result<(), JsValue> {
        self.session.remove_class(label).map_err(js_error)
    }

    /// Renames class `from` to `to` (trimmed; not another class's name: that is a merge). The
    /// pictures' features are kept. Returns the new label.
    #[wasm_bindgen(js_name = renameClass)]
    pub fn rename_class(&mut self, from: &str, to: &str) -> Result<String, JsValue> {
        self.session.rename_class(from, to).map_err(js_error)
    }

    /// Moves every picture of class `from` into class `into`, then removes `from`.
    #[wasm_bindgen(js_name = mergeClasses)]
    pub fn merge_classes(&mut self, from: &str, into: &str) -> Result<(), JsValue> {
        self.session.merge_classes(from, into).map_err(js_error)
    }

    /// Moves the picture `id` (from `addImage`) to the existing class `to`.
    #[wasm_bindgen(js_name = movePicture)]
    pub fn move_picture(&mut self, id: u32, to: &str) -> Result<(), JsValue> {
        self.session.move_picture(id, to).map_err(js_error)
    }

    /// Removes the picture `id` (from `addImage`); its class stays, even if empty.
    #[wasm_bindgen(js_name = removePicture)]
    pub fn remove_picture(&mut self, id: u32) -> Result<(), JsValue> {
        self.session.remove_picture(id).map_err(js_error)
    }

    /// Has the function `call` (a request as a `Uint8Array` → a promise of the reply's
    /// `Uint8Array`), which hands requests to a helper worker's `Replica`, compute half of each
    /// batch of features, of phase 2's cache and of phase 2's steps from now on; `undefined`:
    /// this engine alone. See [`crate::train::Helper`].
    #[wasm_bindgen(js_name = setHelper)]
    pub fn set_helper(&mut self, call: Option<js_sys::Function>) {
        self.session.set_helper(call.map(|call| Rc::new(WorkerHelper(call)) as Rc<dyn Helper>));
    }

    /// Starts a run of `recipe` (a [`Recipe`]; missing fields take the defaults): [`Started`].
    ///
    /// [`Started`]: crate::Started
    pub fn start(&mut self, recipe: JsValue) -> Result<JsValue, JsValue> {
        let recipe: Recipe = from_js(recipe, "recipe")?;
        to_js(&self.session.start(recipe).map_err(js_error)?)
    }

    /// The next piece of work (at most `budget` pictures): one [`Event`](crate::Event).
    pub async fn step(&mut self, budget: usize) -> Result<JsValue, JsValue> {
        to_js(&self.session.step(budget).await.map_err(js_error)?)
    }

    /// Ends the run; the model trained so far stays. [`Outcome`](crate::Outcome).
    pub fn stop(&mut self) -> Result<JsValue, JsValue> {
        to_js(&self.session.stop())
    }

    /// Reopens a webtune export (a saved project's model) so `predict` and the exports use it
    /// until the next run; returns its classes. Refused (session unchanged) when it is not a
    /// webtune export of this backbone.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(&mut self, bytes: &[u8]) -> Result<Vec<String>, JsValue> {
        self.session.load_model(bytes).map_err(js_error)
    }

    /// The trained classifier as `.safetensors` bytes.
    #[wasm_bindgen(js_name = exportSafetensors)]
    pub async fn export_safetensors(&self) -> Result<Vec<u8>, JsValue> {
        let model = self.session.trained_model().map_err(js_error)?;
        model.to_safetensors().await.map_err(js_error)
    }

    /// The trained classifier as `.onnx` bytes (opset 17): input `input` `[batch, 3, size, size]`
    /// normalised as its metadata says, outputs `logits` and `probabilities`.
    #[wasm_bindgen(js_name = exportOnnx)]
    pub async fn export_onnx(&self) -> Result<Vec<u8>, JsValue> {
        let model = self.session.trained_model().map_err(js_error)?;
        model.to_onnx().await.map_err(js_error)
    }

    /// `[{label, probability}]`, most likely first.
    pub async fn predict(&self, file_name: String, bytes: Vec<u8>) -> Result<JsValue, JsValue> {
        to_js(&self.session.predict(&file_name, &bytes).await.map_err(js_error)?)
    }

    /// Grad-CAM of `class` (an index into the labels; the predicted class when absent) for a
    /// picture file: a [`GradCam`](crate::explain::GradCam) with `overlay`, the center crop it
    /// explains with the heatmap over it (RGBA, `size`² pixels).
    #[wasm_bindgen(js_name = gradCam)]
    pub async fn grad_cam(&self, file_name: String, bytes: Vec<u8>, class: Option<usize>) -> Result<JsValue, JsValue> {
        let (cam, crop) = self.session.grad_cam(&file_name, &bytes, class).await.map_err(js_error)?;
        with_overlay(&cam, &crop)
    }

    /// The pictures most likely mislabelled, at most `limit`: a
    /// [`SuspectReport`](crate::explain::SuspectReport).
    pub async fn suspects(&mut self, limit: usize) -> Result<JsValue, JsValue> {
        to_js(&self.session.suspects(limit).await.map_err(js_error)?)
    }

    /// Exact and near duplicates: `[DuplicateGroup]`.
    pub async fn duplicates(&mut self) -> Result<JsValue, JsValue> {
        to_js(&self.session.duplicates().await.map_err(js_error)?)
    }

    /// `count` training views of one picture drawn exactly as phase 2 draws them with
    /// `augmentation` (an [`Augmentation`]), as RGBA rows of `input size`² pixels one after
    /// the other: what the page's augmentation preview shows.
    #[wasm_bindgen(js_name = augmentedViews)]
    pub fn augmented_views(&self, file_name: &str, bytes: &[u8], augmentation: JsValue, count: usize, seed: u32) -> Result<Vec<u8>, JsValue> {
        let augmentation: Augmentation = from_js(augmentation, "augmentation")?;
        let spec = self.session.spec();
        let pixels = resize_shorter_side(&decode_image(file_name, bytes).map_err(js_error)?, spec);
        let mut rng = ChaCha8Rng::seed_from_u64(seed as u64);
        let mut out = Vec::with_capacity(count * (spec.input_size * spec.input_size * 4) as usize);
        for _ in 0..count.clamp(1, 16) {
            let view = if augmentation.enabled { augmentation.view(&pixels, spec.input_size, &mut rng) } else { crate::data::center_crop(&pixels, spec) };
            out.extend(view.pixels().flat_map(|p| [p[0], p[1], p[2], 255]));
        }
        Ok(out)
    }
}

/// A helper reached through a JavaScript function that posts the request to its worker.
struct WorkerHelper(js_sys::Function);

impl Helper for WorkerHelper {
    fn call(&self, request: Vec<u8>) -> Reply {
        // Called now, so the helper has the request before this engine computes its own share.
        let sent = self.0.call1(&JsValue::NULL, &js_sys::Uint8Array::from(request.as_slice()));
        Box::pin(async move {
            let failed = |what: &str, e: JsValue| Error::Backend(format!("the helper worker {what}: {}", describe(&e)));
            let promise: js_sys::Promise = sent.map_err(|e| failed("could not be asked", e))?.dyn_into().map_err(|e| failed("gave no promise", e))?;
            let reply = wasm_bindgen_futures::JsFuture::from(promise).await.map_err(|e| failed("failed", e))?;
            Ok(js_sys::Uint8Array::new(&reply).to_vec())
        })
    }
}

/// A JavaScript error's message, or the value as text.
fn describe(value: &JsValue) -> String {
    value.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).or_else(|| value.as_string()).unwrap_or_else(|| format!("{value:?}"))
}

/// The helper worker's engine: computes shares of a trainer's phase-2 batches
/// ([`crate::train::Replica`]), on the CPU.
#[wasm_bindgen(js_name = Replica)]
pub struct WebReplica {
    replica: Replica,
}

#[wasm_bindgen(js_class = Replica)]
impl WebReplica {
    #[wasm_bindgen(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> WebReplica {
        WebReplica { replica: Replica::new(cpu_device()) }
    }

    /// Answers a request a trainer's `setHelper` function was given; throws (as the engine's
    /// errors do) when it cannot.
    pub async fn handle(&mut self, request: Vec<u8>) -> Result<Vec<u8>, JsValue> {
        self.replica.handle(&request).await.map_err(js_error)
    }
}

/// Benchmark entry points (the bench page), compiled only with the `bench` feature so the
/// production module carries none of them.
#[cfg(feature = "bench")]
#[wasm_bindgen]
impl Trainer {
    /// Median phase-2 step time at the input size on random data,
    /// `{unfreeze, cached, batch, steps, medianMs, imagesPerSecond}`.
    #[wasm_bindgen(js_name = timeFineTuneSteps)]
    pub async fn time_fine_tune_steps(&self, unfreeze: usize, cached: bool, batch: usize, steps: usize) -> Result<JsValue, JsValue> {
        let now = || js_sys::Date::now();
        let backbone = self.session.backbone();
        let timing = crate::train::time_classifier_steps(backbone, unfreeze, cached, batch, steps, &now).await.map_err(js_error)?;
        to_js(&timing)
    }

    /// Median milliseconds of a backbone forward (features read back) on random input at the
    /// input size.
    #[wasm_bindgen(js_name = timeForward)]
    pub async fn time_forward(&self, batch: usize, steps: usize) -> Result<f64, JsValue> {
        let now = || js_sys::Date::now();
        let size = self.session.spec().input_size as usize;
        crate::train::time_forward(self.session.backbone(), batch.max(1), size, steps, &now).await.map_err(js_error)
    }

    /// Parameters of the backbone (BatchNorm running statistics included, as burn counts them).
    #[wasm_bindgen(js_name = backboneParameters)]
    pub fn backbone_parameters(&self) -> usize {
        use burn::module::Module;
        self.session.backbone().num_params()
    }
}
