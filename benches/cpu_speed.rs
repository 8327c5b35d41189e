//! Native CPU (burn-flex) speed of the three things training spends its time on, per backbone,
//! on random weights from the crate's own initialisation (no downloads):
//!
//! - `forward/<backbone>/{bn,folded}`: a frozen-backbone inference forward at 224 px, batch 8,
//!   features read back; `bn` as the backbone is, `folded` after `Backbone::fold_batch_norm`.
//! - `head_epoch/<backbone>`: one epoch of phase 1 (a linear head, the page's defaults) on 256
//!   cached feature vectors of the backbone's width.
//! - `phase2_step/<backbone>`: one phase-2 training step at batch 8 from the cached prefix
//!   (forward of the unfrozen tail and the head, backward, two Adam updates, loss read-back),
//!   unfreezing the backbone's recommended smallest number of units.
//!
//! `cargo bench --profile dev --bench cpu_speed` (a few minutes on 2 cores; the dev profile
//! builds dependencies at opt-level 3 and reuses the test build, where plain `cargo bench`
//! would build burn again in release); filter as criterion does, e.g.
//! `cargo bench --profile dev --bench cpu_speed -- forward/mobilenet_v2`. Threads: `RAYON_NUM_THREADS=1`.
//! Samples are few (10, one iteration each) because a ResNet-50 forward takes a second here:
//! read the medians, not criterion's change detection.

use std::hint::black_box;
use std::time::Duration;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use criterion::{BenchmarkGroup, Criterion, SamplingMode, criterion_group, criterion_main, measurement::WallTime};
use webtune::model::{Backbone, BackboneKind, Classifier, HeadConfig};
use webtune::train::{HeadOptions, HeadTrainer, LabelledFeatures, UnfreezePlan};

const SIZE: usize = 224;
const BATCH: usize = 8;

fn small(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
}

fn random_input(device: &Device) -> Tensor<4> {
    Tensor::random([BATCH, 3, SIZE, SIZE], Distribution::Normal(0.0, 1.0), device)
}

fn forward(c: &mut Criterion) {
    let device = Device::flex();
    device.seed(1);
    let mut group = c.benchmark_group("forward");
    small(&mut group);
    for kind in BackboneKind::ALL {
        let backbone = Backbone::init(kind, &device);
        let folded = backbone.fold_batch_norm();
        let input = random_input(&device);
        group.bench_function(format!("{kind}/bn"), |b| b.iter(|| black_box(backbone.forward(input.clone()).into_data())));
        group.bench_function(format!("{kind}/folded"), |b| b.iter(|| black_box(folded.forward(input.clone()).into_data())));
    }
    group.finish();
}

fn head_epoch(c: &mut Criterion) {
    let device = Device::flex();
    let mut group = c.benchmark_group("head_epoch");
    small(&mut group);
    let classes = 5;
    for kind in BackboneKind::ALL {
        let features = |rows: usize| {
            let values = Tensor::<2>::random([rows, kind.features()], Distribution::Uniform(0.0, 6.0), &device);
            LabelledFeatures { rows: values.into_data().try_to_vec().unwrap(), targets: (0..rows).map(|i| i % classes).collect() }
        };
        // Enough epochs that the trainer never finishes while criterion samples it.
        let options = HeadOptions { epochs: 10_000, ..HeadOptions::default() };
        let mut trainer = HeadTrainer::new(options, classes, kind.features(), features(256), features(44), &device).unwrap();
        group.bench_function(kind.name(), |b| b.iter(|| black_box(pollster::block_on(trainer.train_epoch()).unwrap())));
    }
    group.finish();
}

fn phase2_step(c: &mut Criterion) {
    let device = Device::flex();
    device.seed(2);
    let training_device = device.clone().autodiff();
    let mut group = c.benchmark_group("phase2_step");
    small(&mut group);
    for kind in BackboneKind::ALL {
        let plan = UnfreezePlan::new(kind, kind.recommended_units().0).unwrap();
        let classifier = Classifier { backbone: Backbone::init(kind, &device), head: HeadConfig::new(kind.features(), 2).init_seeded(&device, 1) };
        // What the prefix cache holds: the frozen part's output, on the host.
        let prefix = classifier.backbone.forward_prefix(random_input(&device), plan.first_tail_unit()).into_data();
        let targets = Tensor::<1, Int>::from_data(TensorData::new((0..BATCH as i64).map(|i| i % 2).collect(), [BATCH]), &training_device);
        let loss_fn = CrossEntropyLossConfig::new().with_smoothing(Some(0.1)).init(&training_device);
        let mut model = Some(plan.trainable(classifier, &device));
        let (mut head_opt, mut backbone_opt) = (AdamConfig::new().init(), AdamConfig::new().init());
        let name = format!("{kind}/unfreeze_{}", plan.units());
        group.bench_function(name, |b| {
            b.iter(|| {
                let current = model.take().unwrap();
                let x = Tensor::<4>::from_data(prefix.clone(), &training_device);
                let logits = current.head.forward(current.backbone.forward_tail(x, plan.first_tail_unit()));
                let loss = loss_fn.forward(logits, targets.clone());
                let mut grads = loss.backward();
                let head_grads = GradientsParams::from_module(&mut grads, &current.head);
                let backbone_grads = GradientsParams::from_module(&mut grads, &current.backbone);
                model = Some(Classifier {
                    head: head_opt.step(1e-3, current.head, head_grads),
                    backbone: backbone_opt.step(1e-4, current.backbone, backbone_grads),
                });
                black_box(loss.into_data())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, forward, head_epoch, phase2_step);
criterion_main!(benches);
