//! The recipe on two engines at once. In the page each engine is a WebAssembly instance in a Web
//! Worker, on one core; a second worker (the *helper*) computes the last half of every batch
//! while this engine computes the first, so on a 2-core machine each stage takes about the time
//! of half its batches:
//!
//! - the features stage and phase 2's cache (forward passes of the frozen backbone): the helper
//!   runs half of each batch of views and sends back their features or prefix outputs
//!   ([`extract_features`], [`extend_prefixes`]);
//! - phase 2's steps: the helper computes the gradients of half of each batch. Phase 2's
//!   BatchNorm runs on its running statistics, so the two halves do not interact: their
//!   gradients, each scaled by its share of the batch, add up to the whole batch's, and one
//!   optimizer step (the [`FineTuner`](super::FineTuner)'s, the only optimizer) follows.
//!
//! Requests and replies are safetensors files (tensors and string metadata), answered by
//! [`Replica::handle`]:
//!
//! - *backbone*, once per engine: the frozen backbone's tensors. *forward*: stored pictures (their
//!   JPEG bytes), how to make each one's view (the center crop, or the augmented view a seed
//!   draws, [`ViewOf`]) with the preprocessing and augmentation settings, and what to return for
//!   each: pooled features, the prefix output at a unit, or both. The helper decodes and crops
//!   its share itself, so this engine does not, and a view costs 30 KB to send instead of 600.
//! - *setup*, once per phase 2: every tensor of the classifier as it starts phase 2 (named as an
//!   export names them), its head's size and dropout, the standardizer, the plan and the seed
//!   that draws the dropout masks.
//!   The helper answers with the number of values that train, which must be the fine-tuner's.
//!   *step*: the current values of the parameters that train (backbone tail then head, each in
//!   burn's visit order, flattened), the helper's share of the batch (cached prefix rows and
//!   their classes), the batch size, the step and the row of the batch its share starts at (for
//!   the dropout masks, see [`DropoutDraw`]). The helper answers with the gradients of its share in
//!   the same order, scaled by share / batch, the share's summed loss and how many it classified
//!   right. *validate*: the trainable values again and cached validation rows; the helper answers
//!   with their logits (no dropout).
//!
//! A helper that fails (it crashed, was refused a request, answered nonsense) is dropped: its
//! share is computed again here, and so is all the work after it. Results with a helper equal
//! this engine's alone up to rounding (batches are summed in another order): a row's dropout
//! mask depends on the seed, the step and the row's place in the batch, not on the engine.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};

use image::RgbImage;

use super::features::FeatureCache;
use super::finetune::{TailObjective, UnfreezePlan};
use super::prefix_cache::{CenterPrefixes, PrefixCache};
use super::head::Standardizer;
use crate::error::{Error, Result};
use crate::data::{Augmentation, LabelledImage, StoredPicture, ViewOf, input_values, view_of};
use crate::model::{Backbone, BackboneKind, BackboneSpec, Classifier, ClassifierNames, DropoutDraw, HeadConfig};
use crate::weights::{TensorEntry, TensorMap, TensorValues, collect_params, load_params, read_safetensors, write_safetensors};

/// The reply to a [`Helper::call`].
pub type Reply = Pin<Box<dyn Future<Output = Result<Vec<u8>>>>>;

/// A second engine that answers [`Replica::handle`] requests: in the page a Web Worker holding
/// a [`Replica`]; in tests one in the same thread.
pub trait Helper {
    /// Sends `request` and returns its reply. The helper must start on the request before the
    /// reply is first polled: the fine-tuner computes its own share in between.
    fn call(&self, request: Vec<u8>) -> Reply;
}

const JOB: &str = "job";
const STANDARDIZER_MEAN: &str = "webtune.standardizer.mean";
const STANDARDIZER_INV_STD: &str = "webtune.standardizer.inv_std";

fn metadata_field<'a>(metadata: &'a HashMap<String, String>, key: &str) -> Result<&'a str> {
    metadata.get(key).map(String::as_str).ok_or_else(|| Error::Training(format!("a helper message without \"{key}\"")))
}

fn number<T: std::str::FromStr>(metadata: &HashMap<String, String>, key: &str) -> Result<T> {
    metadata_field(metadata, key)?.parse().map_err(|_| Error::Training(format!("a helper message whose \"{key}\" is not a number")))
}

/// A metadata field written as JSON ([`forward_request`]), read as a `T`; `unreadable` says
/// what a field that does not parse is.
fn json_field<T: serde::de::DeserializeOwned>(metadata: &HashMap<String, String>, key: &str, unreadable: &str) -> Result<T> {
    serde_json::from_str(metadata_field(metadata, key)?).map_err(|e| Error::Training(format!("{unreadable} ({e})")))
}

fn take_f32(tensors: &mut TensorMap, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    match tensors.remove(name) {
        Some(TensorEntry { shape, values: TensorValues::F32(values) }) => Ok((shape, values)),
        _ => Err(Error::Training(format!("a helper message without the f32 tensor \"{name}\""))),
    }
}

fn encode(job: &str, tensors: TensorMap, mut metadata: HashMap<String, String>) -> Result<Vec<u8>> {
    metadata.insert(JOB.into(), job.into());
    write_safetensors(&tensors, metadata)
}

fn decode(bytes: &[u8], job: &str) -> Result<(TensorMap, HashMap<String, String>)> {
    let (tensors, metadata) = read_safetensors(bytes).map_err(|e| Error::Training(format!("a helper message that cannot be read: {e}")))?;
    match metadata.get(JOB) {
        Some(found) if found == job => Ok((tensors, metadata)),
        found => Err(Error::Training(format!("expected a \"{job}\" helper message, got {found:?}"))),
    }
}

/// The setup request for a helper that is to compute shares of `model`'s steps (see the module
/// documentation); `seed` draws the dropout masks ([`DropoutDraw`]), as it does for the fine-tuner.
pub(crate) async fn setup_request(model: &Classifier, objective: &TailObjective, seed: u64) -> Result<Vec<u8>> {
    let kind = model.backbone.kind();
    let hidden = model.head.hidden.as_ref().map_or(0, |linear| linear.weight.dims()[1]);
    let classes = model.head.output.weight.dims()[1];
    let mut tensors = collect_params(&model.valid(), &ClassifierNames { kind, hidden: hidden > 0 }).await?;
    if let Some(standardizer) = &objective.standardizer {
        let (mean, inv_std) = standardizer.parts();
        tensors.insert(STANDARDIZER_MEAN.into(), TensorEntry::f32(vec![mean.len()], mean.to_vec()));
        tensors.insert(STANDARDIZER_INV_STD.into(), TensorEntry::f32(vec![inv_std.len()], inv_std.to_vec()));
    }
    let metadata = HashMap::from([
        ("backbone".to_string(), kind.name().to_string()),
        ("unfreeze".into(), objective.plan.units().to_string()),
        ("classes".into(), classes.to_string()),
        ("hidden".into(), hidden.to_string()),
        ("dropout".into(), model.head.dropout.prob.to_string()),
        ("label_smoothing".into(), objective.label_smoothing.to_string()),
        ("seed".into(), seed.to_string()),
    ]);
    encode("setup", tensors, metadata)
}

/// Checks a helper's answer to [`setup_request`]: it trains as many values as `model`.
pub(crate) fn check_setup_reply(reply: &[u8], model: &Classifier) -> Result<()> {
    let (_, metadata) = decode(reply, "ready")?;
    let theirs: usize = number(&metadata, "values")?;
    let ours = trainable_len(model);
    if theirs != ours {
        return Err(Error::Training(format!("the helper trains {theirs} values, the fine-tuner {ours}")));
    }
    Ok(())
}

/// A step request: `model`'s trainable values and the share `rows` (`[n, c, h, w]`) with its
/// `targets`, of a batch of `batch`, at `draw`'s step and rows (its seed is the setup's).
pub(crate) async fn step_request(model: &Classifier, (shape, rows): (Vec<usize>, Vec<f32>), targets: &[usize], batch: usize, draw: &DropoutDraw) -> Result<Vec<u8>> {
    let values = trainable_values(model).await?;
    let tensors = TensorMap::from([
        ("params".to_string(), TensorEntry::f32(vec![values.len()], values)),
        ("rows".into(), TensorEntry::f32(shape, rows)),
        ("targets".into(), TensorEntry { shape: vec![targets.len()], values: TensorValues::I64(targets.iter().map(|&t| t as i64).collect()) }),
    ]);
    let metadata = HashMap::from([
        ("batch".to_string(), batch.to_string()),
        ("step".into(), draw.step.to_string()),
        ("first_row".into(), draw.first_row.to_string()),
    ]);
    encode("step", tensors, metadata)
}

/// A validate request: `model`'s trainable values and validation `rows` (`[n, c, h, w]`).
pub(crate) async fn validate_request(model: &Classifier, (shape, rows): (Vec<usize>, Vec<f32>)) -> Result<Vec<u8>> {
    let values = trainable_values(model).await?;
    let tensors = TensorMap::from([
        ("params".to_string(), TensorEntry::f32(vec![values.len()], values)),
        ("rows".into(), TensorEntry::f32(shape, rows)),
    ]);
    encode("validate", tensors, HashMap::new())
}

/// The logits in a helper's answer to [`validate_request`] for `rows` rows of `classes` classes.
pub(crate) fn decode_logits(reply: &[u8], rows: usize, classes: usize) -> Result<Vec<f32>> {
    let (mut tensors, _) = decode(reply, "logits")?;
    match take_f32(&mut tensors, "logits")? {
        (shape, values) if shape == [rows, classes] => Ok(values),
        (shape, _) => Err(Error::Training(format!("the helper's logits for {rows} rows of {classes} classes have the shape {shape:?}"))),
    }
}

/// A helper's answer to a step request: the gradients of its share (scaled, in the order of
/// [`trainable_values`]), the share's summed loss and its number classified right.
pub(crate) struct ShareGradients {
    pub gradients: Vec<f32>,
    pub loss_sum: f32,
    pub correct: f32,
}

impl ShareGradients {
    pub fn decode(reply: &[u8]) -> Result<Self> {
        let (mut tensors, _) = decode(reply, "gradients")?;
        let (_, gradients) = take_f32(&mut tensors, "gradients")?;
        let scalar = |tensors: &mut TensorMap, name| -> Result<f32> {
            take_f32(tensors, name)?.1.first().copied().ok_or_else(|| Error::Training(format!("an empty \"{name}\" from the helper")))
        };
        Ok(Self { loss_sum: scalar(&mut tensors, "loss")?, correct: scalar(&mut tensors, "correct")?, gradients })
    }
}

/// The parameters of a module that train, in burn's visit order: their values (`grads: None`)
/// or their gradients, flattened, and how many values they hold.
struct Flatten<'a> {
    grads: Option<&'a GradientsParams>,
    parts: Vec<Tensor<1>>,
    len: usize,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        let n = value.dims().iter().product::<usize>();
        self.len += n;
        let part = match self.grads {
            None => value.detach(),
            // A parameter that got no gradient (it did not take part) gets zeros.
            Some(grads) => grads.get::<D>(param.id).unwrap_or_else(|| value.zeros_like().detach()),
        };
        self.parts.push(part.reshape([n]));
    }
}

fn flatten<'a, M: Module>(module: &M, grads: Option<&'a GradientsParams>) -> Flatten<'a> {
    let mut flatten = Flatten { grads, parts: Vec::new(), len: 0 };
    module.visit(&mut flatten);
    flatten
}

/// How many values of `model` train.
pub(crate) fn trainable_len<M: Module>(model: &M) -> usize {
    flatten(model, None).len
}

/// The values of `model`'s parameters that train, flattened in visit order.
pub(crate) async fn trainable_values<M: Module>(model: &M) -> Result<Vec<f32>> {
    read_flat(flatten(model, None).parts).await
}

/// The gradients of `module`'s parameters that train, flattened in visit order.
async fn flat_gradients<M: Module>(module: &M, grads: &GradientsParams) -> Result<Vec<f32>> {
    read_flat(flatten(module, Some(grads)).parts).await
}

async fn read_flat(parts: Vec<Tensor<1>>) -> Result<Vec<f32>> {
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let data = Tensor::cat(parts, 0).into_data_async().await.map_err(|e| Error::read_back("reading parameters", e))?;
    data.try_into_vec::<f32>().map_err(|e| Error::read_back("reading parameters", e))
}

/// Adds flat gradients (in the order of [`trainable_values`]) into a module's.
struct AddGradients<'a> {
    grads: &'a mut GradientsParams,
    flat: &'a [f32],
    at: usize,
    short: bool,
    device: &'a Device,
}

impl ModuleVisitor for AddGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        let dims = value.dims();
        let n = dims.iter().product::<usize>();
        let Some(values) = self.flat.get(self.at..self.at + n) else {
            self.short = true;
            return;
        };
        self.at += n;
        let theirs = Tensor::<D>::from_data(TensorData::new(values.to_vec(), dims), self.device);
        let sum = match self.grads.remove::<D>(param.id) {
            Some(ours) => ours + theirs,
            None => theirs,
        };
        self.grads.register(param.id, sum);
    }
}

/// Adds `flat` (gradients in the order of [`trainable_values`], from `module`'s first trainable
/// value on) into `grads`, on `device` (the one gradients live on); returns how many values it
/// used.
pub(crate) fn add_gradients<M: Module>(module: &M, grads: &mut GradientsParams, flat: &[f32], device: &Device) -> Result<usize> {
    let mut add = AddGradients { grads, flat, at: 0, short: false, device };
    module.visit(&mut add);
    if add.short {
        return Err(Error::Training(format!("the helper sent {} gradient values, fewer than the model trains", flat.len())));
    }
    Ok(add.at)
}

/// What a forward job returns for each view: the pooled features, the prefix output at a unit
/// (phase 2's cache), or both from one pass (the features stage with phase 2 ahead).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Outputs {
    Features,
    Prefix(usize),
    FeaturesAndPrefix(usize),
}

impl Outputs {
    fn name(self) -> &'static str {
        match self {
            Outputs::Features => "features",
            Outputs::Prefix(_) => "prefix",
            Outputs::FeaturesAndPrefix(_) => "features and prefix",
        }
    }

    fn first_tail_unit(self) -> Option<usize> {
        match self {
            Outputs::Features => None,
            Outputs::Prefix(unit) | Outputs::FeaturesAndPrefix(unit) => Some(unit),
        }
    }

    fn parse(metadata: &HashMap<String, String>) -> Result<Self> {
        let unit = || number::<usize>(metadata, "first_tail_unit");
        match metadata_field(metadata, "outputs")? {
            "features" => Ok(Outputs::Features),
            "prefix" => Ok(Outputs::Prefix(unit()?)),
            "features and prefix" => Ok(Outputs::FeaturesAndPrefix(unit()?)),
            other => Err(Error::Training(format!("a forward job asking for {other:?}"))),
        }
    }
}

/// A helper's answer to a forward job: per view, in order, what [`Outputs`] asked for
/// (features as `(width, values)`, prefix outputs as `([c, h, w], values)`).
pub(crate) struct Forwarded {
    pub features: Option<(usize, Vec<f32>)>,
    pub prefix: Option<([usize; 3], Vec<f32>)>,
}

impl Forwarded {
    /// Reads a reply for `views` views that was asked for `outputs`.
    fn decode(reply: &[u8], views: usize, outputs: Outputs) -> Result<Self> {
        let (mut tensors, _) = decode(reply, "forwarded")?;
        let wrong = |name: &str, shape: &[usize]| Error::Training(format!("the helper's {name} for {views} views have the shape {shape:?}"));
        let features = match outputs {
            Outputs::Prefix(_) => None,
            _ => match take_f32(&mut tensors, "features")? {
                (shape, values) if shape.len() == 2 && shape[0] == views => Some((shape[1], values)),
                (shape, _) => return Err(wrong("features", &shape)),
            },
        };
        let prefix = match outputs {
            Outputs::Features => None,
            _ => match take_f32(&mut tensors, "prefix")? {
                (shape, values) if shape.len() == 4 && shape[0] == views => Some(([shape[1], shape[2], shape[3]], values)),
                (shape, _) => return Err(wrong("prefix outputs", &shape)),
            },
        };
        Ok(Self { features, prefix })
    }
}

/// The frozen backbone's forward passes shared with a helper: the features stage and phase 2's
/// cache give it half of each batch of views (see [`extract_features`], [`extend_prefixes`]).
pub(crate) struct ForwardShare {
    helper: Rc<dyn Helper>,
    /// The helper holds the backbone (sent with the first job).
    has_backbone: bool,
}

impl ForwardShare {
    pub fn new(helper: Rc<dyn Helper>) -> Self {
        Self { helper, has_backbone: false }
    }

    pub fn helper(&self) -> Rc<dyn Helper> {
        self.helper.clone()
    }

    /// Sends `views` for the helper to make (as `spec` and `augmentation` say) and run through
    /// `backbone`, after the backbone itself the first time; returns the pending reply.
    async fn send(&mut self, backbone: &Backbone, spec: &BackboneSpec, augmentation: &Augmentation, views: &[ViewOf<'_>], outputs: Outputs) -> Result<Reply> {
        if !self.has_backbone {
            let tensors = backbone.to_tensors().await?;
            let setup = encode("backbone", tensors, HashMap::from([("backbone".to_string(), backbone.kind().name().to_string())]))?;
            decode(&self.helper.call(setup).await?, "ready")?;
            self.has_backbone = true;
        }
        Ok(self.helper.call(forward_request(spec, augmentation, views, outputs)?))
    }
}

/// A forward job: the views' stored pictures and seeds, the settings that make them, and what
/// to return (see the module documentation).
fn forward_request(spec: &BackboneSpec, augmentation: &Augmentation, views: &[ViewOf<'_>], outputs: Outputs) -> Result<Vec<u8>> {
    let jpeg: Vec<u8> = views.iter().flat_map(|view| view.picture.bytes().iter().copied()).collect();
    let lengths: Vec<i64> = views.iter().map(|view| view.picture.bytes().len() as i64).collect();
    let tensors = TensorMap::from([
        ("jpeg".to_string(), TensorEntry { shape: vec![jpeg.len()], values: TensorValues::U8(jpeg) }),
        ("jpeg_lengths".into(), TensorEntry { shape: vec![lengths.len()], values: TensorValues::I64(lengths) }),
    ]);
    let seeds: Vec<Option<u64>> = views.iter().map(|view| view.seed).collect();
    let json = |value: serde_json::Result<String>| value.map_err(|e| Error::Training(format!("cannot describe a forward job: {e}")));
    let mut metadata = HashMap::from([
        ("outputs".to_string(), outputs.name().to_string()),
        ("seeds".into(), json(serde_json::to_string(&seeds))?),
        ("spec".into(), json(serde_json::to_string(spec))?),
        ("augmentation".into(), json(serde_json::to_string(augmentation))?),
    ]);
    if let Some(unit) = outputs.first_tail_unit() {
        metadata.insert("first_tail_unit".into(), unit.to_string());
    }
    encode("forward", tensors, metadata)
}

/// How many of `n` views or rows a helper takes: half (rounded down), none without one.
fn helper_share(n: usize, has_helper: bool) -> usize {
    if has_helper { n / 2 } else { 0 }
}

/// Sends the views of `theirs` to the helper; `None`, and the helper dropped, when that fails.
async fn send_share(
    share: &mut Option<ForwardShare>,
    backbone: &Backbone,
    spec: &BackboneSpec,
    augmentation: &Augmentation,
    theirs: &[ViewOf<'_>],
    outputs: Outputs,
) -> Option<Reply> {
    let sending = share.as_mut()?;
    if theirs.is_empty() {
        return None;
    }
    match sending.send(backbone, spec, augmentation, theirs, outputs).await {
        Ok(reply) => Some(reply),
        Err(_) => {
            *share = None;
            None
        }
    }
}

/// The helper's reply to a forward job for `views` views; `None`, and the helper dropped, when
/// it failed.
async fn receive_share(share: &mut Option<ForwardShare>, reply: Reply, views: usize, outputs: Outputs) -> Option<Forwarded> {
    match reply.await.and_then(|reply| Forwarded::decode(&reply, views, outputs)) {
        Ok(forwarded) => Some(forwarded),
        Err(_) => {
            *share = None;
            None
        }
    }
}

/// Computes the features of `batch` into `features` (and, with `centers`, keeps their center
/// views' prefix outputs there), the helper running the last half when `share` has one. A
/// helper that fails is dropped (`share` becomes `None`) and its pictures are computed here.
pub(crate) async fn extract_features(
    features: &mut FeatureCache,
    backbone: &Backbone,
    spec: &BackboneSpec,
    batch: &[&LabelledImage],
    mut centers: Option<&mut CenterPrefixes>,
    share: &mut Option<ForwardShare>,
) -> Result<()> {
    let outputs = centers.as_ref().map_or(Outputs::Features, |c| Outputs::FeaturesAndPrefix(c.first_tail_unit()));
    let (mine, theirs) = batch.split_at(batch.len() - helper_share(batch.len(), share.is_some()));
    let views: Vec<ViewOf> = theirs.iter().map(|image| ViewOf { picture: &image.stored, seed: None }).collect();
    // Center views only: the helper is given the settings, which none of them uses.
    let reply = send_share(share, backbone, spec, &Augmentation::default(), &views, outputs).await;
    async fn here(features: &mut FeatureCache, backbone: &Backbone, spec: &BackboneSpec, part: &[&LabelledImage], centers: Option<&mut CenterPrefixes>) -> Result<()> {
        match centers {
            Some(centers) => features.extract_with_prefixes(backbone, spec, part, centers).await,
            None => features.extract(backbone, spec, part).await,
        }
    }
    here(features, backbone, spec, mine, centers.as_deref_mut()).await?;
    let Some(reply) = reply else {
        return here(features, backbone, spec, theirs, centers).await;
    };
    match receive_share(share, reply, theirs.len(), outputs).await {
        Some(Forwarded { features: rows, prefix }) => {
            let ids: Vec<u32> = theirs.iter().map(|image| image.id).collect();
            if let (Some(centers), Some((shape, values))) = (centers, prefix) {
                centers.insert_rows(&ids, shape, &values)?;
            }
            let (dim, values) = rows.expect("features were asked for");
            features.insert_rows(&ids, dim, &values)
        }
        None => here(features, backbone, spec, theirs, centers).await,
    }
}

/// Makes `views` (with their classes, as `augmentation` says), runs them through the prefix up
/// to `first_tail_unit` and appends their outputs to `cache`, in order, the helper making and
/// running the last half when `share` has one. A helper that fails is dropped and its views are
/// computed here.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn extend_prefixes(
    cache: &mut PrefixCache,
    backbone: &Backbone,
    spec: &BackboneSpec,
    augmentation: &Augmentation,
    first_tail_unit: usize,
    views: &[(ViewOf<'_>, usize)],
    device: &Device,
    share: &mut Option<ForwardShare>,
) -> Result<()> {
    let outputs = Outputs::Prefix(first_tail_unit);
    let (mine, theirs) = views.split_at(views.len() - helper_share(views.len(), share.is_some()));
    let their_views: Vec<ViewOf> = theirs.iter().map(|(view, _)| *view).collect();
    let reply = send_share(share, backbone, spec, augmentation, &their_views, outputs).await;
    let made = |part: &[(ViewOf, usize)]| -> Vec<(RgbImage, usize)> { part.iter().map(|(view, class)| (view.make(augmentation, spec), *class)).collect() };
    let views = made(mine);
    cache.extend(backbone, spec, first_tail_unit, &borrowed(&views), device).await?;
    let forwarded = match reply {
        Some(reply) => receive_share(share, reply, theirs.len(), outputs).await,
        None => None,
    };
    match forwarded {
        Some(Forwarded { prefix: Some((shape, values)), .. }) => {
            let targets: Vec<usize> = theirs.iter().map(|(_, class)| *class).collect();
            cache.push_rows(shape, &values, &targets)
        }
        _ => {
            let views = made(theirs);
            cache.extend(backbone, spec, first_tail_unit, &borrowed(&views), device).await
        }
    }
}

fn borrowed(views: &[(RgbImage, usize)]) -> Vec<(&RgbImage, usize)> {
    views.iter().map(|(view, class)| (view, *class)).collect()
}

/// The helper's side: a copy of the fine-tuner's model that computes the gradients of shares
/// of its batches (see the module documentation).
pub struct Replica {
    device: Device,
    /// The leader's frozen backbone, for forward jobs.
    backbone: Option<Backbone>,
    /// The model phase 2 trains and the seed of its dropout masks, for step jobs.
    state: Option<(Classifier, TailObjective, u64)>,
}

impl Replica {
    /// A helper computing on `device` (the CPU: helpers serve the CPU path).
    pub fn new(device: Device) -> Self {
        Self { device, backbone: None, state: None }
    }

    /// Answers a request (see the module documentation); a job before its setup, or a request
    /// that does not fit the model, is refused.
    pub async fn handle(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        // The header alone names the job; the tensors are read once, by the job.
        let (_, header) = safetensors::SafeTensors::read_metadata(request)
            .map_err(|e| Error::Training(format!("a helper message that cannot be read: {e}")))?;
        match header.metadata().as_ref().and_then(|m| m.get(JOB)).map(String::as_str) {
            Some("backbone") => self.load_backbone(request),
            Some("forward") => self.forward(request).await,
            Some("setup") => self.setup(request),
            Some("step") => self.step(request).await,
            Some("validate") => self.validate(request).await,
            other => Err(Error::Training(format!("a helper request of unknown kind {other:?}"))),
        }
    }

    fn load_backbone(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        self.backbone = None;
        let (tensors, metadata) = decode(request, "backbone")?;
        let kind = BackboneKind::from_name(metadata_field(&metadata, "backbone")?)?;
        self.backbone = Some(Backbone::import(kind, &tensors, &self.device)?);
        encode("ready", TensorMap::new(), HashMap::new())
    }

    async fn forward(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        let backbone = self.backbone.as_ref().ok_or_else(|| Error::Training("a forward job before the backbone".into()))?;
        let (mut tensors, metadata) = decode(request, "forward")?;
        let outputs = Outputs::parse(&metadata)?;
        if outputs.first_tail_unit().is_some_and(|unit| unit >= backbone.kind().units()) {
            return Err(Error::Training(format!("a forward job for {outputs:?} of a backbone of {} units", backbone.kind().units())));
        }
        let (spec, views) = views_of_forward_job(&mut tensors, &metadata)?;
        let size = spec.input_size as usize;
        let shape = [views.len(), 3, size, size];
        let input = Tensor::<4>::from_data(TensorData::new(input_values(&views.iter().collect::<Vec<_>>(), &spec), shape), &self.device);
        let (features, prefix) = match outputs {
            Outputs::Features => (Some(backbone.forward(input)), None),
            Outputs::Prefix(unit) => (None, Some(backbone.forward_prefix(input, unit))),
            Outputs::FeaturesAndPrefix(unit) => {
                let prefix = backbone.forward_prefix(input, unit);
                (Some(backbone.forward_tail(prefix.clone(), unit)), Some(prefix))
            }
        };
        let mut tensors = TensorMap::new();
        if let Some(features) = features {
            let dims = features.dims().to_vec();
            tensors.insert("features".into(), TensorEntry::f32(dims, read_flat(vec![features.reshape([-1])]).await?));
        }
        if let Some(prefix) = prefix {
            let dims = prefix.dims().to_vec();
            tensors.insert("prefix".into(), TensorEntry::f32(dims, read_flat(vec![prefix.reshape([-1])]).await?));
        }
        encode("forwarded", tensors, HashMap::new())
    }

    fn setup(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        self.state = None;
        let (mut tensors, metadata) = decode(request, "setup")?;
        let kind = BackboneKind::from_name(metadata_field(&metadata, "backbone")?)?;
        let plan = UnfreezePlan::new(kind, number(&metadata, "unfreeze")?)?;
        let (classes, hidden): (usize, usize) = (number(&metadata, "classes")?, number(&metadata, "hidden")?);
        let standardizer = match tensors.contains_key(STANDARDIZER_MEAN) {
            true => {
                let (_, mean) = take_f32(&mut tensors, STANDARDIZER_MEAN)?;
                let (_, inv_std) = take_f32(&mut tensors, STANDARDIZER_INV_STD)?;
                Some(Standardizer::from_parts(mean, inv_std)?)
            }
            false => None,
        };
        let config = HeadConfig::new(kind.features(), classes).with_hidden(hidden).with_dropout(number(&metadata, "dropout")?);
        let classifier = load_params(Classifier::new(kind, &config, &self.device), &tensors, &ClassifierNames { kind, hidden: hidden > 0 })?;
        let model = plan.trainable(classifier, &self.device);
        let values = trainable_len(&model);
        let objective = TailObjective { plan, standardizer, label_smoothing: number(&metadata, "label_smoothing")? };
        self.state = Some((model, objective, number(&metadata, "seed")?));
        encode("ready", TensorMap::new(), HashMap::from([("values".to_string(), values.to_string())]))
    }

    async fn step(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        let PhaseTwoJob { model, objective, seed, rows, mut tensors, metadata } = self.phase_two_job(request, "step")?;
        let batch: usize = number(&metadata, "batch")?;
        let draw = DropoutDraw { seed, step: number(&metadata, "step")?, first_row: number(&metadata, "first_row")? };
        let targets = match tensors.remove("targets") {
            Some(TensorEntry { values: TensorValues::I64(targets), .. }) => targets,
            _ => return Err(Error::Training("a helper step without its targets".into())),
        };
        let n = rows.shape()[0];
        if n != targets.len() || draw.first_row + n > batch {
            return Err(Error::Training(format!("a helper step of {} targets for {n} rows from row {} of a batch of {batch}", targets.len(), draw.first_row)));
        }
        let training = self.device.clone().autodiff();
        let x = Tensor::<4>::from_data(rows, &training);
        let y = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &training);
        let logits = objective.logits(&model, x, Some(&draw));
        let loss = objective.loss(logits.clone(), y.clone());
        let correct = logits.detach().argmax(1).reshape([n]).equal(y).int().sum();
        let mut grads = loss.clone().mul_scalar(n as f32 / batch as f32).backward();
        let grads = GradientsParams::from_module(&mut grads, &model);
        let gradients = flat_gradients(&model, &grads).await?;
        let read = |t: Tensor<1>| async move { t.into_data_async().await.ok().and_then(|d| d.try_to_vec::<f32>().ok()).and_then(|v| v.first().copied()) };
        let loss_sum = read(loss.detach().mul_scalar(n as f32)).await.ok_or_else(|| Error::Backend("cannot read the share's loss".into()))?;
        let correct = read(correct.float()).await.ok_or_else(|| Error::Backend("cannot read the share's accuracy".into()))?;
        let tensors = TensorMap::from([
            ("gradients".to_string(), TensorEntry::f32(vec![gradients.len()], gradients)),
            ("loss".into(), TensorEntry::f32(vec![1], vec![loss_sum])),
            ("correct".into(), TensorEntry::f32(vec![1], vec![correct])),
        ]);
        encode("gradients", tensors, HashMap::new())
    }

    /// Cached rows and trainable values from a request to the model set up for phase 2: the model
    /// with those values, its objective and seed, the rows as `[n, c, h, w]`, and the request's
    /// other tensors and metadata.
    fn phase_two_job(&self, request: &[u8], job: &str) -> Result<PhaseTwoJob<'_>> {
        let (model, objective, seed) = self.state.as_ref().ok_or_else(|| Error::Training(format!("a helper {job} before its setup")))?;
        let (mut tensors, metadata) = decode(request, job)?;
        let (_, values) = take_f32(&mut tensors, "params")?;
        let (shape, rows) = take_f32(&mut tensors, "rows")?;
        let [n, c, h, w] = shape[..] else { return Err(Error::Training(format!("helper rows of shape {shape:?}, not 4-dimensional"))) };
        if n == 0 || rows.len() != n * c * h * w {
            return Err(Error::Training(format!("a helper {job} with rows of shape {shape:?}")));
        }
        let model = with_trainable_values(model.clone(), &values)?;
        Ok(PhaseTwoJob { model, objective, seed: *seed, rows: TensorData::new(rows, [n, c, h, w]), tensors, metadata })
    }

    async fn validate(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        let job = self.phase_two_job(request, "validate")?;
        let logits = job.objective.logits(&job.model.valid(), Tensor::<4>::from_data(job.rows, &self.device), None);
        let dims = logits.dims().to_vec();
        let tensors = TensorMap::from([("logits".to_string(), TensorEntry::f32(dims, read_flat(vec![logits.reshape([-1])]).await?))]);
        encode("logits", tensors, HashMap::new())
    }
}

/// What a step or validate request gives the replica to work on (see [`Replica::phase_two_job`]).
struct PhaseTwoJob<'a> {
    model: Classifier,
    objective: &'a TailObjective,
    seed: u64,
    rows: TensorData,
    tensors: TensorMap,
    metadata: HashMap<String, String>,
}

/// The views a forward job asks for, made from its pictures as [`ViewOf::make`] makes them, and
/// the preprocessing they are for.
fn views_of_forward_job(tensors: &mut TensorMap, metadata: &HashMap<String, String>) -> Result<(BackboneSpec, Vec<RgbImage>)> {
    let refused = |what: String| Error::Training(format!("a forward job with {what}"));
    let spec: BackboneSpec = json_field(metadata, "spec", "a forward job with an unreadable spec")?;
    let augmentation: Augmentation = json_field(metadata, "augmentation", "a forward job with unreadable augmentation settings")?;
    let seeds: Vec<Option<u64>> = json_field(metadata, "seeds", "a forward job with unreadable seeds")?;
    let (Some(TensorEntry { values: TensorValues::U8(jpeg), .. }), Some(TensorEntry { values: TensorValues::I64(lengths), .. })) = (tensors.remove("jpeg"), tensors.remove("jpeg_lengths")) else {
        return Err(refused("no pictures".into()));
    };
    // Checked: lengths that overflow when summed must be refused, not wrap around to the total.
    let total = lengths.iter().try_fold(0i64, |sum, &n| if n < 0 { None } else { sum.checked_add(n) });
    if seeds.is_empty() || seeds.len() != lengths.len() || total != Some(jpeg.len() as i64) {
        return Err(refused(format!("{} seeds for {} pictures in {} bytes", seeds.len(), lengths.len(), jpeg.len())));
    }
    let mut at = 0;
    let views = lengths
        .iter()
        .zip(seeds)
        .map(|(&length, seed)| {
            let bytes = &jpeg[at..at + length as usize];
            at += length as usize;
            let pixels = StoredPicture::decode_bytes(bytes).ok_or_else(|| refused("a picture that is no JPEG".into()))?;
            if pixels.width().min(pixels.height()) < spec.input_size {
                return Err(refused(format!("a {}×{} picture for {} px views", pixels.width(), pixels.height(), spec.input_size)));
            }
            Ok(view_of(&pixels, seed, &augmentation, &spec))
        })
        .collect::<Result<_>>()?;
    Ok((spec, views))
}

/// `model` with the values of its trainable parameters replaced by `values` (visit order).
fn with_trainable_values(model: Classifier, values: &[f32]) -> Result<Classifier> {
    struct Load<'a> {
        values: &'a [f32],
        at: usize,
        short: bool,
    }
    impl ModuleMapper for Load<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let value = param.val();
            if !value.is_require_grad() {
                return param;
            }
            let dims = value.dims();
            let n = dims.iter().product::<usize>();
            let Some(slice) = self.values.get(self.at..self.at + n) else {
                self.short = true;
                return param;
            };
            self.at += n;
            let data = TensorData::new(slice.to_vec(), dims);
            param.map(|old| Tensor::from_data(data, &old.device()).require_grad())
        }
    }
    let mut load = Load { values, at: 0, short: false };
    let model = model.map(&mut load);
    if load.short || load.at != values.len() {
        return Err(Error::Training(format!("{} parameter values for a model that trains {}", values.len(), trainable_len(&model))));
    }
    Ok(model)
}

/// A helper in the same thread, for tests: it answers at the call, before its reply is polled,
/// and counts the requests it answered.
#[cfg(test)]
pub(crate) struct InThread(std::cell::RefCell<Replica>, std::cell::Cell<usize>);

#[cfg(test)]
impl InThread {
    pub fn new() -> Rc<Self> {
        Rc::new(Self(std::cell::RefCell::new(Replica::new(Device::flex())), std::cell::Cell::new(0)))
    }

    pub fn answered(&self) -> usize {
        self.1.get()
    }
}

#[cfg(test)]
impl Helper for InThread {
    fn call(&self, request: Vec<u8>) -> Reply {
        let reply = pollster::block_on(self.0.borrow_mut().handle(&request));
        self.1.set(self.1.get() + reply.is_ok() as usize);
        Box::pin(std::future::ready(reply))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use burn::tensor::Distribution;

    use super::*;
    use crate::train::{CacheStorage, EpochReport, FineTuneOptions, FineTuner, PrefixCache};

    /// A helper whose answer to a request is the function's.
    struct Answers<F>(F);

    impl<F: Fn(&[u8]) -> Result<Vec<u8>>> Helper for Answers<F> {
        fn call(&self, request: Vec<u8>) -> Reply {
            Box::pin(std::future::ready((self.0)(&request)))
        }
    }

    /// EfficientNet-Lite0 with a 3-class head (a hidden layer and dropout, whose masks must be
    /// the same whichever engine computes a row), the prefix outputs of 10 random 32 px pictures
    /// for a plan that fine-tunes the last unit, and a standardizer for the head's features. Made once per test: tests run in parallel and
    /// draw from the same random generator.
    struct Start {
        classifier: Classifier,
        plan: UnfreezePlan,
        train: PrefixCache,
        standardizer: Standardizer,
    }

    fn start() -> Start {
        let device = Device::flex();
        let kind = BackboneKind::EfficientNetLite0;
        let classifier = Classifier::new(kind, &HeadConfig::new(kind.features(), 3).with_hidden(16).with_dropout(0.3), &device);
        let plan = UnfreezePlan::new(kind, 1).unwrap();
        let pictures = Tensor::<4>::random([10, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let prefix = classifier.backbone.forward_prefix(pictures, plan.first_tail_unit());
        let [_, c, h, w] = prefix.dims();
        let mut train = PrefixCache::new(CacheStorage::F16);
        let targets: Vec<usize> = (0..10).map(|i| i % 3).collect();
        train.push_rows([c, h, w], &prefix.into_data().try_to_vec::<f32>().unwrap(), &targets).unwrap();
        let mean = (0..kind.features()).map(|i| (i % 7) as f32 * 0.01).collect();
        let inv_std = (0..kind.features()).map(|i| 1.0 + (i % 5) as f32 * 0.1).collect();
        Start { classifier, plan, train, standardizer: Standardizer::from_parts(mean, inv_std).unwrap() }
    }

    /// A fine-tuner from `start` (2 epochs, batches of 4, validated on the training views);
    /// `helper` computes shares of its batches and validation passes.
    fn tuner(start: &Start, helper: Option<Rc<dyn Helper>>) -> FineTuner {
        let options = FineTuneOptions { epochs: 2, batch_size: 4, ..Default::default() };
        let (classifier, standardizer, train) = (start.classifier.clone(), Some(start.standardizer.clone()), start.train.clone());
        let val = start.train.clone();
        let mut tuner = FineTuner::new(classifier, standardizer, 3, start.plan, options, 5, train, val, &Device::flex()).unwrap();
        if let Some(helper) = helper {
            tuner.set_helper(helper);
        }
        tuner
    }

    /// Both epochs' reports, the trained values, and whether the helper was kept.
    fn train(mut tuner: FineTuner) -> (Vec<EpochReport>, Vec<f32>, bool) {
        let reports = (0..2).map(|_| pollster::block_on(tuner.train_epoch()).unwrap()).collect();
        let values = pollster::block_on(trainable_values(tuner.model_in_training())).unwrap();
        (reports, values, tuner.has_helper())
    }

    fn max_difference(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn a_helper_computing_half_of_each_batch_trains_the_same_model_as_one_engine() {
        let start = start();
        let (alone, alone_values, _) = train(tuner(&start, None));
        let helper = InThread::new();
        let (shared, shared_values, kept) = train(tuner(&start, Some(helper.clone())));
        assert!(kept, "the helper worked every step");
        // Batches of 4, 4 and 2 rows: shares of 1, 1 and none; the sums differ only in rounding.
        // The setup, the validation before training, and per epoch two steps and a validation.
        assert_eq!(helper.answered(), 1 + 1 + 2 * 3);
        for (a, s) in alone.iter().zip(&shared) {
            assert!((a.train_loss - s.train_loss).abs() < 1e-4, "losses {} and {}", a.train_loss, s.train_loss);
            assert_eq!(a.train_accuracy, s.train_accuracy);
            let (a_val, s_val) = (a.val_loss.unwrap(), s.val_loss.unwrap());
            assert!((a_val - s_val).abs() < 1e-4, "validation losses {a_val} and {s_val}");
            assert_eq!(a.val_accuracy, s.val_accuracy);
        }
        let difference = max_difference(&alone_values, &shared_values);
        assert!(difference < 1e-4, "the models differ by up to {difference}");
        let moved = max_difference(&alone_values, &pollster::block_on(trainable_values(tuner(&start, None).model_in_training())).unwrap());
        assert!(moved > 1e-3, "training changed the values ({moved})");
    }

    #[test]
    fn a_helper_that_fails_is_dropped_and_its_steps_run_here() {
        let start = start();
        let (alone, alone_values, _) = train(tuner(&start, None));
        let failing: [fn(&[u8]) -> Result<Vec<u8>>; 3] = [
            |_| Err(Error::Backend("the helper worker crashed".into())),
            |_| Ok(b"not a reply".to_vec()),
            // A setup reply that claims another model: refused before any step is shared.
            |_| encode("ready", TensorMap::new(), HashMap::from([("values".to_string(), "7".to_string())])),
        ];
        for answer in failing {
            let (reports, values, kept) = train(tuner(&start, Some(Rc::new(Answers(answer)))));
            assert!(!kept, "a failing helper is dropped");
            assert_eq!(reports, alone, "the same epochs as one engine alone");
            assert_eq!(values, alone_values);
        }
    }

    #[test]
    fn a_helper_whose_gradients_do_not_fit_is_dropped() {
        // Answers the setup as a helper does, and each step with too few gradient values.
        let replica = RefCell::new(Replica::new(Device::flex()));
        let answer = move |request: &[u8]| {
            let reply = pollster::block_on(replica.borrow_mut().handle(request))?;
            match decode(&reply, "gradients") {
                Ok(_) => encode("gradients", TensorMap::from([
                    ("gradients".to_string(), TensorEntry::f32(vec![3], vec![0.0; 3])),
                    ("loss".into(), TensorEntry::f32(vec![1], vec![1.0])),
                    ("correct".into(), TensorEntry::f32(vec![1], vec![0.0])),
                ]), HashMap::new()),
                Err(_) => Ok(reply),
            }
        };
        let start = start();
        let (alone, alone_values, _) = train(tuner(&start, None));
        let (reports, values, kept) = train(tuner(&start, Some(Rc::new(Answers(answer)))));
        assert!(!kept);
        assert_eq!(reports, alone);
        assert_eq!(values, alone_values);
    }

    #[test]
    fn a_helper_makes_the_views_this_engine_makes_from_the_stored_pictures() {
        let spec = BackboneKind::EfficientNetLite0.spec();
        let picture = |shade: u8| {
            let pixels = RgbImage::from_fn(300, spec.resize_size, |x, y| image::Rgb([shade, (x % 251) as u8, (y * 3 % 256) as u8]));
            StoredPicture::new("p.png", &pixels).unwrap()
        };
        let (a, b) = (picture(10), picture(200));
        let views = [ViewOf { picture: &a, seed: None }, ViewOf { picture: &b, seed: Some(3) }, ViewOf { picture: &a, seed: Some(u64::MAX) }];
        let augmentation = Augmentation::default();
        let request = forward_request(&spec, &augmentation, &views, Outputs::Features).unwrap();
        let (mut tensors, metadata) = decode(&request, "forward").unwrap();
        let (their_spec, theirs) = views_of_forward_job(&mut tensors, &metadata).unwrap();
        assert_eq!(their_spec, spec);
        let ours: Vec<RgbImage> = views.iter().map(|view| view.make(&augmentation, &spec)).collect();
        assert!(theirs == ours, "the same views, pixel for pixel");
        let other_seed = ViewOf { picture: &b, seed: Some(4) }.make(&augmentation, &spec);
        assert!(other_seed != ours[1], "a seed draws its own view");

        let short = forward_request(&spec, &augmentation, &views[..1], Outputs::Features).unwrap();
        let (mut tensors, mut metadata) = decode(&short, "forward").unwrap();
        metadata.insert("seeds".into(), "[null, 1]".into());
        let refused = views_of_forward_job(&mut tensors, &metadata).unwrap_err();
        assert!(refused.to_string().contains("2 seeds for 1 pictures"), "{refused}");

        // Lengths whose sum wraps around to the byte count are refused, not sliced.
        let (mut tensors, mut metadata) = decode(&request, "forward").unwrap();
        let bytes = tensors["jpeg"].num_elements() as i64;
        metadata.insert("seeds".into(), "[null, null, null]".into());
        tensors.insert("jpeg_lengths".into(), TensorEntry { shape: vec![3], values: TensorValues::I64(vec![i64::MAX, i64::MAX, bytes + 2]) });
        let refused = views_of_forward_job(&mut tensors, &metadata).unwrap_err();
        assert!(refused.to_string().contains("3 seeds for 3 pictures"), "{refused}");
    }

    #[test]
    fn a_replica_refuses_steps_before_its_setup_and_unreadable_requests() {
        let mut replica = Replica::new(Device::flex());
        assert!(pollster::block_on(replica.handle(b"\x08\0\0\0\0\0\0\0{}      ")).is_err());
        let tensors = TensorMap::from([("params".to_string(), TensorEntry::f32(vec![1], vec![0.0]))]);
        let step = encode("step", tensors, HashMap::from([("batch".to_string(), "1".to_string())])).unwrap();
        let refused = pollster::block_on(replica.handle(&step)).unwrap_err();
        assert!(refused.to_string().contains("before its setup"), "{refused}");
        let unknown = encode("train everything", TensorMap::new(), HashMap::new()).unwrap();
        assert!(pollster::block_on(replica.handle(&unknown)).is_err());
    }
}
