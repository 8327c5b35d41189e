//! The `.safetensors` export of every backbone, against the real PyTorch models' `state_dict()`
//! (names, shapes and dtypes recorded from torch in `tests/reference/torch_state_dicts.json`)
//! with the classifier replaced by the head, and its metadata. That the values load with
//! `strict=True` and give webtune's outputs is checked numerically by the reference forwards
//! (`tests/imagenet.rs`, `tests/backbones.rs`).

use std::collections::BTreeMap;

use burn::tensor::Device;
use webtune::TrainedModel;
use webtune::model::{BackboneKind, Classifier, HeadConfig};
use webtune::weights::{TensorValues, read_safetensors};

/// name → (shape, dtype) as PyTorch's `state_dict()` has it, for a model with 1000 classes.
fn torch_state_dict(kind: BackboneKind) -> BTreeMap<String, (Vec<usize>, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/torch_state_dicts.json");
    let all: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let entries: Vec<(String, Vec<usize>, String)> = serde_json::from_value(all[kind.name()].clone()).unwrap();
    entries.into_iter().map(|(name, shape, dtype)| (name, (shape, dtype))).collect()
}

/// What the export must hold: PyTorch's model with its classifier replaced by webtune's head.
fn expected(kind: BackboneKind, hidden: usize, classes: usize) -> BTreeMap<String, (Vec<usize>, String)> {
    let mut names = torch_state_dict(kind);
    let (_, imagenet) = kind.head_names(false);
    let removed = names.len();
    names.retain(|name, _| !name.starts_with(&format!("{imagenet}.")));
    assert_eq!(removed - names.len(), 2, "{kind}: the ImageNet classifier is one Linear");
    let f32 = |shape: Vec<usize>| (shape, "float32".to_string());
    let (hidden_prefix, output_prefix) = kind.head_names(hidden > 0);
    let features = kind.features();
    if hidden > 0 {
        names.insert(format!("{hidden_prefix}.weight"), f32(vec![hidden, features]));
        names.insert(format!("{hidden_prefix}.bias"), f32(vec![hidden]));
    }
    let output_in = if hidden > 0 { hidden } else { features };
    names.insert(format!("{output_prefix}.weight"), f32(vec![classes, output_in]));
    names.insert(format!("{output_prefix}.bias"), f32(vec![classes]));
    names
}

fn export(kind: BackboneKind, hidden: usize, labels: &[&str]) -> Vec<u8> {
    let device = Device::flex();
    let head = HeadConfig::new(kind.features(), labels.len()).with_hidden(hidden);
    let model = TrainedModel {
        classifier: Classifier::new(kind, &head, &device),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        spec: kind.spec(),
        hidden_units: hidden,
        training: serde_json::json!({"head": {"epochs": 1}}),
    };
    pollster::block_on(model.to_safetensors()).unwrap()
}

#[test]
fn every_export_has_the_pytorch_models_names_shapes_and_dtypes() {
    let labels = ["ant", "bee", "cat"];
    for kind in BackboneKind::ALL {
        for hidden in [0, 16] {
            let (tensors, _) = read_safetensors(&export(kind, hidden, &labels)).unwrap();
            let ours: BTreeMap<String, (Vec<usize>, String)> = tensors
                .iter()
                .map(|(name, t)| {
                    let dtype = match t.values {
                        TensorValues::F32(_) => "float32",
                        TensorValues::I64(_) => "int64",
                        TensorValues::U8(_) => "uint8",
                    };
                    (name.clone(), (t.shape.clone(), dtype.to_string()))
                })
                .collect();
            let want = expected(kind, hidden, labels.len());
            let missing: Vec<_> = want.keys().filter(|k| !ours.contains_key(*k)).collect();
            let extra: Vec<_> = ours.keys().filter(|k| !want.contains_key(*k)).collect();
            assert!(missing.is_empty() && extra.is_empty(), "{kind} hidden {hidden}: missing {missing:?}, extra {extra:?}");
            for (name, (shape, dtype)) in &want {
                assert_eq!(&ours[name], &(shape.clone(), dtype.clone()), "{kind} hidden {hidden}: {name}");
            }
        }
    }
}

#[test]
fn every_export_names_labels_backbone_and_preprocessing_and_reloads() {
    for kind in BackboneKind::ALL {
        let bytes = export(kind, 0, &["no", "yes"]);
        let (_, meta) = read_safetensors(&bytes).unwrap();
        assert_eq!(meta["labels"], r#"["no","yes"]"#);
        assert_eq!(meta["backbone"], kind.name());
        assert_eq!((meta["input_size"].as_str(), meta["resize_size"].as_str()), ("224", "256"));
        assert_eq!(meta["head_hidden_units"], "0");
        assert_eq!(meta["format"], "pt");
        let norm: serde_json::Value = serde_json::from_str(&meta["normalization"]).unwrap();
        let (mean, std) = match kind {
            BackboneKind::EfficientNetLite0 => ([127.0f32; 3], [128.0f32; 3]),
            _ => ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375]),
        };
        for c in 0..3 {
            assert!((norm["mean"][c].as_f64().unwrap() as f32 - mean[c]).abs() < 1e-3, "{kind}: {norm}");
            assert!((norm["std"][c].as_f64().unwrap() as f32 - std[c]).abs() < 1e-3, "{kind}: {norm}");
        }
        assert_eq!(norm["channels"], "RGB");
        let training: serde_json::Value = serde_json::from_str(&meta["training"]).unwrap();
        assert_eq!(training["head"]["epochs"], 1);
        let reloaded = TrainedModel::from_safetensors(&bytes, &Device::flex()).unwrap();
        assert_eq!(reloaded.kind(), kind);
        assert_eq!(reloaded.labels, ["no", "yes"]);
    }
}
