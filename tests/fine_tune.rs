//! Phase 2 on the real backbone: only the unfrozen tail and the head change, BatchNorm
//! statistics never move, and the result exports and evaluates. (The optimizer-state check is a
//! unit test in `src/train/finetune.rs`.)

mod common;

use std::collections::BTreeMap;

use burn::tensor::Device;
use webtune::model::BackboneKind;
use webtune::model::Classifier;
use webtune::train::{FineTuneOptions, HeadOptions, UnfreezePlan};
use webtune::weights::{NameMap, ParamLayout, TensorMap, collect_params};
use webtune::{Event, Phase, Recipe, Session, Stage, TrainedModel};

/// Every float tensor of a module under its own path: parameters and BatchNorm statistics.
struct ModulePaths;
impl NameMap for ModulePaths {
    fn file_name(&self, module_path: &str) -> Option<(String, ParamLayout)> {
        Some((module_path.to_string(), ParamLayout::AsIs))
    }
    fn ignorable(&self, _: &str) -> bool {
        false
    }
}

fn snapshot(model: &Classifier) -> TensorMap {
    pollster::block_on(collect_params(model, &ModulePaths)).unwrap()
}

/// Phase 1's settings: 5 epochs, a third of the pictures for validation.
fn head() -> HeadOptions {
    HeadOptions { epochs: 5, val_fraction: 0.34, learning_rate: 3e-3, batch_size: 8, ..Default::default() }
}

/// A phase 1 that learns next to nothing (one epoch at a tiny rate), so that phase 2 is the
/// more accurate model and is the one kept (phase 1 is kept when it classifies better).
fn weak_head() -> HeadOptions {
    HeadOptions { epochs: 1, learning_rate: 1e-5, ..head() }
}

/// Phase 1 on the session's pictures (6 per class) with `head`, then phase 2's views cached.
fn trained_on(mut session: Session, unfreeze: usize, fine_tune: FineTuneOptions, head: HeadOptions) -> Session {
    session.start(Recipe { head, unfreeze: Some(unfreeze), fine_tune, views_per_image: 2, ..Default::default() }).unwrap();
    let events = common::step_until(&mut session, Stage::FineTuning);
    let cache: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Cache { done, total, bytes, .. } => Some((*done, *total, *bytes)),
            _ => None,
        })
        .collect();
    let (train, val) = events
        .iter()
        .find_map(|e| match e {
            Event::Split { train, val, .. } => Some((*train, *val)),
            _ => None,
        })
        .unwrap();
    assert_eq!(train + val, 18);
    let views = train * 2 + val;
    assert!(cache.iter().all(|&(_, total, bytes)| total == views && bytes > 0), "{train} training images × 2 views + {val} validation images: {cache:?}");
    assert_eq!(cache.last().unwrap().0, views);
    session
}

/// `n` steps of phase 2, each an epoch.
fn fine_epochs(session: &mut Session, n: usize) -> Vec<webtune::train::EpochReport> {
    let events: Vec<Event> = (0..n).map(|_| pollster::block_on(session.step(8)).unwrap()).collect();
    common::epochs(&events, Phase::Fine)
}

#[test]
fn freezing_does_not_leak() {
    let options = FineTuneOptions { epochs: 2, patience: 10, batch_size: 8, learning_rate: 1e-2, ..Default::default() };
    // No validation split, so the last epoch is the model and the snapshot shows what phase 2
    // trained (with one, phase 1 is kept whenever it classifies better).
    let mut session = trained_on(common::session_with_generated(6, 21), 2, options, HeadOptions { val_fraction: 0.0, ..head() });
    let before = snapshot(&session.trained_model().unwrap().classifier);
    let reports = fine_epochs(&mut session, 2);
    assert!(reports.len() == 2 && reports[1].done && reports.iter().all(|r| r.train_loss.is_finite()), "{reports:?}");
    let after = snapshot(&session.trained_model().unwrap().classifier);

    let plan = UnfreezePlan::new(BackboneKind::EfficientNetLite0, 2).unwrap();
    let unfrozen = |path: &str| {
        path.starts_with("backbone.EfficientNetLite.top.")
            || (plan.first_tail_unit()..16).any(|b| path.starts_with(&format!("backbone.EfficientNetLite.blocks.{b}.")))
    };
    // The last MBConv block (3 convolutions, 3 BatchNorm scale/shift pairs), `top` (a convolution
    // and its scale/shift) and the head's weight and bias.
    assert_only_tail_changed(&before, &after, unfrozen, 3 + 6 + 3 + 2);
}

/// Every tensor outside the unfrozen tail and the head, and every BatchNorm running statistic,
/// is bit-identical; each of the `trained` tail and head tensors changed.
fn assert_only_tail_changed(before: &TensorMap, after: &TensorMap, in_tail: impl Fn(&str) -> bool, trained: usize) {
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    let mut changed = BTreeMap::new();
    for (path, old) in before {
        let same = old == &after[path];
        if path.ends_with("running_mean") || path.ends_with("running_var") || !(path.starts_with("head.") || in_tail(path)) {
            assert!(same, "{path} must be bit-identical after fine-tuning");
        } else {
            changed.insert(path.clone(), !same);
        }
    }
    for (path, did_change) in &changed {
        assert!(did_change, "{path} is unfrozen and must have been trained");
    }
    assert_eq!(changed.len(), trained, "{:?}", changed.keys());
}

/// The torchvision backbones (randomly initialised, imported from a file with their own names)
/// go through the same recipe, and phase 2 trains exactly their declared tail.
#[test]
fn torchvision_backbones_fine_tune_only_their_tail() {
    // (kind, units to unfreeze, module path prefixes of those units, tensors that train)
    let cases: [(BackboneKind, usize, &[&str], usize); 2] = [
        // layer4: two BasicBlocks (2 convolutions, 2 scale/shift pairs each) and the downsample
        // (a convolution and a scale/shift pair), plus the head's weight and bias.
        (BackboneKind::ResNet18, 1, &["backbone.ResNet.layer4."], 2 * (2 + 4) + 3 + 2),
        // The last inverted-residual block (3 convolutions, 3 pairs) and the final 1×1 convolution.
        (BackboneKind::MobileNetV2, 2, &["backbone.MobileNetV2.blocks.16.", "backbone.MobileNetV2.top."], 3 + 6 + 3 + 2),
    ];
    for (kind, unfreeze, tail, trained) in cases {
        let device = Device::flex();
        let tensors = pollster::block_on(webtune::model::Backbone::init(kind, &device).to_tensors()).unwrap();
        let weights = webtune::weights::write_safetensors(&tensors, Default::default()).unwrap();
        let mut session = Session::new(kind, &weights, device).unwrap();
        for (label, name, bytes) in common::generated_dataset(6, 21) {
            session.add_image(&label, &name, &bytes).unwrap();
        }
        let options = FineTuneOptions { epochs: 1, batch_size: 8, learning_rate: 1e-2, ..Default::default() };
        // No validation split: the last epoch is the model, so the snapshot shows what phase 2
        // trained (with one, phase 1 may be kept when more accurate).
        let mut session = trained_on(session, unfreeze, options, HeadOptions { val_fraction: 0.0, ..head() });
        let before = snapshot(&session.trained_model().unwrap().classifier);
        let report = fine_epochs(&mut session, 1);
        assert!(report[0].train_loss.is_finite(), "{kind}: {report:?}");
        let after = snapshot(&session.trained_model().unwrap().classifier);
        assert_only_tail_changed(&before, &after, |path| tail.iter().any(|t| path.starts_with(t)), trained);
    }
}

#[test]
fn fine_tuned_model_evaluates_exports_and_reloads() {
    let options = FineTuneOptions { epochs: 3, batch_size: 8, ..Default::default() };
    let mut session = trained_on(common::session_with_generated(6, 21), 2, options, weak_head());
    let events = common::run_to_end(&mut session);
    let evaluation = events
        .iter()
        .find_map(|e| match e {
            Event::Evaluated { evaluation } => Some(evaluation.clone()),
            _ => None,
        })
        .unwrap();
    let Some(Event::Finished { outcome }) = events.last() else { panic!() };
    assert_eq!(outcome.fine_tuned, 2, "{outcome:?}");
    assert_eq!(evaluation.images, 6);
    assert_eq!(evaluation.confusion.iter().flatten().sum::<usize>(), 6);
    assert_eq!(evaluation.classes.len(), 3);
    assert_eq!(evaluation.misclassified.len(), 6 - evaluation.confusion.iter().enumerate().map(|(i, r)| r[i]).sum::<usize>());

    let model = session.trained_model().unwrap();
    assert_eq!(model.training["fine_tune"]["unfreeze"], 2);
    let bytes = pollster::block_on(model.to_safetensors()).unwrap();
    let reloaded = TrainedModel::from_safetensors(&bytes, &Device::flex()).unwrap();
    let (_, name, picture) = &common::generated_dataset(1, 77)[0];
    assert_eq!(
        pollster::block_on(model.predict_file(name, picture)).unwrap(),
        pollster::block_on(reloaded.predict_file(name, picture)).unwrap()
    );
}
