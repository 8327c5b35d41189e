//! Timing of phase-2 training steps, cached prefix against the plain full forward. Shared by
//! the native benchmark (`examples/fine_tune_benchmark.rs`) and the page's bench entry, so both
//! measure the same work, and of backbone forwards (`examples/backbone_benchmark.rs`, the bench
//! page). Measurement only: nothing here is used by training.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
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

/// Runs `steps + 1` training steps (the first, a warm-up, is not counted) on a random batch of
/// `batch` images at `size` px. `now_ms` is the platform's clock (wasm has no `Instant`).
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
    let training_device = device.clone().autodiff();
    let input = Tensor::<4>::random([batch, 3, size, size], Distribution::Normal(0.0, 1.0), device);
    // What the cache holds: the prefix output, on the host, uploaded again for every batch.
    let prefix = classifier.backbone.forward_prefix(input.clone(), plan.first_tail_unit());
    let prefix = prefix.into_data_async().await.map_err(|e| Error::read_back("reading tensor data", e))?;
    let targets = Tensor::<1, Int>::from_data(TensorData::new((0..batch as i64).map(|i| i % 2).collect(), [batch]), &training_device);
    let loss_fn = CrossEntropyLossConfig::new().with_smoothing(Some(0.1)).init(&training_device);
    let mut model = plan.trainable(classifier.clone(), device);
    let (mut head_opt, mut backbone_opt) = (AdamConfig::new().init(), AdamConfig::new().init());
    let mut times = Vec::new();
    for step in 0..=steps {
        let start = now_ms();
        let logits = if cached {
            let x = Tensor::<4>::from_data(prefix.clone(), &training_device);
            model.head.forward(model.backbone.forward_tail(x, plan.first_tail_unit()))
        } else {
            model.forward(input.clone().to_device(&training_device))
        };
        let loss = loss_fn.forward(logits, targets.clone());
        let mut grads = loss.backward();
        let head_grads = GradientsParams::from_module(&mut grads, &model.head);
        let backbone_grads = GradientsParams::from_module(&mut grads, &model.backbone);
        model = Classifier {
            head: head_opt.step(1e-3, model.head, head_grads),
            backbone: backbone_opt.step(1e-4, model.backbone, backbone_grads),
        };
        loss.into_data_async().await.map_err(|e| Error::read_back("reading tensor data", e))?;
        if step > 0 {
            times.push(now_ms() - start);
        }
    }
    times.sort_by(f64::total_cmp);
    let median_ms = times[times.len() / 2];
    Ok(StepTiming { unfreeze: plan.units(), cached, batch, steps, median_ms, images_per_second: batch as f64 * 1000.0 / median_ms })
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
