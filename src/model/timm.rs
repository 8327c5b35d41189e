//! timm's names for the same backbones, so that weights published for timm load too.
//!
//! timm's `resnet18`/`resnet50` use torchvision's names unchanged. Its `mobilenetv2_100` and
//! `tf_efficientnet_lite0` share one scheme: `conv_stem`/`bn1`, blocks grouped by stage
//! (`blocks.{stage}.{index}`), `conv_head`/`bn2` and a bare `classifier` Linear. The first block
//! of both is a depthwise-separable block (`conv_dw`, `bn1`, `conv_pw`, `bn2`), every other an
//! inverted residual (`conv_pw`, `bn1`, `conv_dw`, `bn2`, `conv_pwl`, `bn3`).

use super::{BackboneKind, efficientnet_lite, mobilenet_v2};

/// The timm name of a tensor given its canonical name: torchvision's for MobileNetV2 and the
/// ResNets, lukemelas/EfficientNet-Lite's for EfficientNet-Lite0. The ImageNet classifier is
/// mapped too (`classifier.1.weight` and `_fc.weight` to `classifier.weight`); `None` for a name
/// the backbone's file does not have.
pub fn timm_name(kind: BackboneKind, canonical: &str) -> Option<String> {
    match kind {
        BackboneKind::ResNet18 | BackboneKind::ResNet50 => Some(canonical.to_string()),
        BackboneKind::MobileNetV2 => mobilenet_v2_timm_name(canonical),
        BackboneKind::EfficientNetLite0 => efficientnet_lite0_timm_name(canonical),
    }
}

/// Position `(stage, index within the stage)` of block `block` (counted over all stages).
fn stage_position(repeats: impl IntoIterator<Item = usize>, block: usize) -> Option<(usize, usize)> {
    let mut first = 0;
    for (stage, n) in repeats.into_iter().enumerate() {
        if block < first + n {
            return Some((stage, block - first));
        }
        first += n;
    }
    None
}

fn mobilenet_v2_timm_name(canonical: &str) -> Option<String> {
    let (module, param) = canonical.rsplit_once('.')?;
    if module == "classifier.1" {
        return Some(format!("classifier.{param}"));
    }
    let (feature, layer) = module.strip_prefix("features.")?.split_once('.')?;
    let feature: usize = feature.parse().ok()?;
    let last_feature = mobilenet_v2::STAGES.iter().map(|s| s.2).sum::<usize>() + 1;
    let name = match (feature, layer) {
        (0, "0") => "conv_stem".to_string(),
        (0, "1") => "bn1".to_string(),
        (f, "0") if f == last_feature => "conv_head".to_string(),
        (f, "1") if f == last_feature => "bn2".to_string(),
        (f, layer) => {
            let block = f.checked_sub(1)?;
            let (stage, index) = stage_position(mobilenet_v2::STAGES.map(|s| s.2), block)?;
            let part = match (block == 0, layer) {
                (true, "conv.0.0") => "conv_dw",
                (true, "conv.0.1") => "bn1",
                (true, "conv.1") => "conv_pw",
                (true, "conv.2") => "bn2",
                (false, "conv.0.0") => "conv_pw",
                (false, "conv.0.1") => "bn1",
                (false, "conv.1.0") => "conv_dw",
                (false, "conv.1.1") => "bn2",
                (false, "conv.2") => "conv_pwl",
                (false, "conv.3") => "bn3",
                _ => return None,
            };
            format!("blocks.{stage}.{index}.{part}")
        }
    };
    Some(format!("{name}.{param}"))
}

fn efficientnet_lite0_timm_name(canonical: &str) -> Option<String> {
    let (module, param) = canonical.rsplit_once('.')?;
    let name = match module {
        "_conv_stem" => "conv_stem".to_string(),
        "_bn0" => "bn1".to_string(),
        "_conv_head" => "conv_head".to_string(),
        "_bn1" => "bn2".to_string(),
        "_fc" => "classifier".to_string(),
        block => {
            let (block, layer) = block.strip_prefix("_blocks.")?.split_once('.')?;
            let block: usize = block.parse().ok()?;
            let (stage, index) = stage_position(efficientnet_lite::STAGES.map(|s| s.2), block)?;
            let part = match (block == 0, layer) {
                (true, "_depthwise_conv") => "conv_dw",
                (true, "_bn1") => "bn1",
                (true, "_project_conv") => "conv_pw",
                (true, "_bn2") => "bn2",
                (false, "_expand_conv") => "conv_pw",
                (false, "_bn0") => "bn1",
                (false, "_depthwise_conv") => "conv_dw",
                (false, "_bn1") => "bn2",
                (false, "_project_conv") => "conv_pwl",
                (false, "_bn2") => "bn3",
                _ => return None,
            };
            format!("blocks.{stage}.{index}.{part}")
        }
    };
    Some(format!("{name}.{param}"))
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::super::blocks::testing::param_paths;
    use super::super::{Backbone, BackboneNames, Convention};
    use crate::weights::NameMap;
    use super::*;

    #[test]
    fn mobilenet_v2_names() {
        let timm = |n| timm_name(BackboneKind::MobileNetV2, n);
        assert_eq!(timm("features.0.0.weight").as_deref(), Some("conv_stem.weight"));
        assert_eq!(timm("features.0.1.running_var").as_deref(), Some("bn1.running_var"));
        assert_eq!(timm("features.1.conv.0.0.weight").as_deref(), Some("blocks.0.0.conv_dw.weight"));
        assert_eq!(timm("features.1.conv.0.1.bias").as_deref(), Some("blocks.0.0.bn1.bias"));
        assert_eq!(timm("features.1.conv.1.weight").as_deref(), Some("blocks.0.0.conv_pw.weight"));
        assert_eq!(timm("features.1.conv.2.num_batches_tracked").as_deref(), Some("blocks.0.0.bn2.num_batches_tracked"));
        assert_eq!(timm("features.2.conv.0.0.weight").as_deref(), Some("blocks.1.0.conv_pw.weight"));
        assert_eq!(timm("features.3.conv.1.0.weight").as_deref(), Some("blocks.1.1.conv_dw.weight"));
        assert_eq!(timm("features.4.conv.1.1.weight").as_deref(), Some("blocks.2.0.bn2.weight"));
        // Stages of 1, 2, 3, 4, 3, 3, 1 blocks: features.11 is the 10th block, the first of stage 4.
        assert_eq!(timm("features.11.conv.2.weight").as_deref(), Some("blocks.4.0.conv_pwl.weight"));
        assert_eq!(timm("features.16.conv.3.running_mean").as_deref(), Some("blocks.5.2.bn3.running_mean"));
        assert_eq!(timm("features.17.conv.3.weight").as_deref(), Some("blocks.6.0.bn3.weight"));
        assert_eq!(timm("features.18.0.weight").as_deref(), Some("conv_head.weight"));
        assert_eq!(timm("features.18.1.weight").as_deref(), Some("bn2.weight"));
        assert_eq!(timm("classifier.1.weight").as_deref(), Some("classifier.weight"));
        assert_eq!(timm("features.19.0.weight"), None);
        assert_eq!(timm("features.1.conv.3.weight"), None);
    }

    #[test]
    fn efficientnet_lite0_names() {
        let timm = |n| timm_name(BackboneKind::EfficientNetLite0, n);
        assert_eq!(timm("_conv_stem.weight").as_deref(), Some("conv_stem.weight"));
        assert_eq!(timm("_bn0.weight").as_deref(), Some("bn1.weight"));
        assert_eq!(timm("_blocks.0._depthwise_conv.weight").as_deref(), Some("blocks.0.0.conv_dw.weight"));
        assert_eq!(timm("_blocks.0._bn1.bias").as_deref(), Some("blocks.0.0.bn1.bias"));
        assert_eq!(timm("_blocks.0._project_conv.weight").as_deref(), Some("blocks.0.0.conv_pw.weight"));
        assert_eq!(timm("_blocks.0._bn2.running_var").as_deref(), Some("blocks.0.0.bn2.running_var"));
        assert_eq!(timm("_blocks.1._expand_conv.weight").as_deref(), Some("blocks.1.0.conv_pw.weight"));
        assert_eq!(timm("_blocks.2._bn0.weight").as_deref(), Some("blocks.1.1.bn1.weight"));
        // Stages of 1, 2, 2, 3, 3, 4, 1 blocks.
        assert_eq!(timm("_blocks.3._depthwise_conv.weight").as_deref(), Some("blocks.2.0.conv_dw.weight"));
        assert_eq!(timm("_blocks.5._bn1.weight").as_deref(), Some("blocks.3.0.bn2.weight"));
        assert_eq!(timm("_blocks.8._project_conv.weight").as_deref(), Some("blocks.4.0.conv_pwl.weight"));
        assert_eq!(timm("_blocks.14._bn2.bias").as_deref(), Some("blocks.5.3.bn3.bias"));
        assert_eq!(timm("_blocks.15._project_conv.weight").as_deref(), Some("blocks.6.0.conv_pwl.weight"));
        assert_eq!(timm("_conv_head.weight").as_deref(), Some("conv_head.weight"));
        assert_eq!(timm("_bn1.running_mean").as_deref(), Some("bn2.running_mean"));
        assert_eq!(timm("_fc.bias").as_deref(), Some("classifier.bias"));
        assert_eq!(timm("_blocks.16._bn0.weight"), None);
        assert_eq!(timm("_blocks.0._expand_conv.weight"), None);
    }

    #[test]
    fn resnet_names_are_torchvision_names() {
        for kind in [BackboneKind::ResNet18, BackboneKind::ResNet50] {
            assert_eq!(timm_name(kind, "layer2.0.downsample.1.weight").as_deref(), Some("layer2.0.downsample.1.weight"));
            assert_eq!(timm_name(kind, "fc.bias").as_deref(), Some("fc.bias"));
        }
    }

    /// Every parameter of each backbone gets a distinct timm name, and the ones that must exist
    /// in timm's `mobilenetv2_100` / `tf_efficientnet_lite0` layouts do.
    #[test]
    fn every_parameter_has_its_own_timm_name() {
        let device = Device::flex();
        let cases = [
            (BackboneKind::EfficientNetLite0, 49),
            (BackboneKind::MobileNetV2, 52),
            (BackboneKind::ResNet18, 20),
        ];
        for (kind, convs) in cases {
            let timm = BackboneNames { kind, convention: Convention::Timm };
            let paths = param_paths(&Backbone::init(kind, &device));
            let mut names: Vec<String> =
                paths.iter().map(|p| timm.file_name(p).unwrap_or_else(|| panic!("{kind}: {p}")).0).collect();
            assert_eq!(names.len(), convs * 5, "{kind}");
            names.sort();
            names.dedup();
            assert_eq!(names.len(), convs * 5, "{kind}");
            if kind != BackboneKind::ResNet18 {
                let expected_names = [
                    "conv_stem.weight",
                    "bn1.weight",
                    "blocks.0.0.conv_dw.weight",
                    "blocks.0.0.bn2.running_var",
                    "blocks.6.0.conv_pwl.weight",
                    "conv_head.weight",
                    "bn2.bias",
                ];
                for expected in expected_names {
                    assert!(names.iter().any(|n| n == expected), "{kind}: no {expected}");
                }
                assert!(names.iter().all(|n| !n.starts_with("blocks.7.")), "{kind}");
            }
        }
        let timm = |kind| BackboneNames { kind, convention: Convention::Timm };
        assert!(timm(BackboneKind::MobileNetV2).ignorable("classifier.weight"));
        assert!(timm(BackboneKind::ResNet50).ignorable("fc.weight"));
        assert!(!timm(BackboneKind::ResNet50).ignorable("conv1.weight"));
    }
}
