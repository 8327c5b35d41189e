//! The ONNX export run by onnxruntime (Python, `tests/reference/onnx_run.py`), which shares no
//! code with webtune: EfficientNet-Lite0 classifiers give webtune's logits on real photos, the
//! file's names, shapes and metadata match the safetensors export, and the torchvision backbones'
//! graphs run.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use burn::tensor::Device;
use image::RgbImage;
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use webtune::TrainedModel;
use webtune::data::{decode_image, resize_and_center_crop, to_input_tensor};
use webtune::export::onnx::proto::{ModelProto, TensorProto, ValueInfoProto, tensor_shape_proto::dimension, type_proto};
use webtune::export::onnx::{self, classifier_tensors, classifier_to_onnx};
use webtune::model::{Backbone, BackboneKind, BackboneSpec, Classifier, ClassifierNames, HeadConfig};
use webtune::weights::{TensorEntry, TensorMap, load_params, read_safetensors, read_weights_file};

/// Largest logit difference allowed between webtune and onnxruntime (both compute in f32).
const TOLERANCE: f32 = 1e-4;

fn backbone() -> Backbone {
    static BACKBONE: OnceLock<Backbone> = OnceLock::new();
    BACKBONE
        .get_or_init(|| {
            let tensors = read_weights_file(&std::fs::read(common::legacy_weights()).unwrap()).unwrap();
            Backbone::import(BackboneKind::EfficientNetLite0, &tensors, &Device::flex()).unwrap()
        })
        .clone()
}

/// The published EfficientNet-Lite0 backbone with a seeded head, as training would leave it.
fn efficientnet_model(hidden_units: usize, labels: &[&str], seed: u64) -> TrainedModel {
    let head = HeadConfig::new(BackboneKind::EfficientNetLite0.features(), labels.len()).with_hidden(hidden_units).init_seeded(&Device::flex(), seed);
    TrainedModel {
        classifier: Classifier { backbone: backbone(), head },
        labels: labels.iter().map(|l| l.to_string()).collect(),
        spec: BackboneSpec::efficientnet_lite0(),
        hidden_units,
        training: serde_json::json!({"seed": seed}),
    }
}

/// The two photos, cropped, and the normalised `[2, 3, 224, 224]` input webtune computes from them.
fn photos(spec: &BackboneSpec) -> (Vec<RgbImage>, Vec<f32>) {
    let crops: Vec<RgbImage> = ["chelsea.png", "coffee.png"]
        .iter()
        .map(|p| resize_and_center_crop(&decode_image(p, &std::fs::read(common::photo(p)).unwrap()).unwrap(), spec))
        .collect();
    let input = to_input_tensor(&crops.iter().collect::<Vec<_>>(), spec, &Device::flex());
    (crops, input.into_data().try_to_vec::<f32>().unwrap())
}

/// What onnxruntime made of a model and an input batch.
struct OnnxRun {
    logits: Vec<f32>,
    probabilities: Vec<f32>,
    /// `{"logits": shape, "probabilities": shape, "metadata": keys}` as the script reports it.
    report: serde_json::Value,
}

fn f32_file(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Runs `model` (ONNX bytes) on `input` (`[batch, 3, 224, 224]`, row-major) with onnxruntime.
fn run_onnxruntime(model: &[u8], input: &[f32]) -> OnnxRun {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("model.onnx"), model).unwrap();
    std::fs::write(path("input.f32"), f32_file(input)).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/onnx_run.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .arg(script)
        .args([path("model.onnx"), path("input.f32"), path("logits.f32")])
        .arg("--probabilities")
        .arg(path("probabilities.f32"))
        .output()
        .unwrap();
    assert!(out.status.success(), "onnxruntime failed (is `onnxruntime` installed?): {}", String::from_utf8_lossy(&out.stderr));
    OnnxRun {
        logits: read_f32(&path("logits.f32")),
        probabilities: read_f32(&path("probabilities.f32")),
        report: serde_json::from_slice(&out.stdout).unwrap(),
    }
}

/// The largest absolute difference between two logit tables, which must be the same size.
fn max_abs_diff(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len(), "different numbers of logits");
    ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

/// Checks that onnxruntime, running `model` on `input`, gives `expected` logits within
/// [`TOLERANCE`]; returns the largest difference. Any Rust model's logits can be checked this way.
fn assert_onnx_matches(model: &[u8], input: &[f32], expected: &[f32]) -> f32 {
    let run = run_onnxruntime(model, input);
    let diff = max_abs_diff(expected, &run.logits);
    assert!(diff <= TOLERANCE, "max |logit difference| {diff} > {TOLERANCE}");
    diff
}

fn webtune_matches_onnxruntime(hidden_units: usize) {
    let labels = ["cat", "coffee", "other"];
    let model = efficientnet_model(hidden_units, &labels, 7);
    let (crops, input) = photos(&model.spec);
    let ours = pollster::block_on(model.logits(&crops.iter().collect::<Vec<_>>())).unwrap();
    let bytes = pollster::block_on(model.to_onnx()).unwrap();
    let diff = assert_onnx_matches(&bytes, &input, &ours);
    eprintln!("EfficientNet-Lite0, hidden {hidden_units}: max |logit difference| {diff:e}");

    let run = run_onnxruntime(&bytes, &input);
    assert_eq!(run.report["logits"], serde_json::json!([2, 3]));
    let probabilities: Vec<f32> = pollster::block_on(model.probabilities(&crops.iter().collect::<Vec<_>>())).unwrap().concat();
    assert!(max_abs_diff(&probabilities, &run.probabilities) < 1e-5);
}

#[test]
fn efficientnet_logits_match_webtune_on_photos() {
    webtune_matches_onnxruntime(0);
}

#[test]
fn efficientnet_with_a_hidden_layer_matches_webtune_on_photos() {
    webtune_matches_onnxruntime(32);
}

fn shape(value: &ValueInfoProto) -> Vec<String> {
    let Some(type_proto::Value::TensorType(tensor)) = &value.r#type.as_ref().unwrap().value else { panic!("{} is not a tensor", value.name) };
    tensor.shape.as_ref().unwrap().dim.iter().map(|d| match d.value.as_ref().unwrap() {
        dimension::Value::DimValue(v) => v.to_string(),
        dimension::Value::DimParam(p) => p.clone(),
    }).collect()
}

fn initializer_values(t: &TensorProto) -> Vec<f32> {
    assert_eq!(t.data_type, onnx::proto::data_type::FLOAT, "{}", t.name);
    t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn names_shapes_and_metadata_match_the_safetensors_export() {
    for hidden_units in [0, 16] {
        let model = efficientnet_model(hidden_units, &["a", "b"], 3);
        let (tensors, mut metadata) = read_safetensors(&pollster::block_on(model.to_safetensors()).unwrap()).unwrap();
        let onnx = ModelProto::decode(pollster::block_on(model.to_onnx()).unwrap().as_slice()).unwrap();

        assert_eq!(onnx.ir_version, onnx::IR_VERSION);
        let opset = onnx.opset_import.iter().find(|o| o.domain.is_empty()).expect("imports the ai.onnx opset");
        assert!(opset.version >= 17, "opset {}", opset.version);

        let graph = onnx.graph.as_ref().unwrap();
        let ours: BTreeMap<&str, (Vec<usize>, Vec<f32>)> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), (t.dims.iter().map(|&d| d as usize).collect(), initializer_values(t))))
            .collect();
        assert_eq!(ours.len(), graph.initializer.len(), "initializer names are unique");
        let theirs: BTreeMap<&str, (Vec<usize>, Vec<f32>)> =
            // Every float tensor; BatchNorm's integer step counters have no place in an inference graph.
            tensors.iter().filter_map(|(name, t)| Some((name.as_str(), (t.shape.clone(), t.as_f32()?.to_vec())))).collect();
        assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "initializer names");
        for (name, (shape, values)) in &theirs {
            assert_eq!(&ours[name].0, shape, "shape of {name}");
            assert!(ours[name].1 == *values, "values of {name}");
        }

        assert_eq!(graph.input.len(), 1);
        assert_eq!((graph.input[0].name.as_str(), shape(&graph.input[0])), ("input", vec!["batch".into(), "3".into(), "224".into(), "224".into()]));
        let outputs: Vec<_> = graph.output.iter().map(|o| (o.name.as_str(), shape(o))).collect();
        let scores = vec!["batch".to_string(), "2".into()];
        assert_eq!(outputs, [("logits", scores.clone()), ("probabilities", scores)]);

        let props: HashMap<String, String> = onnx.metadata_props.iter().map(|p| (p.key.clone(), p.value.clone())).collect();
        for key in ["labels", "backbone", "input_size", "resize_size", "normalization", "head_hidden_units", "training", "webtune_version"] {
            assert!(props.contains_key(key), "metadata has no {key}");
        }
        assert_eq!(props["labels"], r#"["a","b"]"#);
        assert_eq!(props["head_hidden_units"], hidden_units.to_string());
        metadata.remove("format"); // safetensors' own marker
        assert_eq!(props, metadata);
    }
}

#[test]
fn cli_exports_a_safetensors_model_and_names_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = efficientnet_model(0, &["x", "y", "z"], 5);
    let safetensors = dir.path().join("model.safetensors");
    std::fs::write(&safetensors, pollster::block_on(model.to_safetensors()).unwrap()).unwrap();
    let out_path = dir.path().join("out/model.onnx");
    let webtune = |model: &Path| {
        Command::new(env!("CARGO_BIN_EXE_webtune")).arg("export").arg(model).arg("--onnx").arg(&out_path).output().unwrap()
    };
    let out = webtune(&safetensors);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&out_path).unwrap(), pollster::block_on(model.to_onnx()).unwrap());

    let broken = dir.path().join("broken.safetensors");
    std::fs::write(&broken, b"not a model").unwrap();
    let out = webtune(&broken);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(&format!("webtune: {}: ", broken.display())), "{stderr}");
}

/// Normal deviates from a seeded generator (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let (u, v): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

/// Random weights under the torchvision names the exporter expects: He-scaled convolutions and
/// linear layers, BatchNorm near identity (running variance in [0.5, 1.5]). The last BatchNorm of
/// each ResNet block scales down (gamma 0.3–0.5), or every identity shortcut would double the
/// variance and ResNet-50's logits would reach ~1e3, where f32 rounding alone exceeds 1e-4.
fn random_tensors(kind: BackboneKind, hidden_units: usize, classes: usize, seed: u64) -> TensorMap {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let wanted = classifier_tensors(kind, hidden_units, classes).unwrap();
    let batch_norms: Vec<&str> = wanted.iter().filter_map(|(name, _)| name.strip_suffix(".running_var")).collect();
    let mut map = TensorMap::new();
    for (name, shape) in &wanted {
        let (module, param) = name.rsplit_once('.').unwrap();
        let fan_in: usize = shape[1..].iter().product();
        let values: Vec<f32> = (0..shape.iter().product())
            .map(|_| match (batch_norms.contains(&module), param) {
                (true, "weight") if module.ends_with(".bn2") && kind == BackboneKind::ResNet18 => rng.random_range(0.3..0.5),
                (true, "weight") if module.ends_with(".bn3") && kind == BackboneKind::ResNet50 => rng.random_range(0.3..0.5),
                (true, "weight") => rng.random_range(0.8..1.2),
                (true, "running_var") => rng.random_range(0.5..1.5),
                (true, _) => 0.1 * normal(&mut rng), // bias, running_mean
                (false, "bias") => 0.01 * normal(&mut rng),
                (false, _) => normal(&mut rng) * (2.0 / fan_in as f32).sqrt(),
            })
            .collect();
        map.insert(name.clone(), TensorEntry::f32(shape.clone(), values));
    }
    map
}

/// One torchvision backbone with random weights and a random input batch.
struct RandomCase {
    kind: BackboneKind,
    tensors: TensorMap,
    hidden_units: usize,
    classes: usize,
    /// `[2, 3, 224, 224]`, row-major.
    input: Vec<f32>,
}

impl RandomCase {
    fn new(kind: BackboneKind, hidden_units: usize, classes: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 1000);
        let input = (0..2 * 3 * 224 * 224).map(|_| normal(&mut rng)).collect();
        Self { kind, tensors: random_tensors(kind, hidden_units, classes, seed), hidden_units, classes, input }
    }

    /// webtune's logits: the same tensors loaded into the Rust model, on the same input.
    fn webtune_logits(&self) -> Vec<f32> {
        let device = Device::flex();
        let head = HeadConfig::new(self.kind.features(), self.classes).with_hidden(self.hidden_units);
        let names = ClassifierNames { kind: self.kind, hidden: self.hidden_units > 0 };
        let model = load_params(Classifier::new(self.kind, &head, &device), &self.tensors, &names).unwrap();
        let input = burn::tensor::Tensor::<4>::from_data(burn::tensor::TensorData::new(self.input.clone(), [2, 3, 224, 224]), &device);
        model.forward(input).into_data().try_to_vec::<f32>().unwrap()
    }

    fn onnx(&self) -> Vec<u8> {
        let metadata = [("backbone".to_string(), self.kind.name().to_string())];
        classifier_to_onnx(self.kind, &self.tensors, self.hidden_units > 0, self.classes, &metadata).unwrap()
    }
}

#[test]
fn torchvision_backbones_match_webtune_in_onnxruntime() {
    let cases = [
        RandomCase::new(BackboneKind::MobileNetV2, 0, 5, 1),
        RandomCase::new(BackboneKind::ResNet18, 24, 4, 2),
        RandomCase::new(BackboneKind::ResNet50, 0, 3, 3),
    ];
    for case in &cases {
        let run = run_onnxruntime(&case.onnx(), &case.input);
        let kind = case.kind;
        assert_eq!(run.report["logits"], serde_json::json!([2, case.classes]), "{kind}");
        assert_eq!(run.report["metadata"], serde_json::json!(["backbone"]), "{kind}");
        assert!(run.logits.iter().all(|v| v.is_finite()), "{kind}: {:?}", run.logits);
        for row in run.probabilities.chunks(case.classes) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{kind}: {row:?}");
        }
        // The two images differ, so must their logits: the graph does not ignore its input.
        let (a, b) = run.logits.split_at(case.classes);
        assert!(max_abs_diff(a, b) > 1e-3, "{kind}: {:?}", run.logits);
        let diff = assert_onnx_matches(&case.onnx(), &case.input, &case.webtune_logits());
        eprintln!("{kind}, hidden {}: max |logit difference| {diff:e}", case.hidden_units);
    }
}
