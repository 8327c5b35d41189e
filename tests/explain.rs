//! Explaining on the real backbone: Grad-CAM against an independent numpy computation on the
//! same weights and picture, the near-duplicate threshold against real copies, and a planted
//! mislabel found among generated pictures.

mod common;

use std::io::Cursor;
use std::process::Command;

use burn::tensor::Device;
use image::{ImageFormat, imageops::FilterType};
use webtune::TrainedModel;
use webtune::data::{decode_image, resize_and_center_crop, to_input_tensor};
use webtune::model::{Backbone, BackboneKind, Classifier, Head, HeadConfig, ImageNetClassifier, ImageNetNames};
use webtune::weights::{load_params, read_weights_file};

fn model_with(head: Head, labels: Vec<String>, hidden_units: usize, device: &Device) -> TrainedModel {
    let kind = BackboneKind::EfficientNetLite0;
    let backbone = Backbone::import(kind, &read_weights_file(&std::fs::read(common::legacy_weights()).unwrap()).unwrap(), device).unwrap();
    TrainedModel { classifier: Classifier { backbone, head }, labels, spec: kind.spec(), hidden_units, training: serde_json::json!({}) }
}

/// Runs tests/reference/efficientnet_lite0.py on `model`'s export and the crop: its Grad-CAM
/// map and logits.
fn numpy_grad_cam(model: &TrainedModel, crop: &image::RgbImage, class: Option<usize>) -> (Vec<f32>, Vec<f32>) {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("model.safetensors");
    std::fs::write(&weights, pollster::block_on(model.to_safetensors()).unwrap()).unwrap();
    let input = to_input_tensor(&[crop], &model.spec, &Device::flex()).into_data().try_to_vec::<f32>().unwrap();
    let input_path = dir.path().join("input.f32");
    std::fs::write(&input_path, input.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let (logits, cam) = (dir.path().join("logits.f32"), dir.path().join("cam.f32"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/efficientnet_lite0.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut command = Command::new(python);
    command.arg(script).arg(&weights).arg(&input_path).arg(&logits).arg("--gradcam").arg(&cam);
    if let Some(class) = class {
        command.arg("--class").arg(class.to_string());
    }
    let status = command.status().unwrap();
    assert!(status.success(), "reference implementation failed (is numpy installed?)");
    let floats = |p| std::fs::read(p).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<f32>>();
    (floats(&cam), floats(&logits))
}

fn chelsea() -> image::RgbImage {
    let spec = BackboneKind::EfficientNetLite0.spec();
    resize_and_center_crop(&decode_image("chelsea.png", &std::fs::read(common::photo("chelsea.png")).unwrap()).unwrap(), &spec)
}

/// Largest difference between the engine's map and the reference's, relative to the map's peak.
fn compare(name: &str, ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), 49, "{name}: a 7×7 map");
    assert_eq!(theirs.len(), 49, "{name}: a 7×7 reference map");
    let peak = theirs.iter().copied().fold(0f32, f32::max);
    assert!(peak > 0.0 && theirs.iter().filter(|&&v| v > 0.0).count() >= 5, "{name}: a map with few positive cells checks little: {theirs:?}");
    let worst = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    eprintln!("{name}: Grad-CAM max |engine - numpy| = {worst:e}, peak {peak:e}, relative {:e}", worst / peak);
    worst / peak
}

/// The ImageNet classifier as a linear head: the tabby class (281) on the cat photo.
#[test]
fn grad_cam_of_a_linear_head_matches_numpy() {
    let device = Device::flex();
    let kind = BackboneKind::EfficientNetLite0;
    let imagenet = load_params(ImageNetClassifier::new(kind, &device), &read_weights_file(&std::fs::read(common::legacy_weights()).unwrap()).unwrap(), &ImageNetNames { kind }).unwrap();
    let head = Head { hidden: None, dropout: burn::nn::DropoutConfig::new(0.2).init(), output: imagenet.fc };
    let labels: Vec<String> = (0..1000).map(|i| format!("imagenet{i}")).collect();
    let model = TrainedModel { classifier: Classifier { backbone: imagenet.backbone, head }, ..model_with(HeadConfig::new(1280, 2).init(&device), labels, 0, &device) };
    let crop = chelsea();
    let cam = pollster::block_on(model.grad_cam(&crop, Some(281))).unwrap();
    assert_eq!((cam.map_width, cam.map_height, cam.label.as_str()), (7, 7, "imagenet281"));
    let (theirs, _) = numpy_grad_cam(&model, &crop, Some(281));
    assert!(compare("linear head, class 281", &cam.map, &theirs) < 1e-3);
}

/// A head with a hidden ReLU layer (seeded weights), explaining its predicted class: the
/// gradient goes through the ReLU, which numpy derives by hand.
#[test]
fn grad_cam_of_a_hidden_layer_head_matches_numpy() {
    let device = Device::flex();
    let head = HeadConfig::new(1280, 3).with_hidden(32).init_seeded(&device, 11);
    let model = model_with(head, vec!["a".into(), "b".into(), "c".into()], 32, &device);
    let crop = chelsea();
    let cam = pollster::block_on(model.grad_cam(&crop, None)).unwrap();
    let (theirs, logits) = numpy_grad_cam(&model, &crop, None);
    assert_eq!(cam.class_index, webtune::train::argmax(&logits), "both explain the predicted class");
    assert!(compare("hidden-layer head, predicted class", &cam.map, &theirs) < 1e-3);
    // And another class, whose map differs.
    let other = (cam.class_index + 1) % 3;
    let cam_other = pollster::block_on(model.grad_cam(&crop, Some(other))).unwrap();
    let (theirs_other, _) = numpy_grad_cam(&model, &crop, Some(other));
    assert_ne!(cam_other.map, cam.map);
    assert!(compare("hidden-layer head, another class", &cam_other.map, &theirs_other) < 1e-3);
}

/// [`webtune::explain::NEAR_DUPLICATE_SIMILARITY`] separates copies of a photo (re-encoded,
/// resized, slightly cropped) from different pictures of one generated class.
#[test]
fn near_duplicate_threshold_separates_copies_from_lookalikes() {
    let device = Device::flex();
    let kind = BackboneKind::EfficientNetLite0;
    let backbone = Backbone::import(kind, &read_weights_file(&std::fs::read(common::legacy_weights()).unwrap()).unwrap(), &device).unwrap();
    let spec = kind.spec();
    let photo = decode_image("chelsea.png", &std::fs::read(common::photo("chelsea.png")).unwrap()).unwrap();
    let mut jpeg = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(photo.clone()).write_to(&mut jpeg, ImageFormat::Jpeg).unwrap();
    let (w, h) = photo.dimensions();
    let copies = [
        photo.clone(),
        decode_image("copy.jpg", jpeg.get_ref()).unwrap(),
        image::imageops::resize(&photo, w / 2, h / 2, FilterType::Triangle),
        image::imageops::crop_imm(&photo, w / 40, h / 40, w - w / 20, h - h / 20).to_image(),
    ];
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(4);
    let lookalikes: Vec<_> = (0..6).map(|_| common::generated_image("stripes", &mut rng)).collect();
    let features = |images: &[image::RgbImage]| -> Vec<Vec<f32>> {
        let crops: Vec<_> = images.iter().map(|i| resize_and_center_crop(i, &spec)).collect();
        let f = backbone.forward(to_input_tensor(&crops.iter().collect::<Vec<_>>(), &spec, &device)).into_data().try_to_vec::<f32>().unwrap();
        f.chunks(1280).map(<[f32]>::to_vec).collect()
    };
    let cosine = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
    };
    let (copies, lookalikes) = (features(&copies), features(&lookalikes));
    let copy_low = copies[1..].iter().map(|c| cosine(&copies[0], c)).fold(1f32, f32::min);
    let mut lookalike_high = 0f32;
    for i in 0..lookalikes.len() {
        for j in i + 1..lookalikes.len() {
            lookalike_high = lookalike_high.max(cosine(&lookalikes[i], &lookalikes[j]));
        }
    }
    eprintln!("copies of chelsea: lowest cosine {copy_low}; different 'stripes' pictures: highest {lookalike_high}");
    let threshold = webtune::explain::NEAR_DUPLICATE_SIMILARITY;
    assert!(copy_low >= threshold, "a copy fell below the threshold {threshold}: {copy_low}");
    assert!(lookalike_high < threshold, "different pictures reached the threshold {threshold}: {lookalike_high}");
}

/// A session of clean generated classes with one picture given the wrong label: after
/// training it is among the top 3 suspects, with its true class suggested; an exact copy
/// filed under another class is flagged as a duplicate with mixed labels.
#[test]
fn a_planted_mislabel_is_a_top_suspect_after_training() {
    let mut session = common::session_with_generated(8, 21);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(99);
    let disc = common::png(&common::generated_image("disc", &mut rng));
    let planted = session.add_image("stripes", "actually_a_disc.png", &disc).unwrap();
    let copy = session.add_image("disc", "copy_of_checks_0.png", &common::generated_dataset(8, 21)[0].2).unwrap();
    let recipe = webtune::Recipe { unfreeze: Some(0), ..Default::default() };
    session.start(recipe).unwrap();
    common::run_to_end(&mut session);
    let report = pollster::block_on(session.suspects(10)).unwrap();
    eprintln!("{:#?}", report.suspects.iter().take(3).collect::<Vec<_>>());
    let rank = report.suspects.iter().position(|s| s.image_id == planted);
    assert!(rank.is_some_and(|r| r < 3), "planted mislabel at rank {rank:?}: {report:?}");
    assert_eq!(report.suspects[rank.unwrap()].suggested, "disc");
    assert_eq!(report.checked, 26);
    let groups = pollster::block_on(session.duplicates()).unwrap();
    let exact = groups.iter().find(|g| g.pictures.iter().any(|p| p.image_id == copy)).expect("the copy is flagged");
    assert_eq!(exact.kind, webtune::explain::DuplicateKind::Exact);
    assert!(exact.mixed_labels);
    assert_eq!(exact.pictures.len(), 2);
}

/// `webtune predict --gradcam DIR` writes the engine's overlay of the predicted class.
#[test]
fn cli_writes_the_grad_cam_overlay() {
    let device = Device::flex();
    let head = HeadConfig::new(1280, 3).with_hidden(32).init_seeded(&device, 11);
    let model = model_with(head, vec!["a".into(), "b".into(), "c".into()], 32, &device);
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("model.safetensors");
    std::fs::write(&export, pollster::block_on(model.to_safetensors()).unwrap()).unwrap();
    let out = dir.path().join("maps");
    let cli = Command::new(env!("CARGO_BIN_EXE_webtune"))
        .arg("predict")
        .arg(&export)
        .arg(common::photo("chelsea.png"))
        .arg("--gradcam")
        .arg(&out)
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let written = image::open(out.join("chelsea.png.gradcam.png")).unwrap().to_rgba8();
    let crop = chelsea();
    let cam = pollster::block_on(model.grad_cam(&crop, None)).unwrap();
    assert_eq!(written.dimensions(), (224, 224));
    assert_eq!(written.into_raw(), cam.overlay(&crop));
}
