//! Phase 2 of the recipe: the last blocks of the backbone are unfrozen and trained with the head,
//! at a learning rate ten times lower than the head's, BatchNorm kept in inference mode, with
//! label smoothing, warmup then cosine decay, and early stopping that restores the best weights.
//!
//! The frozen prefix runs once per cached view ([`PrefixCache`]); each step runs only the tail.

use std::rc::Rc;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::data_parallel::{Helper, Reply, ShareGradients, add_gradients, check_setup_reply, decode_logits, setup_request, step_request, validate_request};
use super::metrics::{EpochReport, EpochSums, accuracy_interval, diverged, loss_and_accuracy};
use super::prefix_cache::PrefixCache;
use crate::error::{Error, Result};
use super::head::Standardizer;
use crate::model::{BackboneKind, Classifier, DropoutDraw};

/// How many backbone units (from the end) phase 2 trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnfreezePlan {
    kind: BackboneKind,
    units: usize,
}

impl UnfreezePlan {
    /// `units` in `1..=kind.units()`, counted from the end (see [`BackboneKind::units_description`]).
    pub fn new(kind: BackboneKind, units: usize) -> Result<Self> {
        if units == 0 || units > kind.units() {
            return Err(Error::Training(format!(
                "blocks to unfreeze must be between 1 and {} ({kind} has {}), got {units}",
                kind.units(),
                kind.units_description()
            )));
        }
        Ok(Self { kind, units })
    }

    pub fn units(&self) -> usize {
        self.units
    }

    /// Index of the first unit that trains; everything before it is the cached prefix.
    pub fn first_tail_unit(&self) -> usize {
        self.kind.units() - self.units
    }

    /// The classifier on `device`'s autodiff twin with only this plan's tail and the head
    /// trainable. `freeze` switches every BatchNorm to its running statistics; re-enabling
    /// gradients with `set_require_grad_group` leaves that switch alone, so the unfrozen blocks'
    /// BatchNorm stays in inference mode (neither using nor updating batch statistics), as the
    /// recipe asks.
    pub fn trainable(&self, classifier: Classifier, device: &Device) -> Classifier {
        let model = classifier.fork(&device.clone().autodiff()).train();
        let tail = model.backbone.tail_group(self.first_tail_unit());
        Classifier { backbone: model.backbone.freeze().set_require_grad_group(tail, true), head: model.head }
    }
}

/// Settings of phase 2; how deep it goes is the [`UnfreezePlan`], the seed the recipe's.
/// Ranges: [`crate::recipe::SETTINGS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(default, rename_all = "camelCase")]
pub struct FineTuneOptions {
    /// Most epochs; early stopping usually ends sooner (default 10). Fewer when `steps` fills
    /// first: [`planned_epochs`](Self::planned_epochs).
    pub epochs: usize,
    /// Step budget (default 1 000; 0: none): with many training views, the epochs are cut to about
    /// this many optimiser steps, never below [`MIN_BUDGET_EPOCHS`]. How far phase 2 moves the
    /// tail depends on the steps taken more than on how often each view repeats (measured on
    /// digits: README, Quality).
    pub steps: usize,
    /// Peak learning rate of the head (default 1e-3); the backbone tail gets
    /// `learning_rate * backbone_lr_factor`.
    pub learning_rate: f64,
    /// Discriminative rate for the unfrozen backbone blocks (default 0.1).
    pub backbone_lr_factor: f64,
    /// Epochs of linear warmup before the cosine decay (default 1).
    pub warmup_epochs: usize,
    /// Label smoothing of the cross-entropy (default 0.1).
    pub label_smoothing: f64,
    /// Epochs without a better validation loss before stopping (default 3).
    pub patience: usize,
    /// Views per step (default 16).
    pub batch_size: usize,
}

impl Default for FineTuneOptions {
    fn default() -> Self {
        Self {
            epochs: 10,
            steps: 1000,
            learning_rate: 1e-3,
            backbone_lr_factor: 0.1,
            warmup_epochs: 1,
            label_smoothing: 0.1,
            patience: 3,
            batch_size: 16,
        }
    }
}

impl FineTuneOptions {
    /// Checks the settings against [`crate::recipe::SETTINGS`], and that there is data.
    pub fn validate(&self, train_views: usize) -> Result<()> {
        let json = crate::recipe::to_json(self)?;
        crate::recipe::finite("fineTune.", &[("learningRate", self.learning_rate), ("backboneLrFactor", self.backbone_lr_factor), ("labelSmoothing", self.label_smoothing)])?;
        crate::recipe::check(&json, "fineTune.", None)?;
        if train_views == 0 {
            return Err(Error::Dataset("no training views to fine-tune on".into()));
        }
        Ok(())
    }
}

/// Fewest epochs the step budget leaves: room for the warmup, the decay and early stopping.
pub const MIN_BUDGET_EPOCHS: usize = 3;

impl FineTuneOptions {
    /// Epochs phase 2 runs with `steps_per_epoch` steps each: `epochs`, or fewer where the step
    /// budget is reached first (never below [`MIN_BUDGET_EPOCHS`] for the budget's sake).
    pub fn planned_epochs(&self, steps_per_epoch: usize) -> usize {
        match self.steps {
            0 => self.epochs,
            budget => self.epochs.min(budget.div_ceil(steps_per_epoch.max(1)).max(MIN_BUDGET_EPOCHS)),
        }
    }

    /// What [`FineTuner::new`] will do about a batch larger than the training views, in words.
    pub fn batch_note(&self, train_views: usize) -> Option<String> {
        (self.batch_size > train_views).then(|| {
            format!("batch size {} is larger than the {train_views} training views: using {train_views}", self.batch_size)
        })
    }
}

/// Learning-rate multiplier at `step`: linear warmup to 1 over `warmup` steps, then cosine
/// decay to 0 at `total`.
pub fn warmup_cosine(step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let t = ((step - warmup) as f64 / span).min(1.0);
    0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

/// What phase 2 minimises on cached prefix outputs: the fine-tuner's, and a helper's that
/// computes shares of its batches (see [`super::data_parallel`]).
#[derive(Debug, Clone)]
pub(crate) struct TailObjective {
    pub plan: UnfreezePlan,
    /// The head trains on standardised features, as in phase 1 (see [`FineTuner::new`]).
    pub standardizer: Option<Standardizer>,
    pub label_smoothing: f64,
}

impl TailObjective {
    /// The logits of `model` (the one being trained, or a copy of it) on cached prefix outputs:
    /// with dropout while training (`draw`), without to validate (`None`).
    ///
    /// # Shapes
    /// - prefix: `[batch, channels, height, width]` of the cache
    /// - output: `[batch, classes]`
    pub fn logits(&self, model: &Classifier, prefix: Tensor<4>, draw: Option<&DropoutDraw>) -> Tensor<2> {
        let features = model.backbone.forward_tail(prefix, self.plan.first_tail_unit());
        let features = match &self.standardizer {
            Some(standardizer) => standardizer.forward(features),
            None => features,
        };
        match draw {
            Some(draw) => model.head.forward_train(features, draw),
            None => model.head.forward(features),
        }
    }

    /// The mean cross-entropy with label smoothing.
    ///
    /// # Shapes
    /// - logits: `[batch, classes]`
    /// - targets: `[batch]`
    /// - output: `[1]`
    pub fn loss(&self, logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        CrossEntropyLossConfig::new()
            .with_smoothing(Some(self.label_smoothing as f32).filter(|s| *s > 0.0))
            .init(&logits.device())
            .forward(logits, targets)
    }
}

/// A share's mean loss and the logits and targets it came from, for the epoch's sums.
struct Scored {
    loss: Tensor<1>,
    logits: Tensor<2>,
    targets: Tensor<1, Int>,
}

impl Scored {
    fn add_to(&self, sums: &mut EpochSums) {
        sums.add(&self.loss, &self.logits, &self.targets);
    }
}

/// Trains the unfrozen tail and the head, epoch by epoch.
pub struct FineTuner {
    options: FineTuneOptions,
    objective: TailObjective,
    classes: usize,
    model: Classifier,
    /// `(validation loss, epoch, validation accuracy, model)` of the best epoch so far.
    best: Option<(f64, usize, f64, Classifier)>,
    /// Validation accuracy of phase 1's model, where fine-tuning started: that model (`start`)
    /// is kept instead of the best epoch when that epoch is less accurate, so phase 2 never
    /// hands back a model that is worse on validation than the head alone. (Accuracy, not loss:
    /// phase 2's label smoothing makes its outputs less confident, which raises the plain
    /// validation loss of a model that classifies as well or better.)
    baseline: Option<f64>,
    /// Phase 1's model as given, in inference mode.
    start: Classifier,
    since_best: usize,
    head_optimizer: ModuleOptimizer,
    backbone_optimizer: ModuleOptimizer,
    train: PrefixCache,
    val: PrefixCache,
    rng: ChaCha8Rng,
    seed: u64,
    step: usize,
    epoch: usize,
    stopped_early: bool,
    device: Device,
    /// The engine computing a share of each batch, set up (`true`) or not yet; dropped when it
    /// fails.
    helper: Option<(Rc<dyn Helper>, bool)>,
}

impl FineTuner {
    /// `classifier` is the phase-1 model on the inference `device`; `train`/`val` hold its
    /// prefix activations for `plan`; `seed` orders the batches and draws the dropout masks.
    /// A batch larger than the training views is clamped to them (see [`FineTuneOptions::batch_note`]).
    ///
    /// `standardizer` is phase 1's, when its head trained on standardised features: the head then
    /// goes on training on them (the standardisation taken out of its first layer, put back by
    /// [`model`](Self::model)), so its Adam steps keep the scale phase 1 chose them for: on the
    /// raw, all-positive pooled features, steps of about the same size for every weight add up in
    /// every logit alike.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        classifier: Classifier,
        standardizer: Option<Standardizer>,
        classes: usize,
        plan: UnfreezePlan,
        mut options: FineTuneOptions,
        seed: u64,
        train: PrefixCache,
        val: PrefixCache,
        device: &Device,
    ) -> Result<Self> {
        options.validate(train.len())?;
        options.batch_size = options.batch_size.min(train.len());
        options.epochs = options.planned_epochs(train.len().div_ceil(options.batch_size));
        let start = classifier.valid();
        let head = match &standardizer {
            Some(standardizer) => standardizer.unfold(classifier.head),
            None => classifier.head,
        };
        let model = plan.trainable(Classifier { backbone: classifier.backbone, head }, device);
        let objective = TailObjective { plan, standardizer, label_smoothing: options.label_smoothing };
        Ok(Self {
            start,
            objective,
            rng: ChaCha8Rng::seed_from_u64(seed),
            seed,
            options,
            classes,
            model,
            best: None,
            baseline: None,
            since_best: 0,
            head_optimizer: AdamConfig::new().init(),
            backbone_optimizer: AdamConfig::new().init(),
            train,
            val,
            step: 0,
            epoch: 0,
            stopped_early: false,
            device: device.clone(),
            helper: None,
        })
    }

    /// Has `helper` compute a share of every batch from the next step on (see
    /// [`super::data_parallel`]).
    pub fn set_helper(&mut self, helper: Rc<dyn Helper>) {
        self.helper = Some((helper, false));
    }

    /// Whether a helper computes shares of the batches (it was set and has not failed).
    pub fn has_helper(&self) -> bool {
        self.helper.is_some()
    }

    pub fn options(&self) -> &FineTuneOptions {
        &self.options
    }

    pub fn is_done(&self) -> bool {
        self.stopped_early || self.epoch >= self.options.epochs
    }

    /// Epochs finished so far.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    pub fn stopped_early(&self) -> bool {
        self.stopped_early
    }

    /// The epoch (1-based) whose weights [`model`](Self::model) returns, when there was a
    /// validation split; 0 when the phase-1 model is kept, the best fine-tuning epoch being less
    /// accurate on validation.
    pub fn best_epoch(&self) -> Option<usize> {
        self.kept().map(|(epoch, ..)| epoch)
    }

    /// `(epoch, validation accuracy, model)` to keep: the phase-2 epoch with the lowest
    /// validation loss, or phase 1 (epoch 0) when that epoch classifies fewer validation pictures.
    fn kept(&self) -> Option<(usize, f64, &Classifier)> {
        let (_, epoch, accuracy, model) = self.best.as_ref()?;
        match self.baseline {
            Some(base) if base > *accuracy => Some((0, base, &self.start)),
            _ => Some((*epoch, *accuracy, model)),
        }
    }

    /// The model to keep (see [`best_epoch`](Self::best_epoch); the last one without a
    /// validation split), in inference mode, its head on raw features.
    /// The cached training and validation views, for tests that check what caching produced.
    #[cfg(test)]
    pub(crate) fn caches(&self) -> (&PrefixCache, &PrefixCache) {
        (&self.train, &self.val)
    }

    /// The model being trained, as it is now (tests compare its values).
    #[cfg(test)]
    pub(crate) fn model_in_training(&self) -> &Classifier {
        &self.model
    }

    pub fn model(&self) -> Classifier {
        let model = match self.kept() {
            Some((0, ..)) => return self.start.clone(),
            Some((.., model)) => model.valid(),
            None => self.model.valid(),
        };
        match &self.objective.standardizer {
            Some(standardizer) => Classifier { head: standardizer.fold(model.head), backbone: model.backbone },
            None => model,
        }
    }

    /// Adam state tensors held for the backbone (only unfrozen parameters ever get any).
    pub fn backbone_optimizer_state_tensors(&self) -> usize {
        self.backbone_optimizer.to_record().len()
    }

    fn total_steps(&self) -> usize {
        self.options.epochs * self.train.len().div_ceil(self.options.batch_size)
    }

    /// One step on the given rows of the cache, adding its loss and accuracy to `sums`: with a
    /// helper, the last rows, one fewer than half, are its share: its answer costs about a row's
    /// work more than its rows (sending the parameters, reading gradients back; measured in the
    /// page, README "Speed"), so that share finishes with this engine's.
    async fn step(&mut self, batch: &[usize], sums: &mut EpochSums) {
        let n = batch.len();
        let share = if self.helper.is_some() { n.saturating_sub(1) / 2 } else { 0 };
        let (mine, theirs) = batch.split_at(n - share);
        let reply = match share {
            0 => None,
            _ => match self.ask_helper(theirs, n).await {
                Ok(reply) => Some(reply),
                Err(_) => return self.drop_helper(batch, sums).await,
            },
        };
        let (mut head_grads, mut backbone_grads, scored) = self.gradients(mine, 0, n);
        if let Some(reply) = reply {
            let added = reply.await.and_then(|reply| {
                let share = ShareGradients::decode(&reply)?;
                let used = add_gradients(&self.model.backbone, &mut backbone_grads, &share.gradients, &self.device)?;
                let used = used + add_gradients(&self.model.head, &mut head_grads, &share.gradients[used..], &self.device)?;
                if used != share.gradients.len() {
                    return Err(Error::Training(format!("the helper sent {} gradient values for {used}", share.gradients.len())));
                }
                Ok(share)
            });
            match added {
                Ok(share) => sums.add_totals(share.loss_sum, share.correct, &self.device.clone().autodiff()),
                Err(_) => return self.drop_helper(batch, sums).await,
            }
        }
        scored.add_to(sums);
        self.apply(head_grads, backbone_grads);
    }

    /// Sends the helper its share of a step (after its setup, the first time) and returns the
    /// pending reply.
    async fn ask_helper(&mut self, theirs: &[usize], batch: usize) -> Result<Reply> {
        let helper = self.ready_helper().await?;
        let targets: Vec<usize> = theirs.iter().map(|&i| self.train.targets()[i]).collect();
        let draw = self.draw(batch - theirs.len());
        let request = step_request(&self.model, self.train.rows(theirs), &targets, batch, &draw).await?;
        Ok(helper.call(request))
    }

    /// The helper, set up for this phase 2 (the first time it is asked).
    async fn ready_helper(&mut self) -> Result<Rc<dyn Helper>> {
        let (helper, ready) = self.helper.clone().expect("asked only with a helper");
        if !ready {
            let setup = setup_request(&self.model, &self.objective, self.dropout_seed()).await?;
            check_setup_reply(&helper.call(setup).await?, &self.model)?;
            self.helper = Some((helper.clone(), true));
        }
        Ok(helper)
    }

    /// The helper failed: it is not asked again (training goes on as fast as one engine goes),
    /// and the step runs here whole.
    async fn drop_helper(&mut self, batch: &[usize], sums: &mut EpochSums) {
        self.helper = None;
        let (head_grads, backbone_grads, scored) = self.gradients(batch, 0, batch.len());
        scored.add_to(sums);
        self.apply(head_grads, backbone_grads);
    }

    /// This step's dropout masks for the rows from `first_row` of its batch: the same whichever
    /// engine computes them, so a run with a helper trains the model one engine trains.
    fn draw(&self, first_row: usize) -> DropoutDraw {
        DropoutDraw { seed: self.dropout_seed(), step: self.step as u64, first_row }
    }

    /// The seed of phase 2's dropout masks: the run's, made different from phase 1's (which
    /// draws from the run's seed as it is), so that step `k` of each phase drops differently.
    fn dropout_seed(&self) -> u64 {
        self.seed ^ 0x9e37_79b9_7f4a_7c15
    }

    /// Gradients (head, backbone) of the loss on the rows `rows` of the cache, rows `first_row..`
    /// of a batch of `batch`, scaled by their share of it, and their loss and accuracy.
    fn gradients(&self, rows: &[usize], first_row: usize, batch: usize) -> (GradientsParams, GradientsParams, Scored) {
        let training_device = self.device.clone().autodiff();
        let n = rows.len();
        let x = self.train.batch(rows, &training_device);
        let targets: Vec<i64> = rows.iter().map(|&i| self.train.targets()[i] as i64).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &training_device);
        let logits = self.objective.logits(&self.model, x, Some(&self.draw(first_row)));
        let loss = self.objective.loss(logits.clone(), y.clone());
        let mut grads = loss.clone().mul_scalar(n as f32 / batch as f32).backward();
        let head_grads = GradientsParams::from_module(&mut grads, &self.model.head);
        let backbone_grads = GradientsParams::from_module(&mut grads, &self.model.backbone);
        (head_grads, backbone_grads, Scored { loss, logits, targets: y })
    }

    /// One optimizer step on the batch's gradients, at the schedule's learning rate.
    fn apply(&mut self, head_grads: GradientsParams, backbone_grads: GradientsParams) {
        let steps_per_epoch = self.train.len().div_ceil(self.options.batch_size);
        let factor = warmup_cosine(self.step, self.options.warmup_epochs * steps_per_epoch, self.total_steps());
        let head_lr = self.options.learning_rate * factor;
        let model = self.model.clone();
        self.model = Classifier {
            head: self.head_optimizer.step(head_lr, model.head, head_grads),
            backbone: self.backbone_optimizer.step(head_lr * self.options.backbone_lr_factor, model.backbone, backbone_grads),
        };
        self.step += 1;
    }

    pub async fn train_epoch(&mut self) -> Result<EpochReport> {
        if self.is_done() {
            return Err(Error::Training("fine-tuning already finished".into()));
        }
        if self.epoch == 0 && self.baseline.is_none() && !self.val.is_empty() {
            let logits = self.validation_logits().await?;
            let (_, accuracy) = loss_and_accuracy(&logits, self.classes, self.val.targets());
            self.baseline = Some(accuracy);
        }
        let before = self.model.clone();
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        order.shuffle(&mut self.rng);
        let mut sums = EpochSums::default();
        for batch in order.chunks(self.options.batch_size) {
            self.step(batch, &mut sums).await;
        }
        let totals = sums.read().await?;
        if !totals.0.is_finite() {
            // Never keep a diverged model: go back to the epoch's start and stop.
            self.model = before;
            self.stopped_early = true;
            return Err(diverged("fine-tuning", totals.0, self.epoch + 1, self.options.learning_rate));
        }
        self.epoch += 1;
        let n = self.train.len() as f64;
        let (val_loss, val_accuracy) = if self.val.is_empty() {
            (None, None)
        } else {
            let logits = self.validation_logits().await?;
            let (loss, accuracy) = loss_and_accuracy(&logits, self.classes, self.val.targets());
            if self.best.as_ref().is_none_or(|(best, ..)| loss < *best) {
                self.best = Some((loss, self.epoch, accuracy, self.model.clone()));
                self.since_best = 0;
            } else {
                self.since_best += 1;
                self.stopped_early = self.since_best >= self.options.patience;
            }
            (Some(loss), Some(accuracy))
        };
        Ok(EpochReport {
            epoch: self.epoch,
            epochs: self.options.epochs,
            train_loss: totals.0 / n,
            train_accuracy: totals.1 / n,
            val_loss,
            val_accuracy,
            val_accuracy_interval: val_accuracy.map(|a| accuracy_interval(a, self.val.len())),
            best_epoch: self.kept().map(|k| k.0),
            best_val_accuracy: self.kept().map(|k| k.1),
            done: self.is_done(),
        })
    }

    /// The logits of the model being trained on the validation views: with a helper, it
    /// computes the last half of them meanwhile (a helper that fails is dropped, and its half
    /// computed here).
    async fn validation_logits(&mut self) -> Result<Vec<f32>> {
        let n = self.val.len();
        let model = self.model.valid();
        let share = if self.helper.is_some() { n / 2 } else { 0 };
        if share == 0 {
            return self.val_logits(&model, 0..n).await;
        }
        let theirs: Vec<usize> = (n - share..n).collect();
        let reply = match self.ready_helper().await {
            Ok(helper) => validate_request(&self.model, self.val.rows(&theirs)).await.map(|request| helper.call(request)),
            Err(e) => Err(e),
        };
        let mut logits = self.val_logits(&model, 0..n - share).await?;
        let answered = match reply {
            Ok(reply) => reply.await.and_then(|reply| decode_logits(&reply, share, self.classes)),
            Err(e) => Err(e),
        };
        match answered {
            Ok(values) => logits.extend(values),
            Err(_) => {
                self.helper = None;
                logits.extend(self.val_logits(&model, n - share..n).await?);
            }
        }
        Ok(logits)
    }

    /// `model`'s logits on the validation views `rows`, computed here.
    async fn val_logits(&self, model: &Classifier, rows: std::ops::Range<usize>) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(rows.len() * self.classes);
        let indices: Vec<usize> = rows.collect();
        for chunk in indices.chunks(32) {
            let x = self.val.batch(chunk, &self.device);
            let logits = self.objective.logits(model, x, None);
            let data = logits.into_data_async().await.map_err(|e| Error::read_back("reading tensor data", e))?;
            out.extend(data.try_to_vec_as::<f32>().map_err(|e| Error::read_back("reading tensor data", e))?);
        }
        Ok(out)
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::{Classifier, HeadConfig};
    use crate::train::CacheStorage;
    use burn::tensor::Distribution;
    use crate::model::{Backbone, EfficientNetLite};

    fn lite(backbone: &Backbone) -> &EfficientNetLite {
        match backbone {
            Backbone::EfficientNetLite(m) => m,
            #[allow(unreachable_patterns)]
            _ => panic!("these tests use EfficientNet-Lite0"),
        }
    }

    /// The cached-prefix step and the plain full forward give the same loss and gradients.
    #[test]
    fn cached_prefix_path_equals_full_forward() {
        let device = Device::flex();
        device.seed(11);
        let classifier = Classifier::new(BackboneKind::EfficientNetLite0, &HeadConfig::new(1280, 3).with_dropout(0.0), &device);
        let plan = UnfreezePlan::new(BackboneKind::EfficientNetLite0, 2).unwrap();
        let input = Tensor::<4>::random([4, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
        let targets = [0usize, 2, 1, 2];

        // The cache holds the prefix output computed on the inference device, in f32.
        let mut cache = PrefixCache::new(CacheStorage::F32);
        let prefix = classifier.backbone.forward_prefix(input.clone(), plan.first_tail_unit());
        let [_, c, h, w] = prefix.dims();
        let rows = prefix.into_data().try_to_vec::<f32>().unwrap();
        cache.push_rows([c, h, w], &rows, &targets).unwrap();

        let model = plan.trainable(classifier, &device);
        let ad = device.clone().autodiff();
        let y = Tensor::<1, Int>::from_data(TensorData::new(targets.iter().map(|&t| t as i64).collect::<Vec<_>>(), [4]), &ad);
        let loss_fn = CrossEntropyLossConfig::new().with_smoothing(Some(0.1)).init(&ad);

        let full = loss_fn.forward(model.forward(input.clone().to_device(&ad)), y.clone());
        let cached = loss_fn.forward(
            model.head.forward(model.backbone.forward_tail(cache.batch(&[0, 1, 2, 3], &ad), plan.first_tail_unit())),
            y,
        );
        let (full_loss, cached_loss) = (full.clone().into_scalar::<f32>(), cached.clone().into_scalar::<f32>());
        assert!((full_loss - cached_loss).abs() < 1e-5, "{full_loss} vs {cached_loss}");

        let mut g_full = full.backward();
        let mut g_cached = cached.backward();
        let full_grads = GradientsParams::from_module(&mut g_full, &model);
        let cached_grads = GradientsParams::from_module(&mut g_cached, &model);
        let close = |a: Tensor<1>, b: Tensor<1>| {
            let (a, b) = (a.into_data().try_to_vec::<f32>().unwrap(), b.into_data().try_to_vec::<f32>().unwrap());
            let scale = a.iter().map(|v| v.abs()).fold(0.0f32, f32::max).max(1e-12);
            let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(diff / scale < 1e-4, "gradient differs by {diff} (scale {scale})");
        };
        let flat4 = |t: Tensor<4>| t.flatten::<1>(0, 3);
        let top = lite(&model.backbone).top.conv.weight.id;
        close(flat4(full_grads.get::<4>(top).unwrap()), flat4(cached_grads.get::<4>(top).unwrap()));
        let dw = lite(&model.backbone).blocks[15].depthwise.conv.weight.id;
        close(flat4(full_grads.get::<4>(dw).unwrap()), flat4(cached_grads.get::<4>(dw).unwrap()));
        let gamma = lite(&model.backbone).blocks[15].project.bn.gamma.id;
        close(full_grads.get::<1>(gamma).unwrap(), cached_grads.get::<1>(gamma).unwrap());
        let head = model.head.output.weight.id;
        close(full_grads.get::<2>(head).unwrap().flatten(0, 1), cached_grads.get::<2>(head).unwrap().flatten(0, 1));
        // The frozen prefix gets no gradient on either path.
        assert!(full_grads.get::<4>(lite(&model.backbone).blocks[14].depthwise.conv.weight.id).is_none());
        assert!(full_grads.get::<4>(lite(&model.backbone).stem.conv.weight.id).is_none());
        // And every BatchNorm is in inference mode.
        assert!(!lite(&model.backbone).blocks[15].project.bn.training.is_enabled());
        assert!(!lite(&model.backbone).top.bn.training.is_enabled());
    }

    #[test]
    fn optimizer_holds_state_only_for_unfrozen_parameters() {
        let device = Device::flex();
        device.seed(5);
        let classifier = Classifier::new(BackboneKind::EfficientNetLite0, &HeadConfig::new(1280, 2), &device);
        let plan = UnfreezePlan::new(BackboneKind::EfficientNetLite0, 3).unwrap();
        let prefix = classifier.backbone.forward_prefix(
            Tensor::<4>::random([6, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device),
            plan.first_tail_unit(),
        );
        let [_, c, h, w] = prefix.dims();
        let mut train = PrefixCache::new(CacheStorage::F16);
        train.push_rows([c, h, w], &prefix.into_data().try_to_vec::<f32>().unwrap(), &[0, 1, 0, 1, 0, 1]).unwrap();
        let options = FineTuneOptions { epochs: 1, batch_size: 3, ..Default::default() };
        let mut tuner = FineTuner::new(classifier, None, 2, plan, options, 42, train, PrefixCache::new(CacheStorage::F16), &device).unwrap();
        assert_eq!(tuner.backbone_optimizer_state_tensors(), 0);
        pollster::block_on(tuner.train_epoch()).unwrap();
        struct Trainable(usize);
        impl burn::module::ModuleVisitor for Trainable {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                self.0 += param.val().is_require_grad() as usize;
            }
        }
        let mut trainable = Trainable(0);
        tuner.model.backbone.visit(&mut trainable);
        // Three units: MBConv blocks 14 and 15 (3 convolutions + 3 BatchNorm scale/shift pairs
        // each) and `top` (a convolution and its scale/shift).
        assert_eq!(trainable.0, 2 * 9 + 3);
        // Adam's two moments for each of them, and nothing for the frozen prefix.
        assert_eq!(tuner.backbone_optimizer_state_tensors(), 2 * trainable.0);
    }

    /// A random-init 2-class classifier, a plan that fine-tunes its last unit, and the prefix
    /// outputs (`[channels, height, width]` and the rows) of `pictures` all-ones 32 px pictures.
    fn last_unit_of_blank_pictures(pictures: usize, device: &Device) -> (Classifier, UnfreezePlan, [usize; 3], Vec<f32>) {
        let classifier = Classifier::new(BackboneKind::EfficientNetLite0, &HeadConfig::new(1280, 2), device);
        let plan = UnfreezePlan::new(BackboneKind::EfficientNetLite0, 1).unwrap();
        let prefix = classifier.backbone.forward_prefix(Tensor::<4>::ones([pictures, 3, 32, 32], device), plan.first_tail_unit());
        let [_, c, h, w] = prefix.dims();
        (classifier, plan, [c, h, w], prefix.into_data().try_to_vec::<f32>().unwrap())
    }

    #[test]
    fn a_diverged_epoch_rolls_back_and_stops() {
        let device = Device::flex();
        let (classifier, plan, [c, h, w], mut rows) = last_unit_of_blank_pictures(2, &device);
        rows[0] = f32::NAN;
        let mut train = PrefixCache::new(CacheStorage::F32);
        train.push_rows([c, h, w], &rows, &[0, 1]).unwrap();
        let options = FineTuneOptions { epochs: 3, batch_size: 2, ..Default::default() };
        let mut tuner = FineTuner::new(classifier, None, 2, plan, options, 42, train, PrefixCache::new(CacheStorage::F32), &device).unwrap();
        let before = lite(&tuner.model().backbone).top.conv.weight.val().into_data();
        let err = pollster::block_on(tuner.train_epoch()).unwrap_err().to_string();
        assert!(err.contains("loss became NaN") && err.contains("were kept"), "{err}");
        assert!(tuner.is_done());
        assert_eq!(lite(&tuner.model().backbone).top.conv.weight.val().into_data(), before);
    }

    /// Phase 2 on 4 random pictures all labelled 0, validated on the same pictures with
    /// `val_labels`, from a head that answers class 1 for everything (zero weights, bias
    /// favouring 1): each step moves the answers towards 0.
    fn tuner_validated_on(val_labels: &[usize]) -> (FineTuner, Vec<f32>) {
        let device = Device::flex();
        let mut classifier = Classifier::new(BackboneKind::EfficientNetLite0, &HeadConfig::new(1280, 2), &device);
        let output = &mut classifier.head.output;
        output.weight = burn::module::Param::from_tensor(output.weight.val().zeros_like());
        output.bias = Some(burn::module::Param::from_tensor(Tensor::from_floats([0.0, 0.01], &device)));
        let plan = UnfreezePlan::new(BackboneKind::EfficientNetLite0, 1).unwrap();
        let input = Tensor::<4>::random([4, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let prefix = classifier.backbone.forward_prefix(input, plan.first_tail_unit());
        let [_, c, h, w] = prefix.dims();
        let rows = prefix.into_data().try_to_vec::<f32>().unwrap();
        let (mut train, mut val) = (PrefixCache::new(CacheStorage::F32), PrefixCache::new(CacheStorage::F32));
        train.push_rows([c, h, w], &rows, &[0, 0, 0, 0]).unwrap();
        val.push_rows([c, h, w], &rows, val_labels).unwrap();
        let options = FineTuneOptions { epochs: 2, batch_size: 4, learning_rate: 1e-2, patience: 5, ..Default::default() };
        let tuner = FineTuner::new(classifier, None, 2, plan, options, 7, train, val, &device).unwrap();
        let start = pollster::block_on(tuner.val_logits(&tuner.model(), 0..tuner.val.len())).unwrap();
        (tuner, start)
    }

    #[test]
    fn the_phase_one_model_is_kept_when_fine_tuning_classifies_worse() {
        // Validation says 1, as the phase-1 head does; fine-tuning moves everything to 0.
        let (mut tuner, start) = tuner_validated_on(&[1, 1, 1, 1]);
        while !tuner.is_done() {
            pollster::block_on(tuner.train_epoch()).unwrap();
        }
        assert_eq!(tuner.best_epoch(), Some(0));
        assert_eq!(pollster::block_on(tuner.val_logits(&tuner.model(), 0..tuner.val.len())).unwrap(), start);

        // Validation says 0: fine-tuning classifies better, and its epoch is kept.
        let (mut tuner, _) = tuner_validated_on(&[0, 0, 0, 0]);
        while !tuner.is_done() {
            pollster::block_on(tuner.train_epoch()).unwrap();
        }
        assert!(tuner.best_epoch().unwrap() >= 1, "{:?}", tuner.best_epoch());
    }

    #[test]
    fn the_step_budget_cuts_epochs_down_to_a_floor() {
        let options = FineTuneOptions::default();
        assert_eq!((options.epochs, options.steps), (10, 1000));
        assert_eq!(options.planned_epochs(107), 10, "850 pictures × 2 views at batch 16");
        assert_eq!(options.planned_epochs(191), 6, "1 528 pictures × 2 views");
        assert_eq!(options.planned_epochs(1000), MIN_BUDGET_EPOCHS);
        assert_eq!(FineTuneOptions { steps: 0, ..Default::default() }.planned_epochs(1000), 10);
        assert_eq!(FineTuneOptions { epochs: 2, ..Default::default() }.planned_epochs(1000), 2);
    }

    #[test]
    fn a_budget_of_few_steps_runs_fewer_epochs() {
        let device = Device::flex();
        let (classifier, plan, shape, rows) = last_unit_of_blank_pictures(4, &device);
        let mut train = PrefixCache::new(CacheStorage::F32);
        train.push_rows(shape, &rows, &[0, 1, 0, 1]).unwrap();
        // 4 rows at batch 1: 4 steps an epoch, so a budget of 8 steps asks for 2 epochs: 3, the floor.
        let options = FineTuneOptions { epochs: 10, steps: 8, batch_size: 1, ..Default::default() };
        let mut tuner = FineTuner::new(classifier, None, 2, plan, options, 3, train, PrefixCache::new(CacheStorage::F32), &device).unwrap();
        assert_eq!(tuner.options().epochs, MIN_BUDGET_EPOCHS);
        let mut epochs = 0;
        while !tuner.is_done() {
            epochs = pollster::block_on(tuner.train_epoch()).unwrap().epochs;
        }
        assert_eq!((tuner.epochs_done(), epochs), (MIN_BUDGET_EPOCHS, MIN_BUDGET_EPOCHS));
    }

    #[test]
    fn warmup_then_cosine() {
        assert_eq!(warmup_cosine(0, 4, 20), 0.25);
        assert_eq!(warmup_cosine(3, 4, 20), 1.0);
        assert_eq!(warmup_cosine(4, 4, 20), 1.0);
        assert!((warmup_cosine(12, 4, 20) - 0.5).abs() < 1e-12);
        assert!(warmup_cosine(19, 4, 20) < 0.01);
        assert_eq!(warmup_cosine(0, 0, 10), 1.0);
    }

    #[test]
    fn plans_outside_the_backbone_are_refused() {
        assert!(UnfreezePlan::new(BackboneKind::EfficientNetLite0, 0).is_err());
        let err = UnfreezePlan::new(BackboneKind::EfficientNetLite0, 18).unwrap_err().to_string();
        assert!(err.contains("between 1 and 17") && err.contains("MBConv"), "{err}");
        assert_eq!(UnfreezePlan::new(BackboneKind::EfficientNetLite0, 2).unwrap().first_tail_unit(), 15);
        assert_eq!(UnfreezePlan::new(BackboneKind::EfficientNetLite0, 17).unwrap().first_tail_unit(), 0);
    }

    #[test]
    fn bad_options_name_the_setting() {
        let check = |o: FineTuneOptions| o.validate(10).unwrap_err();
        assert_eq!(check(FineTuneOptions { learning_rate: f64::NAN, ..Default::default() }).setting(), Some("fineTune.learningRate"));
        let zero = check(FineTuneOptions { learning_rate: 0.0, ..Default::default() });
        assert!(zero.to_string().contains("learning rate"), "{zero}");
        let none = FineTuneOptions::default().validate(0).unwrap_err().to_string();
        assert!(none.contains("no training views"), "{none}");
        assert!(FineTuneOptions { batch_size: 11, ..Default::default() }.validate(10).is_ok(), "clamped, not refused");
    }
}
