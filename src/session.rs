//! A training session: one backbone, the user's pictures, and the recipe run on them. This is the
//! one owner of the recipe: the page's worker and the CLI's `train` are the same loop,
//!
//! ```text
//! session.start(recipe)?;
//! loop { let event = session.step(budget).await?; show(event); if event is Finished { break } }
//! ```
//!
//! and only show the [`Event`]s. The session moves through [`Stage`]s: features of every picture
//! (frozen backbone, once per picture), the head (phase 1), then when the recipe fine-tunes,
//! caching the frozen prefix's output per augmented view and fine-tuning the last units (phase 2),
//! then the evaluation on the validation split.

use std::rc::Rc;

use burn::tensor::Device;
use serde::Serialize;

use image::RgbImage;

use crate::data::{DatasetSummary, ImageSet, MIN_IMAGES_PER_CLASS, PreparedImage, ViewOf, decode_image, first_copies, resize_and_center_crop, stratified_split};
use crate::error::{Error, Result};
use crate::explain::{Candidate, DuplicateGroup, GradCam, NEAR_DUPLICATE_SIMILARITY, SuspectReport, duplicates, suspects};
use crate::inference::{Prediction, TrainedModel, meta};
use crate::model::{Backbone, BackboneKind, BackboneSpec, Classifier, Head};
use crate::recipe::Recipe;
use crate::train::{
    CacheStorage, CenterPrefixes, EpochReport, Evaluation, FeatureCache, FineTuner, ForwardShare, HeadTrainer, Helper, LabelledFeatures, PrefixCache,
    Recommendation, UnfreezePlan, evaluate, extend_prefixes, extract_features, recommend,
};
use crate::weights::{read_safetensors, read_weights_file};

/// Where a session is. Pictures can be added and removed in `Idle` and `Done` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// No run started (or the last one was stopped before it had a model).
    Idle,
    /// The frozen backbone computes each picture's features.
    Features,
    /// Phase 1: the new head trains on the cached features.
    Head,
    /// Phase 2 setup: the frozen prefix runs once per augmented view.
    Caching,
    /// Phase 2: the last units and the head train together.
    FineTuning,
    /// The final model is measured on the validation split.
    Evaluating,
    /// A model exists: it can be exported and tried.
    Done,
}

/// Which phase an epoch belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Head,
    Fine,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// Stopped by the user before the recipe's end.
    pub stopped: bool,
    /// There is a model to export and try (at least one head epoch finished).
    pub has_model: bool,
    /// Backbone units the kept model's phase 2 fine-tuned; 0 when only the head trained, or
    /// when the phase-1 model was kept (then `best_epoch` is 0).
    pub fine_tuned: usize,
    /// Phase 2 ended before its last epoch because the validation loss stopped improving.
    pub stopped_early: bool,
    /// The phase-2 epoch (1-based) whose weights were kept, when phase 2 ran with a validation
    /// split; 0: the phase-1 model was kept, the best fine-tuning epoch being less accurate on
    /// validation.
    pub best_epoch: Option<usize>,
}

/// What one [`Session::step`] did. The page's state is a reducer over these; the CLI prints them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Event {
    /// Features of `done` of `total` pictures are computed.
    Features { done: usize, total: usize },
    /// The pictures were split; phase 1 starts. `unfreeze` is phase 2's depth (0: none).
    Split { train: usize, val: usize, unfreeze: usize, notes: Vec<String> },
    /// One epoch of either phase.
    Epoch { phase: Phase, report: EpochReport },
    /// Phase 2's prefix cache: `done` of `total` views, taking `bytes`.
    Cache { done: usize, total: usize, bytes: usize, note: Option<String> },
    /// The final model on the validation split.
    Evaluated { evaluation: Evaluation },
    /// The run is over; `step` keeps returning this until the next `start`.
    Finished { outcome: Outcome },
}

impl Outcome {
    /// A run that ended before it had a model.
    const NO_MODEL: Outcome = Outcome { stopped: true, has_model: false, fine_tuned: 0, stopped_early: false, best_epoch: None };
}

impl Event {
    pub fn is_finished(&self) -> bool {
        matches!(self, Event::Finished { .. })
    }
}

/// What [`Session::start`] settled: phase 2's depth (the recommendation unless the recipe set
/// one) and the work ahead.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Started {
    pub unfreeze: usize,
    /// Pictures whose features are still to compute.
    pub pending_features: usize,
}

/// The head of a re-imported webtune export, which phase 1 continues from when the classes match.
struct Resume {
    labels: Vec<String>,
    head: Head,
}

/// A run's fixed facts (recipe, split) and its trainers.
struct Run {
    recipe: Recipe,
    unfreeze: usize,
    labels: Vec<String>,
    /// `(image id, class)` of each split, fixed when the run starts.
    train: Vec<(u32, usize)>,
    val: Vec<(u32, usize)>,
    head: HeadTrainer,
    /// The head continues a re-imported export's: a model exists before the first epoch.
    resumed: bool,
    /// The fine-tuner, once phase 2 trains; its model replaces the head's from then on.
    fine: Option<FineTuner>,
    /// Center-view prefix outputs from the features stage, until phase 2's cache takes them.
    centers: CenterPrefixes,
}

impl Run {
    fn has_model(&self) -> bool {
        self.resumed || self.head.epochs_done() > 0
    }
}

/// Phase 2's prefix cache being filled: views still to run through the frozen prefix.
struct Caching {
    plan: UnfreezePlan,
    /// `(image id, class, augmentation seed, is validation)`; `None` is the center view. Popped
    /// from the end.
    queue: Vec<(u32, usize, Option<u64>, bool)>,
    total: usize,
    note: Option<String>,
    train: PrefixCache,
    val: PrefixCache,
}

enum State {
    Idle,
    /// `distinct`: the pictures the run trains on and the notes about copies, found at start
    /// (pictures cannot change while a run goes).
    /// `centers`: with phase 2 ahead, the prefix outputs of the center views computed along
    /// with the features (phase 2 caches every picture's center view).
    Features { recipe: Recipe, unfreeze: usize, total: usize, distinct: (Vec<usize>, Vec<String>), centers: Option<CenterPrefixes> },
    Head(Run),
    Caching(Run, Caching),
    FineTuning(Run),
    Evaluating(Run),
    Done(Run, Outcome),
}

pub struct Session {
    spec: BackboneSpec,
    backbone: Backbone,
    resume: Option<Resume>,
    /// A model reopened from a webtune export (a saved project): it predicts and exports until
    /// the next run replaces it.
    loaded: Option<TrainedModel>,
    images: ImageSet,
    features: FeatureCache,
    state: State,
    device: Device,
    /// A second engine that computes half of each batch: features, phase 2's cache and steps
    /// (see [`crate::train::Helper`]); dropped when it fails.
    helper: Option<ForwardShare>,
}

impl Session {
    /// Loads a `kind` backbone from a weights file (safetensors or PyTorch `.pth`/`.pt`) onto
    /// `device`. A file that does not fit is refused naming the first tensor that differs.
    ///
    /// A model exported by webtune is accepted too: its (fine-tuned) backbone is used, and phase 1
    /// continues from its head when the classes are the same, so training picks up where it left off.
    pub fn new(kind: BackboneKind, weights: &[u8], device: Device) -> Result<Self> {
        let is_export = read_safetensors(weights).is_ok_and(|(_, metadata)| metadata.contains_key(meta::LABELS));
        let (backbone, resume) = if is_export {
            let model = TrainedModel::from_safetensors(weights, &device)?;
            if model.kind() != kind {
                return Err(Error::weights(format!(
                    "this file is a webtune export whose backbone is {}, not {kind}: choose {} to continue training it",
                    model.kind(),
                    model.kind()
                )));
            }
            (model.classifier.backbone, Some(Resume { labels: model.labels, head: model.classifier.head }))
        } else {
            (Backbone::import(kind, &read_weights_file(weights)?, &device)?, None)
        };
        let spec = kind.spec();
        Ok(Self {
            images: ImageSet::new(spec.clone()),
            spec,
            backbone,
            resume,
            loaded: None,
            features: FeatureCache::default(),
            state: State::Idle,
            device,
            helper: None,
        })
    }

    /// Reopens a model exported by webtune (a saved project's) so that it predicts and exports
    /// as if this session had trained it, until the next run replaces it. Its backbone must be
    /// this session's architecture; anything else is refused and the session is unchanged.
    /// Returns the model's classes.
    pub fn load_model(&mut self, bytes: &[u8]) -> Result<Vec<String>> {
        self.editable()?;
        if !read_safetensors(bytes).is_ok_and(|(_, metadata)| metadata.contains_key(meta::LABELS)) {
            return Err(Error::weights("not a model exported by webtune (no class labels in its metadata)"));
        }
        let model = TrainedModel::from_safetensors(bytes, &self.device)?;
        if model.kind() != self.backbone.kind() {
            return Err(Error::weights(format!(
                "this model's backbone is {}, not {}: choose {} as the backbone first",
                model.kind(),
                self.backbone.kind(),
                model.kind()
            )));
        }
        let labels = model.labels.clone();
        self.state = State::Idle;
        self.loaded = Some(model);
        Ok(labels)
    }

    /// Has `helper` compute half of each batch of the frozen backbone's forward passes (features,
    /// phase 2's cache) and of phase 2's steps from now on (`None`: this engine alone). A helper
    /// that fails is dropped, and this engine does its work.
    pub fn set_helper(&mut self, helper: Option<Rc<dyn Helper>>) {
        self.helper = helper.map(ForwardShare::new);
    }

    /// Whether a helper computes half of each batch (one was set and has not failed).
    pub fn has_helper(&self) -> bool {
        self.helper.is_some()
    }

    /// The classes of the exported model this session was created from, if it was.
    pub fn continues_from(&self) -> Option<&[String]> {
        self.resume.as_ref().map(|r| r.labels.as_slice())
    }

    pub fn spec(&self) -> &BackboneSpec {
        &self.spec
    }

    pub fn backbone_kind(&self) -> BackboneKind {
        self.backbone.kind()
    }

    pub fn stage(&self) -> Stage {
        match &self.state {
            State::Idle => Stage::Idle,
            State::Features { .. } => Stage::Features,
            State::Head(_) => Stage::Head,
            State::Caching(..) => Stage::Caching,
            State::FineTuning(_) => Stage::FineTuning,
            State::Evaluating(_) => Stage::Evaluating,
            State::Done(..) => Stage::Done,
        }
    }

    fn editable(&self) -> Result<()> {
        match self.state {
            State::Idle | State::Done(..) => Ok(()),
            _ => Err(Error::Training("pictures cannot change while training runs: stop it first".into())),
        }
    }

    /// Decodes and adds one image; on error nothing already added is lost.
    pub fn add_image(&mut self, label: &str, file_name: &str, bytes: &[u8]) -> Result<u32> {
        self.editable()?;
        self.images.add(label, file_name, bytes)
    }

    /// Adds a picture decoded beforehand for this session's backbone ([`PreparedImage::new`] with
    /// [`Self::spec`]), as [`Self::add_image`] adds one.
    pub fn add_prepared_image(&mut self, prepared: PreparedImage) -> Result<u32> {
        self.editable()?;
        Ok(self.images.add_prepared(prepared))
    }

    /// Adds a picture given as the bytes [`Self::compact_image`] returned (see
    /// [`ImageSet::add_compact`]): a page re-adding its pictures to a new engine or after a
    /// reload needs no full-size decode.
    pub fn add_compact_image(&mut self, label: &str, file_name: &str, bytes: &[u8]) -> Result<u32> {
        self.editable()?;
        self.images.add_compact(label, file_name, bytes)
    }

    /// The picture as the image set keeps it (resized, JPEG), for [`Self::add_compact_image`].
    pub fn compact_image(&self, id: u32) -> Result<&[u8]> {
        self.images.compact(id)
    }

    pub fn add_class(&mut self, label: &str) -> Result<()> {
        self.editable()?;
        self.images.add_class(label)
    }

    pub fn remove_class(&mut self, label: &str) -> Result<()> {
        self.editable()?;
        self.images.remove_class(label);
        let images = &self.images;
        self.features.retain(|id| images.get(id).is_some());
        Ok(())
    }

    /// Renames a class (see [`ImageSet::rename_class`]). Features belong to pictures, not to
    /// names, so none is computed again; a finished run's model takes the new name too, so it
    /// can be exported and tried without training again. Returns the new label.
    pub fn rename_class(&mut self, from: &str, to: &str) -> Result<String> {
        self.editable()?;
        let to = self.images.rename_class(from, to)?;
        if let State::Done(run, _) = &mut self.state {
            for label in run.labels.iter_mut().filter(|l| *l == from) {
                *label = to.clone();
            }
        }
        Ok(to)
    }

    /// Moves every picture of `from` into `into` and removes `from`; features are kept.
    pub fn merge_classes(&mut self, from: &str, into: &str) -> Result<()> {
        self.editable()?;
        self.images.merge_classes(from, into)
    }

    /// Moves picture `id` to the existing class `to`; its features are kept.
    pub fn move_picture(&mut self, id: u32, to: &str) -> Result<()> {
        self.editable()?;
        self.images.move_to(id, to)
    }

    /// Removes picture `id` and its features; its class stays.
    pub fn remove_picture(&mut self, id: u32) -> Result<()> {
        self.editable()?;
        self.images.remove(id)?;
        self.features.retain(|kept| kept != id);
        Ok(())
    }

    /// Pictures whose backbone features are computed and kept.
    pub fn cached_features(&self) -> usize {
        self.features.len()
    }

    pub fn summary(&self) -> DatasetSummary {
        self.images.summary()
    }

    /// Which recipe fits the current images, and why.
    pub fn recommendation(&self) -> Recommendation {
        recommend(self.backbone.kind(), &self.summary().classes.iter().map(|c| c.count).collect::<Vec<_>>())
    }

    fn pending_features(&self) -> usize {
        self.images.images().iter().filter(|i| !self.features.contains(i.id)).count()
    }

    /// Starts a run of `recipe` on the pictures as they are now. Settings out of range and data
    /// that cannot be trained on are refused here, before any work.
    pub fn start(&mut self, recipe: Recipe) -> Result<Started> {
        self.editable()?;
        recipe.validate(self.backbone.kind())?;
        self.images.check_trainable()?;
        let distinct = distinct_pictures(self.images.images(), &self.images.labels(), |label| {
            self.images.class_index(label).expect("labels come from images")
        })?;
        let unfreeze = recipe.unfreeze.unwrap_or_else(|| self.recommendation().unfreeze);
        let pending_features = self.pending_features();
        let centers = match unfreeze {
            0 => None,
            _ => Some(CenterPrefixes::new(UnfreezePlan::new(self.backbone.kind(), unfreeze)?.first_tail_unit())),
        };
        self.loaded = None;
        self.state = State::Features { recipe, unfreeze, total: pending_features, distinct, centers };
        Ok(Started { unfreeze, pending_features })
    }

    /// Does the next piece of work, at most `budget` pictures or views at a time (features,
    /// caching) or one epoch, and says what it did. After an error the session keeps the model
    /// trained so far, if any (stage `Done`), else goes back to `Idle`.
    pub async fn step(&mut self, budget: usize) -> Result<Event> {
        let state = std::mem::replace(&mut self.state, State::Idle);
        match self.advance(state, budget.max(1)).await {
            Ok((state, event)) => {
                self.state = state;
                Ok(event)
            }
            Err((state, error)) => {
                self.state = state;
                Err(error)
            }
        }
    }

    /// Ends the run now. The model trained so far stays (stage `Done`) when there is one.
    pub fn stop(&mut self) -> Outcome {
        let (state, outcome) = settle(std::mem::replace(&mut self.state, State::Idle));
        self.state = state;
        outcome
    }

    async fn advance(&mut self, state: State, budget: usize) -> std::result::Result<(State, Event), (State, Error)> {
        match state {
            State::Idle => Err((State::Idle, Error::Training("start a run first".into()))),
            State::Features { recipe, unfreeze, total, distinct, mut centers } => {
                let pending: Vec<_> =
                    self.images.images().iter().filter(|i| !self.features.contains(i.id)).take(budget).collect();
                if pending.is_empty() {
                    return match self.split(recipe, unfreeze, distinct, centers.unwrap_or_default()) {
                        Ok((run, event)) => Ok((State::Head(run), event)),
                        Err(e) => Err((State::Idle, e)),
                    };
                }
                let extracted = extract_features(&mut self.features, &self.backbone, &self.spec, &pending, centers.as_mut(), &mut self.helper).await;
                if let Err(e) = extracted {
                    return Err((State::Idle, e));
                }
                let done = total - self.pending_features().min(total);
                Ok((State::Features { recipe, unfreeze, total, distinct, centers }, Event::Features { done, total }))
            }
            State::Head(mut run) => match run.head.train_epoch().await {
                Ok(report) => {
                    let next = if report.done { self.after_head(run) } else { Ok(State::Head(run)) };
                    match next {
                        Ok(state) => Ok((state, Event::Epoch { phase: Phase::Head, report })),
                        Err((state, e)) => Err((state, e)),
                    }
                }
                Err(e) => Err(failed(State::Head(run), e)),
            },
            State::Caching(run, caching) => self.cache(run, caching, budget).await,
            State::FineTuning(mut run) => {
                let tuner = run.fine.as_mut().expect("fine-tuning has a fine-tuner");
                match tuner.train_epoch().await {
                    Ok(report) => {
                        let state = if report.done { self.after_training(run) } else { State::FineTuning(run) };
                        Ok((state, Event::Epoch { phase: Phase::Fine, report }))
                    }
                    Err(e) => Err(failed(State::FineTuning(run), e)),
                }
            }
            State::Evaluating(run) => match self.evaluate(&run).await {
                Ok(evaluation) => {
                    let (state, _) = settle(State::Evaluating(run));
                    Ok((state, Event::Evaluated { evaluation }))
                }
                Err(e) => Err(failed(State::Evaluating(run), e)),
            },
            State::Done(run, outcome) => Ok((State::Done(run, outcome.clone()), Event::Finished { outcome })),
        }
    }

    /// Splits the `kept` pictures (stratified, seeded) and prepares the head. Every feature is there.
    fn split(
        &self,
        recipe: Recipe,
        unfreeze: usize,
        (kept, mut notes): (Vec<usize>, Vec<String>),
        centers: CenterPrefixes,
    ) -> Result<(Run, Event)> {
        let options = recipe.head.clone();
        let labels = self.images.labels();
        let all = self.images.images();
        let images: Vec<_> = kept.iter().map(|&i| &all[i]).collect();
        let classes: Vec<usize> = images.iter().map(|i| self.images.class_index(&i.label).expect("labels come from images")).collect();
        let split = stratified_split(&classes, labels.len(), options.val_fraction, options.seed);
        let gather = |indices: &[usize]| {
            let mut set = LabelledFeatures::default();
            for &i in indices {
                set.push(self.features.get(images[i].id).expect("every feature is extracted"), classes[i]);
            }
            set
        };
        let (train, val) = (gather(&split.train), gather(&split.val));
        notes.extend(options.batch_note(train.len()));
        let mut head = HeadTrainer::new(options, labels.len(), self.backbone.kind().features(), train, val, &self.device)?;
        let mut resumed = false;
        match &self.resume {
            Some(resume) if resume.labels == labels => {
                head.start_from(resume.head.clone())?;
                resumed = true;
                notes.push("continuing from the imported model's head".into());
            }
            Some(resume) => notes.push(format!(
                "the imported model's classes ({}) differ from these, so the head starts fresh",
                resume.labels.join(", ")
            )),
            None => {}
        }
        let members = |indices: &[usize]| indices.iter().map(|&i| (images[i].id, classes[i])).collect::<Vec<_>>();
        let run = Run { recipe, unfreeze, labels, train: members(&split.train), val: members(&split.val), head, resumed, fine: None, centers };
        let event = Event::Split { train: run.train.len(), val: run.val.len(), unfreeze, notes };
        Ok((run, event))
    }

    /// After the head's last epoch: phase 2 when the recipe asks for it, else the evaluation.
    fn after_head(&self, run: Run) -> std::result::Result<State, (State, Error)> {
        if run.unfreeze == 0 {
            return Ok(self.after_training(run));
        }
        match self.queue_views(&run) {
            Ok(caching) => Ok(State::Caching(run, caching)),
            Err(e) => Err(failed(State::Head(run), e)),
        }
    }

    fn after_training(&self, run: Run) -> State {
        if run.val.is_empty() { settle(State::Evaluating(run)).0 } else { State::Evaluating(run) }
    }

    /// Queues `views_per_image` views per training picture — the first the center view that phase 1
    /// and the evaluation see, the others augmented (only the center view when augmentation is
    /// off) — and one center view per validation picture. With the center view among them, phase 2
    /// starts on pictures the phase-1 head already classifies, instead of only on views it has
    /// never seen.
    fn queue_views(&self, run: &Run) -> Result<Caching> {
        let recipe = &run.recipe;
        let plan = UnfreezePlan::new(self.backbone.kind(), run.unfreeze)?;
        let views = if recipe.augmentation.enabled { recipe.views_per_image } else { 1 };
        recipe.fine_tune.validate(run.train.len() * views)?;
        let seed = recipe.head.seed;
        let mut queue = Vec::new();
        for (n, &(id, class)) in run.train.iter().enumerate() {
            for v in 0..views {
                let view_seed = (v > 0).then(|| seed ^ ((n * 32 + v) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                queue.push((id, class, view_seed, false));
            }
        }
        queue.extend(run.val.iter().map(|&(id, class)| (id, class, None, true)));
        queue.reverse();
        Ok(Caching {
            plan,
            total: queue.len(),
            queue,
            note: recipe.fine_tune.batch_note(run.train.len() * views),
            train: PrefixCache::new(CacheStorage::F16),
            val: PrefixCache::new(CacheStorage::F16),
        })
    }

    /// Caches the next `budget` views of the queue, in queue order: center views whose prefix
    /// output the features stage kept are moved in, the others run through the prefix together.
    async fn cache(&mut self, mut run: Run, mut caching: Caching, budget: usize) -> std::result::Result<(State, Event), (State, Error)> {
        let batch: Vec<_> = (0..budget.min(caching.queue.len())).filter_map(|_| caching.queue.pop()).collect();
        let mut views = Vec::new();
        for &(id, class, seed, _) in &batch {
            let Some(image) = self.images.get(id) else {
                return Err(failed(State::Head(run), Error::Training("a picture was removed during training: start again".into())));
            };
            if seed.is_none() && run.centers.contains(id) {
                continue;
            }
            views.push((ViewOf { picture: &image.stored, seed }, class));
        }
        let first = caching.plan.first_tail_unit();
        let mut fresh = PrefixCache::new(CacheStorage::F32);
        let augmentation = &run.recipe.augmentation;
        if let Err(e) = extend_prefixes(&mut fresh, &self.backbone, &self.spec, augmentation, first, &views, &self.device, &mut self.helper).await {
            return Err(failed(State::Head(run), e));
        }
        let mut fresh_rows = 0..fresh.len();
        for &(id, class, seed, is_val) in &batch {
            let cache = if is_val { &mut caching.val } else { &mut caching.train };
            let pushed = match seed {
                None if run.centers.contains(id) => run.centers.move_into(id, cache, class),
                _ => cache.push_from(&fresh, fresh_rows.next().expect("one fresh row per view not kept"), class),
            };
            if let Err(e) = pushed {
                return Err(failed(State::Head(run), e));
            }
        }
        let event = Event::Cache {
            done: caching.total - caching.queue.len(),
            total: caching.total,
            bytes: caching.train.bytes() + caching.val.bytes(),
            note: caching.note.clone(),
        };
        if !caching.queue.is_empty() {
            return Ok((State::Caching(run, caching), event));
        }
        let classifier = Classifier { backbone: self.backbone.clone(), head: run.head.head() };
        let (options, seed) = (run.recipe.fine_tune.clone(), run.recipe.head.seed);
        let standardizer = run.head.standardizer().cloned();
        match FineTuner::new(classifier, standardizer, run.labels.len(), caching.plan, options, seed, caching.train, caching.val, &self.device) {
            Ok(mut tuner) => {
                if let Some(share) = &self.helper {
                    tuner.set_helper(share.helper());
                }
                run.fine = Some(tuner);
                Ok((State::FineTuning(run), event))
            }
            Err(e) => Err(failed(State::Head(run), e)),
        }
    }

    /// Accuracy, per-class precision and recall, the confusion matrix and the misclassified
    /// pictures of the validation split.
    async fn evaluate(&self, run: &Run) -> Result<Evaluation> {
        let model = self.model_of(run);
        let mut logits = Vec::new();
        let mut names = Vec::new();
        for chunk in run.val.chunks(16) {
            let views: Vec<_> = chunk
                .iter()
                .map(|(id, _)| {
                    let image = self.images.get(*id).ok_or_else(|| Error::Training("a picture was removed during training".into()))?;
                    names.push((image.id, image.file_name.clone()));
                    Ok(image.center_view(&self.spec))
                })
                .collect::<Result<_>>()?;
            logits.extend(model.logits(&views.iter().collect::<Vec<_>>()).await?);
        }
        let targets: Vec<usize> = run.val.iter().map(|(_, c)| *c).collect();
        Ok(evaluate(&logits, &run.labels, &targets, &names))
    }

    /// The classifier as trained so far (backbone + head, fine-tuned when phase 2 ran).
    fn model_of(&self, run: &Run) -> TrainedModel {
        let options = run.head.options();
        let mut training = serde_json::json!({
            "head": options,
            "train_images": run.train.len(),
            "val_images": run.val.len(),
        });
        let classifier = match &run.fine {
            Some(tuner) => {
                training["fine_tune"] = serde_json::json!({
                    "unfreeze": run.unfreeze,
                    "options": tuner.options(),
                    "augmentation": run.recipe.augmentation,
                    "views_per_image": run.recipe.views_per_image,
                    "stopped_early": tuner.stopped_early(),
                });
                tuner.model()
            }
            None => Classifier { backbone: self.backbone.clone(), head: run.head.head() },
        };
        TrainedModel { classifier, labels: run.labels.clone(), spec: self.spec.clone(), hidden_units: options.hidden_units, training }
    }

    fn run(&self) -> Option<&Run> {
        match &self.state {
            State::Head(run) | State::Caching(run, _) | State::FineTuning(run) | State::Evaluating(run) | State::Done(run, _) => Some(run),
            State::Idle | State::Features { .. } => None,
        }
    }

    /// The model of the last run, ready to predict or export: once the run is `Done`, or while
    /// it trains (the best so far) when at least one head epoch finished.
    pub fn trained_model(&self) -> Result<TrainedModel> {
        match self.run() {
            Some(run) if run.has_model() => Ok(self.model_of(run)),
            _ => self.loaded.clone().ok_or_else(|| Error::Training("nothing trained yet".into())),
        }
    }

    pub async fn predict(&self, file_name: &str, bytes: &[u8]) -> Result<Vec<Prediction>> {
        self.trained_model()?.predict_file(file_name, bytes).await
    }

    /// Grad-CAM of `class` (the predicted one when `None`) for a picture file, on the model
    /// [`trained_model`](Self::trained_model) returns; with the center crop it explains.
    pub async fn grad_cam(&self, file_name: &str, bytes: &[u8], class: Option<usize>) -> Result<(GradCam, RgbImage)> {
        let crop = resize_and_center_crop(&decode_image(file_name, bytes)?, &self.spec);
        Ok((self.trained_model()?.grad_cam(&crop, class).await?, crop))
    }

    /// Computes the features of pictures that have none yet (added after the last run), so
    /// that every picture can be checked.
    async fn complete_features(&mut self) -> Result<()> {
        self.editable()?;
        loop {
            let pending: Vec<_> = self.images.images().iter().filter(|i| !self.features.contains(i.id)).take(8).collect();
            if pending.is_empty() {
                return Ok(());
            }
            extract_features(&mut self.features, &self.backbone, &self.spec, &pending, None, &mut self.helper).await?;
        }
    }

    /// Every picture with its class, features and pixels, for the label checks.
    fn candidates(&self) -> Vec<Candidate<'_>> {
        self.images
            .images()
            .iter()
            .map(|i| Candidate {
                image_id: i.id,
                file_name: &i.file_name,
                class: self.images.class_index(&i.label).expect("labels come from images"),
                features: self.features.get(i.id).expect("features are complete"),
                pixels: i.stored.bytes(),
            })
            .collect()
    }

    /// The pictures most likely mislabelled, at most `limit` (see [`crate::explain::suspects`]):
    /// each is predicted by a head trained, per fold, on the other pictures' features. Needs the
    /// pictures to be trainable; features missing since the last run are computed first.
    pub async fn suspects(&mut self, limit: usize) -> Result<SuspectReport> {
        self.images.check_trainable()?;
        self.complete_features().await?;
        let seed = self.run().map_or(crate::train::HeadOptions::default().seed, |run| run.recipe.head.seed);
        suspects(&self.candidates(), &self.images.labels(), limit, seed, &self.device).await
    }

    /// Exact and near duplicates among the pictures, across classes too.
    pub async fn duplicates(&mut self) -> Result<Vec<DuplicateGroup>> {
        self.complete_features().await?;
        duplicates(&self.candidates(), &self.images.labels(), NEAR_DUPLICATE_SIMILARITY, &self.device).await
    }

    /// The backbone (for benchmarks and tools that need the model itself).
    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }
}

/// The pictures a run trains and validates on: an exact copy (same decoded pixels) of an earlier
/// picture of the same class is counted once, so it is neither trained on twice nor validated on
/// a copy of a training picture. Copies filed under different classes stay (the user has to
/// decide which label is right) and are named in the notes. Returns indices into `images`.
fn distinct_pictures(
    images: &[crate::data::LabelledImage],
    labels: &[String],
    class_of: impl Fn(&str) -> usize,
) -> Result<(Vec<usize>, Vec<String>)> {
    let pixels: Vec<&[u8]> = images.iter().map(|i| i.stored.bytes()).collect();
    let copies = first_copies(&pixels);
    let mut kept = Vec::with_capacity(images.len());
    let (mut same_class, mut across) = (0, Vec::new());
    for (i, first) in copies.iter().enumerate() {
        match first {
            Some(j) if images[*j].label == images[i].label => same_class += 1,
            Some(j) => {
                across.push(format!("{} ({}) and {} ({})", images[*j].file_name, images[*j].label, images[i].file_name, images[i].label));
                kept.push(i);
            }
            None => kept.push(i),
        }
    }
    let mut counts = vec![0usize; labels.len()];
    for &i in &kept {
        counts[class_of(&images[i].label)] += 1;
    }
    if let Some(c) = counts.iter().position(|&n| n < MIN_IMAGES_PER_CLASS) {
        return Err(Error::Dataset(format!(
            "class \"{}\" has {} distinct picture{} once exact copies are counted once; each class needs at least {MIN_IMAGES_PER_CLASS}",
            labels[c],
            counts[c],
            if counts[c] == 1 { "" } else { "s" }
        )));
    }
    let mut notes = Vec::new();
    if same_class > 0 {
        notes.push(format!(
            "{same_class} exact cop{} of a picture in the same class counted once",
            if same_class == 1 { "y" } else { "ies" }
        ));
    }
    if !across.is_empty() {
        let shown: Vec<_> = across.iter().take(5).cloned().collect();
        let more = if across.len() > 5 { format!(" and {} more", across.len() - 5) } else { String::new() };
        notes.push(format!("the same picture is in two classes: {}{more}; both are kept, check their labels", shown.join("; ")));
    }
    Ok((kept, notes))
}

/// Where a run goes when it ends now: `Done` with its model when a head epoch finished, else
/// `Idle`; and the outcome to report.
fn settle(state: State) -> (State, Outcome) {
    let run = match state {
        State::Head(run) | State::Caching(run, _) | State::FineTuning(run) | State::Evaluating(run) => run,
        State::Done(run, outcome) => return (State::Done(run, outcome.clone()), outcome),
        State::Idle | State::Features { .. } => return (State::Idle, Outcome::NO_MODEL),
    };
    if !run.has_model() {
        return (State::Idle, Outcome::NO_MODEL);
    }
    let (fine_tuned, stopped_early, best_epoch) = match &run.fine {
        Some(tuner) if tuner.epochs_done() > 0 => {
            let kept_phase_one = tuner.best_epoch() == Some(0);
            (if kept_phase_one { 0 } else { run.unfreeze }, tuner.stopped_early(), tuner.best_epoch())
        }
        _ => (0, false, None),
    };
    let finished = match &run.fine {
        Some(tuner) => tuner.is_done(),
        None => run.head.is_done() && run.unfreeze == 0,
    };
    let outcome = Outcome { stopped: !finished, has_model: true, fine_tuned, stopped_early, best_epoch };
    (State::Done(run, outcome.clone()), outcome)
}

/// A step failed: keep what was trained (see [`settle`]) and pass the error on.
fn failed(state: State, error: Error) -> (State, Error) {
    (settle(state).0, error)
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use image::{ImageFormat, Rgb, RgbImage};

    use super::*;
    use crate::model::{Backbone, BackboneKind};
    use crate::train::{FineTuneOptions, HeadOptions};

    /// A session on a randomly initialised EfficientNet-Lite0 with 4 pictures in each of 3
    /// classes (a colour per class, noise per picture).
    fn session() -> Session {
        session_with(&random_weights())
    }

    /// Randomly initialised EfficientNet-Lite0 weights as a safetensors file.
    fn random_weights() -> Vec<u8> {
        let tensors = pollster::block_on(Backbone::init(BackboneKind::EfficientNetLite0, &Device::flex()).to_tensors()).unwrap();
        crate::weights::write_safetensors(&tensors, Default::default()).unwrap()
    }

    /// [`session`] on the given EfficientNet-Lite0 weights.
    fn session_with(weights: &[u8]) -> Session {
        let device = Device::flex();
        let kind = BackboneKind::EfficientNetLite0;
        let mut session = Session::new(kind, weights, device).unwrap();
        for (class, base) in [("red", [200u8, 40, 40]), ("green", [40, 200, 40]), ("blue", [40, 40, 200])] {
            for n in 0..4u32 {
                let image = RgbImage::from_fn(48, 40, |x, y| Rgb(base.map(|c| c.wrapping_add(((x * 7 + y * 13 + n * 29) % 40) as u8))));
                let mut png = std::io::Cursor::new(Vec::new());
                image.write_to(&mut png, ImageFormat::Png).unwrap();
                session.add_image(class, &format!("{class}{n}.png"), png.get_ref()).unwrap();
            }
        }
        session
    }

    /// One head epoch, a validation picture per class, then phase 2's caches for the last 2 units
    /// with 2 views a picture, batches of 4.
    fn two_phase_recipe() -> Recipe {
        Recipe {
            head: HeadOptions { epochs: 1, val_fraction: 0.34, batch_size: 4, ..Default::default() },
            unfreeze: Some(2),
            fine_tune: FineTuneOptions { epochs: 1, batch_size: 4, ..Default::default() },
            views_per_image: 2,
            ..Default::default()
        }
    }

    /// Runs `recipe` until phase 2's caches are complete and returns them, with the number of
    /// center rows the features stage had kept for the caching stage.
    fn caches_of(session: &mut Session, recipe: Recipe) -> (PrefixCache, PrefixCache, usize) {
        session.start(recipe).unwrap();
        let mut kept = 0;
        loop {
            if let State::Head(run) = &session.state {
                kept = run.centers.len();
            }
            if let State::FineTuning(run) = &session.state {
                let (train, val) = run.fine.as_ref().unwrap().caches();
                return (train.clone(), val.clone(), kept);
            }
            pollster::block_on(session.step(5)).unwrap();
        }
    }

    /// Phase 2 caches every picture's center view; the features stage keeps the prefix outputs
    /// of the pictures it computes, and the cache takes them instead of running the prefix
    /// again. A second run on the same session (features already there: every view runs the
    /// prefix at caching) must cache exactly the same rows in the same order.
    #[test]
    fn center_views_kept_from_the_features_stage_cache_as_a_prefix_pass_would() {
        let mut session = session();
        let recipe = two_phase_recipe();
        let (train, val, kept) = caches_of(&mut session, recipe.clone());
        assert_eq!(kept, 12, "every picture's center view kept from the features stage");
        session.stop();
        let (train_again, val_again, kept_again) = caches_of(&mut session, recipe);
        assert_eq!(kept_again, 0, "features cached already: nothing kept, every view through the prefix");
        assert_eq!((train.len(), val.len()), (9 * 2, 3), "a validation picture per class");
        assert!(train == train_again, "training views differ");
        assert!(val == val_again, "validation views differ");
    }

    /// The features of every picture, by id.
    fn features_of(session: &Session) -> Vec<Vec<f32>> {
        session.images.images().iter().map(|i| session.features.get(i.id).unwrap().to_vec()).collect()
    }

    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (x, y) in a.iter().zip(b) {
            // The cache keeps f16: a value may round to the next half-precision step.
            assert!((x - y).abs() <= 1e-3 + 2e-3 * x.abs(), "{what}: {x} and {y}");
        }
    }

    fn rows(cache: &PrefixCache) -> Vec<f32> {
        cache.batch(&(0..cache.len()).collect::<Vec<_>>(), &Device::flex()).into_data().try_to_vec::<f32>().unwrap()
    }

    /// A helper computing half of each batch of features, of the cache's prefix passes and of
    /// phase 2's steps gives the same features and caches as this engine alone; one that fails
    /// from its first request on is dropped, and the run is exactly the engine's alone.
    #[test]
    fn a_helper_computes_half_of_the_features_and_cache_as_this_engine_would() {
        let weights = random_weights();
        let recipe = two_phase_recipe();
        let mut alone = session_with(&weights);
        let (train, val, _) = caches_of(&mut alone, recipe.clone());

        let mut shared = session_with(&weights);
        let helper = crate::train::InThread::new();
        shared.set_helper(Some(helper.clone()));
        let (shared_train, shared_val, kept) = caches_of(&mut shared, recipe.clone());
        assert!(shared.has_helper(), "the helper did not fail");
        assert_eq!(kept, 12, "the helper's pictures' center views are kept too");
        // After the backbone: 12 pictures 5 at a time (3 jobs), then 9 training pictures' center
        // and augmented views and 3 validation center views, 5 at a time, of which only the
        // augmented ones run (2, 3, 2, 3 and none: 4 jobs).
        assert_eq!(helper.answered(), 1 + 3 + 4);
        for (a, b) in features_of(&alone).iter().zip(&features_of(&shared)) {
            assert_close(a, b, "features");
        }
        assert_eq!((train.targets(), val.targets()), (shared_train.targets(), shared_val.targets()));
        assert_close(&rows(&train), &rows(&shared_train), "training views");
        assert_close(&rows(&val), &rows(&shared_val), "validation views");

        struct Failing;
        impl Helper for Failing {
            fn call(&self, _: Vec<u8>) -> crate::train::Reply {
                Box::pin(std::future::ready(Err(Error::Backend("the helper worker crashed".into()))))
            }
        }
        let mut failing = session_with(&weights);
        failing.set_helper(Some(Rc::new(Failing)));
        let (failing_train, failing_val, _) = caches_of(&mut failing, recipe);
        assert!(!failing.has_helper(), "a failing helper is dropped");
        assert_eq!(features_of(&alone), features_of(&failing));
        assert!(train == failing_train && val == failing_val, "the same caches as this engine alone");
    }
}
