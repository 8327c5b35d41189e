//! Export, re-import into webtune, continue training: the re-imported model predicts exactly
//! what the exported one did, its own export is tensor-for-tensor the same file, and training
//! carries on from there.

mod common;

use burn::tensor::Device;
use webtune::data::Augmentation;
use webtune::model::BackboneKind;
use webtune::train::{FineTuneOptions, HeadOptions};
use webtune::weights::read_safetensors;
use webtune::Tuner;

const LITE: BackboneKind = BackboneKind::EfficientNetLite0;

fn extract_all(tuner: &mut Tuner) {
    while pollster::block_on(tuner.extract_features(16)).unwrap() > 0 {}
}

#[test]
fn an_export_reimports_and_training_continues_from_it() {
    // Phase 1 and one epoch of phase 2, then export.
    let mut tuner = common::tuner_with_generated(4, 7);
    extract_all(&mut tuner);
    let head = HeadOptions { epochs: 3, batch_size: 4, val_fraction: 0.25, ..Default::default() };
    tuner.start_head(head.clone()).unwrap();
    for _ in 0..3 {
        pollster::block_on(tuner.train_epoch()).unwrap();
    }
    let fine = FineTuneOptions { unfreeze: 1, epochs: 1, batch_size: 4, ..Default::default() };
    tuner.start_fine_tune(fine, Augmentation::default(), 1).unwrap();
    while pollster::block_on(tuner.cache_views(8)).unwrap().done < 12 {}
    pollster::block_on(tuner.fine_tune_epoch()).unwrap();
    let exported = pollster::block_on(tuner.trained_model().unwrap().to_safetensors()).unwrap();
    let original = webtune::TrainedModel::from_safetensors(&exported, &Device::flex()).unwrap();

    // Re-import as the starting point of a new run on the same pictures.
    let mut again = Tuner::new(LITE, &exported, Device::flex()).unwrap();
    assert_eq!(again.continues_from().unwrap(), ["checks", "disc", "stripes"]);
    for (label, name, bytes) in common::generated_dataset(4, 7) {
        again.add_image(&label, &name, &bytes).unwrap();
    }
    extract_all(&mut again);
    let split = again.start_head(HeadOptions { epochs: 2, ..head }).unwrap();
    assert!(split.note.as_deref().unwrap_or("").contains("continuing from the imported model's head"), "{split:?}");

    // Before any new epoch: the same predictions, and the same file when exported again.
    for (_, name, bytes) in common::generated_dataset(2, 99) {
        let before = pollster::block_on(original.predict_file(&name, &bytes)).unwrap();
        let after = pollster::block_on(again.predict(&name, &bytes)).unwrap();
        assert_eq!(before, after, "{name}");
    }
    let re_exported = pollster::block_on(again.trained_model().unwrap().to_safetensors()).unwrap();
    assert_eq!(read_safetensors(&re_exported).unwrap().0, read_safetensors(&exported).unwrap().0);

    // And training goes on from there.
    let report = pollster::block_on(again.train_epoch()).unwrap();
    assert!(report.train_loss.is_finite() && report.epoch == 1, "{report:?}");
}

#[test]
fn an_export_with_other_classes_starts_a_fresh_head_and_a_wrong_backbone_is_named() {
    let mut tuner = common::tuner_with_generated(2, 3);
    tuner.remove_class("checks");
    extract_all(&mut tuner);
    tuner.start_head(HeadOptions { epochs: 1, val_fraction: 0.0, ..Default::default() }).unwrap();
    pollster::block_on(tuner.train_epoch()).unwrap();
    let exported = pollster::block_on(tuner.trained_model().unwrap().to_safetensors()).unwrap();

    let mut again = Tuner::new(LITE, &exported, Device::flex()).unwrap();
    for (label, name, bytes) in common::generated_dataset(2, 3) {
        again.add_image(&label, &name, &bytes).unwrap();
    }
    extract_all(&mut again);
    let split = again.start_head(HeadOptions { epochs: 1, ..Default::default() }).unwrap();
    assert!(split.note.unwrap().contains("(disc, stripes) differ from these, so the head starts fresh"));

    let err = Tuner::new(BackboneKind::ResNet18, &exported, Device::flex()).err().unwrap().to_string();
    assert!(err.contains("webtune export whose backbone is efficientnet_lite0, not resnet18"), "{err}");
}
