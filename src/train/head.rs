//! Phase 1 of the recipe: a new head trained on cached features of the frozen backbone.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::metrics::{EpochReport, EpochSums, diverged, loss_and_accuracy};
use crate::error::{Error, Result};
use crate::model::{Head, HeadConfig};

/// Settings of head training. Ranges: [`crate::recipe::SETTINGS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(default, rename_all = "camelCase")]
pub struct HeadOptions {
    /// Passes over the training split. Default 20: a linear head on good features converges fast.
    pub epochs: usize,
    /// Adam learning rate. Default 1e-3.
    pub learning_rate: f64,
    /// Feature vectors per step. Default 32.
    pub batch_size: usize,
    /// Hidden layer width; 0 (default) trains a single linear layer.
    pub hidden_units: usize,
    /// Dropout before each linear layer. Default 0.2.
    pub dropout: f64,
    /// Share of each class held out for validation. Default 0.15.
    pub val_fraction: f64,
    /// Seed for the split, the head's initial weights, augmentation and the batch order of
    /// both phases. Default 42.
    #[cfg_attr(test, ts(type = "number"))]
    pub seed: u64,
}

impl Default for HeadOptions {
    fn default() -> Self {
        Self { epochs: 20, learning_rate: 1e-3, batch_size: 32, hidden_units: 0, dropout: 0.2, val_fraction: 0.15, seed: 42 }
    }
}

impl HeadOptions {
    /// What [`HeadTrainer::new`] will do about a batch larger than the training split, in words.
    pub fn batch_note(&self, train_images: usize) -> Option<String> {
        (self.batch_size > train_images).then(|| {
            format!("batch size {} is larger than the {train_images} training images: using {train_images}", self.batch_size)
        })
    }

    /// Checks the settings against [`crate::recipe::SETTINGS`].
    pub fn validate(&self) -> Result<()> {
        crate::recipe::finite("head.", &[("learningRate", self.learning_rate), ("dropout", self.dropout), ("valFraction", self.val_fraction)])?;
        crate::recipe::check(&crate::recipe::to_json(self)?, "head.", None)
    }
}

/// Features with their class indices, one row per image.
#[derive(Debug, Clone, Default)]
pub struct LabelledFeatures {
    pub rows: Vec<f32>,
    pub targets: Vec<usize>,
}

impl LabelledFeatures {
    pub fn push(&mut self, row: &[f32], target: usize) {
        self.rows.extend_from_slice(row);
        self.targets.push(target);
    }
    pub fn len(&self) -> usize {
        self.targets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// Trains a [`Head`] epoch by epoch, so callers can report progress (and the page can yield)
/// between epochs.
pub struct HeadTrainer {
    options: HeadOptions,
    classes: usize,
    dim: usize,
    head: Head,
    optimizer: ModuleOptimizer,
    train: LabelledFeatures,
    val: LabelledFeatures,
    rng: ChaCha8Rng,
    epoch: usize,
    diverged: bool,
    device: Device,
}

impl HeadTrainer {
    /// `device` is the inference device; training runs on its autodiff twin.
    /// A batch larger than the training split is clamped to it (see [`HeadOptions::batch_note`]).
    pub fn new(mut options: HeadOptions, classes: usize, dim: usize, train: LabelledFeatures, val: LabelledFeatures, device: &Device) -> Result<Self> {
        options.validate()?;
        if train.is_empty() {
            return Err(Error::Dataset("no training images".into()));
        }
        options.batch_size = options.batch_size.min(train.len());
        let training_device = device.clone().autodiff();
        // Dropout masks come from burn's RNG, which is process-wide: seeding it makes a run
        // reproducible as long as nothing else draws from it meanwhile (true in the page's worker).
        training_device.seed(options.seed);
        let head = HeadConfig::new(dim, classes)
            .with_hidden(options.hidden_units)
            .with_dropout(options.dropout)
            .init_seeded(&training_device, options.seed);
        Ok(Self {
            optimizer: AdamConfig::new().init(),
            rng: ChaCha8Rng::seed_from_u64(options.seed),
            options,
            classes,
            dim,
            head,
            train,
            val,
            epoch: 0,
            diverged: false,
            device: device.clone(),
        })
    }

    /// After the last epoch, or after an epoch whose loss diverged.
    pub fn is_done(&self) -> bool {
        self.diverged || self.epoch >= self.options.epochs
    }

    /// Epochs finished so far.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// The head as it is now, in inference mode on the inference device.
    pub fn head(&self) -> Head {
        self.head.valid()
    }

    /// Continues from an already trained head (from a re-imported export) instead of the fresh
    /// one: same layer sizes required. Dropout stays as this run's options say.
    pub fn start_from(&mut self, head: Head) -> Result<()> {
        let dims = |h: &Head| {
            let out = h.output.weight.dims();
            let hidden = h.hidden.as_ref().map(|l| l.weight.dims());
            (hidden.map_or(out[0], |d| d[0]), hidden.map_or(0, |d| d[1]), out[1])
        };
        let (features, hidden, classes) = dims(&head);
        if (features, hidden, classes) != (self.dim, self.options.hidden_units, self.classes) {
            return Err(Error::Training(format!(
                "the imported head has {features} inputs, {hidden} hidden units and {classes} classes; \
                 this run needs {}, {} and {}",
                self.dim, self.options.hidden_units, self.classes
            )));
        }
        let training_device = self.device.clone().autodiff();
        self.head = self.head.clone().load_record(head.fork(&training_device).into_record());
        Ok(())
    }

    pub fn options(&self) -> &HeadOptions {
        &self.options
    }

    /// Runs one epoch: shuffled mini-batches of the training split, then the validation split.
    pub async fn train_epoch(&mut self) -> Result<EpochReport> {
        if self.is_done() {
            return Err(Error::Training("training already finished".into()));
        }
        let training_device = self.device.clone().autodiff();
        let loss_fn = CrossEntropyLossConfig::new().init(&training_device);
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        order.shuffle(&mut self.rng);
        let mut sums = EpochSums::default();
        let mut head = self.head.clone();
        for batch in order.chunks(self.options.batch_size) {
            let (x, targets) = gather(&self.train, batch, self.dim);
            let n = batch.len();
            let x = Tensor::<2>::from_data(TensorData::new(x, [n, self.dim]), &training_device);
            let y = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &training_device);
            let logits = head.forward(x);
            let loss = loss_fn.forward(logits.clone(), y.clone());
            sums.add(&loss, &logits, &y);
            let grads = GradientsParams::from_grads(loss.backward(), &head);
            head = self.optimizer.step(self.options.learning_rate, head, grads);
        }
        let (loss_sum, correct_sum) = sums.read().await?;
        if !loss_sum.is_finite() {
            // Never keep a diverged head: the one from before this epoch stays, and training ends.
            self.diverged = true;
            return Err(diverged("head", loss_sum, self.epoch + 1, self.options.learning_rate));
        }
        self.head = head;
        let n = self.train.len() as f64;
        let (val_loss, val_accuracy) = match self.val.is_empty() {
            true => (None, None),
            false => {
                let logits = self.logits(&self.val).await?;
                let (loss, accuracy) = loss_and_accuracy(&logits, self.classes, &self.val.targets);
                (Some(loss), Some(accuracy))
            }
        };
        self.epoch += 1;
        Ok(EpochReport {
            epoch: self.epoch,
            epochs: self.options.epochs,
            train_loss: loss_sum / n,
            train_accuracy: correct_sum / n,
            val_loss,
            val_accuracy,
            done: self.is_done(),
        })
    }

    /// Logits of the current head (inference mode) for every row of `set`.
    async fn logits(&self, set: &LabelledFeatures) -> Result<Vec<f32>> {
        let x = Tensor::<2>::from_data(TensorData::new(set.rows.clone(), [set.len(), self.dim]), &self.device);
        let data = self.head().forward(x).into_data_async().await.map_err(|e| Error::read_back("reading tensor data", e))?;
        data.try_to_vec_as::<f32>().map_err(|e| Error::read_back("reading tensor data", e))
    }
}

fn gather(set: &LabelledFeatures, batch: &[usize], dim: usize) -> (Vec<f32>, Vec<i64>) {
    let mut rows = Vec::with_capacity(batch.len() * dim);
    let mut targets = Vec::with_capacity(batch.len());
    for &i in batch {
        rows.extend_from_slice(&set.rows[i * dim..(i + 1) * dim]);
        targets.push(set.targets[i] as i64);
    }
    (rows, targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two Gaussian blobs in 16 dimensions: a linear head must separate them.
    fn blobs(n: usize, seed: u64) -> LabelledFeatures {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut set = LabelledFeatures::default();
        for i in 0..n {
            let class = i % 2;
            let row: Vec<f32> =
                (0..16).map(|d| rng.random_range(-1.0..1.0) + if d % 2 == class { 1.5 } else { 0.0 }).collect();
            set.push(&row, class);
        }
        set
    }

    fn run(options: HeadOptions) -> Vec<EpochReport> {
        let device = Device::flex();
        let mut trainer = HeadTrainer::new(options, 2, 16, blobs(80, 1), blobs(20, 2), &device).unwrap();
        let mut reports = Vec::new();
        while !trainer.is_done() {
            reports.push(pollster::block_on(trainer.train_epoch()).unwrap());
        }
        reports
    }

    #[test]
    fn learns_separable_features_and_reports_every_epoch() {
        let reports = run(HeadOptions { epochs: 15, learning_rate: 1e-2, batch_size: 8, ..Default::default() });
        assert_eq!(reports.len(), 15);
        let (first, last) = (&reports[0], reports.last().unwrap());
        assert!(last.done && !first.done);
        assert!(last.train_loss < first.train_loss, "{first:?} -> {last:?}");
        assert!(last.val_accuracy.unwrap() >= 0.95, "{last:?}");
    }

    #[test]
    fn same_seed_gives_the_same_run() {
        // No dropout: its masks come from burn's process-wide RNG, which the other tests of
        // this binary draw from in parallel. Initial weights and batch order are ours.
        let options = HeadOptions { epochs: 3, hidden_units: 8, dropout: 0.0, ..Default::default() };
        assert_eq!(run(options.clone()), run(options.clone()));
        assert_ne!(run(options.clone()), run(HeadOptions { seed: 7, ..options }));
    }

    #[test]
    fn a_diverged_epoch_keeps_the_previous_weights() {
        let device = Device::flex();
        let mut poisoned = blobs(8, 1);
        poisoned.rows[3] = f32::NAN;
        let options = HeadOptions { epochs: 5, dropout: 0.0, ..Default::default() };
        let mut trainer = HeadTrainer::new(options, 2, 16, poisoned, blobs(4, 2), &device).unwrap();
        let before = trainer.head().output.weight.val().into_data();
        let err = pollster::block_on(trainer.train_epoch()).unwrap_err().to_string();
        assert!(err.contains("loss became NaN") && err.contains("kept"), "{err}");
        assert!(trainer.is_done());
        assert_eq!(trainer.head().output.weight.val().into_data(), before);
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        for (options, word) in [
            (HeadOptions { learning_rate: 0.0, ..Default::default() }, "learning rate"),
            (HeadOptions { learning_rate: f64::NAN, ..Default::default() }, "learning rate"),
            (HeadOptions { epochs: 0, ..Default::default() }, "epochs"),
            (HeadOptions { val_fraction: 0.9, ..Default::default() }, "validation share"),
        ] {
            let err = HeadTrainer::new(options, 2, 16, blobs(4, 1), blobs(2, 2), &Device::flex()).err().unwrap().to_string();
            assert!(err.contains(word), "{err}");
        }
    }
}
