//! The imported backbone against ImageNet: right classes on real photos, and logits equal to an
//! independent numpy implementation of the same forward pass.

mod common;

use std::process::Command;

use burn::tensor::Device;
use webtune::data::{decode_image, resize_and_center_crop, to_input_tensor};
use webtune::model::{BackboneKind, ImageNetClassifier, ImageNetNames};
use webtune::weights::{load_params, read_safetensors, read_weights_file};

fn logits_of(weights: &[u8], photos: &[&str]) -> Vec<Vec<f32>> {
    let device = Device::flex();
    let kind = BackboneKind::EfficientNetLite0;
    let model = load_params(ImageNetClassifier::new(kind, &device), &read_weights_file(weights).unwrap(), &ImageNetNames { kind }).unwrap();
    let spec = kind.spec();
    let crops: Vec<_> = photos
        .iter()
        .map(|p| resize_and_center_crop(&decode_image(p, &std::fs::read(common::photo(p)).unwrap()).unwrap(), &spec))
        .collect();
    let logits = model.forward(to_input_tensor(&crops.iter().collect::<Vec<_>>(), &spec, &device));
    logits.into_data().try_to_vec::<f32>().unwrap().chunks(1000).map(<[f32]>::to_vec).collect()
}

fn top1(row: &[f32]) -> usize {
    webtune::train::argmax(row)
}

#[test]
fn pretrained_backbone_names_the_photos_shipped_with_scikit_image() {
    let logits = logits_of(&std::fs::read(common::legacy_weights()).unwrap(), &["chelsea.png", "coffee.png"]);
    // 281 tabby, 282 tiger cat, 285 Egyptian cat: the photo is a tabby-ish cat and the three
    // are within a few tenths of a logit of each other.
    assert!([281, 282, 285].contains(&top1(&logits[0])), "chelsea top-1 {}", top1(&logits[0]));
    assert_eq!(top1(&logits[1]), 967, "coffee must be espresso");
}

#[test]
fn converted_file_gives_the_same_logits_as_the_original() {
    let out = tempfile::tempdir().unwrap();
    let converted = out.path().join("lite0.safetensors");
    let status = Command::new(env!("CARGO_BIN_EXE_webtune"))
        .args(["convert".as_ref(), common::legacy_weights().as_os_str(), converted.as_os_str()])
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&converted).unwrap();
    let (tensors, metadata) = read_safetensors(&bytes).unwrap();
    assert_eq!(tensors.len(), 296);
    assert_eq!(metadata["backbone"], "efficientnet_lite0");
    let original = logits_of(&std::fs::read(common::legacy_weights()).unwrap(), &["coffee.png"]);
    assert_eq!(logits_of(&bytes, &["coffee.png"]), original);
}

#[test]
fn cli_logits_match_an_independent_numpy_implementation() {
    let out = tempfile::tempdir().unwrap();
    let input = out.path().join("input.f32");
    let reference = out.path().join("reference.f32");
    let cli = Command::new(env!("CARGO_BIN_EXE_webtune"))
        .arg("imagenet")
        .arg("--json")
        .arg("--weights")
        .arg(common::legacy_weights())
        .arg("--save-input")
        .arg(&input)
        .args([common::photo("chelsea.png"), common::photo("coffee.png")])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let results: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    let ours: Vec<f32> = results
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
        .collect();
    assert_eq!(ours.len(), 2000);
    assert_eq!(results[1]["top5"][0][0], 967);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/efficientnet_lite0.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(python).arg(script).arg(common::legacy_weights()).arg(&input).arg(&reference).status().unwrap();
    assert!(status.success(), "reference implementation failed (is numpy installed?)");
    let theirs: Vec<f32> =
        std::fs::read(&reference).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let max_diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(max_diff < 1e-3, "max logit difference {max_diff}");
}
