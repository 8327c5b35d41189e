//! The fine-tuned classifier as an ONNX model (opset 17, IR version 8), so that onnxruntime and
//! onnxruntime-web run it without webtune.
//!
//! The graph is written from each backbone's architecture definition (not from the burn
//! modules), with the weights of a [`TensorMap`] keyed by the original PyTorch names, the same
//! map the safetensors export writes. Initializers keep those names.
//!
//! - input `input`: float32 `[batch, 3, 224, 224]`, already resized, cropped and normalised as the
//!   `normalization` metadata entry says (`batch` is symbolic);
//! - outputs `logits` `[batch, classes]` and `probabilities` (softmax over classes);
//! - `metadata_props`: the same keys and values as the safetensors export's `__metadata__`.
//!
//! BatchNorm stays as `BatchNormalization` nodes rather than being folded into the convolutions:
//! the initializers are then exactly the PyTorch state dict (same names, shapes and values as the
//! `.safetensors` export, which tests compare one to one), and onnxruntime folds Conv+BN itself
//! when it loads the model, so inference costs the same.

mod backbones;
mod graph;
pub mod proto;

use prost::Message;

use self::graph::{GraphBuilder, float_value};
use self::proto::{ModelProto, OperatorSetIdProto, StringStringEntryProto};
use crate::error::{Error, Result};
use crate::model::BackboneKind;
use crate::weights::TensorMap;

pub use self::backbones::INPUT_SIZE;

/// The `ai.onnx` operator set the graph uses.
pub const OPSET_VERSION: i64 = 17;
/// The IR version that goes with opset 17 (onnx 1.12).
pub const IR_VERSION: i64 = 8;
/// Graph input: normalised images, `[batch, 3, 224, 224]`.
pub const INPUT: &str = "input";
/// Graph output: `[batch, classes]` logits.
pub const LOGITS: &str = "logits";
/// Graph output: `[batch, classes]` softmax of the logits.
pub const PROBABILITIES: &str = "probabilities";

/// Serialises backbone `kind` with its classifier head as an ONNX model.
///
/// `tensors` holds every weight under its PyTorch name (BatchNorm `num_batches_tracked` may be
/// present and is ignored); `hidden` says whether the head has a hidden layer (its width is read
/// from the weights); `metadata` becomes the model's `metadata_props`. Fails, naming the tensor,
/// when one is missing, mis-shaped or not used by the architecture.
pub fn classifier_to_onnx(
    kind: BackboneKind,
    tensors: &TensorMap,
    hidden: bool,
    classes: usize,
    metadata: &[(String, String)],
) -> Result<Vec<u8>> {
    let mut b = GraphBuilder::new(tensors);
    let hidden_width = match hidden {
        false => None,
        true => {
            let name = format!("{}.weight", kind.head_names(true).0);
            let width = b.dim_of(&name, 0).ok_or_else(|| Error::weights(format!("missing tensor {name} (the head's hidden layer)")))?;
            Some(width)
        }
    };
    emit_classifier(&mut b, kind, hidden_width, classes)?;
    if let Some(extra) = b.unused().first() {
        return Err(Error::weights(format!(
            "unexpected tensor {extra} (shape {:?}): not part of {kind} with this head",
            tensors[extra].shape
        )));
    }
    Ok(model(kind, b, classes, metadata).encode_to_vec())
}

/// The name and shape of every weight [`classifier_to_onnx`] reads for this backbone and head
/// (`hidden_units` 0: no hidden layer), in graph order.
pub fn classifier_tensors(kind: BackboneKind, hidden_units: usize, classes: usize) -> Result<Vec<(String, Vec<usize>)>> {
    let mut b = GraphBuilder::listing();
    emit_classifier(&mut b, kind, (hidden_units > 0).then_some(hidden_units), classes)?;
    Ok(b.params)
}

fn emit_classifier(b: &mut GraphBuilder, kind: BackboneKind, hidden: Option<usize>, classes: usize) -> Result<()> {
    if classes == 0 {
        return Err(Error::weights("a classifier needs at least one class"));
    }
    let x = backbones::emit(b, kind, INPUT)?; // [batch, features, 7, 7]
    let x = b.global_avg_pool(&x, "pool".into()); // [batch, features, 1, 1]
    let mut x = b.flatten(&x, "features".into()); // [batch, features]
    let mut width = kind.features();
    // Dropout is the identity at inference and has no node.
    let (hidden_name, output_name) = kind.head_names(hidden.is_some());
    if let Some(units) = hidden {
        x = b.gemm(&x, &hidden_name, [width, units], hidden_name.clone())?;
        x = b.relu(&x);
        width = units;
    }
    let logits = b.gemm(&x, &output_name, [width, classes], LOGITS.into())?;
    b.softmax(&logits, PROBABILITIES.into());
    Ok(())
}

fn model(kind: BackboneKind, b: GraphBuilder, classes: usize, metadata: &[(String, String)]) -> ModelProto {
    let image = [None, Some(3), Some(INPUT_SIZE), Some(INPUT_SIZE)];
    let scores = [None, Some(classes)];
    let graph = b.finish(
        format!("webtune_{kind}"),
        vec![float_value(INPUT, &image, "batch")],
        vec![float_value(LOGITS, &scores, "batch"), float_value(PROBABILITIES, &scores, "batch")],
    );
    ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET_VERSION }],
        producer_name: "webtune".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "{kind} image classifier fine-tuned with webtune. Input \"{INPUT}\": [batch, 3, {INPUT_SIZE}, {INPUT_SIZE}] \
             RGB, resized and normalised as the \"normalization\" metadata says; outputs \"{LOGITS}\" and \"{PROBABILITIES}\" \
             [batch, classes] in the order of the \"labels\" metadata."
        ),
        graph: Some(graph),
        metadata_props: metadata.iter().map(|(key, value)| StringStringEntryProto { key: key.clone(), value: value.clone() }).collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::graph::same_pads;
    use super::proto::{attribute_type, type_proto};
    use super::*;
    use crate::weights::TensorEntry;

    fn params(kind: BackboneKind) -> Vec<(String, Vec<usize>)> {
        classifier_tensors(kind, 0, 1000).unwrap()
    }

    /// Learnable values (weights and biases, not running statistics) with the 1000-class head.
    fn learnable(kind: BackboneKind) -> usize {
        params(kind).iter().filter(|(n, _)| !n.contains("running_")).map(|(_, s)| s.iter().product::<usize>()).sum()
    }

    #[test]
    fn tensor_lists_have_the_published_parameter_counts() {
        // Published counts: lukemelas EfficientNet-Lite0, torchvision mobilenet_v2, resnet18, resnet50.
        assert_eq!(learnable(BackboneKind::EfficientNetLite0), 4_652_008);
        assert_eq!(learnable(BackboneKind::MobileNetV2), 3_504_872);
        assert_eq!(learnable(BackboneKind::ResNet18), 11_689_512);
        assert_eq!(learnable(BackboneKind::ResNet50), 25_557_032);
        // State dicts without num_batches_tracked: 296 - 49 for Lite0 (the published file).
        assert_eq!(params(BackboneKind::EfficientNetLite0).len(), 296 - 49);
        assert_eq!(params(BackboneKind::ResNet18).len(), 122 - 20);
    }

    #[test]
    fn names_follow_each_pytorch_definition() {
        let names = |kind| params(kind).into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        let has = |kind, name: &str| assert!(names(kind).iter().any(|n| n == name), "{kind}: no {name}");
        has(BackboneKind::EfficientNetLite0, "_blocks.0._depthwise_conv.weight");
        has(BackboneKind::EfficientNetLite0, "_blocks.15._bn2.running_var");
        has(BackboneKind::EfficientNetLite0, "_fc.weight");
        assert!(!names(BackboneKind::EfficientNetLite0).contains(&"_blocks.0._expand_conv.weight".to_string()));
        has(BackboneKind::MobileNetV2, "features.1.conv.2.running_mean");
        has(BackboneKind::MobileNetV2, "features.17.conv.3.weight");
        has(BackboneKind::MobileNetV2, "classifier.1.bias");
        has(BackboneKind::ResNet18, "layer2.0.downsample.1.weight");
        assert!(!names(BackboneKind::ResNet18).contains(&"layer1.0.downsample.0.weight".to_string()));
        has(BackboneKind::ResNet50, "layer1.0.downsample.0.weight");
        has(BackboneKind::ResNet50, "layer4.2.bn3.bias");
        let hidden = classifier_tensors(BackboneKind::MobileNetV2, 64, 3).unwrap();
        let head: Vec<_> = hidden.iter().filter(|(n, _)| n.starts_with("classifier")).cloned().collect();
        assert_eq!(head, [
            ("classifier.1.weight".to_string(), vec![64, 1280]),
            ("classifier.1.bias".to_string(), vec![64]),
            ("classifier.4.weight".to_string(), vec![3, 64]),
            ("classifier.4.bias".to_string(), vec![3]),
        ]);
    }

    #[test]
    fn same_padding_puts_the_extra_pixel_bottom_right() {
        assert_eq!(same_pads(224, 3, 2), [0, 0, 1, 1]);
        assert_eq!(same_pads(56, 5, 2), [1, 1, 2, 2]);
        assert_eq!(same_pads(28, 3, 1), [1, 1, 1, 1]);
        assert_eq!(same_pads(14, 5, 1), [2, 2, 2, 2]);
    }

    fn zeros(kind: BackboneKind, hidden: usize, classes: usize) -> TensorMap {
        classifier_tensors(kind, hidden, classes)
            .unwrap()
            .into_iter()
            .map(|(n, s)| {
                let len = s.iter().product();
                (n, TensorEntry::f32(s, vec![0.0; len]))
            })
            .collect()
    }

    #[test]
    fn model_round_trips_through_prost() {
        let tensors = zeros(BackboneKind::ResNet18, 8, 3);
        let meta = [("labels".to_string(), "[\"a\",\"b\",\"c\"]".to_string())];
        let bytes = classifier_to_onnx(BackboneKind::ResNet18, &tensors, true, 3, &meta).unwrap();
        let model = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!((model.ir_version, model.opset_import[0].version), (8, 17));
        assert_eq!(model.metadata_props[0].key, "labels");
        let graph = model.graph.unwrap();
        let names: Vec<_> = graph.initializer.iter().map(|t| t.name.clone()).collect();
        assert_eq!(names.len(), tensors.len());
        assert!(tensors.keys().all(|k| names.contains(k)));
        let gemm = graph.node.iter().find(|n| n.op_type == "Gemm" && n.output[0] == LOGITS).unwrap();
        assert_eq!(gemm.input[1], "fc.4.weight");
        let trans_b = gemm.attribute.iter().find(|a| a.name.as_deref() == Some("transB")).unwrap();
        assert_eq!((trans_b.r#type, trans_b.i), (Some(attribute_type::INT), Some(1)));
        // An attribute equal to zero is still present (proto2 `optional`).
        let trans_a = gemm.attribute.iter().find(|a| a.name.as_deref() == Some("transA")).unwrap();
        assert_eq!(trans_a.i, Some(0));
        let Some(type_proto::Value::TensorType(t)) = &graph.output[1].r#type.as_ref().unwrap().value else { panic!() };
        assert_eq!(t.shape.as_ref().unwrap().dim.len(), 2);
        assert_eq!(graph.output[1].name, PROBABILITIES);
    }

    #[test]
    fn export_names_the_missing_misshaped_or_unexpected_tensor() {
        let kind = BackboneKind::ResNet18;
        let mut tensors = zeros(kind, 0, 3);
        tensors.remove("layer3.1.bn2.running_var");
        let err = classifier_to_onnx(kind, &tensors, false, 3, &[]).unwrap_err().to_string();
        assert!(err.contains("missing tensor layer3.1.bn2.running_var"), "{err}");

        let mut tensors = zeros(kind, 0, 3);
        tensors.insert("fc.weight".into(), TensorEntry::f32(vec![4, 512], vec![0.0; 4 * 512]));
        let err = classifier_to_onnx(kind, &tensors, false, 3, &[]).unwrap_err().to_string();
        assert!(err.contains("fc.weight has shape [4, 512], expected [3, 512]"), "{err}");

        let mut tensors = zeros(kind, 0, 3);
        tensors.insert("bn1.num_batches_tracked".into(), TensorEntry::f32(vec![], vec![0.0]));
        classifier_to_onnx(kind, &tensors, false, 3, &[]).unwrap();
        tensors.insert("layer5.0.conv1.weight".into(), TensorEntry::f32(vec![1], vec![0.0]));
        let err = classifier_to_onnx(kind, &tensors, false, 3, &[]).unwrap_err().to_string();
        assert!(err.contains("unexpected tensor layer5.0.conv1.weight"), "{err}");

        let err = classifier_to_onnx(kind, &zeros(kind, 0, 3), true, 3, &[]).unwrap_err().to_string();
        assert!(err.contains("missing tensor fc.1.weight"), "{err}");
    }
}
