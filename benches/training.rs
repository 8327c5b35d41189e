//! Criterion benchmarks of the three costs a training run is made of, per backbone, on the
//! native CPU backend (flex, every core):
//!
//! - `forward/<backbone>/batch-N`: an inference forward at the backbone's input size, features
//!   read back — what feature extraction and prediction pay per batch;
//! - `head-epoch/<backbone>`: one epoch of phase 1 on cached features (the 200-photo case: 170
//!   training rows, 30 validation rows, 5 classes, default head options);
//! - `phase2-step/<backbone>`: one phase-2 step from the cached prefix, last 2 units unfrozen,
//!   batch 8 (forward, backward, Adam, loss read back).
//!
//! `cargo bench --features criterion` (add `-- forward` to run one group, `-- --quick` for a
//! rough pass). Backbones get randomly initialised weights: the cost does not depend on the
//! values, and a benchmark needs no download. A benchmark, not a test: it asserts nothing.

use burn::tensor::{Device, Distribution, Tensor};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use pollster::block_on;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use webtune::model::{Backbone, BackboneKind, Classifier, HeadConfig};
use webtune::train::{FineTuneStep, HeadOptions, HeadTrainer, LabelledFeatures, UnfreezePlan};

const CLASSES: usize = 5;
const TRAIN_ROWS: usize = 170;
const VAL_ROWS: usize = 30;
const PHASE2_UNITS: usize = 2;
const PHASE2_BATCH: usize = 8;

fn forward(c: &mut Criterion) {
    let device = Device::flex();
    let mut group = c.benchmark_group("forward");
    group.sample_size(10);
    for kind in BackboneKind::ALL {
        let backbone = Backbone::init(kind, &device);
        let size = kind.spec().input_size as usize;
        for batch in [1, 8] {
            let input = Tensor::<4>::random([batch, 3, size, size], Distribution::Normal(0.0, 1.0), &device);
            group.bench_function(format!("{kind}/batch-{batch}"), |b| {
                b.iter(|| block_on(backbone.forward(input.clone()).into_data_async()).expect("features read back"))
            });
        }
    }
    group.finish();
}

/// Random features standing in for a backbone's pooled outputs (non-negative, like ReLU6's).
fn features(rows: usize, dim: usize, rng: &mut ChaCha8Rng) -> LabelledFeatures {
    let mut set = LabelledFeatures::default();
    for i in 0..rows {
        let row: Vec<f32> = (0..dim).map(|_| rng.random_range(0.0..6.0)).collect();
        set.push(&row, i % CLASSES);
    }
    set
}

fn head_epoch(c: &mut Criterion) {
    let device = Device::flex();
    let mut group = c.benchmark_group("head-epoch");
    for kind in BackboneKind::ALL {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (train, val) = (features(TRAIN_ROWS, kind.features(), &mut rng), features(VAL_ROWS, kind.features(), &mut rng));
        group.bench_function(kind.to_string(), |b| {
            b.iter_batched(
                || HeadTrainer::new(HeadOptions::default(), CLASSES, kind.features(), train.clone(), val.clone(), &device).expect("valid head options"),
                |mut trainer| block_on(trainer.train_epoch()).expect("an epoch"),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn phase2_step(c: &mut Criterion) {
    let device = Device::flex();
    let mut group = c.benchmark_group("phase2-step");
    group.sample_size(10);
    for kind in BackboneKind::ALL {
        let classifier = Classifier { backbone: Backbone::init(kind, &device), head: HeadConfig::new(kind.features(), CLASSES).init_seeded(&device, 1) };
        let plan = UnfreezePlan::new(kind, PHASE2_UNITS).expect("every backbone has 2 units");
        let size = kind.spec().input_size as usize;
        let mut step = block_on(FineTuneStep::new(&classifier, plan, true, PHASE2_BATCH, size, &device)).expect("a cached batch");
        group.bench_function(format!("{kind}/unfreeze-{PHASE2_UNITS}/batch-{PHASE2_BATCH}"), |b| b.iter(|| block_on(step.run()).expect("a step")));
    }
    group.finish();
}

criterion_group!(benches, forward, head_epoch, phase2_step);
criterion_main!(benches);
