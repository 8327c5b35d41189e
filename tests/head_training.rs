//! The whole head-only recipe on the real backbone: generated images in, a classifier out, and
//! the exported file reproduces the in-memory model's predictions exactly.

mod common;

use burn::tensor::Device;
use webtune::train::HeadOptions;
use webtune::weights::{TensorEntry, TensorValues};
use webtune::{TrainedModel, Tuner};

const LITE: webtune::model::BackboneKind = webtune::model::BackboneKind::EfficientNetLite0;

#[test]
fn head_learns_generated_classes_and_export_reloads_exactly() {
    let mut tuner = common::tuner_with_generated(10, 5);
    // Bad files are refused by name and change nothing.
    let err = tuner.add_image("disc", "broken.png", b"\x89PNG\r\n\x1a\n\0\0garbage").unwrap_err().to_string();
    assert!(err.starts_with("broken.png: "), "{err}");
    assert_eq!(tuner.summary().images, 30);
    assert!(tuner.start_head(HeadOptions::default()).unwrap_err().to_string().contains("need features"));

    while pollster::block_on(tuner.extract_features(8)).unwrap() > 0 {}
    let options = HeadOptions { epochs: 30, val_fraction: 0.3, learning_rate: 3e-3, batch_size: 8, ..Default::default() };
    let split = tuner.start_head(options).unwrap();
    assert_eq!((split.train, split.val), (21, 9));
    let mut last = None;
    // Early stopping may end the run before its 30 epochs.
    while last.as_ref().is_none_or(|r: &webtune::train::EpochReport| !r.done) {
        last = Some(pollster::block_on(tuner.train_epoch()).unwrap());
    }
    let last = last.unwrap();
    assert!(last.done);
    assert!(last.val_accuracy.unwrap() >= 0.99, "validation accuracy {:?}", last);
    assert!(last.train_accuracy >= 0.95, "{last:?}");

    // Fresh images of each class are classified correctly.
    let model = tuner.trained_model().unwrap();
    let fresh = common::generated_dataset(2, 99);
    for (label, name, bytes) in &fresh {
        let predictions = pollster::block_on(tuner.predict(name, bytes)).unwrap();
        assert_eq!(&predictions[0].label, label, "{name}: {predictions:?}");
    }

    // Export → reload → bit-identical probabilities.
    let bytes = pollster::block_on(model.to_safetensors()).unwrap();
    let reloaded = TrainedModel::from_safetensors(&bytes, &Device::flex()).unwrap();
    assert_eq!(reloaded.labels, vec!["checks", "disc", "stripes"]);
    for (_, name, bytes) in &fresh {
        let before = pollster::block_on(model.predict_file(name, bytes)).unwrap();
        let after = pollster::block_on(reloaded.predict_file(name, bytes)).unwrap();
        assert_eq!(before, after);
    }
}

#[test]
fn export_metadata_names_labels_backbone_and_preprocessing() {
    let mut tuner = common::tuner_with_generated(2, 1);
    while pollster::block_on(tuner.extract_features(16)).unwrap() > 0 {}
    let split = tuner.start_head(HeadOptions { epochs: 1, hidden_units: 16, ..Default::default() }).unwrap();
    // The default batch of 32 is larger than the 3 training images: used whole, and said so.
    assert_eq!(split.note.as_deref(), Some("batch size 32 is larger than the 3 training images: using 3"));
    pollster::block_on(tuner.train_epoch()).unwrap();
    let bytes = pollster::block_on(tuner.trained_model().unwrap().to_safetensors()).unwrap();
    let (tensors, meta) = webtune::weights::read_safetensors(&bytes).unwrap();
    assert_eq!(meta["labels"], r#"["checks","disc","stripes"]"#);
    assert_eq!(meta["backbone"], "efficientnet_lite0");
    assert_eq!(meta["input_size"], "224");
    assert_eq!(meta["resize_size"], "256");
    let norm: serde_json::Value = serde_json::from_str(&meta["normalization"]).unwrap();
    assert_eq!(norm["mean"], serde_json::json!([127.0, 127.0, 127.0]));
    assert_eq!(norm["std"], serde_json::json!([128.0, 128.0, 128.0]));
    assert_eq!(meta["head_hidden_units"], "16");
    // PyTorch layout: Linear weights are [out, in]; the backbone keeps its original names.
    assert_eq!(tensors["_fc.1.weight"].shape, vec![16, 1280]);
    assert_eq!(tensors["_fc.4.weight"].shape, vec![3, 16]);
    assert_eq!(tensors["_conv_stem.weight"].shape, vec![32, 3, 3, 3]);
    assert_eq!(tensors["_blocks.15._project_conv.weight"].shape, vec![320, 1152, 1, 1]);
    assert!(tensors.values().filter_map(|t| t.as_f32()).flatten().all(|v| v.is_finite()));
    // PyTorch's BatchNorm counters, so `load_state_dict(strict=True)` finds every buffer.
    assert_eq!(tensors["_bn1.num_batches_tracked"], TensorEntry { shape: vec![], values: TensorValues::I64(vec![0]) });
    assert_eq!(tensors.keys().filter(|n| n.ends_with("num_batches_tracked")).count(), 49);
}

#[test]
fn wrong_weights_files_are_refused_with_the_tensor_named() {
    let err = Tuner::new(LITE, b"not weights at all", Device::flex()).err().unwrap().to_string();
    assert!(err.contains("not a weights file"), "{err}");
    // A safetensors file whose stem has the wrong shape.
    let mut tensors = webtune::weights::read_weights_file(&std::fs::read(common::legacy_weights()).unwrap()).unwrap();
    tensors.insert("_conv_stem.weight".into(), webtune::weights::TensorEntry::f32(vec![16, 3, 3, 3], vec![0.0; 432]));
    let bytes = webtune::weights::write_safetensors(&tensors, Default::default()).unwrap();
    let err = Tuner::new(LITE, &bytes, Device::flex()).err().unwrap().to_string();
    assert!(err.contains("_conv_stem.weight") && err.contains("[16, 3, 3, 3]"), "{err}");
    tensors.remove("_conv_stem.weight");
    let bytes = webtune::weights::write_safetensors(&tensors, Default::default()).unwrap();
    let err = Tuner::new(LITE, &bytes, Device::flex()).err().unwrap().to_string();
    assert!(err.contains("missing tensor _conv_stem.weight"), "{err}");
}
