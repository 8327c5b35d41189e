//! The whole head-only recipe on the real backbone: generated images in, a classifier out, and
//! the exported file reproduces the in-memory model's predictions exactly.

mod common;

use burn::tensor::Device;
use webtune::train::HeadOptions;
use webtune::weights::{TensorEntry, TensorValues};
use webtune::{ErrorKind, Event, Phase, Recipe, Session, Stage, TrainedModel};

const LITE: webtune::model::BackboneKind = webtune::model::BackboneKind::EfficientNetLite0;

fn head_only(head: HeadOptions) -> Recipe {
    Recipe { head, unfreeze: Some(0), ..Default::default() }
}

#[test]
fn head_learns_generated_classes_and_export_reloads_exactly() {
    let mut session = common::session_with_generated(10, 5);
    // Bad files are refused by name and change nothing.
    let err = session.add_image("disc", "broken.png", b"\x89PNG\r\n\x1a\n\0\0garbage").unwrap_err();
    assert!(err.to_string().starts_with("broken.png: "), "{err}");
    assert_eq!((err.kind(), err.file()), (ErrorKind::BadFile, Some("broken.png")));
    assert_eq!(session.summary().images, 30);
    // Settings out of range are refused before any work, naming the setting.
    let err = session.start(head_only(HeadOptions { learning_rate: 0.0, ..Default::default() })).unwrap_err();
    assert_eq!((err.kind(), err.setting()), (ErrorKind::BadSettings, Some("head.learningRate")));
    assert_eq!(session.stage(), Stage::Idle);

    let options = HeadOptions { epochs: 30, val_fraction: 0.3, learning_rate: 3e-3, batch_size: 8, ..Default::default() };
    let started = session.start(head_only(options)).unwrap();
    assert_eq!((started.unfreeze, started.pending_features), (0, 30));
    let events = common::run_to_end(&mut session);
    assert!(matches!(events[0], Event::Features { done: 8, total: 30 }), "{:?}", events[0]);
    assert!(events.iter().any(|e| matches!(e, Event::Split { train: 21, val: 9, unfreeze: 0, .. })));
    let head = common::epochs(&events, Phase::Head);
    let last = head.last().unwrap();
    assert!(last.done && head.len() <= 30);
    assert!(last.val_accuracy.unwrap() >= 0.99, "validation accuracy {:?}", last);
    assert!(last.train_accuracy >= 0.95, "{last:?}");
    let Some(Event::Evaluated { evaluation }) = events.iter().rev().nth(1) else { panic!("{events:?}") };
    assert_eq!(evaluation.images, 9);
    let Some(Event::Finished { outcome }) = events.last() else { panic!() };
    assert!(outcome.has_model && !outcome.stopped && outcome.fine_tuned == 0, "{outcome:?}");
    assert_eq!(session.stage(), Stage::Done);

    // Fresh images of each class are classified correctly.
    let model = session.trained_model().unwrap();
    let fresh = common::generated_dataset(2, 99);
    for (label, name, bytes) in &fresh {
        let predictions = pollster::block_on(session.predict(name, bytes)).unwrap();
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
    let mut session = common::session_with_generated(2, 1);
    session.start(head_only(HeadOptions { epochs: 1, hidden_units: 16, ..Default::default() })).unwrap();
    let events = common::run_to_end(&mut session);
    // The default batch of 32 is larger than the 3 training images: used whole, and said so.
    let notes = events.iter().find_map(|e| match e {
        Event::Split { notes, .. } => Some(notes.clone()),
        _ => None,
    });
    assert_eq!(notes.unwrap(), vec!["batch size 32 is larger than the 3 training images: using 3".to_string()]);
    let bytes = pollster::block_on(session.trained_model().unwrap().to_safetensors()).unwrap();
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
fn exact_copies_count_once_in_a_class_and_are_named_across_classes() {
    let files = common::generated_dataset(3, 5);
    let mut session = common::session_with_generated(3, 5);
    // The first picture again under another name, in its own class and in another one.
    let (label, _, bytes) = &files[0];
    let other = files.iter().map(|f| &f.0).find(|l| *l != label).unwrap();
    session.add_image(label, "copy.png", bytes).unwrap();
    session.add_image(other, "elsewhere.png", bytes).unwrap();
    session.start(head_only(HeadOptions { epochs: 1, ..Default::default() })).unwrap();
    let events = common::run_to_end(&mut session);
    let Some((train, val, notes)) = events.iter().find_map(|e| match e {
        Event::Split { train, val, notes, .. } => Some((*train, *val, notes.clone())),
        _ => None,
    }) else {
        panic!("{events:?}")
    };
    assert_eq!(train + val, 10, "11 pictures, one an exact copy in its own class: {notes:?}");
    assert!(notes.iter().any(|n| n == "1 exact copy of a picture in the same class counted once"), "{notes:?}");
    let across = notes.iter().find(|n| n.starts_with("the same picture is in two classes")).expect("cross-class copy named");
    assert!(across.contains(&format!("({label})")) && across.contains(&format!("elsewhere.png ({other})")), "{across}");

    // A class whose pictures are all one picture cannot be trained on: refused before any work.
    let mut session = common::session_with_generated(2, 6);
    let files = common::generated_dataset(2, 6);
    let (label, _, bytes) = &files[0];
    session.remove_class(label).unwrap();
    session.add_class(label).unwrap();
    session.add_image(label, "a.png", bytes).unwrap();
    session.add_image(label, "b.png", bytes).unwrap();
    let err = session.start(head_only(HeadOptions::default())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Dataset, "{err}");
    assert!(err.to_string().contains("1 distinct picture once exact copies are counted once"), "{err}");
    assert_eq!(session.stage(), Stage::Idle);
}

#[test]
fn wrong_weights_files_are_refused_with_the_tensor_named() {
    let err = Session::new(LITE, b"not weights at all", Device::flex()).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Weights);
    let err = err.to_string();
    assert!(err.contains("not a weights file"), "{err}");
    // A safetensors file whose stem has the wrong shape.
    let mut tensors = webtune::weights::read_weights_file(&std::fs::read(common::legacy_weights()).unwrap()).unwrap();
    tensors.insert("_conv_stem.weight".into(), webtune::weights::TensorEntry::f32(vec![16, 3, 3, 3], vec![0.0; 432]));
    let bytes = webtune::weights::write_safetensors(&tensors, Default::default()).unwrap();
    let err = Session::new(LITE, &bytes, Device::flex()).err().unwrap().to_string();
    assert!(err.contains("_conv_stem.weight") && err.contains("[16, 3, 3, 3]"), "{err}");
    tensors.remove("_conv_stem.weight");
    let bytes = webtune::weights::write_safetensors(&tensors, Default::default()).unwrap();
    let err = Session::new(LITE, &bytes, Device::flex()).err().unwrap().to_string();
    assert!(err.contains("missing tensor _conv_stem.weight"), "{err}");
}

#[test]
fn class_edits_keep_every_feature_and_a_rename_keeps_the_model() {
    let mut session = common::session_with_generated(2, 3);
    session.start(head_only(HeadOptions { epochs: 1, hidden_units: 16, ..Default::default() })).unwrap();
    assert_eq!(session.cached_features(), 0);
    // While the run goes on, classes cannot change.
    let err = session.rename_class("disc", "circles").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Training, "{err}");
    common::run_to_end(&mut session);
    assert_eq!(session.cached_features(), 6);

    // A rename computes nothing again, and the trained model takes the new name at once.
    assert_eq!(session.rename_class("disc", " circles ").unwrap(), "circles");
    assert_eq!(session.cached_features(), 6);
    assert_eq!(session.trained_model().unwrap().labels, vec!["checks", "circles", "stripes"]);
    let (_, name, bytes) = common::generated_dataset(1, 42).into_iter().find(|(label, ..)| label == "disc").unwrap();
    let predictions = pollster::block_on(session.predict(&name, &bytes)).unwrap();
    assert!(predictions.iter().any(|p| p.label == "circles") && predictions.iter().all(|p| p.label != "disc"));
    // Refusals name the reason and change nothing.
    assert_eq!(session.rename_class("circles", "checks").unwrap_err().kind(), ErrorKind::Dataset);
    assert_eq!(session.rename_class("owls", "birds").unwrap_err().kind(), ErrorKind::Dataset);

    // Moving a picture and merging classes keep the features too; removing one drops its own.
    session.move_picture(0, "stripes").unwrap();
    session.merge_classes("circles", "checks").unwrap();
    assert_eq!(session.cached_features(), 6);
    session.remove_picture(1).unwrap();
    assert_eq!(session.cached_features(), 5);
    assert_eq!(session.remove_picture(1).unwrap_err().kind(), ErrorKind::Dataset);
    let counts: Vec<(String, usize)> = session.summary().classes.into_iter().map(|c| (c.label, c.count)).collect();
    assert_eq!(counts, vec![("checks".to_string(), 2), ("stripes".to_string(), 3)]);

    // The next run computes no feature again.
    let started = session.start(head_only(HeadOptions { epochs: 1, hidden_units: 16, ..Default::default() })).unwrap();
    assert_eq!(started.pending_features, 0);
    let events = common::run_to_end(&mut session);
    assert!(!events.iter().any(|e| matches!(e, Event::Features { .. })), "{events:?}");
    assert_eq!(session.trained_model().unwrap().labels, vec!["checks", "stripes"]);
}
