//! The torchvision backbones against an independent numpy implementation: a file with
//! torchvision's names and random values loads through the name maps, and our pooled features
//! equal the reference's on the same file and input. Files that do not match are refused,
//! naming the tensor.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use webtune::model::{Backbone, BackboneKind, timm_name};
use webtune::weights::{
    TensorEntry, TensorMap, TensorValues, read_weights_file, write_safetensors,
};

/// Small enough that ResNet-50 runs in seconds on two cores, large enough that every stage
/// still has a 2×2 map before pooling.
const SIZE: usize = 64;

#[derive(Clone, Copy, Debug)]
enum Arch {
    MobileNetV2,
    ResNet18,
    ResNet50,
}

impl Arch {
    fn name(self) -> &'static str {
        match self {
            Arch::MobileNetV2 => "mobilenet_v2",
            Arch::ResNet18 => "resnet18",
            Arch::ResNet50 => "resnet50",
        }
    }

    fn kind(self) -> BackboneKind {
        match self {
            Arch::MobileNetV2 => BackboneKind::MobileNetV2,
            Arch::ResNet18 => BackboneKind::ResNet18,
            Arch::ResNet50 => BackboneKind::ResNet50,
        }
    }

    /// Names and shapes of every backbone tensor in the torchvision file, from our own model.
    fn file_layout(self) -> TensorMap {
        pollster::block_on(Backbone::init(self.kind(), &Device::flex()).to_tensors()).unwrap()
    }

    /// Our pooled features from `tensors`, imported as the page and the CLI import a file.
    fn features(self, tensors: &TensorMap, input: &[f32]) -> webtune::Result<Vec<f32>> {
        let device = Device::flex();
        let batch = input.len() / (3 * SIZE * SIZE);
        let x = Tensor::<4>::from_data(TensorData::new(input.to_vec(), [batch, 3, SIZE, SIZE]), &device);
        let out = Backbone::import(self.kind(), tensors, &device)?.forward(x);
        Ok(out.into_data().try_to_vec::<f32>().unwrap())
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    // Box–Muller: rand without rand_distr has no normal distribution.
    let (u, v): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
}

/// A state dict as torchvision writes it, with random values that keep activations in a sane
/// range: He-scaled convolutions, BatchNorm gamma near 1, small beta and running mean, running
/// variance in [0.5, 1.5]. The last BatchNorm of each ResNet block gets a smaller gamma, or
/// every identity shortcut would double the variance and ResNet-50's features would grow to
/// ~1e4. Includes `num_batches_tracked` and the ImageNet classifier, which loading must ignore.
fn random_state_dict(arch: Arch, seed: u64) -> TensorMap {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut map = TensorMap::new();
    let last_bn_of_block = match arch {
        Arch::MobileNetV2 => None,
        Arch::ResNet18 => Some(".bn2.weight"),
        Arch::ResNet50 => Some(".bn3.weight"),
    };
    for (name, entry) in arch.file_layout() {
        let n = entry.num_elements();
        let values: Vec<f32> = if name.ends_with("running_var") {
            (0..n).map(|_| rng.random_range(0.5..1.5)).collect()
        } else if name.ends_with("running_mean") || name.ends_with("bias") {
            (0..n).map(|_| rng.random_range(-0.1..0.1)).collect()
        } else if last_bn_of_block.is_some_and(|bn| name.ends_with(bn)) {
            (0..n).map(|_| rng.random_range(0.3..0.5)).collect()
        } else if entry.shape.len() == 1 {
            (0..n).map(|_| rng.random_range(0.8..1.2)).collect() // BatchNorm gamma
        } else {
            let fan_in: usize = entry.shape[1..].iter().product();
            let std = (2.0 / fan_in as f32).sqrt();
            (0..n).map(|_| normal(&mut rng) * std).collect()
        };
        if let Some(bn) = name.strip_suffix(".running_var") {
            let count = TensorEntry { shape: vec![], values: TensorValues::I64(vec![1234]) };
            map.insert(format!("{bn}.num_batches_tracked"), count);
        }
        map.insert(name, TensorEntry::f32(entry.shape, values));
    }
    let (classifier, features) = match arch {
        Arch::MobileNetV2 => ("classifier.1", 1280),
        Arch::ResNet18 => ("fc", 512),
        Arch::ResNet50 => ("fc", 2048),
    };
    map.insert(format!("{classifier}.weight"), TensorEntry::f32(vec![1000, features], vec![0.01; 1000 * features]));
    map.insert(format!("{classifier}.bias"), TensorEntry::f32(vec![1000], vec![0.0; 1000]));
    map
}

fn random_input(batch: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..batch * 3 * SIZE * SIZE).map(|_| normal(&mut rng)).collect()
}

fn write_f32(path: &Path, values: &[f32]) {
    std::fs::write(path, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

fn reference() -> Command {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/torchvision_models.py");
    let mut command = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()));
    command.arg(script);
    command
}

/// The numpy reference's features for `weights` (a safetensors file) and `input`.
fn reference_features(arch: Arch, weights: &Path, input: &[f32]) -> Vec<f32> {
    let dir = weights.parent().unwrap();
    let (input_path, output_path) = (dir.join("input.f32"), dir.join("features.f32"));
    write_f32(&input_path, input);
    let output = reference()
        .arg(arch.name())
        .arg(weights)
        .arg(&input_path)
        .arg(&output_path)
        .args(["--size", &SIZE.to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "reference failed (is numpy installed?): {}", String::from_utf8_lossy(&output.stderr));
    std::fs::read(&output_path).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn matches_the_reference(arch: Arch) {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join(format!("{}.safetensors", arch.name()));
    std::fs::write(&weights, write_safetensors(&random_state_dict(arch, 7), HashMap::new()).unwrap()).unwrap();
    let input = random_input(2, 11);
    // The file our name map describes has torchvision's names, shapes and published parameter
    // count, as the reference sees them.
    let check = reference().args(["--self-check", arch.name()]).arg(&weights).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    let ours = arch.features(&read_weights_file(&std::fs::read(&weights).unwrap()).unwrap(), &input).unwrap();
    let theirs = reference_features(arch, &weights, &input);
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours.len(), 2 * arch.kind().features());

    let scale = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let max_diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    // Outputs worth comparing: not collapsed to zero, and different for the two images.
    assert!(scale > 1e-2 && scale < 1e4, "{}: output scale {scale}", arch.name());
    let (first, second) = theirs.split_at(theirs.len() / 2);
    assert!(first.iter().zip(second).any(|(a, b)| (a - b).abs() > 1e-3 * scale), "{}: images indistinguishable", arch.name());
    assert!(max_diff <= 1e-4 * scale, "{}: max difference {max_diff} at output scale {scale}", arch.name());
    println!("{}: max difference {max_diff} at output scale {scale}", arch.name());
}

#[test]
fn mobilenet_v2_matches_an_independent_numpy_implementation() {
    matches_the_reference(Arch::MobileNetV2);
}

#[test]
fn resnet18_matches_an_independent_numpy_implementation() {
    matches_the_reference(Arch::ResNet18);
}

#[test]
fn resnet50_matches_an_independent_numpy_implementation() {
    matches_the_reference(Arch::ResNet50);
}

/// Loading `tensors` as `arch` fails with a message that contains every string in `expected`.
fn refused(arch: Arch, tensors: &TensorMap, expected: &[&str]) {
    let err = arch.features(tensors, &random_input(1, 1)).unwrap_err().to_string();
    for part in expected {
        assert!(err.contains(part), "{}: expected {part:?} in {err:?}", arch.name());
    }
}

#[test]
fn files_that_do_not_match_are_refused_naming_the_tensor() {
    for (arch, name, other) in [
        (Arch::ResNet18, "layer3.1.bn2.running_var", "layer2.0.downsample.0.weight"),
        (Arch::MobileNetV2, "features.5.conv.1.0.weight", "features.18.0.weight"),
    ] {
        let good = random_state_dict(arch, 3);
        assert!(arch.features(&good, &random_input(1, 1)).is_ok());

        let mut missing = good.clone();
        missing.remove(name);
        refused(arch, &missing, &["missing tensor", name]);

        let mut renamed = good.clone();
        let entry = renamed.remove(name).unwrap();
        renamed.insert(format!("{name}_renamed"), entry);
        refused(arch, &renamed, &[name]);

        let mut misshaped = good.clone();
        let entry = misshaped.get_mut(other).unwrap();
        entry.shape.reverse();
        refused(arch, &misshaped, &[other, "has shape"]);

        let mut extra = good.clone();
        extra.insert("layer9.0.conv1.weight".into(), TensorEntry::f32(vec![1], vec![0.0]));
        refused(arch, &extra, &["unexpected tensor layer9.0.conv1.weight"]);
    }
}

#[test]
fn a_file_with_timm_names_loads_the_same_backbone() {
    for arch in [Arch::MobileNetV2, Arch::ResNet18] {
        let torchvision = random_state_dict(arch, 5);
        let timm: TensorMap = torchvision
            .iter()
            .map(|(name, entry)| (timm_name(arch.kind(), name).unwrap_or_else(|| panic!("no timm name for {name}")), entry.clone()))
            .collect();
        assert_eq!(timm.len(), torchvision.len(), "{}: timm names collide", arch.name());
        let input = random_input(1, 2);
        let expected = arch.features(&torchvision, &input).unwrap();
        assert_eq!(arch.features(&timm, &input).unwrap(), expected, "{}", arch.name());
    }
}
