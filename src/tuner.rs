//! The public core API: one object that holds a backbone, the user's images, their cached
//! features and a training run. The page (through `web.rs`) and the CLI drive the same calls.

use burn::tensor::Device;
use serde::Serialize;

use crate::data::{DatasetSummary, ImageSet, stratified_split};
use crate::error::{Error, Result};
use crate::inference::{Prediction, TrainedModel};
use crate::model::{BackboneSpec, Classifier, EfficientNetLite, EfficientNetLiteConfig, EfficientNetLiteNames, FEATURES};
use crate::train::{EpochReport, FeatureCache, HeadOptions, HeadTrainer, LabelledFeatures};
use crate::weights::{load_params, read_weights_file};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SplitSummary {
    pub train: usize,
    pub val: usize,
}

/// A run in progress: the trainer and the labels its class indices refer to.
struct Run {
    trainer: HeadTrainer,
    labels: Vec<String>,
    split: SplitSummary,
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
    /// Loads the EfficientNet-Lite0 backbone from a weights file (safetensors or legacy `.pth`)
    /// onto `device`. A file that does not fit is refused naming the first tensor that differs.
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
        self.features.retain(|id| images.images().iter().any(|i| i.id == id));
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
        let summary = SplitSummary { train: train.len(), val: val.len() };
        let trainer = HeadTrainer::new(options, labels.len(), FEATURES, train, val, &self.device)?;
        self.run = Some(Run { trainer, labels, split: summary });
        Ok(summary)
    }

    pub async fn train_epoch(&mut self) -> Result<EpochReport> {
        let run = self.run.as_mut().ok_or_else(|| Error::Training("start training before running epochs".into()))?;
        run.trainer.train_epoch().await
    }

    /// The classifier as trained so far (backbone + current head), ready to predict or export.
    pub fn trained_model(&self) -> Result<TrainedModel> {
        let run = self.run.as_ref().ok_or_else(|| Error::Training("nothing trained yet".into()))?;
        let options = run.trainer.options();
        Ok(TrainedModel {
            classifier: Classifier { backbone: self.backbone.clone(), head: run.trainer.head() },
            labels: run.labels.clone(),
            spec: self.spec.clone(),
            hidden_units: options.hidden_units,
            training: serde_json::json!({
                "phase": "head",
                "options": options,
                "train_images": run.split.train,
                "val_images": run.split.val,
            }),
        })
    }

    pub async fn predict(&self, file_name: &str, bytes: &[u8]) -> Result<Vec<Prediction>> {
        self.trained_model()?.predict_file(file_name, bytes).await
    }
}
