//! The public core API: one object that holds a backbone, the user's images, their cached
//! features and a training run. The page (through `web.rs`) and the CLI drive the same calls.

use burn::tensor::Device;
use serde::Serialize;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::{Augmentation, DatasetSummary, ImageSet, stratified_split};
use crate::error::{Error, Result};
use crate::inference::{Prediction, TrainedModel};
use crate::model::{BackboneSpec, Classifier, HeadConfig, EfficientNetLite, EfficientNetLiteConfig, EfficientNetLiteNames, FEATURES};
use crate::train::{
    CacheStorage, EpochReport, Evaluation, FeatureCache, FineTuneOptions, FineTuner, HeadOptions, HeadTrainer,
    LabelledFeatures, PrefixCache, Recommendation, StepTiming, UnfreezePlan, evaluate, recommend, time_fine_tune_steps,
};
use crate::weights::{load_params, read_weights_file};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitSummary {
    pub train: usize,
    pub val: usize,
    /// A setting that was adjusted to the data, in words (a batch larger than the split).
    pub note: Option<String>,
}

/// A run in progress: the trainer, the labels its class indices refer to, and the images of
/// each split (`(image id, class)`), fixed when the run starts.
struct Run {
    trainer: HeadTrainer,
    labels: Vec<String>,
    train: Vec<(u32, usize)>,
    val: Vec<(u32, usize)>,
    fine: Option<FineRun>,
}

/// The phase-1 model: the frozen backbone with the head as trained so far.
fn head_model(trainer: &HeadTrainer, backbone: &EfficientNetLite) -> Classifier {
    Classifier { backbone: backbone.clone(), head: trainer.head() }
}

/// Phase 2: views still to cache, then the fine-tuner.
struct FineRun {
    options: FineTuneOptions,
    augmentation: Augmentation,
    views_per_image: usize,
    /// `(image id, class, augmentation seed)`: `None` is the center view. Train views first.
    queue: Vec<(u32, usize, Option<u64>, Split)>,
    total_views: usize,
    note: Option<String>,
    /// Filled while the queue drains, then handed to the fine-tuner.
    train_cache: PrefixCache,
    val_cache: PrefixCache,
    tuner: Option<FineTuner>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Train,
    Val,
}

/// Progress of building phase 2's prefix cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheProgress {
    pub done: usize,
    pub total: usize,
    /// Memory the cached activations use so far.
    pub bytes: usize,
    /// A setting that was adjusted to the data, in words (a batch larger than the views).
    pub note: Option<String>,
}

pub struct Tuner {
    spec: BackboneSpec,
    backbone: EfficientNetLite,
    images: ImageSet,
    features: FeatureCache,
    run: Option<Run>,
    device: Device,
}

impl Tuner {
    /// Loads the EfficientNet-Lite0 backbone from a weights file (safetensors, or a PyTorch `.pth`
    /// in either `torch.save` format) onto `device`. A file that does not fit is refused naming the first tensor that differs.
    pub fn new(weights: &[u8], device: Device) -> Result<Self> {
        let tensors = read_weights_file(weights)?;
        let backbone = load_params(EfficientNetLiteConfig::new().init(&device), &tensors, &EfficientNetLiteNames)?;
        let spec = BackboneSpec::efficientnet_lite0();
        Ok(Self { images: ImageSet::new(spec.clone()), spec, backbone, features: FeatureCache::default(), run: None, device })
    }

    pub fn spec(&self) -> &BackboneSpec {
        &self.spec
    }

    pub fn images(&self) -> &ImageSet {
        &self.images
    }

    /// Decodes and adds one image; on error nothing already added is lost.
    pub fn add_image(&mut self, label: &str, file_name: &str, bytes: &[u8]) -> Result<u32> {
        self.images.add(label, file_name, bytes)
    }

    pub fn add_class(&mut self, label: &str) -> Result<()> {
        self.images.add_class(label)
    }

    pub fn remove_image(&mut self, id: u32) -> bool {
        let removed = self.images.remove(id);
        self.features.retain(|i| i != id);
        removed
    }

    pub fn remove_class(&mut self, label: &str) {
        self.images.remove_class(label);
        let images = &self.images;
        self.features.retain(|id| images.get(id).is_some());
    }

    pub fn summary(&self) -> DatasetSummary {
        self.images.summary()
    }

    pub fn pending_features(&self) -> usize {
        self.images.images().iter().filter(|i| !self.features.contains(i.id)).count()
    }

    /// Computes backbone features for up to `max_images` images that have none yet; returns
    /// how many are still pending. Small calls let the caller report progress.
    pub async fn extract_features(&mut self, max_images: usize) -> Result<usize> {
        let batch: Vec<_> =
            self.images.images().iter().filter(|i| !self.features.contains(i.id)).take(max_images.max(1)).collect();
        self.features.extract(&self.backbone, &self.spec, &batch).await?;
        Ok(self.pending_features())
    }

    /// Splits the images (stratified, seeded) and prepares a new head. Needs every feature.
    pub fn start_head(&mut self, options: HeadOptions) -> Result<SplitSummary> {
        self.images.check_trainable()?;
        options.validate()?;
        if self.pending_features() > 0 {
            return Err(Error::Training(format!("{} images still need features: extract them first", self.pending_features())));
        }
        let labels = self.images.labels();
        let images = self.images.images();
        let classes: Vec<usize> = images.iter().map(|i| self.images.class_index(&i.label).unwrap()).collect();
        let split = stratified_split(&classes, labels.len(), options.val_fraction, options.seed);
        let gather = |indices: &[usize]| {
            let mut set = LabelledFeatures::default();
            for &i in indices {
                set.push(self.features.get(images[i].id).expect("features extracted above"), classes[i]);
            }
            set
        };
        let (train, val) = (gather(&split.train), gather(&split.val));
        let summary = SplitSummary { train: train.len(), val: val.len(), note: options.batch_note(train.len()) };
        let trainer = HeadTrainer::new(options, labels.len(), FEATURES, train, val, &self.device)?;
        let members = |indices: &[usize]| indices.iter().map(|&i| (images[i].id, classes[i])).collect();
        self.run = Some(Run { trainer, labels, train: members(&split.train), val: members(&split.val), fine: None });
        Ok(summary)
    }

    pub async fn train_epoch(&mut self) -> Result<EpochReport> {
        let run = self.run.as_mut().ok_or_else(|| Error::Training("start training before running epochs".into()))?;
        run.trainer.train_epoch().await
    }

    /// Which recipe fits the current images, and why.
    pub fn recommendation(&self) -> Recommendation {
        recommend(&self.summary().classes.iter().map(|c| c.count).collect::<Vec<_>>())
    }

    /// Starts phase 2 on the phase-1 model and split: queues `views_per_image` augmented views
    /// per training image (one center view when augmentation is off) and one center view per
    /// validation image for the prefix cache. Returns how many views are to be cached.
    pub fn start_fine_tune(&mut self, options: FineTuneOptions, augmentation: Augmentation, views_per_image: usize) -> Result<CacheProgress> {
        let run = self.run.as_mut().ok_or_else(|| Error::Training("train the head (phase 1) before fine-tuning".into()))?;
        if views_per_image == 0 || views_per_image > 32 {
            return Err(Error::Training(format!("views per image must be between 1 and 32, got {views_per_image}")));
        }
        let views = if augmentation.enabled { views_per_image } else { 1 };
        options.validate(run.train.len() * views)?;
        let note = options.batch_note(run.train.len() * views);
        let mut queue = Vec::new();
        for (n, &(id, class)) in run.train.iter().enumerate() {
            for v in 0..views {
                let seed = augmentation.enabled.then(|| options.seed ^ ((n * 32 + v) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                queue.push((id, class, seed, Split::Train));
            }
        }
        queue.extend(run.val.iter().map(|&(id, class)| (id, class, None, Split::Val)));
        queue.reverse(); // popped from the end
        let total = queue.len();
        run.fine = Some(FineRun {
            options,
            augmentation,
            views_per_image: views,
            queue,
            total_views: total,
            note: note.clone(),
            train_cache: PrefixCache::new(CacheStorage::F16),
            val_cache: PrefixCache::new(CacheStorage::F16),
            tuner: None,
        });
        Ok(CacheProgress { done: 0, total, bytes: 0, note })
    }

    /// Runs the frozen prefix on up to `max_views` queued views. When the queue empties, the
    /// fine-tuner is created from the phase-1 model.
    pub async fn cache_views(&mut self, max_views: usize) -> Result<CacheProgress> {
        let spec = self.spec.clone();
        let run = self.run.as_mut().ok_or_else(|| Error::Training("start fine-tuning first".into()))?;
        let fine = run.fine.as_mut().ok_or_else(|| Error::Training("start fine-tuning first".into()))?;
        let first = UnfreezePlan::new(fine.options.unfreeze)?.first_tail_unit();
        let take = max_views.max(1).min(fine.queue.len());
        let batch: Vec<_> = (0..take).filter_map(|_| fine.queue.pop()).collect();
        let mut views = Vec::new();
        for &(id, class, seed, split) in &batch {
            let image = self.images.get(id).ok_or_else(|| Error::Training("an image was removed during training: start again".into()))?;
            let view = match seed {
                Some(seed) => fine.augmentation.view(&image.pixels, spec.input_size, &mut ChaCha8Rng::seed_from_u64(seed)),
                None => image.center_view(&spec),
            };
            views.push((view, class, split));
        }
        for split in [Split::Train, Split::Val] {
            let part: Vec<_> = views.iter().filter(|v| v.2 == split).map(|(view, class, _)| (view, *class)).collect();
            let cache = if split == Split::Train { &mut fine.train_cache } else { &mut fine.val_cache };
            cache.extend(&self.backbone, &spec, first, &part, &self.device).await?;
        }
        let progress = CacheProgress {
            done: fine.total_views - fine.queue.len(),
            total: fine.total_views,
            bytes: fine.train_cache.bytes() + fine.val_cache.bytes(),
            note: fine.note.clone(),
        };
        if fine.queue.is_empty() && fine.tuner.is_none() {
            let classifier = head_model(&run.trainer, &self.backbone);
            let train = std::mem::replace(&mut fine.train_cache, PrefixCache::new(CacheStorage::F16));
            let val = std::mem::replace(&mut fine.val_cache, PrefixCache::new(CacheStorage::F16));
            fine.tuner = Some(FineTuner::new(classifier, run.labels.len(), fine.options.clone(), train, val, &self.device)?);
        }
        Ok(progress)
    }

    /// One epoch of phase 2 (after [`cache_views`](Self::cache_views) has emptied its queue).
    pub async fn fine_tune_epoch(&mut self) -> Result<EpochReport> {
        let tuner = self
            .run
            .as_mut()
            .and_then(|r| r.fine.as_mut())
            .and_then(|f| f.tuner.as_mut())
            .ok_or_else(|| Error::Training("cache the views before fine-tuning epochs".into()))?;
        tuner.train_epoch().await
    }

    /// Accuracy, per-class precision and recall, the confusion matrix and the misclassified
    /// images of the validation split, for the model as trained so far.
    pub async fn evaluate(&self) -> Result<Evaluation> {
        let model = self.trained_model()?;
        let run = self.run.as_ref().expect("trained_model checked the run");
        let mut logits = Vec::new();
        let mut names = Vec::new();
        for chunk in run.val.chunks(16) {
            let views: Vec<_> = chunk
                .iter()
                .map(|(id, _)| {
                    let image = self.images.get(*id).ok_or_else(|| Error::Training("an image was removed after training".into()))?;
                    names.push((image.id, image.file_name.clone()));
                    Ok(image.center_view(&self.spec))
                })
                .collect::<Result<_>>()?;
            logits.extend(model.logits(&views.iter().collect::<Vec<_>>()).await?);
        }
        let targets: Vec<usize> = run.val.iter().map(|(_, c)| *c).collect();
        Ok(evaluate(&logits, &run.labels, &targets, &names))
    }

    /// The classifier as trained so far (backbone + current head), ready to predict or export.
    pub fn trained_model(&self) -> Result<TrainedModel> {
        let run = self.run.as_ref().ok_or_else(|| Error::Training("nothing trained yet".into()))?;
        let options = run.trainer.options();
        let mut training = serde_json::json!({
            "head": options,
            "train_images": run.train.len(),
            "val_images": run.val.len(),
        });
        let fine_tuned = run.fine.as_ref().and_then(|f| f.tuner.as_ref().map(|t| (f, t)));
        let classifier = match fine_tuned {
            Some((fine, tuner)) => {
                training["fine_tune"] = serde_json::json!({
                    "options": tuner.options(),
                    "augmentation": fine.augmentation,
                    "views_per_image": fine.views_per_image,
                    "stopped_early": tuner.stopped_early(),
                });
                tuner.model()
            }
            None => head_model(&run.trainer, &self.backbone),
        };
        Ok(TrainedModel {
            classifier,
            labels: run.labels.clone(),
            spec: self.spec.clone(),
            hidden_units: options.hidden_units,
            training,
        })
    }

    /// Phase-2 step timing on this backbone and device (a benchmark; see [`time_fine_tune_steps`]).
    pub async fn time_fine_tune_steps(&self, unfreeze: usize, cached: bool, batch: usize, steps: usize, now_ms: &dyn Fn() -> f64) -> Result<StepTiming> {
        let classifier = Classifier { backbone: self.backbone.clone(), head: HeadConfig::new(FEATURES, 2).init_seeded(&self.device, 1) };
        let size = self.spec.input_size as usize;
        time_fine_tune_steps(&classifier, UnfreezePlan::new(unfreeze)?, cached, batch, size, steps.max(1), &self.device, now_ms).await
    }

    pub async fn predict(&self, file_name: &str, bytes: &[u8]) -> Result<Vec<Prediction>> {
        self.trained_model()?.predict_file(file_name, bytes).await
    }
}
