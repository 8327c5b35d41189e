//! Export, re-import into webtune, continue training: the re-imported model predicts exactly
//! what the exported one did, its own export is tensor-for-tensor the same file, and training
//! carries on from there.

mod common;

use burn::tensor::Device;
use webtune::data::Augmentation;
use webtune::model::BackboneKind;
use webtune::train::{FineTuneOptions, HeadOptions};
use webtune::weights::read_safetensors;
use webtune::{Event, Phase, Recipe, Session, Stage};

const LITE: BackboneKind = BackboneKind::EfficientNetLite0;

fn split_notes(events: &[Event]) -> String {
    events
        .iter()
        .find_map(|e| match e {
            Event::Split { notes, .. } => Some(notes.join("; ")),
            _ => None,
        })
        .expect("a split event")
}

#[test]
fn an_export_reimports_and_training_continues_from_it() {
    // Phase 1 and one epoch of phase 2, then export.
    let mut session = common::session_with_generated(4, 7);
    let head = HeadOptions { epochs: 3, batch_size: 4, val_fraction: 0.25, ..Default::default() };
    let fine = FineTuneOptions { epochs: 1, batch_size: 4, ..Default::default() };
    let recipe = Recipe { head: head.clone(), unfreeze: Some(1), fine_tune: fine, augmentation: Augmentation::default(), views_per_image: 1 };
    session.start(recipe).unwrap();
    let events = common::run_to_end(&mut session);
    assert_eq!(common::epochs(&events, Phase::Fine).len(), 1);
    assert!(events.iter().any(|e| matches!(e, Event::Cache { done: 12, total: 12, .. })), "{events:?}");
    let exported = pollster::block_on(session.trained_model().unwrap().to_safetensors()).unwrap();
    let original = webtune::TrainedModel::from_safetensors(&exported, &Device::flex()).unwrap();

    // Re-import as the starting point of a new run on the same pictures.
    let mut again = Session::new(LITE, &exported, Device::flex()).unwrap();
    assert_eq!(again.continues_from().unwrap(), ["checks", "disc", "stripes"]);
    for (label, name, bytes) in common::generated_dataset(4, 7) {
        again.add_image(&label, &name, &bytes).unwrap();
    }
    again.start(Recipe { head: HeadOptions { epochs: 2, ..head }, unfreeze: Some(0), ..Default::default() }).unwrap();
    let events = common::step_until(&mut again, Stage::Head);
    assert!(split_notes(&events).contains("continuing from the imported model's head"), "{events:?}");

    // Before any new epoch: the same predictions, and the same file when exported again.
    for (_, name, bytes) in common::generated_dataset(2, 99) {
        let before = pollster::block_on(original.predict_file(&name, &bytes)).unwrap();
        let after = pollster::block_on(again.predict(&name, &bytes)).unwrap();
        assert_eq!(before, after, "{name}");
    }
    let re_exported = pollster::block_on(again.trained_model().unwrap().to_safetensors()).unwrap();
    assert_eq!(read_safetensors(&re_exported).unwrap().0, read_safetensors(&exported).unwrap().0);

    // And training goes on from there.
    let Event::Epoch { phase: Phase::Head, report } = pollster::block_on(again.step(8)).unwrap() else { panic!("an epoch") };
    assert!(report.train_loss.is_finite() && report.epoch == 1, "{report:?}");
}

#[test]
fn an_export_with_other_classes_starts_a_fresh_head_and_a_wrong_backbone_is_named() {
    let mut session = common::session_with_generated(2, 3);
    session.remove_class("checks").unwrap();
    session.start(Recipe { head: HeadOptions { epochs: 1, val_fraction: 0.0, ..Default::default() }, unfreeze: Some(0), ..Default::default() }).unwrap();
    common::run_to_end(&mut session);
    let exported = pollster::block_on(session.trained_model().unwrap().to_safetensors()).unwrap();

    let mut again = Session::new(LITE, &exported, Device::flex()).unwrap();
    for (label, name, bytes) in common::generated_dataset(2, 3) {
        again.add_image(&label, &name, &bytes).unwrap();
    }
    again.start(Recipe { head: HeadOptions { epochs: 1, ..Default::default() }, unfreeze: Some(0), ..Default::default() }).unwrap();
    let events = common::step_until(&mut again, Stage::Head);
    assert!(split_notes(&events).contains("(disc, stripes) differ from these, so the head starts fresh"));

    let err = Session::new(BackboneKind::ResNet18, &exported, Device::flex()).err().unwrap().to_string();
    assert!(err.contains("webtune export whose backbone is efficientnet_lite0, not resnet18"), "{err}");
}

#[test]
fn stopping_keeps_the_model_trained_so_far_and_pictures_wait_for_the_run() {
    let mut session = common::session_with_generated(3, 4);
    session.start(Recipe { head: HeadOptions { epochs: 50, ..Default::default() }, unfreeze: Some(1), ..Default::default() }).unwrap();
    common::step_until(&mut session, Stage::Head);
    // Pictures cannot change under a running recipe.
    assert!(session.add_class("more").is_err());
    // Stopped before any epoch: no model, back to idle.
    let outcome = session.stop();
    assert!(outcome.stopped && !outcome.has_model, "{outcome:?}");
    assert_eq!(session.stage(), Stage::Idle);
    assert!(session.trained_model().is_err());

    session.start(Recipe { head: HeadOptions { epochs: 50, ..Default::default() }, unfreeze: Some(1), ..Default::default() }).unwrap();
    common::step_until(&mut session, Stage::Head);
    pollster::block_on(session.step(8)).unwrap();
    let outcome = session.stop();
    assert!(outcome.stopped && outcome.has_model && outcome.fine_tuned == 0, "{outcome:?}");
    assert_eq!(session.stage(), Stage::Done);
    assert!(session.trained_model().is_ok());
    let Event::Finished { outcome: again } = pollster::block_on(session.step(8)).unwrap() else { panic!() };
    assert_eq!(again, outcome);
    // Once done, pictures can change again.
    session.add_class("more").unwrap();
}

/// A saved project reopens its model into a fresh session on the plain backbone: it predicts and
/// exports exactly as before, a file that is not a webtune export (or is another backbone's) is
/// refused without touching the session, and the next run replaces the reopened model.
#[test]
fn a_reopened_model_predicts_and_exports_as_before_until_the_next_run() {
    let mut session = common::session_with_generated(2, 5);
    session.start(Recipe { head: HeadOptions { epochs: 2, val_fraction: 0.0, ..Default::default() }, unfreeze: Some(0), ..Default::default() }).unwrap();
    common::run_to_end(&mut session);
    let trained = session.trained_model().unwrap();
    let exported = pollster::block_on(trained.to_safetensors()).unwrap();

    let mut reopened = Session::new(LITE, &std::fs::read(common::legacy_weights()).unwrap(), Device::flex()).unwrap();
    assert!(reopened.trained_model().is_err(), "nothing trained yet");
    let refused = reopened.load_model(b"not a model").unwrap_err().to_string();
    assert!(refused.contains("not a model exported by webtune"), "{refused}");
    assert!(reopened.trained_model().is_err(), "a refused file leaves no model");

    assert_eq!(reopened.load_model(&exported).unwrap(), ["checks", "disc", "stripes"]);
    for (_, name, bytes) in common::generated_dataset(1, 42) {
        let before = pollster::block_on(trained.predict_file(&name, &bytes)).unwrap();
        let after = pollster::block_on(reopened.predict(&name, &bytes)).unwrap();
        assert_eq!(before, after, "{name}");
    }
    let again = pollster::block_on(reopened.trained_model().unwrap().to_safetensors()).unwrap();
    assert_eq!(read_safetensors(&again).unwrap().0, read_safetensors(&exported).unwrap().0);

    // A new run on the reopened pictures replaces the reopened model.
    for (label, name, bytes) in common::generated_dataset(2, 5) {
        reopened.add_image(&label, &name, &bytes).unwrap();
    }
    reopened.start(Recipe { head: HeadOptions { epochs: 1, val_fraction: 0.0, ..Default::default() }, unfreeze: Some(0), ..Default::default() }).unwrap();
    assert!(reopened.trained_model().is_err(), "the reopened model is gone once a run starts");
    common::run_to_end(&mut reopened);
    assert!(reopened.trained_model().is_ok());
}
