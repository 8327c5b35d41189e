//! Timing of phase-2 training steps, cached prefix against the plain full forward. Shared by
//! the native benchmark (`examples/fine_tune_benchmark.rs`) and the page's bench entry, so both
//! measure the same work, and of backbone forwards (`examples/backbone_benchmark.rs`, the bench
//! page). Measurement only: nothing here is used by training.

use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use serde::Serialize;

use super::finetune::UnfreezePlan;
use crate::error::{Error, Result};
use crate::model::{Backbone, Classifier, HeadConfig};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepTiming {
    pub unfreeze: usize,
    pub cached: bool,
    pub batch: usize,
    pub steps: usize,
    /// Median milliseconds per step (forward, backward, optimizer update, read-back of the loss).
    pub median_ms: f64,
    pub images_per_second: f64,
}

/// One phase-2 training step, repeatable: forward (from the cached prefix or through the whole
/// backbone), backward, Adam updates of the head and the unfrozen blocks, read-back of the loss,
/// on a fixed random batch. What [`time_fine_tune_steps`] and the criterion bench
/// (`benches/training.rs`) time.
pub struct FineTuneStep {
    /// Taken for each step and put back updated, so the optimizer holds the only reference to
    /// the parameters (as in training) and can update them in place.
    model: Option<Classifier>,
    plan: UnfreezePlan,
    /// The whole input, or the prefix output the cache holds (on the host, uploaded again for
    /// every step as the cache's rows are).
    input: TensorData,
    cached: bool,
    targets: Tensor<1, Int>,
    loss_fn: CrossEntropyLoss,
    head_opt: ModuleOptimizer,
    backbone_opt: ModuleOptimizer,
    device: Device,
}

impl FineTuneStep {
    /// A random batch of `batch` images at `size` px (see [`with_input`](Self::with_input)).
    pub async fn new(classifier: &Classifier, plan: UnfreezePlan, cached: bool, batch: usize, size: usize, device: &Device) -> Result<Self> {
        let input = Tensor::<4>::random([batch, 3, size, size], Distribution::Normal(0.0, 1.0), device);
        Self::with_input(classifier, plan, cached, input).await
    }

    /// Steps on `input` (`[batch, 3, height, width]`, normalised), its images in two
    /// alternating classes.
    pub async fn with_input(classifier: &Classifier, plan: UnfreezePlan, cached: bool, mut input: Tensor<4>) -> Result<Self> {
        let device = input.device();
        let training_device = device.clone().autodiff();
        let batch = input.dims()[0];
        if cached {
            input = classifier.backbone.forward_prefix(input, plan.first_tail_unit());
        }
        let input = input.into_data_async().await.map_err(|e| Error::read_back("reading tensor data", e))?;
        let targets = Tensor::<1, Int>::from_data(TensorData::new((0..batch as i64).map(|i| i % 2).collect(), [batch]), &training_device);
        Ok(Self {
            model: Some(plan.trainable(classifier.clone(), &device)),
            loss_fn: CrossEntropyLossConfig::new().with_smoothing(Some(0.1)).init(&training_device),
            plan,
            input,
            cached,
            targets,
            head_opt: AdamConfig::new().init(),
            backbone_opt: AdamConfig::new().init(),
            device: training_device,
        })
    }

    /// One step; returns the batch's loss.
    pub async fn run(&mut self) -> Result<f32> {
        let x = Tensor::<4>::from_data(self.input.clone(), &self.device);
        let model = self.model.take().expect("every step puts the model back");
        let logits = if self.cached {
            model.head.forward(model.backbone.forward_tail(x, self.plan.first_tail_unit()))
        } else {
            model.forward(x)
        };
        let loss = self.loss_fn.forward(logits, self.targets.clone());
        let mut grads = loss.backward();
        let head_grads = GradientsParams::from_module(&mut grads, &model.head);
        let backbone_grads = GradientsParams::from_module(&mut grads, &model.backbone);
        self.model = Some(Classifier {
            head: self.head_opt.step(1e-3, model.head, head_grads),
            backbone: self.backbone_opt.step(1e-4, model.backbone, backbone_grads),
        });
        let loss = loss.into_data_async().await.map_err(|e| Error::read_back("reading tensor data", e))?;
        loss.try_to_vec::<f32>().map_err(|e| Error::read_back("reading the loss", e)).map(|v| v[0])
    }
}

/// Runs `steps + 1` [`FineTuneStep`]s (the first, a warm-up, is not counted) on a random batch
/// of `batch` images at `size` px. `now_ms` is the platform's clock (wasm has no `Instant`).
pub async fn time_fine_tune_steps(
    classifier: &Classifier,
    plan: UnfreezePlan,
    cached: bool,
    batch: usize,
    size: usize,
    steps: usize,
    device: &Device,
    now_ms: &dyn Fn() -> f64,
) -> Result<StepTiming> {
    let units = plan.units();
    let mut step = FineTuneStep::new(classifier, plan, cached, batch, size, device).await?;
    let mut times = Vec::new();
    for i in 0..=steps {
        let start = now_ms();
        step.run().await?;
        if i > 0 {
            times.push(now_ms() - start);
        }
    }
    times.sort_by(f64::total_cmp);
    let median_ms = times[times.len() / 2];
    Ok(StepTiming { unfreeze: units, cached, batch, steps, median_ms, images_per_second: batch as f64 * 1000.0 / median_ms })
}

/// [`time_fine_tune_steps`] on `backbone` with a fresh two-class head, at the backbone's input size.
pub async fn time_classifier_steps(backbone: &Backbone, unfreeze: usize, cached: bool, batch: usize, steps: usize, now_ms: &dyn Fn() -> f64) -> Result<StepTiming> {
    let (kind, device) = (backbone.kind(), backbone.device());
    let classifier = Classifier { backbone: backbone.clone(), head: HeadConfig::new(kind.features(), 2).init_seeded(&device, 1) };
    let size = kind.spec().input_size as usize;
    time_fine_tune_steps(&classifier, UnfreezePlan::new(kind, unfreeze)?, cached, batch, size, steps.max(1), &device, now_ms).await
}

/// Median milliseconds of `steps` inference forwards of `backbone` (after one warm-up) on a
/// random batch of `batch` images at `size` px, including the read-back of the features.
pub async fn time_forward(backbone: &Backbone, batch: usize, size: usize, steps: usize, now_ms: &dyn Fn() -> f64) -> Result<f64> {
    let input = Tensor::<4>::random([batch, 3, size, size], Distribution::Normal(0.0, 1.0), &backbone.device());
    let mut times = Vec::new();
    for step in 0..=steps.max(1) {
        let start = now_ms();
        backbone.forward(input.clone()).into_data_async().await.map_err(|e| Error::read_back("reading tensor data", e))?;
        if step > 0 {
            times.push(now_ms() - start);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BackboneKind;

    /// What the benchmarks time is training: from the cached prefix as through the whole
    /// backbone, the first step's loss is the same, and steps on one batch bring it down.
    #[test]
    fn steps_from_the_cache_train_as_steps_through_the_backbone() {
        let device = Device::flex();
        let kind = BackboneKind::EfficientNetLite0;
        let classifier = Classifier { backbone: Backbone::init(kind, &device), head: HeadConfig::new(kind.features(), 2).with_dropout(0.0).init_seeded(&device, 3) };
        let values: Vec<f32> = (0..4 * 3 * 64 * 64).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
        let input = || Tensor::<4>::from_data(TensorData::new(values.clone(), [4, 3, 64, 64]), &device);
        let mut losses = Vec::new();
        for cached in [true, false] {
            let plan = UnfreezePlan::new(kind, 2).unwrap();
            let mut step = pollster::block_on(FineTuneStep::with_input(&classifier, plan, cached, input())).unwrap();
            losses.push((0..6).map(|_| pollster::block_on(step.run()).unwrap()).collect::<Vec<f32>>());
        }
        let (cached, full) = (&losses[0], &losses[1]);
        assert!((cached[0] - full[0]).abs() < 1e-4 * full[0].abs().max(1.0), "first losses: cached {}, full {}", cached[0], full[0]);
        for run in [cached, full] {
            assert!(run.iter().all(|l| l.is_finite()), "{run:?}");
            assert!(run[5] < run[0], "six steps on one batch did not lower its loss: {run:?}");
        }
    }
}
