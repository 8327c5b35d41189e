//! Phase 1 of the recipe: a new head trained on cached features of the frozen backbone.

use burn::module::Module;
use burn::nn::Linear;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::metrics::{EpochReport, EpochSums, accuracy_interval, diverged, loss_and_accuracy};
use crate::error::{Error, Result};
use crate::model::{DropoutDraw, Head, HeadConfig};

/// Settings of head training. Ranges: [`crate::recipe::SETTINGS`].
///
/// Features are cached, so an epoch costs milliseconds: the defaults train to convergence
/// (many epochs, early stopping on the validation loss, the best epoch kept) rather than stop
/// at a fixed small count. Features are standardised per dimension (training split statistics)
/// so one learning rate and one L2 strength work across datasets; the exported head has the
/// standardisation folded into its first linear layer, so it needs no extra operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(default, rename_all = "camelCase")]
pub struct HeadOptions {
    /// Most passes over the training split. Default 300: on cached features an epoch costs
    /// milliseconds, and early stopping usually ends the run well before (digits, 300 pictures:
    /// 20 epochs reached 0.66 validation accuracy, training to convergence 0.86).
    pub epochs: usize,
    /// Adam learning rate on standardised features. Default 1e-3.
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
    /// Epochs without a lower validation loss before training stops and the best epoch's head is
    /// restored; 0 runs every epoch. Default 20: epochs are cheap, and the validation loss of a
    /// small split is noisy, so a short patience would stop on a bump. Without a validation split
    /// every epoch runs.
    pub patience: usize,
    /// L2 penalty `weight_decay / 2 · ‖W‖²` on the linear weights (not biases), in standardised
    /// feature units, added to the mean cross-entropy (scikit-learn's `C` is `1 / (weight_decay · n)`).
    /// Default 1e-2: on digits (300 pictures) it gave the lowest validation loss of 0, 1e-3,
    /// 3e-3, 1e-2, 3e-2 and 1e-1, and it keeps the weights bounded when training runs long
    /// without a validation split to stop it.
    pub weight_decay: f64,
    /// Standardise each feature dimension with the training split's mean and standard deviation.
    /// Default true: pooled backbone features differ in scale by orders of magnitude between
    /// dimensions, which makes a single learning rate too slow for some and too fast for others.
    pub standardize: bool,
}

impl Default for HeadOptions {
    fn default() -> Self {
        Self {
            epochs: 300,
            learning_rate: 1e-3,
            batch_size: 32,
            hidden_units: 0,
            dropout: 0.2,
            val_fraction: 0.15,
            seed: 42,
            patience: 20,
            weight_decay: 1e-2,
            standardize: true,
        }
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
        crate::recipe::finite("head.", &[("learningRate", self.learning_rate), ("dropout", self.dropout), ("valFraction", self.val_fraction), ("weightDecay", self.weight_decay)])?;
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

/// Per-dimension feature standardisation `(x - mean) · inv_std`, from the training split.
/// Phase 1 trains the head on standardised features; phase 2 keeps training it on them (see
/// [`crate::train::FineTuner::new`]); the exported head has it folded into its first layer.
#[derive(Debug, Clone)]
pub struct Standardizer {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

impl Standardizer {
    /// Dimensions that barely vary in the training split (many pooled ReLU6 channels are almost
    /// always 0) have their variance raised by a hundredth of the mean variance, so their scale
    /// stays at least a tenth of the typical one: otherwise an activation there that training
    /// never saw would be amplified without bound at inference.
    fn fit(set: &LabelledFeatures, dim: usize) -> Self {
        let n = set.len().max(1) as f64;
        let mut mean = vec![0.0f64; dim];
        for row in set.rows.chunks_exact(dim) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += x as f64 / n;
            }
        }
        let mut var = vec![0.0f64; dim];
        for row in set.rows.chunks_exact(dim) {
            for ((v, &x), m) in var.iter_mut().zip(row).zip(&mean) {
                *v += (x as f64 - m).powi(2) / n;
            }
        }
        let floor = 0.01 * var.iter().sum::<f64>() / dim as f64;
        let inv_std = var.iter().map(|&v| (1.0 / (v + floor).sqrt()) as f32).map(|s| if s.is_finite() { s } else { 1.0 }).collect();
        Self { mean: mean.into_iter().map(|m| m as f32).collect(), inv_std }
    }

    /// The per-dimension mean and inverse standard deviation.
    pub(crate) fn parts(&self) -> (&[f32], &[f32]) {
        (&self.mean, &self.inv_std)
    }

    /// A standardizer from [`parts`](Self::parts); refused when the two differ in length.
    pub(crate) fn from_parts(mean: Vec<f32>, inv_std: Vec<f32>) -> crate::error::Result<Self> {
        if mean.len() != inv_std.len() {
            return Err(crate::error::Error::Training(format!("a standardizer of {} means and {} scales", mean.len(), inv_std.len())));
        }
        Ok(Self { mean, inv_std })
    }

    /// Standardises a batch of features.
    ///
    /// # Shapes
    /// - features: `[batch, dim]`
    /// - output: `[batch, dim]`
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let device = features.device();
        let row = |values: &[f32]| Tensor::<2>::from_data(TensorData::new(values.to_vec(), [1, values.len()]), &device);
        (features - row(&self.mean)) * row(&self.inv_std)
    }

    fn apply(&self, set: &mut LabelledFeatures) {
        let dim = self.mean.len();
        for row in set.rows.chunks_exact_mut(dim) {
            for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.inv_std) {
                *x = (*x - m) * s;
            }
        }
    }

    /// The first linear layer of a head trained on standardised features, rewritten to take raw
    /// features: `W' = diag(inv_std) W`, `b' = b - (mean · inv_std) W` (burn's weight is `[in, out]`).
    pub fn fold(&self, head: Head) -> Head {
        self.rewrite(head, true)
    }

    /// The inverse of [`fold`](Self::fold): a head on raw features (an imported export) made to
    /// take standardised ones.
    pub fn unfold(&self, head: Head) -> Head {
        self.rewrite(head, false)
    }

    fn rewrite(&self, mut head: Head, fold: bool) -> Head {
        let first = match head.hidden.as_mut() {
            Some(hidden) => hidden,
            None => &mut head.output,
        };
        *first = self.rewrite_linear(first.clone(), fold);
        head
    }

    fn rewrite_linear(&self, mut linear: Linear, fold: bool) -> Linear {
        let dim = self.mean.len();
        let device = linear.weight.val().device();
        let scale: Vec<f32> = match fold {
            true => self.inv_std.clone(),
            false => self.inv_std.iter().map(|s| 1.0 / s).collect(),
        };
        let scale = Tensor::<2>::from_data(TensorData::new(scale, [dim, 1]), &device);
        // fold: b' = b - (mean · inv_std) W;  unfold: b = b' + mean W'
        let shift: Vec<f32> = match fold {
            true => self.mean.iter().zip(&self.inv_std).map(|(m, s)| -m * s).collect(),
            false => self.mean.clone(),
        };
        let shift = Tensor::<2>::from_data(TensorData::new(shift, [1, dim]), &device);
        let weight = linear.weight.val();
        let [_, out] = weight.dims();
        let bias_change = shift.matmul(weight).reshape([out]); // [out]
        linear.weight = linear.weight.map(|w| w * scale);
        linear.bias = linear.bias.map(|b| b.map(|b| b + bias_change));
        linear
    }
}

/// Trains a [`Head`] epoch by epoch, so callers can report progress (and the page can yield)
/// between epochs. Keeps the epoch with the lowest validation loss and stops when `patience`
/// epochs in a row bring no lower one.
pub struct HeadTrainer {
    options: HeadOptions,
    classes: usize,
    dim: usize,
    /// Trains on standardised features when set (see [`HeadOptions::standardize`]).
    standardizer: Option<Standardizer>,
    head: Head,
    /// The head given to [`start_from`](Self::start_from), as given: until the first epoch,
    /// [`head`](Self::head) returns it unchanged (folding the standardisation back in would
    /// round, and a re-export must be bit-identical).
    imported: Option<Head>,
    /// `(validation loss, epoch, validation accuracy, head)` of the best epoch so far.
    best: Option<(f64, usize, f64, Head)>,
    since_best: usize,
    stopped_early: bool,
    optimizer: ModuleOptimizer,
    train: LabelledFeatures,
    val: LabelledFeatures,
    rng: ChaCha8Rng,
    /// Optimizer steps taken, which pick each batch's dropout masks.
    step: u64,
    epoch: usize,
    diverged: bool,
    device: Device,
}

impl HeadTrainer {
    /// `device` is the inference device; training runs on its autodiff twin.
    /// A batch larger than the training split is clamped to it (see [`HeadOptions::batch_note`]).
    pub fn new(mut options: HeadOptions, classes: usize, dim: usize, mut train: LabelledFeatures, mut val: LabelledFeatures, device: &Device) -> Result<Self> {
        options.validate()?;
        if train.is_empty() {
            return Err(Error::Dataset("no training images".into()));
        }
        options.batch_size = options.batch_size.min(train.len());
        let standardizer = options.standardize.then(|| Standardizer::fit(&train, dim));
        if let Some(standardizer) = &standardizer {
            standardizer.apply(&mut train);
            standardizer.apply(&mut val);
        }
        let training_device = device.clone().autodiff();
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
            standardizer,
            head,
            imported: None,
            best: None,
            since_best: 0,
            stopped_early: false,
            train,
            val,
            step: 0,
            epoch: 0,
            diverged: false,
            device: device.clone(),
        })
    }

    /// After the last epoch, after early stopping, or after an epoch whose loss diverged.
    pub fn is_done(&self) -> bool {
        self.diverged || self.stopped_early || self.epoch >= self.options.epochs
    }

    /// Epochs finished so far.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// Whether early stopping ended the run before its last epoch.
    pub fn stopped_early(&self) -> bool {
        self.stopped_early
    }

    /// The head to keep, in inference mode on the inference device, taking raw features: the
    /// epoch with the lowest validation loss so far (the latest one without a validation split).
    /// The standardisation the head trained on, if any (the phase-1 head from
    /// [`head`](Self::head) has it folded in; [`Standardizer::unfold`] takes it out again).
    pub fn standardizer(&self) -> Option<&Standardizer> {
        self.standardizer.as_ref()
    }

    pub fn head(&self) -> Head {
        if let Some(imported) = self.imported.as_ref().filter(|_| self.epoch == 0) {
            return imported.clone();
        }
        let head = match &self.best {
            Some((.., best)) => best.valid(),
            None => self.head.valid(),
        };
        match &self.standardizer {
            Some(standardizer) => standardizer.fold(head),
            None => head,
        }
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
        self.imported = Some(head.clone().fork(&self.device));
        let head = match &self.standardizer {
            Some(standardizer) => standardizer.unfold(head.fork(&self.device)),
            None => head,
        };
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
        let decay = self.options.weight_decay;
        for batch in order.chunks(self.options.batch_size) {
            let (x, targets) = gather(&self.train, batch, self.dim);
            let n = batch.len();
            let x = Tensor::<2>::from_data(TensorData::new(x, [n, self.dim]), &training_device);
            let y = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &training_device);
            let logits = head.forward_train(x, &DropoutDraw { seed: self.options.seed, step: self.step, first_row: 0 });
            self.step += 1;
            let loss = loss_fn.forward(logits.clone(), y.clone());
            sums.add(&loss, &logits, &y);
            let objective = match decay > 0.0 {
                true => {
                    let squares = |w: Tensor<2>| w.powi_scalar(2).sum();
                    let mut penalty = squares(head.output.weight.val());
                    if let Some(hidden) = &head.hidden {
                        penalty = penalty + squares(hidden.weight.val());
                    }
                    loss + penalty.mul_scalar(decay / 2.0)
                }
                false => loss,
            };
            let grads = GradientsParams::from_grads(objective.backward(), &head);
            head = self.optimizer.step(self.options.learning_rate, head, grads);
        }
        let (loss_sum, correct_sum) = sums.read().await?;
        if !loss_sum.is_finite() {
            // Never keep a diverged head: the one from before this epoch stays, and training ends.
            self.diverged = true;
            return Err(diverged("head", loss_sum, self.epoch + 1, self.options.learning_rate));
        }
        self.head = head;
        self.epoch += 1;
        let n = self.train.len() as f64;
        let (val_loss, val_accuracy) = match self.val.is_empty() {
            true => (None, None),
            false => {
                let logits = self.logits(&self.val).await?;
                let (loss, accuracy) = loss_and_accuracy(&logits, self.classes, &self.val.targets);
                // A lower validation loss by more than rounding noise counts as progress.
                if self.best.as_ref().is_none_or(|(best, ..)| loss < best - 1e-4) {
                    self.best = Some((loss, self.epoch, accuracy, self.head.clone()));
                    self.since_best = 0;
                } else {
                    self.since_best += 1;
                    self.stopped_early = self.options.patience > 0 && self.since_best >= self.options.patience;
                }
                (Some(loss), Some(accuracy))
            }
        };
        Ok(EpochReport {
            epoch: self.epoch,
            epochs: self.options.epochs,
            train_loss: loss_sum / n,
            train_accuracy: correct_sum / n,
            val_loss,
            val_accuracy,
            val_accuracy_interval: val_accuracy.map(|a| accuracy_interval(a, self.val.len())),
            best_epoch: self.best.as_ref().map(|b| b.1),
            best_val_accuracy: self.best.as_ref().map(|b| b.2),
            done: self.is_done(),
        })
    }

    /// Logits of the head being trained (inference mode, on standardised features) for every row of `set`.
    async fn logits(&self, set: &LabelledFeatures) -> Result<Vec<f32>> {
        let x = Tensor::<2>::from_data(TensorData::new(set.rows.clone(), [set.len(), self.dim]), &self.device);
        let data = self.head.valid().forward(x).into_data_async().await.map_err(|e| Error::read_back("reading tensor data", e))?;
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
        // With dropout: its masks, like the initial weights and the batch order, come from the
        // seed alone, whatever the other tests of this binary draw meanwhile.
        let options = HeadOptions { epochs: 3, hidden_units: 8, dropout: 0.3, ..Default::default() };
        assert_eq!(run(options.clone()), run(options.clone()));
        assert_ne!(run(options.clone()), run(HeadOptions { seed: 7, ..options }));
    }

    /// Labels swapped: the better the head fits the training split, the worse the validation loss.
    fn swapped(mut set: LabelledFeatures) -> LabelledFeatures {
        set.targets.iter_mut().for_each(|t| *t = 1 - *t);
        set
    }

    #[test]
    fn early_stopping_keeps_the_best_epoch() {
        let device = Device::flex();
        let options = HeadOptions { epochs: 100, patience: 4, learning_rate: 1e-2, dropout: 0.0, ..Default::default() };
        let mut trainer = HeadTrainer::new(options, 2, 16, blobs(80, 1), swapped(blobs(20, 2)), &device).unwrap();
        let mut reports = Vec::new();
        let mut heads = Vec::new();
        while !trainer.is_done() {
            reports.push(pollster::block_on(trainer.train_epoch()).unwrap());
            heads.push(trainer.head.clone());
        }
        let last = reports.last().unwrap();
        assert!(trainer.stopped_early() && last.done && reports.len() < 100, "{last:?}");
        let best = last.best_epoch.unwrap();
        assert_eq!(reports.len(), best + 4, "stops `patience` epochs after the best");
        let lowest = reports.iter().map(|r| r.val_loss.unwrap()).fold(f64::INFINITY, f64::min);
        assert_eq!(reports[best - 1].val_loss.unwrap(), lowest);
        assert_eq!(last.best_val_accuracy, reports[best - 1].val_accuracy);
        let [lo, hi] = last.val_accuracy_interval.unwrap();
        assert!(lo <= last.val_accuracy.unwrap() && last.val_accuracy.unwrap() <= hi && hi - lo > 0.1, "{last:?}");
        // The kept head is the best epoch's, not the last one's.
        let standardizer = trainer.standardizer.clone().unwrap();
        let kept = trainer.head().output.weight.val().into_data();
        assert_eq!(kept, standardizer.fold(heads[best - 1].valid()).output.weight.val().into_data());
        assert_ne!(kept, standardizer.fold(heads.last().unwrap().valid()).output.weight.val().into_data());
    }

    /// The exported head takes raw features and gives the logits the trained head gives on
    /// standardised ones.
    #[test]
    fn standardisation_folds_into_the_first_layer() {
        let device = Device::flex();
        for hidden_units in [0, 8] {
            let options = HeadOptions { epochs: 5, hidden_units, dropout: 0.0, ..Default::default() };
            let raw = blobs(20, 2);
            let mut trainer = HeadTrainer::new(options, 2, 16, blobs(80, 1), raw.clone(), &device).unwrap();
            while !trainer.is_done() {
                pollster::block_on(trainer.train_epoch()).unwrap();
            }
            let standardised = pollster::block_on(trainer.logits(&trainer.val)).unwrap();
            let x = Tensor::<2>::from_data(TensorData::new(raw.rows.clone(), [20, 16]), &device);
            let exported = trainer.head().forward(x).into_data().try_to_vec::<f32>().unwrap();
            for (a, b) in standardised.iter().zip(&exported) {
                assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "{a} vs {b} (hidden {hidden_units})");
            }
        }
    }

    #[test]
    fn a_head_to_continue_from_comes_back_unchanged_until_trained() {
        let device = Device::flex();
        let options = HeadOptions { epochs: 2, dropout: 0.0, ..Default::default() };
        let imported = HeadConfig::new(16, 2).init_seeded(&device, 9);
        let mut trainer = HeadTrainer::new(options, 2, 16, blobs(40, 1), blobs(10, 2), &device).unwrap();
        trainer.start_from(imported.clone()).unwrap();
        assert_eq!(trainer.head().output.weight.val().into_data(), imported.output.weight.val().into_data());
        assert_eq!(trainer.head().output.bias.unwrap().val().into_data(), imported.output.bias.clone().unwrap().val().into_data());
        // And training starts from it: the first epoch's head on raw features is close to it.
        let x = Tensor::<2>::from_data(TensorData::new(blobs(10, 2).rows, [10, 16]), &device);
        let before = imported.forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
        let internal = trainer.standardizer.clone().unwrap().fold(trainer.head.valid()).forward(x).into_data().try_to_vec::<f32>().unwrap();
        for (a, b) in before.iter().zip(&internal) {
            assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
        }
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
            (HeadOptions { weight_decay: -1.0, ..Default::default() }, "weight decay"),
        ] {
            let err = HeadTrainer::new(options, 2, 16, blobs(4, 1), blobs(2, 2), &Device::flex()).err().unwrap().to_string();
            assert!(err.contains(word), "{err}");
        }
    }
}
